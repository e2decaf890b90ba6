// Insert notifications: Oban producers LISTEN on "<prefix>.oban_insert" and fetch when a payload
// {"queue": "<queue>"} arrives. The trigger records which queues got available jobs, whoever made
// them so (a plain INSERT, staging, a retry, a rescue); the notifications are queued once per queue
// just before the transaction commits, so Postgres delivers them at commit. A prepared (two-phase)
// transaction sends none: Postgres cannot prepare a transaction that notifies, and producers poll.
#include "pg/boundary.hpp"
#include "pg/fetch_floor.hpp"
#include "pg/module.hpp"
#include "pg/states.hpp"
#include "pg/worker.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_collation.h"
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

// Postgres refuses longer payloads (commands/async.c, NOTIFY_PAYLOAD_MAX_LENGTH).
constexpr int kNotifyPayloadMaxLength = BLCKSZ - NAMEDATALEN - 128;

void NotifyInsert(const char *schema_name, const char *queue) {
    char *channel = psprintf("%s.oban_insert", schema_name);
    // Same payload text as Oban's own insert query, so Postgres merges the two.
    StringInfoData payload;
    initStringInfo(&payload);
    appendStringInfoString(&payload, "{\"queue\":");
    escape_json(&payload, queue);
    appendStringInfoChar(&payload, '}');
    // No client can LISTEN on an overlong channel, and Postgres refuses overlong payloads.
    if (strlen(channel) < NAMEDATALEN && payload.len < kNotifyPayloadMaxLength)
        Async_Notify(channel, payload.data);
}

namespace {

// A queue that got available jobs in this transaction, in TopTransactionContext.
struct PendingQueue {
    Oid schema;
    char *queue;
    int nest_level;  // the subtransaction that recorded it
};

// A transaction touches few queues, so a short list is enough.
List *pending_queues = NIL;

bool IsPending(Oid schema, const char *queue, size_t length) {
    ListCell *cell;
    foreach (cell, pending_queues) {
        auto *pending = static_cast<PendingQueue *>(lfirst(cell));
        if (pending->schema == schema && strncmp(pending->queue, queue, length) == 0 &&
            pending->queue[length] == '\0')
            return true;
    }
    return false;
}

void SendPending() {
    ListCell *cell;
    foreach (cell, pending_queues) {
        auto *pending = static_cast<PendingQueue *>(lfirst(cell));
        const char *schema_name = get_namespace_name(pending->schema);
        if (schema_name == nullptr) continue;  // the schema was dropped in this transaction
        NotifyInsert(schema_name, pending->queue);
    }
}

// With a worker serving this database, the queues are handed to it after commit instead (see
// HandOffNotifications): the commit then skips Postgres' cluster-wide notify lock.
bool handing_off = false;

void HandOff() {
    constexpr int kBatch = 64;
    const char *queues[kBatch];
    ListCell *cell;
    foreach (cell, pending_queues) {
        auto *first = static_cast<PendingQueue *>(lfirst(cell));
        if (first->queue == nullptr) continue;
        Oid schema = first->schema;
        int count = 0;
        ListCell *other;
        for_each_from(other, pending_queues, foreach_current_index(cell)) {
            auto *pending = static_cast<PendingQueue *>(lfirst(other));
            if (pending->queue == nullptr || pending->schema != schema) continue;
            queues[count++] = pending->queue;
            pending->queue = nullptr;
            if (count == kBatch) {
                HandOffNotifications(schema, queues, count);
                count = 0;
            }
        }
        if (count > 0) HandOffNotifications(schema, queues, count);
    }
}

void OnTransactionEvent(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
            handing_off = pending_queues != NIL && WorkerServesThisDatabase();
            if (!handing_off) SendPending();
            break;
        case XACT_EVENT_COMMIT:
            if (handing_off) HandOff();
            handing_off = false;
            pending_queues = NIL;
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PREPARE:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_PARALLEL_ABORT:
            handing_off = false;
            pending_queues = NIL;  // its memory goes with TopTransactionContext
            break;
        default:
            break;
    }
}

// Queues recorded by a rolled-back subtransaction are forgotten; a committed one hands its
// queues to its parent.
void OnSubtransactionEvent(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
    if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB) return;
    int level = GetCurrentTransactionNestLevel();
    ListCell *cell;
    foreach (cell, pending_queues) {
        auto *pending = static_cast<PendingQueue *>(lfirst(cell));
        if (pending->nest_level < level) continue;
        if (event == SUBXACT_EVENT_ABORT_SUB)
            pending_queues = foreach_delete_current(pending_queues, cell);
        else
            pending->nest_level = level - 1;
    }
}

}  // namespace

void RecordAvailableQueue(Oid schema, Datum queue_text) {
    // Compared in place: most rows name a queue already recorded, and then nothing is allocated.
    text *queue = DatumGetTextPP(queue_text);
    const char *name = VARDATA_ANY(queue);
    size_t length = VARSIZE_ANY_EXHDR(queue);
    if (!IsPending(schema, name, length)) {
        MemoryContext caller = MemoryContextSwitchTo(TopTransactionContext);
        auto *pending = static_cast<PendingQueue *>(palloc(sizeof(PendingQueue)));
        pending->schema = schema;
        pending->queue = pnstrdup(name, length);
        pending->nest_level = GetCurrentTransactionNestLevel();
        pending_queues = lappend(pending_queues, pending);
        MemoryContextSwitchTo(caller);
    }
    if (reinterpret_cast<Pointer>(queue) != DatumGetPointer(queue_text)) pfree(queue);
}

void InitNotify() {
    RegisterXactCallback(OnTransactionEvent, nullptr);
    RegisterSubXactCallback(OnSubtransactionEvent, nullptr);
}

}  // namespace oban::pg

namespace {

// The columns the AFTER ROW triggers below read: queue, then the fetch key (priority,
// scheduled_at, id), then state. Found on the first row and kept in the trigger's FmgrInfo, which
// lives as long as the statement.
constexpr int kAvailableColumnCount = 5;
constexpr int kStateColumn = 4;
struct AvailableColumns {
    int numbers[kAvailableColumnCount];
};
constexpr const char *kAvailableColumnNames[kAvailableColumnCount] = {"queue", "priority", "scheduled_at",
                                                                      "id", "state"};

AvailableColumns FindAvailableColumns(Relation relation) {
    AvailableColumns found;
    for (int i = 0; i < kAvailableColumnCount; i++) {
        found.numbers[i] = SPI_fnumber(RelationGetDescr(relation), kAvailableColumnNames[i]);
        if (found.numbers[i] <= 0)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                            errmsg("table \"%s\" has no column \"%s\"", RelationGetRelationName(relation),
                                   kAvailableColumnNames[i])));
    }
    return found;
}

const AvailableColumns &StatementAvailableColumns(FunctionCallInfo fcinfo, Relation relation) {
    FmgrInfo *flinfo = fcinfo->flinfo;
    if (flinfo->fn_extra == nullptr) {
        AvailableColumns found = FindAvailableColumns(relation);
        auto *kept = static_cast<AvailableColumns *>(MemoryContextAlloc(flinfo->fn_mcxt, sizeof(found)));
        *kept = found;
        flinfo->fn_extra = kept;
    }
    return *static_cast<AvailableColumns *>(flinfo->fn_extra);
}

// `row`'s queue and fetch key; false when a column is NULL, which the table's constraints forbid.
bool QueueAndKey(Relation relation, HeapTuple row, const AvailableColumns &columns, Datum *queue,
                 oban::core::FetchKey *key) {
    Datum values[4];
    for (int i = 0; i < 4; i++) {
        bool is_null = false;
        values[i] = heap_getattr(row, columns.numbers[i], RelationGetDescr(relation), &is_null);
        if (is_null) return false;
    }
    *queue = values[0];
    *key = oban::pg::FetchKeyOf(values[1], values[2], values[3]);
    return true;
}

// An available job of `relation` in `queue`, with fetch key `key`: the queue is notified at commit
// and the key published to the queue's fetch floor.
void RecordAvailable(Relation relation, Datum queue, const oban::core::FetchKey &key) {
    oban::pg::RecordAvailableQueue(RelationGetNamespace(relation), queue);
    oban::pg::RecordAvailableJob(RelationGetRelid(relation), queue, key);
}

// The row an AFTER ROW trigger on oban_jobs fired for (the new version of an update), with its
// queue and fetch key; false when a column is NULL, which the table's constraints forbid.
bool AvailableRow(FunctionCallInfo fcinfo, const char *function, TriggerData **trigger_out, Datum *queue,
                  oban::core::FetchKey *key) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s() was not called by a trigger", function)));
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_AFTER(trigger->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigger->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("%s() must be an AFTER ROW trigger", function)));
    *trigger_out = trigger;
    Relation relation = trigger->tg_relation;
    const AvailableColumns &columns = StatementAvailableColumns(fcinfo, relation);
    HeapTuple row = TRIGGER_FIRED_BY_UPDATE(trigger->tg_event) ? trigger->tg_newtuple : trigger->tg_trigtuple;
    return QueueAndKey(relation, row, columns, queue, key);
}

// The row an AFTER ROW trigger `function` fired for, available: its queue is notified at commit and
// its key published to the queue's fetch floor.
void RecordAvailableRow(FunctionCallInfo fcinfo, const char *function) {
    TriggerData *trigger = nullptr;
    Datum queue;
    oban::core::FetchKey key;
    if (AvailableRow(fcinfo, function, &trigger, &queue, &key))
        RecordAvailable(trigger->tg_relation, queue, key);
}

}  // namespace

namespace oban::pg {

void RecordIfBecameAvailable(FunctionCallInfo fcinfo, const char *function) {
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    Relation relation = trigger->tg_relation;
    int state = StatementAvailableColumns(fcinfo, relation).numbers[kStateColumn];
    bool old_is_null = false, new_is_null = false;
    Datum old_state = heap_getattr(trigger->tg_trigtuple, state, RelationGetDescr(relation), &old_is_null);
    Datum new_state = heap_getattr(trigger->tg_newtuple, state, RelationGetDescr(relation), &new_is_null);
    if (!old_is_null && !new_is_null && StateOf(new_state) == kAvailable && StateOf(old_state) != kAvailable)
        RecordAvailableRow(fcinfo, function);
}

void RecordAvailableJobRow(Relation relation, HeapTuple row) {
    Datum queue;
    oban::core::FetchKey key;
    if (QueueAndKey(relation, row, FindAvailableColumns(relation), &queue, &key))
        RecordAvailable(relation, queue, key);
}

}  // namespace oban::pg

// The AFTER ROW trigger of 0.6.0 schemas on rows that became available (0.6.1 has
// oban_jobs_state_changed): the queue is notified at commit and the row's key published to the
// queue's fetch floor.
OBAN_FUNCTION(oban_jobs_notify_available) {
    RecordAvailableRow(fcinfo, "oban_jobs_notify_available");
    return PointerGetDatum(nullptr);
}

// AFTER UPDATE OF queue, priority, scheduled_at, on available rows that moved: the new key is
// published to the queue's fetch floor; a row that moved to another queue also notifies that queue
// (a change of priority or time alone does not notify: the job was there to fetch already).
OBAN_FUNCTION(oban_jobs_available_moved) {
    TriggerData *trigger = nullptr;
    Datum queue;
    oban::core::FetchKey key;
    if (!AvailableRow(fcinfo, "oban_jobs_available_moved", &trigger, &queue, &key) ||
        !TRIGGER_FIRED_BY_UPDATE(trigger->tg_event))
        return PointerGetDatum(nullptr);
    Relation relation = trigger->tg_relation;
    bool old_is_null = false;
    Datum old_queue =
        heap_getattr(trigger->tg_trigtuple, StatementAvailableColumns(fcinfo, relation).numbers[0],
                     RelationGetDescr(relation), &old_is_null);
    if (old_is_null || !DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID, old_queue, queue)))
        oban::pg::RecordAvailableQueue(RelationGetNamespace(relation), queue);
    oban::pg::RecordAvailableJob(RelationGetRelid(relation), queue, key);
    return PointerGetDatum(nullptr);
}
