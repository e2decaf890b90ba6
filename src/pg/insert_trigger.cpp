// oban_jobs_before_insert: what every row inserted into oban_jobs goes through before it is stored,
// by whatever client inserts it. One C trigger without a WHEN clause, rather than one trigger per
// duty: Postgres parses and compiles each trigger's WHEN clause again for every statement, which
// for plain jobs (the common case: none of the workflow duties apply) cost more than the checks.
//
// In order: a unique workflow's job claims its name (or the row is left out); a workflow job with
// deps is prepared (suspended, cancelled or made available); a row that ends up available records
// its queue for the insert notification and its key for the queue's fetch floor (fetch_floor.hpp). A row seen
// here may still not be stored (ON CONFLICT DO NOTHING, a later user BEFORE trigger): its queue then gets a
// notification for nothing, which costs a producer one empty fetch.
#include "pg/args.hpp"
#include "pg/fetch_floor.hpp"
#include "pg/meta.hpp"
#include "pg/uniqueness.hpp"
#include "pg/worker.hpp"
#include "pg/workflows.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/rel.h"
}

namespace {

using oban::pg::FetchKeyOf;
using oban::pg::RecordAvailableJob;

// The OID of the label 'available' of the job state enum: compared with each row's state.
Oid AvailableLabel(Oid state_type) {
    static Oid cached_type = InvalidOid;
    static Oid cached_label = InvalidOid;
    if (state_type != cached_type) {
        cached_label = DatumGetObjectId(
            DirectFunctionCall2(enum_in, CStringGetDatum("available"), ObjectIdGetDatum(state_type)));
        cached_type = state_type;
    }
    return cached_label;
}

struct JobColumns {
    int id = 0;
    int state = 0;
    int queue = 0;
    int priority = 0;
    int scheduled_at = 0;
    int meta = 0;
};

// The columns this trigger reads, found in one pass (a table may have dropped or added columns).
JobColumns FindJobColumns(TupleDesc descriptor) {
    JobColumns found;
    for (int i = 0; i < descriptor->natts; i++) {
        Form_pg_attribute column = TupleDescAttr(descriptor, i);
        if (column->attisdropped) continue;
        const char *name = NameStr(column->attname);
        int *slot = strcmp(name, "id") == 0             ? &found.id
                    : strcmp(name, "state") == 0        ? &found.state
                    : strcmp(name, "queue") == 0        ? &found.queue
                    : strcmp(name, "priority") == 0     ? &found.priority
                    : strcmp(name, "scheduled_at") == 0 ? &found.scheduled_at
                    : strcmp(name, "meta") == 0         ? &found.meta
                                                        : nullptr;
        if (slot != nullptr) *slot = i + 1;
    }
    if (found.id == 0 || found.state == 0 || found.queue == 0 || found.priority == 0 ||
        found.scheduled_at == 0 || found.meta == 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("oban_jobs_before_insert() needs columns \"id\", \"state\", \"queue\", "
                               "\"priority\", \"scheduled_at\" and \"meta\"")));
    return found;
}

// The columns of the statement's table, found on the first row and kept in the trigger's FmgrInfo,
// which lives as long as the statement (whose table cannot change shape meanwhile).
const JobColumns &StatementJobColumns(FunctionCallInfo fcinfo, TupleDesc descriptor) {
    FmgrInfo *flinfo = fcinfo->flinfo;
    if (flinfo->fn_extra == nullptr) {
        JobColumns found = FindJobColumns(descriptor);
        auto *kept = static_cast<JobColumns *>(MemoryContextAlloc(flinfo->fn_mcxt, sizeof(JobColumns)));
        *kept = found;
        flinfo->fn_extra = kept;
    }
    return *static_cast<JobColumns *>(flinfo->fn_extra);
}

// Records the row's fetch key for the queue's floor (nothing for a NULL column, which the table's
// constraints forbid: the insert fails).
void RecordFetchKey(Relation relation, HeapTuple row, const JobColumns &columns, Datum queue) {
    TupleDesc descriptor = RelationGetDescr(relation);
    bool is_null[3] = {false, false, false};
    Datum priority = heap_getattr(row, columns.priority, descriptor, &is_null[0]);
    Datum scheduled_at = heap_getattr(row, columns.scheduled_at, descriptor, &is_null[1]);
    Datum id = heap_getattr(row, columns.id, descriptor, &is_null[2]);
    if (!is_null[0] && !is_null[1] && !is_null[2])
        RecordAvailableJob(RelationGetRelid(relation), queue, FetchKeyOf(priority, scheduled_at, id));
}

}  // namespace

using namespace oban::pg;

OBAN_FUNCTION(oban_jobs_before_insert) {
    TriggerData *trigger = RequireBeforeInsertRowTrigger(fcinfo, "oban_jobs_before_insert");
    Relation relation = trigger->tg_relation;
    TupleDesc descriptor = RelationGetDescr(relation);
    HeapTuple row = trigger->tg_trigtuple;
    const JobColumns &columns = StatementJobColumns(fcinfo, descriptor);
    bool is_null = false;

    // A plain job's meta is '{}': a jsonb of one 4-byte header (no key), read without detoasting.
    Datum meta = heap_getattr(row, columns.meta, descriptor, &is_null);
    if (!is_null && VARSIZE_ANY_EXHDR(DatumGetPointer(meta)) > sizeof(uint32)) {
        Jsonb *meta_value = DatumGetJsonbP(meta);
        if (MetaTrue(meta_value, "workflow_unique")) {
            row = ClaimUniqueWorkflowJob(trigger, row);
            if (row == nullptr) return PointerGetDatum(nullptr);
        }
        if (MetaHas(meta_value, "workflow_id") && MetaHas(meta_value, "deps"))
            row = PrepareWorkflowJob(trigger, row);
    }

    Datum state = heap_getattr(row, columns.state, descriptor, &is_null);
    if (!is_null &&
        DatumGetObjectId(state) == AvailableLabel(TupleDescAttr(descriptor, columns.state - 1)->atttypid)) {
        Datum queue = heap_getattr(row, columns.queue, descriptor, &is_null);
        if (!is_null) {
            RecordAvailableQueue(RelationGetNamespace(relation), queue);
            RecordFetchKey(relation, row, columns, queue);
        }
    }
    return PointerGetDatum(row);
}
