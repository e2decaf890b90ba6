#include "pg/restore.hpp"

extern "C" {
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "tcop/pquery.h"
#include "utils/portal.h"
}

namespace oban::pg {

bool RestoringDump(Relation relation) {
    if (ActivePortal == nullptr) return false;
    ListCell *cell;
    foreach (cell, ActivePortal->stmts) {
        auto *node = static_cast<Node *>(lfirst(cell));
        if (!IsA(node, PlannedStmt)) continue;
        auto *planned = reinterpret_cast<PlannedStmt *>(node);
        if (planned->commandType != CMD_UTILITY || planned->utilityStmt == nullptr ||
            !IsA(planned->utilityStmt, CopyStmt))
            continue;
        auto *copy = reinterpret_cast<CopyStmt *>(planned->utilityStmt);
        if (!copy->is_from || copy->relation == nullptr ||
            strcmp(copy->relation->relname, RelationGetRelationName(relation)) != 0)
            continue;
        ListCell *column;
        foreach (column, copy->attlist) {
            if (strcmp(strVal(lfirst(column)), "id") == 0) return true;
        }
    }
    return false;
}

}  // namespace oban::pg
