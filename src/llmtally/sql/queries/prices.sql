-- Custom prices and repricing (llmtally.prices). A line "-- name --" starts a query.

-- list_prices --
select model, input_cost_per_token, output_cost_per_token, cache_read_cost_per_token, cache_creation_cost_per_token,
       updated_at
  from public.model_prices
 order by model

-- set_price --
insert into public.model_prices (model, input_cost_per_token, output_cost_per_token, cache_read_cost_per_token,
                                 cache_creation_cost_per_token)
values (%(model)s, %(input)s, %(output)s, %(cache_read)s, %(cache_creation)s)
on conflict (model) do update set
    input_cost_per_token = excluded.input_cost_per_token,
    output_cost_per_token = excluded.output_cost_per_token,
    cache_read_cost_per_token = excluded.cache_read_cost_per_token,
    cache_creation_cost_per_token = excluded.cache_creation_cost_per_token,
    updated_at = now()

-- delete_price --
delete from public.model_prices where model = %(model)s

-- recorded_models --
select distinct model, provider from public.usage_daily_totals order by model, provider

-- reprice_custom --
-- Rows of a model with a custom price: its cost of every token type (llmtally_custom_cost). A cache hit
-- keeps its cost (0).
update public.request_logs r
   set total_cost = public.llmtally_custom_cost(mp, r.prompt_tokens, r.completion_tokens, r.cached_tokens,
                                                r.cache_creation_tokens),
       cost_status = 'custom'
  from public.model_prices mp
 where r.model = %(model)s and r.provider = %(provider)s and not r.cache_hit
   and mp.model = %(price_key)s
   and (r.cost_status <> 'custom'
        or r.total_cost is distinct from public.llmtally_custom_cost(mp, r.prompt_tokens, r.completion_tokens,
                                                                     r.cached_tokens, r.cache_creation_tokens))

-- repriceable_usages --
-- The distinct usages of a model's rows whose cost llmtally set (not one the provider reported), to be
-- priced again from LiteLLM's price map. A cache hit keeps its cost (0).
select distinct prompt_tokens, completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens,
       audio_tokens
  from public.request_logs
 where model = %(model)s and provider = %(provider)s and not cache_hit
   and cost_status in ('custom', 'unpriced', 'recomputed')

-- reprice_map --
-- Those rows, each at the cost of its usage (computed with LiteLLM's cost function by the caller).
update public.request_logs r
   set total_cost = u.cost, cost_status = case when u.cost is null then 'unpriced' else 'recomputed' end
  from unnest(%(prompt_tokens)s::integer[], %(completion_tokens)s::integer[], %(cached_tokens)s::integer[],
                %(cache_creation_tokens)s::integer[], %(reasoning_tokens)s::integer[],
                %(audio_tokens)s::integer[], %(cost)s::numeric[])
       as u(prompt_tokens, completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, cost)
 where r.model = %(model)s and r.provider = %(provider)s and not r.cache_hit
   and r.cost_status in ('custom', 'unpriced', 'recomputed')
   and (r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.cache_creation_tokens, r.reasoning_tokens,
        r.audio_tokens)
       = (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cache_creation_tokens, u.reasoning_tokens,
          u.audio_tokens)
   and (r.total_cost is distinct from u.cost
        or r.cost_status <> case when u.cost is null then 'unpriced' else 'recomputed' end)

-- reprice_unpriced --
-- A custom price was removed and no other price is known: back to unpriced, never a silent 0.
update public.request_logs r
   set total_cost = null, cost_status = 'unpriced'
 where r.model = %(model)s and r.provider = %(provider)s and r.cost_status = 'custom' and not r.cache_hit

-- audit_reprice --
-- A reprice changes stored costs, not a price: the audit log gets one row saying how many.
insert into public.audit_log (actor, action, object, subject, after)
values (public.llmtally_actor(), 'reprice', 'request_logs', %(model)s, jsonb_build_object('rows_changed', %(changed)s::bigint))
