-- llmtally 0018: the models an API token may use. A gateway key (docs/gateway.md) may be limited to some
-- of the gateway's models; NULL, as every token made before, is every model. The JSON API ignores it.

alter table public.api_tokens add column models text[]
    constraint api_tokens_models_check check (models is null or (cardinality(models) > 0 and array_position(models, null) is null));
comment on column public.api_tokens.models is
    'The gateway models the token may use (model names of the gateway config); NULL: every model.';

-- A change of what a token may use is logged, as a change of its expiry is (0017).
drop trigger api_tokens_audit_update on public.api_tokens;
create trigger api_tokens_audit_update after update on public.api_tokens
    for each row
    when (old.revoked_at is distinct from new.revoked_at or old.expires_at is distinct from new.expires_at
          or old.name is distinct from new.name or old.user_id is distinct from new.user_id
          or old.models is distinct from new.models)
    execute function public.llmtally_audit_change();
