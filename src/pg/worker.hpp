// The background worker that folds the workflow journal and releases dependents (worker.cpp).
#pragma once

namespace oban::pg {

// Requests shared memory and registers the worker; only while shared_preload_libraries loads us.
void InitWorker();

// Wakes the worker of this database, if any, so it flushes at once. Called after a commit that
// wrote journal rows; cheap and safe when the library was not preloaded.
void WakeFlusher();

}  // namespace oban::pg
