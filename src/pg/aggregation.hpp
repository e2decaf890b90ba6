// Workflow counts: the journal written by the oban_jobs triggers (aggregation.cpp).
#pragma once
#include "pg/boundary.hpp"
#include "pg/states.hpp"

extern "C" {
#include "utils/array.h"
}

struct TriggerData;

namespace oban::pg {

// Registers the transaction callbacks that keep per-statement deltas consistent.
void InitAggregation();

// Records, for the statement's journal, what an AFTER ROW trigger's insert, state change or delete
// of a workflow job did to its workflow's counts (nothing for other rows or unchanged states).
void TrackWorkflowRow(TriggerData *trigger);

// A batch of journal rows taken (deleted) by TakeJournalRows, for the flush to fold.
struct JournalBatch {
    int64 taken;
    // Per workflow of the batch, in parallel arrays: the fold's parameters (src/pg/workflows.cpp,
    // fold_counts): workflow ids (text[]), then each state's count delta in kStateNames' order and
    // the change in unfinished jobs (int[]), the earliest started_at and the latest recorded_at
    // (timestamp[]; started_at NULL when no job of the batch started).
    Datum fold_args[kStateCount + 4];
};

// Takes (deletes) up to `limit` journal rows, a workflow's together, starting after the workflow
// where this backend's last full batch stopped (aggregation.cpp), and sums them per workflow; appends the
// steps they record as finished (workflow id, name, state: texts) to `step_workflows`, `step_names` and
// `step_states`, counting them in `*steps`.
JournalBatch TakeJournalRows(Oid schema, int limit, ArrayBuildState *step_workflows,
                             ArrayBuildState *step_names, ArrayBuildState *step_states, int *steps);

}  // namespace oban::pg
