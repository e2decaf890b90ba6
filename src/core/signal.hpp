// The decisions of oban_await_signal (SPEC §6), free of Postgres: reading a job's signal deadline
// (meta.wait_until) and choosing, when no signal is stored, between timing out, blocking, and
// parking the job.
#pragma once

#include <cstdint>
#include <string_view>

namespace oban::core {

// A job's signal deadline, set by its first park: none yet, "infinity", or a UTC instant in
// microseconds since 2000-01-01 00:00 (Postgres' timestamp epoch).
struct Deadline {
    enum class Kind { None, Infinity, At };
    Kind kind = Kind::None;
    int64_t at_us = 0;
};

// Reads meta.wait_until as the extension writes it: "infinity", or the JSON form of a timestamp
// ("YYYY-MM-DDTHH:MM:SS" with up to six fraction digits). Anything else reads as no deadline, so
// the next park sets a fresh one.
Deadline ParseDeadline(std::string_view text);

// Microseconds since 2000-01-01 of a UTC calendar instant (proleptic Gregorian).
int64_t TimestampMicros(int year, int month, int day, int hour, int minute, int second, int micros);

enum class AwaitStep {
    Timeout,  // the deadline has passed: return 'timeout'
    Block,    // wait for a signal for `sleep_us` more, then decide again
    Park,     // the wait_timeout is spent: park the job
};

struct AwaitDecision {
    AwaitStep step;
    int64_t sleep_us;  // for Block: > 0
};

// What to do when no signal is stored at `now_us`, for a call that may block until
// `block_until_us` (its start + wait_timeout). A deadline that comes first cuts the block short,
// and once it has passed the call times out.
AwaitDecision DecideAwait(const Deadline &deadline, int64_t now_us, int64_t block_until_us);

}  // namespace oban::core
