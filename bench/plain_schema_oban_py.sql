-- The baseline table completed to what oban-py 0.6's install creates (oban/queries/install.sql): the
-- table of plain_schema.sql plus the two pruning indexes (cancelled_at, discarded_at) and the
-- storage parameters oban-py sets (autovacuum early and unthrottled). The extension's oban_jobs has
-- all of these too, so this is the like-for-like table for contender (b). Run with psql from bench/.
\ir plain_schema.sql
CREATE INDEX ON oban_jobs (cancelled_at) WHERE state = 'cancelled';
CREATE INDEX ON oban_jobs (discarded_at) WHERE state = 'discarded';
ALTER TABLE oban_jobs SET (
  autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 50,
  autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 100,
  autovacuum_vacuum_cost_limit = 2000, autovacuum_vacuum_cost_delay = 1,
  autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_insert_threshold = 1000);
