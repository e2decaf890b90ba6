// Settings and initialisation hooks shared across src/pg.
#pragma once

namespace oban::pg {

// oban_pro.max_error_bytes: error texts longer than this are truncated before they are stored.
extern int max_error_bytes;

// oban_pro.database: the databases the background workers serve, a comma-separated list ("" for
// none); one worker per database.
extern char *database_name;
// oban_pro.flush_interval: the longest the worker waits between two flushes, in milliseconds.
extern int flush_interval_ms;
// oban_pro.flush_delay: the shortest time between two flushes asked for by commits, in milliseconds;
// the commits within it are folded by one flush.
extern int flush_delay_ms;
// oban_pro.fold_delay: how long the worker may leave journal rows that no job waits on (counts
// only) before folding them, in milliseconds.
extern int fold_delay_ms;
// oban_pro.vacuum_jobs: whether the worker vacuums oban_jobs as soon as autovacuum's own rule says
// it is due, rather than at autovacuum's next visit of the database.
extern bool vacuum_jobs;

// Maintenance by the worker (maintenance_worker.cpp). Intervals in milliseconds (0: that duty is
// off), ages in seconds.
extern bool maintenance_enabled;
extern int stage_interval_ms;
extern int prune_interval_ms;
extern int prune_max_age_s;
extern int prune_limit;
extern int rescue_interval_ms;
extern int rescue_after_s;
extern int repair_interval_ms;
extern int repair_max_age_s;

// Registers the transaction callbacks of the insert notifications (notify.cpp).
void InitNotify();

// oban_pro.max_signal_bytes: the largest signal payload oban_signal accepts.
extern int max_signal_bytes;
// Defines the signal settings, registers the wake-at-commit callbacks and, while
// shared_preload_libraries loads us, requests the shared memory waiters sleep on (signals.cpp).
void InitSignals();

}  // namespace oban::pg
