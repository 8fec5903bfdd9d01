/*
 * loader.c — a runnable model from a .so or a GGUF file (loader.h).
 */
#include "config.h"
#include "cache_int.h"
#include "cuda.h"
#include "internal.h"
#include "loader.h"
#include "tune.h"
#include "kgen_check.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

extern const char kgen_bc_rt[], kgen_bc_rt_end[];

typedef enum { FILE_GGUF, FILE_ELF, FILE_HF } file_kind;

/* ── the GGUF's content hash, memoized ──
 * Hashing a model file costs ~0.4 ms per MB (page faults and XXH3), far
 * more than the rest of an open from the cache. The cache keeps a "memo"
 * entry per file identity: device, inode, size, and modification and
 * status-change times to the nanosecond (any write to the file changes its
 * ctime, which no user can set back). Unlike artifact keys, a memo key is
 * deliberately local to this machine: it names a file here, not content;
 * a memo that does not match costs only a recomputation. */
static kg_status memo_key(const struct stat *sb, kg_key *key)
{
    kg_keytext *kt;
    kg_status st = kg_keytext_new(&kt);
    if (st) return st;
    st = kg_keytext_str(kt, "memo", "gguf.content.xxh3-128");
    if (!st) st = kg_keytext_u64(kt, "dev", (uint64_t)sb->st_dev);
    if (!st) st = kg_keytext_u64(kt, "ino", (uint64_t)sb->st_ino);
    if (!st) st = kg_keytext_i64(kt, "size", (int64_t)sb->st_size);
    if (!st) st = kg_keytext_i64(kt, "mtime_ns", (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec);
    if (!st) st = kg_keytext_i64(kt, "ctime_ns", (int64_t)sb->st_ctim.tv_sec * 1000000000 + sb->st_ctim.tv_nsec);
    if (!st) st = kg_keytext_finish(kt, key);
    kg_keytext_free(kt);
    return st;
}

static kg_status hash_fd(int fd, const char *path, const struct stat *sb, kg_cache *c, XXH128_hash_t *h)
{
    kg_key mk;
    void *data = NULL;
    size_t n = 0;
    const bool memo = c && memo_key(sb, &mk) == KG_OK;
    kg_status got = memo ? kg_cache_get(c, mk, "memo", &data, &n) : KG_ERR_NOTFOUND;
    if (got == KG_OK && n == sizeof *h) {
        memcpy(h, data, sizeof *h);
        free(data);
        return KG_OK;
    }
    if (got == KG_ERR_CORRUPT) fprintf(stderr, "kgen: %s; rebuilding\n", kg_last_error());
    free(data);
    kg_err_clear();
    void *p = mmap(NULL, (size_t)sb->st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) return kg_err(KG_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    *h = XXH3_128bits(p, (size_t)sb->st_size);
    munmap(p, (size_t)sb->st_size);
    if (memo && kg_cache_put(c, mk, "memo", h, sizeof *h) != KG_OK) kg_err_clear(); /* only speed is lost */
    return KG_OK;
}

/* The files of a Hugging Face directory that change the artifact: the
 * configuration, weights, tokenizer and sentence-transformers settings
 * (not README.md and the like). */
static bool hf_input(const char *name)
{
    static const char *const names[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "vocab.txt", "modules.json",
                                        "sentence_bert_config.json", "model.safetensors.index.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i])) return true;
    size_t n = strlen(name);
    return n > 12 && !strcmp(name + n - 12, ".safetensors");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A Hugging Face directory's content hash: each input file's name and
 * content hash (memoized like a GGUF's), in name order; the pooling
 * modules' config.json one directory down too. */
static kg_status hash_dir(const char *dir, kg_cache *c, XXH128_hash_t *h)
{
    char *names[512], p[PATH_MAX + 600];
    int n = 0;
    kg_status st = KG_OK;
    DIR *d = opendir(dir);
    if (!d) return kg_err(KG_ERR_IO, "%s: %s", dir, strerror(errno));
    for (struct dirent *e; (e = readdir(d)) && !st;) {
        if (e->d_name[0] == '.') continue;
        char rel[600];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) { /* a module's directory: its config.json */
            snprintf(rel, sizeof rel, "%s/config.json", e->d_name);
            snprintf(p, sizeof p, "%s/%s", dir, rel);
            if (access(p, R_OK) != 0) continue;
        } else if (hf_input(e->d_name)) {
            snprintf(rel, sizeof rel, "%s", e->d_name);
        } else {
            continue;
        }
        if (n == 512) st = kg_err(KG_ERR_UNSUPPORTED, "%s: more than 512 model files", dir);
        else if (!(names[n++] = strdup(rel))) st = kg_err(KG_ERR_NOMEM, "out of memory");
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    XXH3_state_t *x = XXH3_createState();
    if (!x) st = kg_err(KG_ERR_NOMEM, "out of memory");
    if (!st) XXH3_128bits_reset(x);
    for (int i = 0; i < n && !st; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        struct stat sb;
        XXH128_hash_t fh;
        if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) st = kg_err(KG_ERR_IO, "%s: cannot read", p);
        else if (sb.st_size == 0) fh = XXH3_128bits("", 0);
        else st = hash_fd(fd, p, &sb, c, &fh);
        if (fd >= 0) close(fd);
        if (!st) XXH3_128bits_update(x, names[i], strlen(names[i]) + 1), XXH3_128bits_update(x, &fh, sizeof fh);
    }
    if (!st) *h = XXH3_128bits_digest(x);
    XXH3_freeState(x);
    for (int i = 0; i < n; i++) free(names[i]);
    return st;
}

/* What is at path: GGUF, ELF, a Hugging Face directory (config.json), or
 * an error naming the file. For a model source (GGUF, directory), its
 * content's hash into *h (the cache key's part for the model), through the
 * memo in c (if not NULL). For a GGUF file,
 * its whole content's hash into *h (the cache key's part for the model),
 * through the memo in c (if not NULL). */
static kg_status classify(const char *path, kg_cache *c, file_kind *k, XXH128_hash_t *h)
{
    struct stat ds;
    if (stat(path, &ds) == 0 && S_ISDIR(ds.st_mode)) {
        char cfg[PATH_MAX + 16];
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        if (access(cfg, R_OK) != 0)
            return kg_err(KG_ERR_NOTFOUND, "%s: a directory without config.json: not a Hugging Face model", path);
        *k = FILE_HF;
        return hash_dir(path, c, h);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kg_err(errno == ENOENT ? KG_ERR_NOTFOUND : KG_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    unsigned char magic[4] = {0};
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return kg_err(KG_ERR_IO, "%s: not a regular file", path);
    }
    ssize_t n = pread(fd, magic, 4, 0);
    kg_status st = KG_OK;
    if (n == 4 && !memcmp(magic, "GGUF", 4)) {
        *k = FILE_GGUF;
        st = hash_fd(fd, path, &sb, c, h);
    } else if (n == 4 && !memcmp(magic, "\x7f" "ELF", 4)) {
        *k = FILE_ELF;
    } else {
        st = kg_err(KG_ERR_FORMAT, "%s: neither a GGUF file nor a kgen model (.so)", path);
    }
    close(fd);
    return st;
}

static kg_status cache_key(const XXH128_hash_t *model, const gen_target *t, const char *cuda, const char *chat,
                           const gen_load_opts *o, kg_key *key)
{
    kg_keytext *kt;
    char hex[33];
    kg_status st = kg_keytext_new(&kt);
    if (st) return st;
    kg_key_hex((kg_key){model->high64, model->low64}, hex);
    st = kg_keytext_str(kt, "artifact", "model.so");
    if (!st) st = gen_keytext_codegen(kt, t);
    if (!st) st = kg_keytext_blob(kt, "runtime.object", kgen_bc_rt, (size_t)(kgen_bc_rt_end - kgen_bc_rt));
    if (!st) st = kg_keytext_str(kt, "model.gguf", hex);
    if (!st) st = kg_keytext_i64(kt, "n_batch", o->n_batch) /* 0: gen_model_opts' default */;
    if (!st) st = kg_keytext_i64(kt, "max_len", o->max_len);
    if (!st) st = kg_keytext_str(kt, "nofuse", gen_nofuse_env());
    if (!st) st = kg_keytext_str(kt, "knobs", gen_knobs_env());
    /* f16 (the default, however named) adds nothing: those keys stay as they were */
    if (!st && gen_kv_type(o->kv) != KG_TYPE_F16) st = kg_keytext_i64(kt, "kv_type", gen_kv_type(o->kv));
    if (!st && chat) st = kg_keytext_str(kt, "chat_template", chat);
    /* kgen's own quantization (none adds nothing) */
    if (!st && o->quant && *o->quant) st = kg_keytext_str(kt, "quant", o->quant);
    if (!st && o->quant && *o->quant) st = kg_keytext_i64(kt, "requant", o->requant);
    /* the records for this target, not their file: the same knobs, the same key
     * (none: no text, the keys of models compiled before tuning existed) */
    if (!st && o->tuning_set && !cuda) st = gen_tuning_keytext(o->tuning_set, t, kt);
    if (!st && cuda) st = kg_keytext_str(kt, "cuda.target", cuda);
    if (!st && cuda) st = gen_cuda_keytext(kt);
    if (!st) st = kg_keytext_finish(kt, key);
    kg_keytext_free(kt);
    return st;
}

static kg_status compile_to(const char *gguf, const char *out, const gen_load_opts *o, gen_loaded *l)
{
    gen_model_opts mo = {.cpu = o->cpu, .cuda = o->cuda, .progress = o->progress, .chat_template = o->chat_template,
                         .n_batch = o->n_batch, .max_len = o->max_len, .kv = o->kv,
                         .quant = o->quant, .requant = o->requant, .tuning = o->tuning, .tuning_set = o->tuning_set};
    gen_model_report r;
    double t0 = gen_now_s();
    kg_status st = gen_model_compile(gguf, out, &mo, &r);
    l->compile_s = gen_now_s() - t0;
    l->compiled = true;
    if (!st && o->progress)
        fprintf(stderr, "kgen: compiled %s in %.2f s (code generation %.2f s, link %.2f s)\n", gguf, l->compile_s,
                r.codegen_s, r.link_s);
    return st;
}

/* Compiles into a locked work directory (gen/tmpfile.h) that lives as long
 * as the model is loaded: what runs when the cache is off or unusable. */
static kg_status compile_private(const char *path, const gen_load_opts *o, gen_loaded *l)
{
    kg_status st = gen_tmpdir_make("run", &l->work);
    if (st) return st;
    snprintf(l->so_path, sizeof l->so_path, "%s/model.so", l->work.path);
    return compile_to(path, l->so_path, o, l);
}

/* A model entry's bulk, for kg_cache_get_path_ident_: its appended weights
 * (kgen_check.h's note; the cache asks only once the entry is verified). A
 * model without appended weights has none: its whole entry is hashed on
 * every open. */
static bool weights_range(int fd, uint64_t psize, uint64_t *off, uint64_t *len, void *ctx)
{
    (void)ctx;
    kgm_note note;
    uint64_t at = 0, image_end = 0;
    char err[512];
    if (kgm_read_note(fd, "cache entry", err, sizeof err, &note, &at, &image_end) ||
        note.weights_where != KGM_WEIGHTS_APPENDED || note.weights_offset < image_end ||
        note.weights_offset > psize || note.weight_bytes > psize - note.weights_offset)
        return false;
    *off = note.weights_offset;
    *len = note.weight_bytes;
    return true;
}

static void warn_no_cache(const gen_load_opts *o, const char *why)
{
    if (o->progress) fprintf(stderr, "kgen: warning: %s; compiling into a temporary file instead\n", why);
}

static kg_status from_gguf_with(const char *path, const XXH128_hash_t *h, const gen_load_opts *o, gen_loaded *l)
{
    if (o->no_cache) return compile_private(path, o, l);
    gen_target t;
    kg_cache *c = NULL;
    kg_key key;
    char cuda[32] = "", note[256], why[1200];
    int sm = 0;
    kg_status st = o->cpu ? gen_target_parse(o->cpu, &t) : gen_target_host(&t);
    if (!st && o->cuda) st = gen_cuda_target(o->cuda, &sm, note, sizeof note);
    if (sm) snprintf(cuda, sizeof cuda, "cuda:sm_%d", sm); /* "cuda" resolved: the key names the arch */
    gen_load_opts oo = *o;
    oo.cuda = sm ? cuda : NULL;
    o = &oo;
    if (!st) st = cache_key(h, &t, o->cuda, o->chat_template, o, &key);
    if (st) return st;
    if (kg_cache_open(NULL, &c)) {
        snprintf(why, sizeof why, "the cache cannot be used: %s", kg_last_error());
        warn_no_cache(o, why);
        kg_err_clear();
        return compile_private(path, o, l);
    }
    if (!o->force_compile) {
        st = kg_cache_get_path_ident_(c, key, "so", weights_range, NULL, l->so_path, sizeof l->so_path);
        if (st == KG_ERR_CORRUPT) fprintf(stderr, "kgen: %s; rebuilding\n", kg_last_error());
        else if (st != KG_ERR_NOTFOUND) { /* a hit, or a real error */
            kg_cache_close(c);
            return st;
        }
        kg_err_clear();
    }
    /* a cache we cannot write would waste the compile: say so first */
    const bool writable = access(kg_cache_dir(c), W_OK | X_OK) == 0;
    if (!writable) {
        snprintf(why, sizeof why, "the cache %s is not writable (%s)", kg_cache_dir(c), strerror(errno));
        warn_no_cache(o, why);
    }
    st = compile_private(path, o, l);
    if (!st && writable) {
        char into[sizeof l->so_path];
        kg_status pst = kg_cache_put_path(c, key, "so", l->so_path);
        if (!pst) pst = kg_cache_get_path_ident_(c, key, "so", weights_range, NULL, into, sizeof into);
        if (!pst) {
            snprintf(l->so_path, sizeof l->so_path, "%s", into);
            gen_tmpdir_remove(&l->work);
        } else if (o->progress) {
            /* the compiled model is still in the work directory: run it from there */
            fprintf(stderr, "kgen: warning: could not store the model in the cache: %s\n", kg_last_error());
            kg_err_clear();
        }
    }
    kg_cache_close(c);
    return st;
}

/* The tuning records read once (the database may change meanwhile): the
 * cache key and the compile both see these. */
static kg_status from_gguf(const char *path, const XXH128_hash_t *h, const gen_load_opts *o, gen_loaded *l)
{
    gen_tuning tu;
    char what[PATH_MAX + 32];
    if (o->cuda && o->tuning && strcmp(o->tuning, "none"))
        return kg_err(KG_ERR_UNSUPPORTED, "%s: --tuning: tuning records are the CPU's; a CUDA target has none yet", path);
    kg_status st = o->cuda ? (memset(&tu, 0, sizeof tu), KG_OK) : gen_tuning_resolve(o->tuning, &tu, what, sizeof what);
    /* only the records naming this model's instances: another model's
     * records leave its cache key alone */
    gen_target t;
    gen_model_opts mo = {.n_batch = o->n_batch, .max_len = o->max_len, .kv = o->kv, .quant = o->quant,
                         .requant = o->requant};
    if (!st && !o->cuda) st = o->cpu ? gen_target_parse(o->cpu, &t) : gen_target_host(&t);
    if (!st && !o->cuda) st = gen_tuning_for_model(path, &mo, &t, &tu);
    if (st) {
        gen_tuning_free(&tu);
        return st;
    }
    gen_load_opts oo = *o;
    oo.tuning_set = &tu;
    st = from_gguf_with(path, h, &oo, l);
    gen_tuning_free(&tu);
    return st;
}

/* dlopen of a file kgm_check_file found whole; dlerror's own copy of the
 * path is left out of the message (it is the path the caller names). */
static kg_status load_so(const char *path, gen_loaded *l)
{
    char err[1024];
    if (kgm_check_file(l->so_path, err, sizeof err)) {
        const char *rest = !strncmp(err, l->so_path, strlen(l->so_path)) ? err + strlen(l->so_path) : NULL;
        return kg_err(KG_ERR_FORMAT, "%s%s", rest ? path : "", rest ? rest : err);
    }
    l->handle = dlopen(l->so_path, RTLD_NOW | RTLD_LOCAL);
    if (!l->handle) {
        const char *e = dlerror(), *colon = e ? strstr(e, ": ") : NULL;
        if (e && colon && !strncmp(e, l->so_path, strlen(l->so_path))) e = colon + 2;
        return kg_err(KG_ERR_FORMAT, "%s: cannot load: %s", path, e ? e : "unknown error");
    }
    l->api = dlsym(l->handle, "kgm_api");
    if (!l->api) return kg_err(KG_ERR_FORMAT, "%s: not a kgen model (it has no kgm_api)", path);
    if (l->api->abi_version < KGM_ABI_VERSION)
        return kg_err(KG_ERR_UNSUPPORTED, "%s: model ABI version %d, older than the %d this kgen needs (recompile the model)",
                      path, l->api->abi_version, KGM_ABI_VERSION);
    return KG_OK;
}

kg_status gen_load(const char *path, const gen_load_opts *o, gen_loaded *l)
{
    memset(l, 0, sizeof *l);
    double t0 = gen_now_s();
    file_kind k = FILE_ELF;
    XXH128_hash_t h = {0};
    kg_cache *c = NULL;
    if (!o->no_cache && kg_cache_open(NULL, &c) != KG_OK) {
        c = NULL; /* from_gguf reports it, if the cache is needed */
        kg_err_clear();
    }
    kg_status st = classify(path, c, &k, &h);
    kg_cache_close(c);
    if (st) return st;
    if (k == FILE_GGUF || k == FILE_HF) {
        st = from_gguf(path, &h, o, l);
        if (st) {
            gen_unload(l);
            return st;
        }
    } else if (o->kv) {
        return kg_err(KG_ERR_ARG, "%s: --kv applies when compiling a GGUF file; this model was compiled with its "
                                  "KV cache type (recompile it: kgen compile --kv TYPE)", path);
    } else if (o->quant || o->requant) {
        return kg_err(KG_ERR_ARG, "%s: --quant applies when compiling a GGUF file or a model directory; this model "
                                  "was compiled with its weights (recompile it: kgen compile --quant SCHEME)", path);
    } else if (o->tuning) {
        return kg_err(KG_ERR_ARG, "%s: --tuning applies when compiling a GGUF file; this model was compiled with its "
                                  "knobs (recompile it: kgen compile --tuning FILE)", path);
    } else if (o->chat_template) {
        return kg_err(KG_ERR_ARG, "%s: --chat-template applies when compiling a GGUF file; this model was compiled "
                                  "with its chat template (recompile it: kgen compile --chat-template NAME)", path);
    } else {
        snprintf(l->so_path, sizeof l->so_path, "%s%s", strchr(path, '/') ? "" : "./", path);
    }
    l->lookup_s = gen_now_s() - t0 - l->compile_s;
    double t1 = gen_now_s();
    st = load_so(path, l);
    if (!st) {
        char err[512];
        l->m = l->api->open(&o->open, err, sizeof err);
        if (!l->m) st = kg_err(KG_ERR_ARG, "%s: %s", path, err);
    }
    l->open_s = gen_now_s() - t1;
    if (st) gen_unload(l);
    return st;
}

void gen_unload(gen_loaded *l)
{
    if (l->m) l->api->close(l->m);
    if (l->handle) dlclose(l->handle);
    gen_tmpdir_remove(&l->work);
    l->m = NULL;
    l->handle = NULL;
}
