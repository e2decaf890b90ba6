// Fetch floors in shared memory (the rules: core/fetch_floor.hpp). One floor per (database, jobs
// table, queue); only with shared_preload_libraries = 'oban_pro', otherwise every fetch walks its
// queue from the start, as before. Plain C-style code: Postgres errors may longjmp through it.
#pragma once
#include "pg/boundary.hpp"

#include "core/fetch_floor.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace oban::pg {

// oban_pro.fetch_full_scan_interval, in ms: how often a fetch walks its queue from the start
// anyway; 0 makes every fetch do so (floors off).
extern int fetch_full_scan_interval_ms;

// Requests the shared memory and registers the transaction callbacks; only while
// shared_preload_libraries loads us.
void InitFetchFloors();

// The fetch key of a job row.
oban::core::FetchKey FetchKeyOf(Datum priority, Datum scheduled_at, Datum id);

// From a trigger: a row of `jobs_table` in `queue_text` (a text Datum) became available in this
// transaction with `key`. Its key is published when the transaction commits.
void RecordAvailableJob(Oid jobs_table, Datum queue_text, const oban::core::FetchKey &key);

// One fetch of a queue: BeginFetch before the fetch's statement runs (before its snapshot), then
// EndFetch with the first and last key it claimed, if it claimed any.
struct FloorFetch {
    void *queue_floor;  // nullptr: no floor for this queue (the walk starts at the lowest key)
    oban::core::FetchStart start;
};
FloorFetch BeginFetch(Oid jobs_table, Datum queue_text);
void EndFetch(const FloorFetch &fetch, const oban::core::FetchKey &first, const oban::core::FetchKey &last);

}  // namespace oban::pg
