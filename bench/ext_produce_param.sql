-- Contender (c) producer: the 10 jobs of plain_produce.sql in one oban_insert_jobs call, the batch sent
-- as a parameter (:jobs, a JSON array run.sh passes with -D), as a client builds it and sends it: the
-- server parses it on every call (with -M prepared, :jobs is a bind parameter, not a constant).
SELECT count(*) FROM oban_insert_jobs(:jobs::jsonb);
