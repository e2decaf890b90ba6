// The background worker that folds the workflow journal and releases dependents (worker.cpp).
#pragma once
#include "pg/boundary.hpp"

namespace oban::pg {

// Requests shared memory and registers the worker; only while shared_preload_libraries loads us.
void InitWorker();

// Wakes the worker of this database, if any, so it flushes at once. Called after a commit that
// wrote journal rows; cheap and safe when the library was not preloaded.
void WakeFlusher();

// Queues a notification of channel "<schema_name>.oban_insert" with {"queue": queue} (skipped
// when the channel or payload is too long for Postgres). Defined in notify.cpp.
void NotifyInsert(const char *schema_name, const char *queue);

// Whether a worker serves this database and so can send insert notifications for it.
bool WorkerServesThisDatabase();

// Hands the queues that got available jobs in a just-committed transaction to the worker, which
// notifies "<schema>.oban_insert" for them from its own transaction: the committing backend then
// never takes Postgres' cluster-wide notify lock across its WAL flush. Returns false when the
// worker cannot take them (not running, or its table is full): the caller must notify itself.
bool HandOffNotifications(Oid schema, const char *const *queues, int count);

}  // namespace oban::pg
