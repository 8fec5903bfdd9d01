/* arena.c — bump allocator: many small allocations, one free. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct kg_arena_chunk {
    kg_arena_chunk *next;
    uint64_t used, cap;
    _Alignas(16) unsigned char mem[];
};

enum { CHUNK = 64 * 1024 };

void *kg_arena_alloc(kg_arena *a, uint64_t n, uint64_t size)
{
    uint64_t bytes;
    if (!kg_mul_u64(n, size, &bytes) || bytes > (UINT64_MAX >> 2))
        return kg_err(KG_ERR_NOMEM, "allocation of %llu x %llu bytes overflows",
                      (unsigned long long)n, (unsigned long long)size), NULL;
    bytes = (bytes + 15) & ~(uint64_t)15;
    kg_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < bytes) {
        uint64_t cap = bytes > CHUNK / 4 ? bytes : CHUNK;
        if (cap > SIZE_MAX - sizeof *c || !(c = malloc(sizeof *c + cap)))
            return kg_err(KG_ERR_NOMEM, "out of memory allocating %llu bytes",
                          (unsigned long long)cap), NULL;
        c->used = 0;
        c->cap = cap;
        if (bytes > CHUNK / 4 && a->head) { /* big block: keep filling the current chunk */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->mem + c->used;
    c->used += bytes;
    memset(p, 0, bytes);
    return p;
}

char *kg_arena_strndup(kg_arena *a, const char *s, uint64_t len)
{
    char *d = kg_arena_alloc(a, len + 1, 1);
    if (d) memcpy(d, s, len);
    return d;
}

void kg_arena_free(kg_arena *a)
{
    for (kg_arena_chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    a->head = NULL;
}
