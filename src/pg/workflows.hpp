// Workflow release, shared by the flush, repair and the maintenance worker (workflows.cpp).
// C-style: call between BeginSql and EndSql.
#pragma once
#include "pg/aggregation.hpp"
#include "pg/sql.hpp"
#include "pg/boundary.hpp"

extern "C" {
#include "commands/trigger.h"
}

namespace oban::pg {

// Folds the journal in batches of `limit` rows and releases or cancels the dependents of the steps
// that finished, until it has caught up (or after a bounded number of batches, so that a steady
// stream of acks cannot keep the flush from committing). Returns how many journal rows were folded.
int64 FlushWorkflows(Oid schema, int limit);

// Waits for a running flush and keeps others out to the end of the transaction: the journal rows
// and workflow rows are then the caller's to delete (the prune of finished workflows).
void LockOutFlushes(Oid schema);

// The precise check of `count` suspended jobs: release, cancel or keep waiting. With `repair`,
// missing deps fail the job (or, with ignore_deleted, are satisfied). A job whose settling fails is
// reported with a WARNING and left as it was. Returns how many jobs were released or cancelled.
int64 SettleJobs(Oid schema, int64 *job_ids, int count, bool repair);

// Dependents with at most this many deps left are released by the ack that completes the last of
// them (ReleaseInAck); bigger fan-ins by the flush, so no ack reads a fan-in's edges.
constexpr int kAckReleaseDeps = 8;

// The dependents of the steps the current statement completed (workflow_ids[i], names[i]: text,
// `count` of them) that wait on at most `limit` deps, so that ReleaseInAck may release them: their
// job ids, sorted, each once, `*found` of them. `*waited_on`: whether any job waits on the steps at
// all. Called by the journal trigger after every statement that completes workflow jobs.
// `leads_far[i]` (count of them): whether step i leads to a job further from release (left to the
// flush); `*near_edges` (`*near_edge_count`): which of the steps leads to which job near release.
struct NearEdge {
    int step;
    int64 job_id;
};
int64 *DependentsNearRelease(Oid schema, const Datum *workflow_ids, const Datum *names, int count, int limit,
                             int *found, bool *waited_on, bool *leads_far, NearEdge **near_edges,
                             int *near_edge_count);

// A workflow whose jobs the statement finished: its id and its parent's (texts; 0 for none).
struct FinishedWorkflow {
    Datum workflow_id, parent;
};

// Whether any job waits on one of the `workflows` (FinishedWorkflow *) as a whole (a
// [workflow_id, "*"] dep), or on a workflow it is a sub-workflow of: the edges read through a
// dirty snapshot (an insert still running counts), the parents under the statement's snapshot, or
// with `latest` under the latest (what a statement run next would see, or more). With `waited`,
// every such workflow (text Datums as pointers) is appended to it, each once.
bool AnyJobWaitsOnWhole(Oid schema, List *workflows, bool latest = false, List **waited = nullptr);

// Releases those of `dependents` (DependentsNearRelease's) whose deps the current statement's
// completed steps (as above) leave all completed, in a subtransaction that never waits on a lock;
// whatever it cannot release is left to the flush. Called by the journal trigger. Returns how many
// it released, their ids (ascending) in `*released`.
int ReleaseInAck(Oid schema, const Datum *workflow_ids, const Datum *names, int count,
                 const int64 *dependents, int dependent_count, int64 **released);

// Makes the suspended jobs at `tids` (`count`, each locked by the caller, which checked it may be
// released) available, or scheduled if their scheduled_at is still ahead, as an UPDATE of their
// state would, without running one (src/pg/release.cpp): whether it could. False, having changed
// nothing, where the table has more than the extension's own triggers on the state, checks on it,
// row security or generated columns: the caller then runs the statement.
bool ReleaseLockedJobs(Relation jobs, const ItemPointerData *tids, int count, Snapshot snapshot);

// BEFORE INSERT of a job whose meta has a workflow_id and deps: a job whose deps are not all
// satisfied waits `suspended`; one whose dep failed is inserted cancelled; one inserted suspended
// whose deps are all satisfied becomes available; otherwise it stays as inserted. Returns the row
// to store (`row` or a modified copy).
HeapTuple PrepareWorkflowJob(TriggerData *trigger, HeapTuple row);

// Waits and edges written straight into their tables (DirectInsert), for jobs just inserted: by
// oban_insert_workflow for a spec's own deps, and by the insert trigger for a job whose deps it
// decides itself. The caller writes each of a job's distinct deps once (WriteEdge), then its wait
// counting them (WriteWait).
struct WaitWriter {
    DirectInsert edges, waits;
    AttrNumber edge_workflow, edge_name, edge_job, wait_job, wait_workflow, wait_remaining;
};
void OpenWaitWriter(WaitWriter *writer, Oid schema);
// An edge from the dep (dep_workflow_id, dep_name: texts) to job `job_id` (int8).
void WriteEdge(WaitWriter *writer, Datum job_id, Datum dep_workflow_id, Datum dep_name);
// Job `job_id`'s wait in workflow `workflow_id` (text), on `remaining` deps; none for a job waiting
// on one dep, whose edge is all it waits on (the ack's release locks that edge alone, and the flush
// gives a job whose edge it consumed and that has no wait the precise check). Saves a row, its
// index entry, a lock and a delete for most dependents (chains, fan-outs).
void WriteWait(WaitWriter *writer, Datum job_id, Datum workflow_id, int32 remaining);
void CloseWaitWriter(WaitWriter *writer);

// The deps of jobs the current statement inserted waiting that it found unfinished, but that
// another transaction finished meanwhile (it is waited for if still running), for the journal
// trigger to journal as finished steps (StepOutcome *; NIL when there are none). Called by the
// journal trigger at the end of each statement.
List *RecheckConcurrentDeps(Oid schema);
// The deps to recheck of a subtransaction that ends pass to its parent, or go with it.
void AtSubtransactionEndDeps(bool committed, SubTransactionId subid, SubTransactionId parent);
void AtTransactionEndDeps();
// Set while oban_insert_workflow inserts a spec whose deps all lie inside it and writes their waits
// and edges itself: the insert trigger then leaves those rows alone.
extern bool workflow_deps_prepared;

}  // namespace oban::pg
