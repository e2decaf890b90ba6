// Restoring a dump: pg_restore (and psql running pg_dump's script) loads oban_jobs with
// `COPY oban_jobs (id, state, …) FROM stdin`, and the workflow tables (rows, journal, waits, edges,
// names) from the same dump right after. The workflow triggers must then leave the copied rows as
// they are and derive nothing: what they would derive is in the dump already, and deriving it
// again would duplicate it (a primary key violation that stops the restore) or change the state of
// restored jobs.
#pragma once
#include "pg/boundary.hpp"

extern "C" {
#include "utils/rel.h"
}

namespace oban::pg {

// Whether the statement running is a COPY FROM into `relation` that names its "id" column, as
// pg_dump's COPY does (a COPY of new jobs, without ids, gets the triggers' usual behaviour).
// C-style: call it where no C++ object is alive.
bool RestoringDump(Relation relation);

}  // namespace oban::pg
