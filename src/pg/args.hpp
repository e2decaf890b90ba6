// Checks of SQL arguments shared by the entry points. Each raises a documented SQLSTATE.
#pragma once
#include "core/ack.hpp"
#include "pg/boundary.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/trigger.h"
#include "datatype/timestamp.h"
}

namespace oban::pg {

// The TriggerData of a BEFORE INSERT ROW trigger call of `function`; 39P01 for any other call.
inline TriggerData *RequireBeforeInsertRowTrigger(FunctionCallInfo fcinfo, const char *function) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s() was not called by a trigger", function)));
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_BEFORE(trigger->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigger->tg_event) ||
        !TRIGGER_FIRED_BY_INSERT(trigger->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s() must be a BEFORE INSERT ROW trigger", function)));
    return trigger;
}

// The TriggerData of an AFTER UPDATE ROW trigger call of `function`; 39P01 for any other call.
inline TriggerData *RequireAfterUpdateRowTrigger(FunctionCallInfo fcinfo, const char *function) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s() was not called by a trigger", function)));
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_AFTER(trigger->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigger->tg_event) ||
        !TRIGGER_FIRED_BY_UPDATE(trigger->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s() must be an AFTER UPDATE ROW trigger", function)));
    return trigger;
}

// 22004 when argument `position` is SQL NULL.
inline void RequireArgument(FunctionCallInfo fcinfo, int position, const char *name) {
    if (PG_ARGISNULL(position))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be null", name)));
}

// 22023 when `value` is negative.
inline void RequireNonNegative(int64 value, const char *name) {
    if (value < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s must not be negative", name)));
}

// 22023 when any part of `interval` is negative.
inline void RequireNonNegativeInterval(const Interval *interval, const char *name) {
    if (interval->month < 0 || interval->day < 0 || interval->time < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s must not be negative", name),
                        errdetail("Every part of the interval must be zero or positive.")));
}

// 22023 when `interval` is negative in any part, or longer than 100 years: a delay (backoff, snooze)
// must keep the resulting timestamp in range.
inline void RequireDelay(const Interval *interval, const char *name) {
    RequireNonNegativeInterval(interval, name);
    double seconds = interval->month * (double)DAYS_PER_MONTH * SECS_PER_DAY +
                     interval->day * (double)SECS_PER_DAY + interval->time / (double)USECS_PER_SEC;
    if (seconds > core::kMaxDelaySeconds)  // the same limit acks obey
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s must be at most 100 years", name)));
}

// 25000 when the transaction is REPEATABLE READ or SERIALIZABLE: `function` decides from what it
// reads, and must see what committed after the transaction began (`why`: an errdetail).
inline void RequireReadCommitted(const char *function, const char *why) {
    if (IsolationUsesXactSnapshot())
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_TRANSACTION_STATE),
                 errmsg("%s cannot run in a REPEATABLE READ or SERIALIZABLE transaction", function),
                 errdetail("%s", why), errhint("Call it in READ COMMITTED, the default isolation level.")));
}

}  // namespace oban::pg
