/* TLS client on memory BIOs; see xb_tls.h.
 *
 * The SSL object reads ciphertext from `rbio` and writes it to `wbio`, both memory BIOs that
 * the owner fills and drains, so the same code serves the daemon's epoll loop and the unit
 * tests. OpenSSL's error queue is per thread and shared with everything else in the process:
 * every call clears it first, so what we report afterwards is ours.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "xb_tls.h"

/* A drained memory BIO bigger than this is replaced by an empty one (xb_tls_trim). */
#define BIO_KEEP 4096

struct xb_tls {
    apr_pool_t *pool;
    SSL *ssl;
    BIO *rbio;        /* ciphertext from the peer; owned by ssl */
    BIO *wbio;        /* ciphertext for the peer; owned by ssl */
    BIO *held;        /* plaintext written before the handshake completed */
    xb_tls_endpoint_t *endpoint; /* where this server's sessions are kept; NULL: none */
    int established;
    int failed;
    int close_sent;
    char *error;      /* why it failed; from the pool at the first failure (most never fail) */
    char desc[96];
};

static apr_status_t tls_cleanup(void *data)
{
    xb_tls_t *t = data;

    if (t->ssl) {
        SSL_free(t->ssl); /* frees rbio and wbio too */
        t->ssl = NULL;
    }
    if (t->held) {
        BIO_free(t->held);
        t->held = NULL;
    }
    return APR_SUCCESS;
}

#define ERROR_MAX 512

/* `t->error`, emptied; allocated the first time. */
static char *error_buf(xb_tls_t *t)
{
    if (!t->error) {
        t->error = apr_palloc(t->pool, ERROR_MAX);
    }
    t->error[0] = '\0';
    return t->error;
}

/* Appends the error queue to `t->error`, emptying the queue. */
static void collect_queue(xb_tls_t *t)
{
    unsigned long e;
    size_t used;
    const char *lib, *reason;

    while ((e = ERR_get_error()) != 0) {
        used = strlen(t->error);
        if (used + 4 >= ERROR_MAX) {
            continue; /* keep draining */
        }
        lib = ERR_lib_error_string(e);
        reason = ERR_reason_error_string(e);
        snprintf(t->error + used, ERROR_MAX - used, "%s%s%s%s", used ? "; " : "",
                 lib ? lib : "", lib ? ": " : "", reason ? reason : "unknown error");
        if (!reason) {
            used = strlen(t->error);
            snprintf(t->error + used, ERROR_MAX - used, " (%lx)", e);
        }
    }
}

/* Records why the connection is unusable. A certificate that failed verification says so
 * plainly (the queue would only say "certificate verify failed"). */
static xb_tls_io_t tls_fail(xb_tls_t *t, int ssl_error)
{
    long vr = t->ssl ? SSL_get_verify_result(t->ssl) : X509_V_OK;

    t->failed = 1;
    error_buf(t);
    if (t->endpoint) {
        /* The offered session, the certificate or the connection later failed: offer
         * nothing more until a verified handshake gives a new session. */
        xb_tls_endpoint_forget(t->endpoint);
    }
    if (vr != X509_V_OK) {
        snprintf(t->error, ERROR_MAX, "certificate verification failed: %s (%ld)",
                 X509_verify_cert_error_string(vr), vr);
        ERR_clear_error();
        return XB_TLS_IO_ERROR;
    }
    collect_queue(t);
    if (!t->error[0]) {
        snprintf(t->error, ERROR_MAX, "%s",
                 ssl_error == SSL_ERROR_SYSCALL ? "unexpected end of the TLS stream"
                                                : "TLS protocol error");
    }
    return XB_TLS_IO_ERROR;
}

/* The name the certificate must carry: an IP literal is checked as an address and not sent
 * as SNI (RFC 6066 §3 forbids that); anything else is a DNS name. */
static int set_peer_name(xb_tls_t *t, const char *name)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);

    if (ip) {
        ASN1_OCTET_STRING_free(ip);
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name);
    }
    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(t->ssl, name) && SSL_set_tlsext_host_name(t->ssl, name);
}

/* -- session resumption ---------------------------------------------------------------- */

static int ctx_cache_index = -1; /* SSL_CTX ex data: its xb_tls_sessions_t */
static int ssl_tls_index = -1;   /* SSL ex data: its xb_tls_t, set when it has an endpoint */

static void free_ctx_cache(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    xb_tls_sessions_destroy(ptr);
}

/* OpenSSL's new-session callback: a session (TLS 1.2: at the end of the handshake; TLS 1.3:
 * each NewSessionTicket, after it) is kept only from a connection whose certificate check
 * passed or that resumed such a session. Returns 0: OpenSSL keeps its reference, we took
 * our own. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    xb_tls_t *t = SSL_get_ex_data(ssl, ssl_tls_index);

    if (t && t->endpoint && !t->failed && SSL_get_verify_result(ssl) == X509_V_OK
        && SSL_get0_peer_certificate(ssl) != NULL) {
        xb_tls_endpoint_keep(t->endpoint, sess);
    }
    return 0;
}

int xb_tls_ctx_enable_resumption(SSL_CTX *ctx)
{
    xb_tls_sessions_t *cache;

    if (ctx_cache_index < 0) {
        ctx_cache_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ctx_cache);
    }
    if (ssl_tls_index < 0) {
        ssl_tls_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    }
    if (ctx_cache_index < 0 || ssl_tls_index < 0) {
        return 0;
    }
    if (SSL_CTX_get_ex_data(ctx, ctx_cache_index)) {
        return 1;
    }
    cache = xb_tls_sessions_create();
    if (!cache || !SSL_CTX_set_ex_data(ctx, ctx_cache_index, cache)) {
        xb_tls_sessions_destroy(cache);
        return 0;
    }
    /* The client side of the cache, without OpenSSL's internal store (a server-side idea,
     * keyed by session id): new sessions go to on_new_session only. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    return 1;
}

xb_tls_endpoint_t *xb_tls_ctx_endpoint(SSL_CTX *ctx, const char *key)
{
    xb_tls_sessions_t *cache = ctx_cache_index < 0 ? NULL
                                                   : SSL_CTX_get_ex_data(ctx, ctx_cache_index);

    return cache && key ? xb_tls_sessions_endpoint(cache, key) : NULL;
}

/* Whether the certificate `s` was verified with carries `name`, checked the way SSL_set1_host
 * checks it (set_peer_name): a session is offered for the name it was verified for only. */
static int session_carries_name(SSL_SESSION *s, const char *name)
{
    X509 *peer = SSL_SESSION_get0_peer(s);
    ASN1_OCTET_STRING *ip;

    if (!peer) {
        return 0;
    }
    ip = a2i_IPADDRESS(name);
    if (ip) {
        ASN1_OCTET_STRING_free(ip);
        return X509_check_ip_asc(peer, name, 0) == 1;
    }
    return X509_check_host(peer, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
}

static void offer_session(xb_tls_t *t, xb_tls_endpoint_t *endpoint, const char *server_name)
{
    SSL_SESSION *sess;

    if (!SSL_set_ex_data(t->ssl, ssl_tls_index, t)) {
        return; /* no callback could find us: no resumption for this one */
    }
    t->endpoint = endpoint;
    sess = xb_tls_endpoint_session(endpoint, time(NULL));
    if (sess && (!session_carries_name(sess, server_name) || SSL_set_session(t->ssl, sess) != 1)) {
        xb_tls_endpoint_forget(endpoint);
    }
}

xb_tls_t *xb_tls_create(apr_pool_t *pool, SSL_CTX *ctx, const char *server_name,
                        const char **errmsg)
{
    return xb_tls_create_resumable(pool, ctx, server_name, NULL, errmsg);
}

int xb_tls_resumed(const xb_tls_t *t)
{
    return t->ssl && t->established && SSL_session_reused(t->ssl);
}

xb_tls_t *xb_tls_create_resumable(apr_pool_t *pool, SSL_CTX *ctx, const char *server_name,
                                  xb_tls_endpoint_t *endpoint, const char **errmsg)
{
    xb_tls_t *t = apr_pcalloc(pool, sizeof(*t));

    ERR_clear_error();
    t->pool = pool;
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        *errmsg = "cannot create the TLS connection";
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        ERR_clear_error();
        return NULL;
    }
    /* An empty BIO means "more to come", not end of stream. */
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    apr_pool_cleanup_register(pool, t, tls_cleanup, apr_pool_cleanup_null);
    SSL_set_connect_state(t->ssl);
    /* The read and write record buffers (about 34 kB together) are freed whenever they are
     * empty: an idle session, the common case for a BOSH gateway, holds none. */
    SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
    /* Whatever the context says: an unverified peer is never acceptable here. */
    SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
    if (!server_name || !*server_name || !set_peer_name(t, server_name)) {
        *errmsg = "cannot set the name to verify the server certificate against";
        xb_tls_destroy(t);
        ERR_clear_error();
        return NULL;
    }
    if (endpoint) {
        offer_session(t, endpoint, server_name);
        ERR_clear_error();
    }
    return t;
}

void xb_tls_feed(xb_tls_t *t, const char *data, apr_size_t len)
{
    int n;

    while (t->ssl && len > 0) {
        n = BIO_write(t->rbio, data, len > INT_MAX ? INT_MAX : (int)len);
        if (n <= 0) {
            return;
        }
        data += n;
        len -= (apr_size_t)n;
    }
}

apr_size_t xb_tls_pending(xb_tls_t *t)
{
    return t->ssl ? (apr_size_t)BIO_ctrl_pending(t->wbio) : 0;
}

/* True when `bio` holds nothing and its buffer grew beyond BIO_KEEP. */
static int bio_oversized_and_empty(BIO *bio)
{
    BUF_MEM *bm = NULL;

    if (BIO_ctrl_pending(bio) != 0) {
        return 0;
    }
    BIO_get_mem_ptr(bio, &bm);
    return bm && bm->max > BIO_KEEP;
}

static BIO *fresh_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());

    if (b) {
        BIO_set_mem_eof_return(b, -1);
    }
    return b;
}

void xb_tls_trim(xb_tls_t *t)
{
    BIO *b;

    if (!t->ssl) {
        return;
    }
    /* SSL_MODE_RELEASE_BUFFERS alone leaves the read buffer allocated after a handshake
     * record (TLS 1.3 session tickets) or an SSL_read that found nothing: free what is empty.
     * SSL_free_buffers refuses (harmlessly) while a record is partly read. */
    if (!SSL_has_pending(t->ssl) && BIO_ctrl_pending(t->rbio) == 0) {
        SSL_free_buffers(t->ssl);
    }
    /* SSL_set0_[rw]bio frees the BIO it replaces. Out of memory: keep the old one. */
    if (bio_oversized_and_empty(t->rbio) && (b = fresh_bio()) != NULL) {
        SSL_set0_rbio(t->ssl, b);
        t->rbio = b;
    }
    if (bio_oversized_and_empty(t->wbio) && (b = fresh_bio()) != NULL) {
        SSL_set0_wbio(t->ssl, b);
        t->wbio = b;
    }
}

apr_size_t xb_tls_pull(xb_tls_t *t, char *buf, apr_size_t len)
{
    int n;

    if (!t->ssl || len == 0) {
        return 0;
    }
    n = BIO_read(t->wbio, buf, len > INT_MAX ? INT_MAX : (int)len);
    return n > 0 ? (apr_size_t)n : 0;
}

/* The memory BIO never pushes back, so SSL_write takes everything in one go. */
static xb_tls_io_t write_all(xb_tls_t *t, const char *data, apr_size_t len)
{
    int n;

    while (len > 0) {
        ERR_clear_error();
        n = SSL_write(t->ssl, data, len > INT_MAX ? INT_MAX : (int)len);
        if (n <= 0) {
            return tls_fail(t, SSL_get_error(t->ssl, n));
        }
        data += n;
        len -= (apr_size_t)n;
    }
    return XB_TLS_IO_OK;
}

static xb_tls_io_t on_established(xb_tls_t *t)
{
    char *held;
    long len;
    xb_tls_io_t rv = XB_TLS_IO_OK;

    t->established = 1;
    if (t->held) {
        len = BIO_get_mem_data(t->held, &held);
        if (len > 0) {
            rv = write_all(t, held, (apr_size_t)len);
        }
        BIO_free(t->held);
        t->held = NULL;
    }
    return rv;
}

xb_tls_io_t xb_tls_handshake(xb_tls_t *t)
{
    int rc, err;

    if (!t->ssl || t->failed) {
        return XB_TLS_IO_ERROR;
    }
    if (t->established) {
        return XB_TLS_IO_OK;
    }
    ERR_clear_error();
    rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        return on_established(t);
    }
    err = SSL_get_error(t->ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return XB_TLS_IO_WANT_READ;
    }
    return tls_fail(t, err);
}

xb_tls_io_t xb_tls_read(xb_tls_t *t, char *buf, apr_size_t len, apr_size_t *n)
{
    int rc, err;

    *n = 0;
    if (!t->ssl || t->failed) {
        return XB_TLS_IO_ERROR;
    }
    if (t->established && !SSL_has_pending(t->ssl) && BIO_ctrl_pending(t->rbio) == 0) {
        /* Nothing to decrypt. Asking anyway would make OpenSSL set its 16 kB read buffer up
         * again just to find the BIO empty, and keep it: SSL_MODE_RELEASE_BUFFERS frees it
         * only after a record was consumed. */
        return XB_TLS_IO_WANT_READ;
    }
    ERR_clear_error();
    rc = SSL_read(t->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (!t->established && SSL_is_init_finished(t->ssl) && on_established(t) != XB_TLS_IO_OK) {
        return XB_TLS_IO_ERROR;
    }
    if (rc > 0) {
        *n = (apr_size_t)rc;
        return XB_TLS_IO_OK;
    }
    err = SSL_get_error(t->ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return XB_TLS_IO_WANT_READ;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
        return XB_TLS_IO_CLOSED;
    }
    return tls_fail(t, err);
}

xb_tls_io_t xb_tls_write(xb_tls_t *t, const char *data, apr_size_t len)
{
    if (!t->ssl || t->failed) {
        return XB_TLS_IO_ERROR;
    }
    if (t->established) {
        return write_all(t, data, len);
    }
    if (!t->held) {
        t->held = BIO_new(BIO_s_mem());
    }
    if (!t->held || len > INT_MAX || BIO_write(t->held, data, (int)len) != (int)len) {
        t->failed = 1;
        snprintf(error_buf(t), ERROR_MAX, "out of memory");
        return XB_TLS_IO_ERROR;
    }
    return XB_TLS_IO_OK;
}

void xb_tls_close_notify(xb_tls_t *t)
{
    /* SSL_shutdown must not follow a fatal error; before the handshake there is no session. */
    if (!t->ssl || t->failed || !t->established || t->close_sent) {
        return;
    }
    t->close_sent = 1;
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

const char *xb_tls_error(const xb_tls_t *t)
{
    return t->error && t->error[0] ? t->error : "no TLS error";
}

const char *xb_tls_describe(xb_tls_t *t)
{
    if (!t->ssl || !t->established) {
        return "";
    }
    snprintf(t->desc, sizeof(t->desc), "%s %s", SSL_get_version(t->ssl),
             SSL_get_cipher_name(t->ssl));
    return t->desc;
}

void xb_tls_destroy(xb_tls_t *t)
{
    apr_pool_cleanup_run(t->pool, t, tls_cleanup);
}
