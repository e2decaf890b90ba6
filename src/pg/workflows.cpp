// Workflows (SPEC §4): dependencies released by the database, exactly once, isolated from acks.
//
// A job inserted with deps that are not all satisfied is made `suspended` by a BEFORE INSERT
// trigger, which records an edge from each pending dep to the job (oban_workflow_edges) and, when
// two or more remain, how many (oban_workflow_waits): a job waiting on one dep has its edge alone. The
// statement that finishes a step appends it to the journal (aggregation.cpp), and oban_flush_workflows — run
// by the background worker soon after such a commit (within oban_pro.flush_delay when a job waits on the
// step), or by any caller — folds the journal and counts down the waits of the finished steps' dependents
// through the edges. A job whose count reaches zero gets one precise check of its deps (O(its deps), once)
// and is released or cancelled. A statement that completes the last few deps of a job releases it itself when
// it can do so without waiting (below: releasing in the ack). So:
//  * an ack costs the same whatever the workflow's size, and never waits on another ack;
//  * a failing release never undoes an ack: it runs in a subtransaction of the ack, or later in
//    another transaction; the flush reports a failure with a WARNING and leaves it for
//    oban_repair_workflows;
//  * the journal rows of a step are consumed exactly once (deleted in the transaction that counts
//    them), and a release is `UPDATE ... WHERE state = 'suspended'`, so a job is released once.
#include "pg/aggregation.hpp"
#include "pg/args.hpp"
#include "pg/meta.hpp"
#include "pg/restore.hpp"
#include "pg/sql.hpp"
#include "pg/states.hpp"
#include "pg/steps.hpp"
#include "pg/workflows.hpp"

extern "C" {
#include "access/genam.h"
#include "access/itup.h"
#include "access/relscan.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "miscadmin.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/resowner.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
}

namespace oban::pg {

namespace {

// --- dependency resolution at insert -----------------------------------------------------------

// What each dep of a job ($2, its deps) stands at: its target (workflow, step name or '*') and the
// outcome, the dep job's state, the derived state of a whole (sub-)workflow, or NULL when it does
// not exist. A bare name is a step of the job's own workflow ($1), or the name of one of its
// sub-workflows. Kept statements behind oban_dep_outcomes and oban_dep_verdicts (below), not SQL
// functions: the plan of an SQL function called from a statement lives only as long as that
// statement's run, so the insert of every job with deps, and every job a flush or repair settles,
// planned both bodies again (0.8 ms a job).
Statement dep_outcomes{R"sql(
    WITH named AS (
        SELECT DISTINCT
               CASE jsonb_typeof(dep) WHEN 'string' THEN $1 ELSE dep->>0 END AS wf,
               CASE jsonb_typeof(dep) WHEN 'string' THEN dep#>>'{}' ELSE dep->>1 END AS name,
               jsonb_typeof(dep) = 'string' AS bare
        FROM jsonb_array_elements(CASE jsonb_typeof($2) WHEN 'array' THEN $2 ELSE '[]' END) AS dep
        WHERE jsonb_typeof(dep) = 'string'
           OR (jsonb_typeof(dep) = 'array' AND jsonb_typeof(dep->0) = 'string'
               AND jsonb_typeof(dep->1) = 'string')
    ), targets AS (
        SELECT DISTINCT coalesce(sub.id, named.wf) AS wf, CASE WHEN sub.id IS NULL THEN named.name ELSE '*' END AS name
        FROM named
        LEFT JOIN LATERAL (
            SELECT w.id FROM @extschema@.oban_workflow_rows AS w
            WHERE named.bare AND w.parent_id = named.wf AND w.sub_name = named.name
              AND NOT EXISTS (SELECT 1 FROM @extschema@.oban_workflow_steps AS s
                              JOIN @extschema@.oban_jobs AS j ON j.id = s.job_id
                              WHERE s.workflow_id = named.wf AND s.name = named.name)
            LIMIT 1
        ) AS sub ON true
    )
    SELECT t.wf, t.name,
           CASE WHEN t.name = '*' THEN (
                    SELECT @extschema@.oban_workflow_state(c.suspended, c.available, c.scheduled,
                               c.executing, c.retryable, c.completed, c.cancelled, c.discarded,
                               w.ignore_cancelled, w.ignore_discarded, c.started_at IS NOT NULL)
                    FROM @extschema@.oban_workflow_tree_counts(t.wf) AS c,
                         @extschema@.oban_workflow_rows AS w
                    WHERE w.id = t.wf)
                ELSE (SELECT j.state::text FROM @extschema@.oban_workflow_steps AS s
                      JOIN @extschema@.oban_jobs AS j ON j.id = s.job_id
                      WHERE s.workflow_id = t.wf AND s.name = t.name
                      ORDER BY j.id LIMIT 1)
           END
    FROM targets AS t)sql",
                       2,
                       {TEXTOID, JSONBOID},
                       true};

// The verdict on each dep of a job (workflow $1, meta $2): 'satisfied' (completed, or ended in a
// state the job's ignore_* options accept), 'failed' (cancelled or discarded otherwise) or
// 'pending'. A missing dep is pending, unless $3 (repair): then it fails the job as 'deleted' or,
// with ignore_deleted, is satisfied.
Statement dep_verdicts{R"sql(
    SELECT o.dep_workflow_id, o.dep_name, coalesce(o.outcome, 'deleted'),
           CASE
               WHEN o.outcome = 'completed' THEN 'satisfied'
               WHEN o.outcome = 'cancelled' THEN
                   CASE WHEN coalesce($2->'ignore_cancelled' = 'true', false) THEN 'satisfied' ELSE 'failed' END
               WHEN o.outcome = 'discarded' THEN
                   CASE WHEN coalesce($2->'ignore_discarded' = 'true', false) THEN 'satisfied' ELSE 'failed' END
               WHEN o.outcome IS NULL AND $3 THEN
                   CASE WHEN coalesce($2->'ignore_deleted' = 'true', false) THEN 'satisfied' ELSE 'failed' END
               ELSE 'pending'
           END
    FROM @extschema@.oban_dep_outcomes($1, $2->'deps') AS o)sql",
                       3,
                       {TEXTOID, JSONBOID, BOOLOID},
                       true};

Statement prepare_job{R"sql(
    WITH verdicts AS MATERIALIZED (
        SELECT * FROM @extschema@.oban_dep_verdicts($2, $3, false)
    ), failed AS (
        SELECT dep_workflow_id, dep_name, outcome FROM verdicts WHERE verdict = 'failed'
        ORDER BY dep_workflow_id, dep_name LIMIT 1
    ), edges AS (
        INSERT INTO @extschema@.oban_workflow_edges (dep_workflow_id, dep_name, job_id)
        SELECT dep_workflow_id, dep_name, $1 FROM verdicts
        WHERE verdict = 'pending' AND NOT EXISTS (SELECT FROM failed)
        ON CONFLICT DO NOTHING
    ), waits AS (
        INSERT INTO @extschema@.oban_workflow_waits (job_id, workflow_id, remaining)
        SELECT $1, $2, count(*) FROM verdicts
        WHERE verdict = 'pending' AND NOT EXISTS (SELECT FROM failed)
        HAVING count(*) > 0
        ON CONFLICT (job_id) DO UPDATE SET remaining = excluded.remaining
    )
    SELECT (SELECT count(*) FROM verdicts WHERE verdict = 'pending')::int4 AS pending,
           (SELECT jsonb_build_array(jsonb_build_object(
                       'attempt', 0, 'at', timezone('UTC', now()),
                       'error', format('upstream dep %s was %s',
                                       CASE WHEN dep_workflow_id = $2 THEN dep_name
                                            ELSE dep_workflow_id || '/' || dep_name END, outcome)))
            FROM failed) AS failure)sql",
                      3,
                      {INT8OID, TEXTOID, JSONBOID}};

// --- flushing -------------------------------------------------------------------------------------

// The key is "oban" and "flsh" in ASCII.
Statement flush_lock{"SELECT pg_catalog.pg_advisory_xact_lock(1868718446, 1718383464)", 0, {}};
// Taken before anything else: a TRUNCATE of oban_jobs (whose trigger empties the workflow tables)
// then either waits for the flush or makes it wait before it has touched a row, instead of the two
// deadlocking on journal rows the flush folds while it waits for oban_jobs.
Statement lock_jobs{"LOCK TABLE @extschema@.oban_jobs IN ROW EXCLUSIVE MODE", 0, {}};

// Counts down the waits of the dependents of finished deps, whose edges ConsumeEdges deleted ($1:
// the dependents, $2: how many of each one's edges were consumed, $3: whether one of those deps
// ended other than completed). Returns each dependent whose wait it found, whether nothing is left
// to wait for, and whether a dep failed (then the precise check decides).
//
// Written so that no plan can join whole tables, as every statement here that reads the edges,
// waits or journal by a list (`= ANY ($1)`, an index condition, rather than `IN` or a join): these
// tables churn, and a plan made from statistics taken while they were nearly empty can put a whole
// table on the outer side of a nested loop (a 10,000-dep fan-in's flush once took 27 s). Each wait
// finds its counts in a jsonb object keyed by job id, rather than by a join to the arrays (joined, a
// wait table that looked empty made the arrays the inner side, scanned again for every wait).
Statement count_down{R"sql(
    WITH by_job AS (  -- {job_id: [finished, failed]}
        SELECT jsonb_object_agg(job_id::text, jsonb_build_array(finished, failed)) AS hit
        FROM unnest($1::bigint[], $2::int[], $3::bool[]) AS h(job_id, finished, failed)
    )
    UPDATE @extschema@.oban_workflow_waits AS w
    SET remaining = w.remaining - ((SELECT hit FROM by_job) -> w.job_id::text ->> 0)::int
    WHERE w.job_id = ANY ($1)
    RETURNING w.job_id,
              w.remaining <= 0 AND NOT ((SELECT hit FROM by_job) -> w.job_id::text ->> 1)::bool AS ready,
              ((SELECT hit FROM by_job) -> w.job_id::text ->> 1)::bool AS failed)sql",
                     3,
                     {INT8ARRAYOID, INT4ARRAYOID, BOOLARRAYOID},
                     true};

// Statements that pick jobs by id compare their state as text: written `state = 'suspended'`, a plan
// made from statistics in which suspended jobs are rare walks the (state, queue, ...) index through
// every suspended job instead of looking the ids up by primary key (as jobs.cpp's single-job acks).
//
// Releases jobs whose every dep completed (the counts say so, or the ack's checks: no per-dep
// check needed). A job is scheduled only if its own scheduled_at is still ahead of the wall clock:
// now() would be the start of this (possibly long) flush transaction, older than jobs inserted
// while it ran. The ack's release deletes the waits and edges it locked itself; the flush's runs
// forget_waits_and_edges after this.
Statement release_jobs{R"sql(
    UPDATE @extschema@.oban_jobs AS j
    SET state = CASE WHEN j.scheduled_at > timezone('UTC', clock_timestamp()) THEN 'scheduled' ELSE 'available' END
                    ::@extschema@.oban_job_state
    WHERE j.id = ANY ($1) AND j.state::text = 'suspended' AND NOT j.meta ? 'wait_until')sql",
                       1,
                       {INT8ARRAYOID},
                       true};

Statement forget_waits_and_edges{R"sql(
    WITH forget_waits AS (
        DELETE FROM @extschema@.oban_workflow_waits WHERE job_id = ANY ($1)
    )
    DELETE FROM @extschema@.oban_workflow_edges WHERE job_id = ANY ($1))sql",
                                 1,
                                 {INT8ARRAYOID},
                                 true};

struct ReleaseCall {
    Oid schema;
    Datum job_ids;
};

void ReleaseBody(void *arg) {
    auto *call = static_cast<ReleaseCall *>(arg);
    Datum values[1] = {call->job_ids};
    Execute(&release_jobs, call->schema, values, nullptr);
    Execute(&forget_waits_and_edges, call->schema, values, nullptr);
}

// The precise check, once per job: release it (available, or scheduled if its scheduled_at is
// ahead), cancel it naming the failed dep, or correct its count and keep it waiting. Jobs no longer
// suspended just lose their wait.
Statement settle_jobs{R"sql(
    WITH candidates AS (
        SELECT j.id, v.pending, v.failed_dep, v.failed_outcome
        FROM @extschema@.oban_jobs AS j
        CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE verdict = 'pending')::int AS pending,
                   (array_agg(CASE WHEN dep_workflow_id = j.meta->>'workflow_id' THEN dep_name
                                   ELSE dep_workflow_id || '/' || dep_name END
                              ORDER BY dep_workflow_id, dep_name) FILTER (WHERE verdict = 'failed'))[1]
                       AS failed_dep,
                   (array_agg(outcome ORDER BY dep_workflow_id, dep_name)
                        FILTER (WHERE verdict = 'failed'))[1] AS failed_outcome
            FROM @extschema@.oban_dep_verdicts(j.meta->>'workflow_id', j.meta, $2)
        ) AS v
        WHERE j.id = ANY($1) AND j.state::text = 'suspended' AND j.meta ? 'workflow_id'
          AND NOT j.meta ? 'wait_until'  -- parked awaiting a signal (signals.cpp): not waiting on deps
    ), released AS (
        UPDATE @extschema@.oban_jobs AS j
        SET state = CASE WHEN j.scheduled_at > timezone('UTC', clock_timestamp()) THEN 'scheduled' ELSE 'available' END
                        ::@extschema@.oban_job_state
        FROM candidates AS c
        WHERE j.id = c.id AND c.failed_dep IS NULL AND c.pending = 0 AND j.state::text = 'suspended'
        RETURNING j.id
    ), cancelled AS (
        UPDATE @extschema@.oban_jobs AS j
        SET state = 'cancelled',
            cancelled_at = timezone('UTC', now()),
            errors = @extschema@.oban_errors_append(j.errors, jsonb_build_object(
                'attempt', j.attempt, 'at', timezone('UTC', now()),
                'error', format('upstream dep %s was %s', c.failed_dep, c.failed_outcome)))
        FROM candidates AS c
        WHERE j.id = c.id AND c.failed_dep IS NOT NULL AND j.state::text = 'suspended'
        RETURNING j.id
    ), recounted AS (
        UPDATE @extschema@.oban_workflow_waits AS w SET remaining = c.pending
        FROM candidates AS c
        WHERE w.job_id = c.id AND c.failed_dep IS NULL AND c.pending > 0 AND w.remaining <> c.pending
    ), done AS (
        SELECT id FROM released UNION ALL SELECT id FROM cancelled
        UNION ALL
        SELECT id FROM unnest($1) AS gone(id) WHERE id NOT IN (SELECT id FROM candidates)
    ), forget_waits AS (
        DELETE FROM @extschema@.oban_workflow_waits WHERE job_id = ANY (ARRAY(SELECT id FROM done))
    ), forget_edges AS (
        DELETE FROM @extschema@.oban_workflow_edges WHERE job_id = ANY (ARRAY(SELECT id FROM done))
    )
    SELECT (SELECT count(*) FROM released) + (SELECT count(*) FROM cancelled))sql",
                      2,
                      {INT8ARRAYOID, BOOLOID}};

Statement workflow_of_job{
    R"sql(SELECT meta->>'workflow_id' FROM @extschema@.oban_jobs WHERE id = $1)sql", 1, {INT8OID}};

// Runs `body(arg)` in a subtransaction. On a Postgres error rolls it back and returns the error
// (copied in the caller's context); a query cancel is re-raised. C-style: no C++ objects live here.
ErrorData *InSubtransaction(void (*body)(void *), void *arg) {
    MemoryContext caller_context = CurrentMemoryContext;
    ResourceOwner caller_owner = CurrentResourceOwner;
    ErrorData *volatile failure = nullptr;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(caller_context);
    PG_TRY();
    {
        body(arg);
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller_context);
        CurrentResourceOwner = caller_owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller_context);
        CurrentResourceOwner = caller_owner;
        if (error->sqlerrcode == ERRCODE_QUERY_CANCELED) ReThrowError(error);
        failure = error;
    }
    PG_END_TRY();
    return failure;
}

struct SettleCall {
    Oid schema;
    Datum job_ids;  // int8[]
    bool repair;
    int64 settled;
};

void SettleBody(void *arg) {
    auto *call = static_cast<SettleCall *>(arg);
    Datum values[2] = {call->job_ids, BoolGetDatum(call->repair)};
    Execute(&settle_jobs, call->schema, values, nullptr);
    bool is_null = false;
    call->settled += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
}

}  // namespace

bool workflow_deps_prepared = false;

namespace {

// --- releasing in the ack ------------------------------------------------------------------------
//
// The statement that completes the last deps of a job (at most kAckReleaseDeps of them were left)
// releases the job itself: it becomes available when the ack commits, without waiting for a flush.
// Exactly once: of two acks that complete a job's last two deps at the same moment, neither sees the
// other's completion before it commits (both leave the job to the flush), and at most one can see
// the other's. The job's wait (if it has one), every edge and the job row are locked, skipping any row
// another transaction holds or changed since the snapshot, and the job is released only when all of them
// were: the flush (which consumes an edge and counts down the wait, in that order) either waits for
// this release, then finds the job's edges gone, or holds a row and leaves this release nothing to
// do. An ack therefore never waits here, and never deadlocks with a flush; whatever it skips, the
// flush releases from the ack's journal rows.
//
// Index lookups, tuple locks and the deletes of the locked waits and edges done directly, not in SQL
// statements: most acks of small workflows release a dependent, and the executor's start and
// teardown for the statement this was cost more than its lookups (bench/RESULTS.md, sessions 9 and
// 19). The release itself (release_jobs) changes jobs, whose triggers and indexes want the
// executor.

// Of each (workflow id, name) in $1/$2, in order: whether its jobs are all completed (and one is).
Statement deps_completed{R"sql(
    SELECT coalesce((SELECT bool_and(dep.state = 'completed') FROM @extschema@.oban_workflow_steps AS s
                     JOIN @extschema@.oban_jobs AS dep ON dep.id = s.job_id
                     WHERE s.workflow_id = d.workflow_id AND s.name = d.name), false)
    FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS d(workflow_id, name, position)
    ORDER BY d.position)sql",
                         2,
                         {TEXTARRAYOID, TEXTARRAYOID},
                         true};

// A step the ack completed: its workflow id and name (text).
struct CompletedStep {
    Datum workflow_id, name;
};

struct AckReleaseCall {
    Oid schema;
    CompletedStep *steps;  // sorted (CompareSteps), for CompletedByAck's binary search
    int count;
    const int64 *dependents;  // DependentsNearRelease's
    int dependent_count;
    int64 *released;  // out: those released (a subset of `dependents`, ascending)
    int released_count;
};

// A dep of a dependent whose edge the release locked; done if the ack completed it, or its jobs are
// all completed.
struct LockedDep {
    Datum workflow_id, name;  // text
    bool done;
};

struct Dependent {
    int64 job_id;
    LockedDep deps[kAckReleaseDeps];
    int dep_count;
    ItemPointerData wait_tid, edge_tids[kAckReleaseDeps];  // locked (wait_tid invalid: no wait)
};

int CompareSteps(const void *a, const void *b) {
    auto *x = static_cast<const CompletedStep *>(a), *y = static_cast<const CompletedStep *>(b);
    int order = CompareTexts(x->name, y->name);
    return order != 0 ? order : CompareTexts(x->workflow_id, y->workflow_id);
}

// Whether the ack completed the step (workflow_id, name): a bulk ack may have completed thousands.
bool CompletedByAck(const AckReleaseCall *call, Datum workflow_id, Datum name) {
    CompletedStep step{workflow_id, name};
    return bsearch(&step, call->steps, call->count, sizeof(CompletedStep), CompareSteps) != nullptr;
}

// Locks the row version at `tid` as FOR UPDATE SKIP LOCKED would, but never follows an update made
// since `snapshot`: whether it was locked.
bool LockSkipping(Relation relation, TupleTableSlot *slot, ItemPointer tid, Snapshot snapshot,
                  LockTupleMode mode) {
    TM_FailureData failure;
    return table_tuple_lock(relation, tid, snapshot, slot, GetCurrentCommandId(true), mode, LockWaitSkip, 0,
                            &failure) == TM_Ok;
}

// The tables the release reads and locks, with the columns it uses, and a scan of each by the index
// it looks rows up by, begun once and restarted per key: a scan begun and ended per row (its B-tree
// state is 27 kB to allocate) cost more than the look-up (bench/RESULTS.md, session 23).
struct ReleaseTables {
    Relation edges, waits, jobs;
    AttrNumber edge_workflow, edge_name, edge_job, wait_job, wait_remaining, job_id, job_state, job_meta;
    Relation edges_by_job, waits_key, jobs_key;  // indexes
    IndexScanDesc edge_scan, wait_scan, job_scan;
    TupleTableSlot *edge_slot, *wait_slot, *job_slot;
};

// Opens the tables and begins their scans under `snapshot`: whether the indexes are there, with the
// keys the extension gives them (otherwise nothing is left open, and the flush releases).
bool OpenReleaseTables(ReleaseTables *t, Oid schema, Snapshot snapshot) {
    // UPDATE: what SELECT ... FOR UPDATE asks of the caller; DELETE, what the release does to the
    // waits and edges.
    t->edges = OpenExtensionTable(schema, "oban_workflow_edges", RowExclusiveLock, ACL_UPDATE | ACL_DELETE);
    t->waits = OpenExtensionTable(schema, "oban_workflow_waits", RowExclusiveLock, ACL_UPDATE | ACL_DELETE);
    t->jobs = OpenExtensionTable(schema, "oban_jobs", RowShareLock, ACL_UPDATE);
    Oid edges = RelationGetRelid(t->edges), waits = RelationGetRelid(t->waits),
        jobs = RelationGetRelid(t->jobs);
    t->edge_workflow = ExtensionTableColumn(edges, "dep_workflow_id");
    t->edge_name = ExtensionTableColumn(edges, "dep_name");
    t->edge_job = ExtensionTableColumn(edges, "job_id");
    t->wait_job = ExtensionTableColumn(waits, "job_id");
    t->wait_remaining = ExtensionTableColumn(waits, "remaining");
    t->job_id = ExtensionTableColumn(jobs, "id");
    t->job_state = ExtensionTableColumn(jobs, "state");
    t->job_meta = ExtensionTableColumn(jobs, "meta");
    t->edges_by_job = OpenIndexOn(get_relname_relid("oban_workflow_edges_job_index", schema), {t->edge_job});
    t->waits_key = OpenIndexOn(RelationGetPrimaryKeyIndex(t->waits), {t->wait_job});
    t->jobs_key = OpenIndexOn(RelationGetPrimaryKeyIndex(t->jobs), {t->job_id});
    if (t->edges_by_job == nullptr || t->waits_key == nullptr || t->jobs_key == nullptr) {
        for (Relation index : {t->edges_by_job, t->waits_key, t->jobs_key})
            if (index != nullptr) index_close(index, AccessShareLock);
        table_close(t->jobs, NoLock);
        table_close(t->waits, NoLock);
        table_close(t->edges, NoLock);
        return false;
    }
    t->edge_scan = index_beginscan(t->edges, t->edges_by_job, snapshot, 1, 0);
    t->wait_scan = index_beginscan(t->waits, t->waits_key, snapshot, 1, 0);
    t->job_scan = index_beginscan(t->jobs, t->jobs_key, snapshot, 1, 0);
    t->edge_slot = table_slot_create(t->edges, nullptr);
    t->wait_slot = table_slot_create(t->waits, nullptr);
    t->job_slot = table_slot_create(t->jobs, nullptr);
    return true;
}

void CloseReleaseTables(ReleaseTables *t) {
    ExecDropSingleTupleTableSlot(t->edge_slot);
    ExecDropSingleTupleTableSlot(t->wait_slot);
    ExecDropSingleTupleTableSlot(t->job_slot);
    index_endscan(t->job_scan);
    index_endscan(t->wait_scan);
    index_endscan(t->edge_scan);
    index_close(t->jobs_key, AccessShareLock);
    index_close(t->waits_key, AccessShareLock);
    index_close(t->edges_by_job, AccessShareLock);
    table_close(t->jobs, NoLock);  // the locks are held to the end of the transaction
    table_close(t->waits, NoLock);
    table_close(t->edges, NoLock);
}

// Restarts `scan` (of `index`, keyed first by an int8) at `key`.
void RescanInt8(IndexScanDesc scan, Relation index, int64 key) {
    ScanKeyData scan_key;
    IndexEqualityKey(&scan_key, index, 1, F_INT8EQ, Int64GetDatum(key));
    index_rescan(scan, &scan_key, 1, nullptr, 0);
}

// Finds `job_id`'s wait and edges, and locks them if it waits on at most kAckReleaseDeps deps:
// whether all were locked (`dependent` then has its deps). A job waiting on one dep has no wait,
// only its edge (WriteWait): then that edge alone is locked.
bool LockWaitAndEdges(ReleaseTables *t, Snapshot snapshot, int64 job_id, Dependent *dependent) {
    RescanInt8(t->wait_scan, t->waits_key, job_id);
    bool near = true;
    ItemPointerSetInvalid(&dependent->wait_tid);
    if (index_getnext_slot(t->wait_scan, ForwardScanDirection, t->wait_slot)) {
        bool is_null = false;
        Datum remaining = slot_getattr(t->wait_slot, t->wait_remaining, &is_null);
        near = !is_null && DatumGetInt32(remaining) <= kAckReleaseDeps;
        dependent->wait_tid = t->wait_slot->tts_tid;
    }
    ExecClearTuple(t->wait_slot);
    if (!near) return false;

    dependent->job_id = job_id;
    dependent->dep_count = 0;
    RescanInt8(t->edge_scan, t->edges_by_job, job_id);
    while (index_getnext_slot(t->edge_scan, ForwardScanDirection, t->edge_slot)) {
        if (dependent->dep_count == kAckReleaseDeps) {  // more deps left than an ack releases
            near = false;
            break;
        }
        bool workflow_null = false, name_null = false;
        Datum workflow = slot_getattr(t->edge_slot, t->edge_workflow, &workflow_null);
        Datum name = slot_getattr(t->edge_slot, t->edge_name, &name_null);
        if (workflow_null || name_null) {
            near = false;
            break;
        }
        LockedDep &dep = dependent->deps[dependent->dep_count];
        dep.workflow_id = datumCopy(workflow, false, -1);
        dep.name = datumCopy(name, false, -1);
        dep.done = false;
        dependent->edge_tids[dependent->dep_count++] = t->edge_slot->tts_tid;
    }
    ExecClearTuple(t->edge_slot);
    bool has_wait = ItemPointerIsValid(&dependent->wait_tid);
    if (!near || dependent->dep_count == 0 || (!has_wait && dependent->dep_count != 1)) return false;

    if (has_wait && !LockSkipping(t->waits, t->wait_slot, &dependent->wait_tid, snapshot, LockTupleExclusive))
        return false;
    for (int i = 0; i < dependent->dep_count; i++)
        if (!LockSkipping(t->edges, t->edge_slot, &dependent->edge_tids[i], snapshot, LockTupleExclusive))
            return false;
    return true;
}

// Locks the job if it is still suspended waiting on deps (not parked awaiting a signal): whether it
// did (`*tid`: the version locked).
bool LockSuspendedJob(ReleaseTables *t, Snapshot snapshot, int64 job_id, ItemPointer tid) {
    RescanInt8(t->job_scan, t->jobs_key, job_id);
    bool waiting = false;
    if (index_getnext_slot(t->job_scan, ForwardScanDirection, t->job_slot)) {
        bool state_null = false, meta_null = false;
        Datum state = slot_getattr(t->job_slot, t->job_state, &state_null);
        Datum meta = slot_getattr(t->job_slot, t->job_meta, &meta_null);
        waiting = !state_null && StateOf(state) == kSuspended &&
                  (meta_null || !MetaHas(DatumGetJsonbP(meta), "wait_until"));
        *tid = t->job_slot->tts_tid;
    }
    ExecClearTuple(t->job_slot);
    return waiting && LockSkipping(t->jobs, t->job_slot, tid, snapshot, LockTupleNoKeyExclusive);
}

// Whether LookUpOtherDeps asks about `dep`: one the ack did not complete, on a named step (a dep on
// a whole workflow, "*", is left to the flush).
bool AskedOfOthers(const LockedDep &dep) {
    if (dep.done) return false;
    text *name = DatumGetTextPP(dep.name);
    return !(VARSIZE_ANY_EXHDR(name) == 1 && *VARDATA_ANY(name) == '*');
}

// Marks the deps AskedOfOthers picks whose jobs are all completed (and one is), as deps_completed
// would, read by step (StepReader) under `snapshot` without a statement: whether it could (the
// caller may read the jobs and the steps and no row security applies); if not, nothing is marked.
bool LookUpOtherDepsDirectly(ReleaseTables *t, Snapshot snapshot, Dependent *dependents, int count) {
    bool asked = false;
    for (int d = 0; d < count && !asked; d++)
        for (int i = 0; i < dependents[d].dep_count && !asked; i++)
            asked = AskedOfOthers(dependents[d].deps[i]);
    if (!asked) return true;
    Oid jobs = RelationGetRelid(t->jobs);
    if (pg_class_aclcheck(jobs, GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
        check_enable_rls(jobs, InvalidOid, true) == RLS_ENABLED)
        return false;
    StepReader steps;
    if (!OpenStepReader(&steps, RelationGetNamespace(t->jobs), t->jobs, snapshot)) return false;
    for (int d = 0; d < count; d++)
        for (int i = 0; i < dependents[d].dep_count; i++) {
            LockedDep &dep = dependents[d].deps[i];
            if (!AskedOfOthers(dep)) continue;
            SeekStep(&steps, dep.workflow_id, dep.name);
            bool any = false, all_completed = true;
            while (all_completed && NextJobOfStep(&steps, t->job_slot)) {
                bool is_null = false;
                Datum state = slot_getattr(t->job_slot, t->job_state, &is_null);
                any = true;
                all_completed = !is_null && StateOf(state) == kCompleted;
            }
            ExecClearTuple(t->job_slot);
            dep.done = any && all_completed;
        }
    CloseStepReader(&steps);
    return true;
}

// Looks up, in one statement, the deps AskedOfOthers picks, and marks those whose jobs are all
// completed.
void LookUpOtherDeps(Oid schema, Dependent *dependents, int count) {
    ArrayBuildState *workflow_ids = initArrayResult(TEXTOID, CurrentMemoryContext, false);
    ArrayBuildState *names = initArrayResult(TEXTOID, CurrentMemoryContext, false);
    int asked = 0;
    for (int d = 0; d < count; d++)
        for (int i = 0; i < dependents[d].dep_count; i++) {
            LockedDep &dep = dependents[d].deps[i];
            if (!AskedOfOthers(dep)) continue;
            accumArrayResult(workflow_ids, dep.workflow_id, false, TEXTOID, CurrentMemoryContext);
            accumArrayResult(names, dep.name, false, TEXTOID, CurrentMemoryContext);
            asked++;
        }
    if (asked == 0) return;
    Datum values[2] = {makeArrayResult(workflow_ids, CurrentMemoryContext),
                       makeArrayResult(names, CurrentMemoryContext)};
    BeginSql(schema);
    Execute(&deps_completed, schema, values, nullptr);
    uint64 row = 0;
    for (int d = 0; d < count; d++)
        for (int i = 0; i < dependents[d].dep_count; i++) {
            LockedDep &dep = dependents[d].deps[i];
            if (!AskedOfOthers(dep)) continue;
            bool is_null = false;
            Datum completed = SPI_getbinval(SPI_tuptable->vals[row++], SPI_tuptable->tupdesc, 1, &is_null);
            dep.done = !is_null && DatumGetBool(completed);
        }
    EndSql();
}

void ReleaseInAckBody(void *arg) {
    auto *call = static_cast<AckReleaseCall *>(arg);
    CommandCounterIncrement();  // as SPI does before a statement: this statement's changes are seen
    Snapshot snapshot = RegisterSnapshot(GetTransactionSnapshot());
    ReleaseTables t;
    if (!OpenReleaseTables(&t, call->schema, snapshot)) {
        UnregisterSnapshot(snapshot);
        return;
    }

    // The dependents with few deps left (the probe found them; their wait is read again here, under
    // the locks): their wait and edges locked, their deps the ack completed marked.
    auto *dependents = static_cast<Dependent *>(palloc(sizeof(Dependent) * Max(call->dependent_count, 1)));
    int locked = 0;
    for (int j = 0; j < call->dependent_count; j++) {
        Dependent *dependent = &dependents[locked];
        if (!LockWaitAndEdges(&t, snapshot, call->dependents[j], dependent)) continue;
        for (int i = 0; i < dependent->dep_count; i++) {
            LockedDep &dep = dependent->deps[i];
            dep.done = CompletedByAck(call, dep.workflow_id, dep.name);
        }
        locked++;
    }
    if (!LookUpOtherDepsDirectly(&t, snapshot, dependents, locked))
        LookUpOtherDeps(call->schema, dependents, locked);

    // Those whose deps are all done: the job row locked, its wait and edges deleted (this
    // subtransaction holds their locks), then the job released.
    int64 *ready = static_cast<int64 *>(palloc(sizeof(int64) * Max(locked, 1)));
    auto *ready_tids = static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * Max(locked, 1)));
    int ready_count = 0;
    for (int d = 0; d < locked; d++) {
        Dependent &dependent = dependents[d];
        bool all_done = true;
        for (int i = 0; i < dependent.dep_count && all_done; i++) all_done = dependent.deps[i].done;
        if (!all_done || !LockSuspendedJob(&t, snapshot, dependent.job_id, &ready_tids[ready_count]))
            continue;
        if (ItemPointerIsValid(&dependent.wait_tid)) DeleteFound(t.waits, &dependent.wait_tid, snapshot);
        for (int i = 0; i < dependent.dep_count; i++) DeleteFound(t.edges, &dependent.edge_tids[i], snapshot);
        ready[ready_count++] = dependent.job_id;
    }
    bool released = ready_count == 0 || ReleaseLockedJobs(t.jobs, ready_tids, ready_count, snapshot);
    CloseReleaseTables(&t);
    UnregisterSnapshot(snapshot);
    if (!released) {
        Datum values[1] = {Int8Array(ready, ready_count)};
        BeginSql(call->schema);
        Execute(&release_jobs, call->schema, values, nullptr);  // every one: locked and suspended
        EndSql();
    }
    call->released = ready;
    call->released_count = ready_count;
}

}  // namespace

// Each step's edges are read from the edges' primary key (dep_workflow_id, dep_name, job_id) alone,
// an index-only read that never visits the heap, and each dependent's wait by its primary key: one
// index scan of each, restarted per key, rather than an SPI statement (whose executor start and
// teardown cost more than the lookups: bench/RESULTS.md, session 8) or a scan begun and ended per
// key (a btree scan's state is 27 kB to allocate). Reading the entries alone, an entry of an edge
// that is dead, or not yet committed, names its job too: only a hint, which costs at most a
// needless look at that job's wait, a prompt flush, or a release attempt that ReleaseInAck, reading
// and locking under its snapshot, finds nothing to do for. No live edge is missed: every live row
// has its entry. (Tables whose primary keys are gone or changed, which the extension never does,
// are answered "waited on, none near": the flush then releases their dependents.)
int64 *DependentsNearRelease(Oid schema, const Datum *workflow_ids, const Datum *names, int count, int limit,
                             int *found, bool *waited_on, bool *leads_far, NearEdge **near_edges,
                             int *near_edge_count) {
    for (int i = 0; i < count; i++) leads_far[i] = false;
    *near_edge_count = 0;
    Relation edges = OpenExtensionTable(schema, "oban_workflow_edges", AccessShareLock, ACL_SELECT);
    Relation waits = OpenExtensionTable(schema, "oban_workflow_waits", AccessShareLock, ACL_SELECT);
    AttrNumber edge_workflow = ExtensionTableColumn(RelationGetRelid(edges), "dep_workflow_id"),
               edge_name = ExtensionTableColumn(RelationGetRelid(edges), "dep_name"),
               edge_job = ExtensionTableColumn(RelationGetRelid(edges), "job_id");
    AttrNumber wait_job = ExtensionTableColumn(RelationGetRelid(waits), "job_id"),
               wait_remaining = ExtensionTableColumn(RelationGetRelid(waits), "remaining");
    Relation edges_key = OpenIndexOn(RelationGetPrimaryKeyIndex(edges), {edge_workflow, edge_name, edge_job});
    Relation waits_key = OpenIndexOn(RelationGetPrimaryKeyIndex(waits), {wait_job});
    int capacity = 16;
    int64 *near = static_cast<int64 *>(palloc(sizeof(int64) * capacity));
    *near_edges = static_cast<NearEdge *>(palloc(sizeof(NearEdge) * capacity));
    *found = 0;
    *waited_on = false;
    if (edges_key == nullptr || waits_key == nullptr || !index_can_return(edges_key, 3)) {
        *waited_on = true;
        for (int i = 0; i < count; i++) leads_far[i] = true;
        if (edges_key != nullptr) index_close(edges_key, AccessShareLock);
        if (waits_key != nullptr) index_close(waits_key, AccessShareLock);
        table_close(waits, AccessShareLock);
        table_close(edges, AccessShareLock);
        return near;
    }
    CommandCounterIncrement();  // as SPI does before a statement: this statement's changes are seen
    Snapshot snapshot = RegisterSnapshot(GetTransactionSnapshot());
    IndexScanDesc edge_scan = index_beginscan(edges, edges_key, snapshot, 2, 0);
    edge_scan->xs_want_itup = true;  // set before the first index_rescan, which allocates for it
    IndexScanDesc wait_scan = index_beginscan(waits, waits_key, snapshot, 1, 0);
    TupleTableSlot *wait_slot = table_slot_create(waits, nullptr);
    // The dependents whose wait was read and found far from release: the steps of a fan-in all
    // lead to one join, whose wait is read once. A few are enough (and keep each look-up short).
    constexpr int kFarRemembered = 16;
    int64 far[kFarRemembered];
    int far_count = 0;
    for (int i = 0; i < count; i++) {
        ScanKeyData step[2];
        IndexEqualityKey(&step[0], edges_key, 1, F_TEXTEQ, workflow_ids[i]);
        IndexEqualityKey(&step[1], edges_key, 2, F_TEXTEQ, names[i]);
        index_rescan(edge_scan, step, 2, nullptr, 0);
        while (index_getnext_tid(edge_scan, ForwardScanDirection) != nullptr) {
            bool is_null = false;
            Datum job = index_getattr(edge_scan->xs_itup, 3, edge_scan->xs_itupdesc, &is_null);
            if (is_null) continue;
            *waited_on = true;
            bool known_far = false;
            for (int f = 0; f < far_count && !known_far; f++) known_far = far[f] == DatumGetInt64(job);
            if (known_far) {
                leads_far[i] = true;
                continue;
            }
            ScanKeyData waiting;
            IndexEqualityKey(&waiting, waits_key, 1, F_INT8EQ, job);
            index_rescan(wait_scan, &waiting, 1, nullptr, 0);
            // No wait: the job waits on this one dep (its edge is all there is), or its wait and
            // edges are gone and ReleaseInAck finds nothing to do.
            bool is_near = true;
            if (index_getnext_slot(wait_scan, ForwardScanDirection, wait_slot)) {
                Datum remaining = slot_getattr(wait_slot, wait_remaining, &is_null);
                is_near = !is_null && DatumGetInt32(remaining) <= limit;
            }
            ExecClearTuple(wait_slot);
            if (!is_near) {
                if (far_count < kFarRemembered) far[far_count++] = DatumGetInt64(job);
                leads_far[i] = true;
                continue;
            }
            if (*found == capacity) {
                capacity *= 2;
                near = static_cast<int64 *>(repalloc(near, sizeof(int64) * capacity));
                *near_edges = static_cast<NearEdge *>(repalloc(*near_edges, sizeof(NearEdge) * capacity));
            }
            (*near_edges)[*found] = NearEdge{i, DatumGetInt64(job)};
            near[(*found)++] = DatumGetInt64(job);
        }
    }
    ExecDropSingleTupleTableSlot(wait_slot);
    index_endscan(wait_scan);
    index_endscan(edge_scan);
    UnregisterSnapshot(snapshot);
    index_close(waits_key, AccessShareLock);
    index_close(edges_key, AccessShareLock);
    table_close(waits, AccessShareLock);
    table_close(edges, AccessShareLock);
    // A job waiting on several of the steps is found once per step (and an edge's dead and live
    // entries once each): sorted, each is kept once.
    *near_edge_count = *found;
    qsort(near, *found, sizeof(int64), CompareInt64s);
    int distinct = 0;
    for (int j = 0; j < *found; j++)
        if (distinct == 0 || near[distinct - 1] != near[j]) near[distinct++] = near[j];
    *found = distinct;
    return near;
}

// Edge look-ups by primary key, as DependentsNearRelease's, under the statement's snapshot, and
// the rows of grandparents and further ancestors (rare: a parent's comes with the workflow). Only a
// hint for when the worker flushes (WakeFlusher): a job whose edge is not seen (its insert committed
// after the statement began) is released by a flush at most oban_pro.fold_delay later. A role that
// may not read the edges or the rows (only a statement that completes named steps needs to:
// DependentsNearRelease) is answered yes, so its commit asks for a prompt flush as every commit did
// before this look: it needs no privilege the statement did not.
bool AnyJobWaitsOnWhole(Oid schema, List *workflows, bool latest, List **waited) {
    Relation edges =
        OpenExtensionTableIfPermitted(schema, "oban_workflow_edges", AccessShareLock, ACL_SELECT);
    Relation rows = edges == nullptr ? nullptr
                                     : OpenExtensionTableIfPermitted(schema, "oban_workflow_rows",
                                                                     AccessShareLock, ACL_SELECT);
    if (rows == nullptr) {
        if (edges != nullptr) table_close(edges, AccessShareLock);
        ListCell *cell;
        foreach (cell, workflows)
            if (waited != nullptr)
                *waited = lappend(
                    *waited, DatumGetPointer(static_cast<FinishedWorkflow *>(lfirst(cell))->workflow_id));
        return true;
    }
    AttrNumber edge_workflow = ExtensionTableColumn(RelationGetRelid(edges), "dep_workflow_id"),
               edge_name = ExtensionTableColumn(RelationGetRelid(edges), "dep_name");
    AttrNumber row_id = ExtensionTableColumn(RelationGetRelid(rows), "id"),
               row_parent = ExtensionTableColumn(RelationGetRelid(rows), "parent_id");
    Oid edges_key = RelationGetPrimaryKeyIndex(edges), rows_key = RelationGetPrimaryKeyIndex(rows);
    Snapshot snapshot =
        RegisterSnapshot(ActiveSnapshotSet() && !latest ? GetActiveSnapshot() : GetLatestSnapshot());
    // The edges through a dirty snapshot: an edge whose insert is still running counts too (its
    // job's step goes back into the journal: ConsumeEdges).
    SnapshotData dirty;
    InitDirtySnapshot(dirty);
    Datum whole = CStringGetTextDatum("*");
    auto waited_on_whole = [&](Datum workflow_id) {
        ScanKeyData key[2];
        EqualityKey(&key[0], edges, edge_workflow, F_TEXTEQ, workflow_id);
        EqualityKey(&key[1], edges, edge_name, F_TEXTEQ, whole);
        SysScanDesc scan = systable_beginscan(edges, edges_key, OidIsValid(edges_key), &dirty, 2, key);
        bool found = HeapTupleIsValid(systable_getnext(scan));
        systable_endscan(scan);
        return found;
    };
    // The workflow's parent (text), or 0 for none.
    auto parent_of = [&](Datum workflow_id) {
        ScanKeyData key;
        EqualityKey(&key, rows, row_id, F_TEXTEQ, workflow_id);
        SysScanDesc scan = systable_beginscan(rows, rows_key, OidIsValid(rows_key), snapshot, 1, &key);
        HeapTuple row = systable_getnext(scan);
        bool is_null = true;
        Datum parent = 0;
        if (HeapTupleIsValid(row)) parent = heap_getattr(row, row_parent, RelationGetDescr(rows), &is_null);
        parent = is_null ? (Datum)0 : datumCopy(parent, false, -1);
        systable_endscan(scan);
        return parent;
    };
    bool waited_on = false;
    ListCell *cell;
    foreach (cell, workflows) {
        auto *finished = static_cast<FinishedWorkflow *>(lfirst(cell));
        // The workflow, then its ancestors. Sub-workflows nest at most kMaxNesting deep
        // (src/core/workflow_spec.hpp); the bound only guards against a cycle of parent ids
        // written by hand.
        Datum workflow = finished->workflow_id;
        for (int depth = 0; depth < 64 && workflow != (Datum)0; depth++) {
            if (waited_on_whole(workflow)) {
                waited_on = true;
                if (waited == nullptr) break;
                bool listed = false;
                ListCell *other;
                foreach (other, *waited)
                    listed = listed || CompareTexts(PointerGetDatum(lfirst(other)), workflow) == 0;
                if (!listed) *waited = lappend(*waited, DatumGetPointer(workflow));
            }
            workflow = depth == 0 ? finished->parent : parent_of(workflow);
        }
        if (waited_on && waited == nullptr) break;
    }
    UnregisterSnapshot(snapshot);
    table_close(rows, AccessShareLock);
    table_close(edges, AccessShareLock);
    return waited_on;
}

int ReleaseInAck(Oid schema, const Datum *workflow_ids, const Datum *names, int count,
                 const int64 *dependents, int dependent_count, int64 **released) {
    auto *steps = static_cast<CompletedStep *>(palloc(sizeof(CompletedStep) * Max(count, 1)));
    for (int i = 0; i < count; i++) steps[i] = CompletedStep{workflow_ids[i], names[i]};
    qsort(steps, count, sizeof(CompletedStep), CompareSteps);
    AckReleaseCall call{schema, steps, count, dependents, dependent_count, nullptr, 0};
    // In a subtransaction, so nothing that goes wrong here can undo the ack: the edges are then
    // still there, and the flush releases (or reports) those dependents from the journal.
    ErrorData *failure = InSubtransaction(ReleaseInAckBody, &call);
    if (failure != nullptr) {
        FreeErrorData(failure);
        call.released_count = 0;
    }
    *released = call.released;
    return call.released_count;
}

int64 SettleJobs(Oid schema, int64 *job_ids, int count, bool repair) {
    if (count == 0) return 0;
    SettleCall call{schema, Int8Array(job_ids, count), repair, 0};
    ErrorData *failure = InSubtransaction(SettleBody, &call);
    if (failure == nullptr) return call.settled;

    // Something refused a release (say, a user trigger): settle the jobs one by one, so only the
    // failing ones are left, each reported with its workflow for oban_repair_workflows to mend.
    call.settled = 0;
    for (int i = 0; i < count; i++) {
        SettleCall one{schema, Int8Array(&job_ids[i], 1), repair, 0};
        ErrorData *error = InSubtransaction(SettleBody, &one);
        if (error == nullptr) {
            call.settled += one.settled;
            continue;
        }
        Datum values[1] = {Int64GetDatum(job_ids[i])};
        const char *workflow = "(unknown)";
        if (Execute(&workflow_of_job, schema, values, nullptr) > 0) {
            char *id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
            if (id != nullptr) workflow = id;
        }
        ereport(WARNING, (errcode(error->sqlerrcode),
                          errmsg("workflow \"%s\" left for repair: settling job %lld failed: %s", workflow,
                                 (long long)job_ids[i], error->message),
                          errhint("oban_repair_workflows() releases or cancels it once the cause is gone.")));
    }
    return call.settled;
}

void LockOutFlushes(Oid schema) {
    Execute(&lock_jobs, schema, nullptr, nullptr);
    Execute(&flush_lock, schema, nullptr, nullptr);
}

namespace {

StepOutcome *NewStepOutcome(Datum workflow_id, Datum name, Datum state) {
    auto *outcome = static_cast<StepOutcome *>(palloc(sizeof(StepOutcome)));
    *outcome = StepOutcome{workflow_id, name, state};
    return outcome;
}

// Whether a whole workflow's derived state (TreeState) says its tree has finished.
bool IsFinishedState(const char *state) {
    return state != nullptr && (strcmp(state, "completed") == 0 || strcmp(state, "cancelled") == 0 ||
                                strcmp(state, "discarded") == 0);
}

// A finished step of a flush's batch: its workflow id and name (texts), and whether it ended other
// than completed (then its dependents get the precise check).
struct FinishedStep {
    Datum workflow_id, name, state;
    bool failed;
};

int CompareFinishedSteps(const void *a, const void *b) {
    auto *x = static_cast<const FinishedStep *>(a), *y = static_cast<const FinishedStep *>(b);
    int order = CompareTexts(x->workflow_id, y->workflow_id);
    return order != 0 ? order : CompareTexts(x->name, y->name);
}

// A consumed edge: the job it led to, and whether its dep failed.
struct ConsumedEdge {
    int64 job_id;
    bool failed;
};

int CompareConsumedEdges(const void *a, const void *b) {
    int64 x = static_cast<const ConsumedEdge *>(a)->job_id, y = static_cast<const ConsumedEdge *>(b)->job_id;
    return x < y ? -1 : x > y ? 1 : 0;
}

// The dependents whose edges were consumed (ascending), and count_down's other arguments: per
// dependent, how many of its edges were consumed, and whether a dep that failed was among them.
struct ConsumedByJob {
    int64 *ids;
    Datum finished, failed;  // int[], bool[]
    int count;
};

// Deletes the edges from the finished steps (`count` of them: workflow ids, names and final
// states, texts) to the jobs waiting on them, each edge once (a step listed twice counts once), as
// `DELETE ... RETURNING` would under the statement's snapshot: an edge another transaction deleted
// meanwhile (its job released or cancelled) is passed over once that transaction commits (with a
// transaction snapshot, one whose delete is still running when the flush reaches it is a
// serialization failure). An edge the snapshot does not show, whose insert is still running or
// committed after it, puts its step back into the journal for a later flush (PutBackFinishedSteps),
// which sees it committed. Done directly, a primary-key probe per step
// and a delete per edge found, rather than by a statement: the statement's per-step subquery cost
// a fan-in's flush 7 µs per dep (bench/RESULTS.md, session 17). The table is the extension's own:
// no triggers, rules or policies. Asks the caller for what the DELETE would: SELECT and DELETE.
ConsumedByJob ConsumeEdges(Oid schema, const Datum *workflow_ids, const Datum *names, const Datum *states,
                           int count) {
    auto *steps = static_cast<FinishedStep *>(palloc(sizeof(FinishedStep) * Max(count, 1)));
    for (int i = 0; i < count; i++) {
        text *state = DatumGetTextPP(states[i]);
        bool completed = VARSIZE_ANY_EXHDR(state) == strlen("completed") &&
                         memcmp(VARDATA_ANY(state), "completed", strlen("completed")) == 0;
        steps[i] = FinishedStep{workflow_ids[i], names[i], states[i], !completed};
    }
    qsort(steps, count, sizeof(FinishedStep), CompareFinishedSteps);
    int distinct = 0;
    for (int i = 0; i < count; i++) {
        if (distinct == 0 || CompareFinishedSteps(&steps[distinct - 1], &steps[i]) != 0)
            steps[distinct++] = steps[i];
        else if (steps[i].failed)
            steps[distinct - 1] = steps[i];
    }

    Relation edges =
        OpenExtensionTable(schema, "oban_workflow_edges", RowExclusiveLock, ACL_SELECT | ACL_DELETE);
    AttrNumber edge_workflow = ExtensionTableColumn(RelationGetRelid(edges), "dep_workflow_id"),
               edge_name = ExtensionTableColumn(RelationGetRelid(edges), "dep_name"),
               edge_job = ExtensionTableColumn(RelationGetRelid(edges), "job_id");
    Relation key = OpenPrimaryKeyOn(edges, {edge_workflow, edge_name});
    CommandCounterIncrement();  // as a statement would: what this transaction did so far is seen
    Snapshot snapshot = RegisterSnapshot(GetTransactionSnapshot());
    // Read through a dirty snapshot, to see the edges this flush cannot consume yet: one whose insert
    // is still running, or committed after the snapshot (see RecheckConcurrentDeps). Such a step
    // goes back into the journal for a later flush; the others are consumed as seen by the snapshot.
    SnapshotData dirty;
    InitDirtySnapshot(dirty);
    IndexScanDesc scan = index_beginscan(edges, key, &dirty, 2, 0);
    TupleTableSlot *slot = table_slot_create(edges, nullptr);
    int capacity = 16, consumed = 0;
    auto *edges_consumed = static_cast<ConsumedEdge *>(palloc(sizeof(ConsumedEdge) * capacity));
    List *put_back = NIL;  // StepOutcome *
    for (int i = 0; i < distinct; i++) {
        ScanKeyData step[2];
        IndexEqualityKey(&step[0], key, 1, F_TEXTEQ, steps[i].workflow_id);
        IndexEqualityKey(&step[1], key, 2, F_TEXTEQ, steps[i].name);
        index_rescan(scan, step, 2, nullptr, 0);
        bool later = false;  // an edge to leave to a later flush
        while (index_getnext_slot(scan, ForwardScanDirection, slot)) {
            bool should_free = false;
            HeapTuple edge = ExecFetchSlotHeapTuple(slot, false, &should_free);
            TransactionId inserter = HeapTupleHeaderGetXmin(edge->t_data);
            if (should_free) heap_freetuple(edge);
            if (TransactionIdIsValid(dirty.xmin) ||
                (!TransactionIdIsCurrentTransactionId(inserter) && XidInMVCCSnapshot(inserter, snapshot))) {
                later = true;
                continue;
            }
            bool is_null = false;
            Datum job = slot_getattr(slot, edge_job, &is_null);
            if (is_null) continue;
            ItemPointerData tid = slot->tts_tid;
            if (!DeleteFound(edges, &tid, snapshot)) continue;  // its job released or cancelled meanwhile
            if (consumed == capacity) {
                capacity *= 2;
                edges_consumed =
                    static_cast<ConsumedEdge *>(repalloc(edges_consumed, sizeof(ConsumedEdge) * capacity));
            }
            edges_consumed[consumed++] = ConsumedEdge{DatumGetInt64(job), steps[i].failed};
        }
        if (later)
            put_back = lappend(put_back, NewStepOutcome(steps[i].workflow_id, steps[i].name, steps[i].state));
    }
    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    UnregisterSnapshot(snapshot);
    index_close(key, AccessShareLock);
    table_close(edges, NoLock);  // the lock is held to the end of the transaction
    if (put_back != NIL) PutBackFinishedSteps(schema, put_back);

    qsort(edges_consumed, consumed, sizeof(ConsumedEdge), CompareConsumedEdges);
    ArrayBuildState *finished = initArrayResult(INT4OID, CurrentMemoryContext, false);
    ArrayBuildState *failed = initArrayResult(BOOLOID, CurrentMemoryContext, false);
    ConsumedByJob result{static_cast<int64 *>(palloc(sizeof(int64) * Max(consumed, 1))), 0, 0, 0};
    for (int e = 0; e < consumed;) {
        int end = e;
        bool any_failed = false;
        for (; end < consumed && edges_consumed[end].job_id == edges_consumed[e].job_id; end++)
            any_failed = any_failed || edges_consumed[end].failed;
        accumArrayResult(finished, Int32GetDatum(end - e), false, INT4OID, CurrentMemoryContext);
        accumArrayResult(failed, BoolGetDatum(any_failed), false, BOOLOID, CurrentMemoryContext);
        result.ids[result.count++] = edges_consumed[e].job_id;
        e = end;
    }
    result.finished = makeArrayResult(finished, CurrentMemoryContext);
    result.failed = makeArrayResult(failed, CurrentMemoryContext);
    return result;
}

}  // namespace

int64 FlushWorkflows(Oid schema, int limit) {
    // The flush reads a few rows of tables that only grow (a row per workflow, an edge per dep) or
    // churn (the journal, whose dead rows autovacuum clears only every minute or so): planned for
    // index lookups, a flush costs what it touches. Undone when this returns (or by an abort).
    int guc_level = PlanForIndexLookups();
    // One flush at a time per database (the lock is held to the end of the transaction): two
    // flushes can then never deadlock on the rows they fold, and a flush returns only once every
    // journal row committed before it began has been folded, by it or by the one it waited for.
    LockOutFlushes(schema);
    int64 folded = 0;
    // Go on while batches come full, or while releases cascade (their journal rows are this
    // transaction's own), but commit after kMaxRounds: under a steady stream of acks the journal
    // never empties, and nothing released becomes visible before the flush commits.
    constexpr int kMaxRounds = 16;
    for (int round = 0; round < kMaxRounds; round++) {
        ArrayBuildState *step_workflows = initArrayResult(TEXTOID, CurrentMemoryContext, false);
        ArrayBuildState *step_names = initArrayResult(TEXTOID, CurrentMemoryContext, false);
        ArrayBuildState *step_states = initArrayResult(TEXTOID, CurrentMemoryContext, false);
        int steps = 0;
        List *finished = NIL;  // FinishedWorkflow *
        JournalBatch batch = TakeJournalRows(schema, limit, step_workflows, step_names, step_states, &steps);
        if (batch.taken == 0) break;
        bool full = batch.taken >= limit;
        folded += batch.taken;
        FoldBatch(schema, batch, &finished);

        // Of the finished workflows and their ancestors, those a job waits on as a whole (looked up
        // by key first: most finished workflows have none) whose whole tree has finished: a
        // finished step "*" each, in the derived state, the tree read by key (TreeState).
        List *waited = NIL;
        if (finished != NIL && AnyJobWaitsOnWhole(schema, finished, true, &waited)) {
            CommandCounterIncrement();  // this flush's folds are seen
            Snapshot snapshot = RegisterSnapshot(GetTransactionSnapshot());
            ListCell *cell;
            foreach (cell, waited) {
                Datum workflow = PointerGetDatum(lfirst(cell));
                const char *state = TreeState(schema, workflow, snapshot);
                if (!IsFinishedState(state)) continue;
                accumArrayResult(step_workflows, workflow, false, TEXTOID, CurrentMemoryContext);
                accumArrayResult(step_names, CStringGetTextDatum("*"), false, TEXTOID, CurrentMemoryContext);
                accumArrayResult(step_states, CStringGetTextDatum(state), false, TEXTOID,
                                 CurrentMemoryContext);
                steps++;
            }
            UnregisterSnapshot(snapshot);
        }
        if (steps == 0) {
            if (full) continue;
            break;
        }

        ConsumedByJob hits =
            ConsumeEdges(schema, step_workflows->dvalues, step_names->dvalues, step_states->dvalues, steps);
        Datum count_args[3] = {Int8Array(hits.ids, hits.count), hits.finished, hits.failed};
        uint64 counted = hits.count > 0 ? Execute(&count_down, schema, count_args, nullptr) : 0;
        int64 *ready = static_cast<int64 *>(palloc(sizeof(int64) * Max(counted, 1)));
        int64 *to_check = static_cast<int64 *>(palloc(sizeof(int64) * Max(hits.count, 1)));
        int64 *with_wait = static_cast<int64 *>(palloc(sizeof(int64) * Max(counted, 1)));
        int ready_count = 0, check_count = 0;
        for (uint64 r = 0; r < counted; r++) {
            bool is_null = false;
            HeapTuple row = SPI_tuptable->vals[r];
            int64 job_id = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &is_null));
            with_wait[r] = job_id;
            if (DatumGetBool(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &is_null)))
                ready[ready_count++] = job_id;
            else if (DatumGetBool(SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &is_null)))
                to_check[check_count++] = job_id;
        }
        // A dependent whose edge was consumed and that has no wait waited on that one dep
        // (WriteWait), or lost its wait meanwhile: the precise check decides it.
        qsort(with_wait, counted, sizeof(int64), CompareInt64s);
        for (int h = 0; h < hits.count; h++)
            if (bsearch(&hits.ids[h], with_wait, counted, sizeof(int64), CompareInt64s) == nullptr)
                to_check[check_count++] = hits.ids[h];
        if (ready_count > 0) {
            ReleaseCall release{schema, Int8Array(ready, ready_count)};
            // If the release is refused (say, by a user trigger), each job gets the precise check
            // on its own, and the failing ones are reported and left for repair.
            if (InSubtransaction(ReleaseBody, &release) != nullptr)
                SettleJobs(schema, ready, ready_count, false);
        }
        int64 settled = SettleJobs(schema, to_check, check_count, false);
        if (!full && ready_count == 0 && settled == 0) break;  // caught up, nothing cascades
    }
    AtEOXact_GUC(true, guc_level);
    return folded;
}

namespace {

// A job's errors with `failure` (a jsonb array of one error object) appended, for either layout of
// the errors column: oban-py's jsonb array, or Elixir Oban's jsonb[] on an adopted table (README
// "Adopting existing Oban tables"), as oban_errors_append does in SQL.
Datum AppendError(Datum errors, bool errors_null, Oid errors_type, Datum failure) {
    if (errors_type != JSONBARRAYOID)
        return errors_null ? failure : DirectFunctionCall2(jsonb_concat, errors, failure);
    Datum error = DirectFunctionCall2(jsonb_array_element, failure, Int32GetDatum(0));
    ArrayBuildState *built = initArrayResult(JSONBOID, CurrentMemoryContext, false);
    if (!errors_null) {
        Datum *items = nullptr;
        bool *nulls = nullptr;
        int count = 0;
        deconstruct_array(DatumGetArrayTypeP(errors), JSONBOID, -1, false, TYPALIGN_INT, &items, &nulls,
                          &count);
        for (int i = 0; i < count; i++)
            accumArrayResult(built, items[i], nulls[i], JSONBOID, CurrentMemoryContext);
    }
    accumArrayResult(built, error, false, JSONBOID, CurrentMemoryContext);
    return makeArrayResult(built, CurrentMemoryContext);
}

// --- deciding at insert, directly -------------------------------------------------------------------
//
// The common case of prepare_job without its three nested statements (prepare_job, and the
// oban_dep_verdicts and oban_dep_outcomes it runs), which a plain INSERT of a workflow's jobs runs
// for every job with deps: each dep names a step, by a bare name in the job's own workflow or as
// [workflow_id, name], that is either a job (found through oban_workflow_steps and read by its id,
// as dep_outcomes reads it) or missing (pending, as prepare_job has it at insert). The reads are
// index look-ups under the snapshot a statement would take, and the job's wait and edges are
// written straight into the tables, as oban_insert_workflow writes a spec's (WriteWaitsAndEdges):
// a statement per job, its executor's start and end, cost more than its few look-ups. Everything
// else is left to prepare_job: a dep on a whole workflow ("*"), a bare name that no job has and a
// sub-workflow may ("*" of that sub-workflow), a dep that failed (cancelled or discarded, not
// ignored: prepare_job's error names it), a job that has a wait or edges already (prepare_job
// merges), row security, and a caller without the privileges prepare_job's statements ask for, whose error
// prepare_job raises.

// A dep of the job being inserted: the step it names and whether it was a bare name.
struct NamedDep {
    Datum workflow_id, name;  // text
    bool bare;
    bool found;  // PrepareDirectly: a job of that name was there (unfinished, if it is still pending)
};

bool IsText(const JsonbValue &value) {
    return value.type == jbvString;
}

Datum TextOf(const JsonbValue &value) {
    return PointerGetDatum(cstring_to_text_with_len(value.val.string.val, value.val.string.len));
}

// The deps in `meta` (its "deps" array) that prepare_job reads, `*count` of them: bare names and
// [workflow_id, name] pairs; other elements are ignored, as there. nullptr when one names a whole
// workflow ("*"), which only prepare_job decides.
NamedDep *NamedDeps(Jsonb *meta, Datum workflow_id, int *count) {
    *count = 0;
    JsonbValue deps;
    if (!JB_ROOT_IS_OBJECT(meta) || getKeyJsonValueFromContainer(&meta->root, "deps", 4, &deps) == nullptr ||
        deps.type != jbvBinary || !JsonContainerIsArray(deps.val.binary.data))
        return static_cast<NamedDep *>(palloc(sizeof(NamedDep)));
    JsonbContainer *array = deps.val.binary.data;
    auto *named = static_cast<NamedDep *>(palloc(sizeof(NamedDep) * Max(JsonContainerSize(array), 1)));
    for (uint32 i = 0; i < JsonContainerSize(array); i++) {
        JsonbValue *dep = getIthJsonbValueFromContainer(array, i);
        JsonbValue *dep_workflow = nullptr, *dep_name = dep;
        if (dep->type == jbvBinary && JsonContainerIsArray(dep->val.binary.data)) {
            dep_workflow = getIthJsonbValueFromContainer(dep->val.binary.data, 0);
            dep_name = getIthJsonbValueFromContainer(dep->val.binary.data, 1);
            if (dep_workflow == nullptr || dep_name == nullptr || !IsText(*dep_workflow)) continue;
        }
        if (!IsText(*dep_name)) continue;
        if (dep_name->val.string.len == 1 && *dep_name->val.string.val == '*') return nullptr;
        named[(*count)++] = NamedDep{dep_workflow == nullptr ? workflow_id : TextOf(*dep_workflow),
                                     TextOf(*dep_name), dep_workflow == nullptr, false};
    }
    return named;
}

int CompareNamedDeps(const void *a, const void *b) {
    auto *x = static_cast<const NamedDep *>(a), *y = static_cast<const NamedDep *>(b);
    int order = CompareTexts(x->workflow_id, y->workflow_id);
    return order != 0 ? order : CompareTexts(x->name, y->name);
}

// Whether the current user may execute the extension's function `name`(`argtypes`).
bool MayExecute(Oid schema, const char *name, int nargs, const Oid *argtypes) {
    List *qualified = list_make2(makeString(get_namespace_name(schema)), makeString(pstrdup(name)));
    Oid function = LookupFuncName(qualified, nargs, argtypes, true);
    return OidIsValid(function) && pg_proc_aclcheck(function, GetUserId(), ACL_EXECUTE) == ACLCHECK_OK;
}

// What PrepareDirectly reads: the jobs by step (StepReader), a workflow's sub-workflows by parent,
// and a job's wait and edges by job id, all under `snapshot`.
struct DepReader {
    Relation jobs, rows, rows_by_parent, waits, waits_key, edges, edges_by_job;
    AttrNumber job_id, job_state, row_sub_name;
    TupleTableSlot *job_slot, *row_slot;
    StepReader steps;
    Snapshot snapshot;
};

// The extension's table `name`, opened for reading if the current user holds `required` on it
// (what prepare_job's statements ask) and no row security applies to it (the direct reads and
// writes would not apply it); nullptr otherwise.
Relation OpenIfDirectlyUsable(Oid schema, const char *name, AclMode required) {
    Relation table = OpenExtensionTableIfPermitted(schema, name, AccessShareLock, required);
    if (table != nullptr && check_enable_rls(RelationGetRelid(table), InvalidOid, true) == RLS_ENABLED) {
        table_close(table, AccessShareLock);
        return nullptr;
    }
    return table;
}

// Opens what `reader` reads: whether the caller may use every table directly and every index is
// there (otherwise nothing is left open).
bool OpenDepReader(DepReader *reader, Oid schema) {
    Relation *tables[4] = {&reader->jobs, &reader->rows, &reader->waits, &reader->edges};
    reader->jobs = OpenIfDirectlyUsable(schema, "oban_jobs", ACL_SELECT);
    reader->rows = OpenIfDirectlyUsable(schema, "oban_workflow_rows", ACL_SELECT);
    reader->waits = OpenIfDirectlyUsable(schema, "oban_workflow_waits", ACL_SELECT | ACL_INSERT | ACL_UPDATE);
    reader->edges = OpenIfDirectlyUsable(schema, "oban_workflow_edges", ACL_SELECT | ACL_INSERT);
    Oid rows_by_parent = get_relname_relid("oban_workflow_rows_parent_index", schema);
    Oid edges_by_job = get_relname_relid("oban_workflow_edges_job_index", schema);
    bool usable = reader->jobs != nullptr && reader->rows != nullptr && reader->waits != nullptr &&
                  reader->edges != nullptr && OidIsValid(rows_by_parent) && OidIsValid(edges_by_job);
    // As SPI does before a statement: this statement's rows so far are seen. (Not its own jobs'
    // steps, written at its end: a dep inserted by the same statement is missing, so pending, here;
    // one inserted finished is a finished step of the statement's journal, which settles the job.)
    CommandCounterIncrement();
    reader->snapshot = RegisterSnapshot(GetTransactionSnapshot());
    usable = usable && OpenStepReader(&reader->steps, schema, reader->jobs, reader->snapshot);
    if (!usable) {
        UnregisterSnapshot(reader->snapshot);
        for (Relation *table : tables)
            if (*table != nullptr) table_close(*table, AccessShareLock);
        return false;
    }
    reader->job_id = ExtensionTableColumn(RelationGetRelid(reader->jobs), "id");
    reader->job_state = ExtensionTableColumn(RelationGetRelid(reader->jobs), "state");
    reader->row_sub_name = ExtensionTableColumn(RelationGetRelid(reader->rows), "sub_name");
    reader->rows_by_parent = index_open(rows_by_parent, AccessShareLock);
    reader->waits_key =
        OpenPrimaryKeyOn(reader->waits, {ExtensionTableColumn(RelationGetRelid(reader->waits), "job_id")});
    reader->edges_by_job = index_open(edges_by_job, AccessShareLock);
    reader->job_slot = table_slot_create(reader->jobs, nullptr);
    reader->row_slot = table_slot_create(reader->rows, nullptr);
    return true;
}

void CloseDepReader(DepReader *reader) {
    CloseStepReader(&reader->steps);
    ExecDropSingleTupleTableSlot(reader->row_slot);
    ExecDropSingleTupleTableSlot(reader->job_slot);
    UnregisterSnapshot(reader->snapshot);
    index_close(reader->edges_by_job, AccessShareLock);
    table_close(reader->edges, AccessShareLock);
    index_close(reader->waits_key, AccessShareLock);
    table_close(reader->waits, AccessShareLock);
    index_close(reader->rows_by_parent, AccessShareLock);
    table_close(reader->rows, AccessShareLock);
    table_close(reader->jobs, AccessShareLock);
}

// The state of the first job by id of step `name` of workflow `workflow_id` (texts) that `steps`
// finds, as dep_outcomes picks it: whether there is one.
bool FirstStateAt(StepReader *steps, Datum workflow_id, Datum name, AttrNumber id_column,
                  AttrNumber state_column, TupleTableSlot *slot, JobState *state) {
    SeekStep(steps, workflow_id, name);
    bool found = false;
    int64 first = 0;
    while (NextJobOfStep(steps, slot)) {
        bool id_null = false, state_null = false;
        int64 id = DatumGetInt64(slot_getattr(slot, id_column, &id_null));
        Datum value = slot_getattr(slot, state_column, &state_null);
        if (id_null || state_null || (found && id >= first)) continue;
        found = true;
        first = id;
        *state = StateOf(value);
    }
    ExecClearTuple(slot);
    return found;
}

// The state of the first job by id named `dep`: whether there is one.
bool FirstJobState(DepReader *reader, const NamedDep &dep, JobState *state) {
    return FirstStateAt(&reader->steps, dep.workflow_id, dep.name, reader->job_id, reader->job_state,
                        reader->job_slot, state);
}

// Whether the job's workflow has a sub-workflow named `dep`'s name (a bare name no job has).
bool NamesSubWorkflow(DepReader *reader, const NamedDep &dep) {
    ScanKeyData key;
    IndexEqualityKey(&key, reader->rows_by_parent, 1, F_TEXTEQ, dep.workflow_id);
    IndexScanDesc scan = index_beginscan(reader->rows, reader->rows_by_parent, reader->snapshot, 1, 0);
    index_rescan(scan, &key, 1, nullptr, 0);
    bool named = false;
    while (!named && index_getnext_slot(scan, ForwardScanDirection, reader->row_slot)) {
        bool is_null = false;
        Datum sub_name = slot_getattr(reader->row_slot, reader->row_sub_name, &is_null);
        named = !is_null && CompareTexts(sub_name, dep.name) == 0;
    }
    index_endscan(scan);
    ExecClearTuple(reader->row_slot);
    return named;
}

// Whether `index` of `table` has an entry for `job_id` in its first column, of any row version,
// live or not: a job with one goes to prepare_job, which merges (a job id is new to these tables
// unless it was used before).
bool HasKey(Relation table, Relation index, Datum job_id) {
    ScanKeyData key;
    IndexEqualityKey(&key, index, 1, F_INT8EQ, job_id);
    IndexScanDesc scan = index_beginscan(table, index, SnapshotAny, 1, 0);
    index_rescan(scan, &key, 1, nullptr, 0);
    bool any = index_getnext_tid(scan, ForwardScanDirection) != nullptr;
    index_endscan(scan);
    return any;
}

// --- deps finishing while their dependent is inserted ----------------------------------------------
//
// An insert decides a job's deps under its statement's snapshot: a dep that another transaction is
// finishing at that moment is seen unfinished, and the job gets an edge from it. The statement that
// finishes the dep may have looked for its dependents (DependentsNearRelease) before that edge was
// written, and the flush may consume the dep's edges before the insert commits: then nothing would
// ever count the edge down, and the job would wait for oban_repair_workflows. So each dep the insert
// found there and unfinished is looked at again at the end of the statement, once its edges are
// written (RecheckConcurrentDeps): a transaction still changing the dep is waited for, and a dep
// then finished is journalled as a finished step, whose edges (the new one among them) the flush
// consumes once the insert commits. The flush, for its part, puts back a finished step one of whose
// edges is not committed yet (ConsumeEdges). Whichever way the two interleave, the dependent is
// settled.

// A dep of a job the current statement inserted waiting, found there and unfinished; or, with no
// workflow id, every dep of job `job_id` on a whole workflow (its edges named "*").
struct DepToRecheck {
    SubTransactionId subid;
    Oid schema;
    Datum workflow_id, name;  // text, in TopTransactionContext; 0 for the job's whole-workflow deps
    int64 job_id;
};

List *deps_to_recheck = NIL;  // DepToRecheck *, in TopTransactionContext

void RememberDepToRecheck(Oid schema, const NamedDep &dep) {
    MemoryContext caller = MemoryContextSwitchTo(TopTransactionContext);
    auto *entry = static_cast<DepToRecheck *>(palloc(sizeof(DepToRecheck)));
    *entry = DepToRecheck{GetCurrentSubTransactionId(), schema, datumCopy(dep.workflow_id, false, -1),
                          datumCopy(dep.name, false, -1), 0};
    deps_to_recheck = lappend(deps_to_recheck, entry);
    MemoryContextSwitchTo(caller);
}

void RememberWholeDepsToRecheck(Oid schema, int64 job_id) {
    MemoryContext caller = MemoryContextSwitchTo(TopTransactionContext);
    auto *entry = static_cast<DepToRecheck *>(palloc(sizeof(DepToRecheck)));
    *entry = DepToRecheck{GetCurrentSubTransactionId(), schema, (Datum)0, (Datum)0, job_id};
    deps_to_recheck = lappend(deps_to_recheck, entry);
    MemoryContextSwitchTo(caller);
}

// Decides job `job_id` of workflow `workflow_id`, whose meta is `meta`, as prepare_job would: the
// number of its deps still pending in `*pending`, its wait and edges written when there are some.
// Whether it did; when not, nothing was written and prepare_job decides.
bool PrepareDirectly(Oid schema, Datum job_id, Datum workflow_id, Jsonb *meta, int32 *pending) {
    int count = 0;
    NamedDep *deps = NamedDeps(meta, workflow_id, &count);
    if (deps == nullptr) return false;
    *pending = 0;
    if (count == 0) return true;
    // The functions prepare_job's statements would call (the tables: OpenDepReader).
    const Oid verdicts_args[3] = {TEXTOID, JSONBOID, BOOLOID}, outcomes_args[2] = {TEXTOID, JSONBOID};
    if (!MayExecute(schema, "oban_dep_verdicts", 3, verdicts_args) ||
        !MayExecute(schema, "oban_dep_outcomes", 2, outcomes_args))
        return false;

    DepReader reader;
    if (!OpenDepReader(&reader, schema)) return false;
    bool ignore_cancelled = MetaTrue(meta, "ignore_cancelled"),
         ignore_discarded = MetaTrue(meta, "ignore_discarded");
    bool decided =
        !HasKey(reader.waits, reader.waits_key, job_id) && !HasKey(reader.edges, reader.edges_by_job, job_id);
    int waiting = 0;  // the deps still pending, first in `deps`
    for (int i = 0; i < count && decided; i++) {
        JobState outcome = kUnknownState;
        bool found = FirstJobState(&reader, deps[i], &outcome);
        bool satisfied = found && (outcome == kCompleted || (outcome == kCancelled && ignore_cancelled) ||
                                   (outcome == kDiscarded && ignore_discarded));
        bool failed = found && !satisfied && (outcome == kCancelled || outcome == kDiscarded);
        bool sub_workflow = !found && deps[i].bare && NamesSubWorkflow(&reader, deps[i]);
        decided = !sub_workflow && !failed;
        deps[i].found = found;
        if (!satisfied) deps[waiting++] = deps[i];
    }
    CloseDepReader(&reader);
    if (!decided) return false;

    // A step named twice (bare, and as [its workflow_id, name]) is one dep, as in prepare_job.
    qsort(deps, waiting, sizeof(NamedDep), CompareNamedDeps);
    int distinct = 0;
    for (int i = 0; i < waiting; i++)
        if (distinct == 0 || CompareNamedDeps(&deps[distinct - 1], &deps[i]) != 0) deps[distinct++] = deps[i];
    *pending = distinct;
    if (distinct == 0) return true;

    WaitWriter writer;
    OpenWaitWriter(&writer, schema);
    for (int i = 0; i < distinct; i++) {
        WriteEdge(&writer, job_id, deps[i].workflow_id, deps[i].name);
        if (deps[i].found) RememberDepToRecheck(schema, deps[i]);
    }
    WriteWait(&writer, job_id, workflow_id, distinct);
    CloseWaitWriter(&writer);
    return true;
}

}  // namespace

}  // namespace oban::pg

using namespace oban::pg;

namespace oban::pg {

void OpenWaitWriter(WaitWriter *writer, Oid schema) {
    OpenDirectInsert(&writer->edges, schema, "oban_workflow_edges");
    OpenDirectInsert(&writer->waits, schema, "oban_workflow_waits");
    Oid edges = RelationGetRelid(writer->edges.relation), waits = RelationGetRelid(writer->waits.relation);
    writer->edge_workflow = ExtensionTableColumn(edges, "dep_workflow_id");
    writer->edge_name = ExtensionTableColumn(edges, "dep_name");
    writer->edge_job = ExtensionTableColumn(edges, "job_id");
    writer->wait_job = ExtensionTableColumn(waits, "job_id");
    writer->wait_workflow = ExtensionTableColumn(waits, "workflow_id");
    writer->wait_remaining = ExtensionTableColumn(waits, "remaining");
}

void WriteEdge(WaitWriter *writer, Datum job_id, Datum dep_workflow_id, Datum dep_name) {
    TupleTableSlot *row = NewRow(&writer->edges);
    SetColumn(row, writer->edge_workflow, dep_workflow_id);
    SetColumn(row, writer->edge_name, dep_name);
    SetColumn(row, writer->edge_job, job_id);
    InsertRow(&writer->edges);
}

void WriteWait(WaitWriter *writer, Datum job_id, Datum workflow_id, int32 remaining) {
    if (remaining == 1) return;  // its one edge is all it waits on
    TupleTableSlot *row = NewRow(&writer->waits);
    SetColumn(row, writer->wait_job, job_id);
    SetColumn(row, writer->wait_workflow, workflow_id);
    SetColumn(row, writer->wait_remaining, Int32GetDatum(remaining));
    InsertRow(&writer->waits);
}

void CloseWaitWriter(WaitWriter *writer) {
    CloseDirectInsert(&writer->waits);
    CloseDirectInsert(&writer->edges);
}

HeapTuple PrepareWorkflowJob(TriggerData *trigger, HeapTuple row) {
    Relation relation = trigger->tg_relation;
    TupleDesc descriptor = RelationGetDescr(relation);
    if (workflow_deps_prepared) return row;   // oban_insert_workflow did it in bulk
    if (RestoringDump(relation)) return row;  // waits and edges come with the dump
    int state_column = SPI_fnumber(descriptor, "state");
    int meta_column = SPI_fnumber(descriptor, "meta");
    int id_column = SPI_fnumber(descriptor, "id");
    bool is_null = false;

    char *state = SPI_getvalue(row, descriptor, state_column);
    if (state == nullptr || (strcmp(state, "available") != 0 && strcmp(state, "scheduled") != 0 &&
                             strcmp(state, "suspended") != 0))
        return row;  // inserted finished or executing: nothing to wait for

    Datum meta = heap_getattr(row, meta_column, descriptor, &is_null);
    if (is_null) return row;
    char *workflow_text = MetaText(DatumGetJsonbP(meta), "workflow_id", CurrentMemoryContext);
    if (workflow_text == nullptr) return row;
    Datum workflow_id = CStringGetTextDatum(workflow_text);
    Datum job_id = heap_getattr(row, id_column, descriptor, &is_null);
    if (is_null) return row;

    Oid schema = RelationGetNamespace(relation);
    int32 pending = 0;
    bool failed = false;
    Datum failure = (Datum)0;
    if (!PrepareDirectly(schema, job_id, workflow_id, DatumGetJsonbP(meta), &pending)) {
        Datum values[3] = {job_id, workflow_id, meta};
        MemoryContext caller = CurrentMemoryContext;
        BeginSql(schema);
        Execute(&prepare_job, schema, values, nullptr);
        HeapTuple verdict = SPI_tuptable->vals[0];
        TupleDesc verdict_descriptor = SPI_tuptable->tupdesc;
        pending = DatumGetInt32(SPI_getbinval(verdict, verdict_descriptor, 1, &is_null));
        failure = SPI_getbinval(verdict, verdict_descriptor, 2, &is_null);
        if (!is_null) {
            failed = true;
            MemoryContext spi_context = MemoryContextSwitchTo(caller);  // outlive SPI_finish
            failure = datumCopy(failure, false, -1);
            MemoryContextSwitchTo(spi_context);
        }
        EndSql();
        // The deps prepare_job left pending may be finishing (see RecheckConcurrentDeps): each named
        // step is looked at again (one that is not there is passed over then), and so is each
        // whole workflow the job waits on (its edges named "*").
        if (pending > 0 && !failed) {
            int named = 0;
            NamedDep *deps = NamedDeps(DatumGetJsonbP(meta), workflow_id, &named);
            for (int i = 0; deps != nullptr && i < named; i++) RememberDepToRecheck(schema, deps[i]);
            RememberWholeDepsToRecheck(schema, DatumGetInt64(job_id));
        }
    }

    const char *new_state = failed                            ? "cancelled"
                            : pending > 0                     ? "suspended"
                            : strcmp(state, "suspended") == 0 ? "available"
                                                              : nullptr;
    if (new_state == nullptr) return row;

    Oid state_type = TupleDescAttr(descriptor, state_column - 1)->atttypid;
    int columns[3];
    Datum replacements[3];
    bool nulls[3] = {false, false, false};
    int changes = 0;
    columns[changes] = state_column;
    replacements[changes++] =
        DirectFunctionCall2(enum_in, CStringGetDatum(new_state), ObjectIdGetDatum(state_type));
    if (failed) {
        int errors_column = SPI_fnumber(descriptor, "errors");
        columns[changes] = SPI_fnumber(descriptor, "cancelled_at");
        replacements[changes++] = TimestampGetDatum(GetCurrentTransactionStartTimestamp());
        Datum errors = heap_getattr(row, errors_column, descriptor, &is_null);
        columns[changes] = errors_column;
        replacements[changes++] =
            AppendError(errors, is_null, TupleDescAttr(descriptor, errors_column - 1)->atttypid, failure);
    }
    return heap_modify_tuple_by_cols(row, descriptor, changes, columns, replacements, nulls);
}

namespace {

// Waits until no other transaction is changing a job of step `name` of workflow `workflow_id`: a
// version inserted or deleted (updated) by a transaction still running, as `dirty` (a dirty
// snapshot, which `steps` is left reading under) shows it.
void WaitForChangers(StepReader *steps, SnapshotData *dirty, Datum workflow_id, Datum name,
                     TupleTableSlot *slot) {
    for (;;) {
        InitDirtySnapshot(*dirty);
        SetStepSnapshot(steps, dirty);
        SeekStep(steps, workflow_id, name);
        TransactionId changer = InvalidTransactionId;
        ItemPointerData tid;
        while (!TransactionIdIsValid(changer) && NextJobOfStep(steps, slot)) {
            changer = TransactionIdIsValid(dirty->xmin) ? dirty->xmin : dirty->xmax;
            tid = slot->tts_tid;
        }
        ExecClearTuple(slot);
        if (!TransactionIdIsValid(changer)) return;
        XactLockTableWait(changer, steps->jobs, &tid, XLTW_None);
    }
}

// The state of the first job by id of step `name` of workflow `workflow_id` under `snapshot`, or
// kUnknownState.
JobState FirstStateUnder(StepReader *steps, Datum workflow_id, Datum name, Snapshot snapshot,
                         AttrNumber id_column, AttrNumber state_column, TupleTableSlot *slot) {
    JobState state = kUnknownState;  // left so when there is none
    SetStepSnapshot(steps, snapshot);
    FirstStateAt(steps, workflow_id, name, id_column, state_column, slot, &state);
    return state;
}

// The whole workflows the jobs of `jobs` (DepToRecheck *) wait on (their edges named "*", read
// under the latest snapshot: the statement's own are seen) that have finished by now, appended to
// `finished` as finished steps ("*" and the derived state). A transaction that journals a
// workflow's finish is not waited for: the flush that then looks for jobs waiting on the workflow as
// a whole sees these edges, committed or not (AnyJobWaitsOnWhole, ConsumeEdges). One that finishes
// it in place (MayFinishInPlace) is: its fold holds the workflow's row, which is locked first.
List *RecheckWholeDeps(Oid schema, List *jobs, List *finished) {
    Relation edges =
        OpenExtensionTableIfPermitted(schema, "oban_workflow_edges", AccessShareLock, ACL_SELECT);
    if (edges == nullptr) return finished;
    Oid edges_by_job = get_relname_relid("oban_workflow_edges_job_index", schema);
    AttrNumber edge_workflow = ExtensionTableColumn(RelationGetRelid(edges), "dep_workflow_id"),
               edge_name = ExtensionTableColumn(RelationGetRelid(edges), "dep_name"),
               edge_job = ExtensionTableColumn(RelationGetRelid(edges), "job_id");
    CommandCounterIncrement();  // the statement's own edges are seen
    Snapshot latest = RegisterSnapshot(GetLatestSnapshot());
    Datum whole = CStringGetTextDatum("*");
    ListCell *cell;
    foreach (cell, jobs) {
        auto *job = static_cast<DepToRecheck *>(lfirst(cell));
        ScanKeyData key;
        EqualityKey(&key, edges, edge_job, F_INT8EQ, Int64GetDatum(job->job_id));
        SysScanDesc scan = systable_beginscan(edges, edges_by_job, OidIsValid(edges_by_job), latest, 1, &key);
        HeapTuple edge;
        List *waited = NIL;
        while (HeapTupleIsValid(edge = systable_getnext(scan))) {
            bool is_null = false;
            Datum name = heap_getattr(edge, edge_name, RelationGetDescr(edges), &is_null);
            if (is_null || CompareTexts(name, whole) != 0) continue;
            waited = lappend(waited, DatumGetPointer(datumCopy(
                                         heap_getattr(edge, edge_workflow, RelationGetDescr(edges), &is_null),
                                         false, -1)));
        }
        systable_endscan(scan);
        ListCell *waited_cell;
        foreach (waited_cell, waited) {
            Datum workflow = PointerGetDatum(lfirst(waited_cell));
            // An ack may be finishing the workflow in place, having seen no waiter before this
            // edge: its fold is waited for, and the tree read under a snapshot taken after.
            LockWorkflowRowShared(schema, workflow);
            Snapshot after_lock = RegisterSnapshot(GetLatestSnapshot());
            const char *state = TreeState(schema, workflow, after_lock);
            UnregisterSnapshot(after_lock);
            if (IsFinishedState(state))
                finished = lappend(finished, NewStepOutcome(workflow, whole, CStringGetTextDatum(state)));
        }
    }
    UnregisterSnapshot(latest);
    table_close(edges, AccessShareLock);
    return finished;
}

}  // namespace

List *RecheckConcurrentDeps(Oid schema) {
    SubTransactionId subid = GetCurrentSubTransactionId();
    List *mine = NIL;
    ListCell *cell;
    foreach (cell, deps_to_recheck) {
        auto *dep = static_cast<DepToRecheck *>(lfirst(cell));
        if (dep->subid != subid || dep->schema != schema) continue;
        mine = lappend(mine, dep);
        deps_to_recheck = foreach_delete_current(deps_to_recheck, cell);
    }
    if (mine == NIL) return NIL;
    // Read directly, never through row security (what is read only decides whether to journal).
    // Without the privilege to read the jobs or the steps, such a dep's edge is left to repair.
    Relation jobs = OpenExtensionTableIfPermitted(schema, "oban_jobs", AccessShareLock, ACL_SELECT);
    if (jobs == nullptr) return NIL;
    AttrNumber id_column = ExtensionTableColumn(RelationGetRelid(jobs), "id"),
               state_column = ExtensionTableColumn(RelationGetRelid(jobs), "state");
    TupleTableSlot *slot = table_slot_create(jobs, nullptr);
    Snapshot seen = RegisterSnapshot(GetActiveSnapshot());  // what the statement decided under
    StepReader steps;
    bool readable = OpenStepReader(&steps, schema, jobs, seen);
    SnapshotData dirty;
    List *finished = NIL;  // StepOutcome *
    List *whole = NIL;     // DepToRecheck * of jobs with whole-workflow deps
    foreach (cell, mine) {
        auto *dep = static_cast<DepToRecheck *>(lfirst(cell));
        if (dep->workflow_id == (Datum)0) {
            whole = lappend(whole, dep);
            continue;
        }
        if (!readable) continue;
        WaitForChangers(&steps, &dirty, dep->workflow_id, dep->name, slot);
        Snapshot latest = RegisterSnapshot(GetLatestSnapshot());
        JobState now =
            FirstStateUnder(&steps, dep->workflow_id, dep->name, latest, id_column, state_column, slot);
        UnregisterSnapshot(latest);
        if (!IsFinished(now) || IsFinished(FirstStateUnder(&steps, dep->workflow_id, dep->name, seen,
                                                           id_column, state_column, slot)))
            continue;
        finished = lappend(
            finished, NewStepOutcome(dep->workflow_id, dep->name, CStringGetTextDatum(kStateNames[now])));
    }
    if (readable) CloseStepReader(&steps);
    UnregisterSnapshot(seen);
    ExecDropSingleTupleTableSlot(slot);
    table_close(jobs, AccessShareLock);
    if (whole != NIL) finished = RecheckWholeDeps(schema, whole, finished);
    return finished;
}

void AtSubtransactionEndDeps(bool committed, SubTransactionId subid, SubTransactionId parent) {
    ListCell *cell;
    foreach (cell, deps_to_recheck) {
        auto *dep = static_cast<DepToRecheck *>(lfirst(cell));
        if (dep->subid < subid) continue;
        if (committed)
            dep->subid = parent;
        else
            deps_to_recheck = foreach_delete_current(deps_to_recheck, cell);
    }
}

void AtTransactionEndDeps() {
    deps_to_recheck = NIL;  // its memory goes with TopTransactionContext
}

}  // namespace oban::pg

// The trigger function of 0.6.0 schemas (0.6.1 calls PrepareWorkflowJob from oban_jobs_before_insert).
OBAN_FUNCTION(oban_jobs_workflow_prepare) {
    TriggerData *trigger = RequireBeforeInsertRowTrigger(fcinfo, "oban_jobs_workflow_prepare");
    return PointerGetDatum(PrepareWorkflowJob(trigger, trigger->tg_trigtuple));
}

namespace {

// Suspended jobs of workflows that have not moved for max_age that may be stuck: each examined
// workflow is marked as seen now, so a workflow waiting on something still running is looked at
// again only later. A job whose every remaining dep (edge) is a job still unfinished is waiting,
// not stuck, and is passed over at the cost of an index lookup per dep; the others (a dep
// finished, deleted or never inserted, a whole-sub-workflow dep, or no dep left) get the precise
// check of settle_jobs. The rows and jobs are reached by key from the stuck workflows, never joined
// to them: a plan made while a table looked empty would walk all of it once per stuck workflow.
Statement stuck_jobs{R"sql(
    WITH stuck AS (
        SELECT id FROM @extschema@.oban_workflow_rows
        WHERE suspended > 0 AND updated_at <= timezone('UTC', now()) - least($1, interval '5000 years')
        ORDER BY updated_at
        LIMIT $2
        FOR NO KEY UPDATE SKIP LOCKED  -- not held back by inserts' FOR KEY SHARE
    ), seen AS (
        UPDATE @extschema@.oban_workflow_rows AS w SET updated_at = timezone('UTC', now())
        WHERE w.id = ANY (ARRAY(SELECT id FROM stuck))
    )
    SELECT j.id FROM stuck
    CROSS JOIN LATERAL (  -- OFFSET 0: each workflow's jobs by index, never a join of whole tables
        SELECT j.id FROM @extschema@.oban_workflow_steps AS s
        JOIN @extschema@.oban_jobs AS j ON j.id = s.job_id
        WHERE s.workflow_id = stuck.id AND j.state = 'suspended' AND NOT j.meta ? 'wait_until'
        OFFSET 0) AS j
    CROSS JOIN LATERAL (  -- LIMIT 1: one index lookup per dep, never a hash of every job
        SELECT count(*) AS deps,
               count(*) FILTER (WHERE e.dep_name <> '*' AND (
                   SELECT true FROM @extschema@.oban_workflow_steps AS s
                   JOIN @extschema@.oban_jobs AS dep ON dep.id = s.job_id
                   WHERE s.workflow_id = e.dep_workflow_id AND s.name = e.dep_name
                     AND dep.state IN ('suspended', 'available', 'scheduled', 'executing', 'retryable')
                   LIMIT 1)) AS unfinished
        FROM @extschema@.oban_workflow_edges AS e WHERE e.job_id = j.id
    ) AS deps
    WHERE deps.deps = 0 OR deps.unfinished < deps.deps)sql",
                     2,
                     {INTERVALOID, INT4OID}};

}  // namespace

// The SQL helpers over dep_outcomes and dep_verdicts; NULL arguments are passed on (no rows).
OBAN_FUNCTION(oban_dep_outcomes) {
    ReturnRowsOf(fcinfo, &dep_outcomes);
    return (Datum)0;
}

OBAN_FUNCTION(oban_dep_verdicts) {
    ReturnRowsOf(fcinfo, &dep_verdicts);
    return (Datum)0;
}

OBAN_FUNCTION(oban_flush_workflows) {
    RequireArgument(fcinfo, 0, "limit");
    int32 limit = PG_GETARG_INT32(0);
    if (limit < 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("limit must be at least 1")));
    Oid schema = FunctionSchema(fcinfo);
    BeginSql(schema);
    int64 folded = FlushWorkflows(schema, limit);
    EndSql();
    PG_RETURN_INT64(folded);
}

OBAN_FUNCTION(oban_repair_workflows) {
    RequireArgument(fcinfo, 0, "max_age");
    RequireArgument(fcinfo, 1, "limit");
    RequireNonNegativeInterval(PG_GETARG_INTERVAL_P(0), "max_age");
    RequireNonNegative(PG_GETARG_INT32(1), "limit");
    // With the transaction's snapshot, a dep inserted after the transaction began is not seen: the
    // repair took it for deleted and cancelled the job waiting on it.
    RequireReadCommitted("oban_repair_workflows",
                         "It must see jobs committed after the transaction began, or it could take a dep "
                         "inserted since for a deleted one.");
    Oid schema = FunctionSchema(fcinfo);
    BeginSql(schema);
    FlushWorkflows(schema, 5000);
    Datum values[2] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)};
    int guc_level = PlanForIndexLookups();
    uint64 found = Execute(&stuck_jobs, schema, values, nullptr);
    AtEOXact_GUC(true, guc_level);
    int64 *job_ids = static_cast<int64 *>(palloc(sizeof(int64) * Max(found, 1)));
    for (uint64 i = 0; i < found; i++) {
        bool is_null = false;
        job_ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &is_null));
    }
    int64 repaired = SettleJobs(schema, job_ids, (int)found, true);
    FlushWorkflows(schema, 5000);  // what the repair finished may release more
    EndSql();
    PG_RETURN_INT32((int32)Min(repaired, (int64)PG_INT32_MAX));
}
