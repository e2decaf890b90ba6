// The background worker's maintenance (SPEC §7): with oban_pro.maintenance on, it runs
// oban_stage_jobs, oban_prune_jobs, oban_rescue_jobs and oban_repair_workflows of the extension's
// schema, each every oban_pro.*_interval, each run in a short transaction of its own. A run that
// fails is logged and tried again one interval later; the other duties go on. The functions take
// their rows with FOR UPDATE SKIP LOCKED, so workers (or clients) running them at once on one
// database never take the same rows. Plain C-style code: no C++ object is live across a longjmp.
#include "pg/maintenance_worker.hpp"

#include "pg/module.hpp"
#include "pg/worker.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
}

namespace oban::pg {

namespace {

// A maintenance run never waits longer than this for a lock (say, a migration holding
// oban_jobs): it fails, is logged, and runs again next interval.
constexpr const char *kRunLockTimeout = "1s";
constexpr int kStageLimit = 5000;   // oban_stage_jobs' default
constexpr int kRepairLimit = 1000;  // oban_repair_workflows' default

enum DutyKind { kStage, kPrune, kRescue, kRepair, kDutyCount };

struct Duty {
    const char *name;      // for logs
    const char *function;  // in the extension's schema
    const char *activity;  // pg_stat_activity.query while it runs
    const int *interval_ms;
    TimestampTz last_run;  // 0: never (due at once); the next run is due one interval later
};

Duty duties[kDutyCount] = {
    {"staging", "oban_stage_jobs", "oban_pro worker: staging jobs (oban_stage_jobs)", &stage_interval_ms, 0},
    {"pruning", "oban_prune_jobs", "oban_pro worker: pruning jobs (oban_prune_jobs)", &prune_interval_ms, 0},
    {"rescue", "oban_rescue_jobs", "oban_pro worker: rescuing jobs (oban_rescue_jobs)", &rescue_interval_ms,
     0},
    {"repair", "oban_repair_workflows", "oban_pro worker: repairing workflows (oban_repair_workflows)",
     &repair_interval_ms, 0},
};

// The settings as last logged, to log only changes.
struct Settings {
    bool enabled;
    int stage_interval_ms, prune_interval_ms, prune_max_age_s, prune_limit, rescue_interval_ms,
        rescue_after_s, repair_interval_ms, repair_max_age_s;
    bool operator==(const Settings &other) const {
        return enabled == other.enabled && stage_interval_ms == other.stage_interval_ms &&
               prune_interval_ms == other.prune_interval_ms && prune_max_age_s == other.prune_max_age_s &&
               prune_limit == other.prune_limit && rescue_interval_ms == other.rescue_interval_ms &&
               rescue_after_s == other.rescue_after_s && repair_interval_ms == other.repair_interval_ms &&
               repair_max_age_s == other.repair_max_age_s;
    }
};
Settings logged;

Settings Current() {
    return Settings{maintenance_enabled, stage_interval_ms, prune_interval_ms,  prune_max_age_s, prune_limit,
                    rescue_interval_ms,  rescue_after_s,    repair_interval_ms, repair_max_age_s};
}

// The database this worker serves, as oban_pro.database names it (no catalog access needed).
const char *DatabaseName() {
    return MyBgworkerEntry != nullptr ? MyBgworkerEntry->bgw_extra : "?";
}

void LogSettings() {
    logged = Current();
    if (!logged.enabled) {
        ereport(
            LOG,
            (errmsg("oban_pro worker: maintenance is off in database \"%s\"", DatabaseName()),
             errhint("Set oban_pro.maintenance = on to have the worker stage, prune, rescue and repair.")));
        return;
    }
    ereport(LOG, (errmsg("oban_pro worker: maintenance is on in database \"%s\": stage_interval=%dms, "
                         "prune_interval=%dms, prune_max_age=%ds, prune_limit=%d, rescue_interval=%dms, "
                         "rescue_after=%ds, repair_interval=%dms, repair_max_age=%ds",
                         DatabaseName(), logged.stage_interval_ms, logged.prune_interval_ms,
                         logged.prune_max_age_s, logged.prune_limit, logged.rescue_interval_ms,
                         logged.rescue_after_s, logged.repair_interval_ms, logged.repair_max_age_s),
                  errdetail("An interval of 0 turns that duty off.")));
}

TimestampTz DueAt(const Duty &duty) {
    return duty.last_run == 0 ? 0 : TimestampTzPlusMilliseconds(duty.last_run, *duty.interval_ms);
}

bool Scheduled(const Duty &duty) {
    return maintenance_enabled && *duty.interval_ms > 0;
}

Datum Seconds(int seconds) {
    auto *interval = static_cast<Interval *>(palloc0(sizeof(Interval)));
    interval->time = (int64)seconds * USECS_PER_SEC;
    return IntervalPGetDatum(interval);
}

struct Run {
    DutyKind kind;
};

void RunBody(void *arg) {
    DutyKind kind = static_cast<Run *>(arg)->kind;
    Oid schema = WorkerSchema();
    if (!OidIsValid(schema)) return;  // not installed: nothing to do (logged once)
    (void)set_config_option("lock_timeout", kRunLockTimeout, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
                            true, 0, false);
    Datum values[2];
    Oid types[2];
    int nargs = 0;
    switch (kind) {
        case kStage:
            values[nargs] = Int32GetDatum(kStageLimit), types[nargs++] = INT4OID;
            break;
        case kPrune:
            values[nargs] = Seconds(prune_max_age_s), types[nargs++] = INTERVALOID;
            values[nargs] = Int32GetDatum(prune_limit), types[nargs++] = INT4OID;
            break;
        case kRescue:
            values[nargs] = Seconds(rescue_after_s), types[nargs++] = INTERVALOID;
            break;
        case kRepair:
            values[nargs] = Seconds(repair_max_age_s), types[nargs++] = INTERVALOID;
            values[nargs] = Int32GetDatum(kRepairLimit), types[nargs++] = INT4OID;
            break;
        case kDutyCount:
            return;
    }
    const char *sql = psprintf("SELECT %s.%s(%s)", quote_identifier(get_namespace_name(schema)),
                               duties[kind].function, nargs == 1 ? "$1" : "$1, $2");
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    int rc = SPI_execute_with_args(sql, nargs, types, values, nullptr, false, 1);
    if (rc != SPI_OK_SELECT || SPI_processed != 1) elog(ERROR, "%s returned no row", duties[kind].function);
    bool is_null = false;
    int32 count = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null));
    SPI_finish();
    // Rescues and repairs are worth an operator's attention; staging and pruning are routine.
    int level = (kind == kRescue || kind == kRepair) && count > 0 ? LOG : DEBUG1;
    ereport(level, (errmsg("oban_pro worker: %s: %s() changed %d row(s)", duties[kind].name,
                           duties[kind].function, is_null ? 0 : count)));
}

}  // namespace

void StartMaintenance() {
    for (Duty &duty : duties) duty.last_run = 0;
    LogSettings();
}

void ReloadMaintenance() {
    // Turned on (again): everything is due at once. A new interval counts from the last run
    // (DueAt reads the interval afresh).
    if (maintenance_enabled && !logged.enabled)
        for (Duty &duty : duties) duty.last_run = 0;
    if (!(Current() == logged)) LogSettings();
}

bool RunDueMaintenance(TimestampTz now) {
    int next = -1;
    for (int i = 0; i < kDutyCount; i++) {
        if (!Scheduled(duties[i]) || DueAt(duties[i]) > now) continue;
        if (next < 0 || DueAt(duties[i]) < DueAt(duties[next])) next = i;
    }
    if (next < 0) return false;
    duties[next].last_run = now;  // a failed run is tried again one interval later too
    Run run{static_cast<DutyKind>(next)};
    RunInTransaction(duties[next].activity, RunBody, &run);
    return true;
}

long MaintenanceTimeoutMs(TimestampTz now) {
    long timeout = -1;
    for (const Duty &duty : duties) {
        if (!Scheduled(duty)) continue;
        TimestampTz due = DueAt(duty);
        long wait = due <= now ? 0 : TimestampDifferenceMilliseconds(now, due);
        if (due > now && wait == 0) wait = 1;  // sub-millisecond: do not spin
        if (timeout < 0 || wait < timeout) timeout = wait;
    }
    return timeout;
}

}  // namespace oban::pg
