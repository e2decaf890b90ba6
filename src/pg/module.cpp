// Module entry: magic block, settings, and per-transaction hooks.
#include "pg/boundary.hpp"
#include "pg/module.hpp"

extern "C" {
#include "utils/guc.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);
}

namespace oban::pg {

int max_error_bytes = 64 * 1024;

}  // namespace oban::pg

void _PG_init(void) {
    DefineCustomIntVariable("oban_pro.max_error_bytes",
                            "Longest error text kept in a job's errors list; longer texts are truncated.",
                            "Applies to oban_error_job, oban_cancel_job, oban_discard_job and oban_ack_jobs.",
                            &oban::pg::max_error_bytes, 64 * 1024, 256, 64 * 1024 * 1024, PGC_USERSET,
                            GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("oban_pro");

    oban::pg::InitNotify();
}
