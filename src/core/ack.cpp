#include "core/pure.hpp"  // first: proves this file builds without Postgres headers
#include "core/ack.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

namespace oban::core {

bool ParseJobId(std::string_view text, int64_t *id) {
    int64_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value <= 0) return false;
    *id = value;
    return true;
}

bool ParseDelaySeconds(std::string_view text, double *seconds) {
    if (text.empty()) return false;
    const std::string copy(text);
    char *end = nullptr;
    const double value = std::strtod(copy.c_str(), &end);
    if (end != copy.c_str() + copy.size() || !std::isfinite(value)) return false;
    if (value < 0 || value > kMaxDelaySeconds) return false;
    *seconds = value;
    return true;
}

namespace {

bool IsAbsent(const RawField &field) {
    return field.kind == JsonKind::Missing || field.kind == JsonKind::Null;
}

const char *ReadError(const RawAck &raw, Ack *out) {
    if (IsAbsent(raw.error)) return nullptr;
    if (raw.error.kind != JsonKind::String) return "\"error\" must be a string";
    out->has_error = true;
    return nullptr;
}

}  // namespace

const char *ValidateAck(const RawAck &raw, Ack *out) {
    *out = Ack{};
    if (!raw.is_object) return "an ack must be a JSON object";
    if (raw.id.kind == JsonKind::Missing) return "\"id\" is missing";
    if (raw.id.kind != JsonKind::Number || !ParseJobId(raw.id.text, &out->id))
        return "\"id\" must be a positive integer";
    if (raw.state.kind == JsonKind::Missing) return "\"state\" is missing";
    if (raw.state.kind != JsonKind::String) return "\"state\" must be a string";

    const std::string_view state = raw.state.text;
    if (state == "completed") {
        out->kind = AckKind::Complete;
        out->has_recorded = !IsAbsent(raw.recorded);
    } else if (state == "retryable") {
        out->kind = AckKind::Error;
        if (!IsAbsent(raw.backoff)) {
            if (raw.backoff.kind != JsonKind::Number ||
                !ParseDelaySeconds(raw.backoff.text, &out->backoff_seconds))
                return "\"backoff\" must be a number of seconds between 0 and 100 years";
            out->has_backoff = true;
        }
    } else if (state == "cancelled") {
        out->kind = AckKind::Cancel;
    } else if (state == "discarded") {
        out->kind = AckKind::Discard;
    } else if (state == "scheduled") {
        out->kind = AckKind::Snooze;
        if (raw.snooze.kind != JsonKind::Number || !ParseDelaySeconds(raw.snooze.text, &out->snooze_seconds))
            return "\"snooze\" must be a number of seconds between 0 and 100 years";
    } else {
        return "\"state\" must be one of completed, retryable, cancelled, discarded, scheduled";
    }
    if (out->kind != AckKind::Complete && out->kind != AckKind::Snooze) return ReadError(raw, out);
    return nullptr;
}

}  // namespace oban::core
