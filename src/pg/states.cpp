#include "pg/states.hpp"

extern "C" {
#include "utils/builtins.h"
}

namespace oban::pg {

const char *const kStateNames[kStateCount] = {"suspended", "available", "scheduled", "executing",
                                              "retryable", "completed", "cancelled", "discarded"};

namespace {
// Enum value OIDs seen so far. An extension reinstall gives new OIDs; a few stale entries are harmless.
constexpr int kCacheSize = 32;
Oid cached_values[kCacheSize];
JobState cached_states[kCacheSize];
int cached = 0;
}  // namespace

JobState StateOf(Datum enum_value) {
    Oid value = DatumGetObjectId(enum_value);
    for (int i = 0; i < cached; i++)
        if (cached_values[i] == value) return cached_states[i];

    const char *label = DatumGetCString(DirectFunctionCall1(enum_out, enum_value));
    JobState state = kUnknownState;
    for (int i = 0; i < kStateCount; i++)
        if (strcmp(label, kStateNames[i]) == 0) state = static_cast<JobState>(i);
    if (cached == kCacheSize) cached = 0;  // start over rather than grow
    cached_values[cached] = value;
    cached_states[cached] = state;
    cached++;
    return state;
}

}  // namespace oban::pg
