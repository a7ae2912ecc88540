/* SetHandler xmpp-bosh: one HTTP request of a BOSH session.
 *
 * Thin by design: read and bound the body, parse just enough to validate it (and to reject an
 * unknown SID from the shared table without bothering the daemon), hand it to the daemon, wait
 * for the answer, write it. The wait is the long-poll: one apr_poll over the daemon connection,
 * the client connection (a client that goes away is noticed at once) and this child's wake-up
 * pipe (a stopping child releases its held requests instead of lingering `wait` seconds). The
 * daemon decides every answer, so nothing is lost when this thread gives up early: an answer
 * that could not be delivered stays in the session's replay cache for the client's re-send.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>
#include <apr_poll.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "mod_xmpp_bridge_private.h"
#include "xb_bosh_body.h"
#include "xb_bosh_session.h"
#include "xb_ipc.h"
#include "xb_log.h"

#define XB_CONTENT_TYPE "text/xml; charset=utf-8"
/* Beyond the session's own wait, how long to wait for the daemon's answer. */
#define DAEMON_ANSWER_SLACK apr_time_from_sec(15)
#define RELEASE_PATIENCE apr_time_from_sec(5)

typedef struct bosh_exchange {
    request_rec *r;
    const xb_config_t *conf;
    xb_daemon_link_t link;
    int legacy; /* no `ver` seen: errors as HTTP status codes (XEP-0124 §17.1) */
    const char *content_type; /* §7.1: what the creation request's `content` asked for */
    int gzip;   /* the session's creation request accepted gzip (§7.1 `accept`) */
} bosh_exchange_t;

/* Error responses keep these too (err_headers_out). */
static void set_common_headers(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
    /* The answer depends on Origin (refused or allowed cross-site): caches must know. */
    apr_table_mergen(r->err_headers_out, "Vary", "Origin");
}

/* ---- CORS (XmppBridgeCORSOrigin) -------------------------------------------------------- */

/* "scheme://host[:port]" in lower case without the scheme's default port, as browsers put
 * it in Origin; also the host part alone in *host and whether a port was written. */
static const char *normalize_origin(apr_pool_t *p, const char *scheme, const char *hostport,
                                    const char **host, int *has_port)
{
    char *hp = apr_pstrdup(p, hostport), *c, *colon;
    const char *dflt = !strcasecmp(scheme, "https") ? ":443" : ":80";

    for (c = hp; *c; c++) {
        *c = (char)apr_tolower(*c);
    }
    colon = strrchr(hp, ':');
    if (colon && strchr(colon, ']')) {
        colon = NULL; /* [v6] without a port */
    }
    if (colon && !strcmp(colon, dflt)) {
        *colon = '\0';
        colon = NULL;
    }
    *has_port = colon != NULL;
    *host = colon ? apr_pstrmemdup(p, hp, (apr_size_t)(colon - hp)) : hp;
    return apr_pstrcat(p, apr_pstrdup(p, scheme), "://", hp, NULL);
}

/* Same origin: the request's own scheme://host[:port] (Host header). A front end that ends
 * TLS and passes Host without a port makes the scheme and port unknowable here: then the host
 * name alone decides. */
static int same_origin(request_rec *r, const char *origin)
{
    const char *host = apr_table_get(r->headers_in, "Host");
    const char *own, *own_host, *o_host, *sep = ap_strstr_c(origin, "://");
    int own_port, o_port;
    char *o_scheme;

    if (!host || !sep) {
        return 0;
    }
    o_scheme = apr_pstrmemdup(r->pool, origin, (apr_size_t)(sep - origin));
    own = normalize_origin(r->pool, ap_http_scheme(r), host, &own_host, &own_port);
    origin = normalize_origin(r->pool, o_scheme, sep + 3, &o_host, &o_port);
    if (!strcasecmp(own, origin)) {
        return 1;
    }
    return !own_port && !strcmp(own_host, o_host);
}

static int cors_listed(const xb_dir_conf_t *dc, const char *origin)
{
    int i;

    for (i = 0; dc->cors_origins && i < dc->cors_origins->nelts; i++) {
        const char *o = APR_ARRAY_IDX(dc->cors_origins, i, const char *);
        if (!strcmp(o, "*") || !strcasecmp(o, origin)) {
            return 1;
        }
    }
    return 0;
}

/* A browser's cross-site request is served only for a listed origin (the page then reads the
 * answer through Access-Control-Allow-Origin); any other is refused with 403, which BOSH
 * clients treat as fatal: the page's configuration is wrong, retrying cannot help. Requests
 * without Origin come from no browser page and are not cross-site requests. */
static int check_origin(request_rec *r, int *cross_site)
{
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const xb_dir_conf_t *dc = xb_conf_dir(r);

    *cross_site = 0;
    if (!origin || same_origin(r, origin)) {
        return OK;
    }
    if (!cors_listed(dc, origin)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, XBLOGNO(05231) "cross-site BOSH request "
                      "from Origin '%.120s' refused (403): not in XmppBridgeCORSOrigin", origin);
        xb_shm_table_count(xb_glue_table(), XB_CNT_REFUSED_CROSS_SITE, 1);
        return HTTP_FORBIDDEN;
    }
    *cross_site = 1;
    /* The origin itself, never "*": it works with credentials too, and Vary: Origin is set. */
    apr_table_setn(r->err_headers_out, "Access-Control-Allow-Origin", origin);
    return OK;
}

static int answer_preflight(request_rec *r, int cross_site)
{
    apr_table_setn(r->headers_out, "Allow", "POST, OPTIONS");
    if (cross_site) {
        apr_table_setn(r->headers_out, "Access-Control-Allow-Methods", "POST, OPTIONS");
        apr_table_setn(r->headers_out, "Access-Control-Allow-Headers", "Content-Type");
        apr_table_setn(r->headers_out, "Access-Control-Max-Age", "86400");
    }
    ap_set_content_length(r, 0);
    return OK;
}

/* One brigade with the whole body and EOS: Content-Length is known even when mod_deflate's
 * DEFLATE filter compresses it (XEP-0124 §5: no chunked transfer coding). */
static int write_answer(bosh_exchange_t *x, int status, const char *body, apr_size_t len)
{
    request_rec *r = x->r;
    apr_bucket_brigade *bb;

    if (status == XB_BOSH_ABANDON) {
        /* No answer may be given yet (an early RID): close, the client sends it again. */
        r->connection->keepalive = AP_CONN_CLOSE;
        r->connection->aborted = 1;
        return OK;
    }
    if (status != HTTP_OK) {
        return status;
    }
    ap_set_content_type(r, x->content_type ? x->content_type : XB_CONTENT_TYPE);
    if (x->gzip && x->conf->gzip) {
        /* mod_deflate checks Accept-Encoding (and no-gzip) itself and adds its Vary. */
        ap_add_output_filter("DEFLATE", NULL, r, r->connection);
    }
    else {
        ap_set_content_length(r, (apr_off_t)len);
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if (len) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(body, len,
                                                               r->connection->bucket_alloc));
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(r->connection->bucket_alloc));
    if (ap_pass_brigade(r->output_filters, bb) != APR_SUCCESS) {
        r->connection->aborted = 1;
    }
    return OK;
}

static int answer_terminate(bosh_exchange_t *x, xb_bosh_condition_t cond)
{
    apr_size_t len = 0;
    const char *body;
    int legacy_status = xb_bosh_condition_legacy_status(cond);

    if (x->legacy && legacy_status != HTTP_OK) {
        return legacy_status;
    }
    body = xb_bosh_terminate_build(x->r->pool, cond, &len);
    return write_answer(x, HTTP_OK, body, len);
}

/* XmppBridgeSeeOtherURI: §17.2 see-other-uri with the <uri/>. §17.1 gives it no HTTP code, so
 * legacy clients get the body too. */
static int answer_see_other_uri(bosh_exchange_t *x, const char *uri)
{
    xb_bosh_response_attrs_t attrs;
    apr_size_t len = 0;
    const char *body;

    memset(&attrs, 0, sizeof(attrs));
    attrs.condition = XB_COND_SEE_OTHER_URI;
    attrs.see_other_uri = uri;
    body = xb_bosh_response_build(x->r->pool, &attrs, NULL, 0, &len);
    return write_answer(x, HTTP_OK, body, len);
}

/* Content-Encoding: gzip bodies are inflated by mod_deflate's input filter (named DEFLATE, like
 * its output filter; "INFLATE" is an output filter), which also bounds the inflation ratio;
 * read_body's limit applies to the inflated bytes. */
static int accept_body_encoding(bosh_exchange_t *x)
{
    request_rec *r = x->r;
    const char *ce = apr_table_get(r->headers_in, "Content-Encoding");

    if (!ce || !*ce || !strcasecmp(ce, "identity")) {
        return OK;
    }
    if ((!strcasecmp(ce, "gzip") || !strcasecmp(ce, "x-gzip")) && x->conf->gzip) {
        ap_add_input_filter("DEFLATE", NULL, r, r->connection);
        return OK;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, XBLOGNO(05232) "BOSH body with Content-Encoding "
                  "'%.40s' refused (415)%s", ce, x->conf->gzip ? "" : ": gzip needs mod_deflate");
    return HTTP_UNSUPPORTED_MEDIA_TYPE;
}

/* The first buffer for a body: what Content-Length announces (every BOSH client sends it;
 * mod_deflate's inflation can make the body larger, then the buffer grows), else a small one.
 * Not `limit` bytes up front: a 64 kB allocation is a separate allocator node per request,
 * and the connection's allocator keeps the nodes a request freed while the connection idles
 * in keep-alive, so every client's two connections would carry the pages it touched. */
#define BODY_FIRST_BUFFER 2048

static apr_size_t body_first_buffer(request_rec *r, apr_size_t limit)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t announced;

    if (cl && apr_strtoff(&announced, cl, NULL, 10) == APR_SUCCESS && announced >= 0
        && (apr_uint64_t)announced <= limit) {
        return (apr_size_t)announced;
    }
    return limit < BODY_FIRST_BUFFER ? limit : BODY_FIRST_BUFFER;
}

/* Reads the whole body, at most `limit` bytes. */
static int read_body(request_rec *r, apr_size_t limit, char **data, apr_size_t *len)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_size_t size = body_first_buffer(r, limit);
    char *buf = apr_palloc(r->pool, size + 1);
    apr_size_t used = 0;
    int seen_eos = 0;

    while (!seen_eos) {
        apr_bucket *b;
        apr_status_t rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                                         APR_BLOCK_READ, HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
            const char *chunk;
            apr_size_t n;
            if (APR_BUCKET_IS_EOS(b)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            rv = apr_bucket_read(b, &chunk, &n, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                return HTTP_BAD_REQUEST;
            }
            if (used + n > limit) {
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, XBLOGNO(05030) "BOSH body over "
                              "XmppBridgeMaxBodySize (%" APR_SIZE_T_FMT " bytes)", limit);
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            if (used + n > size) {
                /* Doubling bounds the copies; the old buffers stay in r->pool (less than
                 * 2 x `limit` bytes in all). */
                char *bigger;
                size = used + n > 2 * size ? used + n : 2 * size;
                size = size > limit ? limit : size;
                bigger = apr_palloc(r->pool, size + 1);
                memcpy(bigger, buf, used);
                buf = bigger;
            }
            memcpy(buf + used, chunk, n);
            used += n;
        }
        apr_brigade_cleanup(bb);
    }
    buf[used] = '\0';
    *data = buf;
    *len = used;
    return OK;
}

/* ---- talking to the daemon ---------------------------------------------------------------- */

static apr_status_t send_request(bosh_exchange_t *x, const char *body, apr_size_t len)
{
    request_rec *r = x->r;
    xb_ipc_request_meta_t meta;
    const char *user = r->user ? r->user : "";
    apr_size_t user_len = strlen(user);
    char *payload;

    memset(&meta, 0, sizeof(meta));
    apr_cpystrn(meta.client_ip, r->useragent_ip ? r->useragent_ip : "", sizeof(meta.client_ip));
    if (xb_conf_dir(r)->require_site_user == 1) {
        meta.flags |= XB_REQ_REQUIRE_SITE_USER;
    }
    meta.site_user_len = (uint32_t)user_len;
    /* meta, then the site user, then the body: one frame, two parts. */
    payload = apr_palloc(r->pool, sizeof(meta) + user_len);
    memcpy(payload, &meta, sizeof(meta));
    memcpy(payload + sizeof(meta), user, user_len);
    return xb_link_send(&x->link, XB_IPC_BOSH_REQUEST, payload, sizeof(meta) + user_len, body,
                        len);
}

/* Tells the daemon to end `sid` (this handler already answered item-not-found). */
static void send_terminate_notice(bosh_exchange_t *x, const char *sid)
{
    if (xb_link_open(&x->link, x->r, x->conf->socket_path) != APR_SUCCESS) {
        return;
    }
    xb_link_send(&x->link, XB_IPC_TERMINATE, sid, strlen(sid), NULL, 0);
    xb_link_close(&x->link);
}

/* An orderly close (FIN) seen on the TCP socket itself: a non-blocking speculative read through
 * the input filters cannot tell it from "nothing yet", since the socket bucket turns end of
 * stream into an empty bucket and the core filter answers a non-blocking read with an empty
 * brigade either way. */
static int peer_closed(conn_rec *c)
{
    apr_socket_t *sock = ap_get_conn_socket(c);
    apr_os_sock_t fd;
    char byte;
    ssize_t n;

    if (!sock || apr_os_sock_get(&fd, sock) != APR_SUCCESS) {
        return 0;
    }
    do {
        n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* A readable client connection is either a pipelined request or the client going away: peek
 * without consuming to tell them apart. */
static int client_gone(conn_rec *c)
{
    apr_bucket_brigade *bb = apr_brigade_create(c->pool, c->bucket_alloc);
    apr_status_t rv = ap_get_brigade(c->input_filters, bb, AP_MODE_SPECULATIVE,
                                     APR_NONBLOCK_READ, 1);
    int gone = (rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv));
    apr_off_t pending = 0;

    if (rv == APR_SUCCESS && !APR_BRIGADE_EMPTY(bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_FIRST(bb))) {
        gone = 1;
    }
    else if (!gone && (APR_STATUS_IS_EAGAIN(rv) ||
                       (apr_brigade_length(bb, 0, &pending) == APR_SUCCESS && pending <= 0))) {
        /* Readable, yet no byte came through the filters: the peer's FIN, or a partial TLS
         * record that is still in the socket (then the peek sees it and this is no close). */
        gone = peer_closed(c);
    }
    apr_brigade_destroy(bb);
    return gone;
}

typedef enum { WAIT_ANSWER, WAIT_CLIENT_GONE, WAIT_DAEMON_GONE, WAIT_TIMEOUT } wait_result_t;

/* The long-poll. Returns when the daemon's answer is readable, or why not. */
static wait_result_t wait_for_daemon(bosh_exchange_t *x, apr_interval_time_t timeout)
{
    request_rec *r = x->r;
    apr_pollfd_t fds[3];
    apr_interval_time_t client_timeout;
    apr_time_t deadline = apr_time_now() + timeout;
    int nfds = 0, watch_client = 0, watch_wake = 0;

    memset(fds, 0, sizeof(fds));
    fds[nfds].desc_type = APR_POLL_SOCKET;
    fds[nfds].desc.s = x->link.sock;
    fds[nfds].reqevents = APR_POLLIN;
    fds[nfds].p = r->pool;
    nfds++;
    if (ap_get_pollfd_from_conn(r->connection, &fds[nfds], &client_timeout) == APR_SUCCESS) {
        fds[nfds].reqevents = APR_POLLIN;
        watch_client = nfds++;
    }
    if (xb_glue_wake_pipe()) {
        fds[nfds].desc_type = APR_POLL_FILE;
        fds[nfds].desc.f = xb_glue_wake_pipe();
        fds[nfds].reqevents = APR_POLLIN;
        fds[nfds].p = r->pool;
        watch_wake = nfds++;
    }
    for (;;) {
        apr_int32_t n = 0;
        apr_time_t now = apr_time_now();
        apr_status_t rv;
        int i;

        if (now >= deadline) {
            return WAIT_TIMEOUT;
        }
        rv = apr_poll(fds, nfds, &n, deadline - now);
        if (APR_STATUS_IS_EINTR(rv)) {
            continue;
        }
        if (APR_STATUS_IS_TIMEUP(rv)) {
            return WAIT_TIMEOUT;
        }
        if (rv != APR_SUCCESS) {
            return WAIT_DAEMON_GONE;
        }
        if (fds[0].rtnevents) {
            return WAIT_ANSWER;
        }
        for (i = 1; i < nfds; i++) {
            if (!fds[i].rtnevents) {
                continue;
            }
            if (watch_client && i == watch_client) {
                if (client_gone(r->connection)) {
                    return WAIT_CLIENT_GONE;
                }
                /* A pipelined request waits its turn; stop watching the client. */
                fds[i].reqevents = 0;
                fds[i].desc_type = APR_NO_DESC;
            }
            else if (watch_wake && i == watch_wake) {
                /* This child is stopping: the daemon answers now with what is queued. */
                xb_link_send(&x->link, XB_IPC_RELEASE, NULL, 0, NULL, 0);
                fds[i].reqevents = 0;
                fds[i].desc_type = APR_NO_DESC;
                if (deadline > apr_time_now() + RELEASE_PATIENCE) {
                    deadline = apr_time_now() + RELEASE_PATIENCE;
                }
            }
        }
    }
}

static int relay_answer(bosh_exchange_t *x)
{
    char *body = NULL;
    apr_size_t len = 0;
    int status = 0;
    apr_status_t rv = xb_link_read_answer(&x->link, &status, &body, &len);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, x->r, XBLOGNO(05031) "the bridge daemon went "
                      "away while this request was held");
        return answer_terminate(x, XB_COND_REMOTE_CONNECTION_FAILED);
    }
    xb_link_keep(&x->link); /* answered whole: the next request of this child takes it */
    return write_answer(x, status, body, len);
}

/* Log lines name a session by its tag (xb_log.h), never by its SID. */
static const char *sid_tag(request_rec *r, const char *sid)
{
    char *tag;

    if (!sid) {
        return "new";
    }
    tag = apr_palloc(r->pool, XB_LOG_TAG_LEN + 1);
    xb_log_session_tag(sid, tag);
    return tag;
}

/* ---- validation without a round trip ------------------------------------------------------ */

/* Unknown SIDs and RIDs outside the window are answered from the shared table. Returns DECLINED
 * when the request should go to the daemon, else the handler's result. */
static int check_against_table(bosh_exchange_t *x, const xb_bosh_body_t *body)
{
    xb_shm_table_t *table = xb_glue_table();
    xb_shm_session_t row;

    if (!body->sid || !table) {
        return DECLINED;
    }
    if (xb_shm_table_lookup(table, body->sid, &row) != APR_SUCCESS) {
        xb_shm_table_count(table, XB_CNT_UNKNOWN_SID, 1);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, x->r, XBLOGNO(05033) "BOSH request for unknown "
                      "or ended session %s", sid_tag(x->r, body->sid));
        return answer_terminate(x, XB_COND_ITEM_NOT_FOUND);
    }
    x->legacy = !row.has_ver;
    x->content_type = row.content_type[0] ? apr_pstrdup(x->r->pool, row.content_type) : NULL;
    x->gzip = (row.flags & XB_ROW_ACCEPT_GZIP) != 0;
    if (body->rid > row.rid_hi + row.requests || body->rid < row.rid_lo) {
        /* Distances, not RIDs: with the SID they are the session's credentials. */
        int below = body->rid < row.rid_lo;
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, x->r, XBLOGNO(05034) "session %s: rid is %"
                      APR_UINT64_T_FMT " %s the window: terminated", sid_tag(x->r, row.sid),
                      below ? row.rid_lo - body->rid : body->rid - (row.rid_hi + row.requests),
                      below ? "below" : "above");
        xb_shm_table_count(table, XB_CNT_WINDOW_VIOLATIONS, 1);
        send_terminate_notice(x, row.sid);
        return answer_terminate(x, XB_COND_ITEM_NOT_FOUND);
    }
    return DECLINED;
}

static int bosh_exchange(bosh_exchange_t *x, const char *data, apr_size_t len,
                         const xb_bosh_body_t *body)
{
    apr_status_t rv;
    apr_interval_time_t wait = apr_time_from_sec(x->conf->max_wait) + DAEMON_ANSWER_SLACK;

    rv = xb_link_open_reuse(&x->link, x->r, x->conf->socket_path);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, x->r, XBLOGNO(05035) "cannot reach the bridge "
                      "daemon at %s", x->conf->socket_path);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    rv = send_request(x, data, len);
    if (rv != APR_SUCCESS && x->link.reused) {
        /* The idle connection died under us (the daemon restarted): nothing of the request
         * reached the daemon, so it goes again on a fresh connection. */
        xb_link_close(&x->link);
        rv = xb_link_open(&x->link, x->r, x->conf->socket_path);
        if (rv == APR_SUCCESS) {
            rv = send_request(x, data, len);
        }
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, x->r, XBLOGNO(05036) "cannot hand the request "
                      "to the bridge daemon");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    switch (wait_for_daemon(x, wait)) {
    case WAIT_ANSWER:
        return relay_answer(x);
    case WAIT_CLIENT_GONE:
        /* Closing our end tells the daemon; the answer it would have sent stays queued. */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, x->r, XBLOGNO(05037) "client went away "
                      "during a held request (session %s)", sid_tag(x->r, body->sid));
        x->r->connection->aborted = 1;
        return OK;
    case WAIT_TIMEOUT:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, x->r, XBLOGNO(05038) "the bridge daemon did not "
                      "answer within wait + %" APR_TIME_T_FMT " s (session %s)",
                      apr_time_sec(DAEMON_ANSWER_SLACK), sid_tag(x->r, body->sid));
        return HTTP_SERVICE_UNAVAILABLE;
    case WAIT_DAEMON_GONE:
    default:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, x->r, XBLOGNO(05039) "polling the bridge daemon "
                      "failed");
        return answer_terminate(x, XB_COND_REMOTE_CONNECTION_FAILED);
    }
}

int xb_bosh_handler(request_rec *r)
{
    bosh_exchange_t x;
    xb_bosh_parse_limits_t limits = { 64, 1 };
    xb_bosh_body_t *body = NULL;
    const char *errmsg = NULL;
    char *data = NULL;
    apr_size_t len = 0;
    int rc, cross_site = 0;

    if (!r->handler || strcmp(r->handler, XB_BOSH_HANDLER) != 0) {
        return DECLINED;
    }
    set_common_headers(r);
    ap_allow_methods(r, REPLACE_ALLOW, "POST", "OPTIONS", NULL);
    rc = check_origin(r, &cross_site);
    if (rc != OK) {
        return rc;
    }
    if (r->method_number == M_OPTIONS) {
        return answer_preflight(r, cross_site);
    }
    if (r->method_number != M_POST) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    memset(&x, 0, sizeof(x));
    x.r = r;
    x.conf = xb_conf_get(r->server);
    x.link.fd = -1;
    rc = accept_body_encoding(&x);
    if (rc != OK) {
        return rc;
    }
    rc = read_body(r, x.conf->max_body_size, &data, &len);
    if (rc != OK) {
        return rc;
    }
    if (xb_conf_dir(r)->see_other_uri) {
        return answer_see_other_uri(&x, xb_conf_dir(r)->see_other_uri);
    }
    if (xb_bosh_body_parse(r->pool, data, len, &limits, &body, &errmsg) != XB_BODY_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, XBLOGNO(05040) "malformed BOSH body from "
                      "%s: %s", r->useragent_ip, errmsg ? errmsg : "unparseable");
        /* A creation request without `ver` is a legacy client's: HTTP 400 (§17.1). */
        x.legacy = xb_bosh_body_legacy_hint(data, len);
        return answer_terminate(&x, XB_COND_BAD_REQUEST);
    }
    x.legacy = body->sid == NULL && body->ver == NULL;
    if (!body->sid) {
        /* The creation response already follows the session's content and accept. */
        x.content_type = xb_bosh_content_type(body);
        x.gzip = xb_bosh_accept_has(body->accept, "gzip");
    }
    rc = check_against_table(&x, body);
    if (rc != DECLINED) {
        return rc;
    }
    return bosh_exchange(&x, data, len, body);
}
