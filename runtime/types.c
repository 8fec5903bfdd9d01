/* types.c — the GGML tensor type table (see KG_TYPES in kgen.h). */
#include "kgen.h"

#define KG_X(id, nm, b, s, f) [id] = {#nm, b, s, f},
static const kg_type_info table[KG_TYPE_COUNT] = { KG_TYPES(KG_X) };
#undef KG_X

#define KG_X(id, nm, b, s, f) +1
_Static_assert(0 KG_TYPES(KG_X) == 34, "KG_TYPES count changed: update this assert and the docs");
#undef KG_X
#define KG_X(id, nm, b, s, f) _Static_assert(id < KG_TYPE_COUNT, "KG_TYPE_COUNT too small");
KG_TYPES(KG_X)
#undef KG_X

const kg_type_info *kg_type_get(uint32_t t)
{
    return t < KG_TYPE_COUNT && table[t].name ? &table[t] : NULL;
}
