-- Contender (c) consumer: fetch 10 with oban_fetch_jobs, then ack them in a second transaction with one
-- oban_ack_jobs call (an empty array when nothing was fetched: the call then changes nothing).
SELECT coalesce(array_agg(id), '{}') AS ids FROM oban_fetch_jobs('default', 10, 'bench') \gset
SELECT oban_ack_jobs(coalesce(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')), '[]')) FROM unnest(:ids::bigint[]) id;
