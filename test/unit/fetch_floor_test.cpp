#include "core/fetch_floor.hpp"

#include <gtest/gtest.h>

using oban::core::FetchKey;
using oban::core::FetchStart;
using oban::core::kLowestFetchKey;
using oban::core::QueueFloor;

namespace {

constexpr int64_t kEvery = 1'000'000;  // full scans once a second

FetchKey Job(int64_t id, int32_t priority = 0) {
    return FetchKey{priority, 1000 + id, id};
}

QueueFloor Fresh() {
    QueueFloor floor;
    floor.Reset();
    return floor;
}

}  // namespace

TEST(FetchKey, OrdersByPriorityThenScheduledAtThenId) {
    EXPECT_LT(Job(9, 0), Job(1, 1));
    EXPECT_LT((FetchKey{0, 5, 9}), (FetchKey{0, 6, 1}));
    EXPECT_LT((FetchKey{0, 5, 1}), (FetchKey{0, 5, 2}));
    EXPECT_LT(kLowestFetchKey, (FetchKey{0, 0, 0}));
}

TEST(QueueFloor, FirstFetchScansFullyThenStartsWhereTheLastLeftOff) {
    QueueFloor floor = Fresh();
    FetchStart first = floor.Start(0, kEvery);
    EXPECT_TRUE(first.full_scan);
    EXPECT_EQ(first.from, kLowestFetchKey);
    floor.Advance(first, Job(10));
    FetchStart second = floor.Start(10, kEvery);
    EXPECT_FALSE(second.full_scan);
    EXPECT_EQ(second.from, Job(10));
}

TEST(QueueFloor, AKeyPublishedBelowTheFloorLowersIt) {
    QueueFloor floor = Fresh();
    floor.Advance(floor.Start(0, kEvery), Job(10));
    floor.Publish(Job(3));
    EXPECT_EQ(floor.Start(1, kEvery).from, Job(3));
    floor.Publish(Job(20));  // above: no change
    EXPECT_EQ(floor.Start(2, kEvery).from, Job(3));
}

// The race the design exists for: job 5 commits after the fetch took its snapshot (so the fetch
// did not see it) but before the fetch moves the floor past it.
TEST(QueueFloor, AKeyPublishedDuringAFetchCapsItsAdvance) {
    QueueFloor floor = Fresh();
    floor.Advance(floor.Start(0, kEvery), Job(1));
    FetchStart fetch = floor.Start(1, kEvery);
    floor.Publish(Job(5));         // above the floor: does not lower it
    floor.Advance(fetch, Job(9));  // the fetch claimed up to job 9 without seeing job 5
    EXPECT_EQ(floor.Start(2, kEvery).from, Job(5));
}

TEST(QueueFloor, AKeyPublishedBeforeTheFetchDoesNotCapIt) {
    QueueFloor floor = Fresh();
    floor.Advance(floor.Start(0, kEvery), Job(1));
    floor.Publish(Job(5));  // visible to the fetch below, which claims it
    FetchStart fetch = floor.Start(1, kEvery);
    floor.Advance(fetch, Job(9));
    EXPECT_EQ(floor.Start(2, kEvery).from, Job(9));
}

TEST(QueueFloor, TooManyKeysPublishedDuringAFetchLeaveTheFloorAlone) {
    QueueFloor floor = Fresh();
    floor.Advance(floor.Start(0, kEvery), Job(1));
    FetchStart fetch = floor.Start(1, kEvery);
    for (int i = 0; i <= QueueFloor::kRecent; i++) floor.Publish(Job(100 + i));
    floor.Advance(fetch, Job(500));
    EXPECT_EQ(floor.Start(2, kEvery).from, Job(1));
    // Exactly kRecent are still known.
    FetchStart next = floor.Start(3, kEvery);
    for (int i = 0; i < QueueFloor::kRecent; i++) floor.Publish(Job(600 + i));
    floor.Advance(next, Job(900));
    EXPECT_EQ(floor.Start(4, kEvery).from, Job(600));
}

TEST(QueueFloor, AnOverlappingFetchNeverMovesTheFloorBack) {
    QueueFloor floor = Fresh();
    floor.Advance(floor.Start(0, kEvery), Job(1));
    FetchStart slow = floor.Start(1, kEvery);
    FetchStart fast = floor.Start(2, kEvery);
    floor.Advance(fast, Job(20));
    floor.Advance(slow, Job(10));  // claimed below what `fast` skipped: those are held, not lost
    EXPECT_EQ(floor.Start(3, kEvery).from, Job(20));
}

TEST(QueueFloor, AFullScanMayLowerAFloorThatWasTooHigh) {
    QueueFloor floor = Fresh();
    floor.Advance(floor.Start(0, kEvery), Job(50));
    // A job below 50 became available without publishing (triggers disabled): only a full scan
    // finds it, and its advance brings the floor down to what it claimed.
    FetchStart full = floor.Start(kEvery, kEvery);
    ASSERT_TRUE(full.full_scan);
    floor.Advance(full, Job(7));
    EXPECT_EQ(floor.Start(kEvery + 1, kEvery).from, Job(7));
}

TEST(QueueFloor, FullScansComeOncePerIntervalAndWhenTheClockGoesBack) {
    QueueFloor floor = Fresh();
    EXPECT_TRUE(floor.Start(100, kEvery).full_scan);
    EXPECT_FALSE(floor.Start(100 + kEvery - 1, kEvery).full_scan);
    EXPECT_TRUE(floor.Start(100 + kEvery, kEvery).full_scan);
    EXPECT_TRUE(floor.Start(50, kEvery).full_scan);  // earlier than the last one
    EXPECT_TRUE(floor.Start(51, 0).full_scan);       // interval 0: always
    EXPECT_TRUE(floor.Start(std::numeric_limits<int64_t>::min() + 1, kEvery).full_scan);
}
