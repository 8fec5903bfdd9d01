/*
 * tune_store.c — the tuning database beside the artifact cache (tune.h):
 * KGEN_CACHE_DIR/tuning.json, a tuning file like any other (tune_db.c's
 * format), updated under an flock of KGEN_CACHE_DIR/tuning.lock and
 * replaced atomically, so readers see the old file or the new one whole.
 * The cache's clear and gc touch only its entry subdirectories, so they
 * leave it alone.
 */
#include "internal.h"
#include "tune.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static kg_status db_file(char *out, size_t cap, const char *name)
{
    kg_cache *c = NULL;
    kg_status st = kg_cache_open(NULL, &c);
    if (st) return st;
    if ((size_t)snprintf(out, cap, "%s/%s", kg_cache_dir(c), name) >= cap)
        st = kg_err(KG_ERR_ARG, "the cache directory's path is too long");
    kg_cache_close(c);
    return st;
}

kg_status gen_tuning_db_path(char *out, size_t cap) { return db_file(out, cap, "tuning.json"); }

kg_status gen_tuning_resolve(const char *spec, gen_tuning *tu, char *what, size_t cap)
{
    memset(tu, 0, sizeof *tu);
    if (spec && !strcmp(spec, "none")) {
        snprintf(what, cap, "none");
        return KG_OK;
    }
    if (spec) {
        snprintf(what, cap, "%s", spec);
        return gen_tuning_load(spec, tu);
    }
    char path[PATH_MAX];
    if (gen_tuning_db_path(path, sizeof path)) { /* no cache directory: no database */
        kg_err_clear();
        snprintf(what, cap, "no tuning database");
        return KG_OK;
    }
    snprintf(what, cap, "the tuning database %s", path);
    if (access(path, F_OK) != 0) return KG_OK;
    if (gen_tuning_load(path, tu)) {
        fprintf(stderr, "kgen: warning: %s; compiling without the tuning database (kgen tune clear empties it)\n",
                kg_last_error());
        kg_err_clear();
        memset(tu, 0, sizeof *tu);
    }
    return KG_OK;
}

/* the database's lock, held until close(*fd) */
static kg_status db_lock(int *fd)
{
    char lock[PATH_MAX];
    kg_status st = db_file(lock, sizeof lock, "tuning.lock");
    if (st) return st;
    *fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return kg_err(KG_ERR_IO, "%s: cannot open: %s", lock, strerror(errno));
    while (flock(*fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            int e = errno;
            close(*fd);
            return kg_err(KG_ERR_IO, "%s: cannot lock: %s", lock, strerror(e));
        }
    return KG_OK;
}

kg_status gen_tuning_db_update(const gen_tuning *measured, int *n_after)
{
    char path[PATH_MAX];
    int fd = -1;
    gen_tuning db = {0}, out = {0}, m = {0};
    kg_status st = gen_tuning_db_path(path, sizeof path);
    for (int j = 0; !st && j < measured->n; j++) st = gen_tuning_add(&m, &measured->r[j]);
    gen_tuning_sort(&m);
    if (!st) st = db_lock(&fd);
    if (!st && access(path, F_OK) == 0) st = gen_tuning_load(path, &db);
    for (int i = 0; !st && i < db.n; i++) /* replaced by a new measurement, or kept */
        if (!gen_tuning_has_key(&m, &db.r[i])) st = gen_tuning_add(&out, &db.r[i]);
    for (int j = 0; !st && j < measured->n; j++)
        if (measured->r[j].nknob > 0) st = gen_tuning_add(&out, &measured->r[j]);
    if (!st) {
        gen_tuning_sort(&out);
        st = gen_tuning_save(path, &out);
    }
    if (n_after) *n_after = out.n;
    gen_tuning_free(&db);
    gen_tuning_free(&out);
    gen_tuning_free(&m);
    if (fd >= 0) close(fd);
    return st;
}

kg_status gen_tuning_db_clear(int *n_removed)
{
    char path[PATH_MAX];
    int fd = -1;
    gen_tuning db = {0};
    *n_removed = 0;
    kg_status st = gen_tuning_db_path(path, sizeof path);
    if (!st) st = db_lock(&fd);
    if (!st && access(path, F_OK) == 0) {
        if (gen_tuning_load(path, &db) == KG_OK) *n_removed = db.n;
        else kg_err_clear(); /* a damaged database goes too */
        if (unlink(path) != 0 && errno != ENOENT) st = kg_err(KG_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    }
    gen_tuning_free(&db);
    if (fd >= 0) close(fd);
    return st;
}
