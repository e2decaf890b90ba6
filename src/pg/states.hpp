// Job states by name, independent of their order in the enum (installs differ in order).
#pragma once
#include "pg/boundary.hpp"

namespace oban::pg {

// The order of the count columns in oban_workflow_rows and oban_workflow_journal.
enum JobState {
    kSuspended,
    kAvailable,
    kScheduled,
    kExecuting,
    kRetryable,
    kCompleted,
    kCancelled,
    kDiscarded,
    kStateCount,
    kUnknownState = -1
};

extern const char *const kStateNames[kStateCount];

// The state of an oban_job_state enum value (cached per value).
JobState StateOf(Datum enum_value);

inline bool IsFinished(JobState state) {
    return state == kCompleted || state == kCancelled || state == kDiscarded;
}

}  // namespace oban::pg
