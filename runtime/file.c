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
        return kg_err(e == ENOENT || e == ENOTDIR ? KG_ERR_NOTFOUND : KG_ERR_IO, "%s: cannot open: %s", path,
                      strerror(e));
    }
    if (fstat(*fd, st) != 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        return kg_err(KG_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(*fd);
        *fd = -1;
        return kg_err(KG_ERR_IO, "%s: not a regular file", path);
    }
    return KG_OK;
}
