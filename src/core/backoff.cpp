#include "core/pure.hpp"  // first: proves this file builds without Postgres headers
#include "core/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace oban::core {

namespace {
constexpr int64_t kClampedMax = 20;
constexpr int64_t kMinPad = 15;
constexpr int64_t kMaxExponent = 62;
constexpr double kJitterShare = 0.1;
}  // namespace

int64_t JitteryClampedBackoff(int64_t attempt, int64_t max_attempts, double unit_random) {
    attempt = std::max<int64_t>(attempt, 0);
    int64_t clamped = attempt;
    if (max_attempts > kClampedMax)
        clamped = std::llround(static_cast<double>(attempt) / static_cast<double>(max_attempts) *
                               static_cast<double>(kClampedMax));
    clamped = std::min(clamped, kMaxExponent);

    const int64_t base = kMinPad + (int64_t{1} << clamped);
    const double jitter = std::clamp(unit_random, 0.0, 1.0) * kJitterShare * static_cast<double>(base);
    const double total = static_cast<double>(base) + std::floor(jitter);
    if (total >= static_cast<double>(kMaxBackoffSeconds)) return kMaxBackoffSeconds;
    return static_cast<int64_t>(total);
}

}  // namespace oban::core
