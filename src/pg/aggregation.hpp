// Workflow counts: the journal written by the oban_jobs triggers (aggregation.cpp).
#pragma once

namespace oban::pg {

// Registers the transaction callbacks that keep per-statement deltas consistent.
void InitAggregation();

}  // namespace oban::pg
