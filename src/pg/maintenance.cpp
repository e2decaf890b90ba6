// Maintenance of SPEC §3: staging due jobs, pruning finished ones, rescuing orphans. Each is one
// set-based statement that skips rows another session holds, so concurrent runs never collide.
#include "pg/boundary.hpp"
#include "pg/args.hpp"
#include "pg/sql.hpp"
#include "pg/workflows.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/timestamp.h"
}

namespace oban::pg {

namespace {

Statement stage_jobs{R"sql(
    WITH due AS (
        SELECT id FROM @extschema@.oban_jobs
        WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= timezone('UTC', now())
        ORDER BY scheduled_at, id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    )
    UPDATE @extschema@.oban_jobs AS job
    SET state = 'available'
    FROM due
    WHERE job.id = due.id)sql",
                     1,
                     {INT4OID}};

// Durable signals (signals.cpp): parked jobs — suspended by oban_await_signal, meta wait_until —
// whose deadline has passed → available; their next oban_await_signal returns 'timeout'. The
// deadline is the JSON text of a UTC timestamp, which sorts as the timestamp under COLLATE "C"
// ("infinity" after every date), so oban_jobs_parked_index finds them without reading the jobs
// suspended on workflow deps.
Statement stage_parked_jobs{R"sql(
    WITH due AS (
        SELECT id FROM @extschema@.oban_jobs
        WHERE state = 'suspended' AND meta ? 'wait_until'
          AND (meta->>'wait_until') COLLATE "C" <= (to_jsonb(timezone('UTC', now())) #>> '{}') COLLATE "C"
        ORDER BY (meta->>'wait_until') COLLATE "C"
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    )
    UPDATE @extschema@.oban_jobs AS job
    SET state = 'available'
    FROM due
    WHERE job.id = due.id)sql",
                            1,
                            {INT4OID}};

// Ages are capped at 5000 years so the cutoff stays a valid timestamp; nothing is older anyway.
// Jobs of a workflow that has not finished are kept (its own row shows unfinished jobs, or some
// workflow of its tree does): dependents may still need them. Returns the workflows it touched.
Statement prune_jobs{R"sql(
    WITH expired AS (
        SELECT job.id, job.meta->>'workflow_id' AS workflow_id FROM @extschema@.oban_jobs AS job
        WHERE ((state = 'completed' AND completed_at <= timezone('UTC', now()) - least($1, interval '5000 years'))
            OR (state = 'cancelled' AND cancelled_at <= timezone('UTC', now()) - least($1, interval '5000 years'))
            OR (state = 'discarded' AND discarded_at <= timezone('UTC', now()) - least($1, interval '5000 years')))
          AND NOT EXISTS (
              SELECT FROM @extschema@.oban_workflow_rows AS w
              WHERE job.meta ? 'workflow_id' AND w.id = job.meta->>'workflow_id'
                AND w.suspended + w.available + w.scheduled + w.executing + w.retryable > 0)
        ORDER BY job.id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ), kept AS (
        SELECT DISTINCT workflow_id FROM expired
        WHERE workflow_id IS NOT NULL AND NOT @extschema@.oban_workflow_finished(workflow_id)
    ), deleted AS (
        DELETE FROM @extschema@.oban_jobs AS job
        USING expired
        WHERE job.id = expired.id
          AND (expired.workflow_id IS NULL OR expired.workflow_id NOT IN (SELECT workflow_id FROM kept))
        RETURNING expired.workflow_id
    )
    SELECT workflow_id, count(*) FROM deleted GROUP BY workflow_id)sql",
                     2,
                     {INTERVALOID, INT4OID}};

// The rows prune_workflows may delete: those no open transaction is adding jobs to. An insert
// holds its workflow's row (FOR KEY SHARE, src/pg/aggregation.cpp) until it commits; such a row is
// passed over, so the job it adds never ends up without one, and marked (prune_retry): should that
// transaction roll back, the row would be left with no job, and no later prune of the workflow's
// jobs would come back for it. The next run takes the marked rows up again (retried_workflows).
// SKIP LOCKED: the prune never waits for an insert, so no order of their locks can deadlock. The
// mark's NO KEY UPDATE lock does not conflict with an insert's KEY SHARE; a row another prune has
// locked is that prune's to delete or keep, and is skipped. A statement of its own: prune_workflows
// then looks for jobs with a snapshot taken after every insert that held one of these rows committed.
Statement lock_pruned_workflows{R"sql(
    WITH locked AS (
        SELECT id FROM @extschema@.oban_workflow_rows WHERE id = ANY($1) FOR UPDATE SKIP LOCKED
    ), held AS (
        UPDATE @extschema@.oban_workflow_rows AS w SET prune_retry = true
        FROM (SELECT id FROM @extschema@.oban_workflow_rows
              WHERE id = ANY($1) AND NOT prune_retry AND id NOT IN (SELECT id FROM locked)
              FOR NO KEY UPDATE SKIP LOCKED) AS passed_over
        WHERE w.id = passed_over.id
    )
    SELECT coalesce(array_agg(id), '{}') FROM locked)sql",
                                1,
                                {TEXTARRAYOID}};

// Rows a previous prune passed over (lock_pruned_workflows), a bounded batch per run.
Statement retried_workflows{R"sql(
    SELECT coalesce(array_agg(id), '{}') FROM (
        SELECT id FROM @extschema@.oban_workflow_rows WHERE prune_retry LIMIT 1000
    ) AS marked)sql",
                            0,
                            {}};

// The rows of finished workflows with no job and no sub-workflow left (a parent goes on a later run,
// once its sub-workflows are gone), and their unfolded journal rows: the row's counts and those
// rows add up to no job, and a workflow made again under the same id starts from nothing.
Statement prune_workflows{R"sql(
    WITH gone AS (
        DELETE FROM @extschema@.oban_workflow_rows AS w
        WHERE w.id = ANY($1)
          AND NOT EXISTS (SELECT FROM @extschema@.oban_workflow_steps AS s WHERE s.workflow_id = w.id)
          AND NOT EXISTS (SELECT FROM @extschema@.oban_workflow_rows AS child WHERE child.parent_id = w.id)
        RETURNING w.id, w.parent_id
    ), kept AS (  -- locked, so no insert holds them: a mark of a passed-over row has done its part
        UPDATE @extschema@.oban_workflow_rows AS w SET prune_retry = false
        WHERE w.id = ANY($1) AND w.prune_retry AND w.id NOT IN (SELECT id FROM gone)
    ), journal AS (
        DELETE FROM @extschema@.oban_workflow_journal AS j WHERE j.workflow_id = ANY (ARRAY(SELECT id FROM gone))
    ), names AS (  -- a pruned unique workflow's name goes with it
        DELETE FROM @extschema@.oban_workflow_names AS n USING gone WHERE n.workflow_id = gone.id
    )
    SELECT parent_id FROM gone)sql",
                          1,
                          {TEXTARRAYOID}};

// An orphan has run longer than rescue_after, or names (in attempted_by[2]) a producer whose row
// in oban_producers is gone, as Oban's producers keep theirs while they live.
Statement rescue_jobs{R"sql(
    WITH orphans AS (
        SELECT id FROM @extschema@.oban_jobs AS job
        WHERE state = 'executing'
          AND (attempted_at < timezone('UTC', now()) - least($1, interval '5000 years')
               OR CASE WHEN attempted_by[2] ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
                       THEN NOT EXISTS (SELECT 1 FROM @extschema@.oban_producers AS producer
                                        WHERE producer.uuid = job.attempted_by[2]::uuid)
                       ELSE false END)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE @extschema@.oban_jobs AS job
    SET state = CASE WHEN job.attempt >= job.max_attempts THEN 'discarded' ELSE 'available' END
                    ::@extschema@.oban_job_state,
        discarded_at = CASE WHEN job.attempt >= job.max_attempts THEN timezone('UTC', now())
                            ELSE job.discarded_at END,
        meta = job.meta || jsonb_build_object('rescued',
                   CASE WHEN jsonb_typeof(job.meta->'rescued') = 'number'
                        THEN floor((job.meta->'rescued')::numeric) ELSE 0 END + 1)
    FROM orphans
    WHERE job.id = orphans.id)sql",
                      1,
                      {INTERVALOID}};

int32 RunCounted(FunctionCallInfo fcinfo, Statement *statement, Datum *values) {
    Oid schema = FunctionSchema(fcinfo);
    BeginSql(schema);
    uint64 count = Execute(statement, schema, values, nullptr);
    EndSql();
    return (int32)Min(count, (uint64)PG_INT32_MAX);
}

}  // namespace

}  // namespace oban::pg

using namespace oban::pg;

OBAN_FUNCTION(oban_stage_jobs) {
    RequireArgument(fcinfo, 0, "limit");
    RequireNonNegative(PG_GETARG_INT32(0), "limit");
    Datum values[1] = {PG_GETARG_DATUM(0)};
    int32 staged = RunCounted(fcinfo, &stage_jobs, values);
    // Parked jobs past their signal deadline, within what is left of the limit.
    values[0] = Int32GetDatum(PG_GETARG_INT32(0) - staged);
    if (DatumGetInt32(values[0]) > 0) staged += RunCounted(fcinfo, &stage_parked_jobs, values);
    PG_RETURN_INT32(staged);
}

OBAN_FUNCTION(oban_prune_jobs) {
    RequireArgument(fcinfo, 0, "max_age");
    RequireArgument(fcinfo, 1, "limit");
    RequireNonNegativeInterval(PG_GETARG_INTERVAL_P(0), "max_age");
    RequireNonNegative(PG_GETARG_INT32(1), "limit");
    // With the transaction's snapshot, a job added to a finished workflow after the transaction
    // began is not seen: the prune took the workflow for finished and deleted its row under the job.
    RequireReadCommitted("oban_prune_jobs",
                         "It must see jobs committed after the transaction began, or it could delete the "
                         "row of a workflow they belong to.");
    Datum values[2] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)};
    Oid schema = FunctionSchema(fcinfo);
    BeginSql(schema);
    uint64 groups = Execute(&prune_jobs, schema, values, nullptr);
    int64 pruned = 0;
    ArrayBuildState *workflows = initArrayResult(TEXTOID, CurrentMemoryContext, false);
    int touched = 0;
    for (uint64 i = 0; i < groups; i++) {
        bool is_null = false;
        HeapTuple row = SPI_tuptable->vals[i];
        pruned += DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &is_null));
        Datum workflow = SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &is_null);
        if (!is_null) {
            accumArrayResult(workflows, workflow, false, TEXTOID, CurrentMemoryContext);
            touched++;
        }
    }
    // And the rows earlier runs passed over.
    Execute(&retried_workflows, schema, nullptr, nullptr);
    bool retried_null = false;  // never: coalesce
    Datum retried = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &retried_null);
    Datum *retried_ids;
    int retried_count;
    deconstruct_array(DatumGetArrayTypeP(retried), TEXTOID, -1, false, TYPALIGN_INT, &retried_ids, nullptr,
                      &retried_count);
    for (int i = 0; i < retried_count; i++)
        accumArrayResult(workflows, retried_ids[i], false, TEXTOID, CurrentMemoryContext);
    touched += retried_count;
    // Walk up: a sub-workflow's row going may free its parent's. The rows go with their unfolded
    // journal rows, which no flush may fold meanwhile.
    if (touched > 0) LockOutFlushes(schema);
    while (touched > 0) {
        Datum ids[1] = {makeArrayResult(workflows, CurrentMemoryContext)};
        Execute(&lock_pruned_workflows, schema, ids, nullptr);
        bool is_null = false;
        ids[0] =
            datumCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null), false, -1);
        uint64 gone = Execute(&prune_workflows, schema, ids, nullptr);
        workflows = initArrayResult(TEXTOID, CurrentMemoryContext, false);
        touched = 0;
        for (uint64 i = 0; i < gone; i++) {
            bool is_null = false;
            Datum parent = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &is_null);
            if (!is_null) {
                accumArrayResult(workflows, parent, false, TEXTOID, CurrentMemoryContext);
                touched++;
            }
        }
    }
    EndSql();
    PG_RETURN_INT32((int32)Min(pruned, (int64)PG_INT32_MAX));
}

OBAN_FUNCTION(oban_rescue_jobs) {
    RequireArgument(fcinfo, 0, "rescue_after");
    RequireNonNegativeInterval(PG_GETARG_INTERVAL_P(0), "rescue_after");
    Datum values[1] = {PG_GETARG_DATUM(0)};
    PG_RETURN_INT32(RunCounted(fcinfo, &rescue_jobs, values));
}
