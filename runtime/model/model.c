/*
 * model.c — the kgm_* ABI of a compiled model (include/kgen_model.h): open
 * (checks, then every allocation the model will ever make), prefill and
 * decode through the generated entry points on the thread pool, and the
 * tokenizer and sampler. Only linked into compiled models: it refers to the
 * symbols `kgen compile` generates (runtime/model/desc.h).
 */
#include "desc.h"
#include "rt.h"

#include <cpuid.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define KGM_EXPORT __attribute__((visibility("default")))

extern const kgm_desc kgm_desc_data;
extern const unsigned char kgm_tok_blob[], kgm_tok_blob_end[];
extern const unsigned char kgm_weights[], kgm_weights_end[];
extern const unsigned char kgm_cuda_blob[], kgm_cuda_blob_end[];
typedef void (*entry_fn)(void *const *base, void *pool, int ith, int nth);
/* weak: a CUDA model has none */
void kgm_gen_decode(void *const *base, void *pool, int ith, int nth) __attribute__((weak));
void kgm_gen_prefill(void *const *base, void *pool, int ith, int nth) __attribute__((weak));

struct kgm_model {
    const kgm_desc *d;
    const unsigned char *weights;
    void *wmap;           /* external weights: the mapping */
    size_t wmap_size;
    unsigned char *ws;
    unsigned char *kv;
    size_t kv_size;
    int64_t rt[KGM_RT_COUNT];
    void *base[KGM_BASES];
    entry_fn entry;
    kgr_pool *pool;
    kgr_tok *tok;
    kgr_sampler *smp;
    kgr_cuda *gpu;        /* CUDA models */
    int32_t *scratch;     /* encoders: one sequence's tokens (max_len)            */
    int32_t sep;          /* encoders: the token that ends a sequence ([SEP]), or -1 */
    int n_ctx, n_threads;
    char err[512];
};

/* ───────────── CPU features (cpuid), against the kernels' needs ───────────── */

static uint64_t cpu_has(void)
{
    unsigned a, b, c, d, a7 = 0, b7 = 0, c7 = 0, d7 = 0, a71 = 0, b71, c71, d71;
    uint64_t m = 0, xcr0 = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (c & (1u << 27)) { /* OSXSAVE: the OS saves the vector state we may use */
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    }
    bool avx_os = (xcr0 & 6) == 6, avx512_os = (xcr0 & 0xe6) == 0xe6;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a7, b7, c7, d7);
        __cpuid_count(7, 1, a71, b71, c71, d71);
    }
    (void)d7, (void)b71, (void)c71, (void)d71;
    if (c & (1u << 20)) m |= 1ull << KGM_CPU_SSE42;
    if (c & (1u << 23)) m |= 1ull << KGM_CPU_POPCNT;
    if (avx_os) {
        if (c & (1u << 28)) m |= 1ull << KGM_CPU_AVX;
        if (c & (1u << 12)) m |= 1ull << KGM_CPU_FMA;
        if (c & (1u << 29)) m |= 1ull << KGM_CPU_F16C;
        if (b7 & (1u << 5)) m |= 1ull << KGM_CPU_AVX2;
        if (a71 & (1u << 4)) m |= 1ull << KGM_CPU_AVXVNNI;
    }
    if (b7 & (1u << 8)) m |= 1ull << KGM_CPU_BMI2;
    if (avx512_os) {
        if (b7 & (1u << 16)) m |= 1ull << KGM_CPU_AVX512F;
        if (b7 & (1u << 17)) m |= 1ull << KGM_CPU_AVX512DQ;
        if (b7 & (1u << 30)) m |= 1ull << KGM_CPU_AVX512BW;
        if (b7 & (1u << 31)) m |= 1ull << KGM_CPU_AVX512VL;
        if (c7 & (1u << 11)) m |= 1ull << KGM_CPU_AVX512VNNI;
    }
    return m;
}

static int check_cpu(const kgm_desc *d, char *err, size_t cap)
{
    static const char *const names[] = {
#define KGM_X(id, name) name,
        KGM_CPU_FEATURES(KGM_X)
#undef KGM_X
    };
    uint64_t missing = d->cpu_features & ~cpu_has();
    if (!missing) return 0;
    char list[256] = "";
    for (int i = 0; i < KGM_CPU_COUNT; i++)
        if (missing & (1ull << i)) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", names[i]);
        }
    return kgr_msg(err, cap,
                   "this model was compiled for CPU '%.63s', whose features this machine lacks: %s "
                   "(recompile it here, or with --cpu for this machine)",
                   d->target_cpu, list);
}

/* ───────────── external weights ───────────── */

/* The directory this model was loaded from, or "." */
static int own_path(char *out, size_t cap, char *err, size_t errcap)
{
    Dl_info info;
    if (!dladdr(&kgm_desc_data, &info) || !info.dli_fname || !info.dli_fname[0])
        return kgr_msg(err, errcap, "cannot find the file this model was loaded from");
    snprintf(out, cap, "%s", info.dli_fname);
    return 0;
}

/* Maps `size` bytes at `offset` of `path` read-only; with `hash`, checks
 * that the file holds exactly them (size) and their XXH3-128. */
static int map_weights(kgm_model *m, const char *path, uint64_t offset, const char *hash, char *err, size_t cap)
{
    const kgm_desc *d = m->d;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kgr_msg(err, cap, "%s: cannot open the model's weights: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return kgr_msg(err, cap, "%s: not a regular file", path);
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    if (hash ? fsize != d->weight_bytes : fsize < offset || fsize - offset < d->weight_bytes) {
        close(fd);
        if (hash)
            return kgr_msg(err, cap, "%s: %llu bytes, but this model's weights are %llu bytes: not its weights file", path,
                           (unsigned long long)fsize, (unsigned long long)d->weight_bytes);
        return kgr_msg(err, cap,
                       "%s: the weights that follow the code in this file are missing or cut short (%llu of %llu "
                       "bytes; was the file stripped or truncated?)",
                       path, (unsigned long long)(fsize > offset ? fsize - offset : 0), (unsigned long long)d->weight_bytes);
    }
    size_t len = (size_t)d->weight_bytes ? (size_t)d->weight_bytes : 1;
    void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, (off_t)offset);
    close(fd);
    if (p == MAP_FAILED) return kgr_msg(err, cap, "%s: mmap failed: %s", path, strerror(errno));
    m->wmap = p;
    m->wmap_size = len;
    m->weights = p;
    if (!hash) return 0;
    XXH128_hash_t h = XXH3_128bits(p, (size_t)d->weight_bytes);
    char hex[33];
    snprintf(hex, sizeof hex, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
    if (strcmp(hex, hash) != 0)
        return kgr_msg(err, cap, "%s: content hash %s does not match the model's weights (%s): not its weights file", path,
                       hex, hash);
    return 0;
}

static int find_weights(kgm_model *m, const char *path_arg, char *err, size_t cap)
{
    const kgm_desc *d = m->d;
    char self[PATH_MAX], path[PATH_MAX + 256];
    if (d->weights_file[0]) { /* external: the given file, or the named one beside the model */
        if (path_arg) return map_weights(m, path_arg, 0, d->weights_hash, err, cap);
        if (own_path(self, sizeof self, err, cap)) return -1;
        char *slash = strrchr(self, '/');
        if (slash) slash[1] = 0;
        snprintf(path, sizeof path, "%s%s", slash ? self : "", d->weights_file);
        return map_weights(m, path, 0, d->weights_hash, err, cap);
    }
    if (d->weights_offset) { /* after the ELF image of this very file */
        if (own_path(self, sizeof self, err, cap)) return -1;
        return map_weights(m, self, d->weights_offset, NULL, err, cap);
    }
    if ((uint64_t)(kgm_weights_end - kgm_weights) < d->weight_bytes)
        return kgr_msg(err, cap, "the model's embedded weights are truncated");
    m->weights = kgm_weights;
    return 0;
}

/* ───────────── open / close ───────────── */

/* What kgr_model_check cannot know: this machine, this build, the caller. */
static int check_here(const kgm_desc *d, const kgm_open_params *p, char *err, size_t cap)
{
    if (d->backend == KGM_BACKEND_CPU && (!kgm_gen_decode || !kgm_gen_prefill))
        return kgr_msg(err, cap, "the model's code is missing");
    if (d->backend == KGM_BACKEND_CPU && check_cpu(d, err, cap)) return -1;
    if (p->n_threads < 0 || p->n_threads > 256)
        return kgr_msg(err, cap, "bad parameter: n_threads %d (0: all CPUs; at most 256)", p->n_threads);
    if (p->n_ctx < 0 || p->n_ctx > d->n_ctx_train)
        return kgr_msg(err, cap, "bad parameter: n_ctx %d (0: min(4096, %d); at most %d, the model's training context)",
                       p->n_ctx, d->n_ctx_train, d->n_ctx_train);
    return 0;
}

KGM_EXPORT void kgm_close(kgm_model *m)
{
    if (!m) return;
    kgr_pool_free(m->pool);
    kgr_cuda_free(m->gpu);
    kgr_tok_free(m->tok);
    kgr_sampler_free(m->smp);
    if (m->wmap) munmap(m->wmap, m->wmap_size);
    if (m->kv) munmap(m->kv, m->kv_size);
    free(m->ws);
    free(m->scratch);
    free(m);
}

KGM_EXPORT kgm_model *kgm_open(const kgm_open_params *params, char *err, size_t cap)
{
    kgm_open_params dp = {0};
    const kgm_open_params *p = params ? params : &dp;
    const kgm_desc *d = &kgm_desc_data;
    if (err && cap) err[0] = 0;
    kgr_tok *tok = NULL;
    if (kgr_model_check(d, kgm_tok_blob, (size_t)(kgm_tok_blob_end - kgm_tok_blob), &tok, err, cap)) return NULL;
    const bool cuda = d->backend == KGM_BACKEND_CUDA;
    if (check_here(d, p, err, cap)) {
        kgr_tok_free(tok);
        return NULL;
    }
    kgm_model *m = calloc(1, sizeof *m);
    if (!m) {
        kgr_msg(err, cap, "out of memory");
        kgr_tok_free(tok);
        return NULL;
    }
    m->d = d;
    m->tok = tok;
    m->n_ctx = d->encoder ? d->max_len : p->n_ctx ? p->n_ctx : (d->n_ctx_train < 4096 ? d->n_ctx_train : 4096);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    m->n_threads = p->n_threads ? p->n_threads : (int)(ncpu < 1 ? 1 : ncpu > 64 ? 64 : ncpu);
    int rc = find_weights(m, p->weights_path, err, cap);
    if (!rc && cuda) {
        m->n_threads = 1;
        m->ws = aligned_alloc(64, (d->ws_bytes + 63) / 64 * 64); /* host side: ids and positions only */
        rc = m->ws ? kgr_cuda_open(&m->gpu, d, kgm_cuda_blob, (size_t)(kgm_cuda_blob_end - kgm_cuda_blob), m->weights,
                                   m->n_ctx, err, cap)
                   : kgr_msg(err, cap, "out of memory");
        m->rt[KGM_RT_NCTX] = m->n_ctx;
    } else if (!rc && d->encoder) {
        m->ws = aligned_alloc(64, (d->ws_bytes + 63) / 64 * 64);
        m->scratch = malloc((size_t)d->max_len * sizeof *m->scratch);
        if (!m->ws || !m->scratch)
            rc = kgr_msg(err, cap, "out of memory for the workspace (%llu bytes)", (unsigned long long)d->ws_bytes);
        /* what ends a sequence: [CLS] [SEP] is the encoding of "" */
        int32_t two[2];
        m->sep = !rc && kgr_tokenize(tok, "", 0, KGM_TOK_BOS, two, 2) == 2 ? two[1] : -1;
    } else if (!rc) {
        m->ws = aligned_alloc(64, (d->ws_bytes + 63) / 64 * 64);
        uint64_t per = (uint64_t)d->n_head_kv * (uint64_t)m->n_ctx * kgr_kv_row_bytes(d);
        per = (per + 63) / 64 * 64;
        m->kv_size = (size_t)(per * (uint64_t)d->n_kv_tensors);
        /* anonymous pages: zero, and resident only once written */
        m->kv = mmap(NULL, m->kv_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m->kv == MAP_FAILED) m->kv = NULL;
        if (!m->ws || !m->kv)
            rc = kgr_msg(err, cap, "out of memory for the workspace (%llu bytes) and KV cache (%zu bytes)",
                         (unsigned long long)d->ws_bytes, m->kv_size);
        m->rt[KGM_RT_NCTX] = m->n_ctx;
        m->rt[KGM_RT_KVBYTES] = (int64_t)per;
    }
    if (!rc && !cuda) { /* AMX: the prefill products fall back to AVX-512 where Linux refuses it */
        char why[160];
        m->rt[KGM_RT_AMX] = kgr_amx_enable(why, sizeof why);
        if (!m->rt[KGM_RT_AMX] && strstr(why, "refused")) fprintf(stderr, "kgen model: %s; prefill uses AVX-512\n", why);
    }
    if (!rc) rc = kgr_sampler_init(&m->smp, d->n_vocab, err, cap);
    if (!rc && !cuda) rc = kgr_pool_init(&m->pool, m->n_threads, err, cap);
    if (rc) {
        kgm_close(m);
        return NULL;
    }
    m->base[KGM_BASE_W] = (void *)m->weights;
    m->base[KGM_BASE_WS] = m->ws;
    m->base[KGM_BASE_KV] = m->kv;
    m->base[KGM_BASE_RT] = m->rt;
    return m;
}

KGM_EXPORT const char *kgm_error(const kgm_model *m) { return m ? m->err : "no model"; }

KGM_EXPORT void kgm_describe(const kgm_model *m, kgm_info *o)
{
    const kgm_desc *d = m->d;
    memset(o, 0, sizeof *o);
    o->abi_version = KGM_ABI_VERSION;
    o->arch = d->arch, o->name = d->name, o->weight_type = d->weight_type, o->target_cpu = d->target_cpu;
    o->content_hash = d->content_hash;
    o->n_layer = d->n_layer, o->n_embd = d->n_embd, o->n_head = d->n_head, o->n_head_kv = d->n_head_kv;
    o->head_dim = d->head_dim, o->n_ff = d->n_ff, o->n_vocab = d->n_vocab, o->n_ctx_train = d->n_ctx_train;
    o->n_ctx = m->n_ctx, o->n_batch = d->encoder ? d->n_seq : d->n_batch, o->n_threads = m->n_threads;
    o->bos = kgr_tok_bos(m->tok), o->eos = kgr_tok_eos(m->tok);
    o->has_chat_template = kgr_has_chat(m->tok);
    o->weight_bytes = d->weight_bytes, o->kv_bytes = m->kv_size, o->workspace_bytes = d->ws_bytes;
}

/* ───────────── running ───────────── */

static void step(void *arg, int ith, int nth)
{
    kgm_model *m = arg;
    m->entry(m->base, m->pool, ith, nth);
}

static const float *run(kgm_model *m, const int32_t *tokens, int n, int pos, bool decode)
{
    const kgm_desc *d = m->d;
    m->err[0] = 0;
    if (n < 1 || pos < 0 || (int64_t)pos + n > m->n_ctx) {
        kgr_msg(m->err, sizeof m->err, "%d tokens at position %d do not fit the context of %d tokens", n, pos, m->n_ctx);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= d->n_vocab) {
            kgr_msg(m->err, sizeof m->err, "token %d (id %d) is outside the vocabulary (0..%d)", i, tokens[i],
                    d->n_vocab - 1);
            return NULL;
        }
    int32_t *ids = (int32_t *)(m->ws + d->ws_ids), *ps = (int32_t *)(m->ws + d->ws_pos);
    for (int done = 0; done < n;) {
        int k = n - done < d->n_batch ? n - done : d->n_batch;
        for (int i = 0; i < k; i++) ids[i] = tokens[done + i], ps[i] = pos + done + i;
        m->rt[KGM_RT_M] = k;
        m->rt[KGM_RT_POS0] = pos + done;
        m->rt[KGM_RT_NKV] = pos + done + k;
        done += k;
        if (m->gpu) {
            const float *lg = kgr_cuda_step(m->gpu, ids, ps, k, m->rt, decode || k == 1, m->err, sizeof m->err);
            if (!lg || done == n) return lg;
            continue;
        }
        m->entry = (decode || k == 1) ? kgm_gen_decode : kgm_gen_prefill;
        kgr_pool_run(m->pool, step, m);
    }
    return (const float *)(m->ws + d->ws_logits);
}

KGM_EXPORT const float *kgm_prefill(kgm_model *m, const int32_t *tokens, int n, int pos)
{
    if (m->d->encoder) {
        kgr_msg(m->err, sizeof m->err, "this model is an encoder: it embeds text (kgm_embed), it does not generate");
        return NULL;
    }
    if (!tokens && n > 0) {
        kgr_msg(m->err, sizeof m->err, "no tokens");
        return NULL;
    }
    return run(m, tokens, n, pos, false);
}

KGM_EXPORT const float *kgm_decode(kgm_model *m, int32_t token, int pos)
{
    if (m->d->encoder) {
        kgr_msg(m->err, sizeof m->err, "this model is an encoder: it embeds text (kgm_embed), it does not generate");
        return NULL;
    }
    return run(m, &token, 1, pos, true);
}

/* ───────────── encoders ───────────── */

KGM_EXPORT int kgm_embed_dim(const kgm_model *m) { return m->d->encoder ? m->d->n_embd : 0; }

/* One step: n (<= n_seq) sequences -> out[n][n_embd]. get(m, arg, i, &ids)
 * gives sequence i's tokens (at most max_len; in m->scratch or the caller's
 * memory) and their count, or -1 (message set). */
typedef int (*seq_fn)(kgm_model *m, const void *arg, int i, const int32_t **ids);

/* One step: sequences order[first..first+n) (n <= n_seq; order NULL: the
 * identity) -> their rows of out. */
static int embed_step(kgm_model *m, seq_fn get, const void *arg, const int *order, int first, int n, float *out)
{
    const kgm_desc *d = m->d;
    int32_t *ids = (int32_t *)(m->ws + d->ws_ids), *lens = (int32_t *)(m->ws + d->ws_pos);
    int L = 1;
    for (int i = 0; i < n; i++) { /* rows of max_len first; the step's length is its longest sequence */
        const int32_t *s;
        int k = get(m, arg, order ? order[first + i] : first + i, &s);
        if (k < 0) return -1;
        memmove(ids + (size_t)i * (size_t)d->max_len, s, (size_t)k * sizeof *s);
        lens[i] = k;
        L = k > L ? k : L;
    }
    for (int i = 0; i < n; i++) { /* then rows of L (moving down: i * L <= i * max_len) */
        memmove(ids + (size_t)i * L, ids + (size_t)i * (size_t)d->max_len, (size_t)lens[i] * sizeof *ids);
        memset(ids + (size_t)i * L + lens[i], 0, (size_t)(L - lens[i]) * sizeof *ids); /* padding: any valid id */
    }
    m->rt[KGM_RT_NSEQ] = n;
    m->rt[KGM_RT_SEQLEN] = L;
    m->rt[KGM_RT_M] = (int64_t)n * L;
    m->entry = kgm_gen_prefill;
    kgr_pool_run(m->pool, step, m);
    const size_t row = (size_t)d->n_embd * sizeof *out;
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)(order ? order[first + i] : first + i) * (size_t)d->n_embd, m->ws + d->ws_logits + i * row, row);
    return 0;
}

typedef struct { int len, idx; } by_len;

static int cmp_len(const void *a, const void *b)
{
    const by_len *x = a, *y = b;
    return x->len != y->len ? (x->len < y->len ? 1 : -1) : (x->idx > y->idx) - (x->idx < y->idx);
}

/* More sequences than a step holds run sorted by length (longest first, as
 * sentence-transformers batches), so each step pads little: the one
 * allocation of an embed call, 12 bytes per sequence. */
static int embed_all(kgm_model *m, seq_fn get, const void *arg, int n, float *out)
{
    const kgm_desc *d = m->d;
    m->err[0] = 0;
    if (!d->encoder) return kgr_msg(m->err, sizeof m->err, "this model is not an encoder (it is a %s decoder)", d->arch);
    if (n < 0 || (n > 0 && !out)) return kgr_msg(m->err, sizeof m->err, "bad arguments: %d sequences", n);
    int *order = NULL;
    by_len *bl = NULL;
    if (n > d->n_seq) {
        bl = malloc((size_t)n * (sizeof *bl + sizeof *order));
        if (!bl) return kgr_msg(m->err, sizeof m->err, "out of memory for %d sequences", n);
        for (int i = 0; i < n; i++) {
            const int32_t *s;
            bl[i] = (by_len){get(m, arg, i, &s), i};
            if (bl[i].len < 0) {
                free(bl);
                return -1;
            }
        }
        qsort(bl, (size_t)n, sizeof *bl, cmp_len);
        order = (int *)(bl + n);
        for (int i = 0; i < n; i++) order[i] = bl[i].idx;
    }
    int rc = n;
    for (int done = 0; done < n && rc == n; done += d->n_seq) {
        int k = n - done < d->n_seq ? n - done : d->n_seq;
        if (embed_step(m, get, arg, order, done, k, out)) rc = -1;
    }
    free(bl);
    return rc;
}

/* A sequence longer than max_len keeps its first max_len - 1 tokens and its
 * last ([SEP]), as sentence-transformers truncates. */
static int clip(kgm_model *m, const int32_t *s, int k, const int32_t **ids)
{
    const int L = m->d->max_len;
    *ids = s;
    if (k <= L) return k;
    memcpy(m->scratch, s, (size_t)(L - 1) * sizeof *s);
    m->scratch[L - 1] = s[k - 1];
    *ids = m->scratch;
    return L;
}

typedef struct { const int32_t *const *ids; const int *n_ids; } tok_args;

static int seq_tokens(kgm_model *m, const void *arg, int i, const int32_t **ids)
{
    const tok_args *a = arg;
    int k = a->n_ids[i];
    if (k < 1 || !a->ids[i]) return kgr_msg(m->err, sizeof m->err, "sequence %d has %d tokens (at least 1)", i, k);
    for (int j = 0; j < k; j++)
        if (a->ids[i][j] < 0 || a->ids[i][j] >= m->d->n_vocab)
            return kgr_msg(m->err, sizeof m->err, "sequence %d: token %d (id %d) is outside the vocabulary (0..%d)", i, j,
                           a->ids[i][j], m->d->n_vocab - 1);
    return clip(m, a->ids[i], k, ids);
}

static int seq_text(kgm_model *m, const void *arg, int i, const int32_t **ids)
{
    const char *const *texts = arg;
    if (!texts[i]) return kgr_msg(m->err, sizeof m->err, "text %d is NULL", i);
    const int L = m->d->max_len;
    /* as sentence-transformers (Hugging Face's tokenizer) reads text: special-token text is the token */
    int k = kgr_tokenize(m->tok, texts[i], strlen(texts[i]), KGM_TOK_BOS | KGM_TOK_SPECIAL, m->scratch, L);
    if (k < 0) return kgr_msg(m->err, sizeof m->err, "text %d: tokenization failed", i);
    if (k > L) { /* truncated: it still ends as every sequence ends */
        if (m->sep >= 0) m->scratch[L - 1] = m->sep;
        k = L;
    }
    *ids = m->scratch;
    return k;
}

KGM_EXPORT int kgm_embed(kgm_model *m, const char *const *texts, int n, float *out)
{
    if (n > 0 && !texts) return kgr_msg(m->err, sizeof m->err, "no texts");
    return embed_all(m, seq_text, texts, n, out);
}

KGM_EXPORT int kgm_embed_tokens(kgm_model *m, const int32_t *const *ids, const int *n_ids, int n, float *out)
{
    if (n > 0 && (!ids || !n_ids)) return kgr_msg(m->err, sizeof m->err, "no token ids");
    tok_args a = {ids, n_ids};
    return embed_all(m, seq_tokens, &a, n, out);
}

KGM_EXPORT void kgm_reset(kgm_model *m)
{
    /* positions are rewritten before they are read (attention reads 0..pos);
     * dropping the pages returns the memory and zeroes them */
    if (m->kv) madvise(m->kv, m->kv_size, MADV_DONTNEED);
    kgr_sampler_reset(m->smp);
}

/* ───────────── tokenizer and sampler ───────────── */

KGM_EXPORT int kgm_tokenize(kgm_model *m, const char *text, size_t len, int flags, int32_t *out, int cap)
{
    if (!text && len) return kgr_msg(m->err, sizeof m->err, "no text");
    if (cap < 0 || (cap && !out)) return kgr_msg(m->err, sizeof m->err, "bad output buffer");
    int n = kgr_tokenize(m->tok, text ? text : "", len, flags, out, cap);
    if (n < 0) kgr_msg(m->err, sizeof m->err, "tokenization failed");
    return n;
}

KGM_EXPORT int kgm_token_piece(kgm_model *m, int32_t tok, char *buf, size_t cap)
{
    int n = kgr_token_piece(m->tok, tok, buf, cap);
    if (n < 0) kgr_msg(m->err, sizeof m->err, "token id %d is outside the vocabulary", tok);
    return n;
}

KGM_EXPORT int kgm_is_eog(const kgm_model *m, int32_t tok) { return kgr_is_eog(m->tok, tok); }

KGM_EXPORT int kgm_chat(kgm_model *m, const kgm_message *msgs, int n, int add_assistant, char *buf, size_t cap)
{
    return kgr_chat(m->tok, msgs, n, add_assistant, buf, cap, m->err, sizeof m->err);
}

KGM_EXPORT void kgm_sampler_init(kgm_model *m, const kgm_sampler_params *p) { kgr_sampler_set(m->smp, p); }

KGM_EXPORT int32_t kgm_sample(kgm_model *m, const float *logits)
{
    if (!logits) return kgr_msg(m->err, sizeof m->err, "no logits");
    return kgr_sample(m->smp, logits);
}

KGM_EXPORT void kgm_sampler_accept(kgm_model *m, int32_t tok) { kgr_sampler_accept(m->smp, tok); }

KGM_EXPORT const kgm_api_v2 kgm_api = {
    KGM_ABI_VERSION, kgm_open,   kgm_close,  kgm_error,  kgm_describe,     kgm_tokenize, kgm_token_piece,
    kgm_is_eog,      kgm_chat,   kgm_prefill, kgm_decode, kgm_reset, kgm_sampler_init, kgm_sample,
    kgm_sampler_accept, kgm_embed_dim, kgm_embed, kgm_embed_tokens,
};
