#include "pg/sql.hpp"

extern "C" {
#include "access/stratnum.h"
#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "executor/tstoreReceiver.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"
}

namespace oban::pg {

Oid FunctionSchema(FunctionCallInfo fcinfo) {
    FmgrInfo *flinfo = fcinfo->flinfo;
    if (flinfo->fn_extra == nullptr) {
        Oid *cached = static_cast<Oid *>(MemoryContextAlloc(flinfo->fn_mcxt, sizeof(Oid)));
        *cached = get_func_namespace(flinfo->fn_oid);
        if (!OidIsValid(*cached)) elog(ERROR, "cache lookup failed for function %u", flinfo->fn_oid);
        flinfo->fn_extra = cached;
    }
    return *static_cast<Oid *>(flinfo->fn_extra);
}

void BeginSql(Oid schema) {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    OverrideSearchPath path{};
    path.schemas = list_make1_oid(schema);
    path.addCatalog = true;
    path.addTemp = false;
    PushOverrideSearchPath(&path);
}

void EndSql() {
    PopOverrideSearchPath();
    if (SPI_finish() != SPI_OK_FINISH) elog(ERROR, "SPI_finish failed");
}

static char *ExpandSchema(const char *sql, Oid schema) {
    static const char placeholder[] = "@extschema@";
    const char *name = get_namespace_name(schema);
    if (name == nullptr) elog(ERROR, "cache lookup failed for schema %u", schema);
    const char *quoted = quote_identifier(name);

    StringInfoData out;
    initStringInfo(&out);
    for (const char *p = sql; *p != '\0';) {
        const char *hit = strstr(p, placeholder);
        if (hit == nullptr) {
            appendStringInfoString(&out, p);
            break;
        }
        appendBinaryStringInfo(&out, p, static_cast<int>(hit - p));
        appendStringInfoString(&out, quoted);
        p = hit + sizeof(placeholder) - 1;
    }
    return out.data;
}

SPIPlanPtr Prepared(Statement *statement, Oid schema) {
    if (statement->plan != nullptr && statement->schema == schema) return statement->plan;
    if (statement->plan != nullptr) {
        SPI_freeplan(statement->plan);
        statement->plan = nullptr;
    }
    char *sql = ExpandSchema(statement->sql, schema);
    SPIPlanPtr plan = SPI_prepare_cursor(sql, statement->nargs, statement->argtypes,
                                         statement->generic_plan ? CURSOR_OPT_GENERIC_PLAN : 0);
    if (plan == nullptr)
        elog(ERROR, "could not prepare oban_pro statement: %s", SPI_result_code_string(SPI_result));
    if (SPI_keepplan(plan) != 0) elog(ERROR, "could not keep oban_pro statement plan");
    pfree(sql);
    statement->plan = plan;
    statement->schema = schema;
    return plan;
}

// Whether running `plan` makes a new generic plan: it has none yet, or it was invalidated since (by
// an ANALYZE of a table it reads, say). Invalidations already sent are taken in first, so they are
// seen here rather than only when the execution locks its tables.
static bool MakesGenericPlan(SPIPlanPtr plan) {
    AcceptInvalidationMessages();
    ListCell *cell;
    foreach (cell, SPI_plan_get_plan_sources(plan)) {
        auto *source = static_cast<CachedPlanSource *>(lfirst(cell));
        if (!source->is_valid || source->gplan == nullptr || !source->gplan->is_valid) return true;
    }
    return false;
}

// The kept plan of `statement`, and, when it is about to be made, the planner steered to index
// lookups for it (the GUC level to close after the run, or -1). A generic plan is kept for the
// backend's life, or until the next invalidation: made while oban_jobs is empty and just analyzed
// (a fresh install, a test, a TRUNCATE), it would read whole tables by sequential scans, and go on
// doing so as they grow. The hot statements pick a few rows by key, which the indexes serve at any
// size.
static SPIPlanPtr PreparedForRun(Statement *statement, Oid schema, int *guc_level) {
    SPIPlanPtr plan = Prepared(statement, schema);
    *guc_level = statement->generic_plan && MakesGenericPlan(plan) ? PlanForIndexLookups() : -1;
    return plan;
}

static void AfterRun(int guc_level) {
    if (guc_level >= 0) AtEOXact_GUC(true, guc_level);
}

uint64 Execute(Statement *statement, Oid schema, Datum *values, const char *nulls, long limit) {
    int guc_level;
    SPIPlanPtr plan = PreparedForRun(statement, schema, &guc_level);
    int rc = SPI_execute_plan(plan, values, nulls, false, limit);
    AfterRun(guc_level);
    if (rc < 0) elog(ERROR, "oban_pro statement failed: %s", SPI_result_code_string(rc));
    return SPI_processed;
}

DestReceiver *ResultReceiver(ReturnSetInfo *result) {
    DestReceiver *into = CreateDestReceiver(DestTuplestore);
    // By position: the statement's live columns onto the result's row type, whose dropped columns
    // (of an altered or adopted table) are skipped.
    SetTuplestoreDestReceiverParams(into, result->setResult, result->econtext->ecxt_per_query_memory, false,
                                    result->setDesc, "oban_pro statement rows do not match the result type");
    return into;
}

uint64 ExecuteTo(Statement *statement, Oid schema, Datum *values, const char *nulls, DestReceiver *into) {
    int guc_level;
    SPIPlanPtr plan = PreparedForRun(statement, schema, &guc_level);
    ParamListInfo params = makeParamList(statement->nargs);
    for (int i = 0; i < statement->nargs; i++) {
        params->params[i].value = values[i];
        params->params[i].isnull = nulls != nullptr && nulls[i] == 'n';
        params->params[i].pflags = PARAM_FLAG_CONST;
        params->params[i].ptype = statement->argtypes[i];
    }
    SPIExecuteOptions options{};
    options.params = params;
    options.dest = into;
    int rc = SPI_execute_plan_extended(plan, &options);
    AfterRun(guc_level);
    if (rc < 0) elog(ERROR, "oban_pro statement failed: %s", SPI_result_code_string(rc));
    return SPI_processed;
}

void FunctionArguments(FunctionCallInfo fcinfo, const Statement *statement, Datum *values, char *nulls) {
    for (int i = 0; i < statement->nargs; i++) {
        values[i] = PG_ARGISNULL(i) ? (Datum)0 : PG_GETARG_DATUM(i);
        nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
    }
}

void ReturnRowsOf(FunctionCallInfo fcinfo, Statement *statement) {
    InitMaterializedSRF(fcinfo, 0);
    Oid schema = FunctionSchema(fcinfo);
    Datum values[lengthof(statement->argtypes)];
    char nulls[lengthof(statement->argtypes)];
    FunctionArguments(fcinfo, statement, values, nulls);
    BeginSql(schema);
    ExecuteInto(statement, schema, values, nulls, reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo));
    EndSql();
}

uint64 ExecuteInto(Statement *statement, Oid schema, Datum *values, const char *nulls,
                   ReturnSetInfo *result) {
    DestReceiver *into = ResultReceiver(result);
    uint64 processed = ExecuteTo(statement, schema, values, nulls, into);
    into->rDestroy(into);
    return processed;
}

int PlanForIndexLookups() {
    int level = NewGUCNestLevel();
    for (const char *name : {"enable_seqscan", "enable_hashjoin", "enable_mergejoin"})
        (void)set_config_option(name, "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    return level;
}

Relation OpenExtensionTable(Oid schema, const char *name, LOCKMODE lock, AclMode required) {
    Oid relation = get_relname_relid(name, schema);
    if (!OidIsValid(relation))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("relation \"%s.%s\" does not exist", get_namespace_name(schema), name)));
    Relation opened = table_open(relation, lock);
    if (pg_class_aclmask(relation, GetUserId(), required, ACLMASK_ALL) != required)
        aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(opened->rd_rel->relkind),
                       RelationGetRelationName(opened));
    return opened;
}

Relation OpenExtensionTableIfPermitted(Oid schema, const char *name, LOCKMODE lock, AclMode required) {
    Oid relation = get_relname_relid(name, schema);
    if (!OidIsValid(relation) || pg_class_aclmask(relation, GetUserId(), required, ACLMASK_ALL) != required)
        return nullptr;
    return table_open(relation, lock);
}

void EqualityKey(ScanKey key, Relation relation, AttrNumber column, RegProcedure equals, Datum value) {
    ScanKeyInit(key, column, BTEqualStrategyNumber, equals, value);
    key->sk_collation = TupleDescAttr(RelationGetDescr(relation), column - 1)->attcollation;
}

AttrNumber ExtensionTableColumn(Oid relation, const char *column) {
    AttrNumber number = get_attnum(relation, column);
    if (number == InvalidAttrNumber)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                        errmsg("column \"%s\" of %s is missing", column, get_rel_name(relation)),
                        errhint("The extension's tables were altered; reinstall or update the extension.")));
    return number;
}

Relation OpenIndexOn(Oid index, std::initializer_list<AttrNumber> columns) {
    if (!OidIsValid(index)) return nullptr;
    Relation opened = index_open(index, AccessShareLock);
    bool fits = opened->rd_index->indnkeyatts >= (int)columns.size();
    int position = 0;
    for (AttrNumber column : columns) fits = fits && opened->rd_index->indkey.values[position++] == column;
    if (fits) return opened;
    index_close(opened, AccessShareLock);
    return nullptr;
}

void IndexKey(ScanKey key, Relation index, AttrNumber column, StrategyNumber strategy, RegProcedure compare,
              Datum value) {
    ScanKeyInit(key, column, strategy, compare, value);
    key->sk_collation = index->rd_indcollation[column - 1];
}

void IndexEqualityKey(ScanKey key, Relation index, AttrNumber column, RegProcedure equals, Datum value) {
    IndexKey(key, index, column, BTEqualStrategyNumber, equals, value);
}

Relation OpenPrimaryKeyOn(Relation table, std::initializer_list<AttrNumber> columns) {
    Relation key = OpenIndexOn(RelationGetPrimaryKeyIndex(table), columns);
    if (key == nullptr)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("the primary key of %s is missing", RelationGetRelationName(table)),
                        errhint("The extension's tables were altered; reinstall or update the extension.")));
    return key;
}

bool DeleteFound(Relation table, ItemPointer tid, Snapshot snapshot) {
    TM_FailureData failure;
    TM_Result result = table_tuple_delete(table, tid, GetCurrentCommandId(true), snapshot, InvalidSnapshot,
                                          true, &failure, false);
    if ((result == TM_Updated || result == TM_Deleted) && IsolationUsesXactSnapshot())
        ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                        errmsg("could not serialize access due to concurrent delete")));
    return result == TM_Ok;
}

int CompareTexts(Datum a, Datum b) {
    text *x = DatumGetTextPP(a), *y = DatumGetTextPP(b);
    size_t x_length = VARSIZE_ANY_EXHDR(x), y_length = VARSIZE_ANY_EXHDR(y);
    int order = memcmp(VARDATA_ANY(x), VARDATA_ANY(y), Min(x_length, y_length));
    return order != 0 ? order : (x_length > y_length) - (x_length < y_length);
}

int CompareInt64s(const void *a, const void *b) {
    int64 x = *static_cast<const int64 *>(a), y = *static_cast<const int64 *>(b);
    return (x > y) - (x < y);
}

Datum Int8Array(const int64 *values, int count) {
    Datum *datums = static_cast<Datum *>(palloc(sizeof(Datum) * Max(count, 1)));
    for (int i = 0; i < count; i++) datums[i] = Int64GetDatum(values[i]);
    return PointerGetDatum(construct_array(datums, count, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
}

void OpenDirectInsert(DirectInsert *insert, Oid schema, const char *name) {
    insert->relation = OpenExtensionTable(schema, name, RowExclusiveLock, ACL_INSERT);
    insert->estate = CreateExecutorState();
    insert->result = makeNode(ResultRelInfo);
    InitResultRelInfo(insert->result, insert->relation, 1, nullptr, 0);
    ExecOpenIndices(insert->result, false);
    insert->slot = MakeSingleTupleTableSlot(RelationGetDescr(insert->relation), &TTSOpsVirtual);
}

TupleTableSlot *NewRow(DirectInsert *insert) {
    TupleTableSlot *slot = insert->slot;
    ExecClearTuple(slot);
    for (int column = 0; column < slot->tts_tupleDescriptor->natts; column++) {
        slot->tts_values[column] = (Datum)0;
        slot->tts_isnull[column] = true;  // dropped columns stay NULL
    }
    return slot;
}

void SetColumn(TupleTableSlot *row, AttrNumber column, Datum value) {
    row->tts_values[column - 1] = value;
    row->tts_isnull[column - 1] = false;
}

void InsertRow(DirectInsert *insert) {
    ExecStoreVirtualTuple(insert->slot);
    table_tuple_insert(insert->relation, insert->slot, GetCurrentCommandId(true), 0, nullptr);
    ExecInsertIndexTuples(insert->result, insert->slot, insert->estate, false, false, nullptr, NIL);
    ResetPerTupleExprContext(insert->estate);
}

void CloseDirectInsert(DirectInsert *insert) {
    ExecDropSingleTupleTableSlot(insert->slot);
    ExecCloseIndices(insert->result);
    FreeExecutorState(insert->estate);
    table_close(insert->relation, NoLock);  // the lock is held to the end of the transaction
}

}  // namespace oban::pg
