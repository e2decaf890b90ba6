// Unique workflows (SPEC §5). A unique workflow's name is a row of oban_workflow_names, whose
// primary key is the unique index that enforces "one unfinished workflow per name":
//
//  * a new name is claimed with INSERT ... ON CONFLICT DO NOTHING, so a second session inserting
//    the same name waits on the first one's uncommitted index entry, then conflicts (it committed)
//    or claims the name (it rolled back);
//  * a taken name's holder is checked with a fresh snapshot: a finished holder (no job suspended,
//    available, scheduled, executing or retryable in its whole tree, or no workflow row left)
//    hands the name over with an UPDATE conditioned on the holder, so of two sessions taking over
//    at once one wins and the other sees the winner; an unfinished holder is a conflict. A conflict
//    takes no lock, so inserts that conflict never queue behind each other.
//
// Why a separate row rather than a partial unique index on oban_workflow_rows "WHERE unfinished":
// the workflow rows' counts are folded asynchronously from the journal (aggregation.cpp), so no
// column of them turns "finished" at the moment the last job commits. The name row is checked
// against the exact counts (rows + unfolded journal) when someone needs the name, which frees the
// name the moment the workflow finishes without writing anything when it does.
//
// A plain INSERT of rows carrying meta workflow_unique goes through the BEFORE INSERT trigger
// below: the first row of a workflow claims the name; on a conflict that row and every later row of
// that workflow in the same transaction are skipped (the trigger returns NULL), so a multi-row
// INSERT of one workflow goes in whole or not at all even if the holder finishes meanwhile.
#include "pg/uniqueness.hpp"

#include "pg/args.hpp"

#include "pg/meta.hpp"
#include "pg/restore.hpp"
#include "pg/sql.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
}

namespace oban::pg {

bool workflow_names_claimed = false;

namespace {

Statement claim_free_name{R"sql(
    INSERT INTO @extschema@.oban_workflow_names (name, workflow_id) VALUES ($1, $2)
    ON CONFLICT (name) DO NOTHING)sql",
                          2,
                          {TEXTOID, TEXTOID},
                          true};

// The holder; `xmin` tells whether this transaction wrote the name row itself.
Statement read_holder{R"sql(
    SELECT workflow_id, xmin FROM @extschema@.oban_workflow_names WHERE name = $1)sql",
                      1,
                      {TEXTOID},
                      true};

Statement holder_state{R"sql(
    SELECT EXISTS (SELECT FROM @extschema@.oban_workflow_tree_counts($1) AS c
                   WHERE c.suspended + c.available + c.scheduled + c.executing + c.retryable > 0),
           EXISTS (SELECT FROM @extschema@.oban_workflow_rows WHERE id = $2))sql",
                       2,
                       {TEXTOID, TEXTOID},
                       true};

// Takes the name over from the finished holder $3 — unless someone else took it meanwhile: the row
// is then no longer $3's when this UPDATE gets to it, and nothing is updated.
Statement take_over{R"sql(
    UPDATE @extschema@.oban_workflow_names
    SET workflow_id = $2, claimed_at = timezone('UTC', now())
    WHERE name = $1 AND workflow_id = $3)sql",
                    3,
                    {TEXTOID, TEXTOID, TEXTOID},
                    true};

// What the claim trigger decided in this transaction for each unique workflow it saw, with the
// subtransaction that decided it: a conflicted workflow's later rows are dropped without a look
// (all-or-nothing), and a claimed one's go in without one (the name row is this transaction's own
// uncommitted write, which nobody else can change before it ends).
struct Decision {
    SubTransactionId subid;
    char *workflow_id;
    bool claimed;
};
List *decisions = NIL;  // of Decision *, in TopTransactionContext

Decision *DecisionFor(const char *workflow_id) {
    ListCell *cell;
    foreach (cell, decisions) {
        auto *decision = static_cast<Decision *>(lfirst(cell));
        if (strcmp(decision->workflow_id, workflow_id) == 0) return decision;
    }
    return nullptr;
}

void Remember(const char *workflow_id, bool claimed) {
    MemoryContext previous = MemoryContextSwitchTo(TopTransactionContext);
    auto *decision = static_cast<Decision *>(palloc(sizeof(Decision)));
    decision->subid = GetCurrentSubTransactionId();
    decision->workflow_id = pstrdup(workflow_id);
    decision->claimed = claimed;
    decisions = lappend(decisions, decision);
    MemoryContextSwitchTo(previous);
}

void OnTransactionEvent(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            decisions = NIL;  // its memory goes with TopTransactionContext
            workflow_names_claimed = false;
            break;
        default:
            break;
    }
}

// A rolled-back subtransaction's decisions are forgotten (its claims were rolled back with it, and
// a retry after ROLLBACK TO SAVEPOINT checks the name afresh). A committed one's pass to its parent.
void OnSubtransactionEvent(SubXactEvent event, SubTransactionId subid, SubTransactionId parent, void *) {
    if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB) return;
    if (event == SUBXACT_EVENT_ABORT_SUB) workflow_names_claimed = false;
    ListCell *cell;
    foreach (cell, decisions) {
        auto *decision = static_cast<Decision *>(lfirst(cell));
        if (decision->subid < subid) continue;
        if (event == SUBXACT_EVENT_ABORT_SUB)
            decisions = foreach_delete_current(decisions, cell);
        else
            decision->subid = parent;
    }
}

}  // namespace

bool ClaimWorkflowName(Oid schema, Datum name, Datum workflow_id) {
    for (;;) {
        Datum claim[2] = {name, workflow_id};
        if (Execute(&claim_free_name, schema, claim, nullptr) == 1) return true;
        if (Execute(&read_holder, schema, claim, nullptr) == 0) continue;  // pruned meanwhile: retry

        bool is_null = false;
        HeapTuple row = SPI_tuptable->vals[0];
        TupleDesc descriptor = SPI_tuptable->tupdesc;
        char *holder = TextDatumGetCString(SPI_getbinval(row, descriptor, 1, &is_null));
        TransactionId written_by = DatumGetTransactionId(SPI_getbinval(row, descriptor, 2, &is_null));
        char *ours = TextDatumGetCString(workflow_id);
        if (strcmp(holder, ours) == 0) return true;

        Datum holder_id = CStringGetTextDatum(holder);
        Datum check[2] = {holder_id, workflow_id};
        Execute(&holder_state, schema, check, nullptr);
        row = SPI_tuptable->vals[0];
        descriptor = SPI_tuptable->tupdesc;
        // A holder claimed by this very transaction may not have its workflow row yet (rows are
        // created at the end of the inserting statement): it was just inserted, so it is unfinished.
        bool holder_unfinished = DatumGetBool(SPI_getbinval(row, descriptor, 1, &is_null)) ||
                                 TransactionIdIsCurrentTransactionId(written_by);
        bool ours_exists = DatumGetBool(SPI_getbinval(row, descriptor, 2, &is_null));
        if (!holder_unfinished) {
            Datum change[3] = {name, workflow_id, holder_id};
            if (Execute(&take_over, schema, change, nullptr) == 1) return true;
            continue;  // taken over by someone else first: look at the new holder
        }
        return ours_exists;
    }
}

void InitUniqueness() {
    RegisterXactCallback(OnTransactionEvent, nullptr);
    RegisterSubXactCallback(OnSubtransactionEvent, nullptr);
}

}  // namespace oban::pg

using namespace oban::pg;

namespace oban::pg {

HeapTuple ClaimUniqueWorkflowJob(TriggerData *trigger, HeapTuple row) {
    if (workflow_names_claimed) return row;               // oban_insert_workflow claimed it
    if (RestoringDump(trigger->tg_relation)) return row;  // names come with the dump

    Relation relation = trigger->tg_relation;
    TupleDesc descriptor = RelationGetDescr(relation);
    bool is_null = false;
    Datum meta = heap_getattr(row, SPI_fnumber(descriptor, "meta"), descriptor, &is_null);
    if (is_null) return row;
    Jsonb *meta_value = DatumGetJsonbP(meta);
    char *id = MetaText(meta_value, "workflow_id", CurrentMemoryContext);
    char *name = MetaText(meta_value, "workflow_name", CurrentMemoryContext);
    if (id == nullptr || *id == '\0' || name == nullptr || *name == '\0')
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("a unique workflow job needs meta \"workflow_id\" and \"workflow_name\""),
                        errdetail("Its meta sets \"workflow_unique\" to true; uniqueness is keyed by "
                                  "\"workflow_name\"."),
                        errhint("Add both as non-empty strings, or drop \"workflow_unique\".")));

    if (Decision *decided = DecisionFor(id)) return decided->claimed ? row : nullptr;

    Oid schema = RelationGetNamespace(relation);
    BeginSql(schema);
    bool claimed = ClaimWorkflowName(schema, CStringGetTextDatum(name), CStringGetTextDatum(id));
    EndSql();
    Remember(id, claimed);
    return claimed ? row : nullptr;
}

}  // namespace oban::pg

// The trigger function of 0.6.0 schemas (0.6.1 calls ClaimUniqueWorkflowJob from
// oban_jobs_before_insert): BEFORE INSERT, FOR EACH ROW, on rows whose meta says workflow_unique: true.
OBAN_FUNCTION(oban_jobs_workflow_claim) {
    TriggerData *trigger = RequireBeforeInsertRowTrigger(fcinfo, "oban_jobs_workflow_claim");
    return PointerGetDatum(ClaimUniqueWorkflowJob(trigger, trigger->tg_trigtuple));
}
