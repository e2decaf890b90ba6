// Module entry: magic block, settings, and per-transaction hooks.
#include "pg/boundary.hpp"
#include "pg/aggregation.hpp"
#include "pg/module.hpp"
#include "pg/uniqueness.hpp"
#include "pg/worker.hpp"

extern "C" {
#include "utils/guc.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);
}

namespace oban::pg {

int max_error_bytes = 64 * 1024;
char *database_name = nullptr;
int flush_interval_ms = 1000;

}  // namespace oban::pg

void _PG_init(void) {
    DefineCustomIntVariable("oban_pro.max_error_bytes",
                            "Longest error text kept in a job's errors list; longer texts are truncated.",
                            "Applies to oban_error_job, oban_cancel_job, oban_discard_job and oban_ack_jobs.",
                            &oban::pg::max_error_bytes, 64 * 1024, 256, 64 * 1024 * 1024, PGC_USERSET,
                            GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("oban_pro.database", "Database the oban_pro background worker serves.",
                               "Empty: no worker. Needs shared_preload_libraries = 'oban_pro'.",
                               &oban::pg::database_name, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr,
                               nullptr);
    DefineCustomIntVariable(
        "oban_pro.flush_interval", "Longest wait between two flushes of the workflow journal.",
        "The worker also flushes as soon as a transaction that finished workflow steps commits.",
        &oban::pg::flush_interval_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
        nullptr);
    MarkGUCPrefixReserved("oban_pro");

    oban::pg::InitNotify();
    oban::pg::InitAggregation();
    oban::pg::InitUniqueness();
    oban::pg::InitWorker();
}
