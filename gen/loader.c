/*
 * loader.c — a runnable model from a .so or a GGUF file (loader.h).
 */
#include "config.h"
#include "cuda.h"
#include "internal.h"
#include "loader.h"

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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef enum { FILE_GGUF, FILE_ELF } file_kind;

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
    if (c && memo_key(sb, &mk) == KG_OK && kg_cache_get(c, mk, "memo", &data, &n) == KG_OK && n == sizeof *h) {
        memcpy(h, data, sizeof *h);
        free(data);
        return KG_OK;
    }
    free(data);
    kg_err_clear();
    void *p = mmap(NULL, (size_t)sb->st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) return kg_err(KG_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    *h = XXH3_128bits(p, (size_t)sb->st_size);
    munmap(p, (size_t)sb->st_size);
    if (c && kg_cache_put(c, mk, "memo", h, sizeof *h) != KG_OK) kg_err_clear(); /* only speed is lost */
    return KG_OK;
}

/* What is at path: GGUF, ELF, or an error naming the file. For a GGUF file,
 * its whole content's hash into *h (the cache key's part for the model),
 * through the memo in c (if not NULL). */
static kg_status classify(const char *path, kg_cache *c, file_kind *k, XXH128_hash_t *h)
{
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

static kg_status cache_key(const XXH128_hash_t *model, const gen_target *t, const char *cuda, kg_key *key)
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
    if (!st) st = kg_keytext_i64(kt, "n_batch", 128) /* gen_model_opts default */;
    if (!st && cuda) st = kg_keytext_str(kt, "cuda.target", cuda);
    if (!st && cuda) st = gen_cuda_keytext(kt);
    if (!st) st = kg_keytext_finish(kt, key);
    kg_keytext_free(kt);
    return st;
}

static kg_status compile_to(const char *gguf, const char *out, const gen_load_opts *o, gen_loaded *l)
{
    gen_model_opts mo = {.cpu = o->cpu, .cuda = o->cuda, .progress = o->progress};
    gen_model_report r;
    double t0 = now_s();
    kg_status st = gen_model_compile(gguf, out, &mo, &r);
    l->compile_s = now_s() - t0;
    l->compiled = true;
    if (!st && o->progress)
        fprintf(stderr, "kgen: compiled %s in %.2f s (code generation %.2f s, link %.2f s)\n", gguf, l->compile_s,
                r.codegen_s, r.link_s);
    return st;
}

static kg_status from_gguf(const char *path, const XXH128_hash_t *h, const gen_load_opts *o, gen_loaded *l)
{
    const char *td = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (o->no_cache) {
        snprintf(l->tmp_so, sizeof l->tmp_so, "%s/kgen-run-%ld.so", td, (long)getpid());
        snprintf(l->so_path, sizeof l->so_path, "%s", l->tmp_so);
        return compile_to(path, l->tmp_so, o, l);
    }
    gen_target t;
    kg_cache *c = NULL;
    kg_key key;
    char cuda[32] = "", note[256];
    int sm = 0;
    kg_status st = o->cpu ? gen_target_parse(o->cpu, &t) : gen_target_host(&t);
    if (!st && o->cuda) st = gen_cuda_target(o->cuda, &sm, note, sizeof note);
    if (sm) snprintf(cuda, sizeof cuda, "cuda:sm_%d", sm); /* "cuda" resolved: the key names the arch */
    gen_load_opts oo = *o;
    oo.cuda = sm ? cuda : NULL;
    o = &oo;
    if (!st) st = cache_key(h, &t, o->cuda, &key);
    if (!st) st = kg_cache_open(NULL, &c);
    if (st) return st;
    if (!o->force_compile) {
        st = kg_cache_get_path(c, key, "so", l->so_path, sizeof l->so_path);
        if (st == KG_OK || st != KG_ERR_NOTFOUND) {
            kg_cache_close(c);
            return st;
        }
        kg_err_clear();
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/kgen-model-%ld.so", td, (long)getpid());
    st = compile_to(path, tmp, o, l);
    if (!st) st = kg_cache_put_path(c, key, "so", tmp);
    if (!st) st = kg_cache_get_path(c, key, "so", l->so_path, sizeof l->so_path);
    unlink(tmp); /* (moved by a successful put) */
    kg_cache_close(c);
    return st;
}

kg_status gen_load(const char *path, const gen_load_opts *o, gen_loaded *l)
{
    memset(l, 0, sizeof *l);
    double t0 = now_s();
    file_kind k;
    XXH128_hash_t h = {0};
    kg_cache *c = NULL;
    if (!o->no_cache && kg_cache_open(NULL, &c) != KG_OK) {
        c = NULL; /* from_gguf reports it, if the cache is needed */
        kg_err_clear();
    }
    kg_status st = classify(path, c, &k, &h);
    kg_cache_close(c);
    if (st) return st;
    if (k == FILE_GGUF) {
        st = from_gguf(path, &h, o, l);
        if (st) {
            gen_unload(l);
            return st;
        }
    } else {
        snprintf(l->so_path, sizeof l->so_path, "%s%s", strchr(path, '/') ? "" : "./", path);
    }
    l->lookup_s = now_s() - t0 - l->compile_s;
    double t1 = now_s();
    l->handle = dlopen(l->so_path, RTLD_NOW | RTLD_LOCAL);
    if (!l->handle) {
        st = kg_err(KG_ERR_FORMAT, "%s: cannot load: %s", path, dlerror());
    } else {
        l->api = dlsym(l->handle, "kgm_api");
        if (!l->api) st = kg_err(KG_ERR_FORMAT, "%s: not a kgen model (it has no kgm_api)", path);
        else if (l->api->abi_version != KGM_ABI_VERSION)
            st = kg_err(KG_ERR_UNSUPPORTED, "%s: model ABI version %d, this kgen reads %d (recompile the model)", path,
                        l->api->abi_version, KGM_ABI_VERSION);
    }
    if (!st) {
        char err[512];
        l->m = l->api->open(&o->open, err, sizeof err);
        if (!l->m) st = kg_err(KG_ERR_ARG, "%s: %s", path, err);
    }
    l->open_s = now_s() - t1;
    if (st) gen_unload(l);
    return st;
}

void gen_unload(gen_loaded *l)
{
    if (l->m) l->api->close(l->m);
    if (l->handle) dlclose(l->handle);
    if (l->tmp_so[0]) unlink(l->tmp_so);
    l->m = NULL;
    l->handle = NULL;
    l->tmp_so[0] = 0;
}
