// The background workers (with shared_preload_libraries = 'oban_pro'): one per database named by
// oban_pro.database, each with a slot of shared memory. A worker folds the workflow journal and
// releases dependents soon after a transaction that wrote journal rows commits (that backend sets
// the worker's latch): within oban_pro.flush_delay when a job waits on what it finished, within
// oban_pro.fold_delay otherwise, and at least every oban_pro.flush_interval; it sends the insert
// notifications committing backends hand to it; it has oban_jobs vacuumed when autovacuum's rule
// for it is met (oban_pro.vacuum_jobs, by a short-lived worker of its own); with
// oban_pro.maintenance on it runs the maintenance duties (maintenance_worker.cpp). Each flush, send
// and duty is its own short transaction with synchronous_commit off: work lost in a crash is redone
// by the next run.
#include "pg/worker.hpp"

#include "pg/maintenance_worker.hpp"
#include "pg/module.hpp"
#include "pg/sql.hpp"
#include "pg/workflows.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "commands/async.h"
#include "commands/extension.h"
#include "commands/vacuum.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "utils/json.h"
#include "utils/rel.h"
#include "utils/lsyscache.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/autovacuum.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

PGDLLEXPORT void oban_pro_worker_main(Datum);
PGDLLEXPORT void oban_pro_vacuum_main(Datum);
}

namespace oban::pg {

namespace {

// A queue with new available jobs, waiting for the worker to notify it.
struct PendingNotification {
    Oid schema;
    char queue[NAMEDATALEN];
};
constexpr int kMaxPendingNotifications = 256;
// The worker sends what was handed off at most this often. While notifications keep coming it looks
// for them on this clock instead of being woken by each committing backend (a wake is a signal: a
// system call for the backend, a wake-up for the worker).
constexpr long kNotifyEveryMs = 5;
constexpr int kMaxDatabases = 16;

// One per configured database, used by its worker and by the backends of that database.
struct WorkerState {
    slock_t mutex;
    Latch *latch;          // the running worker's latch, or nullptr
    Oid database;          // the database it serves
    bool flush_requested;  // a commit asked for a flush within flush_delay
    bool fold_requested;   // a commit asked for a flush within fold_delay
    bool overflow;         // more queues than fit were handed off: notify every available queue
    bool notify_polling;   // the worker will look for handed-off queues without being woken
    int pending_count;
    PendingNotification pending[kMaxPendingNotifications];
};

WorkerState *worker_states = nullptr;  // kMaxDatabases slots
// How many databases oban_pro.database names (set in the postmaster, inherited by every backend).
int configured_workers = 0;
// In a worker: its own slot.
WorkerState *worker_state = nullptr;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

void RequestSharedMemory() {
    if (previous_request_hook != nullptr) previous_request_hook();
    RequestAddinShmemSpace(MAXALIGN(sizeof(WorkerState) * kMaxDatabases));
}

void StartSharedMemory() {
    if (previous_startup_hook != nullptr) previous_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    worker_states = static_cast<WorkerState *>(
        ShmemInitStruct("oban_pro workers", sizeof(WorkerState) * kMaxDatabases, &found));
    if (!found) {
        for (int i = 0; i < kMaxDatabases; i++) {
            WorkerState *state = &worker_states[i];
            SpinLockInit(&state->mutex);
            state->latch = nullptr;
            state->database = InvalidOid;
            state->pending_count = 0;
            state->flush_requested = false;
            state->fold_requested = false;
            state->overflow = false;
            state->notify_polling = false;
        }
    }
    LWLockRelease(AddinShmemInitLock);
}

void Publish(Latch *latch, Oid database) {
    SpinLockAcquire(&worker_state->mutex);
    worker_state->latch = latch;
    worker_state->database = database;
    SpinLockRelease(&worker_state->mutex);
}

void Unpublish(int, Datum) {
    Publish(nullptr, InvalidOid);
}

// The slot of the worker serving this backend's database, or nullptr. A slot's database is
// written once its worker connected; read it under the slot's lock (callers lock again).
WorkerState *ThisDatabaseSlot() {
    if (worker_states == nullptr) return nullptr;
    for (int i = 0; i < configured_workers; i++) {
        WorkerState *state = &worker_states[i];
        SpinLockAcquire(&state->mutex);
        bool mine = state->database == MyDatabaseId;
        SpinLockRelease(&state->mutex);
        if (mine) return state;
    }
    return nullptr;
}

// The names in a copy of `list` (SplitGUCList: commas, spaces trimmed, double quotes keep a name
// as written), or false when it does not parse.
// The names point into *raw; free both when done.
bool SplitDatabases(const char *list, char **raw, List **names) {
    *raw = pstrdup(list);
    return SplitGUCList(*raw, ',', names);
}

enum class Seen { kUnknown, kMissing, kInstalled };
Seen extension_seen = Seen::kUnknown;  // in the worker: what it last logged about the extension

// The schema oban_pro is installed in, or InvalidOid when it is not installed in this database:
// one index lookup in pg_extension (it runs before every flush and duty).
Oid ExtensionSchema() {
    Relation extensions = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
                CStringGetDatum("oban_pro"));
    SysScanDesc scan = systable_beginscan(extensions, ExtensionNameIndexId, true, nullptr, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    Oid schema = HeapTupleIsValid(tuple) ? reinterpret_cast<Form_pg_extension>(GETSTRUCT(tuple))->extnamespace
                                         : InvalidOid;
    systable_endscan(scan);
    table_close(extensions, AccessShareLock);
    return schema;
}

// When more queues were handed off than fit: notify each queue that has available jobs.
void NotifyEveryAvailableQueue() {
    Oid schema = ExtensionSchema();
    if (!OidIsValid(schema)) return;
    PushActiveSnapshot(GetTransactionSnapshot());
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    const char *name = get_namespace_name(schema);
    char *sql = psprintf(
        "SELECT pg_catalog.pg_notify(%s || '.oban_insert', pg_catalog.json_build_object('queue', "
        "queue)::text)"
        " FROM (SELECT DISTINCT queue FROM %s.oban_jobs WHERE state = 'available') AS q"
        " WHERE pg_catalog.octet_length(queue) < 7000",
        quote_literal_cstr(name), quote_identifier(name));
    SPI_execute(sql, false, 0);
    SPI_finish();
    PopActiveSnapshot();
}

void ActivityContext(void *activity) {
    errcontext("%s", static_cast<const char *>(activity));
}

struct Notifications {
    PendingNotification taken[kMaxPendingNotifications];
    int count;
    bool overflow;
};

void SendNotificationsBody(void *arg) {
    auto *notifications = static_cast<Notifications *>(arg);
    for (int i = 0; i < notifications->count; i++) {
        const char *schema = get_namespace_name(notifications->taken[i].schema);
        if (schema != nullptr) NotifyInsert(schema, notifications->taken[i].queue);
    }
    if (notifications->overflow) NotifyEveryAvailableQueue();
}

// Sends the notifications handed off by committed transactions, in one short transaction.
void SendNotifications() {
    static Notifications notifications;
    SpinLockAcquire(&worker_state->mutex);
    notifications.count = worker_state->pending_count;
    memcpy(notifications.taken, worker_state->pending, sizeof(PendingNotification) * notifications.count);
    worker_state->pending_count = 0;
    notifications.overflow = worker_state->overflow;
    worker_state->overflow = false;
    worker_state->notify_polling = true;  // more may follow: look again after kNotifyEveryMs
    SpinLockRelease(&worker_state->mutex);
    if (notifications.count > 0 || notifications.overflow)
        RunInTransaction("oban_pro worker: sending insert notifications", SendNotificationsBody,
                         &notifications);
}

// Journal rows folded since the worker last vacuumed the workflow tables.
int64 folded_since_vacuum = 0;

void FlushBody(void *) {
    Oid schema = WorkerSchema();
    if (!OidIsValid(schema)) return;
    BeginSql(schema);
    folded_since_vacuum += FlushWorkflows(schema, 5000);
    EndSql();
}

// One flush in its own transaction.
void FlushOnce() {
    RunInTransaction("oban_pro worker: flushing workflows", FlushBody, nullptr);
}

// The workflow tables that churn: each fold deletes journal rows and updates workflow rows, each
// release deletes edges and waits. Autovacuum visits a database at most once per
// autovacuum_naptime (a minute by default); in between, under a steady stream of workflow jobs,
// their dead rows pile up and every lookup walks the dead index entries: small workflows' throughput
// fell from 5,000 to 460 jobs/s within 40 s, and one VACUUM of these tables (0.5 s) brought it back
// (bench/RESULTS.md). So the worker vacuums them itself, once enough journal rows were folded.
constexpr int64 kVacuumAfterFoldedRows = 10000;
constexpr long kVacuumEveryMs = 2000;
const char *const kChurningTables[] = {"oban_workflow_journal", "oban_workflow_edges", "oban_workflow_waits",
                                       "oban_workflow_rows"};

// What one VACUUM command of the worker processes.
struct VacuumRun {
    MemoryContext statement_context;
    const char *const *tables;
    int count;
};

// VACUUM (SKIP_LOCKED) of `tables`, as a top-level command: VACUUM commits the transaction it is
// given and runs each table in one of its own, so it gets no snapshot, and its statement lives in a
// context that outlives those transactions. SKIP_LOCKED: never wait behind an autovacuum or DDL on
// the same table.
void VacuumBody(void *arg) {
    auto *run = static_cast<VacuumRun *>(arg);
    Oid schema = ExtensionSchema();
    if (!OidIsValid(schema)) return;
    MemoryContextSwitchTo(run->statement_context);
    VacuumStmt *vacuum = makeNode(VacuumStmt);
    vacuum->options = list_make1(makeDefElem(pstrdup("skip_locked"), (Node *)makeBoolean(true), -1));
    vacuum->is_vacuumcmd = true;
    char *schema_name = get_namespace_name(schema);
    for (int i = 0; i < run->count; i++)
        vacuum->rels = lappend(
            vacuum->rels,
            makeVacuumRelation(makeRangeVar(schema_name, pstrdup(run->tables[i]), -1), InvalidOid, NIL));
    ExecVacuum(make_parsestate(nullptr), vacuum, true);
}

void Vacuum(const char *activity, const char *const *tables, int count) {
    VacuumRun run{AllocSetContextCreate(TopMemoryContext, "oban_pro worker vacuum", ALLOCSET_DEFAULT_SIZES),
                  tables, count};
    MemoryContext saved_portal_context = PortalContext;
    PortalContext = run.statement_context;  // VACUUM keeps its working memory under it
    RunInTransaction(activity, VacuumBody, &run, false);
    PortalContext = saved_portal_context;
    MemoryContextDelete(run.statement_context);
}

void VacuumWorkflowTables() {
    Vacuum("oban_pro worker: vacuuming the workflow tables", kChurningTables, lengthof(kChurningTables));
}

// oban_jobs (oban_pro.vacuum_jobs). Every job claimed since the last vacuum leaves its 'available'
// entry in the (state, queue, priority, scheduled_at, id) index, at the head of its queue's range:
// the first scan to visit one after its row is dead to every snapshot marks it dead, but it stays on
// its page until a vacuum, and Oban's fetch walks those pages from the head of the range each time.
// Autovacuum's rule for the table (its autovacuum_vacuum_threshold and _scale_factor, which Oban's
// install sets low) soon says a vacuum is due, but autovacuum looks only once per
// autovacuum_naptime (a minute by default): the worker applies the same rule every second. With 8
// clients running Oban's own fetch and complete, they completed 1.27x the jobs (1.09x with
// synchronous_commit on) that they did with it off (bench/run.sh's ext_sql_novacuum, session 10).
//
// The vacuum runs in a background worker of its own (oban_pro_vacuum_main), so folds and
// notifications go on meanwhile, however big the table. The next one may start kJobsVacuumGapMs
// after it ends, or three times its duration, whichever is later: a big table is vacuumed at most
// a quarter of the time.
constexpr long kJobsVacuumCheckMs = 1000;
constexpr long kJobsVacuumGapMs = 2000;
constexpr int kJobsVacuumGapsPerDuration = 3;
const char *const kJobsTable[] = {"oban_jobs"};

// Whether autovacuum's rule for dead rows says oban_jobs is due: more than the table's vacuum
// threshold + its scale factor x its row count. Never while autovacuum is off, for the cluster or
// the table (then its owner vacuums it).
void JobsVacuumDueBody(void *due) {
    *static_cast<bool *>(due) = false;
    Oid schema = WorkerSchema();
    if (!OidIsValid(schema) || !autovacuum_start_daemon) return;
    Oid jobs = get_relname_relid("oban_jobs", schema);
    if (!OidIsValid(jobs)) return;
    Relation relation = try_relation_open(jobs, AccessShareLock);
    if (relation == nullptr) return;
    bool is_table = relation->rd_rel->relkind == RELKIND_RELATION;
    const AutoVacOpts *options = is_table && relation->rd_options != nullptr
                                     ? &reinterpret_cast<StdRdOptions *>(relation->rd_options)->autovacuum
                                     : nullptr;
    bool enabled = is_table && (options == nullptr || options->enabled);
    double threshold = options != nullptr && options->vacuum_threshold >= 0 ? options->vacuum_threshold
                                                                            : autovacuum_vac_thresh;
    double scale = options != nullptr && options->vacuum_scale_factor >= 0 ? options->vacuum_scale_factor
                                                                           : autovacuum_vac_scale;
    double rows = Max(relation->rd_rel->reltuples, 0);
    relation_close(relation, AccessShareLock);
    if (!enabled) return;
    pgstat_clear_snapshot();
    PgStat_StatTabEntry *stats = pgstat_fetch_stat_tabentry(jobs);
    *static_cast<bool *>(due) = stats != nullptr && stats->n_dead_tuples > threshold + scale * rows;
}

bool JobsVacuumDue() {
    bool due = false;
    RunInTransaction("oban_pro worker: checking oban_jobs for a vacuum", JobsVacuumDueBody, &due, false);
    return due;
}

// The worker's vacuum of oban_jobs: when it may check next, and the one running, if any.
struct JobsVacuum {
    TimestampTz last_check = 0;
    TimestampTz not_before = 0;
    TimestampTz started = 0;
    BackgroundWorkerHandle *running = nullptr;
};

// Starts a vacuum of oban_jobs in a background worker of its own (false when no worker slot is free:
// max_worker_processes).
bool StartJobsVacuum(JobsVacuum *vacuum) {
    BackgroundWorker worker{};
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = BGW_NEVER_RESTART;
    strlcpy(worker.bgw_library_name, "oban_pro", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "oban_pro_vacuum_main", BGW_MAXLEN);
    snprintf(worker.bgw_name, BGW_MAXLEN, "oban_pro vacuum for database %.63s", MyBgworkerEntry->bgw_extra);
    strlcpy(worker.bgw_type, "oban_pro vacuum", BGW_MAXLEN);
    strlcpy(worker.bgw_extra, MyBgworkerEntry->bgw_extra, BGW_EXTRALEN);
    if (!RegisterDynamicBackgroundWorker(&worker, &vacuum->running)) return false;
    vacuum->started = GetCurrentTimestamp();
    return true;
}

// One round of the main loop: notes the end of a running vacuum, or starts one when it is due.
void TendJobsVacuum(JobsVacuum *vacuum) {
    TimestampTz now = GetCurrentTimestamp();
    if (vacuum->running != nullptr) {
        pid_t pid;
        if (GetBackgroundWorkerPid(vacuum->running, &pid) != BGWH_STOPPED) return;
        pfree(vacuum->running);
        vacuum->running = nullptr;
        long gap = Max(kJobsVacuumGapMs,
                       kJobsVacuumGapsPerDuration * TimestampDifferenceMilliseconds(vacuum->started, now));
        vacuum->not_before = TimestampTzPlusMilliseconds(now, gap);
    }
    if (!vacuum_jobs || now < vacuum->not_before ||
        !TimestampDifferenceExceeds(vacuum->last_check, now, kJobsVacuumCheckMs))
        return;
    vacuum->last_check = now;
    if (JobsVacuumDue() && !StartJobsVacuum(vacuum))
        vacuum->not_before = TimestampTzPlusMilliseconds(now, kJobsVacuumGapMs);  // no free slot: later
}

}  // namespace

void InitWorker() {
    if (!process_shared_preload_libraries_in_progress) return;
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = RequestSharedMemory;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = StartSharedMemory;

    List *names = NIL;
    char *raw = nullptr;
    if (database_name == nullptr || !SplitDatabases(database_name, &raw, &names)) return;  // checked already
    ListCell *cell;
    foreach (cell, names) {
        const char *name = static_cast<const char *>(lfirst(cell));
        BackgroundWorker worker{};
        worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
        worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
        worker.bgw_restart_time = 5;  // seconds; also brought back after a crash of any backend
        strlcpy(worker.bgw_library_name, "oban_pro", BGW_MAXLEN);
        strlcpy(worker.bgw_function_name, "oban_pro_worker_main", BGW_MAXLEN);
        snprintf(worker.bgw_name, BGW_MAXLEN, "oban_pro worker for database %s", name);
        strlcpy(worker.bgw_type, "oban_pro worker", BGW_MAXLEN);
        worker.bgw_main_arg = Int32GetDatum(configured_workers);
        strlcpy(worker.bgw_extra, name, BGW_EXTRALEN);
        RegisterBackgroundWorker(&worker);
        configured_workers++;
    }
}

bool CheckDatabaseList(char **newval, void **, GucSource) {
    List *names = NIL;
    char *raw = nullptr;
    if (*newval == nullptr) return true;
    bool valid = SplitDatabases(*newval, &raw, &names);
    if (!valid) GUC_check_errdetail("List syntax is invalid: database names separated by commas.");
    if (valid && list_length(names) > kMaxDatabases) {
        GUC_check_errdetail("At most %d databases.", kMaxDatabases);
        valid = false;
    }
    ListCell *cell;
    foreach (cell, names) {
        if (!valid) break;
        const char *name = static_cast<const char *>(lfirst(cell));
        if (name[0] == '\0' || strlen(name) >= NAMEDATALEN) {
            GUC_check_errdetail("\"%s\" is not a database name.", name);
            valid = false;
        }
        ListCell *other;
        for_each_from(other, names, foreach_current_index(cell) + 1) {
            if (valid && strcmp(name, static_cast<const char *>(lfirst(other))) == 0) {
                GUC_check_errdetail("Database \"%s\" is named twice: one worker serves a database.", name);
                valid = false;
            }
        }
    }
    list_free(names);
    pfree(raw);
    return valid;
}

void RunInTransaction(const char *activity, void (*body)(void *), void *arg, bool snapshot) {
    MemoryContext worker_context = CurrentMemoryContext;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (snapshot) PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, activity);
    ErrorContextCallback context{error_context_stack, ActivityContext, const_cast<char *>(activity)};
    PG_TRY();
    {
        error_context_stack = &context;
        body(arg);
        error_context_stack = context.previous;
        if (snapshot) PopActiveSnapshot();
        CommitTransactionCommand();
    }
    PG_CATCH();
    {
        // PG_TRY restored error_context_stack. Log and roll back; the caller tries again later.
        MemoryContextSwitchTo(worker_context);
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
    }
    PG_END_TRY();
    MemoryContextSwitchTo(worker_context);
    pgstat_report_activity(STATE_IDLE, nullptr);
}

Oid WorkerSchema() {
    Oid schema = ExtensionSchema();
    if (!OidIsValid(schema) && extension_seen != Seen::kMissing) {
        extension_seen = Seen::kMissing;
        ereport(LOG, (errmsg("oban_pro worker: extension \"oban_pro\" is not installed in database \"%s\"; "
                             "waiting for it",
                             MyBgworkerEntry->bgw_extra),
                      errhint("The worker does nothing in this database until CREATE EXTENSION oban_pro.")));
    } else if (OidIsValid(schema) && extension_seen != Seen::kInstalled) {
        extension_seen = Seen::kInstalled;
        ereport(LOG,
                (errmsg("oban_pro worker: extension \"oban_pro\" found in schema \"%s\" of database \"%s\"",
                        get_namespace_name(schema), MyBgworkerEntry->bgw_extra)));
    }
    return schema;
}

bool WorkerServesThisDatabase() {
    WorkerState *state = ThisDatabaseSlot();
    if (state == nullptr) return false;
    SpinLockAcquire(&state->mutex);
    bool serves = state->latch != nullptr && state->database == MyDatabaseId;
    SpinLockRelease(&state->mutex);
    return serves;
}

bool HandOffNotifications(Oid schema, const char *const *queues, int count) {
    WorkerState *worker_state = ThisDatabaseSlot();
    if (worker_state == nullptr) return false;
    Latch *latch = nullptr;
    bool wake = false;
    SpinLockAcquire(&worker_state->mutex);
    if (worker_state->latch != nullptr && worker_state->database == MyDatabaseId) {
        // Only a handoff that finds nothing pending, and the worker not polling, wakes the worker:
        // otherwise it has been woken for what is pending, or will look on its own, and takes what
        // is pending under this lock. (A wake during its coalescing sleep would also cut it short.)
        bool nothing_pending = worker_state->pending_count == 0 && !worker_state->overflow;
        for (int i = 0; i < count; i++) {
            bool known = false;
            for (int j = 0; j < worker_state->pending_count && !known; j++)
                known = worker_state->pending[j].schema == schema &&
                        strcmp(worker_state->pending[j].queue, queues[i]) == 0;
            if (known) continue;
            if (worker_state->pending_count == kMaxPendingNotifications || strlen(queues[i]) >= NAMEDATALEN) {
                worker_state->overflow = true;  // the worker notifies every queue with available jobs
                continue;
            }
            PendingNotification *slot = &worker_state->pending[worker_state->pending_count++];
            slot->schema = schema;
            strlcpy(slot->queue, queues[i], NAMEDATALEN);
        }
        latch = worker_state->latch;
        wake = nothing_pending && !worker_state->notify_polling &&
               (worker_state->pending_count > 0 || worker_state->overflow);
    }
    SpinLockRelease(&worker_state->mutex);
    if (wake) SetLatch(latch);
    return latch != nullptr;
}

void WakeFlusher(bool soon) {
    WorkerState *worker_state = ThisDatabaseSlot();
    if (worker_state == nullptr) return;
    SpinLockAcquire(&worker_state->mutex);
    Latch *latch = worker_state->database == MyDatabaseId ? worker_state->latch : nullptr;
    // A request already pending has woken the worker, which clears it under this lock when it
    // flushes, or sleeps until the flush it delays is due (the sooner, for a flush_requested).
    bool wake = latch != nullptr && !worker_state->flush_requested && (soon || !worker_state->fold_requested);
    if (latch != nullptr) {
        if (soon)
            worker_state->flush_requested = true;
        else
            worker_state->fold_requested = true;
    }
    SpinLockRelease(&worker_state->mutex);
    if (wake) SetLatch(latch);
}

}  // namespace oban::pg

void oban_pro_worker_main(Datum slot) {
    using namespace oban::pg;
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    worker_state = &worker_states[DatumGetInt32(slot)];
    const char *database = MyBgworkerEntry->bgw_extra;
    BackgroundWorkerInitializeConnection(database, nullptr, 0);
    SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    // Its duties decide from what they read and must see every commit (oban_prune_jobs and
    // oban_repair_workflows refuse to run otherwise), whatever default the database or cluster sets.
    SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("application_name", "oban_pro worker", PGC_USERSET, PGC_S_OVERRIDE);
    pgstat_report_appname("oban_pro worker");

    Publish(MyLatch, MyDatabaseId);
    on_shmem_exit(Unpublish, 0);
    ereport(LOG, (errmsg("oban_pro worker started in database \"%s\"", database)));
    StartMaintenance();

    TimestampTz last_flush = 0;
    TimestampTz last_send = 0;
    TimestampTz last_vacuum = 0;
    JobsVacuum jobs_vacuum;
    for (;;) {
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            ReloadMaintenance();
        }
        // Coalesce: at most one notification transaction every kNotifyEveryMs, so a burst of
        // committing producers costs the worker one transaction, not one each. Nothing pending:
        // stop polling, so the next handoff wakes the worker (decided under the handoffs' lock).
        SpinLockAcquire(&worker_state->mutex);
        bool notify = worker_state->pending_count > 0 || worker_state->overflow;
        if (!notify) worker_state->notify_polling = false;
        bool polling = worker_state->notify_polling;
        SpinLockRelease(&worker_state->mutex);
        if (notify) {
            long since_send = TimestampDifferenceMilliseconds(last_send, GetCurrentTimestamp());
            if (since_send < kNotifyEveryMs) pg_usleep((kNotifyEveryMs - since_send) * 1000L);
            SendNotifications();
            last_send = GetCurrentTimestamp();
        }
        // Flush when a commit asked for it, or every flush_interval anyway (a wake-up for a
        // notification alone costs no flush). A commit that a job may be waiting on asks for a
        // flush within flush_delay of the last one, any other within fold_delay: busy clients
        // commit thousands of times a second, and one flush of all their journal rows costs the
        // worker a fraction of one flush each.
        SpinLockAcquire(&worker_state->mutex);
        long due_after = flush_interval_ms;  // a fold_delay below flush_delay means flush_delay
        if (worker_state->fold_requested) due_after = Min(due_after, Max(flush_delay_ms, fold_delay_ms));
        if (worker_state->flush_requested) due_after = Min(due_after, flush_delay_ms);
        SpinLockRelease(&worker_state->mutex);
        TimestampTz now = GetCurrentTimestamp();
        if (TimestampDifferenceExceeds(last_flush, now, (int)due_after)) {
            SpinLockAcquire(&worker_state->mutex);
            worker_state->flush_requested = worker_state->fold_requested = false;
            SpinLockRelease(&worker_state->mutex);
            FlushOnce();
            last_flush = now;
            due_after = flush_interval_ms;
        }
        if (folded_since_vacuum >= kVacuumAfterFoldedRows &&
            TimestampDifferenceExceeds(last_vacuum, GetCurrentTimestamp(), kVacuumEveryMs)) {
            VacuumWorkflowTables();
            folded_since_vacuum = 0;
            last_vacuum = GetCurrentTimestamp();
        }
        TendJobsVacuum(&jobs_vacuum);
        // At most one maintenance duty per round, so notifications and flushes go out between them.
        bool ran = RunDueMaintenance(GetCurrentTimestamp());

        // Sleep on the latch until the next flush or duty is due (or a backend wakes us).
        now = GetCurrentTimestamp();
        TimestampTz next_flush = TimestampTzPlusMilliseconds(last_flush, due_after);
        long timeout = next_flush <= now ? 0 : Max(TimestampDifferenceMilliseconds(now, next_flush), 1L);
        long maintenance = MaintenanceTimeoutMs(now);
        if (maintenance >= 0 && maintenance < timeout) timeout = maintenance;
        if (vacuum_jobs && timeout > kJobsVacuumCheckMs) timeout = kJobsVacuumCheckMs;
        if (polling || notify) {  // look for handed-off queues when the next send is allowed
            long poll = Max(kNotifyEveryMs - TimestampDifferenceMilliseconds(last_send, now), 1L);
            if (poll < timeout) timeout = poll;
        }
        if (ran || timeout == 0) {  // more may be due: check for interrupts and go on
            if (!PostmasterIsAlive()) proc_exit(1);
            continue;
        }
        // Report the table statistics of our runs (autovacuum relies on them, e.g. after pruning).
        (void)pgstat_report_stat(false);
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout, PG_WAIT_EXTENSION);
    }
}

// A vacuum of oban_jobs started by the worker of the database named in bgw_extra (TendJobsVacuum).
void oban_pro_vacuum_main(Datum) {
    using namespace oban::pg;
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(MyBgworkerEntry->bgw_extra, nullptr, 0);
    SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("application_name", "oban_pro vacuum", PGC_USERSET, PGC_S_OVERRIDE);
    pgstat_report_appname("oban_pro vacuum");
    Vacuum("oban_pro: vacuuming oban_jobs", kJobsTable, lengthof(kJobsTable));
}
