// Module entry: magic block, settings, and per-transaction hooks.
#include "pg/boundary.hpp"
#include "pg/aggregation.hpp"
#include "pg/fetch_floor.hpp"
#include "pg/module.hpp"
#include "pg/uniqueness.hpp"
#include "pg/worker.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);
}

namespace oban::pg {

int max_error_bytes = 64 * 1024;
char *database_name = nullptr;
int flush_interval_ms = 1000;
int flush_delay_ms = 10;
int fold_delay_ms = 100;
bool vacuum_jobs = true;

// Defaults are Oban's plugins' (Stager, Pruner, Lifeline and Pro's workflow repair).
bool maintenance_enabled = false;
int stage_interval_ms = 1000;
int prune_interval_ms = 60 * 1000;
int prune_max_age_s = 24 * 3600;
int prune_limit = 10000;
int rescue_interval_ms = 60 * 1000;
int rescue_after_s = 3600;
int repair_interval_ms = 60 * 1000;
int repair_max_age_s = 60;

namespace {

constexpr int kMaxIntervalMs = 24 * 3600 * 1000;
constexpr int kMinIntervalMs = 10;

// An interval is 0 (the duty is off) or at least kMinIntervalMs, so a typo cannot make the worker
// spin.
bool CheckInterval(int *value, void **, GucSource) {
    if (*value == 0 || *value >= kMinIntervalMs) return true;
    GUC_check_errdetail("An interval is 0 (the duty is off) or at least %d ms.", kMinIntervalMs);
    return false;
}

void DefineInterval(const char *name, const char *short_desc, int *variable, int boot_value) {
    DefineCustomIntVariable(
        name, short_desc, "0 turns the duty off. Runs only with oban_pro.maintenance on. Reload to change.",
        variable, boot_value, 0, kMaxIntervalMs, PGC_SIGHUP, GUC_UNIT_MS, CheckInterval, nullptr, nullptr);
}

void DefineMaintenanceSettings() {
    DefineCustomBoolVariable("oban_pro.maintenance",
                             "Whether the background worker stages, prunes, rescues and repairs jobs itself.",
                             "Needs shared_preload_libraries = 'oban_pro'; the worker serves the databases "
                             "named by oban_pro.database. Reload to change.",
                             &maintenance_enabled, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineInterval("oban_pro.stage_interval", "How often the worker runs oban_stage_jobs.",
                   &stage_interval_ms, 1000);
    DefineInterval("oban_pro.prune_interval", "How often the worker runs oban_prune_jobs.",
                   &prune_interval_ms, 60 * 1000);
    DefineCustomIntVariable("oban_pro.prune_max_age", "Age after which the worker prunes finished jobs.",
                            "Passed to oban_prune_jobs as max_age. Reload to change.", &prune_max_age_s,
                            24 * 3600, 0, PG_INT32_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("oban_pro.prune_limit", "Most jobs the worker prunes in one run.",
                            "Passed to oban_prune_jobs as limit. Reload to change.", &prune_limit, 10000, 1,
                            10000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineInterval("oban_pro.rescue_interval", "How often the worker runs oban_rescue_jobs.",
                   &rescue_interval_ms, 60 * 1000);
    DefineCustomIntVariable(
        "oban_pro.rescue_after", "How long a job may execute before the worker rescues it.",
        "Passed to oban_rescue_jobs as rescue_after; jobs whose producer is gone are "
        "rescued at once. Reload to change.",
        &rescue_after_s, 3600, 1, PG_INT32_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineInterval("oban_pro.repair_interval", "How often the worker runs oban_repair_workflows.",
                   &repair_interval_ms, 60 * 1000);
    DefineCustomIntVariable(
        "oban_pro.repair_max_age", "How long a workflow must stay unchanged before the worker repairs it.",
        "Passed to oban_repair_workflows as max_age. Reload to change.", &repair_max_age_s, 60, 0,
        PG_INT32_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
}

}  // namespace

}  // namespace oban::pg

void _PG_init(void) {
    DefineCustomIntVariable("oban_pro.max_error_bytes",
                            "Longest error text kept in a job's errors list; longer texts are truncated.",
                            "Applies to oban_error_job, oban_cancel_job, oban_discard_job and oban_ack_jobs.",
                            &oban::pg::max_error_bytes, 64 * 1024, 256, 64 * 1024 * 1024, PGC_USERSET,
                            GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    // A PGC_POSTMASTER setting can only be defined while preloading (Postgres raises FATAL
    // otherwise, which made the extension unusable without shared_preload_libraries).
    if (process_shared_preload_libraries_in_progress)
        DefineCustomStringVariable(
            "oban_pro.database", "Databases the oban_pro background workers serve, comma-separated.",
            "One worker per database. Empty: no worker. Needs shared_preload_libraries = 'oban_pro'.",
            &oban::pg::database_name, "postgres", PGC_POSTMASTER, GUC_LIST_INPUT, oban::pg::CheckDatabaseList,
            nullptr, nullptr);
    DefineCustomIntVariable(
        "oban_pro.flush_interval", "Longest wait between two flushes of the workflow journal.",
        "The worker also flushes soon after commits that wrote journal rows (oban_pro.flush_delay, "
        "oban_pro.fold_delay).",
        &oban::pg::flush_interval_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
        nullptr);
    DefineCustomIntVariable(
        "oban_pro.flush_delay", "Shortest time between two flushes that commits asked for.",
        "Commits within it are folded together by the next flush. 0: one flush per request.",
        &oban::pg::flush_delay_ms, 10, 0, 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "oban_pro.fold_delay", "Longest wait before the worker folds journal rows that no job waits on.",
        "Commits whose finished steps or workflows no job depends on ask for a flush within this time, not "
        "within oban_pro.flush_delay: the flush then only folds counts, which oban_workflows reads exactly "
        "either way. Below oban_pro.flush_delay it means oban_pro.flush_delay.",
        &oban::pg::fold_delay_ms, 100, 0, 60 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "oban_pro.vacuum_jobs",
        "Whether the worker vacuums oban_jobs as soon as autovacuum's own rule says it is due.",
        "Autovacuum visits a database once per autovacuum_naptime; the worker checks every second. Off: "
        "vacuuming oban_jobs is left to autovacuum. Reload to change.",
        &oban::pg::vacuum_jobs, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    oban::pg::DefineMaintenanceSettings();
    oban::pg::InitSignals();
    oban::pg::InitFetchFloors();
    MarkGUCPrefixReserved("oban_pro");

    oban::pg::InitNotify();
    oban::pg::InitAggregation();
    oban::pg::InitUniqueness();
    oban::pg::InitWorker();
}
