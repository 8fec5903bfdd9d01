/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors reader and
 * `kgen inspect`'s safetensors output.
 *
 * Parses the input with kg_st_open_memory; on success reads everything the
 * handle exposes (every metadata entry; every tensor's first and last data
 * byte, its sizes against its shape and dtype, its lookup by name; that the
 * tensors tile the data section) and prints it as text and JSON to
 * /dev/null. Any out-of-bounds read, leak or undefined behaviour is a bug;
 * so is a refusal that leaves a handle, or an accepted file that breaks
 * the reader's promises (abort()).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined ... tests/fuzz_safetensors.c
 */
#include "gen.h"
#include "kgen.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *null;
    if (!null && !(null = fopen("/dev/null", "w"))) abort();

    kg_safetensors *st = NULL;
    if (kg_st_open_memory(data, size, "fuzz", &st) != KG_OK) {
        if (st) abort();
        return 0;
    }
    uint64_t data_size = size - kg_st_data_offset(st), covered = 0;
    if (kg_st_data_offset(st) > size) abort();
    for (uint64_t i = 0; i < kg_st_n_meta(st); i++) {
        const kg_kv *kv = kg_st_meta(st, i);
        if (kv->value.type != KG_V_STRING) abort();
        if (kv->value.str.len) sink += (uint8_t)kv->value.str.ptr[kv->value.str.len - 1];
        sink += strlen(kv->key);
    }
    for (uint64_t i = 0; i < kg_st_n_tensors(st); i++) {
        const kg_tensor *t = kg_st_tensor(st, i);
        const kg_type_info *ti = kg_type_get(t->type);
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) n *= t->ne[d];
        if (!ti || t->n_dims > KG_MAX_DIMS || n != t->n_elements || n * ti->size != t->n_bytes) abort();
        if (t->offset > data_size || t->n_bytes > data_size - t->offset) abort();
        if (t->n_bytes) {
            const uint8_t *p = t->data;
            sink += p[0] + p[t->n_bytes - 1];
        }
        covered += t->n_bytes;
        if (kg_st_find_tensor(st, t->name) != t) abort();
        if (!strcmp(kg_st_dtype_name(t), "?")) abort();
    }
    if (covered != data_size) abort(); /* no overlap, no hole */
    inspect_st_print(st, null, false);
    inspect_st_print(st, null, true);
    kg_st_close(st);
    return 0;
}
