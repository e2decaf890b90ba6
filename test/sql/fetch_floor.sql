-- Fetch floors (src/core/fetch_floor.hpp): oban_fetch_jobs starts each walk of a queue where the
-- last fetch left off, and every way a job becomes available below that point lowers it again, so
-- fetches keep Oban's order (priority, scheduled_at, id). The periodic full walk is pushed an hour
-- away, so nothing below passes because of it. The races are in specs/fetch_floor_race.spec.
SET oban_pro.fetch_full_scan_interval = '1h';
CREATE FUNCTION floor_fetch(demand int) RETURNS SETOF bigint LANGUAGE sql
AS $$ SELECT id FROM oban_fetch_jobs('floor', demand, 'test') $$;
CREATE FUNCTION floor_job(priority int DEFAULT 0, scheduled_at timestamp DEFAULT '2026-01-01',
                          state oban_job_state DEFAULT 'available', queue text DEFAULT 'floor')
RETURNS bigint LANGUAGE sql
AS $$ INSERT INTO oban_jobs (worker, queue, priority, scheduled_at, state)
      VALUES ('Floor', queue, priority, scheduled_at, state) RETURNING id $$;

SELECT floor_job() AS j1 \gset
SELECT floor_job() AS j2 \gset
SELECT floor_fetch(1) = :j1 AS claims_the_first;
SELECT floor_fetch(1) = :j2 AS then_the_second;

-- A job ahead of the floor in Oban's order: higher priority, or scheduled earlier.
SELECT floor_job(priority => 3) AS low \gset
SELECT floor_job(scheduled_at => '2025-01-01') AS early \gset
SELECT floor_job(priority => 0) AS high \gset
SELECT array_agg(id) = ARRAY[:early, :high, :low]::bigint[] AS in_oban_order FROM floor_fetch(3) id;

-- Staged: a scheduled job whose time has come.
SELECT floor_job(scheduled_at => '2000-01-01', state => 'scheduled') AS staged \gset
SELECT floor_job() AS later \gset
SELECT floor_fetch(1) = :later AS scheduled_job_not_yet_available;
SELECT oban_stage_jobs() >= 1 AS staged_some;
SELECT floor_fetch(1) = :staged AS staged_job_comes_first;

-- Retried, and rescued: jobs that were claimed before become available again below the floor.
SELECT floor_job() AS a \gset
SELECT floor_job() AS b \gset
SELECT floor_fetch(1) = :a AS claims_a;
SELECT oban_complete_job(:a);
SELECT floor_fetch(1) = :b AS claims_b;
SELECT oban_retry_job(:a);
UPDATE oban_jobs SET attempted_at = attempted_at - interval '2 hours' WHERE id = :b;
SELECT oban_rescue_jobs('1 hour') AS rescued;
SELECT array_agg(id ORDER BY id) = ARRAY[:a, :b]::bigint[] AS retried_and_rescued FROM floor_fetch(5) id;

-- An available job that moves: its new priority, scheduled_at or queue puts it ahead of the floor.
SELECT floor_job(priority => 9) AS moved_priority \gset
SELECT floor_job(priority => 9) AS moved_time \gset
SELECT floor_job(priority => 9, queue => 'elsewhere') AS moved_queue \gset
SELECT floor_job(priority => 8) AS head \gset
SELECT floor_fetch(1) = :head AS claims_the_head;
UPDATE oban_jobs SET priority = 1 WHERE id = :moved_priority;
UPDATE oban_jobs SET priority = 8, scheduled_at = '2000-01-01' WHERE id = :moved_time;
UPDATE oban_jobs SET queue = 'floor', priority = 0 WHERE id = :moved_queue;
SELECT array_agg(id) = ARRAY[:moved_queue, :moved_priority, :moved_time]::bigint[] AS moved_jobs_in_order
FROM floor_fetch(3) id;

-- A transaction's own fetches find the jobs it made available itself, before its commit publishes them.
BEGIN;
SELECT floor_job() AS mine_head \gset
SELECT floor_fetch(1) = :mine_head AS claims_its_head;
SELECT floor_job(scheduled_at => '2000-01-01') AS mine_early \gset
SELECT floor_fetch(1) = :mine_early AS finds_its_own_job;
COMMIT;

-- A workflow job that the ack of its dep releases, below the floor, comes first.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "floor-release", "jobs": [
    {"name": "a", "worker": "Floor", "queue": "floor", "scheduled_at": "2001-01-01T00:00:00"},
    {"name": "b", "worker": "Floor", "queue": "floor", "scheduled_at": "2001-01-01T00:00:00", "deps": ["a"]}]}');
SELECT id AS root FROM oban_jobs WHERE meta->>'workflow_id' = 'floor-release' AND meta->>'name' = 'a' \gset
SELECT id AS released FROM oban_jobs WHERE meta->>'workflow_id' = 'floor-release' AND meta->>'name' = 'b' \gset
SELECT floor_job() AS ahead \gset
SELECT array_agg(id) = ARRAY[:root, :ahead]::bigint[] AS claims_root_then_ahead FROM floor_fetch(2) id;
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE id = :root;
SELECT state AS released_by_the_ack FROM oban_jobs WHERE id = :released;
SELECT floor_fetch(1) = :released AS released_job_comes_first;

-- Only a job made available behind the triggers' back is passed over, until a full walk.
SELECT floor_job() AS seen \gset
SELECT floor_fetch(1) = :seen AS claims_seen;
SET session_replication_role = replica;
SELECT floor_job(scheduled_at => '2000-01-01') AS hidden \gset
RESET session_replication_role;
SELECT count(*) AS passed_over FROM floor_fetch(5);
SET oban_pro.fetch_full_scan_interval = 0;  -- every fetch walks from the start
SELECT floor_fetch(5) = :hidden AS found_by_a_full_walk;
RESET oban_pro.fetch_full_scan_interval;

-- The setting: an interval from 0 (floors off) to 1 hour, for superusers.
SET oban_pro.fetch_full_scan_interval = -1;
SET oban_pro.fetch_full_scan_interval = '2h';
SHOW oban_pro.fetch_full_scan_interval;
CREATE ROLE floor_user;
SET ROLE floor_user;
SET oban_pro.fetch_full_scan_interval = 0;
RESET ROLE;
DROP ROLE floor_user;

DROP FUNCTION floor_fetch(int);
DROP FUNCTION floor_job(int, timestamp, oban_job_state, text);
DELETE FROM oban_jobs WHERE worker = 'Floor';
