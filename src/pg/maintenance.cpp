// Maintenance of SPEC §3: staging due jobs, pruning finished ones, rescuing orphans. Each is one
// set-based statement that skips rows another session holds, so concurrent runs never collide.
#include "pg/boundary.hpp"
#include "pg/args.hpp"
#include "pg/sql.hpp"

extern "C" {
#include "catalog/pg_type.h"
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

// Ages are capped at 5000 years so the cutoff stays a valid timestamp; nothing is older anyway.
Statement prune_jobs{R"sql(
    WITH expired AS (
        SELECT id FROM @extschema@.oban_jobs
        WHERE (state = 'completed' AND completed_at <= timezone('UTC', now()) - least($1, interval '5000 years'))
           OR (state = 'cancelled' AND cancelled_at <= timezone('UTC', now()) - least($1, interval '5000 years'))
           OR (state = 'discarded' AND discarded_at <= timezone('UTC', now()) - least($1, interval '5000 years'))
        ORDER BY id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM @extschema@.oban_jobs AS job
    USING expired
    WHERE job.id = expired.id)sql",
                     2,
                     {INTERVALOID, INT4OID}};

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
    PG_RETURN_INT32(RunCounted(fcinfo, &stage_jobs, values));
}

OBAN_FUNCTION(oban_prune_jobs) {
    RequireArgument(fcinfo, 0, "max_age");
    RequireArgument(fcinfo, 1, "limit");
    RequireNonNegativeInterval(PG_GETARG_INTERVAL_P(0), "max_age");
    RequireNonNegative(PG_GETARG_INT32(1), "limit");
    Datum values[2] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)};
    PG_RETURN_INT32(RunCounted(fcinfo, &prune_jobs, values));
}

OBAN_FUNCTION(oban_rescue_jobs) {
    RequireArgument(fcinfo, 0, "rescue_after");
    RequireNonNegativeInterval(PG_GETARG_INTERVAL_P(0), "rescue_after");
    Datum values[1] = {PG_GETARG_DATUM(0)};
    PG_RETURN_INT32(RunCounted(fcinfo, &rescue_jobs, values));
}
