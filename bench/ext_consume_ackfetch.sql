-- Not contender (c) (one transaction per cycle instead of two): ack the previous batch and claim the next
-- in one oban_ack_fetch_jobs call, as an Oban producer can with it. :ids starts as '{}' (pgbench -D).
SELECT coalesce(array_agg(id), '{}') AS ids FROM oban_ack_fetch_jobs((SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')), '[]') FROM unnest(:ids::bigint[]) id), 'default', 10, 'bench') \gset
