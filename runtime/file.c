/* file.c — opening the files the library reads. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

kg_status kg_open_regular(const char *path, int flags, int *fd, struct stat *st)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC | flags);
    if (*fd < 0) {
        int e = errno;
        kg_status s = kg_err(e == ENOENT || e == ENOTDIR ? KG_ERR_NOTFOUND : KG_ERR_IO, "%s: cannot open: %s", path,
                             strerror(e));
        errno = e; /* for a caller that retries without a flag (O_NOATIME: EPERM) */
        return s;
    }
    if (fstat(*fd, st) != 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        kg_status s = kg_err(KG_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
        errno = e;
        return s;
    }
    if (!S_ISREG(st->st_mode)) {
        close(*fd);
        *fd = -1;
        return kg_err(KG_ERR_IO, "%s: not a regular file", path);
    }
    return KG_OK;
}
