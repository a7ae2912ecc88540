/* The core's one logging path; see xb_log.h. */
#include <stdarg.h>
#include <stdio.h>
#include "xb_log.h"

static xb_log_print_fn *log_print;
static xb_log_level_fn *log_is_level;
static void *log_baton;

void xb_log_bind(xb_log_print_fn *print, xb_log_level_fn *is_level, void *baton)
{
    log_print = print;
    log_is_level = is_level;
    log_baton = baton;
}

int xb_log_is_level(int level)
{
    if (log_is_level) {
        return log_is_level(log_baton, level);
    }
    return level <= XB_LOG_NOTICE;
}

void xb_log(const char *file, int line, int level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    if (!xb_log_is_level(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_print) {
        log_print(log_baton, file, line, level, msg);
    }
    else {
        fprintf(stderr, "[%d] %s\n", level, msg);
    }
}
