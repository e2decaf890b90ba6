-- oban_pro consumer, one transaction per cycle (OBAN_CONSUMER=ackfetch): ack the batch this client
-- claimed in its previous cycle (:ids, kept by pgbench; '{}' at first, -D ids={}) and claim the next
-- 10 in one oban_ack_fetch_jobs call, as an Oban producer asking for more work when a batch is done.
SELECT coalesce(array_agg(id), '{}') AS ids FROM oban_ack_fetch_jobs((SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')), '[]') FROM unnest(:ids::bigint[]) id), 'default', 10, 'bench') \gset
