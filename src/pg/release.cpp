// Releasing suspended jobs without an UPDATE statement: the ack's release (workflows.cpp) has found,
// checked and locked the jobs it releases, so the statement it ran for them (release_jobs) only
// looked them up again by id and paid the executor's start and teardown, its after-trigger queue
// (each released row fetched again and its trigger's WHEN clause run) and its check constraints
// compiled anew, for a change of one column (bench/RESULTS.md, session 23).
//
// Done directly only where the table leaves nothing else for such a statement to do: no row
// security, no stored generated column, no check constraint on the state (or not yet validated), and
// no trigger that a change of the state fires but the extension's own, whose work is done here as
// they would (the counts' delta, the notice and fetch floor of an available job). Otherwise the
// caller runs the statement, which honours whatever a user added.
#include "pg/aggregation.hpp"
#include "pg/sql.hpp"
#include "pg/states.hpp"
#include "pg/worker.hpp"
#include "pg/workflows.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/tableam.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "optimizer/optimizer.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

namespace oban::pg {

namespace {

// What a state-only update of one table (oban_jobs) would run besides the update itself; looked up
// once per backend, forgotten when the table changes (its triggers and constraints are in its
// relcache entry).
struct ReleaseShape {
    Oid relation = InvalidOid;
    bool direct;  // nothing but the extension's own triggers, no check on the state, no generation
    AttrNumber state, scheduled_at;
    Oid available, scheduled;  // the enum's values
};

ReleaseShape release_shape;

void ForgetReleaseShape(Datum, Oid relation) {
    if (relation == InvalidOid || relation == release_shape.relation) release_shape.relation = InvalidOid;
}

// Whether `function` is the extension's function `name` (in the table's schema).
bool IsOwnFunction(Oid function, Oid schema, const char *name) {
    char *found = get_func_name(function);
    return found != nullptr && strcmp(found, name) == 0 && get_func_namespace(function) == schema;
}

// Whether trigger `trigger` has nothing to do for an update that sets only column `state`: not an
// UPDATE trigger, never fired (disabled), or an UPDATE OF other columns only. The extension's own
// oban_jobs_state_changed (whose work ReleaseLockedJobs does) and its statement-level journal
// trigger (which leaves a release's deltas to the ack's own journal rows) are in `own`.
bool QuietOnStateUpdate(const Trigger &trigger, AttrNumber state, bool *own, Oid schema) {
    *own = false;
    // Under session_replication_role = origin (ReleaseLockedJobs asks), the triggers that fire are
    // those enabled on origin and always.
    bool fires = trigger.tgenabled == TRIGGER_FIRES_ON_ORIGIN || trigger.tgenabled == TRIGGER_FIRES_ALWAYS;
    if (!TRIGGER_FOR_UPDATE(trigger.tgtype) || !fires) return true;
    if (trigger.tgnattr > 0) {
        bool on_state = false;
        for (int i = 0; i < trigger.tgnattr; i++) on_state = on_state || trigger.tgattr[i] == state;
        if (!on_state) return true;
    }
    if (TRIGGER_FOR_ROW(trigger.tgtype) && !TRIGGER_FOR_BEFORE(trigger.tgtype) &&
        !TRIGGER_FOR_INSTEAD(trigger.tgtype) && strcmp(trigger.tgname, "oban_jobs_state_changed") == 0 &&
        IsOwnFunction(trigger.tgfoid, schema, "oban_jobs_state_changed"))
        *own = true;
    else if (!TRIGGER_FOR_ROW(trigger.tgtype) &&
             IsOwnFunction(trigger.tgfoid, schema, "oban_jobs_workflow_journal"))
        *own = true;
    return *own;
}

const ReleaseShape &ReleaseShapeOf(Relation jobs) {
    Oid relation = RelationGetRelid(jobs);
    if (release_shape.relation == relation) return release_shape;
    static bool callback_registered = false;
    if (!callback_registered) {
        CacheRegisterRelcacheCallback(ForgetReleaseShape, (Datum)0);
        callback_registered = true;
    }
    ReleaseShape shape;
    shape.state = ExtensionTableColumn(relation, "state");
    shape.scheduled_at = ExtensionTableColumn(relation, "scheduled_at");
    Oid schema = RelationGetNamespace(jobs);
    Oid state_type = get_atttype(relation, shape.state);
    shape.available = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid, ObjectIdGetDatum(state_type),
                                      CStringGetDatum("available"));
    shape.scheduled = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid, ObjectIdGetDatum(state_type),
                                      CStringGetDatum("scheduled"));
    shape.direct = jobs->rd_rel->relkind == RELKIND_RELATION && OidIsValid(shape.available) &&
                   OidIsValid(shape.scheduled);
    // The state_changed trigger must be there and fire: without it (disabled, as a benchmark's
    // floors do), a release tracks no counts, which only the statement gets right.
    bool state_changed = false;
    TriggerDesc *triggers = jobs->trigdesc;
    for (int i = 0; triggers != nullptr && i < triggers->numtriggers && shape.direct; i++) {
        bool own = false;
        shape.direct = QuietOnStateUpdate(triggers->triggers[i], shape.state, &own, schema);
        state_changed = state_changed || (own && TRIGGER_FOR_ROW(triggers->triggers[i].tgtype));
    }
    shape.direct = shape.direct && state_changed;
    TupleConstr *constraints = RelationGetDescr(jobs)->constr;
    if (shape.direct && constraints != nullptr) {
        shape.direct = !constraints->has_generated_stored;
        for (int i = 0; i < constraints->num_check && shape.direct; i++) {
            const ConstrCheck &check = constraints->check[i];
            Bitmapset *columns = nullptr;
            pull_varattnos(static_cast<Node *>(stringToNode(check.ccbin)), 1, &columns);
            shape.direct =
                check.ccvalid && !bms_is_member(shape.state - FirstLowInvalidHeapAttributeNumber, columns);
        }
    }
    shape.relation = relation;
    release_shape = shape;
    return release_shape;
}

// The executor state that index insertions want: the table as range table entry 1, whose updated
// columns (the state) tell each index whether the update left its key unchanged.
struct Updater {
    EState *estate;
    ResultRelInfo *result;
    TupleTableSlot *old_row, *new_row;
};

void OpenUpdater(Updater *u, Relation jobs, AttrNumber state) {
    u->estate = CreateExecutorState();
    RangeTblEntry *entry = makeNode(RangeTblEntry);
    entry->rtekind = RTE_RELATION;
    entry->relid = RelationGetRelid(jobs);
    entry->relkind = jobs->rd_rel->relkind;
    entry->rellockmode = RowExclusiveLock;
    entry->requiredPerms = ACL_UPDATE;
    entry->updatedCols = bms_make_singleton(state - FirstLowInvalidHeapAttributeNumber);
    ExecInitRangeTable(u->estate, list_make1(entry));
    u->result = makeNode(ResultRelInfo);
    InitResultRelInfo(u->result, jobs, 1, nullptr, 0);
    ExecOpenIndices(u->result, false);
    u->old_row = table_slot_create(jobs, nullptr);
    u->new_row = MakeSingleTupleTableSlot(RelationGetDescr(jobs), &TTSOpsHeapTuple);
}

void CloseUpdater(Updater *u) {
    ExecDropSingleTupleTableSlot(u->new_row);
    ExecDropSingleTupleTableSlot(u->old_row);
    ExecCloseIndices(u->result);
    FreeExecutorState(u->estate);
}

}  // namespace

bool ReleaseLockedJobs(Relation jobs, const ItemPointerData *tids, int count, Snapshot snapshot) {
    const ReleaseShape &shape = ReleaseShapeOf(jobs);
    if (!shape.direct || SessionReplicationRole != SESSION_REPLICATION_ROLE_ORIGIN ||
        check_enable_rls(RelationGetRelid(jobs), InvalidOid, true) == RLS_ENABLED)
        return false;
    CheckCmdReplicaIdentity(jobs, CMD_UPDATE);
    TupleDesc descriptor = RelationGetDescr(jobs);
    AttrNumber state = shape.state, scheduled_at = shape.scheduled_at;
    Updater u;
    OpenUpdater(&u, jobs, state);
    CommandId command = GetCurrentCommandId(true);
    // As release_jobs: a job is scheduled only if its own scheduled_at is still ahead of the clock.
    TimestampTz now = GetCurrentTimestamp();
    Datum *values = static_cast<Datum *>(palloc(sizeof(Datum) * descriptor->natts));
    bool *nulls = static_cast<bool *>(palloc(sizeof(bool) * descriptor->natts));
    for (int i = 0; i < count; i++) {
        ItemPointerData tid = tids[i];
        if (!table_tuple_fetch_row_version(jobs, &tid, SnapshotAny, u.old_row))
            elog(ERROR, "a job locked for release is gone");
        bool should_free = false;
        HeapTuple old_row = ExecFetchSlotHeapTuple(u.old_row, true, &should_free);
        heap_deform_tuple(old_row, descriptor, values, nulls);
        // A timestamp without time zone in UTC reads as the timestamptz of that instant.
        bool later = !nulls[scheduled_at - 1] && DatumGetTimestamp(values[scheduled_at - 1]) > now;
        values[state - 1] = ObjectIdGetDatum(later ? shape.scheduled : shape.available);
        nulls[state - 1] = false;
        HeapTuple new_row = heap_form_tuple(descriptor, values, nulls);
        ExecStoreHeapTuple(new_row, u.new_row, true);
        TM_FailureData failure;
        LockTupleMode mode;
        bool update_indexes = false;
        TM_Result result = table_tuple_update(jobs, &tid, u.new_row, command, snapshot, InvalidSnapshot, true,
                                              &failure, &mode, &update_indexes);
        if (result != TM_Ok) elog(ERROR, "a job locked for release changed (%d)", static_cast<int>(result));
        if (update_indexes) ExecInsertIndexTuples(u.result, u.new_row, u.estate, true, false, nullptr, NIL);
        ResetPerTupleExprContext(u.estate);

        // What oban_jobs_state_changed does for the row (update_trigger.cpp).
        TriggerData trigger{};
        trigger.type = T_TriggerData;
        trigger.tg_event = TRIGGER_EVENT_UPDATE | TRIGGER_EVENT_ROW;
        trigger.tg_relation = jobs;
        trigger.tg_trigtuple = old_row;
        trigger.tg_newtuple = ExecFetchSlotHeapTuple(u.new_row, false, nullptr);
        TrackWorkflowRow(&trigger);
        if (!later) RecordAvailableJobRow(jobs, trigger.tg_newtuple);
        if (should_free) heap_freetuple(old_row);
    }
    CloseUpdater(&u);
    return true;
}

}  // namespace oban::pg
