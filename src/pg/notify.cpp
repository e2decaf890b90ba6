// Insert notifications: Oban producers LISTEN on "<prefix>.oban_insert" and fetch when a payload
// {"queue": "<queue>"} arrives. The trigger sends one per queue per transaction whenever jobs
// become available, whoever made them so (a plain INSERT, staging, a retry, a rescue).
#include "pg/boundary.hpp"
#include "pg/module.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace oban::pg {

namespace {

// Queues already notified in the current transaction, as "<schema oid>:<queue>" strings in
// TopTransactionContext. A transaction touches few queues, so a short list is enough.
List *notified_queues = NIL;

bool AlreadyNotified(const char *key) {
    ListCell *cell;
    foreach (cell, notified_queues) {
        if (strcmp(static_cast<const char *>(lfirst(cell)), key) == 0) return true;
    }
    return false;
}

void ForgetNotified(XactEvent event, void *) {
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_COMMIT ||
        event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
        notified_queues = NIL;
}

// A rolled-back subtransaction takes its notifications with it, so notify again afterwards.
// (Postgres drops duplicate notifications within a transaction, so this never doubles one.)
void ForgetNotifiedOnSubAbort(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
    if (event == SUBXACT_EVENT_ABORT_SUB) notified_queues = NIL;
}

}  // namespace

void InitNotify() {
    RegisterXactCallback(ForgetNotified, nullptr);
    RegisterSubXactCallback(ForgetNotifiedOnSubAbort, nullptr);
}

}  // namespace oban::pg

OBAN_FUNCTION(oban_jobs_notify_available) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("oban_jobs_notify_available() was not called by a trigger")));
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_AFTER(trigger->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigger->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("oban_jobs_notify_available() must be an AFTER ROW trigger")));

    Relation relation = trigger->tg_relation;
    HeapTuple row = TRIGGER_FIRED_BY_UPDATE(trigger->tg_event) ? trigger->tg_newtuple : trigger->tg_trigtuple;
    int queue_column = SPI_fnumber(RelationGetDescr(relation), "queue");
    if (queue_column <= 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("table \"%s\" has no column \"queue\"", RelationGetRelationName(relation))));
    bool queue_is_null = false;
    Datum queue_datum = heap_getattr(row, queue_column, RelationGetDescr(relation), &queue_is_null);
    if (queue_is_null) return PointerGetDatum(nullptr);
    char *queue = TextDatumGetCString(queue_datum);

    Oid schema = RelationGetNamespace(relation);
    char *key = psprintf("%u:%s", schema, queue);
    if (oban::pg::AlreadyNotified(key)) {
        pfree(key);
        return PointerGetDatum(nullptr);
    }

    // Same channel and payload text as Oban's own insert query, so Postgres merges the two.
    char *channel = psprintf("%s.oban_insert", get_namespace_name(schema));
    if (strlen(channel) >= NAMEDATALEN) return PointerGetDatum(nullptr);  // no client can LISTEN on it
    StringInfoData payload;
    initStringInfo(&payload);
    appendStringInfoString(&payload, "{\"queue\":");
    escape_json(&payload, queue);
    appendStringInfoChar(&payload, '}');
    Async_Notify(channel, payload.data);

    MemoryContext caller = MemoryContextSwitchTo(TopTransactionContext);
    oban::pg::notified_queues = lappend(oban::pg::notified_queues, pstrdup(key));
    MemoryContextSwitchTo(caller);
    return PointerGetDatum(nullptr);
}
