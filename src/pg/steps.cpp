#include "pg/steps.hpp"

extern "C" {
#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
}

namespace oban::pg {

namespace {

// A job inserted or deleted by the current statement, in TopTransactionContext.
struct StepChange {
    SubTransactionId subid;
    Oid schema;
    char *workflow_id, *name;  // name: nullptr for a job without one
    int64 job_id;
    bool deleted, was_waiting;
};

List *step_changes = NIL;

// The steps table's columns.
struct StepColumns {
    AttrNumber workflow_id, name, job_id;
};

StepColumns ColumnsOf(Relation steps) {
    Oid relation = RelationGetRelid(steps);
    return StepColumns{ExtensionTableColumn(relation, "workflow_id"), ExtensionTableColumn(relation, "name"),
                       ExtensionTableColumn(relation, "job_id")};
}

// The steps' index, opened if its keys are the extension's (otherwise nullptr).
Relation OpenStepIndex(Oid schema, const StepColumns &columns) {
    return OpenIndexOn(get_relname_relid("oban_workflow_steps_name_index", schema),
                       {columns.workflow_id, columns.name, columns.job_id});
}

// Deletes the rows of `deleted` (StepChange *) from the steps: each found by its three keys under
// the latest snapshot (the job's deleter saw the job, so it sees its row). Two transactions never
// delete one row: a job's deleters queue on the job.
void DeleteSteps(Oid schema, List *deleted) {
    Relation steps =
        OpenExtensionTable(schema, "oban_workflow_steps", RowExclusiveLock, ACL_SELECT | ACL_DELETE);
    StepColumns columns = ColumnsOf(steps);
    Relation index = OpenStepIndex(schema, columns);
    if (index == nullptr)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("the index oban_workflow_steps_name_index is missing"),
                        errhint("The extension's tables were altered; reinstall or update the extension.")));
    CommandCounterIncrement();  // the rows this statement wrote are seen
    Snapshot latest = RegisterSnapshot(GetLatestSnapshot());
    IndexScanDesc scan = index_beginscan(steps, index, latest, 3, 0);
    TupleTableSlot *slot = table_slot_create(steps, nullptr);
    ListCell *cell;
    foreach (cell, deleted) {
        auto *change = static_cast<StepChange *>(lfirst(cell));
        ScanKeyData keys[3];
        IndexEqualityKey(&keys[0], index, 1, F_TEXTEQ, CStringGetTextDatum(change->workflow_id));
        if (change->name != nullptr)
            IndexEqualityKey(&keys[1], index, 2, F_TEXTEQ, CStringGetTextDatum(change->name));
        else
            ScanKeyEntryInitialize(&keys[1], SK_ISNULL | SK_SEARCHNULL, 2, InvalidStrategy, InvalidOid,
                                   InvalidOid, InvalidOid, (Datum)0);
        IndexEqualityKey(&keys[2], index, 3, F_INT8EQ, Int64GetDatum(change->job_id));
        index_rescan(scan, keys, 3, nullptr, 0);
        while (index_getnext_slot(scan, ForwardScanDirection, slot))
            DeleteFound(steps, &slot->tts_tid, latest);
        ExecClearTuple(slot);
    }
    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    UnregisterSnapshot(latest);
    index_close(index, AccessShareLock);
    table_close(steps, NoLock);
}

}  // namespace

void RecordStepChange(Oid schema, const char *workflow_id, const char *name, int64 job_id, bool deleted,
                      bool was_waiting) {
    MemoryContext caller = MemoryContextSwitchTo(TopTransactionContext);
    auto *change = static_cast<StepChange *>(palloc(sizeof(StepChange)));
    *change = StepChange{GetCurrentSubTransactionId(),
                         schema,
                         pstrdup(workflow_id),
                         name == nullptr ? nullptr : pstrdup(name),
                         job_id,
                         deleted,
                         was_waiting};
    step_changes = lappend(step_changes, change);
    MemoryContextSwitchTo(caller);
}

int64 *WriteStepChanges(Oid schema, int *waiting_count) {
    *waiting_count = 0;
    if (step_changes == NIL) return nullptr;  // most statements (fetches, acks) insert and delete none
    SubTransactionId subid = GetCurrentSubTransactionId();
    // A 0.6.0 schema, between the library's install and ALTER EXTENSION oban_pro UPDATE, has no
    // steps table: the update fills it from the jobs there are then.
    bool writable = OidIsValid(get_relname_relid("oban_workflow_steps", schema));
    auto *waiting = static_cast<int64 *>(palloc(sizeof(int64) * list_length(step_changes)));
    List *inserted = NIL, *deleted = NIL;
    ListCell *cell;
    foreach (cell, step_changes) {
        auto *change = static_cast<StepChange *>(lfirst(cell));
        if (change->subid != subid || change->schema != schema) continue;
        step_changes = foreach_delete_current(step_changes, cell);
        if (change->was_waiting) waiting[(*waiting_count)++] = change->job_id;
        if (writable) {
            if (change->deleted)
                deleted = lappend(deleted, change);
            else
                inserted = lappend(inserted, change);
        }
    }
    // The deletes first: a statement may delete a job and insert another under its id and name.
    if (deleted != NIL) DeleteSteps(schema, deleted);
    if (inserted == NIL) return waiting;
    DirectInsert insert{};
    OpenDirectInsert(&insert, schema, "oban_workflow_steps");
    StepColumns columns = ColumnsOf(insert.relation);
    foreach (cell, inserted) {
        auto *change = static_cast<StepChange *>(lfirst(cell));
        TupleTableSlot *row = NewRow(&insert);
        SetColumn(row, columns.workflow_id, CStringGetTextDatum(change->workflow_id));
        if (change->name != nullptr) SetColumn(row, columns.name, CStringGetTextDatum(change->name));
        SetColumn(row, columns.job_id, Int64GetDatum(change->job_id));
        InsertRow(&insert);
    }
    CloseDirectInsert(&insert);
    return waiting;
}

void AtSubtransactionEndSteps(bool committed, SubTransactionId subid, SubTransactionId parent) {
    ListCell *cell;
    foreach (cell, step_changes) {
        auto *change = static_cast<StepChange *>(lfirst(cell));
        if (change->subid < subid) continue;
        if (committed)
            change->subid = parent;
        else
            step_changes = foreach_delete_current(step_changes, cell);
    }
}

void ForgetStepChanges() {
    step_changes = NIL;  // its memory goes with TopTransactionContext
}

bool OpenStepReader(StepReader *reader, Oid schema, Relation jobs, Snapshot snapshot) {
    reader->steps = OpenExtensionTableIfPermitted(schema, "oban_workflow_steps", AccessShareLock, ACL_SELECT);
    if (reader->steps == nullptr) return false;
    if (check_enable_rls(RelationGetRelid(reader->steps), InvalidOid, true) == RLS_ENABLED) {
        table_close(reader->steps, AccessShareLock);  // reads straight from the table would pass it by
        return false;
    }
    StepColumns columns = ColumnsOf(reader->steps);
    reader->steps_index = OpenStepIndex(schema, columns);
    AttrNumber job_id = ExtensionTableColumn(RelationGetRelid(jobs), "id");
    reader->jobs_key = OpenIndexOn(RelationGetPrimaryKeyIndex(jobs), {job_id});
    if (reader->steps_index == nullptr || reader->jobs_key == nullptr) {
        if (reader->steps_index != nullptr) index_close(reader->steps_index, AccessShareLock);
        if (reader->jobs_key != nullptr) index_close(reader->jobs_key, AccessShareLock);
        table_close(reader->steps, AccessShareLock);
        return false;
    }
    reader->jobs = jobs;
    reader->step_job = columns.job_id;
    reader->step_scan = index_beginscan(reader->steps, reader->steps_index, snapshot, 2, 0);
    reader->job_scan = index_beginscan(jobs, reader->jobs_key, snapshot, 1, 0);
    reader->step_slot = table_slot_create(reader->steps, nullptr);
    reader->reading_job = false;
    return true;
}

void SetStepSnapshot(StepReader *reader, Snapshot snapshot) {
    index_endscan(reader->job_scan);
    index_endscan(reader->step_scan);
    reader->step_scan = index_beginscan(reader->steps, reader->steps_index, snapshot, 2, 0);
    reader->job_scan = index_beginscan(reader->jobs, reader->jobs_key, snapshot, 1, 0);
    reader->reading_job = false;
}

void SeekStep(StepReader *reader, Datum workflow_id, Datum name) {
    ScanKeyData keys[2];
    IndexEqualityKey(&keys[0], reader->steps_index, 1, F_TEXTEQ, workflow_id);
    IndexEqualityKey(&keys[1], reader->steps_index, 2, F_TEXTEQ, name);
    index_rescan(reader->step_scan, keys, 2, nullptr, 0);
    reader->reading_job = false;
}

bool NextJobOfStep(StepReader *reader, TupleTableSlot *job_slot) {
    for (;;) {
        if (reader->reading_job && index_getnext_slot(reader->job_scan, ForwardScanDirection, job_slot))
            return true;
        reader->reading_job = false;
        if (!index_getnext_slot(reader->step_scan, ForwardScanDirection, reader->step_slot)) return false;
        bool is_null = false;
        Datum job_id = slot_getattr(reader->step_slot, reader->step_job, &is_null);
        ExecClearTuple(reader->step_slot);
        if (is_null) continue;
        ScanKeyData key;
        IndexEqualityKey(&key, reader->jobs_key, 1, F_INT8EQ, job_id);
        index_rescan(reader->job_scan, &key, 1, nullptr, 0);
        reader->reading_job = true;
    }
}

void CloseStepReader(StepReader *reader) {
    ExecDropSingleTupleTableSlot(reader->step_slot);
    index_endscan(reader->job_scan);
    index_endscan(reader->step_scan);
    index_close(reader->jobs_key, AccessShareLock);
    index_close(reader->steps_index, AccessShareLock);
    table_close(reader->steps, AccessShareLock);
}

}  // namespace oban::pg
