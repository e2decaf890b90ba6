// oban_workflow_steps: a workflow's jobs by workflow id and step name, one row per workflow job,
// written by the statement that inserts the job and deleted with it (steps.cpp). The extension's
// look-ups of a step's job go through it rather than an index on oban_jobs, which would take an
// entry for every state change of every workflow job. C-style: no C++ objects live here.
#pragma once
#include "pg/sql.hpp"

extern "C" {
#include "access/genam.h"
#include "access/relscan.h"
#include "utils/rel.h"
#include "utils/snapshot.h"
}

namespace oban::pg {

// Records that the current statement inserted job `job_id` of workflow `workflow_id`, step `name`
// (nullptr: a job without one), or deleted it (`deleted`; `was_waiting`: it was suspended), for
// WriteStepChanges. From the row triggers, which fire for every workflow job inserted or deleted.
void RecordStepChange(Oid schema, const char *workflow_id, const char *name, int64 job_id, bool deleted,
                      bool was_waiting);

// Writes the changes the current subtransaction recorded for `schema`: a row for each job
// inserted, the row of each job deleted deleted (nothing in a 0.6.0 schema, which has no steps
// table: its update fills it). From the statement trigger, before anything in it reads steps: the
// statement's own jobs are then found by the statement's later look-ups. Returns the ids of the
// deleted jobs that were waiting (`*waiting_count` of them), whose waits and edges the caller forgets.
int64 *WriteStepChanges(Oid schema, int *waiting_count);

// Changes of a rolled-back subtransaction are dropped; a committed one's pass to its parent.
void AtSubtransactionEndSteps(bool committed, SubTransactionId subid, SubTransactionId parent);

// Drops every recorded change: at the transaction's end, and when TRUNCATE empties the steps.
void ForgetStepChanges();

// The jobs of a step, read under one snapshot: each step row the snapshot sees, and its job, read by
// the jobs' primary key under the same snapshot (a row version that snapshot does not see is passed
// over). With a dirty snapshot, the snapshot's xmin and xmax describe the job row last returned.
struct StepReader {
    Relation jobs, steps, steps_index, jobs_key;
    IndexScanDesc step_scan, job_scan;
    TupleTableSlot *step_slot;
    AttrNumber step_job;
    bool reading_job;  // job_scan is positioned on the current step's job
};

// Opens `reader` over `jobs` (the caller's, open) under `snapshot`: whether the current user may
// read the steps directly (no row security applies to them) and every index is there with the extension's
// keys (otherwise nothing is left open, and the caller takes its other way, or none).
bool OpenStepReader(StepReader *reader, Oid schema, Relation jobs, Snapshot snapshot);

// Reads under `snapshot` from now on (the scans begun again: a scan's snapshot is fixed).
void SetStepSnapshot(StepReader *reader, Snapshot snapshot);

// Starts reading the jobs of step `name` (text) of workflow `workflow_id` (text).
void SeekStep(StepReader *reader, Datum workflow_id, Datum name);

// The next job of the step into `job_slot`, in the order of their ids: whether there is one.
bool NextJobOfStep(StepReader *reader, TupleTableSlot *job_slot);

void CloseStepReader(StepReader *reader);

}  // namespace oban::pg
