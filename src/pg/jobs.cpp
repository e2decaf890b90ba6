// The job lifecycle of SPEC §3: insert, fetch, and the acks (complete, error, cancel, discard,
// snooze, retry), one by one or many at once. Every statement runs as a kept plan.
#include "pg/jobs.hpp"

#include "core/ack.hpp"
#include "core/backoff.hpp"
#include "pg/module.hpp"
#include "pg/args.hpp"
#include "pg/fetch_floor.hpp"
#include "pg/sql.hpp"

extern "C" {
#include "access/tupconvert.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
}

#include <string>

namespace oban::pg {

namespace {

Statement insert_job{R"sql(
    INSERT INTO @extschema@.oban_jobs
        (worker, args, queue, priority, max_attempts, scheduled_at, state, meta, tags)
    VALUES ($1, $2, $3, $4, $5, coalesce($6, timezone('UTC', now())),
            CASE WHEN $6 > timezone('UTC', now()) THEN 'scheduled' ELSE 'available' END
                ::@extschema@.oban_job_state,
            $7, $8)
    RETURNING *)sql",
                     8,
                     {TEXTOID, JSONBOID, TEXTOID, INT4OID, INT4OID, TIMESTAMPOID, JSONBOID, TEXTARRAYOID},
                     true};

// Many jobs in one statement, from a JSON array of {worker, args, queue, priority, max_attempts,
// scheduled_at, meta, tags} objects (all but worker optional).
Statement insert_jobs{R"sql(
    INSERT INTO @extschema@.oban_jobs
        (worker, args, queue, priority, max_attempts, scheduled_at, state, meta, tags)
    SELECT j.worker, coalesce(j.args, '{}'), coalesce(j.queue, 'default'), coalesce(j.priority, 0),
           coalesce(j.max_attempts, 20), coalesce(j.scheduled_at, timezone('UTC', now())),
           CASE WHEN j.scheduled_at > timezone('UTC', now()) THEN 'scheduled' ELSE 'available' END
               ::@extschema@.oban_job_state,
           coalesce(j.meta, '{}'), coalesce(j.tags, '{}')
    FROM ROWS FROM (jsonb_to_recordset($1)
                    AS (worker text, args jsonb, queue text, priority int, max_attempts int,
                        scheduled_at timestamp, meta jsonb, tags text[])) WITH ORDINALITY
         AS j(worker, args, queue, priority, max_attempts, scheduled_at, meta, tags, position)
    ORDER BY j.position
    RETURNING *)sql",
                      1,
                      {JSONBOID},
                      true};

// Claims in Oban's order from the queue's fetch floor ($5, $6, $7; fetch_floor.hpp), which the
// index serves as the start of its walk; `attempt < max_attempts` keeps a damaged row from failing
// every fetch.
Statement fetch_jobs{R"sql(
    WITH locked_jobs AS (
        SELECT id FROM @extschema@.oban_jobs
        WHERE state = 'available' AND queue = $1 AND attempt < max_attempts
          AND (priority, scheduled_at, id) >= ($5, $6, $7)
        ORDER BY priority, scheduled_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE @extschema@.oban_jobs AS job
        SET state = 'executing',
            attempt = job.attempt + 1,
            attempted_at = timezone('UTC', now()),
            attempted_by = CASE WHEN $4 IS NULL THEN ARRAY[$3] ELSE ARRAY[$3, $4::text] END
        WHERE job.id = ANY (ARRAY(SELECT id FROM locked_jobs))
        RETURNING job.*
    )
    SELECT * FROM claimed ORDER BY priority, scheduled_at, id)sql",
                     7,
                     {TEXTOID, INT4OID, TEXTOID, UUIDOID, INT2OID, TIMESTAMPOID, INT8OID},
                     true};

// The single-job statements compare state as text: written as `state = 'executing'`, their one
// generic plan walks the (state, queue, ...) index through every job that has been executing since
// the last vacuum (hundreds of buffers per call); as text, only the primary key can serve them.
Statement complete_job{R"sql(
    UPDATE @extschema@.oban_jobs
    SET state = 'completed',
        completed_at = timezone('UTC', now()),
        meta = CASE WHEN $2 THEN meta || jsonb_build_object('recorded', true, 'return', $3)
                    ELSE meta END
    WHERE id = $1 AND state::text = 'executing')sql",
                       3,
                       {INT8OID, BOOLOID, JSONBOID},
                       true};

Statement error_job{R"sql(
    UPDATE @extschema@.oban_jobs
    SET state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END
                    ::@extschema@.oban_job_state,
        scheduled_at = CASE WHEN attempt >= max_attempts THEN scheduled_at
                            ELSE timezone('UTC', now())
                                 + coalesce($3, @extschema@.oban_backoff(attempt, max_attempts)) END,
        discarded_at = CASE WHEN attempt >= max_attempts THEN timezone('UTC', now())
                            ELSE discarded_at END,
        errors = @extschema@.oban_errors_append(errors, jsonb_build_object(
                     'attempt', attempt, 'at', timezone('UTC', now()), 'error', $2))
    WHERE id = $1 AND state::text = 'executing'
    RETURNING state)sql",
                    3,
                    {INT8OID, TEXTOID, INTERVALOID},
                    true};

Statement cancel_job{R"sql(
    UPDATE @extschema@.oban_jobs
    SET state = 'cancelled',
        cancelled_at = timezone('UTC', now()),
        errors = CASE WHEN $2 IS NULL THEN errors
                      ELSE @extschema@.oban_errors_append(errors, jsonb_build_object(
                               'attempt', attempt, 'at', timezone('UTC', now()), 'error', $2)) END
    WHERE id = $1
      AND state::text IN ('available', 'scheduled', 'suspended', 'executing', 'retryable'))sql",
                     2,
                     {INT8OID, TEXTOID},
                     true};

Statement discard_job{R"sql(
    UPDATE @extschema@.oban_jobs
    SET state = 'discarded',
        discarded_at = timezone('UTC', now()),
        errors = CASE WHEN $2 IS NULL THEN errors
                      ELSE @extschema@.oban_errors_append(errors, jsonb_build_object(
                               'attempt', attempt, 'at', timezone('UTC', now()), 'error', $2)) END
    WHERE id = $1 AND state::text = 'executing')sql",
                      2,
                      {INT8OID, TEXTOID},
                      true};

// The attempt is given back: a snooze is not a failure.
Statement snooze_job{R"sql(
    UPDATE @extschema@.oban_jobs
    SET state = 'scheduled',
        scheduled_at = timezone('UTC', now()) + $2,
        attempt = greatest(attempt - 1, 0),
        meta = meta || jsonb_build_object('snoozed',
                   CASE WHEN jsonb_typeof(meta->'snoozed') = 'number'
                        THEN floor((meta->'snoozed')::numeric) ELSE 0 END + 1)
    WHERE id = $1 AND state::text = 'executing')sql",
                     2,
                     {INT8OID, INTERVALOID},
                     true};

Statement retry_job{R"sql(
    UPDATE @extschema@.oban_jobs
    SET state = 'available',
        max_attempts = greatest(max_attempts, least(attempt + 1, 32767)),
        scheduled_at = timezone('UTC', now()),
        completed_at = NULL,
        cancelled_at = NULL,
        discarded_at = NULL,
        meta = meta - 'wait_until'  -- a signal wait of an earlier run ends with it
    WHERE id = $1 AND state::text IN ('completed', 'cancelled', 'discarded', 'retryable'))sql",
                    1,
                    {INT8OID},
                    true};

// Error texts longer than oban_pro.max_error_bytes are cut at a character boundary.
Datum BoundedErrorText(const char *text, int length) {
    static const char marker[] = " [truncated]";
    if (length <= max_error_bytes) return PointerGetDatum(cstring_to_text_with_len(text, length));
    int kept = pg_mbcliplen(text, length, max_error_bytes - (int)sizeof(marker));
    StringInfoData out;
    initStringInfo(&out);
    appendBinaryStringInfo(&out, text, kept);
    appendStringInfoString(&out, marker);
    return PointerGetDatum(cstring_to_text_with_len(out.data, out.len));
}

Datum BoundedErrorText(text *value) {
    return BoundedErrorText(VARDATA_ANY(value), (int)VARSIZE_ANY_EXHDR(value));
}

Datum IntervalFromSeconds(double seconds) {
    Interval *interval = static_cast<Interval *>(palloc0(sizeof(Interval)));
    interval->time = static_cast<TimeOffset>(seconds * USECS_PER_SEC);
    return IntervalPGetDatum(interval);
}

}  // namespace

bool ApplyComplete(Oid schema, int64 id, Datum recorded, bool has_recorded) {
    Datum values[3] = {Int64GetDatum(id), BoolGetDatum(has_recorded), recorded};
    const char nulls[3] = {' ', ' ', has_recorded ? ' ' : 'n'};
    return Execute(&complete_job, schema, values, nulls) > 0;
}

bool ApplyError(Oid schema, int64 id, Datum error, Datum backoff, bool has_backoff, Datum *state) {
    Datum values[3] = {Int64GetDatum(id), error, backoff};
    const char nulls[3] = {' ', ' ', has_backoff ? ' ' : 'n'};
    if (Execute(&error_job, schema, values, nulls) == 0) return false;
    bool is_null = false;
    *state = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null);
    return true;
}

bool ApplyCancel(Oid schema, int64 id, Datum reason, bool has_reason) {
    Datum values[2] = {Int64GetDatum(id), reason};
    const char nulls[2] = {' ', has_reason ? ' ' : 'n'};
    return Execute(&cancel_job, schema, values, nulls) > 0;
}

bool ApplyDiscard(Oid schema, int64 id, Datum reason, bool has_reason) {
    Datum values[2] = {Int64GetDatum(id), reason};
    const char nulls[2] = {' ', has_reason ? ' ' : 'n'};
    return Execute(&discard_job, schema, values, nulls) > 0;
}

bool ApplySnooze(Oid schema, int64 id, Datum snooze) {
    Datum values[2] = {Int64GetDatum(id), snooze};
    return Execute(&snooze_job, schema, values, nullptr) > 0;
}

}  // namespace oban::pg

using namespace oban::pg;

OBAN_FUNCTION(oban_backoff) {
    int32 attempt = PG_GETARG_INT32(0);
    int32 max_attempts = PG_GETARG_INT32(1);
    int64 seconds =
        oban::core::JitteryClampedBackoff(attempt, max_attempts, pg_prng_double(&pg_global_prng_state));
    Interval *interval = static_cast<Interval *>(palloc0(sizeof(Interval)));
    interval->time = seconds * USECS_PER_SEC;
    PG_RETURN_INTERVAL_P(interval);
}

OBAN_FUNCTION(oban_insert_job) {
    RequireArgument(fcinfo, 0, "worker");
    RequireArgument(fcinfo, 1, "args");
    RequireArgument(fcinfo, 2, "queue");
    RequireArgument(fcinfo, 3, "priority");
    RequireArgument(fcinfo, 4, "max_attempts");
    RequireArgument(fcinfo, 6, "meta");
    RequireArgument(fcinfo, 7, "tags");

    text *worker = PG_GETARG_TEXT_PP(0);
    text *queue = PG_GETARG_TEXT_PP(2);
    int32 priority = PG_GETARG_INT32(3);
    int32 max_attempts = PG_GETARG_INT32(4);
    if (VARSIZE_ANY_EXHDR(worker) == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("worker must not be empty")));
    if (VARSIZE_ANY_EXHDR(queue) == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("queue must not be empty")));
    if (priority < 0 || priority > PG_INT16_MAX)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("priority must be between 0 and %d", PG_INT16_MAX)));
    if (max_attempts < 1 || max_attempts > PG_INT16_MAX)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("max_attempts must be between 1 and %d", PG_INT16_MAX)));
    if (JB_ROOT_IS_SCALAR(PG_GETARG_JSONB_P(1)) || !JB_ROOT_IS_OBJECT(PG_GETARG_JSONB_P(1)))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("args must be a JSON object")));
    if (JB_ROOT_IS_SCALAR(PG_GETARG_JSONB_P(6)) || !JB_ROOT_IS_OBJECT(PG_GETARG_JSONB_P(6)))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("meta must be a JSON object")));
    if (!PG_ARGISNULL(5) && TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMP(5)))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("scheduled_at must be a finite timestamp")));

    Oid schema = FunctionSchema(fcinfo);
    Datum values[8];
    char nulls[8];
    FunctionArguments(fcinfo, &insert_job, values, nulls);
    TupleDesc job_type = nullptr;  // the table's row type, with its dropped columns
    if (get_call_result_type(fcinfo, nullptr, &job_type) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "oban_insert_job must return the row type of oban_jobs");
    BeginSql(schema);
    Execute(&insert_job, schema, values, nulls);
    HeapTuple row = SPI_tuptable->vals[0];
    TupleConversionMap *map = convert_tuples_by_name(SPI_tuptable->tupdesc, job_type);
    HeapTupleHeader job = SPI_returntuple(map != nullptr ? execute_attr_map_tuple(row, map) : row, job_type);
    EndSql();
    PG_RETURN_HEAPTUPLEHEADER(job);
}

OBAN_FUNCTION(oban_complete_job) {
    RequireArgument(fcinfo, 0, "id");
    Oid schema = FunctionSchema(fcinfo);
    BeginSql(schema);
    bool done = ApplyComplete(schema, PG_GETARG_INT64(0), PG_ARGISNULL(1) ? (Datum)0 : PG_GETARG_DATUM(1),
                              !PG_ARGISNULL(1));
    EndSql();
    PG_RETURN_BOOL(done);
}

OBAN_FUNCTION(oban_error_job) {
    RequireArgument(fcinfo, 0, "id");
    RequireArgument(fcinfo, 1, "error");
    if (!PG_ARGISNULL(2)) RequireDelay(PG_GETARG_INTERVAL_P(2), "backoff");
    Oid schema = FunctionSchema(fcinfo);
    Datum state = (Datum)0;
    BeginSql(schema);
    bool done = ApplyError(schema, PG_GETARG_INT64(0), BoundedErrorText(PG_GETARG_TEXT_PP(1)),
                           PG_ARGISNULL(2) ? (Datum)0 : PG_GETARG_DATUM(2), !PG_ARGISNULL(2), &state);
    EndSql();
    if (!done) PG_RETURN_NULL();
    return state;
}

OBAN_FUNCTION(oban_cancel_job) {
    RequireArgument(fcinfo, 0, "id");
    Oid schema = FunctionSchema(fcinfo);
    BeginSql(schema);
    bool done =
        ApplyCancel(schema, PG_GETARG_INT64(0),
                    PG_ARGISNULL(1) ? (Datum)0 : BoundedErrorText(PG_GETARG_TEXT_PP(1)), !PG_ARGISNULL(1));
    EndSql();
    PG_RETURN_BOOL(done);
}

OBAN_FUNCTION(oban_discard_job) {
    RequireArgument(fcinfo, 0, "id");
    Oid schema = FunctionSchema(fcinfo);
    BeginSql(schema);
    bool done =
        ApplyDiscard(schema, PG_GETARG_INT64(0),
                     PG_ARGISNULL(1) ? (Datum)0 : BoundedErrorText(PG_GETARG_TEXT_PP(1)), !PG_ARGISNULL(1));
    EndSql();
    PG_RETURN_BOOL(done);
}

OBAN_FUNCTION(oban_snooze_job) {
    RequireArgument(fcinfo, 0, "id");
    RequireArgument(fcinfo, 1, "snooze");
    RequireDelay(PG_GETARG_INTERVAL_P(1), "snooze");
    Oid schema = FunctionSchema(fcinfo);
    BeginSql(schema);
    bool done = ApplySnooze(schema, PG_GETARG_INT64(0), PG_GETARG_DATUM(1));
    EndSql();
    PG_RETURN_BOOL(done);
}

OBAN_FUNCTION(oban_retry_job) {
    RequireArgument(fcinfo, 0, "id");
    Oid schema = FunctionSchema(fcinfo);
    Datum values[1] = {PG_GETARG_DATUM(0)};
    BeginSql(schema);
    bool done = Execute(&retry_job, schema, values, nullptr) > 0;
    EndSql();
    PG_RETURN_BOOL(done);
}

//-----------------------------------------------------------------------------------------------
// oban_ack_jobs: many acks in one call, each standing on its own.
//-----------------------------------------------------------------------------------------------

namespace {

struct ParsedAck {
    int position;  // 1-based position in the array, for messages
    oban::core::RawAck raw;
    oban::core::Ack ack;
    Datum recorded;
};

using AckList = oban::core::Vector<ParsedAck>;

oban::core::RawField ReadField(JsonbContainer *object, const char *key) {
    JsonbValue value;
    oban::core::RawField field;
    if (getKeyJsonValueFromContainer(object, key, (uint32)strlen(key), &value) == nullptr) return field;
    switch (value.type) {
        case jbvNull:
            field.kind = oban::core::JsonKind::Null;
            break;
        case jbvString:
            field.kind = oban::core::JsonKind::String;
            field.text = {value.val.string.val, static_cast<size_t>(value.val.string.len)};
            break;
        case jbvNumeric: {
            field.kind = oban::core::JsonKind::Number;
            char *printed =
                DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(value.val.numeric)));
            field.text = printed;
            break;
        }
        case jbvBool:
            field.kind = oban::core::JsonKind::Boolean;
            break;
        case jbvBinary:
            field.kind = JsonContainerIsArray(value.val.binary.data) ? oban::core::JsonKind::Array
                                                                     : oban::core::JsonKind::Object;
            break;
        default:
            field.kind = oban::core::JsonKind::Object;
            break;
    }
    return field;
}

Datum ReadRecorded(JsonbContainer *object) {
    JsonbValue value;
    if (getKeyJsonValueFromContainer(object, "recorded", 8, &value) == nullptr) return (Datum)0;
    return JsonbPGetDatum(JsonbValueToJsonb(&value));
}

// Reads every entry of `acks` (a JSON array); invalid entries are reported and left out.
void ParseAcks(Jsonb *acks, AckList *parsed) {
    JsonbIterator *iterator = JsonbIteratorInit(&acks->root);
    JsonbValue element;
    JsonbIteratorToken token;
    int position = 0;
    while ((token = JsonbIteratorNext(&iterator, &element, true)) != WJB_DONE) {
        if (token != WJB_ELEM) continue;
        ParsedAck entry{++position, {}, {}, (Datum)0};
        if (element.type == jbvBinary && JsonContainerIsObject(element.val.binary.data)) {
            JsonbContainer *object = element.val.binary.data;
            entry.raw.is_object = true;
            entry.raw.id = ReadField(object, "id");
            entry.raw.state = ReadField(object, "state");
            entry.raw.error = ReadField(object, "error");
            entry.raw.backoff = ReadField(object, "backoff");
            entry.raw.snooze = ReadField(object, "snooze");
            entry.raw.recorded = ReadField(object, "recorded");
        }
        const char *problem = oban::core::ValidateAck(entry.raw, &entry.ack);
        if (problem != nullptr) {
            ereport(WARNING, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                              errmsg("ack %d ignored: %s", entry.position, problem)));
            continue;
        }
        if (entry.ack.has_recorded) entry.recorded = ReadRecorded(element.val.binary.data);
        parsed->push_back(entry);
    }
}

// Applies one ack (C-style: may raise a Postgres error). True when the job changed.
bool ApplyAck(Oid schema, const ParsedAck &entry) {
    using oban::core::AckKind;
    const oban::core::Ack &ack = entry.ack;
    Datum error = ack.has_error
                      ? BoundedErrorText(entry.raw.error.text.data(), (int)entry.raw.error.text.size())
                      : (Datum)0;
    Datum state;
    switch (ack.kind) {
        case AckKind::Complete:
            return ApplyComplete(schema, ack.id, entry.recorded, ack.has_recorded);
        case AckKind::Error:
            return ApplyError(schema, ack.id, ack.has_error ? error : PointerGetDatum(cstring_to_text("")),
                              ack.has_backoff ? IntervalFromSeconds(ack.backoff_seconds) : (Datum)0,
                              ack.has_backoff, &state);
        case AckKind::Cancel:
            return ApplyCancel(schema, ack.id, error, ack.has_error);
        case AckKind::Discard:
            return ApplyDiscard(schema, ack.id, error, ack.has_error);
        case AckKind::Snooze:
            return ApplySnooze(schema, ack.id, IntervalFromSeconds(ack.snooze_seconds));
    }
    return false;
}

// Every ack of a call in one statement: the first ack of each job applies as the single-job
// function would, provided the job is still executing (any unfinished state for a cancel).
Statement ack_batch{
    R"sql(
    WITH acks AS (
        SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::jsonb[])
             WITH ORDINALITY AS a(id, kind, error, backoff, snooze, recorded, position)
    ), first_acks AS (
        SELECT DISTINCT ON (id) * FROM acks ORDER BY id, position
    )
    UPDATE @extschema@.oban_jobs AS j
    SET state = CASE a.kind
                    WHEN 'complete' THEN 'completed'
                    WHEN 'error' THEN CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'retryable' END
                    WHEN 'cancel' THEN 'cancelled'
                    WHEN 'discard' THEN 'discarded'
                    ELSE 'scheduled' END::@extschema@.oban_job_state,
        completed_at = CASE WHEN a.kind = 'complete' THEN timezone('UTC', now()) ELSE j.completed_at END,
        cancelled_at = CASE WHEN a.kind = 'cancel' THEN timezone('UTC', now()) ELSE j.cancelled_at END,
        discarded_at = CASE WHEN a.kind = 'discard' OR (a.kind = 'error' AND j.attempt >= j.max_attempts)
                            THEN timezone('UTC', now()) ELSE j.discarded_at END,
        scheduled_at = CASE
            WHEN a.kind = 'error' AND j.attempt < j.max_attempts THEN timezone('UTC', now())
                + coalesce(make_interval(secs => a.backoff), @extschema@.oban_backoff(j.attempt, j.max_attempts))
            WHEN a.kind = 'snooze' THEN timezone('UTC', now()) + make_interval(secs => a.snooze)
            ELSE j.scheduled_at END,
        attempt = CASE WHEN a.kind = 'snooze' THEN greatest(j.attempt - 1, 0) ELSE j.attempt END,
        errors = CASE
            WHEN a.kind = 'error' OR (a.kind IN ('cancel', 'discard') AND a.error IS NOT NULL)
            THEN @extschema@.oban_errors_append(j.errors, jsonb_build_object(
                     'attempt', j.attempt, 'at', timezone('UTC', now()), 'error', coalesce(a.error, '')))
            ELSE j.errors END,
        meta = CASE
            WHEN a.kind = 'complete' AND a.recorded IS NOT NULL
            THEN j.meta || jsonb_build_object('recorded', true, 'return', a.recorded)
            WHEN a.kind = 'snooze'
            THEN j.meta || jsonb_build_object('snoozed',
                     CASE WHEN jsonb_typeof(j.meta->'snoozed') = 'number'
                          THEN floor((j.meta->'snoozed')::numeric) ELSE 0 END + 1)
            ELSE j.meta END
    FROM first_acks AS a
    WHERE j.id = ANY ($1) AND j.id = a.id
      AND (j.state = 'executing'
           OR (a.kind = 'cancel' AND j.state IN ('available', 'scheduled', 'suspended', 'retryable'))))sql",
    6,
    {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID, JSONBARRAYOID},
    true};

// The common batch, every ack a plain complete: the statement of oban-py's own ack, without the
// general statement's per-kind expressions (compiled by every call) and its join to the acks.
Statement complete_batch{R"sql(
    UPDATE @extschema@.oban_jobs
    SET state = 'completed', completed_at = timezone('UTC', now())
    WHERE id = ANY ($1) AND state::text = 'executing')sql",
                         1,
                         {INT8ARRAYOID},
                         true};

bool AllPlainCompletes(const ParsedAck *first, const ParsedAck *last) {
    for (const ParsedAck *entry = first; entry != last; ++entry)
        if (entry->ack.kind != oban::core::AckKind::Complete || entry->ack.has_recorded) return false;
    return true;
}

// Applies acks [first, last) with one statement (C-style: may raise a Postgres error).
int ApplyBatch(Oid schema, const ParsedAck *first, const ParsedAck *last) {
    static const char *const kinds[] = {"complete", "error", "cancel", "discard", "snooze"};
    MemoryContext context = CurrentMemoryContext;
    ArrayBuildState *ids = initArrayResult(INT8OID, context, false);
    for (const ParsedAck *entry = first; entry != last; ++entry)
        accumArrayResult(ids, Int64GetDatum(entry->ack.id), false, INT8OID, context);
    if (AllPlainCompletes(first, last)) {
        Datum values[1] = {makeArrayResult(ids, context)};
        return (int)Execute(&complete_batch, schema, values, nullptr);
    }
    ArrayBuildState *kind = initArrayResult(TEXTOID, context, false);
    ArrayBuildState *error = initArrayResult(TEXTOID, context, false);
    ArrayBuildState *backoff = initArrayResult(FLOAT8OID, context, false);
    ArrayBuildState *snooze = initArrayResult(FLOAT8OID, context, false);
    ArrayBuildState *recorded = initArrayResult(JSONBOID, context, false);
    for (const ParsedAck *entry = first; entry != last; ++entry) {
        const oban::core::Ack &ack = entry->ack;
        accumArrayResult(kind, CStringGetTextDatum(kinds[static_cast<int>(ack.kind)]), false, TEXTOID,
                         context);
        accumArrayResult(
            error,
            ack.has_error ? BoundedErrorText(entry->raw.error.text.data(), (int)entry->raw.error.text.size())
                          : (Datum)0,
            !ack.has_error, TEXTOID, context);
        accumArrayResult(backoff, Float8GetDatum(ack.backoff_seconds), !ack.has_backoff, FLOAT8OID, context);
        accumArrayResult(snooze, Float8GetDatum(ack.snooze_seconds), ack.kind != oban::core::AckKind::Snooze,
                         FLOAT8OID, context);
        accumArrayResult(recorded, entry->recorded, !ack.has_recorded, JSONBOID, context);
    }
    Datum values[6] = {makeArrayResult(ids, context),    makeArrayResult(kind, context),
                       makeArrayResult(error, context),  makeArrayResult(backoff, context),
                       makeArrayResult(snooze, context), makeArrayResult(recorded, context)};
    return (int)Execute(&ack_batch, schema, values, nullptr);
}

// Applies acks [first, last) inside one subtransaction. Returns how many jobs changed; throws
// PgError (after rolling the subtransaction back) when any of them raised.
int ApplyInSubtransaction(Oid schema, const ParsedAck *first, const ParsedAck *last) {
    MemoryContext caller_context = CurrentMemoryContext;
    ResourceOwner caller_owner = CurrentResourceOwner;
    oban::PgCall([&] {
        BeginInternalSubTransaction(nullptr);
        MemoryContextSwitchTo(caller_context);
    });
    try {
        int applied = oban::PgCall([&] {
            if (last - first > 1) return ApplyBatch(schema, first, last);
            return ApplyAck(schema, *first) ? 1 : 0;
        });
        oban::PgCall([&] {
            ReleaseCurrentSubTransaction();
            MemoryContextSwitchTo(caller_context);
            CurrentResourceOwner = caller_owner;
        });
        return applied;
    } catch (oban::PgError &) {
        oban::PgCall([&] {
            RollbackAndReleaseCurrentSubTransaction();
            MemoryContextSwitchTo(caller_context);
            CurrentResourceOwner = caller_owner;
        });
        throw;
    }
}

// Applies a JSON array of acks, each standing on its own; returns how many jobs changed.
int AckJobs(Oid schema, Jsonb *acks) {
    if (!JB_ROOT_IS_ARRAY(acks) || JB_ROOT_IS_SCALAR(acks))
        throw oban::Error(ERRCODE_INVALID_PARAMETER_VALUE, "acks must be a JSON array", "",
                          "Pass an array such as [{\"id\": 1, \"state\": \"completed\"}].");
    oban::MemoryContextResource memory(CurrentMemoryContext);
    AckList parsed{oban::core::Allocator<ParsedAck>(&memory)};
    oban::PgCall([&] { ParseAcks(acks, &parsed); });
    if (parsed.empty()) return 0;

    oban::PgCall([&] { BeginSql(schema); });
    int applied = 0;
    try {
        // Fast path: every ack in one statement, in one subtransaction.
        applied = ApplyInSubtransaction(schema, parsed.data(), parsed.data() + parsed.size());
    } catch (oban::PgError &batch_error) {
        if (batch_error.sqlstate() == ERRCODE_QUERY_CANCELED) throw;
        // One of them failed: apply them one by one, so only the failing ones are left out.
        for (const ParsedAck &entry : parsed) {
            try {
                applied += ApplyInSubtransaction(schema, &entry, &entry + 1);
            } catch (oban::PgError &error) {
                if (error.sqlstate() == ERRCODE_QUERY_CANCELED) throw;
                std::string message = error.what();
                int64 id = entry.ack.id;
                int position = entry.position;
                oban::PgCall([&] {
                    ereport(WARNING,
                            (errcode(error.sqlstate()), errmsg("ack %d (job %lld) failed: %s", position,
                                                               (long long)id, message.c_str())));
                });
            }
        }
    }
    oban::PgCall([&] { EndSql(); });
    return applied;
}

// Passes the claimed rows on to the function's result and notes the lowest and highest fetch key
// among them, for the queue's floor.
struct KeyWatcher {
    DestReceiver receiver;  // first: Postgres calls the callbacks with a pointer to it
    DestReceiver *result;
    int columns[3];  // priority, scheduled_at, id
    bool any;
    oban::core::FetchKey first;
    oban::core::FetchKey last;
};

void StartWatching(DestReceiver *self, int operation, TupleDesc rows) {
    auto *watcher = reinterpret_cast<KeyWatcher *>(self);
    const char *const names[3] = {"priority", "scheduled_at", "id"};
    for (int i = 0; i < 3; i++) {
        watcher->columns[i] = 0;
        for (int column = 0; column < rows->natts; column++)
            if (strcmp(NameStr(TupleDescAttr(rows, column)->attname), names[i]) == 0)
                watcher->columns[i] = column + 1;
        if (watcher->columns[i] == 0) elog(ERROR, "oban_pro fetch rows have no column \"%s\"", names[i]);
    }
    watcher->result->rStartup(watcher->result, operation, rows);
}

bool WatchRow(TupleTableSlot *row, DestReceiver *self) {
    auto *watcher = reinterpret_cast<KeyWatcher *>(self);
    bool is_null[3] = {false, false, false};
    Datum priority = slot_getattr(row, watcher->columns[0], &is_null[0]);
    Datum scheduled_at = slot_getattr(row, watcher->columns[1], &is_null[1]);
    Datum id = slot_getattr(row, watcher->columns[2], &is_null[2]);
    if (!is_null[0] && !is_null[1] && !is_null[2]) {
        oban::core::FetchKey key = FetchKeyOf(priority, scheduled_at, id);
        watcher->first = watcher->any ? std::min(watcher->first, key) : key;
        watcher->last = watcher->any ? std::max(watcher->last, key) : key;
        watcher->any = true;
    }
    return watcher->result->receiveSlot(row, watcher->result);
}

void StopWatching(DestReceiver *self) {
    auto *watcher = reinterpret_cast<KeyWatcher *>(self);
    watcher->result->rShutdown(watcher->result);
}

void NoDestroy(DestReceiver *) {}

// Claims up to `demand` available jobs of `queue` into the function's result (C-style).
void FetchJobs(FunctionCallInfo fcinfo, Oid schema, int queue_arg) {
    RequireArgument(fcinfo, queue_arg, "queue");
    RequireArgument(fcinfo, queue_arg + 1, "demand");
    RequireArgument(fcinfo, queue_arg + 2, "node");
    int32 demand = PG_GETARG_INT32(queue_arg + 1);
    if (demand < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("demand must not be negative")));
    auto *result = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    if (demand == 0) return;
    bool no_producer = PG_ARGISNULL(queue_arg + 3);
    Datum queue = PG_GETARG_DATUM(queue_arg);
    FloorFetch floor = BeginFetch(get_relname_relid("oban_jobs", schema), queue);
    Datum values[7] = {queue,
                       Int32GetDatum(demand),
                       PG_GETARG_DATUM(queue_arg + 2),
                       no_producer ? (Datum)0 : PG_GETARG_DATUM(queue_arg + 3),
                       Int16GetDatum(static_cast<int16>(floor.start.from.priority)),
                       TimestampGetDatum(floor.start.from.scheduled_at),
                       Int64GetDatum(floor.start.from.id)};
    const char nulls[7] = {' ', ' ', ' ', no_producer ? 'n' : ' ', ' ', ' ', ' '};
    KeyWatcher watcher{};
    watcher.receiver.receiveSlot = WatchRow;
    watcher.receiver.rStartup = StartWatching;
    watcher.receiver.rShutdown = StopWatching;
    watcher.receiver.rDestroy = NoDestroy;
    watcher.receiver.mydest = DestTuplestore;
    watcher.result = ResultReceiver(result);
    BeginSql(schema);
    ExecuteTo(&fetch_jobs, schema, values, nulls, &watcher.receiver);
    EndSql();
    watcher.result->rDestroy(watcher.result);
    if (watcher.any) EndFetch(floor, watcher.first, watcher.last);
}

}  // namespace

OBAN_FUNCTION(oban_ack_jobs) {
    RequireArgument(fcinfo, 0, "acks");
    return Int32GetDatum(AckJobs(FunctionSchema(fcinfo), PG_GETARG_JSONB_P(0)));
}

namespace {

[[noreturn]] void RaiseBadJob(int position, const char *message) {
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("job %d: %s", position, message),
                    errhint("Each job of oban_insert_jobs takes the values oban_insert_job accepts.")));
}

// An integer JSON number within [low, high] (a null or a string is left to the column's cast).
void CheckIntegerField(JsonbContainer *object, const char *key, long low, long high, int position,
                       const char *message) {
    JsonbValue value;
    if (getKeyJsonValueFromContainer(object, key, (uint32)strlen(key), &value) == nullptr ||
        value.type != jbvNumeric)
        return;
    char *text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(value.val.numeric)));
    char *end = nullptr;
    errno = 0;
    long number = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || number < low || number > high)
        RaiseBadJob(position, message);
}

// What oban_insert_job refuses with 22023, refused alike for each element of oban_insert_jobs
// (the SQL statement alone would store a non-object args or meta, and an infinite scheduled_at,
// and report out-of-range numbers as a check violation or an integer overflow). C-style: raises.
void CheckJobsInput(Jsonb *jobs) {
    if (!JB_ROOT_IS_ARRAY(jobs) || JB_ROOT_IS_SCALAR(jobs))
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("jobs must be a JSON array of objects")));
    JsonbIterator *iterator = JsonbIteratorInit(&jobs->root);
    JsonbValue element;
    JsonbIteratorToken token;
    int position = 0;
    while ((token = JsonbIteratorNext(&iterator, &element, true)) != WJB_DONE) {
        if (token != WJB_ELEM) continue;
        position++;
        if (element.type != jbvBinary || !JsonContainerIsObject(element.val.binary.data))
            RaiseBadJob(position, "a job must be a JSON object");
        JsonbContainer *object = element.val.binary.data;
        for (const char *key : {"args", "meta"}) {
            JsonbValue value;
            if (getKeyJsonValueFromContainer(object, key, (uint32)strlen(key), &value) != nullptr &&
                value.type != jbvNull &&
                (value.type != jbvBinary || !JsonContainerIsObject(value.val.binary.data)))
                RaiseBadJob(position, strcmp(key, "args") == 0 ? "args must be a JSON object"
                                                               : "meta must be a JSON object");
        }
        CheckIntegerField(object, "priority", 0, 32767, position, "priority must be between 0 and 32767");
        CheckIntegerField(object, "max_attempts", 1, 32767, position,
                          "max_attempts must be between 1 and 32767");
        JsonbValue scheduled;
        if (getKeyJsonValueFromContainer(object, "scheduled_at", 12, &scheduled) != nullptr &&
            scheduled.type == jbvString) {
            char *text = pnstrdup(scheduled.val.string.val, scheduled.val.string.len);
            Datum parsed = DirectFunctionCall3(timestamp_in, CStringGetDatum(text),
                                               ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
            if (TIMESTAMP_NOT_FINITE(DatumGetTimestamp(parsed)))
                RaiseBadJob(position, "scheduled_at must be finite");
        }
    }
}

}  // namespace

OBAN_FUNCTION(oban_insert_jobs) {
    RequireArgument(fcinfo, 0, "jobs");
    Jsonb *jobs = PG_GETARG_JSONB_P(0);
    CheckJobsInput(jobs);
    InitMaterializedSRF(fcinfo, 0);
    auto *result = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Oid schema = FunctionSchema(fcinfo);
    Datum values[1] = {PG_GETARG_DATUM(0)};
    BeginSql(schema);
    ExecuteInto(&insert_jobs, schema, values, nullptr, result);
    EndSql();
    return (Datum)0;
}

OBAN_FUNCTION(oban_fetch_jobs) {
    InitMaterializedSRF(fcinfo, 0);
    FetchJobs(fcinfo, FunctionSchema(fcinfo), 0);
    return (Datum)0;
}

// What an Oban producer does each round, in one transaction: ack what it ran, claim what is next.
OBAN_FUNCTION(oban_ack_fetch_jobs) {
    RequireArgument(fcinfo, 0, "acks");
    InitMaterializedSRF(fcinfo, 0);
    Oid schema = FunctionSchema(fcinfo);
    AckJobs(schema, PG_GETARG_JSONB_P(0));
    FetchJobs(fcinfo, schema, 1);
    return (Datum)0;
}
