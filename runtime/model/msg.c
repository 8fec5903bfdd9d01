/*
 * msg.c — error messages of the model runtime (rt.h).
 */
#include "rt.h"

#include <stdarg.h>
#include <stdio.h>

int kgr_msg(char *err, size_t errcap, const char *fmt, ...)
{
    if (err && errcap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errcap, fmt, ap);
        va_end(ap);
    }
    return -1;
}
