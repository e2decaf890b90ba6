// oban_jobs_state_changed: what a change of a job's state goes through, whoever makes it. It can
// mean two things here: the job became available (its queue is notified at commit and its key
// published to the queue's fetch floor), or a workflow job moved between counts (the statement's
// journal). One AFTER UPDATE OF state row trigger for both, behind one short WHEN clause, a call of
// oban_jobs_state_change_matters: Postgres parses and compiles a trigger's WHEN clause again for
// every statement that sets the column, and the two triggers of 0.6.0, each with its operator
// clause, cost the UPDATEs of plain jobs' fetches and acks more than their checks did (measured:
// about 2% of the CPU of oban-py's lifecycle on the extension's table, bench/RESULTS.md).
#include "pg/aggregation.hpp"
#include "pg/args.hpp"
#include "pg/meta.hpp"
#include "pg/states.hpp"
#include "pg/worker.hpp"

extern "C" {
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/datum.h"
#include "utils/rel.h"
}

using namespace oban::pg;

// The WHEN clause: whether a row's change from old_state to new_state (meta: the new row's) matters
// to the extension: it became available, or it is a workflow job whose state changed. A NULL state
// (the table forbids it) does not.
OBAN_FUNCTION(oban_jobs_state_change_matters) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) PG_RETURN_BOOL(false);
    Datum old_state = PG_GETARG_DATUM(0), new_state = PG_GETARG_DATUM(1);
    if (DatumGetObjectId(old_state) == DatumGetObjectId(new_state)) PG_RETURN_BOOL(false);
    if (StateOf(new_state) == kAvailable) PG_RETURN_BOOL(true);
    PG_RETURN_BOOL(!PG_ARGISNULL(2) && MetaHas(PG_GETARG_JSONB_P(2), "workflow_id"));
}

// AFTER UPDATE OF state, FOR EACH ROW, WHEN oban_jobs_state_change_matters(OLD.state, NEW.state,
// NEW.meta).
OBAN_FUNCTION(oban_jobs_state_changed) {
    TriggerData *trigger = RequireAfterUpdateRowTrigger(fcinfo, "oban_jobs_state_changed");
    TrackWorkflowRow(trigger);
    RecordIfBecameAvailable(fcinfo, "oban_jobs_state_changed");
    return PointerGetDatum(nullptr);
}

// A workflow job's workflow_id and name are fixed at insert: its counts, deps and dependents'
// edges were set up under them, and a job gains or leaves a workflow only by insert or delete.

namespace {

// Whether meta->>key (a string, or none) differs between the two metas (nullptr: no meta).
bool MetaTextChanged(Jsonb *before, Jsonb *after, const char *key) {
    char *old_text = before == nullptr ? nullptr : MetaText(before, key, CurrentMemoryContext);
    char *new_text = after == nullptr ? nullptr : MetaText(after, key, CurrentMemoryContext);
    if (old_text == nullptr || new_text == nullptr) return old_text != new_text;
    return strcmp(old_text, new_text) != 0;
}

}  // namespace

// The WHEN clause of oban_jobs_workflow_fixed: whether an update changes the workflow a job belongs
// to (meta.workflow_id, added or removed included) or, in a workflow, its step name (meta.name).
// Every update that sets meta calls it, most with meta as it was (oban_complete_job): an unchanged
// image answers without reading either document.
OBAN_FUNCTION(oban_jobs_workflow_identity_changed) {
    if (!PG_ARGISNULL(0) && !PG_ARGISNULL(1) &&
        datum_image_eq(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), false, -1))
        PG_RETURN_BOOL(false);
    Jsonb *before = PG_ARGISNULL(0) ? nullptr : PG_GETARG_JSONB_P(0);
    Jsonb *after = PG_ARGISNULL(1) ? nullptr : PG_GETARG_JSONB_P(1);
    if (MetaTextChanged(before, after, "workflow_id")) PG_RETURN_BOOL(true);
    bool in_workflow = (before != nullptr && MetaHas(before, "workflow_id")) ||
                       (after != nullptr && MetaHas(after, "workflow_id"));
    PG_RETURN_BOOL(in_workflow && MetaTextChanged(before, after, "name"));
}

// AFTER UPDATE OF meta, FOR EACH ROW, WHEN oban_jobs_workflow_identity_changed(OLD.meta, NEW.meta):
// refuses the update (0A000), which would leave the job counted in the wrong workflow.
OBAN_FUNCTION(oban_jobs_refuse_workflow_change) {
    TriggerData *trigger = RequireAfterUpdateRowTrigger(fcinfo, "oban_jobs_refuse_workflow_change");
    TupleDesc descriptor = RelationGetDescr(trigger->tg_relation);
    bool is_null = false;
    Datum id = heap_getattr(trigger->tg_trigtuple, SPI_fnumber(descriptor, "id"), descriptor, &is_null);
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("job %lld cannot change its workflow or step name", (long long)DatumGetInt64(id)),
                    errdetail("meta.workflow_id, and meta.name in a workflow, are fixed when the job is "
                              "inserted: the workflow's counts and dependencies were set up under them."),
                    errhint("Insert a new job into the other workflow (oban_append_workflow) and cancel or "
                            "delete this one.")));
    return PointerGetDatum(nullptr);
}
