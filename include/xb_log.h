/* Logging for the httpd-free core.
 *
 * The core never includes an httpd header; it logs through one callback that the glue binds
 * to ap_log_error (and the unit tests bind to stderr), so the daemon, the handlers and the tests
 * all share one path. Levels use the syslog numbers that APLOG_* also use.
 */
#ifndef XB_LOG_H
#define XB_LOG_H

#define XB_LOG_ERR 3
#define XB_LOG_WARNING 4
#define XB_LOG_NOTICE 5
#define XB_LOG_INFO 6
#define XB_LOG_DEBUG 7
#define XB_LOG_TRACE1 8

/* Module-local message tag. AH numbers belong to httpd's own modules; every message at debug
 * level and above carries one of ours. docs/log-message-tags/next-number holds the next free one. */
#define XBLOGNO(n) "XB" #n ": "

#define XB_LOG_MARK __FILE__, __LINE__

typedef void xb_log_print_fn(void *baton, const char *file, int line, int level, const char *msg);
typedef int xb_log_level_fn(void *baton, int level);

/* Binds the core's log output. Without a binding, messages at NOTICE and above go to stderr. */
void xb_log_bind(xb_log_print_fn *print, xb_log_level_fn *is_level, void *baton);

/* A SID is a bearer credential and never goes into a log. Log lines name a session by its
 * tag instead: the first 8 hex digits of SHA-256(sid), stable for the session's life and
 * useless for taking it over. */
#define XB_LOG_TAG_LEN 8
void xb_log_session_tag(const char *sid, char tag[XB_LOG_TAG_LEN + 1]);

/* True when a message at `level` would be printed (to skip building expensive ones). */
int xb_log_is_level(int level);

void xb_log(const char *file, int line, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
