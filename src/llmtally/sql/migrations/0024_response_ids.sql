-- llmtally 0024: the owner of a stored response. The gateway serves GET and DELETE /v1/responses/{id}
-- only to a key of the user (or team) whose call made the response; the LiteLLM callback names that
-- response in the call's metadata.response_id (the id as the client got it), whatever the content mode.
-- Without an index the lookup read every call of the key's user, however many, and a miss (any made-up
-- id, which a key holder may send at will, unbilled) was the worst case. This partial index holds only
-- the calls that made a response (those of the Responses API), so it stays small and the lookup is one
-- index probe. Its predicate is implied by `metadata ->> 'response_id' = $1` (the operator is strict).

create index if not exists request_logs_response_id_idx
    on public.request_logs ((metadata ->> 'response_id'), user_profile_id)
    where (metadata ->> 'response_id') is not null;
