/*
 * model.c — `kgen compile`'s pipeline: one GGUF file to one per-model shared
 * object (or relocatable object) holding the specialized code, the packed
 * weights (or, with external weights, their hash and file name), the
 * tokenizer and the descriptor the runtime reads (runtime/model/desc.h).
 *
 *   GGUF ─arch─▶ graph ─fuse─▶ ─repack─▶ ─memplan─▶ ─lower─▶ instances +
 *   entry points ─LLVM─▶ object ─cc─▶ .so = object + runtime + data
 *
 * The data (descriptor, tokenizer blob, weights) is assembled from files by
 * `.incbin` (the weights can be hundreds of MB: the assembler copies them,
 * nothing parses them); the model runtime is the object embedded in kgen
 * (kgen-rt.o). Outputs are written to a temporary name and renamed.
 */
#include "cuda.h"
#include "gen.h"
#include "graph.h"
#include "internal.h"
#include "lower.h"
#include "quant.h"
#include "tune.h"
#include "runtime/model/desc.h"
#include "source.h"
#include "runtime/model/rt.h"
#include "tmpfile.h"
#include "kgen_check.h"
#include "kgen_model.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern const char kgen_bc_rt[], kgen_bc_rt_end[];
extern const char kgen_bc_model_h[], kgen_bc_model_h_end[];

static bool debug_on(void)
{
    const char *d = getenv("KGEN_DEBUG");
    return d && *d && strcmp(d, "0");
}

static kg_status write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return kg_err(KG_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    bool ok = !n || fwrite(data, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    return ok ? KG_OK : kg_err(KG_ERR_IO, "%s: write failed: %s", path, strerror(errno));
}

/* Features the kernels may use: the ISA level's, and any the target names. */
static uint64_t cpu_mask(const gen_target *t)
{
    static const char *const names[] = {
#define KGM_X(id, name) name,
        KGM_CPU_FEATURES(KGM_X)
#undef KGM_X
    };
    uint64_t m = (1u << KGM_CPU_SSE42) | (1u << KGM_CPU_POPCNT);
    if (t->isa >= GEN_ISA_AVX2)
        m |= (1u << KGM_CPU_AVX) | (1u << KGM_CPU_AVX2) | (1u << KGM_CPU_FMA) | (1u << KGM_CPU_F16C) | (1u << KGM_CPU_BMI2);
    if (t->isa >= GEN_ISA_AVX512)
        m |= (1u << KGM_CPU_AVX512F) | (1u << KGM_CPU_AVX512BW) | (1u << KGM_CPU_AVX512VL) | (1u << KGM_CPU_AVX512DQ) |
             (1u << KGM_CPU_AVX512VNNI);
    for (int i = 0; i < KGM_CPU_COUNT; i++) {
        char want[32];
        snprintf(want, sizeof want, "+%s", names[i]);
        for (const char *p = t->features; (p = strstr(p, want)); p += strlen(want)) {
            char end = p[strlen(want)];
            if ((p == t->features || p[-1] == ',') && (end == ',' || end == 0)) m |= 1ull << i;
        }
    }
    return m;
}

/* A shared object: the linked image at `linked`, with the descriptor and
 * the kgen note told where the weights are, then the weights after it at a
 * page boundary, written to the temporary `out`. */
static kg_status write_so(const gen_graph *gr, const char *linked, gen_tmpout *out, const kgm_desc *d,
                          const char *whash)
{
    int fd = open(linked, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kg_err(KG_ERR_IO, "%s: %s", linked, strerror(errno));
    kg_status st = KG_OK;
    struct stat sb;
    char *img = NULL, why[512];
    size_t n = 0;
    kgm_note note;
    uint64_t note_at = 0, image_end = 0;
    if (fstat(fd, &sb) != 0 || sb.st_size <= 0 || !(img = malloc((size_t)sb.st_size)) ||
        kgm__pread_all(fd, img, (size_t)sb.st_size, 0))
        st = kg_err(KG_ERR_IO, "%s: cannot read the linked model", linked);
    else n = (size_t)sb.st_size;
    if (!st && kgm_read_note(fd, "the linked model", why, sizeof why, &note, &note_at, &image_end))
        st = kg_err(KG_ERR_FORMAT, "%s", why);
    close(fd);
    /* the descriptor: the only place its bytes (content hash included) occur */
    const size_t key = offsetof(kgm_desc, weights_offset);
    char *at = st ? NULL : memmem(img, n, d, key);
    if (!st && (!at || memmem(at + 1, (size_t)(img + n - at - 1), d, key)))
        st = kg_err(KG_ERR_IO, "%s: the model descriptor is not in the linked file exactly once", linked);
    const uint64_t off = ((uint64_t)n + 4095) / 4096 * 4096;
    if (!st) {
        kgm_desc nd = *d;
        nd.weights_offset = off;
        memcpy(at, &nd, sizeof nd);
        note.weights_offset = off;
        memcpy(img + note_at, &note, sizeof note);
        static const char zeros[4096];
        FILE *f = fdopen(dup(out->fd), "wb");
        char hash[33];
        if (!f || fwrite(img, 1, n, f) != n || fwrite(zeros, 1, (size_t)(off - n), f) != off - n)
            st = kg_err(KG_ERR_IO, "%s: write failed: %s", out->final, strerror(errno));
        if (!st) st = gen_repack_write(gr, f, out->final, hash);
        if (!st && strcmp(hash, whash)) st = kg_err(KG_ERR_IO, "%s: the weights changed while compiling", out->final);
        if (f && fclose(f) != 0 && !st) st = kg_err(KG_ERR_IO, "%s: write failed: %s", out->final, strerror(errno));
    }
    free(img);
    return st;
}

static const char *main_weight_type(const gen_graph *gr)
{
    uint64_t bytes[KG_TYPE_COUNT] = {0};
    for (int i = 0; i < gr->nt; i++)
        if (gr->t[i].kind == GEN_T_WEIGHT && gr->t[i].size && gr->t[i].type < KG_TYPE_COUNT)
            bytes[gr->t[i].type] += gr->t[i].size;
    int best = 0;
    for (int i = 1; i < KG_TYPE_COUNT; i++)
        if (bytes[i] > bytes[best]) best = i;
    return gen_type_name(best);
}

static kg_status fill_desc(const gen_graph *gr, const gen_target *t, int sm, const gen_model_opts *o, const char *whash,
                           const void *tok, size_t ntok, kgm_desc *d)
{
    const gen_hparams *hp = &gr->hp;
    memset(d, 0, sizeof *d);
    d->magic = KGM_DESC_MAGIC;
    d->version = KGM_DESC_VERSION;
    snprintf(d->arch, sizeof d->arch, "%s", hp->arch);
    snprintf(d->name, sizeof d->name, "%s", hp->name);
    snprintf(d->weight_type, sizeof d->weight_type, "%s", main_weight_type(gr));
    snprintf(d->target_cpu, sizeof d->target_cpu, "%s", t->cpu);
    snprintf(d->weights_hash, sizeof d->weights_hash, "%s", whash);
    d->cpu_features = sm ? 0 : cpu_mask(t);
    d->backend = sm ? KGM_BACKEND_CUDA : KGM_BACKEND_CPU;
    if (sm) snprintf(d->target_cpu, sizeof d->target_cpu, "cuda:sm_%d", sm);
    d->weight_bytes = gr->weight_bytes;
    d->ws_bytes = gr->ws_bytes;
    d->ws_ids = gr->t[gr->ids].off;
    d->ws_pos = gr->t[gr->pos].off;
    d->ws_logits = gr->t[gr->logits].off;
    d->n_layer = (int32_t)hp->n_layer, d->n_embd = (int32_t)hp->n_embd, d->n_head = (int32_t)hp->n_head;
    d->n_head_kv = (int32_t)hp->n_head_kv, d->head_dim = (int32_t)hp->head_dim, d->n_ff = (int32_t)hp->n_ff;
    d->n_vocab = (int32_t)hp->n_vocab, d->n_ctx_train = (int32_t)hp->n_ctx_train, d->n_batch = (int32_t)hp->n_batch;
    /* bytes the runtime reserves per cached value: a Q8_0 row (34 bytes per
     * 32 values) fits in an f16 row's room, which the runtime allocates for
     * it (it knows only 2 and 4) */
    d->kv_elem_bytes = hp->kv_type == KG_TYPE_F32 ? 4 : hp->kv_type == KG_TYPE_Q8_0 ? 1 : 2;
    d->n_kv_tensors = hp->encoder ? 0 : (int32_t)(2 * hp->n_layer);
    d->encoder = hp->encoder, d->n_seq = (int32_t)hp->n_seq, d->max_len = (int32_t)hp->max_len, d->pool = (int32_t)hp->pool;
    if (o->weights_file) snprintf(d->weights_file, sizeof d->weights_file, "%s", o->weights_file);
    /* the content hash: weights, tokenizer and every field above */
    kg_keytext *kt;
    kg_key key;
    kg_status st = kg_keytext_new(&kt);
    if (!st) st = kg_keytext_str(kt, "weights", whash);
    if (!st) st = kg_keytext_blob(kt, "tokenizer", tok, ntok);
    if (!st) st = kg_keytext_blob(kt, "desc", d, sizeof *d);
    /* the cache type, which the descriptor does not tell apart (f16, the
     * default, adds nothing: those hashes stay as they were) */
    if (!st && hp->kv_type != KG_TYPE_F16) st = kg_keytext_i64(kt, "kv_type", hp->kv_type);
    if (!st) st = kg_keytext_finish(kt, &key);
    kg_keytext_free(kt);
    if (!st) kg_key_hex(key, d->content_hash);
    return st;
}

/* data.S (in dir): the descriptor, tokenizer and CUDA blobs, the weights
 * (objects only), and the kgen note (include/kgen_check.h) from note.bin.
 * The .incbin paths are absolute: the assembler looks for a relative one in
 * the current directory first, where a stray tok.bin would be taken. */
static kg_status write_data_s(const char *dir, bool with_weights)
{
    char path[PATH_MAX + 16], d[2 * PATH_MAX + 1];
    size_t n = 0;
    for (const char *c = dir; *c && n + 2 < sizeof d; c++) { /* a string of GNU as: \ and " escaped */
        if (*c == '"' || *c == '\\') d[n++] = '\\';
        d[n++] = *c;
    }
    d[n] = 0;
    snprintf(path, sizeof path, "%s/data.S", dir);
    FILE *f = fopen(path, "w");
    if (!f) return kg_err(KG_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "/* generated by kgen: the model's data (runtime/model/desc.h) */\n"
               "#define SYM(s) .globl s; .hidden s; s:\n"
               ".section .rodata.kgm, \"a\"\n.balign 64\nSYM(kgm_desc_data)\n.incbin \"%s/desc.bin\"\n"
               ".balign 64\nSYM(kgm_tok_blob)\n.incbin \"%s/tok.bin\"\nSYM(kgm_tok_blob_end)\n.byte 0\n"
               ".balign 256\nSYM(kgm_cuda_blob)\n.incbin \"%s/cuda.bin\"\nSYM(kgm_cuda_blob_end)\n.byte 0\n"
               ".section .rodata.kgm_weights, \"a\"\n.balign 4096\nSYM(kgm_weights)\n%s%s%s\nSYM(kgm_weights_end)\n.byte 0\n"
               ".section .note.kgen, \"a\", @note\n.balign 4\n.long 5, %zu, %d\n.asciz \"kgen\"\n.balign 4\n"
               ".incbin \"%s/note.bin\"\n.balign 4\n"
               ".section .note.GNU-stack, \"\", @progbits\n",
            d, d, d, with_weights ? ".incbin \"" : "", with_weights ? d : "", with_weights ? "/weights.bin\"" : "",
            sizeof(kgm_note), KGM_NOTE_MODEL, d);
    return fclose(f) == 0 ? KG_OK : kg_err(KG_ERR_IO, "%s: write failed", path);
}

static void progress(const gen_model_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const gen_model_opts *o, const char *fmt, ...)
{
    if (!o->progress) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kgen: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *gen_nofuse_env(void)
{
    const char *e = getenv("KGEN_NOFUSE");
    return e ? e : "";
}

int gen_kv_type(const char *kv)
{
    if (!kv || !strcmp(kv, "f16")) return KG_TYPE_F16;
    if (!strcmp(kv, "q8")) return KG_TYPE_Q8_0;
    if (!strcmp(kv, "f32")) return KG_TYPE_F32;
    return -1;
}

/* The KV cache's type (kv: gen_model_opts' name) into the graph's
 * hyperparameters, which lowering binds as every cache kernel's
 * cache_type; refused where the model cannot have it. */
static kg_status set_kv_type(const gen_source *src, const char *kv, gen_graph *gr)
{
    const int type = gen_kv_type(kv);
    if (type < 0) return kg_err(KG_ERR_ARG, "%s: --kv %s: unknown KV cache type (known: " GEN_KV_NAMES ")", src->name, kv);
    if (type == KG_TYPE_F16) return KG_OK;
    if (gr->hp.encoder)
        return kg_err(KG_ERR_ARG, "%s: --kv %s: an encoder has no KV cache", src->name, kv);
    if (type == KG_TYPE_Q8_0 && gr->hp.head_dim % 32)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: --kv q8: head_dim %lld is not a multiple of 32 (the cache's Q8_0 "
                      "blocks hold 32 values of one head)", src->name, (long long)gr->hp.head_dim);
    gr->hp.kv_type = type;
    return KG_OK;
}

/* gen_model_plan with the KV cache's type (gen_model_opts' kv) */
static kg_status model_plan(const gen_source *src, int n_batch, int max_len, const char *nofuse, const char *kv,
                            const gen_knobs *knobs, gen_graph *gr, gen_program *pg)
{
    const bool dbg = debug_on();
    kg_status st = gen_arch_is_encoder(src) ? gen_arch_build_encoder(src, n_batch, max_len, gr)
                                            : gen_arch_build(src, n_batch > 0 ? n_batch : 128, gr);
    if (!st) st = set_kv_type(src, kv, gr);
    if (!st && dbg) gen_graph_print(gr, "arch", stderr);
    if (!st) st = gen_pass_fuse(gr, nofuse);
    if (!st && dbg) gen_graph_print(gr, "fuse", stderr);
    if (!st)
        gr->layout = knobs->layout, gr->amx = knobs->amx == 1, gr->amx_bf16 = knobs->amx_bf16 == 1,
        gr->ftile_bf16 = knobs->ftile == 1, gr->prefetch = knobs->prefetch > 0 ? knobs->prefetch : 0,
        gr->mtile = knobs->mtile > 0 ? knobs->mtile : 4, gr->mtile_q = knobs->mtile_q > 0 ? knobs->mtile_q : 4;
    if (!st) st = gen_pass_repack(gr);
    if (!st && dbg) gen_graph_print(gr, "repack", stderr);
    if (!st) st = gen_pass_memplan(gr);
    if (!st && dbg) gen_graph_print(gr, "memplan", stderr);
    if (!st) st = gen_lower(gr, pg);
    if (!st && dbg)
        for (int mode = 0; mode < GEN_MODES; mode++) {
            int nb = 0;
            for (int c = 0; c + 1 < pg->nc[mode]; c++) nb += pg->c[mode][c].sync;
            fprintf(stderr, "── lowered (%s): %d kernel calls, %d barriers ──\n", mode == GEN_MODE_PREFILL ? "prefill" : "decode",
                    pg->nc[mode], nb);
        }
    return st;
}

kg_status gen_model_plan(const gen_source *src, int n_batch, int max_len, const char *nofuse, const gen_knobs *knobs,
                         gen_graph *gr, gen_program *pg)
{
    return model_plan(src, n_batch, max_len, nofuse, NULL, knobs, gr, pg);
}

kg_status gen_tuning_for_model(const char *path, const gen_model_opts *o, const gen_target *t, gen_tuning *tu)
{
    int usable = 0;
    for (int i = 0; i < tu->n; i++) usable += tu->r[i].nknob > 0 && gen_tune_rec_matches(&tu->r[i], t);
    if (!usable) return KG_OK; /* nothing to plan for */
    gen_source *src = NULL;
    gen_graph gr = {0};
    gen_program pg = {0};
    gen_knobs kn;
    gen_tuning keys = {0}, out = {0};
    kg_status st = gen_knobs_parse(o->knobs ? o->knobs : gen_knobs_env(), &kn);
    if (!st) gen_knobs_resolve(&kn, t->isa, false);
    if (!st) st = gen_source_open_quant(path, o->quant, o->requant, false, &src);
    if (!st) st = model_plan(src, o->n_batch, o->max_len, o->nofuse ? o->nofuse : gen_nofuse_env(), o->kv, &kn, &gr, &pg);
    for (int k = 0; !st && k < pg.nk; k++) { /* the plan's instance keys, as records of t to look up */
        gen_tune_rec r = {0};
        gen_inst_key(&pg.k[k], r.inst, sizeof r.inst);
        gen_tune_rec_target(&r, t);
        st = gen_tuning_add(&keys, &r);
    }
    gen_tuning_sort(&keys);
    for (int i = 0; !st && i < tu->n; i++)
        if (tu->r[i].nknob > 0 && gen_tune_rec_matches(&tu->r[i], t) && gen_tuning_has_key(&keys, &tu->r[i]))
            st = gen_tuning_add(&out, &tu->r[i]);
    if (!st) {
        gen_tuning_free(tu);
        *tu = out;
        memset(&out, 0, sizeof out);
    }
    gen_tuning_free(&out);
    gen_tuning_free(&keys);
    gen_program_free(&pg);
    gen_graph_free(&gr);
    gen_source_close(src);
    return st;
}

/* An output that is one of the inputs would destroy it: refused. */
static kg_status refuse_overwrite(const char *in, const char *out)
{
    if (gen_same_file(in, out))
        return kg_err(KG_ERR_ARG, "%s: the output is the input model %s (the same file): refusing to overwrite it", out, in);
    return KG_OK;
}

/* The object's ABI header: OUT with its extension replaced by .h */
static void header_path(const char *out, char *h, size_t cap)
{
    snprintf(h, cap, "%s", out);
    char *dot = strrchr(h, '.'), *sl = strrchr(h, '/');
    if (dot && (!sl || dot > sl)) *dot = 0;
    if (strlen(h) + 3 <= cap) strcat(h, ".h");
}

static kg_status write_fd(gen_tmpout *t, const void *data, size_t n)
{
    for (size_t o = 0; o < n;) {
        ssize_t w = write(t->fd, (const char *)data + o, n - o);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return kg_err(KG_ERR_IO, "%s: write failed: %s", t->final, strerror(errno));
        o += (size_t)w;
    }
    return KG_OK;
}

/* The link: cc joins the shards, the runtime and data.S (in dir) into dir/linked. */
static kg_status link_model(const char *dir, void *const objs[], bool obj, const char *out_path)
{
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    static char files[GEN_MAX_SHARDS + 4][PATH_MAX + 64];
    char *argv[GEN_MAX_SHARDS + 16];
    int n = 0, nf = 0;
    argv[n++] = (char *)cc;
    if (obj) argv[n++] = "-r", argv[n++] = "-nostdlib";
    else argv[n++] = "-shared", argv[n++] = "-Wl,-z,noexecstack";
    argv[n++] = "-o";
    snprintf(files[nf], sizeof files[nf], "%s/linked", dir);
    argv[n++] = files[nf++];
    for (int i = 0; i < GEN_MAX_SHARDS && objs[i]; i++, nf++) {
        snprintf(files[nf], sizeof files[nf], "%s/model%d.o", dir, i);
        argv[n++] = files[nf];
    }
    snprintf(files[nf], sizeof files[nf], "%s/rt.o", dir);
    argv[n++] = files[nf++];
    snprintf(files[nf], sizeof files[nf], "%s/data.S", dir);
    argv[n++] = files[nf++];
    if (!obj) argv[n++] = "-lm", argv[n++] = "-lpthread";
    argv[n] = NULL;
    return gen_run_cc(argv, out_path);
}

/* the tuning records for target t (o->tuning_set, else o->tuning resolved:
 * gen_tuning_resolve) bound to pg's instances */
static kg_status apply_tuning(const gen_model_opts *o, const gen_target *t, gen_program *pg)
{
    gen_tuning own = {0};
    char what[PATH_MAX + 32] = "the records read before the cache lookup";
    int applied = 0, usable = 0;
    kg_status st = o->tuning_set ? KG_OK : gen_tuning_resolve(o->tuning, &own, what, sizeof what);
    const gen_tuning *tu = o->tuning_set ? o->tuning_set : &own;
    if (!st) st = gen_tuning_apply(tu, t, pg, &applied, NULL);
    for (int i = 0; !st && i < tu->n; i++) usable += gen_tune_rec_matches(&tu->r[i], t);
    if (!st && (usable || o->tuning))
        progress(o, "tuning: %s: %d of its %d records are for this target (%s); %d kernel instances take their knobs",
                 what, usable, tu->n, t->cpu, applied);
    gen_tuning_free(&own);
    return st;
}

kg_status gen_model_compile(const char *gguf_path, const char *out_path, const gen_model_opts *o, gen_model_report *r)
{
    double t0 = gen_now_s(), t1;
    memset(r, 0, sizeof *r);
    gen_source *src = NULL;
    gen_graph gr = {0};
    gen_program pg = {0};
    gen_target t;
    void *objs[GEN_MAX_SHARDS] = {0}, *tok = NULL;
    size_t sizes[GEN_MAX_SHARDS] = {0}, nobj = 0, ntok = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int shards = o->jobs > 0 ? o->jobs : (int)(ncpu < 1 ? 1 : ncpu > GEN_MAX_SHARDS ? GEN_MAX_SHARDS : ncpu);
    char p[PATH_MAX + 32], whash[33] = "", note_s[256] = "", hpath[PATH_MAX + 8] = "";
    int sm = 0;
    gen_cuda_result cr = {0};
    void *cblob = NULL;
    size_t ncblob = 0;
    /* the outputs, as locked temporaries renamed into place at the end: the
     * model (OUT), its weights (--external-weights) or its header (--emit obj) */
    gen_tmpout t_out = {0}, t_w = {0}, t_h = {0};
    gen_tmpdir work = {0};
    if (o->emit_obj) header_path(out_path, hpath, sizeof hpath);
    kg_status st = refuse_overwrite(gguf_path, out_path);
    if (!st && o->weights_file) st = refuse_overwrite(gguf_path, o->weights_path);
    if (!st && hpath[0]) st = refuse_overwrite(gguf_path, hpath);
    if (!st) st = o->cpu ? gen_target_parse(o->cpu, &t) : gen_target_host(&t);
    if (!st && o->cuda && gen_kv_type(o->kv) == KG_TYPE_Q8_0)
        st = kg_err(KG_ERR_UNSUPPORTED, "%s: --kv q8: the CUDA backend has an f16 or f32 KV cache only (q8 is the "
                    "CPU's)", gguf_path);
    if (!st && o->cuda) st = gen_cuda_target(o->cuda, &sm, note_s, sizeof note_s);
    if (!st && note_s[0]) progress(o, "%s", note_s);
    if (!st) st = gen_source_open_quant(gguf_path, o->quant, o->requant, o->progress, &src);
    /* fail before the work if the outputs cannot be written */
    if (!st) st = gen_tmpout_make(out_path, o->emit_obj ? 0644 : 0755, &t_out);
    if (!st && o->weights_file) st = gen_tmpout_make(o->weights_path, 0644, &t_w);
    if (!st && hpath[0]) st = gen_tmpout_make(hpath, 0644, &t_h);
    gen_knobs kn;
    if (!st) st = gen_knobs_parse(o->knobs ? o->knobs : gen_knobs_env(), &kn);
    if (!st) gen_knobs_resolve(&kn, t.isa, sm != 0);
    if (!st) st = model_plan(src, o->n_batch, o->max_len, o->nofuse ? o->nofuse : gen_nofuse_env(), o->kv, &kn, &gr, &pg);
    if (!st && sm && o->tuning && strcmp(o->tuning, "none"))
        st = kg_err(KG_ERR_UNSUPPORTED, "%s: --tuning: tuning records are the CPU's; a CUDA target has none yet", gguf_path);
    if (!st && !sm) st = apply_tuning(o, &t, &pg);
    if (!st && sm && gr.hp.encoder)
        st = kg_err(KG_ERR_UNSUPPORTED, "%s: encoders run on the CPU for now (the CUDA backend has their kernels, not "
                    "yet their runtime)", gguf_path);
    if (!st) st = src->vt->tokdata(src, o->chat_template, &tok, &ntok);
    if (!st) { /* what kgm_open checks, checked before the work: a model kgen writes can open */
        kgm_desc pre;
        char why[512];
        st = fill_desc(&gr, &t, sm, o, "", tok, ntok, &pre);
        if (!st && kgr_model_check(&pre, tok, ntok, NULL, why, sizeof why))
            st = kg_err(KG_ERR_FORMAT, "%s: the compiled model could not open: %s", gguf_path, why);
    }
    if (!st) {
        r->n_nodes = gr.nn;
        r->n_instances = pg.nk;
        r->weight_bytes = gr.weight_bytes;
        r->ws_bytes = gr.ws_bytes;
        if (sm) snprintf(r->cpu, sizeof r->cpu, "cuda:sm_%d", sm);
        else snprintf(r->cpu, sizeof r->cpu, "%s", t.cpu);
        progress(o, "%s: %s, %lld layers, %d ops after fusion, %d kernel instances, weights %.1f MiB, target %s",
                 gguf_path, gr.hp.arch, (long long)gr.hp.n_layer, gr.nn, pg.nk, gr.weight_bytes / 1048576.0, r->cpu);
        r->graph_s = gen_now_s() - t0;
    }
    /* the code */
    t1 = gen_now_s();
    if (!st && sm) {
        st = gen_cuda_compile(&pg, sm, true, &cr);
        if (!st) st = gen_cuda_blob(&pg, &cr, &cblob, &ncblob);
        nobj = cr.ncubin;
        int maxr = 0, spills = 0;
        for (int i = 0; i < cr.n; i++) maxr = cr.k[i].regs > maxr ? cr.k[i].regs : maxr, spills += cr.k[i].spill_bytes > 0;
        if (!st)
            progress(o, "CUDA kernels for sm_%d %s in %.2f s (NVRTC %s; cubin %zu KiB, PTX %zu KiB; up to %d registers, %d spilling)",
                     sm, cr.hit ? "from the cache" : "compiled", cr.seconds, cr.nvrtc_version, cr.ncubin / 1024,
                     cr.nptx / 1024, maxr, spills);
    } else if (!st) {
        st = gen_program_compile(&pg, &t, shards, objs, sizes);
    }
    for (int i = 0; i < GEN_MAX_SHARDS; i++) nobj += sizes[i];
    r->codegen_s = gen_now_s() - t1;
    r->code_bytes = nobj;
    if (!st && !sm) progress(o, "code generated in %.2f s (%zu KiB of object code)", r->codegen_s, nobj / 1024);
    /* the files for the link, in a locked work directory */
    t1 = gen_now_s();
    if (!st) st = gen_tmpdir_make("model", &work);
    for (int i = 0; i < GEN_MAX_SHARDS && !st && objs[i]; i++)
        snprintf(p, sizeof p, "%s/model%d.o", work.path, i), st = write_file(p, objs[i], sizes[i]);
    if (!st) snprintf(p, sizeof p, "%s/rt.o", work.path), st = write_file(p, kgen_bc_rt, (size_t)(kgen_bc_rt_end - kgen_bc_rt));
    if (!st) snprintf(p, sizeof p, "%s/tok.bin", work.path), st = write_file(p, tok, ntok);
    if (!st) snprintf(p, sizeof p, "%s/cuda.bin", work.path), st = write_file(p, cblob, ncblob);
    /* weights: external, into their own temporary; in an object, assembled
     * from a file in the work directory; in a shared object, appended after
     * the link (only their hash is needed now) */
    const bool append = !o->weights_file && !o->emit_obj;
    if (!st && append) {
        st = gen_repack_write(&gr, NULL, NULL, whash);
    } else if (!st) {
        FILE *f = NULL;
        const char *wname = o->weights_file ? o->weights_path : p;
        if (!o->weights_file) snprintf(p, sizeof p, "%s/weights.bin", work.path), f = fopen(p, "wb");
        else f = fdopen(dup(t_w.fd), "wb");
        if (!f) st = kg_err(KG_ERR_IO, "%s: cannot create: %s", wname, strerror(errno));
        if (!st) st = gen_repack_write(&gr, f, wname, whash);
        if (f && fclose(f) && !st) st = kg_err(KG_ERR_IO, "%s: write failed: %s", wname, strerror(errno));
    }
    kgm_desc d;
    if (!st) st = fill_desc(&gr, &t, sm, o, whash, tok, ntok, &d);
    if (!st) {
        snprintf(r->content_hash, sizeof r->content_hash, "%s", d.content_hash);
        snprintf(p, sizeof p, "%s/desc.bin", work.path), st = write_file(p, &d, sizeof d);
    }
    if (!st) {
        kgm_note note = {.note_version = KGM_NOTE_VERSION, .abi_version = KGM_ABI_VERSION,
                         .weights_where = o->weights_file ? KGM_WEIGHTS_EXTERNAL
                                          : append         ? KGM_WEIGHTS_APPENDED
                                                           : KGM_WEIGHTS_IN_IMAGE,
                         .weight_bytes = gr.weight_bytes};
        if (o->weights_file) snprintf(note.weights_file, sizeof note.weights_file, "%s", o->weights_file);
        snprintf(p, sizeof p, "%s/note.bin", work.path), st = write_file(p, &note, sizeof note);
    }
    if (!st) st = write_data_s(work.path, o->emit_obj && !o->weights_file);
    r->pack_s = gen_now_s() - t1;
    t1 = gen_now_s();
    if (!st) st = link_model(work.path, objs, o->emit_obj, out_path);
    snprintf(p, sizeof p, "%s/linked", work.path);
    if (!st && append) st = write_so(&gr, p, &t_out, &d, whash);
    else if (!st) st = gen_tmpout_copy(&t_out, p);
    if (!st && hpath[0]) st = write_fd(&t_h, kgen_bc_model_h, (size_t)(kgen_bc_model_h_end - kgen_bc_model_h));
    /* into place: the weights and the header before the model that needs them */
    if (!st && o->weights_file) st = gen_tmpout_commit(&t_w);
    if (!st && hpath[0]) st = gen_tmpout_commit(&t_h);
    if (!st) st = gen_tmpout_commit(&t_out);
    gen_tmpout_abort(&t_out);
    gen_tmpout_abort(&t_w);
    gen_tmpout_abort(&t_h);
    r->link_s = gen_now_s() - t1;
    r->total_s = gen_now_s() - t0;
    gen_tmpdir_remove(&work);
    for (int i = 0; i < GEN_MAX_SHARDS; i++) free(objs[i]);
    free(tok);
    free(cblob);
    gen_cuda_result_free(&cr);
    gen_program_free(&pg);
    gen_graph_free(&gr);
    gen_source_close(src);
    return st;
}
