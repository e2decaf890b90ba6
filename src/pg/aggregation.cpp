// Per-state counts of workflows, maintained without hot rows.
//
// A row trigger on oban_jobs accumulates, in backend memory, how each statement changes the counts
// of each workflow it touches (and which steps finished). A statement trigger then appends one
// journal row per workflow (oban_workflow_journal). Appending never waits on another transaction,
// so concurrent acks of one workflow never queue behind each other; oban_flush_workflows folds the
// journal into oban_workflow_rows in short transactions of its own, and the oban_workflows view adds
// whatever is not folded yet, so reads are exact for all committed work.
//
// Why per statement rather than per transaction: the journal rows are written inside the statement
// that caused them, so a rolled-back statement, savepoint or transaction takes its deltas with it,
// and the transaction itself sees its own changes in oban_workflows at once. Oban acks and inserts
// are one statement per transaction, so this costs nothing over batching per transaction.
#include "pg/aggregation.hpp"

#include <algorithm>

#include "pg/args.hpp"
#include "pg/meta.hpp"
#include "pg/restore.hpp"
#include "pg/sql.hpp"
#include "pg/states.hpp"
#include "pg/steps.hpp"
#include "pg/worker.hpp"
#include "pg/workflows.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace oban::pg {

namespace {

struct DeltaKey {
    SubTransactionId subid;
    const char *workflow_id;
};

// What the current statement did to one workflow.
struct WorkflowDelta {
    DeltaKey key;  // must be first (dynahash)
    Oid schema;
    int32 counts[kStateCount];
    bool started;
    Timestamp started_at;
    List *finished_names;   // char *, steps that reached completed, cancelled or discarded
    List *finished_states;  // char *, their states
    // The workflow's parent (meta.sup_workflow_id of the first of its jobs the statement changed).
    bool parent_known;
    char *parent_id;
    // Set when a job of the workflow was inserted: its identity, to create the workflow's row.
    bool inserted;
    char *name, *sub_name;
    bool is_unique, ignore_cancelled, ignore_discarded, ignore_deleted;
};

HTAB *deltas = nullptr;  // in TopTransactionContext
bool journal_written = false;
// Whether a job may wait on what the transaction finished: then its commit asks the worker for a
// flush within oban_pro.flush_delay (the flush releases it), otherwise within oban_pro.fold_delay
// (the flush only folds counts, which oban_workflows reads exactly either way).
bool flush_soon = false;

// The journal rows this transaction's flushes put back (FoldBatch), which its next rounds leave:
// their workflows' rows are held, most likely until after this flush. Ascending (the journal's
// sequence gives them their ids in turn).
int64 *written_back = nullptr;  // in TopTransactionContext
int written_back_count = 0, written_back_capacity = 0;

bool WrittenBack(int64 id) {
    return written_back_count > 0 &&
           bsearch(&id, written_back, written_back_count, sizeof(int64), CompareInt64s) != nullptr;
}

void RememberWrittenBack(int64 id) {
    if (written_back_count == written_back_capacity) {
        written_back_capacity = Max(16, written_back_capacity * 2);
        written_back = static_cast<int64 *>(
            written_back == nullptr
                ? MemoryContextAlloc(TopTransactionContext, sizeof(int64) * written_back_capacity)
                : repalloc(written_back, sizeof(int64) * written_back_capacity));
    }
    Assert(written_back_count == 0 || written_back[written_back_count - 1] < id);
    written_back[written_back_count++] = id;
}

uint32 HashDeltaKey(const void *key, Size) {
    auto *k = static_cast<const DeltaKey *>(key);
    return hash_combine(string_hash(k->workflow_id, NAMEDATALEN), murmurhash32(k->subid));
}

int MatchDeltaKey(const void *a, const void *b, Size) {
    auto *x = static_cast<const DeltaKey *>(a);
    auto *y = static_cast<const DeltaKey *>(b);
    return x->subid == y->subid && strcmp(x->workflow_id, y->workflow_id) == 0 ? 0 : 1;
}

void *CopyDeltaKey(void *dest, const void *src, Size) {
    auto *target = static_cast<DeltaKey *>(dest);
    auto *source = static_cast<const DeltaKey *>(src);
    target->subid = source->subid;
    target->workflow_id = MemoryContextStrdup(TopTransactionContext, source->workflow_id);
    return dest;
}

HTAB *Deltas() {
    if (deltas == nullptr) {
        HASHCTL control{};
        control.keysize = sizeof(DeltaKey);
        control.entrysize = sizeof(WorkflowDelta);
        control.hash = HashDeltaKey;
        control.match = MatchDeltaKey;
        control.keycopy = CopyDeltaKey;
        control.hcxt = TopTransactionContext;
        deltas = hash_create("oban_pro workflow deltas", 16, &control,
                             HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_KEYCOPY | HASH_CONTEXT);
    }
    return deltas;
}

WorkflowDelta *DeltaFor(const char *workflow_id, Oid schema, SubTransactionId subid) {
    DeltaKey key{subid, workflow_id};
    bool found = false;
    auto *delta = static_cast<WorkflowDelta *>(hash_search(Deltas(), &key, HASH_ENTER, &found));
    if (!found) {
        delta->schema = schema;
        memset(delta->counts, 0, sizeof(delta->counts));
        delta->started = false;
        delta->started_at = 0;
        delta->finished_names = NIL;
        delta->finished_states = NIL;
        delta->parent_known = false;
        delta->inserted = false;
        delta->name = delta->parent_id = delta->sub_name = nullptr;
        delta->is_unique = delta->ignore_cancelled = delta->ignore_discarded = delta->ignore_deleted = false;
    }
    return delta;
}

// How per-state count deltas change a workflow's count of unfinished jobs: below zero, the workflow
// may have finished.
int32 UnfinishedChange(const int32 (&counts)[kStateCount]) {
    int32 change = 0;
    for (int s = 0; s < kStateCount; s++)
        if (!IsFinished(static_cast<JobState>(s))) change += counts[s];
    return change;
}

struct Columns {
    int state, meta, attempted_at, id;
};

Columns FindColumns(TupleDesc descriptor) {
    return Columns{SPI_fnumber(descriptor, "state"), SPI_fnumber(descriptor, "meta"),
                   SPI_fnumber(descriptor, "attempted_at"), SPI_fnumber(descriptor, "id")};
}

Datum Column(HeapTuple row, TupleDesc descriptor, int column, bool *is_null) {
    return heap_getattr(row, column, descriptor, is_null);
}

// --- writing the journal -----------------------------------------------------------------------

// A workflow the statement added jobs to: its id (text) and what its row is made with, counts
// included (`counts`, nullptr: none) if the statement makes it.
struct NewWorkflow {
    Datum id;
    const char *name, *parent_id, *sub_name;
    bool is_unique, ignore_cancelled, ignore_discarded, ignore_deleted;
    const CountDelta *counts;
};

// Where the columns of oban_workflow_rows that a new row is made with are, and the table's defaults
// for the others, ready to evaluate (the others are the table's own business: counts, timestamps,
// what later versions add). Made once per backend, and again when the table changes (or is dropped
// and made again).
struct RowsShape {
    Oid relation = InvalidOid;
    MemoryContext context = nullptr;  // the defaults' expression states
    AttrNumber id, name, parent_id, sub_name, is_unique, ignore_cancelled, ignore_discarded, ignore_deleted;
    // What a fold changes (FoldInto).
    AttrNumber counts[kStateCount], started_at, completed_at, updated_at;
    int default_count;
    AttrNumber *default_columns;
    ExprState **defaults;
};

RowsShape rows_shape;

void ForgetRowsShape(Datum, Oid relation) {
    if (relation == InvalidOid || relation == rows_shape.relation) rows_shape.relation = InvalidOid;
}

const RowsShape &RowsShapeOf(Relation rows) {
    Oid relation = RelationGetRelid(rows);
    if (rows_shape.relation == relation) return rows_shape;
    static bool callback_registered = false;
    if (!callback_registered) {
        CacheRegisterRelcacheCallback(ForgetRowsShape, (Datum)0);
        callback_registered = true;
    }
    if (rows_shape.context != nullptr) MemoryContextDelete(rows_shape.context);
    rows_shape.context = nullptr;
    RowsShape shape;
    shape.id = ExtensionTableColumn(relation, "id");
    shape.name = ExtensionTableColumn(relation, "name");
    shape.parent_id = ExtensionTableColumn(relation, "parent_id");
    shape.sub_name = ExtensionTableColumn(relation, "sub_name");
    shape.is_unique = ExtensionTableColumn(relation, "is_unique");
    shape.ignore_cancelled = ExtensionTableColumn(relation, "ignore_cancelled");
    shape.ignore_discarded = ExtensionTableColumn(relation, "ignore_discarded");
    shape.ignore_deleted = ExtensionTableColumn(relation, "ignore_deleted");
    for (int s = 0; s < kStateCount; s++) shape.counts[s] = ExtensionTableColumn(relation, kStateNames[s]);
    shape.started_at = ExtensionTableColumn(relation, "started_at");
    shape.completed_at = ExtensionTableColumn(relation, "completed_at");
    shape.updated_at = ExtensionTableColumn(relation, "updated_at");
    shape.context =
        AllocSetContextCreate(CacheMemoryContext, "oban_pro workflow row defaults", ALLOCSET_SMALL_SIZES);
    MemoryContext caller = MemoryContextSwitchTo(shape.context);
    TupleDesc descriptor = RelationGetDescr(rows);
    shape.default_count = 0;
    shape.default_columns = static_cast<AttrNumber *>(palloc(sizeof(AttrNumber) * descriptor->natts));
    shape.defaults = static_cast<ExprState **>(palloc(sizeof(ExprState *) * descriptor->natts));
    for (AttrNumber column = 1; column <= descriptor->natts; column++) {
        if (TupleDescAttr(descriptor, column - 1)->attisdropped) continue;
        if (column == shape.id || column == shape.name || column == shape.parent_id ||
            column == shape.sub_name || column == shape.is_unique || column == shape.ignore_cancelled ||
            column == shape.ignore_discarded || column == shape.ignore_deleted)
            continue;
        Node *value = build_column_default(rows, column);
        if (value == nullptr) continue;  // NULL by default
        shape.default_columns[shape.default_count] = column;
        shape.defaults[shape.default_count++] = ExecInitExpr(expression_planner((Expr *)value), nullptr);
    }
    MemoryContextSwitchTo(caller);
    shape.relation = relation;
    rows_shape = shape;
    return rows_shape;
}

// A row's count (`values`) of its workflow's finished jobs, or of its unfinished ones.
int32 JobsIn(const Datum *values, const RowsShape &shape, bool finished) {
    int32 jobs = 0;
    for (int s = 0; s < kStateCount; s++)
        if (IsFinished(static_cast<JobState>(s)) == finished)
            jobs += DatumGetInt32(values[shape.counts[s] - 1]);
    return jobs;
}

// Whether a row's counts say its workflow's own jobs all finished: none unfinished, one at least.
bool LooksFinished(const Datum *values, const RowsShape &shape) {
    return JobsIn(values, shape, false) == 0 && JobsIn(values, shape, true) > 0;
}

// A row's `values` and `nulls` with `delta` added, as the flush's fold has always changed it:
// counts summed, the earliest start kept, completed_at set when the last unfinished job finishes
// (cleared when one comes back), and repair's clock (updated_at) NULL while no job waits, moved on
// at most once a second, so that most folds change no indexed column.
// Whether the workflow's own jobs all finished with this delta: the row says so now (LooksFinished)
// and did not before. Not "its unfinished count fell to zero": a batch may hold a new workflow's
// insert as well as its last ack, adding up to no change (0.6.0 missed those).
bool AddDelta(const RowsShape &shape, Datum *values, bool *nulls, const CountDelta &delta) {
    bool finished_before = LooksFinished(values, shape);
    int32 unfinished_before = JobsIn(values, shape, false), change = UnfinishedChange(delta.counts);
    int32 suspended = DatumGetInt32(values[shape.counts[kSuspended] - 1]) + delta.counts[kSuspended];
    for (int s = 0; s < kStateCount; s++)
        values[shape.counts[s] - 1] =
            Int32GetDatum(DatumGetInt32(values[shape.counts[s] - 1]) + delta.counts[s]);
    AttrNumber started = shape.started_at - 1;
    if (delta.started && (nulls[started] || delta.started_at < DatumGetTimestamp(values[started]))) {
        values[started] = TimestampGetDatum(delta.started_at);
        nulls[started] = false;
    }
    AttrNumber completed = shape.completed_at - 1;
    if (unfinished_before + change > 0) {
        nulls[completed] = true;
    } else if (unfinished_before != 0 || nulls[completed]) {
        values[completed] = TimestampGetDatum(delta.recorded_at);
        nulls[completed] = false;
    }
    AttrNumber clock = shape.updated_at - 1;
    Timestamp now = TransactionStartUtc();
    if (suspended <= 0) {
        nulls[clock] = true;
    } else if (nulls[clock] || DatumGetTimestamp(values[clock]) <= now - USECS_PER_SEC) {
        values[clock] = TimestampGetDatum(now);
        nulls[clock] = false;
    }
    return !finished_before && LooksFinished(values, shape);
}

// Another transaction making the same new workflow's row between one try and the next is a race
// of new workflows' first jobs; a handful of tries is plenty.
constexpr int kHoldWorkflowTries = 10;

struct WorkflowRows {
    Relation rows;
    AttrNumber id;
    Oid key;
    TupleTableSlot *slot;
    // For making rows, set up by the first row made.
    EState *estate;
    ResultRelInfo *result;
    TupleTableSlot *new_row;
    List *arbiters;  // the primary key, as ON CONFLICT (id) names it
};

// A statement adding jobs to a workflow holds the workflow's row, and its parent's, FOR KEY SHARE
// until it commits, so the prune, which passes over rows it cannot lock (lock_pruned_workflows,
// src/pg/maintenance.cpp), never deletes a row a transaction still open is adding jobs to. KEY
// SHARE conflicts with no lock the fold, repair or other inserts take: inserts into one workflow
// never wait for each other. Locked here rather than by SELECT ... FOR KEY SHARE, which would ask
// the caller for UPDATE on oban_workflow_rows: the lock is the insert's own, which needs INSERT.
void OpenWorkflowRows(WorkflowRows *t, Oid schema) {
    t->rows = OpenExtensionTable(schema, "oban_workflow_rows", RowShareLock, ACL_INSERT);
    t->id = ExtensionTableColumn(RelationGetRelid(t->rows), "id");
    t->key = RelationGetPrimaryKeyIndex(t->rows);
    t->slot = table_slot_create(t->rows, nullptr);
    t->estate = nullptr;
}

void CloseWorkflowRows(WorkflowRows *t) {
    if (t->estate != nullptr) {
        ExecDropSingleTupleTableSlot(t->new_row);
        ExecCloseIndices(t->result);
        FreeExecutorState(t->estate);
    }
    ExecDropSingleTupleTableSlot(t->slot);
    table_close(t->rows, NoLock);  // the lock is held to the end of the transaction
}

// Calls `visit` with each row of `relation` whose text `column` equals `value`, found through
// `index` under `snapshot`: a look-up by key, whatever the table's statistics say.
template <typename Visit>
void ForEachRowWithKey(Relation relation, Oid index, AttrNumber column, Datum value, Snapshot snapshot,
                       Visit visit) {
    ScanKeyData key;
    EqualityKey(&key, relation, column, F_TEXTEQ, value);
    SysScanDesc scan = systable_beginscan(relation, index, OidIsValid(index), snapshot, 1, &key);
    HeapTuple row;
    while (HeapTupleIsValid(row = systable_getnext(scan))) visit(row);
    systable_endscan(scan);
}

// Locks the latest version of workflow `id`'s row, as found with `snapshot`, FOR KEY SHARE, waiting
// for a prune that holds or deletes it: whether the row exists (and is now held). The lock follows
// an update in progress to the row's new version (as SELECT ... FOR KEY SHARE does): a fold, or a
// prune marking the row (prune_retry), may be updating it, and a lock left on the old version
// alone would let a later prune lock the new one and delete the row under this insert's job.
bool HoldWorkflowRow(WorkflowRows *t, Snapshot snapshot, Datum id, LockTupleMode mode = LockTupleKeyShare) {
    bool found = false;
    ItemPointerData tid;
    ForEachRowWithKey(t->rows, t->key, t->id, id, snapshot, [&found, &tid](HeapTuple row) {
        if (!found) tid = row->t_self;
        found = true;
    });
    // KEY SHARE conflicts with no update of a fold (a non-key update), so it is taken on a version
    // being updated as well; a stronger lock waits for the update and takes the new version.
    int flags = TUPLE_LOCK_FLAG_FIND_LAST_VERSION |
                (mode == LockTupleKeyShare ? TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS : 0);
    TM_FailureData failure;
    bool held = found && table_tuple_lock(t->rows, &tid, snapshot, t->slot, GetCurrentCommandId(false), mode,
                                          LockWaitBlock, flags, &failure) == TM_Ok;
    return held;
}

// Makes workflow `w`'s row as INSERT ... ON CONFLICT (id) DO NOTHING would, the columns it does not
// set at their defaults: a speculative insertion, so a transaction making the same row at the same
// moment is waited for and never duplicated. Whether it made the row (false: another transaction
// did). Done directly, as the journal rows are (the table is the extension's own: no triggers,
// rules or policies), not by an INSERT statement: most workflows' first insert makes the row, and
// the executor's setup and teardown of that statement cost more than the rest of the journal
// trigger (bench/RESULTS.md, session 16). OpenWorkflowRows checked the caller's INSERT privilege.
bool MakeWorkflowRow(WorkflowRows *t, const NewWorkflow &w) {
    if (t->estate == nullptr) {
        LockRelationOid(RelationGetRelid(t->rows), RowExclusiveLock);  // as an INSERT takes
        t->estate = CreateExecutorState();
        t->result = makeNode(ResultRelInfo);
        InitResultRelInfo(t->result, t->rows, 1, nullptr, 0);
        ExecOpenIndices(t->result, true);
        t->new_row = MakeSingleTupleTableSlot(RelationGetDescr(t->rows), &TTSOpsVirtual);
        t->arbiters = list_make1_oid(t->key);
    }
    const RowsShape &shape = RowsShapeOf(t->rows);
    TupleTableSlot *slot = t->new_row;
    ExecClearTuple(slot);
    for (int column = 0; column < slot->tts_tupleDescriptor->natts; column++) {
        slot->tts_values[column] = (Datum)0;
        slot->tts_isnull[column] = true;  // dropped columns, and NULL by default
    }
    auto set = [slot](AttrNumber column, Datum value) {
        slot->tts_values[column - 1] = value;
        slot->tts_isnull[column - 1] = false;
    };
    auto set_text = [&set](AttrNumber column, const char *text) {
        if (text != nullptr) set(column, CStringGetTextDatum(text));
    };
    set(shape.id, w.id);
    set_text(shape.name, w.name);
    set_text(shape.parent_id, w.parent_id);
    set_text(shape.sub_name, w.sub_name);
    set(shape.is_unique, BoolGetDatum(w.is_unique));
    set(shape.ignore_cancelled, BoolGetDatum(w.ignore_cancelled));
    set(shape.ignore_discarded, BoolGetDatum(w.ignore_discarded));
    set(shape.ignore_deleted, BoolGetDatum(w.ignore_deleted));
    ExprContext *context = GetPerTupleExprContext(t->estate);
    for (int d = 0; d < shape.default_count; d++) {
        AttrNumber column = shape.default_columns[d];
        slot->tts_values[column - 1] =
            ExecEvalExprSwitchContext(shape.defaults[d], context, &slot->tts_isnull[column - 1]);
    }
    if (w.counts != nullptr) (void)AddDelta(shape, slot->tts_values, slot->tts_isnull, *w.counts);
    ExecStoreVirtualTuple(slot);

    bool made = true;
    for (;;) {
        ItemPointerData conflict;
        // Waits for a transaction inserting the same id; a row that is there is not made again.
        if (!ExecCheckIndexConstraints(t->result, slot, t->estate, &conflict, t->arbiters)) {
            made = false;
            break;
        }
        TransactionId xid = GetCurrentTransactionId();
        uint32 token = SpeculativeInsertionLockAcquire(xid);
        table_tuple_insert_speculative(t->rows, slot, GetCurrentCommandId(true), 0, nullptr, token);
        bool conflicted = false;
        List *recheck =
            ExecInsertIndexTuples(t->result, slot, t->estate, false, true, &conflicted, t->arbiters);
        table_tuple_complete_speculative(t->rows, slot, token, !conflicted);
        SpeculativeInsertionLockRelease(xid);
        list_free(recheck);
        if (!conflicted) break;
        // Another transaction inserted the same id meanwhile: check again (it may have aborted).
    }
    ResetPerTupleExprContext(t->estate);  // the defaults' values
    return made;
}

// Holds the rows of the workflows that the statement added jobs to, and their parents' rows,
// making those that are missing: whether it made each (`made`, `count` of them).
void HoldWorkflowRows(Oid schema, const NewWorkflow *workflows, int count, bool *made) {
    WorkflowRows t{};
    OpenWorkflowRows(&t, schema);
    auto *held = static_cast<bool *>(palloc0(count * sizeof(bool)));
    memset(made, 0, count * sizeof(bool));
    for (int tries = 1;; tries++) {
        // One snapshot per try: a row made after it is not found, fails to be made (another
        // transaction made it) and is found by the next try's.
        Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
        if (tries == 1)
            for (int i = 0; i < count; i++)
                if (workflows[i].parent_id != nullptr)
                    (void)HoldWorkflowRow(&t, snapshot, CStringGetTextDatum(workflows[i].parent_id));
        int missing = 0;
        for (int i = 0; i < count; i++) {
            if (!held[i]) held[i] = HoldWorkflowRow(&t, snapshot, workflows[i].id);
            missing += held[i] ? 0 : 1;
        }
        UnregisterSnapshot(snapshot);
        if (missing == 0) break;
        if (tries == kHoldWorkflowTries)
            ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                            errmsg("could not hold the rows of the workflows being inserted"),
                            errdetail("Other transactions kept making or pruning them."),
                            errhint("Retry the transaction.")));
        // Rows this statement makes are this transaction's until it commits: nothing else can
        // delete them. Any it could not make (made by another transaction since) are held next time.
        for (int i = 0; i < count; i++)
            if (!held[i]) {
                held[i] = made[i] = MakeWorkflowRow(&t, workflows[i]);
                missing -= held[i] ? 1 : 0;
            }
        if (missing == 0) break;
    }
    CloseWorkflowRows(&t);
}

Statement forget_deleted_waits{R"sql(
    WITH gone AS (
        DELETE FROM @extschema@.oban_workflow_waits WHERE job_id = ANY($1)
    )
    DELETE FROM @extschema@.oban_workflow_edges WHERE job_id = ANY($1))sql",
                               1,
                               {INT8ARRAYOID}};

// --- folding deltas into the workflow rows --------------------------------------------------------
//
// A fold adds a workflow's count deltas to its row: the flush's, of the journal rows it takes, and a
// statement's own, of a delta that moves jobs between unfinished states only (a fetch: available →
// executing), which it folds in place rather than journal when the row is free. Each is one update
// of the row, done directly (the table is the extension's own: no triggers, rules or policies), HOT
// unless repair's clock moves.

// A fold's first look-up of each row goes through one scan of the primary key, begun when the
// folder opens under the latest snapshot then and restarted per row: a scan begun and ended per row
// (its B-tree state is 27 kB to allocate), and a snapshot taken per row, cost more than the look-up
// (bench/RESULTS.md, session 23). A row changed since that snapshot is looked up again, under a new one.
struct RowFolder {
    Relation rows;
    Oid key;
    const RowsShape *shape;
    EState *estate;
    ResultRelInfo *result;
    TupleTableSlot *locked, *folded, *found;
    Snapshot snapshot;
    IndexScanDesc scan;  // of the primary key (nullptr: none, the rows are scanned)
    Relation key_index;
};

void OpenRowFolder(RowFolder *f, Relation rows) {
    f->rows = rows;
    f->key = RelationGetPrimaryKeyIndex(rows);
    f->shape = &RowsShapeOf(rows);
    f->estate = CreateExecutorState();
    f->result = makeNode(ResultRelInfo);
    InitResultRelInfo(f->result, rows, 1, nullptr, 0);  // its indexes opened by the first non-HOT fold
    f->locked = table_slot_create(rows, nullptr);
    f->folded = MakeSingleTupleTableSlot(RelationGetDescr(rows), &TTSOpsVirtual);
    f->found = table_slot_create(rows, nullptr);
    f->snapshot = RegisterSnapshot(GetLatestSnapshot());
    f->key_index = OpenIndexOn(f->key, {f->shape->id});
    f->scan = f->key_index == nullptr ? nullptr : index_beginscan(rows, f->key_index, f->snapshot, 1, 0);
}

void CloseRowFolder(RowFolder *f) {
    if (f->scan != nullptr) {
        index_endscan(f->scan);
        index_close(f->key_index, AccessShareLock);
    }
    UnregisterSnapshot(f->snapshot);
    ExecDropSingleTupleTableSlot(f->found);
    ExecDropSingleTupleTableSlot(f->folded);
    ExecDropSingleTupleTableSlot(f->locked);
    ExecCloseIndices(f->result);
    FreeExecutorState(f->estate);
    table_close(f->rows, NoLock);  // the lock is held to the end of the transaction
}

enum class Fold { Done, Held, Missing };

// Whether a fold in place may leave workflow `id` (its row deformed in the folder's `folded` slot)
// counting no unfinished job of its own, rather than leave the delta to the journal: only a
// workflow that is no sub-workflow (whose finish may finish its parent's tree, which the flush
// works out) and that no job waits on as a whole (AnyJobWaitsOnWhole: an insert still running
// counts). Only the flush releases those jobs, and it hears of a finish only from the journal. An
// insert that adds such a job after this look locks the row FOR SHARE before it reads the tree's
// state (LockWorkflowRowShared), which waits for this fold's transaction, so it sees the finish;
// had it locked the row first, this fold would find the row held and journal.
bool MayFinishInPlace(RowFolder *f, Datum id) {
    if (!f->folded->tts_isnull[f->shape->parent_id - 1]) return false;
    FinishedWorkflow workflow{id, (Datum)0};
    return !AnyJobWaitsOnWhole(RelationGetNamespace(f->rows), list_make1(&workflow), true);
}

// Adds `delta` to the latest version of workflow `id`'s row without waiting for a transaction that
// holds it: Held then (a statement then journals its delta; the flush puts it back in the journal).
// `lock_if_shared`: a row that other transactions only hold FOR KEY SHARE (inserts adding jobs to
// the workflow) is locked and folded, at the cost of a lock record; otherwise it is Held too.
// `unless_finishing`: a delta after which the row counts no unfinished job of the workflow's own
// (the workflow may finish with it) is not folded either (Held) unless MayFinishInPlace: the flush,
// folding it from the journal, hears of the finish.
Fold FoldInto(RowFolder *f, Datum id, const CountDelta &delta, bool lock_if_shared, bool *finished,
              bool unless_finishing = false) {
    const RowsShape &shape = *f->shape;
    for (int tries = 0; tries < 3; tries++) {
        bool first = tries == 0 && f->scan != nullptr;
        Snapshot snapshot = first ? f->snapshot : RegisterSnapshot(GetLatestSnapshot());
        bool found = false;
        ItemPointerData tid;
        TupleTableSlot *folded = f->folded;
        ExecClearTuple(folded);
        // A copy: the values must outlive the buffer the scan leaves.
        auto take = [&](HeapTuple row, ItemPointer at) {
            found = true;
            tid = *at;
            heap_deform_tuple(heap_copytuple(row), RelationGetDescr(f->rows), folded->tts_values,
                              folded->tts_isnull);
        };
        if (first) {
            ScanKeyData key;
            IndexEqualityKey(&key, f->key_index, 1, F_TEXTEQ, id);
            index_rescan(f->scan, &key, 1, nullptr, 0);
            if (index_getnext_slot(f->scan, ForwardScanDirection, f->found)) {
                bool should_free = false;
                HeapTuple row = ExecFetchSlotHeapTuple(f->found, false, &should_free);
                take(row, &f->found->tts_tid);
                if (should_free) heap_freetuple(row);
            }
            ExecClearTuple(f->found);
        } else {
            ForEachRowWithKey(f->rows, f->key, shape.id, id, snapshot, [&](HeapTuple row) {
                if (!found) take(row, &row->t_self);
            });
        }
        if (!found) {
            if (!first) UnregisterSnapshot(snapshot);
            return Fold::Missing;
        }
        *finished = AddDelta(shape, folded->tts_values, folded->tts_isnull, delta);
        if (unless_finishing && JobsIn(folded->tts_values, shape, false) <= 0 && !MayFinishInPlace(f, id)) {
            if (!first) UnregisterSnapshot(snapshot);
            return Fold::Held;
        }
        ExecStoreVirtualTuple(folded);
        CommandId command = GetCurrentCommandId(true);
        TM_FailureData failure;
        LockTupleMode mode;
        bool update_indexes = false;
        TM_Result result = table_tuple_update(f->rows, &tid, folded, command, snapshot, InvalidSnapshot,
                                              false, &failure, &mode, &update_indexes);
        if (result == TM_BeingModified && lock_if_shared) {
            result = table_tuple_lock(f->rows, &tid, snapshot, f->locked, command, LockTupleNoKeyExclusive,
                                      LockWaitSkip, 0, &failure);
            if (result == TM_Ok)
                result = table_tuple_update(f->rows, &tid, folded, command, snapshot, InvalidSnapshot, true,
                                            &failure, &mode, &update_indexes);
        }
        if (!first) UnregisterSnapshot(snapshot);
        if (result == TM_Ok) {
            // As an insert: `update` would ask the range table, which this executor state has none
            // of, which columns changed (a hint for the B-tree's bottom-up deletion only).
            if (update_indexes) {
                if (f->result->ri_IndexRelationDescs == nullptr) ExecOpenIndices(f->result, false);
                ExecInsertIndexTuples(f->result, folded, f->estate, false, false, nullptr, NIL);
            }
            ResetPerTupleExprContext(f->estate);
            return Fold::Done;
        }
        if (result == TM_Deleted) return Fold::Missing;
        if (result != TM_Updated) return Fold::Held;
        // Changed and committed since the snapshot: read the new version.
    }
    return Fold::Held;
}

// --- appending to the journal ---------------------------------------------------------------------
//
// Journal rows go straight into the table and its indexes (DirectInsert), not through an INSERT
// statement: for the one or two rows a statement appends, the executor's setup and teardown of an
// INSERT cost twice the insert itself (measured: 64% of the journal trigger's time). Every row here
// sets every NOT NULL column; a count that did not change, and the finished steps of a row that
// finished none, are left NULL (a smaller row: see the install script). The caller's INSERT
// privilege is checked as the statement would.

// Where each column of oban_workflow_journal is, and the sequence of its identity column; looked up
// once per backend, forgotten when the table changes (or is dropped and made again).
struct JournalShape {
    Oid relation = InvalidOid;
    Oid sequence = InvalidOid;
    AttrNumber id, workflow_id, counts[kStateCount], started_at, finished_names, finished_states, recorded_at;
    // Whether an unchanged count and no finished steps may be left NULL: the table of 0.6.0, still
    // there between the library's install and ALTER EXTENSION UPDATE, wants zeros and empty arrays.
    bool sparse;
};

JournalShape journal_shape;

void ForgetJournalShape(Datum, Oid relation) {
    if (relation == InvalidOid || relation == journal_shape.relation) journal_shape.relation = InvalidOid;
}

const JournalShape &ShapeOf(Relation journal) {
    Oid relation = RelationGetRelid(journal);
    if (journal_shape.relation == relation) return journal_shape;
    static bool callback_registered = false;
    if (!callback_registered) {
        CacheRegisterRelcacheCallback(ForgetJournalShape, (Datum)0);
        callback_registered = true;
    }
    JournalShape shape;
    shape.id = ExtensionTableColumn(relation, "id");
    shape.workflow_id = ExtensionTableColumn(relation, "workflow_id");
    for (int s = 0; s < kStateCount; s++) shape.counts[s] = ExtensionTableColumn(relation, kStateNames[s]);
    shape.started_at = ExtensionTableColumn(relation, "started_at");
    shape.finished_names = ExtensionTableColumn(relation, "finished_names");
    shape.finished_states = ExtensionTableColumn(relation, "finished_states");
    shape.recorded_at = ExtensionTableColumn(relation, "recorded_at");
    shape.sequence = getIdentitySequence(relation, shape.id, false);
    TupleDesc descriptor = RelationGetDescr(journal);
    shape.sparse = !TupleDescAttr(descriptor, shape.counts[0] - 1)->attnotnull &&
                   !TupleDescAttr(descriptor, shape.finished_names - 1)->attnotnull;
    shape.relation = relation;
    journal_shape = shape;
    return journal_shape;
}

struct JournalWriter {
    DirectInsert insert;
    const JournalShape *shape;
    bool open;
};

void OpenJournal(JournalWriter *writer, Oid schema) {
    OpenDirectInsert(&writer->insert, schema, "oban_workflow_journal");
    writer->shape = &ShapeOf(writer->insert.relation);
    writer->open = true;
}

// The counts of a statement's `delta`, recorded now.
CountDelta CountsOf(const WorkflowDelta *delta) {
    CountDelta counts{{}, delta->started, delta->started_at, TransactionStartUtc()};
    memcpy(counts.counts, delta->counts, sizeof(counts.counts));
    return counts;
}

// Appends a row of `counts` for workflow `workflow_id` (text), with the steps `names` finished in
// `states` (char * lists): its id.
int64 AppendRow(JournalWriter *writer, Datum workflow_id, const CountDelta &counts, List *names,
                List *states) {
    const JournalShape &shape = *writer->shape;
    TupleTableSlot *row = NewRow(&writer->insert);
    int64 id = nextval_internal(shape.sequence, false);
    SetColumn(row, shape.id, Int64GetDatum(id));
    SetColumn(row, shape.workflow_id, workflow_id);
    for (int s = 0; s < kStateCount; s++)
        if (counts.counts[s] != 0 || !shape.sparse)
            SetColumn(row, shape.counts[s], Int32GetDatum(counts.counts[s]));
    if (counts.started) SetColumn(row, shape.started_at, TimestampGetDatum(counts.started_at));
    if (names != NIL || !shape.sparse) {
        SetColumn(row, shape.finished_names, PointerGetDatum(strlist_to_textarray(names)));
        SetColumn(row, shape.finished_states, PointerGetDatum(strlist_to_textarray(states)));
    }
    SetColumn(row, shape.recorded_at, TimestampGetDatum(counts.recorded_at));
    InsertRow(&writer->insert);
    return id;
}

// The statement's `delta` of workflow `workflow_id` (text, which the caller has made already).
void AppendJournalRow(JournalWriter *writer, const WorkflowDelta *delta, Datum workflow_id) {
    AppendRow(writer, workflow_id, CountsOf(delta), delta->finished_names, delta->finished_states);
}

// Appends a row of no counts recording step `step` finished: its id.
int64 AppendFinishedStep(JournalWriter *writer, const StepOutcome &step) {
    return AppendRow(writer, step.workflow_id, CountDelta{{}, false, 0, TransactionStartUtc()},
                     list_make1(TextDatumGetCString(step.name)), list_make1(TextDatumGetCString(step.state)));
}

void CloseJournal(JournalWriter *writer) {
    CloseDirectInsert(&writer->insert);
}

// The steps that the current subtransaction's deltas for `schema` record as completed: their
// workflow ids and names (text), `*count` of them.
void CompletedSteps(Oid schema, SubTransactionId subid, ArrayBuildState *ids, ArrayBuildState *names,
                    int *count) {
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, deltas);
    WorkflowDelta *delta;
    while ((delta = static_cast<WorkflowDelta *>(hash_seq_search(&scan))) != nullptr) {
        if (delta->key.subid != subid || delta->schema != schema) continue;
        ListCell *name, *state;
        forboth(name, delta->finished_names, state, delta->finished_states) {
            if (strcmp(static_cast<char *>(lfirst(state)), "completed") != 0) continue;
            accumArrayResult(ids, CStringGetTextDatum(delta->key.workflow_id), false, TEXTOID,
                             CurrentMemoryContext);
            accumArrayResult(names, CStringGetTextDatum(static_cast<char *>(lfirst(name))), false, TEXTOID,
                             CurrentMemoryContext);
            (*count)++;
        }
    }
}

// A statement's folds in place: the rows' folder, opened at the first (`open`), unless the caller
// may not update the rows (`refused`: its deltas are journalled, as they were for every caller).
struct InPlace {
    RowFolder folder;
    bool open, refused;
};

// Folds `delta` of workflow `id` into its row (FoldInto) if nothing needs to hear of it from the
// journal, and the row is free: whether it did. Nothing does when the delta moves jobs between
// unfinished states only (a fetch, an error to retryable, a release, a park: no job finished, came
// or went), or when it completes steps (an ack) that `settled` (the statement released all their
// dependents itself, or they have none), unless the workflow's own jobs all finish with it and it
// may not finish in place (MayFinishInPlace: the flush hears of such a finish from the journal). A
// statement fetching or completing jobs then leaves no journal row for the flush to fold. Only in
// READ COMMITTED: the row's latest version, which the fold reads, is what the transaction's next
// statement sees anyway, whereas under a transaction snapshot the transaction would see, through
// its own version of the row, counts its snapshot does not. The fold never waits, so a statement
// never queues on a busy workflow's row: a row another transaction holds is left to the journal.
bool FoldedInPlace(InPlace *in_place, Oid schema, const WorkflowDelta *delta, Datum id, bool settled) {
    bool completes = delta->finished_names != NIL;
    ListCell *state;
    foreach (state, delta->finished_states)
        completes = completes && strcmp(static_cast<char *>(lfirst(state)), "completed") == 0;
    if (delta->inserted ||
        (completes ? !settled : delta->finished_names != NIL || UnfinishedChange(delta->counts) != 0) ||
        XactIsoLevel != XACT_READ_COMMITTED || in_place->refused)
        return false;
    if (!in_place->open) {
        Relation rows = OpenExtensionTableIfPermitted(schema, "oban_workflow_rows", RowExclusiveLock,
                                                      ACL_SELECT | ACL_UPDATE);
        if (rows == nullptr) {
            in_place->refused = true;
            return false;
        }
        OpenRowFolder(&in_place->folder, rows);
        in_place->open = true;
    }
    bool finished = false;
    return FoldInto(&in_place->folder, id, CountsOf(delta), false, &finished, completes) == Fold::Done;
}

// Whether a statement's delta for a workflow it added jobs to may go into the workflow's row if the
// statement makes the row, rather than into the journal: jobs added, none finished or started, and
// nothing else. Nothing can have read a row that is being made, so nothing needs to hear of those
// jobs from the journal; a workflow that starts or finishes with its first statement still goes
// through the flush, which hears of both.
bool CountableAtCreation(const WorkflowDelta *delta) {
    if (!delta->inserted || delta->started || delta->finished_names != NIL) return false;
    for (int s = 0; s < kStateCount; s++)
        if (delta->counts[s] < 0 || (IsFinished(static_cast<JobState>(s)) && delta->counts[s] != 0))
            return false;
    return true;
}

// Set while the journal trigger releases dependents in the ack (ReleaseInAck): the release's own
// statement then leaves its deltas (the released jobs leaving `suspended`) to the ack's journal rows,
// which the subtransaction passes them to when it commits, rather than writing a second row per
// workflow for the flush to fold. Only a saving: a statement that writes its own rows is as exact.
bool deferring_to_ack = false;

// Appends the journal rows of every delta recorded by the current subtransaction for `schema`,
// after releasing the dependents that the completed steps leave with nothing to wait for.
void WriteJournal(Oid schema) {
    int deleted_waiting = 0;  // first: the look-ups below find the statement's own jobs
    int64 *deleted_waiting_ids = WriteStepChanges(schema, &deleted_waiting);
    SubTransactionId subid = GetCurrentSubTransactionId();
    ArrayBuildState *completed_ids = initArrayResult(TEXTOID, CurrentMemoryContext, false);
    ArrayBuildState *completed_names = initArrayResult(TEXTOID, CurrentMemoryContext, false);
    int completed = 0;
    CompletedSteps(schema, subid, completed_ids, completed_names, &completed);
    int near = 0, near_edge_count = 0, released_count = 0;
    bool waited_on = false;
    // Whether each completed step leads to a dependent the ack leaves waiting: further from release
    // than the ack counts down, or near but not released (another dep still running, a row held).
    auto *unsettled_steps = static_cast<bool *>(palloc(sizeof(bool) * Max(completed, 1)));
    NearEdge *near_edges = nullptr;
    int64 *released = nullptr;
    int64 *dependents = completed > 0
                            ? DependentsNearRelease(schema, completed_ids->dvalues, completed_names->dvalues,
                                                    completed, kAckReleaseDeps, &near, &waited_on,
                                                    unsettled_steps, &near_edges, &near_edge_count)
                            : nullptr;
    flush_soon = flush_soon || waited_on;
    if (near > 0) {
        deferring_to_ack = true;
        released_count = ReleaseInAck(schema, completed_ids->dvalues, completed_names->dvalues, completed,
                                      dependents, near, &released);
        deferring_to_ack = false;
    }
    for (int e = 0; e < near_edge_count; e++)
        if (released_count == 0 ||
            bsearch(&near_edges[e].job_id, released, released_count, sizeof(int64), CompareInt64s) == nullptr)
            unsettled_steps[near_edges[e].step] = true;
    // Their workflows: the flush counts those dependents' edges down from the journal.
    List *unsettled = NIL;
    for (int i = 0; i < completed; i++)
        if (unsettled_steps[i]) unsettled = lappend(unsettled, DatumGetPointer(completed_ids->dvalues[i]));

    List *rechecked = RecheckConcurrentDeps(schema);

    auto *created_workflows =
        static_cast<NewWorkflow *>(palloc(sizeof(NewWorkflow) * hash_get_num_entries(deltas)));
    int created = 0;
    JournalWriter journal{};
    InPlace in_place{};
    // Workflows that may have finished, which a job may wait on as a whole.
    List *finished = NIL;

    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, deltas);
    WorkflowDelta *delta;
    while ((delta = static_cast<WorkflowDelta *>(hash_seq_search(&scan))) != nullptr) {
        if (delta->key.subid != subid || delta->schema != schema) continue;
        Datum id = CStringGetTextDatum(delta->key.workflow_id);
        bool settled = true;
        ListCell *unsettled_id;
        foreach (unsettled_id, unsettled)
            settled = settled && CompareTexts(PointerGetDatum(lfirst(unsettled_id)), id) != 0;
        if (FoldedInPlace(&in_place, schema, delta, id, settled)) {
            hash_search(deltas, &delta->key, HASH_REMOVE, nullptr);
            continue;
        }
        if (delta->inserted) {
            const CountDelta *counts = nullptr;
            if (CountableAtCreation(delta)) {
                auto *copy = static_cast<CountDelta *>(palloc(sizeof(CountDelta)));
                *copy = CountsOf(delta);
                counts = copy;
            }
            created_workflows[created++] = NewWorkflow{id,
                                                       delta->name,
                                                       delta->parent_id,
                                                       delta->sub_name,
                                                       delta->is_unique,
                                                       delta->ignore_cancelled,
                                                       delta->ignore_discarded,
                                                       delta->ignore_deleted,
                                                       counts};
            if (counts != nullptr) {  // journalled below if the row is there already
                hash_search(deltas, &delta->key, HASH_REMOVE, nullptr);
                continue;
            }
        }
        if (!journal.open) OpenJournal(&journal, schema);
        AppendJournalRow(&journal, delta, id);
        // A step that ended other than completed cancels its dependents (or, with ignore_*, may
        // release them): rare, so such a commit asks for a prompt flush without looking.
        ListCell *state;
        foreach (state, delta->finished_states)
            flush_soon = flush_soon || strcmp(static_cast<char *>(lfirst(state)), "completed") != 0;
        if (!flush_soon && UnfinishedChange(delta->counts) < 0) {
            auto *workflow = static_cast<FinishedWorkflow *>(palloc(sizeof(FinishedWorkflow)));
            *workflow = FinishedWorkflow{
                id, delta->parent_id == nullptr ? (Datum)0 : CStringGetTextDatum(delta->parent_id)};
            finished = lappend(finished, workflow);
        }
        hash_search(deltas, &delta->key, HASH_REMOVE, nullptr);
    }
    if (created > 0) {
        auto *made = static_cast<bool *>(palloc(sizeof(bool) * created));
        HoldWorkflowRows(schema, created_workflows, created, made);
        // A row that was there already (another transaction's, or made by an earlier statement)
        // takes the counts from the journal, as it takes any change.
        for (int i = 0; i < created; i++) {
            if (created_workflows[i].counts == nullptr || made[i]) continue;
            if (!journal.open) OpenJournal(&journal, schema);
            AppendRow(&journal, created_workflows[i].id, *created_workflows[i].counts, NIL, NIL);
        }
    }
    // Each dep that finished while the statement inserted a job waiting on it, as a finished step
    // of no counts: the flush consumes its edges once this transaction commits.
    ListCell *outcome;
    foreach (outcome, rechecked) {
        if (!journal.open) OpenJournal(&journal, schema);
        AppendFinishedStep(&journal, *static_cast<StepOutcome *>(lfirst(outcome)));
        flush_soon = true;
    }
    if (journal.open) {
        CloseJournal(&journal);
        journal_written = true;
    }
    if (in_place.open) CloseRowFolder(&in_place.folder);
    if (!flush_soon && finished != NIL) flush_soon = AnyJobWaitsOnWhole(schema, finished);

    if (deleted_waiting > 0) {  // the waits and edges of the deleted jobs that were waiting
        Datum values[1] = {Int8Array(deleted_waiting_ids, deleted_waiting)};
        BeginSql(schema);
        Execute(&forget_deleted_waits, schema, values, nullptr);
        EndSql();
    }
}

// --- transaction bookkeeping ---------------------------------------------------------------------

void OnTransactionEvent(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
            if (journal_written) WakeFlusher(flush_soon);
            [[fallthrough]];
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            deltas = nullptr;  // its memory goes with TopTransactionContext
            written_back = nullptr;
            written_back_count = written_back_capacity = 0;
            journal_written = false;
            flush_soon = false;
            AtTransactionEndDeps();
            ForgetStepChanges();
            deferring_to_ack = false;        // in case a query cancel left the release
            workflow_deps_prepared = false;  // in case the insert that set it failed
            break;
        default:
            break;
    }
}

// Deltas of a rolled-back subtransaction (and its children, whose ids are larger) are dropped;
// those of a committed one pass to its parent.
void OnSubtransactionEvent(SubXactEvent event, SubTransactionId subid, SubTransactionId parent, void *) {
    if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB) return;
    if (event == SUBXACT_EVENT_ABORT_SUB) workflow_deps_prepared = deferring_to_ack = false;
    AtSubtransactionEndDeps(event == SUBXACT_EVENT_COMMIT_SUB, subid, parent);
    AtSubtransactionEndSteps(event == SUBXACT_EVENT_COMMIT_SUB, subid, parent);
    if (deltas == nullptr) return;
    List *moved = NIL;
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, deltas);
    WorkflowDelta *delta;
    while ((delta = static_cast<WorkflowDelta *>(hash_seq_search(&scan))) != nullptr) {
        if (delta->key.subid < subid) continue;
        if (event == SUBXACT_EVENT_COMMIT_SUB) {
            auto *copy = static_cast<WorkflowDelta *>(
                MemoryContextAlloc(TopTransactionContext, sizeof(WorkflowDelta)));
            *copy = *delta;
            moved = lappend(moved, copy);
        }
        hash_search(deltas, &delta->key, HASH_REMOVE, nullptr);
    }
    ListCell *cell;
    foreach (cell, moved) {
        auto *from = static_cast<WorkflowDelta *>(lfirst(cell));
        WorkflowDelta *into = DeltaFor(from->key.workflow_id, from->schema, parent);
        for (int s = 0; s < kStateCount; s++) into->counts[s] += from->counts[s];
        if (from->started && (!into->started || from->started_at < into->started_at)) {
            into->started = true;
            into->started_at = from->started_at;
        }
        into->finished_names = list_concat(into->finished_names, from->finished_names);
        into->finished_states = list_concat(into->finished_states, from->finished_states);
        if (from->parent_known && !into->parent_known) {
            into->parent_known = true;
            into->parent_id = from->parent_id;
        }
        if (from->inserted && !into->inserted) {
            into->inserted = true;
            into->name = from->name;
            into->sub_name = from->sub_name;
            into->is_unique = from->is_unique;
            into->ignore_cancelled = from->ignore_cancelled;
            into->ignore_discarded = from->ignore_discarded;
            into->ignore_deleted = from->ignore_deleted;
        }
    }
}

// --- taking journal rows for the flush --------------------------------------------------------

// The workflow this backend's last batch stopped in when it came full (its id, in TopMemoryContext),
// or nullptr: the next batch starts after it and goes round, so that under a backlog every
// workflow's rows are folded in turn, the key ordering them by workflow rather than by age.
char *resume_at = nullptr;

void ResumeAt(Datum workflow_id) {
    if (resume_at != nullptr) pfree(resume_at);
    resume_at = nullptr;
    if (workflow_id != (Datum)0)
        resume_at = MemoryContextStrdup(TopMemoryContext, TextDatumGetCString(workflow_id));
}

// Appends the finished steps a journal row records (its finished_names and finished_states).
void AppendFinishedSteps(Datum workflow_id, Datum names, Datum states, ArrayBuildState *step_workflows,
                         ArrayBuildState *step_names, ArrayBuildState *step_states, int *steps) {
    Datum *name_values, *state_values;
    bool *name_nulls, *state_nulls;
    int name_count, state_count;
    deconstruct_array(DatumGetArrayTypeP(names), TEXTOID, -1, false, TYPALIGN_INT, &name_values, &name_nulls,
                      &name_count);
    deconstruct_array(DatumGetArrayTypeP(states), TEXTOID, -1, false, TYPALIGN_INT, &state_values,
                      &state_nulls, &state_count);
    for (int i = 0; i < name_count && i < state_count; i++) {
        if (name_nulls[i] || state_nulls[i]) continue;
        accumArrayResult(step_workflows, workflow_id, false, TEXTOID, CurrentMemoryContext);
        accumArrayResult(step_names, name_values[i], false, TEXTOID, CurrentMemoryContext);
        accumArrayResult(step_states, state_values[i], false, TEXTOID, CurrentMemoryContext);
        (*steps)++;
    }
}

}  // namespace

void LockWorkflowRowShared(Oid schema, Datum workflow_id) {
    WorkflowRows t{};
    OpenWorkflowRows(&t, schema);
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    (void)HoldWorkflowRow(&t, snapshot, workflow_id, LockTupleShare);
    UnregisterSnapshot(snapshot);
    CloseWorkflowRows(&t);
}

// Up to `limit` rows, through the journal's primary key (so a workflow's rows come together), each
// deleted as it is read: only a flush deletes journal rows (and the TRUNCATE trigger and the prune
// of finished workflows, which the flush's locks keep out), so no row needs a lock first (locking
// cost a WAL record and a heap write per row). Done directly rather than by a DELETE ... RETURNING
// whose rows a statement then grouped, unnested and returned through SPI: that statement was most
// of the worker's time under small workflows (bench/RESULTS.md, session 17). The caller's DELETE
// and SELECT privileges are checked as the statement would.
JournalBatch TakeJournalRows(Oid schema, int limit, ArrayBuildState *step_workflows,
                             ArrayBuildState *step_names, ArrayBuildState *step_states, int *steps) {
    Relation journal =
        OpenExtensionTable(schema, "oban_workflow_journal", RowExclusiveLock, ACL_SELECT | ACL_DELETE);
    const JournalShape &shape = ShapeOf(journal);
    Relation key = OpenPrimaryKeyOn(journal, {shape.workflow_id});
    CommandCounterIncrement();  // as a statement would: what this transaction did so far is seen
    Snapshot snapshot = RegisterSnapshot(GetTransactionSnapshot());
    TupleTableSlot *slot = table_slot_create(journal, nullptr);
    // Each workflow's rows summed as they come: its deltas, earliest start and latest record.
    auto *deltas = static_cast<TakenDelta *>(palloc(sizeof(TakenDelta) * Max(limit, 1)));
    int workflows = 0;
    JournalBatch batch{};
    auto take = [&](ScanKey bound) {
        int keys = bound == nullptr ? 0 : 1;
        IndexScanDesc scan = index_beginscan(journal, key, snapshot, keys, 0);
        index_rescan(scan, bound, keys, nullptr, 0);
        while (batch.taken < limit && index_getnext_slot(scan, ForwardScanDirection, slot)) {
            ItemPointerData tid = slot->tts_tid;
            bool id_null = false;
            if (WrittenBack(DatumGetInt64(slot_getattr(slot, shape.id, &id_null)))) continue;
            if (!DeleteFound(journal, &tid, snapshot)) continue;
            batch.taken++;
            slot_getallattrs(slot);
            auto value = [slot](AttrNumber column, bool *is_null) {
                *is_null = slot->tts_isnull[column - 1];
                return slot->tts_values[column - 1];
            };
            bool is_null = false;
            Datum workflow_id = value(shape.workflow_id, &is_null);
            if (workflows == 0 || CompareTexts(deltas[workflows - 1].workflow_id, workflow_id) != 0)
                deltas[workflows++] = TakenDelta{datumCopy(workflow_id, false, -1), {{}, false, 0, 0}};
            CountDelta &into = deltas[workflows - 1].delta;
            for (int s = 0; s < kStateCount; s++) {
                Datum count = value(shape.counts[s], &is_null);
                into.counts[s] += is_null ? 0 : DatumGetInt32(count);
            }
            Datum started_at = value(shape.started_at, &is_null);
            if (!is_null && (!into.started || DatumGetTimestamp(started_at) < into.started_at)) {
                into.started = true;
                into.started_at = DatumGetTimestamp(started_at);
            }
            into.recorded_at = Max(into.recorded_at, DatumGetTimestamp(value(shape.recorded_at, &is_null)));
            bool names_null = false, states_null = false;
            Datum names = value(shape.finished_names, &names_null),
                  states = value(shape.finished_states, &states_null);
            if (!names_null && !states_null)
                AppendFinishedSteps(deltas[workflows - 1].workflow_id, names, states, step_workflows,
                                    step_names, step_states, steps);
        }
        index_endscan(scan);
    };
    if (resume_at == nullptr) {
        take(nullptr);
    } else {
        // The workflows after the one the last full batch stopped in, then from the first up to that
        // one: a workflow whose rows keep coming cannot hold the others back, and the two ranges
        // are apart, so each workflow's rows still come together.
        ScanKeyData bound;
        Datum resume = CStringGetTextDatum(resume_at);
        IndexKey(&bound, key, 1, BTGreaterStrategyNumber, F_TEXT_GT, resume);
        take(&bound);
        IndexKey(&bound, key, 1, BTLessEqualStrategyNumber, F_TEXT_LE, resume);
        take(&bound);
    }
    ResumeAt(batch.taken >= limit ? deltas[workflows - 1].workflow_id : (Datum)0);
    ExecDropSingleTupleTableSlot(slot);
    UnregisterSnapshot(snapshot);
    index_close(key, AccessShareLock);
    table_close(journal, NoLock);  // the lock is held to the end of the transaction

    batch.deltas = deltas;
    batch.workflows = workflows;
    return batch;
}

void FoldBatch(Oid schema, const JournalBatch &batch, List **finished) {
    RowFolder folder;
    OpenRowFolder(
        &folder, OpenExtensionTable(schema, "oban_workflow_rows", RowExclusiveLock, ACL_SELECT | ACL_UPDATE));
    JournalWriter journal{};
    for (int w = 0; w < batch.workflows; w++) {
        const TakenDelta &taken = batch.deltas[w];
        bool became_finished = false;
        Fold fold = FoldInto(&folder, taken.workflow_id, taken.delta, true, &became_finished);
        if (fold == Fold::Done && became_finished) {
            bool no_parent = folder.folded->tts_isnull[folder.shape->parent_id - 1];
            auto *workflow = static_cast<FinishedWorkflow *>(palloc(sizeof(FinishedWorkflow)));
            *workflow = FinishedWorkflow{
                taken.workflow_id,
                no_parent ? (Datum)0
                          : datumCopy(folder.folded->tts_values[folder.shape->parent_id - 1], false, -1)};
            *finished = lappend(*finished, workflow);
        } else if (fold == Fold::Held) {
            // Waiting could deadlock: the holder may wait for this flush (its locks, or a flush
            // of its own). The finished steps were taken for this flush to handle already.
            if (!journal.open) OpenJournal(&journal, schema);
            RememberWrittenBack(AppendRow(&journal, taken.workflow_id, taken.delta, NIL, NIL));
        }
    }
    if (journal.open) {
        CloseJournal(&journal);
        WakeFlusher(false);  // a later flush folds them
    }
    CloseRowFolder(&folder);
}

void PutBackFinishedSteps(Oid schema, List *steps) {
    JournalWriter journal{};
    OpenJournal(&journal, schema);
    ListCell *cell;
    foreach (cell, steps)
        RememberWrittenBack(AppendFinishedStep(&journal, *static_cast<StepOutcome *>(lfirst(cell))));
    CloseJournal(&journal);
    WakeFlusher(false);  // a later flush takes them
}

void InitAggregation() {
    RegisterXactCallback(OnTransactionEvent, nullptr);
    RegisterSubXactCallback(OnSubtransactionEvent, nullptr);
}

void TrackWorkflowRow(TriggerData *trigger) {
    if (RestoringDump(trigger->tg_relation)) return;  // counts come with the dump

    Relation relation = trigger->tg_relation;
    TupleDesc descriptor = RelationGetDescr(relation);
    Columns columns = FindColumns(descriptor);
    Oid schema = RelationGetNamespace(relation);
    SubTransactionId subid = GetCurrentSubTransactionId();
    bool is_null = false;

    HeapTuple old_row = nullptr, new_row = nullptr;
    if (TRIGGER_FIRED_BY_INSERT(trigger->tg_event)) {
        new_row = trigger->tg_trigtuple;
    } else if (TRIGGER_FIRED_BY_UPDATE(trigger->tg_event)) {
        old_row = trigger->tg_trigtuple;
        new_row = trigger->tg_newtuple;
    } else {
        old_row = trigger->tg_trigtuple;
    }

    JobState old_state = kUnknownState, new_state = kUnknownState;
    if (old_row != nullptr) old_state = StateOf(Column(old_row, descriptor, columns.state, &is_null));
    if (new_row != nullptr) new_state = StateOf(Column(new_row, descriptor, columns.state, &is_null));
    if (old_state == new_state) return;

    HeapTuple row = new_row != nullptr ? new_row : old_row;
    Jsonb *meta = DatumGetJsonbP(Column(row, descriptor, columns.meta, &is_null));
    if (is_null) return;
    char *workflow_id = MetaText(meta, "workflow_id", CurrentMemoryContext);
    if (workflow_id == nullptr) return;

    WorkflowDelta *delta = DeltaFor(workflow_id, schema, subid);
    MemoryContext caller = MemoryContextSwitchTo(TopTransactionContext);
    if (old_state != kUnknownState) delta->counts[old_state]--;
    if (new_state != kUnknownState) delta->counts[new_state]++;

    if (new_state == kExecuting) {
        Datum attempted_at = Column(new_row, descriptor, columns.attempted_at, &is_null);
        // A timestamptz counts microseconds from UTC midnight, so it reads as a UTC timestamp.
        Timestamp at = is_null ? GetCurrentTransactionStartTimestamp() : DatumGetTimestamp(attempted_at);
        if (!delta->started || at < delta->started_at) {
            delta->started = true;
            delta->started_at = at;
        }
    }
    if (new_row != nullptr && IsFinished(new_state) && (old_row == nullptr || !IsFinished(old_state))) {
        char *name = MetaText(meta, "name", TopTransactionContext);
        if (name != nullptr) {
            delta->finished_names = lappend(delta->finished_names, name);
            delta->finished_states = lappend(delta->finished_states, pstrdup(kStateNames[new_state]));
        }
    }
    if (!delta->parent_known) {
        delta->parent_known = true;
        delta->parent_id = MetaText(meta, "sup_workflow_id", TopTransactionContext);
    }
    if (old_row == nullptr && !delta->inserted) {
        delta->inserted = true;
        delta->name = MetaText(meta, "workflow_name", TopTransactionContext);
        delta->sub_name = MetaText(meta, "sub_name", TopTransactionContext);
        delta->is_unique = MetaTrue(meta, "workflow_unique");
        delta->ignore_cancelled = MetaTrue(meta, "ignore_cancelled");
        delta->ignore_discarded = MetaTrue(meta, "ignore_discarded");
        delta->ignore_deleted = MetaTrue(meta, "ignore_deleted");
    }
    MemoryContextSwitchTo(caller);
    if (old_row == nullptr || new_row == nullptr) {  // inserted or deleted
        Datum job_id = Column(row, descriptor, columns.id, &is_null);
        if (!is_null)
            RecordStepChange(schema, workflow_id, MetaText(meta, "name", CurrentMemoryContext),
                             DatumGetInt64(job_id), new_row == nullptr,
                             new_row == nullptr && old_state == kSuspended);
    }
}

}  // namespace oban::pg

using namespace oban::pg;

// AFTER INSERT / DELETE, FOR EACH ROW, on rows whose meta has a workflow_id (state changes go
// through oban_jobs_state_changed, src/pg/update_trigger.cpp).
OBAN_FUNCTION(oban_jobs_workflow_track) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("oban_jobs_workflow_track() was not called by a trigger")));
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_AFTER(trigger->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigger->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("oban_jobs_workflow_track() must be an AFTER ROW trigger")));
    TrackWorkflowRow(trigger);
    return PointerGetDatum(nullptr);
}

// AFTER INSERT OR UPDATE OR DELETE, FOR EACH STATEMENT: writes what the statement's rows recorded.
OBAN_FUNCTION(oban_jobs_workflow_journal) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("oban_jobs_workflow_journal() was not called by a trigger")));
    if (deltas == nullptr) return PointerGetDatum(nullptr);  // every job inserted or deleted makes one
    if (deferring_to_ack) return PointerGetDatum(nullptr);   // the ack's own rows carry them
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    WriteJournal(RelationGetNamespace(trigger->tg_relation));
    return PointerGetDatum(nullptr);
}

Statement forget_everything{R"sql(
    WITH journal AS (DELETE FROM @extschema@.oban_workflow_journal),
         waits AS (DELETE FROM @extschema@.oban_workflow_waits),
         edges AS (DELETE FROM @extschema@.oban_workflow_edges),
         steps AS (DELETE FROM @extschema@.oban_workflow_steps)
    DELETE FROM @extschema@.oban_workflow_rows)sql",
                            0,
                            {}};

// AFTER TRUNCATE: with every job gone, so are the workflows and what they waited for.
OBAN_FUNCTION(oban_jobs_workflow_truncate) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("oban_jobs_workflow_truncate() was not called by a trigger")));
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    Oid schema = RelationGetNamespace(trigger->tg_relation);
    if (deltas != nullptr) hash_destroy(deltas);
    deltas = nullptr;
    ForgetStepChanges();
    BeginSql(schema);
    Execute(&forget_everything, schema, nullptr, nullptr);
    EndSql();
    return PointerGetDatum(nullptr);
}

// --- status ----------------------------------------------------------------------------------------

namespace {

// Where the status reads oban_workflow_rows (its columns) and the indexes it looks rows up by (the
// journal's columns are its JournalShape). Looked up once per backend, forgotten when either table
// changes.
struct StatusShape {
    Oid rows = InvalidOid, journal = InvalidOid;
    Oid rows_key, children_index, deltas_index;
    AttrNumber id, name, parent_id, sub_name, counts[kStateCount], inserted_at, started_at, completed_at,
        ignore_cancelled, ignore_discarded;
};

StatusShape status_shape;

void ForgetStatusShape(Datum, Oid relation) {
    if (relation == InvalidOid || relation == status_shape.rows || relation == status_shape.journal)
        status_shape.rows = status_shape.journal = InvalidOid;
}

Oid ExtensionIndex(Oid schema, const char *name) {
    Oid index = get_relname_relid(name, schema);
    if (!OidIsValid(index))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("index \"%s\" is missing", name),
                        errhint("The extension's tables were altered; reinstall or update the extension.")));
    return index;
}

const StatusShape &StatusShapeOf(Relation rows, Relation journal) {
    Oid rows_id = RelationGetRelid(rows), journal_id = RelationGetRelid(journal);
    if (status_shape.rows == rows_id && status_shape.journal == journal_id) return status_shape;
    static bool callback_registered = false;
    if (!callback_registered) {
        CacheRegisterRelcacheCallback(ForgetStatusShape, (Datum)0);
        callback_registered = true;
    }
    Oid schema = RelationGetNamespace(rows);
    StatusShape shape;
    shape.rows_key = ExtensionIndex(schema, "oban_workflow_rows_pkey");
    shape.children_index = ExtensionIndex(schema, "oban_workflow_rows_parent_index");
    // The journal's rows of a workflow: its primary key, by workflow first.
    Relation deltas_key = OpenPrimaryKeyOn(journal, {ExtensionTableColumn(journal_id, "workflow_id")});
    shape.deltas_index = RelationGetRelid(deltas_key);
    index_close(deltas_key, AccessShareLock);
    shape.id = ExtensionTableColumn(rows_id, "id");
    shape.name = ExtensionTableColumn(rows_id, "name");
    shape.parent_id = ExtensionTableColumn(rows_id, "parent_id");
    shape.sub_name = ExtensionTableColumn(rows_id, "sub_name");
    for (int s = 0; s < kStateCount; s++) shape.counts[s] = ExtensionTableColumn(rows_id, kStateNames[s]);
    shape.inserted_at = ExtensionTableColumn(rows_id, "inserted_at");
    shape.started_at = ExtensionTableColumn(rows_id, "started_at");
    shape.completed_at = ExtensionTableColumn(rows_id, "completed_at");
    shape.ignore_cancelled = ExtensionTableColumn(rows_id, "ignore_cancelled");
    shape.ignore_discarded = ExtensionTableColumn(rows_id, "ignore_discarded");
    shape.rows = rows_id;
    shape.journal = journal_id;
    status_shape = shape;
    return status_shape;
}

struct StatusNode {
    char *id, *name, *sub_name;
    int64 own[kStateCount], tree[kStateCount];
    Timestamp inserted_at, started_at, completed_at;
    bool started, completed, ignore_cancelled, ignore_discarded;
    bool all_finished;  // every workflow of its tree finished, or empty (for completed_at)
    Timestamp latest_completed;
    bool has_delta;         // an unfolded journal delta was added to `own`
    Timestamp recorded_at;  // the latest one's
    int depth;
    int first_child, next_sibling;  // its sub-workflows, in index order (-1: none)
};

// A workflow's tree, read by key under one snapshot: the workflow's row, then level by level its
// sub-workflows' rows (through the parent_id index) and each level's unfolded journal deltas
// (through the workflow_id index), with no statement to plan or start. These are lookups by key
// whatever the tables' statistics say; a plan could be made while a table looked empty and walk all
// of it. Each level is one scan per index over an array of the level's ids (btree looks the keys up
// one after the other, in index order), so a call makes a handful of scans however wide the tree:
// a scan per workflow made the scans' set-up (index open and lock, a 27 kB btree scan state) most
// of the call for a tree of 21 workflows.
struct StatusReader {
    Relation rows, journal;
    const StatusShape *shape;
    const JournalShape *deltas;
    Snapshot snapshot;
    StatusNode *nodes;
    int count, capacity;
};

// Opens what `r` reads, to read under `snapshot`: whether it could (`if_permitted`: false, having
// opened nothing, when the caller may not read the tables; otherwise that is an error).
bool OpenStatusReader(StatusReader *r, Oid schema, Snapshot snapshot, bool if_permitted) {
    auto open = [&](const char *name) {
        return if_permitted ? OpenExtensionTableIfPermitted(schema, name, AccessShareLock, ACL_SELECT)
                            : OpenExtensionTable(schema, name, AccessShareLock, ACL_SELECT);
    };
    r->rows = open("oban_workflow_rows");
    if (r->rows == nullptr) return false;
    r->journal = open("oban_workflow_journal");
    if (r->journal == nullptr) {
        table_close(r->rows, AccessShareLock);
        return false;
    }
    r->shape = &StatusShapeOf(r->rows, r->journal);
    r->deltas = &ShapeOf(r->journal);
    r->snapshot = snapshot;
    r->capacity = 8;
    r->nodes = static_cast<StatusNode *>(palloc(sizeof(StatusNode) * r->capacity));
    return true;
}

void CloseStatusReader(StatusReader *r) {
    table_close(r->journal, AccessShareLock);
    table_close(r->rows, AccessShareLock);
}

char *TextOrNullColumn(const Datum *values, const bool *nulls, AttrNumber column) {
    return nulls[column - 1] ? nullptr : TextDatumGetCString(values[column - 1]);
}

// Adds the workflow whose row of oban_workflow_rows is `values`, `nulls` (deformed).
void AddNode(StatusReader *r, const Datum *values, const bool *nulls, int depth, int parent) {
    if (r->count == r->capacity) {
        r->capacity *= 2;
        r->nodes = static_cast<StatusNode *>(repalloc(r->nodes, sizeof(StatusNode) * r->capacity));
    }
    const StatusShape &shape = *r->shape;
    StatusNode &node = r->nodes[r->count];
    memset(&node, 0, sizeof(node));
    node.id = TextOrNullColumn(values, nulls, shape.id);
    node.name = TextOrNullColumn(values, nulls, shape.name);
    node.sub_name = TextOrNullColumn(values, nulls, shape.sub_name);
    for (int s = 0; s < kStateCount; s++) node.own[s] = DatumGetInt32(values[shape.counts[s] - 1]);
    node.inserted_at = DatumGetTimestamp(values[shape.inserted_at - 1]);
    node.started = !nulls[shape.started_at - 1];
    node.started_at = node.started ? DatumGetTimestamp(values[shape.started_at - 1]) : 0;
    node.completed = !nulls[shape.completed_at - 1];
    node.latest_completed = node.completed ? DatumGetTimestamp(values[shape.completed_at - 1]) : 0;
    node.ignore_cancelled = DatumGetBool(values[shape.ignore_cancelled - 1]);
    node.ignore_discarded = DatumGetBool(values[shape.ignore_discarded - 1]);
    node.depth = depth;
    node.first_child = node.next_sibling = -1;
    if (parent >= 0) {  // appended after its siblings
        int *link = &r->nodes[parent].first_child;
        while (*link >= 0) link = &r->nodes[*link].next_sibling;
        *link = r->count;
    }
    r->count++;
}

// Adds an unfolded journal delta (`values`, `nulls`: a journal row) to the workflow's own counts.
void AddDelta(const JournalShape &deltas, const Datum *values, const bool *nulls, StatusNode *node) {
    for (int s = 0; s < kStateCount; s++)
        if (!nulls[deltas.counts[s] - 1]) node->own[s] += DatumGetInt32(values[deltas.counts[s] - 1]);
    if (!nulls[deltas.started_at - 1]) {
        Timestamp at = DatumGetTimestamp(values[deltas.started_at - 1]);
        if (!node->started || at < node->started_at) {
            node->started = true;
            node->started_at = at;
        }
    }
    Timestamp at = DatumGetTimestamp(values[deltas.recorded_at - 1]);
    node->recorded_at = node->has_delta ? Max(node->recorded_at, at) : at;
    node->has_delta = true;
}

// The workflows of one level of the tree, nodes [begin, end): their ids as the text array both of
// the level's scans look up, and in the order of their ids, to find the one a row belongs to.
struct Level {
    const StatusReader *reader;  // not its nodes: adding the next level's may move them
    int begin, end;
    Datum ids;   // text[]
    int *by_id;  // end - begin node numbers, sorted by id
};

Level LevelOf(const StatusReader &r, int begin, int end) {
    auto *ids = static_cast<Datum *>(palloc(sizeof(Datum) * (end - begin)));
    for (int i = begin; i < end; i++) ids[i - begin] = CStringGetTextDatum(r.nodes[i].id);
    Level level{&r, begin, end,
                PointerGetDatum(construct_array(ids, end - begin, TEXTOID, -1, false, TYPALIGN_INT)),
                static_cast<int *>(palloc(sizeof(int) * (end - begin)))};
    for (int i = begin; i < end; i++) level.by_id[i - begin] = i;
    std::sort(level.by_id, level.by_id + (end - begin),
              [&r](int a, int b) { return strcmp(r.nodes[a].id, r.nodes[b].id) < 0; });
    return level;
}

// The node whose id is the text `key` (-1 if none: the index found only the level's ids, so never).
int NodeWithId(const Level &level, Datum key) {
    char *id = TextDatumGetCString(key);
    const int *begin = level.by_id, *end = level.by_id + (level.end - level.begin);
    const int *found = std::lower_bound(begin, end, id, [&level](int node, const char *wanted) {
        return strcmp(level.reader->nodes[node].id, wanted) < 0;
    });
    int node = found < end && strcmp(level.reader->nodes[*found].id, id) == 0 ? *found : -1;
    pfree(id);
    return node;
}

// Calls `visit` with the values of each row of `relation` whose text `column` is one of the ids of
// the level's nodes, found through `index` under `snapshot`.
template <typename Visit>
void ForEachRowOfLevel(Relation relation, Oid index_id, AttrNumber column, const StatusReader &r,
                       const Level &level, Visit visit) {
    ScanKeyData key;
    EqualityKey(&key, relation, column, F_TEXTEQ, level.ids);
    key.sk_attno = 1;  // the index's only column
    key.sk_flags |= SK_SEARCHARRAY;
    Relation index = index_open(index_id, AccessShareLock);
    IndexScanDesc scan = index_beginscan(relation, index, r.snapshot, 1, 0);
    index_rescan(scan, &key, 1, nullptr, 0);
    TupleTableSlot *slot = table_slot_create(relation, nullptr);
    while (index_getnext_slot(scan, ForwardScanDirection, slot)) {
        slot_getallattrs(slot);
        visit(slot->tts_values, slot->tts_isnull);
    }
    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    index_close(index, AccessShareLock);
}

// Reads workflow `id` and its sub-workflows, breadth first, into r->nodes (the workflow first);
// false if there is no such workflow. A workflow can be met twice only through a parent_id loop back
// to the top one (every other row has one parent): it is left out there, and nesting stops at 16.
bool ReadTree(StatusReader *r, const char *id) {
    const StatusShape &shape = *r->shape;
    ForEachRowWithKey(r->rows, shape.rows_key, shape.id, CStringGetTextDatum(id), r->snapshot,
                      [r](HeapTuple row) {
                          if (r->count > 0) return;
                          TupleDesc descriptor = RelationGetDescr(r->rows);
                          auto *values = static_cast<Datum *>(palloc(sizeof(Datum) * descriptor->natts));
                          auto *nulls = static_cast<bool *>(palloc(sizeof(bool) * descriptor->natts));
                          heap_deform_tuple(row, descriptor, values, nulls);
                          AddNode(r, values, nulls, 0, -1);
                      });
    if (r->count == 0) return false;
    for (int begin = 0, end = r->count; begin < end; begin = end, end = r->count) {
        Level level = LevelOf(*r, begin, end);
        const JournalShape &deltas = *r->deltas;
        ForEachRowOfLevel(r->journal, shape.deltas_index, deltas.workflow_id, *r, level,
                          [r, &level, &deltas](const Datum *values, const bool *nulls) {
                              int node = NodeWithId(level, values[deltas.workflow_id - 1]);
                              if (node >= 0) AddDelta(deltas, values, nulls, &r->nodes[node]);
                          });
        if (r->nodes[begin].depth >= 16) break;
        ForEachRowOfLevel(r->rows, shape.children_index, shape.parent_id, *r, level,
                          [r, &level, &shape](const Datum *values, const bool *nulls) {
                              char *child_id = TextDatumGetCString(values[shape.id - 1]);
                              if (strcmp(child_id, r->nodes[0].id) != 0) {
                                  int parent = NodeWithId(level, values[shape.parent_id - 1]);
                                  if (parent >= 0)
                                      AddNode(r, values, nulls, r->nodes[parent].depth + 1, parent);
                              }
                              pfree(child_id);
                          });
    }
    return true;
}

const char *DerivedState(const StatusNode &node) {
    const int64 *c = node.tree;
    int64 unfinished = c[kSuspended] + c[kAvailable] + c[kScheduled] + c[kExecuting] + c[kRetryable];
    int64 finished = c[kCompleted] + c[kCancelled] + c[kDiscarded];
    if (unfinished > 0) return node.started || finished > 0 ? "executing" : "pending";
    if (c[kDiscarded] > 0 && !node.ignore_discarded) return "discarded";
    if (c[kCancelled] > 0 && !node.ignore_cancelled) return "cancelled";
    if (finished == 0) return "pending";
    return "completed";
}

// The status is built as a JsonbValue tree and converted once (JsonbValueToJsonb): no JSON text to
// parse. The objects' pairs are taken from one allocation made at the start, and added in jsonb's
// key order (shorter keys first, then bytewise), the order convertToJsonb writes them in. Pushed one
// by one (pushJsonbValue), each object's pairs grew by doubling and were sorted at its end: a
// 21-workflow status took 100 kB of memory, enough to make glibc grow and trim the heap (two system
// calls and fresh pages) on every call. The strings referred to must live until the conversion;
// they are in the caller's memory context.
struct StatusBuilder {
    const StatusNode *nodes;
    Timestamp now;     // for the duration of an unfinished workflow
    Numeric zero;      // most counts are 0: one value for all of them
    JsonbPair *pairs;  // room for every object's pairs
    int pairs_used;
};

constexpr int kStatusKeys = 10;  // the keys of one workflow's status object

StatusBuilder NewStatusBuilder(const StatusNode *nodes, int count, Timestamp now) {
    // Each workflow's object and counts, and one subs entry for each workflow but the top one.
    int pairs = count * (kStatusKeys + kStateCount) + count - 1;
    return StatusBuilder{nodes, now, int64_to_numeric(0),
                         static_cast<JsonbPair *>(palloc(sizeof(JsonbPair) * pairs)), 0};
}

JsonbValue NullValue() {
    JsonbValue value{};
    value.type = jbvNull;
    return value;
}

JsonbValue StringValue(const char *text) {
    if (text == nullptr) return NullValue();
    JsonbValue value{};
    value.type = jbvString;
    value.val.string.val = const_cast<char *>(text);
    value.val.string.len = (int)strlen(text);
    return value;
}

JsonbValue NumericValue(Numeric number) {
    JsonbValue value{};
    value.type = jbvNumeric;
    value.val.numeric = number;
    return value;
}

JsonbValue CountValue(const StatusBuilder *b, int64 count) {
    return NumericValue(count == 0 ? b->zero : int64_to_numeric(count));
}

JsonbValue TimestampValue(bool present, Timestamp at) {
    if (!present) return NullValue();
    char text[MAXDATELEN + 1];
    JsonEncodeDateTime(text, TimestampGetDatum(at), TIMESTAMPOID, nullptr);
    return StringValue(pstrdup(text));  // its length, not MAXDATELEN
}

// An object with room for `capacity` pairs, to be added in key order.
JsonbValue NewObject(StatusBuilder *b, int capacity) {
    JsonbValue object{};
    object.type = jbvObject;
    object.val.object.pairs = b->pairs + b->pairs_used;
    b->pairs_used += capacity;
    return object;
}

void AddPair(JsonbValue *object, const char *key, int key_length, JsonbValue value) {
    JsonbPair &pair = object->val.object.pairs[object->val.object.nPairs];
    pair.key = JsonbValue{};
    pair.key.type = jbvString;
    pair.key.val.string.val = const_cast<char *>(key);
    pair.key.val.string.len = key_length;
    pair.value = value;
    pair.order = object->val.object.nPairs++;
}

void AddPair(JsonbValue *object, const char *key, JsonbValue value) {
    AddPair(object, key, (int)strlen(key), value);
}

// The counts' keys in key order (all of one length):
constexpr JobState kStatesByName[kStateCount] = {kAvailable, kCancelled, kCompleted, kDiscarded,
                                                 kExecuting, kRetryable, kScheduled, kSuspended};

JsonbValue StatusObject(StatusBuilder *b, int index);

// The node's sub-workflows keyed by sub name (or id). Two with the same key keep the later one, as
// a jsonb object keeps the last value given for a key.
JsonbValue SubsObject(StatusBuilder *b, const StatusNode &node) {
    struct Sub {
        const char *key;
        int length, position, node;
    };
    int count = 0;
    for (int i = node.first_child; i >= 0; i = b->nodes[i].next_sibling) count++;
    JsonbValue object = NewObject(b, count);
    if (count == 0) return object;
    auto *subs = static_cast<Sub *>(palloc(sizeof(Sub) * count));
    int position = 0;
    for (int i = node.first_child; i >= 0; i = b->nodes[i].next_sibling, position++) {
        const char *key = b->nodes[i].sub_name != nullptr ? b->nodes[i].sub_name : b->nodes[i].id;
        subs[position] = Sub{key, (int)strlen(key), position, i};
    }
    auto same_key = [](const Sub &x, const Sub &y) {
        return x.length == y.length && memcmp(x.key, y.key, x.length) == 0;
    };
    std::sort(subs, subs + count, [](const Sub &x, const Sub &y) {
        if (x.length != y.length) return x.length < y.length;
        int order = memcmp(x.key, y.key, x.length);
        return order != 0 ? order < 0 : x.position > y.position;  // the later one first
    });
    for (int k = 0; k < count; k++)
        if (k == 0 || !same_key(subs[k - 1], subs[k]))
            AddPair(&object, subs[k].key, subs[k].length, StatusObject(b, subs[k].node));
    return object;
}

// The SPEC §4 status object of node `index` (its tree totals already summed).
JsonbValue StatusObject(StatusBuilder *b, int index) {
    const StatusNode &node = b->nodes[index];
    int64 total = 0;
    for (int s = 0; s < kStateCount; s++) total += node.tree[s];
    bool completed = node.all_finished && node.completed;
    JsonbValue status = NewObject(b, kStatusKeys);
    AddPair(&status, "id", StringValue(node.id));
    AddPair(&status, "name", StringValue(node.name));
    AddPair(&status, "subs", SubsObject(b, node));
    AddPair(&status, "state", StringValue(DerivedState(node)));
    AddPair(&status, "total", CountValue(b, total));
    JsonbValue counts = NewObject(b, kStateCount);
    for (JobState s : kStatesByName) AddPair(&counts, kStateNames[s], CountValue(b, node.tree[s]));
    AddPair(&status, "counts", counts);
    JsonbValue duration = NullValue();
    if (node.started) {
        Timestamp until = completed ? node.latest_completed : b->now;
        // Seconds with millisecond precision: an exact decimal, as numeric(…, 3) would print it.
        int64 micros = until - node.started_at;
        duration = NumericValue(int64_div_fast_to_numeric((micros + (micros >= 0 ? 500 : -500)) / 1000, 3));
    }
    AddPair(&status, "duration", duration);
    AddPair(&status, "started_at", TimestampValue(node.started, node.started_at));
    AddPair(&status, "inserted_at", TimestampValue(true, node.inserted_at));
    AddPair(&status, "completed_at", TimestampValue(completed, node.latest_completed));
    return status;
}

}  // namespace

namespace {

// Adds each sub-workflow's tree totals into its parent's, depth first.
void SumTree(StatusNode *nodes, int index) {
    StatusNode &parent = nodes[index];
    for (int i = parent.first_child; i >= 0; i = nodes[i].next_sibling) {
        StatusNode &child = nodes[i];
        SumTree(nodes, i);
        for (int s = 0; s < kStateCount; s++) parent.tree[s] += child.tree[s];
        if (child.started && (!parent.started || child.started_at < parent.started_at)) {
            parent.started = true;
            parent.started_at = child.started_at;
        }
        parent.all_finished = parent.all_finished && child.all_finished;
        if (child.completed && (!parent.completed || child.latest_completed > parent.latest_completed)) {
            parent.completed = true;
            parent.latest_completed = child.latest_completed;
        }
    }
}

}  // namespace

// The SPEC §4 status object, from the workflow's and its sub-workflows' rows in oban_workflows,
// read by key (ReadTree); the tree totals are summed here. NULL for an unknown id.
OBAN_FUNCTION(oban_workflow_status) {
    RequireArgument(fcinfo, 0, "workflow_id");
    Oid schema = FunctionSchema(fcinfo);
    char *id = TextDatumGetCString(PG_GETARG_DATUM(0));
    StatusReader reader{};
    OpenStatusReader(&reader, schema, GetActiveSnapshot(), false);
    bool found = ReadTree(&reader, id);
    CloseStatusReader(&reader);
    if (!found) PG_RETURN_NULL();
    StatusNode *nodes = reader.nodes;
    int count = reader.count;

    // As oban_workflows derives them: finished once nothing is unfinished and something finished,
    // at the folded completed_at, or else at the latest unfolded delta.
    for (int i = 0; i < count; i++) {
        StatusNode &node = nodes[i];
        const int64 *c = node.own;
        int64 unfinished = c[kSuspended] + c[kAvailable] + c[kScheduled] + c[kExecuting] + c[kRetryable];
        int64 finished = c[kCompleted] + c[kCancelled] + c[kDiscarded];
        bool done = unfinished == 0 && finished > 0;
        if (done && !node.completed && node.has_delta) {
            node.completed = true;
            node.latest_completed = node.recorded_at;
        }
        node.completed = done && node.completed;
        node.all_finished = done || unfinished + finished == 0;
        memcpy(node.tree, node.own, sizeof(node.tree));
    }
    SumTree(nodes, 0);

    // A timestamptz counts microseconds from UTC midnight, so it reads as a UTC timestamp.
    StatusBuilder builder = NewStatusBuilder(nodes, count, GetCurrentTransactionStartTimestamp());
    JsonbValue status = StatusObject(&builder, 0);
    PG_RETURN_POINTER(JsonbValueToJsonb(&status));
}

namespace oban::pg {

const char *TreeState(Oid schema, Datum workflow_id, Snapshot snapshot) {
    StatusReader reader{};
    if (!OpenStatusReader(&reader, schema, snapshot, true)) return nullptr;
    bool found = ReadTree(&reader, TextDatumGetCString(workflow_id));
    CloseStatusReader(&reader);
    if (!found) return nullptr;
    for (int i = 0; i < reader.count; i++)
        memcpy(reader.nodes[i].tree, reader.nodes[i].own, sizeof(reader.nodes[i].tree));
    SumTree(reader.nodes, 0);
    return DerivedState(reader.nodes[0]);
}

}  // namespace oban::pg

// --- tree counts ----------------------------------------------------------------------------------

namespace {

// Counts of workflow $1 and all its sub-workflows, recursively, from oban_workflows (exact for all
// committed work); no row for an unknown workflow. Sub-workflows and their rows are fenced lookups by
// key (OFFSET 0), never joins a plan made from "empty" statistics could turn into whole-table walks.
// Kept statements, as oban_dep_outcomes' (src/pg/workflows.cpp): called from other statements as
// SQL functions, their bodies were planned again on every call (0.8 ms a job inserted with a dep on
// a sub-workflow, 3.5 ms a workflow the prune checked; unique-name claims paid it too).
Statement tree_counts{R"sql(
    WITH RECURSIVE tree AS (
        SELECT id FROM @extschema@.oban_workflow_rows WHERE id = $1
        UNION
        SELECT child.id
        FROM tree CROSS JOIN LATERAL (
            SELECT c.id FROM @extschema@.oban_workflow_rows AS c WHERE c.parent_id = tree.id OFFSET 0) AS child
    )
    SELECT sum(w.suspended)::integer, sum(w.available)::integer, sum(w.scheduled)::integer,
           sum(w.executing)::integer, sum(w.retryable)::integer, sum(w.completed)::integer,
           sum(w.cancelled)::integer, sum(w.discarded)::integer, min(w.started_at),
           CASE WHEN bool_and(w.completed_at IS NOT NULL OR
                              w.suspended + w.available + w.scheduled + w.executing + w.retryable
                              + w.completed + w.cancelled + w.discarded = 0)
                THEN max(w.completed_at) END,
           count(*)::integer
    FROM tree CROSS JOIN LATERAL (
        SELECT * FROM @extschema@.oban_workflows AS v WHERE v.id = tree.id OFFSET 0) AS w
    HAVING count(*) > 0)sql",
                      1,
                      {TEXTOID},
                      true};

// Whether the whole tree of workflow $1, from its top-level workflow down, has no unfinished job.
Statement workflow_finished{R"sql(
    WITH RECURSIVE up AS (
        SELECT w.id, w.parent_id, 0 AS depth FROM @extschema@.oban_workflow_rows AS w WHERE w.id = $1
        UNION ALL
        SELECT w.id, w.parent_id, up.depth + 1
        FROM up CROSS JOIN LATERAL (
            SELECT p.id, p.parent_id FROM @extschema@.oban_workflow_rows AS p WHERE p.id = up.parent_id
            OFFSET 0) AS w
        WHERE up.depth < 32
    )
    SELECT coalesce((SELECT c.suspended + c.available + c.scheduled + c.executing + c.retryable = 0
                     FROM @extschema@.oban_workflow_tree_counts(
                              (SELECT id FROM up ORDER BY depth DESC LIMIT 1)) AS c), true))sql",
                            1,
                            {TEXTOID},
                            true};

}  // namespace

// NULL (or an unknown id) is nothing: no row.
OBAN_FUNCTION(oban_workflow_tree_counts) {
    ReturnRowsOf(fcinfo, &tree_counts);
    return (Datum)0;
}

// NULL (or an unknown id) is true: nothing unfinished.
OBAN_FUNCTION(oban_workflow_finished) {
    Oid schema = FunctionSchema(fcinfo);
    Datum values[1];
    char nulls[1];
    FunctionArguments(fcinfo, &workflow_finished, values, nulls);
    BeginSql(schema);
    Execute(&workflow_finished, schema, values, nulls);
    bool is_null = false;
    bool finished = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
    EndSql();
    PG_RETURN_BOOL(finished);
}
