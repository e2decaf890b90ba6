#include "core/backoff.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

using oban::core::JitteryClampedBackoff;

TEST(JitteryClampedBackoff, BaseIsFifteenPlusTwoToTheAttempt) {
    EXPECT_EQ(JitteryClampedBackoff(0, 20, 0.0), 16);
    EXPECT_EQ(JitteryClampedBackoff(1, 20, 0.0), 17);
    EXPECT_EQ(JitteryClampedBackoff(5, 20, 0.0), 47);
    EXPECT_EQ(JitteryClampedBackoff(20, 20, 0.0), 15 + (1 << 20));
}

TEST(JitteryClampedBackoff, JitterOnlyAddsUpToTenPercent) {
    for (double r : {0.0, 0.25, 0.5, 0.999999}) {
        int64_t delay = JitteryClampedBackoff(10, 20, r);
        EXPECT_GE(delay, 15 + 1024);
        EXPECT_LE(delay, (15 + 1024) * 11 / 10);
    }
    EXPECT_EQ(JitteryClampedBackoff(10, 20, 0.5), 1039 + 51);  // floor(0.5 * 0.1 * 1039)
}

TEST(JitteryClampedBackoff, ClampsAttemptsProportionallyAboveTwenty) {
    // attempt 50 of 100 behaves like attempt 10 of 20.
    EXPECT_EQ(JitteryClampedBackoff(50, 100, 0.0), JitteryClampedBackoff(10, 20, 0.0));
    EXPECT_EQ(JitteryClampedBackoff(100, 100, 0.0), JitteryClampedBackoff(20, 20, 0.0));
    // No clamping at or below twenty attempts.
    EXPECT_EQ(JitteryClampedBackoff(7, 10, 0.0), 15 + 128);
}

TEST(JitteryClampedBackoff, HostileInputsStayInRange) {
    EXPECT_EQ(JitteryClampedBackoff(-5, 20, 0.0), 16);
    EXPECT_EQ(JitteryClampedBackoff(std::numeric_limits<int64_t>::max(), 0, 1.0),
              oban::core::kMaxBackoffSeconds);
    EXPECT_EQ(JitteryClampedBackoff(1000, 20, 2.0), oban::core::kMaxBackoffSeconds);
    EXPECT_EQ(JitteryClampedBackoff(50, 20, 0.0), oban::core::kMaxBackoffSeconds);  // 2^50 s is longer
    EXPECT_EQ(JitteryClampedBackoff(3, 20, -1.0), 23);
}
