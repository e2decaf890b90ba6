-- oban_pro consumer: fetch 10 (one transaction), ack them with one oban_ack_jobs call (a second one).
SELECT coalesce(array_agg(id), '{}') AS ids FROM oban_fetch_jobs('default', 10, 'bench') \gset
SELECT oban_ack_jobs(coalesce(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')), '[]')) FROM unnest(:ids::bigint[]) id;
