#include "pg/meta.hpp"

namespace oban::pg {

char *MetaText(Jsonb *meta, const char *key, MemoryContext context) {
    JsonbValue value;
    if (!JB_ROOT_IS_OBJECT(meta) ||
        getKeyJsonValueFromContainer(&meta->root, key, (uint32)strlen(key), &value) == nullptr)
        return nullptr;
    if (value.type != jbvString) return nullptr;
    char *text = static_cast<char *>(MemoryContextAlloc(context, value.val.string.len + 1));
    memcpy(text, value.val.string.val, value.val.string.len);
    text[value.val.string.len] = '\0';
    return text;
}

bool MetaHas(Jsonb *meta, const char *key) {
    JsonbValue value;
    return JB_ROOT_IS_OBJECT(meta) &&
           getKeyJsonValueFromContainer(&meta->root, key, (uint32)strlen(key), &value) != nullptr;
}

bool MetaTrue(Jsonb *meta, const char *key) {
    JsonbValue value;
    if (!JB_ROOT_IS_OBJECT(meta) ||
        getKeyJsonValueFromContainer(&meta->root, key, (uint32)strlen(key), &value) == nullptr)
        return false;
    return value.type == jbvBool && value.val.boolean;
}

}  // namespace oban::pg
