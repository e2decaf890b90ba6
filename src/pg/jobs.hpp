// State changes of one job, shared by the single-job functions and oban_ack_jobs. C-style: each
// runs one kept statement between BeginSql and EndSql and may raise a Postgres error. Each returns
// true when the job was in a state the change applies to (and so changed).
#pragma once
#include "pg/boundary.hpp"

namespace oban::pg {

// executing → completed; `recorded` (jsonb) is kept in meta as the job's result.
bool ApplyComplete(Oid schema, int64 id, Datum recorded, bool has_recorded);
// executing → retryable after `backoff` (interval; Oban's backoff when absent), or discarded when
// out of attempts; appends {attempt, at, error} to errors. *state receives the new state.
bool ApplyError(Oid schema, int64 id, Datum error, Datum backoff, bool has_backoff, Datum *state);
// Any unfinished state → cancelled; `reason` (text) is appended to errors when given.
bool ApplyCancel(Oid schema, int64 id, Datum reason, bool has_reason);
// executing → discarded; `reason` (text) is appended to errors when given.
bool ApplyDiscard(Oid schema, int64 id, Datum reason, bool has_reason);
// executing → scheduled after `snooze` (interval), giving the attempt back.
bool ApplySnooze(Oid schema, int64 id, Datum snooze);

}  // namespace oban::pg
