// The background workers, one per database of oban_pro.database (worker.cpp): each folds the
// workflow journal, releases dependents, sends handed-off notifications, has oban_jobs vacuumed when
// autovacuum's rule for it is met, and runs maintenance.
#pragma once
#include "pg/boundary.hpp"

extern "C" {
#include "access/htup.h"
#include "utils/guc.h"
#include "utils/relcache.h"
}

namespace oban::pg {

// Requests shared memory and registers one worker per database; only while
// shared_preload_libraries loads us.
void InitWorker();

// Check hook of oban_pro.database: a comma-separated list of distinct database names (double
// quotes keep a name's commas and spaces), at most 16.
bool CheckDatabaseList(char **newval, void **extra, GucSource source);

// In the worker: runs `body(arg)` in a transaction of its own, reporting `activity` in
// pg_stat_activity. An error is logged (with `activity` as context) and the transaction rolled
// back; the worker carries on. `body` must hold no C++ object with a destructor. Without
// `snapshot`, no snapshot is pushed for `body` (a utility command that manages its own, as VACUUM).
void RunInTransaction(const char *activity, void (*body)(void *), void *arg, bool snapshot = true);

// In the worker, inside RunInTransaction: the schema oban_pro is installed in, or InvalidOid when
// it is not installed in this database (logged once, until it appears).
Oid WorkerSchema();

// Asks the worker of this database, if any, for a flush: within oban_pro.flush_delay if `soon` (a
// job may wait on what the commit finished), otherwise within oban_pro.fold_delay. Called after a
// commit that wrote journal rows; cheap and safe when the library was not preloaded.
void WakeFlusher(bool soon);

// Queues a notification of channel "<schema_name>.oban_insert" with {"queue": queue} (skipped
// when the channel or payload is too long for Postgres). Defined in notify.cpp.
void NotifyInsert(const char *schema_name, const char *queue);

// Records that `queue_text` (a text Datum) of the oban_jobs in `schema` got available jobs in this
// transaction: "<schema>.oban_insert" is notified for it once, at commit. Defined in notify.cpp.
void RecordAvailableQueue(Oid schema, Datum queue_text);

// For the AFTER UPDATE ROW trigger `function` (its trigger data in fcinfo->context): when the row
// became available, its queue is notified at commit and its key published to the queue's fetch
// floor. The columns are found once per statement (kept in the trigger's FmgrInfo). Defined in
// notify.cpp.
void RecordIfBecameAvailable(FunctionCallInfo fcinfo, const char *function);
// What that trigger does for `row` of `relation` (oban_jobs), a job made available without an
// UPDATE statement (ReleaseLockedJobs).
void RecordAvailableJobRow(Relation relation, HeapTuple row);

// Whether a worker serves this database and so can send insert notifications for it.
bool WorkerServesThisDatabase();

// Hands the queues that got available jobs in a just-committed transaction to the worker, which
// notifies "<schema>.oban_insert" for them from its own transaction: the committing backend then
// never takes Postgres' cluster-wide notify lock across its WAL flush. Returns false when the
// worker cannot take them (not running, or its table is full): the caller must notify itself.
bool HandOffNotifications(Oid schema, const char *const *queues, int count);

}  // namespace oban::pg
