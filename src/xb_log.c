/* The core's one logging path; see xb_log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/sha.h>
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

void xb_log_session_tag(const char *sid, char tag[XB_LOG_TAG_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[SHA256_DIGEST_LENGTH];
    int i;

    SHA256((const unsigned char *)sid, strlen(sid), digest);
    for (i = 0; i < XB_LOG_TAG_LEN / 2; i++) {
        tag[2 * i] = hex[digest[i] >> 4];
        tag[2 * i + 1] = hex[digest[i] & 0x0f];
    }
    tag[XB_LOG_TAG_LEN] = '\0';
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
