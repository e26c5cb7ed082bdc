/* error.c — the per-thread last error message. */
#include <stdarg.h>
#include <stdio.h>

#include "cnn.h"

static _Thread_local char err_msg[1024];
static _Thread_local char err_where[128];

const char *cnn_error_message(void) { return err_msg; }

const char *cnn_error_where(void) { return err_where; }

cnn_status cnn_error_at(const char *src, int line, cnn_status s, const char *fmt, ...)
{
    char tmp[sizeof err_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap); /* fmt may format err_msg itself */
    va_end(ap);
    snprintf(err_msg, sizeof err_msg, "%s", tmp);
    snprintf(err_where, sizeof err_where, "%s:%d", src, line);
    return s;
}
