/* TLS session resumption: the latest resumable session per XMPP server endpoint, in memory.
 *
 * An endpoint is whatever the owner says identifies one server and the name its certificate
 * must carry (the daemon: domain, host, port, TLS name); a session is only ever offered to
 * the endpoint whose verified handshake produced it. One cache belongs to one client SSL_CTX
 * (xb_tls_ctx_enable_resumption) and lives as long as that context, so a new configuration
 * (a new context: new CA file, hosts, names) starts with none. Nothing is written to disk.
 * Not thread-safe: one thread (the daemon's loop) uses a context.
 */
#ifndef XB_TLS_SESSIONS_H
#define XB_TLS_SESSIONS_H

#include <time.h>
#include <openssl/ssl.h>

typedef struct xb_tls_sessions xb_tls_sessions_t;
typedef struct xb_tls_endpoint xb_tls_endpoint_t;

/* NULL when out of memory. */
xb_tls_sessions_t *xb_tls_sessions_create(void);

/* Frees every endpoint and drops their sessions; NULL is fine. */
void xb_tls_sessions_destroy(xb_tls_sessions_t *c);

/* The endpoint called `key` (added on first use). Valid until the cache is destroyed. NULL
 * when out of memory or when the cache already holds its maximum of endpoints. */
xb_tls_endpoint_t *xb_tls_sessions_endpoint(xb_tls_sessions_t *c, const char *key);

/* The session to offer at `now`, borrowed (SSL_set_session takes its own reference); NULL
 * when there is none. One past its lifetime (the shorter of the session's timeout and the
 * server's ticket lifetime hint) is dropped, not returned. */
SSL_SESSION *xb_tls_endpoint_session(xb_tls_endpoint_t *e, time_t now);

/* Keeps a copy of `s` in place of the endpoint's previous session. A session
 * that cannot be resumed is ignored. The caller vouches that `s` comes from a handshake that
 * verified the server for this endpoint. */
void xb_tls_endpoint_keep(xb_tls_endpoint_t *e, SSL_SESSION *s);

/* Drops the endpoint's session (a handshake with it failed). */
void xb_tls_endpoint_forget(xb_tls_endpoint_t *e);

/* When `s` stops being resumable: its start plus the shorter of its timeout and the ticket
 * lifetime hint (when the server gave one). */
time_t xb_tls_session_expiry(const SSL_SESSION *s);

#endif
