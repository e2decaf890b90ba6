// Durable signals (SPEC §6): a mailbox table, signals woken at commit, awaits that block in the
// backend and then park the job without holding a worker.
//
// Waking. With shared_preload_libraries = 'oban_pro' the extension owns an array of condition
// variables in shared memory, one per slot of a hash of (database, job id). oban_signal records the
// slots of the executing jobs it signalled, per (sub)transaction; a rolled-back subtransaction takes
// its slots along, and only XACT_EVENT_COMMIT — after the commit is visible to new snapshots —
// broadcasts them. A waiter re-reads the mailbox with a fresh snapshot after each wake, so a wake
// for another job of the same slot costs one look (two index probes). Without preloading there is
// no shared memory: waiters poll every kPollMs.
//
// Races. oban_signal locks the target job rows (FOR NO KEY UPDATE, in id order) before storing
// anything, and parking locks the job row, then re-reads the mailbox with a fresh snapshot before it
// parks. So a signal committed between an await's last look and its park is seen by the park (or
// finds the job parked and makes it available); two signals to one job are stored in commit order;
// a signal and a cancel of the job serialize on the row, and a signal to a job that ended stores
// nothing. Nothing is locked while an await sleeps.
#include "core/signal.hpp"
#include "pg/args.hpp"
#include "pg/fetch_floor.hpp"
#include "pg/meta.hpp"
#include "pg/module.hpp"
#include "pg/sql.hpp"
#include "pg/states.hpp"

extern "C" {
#include "access/detoast.h"
#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "nodes/bitmapset.h"
#include "nodes/pg_list.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace oban::pg {

int max_signal_bytes = 1024 * 1024;

namespace {

// Slots of condition variables; a power of two.
constexpr int kWaitSlots = 1024;
// Without shared memory, a waiter looks at the mailbox this often.
constexpr long kPollMs = 10;

struct SignalWaits {
    ConditionVariable slots[kWaitSlots];
};

SignalWaits *signal_waits = nullptr;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

void RequestSharedMemory() {
    if (previous_request_hook != nullptr) previous_request_hook();
    RequestAddinShmemSpace(MAXALIGN(sizeof(SignalWaits)));
}

void StartSharedMemory() {
    if (previous_startup_hook != nullptr) previous_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    signal_waits =
        static_cast<SignalWaits *>(ShmemInitStruct("oban_pro signal waits", sizeof(SignalWaits), &found));
    if (!found)
        for (int i = 0; i < kWaitSlots; i++) ConditionVariableInit(&signal_waits->slots[i]);
    LWLockRelease(AddinShmemInitLock);
}

int SlotOf(int64 job_id) {
    uint32 key =
        hash_combine(hash_bytes_uint32(MyDatabaseId),
                     hash_bytes_uint32((uint32)job_id) ^ hash_bytes_uint32((uint32)((uint64)job_id >> 32)));
    return (int)(key & (kWaitSlots - 1));
}

// --- wakes at commit -------------------------------------------------------------------------------

// The slots a (sub)transaction signalled, in TopTransactionContext.
struct PendingWakes {
    int nest_level;
    Bitmapset *slots;
};
List *pending_wakes = NIL;

void RecordWake(int64 job_id) {
    if (signal_waits == nullptr) return;  // waiters poll
    int level = GetCurrentTransactionNestLevel();
    MemoryContext caller = MemoryContextSwitchTo(TopTransactionContext);
    PendingWakes *last = pending_wakes == NIL ? nullptr : static_cast<PendingWakes *>(llast(pending_wakes));
    if (last == nullptr || last->nest_level != level) {
        last = static_cast<PendingWakes *>(palloc(sizeof(PendingWakes)));
        last->nest_level = level;
        last->slots = nullptr;
        pending_wakes = lappend(pending_wakes, last);
    }
    last->slots = bms_add_member(last->slots, SlotOf(job_id));
    MemoryContextSwitchTo(caller);
}

void OnTransactionEvent(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_COMMIT: {
            // The commit is visible: wake the waiters. Nothing here can fail.
            ListCell *cell;
            foreach (cell, pending_wakes) {
                auto *wakes = static_cast<PendingWakes *>(lfirst(cell));
                int slot = -1;
                while ((slot = bms_next_member(wakes->slots, slot)) >= 0)
                    ConditionVariableBroadcast(&signal_waits->slots[slot]);
            }
            pending_wakes = NIL;
            break;
        }
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PREPARE:  // waiters see it at their park, which waits for the row lock
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_PARALLEL_ABORT:
            pending_wakes = NIL;  // its memory goes with TopTransactionContext
            break;
        default:
            break;
    }
}

void OnSubtransactionEvent(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
    if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB) return;
    int level = GetCurrentTransactionNestLevel();
    ListCell *cell;
    foreach (cell, pending_wakes) {
        auto *wakes = static_cast<PendingWakes *>(lfirst(cell));
        if (wakes->nest_level < level) continue;
        if (event == SUBXACT_EVENT_ABORT_SUB)
            pending_wakes = foreach_delete_current(pending_wakes, cell);
        else
            wakes->nest_level = level - 1;
    }
}

// --- statements ------------------------------------------------------------------------------------

// Makes the parked jobs among $1, which oban_signal has locked, available: their wait is over (the
// signal is received when they run), so its deadline goes.
Statement unpark_jobs{R"sql(
    UPDATE @extschema@.oban_jobs SET state = 'available', meta = meta - 'wait_until'
    WHERE id = ANY ($1))sql",
                      1,
                      {INT8ARRAYOID},
                      true};

Statement workflow_steps{R"sql(
    SELECT j.id FROM @extschema@.oban_workflow_steps AS s
    JOIN @extschema@.oban_jobs AS j ON j.id = s.job_id
    WHERE s.workflow_id = $1 AND s.name = $2
      AND j.state::text IN ('available', 'scheduled', 'suspended', 'executing', 'retryable'))sql",
                         2,
                         {TEXTOID, TEXTOID},
                         true};

// Under the job's row lock (LockJob), with a fresh snapshot, when the mailbox has a signal for the
// job (HasSignal): the oldest stored signal is consumed (and a deadline left by an earlier wait
// cleared); if another transaction holds every stored signal, the job parks as park_job does.
// Nothing changes unless the job is executing.
Statement take_or_park{R"sql(
    WITH job AS (
        SELECT state::text AS state, meta->>'wait_until' AS wait_until
        FROM @extschema@.oban_jobs WHERE id = $1
    ), taken AS (
        DELETE FROM @extschema@.oban_signals
        WHERE id = (SELECT s.id FROM @extschema@.oban_signals AS s
                    WHERE s.job_id = $1 AND (SELECT state FROM job) = 'executing'
                    ORDER BY s.id LIMIT 1
                    FOR UPDATE SKIP LOCKED)
        RETURNING payload
    ), outcome AS (
        SELECT EXISTS (SELECT FROM taken) AS received
    ), changed AS (
        UPDATE @extschema@.oban_jobs AS j
        SET state = CASE WHEN o.received THEN j.state ELSE 'suspended' END,
            attempt = CASE WHEN o.received THEN j.attempt ELSE greatest(j.attempt - 1, 0) END,
            meta = CASE WHEN o.received THEN j.meta - 'wait_until'
                        WHEN $2 THEN j.meta
                        ELSE j.meta || jsonb_build_object('wait_until',
                                 CASE WHEN $3::interval IS NULL THEN to_jsonb('infinity'::text)
                                      ELSE to_jsonb(timezone('UTC', clock_timestamp()) + $3) END) END
        FROM outcome AS o
        WHERE j.id = $1 AND j.state::text = 'executing' AND (NOT o.received OR j.meta ? 'wait_until')
    )
    SELECT (SELECT state FROM job), (SELECT wait_until FROM job), (SELECT payload FROM taken),
           (SELECT received FROM outcome))sql",
                       3,
                       {INT8OID, BOOLOID, INTERVALOID},
                       true};

// Under the job's row lock (LockJob), with an empty mailbox: the job parks, executing → suspended,
// the attempt given back, the deadline kept ($2) or set now: now + $3, or "infinity" when $3 is NULL.
Statement park_job{R"sql(
    UPDATE @extschema@.oban_jobs
    SET state = 'suspended', attempt = greatest(attempt - 1, 0),
        meta = CASE WHEN $2 THEN meta
                    ELSE meta || jsonb_build_object('wait_until',
                             CASE WHEN $3::interval IS NULL THEN to_jsonb('infinity'::text)
                                  ELSE to_jsonb(timezone('UTC', clock_timestamp()) + $3) END) END
    WHERE id = $1 AND state::text = 'executing')sql",
                   3,
                   {INT8OID, BOOLOID, INTERVALOID},
                   true};

Statement clear_deadline{R"sql(
    UPDATE @extschema@.oban_jobs SET meta = meta - 'wait_until'
    WHERE id = $1 AND state::text = 'executing' AND meta ? 'wait_until')sql",
                         1,
                         {INT8OID},
                         true};

// --- the job row and the mailbox, read directly ------------------------------------------------
//
// The await and the signal find, lock and read the job rows and the mailbox directly rather than by
// statements, whose setup and teardown cost more than the reads (bench/RESULTS.md, session 20); only
// their changes to oban_jobs are statements, for its triggers and constraints. The caller's
// privileges are checked when each table is opened, as the statements would. C-style.

struct Look {
    bool found;      // the job exists
    char *state;     // its state
    char *deadline;  // meta.wait_until, or nullptr
    bool received;
    Datum payload;  // when received, copied into the caller's context
};

bool IsExecuting(const Look &look) {
    return look.found && strcmp(look.state, "executing") == 0;
}

struct JobsTable {
    Relation jobs;
    Relation primary_key;
    AttrNumber id, state, meta;
    TupleTableSlot *slot;
};

JobsTable OpenJobs(Oid schema, LOCKMODE lock, AclMode required) {
    JobsTable t{};
    t.jobs = OpenExtensionTable(schema, "oban_jobs", lock, required);
    Oid relation = RelationGetRelid(t.jobs);
    t.id = ExtensionTableColumn(relation, "id");
    t.state = ExtensionTableColumn(relation, "state");
    t.meta = ExtensionTableColumn(relation, "meta");
    t.primary_key = OpenPrimaryKeyOn(t.jobs, {t.id});
    t.slot = table_slot_create(t.jobs, nullptr);
    return t;
}

void CloseJobs(JobsTable *t) {
    ExecDropSingleTupleTableSlot(t->slot);
    index_close(t->primary_key, AccessShareLock);
    table_close(t->jobs, NoLock);  // the lock is held to the end of the transaction
}

// Job `job_id`'s row as `snapshot` sees it, into t.slot: whether there is one.
bool FindJob(const JobsTable &t, Snapshot snapshot, int64 job_id) {
    ScanKeyData key;
    IndexEqualityKey(&key, t.primary_key, 1, F_INT8EQ, Int64GetDatum(job_id));
    IndexScanDesc scan = index_beginscan(t.jobs, t.primary_key, snapshot, 1, 0);
    index_rescan(scan, &key, 1, nullptr, 0);
    bool found = index_getnext_slot(scan, ForwardScanDirection, t.slot);
    index_endscan(scan);
    return found;
}

// Locks the row version in t.slot (found by FindJob with `snapshot`) FOR NO KEY UPDATE as SELECT ...
// FOR NO KEY UPDATE does: a transaction holding it is waited for; in READ COMMITTED an update made
// meanwhile is followed to the row's latest version, which t.slot then holds, while in REPEATABLE
// READ or SERIALIZABLE a row changed since `snapshot` is a serialization failure. Whether the row was
// locked (false: deleted meanwhile, or by this very command: no job, as for the statement).
bool LockFoundJob(const JobsTable &t, Snapshot snapshot, int64 job_id) {
    ItemPointerData tid = t.slot->tts_tid;
    bool follow = !IsolationUsesXactSnapshot();
    TM_FailureData failure;
    TM_Result locked =
        table_tuple_lock(t.jobs, &tid, snapshot, t.slot, GetCurrentCommandId(true), LockTupleNoKeyExclusive,
                         LockWaitBlock, follow ? TUPLE_LOCK_FLAG_FIND_LAST_VERSION : 0, &failure);
    if (!follow && (locked == TM_Updated || locked == TM_Deleted))
        ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                        errmsg("could not serialize access due to concurrent %s",
                               locked == TM_Updated ? "update" : "delete")));
    if (locked == TM_Deleted || locked == TM_SelfModified) return false;
    if (locked != TM_Ok)
        elog(ERROR, "could not lock job %lld: unexpected result %d", (long long)job_id, (int)locked);
    return true;
}

// The job's state and deadline from its row in `slot`, in `caller`'s context.
Look JobLook(const JobsTable &t, TupleTableSlot *slot, MemoryContext caller) {
    bool state_null = false, meta_null = false;
    Datum state = slot_getattr(slot, t.state, &state_null);
    Datum meta = slot_getattr(slot, t.meta, &meta_null);
    JobState job_state = state_null ? kUnknownState : StateOf(state);
    Look look{};
    look.found = true;
    look.state = MemoryContextStrdup(caller, job_state == kUnknownState ? "unknown" : kStateNames[job_state]);
    look.deadline = meta_null ? nullptr : MetaText(DatumGetJsonbP(meta), "wait_until", caller);
    return look;
}

// Locks job `job_id`'s row (LockFoundJob): a signal in flight is waited for. Returns the job as
// locked (found false: there is no such job).
Look LockJob(Oid schema, int64 job_id, MemoryContext caller) {
    JobsTable t = OpenJobs(schema, RowShareLock, ACL_SELECT | ACL_UPDATE);
    CommandCounterIncrement();  // as a statement would: what this transaction did so far is seen
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    Look look{};
    if (FindJob(t, snapshot, job_id) && LockFoundJob(t, snapshot, job_id)) look = JobLook(t, t.slot, caller);
    UnregisterSnapshot(snapshot);
    CloseJobs(&t);
    return look;
}

struct Mailbox {
    Relation signals;
    Relation by_job;  // oban_signals_job_index: (job_id, id)
    AttrNumber payload;
};

Mailbox OpenMailbox(Oid schema, LOCKMODE lock, AclMode required) {
    Mailbox m{};
    m.signals = OpenExtensionTable(schema, "oban_signals", lock, required);
    Oid relation = RelationGetRelid(m.signals);
    m.payload = ExtensionTableColumn(relation, "payload");
    m.by_job = OpenIndexOn(get_relname_relid("oban_signals_job_index", schema),
                           {ExtensionTableColumn(relation, "job_id"), ExtensionTableColumn(relation, "id")});
    if (m.by_job == nullptr)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("index oban_signals_job_index is missing"),
                        errhint("The extension's tables were altered; reinstall or update the extension.")));
    return m;
}

void CloseMailbox(Mailbox *m) {
    index_close(m->by_job, AccessShareLock);
    table_close(m->signals, NoLock);  // the lock is held to the end of the transaction
}

// The stored signals of job `job_id` that `snapshot` sees, oldest first.
IndexScanDesc ScanMailbox(const Mailbox &m, Snapshot snapshot, int64 job_id, ScanKey key) {
    IndexEqualityKey(key, m.by_job, 1, F_INT8EQ, Int64GetDatum(job_id));
    IndexScanDesc scan = index_beginscan(m.signals, m.by_job, snapshot, 1, 0);
    index_rescan(scan, key, 1, nullptr, 0);
    return scan;
}

// Whether the mailbox holds a signal for job `job_id`, as a snapshot taken now sees it: after the
// job's lock, every signal stored before the lock was granted.
bool HasSignal(Oid schema, int64 job_id) {
    Mailbox m = OpenMailbox(schema, AccessShareLock, ACL_SELECT);
    CommandCounterIncrement();
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    TupleTableSlot *slot = table_slot_create(m.signals, nullptr);
    ScanKeyData key;
    IndexScanDesc scan = ScanMailbox(m, snapshot, job_id, &key);
    bool found = index_getnext_slot(scan, ForwardScanDirection, slot);
    index_endscan(scan);
    ExecDropSingleTupleTableSlot(slot);
    UnregisterSnapshot(snapshot);
    CloseMailbox(&m);
    return found;
}

// One look at the job and its mailbox, with a snapshot taken now: the job's state and deadline,
// and, if it is executing, its oldest stored signal that no other transaction holds, taken (deleted)
// as DELETE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) would. The caller's SELECT on
// oban_jobs and SELECT and DELETE on oban_signals are checked. Allocates in the current memory
// context, but a payload received in `caller`'s.
Look TakeSignal(Oid schema, int64 job_id, MemoryContext caller) {
    JobsTable t = OpenJobs(schema, AccessShareLock, ACL_SELECT);
    CommandCounterIncrement();
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    Look look{};
    if (FindJob(t, snapshot, job_id)) look = JobLook(t, t.slot, CurrentMemoryContext);
    CloseJobs(&t);

    if (IsExecuting(look)) {
        Mailbox m = OpenMailbox(schema, RowExclusiveLock, ACL_SELECT | ACL_DELETE);
        TupleTableSlot *slot = table_slot_create(m.signals, nullptr);
        ScanKeyData key;
        IndexScanDesc scan = ScanMailbox(m, snapshot, job_id, &key);
        while (!look.received && index_getnext_slot(scan, ForwardScanDirection, slot)) {
            bool is_null = false;
            Datum payload = slot_getattr(slot, m.payload, &is_null);
            // Read whole before the delete, which takes an out-of-line value's chunks along.
            MemoryContext own = MemoryContextSwitchTo(caller);
            Datum copy = is_null ? (Datum)0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(payload));
            MemoryContextSwitchTo(own);
            TM_FailureData failure;
            ItemPointerData signal = slot->tts_tid;
            // Without waiting: a signal another transaction holds or took is passed over.
            if (table_tuple_delete(m.signals, &signal, GetCurrentCommandId(true), snapshot, InvalidSnapshot,
                                   false, &failure, false) == TM_Ok) {
                look.received = true;
                look.payload = copy;
            } else if (copy != (Datum)0) {
                pfree(DatumGetPointer(copy));
            }
        }
        index_endscan(scan);
        ExecDropSingleTupleTableSlot(slot);
        CloseMailbox(&m);
    }
    UnregisterSnapshot(snapshot);
    return look;
}

// --- signalling ------------------------------------------------------------------------------------

void CheckPayload(FunctionCallInfo fcinfo, int position) {
    RequireArgument(fcinfo, position, "payload");
    Size size = toast_raw_datum_size(PG_GETARG_DATUM(position));
    if (size > (Size)max_signal_bytes)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("signal payload is too large"),
                        errdetail("The payload takes %zu bytes; oban_pro.max_signal_bytes is %d.", size,
                                  max_signal_bytes),
                        errhint("Store large data elsewhere and signal a reference to it.")));
}

bool Unfinished(JobState state) {
    return state == kAvailable || state == kScheduled || state == kSuspended || state == kExecuting ||
           state == kRetryable;
}

// The mailbox, for storing signals directly (DirectInsert: no INSERT statement to set up for each
// signal); the caller's INSERT privilege is checked as the statement would.
struct MailboxWriter {
    DirectInsert insert;
    AttrNumber id, job_id, payload, inserted_at;
    Oid sequence;
};

void OpenMailboxWriter(MailboxWriter *w, Oid schema) {
    OpenDirectInsert(&w->insert, schema, "oban_signals");
    Oid relation = RelationGetRelid(w->insert.relation);
    w->id = ExtensionTableColumn(relation, "id");
    w->job_id = ExtensionTableColumn(relation, "job_id");
    w->payload = ExtensionTableColumn(relation, "payload");
    w->inserted_at = ExtensionTableColumn(relation, "inserted_at");
    w->sequence = getIdentitySequence(relation, w->id, false);
}

// Stores `payload` for job `job_id`, setting every column as the table's defaults would.
void StoreSignal(MailboxWriter *w, int64 job_id, Datum payload) {
    TupleTableSlot *row = NewRow(&w->insert);
    SetColumn(row, w->id, Int64GetDatum(nextval_internal(w->sequence, false)));
    SetColumn(row, w->job_id, Int64GetDatum(job_id));
    SetColumn(row, w->payload, payload);
    SetColumn(row, w->inserted_at, TimestampGetDatum(TransactionStartUtc()));
    InsertRow(&w->insert);
}

// Signals the `count` jobs of `ids` (duplicates count once; the array is sorted in place): returns
// how many took the payload. Locks each unfinished job's row in id order (so two signals never
// deadlock), waiting for any transaction that holds one, and checks it again as it is once locked;
// then stores the payload for it (after its lock: signals to one job are numbered in commit order).
// The parked ones are made available by one UPDATE (unpark_jobs). An available job held here is
// passed over by fetches meanwhile, so its fetch key is published again at commit. The rows are
// locked and the signals stored directly, as the await reads them; the caller's SELECT and UPDATE
// on oban_jobs and INSERT on oban_signals are checked. C-style.
int SignalJobs(Oid schema, int64 *ids, int count, Datum payload) {
    qsort(ids, count, sizeof(int64), CompareInt64s);
    int distinct = 0;
    for (int i = 0; i < count; i++)
        if (distinct == 0 || ids[distinct - 1] != ids[i]) ids[distinct++] = ids[i];

    JobsTable t = OpenJobs(schema, RowShareLock, ACL_SELECT | ACL_UPDATE);
    Oid jobs = RelationGetRelid(t.jobs);
    AttrNumber queue = ExtensionTableColumn(jobs, "queue");
    AttrNumber priority = ExtensionTableColumn(jobs, "priority");
    AttrNumber scheduled_at = ExtensionTableColumn(jobs, "scheduled_at");
    Datum stored = PointerGetDatum(PG_DETOAST_DATUM(payload));
    // Opened first, as the statement's privileges were checked before any row: a caller without
    // INSERT on oban_signals is refused whatever it targets.
    MailboxWriter mailbox{};
    OpenMailboxWriter(&mailbox, schema);
    ArrayBuildState *parked = initArrayResult(INT8OID, CurrentMemoryContext, false);
    int parked_count = 0, took = 0;
    // The transaction's snapshot in REPEATABLE READ and SERIALIZABLE, as the statement's was; a new
    // one in READ COMMITTED, which sees what this transaction did so far.
    CommandCounterIncrement();
    Snapshot snapshot = RegisterSnapshot(GetTransactionSnapshot());
    TupleTableSlot *slot = t.slot;
    for (int i = 0; i < distinct; i++) {
        if (!FindJob(t, snapshot, ids[i])) continue;
        bool is_null = false;
        Datum state = slot_getattr(slot, t.state, &is_null);
        if (is_null || !Unfinished(StateOf(state))) continue;  // as seen: not locked
        if (!LockFoundJob(t, snapshot, ids[i])) continue;
        state = slot_getattr(slot, t.state, &is_null);
        JobState now = is_null ? kUnknownState : StateOf(state);
        if (!Unfinished(now)) continue;  // finished meanwhile
        StoreSignal(&mailbox, ids[i], stored);
        took++;
        if (now == kExecuting) RecordWake(ids[i]);  // only an executing job can have a backend awaiting it
        if (now == kSuspended) {
            bool meta_null = false;
            Datum meta = slot_getattr(slot, t.meta, &meta_null);
            if (!meta_null && MetaHas(DatumGetJsonbP(meta), "wait_until")) {
                accumArrayResult(parked, Int64GetDatum(ids[i]), false, INT8OID, CurrentMemoryContext);
                parked_count++;
            }
        }
        if (now == kAvailable) {
            bool queue_null = false, priority_null = false, scheduled_null = false;
            Datum queue_value = slot_getattr(slot, queue, &queue_null);
            Datum priority_value = slot_getattr(slot, priority, &priority_null);
            Datum scheduled_value = slot_getattr(slot, scheduled_at, &scheduled_null);
            if (!queue_null && !priority_null && !scheduled_null)
                RecordAvailableJob(jobs, queue_value,
                                   FetchKeyOf(priority_value, scheduled_value, Int64GetDatum(ids[i])));
        }
    }
    UnregisterSnapshot(snapshot);
    CloseDirectInsert(&mailbox.insert);
    CloseJobs(&t);
    if (parked_count > 0) {
        Datum values[1] = {makeArrayResult(parked, CurrentMemoryContext)};
        BeginSql(schema);
        Execute(&unpark_jobs, schema, values, nullptr);
        EndSql();
    }
    return took;
}

// --- awaiting --------------------------------------------------------------------------------------

// Reads a look: the row of take_or_park (C-style; between BeginSql and EndSql).
Look ReadLook(MemoryContext caller) {
    HeapTuple row = SPI_tuptable->vals[0];
    TupleDesc descriptor = SPI_tuptable->tupdesc;
    Look look{};
    bool is_null = false;
    MemoryContext spi = MemoryContextSwitchTo(caller);  // outlive SPI_finish
    look.state = SPI_getvalue(row, descriptor, 1);
    look.found = look.state != nullptr;
    look.deadline = SPI_getvalue(row, descriptor, 2);
    look.received = DatumGetBool(SPI_getbinval(row, descriptor, 4, &is_null));
    if (look.received) look.payload = datumCopy(SPI_getbinval(row, descriptor, 3, &is_null), false, -1);
    MemoryContextSwitchTo(spi);
    return look;
}

[[noreturn]] void NotExecuting(int64 job_id, const Look &look, bool before) {
    if (signal_waits != nullptr) ConditionVariableCancelSleep();
    if (!look.found)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("job %lld does not exist", (long long)job_id),
                        errhint("oban_await_signal is called by the worker running an executing job.")));
    ereport(ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
             before ? errmsg("job %lld is not executing", (long long)job_id)
                    : errmsg("job %lld stopped executing while it awaited a signal", (long long)job_id),
             errdetail("The job is %s.", look.state),
             errhint("oban_await_signal is called by the worker running an executing job.")));
}

int64 IntervalMicros(const Interval *interval) {
    return interval->time + (int64)interval->day * USECS_PER_DAY +
           (int64)interval->month * DAYS_PER_MONTH * USECS_PER_DAY;
}

// Under the job's row lock (LockJob; `locked`, the job as locked, executing), with a fresh
// snapshot: a signal committed meanwhile is received, otherwise the job parks. C-style.
Look TakeOrPark(Oid schema, int64 job_id, const Look &locked, bool keep_deadline, bool has_wait_for,
                Datum wait_for, MemoryContext caller) {
    Datum park_args[3] = {Int64GetDatum(job_id), BoolGetDatum(keep_deadline), wait_for};
    const char nulls[3] = {' ', ' ', has_wait_for ? ' ' : 'n'};
    bool has_signal = HasSignal(schema, job_id);
    BeginSql(schema);
    if (has_signal) {
        Execute(&take_or_park, schema, park_args, nulls);
        Look look = ReadLook(caller);
        EndSql();
        if (!IsExecuting(look)) NotExecuting(job_id, look, false);
        return look;
    }
    uint64 parked = Execute(&park_job, schema, park_args, nulls);
    EndSql();
    // The job is locked and was executing: only this transaction could have changed it since.
    if (parked != 1) elog(ERROR, "job %lld could not be parked", (long long)job_id);
    return locked;  // received: false
}

// The one row oban_await_signal returns after a park or a signal taken under the lock.
void PutAwaitResult(ReturnSetInfo *result, const Look &look) {
    Datum values[2] = {CStringGetTextDatum(look.received ? "received" : "suspended"),
                       look.received ? look.payload : (Datum)0};
    bool nulls[2] = {false, !look.received};
    tuplestore_putvalues(result->setResult, result->setDesc, values, nulls);
}

oban::core::Deadline ReadDeadline(const char *text) {
    if (text == nullptr) return oban::core::Deadline{};
    return oban::core::ParseDeadline(text);
}

}  // namespace

void InitSignals() {
    DefineCustomIntVariable("oban_pro.max_signal_bytes", "Largest signal payload oban_signal accepts.",
                            "Larger payloads are refused with SQLSTATE 54000.", &max_signal_bytes,
                            1024 * 1024, 16, 256 * 1024 * 1024, PGC_USERSET, GUC_UNIT_BYTE, nullptr, nullptr,
                            nullptr);
    RegisterXactCallback(OnTransactionEvent, nullptr);
    RegisterSubXactCallback(OnSubtransactionEvent, nullptr);
    if (!process_shared_preload_libraries_in_progress) return;
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = RequestSharedMemory;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = StartSharedMemory;
}

}  // namespace oban::pg

using namespace oban::pg;

OBAN_FUNCTION(oban_signal) {
    RequireArgument(fcinfo, 0, "job_id");
    CheckPayload(fcinfo, 1);
    int64 id = PG_GETARG_INT64(0);
    PG_RETURN_BOOL(SignalJobs(FunctionSchema(fcinfo), &id, 1, PG_GETARG_DATUM(1)) > 0);
}

OBAN_FUNCTION(oban_signal_many) {
    RequireArgument(fcinfo, 0, "job_ids");
    CheckPayload(fcinfo, 1);
    // NULL elements name no job; a multi-dimensional array is read flat.
    Datum *elements;
    bool *nulls;
    int count;
    deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
                      &elements, &nulls, &count);
    auto *ids = static_cast<int64 *>(palloc(sizeof(int64) * Max(count, 1)));
    int named = 0;
    for (int i = 0; i < count; i++)
        if (!nulls[i]) ids[named++] = DatumGetInt64(elements[i]);
    PG_RETURN_INT32(SignalJobs(FunctionSchema(fcinfo), ids, named, PG_GETARG_DATUM(1)));
}

OBAN_FUNCTION(oban_workflow_signal) {
    RequireArgument(fcinfo, 0, "workflow_id");
    RequireArgument(fcinfo, 1, "name");
    CheckPayload(fcinfo, 2);
    Oid schema = FunctionSchema(fcinfo);
    BeginSql(schema);
    Datum values[2] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)};
    uint64 found = Execute(&workflow_steps, schema, values, nullptr);
    int took = 0;
    if (found > 0) {
        auto *ids = static_cast<int64 *>(palloc(sizeof(int64) * found));
        for (uint64 i = 0; i < found; i++) {
            bool is_null = false;
            ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &is_null));
        }
        took = SignalJobs(schema, ids, (int)found, PG_GETARG_DATUM(2));
    }
    EndSql();
    PG_RETURN_INT32(took);
}

// See SPEC §6. C-style throughout: the sleeps check for interrupts (statement_timeout, cancel,
// termination) and may leave by longjmp; no C++ object is live here. Aborting the transaction
// cancels a prepared condition-variable sleep.
OBAN_FUNCTION(oban_await_signal) {
    RequireArgument(fcinfo, 0, "job_id");
    RequireArgument(fcinfo, 2, "wait_timeout");
    if (!PG_ARGISNULL(1)) RequireDelay(PG_GETARG_INTERVAL_P(1), "wait_for");
    RequireDelay(PG_GETARG_INTERVAL_P(2), "wait_timeout");
    RequireReadCommitted("oban_await_signal", "It must see signals committed while it waits.");
    InitMaterializedSRF(fcinfo, 0);
    auto *result = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

    int64 job_id = PG_GETARG_INT64(0);
    bool has_wait_for = !PG_ARGISNULL(1);
    Datum wait_for = has_wait_for ? PG_GETARG_DATUM(1) : (Datum)0;
    TimestampTz block_until = GetCurrentTimestamp() + IntervalMicros(PG_GETARG_INTERVAL_P(2));
    Oid schema = FunctionSchema(fcinfo);
    MemoryContext caller = CurrentMemoryContext;
    ConditionVariable *cv = signal_waits != nullptr ? &signal_waits->slots[SlotOf(job_id)] : nullptr;

    const char *status = nullptr;
    Datum payload = (Datum)0;
    // With no time to block (wait_timeout 0), the call parks unless a signal is stored or the
    // deadline has passed: lock the job at once and decide under the lock, one look fewer.
    if (block_until <= GetCurrentTimestamp()) {
        Look locked = LockJob(schema, job_id, caller);
        if (!IsExecuting(locked)) NotExecuting(job_id, locked, true);
        oban::core::Deadline deadline = ReadDeadline(locked.deadline);
        if (oban::core::DecideAwait(deadline, GetCurrentTimestamp(), block_until).step ==
            oban::core::AwaitStep::Park) {
            bool keep = deadline.kind != oban::core::Deadline::Kind::None;
            Look look = TakeOrPark(schema, job_id, locked, keep, has_wait_for, wait_for, caller);
            PutAwaitResult(result, look);
            return (Datum)0;
        }
        // The deadline has passed: the ordinary look below receives or times out.
    }
    // On the waiting list before the first look, so a commit between a look and a sleep still wakes.
    if (cv != nullptr) ConditionVariablePrepareToSleep(cv);
    // Each look's memory goes with the next: a long wait without preloading looks every kPollMs.
    MemoryContext look_memory = AllocSetContextCreate(caller, "oban_pro await look", ALLOCSET_SMALL_SIZES);
    for (bool first = true;; first = false) {
        MemoryContextReset(look_memory);
        MemoryContextSwitchTo(look_memory);
        Look look = TakeSignal(schema, job_id, caller);
        MemoryContextSwitchTo(caller);
        if (!IsExecuting(look)) NotExecuting(job_id, look, first);
        if (look.received) {
            if (look.deadline != nullptr) {  // the job was staged at its deadline, then signalled
                Datum values[1] = {Int64GetDatum(job_id)};
                BeginSql(schema);
                Execute(&clear_deadline, schema, values, nullptr);
                EndSql();
            }
            status = "received";
            payload = look.payload;
            break;
        }
        oban::core::Deadline deadline = ReadDeadline(look.deadline);
        oban::core::AwaitDecision decision =
            oban::core::DecideAwait(deadline, GetCurrentTimestamp(), block_until);
        if (decision.step == oban::core::AwaitStep::Timeout) {
            Datum values[1] = {Int64GetDatum(job_id)};
            BeginSql(schema);
            Execute(&clear_deadline, schema, values, nullptr);
            EndSql();
            status = "timeout";
            break;
        }
        if (decision.step == oban::core::AwaitStep::Park) {
            if (cv != nullptr) ConditionVariableCancelSleep();
            cv = nullptr;
            Look locked = LockJob(schema, job_id, caller);  // may wait for a signal in flight
            if (!IsExecuting(locked)) NotExecuting(job_id, locked, false);
            bool keep = deadline.kind != oban::core::Deadline::Kind::None;
            look = TakeOrPark(schema, job_id, locked, keep, has_wait_for, wait_for, caller);
            PutAwaitResult(result, look);
            return (Datum)0;
        }
        long sleep_ms = (long)((decision.sleep_us + 999) / 1000);
        if (cv != nullptr) {
            (void)ConditionVariableTimedSleep(cv, sleep_ms, PG_WAIT_EXTENSION);
        } else {
            (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, Min(sleep_ms, kPollMs),
                            PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
        }
    }
    if (cv != nullptr) ConditionVariableCancelSleep();

    Datum values[2] = {CStringGetTextDatum(status), payload};
    bool nulls[2] = {false, payload == (Datum)0};
    tuplestore_putvalues(result->setResult, result->setDesc, values, nulls);
    return (Datum)0;
}
