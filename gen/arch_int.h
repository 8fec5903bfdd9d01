/*
 * arch_int.h — what the architecture builders share (gen/arch.c: the
 * decoder registry and its blocks; gen/arch_bert.c: encoders): a builder's
 * context, weights checked against the hyperparameters, activations,
 * products. Every error names the source and the tensor.
 */
#ifndef KGEN_ARCH_INT_H
#define KGEN_ARCH_INT_H

#include "graph.h"
#include "source.h"

typedef struct arch_row arch_row;

typedef struct arch_ctx {
    const gen_source *src;
    const char *file;
    const arch_row *a; /* decoders: the registry row; encoders: NULL */
    gen_graph *gr;
} arch_ctx;

enum { W_PRODUCT, W_VECTOR }; /* a matrix products read, or an F32 vector (norm, bias, factors) */

/* The source tensor `name` checked: ne0 x ne1 (ne1 = 0: a vector of ne0),
 * its type one a kernel takes (use). NULL (message set) when it fails. */
const kg_tensor *arch_find_checked(const arch_ctx *c, const char *name, int64_t ne0, int64_t ne1, int use, kg_status *st);
/* A graph weight of one source tensor (or a view of one); vectors are N rows of one element. */
int arch_add_weight(arch_ctx *c, const kg_tensor *t, const char *name, bool vector);
/* weight `name` (ne0 x ne1, or a vector of ne0 when ne1 = 0) into *id */
kg_status arch_weight(arch_ctx *c, const char *name, int64_t ne0, int64_t ne1, int *id);
/* an optional vector: *id = -1 when the source has no such tensor */
kg_status arch_opt_vector(arch_ctx *c, const char *name, int64_t n, int *id);
/* an activation "L<l>.<label>" of cols columns per token */
int arch_act(arch_ctx *c, int l, const char *label, int64_t cols);
/* y = W x [+ b]: the node, or -1 */
int arch_product(arch_ctx *c, int l, int w, int x, int b, int y);

#define NODE(op, l, out, ...) \
    gen_graph_node(c->gr, op, l, out, (int[]){__VA_ARGS__}, sizeof((int[]){__VA_ARGS__}) / sizeof(int))
#define TRY(x) \
    do { if ((x) < 0) return KG_ERR_NOMEM; } while (0)

#endif
