// Settings and initialisation hooks shared across src/pg.
#pragma once

namespace oban::pg {

// oban_pro.max_error_bytes: error texts longer than this are truncated before they are stored.
extern int max_error_bytes;

// Registers the transaction callbacks of the insert notifications (notify.cpp).
void InitNotify();

}  // namespace oban::pg
