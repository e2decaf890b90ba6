#include "core/signal.hpp"

#include <gtest/gtest.h>

using oban::core::AwaitStep;
using oban::core::Deadline;
using oban::core::DecideAwait;
using oban::core::ParseDeadline;
using oban::core::TimestampMicros;

TEST(ParseDeadline, ReadsInfinity) {
    EXPECT_EQ(ParseDeadline("infinity").kind, Deadline::Kind::Infinity);
}

TEST(ParseDeadline, ReadsTheJsonFormOfATimestamp) {
    Deadline d = ParseDeadline("2000-01-01T00:00:00");
    ASSERT_EQ(d.kind, Deadline::Kind::At);
    EXPECT_EQ(d.at_us, 0);
    d = ParseDeadline("2000-01-02T00:00:01.5");
    ASSERT_EQ(d.kind, Deadline::Kind::At);
    EXPECT_EQ(d.at_us, (86400LL + 1) * 1000000 + 500000);
    d = ParseDeadline("1999-12-31T23:59:59.999999");
    ASSERT_EQ(d.kind, Deadline::Kind::At);
    EXPECT_EQ(d.at_us, -1);
    // 2024-02-29 12:34:56.000123 UTC is 1709210096 s after the Unix epoch, 946684800 s after it.
    d = ParseDeadline("2024-02-29T12:34:56.000123");
    ASSERT_EQ(d.kind, Deadline::Kind::At);
    EXPECT_EQ(d.at_us, (1709210096LL - 946684800LL) * 1000000 + 123);
}

TEST(ParseDeadline, AnythingElseIsNoDeadline) {
    for (const char *text :
         {"", "Infinity", "tomorrow", "2024-02-30T00:00:00", "2023-02-29T00:00:00", "2024-01-01 00:00:00",
          "2024-01-01T24:00:00", "2024-01-01T00:00:00.", "2024-01-01T00:00:00.1234567",
          "2024-01-01T00:00:00Z", "2024-1-01T00:00:00", "2024-01-01T00:00"})
        EXPECT_EQ(ParseDeadline(text).kind, Deadline::Kind::None) << text;
}

TEST(TimestampMicros, CountsLeapYears) {
    EXPECT_EQ(TimestampMicros(2001, 1, 1, 0, 0, 0, 0), 366LL * 86400 * 1000000);
    EXPECT_EQ(TimestampMicros(2100, 3, 1, 0, 0, 0, 0) - TimestampMicros(2100, 2, 28, 0, 0, 0, 0),
              86400LL * 1000000);
}

TEST(DecideAwait, BlocksUntilTheWaitTimeoutThenParks) {
    Deadline none;
    auto d = DecideAwait(none, 100, 5000);
    EXPECT_EQ(d.step, AwaitStep::Block);
    EXPECT_EQ(d.sleep_us, 4900);
    EXPECT_EQ(DecideAwait(none, 5000, 5000).step, AwaitStep::Park);
    EXPECT_EQ(DecideAwait(none, 6000, 5000).step, AwaitStep::Park);
    Deadline infinity{Deadline::Kind::Infinity, 0};
    EXPECT_EQ(DecideAwait(infinity, 100, 5000).sleep_us, 4900);
    EXPECT_EQ(DecideAwait(infinity, 5000, 5000).step, AwaitStep::Park);
}

TEST(DecideAwait, APassedDeadlineTimesOut) {
    Deadline at{Deadline::Kind::At, 1000};
    EXPECT_EQ(DecideAwait(at, 1000, 5000).step, AwaitStep::Timeout);
    EXPECT_EQ(DecideAwait(at, 9000, 5000).step, AwaitStep::Timeout);
}

TEST(DecideAwait, AnEarlierDeadlineCutsTheBlockShort) {
    Deadline at{Deadline::Kind::At, 3000};
    auto d = DecideAwait(at, 1000, 5000);
    EXPECT_EQ(d.step, AwaitStep::Block);
    EXPECT_EQ(d.sleep_us, 2000);
    // A later deadline leaves the block as it was, then the job parks keeping that deadline.
    Deadline later{Deadline::Kind::At, 9000};
    EXPECT_EQ(DecideAwait(later, 1000, 5000).sleep_us, 4000);
    EXPECT_EQ(DecideAwait(later, 5000, 5000).step, AwaitStep::Park);
}
