-- Consumer of bench/bloat.sh: contender (c)'s cycle (bench/ext_consume_ack.sql: oban_fetch_jobs of 10,
-- then one oban_ack_jobs with their ids, in a second transaction), split so that each pgbench
-- transaction is one call and the per-transaction log (pgbench -l) times fetches and acks apart. The
-- client alternates: :phase 0 fetches (and keeps the ids), :phase 1 acks them; pgbench -D phase=0
-- starts every client on a fetch, so a client's consumer transactions in the log are fetch, ack,
-- fetch, ack, ... Run it at twice the producer's weight (-f produce@1 -f bloat_consume.sql@2) for the
-- lifecycle mix of bench/run.sh (a producer transaction per fetch + ack).
\if :phase
SELECT oban_ack_jobs(coalesce(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')), '[]')) FROM unnest(:ids::bigint[]) id;
\set phase 0
\else
SELECT coalesce(array_agg(id), '{}') AS ids FROM oban_fetch_jobs('default', 10, 'bench') \gset
\set phase 1
\endif
