/*
 * tmpfile.h — temporary files that a killed kgen does not leave for good
 * (gen/tmpfile.c).
 *
 * Every temporary is locked (flock) by the process that made it for as long
 * as it lives; the lock dies with the process, however it dies. Whoever makes
 * a temporary first sweeps the stale ones of its kind (those nobody holds
 * locked), so the files a kill -9 left behind go away at the next compile:
 *
 *   a work directory   $TMPDIR/kgen-tmp-TAG-XXXXXX/ (link inputs; a model being
 *                      compiled for `kgen run`); the directory itself is
 *                      locked; stale ones are emptied and removed;
 *   an output          OUT.kgen-tmp-XXXXXX beside OUT, renamed onto OUT when
 *                      complete (a reader sees the old file or the new one);
 *                      stale temporaries of the same OUT are removed.
 *
 * A sweeper takes a temporary only while it holds its lock, and the maker
 * checks, once it holds the lock, that its file was not swept in between
 * (and makes another if so): no live temporary is ever removed.
 */
#ifndef KGEN_TMPFILE_H
#define KGEN_TMPFILE_H

#include "gen.h"

#include <limits.h>
#include <sys/types.h>

/* Both kinds: live while path[0] != 0 (a zeroed struct is "none"). */
typedef struct gen_tmpdir {
    char path[PATH_MAX];
    int fd; /* the directory, locked */
} gen_tmpdir;

/* Creates and locks $TMPDIR/kgen-tmp-TAG-XXXXXX (TMPDIR unset: /tmp), after
 * sweeping stale kgen-tmp-* directories of this user there. */
kg_status gen_tmpdir_make(const char *tag, gen_tmpdir *d);

/* Removes the directory and every file in it (it holds no subdirectories).
 * Safe on a zeroed or already removed one. */
void gen_tmpdir_remove(gen_tmpdir *d);

typedef struct gen_tmpout {
    char path[PATH_MAX + 32];  /* the temporary                */
    char final[PATH_MAX];      /* where it goes when committed */
    int fd;                    /* locked                       */
} gen_tmpout;

/* Creates and locks a temporary beside `final` (after sweeping stale ones
 * of the same final path), with permissions mode & ~umask. The caller
 * writes through t->fd. */
kg_status gen_tmpout_make(const char *final, mode_t mode, gen_tmpout *t);

/* Renames the temporary onto t->final and closes it (the lock goes with
 * the close). On failure the temporary is removed. */
kg_status gen_tmpout_commit(gen_tmpout *t);

/* Removes the temporary (safe on a zeroed, committed or aborted one). */
void gen_tmpout_abort(gen_tmpout *t);

/* Copies the file src into t (from its current offset). */
kg_status gen_tmpout_copy(gen_tmpout *t, const char *src);

/* Is `out` the same file as `in` (device and inode, through any links)?
 * For refusing to overwrite an input with an output. */
bool gen_same_file(const char *in, const char *out);

#endif
