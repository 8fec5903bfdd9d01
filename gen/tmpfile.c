/*
 * tmpfile.c — locked temporaries, swept when stale (tmpfile.h).
 */
#include "internal.h"
#include "tmpfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_PREFIX "kgen-tmp-" /* kgen-tmp-TAG-XXXXXX: nothing else of kgen's (or the tests') starts so */
#define OUT_INFIX ".kgen-tmp-"
#define TRIES 8

static const char *tmp_root(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* Locks fd without waiting; true if we hold the lock now. */
static bool try_lock(int fd) { return flock(fd, LOCK_EX | LOCK_NB) == 0; }

/* After locking what we made: was it swept (unlinked) before we held the lock? */
static bool swept(int fd)
{
    struct stat sb;
    return fstat(fd, &sb) != 0 || sb.st_nlink == 0;
}

/* ── work directories ── */

/* Removes every entry of the open directory dfd (files only). */
static void empty_dir(int dfd)
{
    int dup_fd = dup(dfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0) close(dup_fd);
        return;
    }
    rewinddir(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(dfd, e->d_name, 0);
    closedir(d);
}

/* Stale kgen-tmp-*-XXXXXX directories of this user under root: nobody holds
 * their lock. Errors are ignored (a sweep is housekeeping). */
static void sweep_dirs(const char *root)
{
    DIR *d = opendir(root);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, DIR_PREFIX, strlen(DIR_PREFIX))) continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat sb;
        if (fd < 0) continue;
        if (fstat(fd, &sb) == 0 && sb.st_uid == getuid() && try_lock(fd)) {
            empty_dir(fd);
            unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
        }
        close(fd);
    }
    closedir(d);
}

kg_status gen_tmpdir_make(const char *tag, gen_tmpdir *d)
{
    const char *root = tmp_root();
    memset(d, 0, sizeof *d);
    d->fd = -1;
    sweep_dirs(root);
    for (int i = 0; i < TRIES; i++) {
        if (snprintf(d->path, sizeof d->path, "%s/" DIR_PREFIX "%s-XXXXXX", root, tag) >= (int)sizeof d->path)
            return kg_err(KG_ERR_ARG, "TMPDIR %s: path too long", root);
        if (!mkdtemp(d->path)) {
            int e = errno;
            d->path[0] = 0;
            return kg_err(KG_ERR_IO, "cannot create a temporary directory in %s: %s", root, strerror(e));
        }
        d->fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d->fd >= 0 && flock(d->fd, LOCK_EX) == 0 && !swept(d->fd)) return KG_OK;
        if (d->fd >= 0) close(d->fd);
        d->fd = -1;
        rmdir(d->path); /* swept between mkdtemp and the lock: make another */
    }
    d->path[0] = 0;
    return kg_err(KG_ERR_IO, "cannot create and lock a temporary directory in %s", root);
}

void gen_tmpdir_remove(gen_tmpdir *d)
{
    if (!d->path[0]) return;
    if (d->fd >= 0) {
        empty_dir(d->fd);
        rmdir(d->path);
        close(d->fd); /* the lock goes last: no sweeper touches it before */
    }
    d->path[0] = 0;
    d->fd = -1;
}

/* ── outputs ── */

/* The directory part of path ("." if none) into dir, the name into *base. */
static void split(const char *path, char *dir, size_t cap, const char **base)
{
    const char *sl = strrchr(path, '/');
    *base = sl ? sl + 1 : path;
    if (!sl) snprintf(dir, cap, ".");
    else if (sl == path) snprintf(dir, cap, "/");
    else snprintf(dir, cap, "%.*s", (int)(sl - path), path);
}

/* Stale temporaries of `final`: BASE.kgen-tmp-* beside it, unlocked. */
static void sweep_outputs(const char *final)
{
    char dir[PATH_MAX], prefix[NAME_MAX + 32];
    const char *base;
    split(final, dir, sizeof dir, &base);
    if (snprintf(prefix, sizeof prefix, "%s" OUT_INFIX, base) >= (int)sizeof prefix) return;
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix))) continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat sb;
        if (fd < 0) continue;
        if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == getuid() && try_lock(fd))
            unlinkat(dirfd(d), e->d_name, 0);
        close(fd);
    }
    closedir(d);
}

kg_status gen_tmpout_make(const char *final, mode_t mode, gen_tmpout *t)
{
    memset(t, 0, sizeof *t);
    t->fd = -1;
    if (snprintf(t->final, sizeof t->final, "%s", final) >= (int)sizeof t->final)
        return kg_err(KG_ERR_ARG, "%s: path too long", final);
    sweep_outputs(final);
    for (int i = 0; i < TRIES; i++) {
        snprintf(t->path, sizeof t->path, "%s" OUT_INFIX "XXXXXX", final);
        t->fd = mkostemp(t->path, O_CLOEXEC);
        if (t->fd < 0) {
            int e = errno;
            t->path[0] = 0;
            return kg_err(KG_ERR_IO, "%s: cannot write the output here: %s", final, strerror(e));
        }
        mode_t um = umask(0);
        umask(um);
        fchmod(t->fd, mode & ~um);
        if (flock(t->fd, LOCK_EX) == 0 && !swept(t->fd)) return KG_OK;
        close(t->fd);
        t->fd = -1;
        unlink(t->path); /* swept between its creation and the lock */
    }
    t->path[0] = 0;
    return kg_err(KG_ERR_IO, "%s: cannot create and lock a temporary beside it", final);
}

kg_status gen_tmpout_commit(gen_tmpout *t)
{
    kg_status st = KG_OK;
    if (fsync(t->fd) != 0) st = kg_err(KG_ERR_IO, "%s: write failed: %s", t->final, strerror(errno));
    if (!st && rename(t->path, t->final) != 0)
        st = kg_err(KG_ERR_IO, "%s: cannot rename into place: %s", t->final, strerror(errno));
    if (st) unlink(t->path);
    close(t->fd);
    t->fd = -1;
    t->path[0] = 0;
    return st;
}

void gen_tmpout_abort(gen_tmpout *t)
{
    if (!t->path[0]) return;
    unlink(t->path);
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
    t->path[0] = 0;
}

kg_status gen_tmpout_copy(gen_tmpout *t, const char *src)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return kg_err(KG_ERR_IO, "%s: %s", src, strerror(errno));
    char buf[1 << 16];
    kg_status st = KG_OK;
    for (ssize_t n; !st && (n = read(in, buf, sizeof buf)) != 0;) {
        if (n < 0) {
            if (errno == EINTR) continue;
            st = kg_err(KG_ERR_IO, "%s: read failed: %s", src, strerror(errno));
        }
        for (ssize_t o = 0; !st && o < n;) {
            ssize_t w = write(t->fd, buf + o, (size_t)(n - o));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) st = kg_err(KG_ERR_IO, "%s: write failed: %s", t->final, strerror(errno));
            else o += w;
        }
    }
    close(in);
    return st;
}

bool gen_same_file(const char *in, const char *out)
{
    struct stat a, b;
    return stat(in, &a) == 0 && stat(out, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}
