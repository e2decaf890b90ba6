// The maintenance duties of the background worker (maintenance_worker.cpp): staging, pruning,
// rescue and workflow repair, each on its own interval (oban_pro.*_interval).
#pragma once
#include "pg/boundary.hpp"

extern "C" {
#include "utils/timestamp.h"
}

namespace oban::pg {

// At worker start: logs the settings; every duty is due at once when maintenance is on.
void StartMaintenance();

// After a configuration reload: logs the settings if they changed; a duty whose interval changed is
// next due one new interval after its last run; turning maintenance on makes every duty due at once.
void ReloadMaintenance();

// Runs the most overdue duty, if one is due, in a transaction of its own. Returns whether it ran one.
bool RunDueMaintenance(TimestampTz now);

// Milliseconds until the next duty is due (0 if one is due now), or -1 when none is scheduled.
long MaintenanceTimeoutMs(TimestampTz now);

}  // namespace oban::pg
