// oban_jobs_state_changed: what a change of a job's state goes through, whoever makes it. It can
// mean two things here: the job became available (its queue is notified at commit and its key
// published to the queue's fetch floor), or a workflow job moved between counts (the statement's
// journal). One AFTER UPDATE OF state row trigger for both, behind one short WHEN clause, a call of
// oban_jobs_state_change_matters: Postgres parses and compiles a trigger's WHEN clause again for
// every statement that sets the column, and the two triggers of 0.6.0, each with its operator
// clause, cost the UPDATEs of plain jobs' fetches and acks more than their checks did (measured:
// about 2% of the CPU of oban-py's lifecycle on the extension's table, bench/RESULTS.md).
#include "pg/aggregation.hpp"
#include "pg/meta.hpp"
#include "pg/states.hpp"
#include "pg/worker.hpp"

extern "C" {
#include "commands/trigger.h"
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
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("oban_jobs_state_changed() was not called by a trigger")));
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_AFTER(trigger->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigger->tg_event) ||
        !TRIGGER_FIRED_BY_UPDATE(trigger->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("oban_jobs_state_changed() must be an AFTER UPDATE ROW trigger")));
    TrackWorkflowRow(trigger);
    RecordIfBecameAvailable(fcinfo, "oban_jobs_state_changed");
    return PointerGetDatum(nullptr);
}
