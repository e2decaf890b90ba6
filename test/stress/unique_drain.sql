-- A worker: fetch up to 5 stress jobs, then complete them in a second transaction.
SELECT coalesce(array_agg(id), '{}') AS ids FROM oban_fetch_jobs('stress', 5, 'stress') \gset
SELECT count(oban_complete_job(id)) FROM unnest(:ids::bigint[]) id;
