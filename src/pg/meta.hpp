// Reading job meta (jsonb) from C: the keys the triggers look at.
#pragma once
#include "pg/boundary.hpp"

extern "C" {
#include "utils/jsonb.h"
}

namespace oban::pg {

// meta->>key as a string allocated in `context`, or nullptr when meta is not an object or the key
// is missing or not a string.
char *MetaText(Jsonb *meta, const char *key, MemoryContext context);

// Whether meta is an object with `key` (the jsonb `?` operator on an object).
bool MetaHas(Jsonb *meta, const char *key);

// Whether meta->key is the JSON boolean true.
bool MetaTrue(Jsonb *meta, const char *key);

}  // namespace oban::pg
