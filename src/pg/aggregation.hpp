// Workflow counts: the journal written by the oban_jobs triggers (aggregation.cpp).
#pragma once

struct TriggerData;

namespace oban::pg {

// Registers the transaction callbacks that keep per-statement deltas consistent.
void InitAggregation();

// Records, for the statement's journal, what an AFTER ROW trigger's insert, state change or delete
// of a workflow job did to its workflow's counts (nothing for other rows or unchanged states).
void TrackWorkflowRow(TriggerData *trigger);

}  // namespace oban::pg
