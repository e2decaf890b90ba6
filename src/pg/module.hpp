// Settings and initialisation hooks shared across src/pg.
#pragma once

namespace oban::pg {

// oban_pro.max_error_bytes: error texts longer than this are truncated before they are stored.
extern int max_error_bytes;

// oban_pro.database: the database the background worker serves ("" for none).
extern char *database_name;
// oban_pro.flush_interval: the longest the worker waits between two flushes, in milliseconds.
extern int flush_interval_ms;

// Registers the transaction callbacks of the insert notifications (notify.cpp).
void InitNotify();

}  // namespace oban::pg
