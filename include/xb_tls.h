/* A TLS client on memory BIOs: ciphertext in and out as bytes, no socket (sans-I/O).
 *
 * The owner feeds what the socket read, pulls what must be written, and drives the handshake;
 * plaintext written before the handshake completes is held and sent right after it. The peer
 * certificate is always verified, against `server_name` (also sent as SNI), whatever the
 * SSL_CTX says: a failed check fails the handshake, it never downgrades.
 */
#ifndef XB_TLS_H
#define XB_TLS_H

#include <apr_pools.h>
#include <openssl/ssl.h>
#include "xb_tls_sessions.h"

typedef struct xb_tls xb_tls_t;

typedef enum {
    XB_TLS_IO_OK = 0,    /* done, or bytes were read */
    XB_TLS_IO_WANT_READ, /* more ciphertext from the peer is needed */
    XB_TLS_IO_CLOSED,    /* the peer sent close_notify */
    XB_TLS_IO_ERROR      /* the connection is unusable: see xb_tls_error() */
} xb_tls_io_t;

/* NULL and *errmsg if OpenSSL cannot set the object up. */
xb_tls_t *xb_tls_create(apr_pool_t *pool, SSL_CTX *ctx, const char *server_name,
                        const char **errmsg);

/* Session resumption on `ctx` (a client context): OpenSSL hands every new session (the TLS
 * 1.2 handshake's, each TLS 1.3 ticket) to the connection's endpoint instead of its own store;
 * the endpoints live in a cache that ends with the context. 0 when out of memory. */
int xb_tls_ctx_enable_resumption(SSL_CTX *ctx);

/* The endpoint `key` of `ctx`'s cache: NULL when resumption is not enabled on `ctx` (or out
 * of memory). Valid while `ctx` lives (every SSL object made from it holds a reference). */
xb_tls_endpoint_t *xb_tls_ctx_endpoint(SSL_CTX *ctx, const char *key);

/* As xb_tls_create; with an `endpoint` (NULL: none), its session is offered when it is still
 * valid and its certificate carries `server_name`, the sessions the server issues on this
 * connection after a verified handshake replace it, and a failed handshake drops it. A resumed
 * handshake has no certificate to verify: it proves the server holds the session's secret,
 * which only the server verified as `server_name` for this endpoint was given. */
xb_tls_t *xb_tls_create_resumable(apr_pool_t *pool, SSL_CTX *ctx, const char *server_name,
                                  xb_tls_endpoint_t *endpoint, const char **errmsg);

/* True once the handshake is complete and it resumed a session (no certificate exchanged). */
int xb_tls_resumed(const xb_tls_t *t);

/* Ciphertext from the peer. */
void xb_tls_feed(xb_tls_t *t, const char *data, apr_size_t len);

/* Bytes of ciphertext waiting to be pulled. */
apr_size_t xb_tls_pending(xb_tls_t *t);

/* Ciphertext to send: copies up to `len` bytes to `buf`, returns how many; 0 when none. */
apr_size_t xb_tls_pull(xb_tls_t *t, char *buf, apr_size_t len);

/* Advances the handshake: OK once it is complete (held plaintext is then encrypted). */
xb_tls_io_t xb_tls_handshake(xb_tls_t *t);

/* Plaintext from the peer into `buf`; *n is set when OK. */
xb_tls_io_t xb_tls_read(xb_tls_t *t, char *buf, apr_size_t len, apr_size_t *n);

/* Plaintext to the peer, held until the handshake is complete. */
xb_tls_io_t xb_tls_write(xb_tls_t *t, const char *data, apr_size_t len);

/* Gives back what an idle connection does not need: a drained memory BIO that grew past a
 * few kB during a burst is replaced by an empty one (OpenSSL's own record buffers go back by
 * themselves: SSL_MODE_RELEASE_BUFFERS). Call when the owner has pulled everything. */
void xb_tls_trim(xb_tls_t *t);

/* Queues our close_notify (once). */
void xb_tls_close_notify(xb_tls_t *t);

/* Why the last operation failed: the verify result for a certificate problem, else the
 * OpenSSL error queue (which this clears). Valid until the next call on `t`. */
const char *xb_tls_error(const xb_tls_t *t);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for the log; "" before the handshake. */
const char *xb_tls_describe(xb_tls_t *t);

/* Frees the SSL object (also done by a cleanup on the pool); idempotent. */
void xb_tls_destroy(xb_tls_t *t);

#endif
