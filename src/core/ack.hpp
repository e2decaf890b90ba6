// Validation of the entries given to oban_ack_jobs. The extension reads each JSON entry into a
// RawAck (field by field, as text) and this code decides, without touching Postgres, whether it is a
// well-formed ack and what it asks for.
#pragma once

#include <cstdint>
#include <string_view>

namespace oban::core {

enum class JsonKind { Missing, Null, String, Number, Boolean, Object, Array };

struct RawField {
    JsonKind kind = JsonKind::Missing;
    std::string_view text;  // the string's contents, or the number as Postgres prints it
};

struct RawAck {
    bool is_object = false;
    RawField id, state, error, backoff, snooze, recorded;
};

enum class AckKind { Complete, Error, Cancel, Discard, Snooze };

struct Ack {
    AckKind kind = AckKind::Complete;
    int64_t id = 0;
    bool has_error = false;  // error text (Error, Cancel, Discard): RawAck::error.text
    bool has_backoff = false;
    double backoff_seconds = 0;  // Error only; absent means Oban's default backoff
    double snooze_seconds = 0;   // Snooze only
    bool has_recorded = false;   // Complete only: RawAck::recorded holds the value
};

// The longest delay an ack may ask for (100 years), so timestamps stay in range.
inline constexpr double kMaxDelaySeconds = 100.0 * 365.25 * 24 * 3600;

// Fills `out` and returns nullptr for a valid entry; otherwise returns why it is invalid.
const char *ValidateAck(const RawAck &raw, Ack *out);

// Parses a JSON number printed by Postgres as a positive 64-bit integer id.
bool ParseJobId(std::string_view text, int64_t *id);

// Parses a JSON number as a delay in seconds in [0, kMaxDelaySeconds].
bool ParseDelaySeconds(std::string_view text, double *seconds);

}  // namespace oban::core
