/* The client side of one XMPP client-to-server stream (RFC 6120), sans-I/O.
 *
 * The daemon moves bytes between the socket and this object; the object does the rest: the
 * stream header, STARTTLS (OpenSSL on memory BIOs, certificate checked against the configured
 * CA and name), the stream restart after TLS, and then framing the server's stream into
 * top-level elements handed up raw (never re-serialised), with xmlns='jabber:client' added to
 * an unprefixed element that has no default namespace declaration of its own.
 *
 * The post-TLS <stream:features/> is the first element handed up: the browser never sees the
 * pre-TLS stream. With XB_TLS_NONE (explicit admin choice) the first features are handed up.
 */
#ifndef XB_XMPP_CONN_H
#define XB_XMPP_CONN_H

#include <apr_pools.h>
#include <openssl/ssl.h>
#include "xb_config.h"
#include "xb_bosh_body.h"

typedef struct xb_xmpp_conn xb_xmpp_conn_t;

typedef struct xb_xmpp_conn_params {
    const char *domain;    /* `to` of the stream header */
    const char *xml_lang;  /* NULL: none */
    xb_tls_mode_t tls;
    SSL_CTX *ssl_ctx;      /* client context with verification set up (xb_xmpp_conn_ssl_ctx) */
    const char *tls_name;  /* name the certificate must match; NULL: domain */
    /* The server endpoint for TLS session resumption (see xb_tls_sessions.h): streams with
     * the same key share sessions, so it must name the server and the certificate name (the
     * daemon: domain, host, port, TLS name). Needs xb_tls_ctx_enable_resumption on ssl_ctx
     * (xb_xmpp_conn_ssl_ctx does it). NULL: full handshakes only. Read by create only. */
    const char *tls_resume_key;
    apr_size_t max_stanza_size;
    apr_size_t max_depth;  /* element nesting inside the stream */
} xb_xmpp_conn_params_t;

typedef struct xb_xmpp_conn_events {
    /* One top-level element (stanza, features, SASL element), raw; valid during the call. */
    void (*element)(void *baton, const char *data, apr_size_t len);
    /* The stream is over. `cond`: NONE for a clean </stream:stream> after we closed,
     * REMOTE_STREAM_ERROR with the raw <stream:error/> in `data`, REMOTE_CONNECTION_FAILED for
     * TLS failures, a closed socket, malformed XML or a stanza over the size limit.
     * `why` says what happened, for the log line (never contains stanza content). */
    void (*closed)(void *baton, xb_bosh_condition_t cond, const char *data, apr_size_t len,
                   const char *why);
    /* The TLS handshake is complete and verified; `resumed`: it resumed a session. May be
     * NULL. */
    void (*tls_established)(void *baton, int resumed);
} xb_xmpp_conn_events_t;

/* A client SSL_CTX: TLS 1.2+, peer verification on, CAs from `ca_file` (NULL: the system's
 * default paths), session resumption enabled (offered only to streams with a
 * tls_resume_key). NULL and *errmsg on failure. Freed with SSL_CTX_free by the caller; every
 * stream made with it holds a reference of its own. */
SSL_CTX *xb_xmpp_conn_ssl_ctx(const char *ca_file, const char **errmsg);

xb_xmpp_conn_t *xb_xmpp_conn_create(apr_pool_t *pool, const xb_xmpp_conn_params_t *params,
                                    const xb_xmpp_conn_events_t *events, void *baton);

/* Queues the first stream header. Call once the TCP connection is up. */
void xb_xmpp_conn_start(xb_xmpp_conn_t *c);

/* Bytes read from the socket (ciphertext once TLS is on). Events fire from inside this call. */
void xb_xmpp_conn_feed(xb_xmpp_conn_t *c, const char *data, apr_size_t len);

/* The socket read end saw EOF or an error. Fires `closed` if not already closed. */
void xb_xmpp_conn_eof(xb_xmpp_conn_t *c, const char *why);

/* Bytes waiting to be written to the socket; *data valid until the next call on `c`. */
apr_size_t xb_xmpp_conn_pending(xb_xmpp_conn_t *c, const char **data);

/* `n` of the pending bytes were written. */
void xb_xmpp_conn_written(xb_xmpp_conn_t *c, apr_size_t n);

/* Application data from the browser (stanzas, SASL). Buffered until the stream is ready
 * (after TLS), then sent in order. */
void xb_xmpp_conn_send(xb_xmpp_conn_t *c, const char *data, apr_size_t len);

/* XEP-0206 §5 restart: a new stream header on the same connection, parser reset. The next
 * element handed up is the new <stream:features/>. */
void xb_xmpp_conn_restart(xb_xmpp_conn_t *c);

/* The xml:lang of the stream headers sent from now on (restarts); NULL: none. A stream opened
 * ahead of need (a warm stream) gets the language of the session that takes it this way: the
 * server sees it from the first restart (after SASL) on, i.e. on the stream the session uses;
 * the stream before SASL had none (the server's default language, for SASL errors only). */
void xb_xmpp_conn_set_xml_lang(xb_xmpp_conn_t *c, const char *xml_lang);

/* Sends </stream:stream> (and TLS close_notify); `closed` fires when the server answers or
 * the socket ends. */
void xb_xmpp_conn_close(xb_xmpp_conn_t *c);

/* True once `closed` has fired: the daemon closes the socket when nothing is pending. */
int xb_xmpp_conn_is_closed(const xb_xmpp_conn_t *c);

/* True after TLS (or, with XB_TLS_NONE, the first features): client data flows. */
int xb_xmpp_conn_is_ready(const xb_xmpp_conn_t *c);

/* Between stanzas, frees the stream parser of a quiet stream (xb_xmpp_framer_compact); its
 * next bytes make it again. Returns 1 when it freed it. */
int xb_xmpp_conn_compact(xb_xmpp_conn_t *c);

/* Frees OpenSSL objects (also done by a cleanup on `pool`). */
void xb_xmpp_conn_destroy(xb_xmpp_conn_t *c);

#endif
