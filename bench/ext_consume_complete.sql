-- Contender (c) consumer, variant: fetch 10 with oban_fetch_jobs, then one oban_complete_job per id in a
-- second transaction (a single statement, so a single transaction).
SELECT coalesce(array_agg(id), '{}') AS ids FROM oban_fetch_jobs('default', 10, 'bench') \gset
SELECT count(*) FILTER (WHERE oban_complete_job(id)) FROM unnest(:ids::bigint[]) id;
