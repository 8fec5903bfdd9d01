/* types.c — kg_type_get over the one table of types (include/kgen_types.h). */
#include "kgen.h"

#define KG_X(id, nm, b, s, k, g, mn) [id] = {#nm, b, s, k, g, mn},
static const kg_type_info table[KG_TYPE_COUNT] = { KG_TYPES(KG_X) };
#undef KG_X

#define KG_X(id, nm, b, s, k, g, mn) +1
_Static_assert(0 KG_TYPES(KG_X) == 35, "KG_TYPES count changed: update this assert and the docs");
#undef KG_X
/* GGUF's ids index the table; kgen's own formats (ids from
 * KG_TYPE_OWN_BASE) will need their own lookup when they arrive */
#define KG_X(id, nm, b, s, k, g, mn) _Static_assert(id < KG_TYPE_COUNT, "KG_TYPE_COUNT too small");
KG_TYPES(KG_X)
#undef KG_X

const kg_type_info *kg_type_get(uint32_t t)
{
    return t < KG_TYPE_COUNT && table[t].name ? &table[t] : NULL;
}
