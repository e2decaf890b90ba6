// The fetch floor of a queue: where oban_fetch_jobs starts its walk of the queue's available jobs.
//
// A fetch walks the (state, queue, priority, scheduled_at, id) index from the queue's first
// 'available' entry. The head of that range holds an entry for every job claimed since the last
// vacuum (a claimed job's 'available' version stays in the index until vacuum removes it, and while
// any snapshot older than the claim exists no scan may even mark it dead), so without a floor each
// fetch visits more dead entries the longer a snapshot is held. The floor is a key at or below every
// available job's key that fetches may still need; a fetch starts there and moves it up to the last
// job it claimed.
//
// Why moving it up cannot lose a job. A job is missed only if it is available, committed, and below
// the floor. Jobs become available (inserted, staged, released, retried, given back by an aborted
// fetch) in transactions that *publish* their lowest key once they are visible: the key lowers the
// floor and is remembered in `recent`. A fetch reads `published` before taking its snapshot and,
// when it moves the floor, caps the new floor by every key published since. So a job that became
// visible before the fetch's snapshot was seen by the fetch (claimed, or held by another claimer),
// one published between the snapshot and the move caps the move, and one published after the move
// lowers the floor again. When more keys were published during the fetch than `recent` holds, the
// fetch leaves the floor alone.
//
// What still gets past it: a job made available without the extension's triggers (disabled
// triggers, a prepared transaction committed from another session) or left available by a lock
// holder that is not a fetch. For those, a fetch walks the queue from its start now and then (see
// TakeFullScan).
//
// The struct lives in shared memory: trivially copyable, no constructor; Reset() initialises it. The
// caller serialises every method with one lock per queue.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <tuple>

namespace oban::core {

// A job's position in fetch order.
struct FetchKey {
    int32_t priority;
    int64_t scheduled_at;  // a Postgres timestamp: microseconds, infinities at the int64 limits
    int64_t id;
};

inline bool operator<(const FetchKey &a, const FetchKey &b) {
    return std::tie(a.priority, a.scheduled_at, a.id) < std::tie(b.priority, b.scheduled_at, b.id);
}
inline bool operator==(const FetchKey &a, const FetchKey &b) {
    return a.priority == b.priority && a.scheduled_at == b.scheduled_at && a.id == b.id;
}

inline constexpr FetchKey kLowestFetchKey{std::numeric_limits<int16_t>::min(),
                                          std::numeric_limits<int64_t>::min(),
                                          std::numeric_limits<int64_t>::min()};

// Where one fetch starts, and what it must hand back to Advance.
struct FetchStart {
    FetchKey from;
    uint64_t published;  // count of keys published before the fetch's snapshot
    bool full_scan;
};

struct QueueFloor {
    static constexpr int kRecent = 64;
    static constexpr int64_t kNever = std::numeric_limits<int64_t>::min();

    FetchKey floor;
    uint64_t published;
    int64_t last_full_scan_us;
    FetchKey recent[kRecent];  // the last kRecent published keys, by published % kRecent

    void Reset() {
        floor = kLowestFetchKey;
        published = 0;
        last_full_scan_us = kNever;
    }

    // Called before the fetch takes its snapshot. A fetch walks from the queue's start when the last
    // such walk is at least `full_scan_every_us` old (or always, when that is 0 or less).
    FetchStart Start(int64_t now_us, int64_t full_scan_every_us) {
        bool full_scan = full_scan_every_us <= 0 || last_full_scan_us == kNever ||
                         now_us < last_full_scan_us ||  // the clock went back
                         now_us - last_full_scan_us >= full_scan_every_us;
        if (full_scan) last_full_scan_us = now_us;
        return FetchStart{full_scan ? kLowestFetchKey : floor, published, full_scan};
    }

    // Jobs from `key` up became available and are visible to every new snapshot.
    void Publish(const FetchKey &key) {
        floor = std::min(floor, key);
        recent[published % kRecent] = key;
        published++;
    }

    // The fetch that began with `start` claimed jobs up to `last_claimed` (in fetch order).
    void Advance(const FetchStart &start, const FetchKey &last_claimed) {
        if (published - start.published > static_cast<uint64_t>(kRecent)) return;
        FetchKey proposed = last_claimed;
        for (uint64_t i = start.published; i < published; i++)
            proposed = std::min(proposed, recent[i % kRecent]);
        // A full scan saw the queue from its start, so it may also lower a floor that was too high.
        floor = start.full_scan ? proposed : std::max(floor, proposed);
    }
};

}  // namespace oban::core
