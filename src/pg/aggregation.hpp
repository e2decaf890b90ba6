// Workflow counts: the journal written by the oban_jobs triggers (aggregation.cpp).
#pragma once
#include "pg/boundary.hpp"
#include "pg/states.hpp"

extern "C" {
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/snapshot.h"
}

struct TriggerData;

namespace oban::pg {

// Registers the transaction callbacks that keep per-statement deltas consistent.
void InitAggregation();

// Records, for the statement's journal, what an AFTER ROW trigger's insert, state change or delete
// of a workflow job did to its workflow's counts (nothing for other rows or unchanged states).
void TrackWorkflowRow(TriggerData *trigger);

// A workflow's count deltas in kStateNames' order, the earliest start and the latest record among
// them: a statement's, or journal rows' summed.
struct CountDelta {
    int32 counts[kStateCount];
    bool started;
    Timestamp started_at, recorded_at;
};

// A workflow's summed deltas of the journal rows a flush took.
struct TakenDelta {
    Datum workflow_id;  // text
    CountDelta delta;
};

// A batch of journal rows taken (deleted) by TakeJournalRows, for FoldBatch to fold: their deltas
// summed per workflow.
struct JournalBatch {
    int64 taken;
    TakenDelta *deltas;
    int workflows;
};

// Takes (deletes) up to `limit` journal rows, a workflow's together, starting after the workflow
// where this backend's last full batch stopped (aggregation.cpp), and sums them per workflow; appends the
// steps they record as finished (workflow id, name, state: texts) to `step_workflows`, `step_names` and
// `step_states`, counting them in `*steps`.
JournalBatch TakeJournalRows(Oid schema, int limit, ArrayBuildState *step_workflows,
                             ArrayBuildState *step_names, ArrayBuildState *step_states, int *steps);

// Folds `batch` into the workflows' rows (a row missing is a workflow pruned since: its deltas go
// with it), without waiting for a row another transaction holds: that workflow's deltas go back into
// the journal as one row, for a later flush, which the worker is asked for. Appends to `*finished`
// the workflows whose own jobs all finished with the batch, with their parents (FinishedWorkflow *).
void FoldBatch(Oid schema, const JournalBatch &batch, List **finished);

// The derived state (SPEC §4: pending, executing, completed, cancelled or discarded) of workflow
// `workflow_id`'s whole tree, its sub-workflows with it, read from the workflow rows and the
// unfolded journal under `snapshot`; nullptr when there is no such workflow, or the caller may not
// read those tables.
const char *TreeState(Oid schema, Datum workflow_id, Snapshot snapshot);

// Locks the row of workflow `workflow_id` (text) FOR SHARE until the transaction ends, waiting for a
// transaction updating it (a fold in place that may finish the workflow: FoldInto), so that what
// is read of the workflow next is what that transaction left. Nothing for a workflow with no row.
void LockWorkflowRowShared(Oid schema, Datum workflow_id);

// A step that finished: its workflow id, name ("*" for a whole workflow) and final state (texts),
// as a journal row records it.
struct StepOutcome {
    Datum workflow_id, name, state;
};

// Puts finished steps (`steps`, StepOutcome *) back into the journal, as rows of no counts, for a
// later flush (which the worker is asked for): steps one of whose edges the current flush cannot
// consume yet. This flush's later rounds leave them.
void PutBackFinishedSteps(Oid schema, List *steps);

}  // namespace oban::pg
