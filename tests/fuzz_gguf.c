/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader and `kgen inspect`.
 *
 * Parses the input with kg_gguf_open_memory; on success reads everything the
 * handle exposes (every kv, recursively into nested arrays; every tensor's
 * first and last data byte; every lookup) and prints it as text and JSON to
 * /dev/null. Any out-of-bounds read, leak or undefined behaviour is a bug.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined ... tests/fuzz_gguf.c
 */
#include "gen.h"
#include "kgen.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink;

static void touch_str(kg_str s)
{
    if (s.len) sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
}

static void walk_value(const kg_value *v)
{
    kg_value e;
    switch (v->type) {
    case KG_V_STRING:
        touch_str(v->str);
        break;
    case KG_V_ARRAY:
        if (v->arr.type == KG_V_STRING) {
            for (uint64_t i = 0; i < v->arr.n; i++) touch_str(v->arr.strs[i]);
        } else if (v->arr.type == KG_V_ARRAY) {
            for (uint64_t i = 0; i < v->arr.n; i++) walk_value(&v->arr.arrs[i]);
        } else {
            uint64_t i = 0;
            for (; kg_value_elem(v, i, &e); i++) sink += e.u;
            if (i != v->arr.n) abort(); /* every element must be readable */
        }
        break;
    default:
        sink += v->u;
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *null;
    if (!null && !(null = fopen("/dev/null", "w"))) abort();

    kg_gguf *g = NULL;
    if (kg_gguf_open_memory(data, size, "fuzz", &g) != KG_OK) {
        if (g) abort();
        return 0;
    }
    for (uint64_t i = 0; i < kg_gguf_n_kv(g); i++) {
        const kg_kv *kv = kg_gguf_kv(g, i);
        walk_value(&kv->value);
        if (!kg_gguf_find(g, kv->key)) abort();
    }
    for (uint64_t i = 0; i < kg_gguf_n_tensors(g); i++) {
        const kg_tensor *t = kg_gguf_tensor(g, i);
        if (t->n_bytes) {
            const uint8_t *p = t->data;
            sink += p[0] + p[t->n_bytes - 1];
        }
        if (kg_gguf_find_tensor(g, t->name) == NULL) abort();
    }
    inspect_print(g, null, false);
    inspect_print(g, null, true);
    kg_gguf_close(g);
    return 0;
}
