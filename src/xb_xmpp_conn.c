/* The client side of one XMPP client-to-server stream; see xb_xmpp_conn.h.
 *
 * Three pieces, each in its own file: the framer (server bytes -> raw top-level elements),
 * the TLS wrapper (memory BIOs), and this state machine, which decides what is handed up:
 *
 *   INIT -start-> FEATURES -(starttls offered)-> PROCEED -<proceed/>-> HANDSHAKE -> OPEN
 *                 FEATURES -(XB_TLS_NONE)-----------------------------------------> OPEN
 *   OPEN -close-> CLOSING -</stream:stream> or EOF-> CLOSED   (any state -> CLOSED on error)
 *
 * Nothing before OPEN reaches the browser, so with STARTTLS the post-TLS features are the
 * first element handed up and the pre-TLS stream (which anyone on the path could have
 * written) is never trusted for anything but <proceed/>.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <openssl/err.h>
#include "xb_log.h"
#include "xb_tls.h"
#include "xb_xmpp_framer.h"
#include "xb_buf.h"
#include "xb_xmpp_conn.h"

#define TLS_NS "urn:ietf:params:xml:ns:xmpp-tls"
#define STREAM_ERRORS_NS "urn:ietf:params:xml:ns:xmpp-streams"
#define STREAM_END "</stream:stream>"
#define STARTTLS "<starttls xmlns='" TLS_NS "'/>"

/* Buffers bigger than this are released once drained, so a burst does not pin memory for
 * the rest of a long session. */
#define KEEP_CAPACITY 65536
#define READ_CHUNK 16384
/* The socket buffer is drained at once in the common case: an idle session keeps none (a
 * session spends most of its life idle, and a 1 kB malloc per write is cheap next to it). */
#define OUT_KEEP 0
/* The reason a stream ended, for the log and the closed event. */
#define WHY_MAX 640

typedef enum {
    ST_INIT,      /* nothing sent yet */
    ST_FEATURES,  /* our header is out; waiting for the server's header and features */
    ST_PROCEED,   /* <starttls/> sent */
    ST_HANDSHAKE, /* TLS handshake under way */
    ST_OPEN,      /* elements are handed up, client data flows */
    ST_CLOSING,   /* our </stream:stream> is out; waiting for the server's */
    ST_CLOSED
} conn_state_t;


struct xb_xmpp_conn {
    apr_pool_t *pool;
    xb_xmpp_conn_params_t params;
    xb_xmpp_conn_events_t events;
    void *baton;
    conn_state_t state;
    int handing_up;       /* reached OPEN: elements go to the browser */
    int stream_out;       /* our header is out on the current layer (plain or TLS) */
    int close_sent;       /* our </stream:stream> is out */
    int starttls_offered; /* seen in the top-level element being parsed */
    int busy;             /* inside a call that may fire events */
    int destroy_pending;
    int destroyed;
    xb_xmpp_framer_t *framer;
    xb_tls_t *tls;
    xb_tls_endpoint_t *tls_endpoint; /* sessions to resume; NULL: none */
    xb_buf_t out;           /* for the socket (ciphertext once TLS is on) */
    xb_buf_t early;         /* client data that came before the stream was ready */
    xb_buf_t tmp;           /* stream headers under construction */
    char error_cond[48];  /* condition of a <stream:error/> being parsed */
    char *why;            /* set once, by finish (from the pool: a stream that lives keeps none) */
};

/* -- buffers -------------------------------------------------------------------------- */

/* XML-escapes `s` for an attribute value in single or double quotes. */
static int buf_append_escaped(xb_buf_t *b, const char *s)
{
    const char *rep;
    int ok = 1;

    for (; *s && ok; s++) {
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '\'': rep = "&apos;"; break;
        case '"': rep = "&quot;"; break;
        default: rep = NULL; break;
        }
        ok = rep ? xb_buf_append_str(b, rep) : xb_buf_append(b, s, 1);
    }
    return ok;
}


/* -- ending ---------------------------------------------------------------------------- */

static const char *cond_name(xb_bosh_condition_t cond)
{
    switch (cond) {
    case XB_COND_NONE: return "none";
    case XB_COND_REMOTE_CONNECTION_FAILED: return "remote-connection-failed";
    case XB_COND_REMOTE_STREAM_ERROR: return "remote-stream-error";
    case XB_COND_INTERNAL_SERVER_ERROR: return "internal-server-error";
    default: return "other";
    }
}

/* Fires `closed`, once. `fmt` must not format anything the server sent inside a stanza. */
static void finish(xb_xmpp_conn_t *c, xb_bosh_condition_t cond, const char *data,
                   apr_size_t len, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void finish(xb_xmpp_conn_t *c, xb_bosh_condition_t cond, const char *data,
                   apr_size_t len, const char *fmt, ...)
{
    va_list ap;

    if (c->state == ST_CLOSED) {
        return;
    }
    c->state = ST_CLOSED;
    c->handing_up = 0;
    c->why = apr_palloc(c->pool, WHY_MAX);
    va_start(ap, fmt);
    vsnprintf(c->why, WHY_MAX, fmt, ap);
    va_end(ap);
    xb_log(XB_LOG_MARK, cond == XB_COND_NONE ? XB_LOG_DEBUG : XB_LOG_INFO,
           XBLOGNO(03001) "XMPP stream to %s closed (%s): %s", c->params.domain,
           cond_name(cond), c->why);
    if (c->events.closed) {
        c->events.closed(c->baton, cond, data, len, c->why);
    }
}

static void out_of_memory(xb_xmpp_conn_t *c)
{
    finish(c, XB_COND_INTERNAL_SERVER_ERROR, NULL, 0, "out of memory");
}

/* -- output ---------------------------------------------------------------------------- */

/* Moves whatever TLS produced into the socket buffer. */
static void drain_tls(xb_xmpp_conn_t *c)
{
    apr_size_t n;

    if (!c->tls) {
        return;
    }
    /* Room for what TLS holds, not a fixed chunk: a reserve would stay allocated. */
    while ((n = xb_tls_pending(c->tls)) > 0) {
        if (!xb_buf_reserve(&c->out, n)) {
            out_of_memory(c);
            return;
        }
        n = xb_tls_pull(c->tls, c->out.data + c->out.len, c->out.cap - c->out.len);
        if (n == 0) {
            break;
        }
        c->out.len += n;
    }
    xb_tls_trim(c->tls);
}

/* Plaintext for the server, through TLS once it is on. */
static void send_raw(xb_xmpp_conn_t *c, const char *data, apr_size_t len)
{
    if (!c->tls) {
        if (!xb_buf_append(&c->out, data, len)) {
            out_of_memory(c);
        }
        return;
    }
    if (xb_tls_write(c->tls, data, len) != XB_TLS_IO_OK) {
        drain_tls(c);
        finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, "TLS error: %s",
               xb_tls_error(c->tls));
        return;
    }
    drain_tls(c);
}

static void send_header(xb_xmpp_conn_t *c)
{
    xb_buf_t *h = &c->tmp;
    int ok;

    h->start = h->len = 0;
    ok = xb_buf_append_str(h, "<?xml version='1.0'?><stream:stream to='")
         && buf_append_escaped(h, c->params.domain)
         && xb_buf_append_str(h, "' xmlns='" XB_CLIENT_NS "' xmlns:stream='" XB_STREAM_NS
                               "' version='1.0'");
    if (ok && c->params.xml_lang) {
        ok = xb_buf_append_str(h, " xml:lang='") && buf_append_escaped(h, c->params.xml_lang)
             && xb_buf_append_str(h, "'");
    }
    if (!ok || !xb_buf_append_str(h, ">")) {
        out_of_memory(c);
        return;
    }
    send_raw(c, h->data, h->len);
    c->stream_out = 1;
    c->close_sent = 0;
    xb_buf_free(h); /* a header goes out once or twice in a stream's life */
}

/* </stream:stream> (after a stream error if `condition`) on a stream we opened. */
static void send_stream_end(xb_xmpp_conn_t *c, const char *condition)
{
    char buf[200];

    if (!c->stream_out || c->close_sent || c->state == ST_CLOSED) {
        return;
    }
    c->close_sent = 1;
    if (condition) {
        snprintf(buf, sizeof(buf),
                 "<stream:error><%s xmlns='" STREAM_ERRORS_NS "'/></stream:error>", condition);
        send_raw(c, buf, strlen(buf));
    }
    send_raw(c, STREAM_END, sizeof(STREAM_END) - 1);
}

/* Ends our side for good: stream end, then close_notify. */
static void shut_output(xb_xmpp_conn_t *c, const char *condition)
{
    send_stream_end(c, condition);
    if (c->tls) {
        xb_tls_close_notify(c->tls);
        drain_tls(c);
    }
}

/* The stream is usable: client data that waited goes out after the header. */
static void become_open(xb_xmpp_conn_t *c)
{
    c->state = ST_OPEN;
    c->handing_up = 1;
    if (c->early.len > c->early.start) {
        send_raw(c, c->early.data + c->early.start, c->early.len - c->early.start);
    }
    xb_buf_free(&c->early);
}

/* -- TLS --------------------------------------------------------------------------------- */

static const char *tls_name(const xb_xmpp_conn_t *c)
{
    return c->params.tls_name ? c->params.tls_name : c->params.domain;
}

static void tls_step(xb_xmpp_conn_t *c)
{
    xb_tls_io_t rv = xb_tls_handshake(c->tls);

    drain_tls(c); /* our next flight, or the alert that tells the server why we stop */
    if (rv == XB_TLS_IO_WANT_READ) {
        return;
    }
    if (rv != XB_TLS_IO_OK) {
        /* A warning, not just the info line of finish(): at the default LogLevel an admin
         * must see why no session to this server works (wrong name, unknown CA). */
        xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(03100) "XMPP stream to %s refused: TLS "
               "handshake failed, the server is not trusted as %s: %s", c->params.domain,
               tls_name(c), xb_tls_error(c->tls));
        finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, "TLS handshake with %s failed: %s",
               tls_name(c), xb_tls_error(c->tls));
        return;
    }
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(03002) "XMPP stream to %s: TLS established (%s)",
           c->params.domain, xb_tls_describe(c->tls));
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(03200) "XMPP stream to %s: %s", c->params.domain,
           xb_tls_resumed(c->tls) ? "TLS session resumed (no certificate exchanged)"
           : c->tls_endpoint ? "full TLS handshake, certificate verified"
                             : "full TLS handshake, certificate verified (resumption off)");
    if (c->events.tls_established) {
        c->events.tls_established(c->baton, xb_tls_resumed(c->tls));
        if (c->state == ST_CLOSED || c->destroy_pending) {
            return;
        }
    }
    /* RFC 6120 §5.4.3.3: a new stream over TLS; the framer forgets the old one. */
    xb_xmpp_framer_reset(c->framer);
    send_header(c);
    if (c->state == ST_HANDSHAKE) {
        become_open(c);
    }
}

static void begin_tls(xb_xmpp_conn_t *c)
{
    const char *err = "no TLS client context configured";

    if (c->params.ssl_ctx) {
        c->tls = xb_tls_create_resumable(c->pool, c->params.ssl_ctx, tls_name(c),
                                         c->tls_endpoint, &err);
    }
    if (!c->tls) {
        finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, "cannot start TLS: %s", err);
        return;
    }
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(03003) "XMPP stream to %s: starting TLS, "
           "verifying the certificate against %s", c->params.domain, tls_name(c));
    /* The plaintext stream is over. Anything after <proceed/> in this read is dropped by the
     * reset (it could only be an injection attempt). */
    xb_xmpp_framer_reset(c->framer);
    c->stream_out = 0;
    c->state = ST_HANDSHAKE;
    tls_step(c);
}

/* -- events from the framer ------------------------------------------------------------ */

/* Events from the framer mean nothing once the stream is over or the owner let it go. */
static int ignoring(const xb_xmpp_conn_t *c)
{
    return c->state == ST_CLOSED || c->destroy_pending || c->destroyed;
}

static void on_stream_open(void *baton, const char *from, const char *id, const char *version)
{
    xb_xmpp_conn_t *c = baton;

    if (ignoring(c)) {
        return;
    }
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(03004) "XMPP stream to %s: server stream "
           "opened (from %.100s, id %.100s, version %.10s)", c->params.domain,
           from ? from : "-", id ? id : "-", version ? version : "-");
    /* Without version 1.0 there are no features, hence no STARTTLS and no SASL. */
    if (!version || atoi(version) < 1) {
        shut_output(c, "unsupported-version");
        finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0,
               "the server does not speak XMPP 1.0");
    }
}

static void on_child(void *baton, const char *name, const char **atts)
{
    xb_xmpp_conn_t *c = baton;
    const char *ns = NULL;

    for (; atts && atts[0]; atts += 2) {
        if (!strcmp(atts[0], "xmlns")) {
            ns = atts[1];
        }
    }
    if (!ns) {
        return;
    }
    if (!strcmp(name, "starttls") && !strcmp(ns, TLS_NS)) {
        c->starttls_offered = 1;
    }
    else if (!strcmp(ns, STREAM_ERRORS_NS) && strcmp(name, "text") && !c->error_cond[0]) {
        snprintf(c->error_cond, sizeof(c->error_cond), "%s", name);
    }
}

static void on_features_before_open(xb_xmpp_conn_t *c, const char *name, int starttls,
                                    const char *data, apr_size_t len)
{
    if (strcmp(name, "stream:features")) {
        shut_output(c, "policy-violation");
        finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0,
               "expected <stream:features/>, the server sent <%.40s/>", name);
        return;
    }
    if (c->params.tls == XB_TLS_NONE) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(03005) "XMPP stream to %s: open without "
               "TLS, as configured", c->params.domain);
        become_open(c);
        if (c->state == ST_OPEN && c->events.element) {
            c->events.element(c->baton, data, len);
        }
        return;
    }
    if (!starttls) {
        xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(03101) "XMPP stream to %s refused: the "
               "server offers no STARTTLS and the domain requires it (never downgraded to "
               "plain)", c->params.domain);
        shut_output(c, NULL);
        finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, "server offers no STARTTLS");
        return;
    }
    send_raw(c, STARTTLS, sizeof(STARTTLS) - 1);
    if (c->state == ST_FEATURES) {
        c->state = ST_PROCEED;
    }
}

static void on_starttls_answer(xb_xmpp_conn_t *c, const char *name, const char *ns)
{
    if (ns && !strcmp(ns, TLS_NS) && !strcmp(name, "proceed")) {
        begin_tls(c);
        return;
    }
    if (ns && !strcmp(ns, TLS_NS) && !strcmp(name, "failure")) {
        /* RFC 6120 §5.4.2.2: the server closes the stream and the TCP connection. */
        finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, "server refused STARTTLS");
        return;
    }
    shut_output(c, "policy-violation");
    finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0,
           "expected <proceed/>, the server sent <%.40s/>", name);
}

static void on_stream_error(xb_xmpp_conn_t *c, const char *data, apr_size_t len)
{
    char cond[sizeof(c->error_cond)];

    snprintf(cond, sizeof(cond), "%s", c->error_cond[0] ? c->error_cond : "no condition");
    c->error_cond[0] = '\0';
    shut_output(c, NULL);
    if (!c->handing_up && c->params.tls != XB_TLS_NONE) {
        /* The plaintext stream before STARTTLS is not the browser's to see: anyone on the
         * path could have written it (a forged <see-other-host/>, say). */
        finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0,
               "stream error from the server before TLS: %s", cond);
        return;
    }
    finish(c, XB_COND_REMOTE_STREAM_ERROR, data, len, "stream error from the server: %s", cond);
}

static void on_element(void *baton, const char *name, const char *ns, const char *data,
                       apr_size_t len)
{
    xb_xmpp_conn_t *c = baton;
    int starttls = c->starttls_offered;

    c->starttls_offered = 0;
    if (ignoring(c)) {
        return;
    }
    if (!strcmp(name, "stream:error")) {
        on_stream_error(c, data, len);
        return;
    }
    c->error_cond[0] = '\0';
    switch (c->state) {
    case ST_FEATURES:
        on_features_before_open(c, name, starttls, data, len);
        break;
    case ST_PROCEED:
        on_starttls_answer(c, name, ns);
        break;
    case ST_OPEN:
    case ST_CLOSING:
        /* After our </stream:stream> the server may still deliver what it had in flight. */
        if (c->handing_up && c->events.element) {
            c->events.element(c->baton, data, len);
        }
        break;
    default:
        break;
    }
}

static void on_stream_close(void *baton)
{
    xb_xmpp_conn_t *c = baton;

    if (ignoring(c)) {
        return;
    }
    if (c->state == ST_CLOSING) {
        shut_output(c, NULL);
        finish(c, XB_COND_NONE, NULL, 0, "stream closed");
        return;
    }
    /* RFC 6120 §4.4: answer with our own closing tag before the socket goes. */
    shut_output(c, NULL);
    finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, "the server closed the stream");
}

static void on_framer_error(void *baton, const char *condition, const char *why)
{
    xb_xmpp_conn_t *c = baton;

    if (ignoring(c)) {
        return;
    }
    shut_output(c, condition);
    finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, "bad stream from the server (%s): %s",
           condition, why);
}

static const xb_xmpp_framer_events_t framer_events = {
    on_stream_open, on_child, on_element, on_stream_close, on_framer_error
};

/* -- lifetime ------------------------------------------------------------------------------ */

static apr_status_t conn_cleanup(void *data)
{
    xb_xmpp_conn_t *c = data;

    c->destroyed = 1;
    if (c->framer) {
        xb_xmpp_framer_destroy(c->framer);
        c->framer = NULL;
    }
    if (c->tls) {
        xb_tls_destroy(c->tls);
        c->tls = NULL;
    }
    if (c->params.ssl_ctx) {
        SSL_CTX_free(c->params.ssl_ctx); /* our reference (create) */
        c->params.ssl_ctx = NULL;
    }
    xb_buf_free(&c->out);
    xb_buf_free(&c->early);
    xb_buf_free(&c->tmp);
    return APR_SUCCESS;
}

/* Every public call that can fire events runs between enter() and leave(), so an event
 * handler may destroy the connection without pulling it out from under us. */
static int enter(xb_xmpp_conn_t *c)
{
    if (c->destroyed || c->destroy_pending) {
        return 0;
    }
    c->busy++;
    return 1;
}

static void leave(xb_xmpp_conn_t *c)
{
    if (--c->busy == 0 && c->destroy_pending) {
        c->destroy_pending = 0;
        apr_pool_cleanup_run(c->pool, c, conn_cleanup);
    }
}

xb_xmpp_conn_t *xb_xmpp_conn_create(apr_pool_t *pool, const xb_xmpp_conn_params_t *params,
                                    const xb_xmpp_conn_events_t *events, void *baton)
{
    xb_xmpp_conn_t *c = apr_pcalloc(pool, sizeof(*c));

    c->pool = pool;
    c->params = *params;
    c->params.domain = apr_pstrdup(pool, params->domain ? params->domain : "");
    c->params.xml_lang = params->xml_lang ? apr_pstrdup(pool, params->xml_lang) : NULL;
    c->params.tls_name = params->tls_name ? apr_pstrdup(pool, params->tls_name) : NULL;
    c->params.tls_resume_key = NULL; /* resolved to its endpoint below, not kept */
    c->events = *events;
    c->baton = baton;
    c->state = ST_INIT;
    c->framer = xb_xmpp_framer_create(pool, params->max_stanza_size, params->max_depth,
                                      &framer_events, c);
    if (!c->framer) {
        return NULL;
    }
    /* The context must outlive the stream, whatever its owner does with it meanwhile (a new
     * configuration replaces the daemon's): the endpoint lives in the context's cache. */
    if (c->params.ssl_ctx && !SSL_CTX_up_ref(c->params.ssl_ctx)) {
        xb_xmpp_framer_destroy(c->framer);
        return NULL;
    }
    if (c->params.ssl_ctx && params->tls_resume_key && c->params.tls != XB_TLS_NONE) {
        c->tls_endpoint = xb_tls_ctx_endpoint(c->params.ssl_ctx, params->tls_resume_key);
    }
    apr_pool_cleanup_register(pool, c, conn_cleanup, apr_pool_cleanup_null);
    return c;
}

void xb_xmpp_conn_destroy(xb_xmpp_conn_t *c)
{
    if (c->destroyed) {
        return;
    }
    if (c->busy) {
        c->destroy_pending = 1;
        return;
    }
    apr_pool_cleanup_run(c->pool, c, conn_cleanup);
}

/* -- the public calls ------------------------------------------------------------------- */

int xb_xmpp_conn_compact(xb_xmpp_conn_t *c)
{
    if (!c || !c->framer || c->state == ST_CLOSED) {
        return 0;
    }
    return xb_xmpp_framer_compact(c->framer);
}

void xb_xmpp_conn_start(xb_xmpp_conn_t *c)
{
    if (c->state != ST_INIT || !enter(c)) {
        return;
    }
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(03006) "XMPP stream to %s: starting (%s)",
           c->params.domain, c->params.tls == XB_TLS_NONE ? "no TLS" : "STARTTLS required");
    c->state = ST_FEATURES;
    send_header(c);
    leave(c);
}

/* Decrypts what the TLS layer has and frames it. */
static void read_tls(xb_xmpp_conn_t *c)
{
    char buf[READ_CHUNK];
    apr_size_t n;
    xb_tls_io_t rv;

    while (c->state != ST_CLOSED && !c->destroy_pending) {
        rv = xb_tls_read(c->tls, buf, sizeof(buf), &n);
        if (rv == XB_TLS_IO_OK) {
            xb_xmpp_framer_feed(c->framer, buf, n);
        }
        else if (rv == XB_TLS_IO_WANT_READ) {
            break;
        }
        else if (rv == XB_TLS_IO_CLOSED) {
            xb_tls_close_notify(c->tls); /* answered in kind; drained by the caller */
            if (c->state == ST_CLOSING) {
                finish(c, XB_COND_NONE, NULL, 0, "TLS closed after our stream end");
            }
            else {
                finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0,
                       "the server closed TLS without ending the stream");
            }
        }
        else {
            finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, "TLS error: %s",
                   xb_tls_error(c->tls));
        }
    }
}

static void feed_tls(xb_xmpp_conn_t *c, const char *data, apr_size_t len)
{
    xb_tls_feed(c->tls, data, len);
    if (c->state == ST_HANDSHAKE) {
        tls_step(c);
    }
    if (c->state != ST_HANDSHAKE && c->state != ST_CLOSED) {
        read_tls(c);
    }
    if (!c->destroy_pending) {
        drain_tls(c); /* TLS 1.3 may answer post-handshake messages */
    }
}

void xb_xmpp_conn_feed(xb_xmpp_conn_t *c, const char *data, apr_size_t len)
{
    if (c->state == ST_CLOSED || !enter(c)) {
        return;
    }
    if (c->tls) {
        feed_tls(c, data, len);
    }
    else {
        xb_xmpp_framer_feed(c->framer, data, len);
    }
    leave(c);
}

void xb_xmpp_conn_eof(xb_xmpp_conn_t *c, const char *why)
{
    if (c->state == ST_CLOSED || !enter(c)) {
        return;
    }
    if (c->state == ST_CLOSING) {
        finish(c, XB_COND_NONE, NULL, 0, "connection closed after our stream end");
    }
    else {
        finish(c, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, "connection to the server lost: %s",
               why ? why : "end of stream");
    }
    leave(c);
}

apr_size_t xb_xmpp_conn_pending(xb_xmpp_conn_t *c, const char **data)
{
    if (c->destroyed || c->out.len == c->out.start) {
        *data = NULL;
        return 0;
    }
    *data = c->out.data + c->out.start;
    return c->out.len - c->out.start;
}

void xb_xmpp_conn_written(xb_xmpp_conn_t *c, apr_size_t n)
{
    if (c->destroyed) {
        return;
    }
    if (n > c->out.len - c->out.start) {
        n = c->out.len - c->out.start;
    }
    xb_buf_consume(&c->out, n, OUT_KEEP);
}

void xb_xmpp_conn_send(xb_xmpp_conn_t *c, const char *data, apr_size_t len)
{
    if (c->state == ST_CLOSING || c->state == ST_CLOSED || !enter(c)) {
        return;
    }
    if (c->state != ST_OPEN) {
        if (!xb_buf_append(&c->early, data, len)) {
            out_of_memory(c);
        }
    }
    else {
        send_raw(c, data, len);
    }
    leave(c);
}

void xb_xmpp_conn_restart(xb_xmpp_conn_t *c)
{
    if (c->state != ST_OPEN || !enter(c)) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(03007) "XMPP stream to %s: restart ignored, "
               "the stream is not open", c->params.domain);
        return;
    }
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(03008) "XMPP stream to %s: restarting",
           c->params.domain);
    xb_xmpp_framer_reset(c->framer);
    send_header(c);
    leave(c);
}

void xb_xmpp_conn_set_xml_lang(xb_xmpp_conn_t *c, const char *xml_lang)
{
    if (!c->destroyed) {
        c->params.xml_lang = xml_lang ? apr_pstrdup(c->pool, xml_lang) : NULL;
    }
}

void xb_xmpp_conn_close(xb_xmpp_conn_t *c)
{
    if (c->state == ST_CLOSING || c->state == ST_CLOSED || !enter(c)) {
        return;
    }
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(03009) "XMPP stream to %s: closing",
           c->params.domain);
    /* close_notify waits for the server's </stream:stream>: after it the server could no
     * longer deliver what it has in flight, nor its own closing tag (RFC 6120 §4.4). */
    send_stream_end(c, NULL);
    if (c->state == ST_INIT || c->state == ST_HANDSHAKE) {
        /* No stream of ours is open for the server to close. */
        finish(c, XB_COND_NONE, NULL, 0, "closed before the stream was open");
    }
    else if (c->state != ST_CLOSED) {
        c->state = ST_CLOSING;
    }
    leave(c);
}

int xb_xmpp_conn_is_closed(const xb_xmpp_conn_t *c)
{
    return c->state == ST_CLOSED || c->destroyed;
}

int xb_xmpp_conn_is_ready(const xb_xmpp_conn_t *c)
{
    return c->state == ST_OPEN && !c->destroyed;
}

/* -- the client context --------------------------------------------------------------------- */

/* Logs and empties OpenSSL's error queue: why a CA file did not load, for the admin. */
static void log_ssl_queue(const char *what, const char *ca_file)
{
    char reasons[512] = "";
    char one[200];
    unsigned long e;
    size_t used;

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, one, sizeof(one));
        used = strlen(reasons);
        snprintf(reasons + used, sizeof(reasons) - used, "%s%s", used ? "; " : "", one);
    }
    xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(03010) "%s%s%s: %s", what, ca_file ? " " : "",
           ca_file ? ca_file : "", reasons[0] ? reasons : "unknown OpenSSL error");
}

SSL_CTX *xb_xmpp_conn_ssl_ctx(const char *ca_file, const char **errmsg)
{
    SSL_CTX *ctx;
    int ok;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        log_ssl_queue("cannot create an OpenSSL client context", NULL);
        *errmsg = "cannot create an OpenSSL client context";
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                 : SSL_CTX_set_default_verify_paths(ctx);
    if (!ok) {
        log_ssl_queue(ca_file ? "cannot load CA certificates from"
                              : "cannot load the system's CA certificates", ca_file);
        *errmsg = ca_file ? "cannot load the CA file (see the error log for OpenSSL's reason)"
                          : "cannot load the system's CA certificates";
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (!xb_tls_ctx_enable_resumption(ctx)) {
        log_ssl_queue("cannot set up TLS session resumption", NULL);
        *errmsg = "out of memory setting up TLS session resumption";
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}
