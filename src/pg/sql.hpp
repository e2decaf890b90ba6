// Running the extension's SQL from C: kept plans per statement, a pinned search_path, and the
// extension's schema. Plain C-style code (no C++ objects live while these run).
#pragma once
#include <initializer_list>

#include "pg/boundary.hpp"

extern "C" {
#include "access/skey.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "nodes/execnodes.h"
}

namespace oban::pg {

// One SQL statement of the extension. `sql` names the extension's objects as @extschema@; the
// plan is prepared on first use (SPI_prepare + SPI_keepplan) and kept for the backend's life,
// re-prepared only if the extension's schema changes. Postgres revalidates a kept plan after DDL.
struct Statement {
    const char *sql;
    int nargs;
    Oid argtypes[16];
    // Plan once, for any values (the hot paths, written so one plan suits every call), preferring
    // index lookups (PlanForIndexLookups: the plan is kept, and the table may be empty when it is
    // made); otherwise Postgres decides per call, and may plan each call for its values (the
    // set-based flushes, whose best join depends on how many rows they get).
    bool generic_plan = false;
    SPIPlanPtr plan = nullptr;
    Oid schema = InvalidOid;
};

// The schema of the SQL function being called, cached in its FmgrInfo.
Oid FunctionSchema(FunctionCallInfo fcinfo);

// Connects SPI with search_path pinned to pg_catalog then `schema`, so no object a caller puts on
// their search_path can capture a name or an operator in the extension's SQL.
void BeginSql(Oid schema);
void EndSql();

// The kept plan of `statement` for `schema`; call between BeginSql and EndSql.
SPIPlanPtr Prepared(Statement *statement, Oid schema);

// Runs `statement` with `values` (`nulls` uses SPI's ' '/'n' convention; nullptr means none null).
// Returns the number of rows processed; rows are in SPI_tuptable.
uint64 Execute(Statement *statement, Oid schema, Datum *values, const char *nulls, long limit = 0);

// Runs `statement` like Execute, its rows going straight into `result`, the tuplestore of a
// materialized set-returning function (one copy per row; SPI_tuptable is left unset).
uint64 ExecuteInto(Statement *statement, Oid schema, Datum *values, const char *nulls, ReturnSetInfo *result);

// The calling SQL function's arguments as `statement`'s parameters, in order (NULL stays NULL):
// values and nulls (SPI's ' '/'n') for its nargs parameters.
void FunctionArguments(FunctionCallInfo fcinfo, const Statement *statement, Datum *values, char *nulls);

// A materialized set-returning SQL function whose rows are those of `statement`, run with the
// function's arguments (FunctionArguments) in the function's schema.
void ReturnRowsOf(FunctionCallInfo fcinfo, Statement *statement);

// The receiver ExecuteInto sends rows to: into `result`'s tuplestore (destroy it after use).
DestReceiver *ResultReceiver(ReturnSetInfo *result);

// Runs `statement` like Execute, its rows sent to `into`.
uint64 ExecuteTo(Statement *statement, Oid schema, Datum *values, const char *nulls, DestReceiver *into);

// Makes the planner choose index lookups (no sequential scans, hash or merge joins) for the
// statements run until `AtEOXact_GUC(true, level)` with the returned level (or the transaction's
// end). For statements that pick a few rows out of tables that only grow or churn: left to the
// planner, their small estimates (or a table that is small when the plan is made and kept) choose
// hash joins over sequential scans of whole tables, a cost per call that grows with the table.
int PlanForIndexLookups();

// The extension's table `name` in `schema`, opened with `lock` once the current user is found to
// hold every privilege in `required` on it, as a statement using the table would be checked. For
// the C code that reads or writes the extension's tables directly, without a statement.
Relation OpenExtensionTable(Oid schema, const char *name, LOCKMODE lock, AclMode required);

// OpenExtensionTable, but nullptr rather than an error when the current user lacks a privilege
// in `required` (or the table is missing): for paths that fall back to another way instead.
Relation OpenExtensionTableIfPermitted(Oid schema, const char *name, LOCKMODE lock, AclMode required);

// The number of `column` in the extension's table `relation`; an error if the table was altered.
AttrNumber ExtensionTableColumn(Oid relation, const char *column);

// An equality key on `column` of `relation` for systable_beginscan (which maps it to the index's
// column), compared with the column's collation.
void EqualityKey(ScanKey key, Relation relation, AttrNumber column, RegProcedure equals, Datum value);

// Index `index`, opened (AccessShareLock) if its first key columns are `columns` (its table's
// attribute numbers); nullptr otherwise, or if there is no such index.
Relation OpenIndexOn(Oid index, std::initializer_list<AttrNumber> columns);

// A key on column `column` (1-based) of `index`, for index_rescan: `compare` (the function of the
// B-tree `strategy`) against `value`, with the index column's collation.
void IndexKey(ScanKey key, Relation index, AttrNumber column, StrategyNumber strategy, RegProcedure compare,
              Datum value);

// IndexKey for equality.
void IndexEqualityKey(ScanKey key, Relation index, AttrNumber column, RegProcedure equals, Datum value);

// The primary key of the extension's table `table`, opened if its first key columns are `columns`;
// an error naming the table otherwise (the extension's tables were altered).
Relation OpenPrimaryKeyOn(Relation table, std::initializer_list<AttrNumber> columns);

// Deletes the row version at `tid`, found under `snapshot`, as a DELETE statement would: waits for
// a transaction changing it, then whether it deleted it. Not when another transaction deleted it
// meanwhile (or this command did already); under a transaction snapshot, that is a serialization
// failure, as for the statement.
bool DeleteFound(Relation table, ItemPointer tid, Snapshot snapshot);

// Two texts compared byte by byte (an order for sorting and searching, not the collation's).
int CompareTexts(Datum a, Datum b);

// Two int64s (job or row ids) by value, for qsort and bsearch.
int CompareInt64s(const void *a, const void *b);

// `count` int64s (job ids) as a bigint[] Datum, for a statement's parameter.
Datum Int8Array(const int64 *values, int count);

// Rows written straight into one of the extension's own tables and its indexes, as COPY does,
// rather than by an INSERT statement, whose executor setup and teardown cost more than inserting a
// handful of rows. Only for the extension's tables, which have no triggers, rules or policies: the
// unique indexes are checked, and the caller sets every NOT NULL column; a column it does not set
// is NULL, whatever its default.
struct DirectInsert {
    Relation relation;
    EState *estate;
    ResultRelInfo *result;
    TupleTableSlot *slot;
};

// Opens the extension's table `name` for direct inserts, once the current user is found to hold
// INSERT on it (the lock, RowExclusiveLock, is held to the end of the transaction).
void OpenDirectInsert(DirectInsert *insert, Oid schema, const char *name);

// The next row's slot, every column NULL: set columns with SetColumn, then InsertRow.
TupleTableSlot *NewRow(DirectInsert *insert);
void SetColumn(TupleTableSlot *row, AttrNumber column, Datum value);
void InsertRow(DirectInsert *insert);

void CloseDirectInsert(DirectInsert *insert);

// timezone('UTC', now()), the default of the extension's timestamp columns, for rows inserted
// directly: a timestamptz counts microseconds from UTC midnight, so it reads as a UTC timestamp.
inline Timestamp TransactionStartUtc() {
    return GetCurrentTransactionStartTimestamp();
}

}  // namespace oban::pg
