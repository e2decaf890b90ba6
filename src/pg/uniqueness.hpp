// Unique workflows (SPEC §5): one unfinished workflow per unique name, held in oban_workflow_names
// (uniqueness.cpp). C-style: call between BeginSql and EndSql.
#pragma once
#include "pg/boundary.hpp"

extern "C" {
#include "commands/trigger.h"
}

namespace oban::pg {

// Claims `name` (text) for workflow `workflow_id` (text). True when this workflow may go in: the
// name was free, held by a finished workflow (taken over), held by this workflow already, or
// `workflow_id` is an existing workflow (appending to it always succeeds). False on a conflict: an
// unfinished workflow of another id holds the name. Concurrent claims of one name serialize on the
// name's primary key entry: a second claimer waits for the first to commit or roll back.
bool ClaimWorkflowName(Oid schema, Datum name, Datum workflow_id);

// BEFORE INSERT of a job whose meta says workflow_unique: true. Returns `row` when its workflow
// may go in (claiming the name, see ClaimWorkflowName), nullptr to leave the row out: its workflow
// conflicts with an unfinished one of the same name.
HeapTuple ClaimUniqueWorkflowJob(TriggerData *trigger, HeapTuple row);

// Set while oban_insert_workflow inserts a spec whose name it has claimed: the claim trigger then
// leaves its rows alone. Reset at the end of the transaction or of a failed subtransaction.
extern bool workflow_names_claimed;

// Registers the transaction callbacks that forget conflicted workflows (uniqueness.cpp).
void InitUniqueness();

}  // namespace oban::pg
