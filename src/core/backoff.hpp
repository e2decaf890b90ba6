// Oban's default retry backoff ("jittery clamped"), as oban-py computes it.
#pragma once

#include <cstdint>

namespace oban::core {

// Seconds to wait before the next attempt after `attempt` failed, for a job allowed `max_attempts`.
// The attempt is clamped proportionally to 20 when max_attempts exceeds 20, the base delay is
// 15 + 2^attempt seconds, and jitter adds 0..10% on top. `unit_random` is uniform in [0, 1).
// The result is capped at kMaxBackoffSeconds (100 years), so any attempt count is safe.
inline constexpr int64_t kMaxBackoffSeconds = 3155760000;  // 100 years of 365.25 days

int64_t JitteryClampedBackoff(int64_t attempt, int64_t max_attempts, double unit_random);

}  // namespace oban::core
