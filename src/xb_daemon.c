/* The bridge daemon's event loop; see xb_daemon.h.
 *
 * Three kinds of descriptors share one pollset:
 *  - the listening Unix socket, where handlers connect;
 *  - the handlers' connections (ipc_conn_t), one request at a time each: a request frame comes
 *    in, a response frame goes out when the session answers, and the connection stays open for
 *    the handler's next request (each Apache child keeps its idle connections,
 *    mod_xmpp_bridge_link.c) until the handler closes it;
 *  - one XMPP client-to-server socket per session (bridge_session_t).
 * A wake-up costs what the sessions that have something to do cost, not what all of them do:
 * each session's earliest deadline sits in a min-heap (xb_timer_heap), and every session a
 * wake-up touched (session_sync) goes on a list; run_timers looks at the due and the touched
 * ones only.
 * Sessions never block each other: every socket is non-blocking and every protocol decision is
 * made by the sans-I/O cores (xb_bosh_session, xb_xmpp_conn) from inside this loop.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <apr_hash.h>
#include <apr_poll.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "xb_bosh_body.h"
#include "xb_bosh_session.h"
#include "xb_buf.h"
#include "xb_daemon.h"
#include "xb_ipc.h"
#include "xb_log.h"
#include "xb_jwt.h"
#include "xb_timer_heap.h"
#include "xb_warm_pool.h"
#include "xb_xmpp_conn.h"
#include "xb_xmpp_login.h"

#define READ_CHUNK 16384
/* How long a stopping daemon waits for streams to close and answers to be written. */
#define SHUTDOWN_GRACE apr_time_from_sec(2)
/* How long a finished session waits for the server's </stream:stream>. */
#define CLOSE_GRACE apr_time_from_sec(2)
/* The loop wakes at least this often even with no deadline (stop flag, housekeeping). */
#define MAX_POLL_WAIT apr_time_from_msec(500)
/* A session's XMPP stream quiet this long gives its parser back (session_upkeep). */
#define IDLE_PARSER_AFTER apr_time_from_sec(10)
/* After parsers were given back, free heap pages go back to the system at most this often. */
#define TRIM_EVERY apr_time_from_sec(10)
/* Out of descriptors, accepting is retried this often (see pause_accepting). */
#define ACCEPT_RETRY apr_time_from_msec(100)
/* Freed pool blocks the daemon's allocator keeps for reuse; the rest go back to the system.
 * Enough for a round's churn (answer scratch pools, ended sessions); without a bound, every
 * block of a past peak stayed resident, and a new session's pool was one of them, all its
 * pages touched, where a fresh block has only the pages the session uses (see
 * docs/dev/perf-plan.md, memory per held session). */
#define POOL_MAX_FREE (256 * 1024)

typedef enum { FD_LISTENER = 1, FD_IPC, FD_XMPP } fd_kind_t;

typedef struct xb_daemon xb_daemon_t;
typedef struct bridge_session bridge_session_t;
typedef struct warm_domain warm_domain_t;

/* Where a warm stream is (XmppBridgeWarmStreams; see xb_warm_pool.h). */
typedef enum {
    WARM_STARTING = 1, /* connecting, STARTTLS, TLS handshake, waiting for the features */
    WARM_READY,        /* post-TLS features in hand: a session may take it */
    WARM_GONE          /* out of the pool (closing): never handed out */
} warm_state_t;

/* Live sessions of one client address (XmppBridgeMaxSessionsPerAddress). Entries with no
 * session left go to a free list, so memory stays bounded by the addresses seen at once. */
typedef struct address_count {
    char ip[64];
    unsigned live;
    struct address_count *next_free;
} address_count_t;

/* An answer buffer bigger than this is released once written: none is kept, since a
 * connection spends its life waiting (idle, or holding a request) and a malloc per answer
 * costs less than the up to 4 kB each of them kept before. */
#define CONN_OUT_KEEP 0

/* Handler connections are allocated CONN_SLAB at a time from the daemon's pool and recycled
 * through a free list: they have no pool of their own, whose 8 kB minimum was most of what a
 * held request cost the daemon (the struct, its apr_socket_t and the reader are ~0.5 kB). */
#define CONN_SLAB 64

/* One handler's connection: carries one HTTP request at a time, then the next one. */
typedef struct ipc_conn {
    fd_kind_t kind; /* first member: the pollset's client_data points here */
    xb_daemon_t *d;
    struct ipc_conn *next_free; /* on d->free_conns */
    int in_use;
    apr_pool_t *pool;        /* = d->scratch: what a frame needs while it is handled (cleared
                                after every round; whatever outlives that is copied) */
    apr_socket_t *sock;      /* the slot's own (from d->pool, made once), set to each descriptor
                                accepted into the slot by apr_os_sock_put */
    apr_pollfd_t pfd;
    apr_int16_t events;
    xb_ipc_reader_t *reader; /* malloc'd; its buffer is released between frames */
    xb_request_id_t req_id;  /* non-zero while registered in d->requests */
    bridge_session_t *session;
    xb_buf_t out;            /* the answer being written (malloc: a connection lives long) */
    int closing;
    int passed_fd;           /* a descriptor that came with the frame (SCM_RIGHTS), or -1 */
    /* On d's idle list while answered and waiting for its handler's next request: the
     * connections given back first when the daemon runs out of descriptors. */
    struct ipc_conn *idle_prev, *idle_next;
    int idle;
} ipc_conn_t;

struct bridge_session {
    fd_kind_t kind;
    xb_daemon_t *d;
    apr_pool_t *pool;
    char sid[XB_SID_HEX_LEN + 1];
    char tag[XB_LOG_TAG_LEN + 1]; /* names the session in log lines (never the SID) */
    const xb_domain_t *domain;
    xb_bosh_session_t *bosh;
    xb_xmpp_conn_t *xmpp;
    apr_socket_t *sock;
    apr_pollfd_t pfd;
    apr_int16_t events; /* registered with the pollset; 0: not registered */
    int connecting;     /* TCP connect in progress */
    int sock_closed;
    int xmpp_closed;    /* the stream is over (xb_xmpp_conn fired `closed`) */
    apr_time_t connect_deadline; /* 0 once the stream is ready */
    apr_time_t close_deadline;   /* 0 until the session finished */
    apr_time_t last_read;        /* the last bytes from the XMPP server */
    int reaped;
    /* Prebind: set while the daemon logs in on the user's behalf (bosh is NULL until then). */
    xb_xmpp_login_t *login;
    xb_request_id_t prebind_req; /* the prebind handler waiting for the outcome */
    int prebind_failed;
    const char *prebind_jid;
    const char *site_user;       /* REMOTE_USER that prebound this session */
    apr_time_t created;
    int ended;                   /* ended by the daemon (logout, cap); its client is told */
    int attached;                /* prebound, and the browser has sent its first request */
    address_count_t *address;    /* counted there while live; NULL once released */
    int backpressure;            /* reading paused: XmppBridgeMaxQueuedBytes are queued */
    /* XEP-0124 §16: a stream added to a session is a bridge_session_t of its own for its
     * connection (socket, pollset entry, connect timeout, close grace, reaping all work as
     * for a session's first stream), listed under a random key nobody is told, with no BOSH
     * side: it reaches the session through `owner`. */
    int is_added_stream;
    bridge_session_t *owner;     /* NULL once the owner was reaped */
    unsigned stream_index;       /* its number in the owner's BOSH session */
    int stream_done;             /* the BOSH side closed it */
    bridge_session_t **added;    /* owner: added streams by index (NULL: none); n_added slots */
    unsigned n_added;
    xb_timer_t timer;            /* armed at the earliest of the deadlines above and the BOSH
                                    session's own (xb_bosh_session_next_deadline) */
    int touched;                 /* on d->touched (or queued for reaping) */
    /* A warm stream: a bridge_session_t with no SID, no BOSH or login side, not in
     * d->sessions, listed in its domain's pool. A session that takes it becomes this very
     * object (session_new), so its pool, the stream's baton, the pollset entry and the timer
     * stay where they are and nothing is moved. */
    warm_domain_t *warm;         /* NULL: not (or no longer) a warm stream */
    warm_state_t warm_state;
    bridge_session_t *warm_next, *warm_prev; /* in warm->streams while not WARM_GONE */
    const char *warm_features;   /* the post-TLS features, for the session that takes it */
    apr_time_t warm_born;        /* its connect began (XmppBridgeWarmStreamMaxAge counts) */
    apr_size_t warm_features_len;
    int warm_pending;            /* taken: session_start hands the features up */
};

/* One configured domain's warm streams. */
struct warm_domain {
    const xb_domain_t *domain;   /* from the configuration that made it */
    xb_warm_pool_t policy;
    bridge_session_t *streams;   /* starting and ready ones, the newest first */
};

typedef struct domain_addr {
    const xb_domain_t *domain;
    apr_sockaddr_t *addr; /* NULL: look-up failed, retried at the next session */
} domain_addr_t;

struct xb_daemon {
    apr_pool_t *pool;
    const xb_config_t *conf;
    xb_shm_table_t *table;
    apr_pollset_t *pollset;
    apr_socket_t *listener;
    fd_kind_t listener_kind;
    apr_pollfd_t listener_pfd; /* the pollset keeps a pointer to it (APR_POLLSET_NOCOPY) */
    apr_int16_t listener_events; /* APR_POLLIN; 0 while accepting is paused */
    apr_time_t accept_retry_at;  /* != 0: paused, out of descriptors, until then */
    apr_time_t accept_warned_at; /* the warning is logged at most once a second */
    apr_hash_t *sessions; /* sid -> bridge_session_t */
    apr_hash_t *requests; /* xb_request_id_t -> ipc_conn_t */
    apr_hash_t *addrs;    /* domain name -> domain_addr_t */
    apr_hash_t *logouts;  /* site user -> apr_time_t until which prebind is refused */
    apr_hash_t *addresses; /* client address -> address_count_t */
    address_count_t *free_addresses;
    xb_request_id_t last_req_id;
    SSL_CTX *ssl_ctx;
    const xb_jwt_key_t *token_key; /* NULL: no token prebind */
    xb_daemon_hooks_t hooks;
    xb_bosh_session_limits_t limits;
    xb_bosh_parse_limits_t parse_limits;
    apr_array_header_t *closed_conns; /* of ipc_conn_t *, recycled after the poll round */
    ipc_conn_t *free_conns;           /* recycled connection slots (CONN_SLAB) */
    apr_array_header_t *conn_slabs;   /* of ipc_conn_t *: every slab, for the final close */
    ipc_conn_t *idle_conns;           /* answered handler connections kept for reuse */
    apr_pool_t *scratch;              /* per-frame allocations, cleared after every round */
    apr_array_header_t *to_reap;      /* of bridge_session_t *, reused every round */
    xb_timer_heap_t *timers;          /* sessions by their earliest deadline */
    apr_array_header_t *touched;      /* of bridge_session_t *: changed since run_timers */
    int compacted;                    /* stream parsers freed since the last trim */
    apr_time_t trimmed_at;
    apr_array_header_t *warm;         /* of warm_domain_t *, one per domain of d->conf */
    int stopping;
};

static void conn_close(ipc_conn_t *conn);
static void session_sync(bridge_session_t *s);
static void prebind_fail(bridge_session_t *s, int status, const char *reason, const char *why);
static void prebind_element(bridge_session_t *s, const char *data, apr_size_t len);
static void enforce_per_user_cap(bridge_session_t *fresh);
static void address_release(bridge_session_t *s);
static void warm_element(bridge_session_t *s, const char *data, apr_size_t len);
static void warm_lost(bridge_session_t *s, const char *why);
static void warm_drop(bridge_session_t *s, const char *why);
static warm_state_t warm_release(bridge_session_t *s);

apr_status_t xb_daemon_new_sid(char sid[XB_SID_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[XB_SID_HEX_LEN / 2];
    int i;

    if (RAND_bytes(raw, (int)sizeof(raw)) != 1) {
        return APR_EGENERAL;
    }
    for (i = 0; i < (int)sizeof(raw); i++) {
        sid[2 * i] = hex[raw[i] >> 4];
        sid[2 * i + 1] = hex[raw[i] & 0x0f];
    }
    sid[XB_SID_HEX_LEN] = '\0';
    return APR_SUCCESS;
}

/* ---- pollset bookkeeping ---------------------------------------------------------------- */

static void poll_set(xb_daemon_t *d, apr_pollfd_t *pfd, apr_int16_t *current, apr_int16_t want)
{
    if (*current == want) {
        return;
    }
    if (*current) {
        apr_pollset_remove(d->pollset, pfd);
    }
    *current = want;
    if (want) {
        pfd->reqevents = want;
        if (apr_pollset_add(d->pollset, pfd) != APR_SUCCESS) {
            xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(04001) "adding a descriptor to the pollset "
                   "failed");
            *current = 0;
        }
    }
}

/* ---- answers to handlers ---------------------------------------------------------------- */

static void conn_idle_push(ipc_conn_t *conn)
{
    xb_daemon_t *d = conn->d;

    if (conn->idle) {
        return;
    }
    conn->idle = 1;
    conn->idle_prev = NULL;
    conn->idle_next = d->idle_conns;
    if (d->idle_conns) {
        d->idle_conns->idle_prev = conn;
    }
    d->idle_conns = conn;
}

static void conn_idle_remove(ipc_conn_t *conn)
{
    if (!conn->idle) {
        return;
    }
    if (conn->idle_prev) {
        conn->idle_prev->idle_next = conn->idle_next;
    }
    else {
        conn->d->idle_conns = conn->idle_next;
    }
    if (conn->idle_next) {
        conn->idle_next->idle_prev = conn->idle_prev;
    }
    conn->idle = 0;
    conn->idle_prev = conn->idle_next = NULL;
}

static int conn_writing(const ipc_conn_t *conn)
{
    return conn->out.len > conn->out.start;
}

static void conn_flush(ipc_conn_t *conn)
{
    while (conn_writing(conn)) {
        apr_size_t n = conn->out.len - conn->out.start;
        apr_status_t rv = apr_socket_send(conn->sock, conn->out.data + conn->out.start, &n);
        xb_buf_consume(&conn->out, n, CONN_OUT_KEEP);
        if (APR_STATUS_IS_EAGAIN(rv)) {
            poll_set(conn->d, &conn->pfd, &conn->events, APR_POLLOUT);
            return;
        }
        if (rv != APR_SUCCESS) {
            /* The handler is gone; the answer stays in the session's replay cache. */
            conn_close(conn);
            return;
        }
    }
    /* Answered: the connection waits for the handler's next request (or its close). */
    conn->session = NULL;
    poll_set(conn->d, &conn->pfd, &conn->events, APR_POLLIN);
    if (!conn->req_id) {
        conn_idle_push(conn);
    }
}

static void conn_unregister(ipc_conn_t *conn)
{
    if (conn->req_id) {
        apr_hash_set(conn->d->requests, &conn->req_id, sizeof(conn->req_id), NULL);
        conn->req_id = 0;
    }
}

static void conn_send_frame(ipc_conn_t *conn, int status, const char *body, apr_size_t len)
{
    xb_ipc_header_t hdr;

    hdr.magic = XB_IPC_MAGIC;
    hdr.type = XB_IPC_RESPONSE;
    hdr.aux = (uint32_t)status;
    hdr.length = (uint32_t)len;
    conn_unregister(conn);
    if (conn->closing) {
        return;
    }
    if (!xb_buf_append(&conn->out, (const char *)&hdr, sizeof(hdr))
        || !xb_buf_append(&conn->out, body, len)) {
        /* The handler sees the connection end; the answer stays in the replay cache. */
        conn_close(conn);
        return;
    }
    conn_flush(conn);
}

/* An answer outside any session (unknown sid, bad request, refused creation). */
static void conn_send_terminate(ipc_conn_t *conn, xb_bosh_condition_t cond, int legacy)
{
    apr_size_t len = 0;
    const char *body = xb_bosh_terminate_build(conn->pool, cond, &len);
    int status = legacy ? xb_bosh_condition_legacy_status(cond) : 200;

    if (status != 200) {
        body = "";
        len = 0;
    }
    conn_send_frame(conn, status, body, len);
}

/* ---- session callbacks (from xb_bosh_session) ------------------------------------------- */

static void update_table(bridge_session_t *s)
{
    uint64_t hi, lo;
    unsigned requests;

    xb_bosh_session_window(s->bosh, &hi, &lo, &requests);
    xb_shm_table_update_window(s->d->table, s->sid, hi, lo, requests,
                               xb_bosh_session_held_count(s->bosh), apr_time_now());
}

static void io_respond(void *baton, xb_request_id_t req, int status, const char *body,
                       apr_size_t len)
{
    bridge_session_t *s = baton;
    ipc_conn_t *conn = apr_hash_get(s->d->requests, &req, sizeof(req));

    /* The window in shared memory moves before the answer leaves, so a child never sees a
     * window older than what the client already knows. */
    if (s->bosh) {
        update_table(s);
    }
    if (!conn) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(04002) "session %s: answer for a request that "
               "is gone (kept for replay)", s->tag);
        return;
    }
    conn_send_frame(conn, status, body, len);
}

/* Stream `i` of session `s`: the session itself for 0, else an added one (NULL: gone). */
static bridge_session_t *stream_of(bridge_session_t *s, unsigned i)
{
    if (i == 0) {
        return s;
    }
    return i < s->n_added ? s->added[i] : NULL;
}

static void io_send_to_server(void *baton, unsigned stream, const char *data, apr_size_t len)
{
    bridge_session_t *s = stream_of(baton, stream);

    if (s && !s->xmpp_closed) {
        xb_xmpp_conn_send(s->xmpp, data, len);
        xb_shm_table_count(s->d->table, XB_CNT_PAYLOADS_TO_SERVER, 1);
        xb_shm_table_count(s->d->table, XB_CNT_BYTES_TO_SERVER, len);
    }
}

static void io_restart_stream(void *baton, unsigned stream)
{
    bridge_session_t *s = stream_of(baton, stream);

    if (s && !s->xmpp_closed) {
        xb_xmpp_conn_restart(s->xmpp);
    }
}

static void io_close_stream(void *baton, unsigned stream)
{
    bridge_session_t *s = stream_of(baton, stream);

    if (!s) {
        return;
    }
    if (!s->xmpp_closed && !s->connecting) {
        xb_xmpp_conn_close(s->xmpp);
    }
    if (s->is_added_stream) {
        s->stream_done = 1;
        session_sync(s);
    }
}

static void io_note(void *baton, xb_bosh_note_t what)
{
    bridge_session_t *s = baton;
    xb_counter_t c = what == XB_NOTE_REPLAY ? XB_CNT_REPLAYS
                     : what == XB_NOTE_WINDOW_VIOLATION ? XB_CNT_WINDOW_VIOLATIONS
                     : what == XB_NOTE_OVERACTIVITY ? XB_CNT_OVERACTIVITY
                                                        : XB_CNT_HELD_RESENDS;

    xb_shm_table_count(s->d->table, c, 1);
}

static xb_bosh_condition_t io_open_stream(void *baton, unsigned stream, const char *to,
                                          const char *xml_lang);

static const xb_bosh_io_t session_io = {
    io_respond, io_send_to_server, io_restart_stream, io_close_stream, io_note, io_open_stream
};

/* ---- stream callbacks (from xb_xmpp_conn) ----------------------------------------------- */

static void stream_element(void *baton, const char *data, apr_size_t len)
{
    bridge_session_t *s = baton;

    if (s->warm) {
        warm_element(s, data, len);
        return;
    }
    if (s->is_added_stream) {
        if (s->owner && s->owner->bosh && !s->stream_done) {
            s->connect_deadline = 0;
            xb_shm_table_count(s->d->table, XB_CNT_STANZAS_TO_CLIENT, 1);
            xb_shm_table_count(s->d->table, XB_CNT_BYTES_TO_CLIENT, len);
            xb_bosh_session_stream_data(s->owner->bosh, s->stream_index, data, len,
                                        apr_time_now());
        }
        return;
    }
    if (s->login) {
        prebind_element(s, data, len);
        return;
    }
    if (!s->bosh) {
        return; /* a failed prebind: the stream is closing */
    }
    s->connect_deadline = 0;
    xb_shm_table_count(s->d->table, XB_CNT_STANZAS_TO_CLIENT, 1);
    xb_shm_table_count(s->d->table, XB_CNT_BYTES_TO_CLIENT, len);
    xb_bosh_session_server_data(s->bosh, data, len, apr_time_now());
}

static void stream_closed(void *baton, xb_bosh_condition_t cond, const char *data,
                          apr_size_t len, const char *why)
{
    bridge_session_t *s = baton;

    s->xmpp_closed = 1;
    if (s->warm) {
        warm_lost(s, why);
        return;
    }
    if (cond == XB_COND_NONE) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(04003) "session %s: XMPP stream to %s closed",
               s->tag, s->domain->name);
    }
    else {
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04004) "session %s: XMPP stream to %s ended: "
               "%s (%s)", s->tag, s->domain->name, xb_bosh_condition_name(cond),
               why ? why : "no reason given");
    }
    if (s->is_added_stream) {
        if (s->owner && s->owner->bosh && !s->stream_done) {
            xb_bosh_session_stream_closed(s->owner->bosh, s->stream_index,
                                          cond == XB_COND_NONE ? XB_COND_REMOTE_CONNECTION_FAILED
                                                               : cond,
                                          data, len, apr_time_now());
        }
        return;
    }
    if (s->login) {
        prebind_fail(s, 502, "xmpp-connection-failed", why);
        return;
    }
    if (!s->bosh) {
        return;
    }
    xb_bosh_session_server_closed(s->bosh, cond == XB_COND_NONE ? XB_COND_REMOTE_CONNECTION_FAILED
                                                                : cond,
                                  data, len, apr_time_now());
}

/* Counts full and resumed TLS handshakes (status counters tls_handshakes_*). */
static void stream_tls_established(void *baton, int resumed)
{
    bridge_session_t *s = baton;

    xb_shm_table_count(s->d->table, resumed ? XB_CNT_TLS_RESUMED : XB_CNT_TLS_FULL, 1);
}

static const xb_xmpp_conn_events_t stream_events = { stream_element, stream_closed,
                                                     stream_tls_established };

#define TLS_RESUME_KEY_MAX 800 /* three names of at most 255 bytes (xb_config.c) and a port */

/* The TLS session resumption key of `domain`'s server (see xb_tls_sessions.h): one cached
 * session per domain, host, port and certificate name; written to `buf`. NULL: resumption
 * is off (XmppBridgeTLSResumption). */
static const char *tls_resume_key(const xb_daemon_t *d, const xb_domain_t *domain, char *buf,
                                  apr_size_t len)
{
    if (!d->conf->tls_resumption) {
        return NULL;
    }
    apr_snprintf(buf, len, "%s %s %u %s", domain->name, domain->host, (unsigned)domain->port,
                 domain->tls_name ? domain->tls_name : domain->name);
    return buf;
}

/* A new stream object (a BOSH session's stream, an added §16 stream or a warm stream) in a
 * pool of its own under the daemon's, so that it can be reaped on its own; its timer names
 * it, so that a deadline that comes finds it. */
static bridge_session_t *stream_object_new(xb_daemon_t *d)
{
    apr_pool_t *pool;
    bridge_session_t *s;

    apr_pool_create(&pool, d->pool);
    s = apr_pcalloc(pool, sizeof(*s));
    s->kind = FD_XMPP;
    s->d = d;
    s->timer.data = s;
    s->pool = pool;
    return s;
}

/* The XMPP stream of `s` to `domain`'s server, with the limits and TLS settings every stream
 * of the daemon uses. xml_lang: the client's, or NULL (a warm stream: nobody asked yet). */
static xb_xmpp_conn_t *stream_conn_create(bridge_session_t *s, const xb_domain_t *domain,
                                          const char *xml_lang)
{
    xb_daemon_t *d = s->d;
    xb_xmpp_conn_params_t params;
    char key[TLS_RESUME_KEY_MAX];

    memset(&params, 0, sizeof(params));
    params.domain = domain->name; /* `to`: the configured domain */
    params.xml_lang = xml_lang;
    params.tls = domain->tls;
    params.ssl_ctx = d->ssl_ctx;
    params.tls_name = domain->tls_name;
    params.tls_resume_key = tls_resume_key(d, domain, key, sizeof(key));
    params.max_stanza_size = d->conf->max_stanza_size;
    params.max_depth = 64;
    return xb_xmpp_conn_create(s->pool, &params, &stream_events, s);
}

/* ---- XMPP socket I/O -------------------------------------------------------------------- */

/* Read the stream unless the browser side is full (backpressure). While a prebind login runs
 * there is no BOSH side yet, and once the session is over the server's </stream:stream> must
 * still be read so the socket closes at once. */
static int session_wants_data(const bridge_session_t *s)
{
    const xb_bosh_session_t *bosh = s->is_added_stream ? (s->owner ? s->owner->bosh : NULL)
                                                       : s->bosh;

    return !bosh || xb_bosh_session_is_finished(bosh) || xb_bosh_session_wants_server_data(bosh);
}

/* Over: the BOSH side finished, or the prebind login failed; an added stream also when the
 * BOSH side closed it or its session is gone. */
static int session_over(const bridge_session_t *s)
{
    if (s->is_added_stream) {
        return s->stream_done || !s->owner || session_over(s->owner);
    }
    if (s->warm) {
        return s->warm_state == WARM_GONE;
    }
    return s->bosh ? xb_bosh_session_is_finished(s->bosh) : s->prebind_failed;
}

static void session_fail(bridge_session_t *s, const char *why)
{
    if (!s->xmpp_closed) {
        xb_xmpp_conn_eof(s->xmpp, why);
        if (!s->xmpp_closed) {
            /* The stream object had already closed itself without telling us again. */
            stream_closed(s, XB_COND_REMOTE_CONNECTION_FAILED, NULL, 0, why);
        }
    }
}

static void session_close_socket(bridge_session_t *s)
{
    if (!s->sock_closed) {
        poll_set(s->d, &s->pfd, &s->events, 0);
        apr_socket_close(s->sock);
        s->sock_closed = 1;
    }
}

static void session_write(bridge_session_t *s)
{
    const char *data;
    apr_size_t n;

    while (!s->sock_closed && !s->connecting
           && (n = xb_xmpp_conn_pending(s->xmpp, &data)) > 0) {
        apr_status_t rv = apr_socket_send(s->sock, data, &n);
        if (n > 0) {
            xb_xmpp_conn_written(s->xmpp, n);
        }
        if (APR_STATUS_IS_EAGAIN(rv)) {
            return;
        }
        if (rv != APR_SUCCESS) {
            session_close_socket(s);
            session_fail(s, "writing to the XMPP server failed");
            return;
        }
    }
}

/* The server answers many steps with several small writes (TLS, features, a login's SASL,
 * restart and bind whether the daemon or the browser drives it, and later stanzas in quick
 * succession); with Nagle on at the server (Prosody's default) the second waits for our ACK of
 * the first, which Linux delays by 40 ms when we have nothing to send back. TCP_QUICKACK after
 * each read ACKs at once (the kernel keeps it only briefly, so it is set again each time: one
 * setsockopt per read). */
static void session_quickack(bridge_session_t *s)
{
#ifdef TCP_QUICKACK
    apr_os_sock_t fd;
    int one = 1;

    if (apr_os_sock_get(&fd, s->sock) == APR_SUCCESS) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
#else
    (void)s;
#endif
}

static void session_read(bridge_session_t *s)
{
    char buf[READ_CHUNK];
    int rounds = 0;

    /* A few reads per wake-up, so one busy stream cannot starve the others. */
    while (!s->sock_closed && rounds++ < 4 && session_wants_data(s)) {
        apr_size_t n = sizeof(buf);
        apr_status_t rv = apr_socket_recv(s->sock, buf, &n);
        if (n > 0) {
            s->last_read = apr_time_now();
            session_quickack(s);
            xb_xmpp_conn_feed(s->xmpp, buf, n);
        }
        if (APR_STATUS_IS_EAGAIN(rv) || (rv == APR_SUCCESS && n < sizeof(buf))) {
            return; /* drained (a short read): no recv just to hear EAGAIN; the pollset is
                     * level-triggered, so what arrives later wakes us again */
        }
        if (rv != APR_SUCCESS) {
            session_close_socket(s);
            session_fail(s, rv == APR_EOF ? "the XMPP server closed the connection"
                                          : "reading from the XMPP server failed");
            return;
        }
    }
}

static void session_connected(bridge_session_t *s)
{
    int err = 0;
    socklen_t errlen = sizeof(err);
    apr_os_sock_t fd;

    apr_os_sock_get(&fd, s->sock);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0) {
        err = errno;
    }
    if (err != 0) {
        if (!s->warm) {
            xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04005) "session %s: connecting to %s:%u "
                   "for %s failed: %s", s->tag, s->domain->host, (unsigned)s->domain->port,
                   s->domain->name, strerror(err));
        }
        s->connecting = 0;
        session_close_socket(s);
        /* A warm stream's failure is logged by the pool, paced, with this reason. */
        session_fail(s, s->warm ? apr_psprintf(s->pool, "connecting to %s:%u failed: %s",
                                               s->domain->host, (unsigned)s->domain->port,
                                               strerror(err))
                                : "connecting to the XMPP server failed");
        return;
    }
    s->connecting = 0;
    xb_xmpp_conn_start(s->xmpp);
}

/* Something happened to the session: run_timers looks at it at the end of this round (its
 * deadlines may have moved, it may be over). */
static void session_touch(bridge_session_t *s)
{
    if (!s->touched) {
        s->touched = 1;
        APR_ARRAY_PUSH(s->d->touched, bridge_session_t *) = s;
    }
}

/* Brings the pollset, the shared table and the reaping in line with the session's state. */
static void session_sync(bridge_session_t *s)
{
    apr_int16_t want = 0;
    const char *data;

    if (s->reaped) {
        return;
    }
    session_touch(s);
    session_write(s);
    if (!s->sock_closed) {
        if (s->connecting) {
            want = APR_POLLOUT;
        }
        else {
            if (session_wants_data(s)) {
                want |= APR_POLLIN;
            }
            if ((want & APR_POLLIN ? 0 : 1) != s->backpressure) { /* logged on a change only */
                s->backpressure = want & APR_POLLIN ? 0 : 1;
                xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(04132) "session %s: %s", s->tag,
                       s->backpressure ? "XmppBridgeMaxQueuedBytes queued for the browser: "
                                         "reading from the XMPP server pauses"
                                       : "the browser caught up: reading from the XMPP "
                                         "server resumes");
            }
            if (xb_xmpp_conn_pending(s->xmpp, &data) > 0) {
                want |= APR_POLLOUT;
            }
        }
        if (s->xmpp_closed && !(want & APR_POLLOUT)) {
            session_close_socket(s);
            want = 0;
        }
        poll_set(s->d, &s->pfd, &s->events, want);
    }
    if (session_over(s) && !s->close_deadline) {
        s->close_deadline = apr_time_now() + CLOSE_GRACE;
        address_release(s);
        if (!s->is_added_stream && !s->warm) {
            xb_shm_table_remove(s->d->table, s->sid);
        }
        if (!s->xmpp_closed && !s->connecting && !s->sock_closed) {
            xb_xmpp_conn_close(s->xmpp);
            session_write(s);
        }
    }
    /* Backpressure and the session's end reach its added streams too. */
    for (unsigned i = 1; i < s->n_added; i++) {
        if (s->added[i]) {
            session_sync(s->added[i]);
        }
    }
}

static void session_reap(bridge_session_t *s)
{
    apr_hash_index_t *hi;

    s->reaped = 1;
    if (s->warm) {
        warm_release(s); /* out of its pool's list (a no-op once it is gone) */
    }
    xb_timer_heap_remove(s->d->timers, &s->timer);
    session_close_socket(s);
    address_release(s);
    if (!s->is_added_stream && !s->warm) {
        xb_shm_table_remove(s->d->table, s->sid);
    }
    if (!s->warm) {
        apr_hash_set(s->d->sessions, s->sid, APR_HASH_KEY_STRING, NULL);
    }
    for (unsigned i = 1; i < s->n_added; i++) {
        if (s->added[i]) {
            s->added[i]->owner = NULL; /* it closes on its own now (session_over) */
        }
    }
    if (s->is_added_stream && s->owner && s->stream_index < s->owner->n_added
        && s->owner->added[s->stream_index] == s) {
        s->owner->added[s->stream_index] = NULL;
    }
    /* A handler still waiting on this session gets a clear end rather than a timeout. */
    for (hi = apr_hash_first(NULL, s->d->requests); hi; hi = apr_hash_next(hi)) {
        ipc_conn_t *conn = apr_hash_this_val(hi);
        if (conn->session == s) {
            conn->session = NULL;
            conn_send_terminate(conn, XB_COND_ITEM_NOT_FOUND, 0);
        }
    }
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(04006) "session %s ended", s->tag);
    apr_pool_destroy(s->pool);
}

/* ---- admission: sessions per client address ---------------------------------------------- */

/* 1 when `ip` may have one more session (XmppBridgeMaxSessionsPerAddress; 0: no limit). */
static int address_admits(xb_daemon_t *d, const char *ip)
{
    address_count_t *a = apr_hash_get(d->addresses, ip, APR_HASH_KEY_STRING);

    return !d->conf->max_per_address || !a || a->live < d->conf->max_per_address;
}

static void address_take(bridge_session_t *s, const char *ip)
{
    xb_daemon_t *d = s->d;
    address_count_t *a = apr_hash_get(d->addresses, ip, APR_HASH_KEY_STRING);

    if (!a) {
        a = d->free_addresses;
        if (a) {
            d->free_addresses = a->next_free;
        }
        else {
            a = apr_palloc(d->pool, sizeof(*a));
        }
        memset(a, 0, sizeof(*a));
        apr_cpystrn(a->ip, ip, sizeof(a->ip));
        apr_hash_set(d->addresses, a->ip, APR_HASH_KEY_STRING, a);
    }
    a->live++;
    s->address = a;
}

/* Every way a session ends passes here (once it is over, and again when it is reaped). */
static void address_release(bridge_session_t *s)
{
    address_count_t *a = s->address;

    if (!a) {
        return;
    }
    s->address = NULL;
    if (--a->live == 0) {
        apr_hash_set(s->d->addresses, a->ip, APR_HASH_KEY_STRING, NULL);
        a->next_free = s->d->free_addresses;
        s->d->free_addresses = a;
    }
}

static void refuse_address(xb_daemon_t *d, const char *ip, const char *what)
{
    xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04130) "%s from %s refused: it has %u live "
           "sessions (XmppBridgeMaxSessionsPerAddress)", what, ip, d->conf->max_per_address);
    xb_shm_table_count(d->table, XB_CNT_REFUSED_PER_ADDRESS, 1);
}

/* ---- new sessions ----------------------------------------------------------------------- */

static apr_sockaddr_t *domain_address(xb_daemon_t *d, const xb_domain_t *domain)
{
    domain_addr_t *da = apr_hash_get(d->addrs, domain->name, APR_HASH_KEY_STRING);
    apr_status_t rv;

    if (!da) {
        da = apr_pcalloc(d->pool, sizeof(*da));
        da->domain = domain;
        apr_hash_set(d->addrs, domain->name, APR_HASH_KEY_STRING, da);
    }
    if (!da->addr) {
        /* Resolved once and kept: a blocking look-up per session would stall every stream. */
        rv = apr_sockaddr_info_get(&da->addr, domain->host, APR_UNSPEC, domain->port, 0, d->pool);
        if (rv != APR_SUCCESS) {
            xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(04007) "cannot resolve %s (XMPP server for "
                   "%s)", domain->host, domain->name);
            da->addr = NULL;
        }
    }
    return da->addr;
}

static apr_status_t session_connect(bridge_session_t *s)
{
    apr_sockaddr_t *addr = domain_address(s->d, s->domain);
    apr_status_t rv;

    if (!addr) {
        return APR_EGENERAL;
    }
    rv = apr_socket_create(&s->sock, addr->family, SOCK_STREAM, APR_PROTO_TCP, s->pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_socket_opt_set(s->sock, APR_SO_NONBLOCK, 1);
    apr_socket_timeout_set(s->sock, 0);
    apr_socket_opt_set(s->sock, APR_TCP_NODELAY, 1);
    s->pfd.desc_type = APR_POLL_SOCKET;
    s->pfd.desc.s = s->sock;
    s->pfd.client_data = s;
    rv = apr_socket_connect(s->sock, addr);
    if (rv == APR_SUCCESS) {
        s->connecting = 0;
        xb_xmpp_conn_start(s->xmpp);
        return APR_SUCCESS;
    }
    if (APR_STATUS_IS_EINPROGRESS(rv) || APR_STATUS_IS_EAGAIN(rv)) {
        s->connecting = 1;
        return APR_SUCCESS;
    }
    apr_socket_close(s->sock);
    s->sock_closed = 1;
    return rv;
}

/* A session's common part: pool, SID, row in the shared table, the XMPP stream object. Returns
 * NULL with the condition to answer when it cannot be had. */
static bridge_session_t *warm_take(xb_daemon_t *d, const xb_domain_t *domain, apr_time_t now);

/* A session's common part: pool, SID, row in the shared table, the XMPP stream object (a warm
 * one when its domain's pool has one ready). Returns NULL with the condition to answer when it
 * cannot be had. */
static bridge_session_t *session_new(xb_daemon_t *d, const xb_domain_t *domain,
                                     const char *xml_lang, uint64_t rid, int has_ver,
                                     const xb_bosh_body_t *creation, const char *client_ip,
                                     xb_bosh_condition_t *cond)
{
    xb_shm_session_t row;
    bridge_session_t *s;
    apr_time_t now = apr_time_now();
    char sid[XB_SID_HEX_LEN + 1];

    /* What can refuse the session comes first: a warm stream is taken only for one that
     * will exist. */
    if (xb_daemon_new_sid(sid) != APR_SUCCESS) {
        xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(04009) "no random bytes for a session id");
        *cond = XB_COND_INTERNAL_SERVER_ERROR;
        return NULL;
    }
    memset(&row, 0, sizeof(row));
    apr_cpystrn(row.sid, sid, sizeof(row.sid));
    apr_cpystrn(row.domain, domain->name, sizeof(row.domain));
    row.rid_hi = rid;
    row.rid_lo = rid;
    row.requests = 1;
    row.has_ver = (uint32_t)has_ver;
    row.created = row.last_activity = now;
    /* How the handlers answer this session's requests (§7.1 content, accept). */
    if (creation && xb_bosh_content_type(creation)) {
        apr_cpystrn(row.content_type, xb_bosh_content_type(creation), sizeof(row.content_type));
    }
    if (creation && xb_bosh_accept_has(creation->accept, "gzip")) {
        row.flags |= XB_ROW_ACCEPT_GZIP;
    }
    if (xb_shm_table_insert(d->table, &row) != APR_SUCCESS) {
        xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04010) "session refused: the session table "
               "is full (XmppBridgeMaxSessions %u)", d->conf->max_sessions);
        xb_shm_table_count(d->table, XB_CNT_REFUSED_TABLE_FULL, 1);
        *cond = XB_COND_POLICY_VIOLATION;
        return NULL;
    }
    s = warm_take(d, domain, now);
    if (s) {
        /* Its header went out without xml:lang (nobody had asked yet); the headers of the
         * restarts (after SASL: the stream the session lives on) carry the client's. */
        xb_xmpp_conn_set_xml_lang(s->xmpp, xml_lang);
    }
    else {
        s = stream_object_new(d);
        s->xmpp = stream_conn_create(s, domain, xml_lang);
    }
    s->domain = domain;
    s->created = now;
    memcpy(s->sid, sid, sizeof(s->sid));
    xb_log_session_tag(s->sid, s->tag);
    s->connect_deadline = now + d->conf->connect_timeout;
    apr_hash_set(d->sessions, s->sid, APR_HASH_KEY_STRING, s);
    address_take(s, client_ip);
    session_touch(s);
    return s;
}

/* Connects the session's stream (after its BOSH or login side is in place). */
static void session_start(bridge_session_t *s)
{
    apr_status_t rv;

    if (s->warm_pending) {
        /* A warm stream: connected, TLS verified; its features go to the login or the BOSH
         * side now, as if they had just arrived (the creation answer can go out at once). */
        s->warm_pending = 0;
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(04505) "session %s created for %s (%s:%u) on a "
               "warm stream opened %" APR_INT64_T_FMT " ms ago", s->tag, s->domain->name,
               s->domain->host, (unsigned)s->domain->port,
               (apr_int64_t)apr_time_as_msec(apr_time_now() - s->warm_born));
        stream_element(s, s->warm_features, s->warm_features_len);
        session_sync(s);
        return;
    }
    rv = session_connect(s);

    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(04011) "session %s created for %s (%s:%u)",
           s->tag, s->domain->name, s->domain->host, (unsigned)s->domain->port);
    if (rv != APR_SUCCESS) {
        char reason[120];
        xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04012) "session %s: cannot connect to %s:%u "
               "for %s: %s", s->tag, s->domain->host, (unsigned)s->domain->port,
               s->domain->name, apr_strerror(rv, reason, sizeof(reason)));
        s->sock_closed = 1;
        session_fail(s, "connecting to the XMPP server failed");
    }
    session_sync(s);
}

/* ---- warm streams (XmppBridgeWarmStreams; the rules are in xb_warm_pool.c) -------------- */

static warm_domain_t *warm_domain_of(xb_daemon_t *d, const xb_domain_t *domain)
{
    int i;

    for (i = 0; d->warm && i < d->warm->nelts; i++) {
        warm_domain_t *wd = APR_ARRAY_IDX(d->warm, i, warm_domain_t *);
        if (wd->domain == domain) {
            return wd;
        }
    }
    return NULL;
}

static apr_time_t warm_expiry(const bridge_session_t *s)
{
    return xb_warm_pool_expiry(&s->warm->policy, s->warm_born);
}

/* Out of its pool's list, for good (the stream itself then ends like a finished session:
 * session_over). Returns where it was; WARM_GONE: out already. */
static warm_state_t warm_unlist(bridge_session_t *s)
{
    warm_domain_t *wd = s->warm;
    warm_state_t was = s->warm_state;

    if (was == WARM_GONE) {
        return was;
    }
    if (s->warm_prev) {
        s->warm_prev->warm_next = s->warm_next;
    }
    else if (wd->streams == s) {
        wd->streams = s->warm_next;
    }
    if (s->warm_next) {
        s->warm_next->warm_prev = s->warm_prev;
    }
    s->warm_next = s->warm_prev = NULL;
    s->warm_state = WARM_GONE;
    return was;
}

/* Out of the list and the pool's count, no failure (taken, dropped, reaped). */
static warm_state_t warm_release(bridge_session_t *s)
{
    warm_state_t was = warm_unlist(s);

    if (was == WARM_READY) {
        xb_warm_pool_left(&s->warm->policy);
    }
    else if (was == WARM_STARTING) {
        xb_warm_pool_abandoned(&s->warm->policy);
    }
    return was;
}

/* Taken out of the pool on purpose (too old, an element nobody expected, a new configuration,
 * shutdown): a ready one ends politely, one still being set up is cut. */
static void warm_drop(bridge_session_t *s, const char *why)
{
    warm_state_t was = warm_release(s);

    if (was == WARM_GONE || s->reaped) {
        return;
    }
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(04503) "warm stream to %s replaced: %s",
           s->domain->name, why);
    if (was == WARM_READY) {
        xb_shm_table_count(s->d->table, XB_CNT_WARM_RECYCLED, 1);
    }
    else if (!s->sock_closed) {
        s->connecting = 0;
        session_close_socket(s);
        session_fail(s, why);
    }
    session_touch(s);
}

/* The stream object reported its end (xmpp_closed is set). */
static void warm_lost(bridge_session_t *s, const char *why)
{
    xb_warm_pool_t *policy = &s->warm->policy;
    warm_state_t was = warm_unlist(s);
    unsigned failed = 0;

    if (was == WARM_GONE) {
        return;
    }
    session_touch(s);
    if (was == WARM_READY) {
        /* The server closed an idle stream (its c2s_timeout, a restart): replaced. */
        xb_warm_pool_left(policy);
        xb_shm_table_count(s->d->table, XB_CNT_WARM_RECYCLED, 1);
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(04504) "warm stream to %s closed by the "
               "server (%s): replaced", s->domain->name, why ? why : "no reason given");
        return;
    }
    xb_shm_table_count(s->d->table, XB_CNT_WARM_FAILED, 1);
    if (xb_warm_pool_failed(policy, apr_time_now(), &failed)) {
        xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04501) "warm streams to %s (%s:%u): "
               "setting one up failed (%u time%s since the last such warning; the latest: "
               "%s); sessions and prebinds connect directly meanwhile; retrying in %u s",
               s->domain->name, s->domain->host, (unsigned)s->domain->port, failed,
               failed == 1 ? "" : "s", why ? why : "no reason given",
               (unsigned)apr_time_sec(policy->retry_at - apr_time_now() + 999999));
    }
}

/* The first element of a warm stream is the post-TLS <stream:features/>: kept for the session
 * that takes it. Nothing else is expected before SASL. */
static void warm_element(bridge_session_t *s, const char *data, apr_size_t len)
{
    unsigned failed;

    if (s->warm_state == WARM_READY) {
        warm_drop(s, "the server sent an element on the idle stream");
        return;
    }
    if (s->warm_state != WARM_STARTING) {
        return;
    }
    s->warm_features = apr_pmemdup(s->pool, data, len);
    s->warm_features_len = len;
    s->warm_state = WARM_READY;
    s->connect_deadline = 0;
    failed = xb_warm_pool_ready(&s->warm->policy);
    if (failed) {
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04502) "warm streams to %s: the server is "
               "reachable again after %u failed set-up%s", s->domain->name, failed,
               failed == 1 ? "" : "s");
    }
    session_touch(s); /* its timer moves to its expiry */
}

static void warm_start(xb_daemon_t *d, warm_domain_t *wd, apr_time_t now)
{
    bridge_session_t *s;
    apr_status_t rv;
    char reason[120];

    s = stream_object_new(d);
    s->domain = wd->domain;
    s->created = s->warm_born = now;
    apr_cpystrn(s->tag, "warm", sizeof(s->tag));
    s->warm = wd;
    s->warm_state = WARM_STARTING;
    s->xmpp = stream_conn_create(s, wd->domain, NULL);
    s->connect_deadline = now + d->conf->connect_timeout;
    s->warm_next = wd->streams;
    if (wd->streams) {
        wd->streams->warm_prev = s;
    }
    wd->streams = s;
    xb_warm_pool_started(&wd->policy);
    if (!s->xmpp) {
        s->xmpp_closed = s->sock_closed = 1;
        warm_lost(s, "out of memory");
        session_touch(s);
        return;
    }
    rv = session_connect(s);
    if (rv != APR_SUCCESS) {
        s->sock_closed = 1;
        session_fail(s, apr_psprintf(s->pool, "cannot connect to %s:%u: %s", wd->domain->host,
                                     (unsigned)wd->domain->port,
                                     apr_strerror(rv, reason, sizeof(reason))));
    }
    session_sync(s);
}

/* Every domain's pool back to its target (unless it is backing off); *next: when to wake up
 * for the end of a back-off. */
static void warm_refill(xb_daemon_t *d, apr_time_t now, apr_time_t *next)
{
    int i;

    for (i = 0; !d->stopping && d->warm && i < d->warm->nelts; i++) {
        warm_domain_t *wd = APR_ARRAY_IDX(d->warm, i, warm_domain_t *);
        apr_time_t wake;

        /* Each start either adds one being set up or fails into a back-off: this ends. */
        while (xb_warm_pool_wanted(&wd->policy, now) > 0) {
            warm_start(d, wd, now);
        }
        wake = xb_warm_pool_next_wakeup(&wd->policy, now);
        if (wake && wake < *next) {
            *next = wake;
        }
    }
}

/* The ready warm stream to `domain` a session may take now, out of the pool; NULL when there
 * is none (the session connects itself). */
static bridge_session_t *warm_take(xb_daemon_t *d, const xb_domain_t *domain, apr_time_t now)
{
    warm_domain_t *wd = warm_domain_of(d, domain);
    bridge_session_t *s, *next;

    if (!wd || !wd->policy.target) {
        return NULL;
    }
    for (s = wd->streams; s; s = next) {
        next = s->warm_next;
        if (s->warm_state != WARM_READY) {
            continue;
        }
        if (now >= warm_expiry(s)) {
            warm_drop(s, "older than XmppBridgeWarmStreamMaxAge");
            continue;
        }
        /* Whatever the server sent since the last poll is read now (its </stream:stream>, a
         * stream error, the end of the connection): a closing stream is never handed out. */
        session_read(s);
        if (s->warm_state != WARM_READY) {
            continue;
        }
        if (s->sock_closed || s->xmpp_closed || !xb_xmpp_conn_is_ready(s->xmpp)) {
            warm_drop(s, "not open any more");
            continue;
        }
        warm_release(s);
        s->warm = NULL;
        s->warm_state = 0;
        s->warm_pending = 1;
        xb_shm_table_count(d->table, XB_CNT_WARM_TAKEN, 1);
        return s;
    }
    xb_shm_table_count(d->table, XB_CNT_WARM_MISSED, 1);
    return NULL;
}

/* Every warm stream out of its pool (`why`); the pools are made anew for d->conf. */
static void warm_configure(xb_daemon_t *d, const char *why)
{
    int i;

    for (i = 0; d->warm && i < d->warm->nelts; i++) {
        warm_domain_t *wd = APR_ARRAY_IDX(d->warm, i, warm_domain_t *);
        while (wd->streams) {
            bridge_session_t *s = wd->streams;
            warm_drop(s, why);
            session_sync(s); /* a ready one's </stream:stream> goes out now */
        }
    }
    /* From the daemon's pool: a few dozen bytes per domain and graceful restart. */
    d->warm = apr_array_make(d->pool, 2, sizeof(warm_domain_t *));
    for (i = 0; !d->stopping && d->conf->warm_streams && d->conf->domains
                && i < d->conf->domains->nelts; i++) {
        warm_domain_t *wd = apr_pcalloc(d->pool, sizeof(*wd));
        wd->domain = &APR_ARRAY_IDX(d->conf->domains, i, xb_domain_t);
        xb_warm_pool_init(&wd->policy, d->conf->warm_streams,
                          apr_time_from_sec(d->conf->warm_max_age));
        APR_ARRAY_PUSH(d->warm, warm_domain_t *) = wd;
    }
}

static void handle_creation(ipc_conn_t *conn, const xb_bosh_body_t *body,
                            const char *client_ip)
{
    xb_daemon_t *d = conn->d;
    const xb_domain_t *domain = xb_config_find_domain(d->conf, body->to);
    xb_bosh_condition_t cond = XB_COND_NONE;
    bridge_session_t *s;

    if (!body->to) {
        /* XEP-0124 §17.2: the creation request says no server to reach. */
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04100) "session creation refused: no 'to' "
               "(improper-addressing)");
        conn_send_terminate(conn, XB_COND_IMPROPER_ADDRESSING, body->ver == NULL);
        return;
    }
    if (!domain) {
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04008) "session creation refused: domain '%.255s' "
               "is not configured (XmppBridgeDomain)", body->to ? body->to : "(no 'to')");
        conn_send_terminate(conn, XB_COND_HOST_UNKNOWN, body->ver == NULL);
        return;
    }
    if (!address_admits(d, client_ip)) {
        refuse_address(d, client_ip, "session creation");
        conn_send_terminate(conn, XB_COND_POLICY_VIOLATION, body->ver == NULL);
        return;
    }
    s = session_new(d, domain, body->xml_lang, body->rid, body->ver != NULL, body, client_ip,
                    &cond);
    if (!s) {
        conn_send_terminate(conn, cond, body->ver == NULL);
        return;
    }
    if (body->route) {
        /* XEP-0124 §7.1 lets the client suggest a server; following it would make the
         * gateway an open relay to any address (an internal one included). */
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04162) "session %s: route attribute ignored; "
               "the stream goes where XmppBridgeDomain %s says", s->tag, domain->name);
    }
    conn->session = s;
    s->bosh = xb_bosh_session_create(s->pool, s->sid, body, conn->req_id, &d->limits,
                                     &session_io, s, apr_time_now());
    session_start(s);
}

/* ---- XEP-0124 §16: streams added to a session -------------------------------------------- */

/* The BOSH session asks for stream `index` to `to`: a connection of its own, listed under a
 * random key (never told to anyone: requests cannot reach it), reaped like a session. */
static xb_bosh_condition_t io_open_stream(void *baton, unsigned index, const char *to,
                                          const char *xml_lang)
{
    bridge_session_t *owner = baton, *c;
    xb_daemon_t *d = owner->d;
    const xb_domain_t *domain = xb_config_find_domain(d->conf, to);

    if (!domain) {
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04400) "session %s: stream to '%.255s' refused: "
               "not an XmppBridgeDomain (host-unknown)", owner->tag, to);
        return XB_COND_HOST_UNKNOWN;
    }
    if (!owner->added || index >= owner->n_added) {
        /* Sized once by the limit the BOSH session got; indexes never exceed it. */
        unsigned n = d->limits.max_streams > index + 1 ? d->limits.max_streams : index + 1;
        bridge_session_t **grown = apr_pcalloc(owner->pool, n * sizeof(*grown));
        if (owner->added) {
            memcpy(grown, owner->added, owner->n_added * sizeof(*grown));
        }
        owner->added = grown;
        owner->n_added = n;
    }
    if (owner->added[index]) {
        /* The slot's previous stream is closed (the session reuses only closed slots). */
        owner->added[index]->owner = NULL;
        owner->added[index] = NULL;
    }
    /* Its own pool under the daemon's: an owner reaped first must not take it along. */
    c = stream_object_new(d);
    c->domain = domain;
    c->created = apr_time_now();
    c->is_added_stream = 1;
    c->owner = owner;
    c->stream_index = index;
    if (xb_daemon_new_sid(c->sid) != APR_SUCCESS) {
        apr_pool_destroy(c->pool);
        return XB_COND_INTERNAL_SERVER_ERROR;
    }
    apr_cpystrn(c->tag, owner->tag, sizeof(c->tag)); /* log lines name the session */
    c->xmpp = stream_conn_create(c, domain, xml_lang);
    c->connect_deadline = c->created + d->conf->connect_timeout;
    apr_hash_set(d->sessions, c->sid, APR_HASH_KEY_STRING, c);
    owner->added[index] = c;
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(04401) "session %s: stream %u added to %s",
           owner->tag, index, domain->name);
    /* A connect that fails at once is told to the BOSH side as this stream's end. */
    session_start(c);
    return XB_COND_NONE;
}

/* ---- prebind: the daemon logs in on the user's behalf ------------------------------------ */

static void json_append_string(apr_pool_t *p, const char **out, const char *v)
{
    const char *c;
    char *esc = apr_palloc(p, strlen(v) * 6 + 3), *w = esc;

    *w++ = '"';
    for (c = v; *c; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch == '"' || ch == '\\') {
            *w++ = '\\';
            *w++ = (char)ch;
        }
        else if (ch < 0x20) {
            w += sprintf(w, "\\u%04x", ch);
        }
        else {
            *w++ = (char)ch;
        }
    }
    *w++ = '"';
    *w = '\0';
    *out = apr_pstrcat(p, *out, esc, NULL);
}

static void prebind_answer(bridge_session_t *s, int status, const char *json)
{
    ipc_conn_t *conn = apr_hash_get(s->d->requests, &s->prebind_req, sizeof(s->prebind_req));

    s->prebind_req = 0;
    if (conn) {
        conn->session = NULL;
        conn_send_frame(conn, status, json, strlen(json));
    }
}

/* The login failed or the stream died before it finished: answer, then end the session. */
static void prebind_fail(bridge_session_t *s, int status, const char *reason, const char *why)
{
    const char *json = "{\"error\":";

    xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04024) "prebind for %s failed: %s (%s)",
           s->prebind_jid, reason, why ? why : "no detail");
    xb_shm_table_count(s->d->table,
                       !strncmp(reason, "auth-", 5) ? XB_CNT_PREBIND_AUTH_FAILED
                       : status == 504               ? XB_CNT_PREBIND_TIMEOUT
                       : !strcmp(reason, "xmpp-connection-failed") ? XB_CNT_PREBIND_CONNECT_FAILED
                                                     : XB_CNT_PREBIND_OTHER_FAILED, 1);
    s->login = NULL;
    s->prebind_failed = 1;
    json_append_string(s->pool, &json, reason);
    prebind_answer(s, status, apr_pstrcat(s->pool, json, "}\n", NULL));
    if (!s->xmpp_closed && !s->connecting && !s->sock_closed) {
        xb_xmpp_conn_close(s->xmpp);
    }
}

/* An initial RID for the browser: random, large, with room below 2^53-1 for a long session
 * (XEP-0124 §14.1: unpredictable; the prebind anchors suggest [2^32, 2^52)). */
static uint64_t random_rid(void)
{
    uint64_t v = 0;

    /* 0 when the CSPRNG fails: a guessable first RID is never handed out. */
    if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1) {
        return 0;
    }
    return (UINT64_C(1) << 32) + v % ((UINT64_C(1) << 52) - (UINT64_C(1) << 32));
}

static void prebind_done(bridge_session_t *s)
{
    xb_daemon_t *d = s->d;
    uint64_t next_rid = random_rid();
    const char *jid = xb_xmpp_login_bound_jid(s->login);
    const char *json = "{\"jid\":";
    apr_time_t now = apr_time_now();

    if (!next_rid) {
        prebind_fail(s, 500, "internal-error", "no random bytes for the first RID (RAND_bytes)");
        return;
    }
    s->login = NULL;
    s->connect_deadline = 0;
    s->bosh = xb_bosh_session_create_prebound(s->pool, s->sid, s->domain->name, next_rid,
                                              d->conf->attach_grace, &d->limits, &session_io,
                                              s, now);
    update_table(s);
    json_append_string(s->pool, &json, jid);
    json = apr_pstrcat(s->pool, json, ",\"sid\":", NULL);
    json_append_string(s->pool, &json, s->sid);
    json = apr_psprintf(s->pool, "%s,\"rid\":%" APR_UINT64_T_FMT "}\n", json, next_rid);
    /* Who and where, never the SID or RID: those are the session's bearer credentials. */
    xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04025) "prebound %s for site user %s", jid,
           s->site_user);
    xb_shm_table_count(d->table, XB_CNT_PREBIND_OK, 1);
    xb_shm_table_set_flags(d->table, s->sid, XB_ROW_PREBOUND);
    prebind_answer(s, 200, json);
    enforce_per_user_cap(s);
}

static void prebind_element(bridge_session_t *s, const char *data, apr_size_t len)
{
    const char *out = NULL;
    apr_size_t out_len = 0;

    switch (xb_xmpp_login_element(s->login, data, len, &out, &out_len)) {
    case XB_LOGIN_CONTINUE:
        if (out_len) {
            xb_xmpp_conn_send(s->xmpp, out, out_len);
        }
        break;
    case XB_LOGIN_RESTART:
        if (out_len) {
            xb_xmpp_conn_send(s->xmpp, out, out_len);
        }
        xb_xmpp_conn_restart(s->xmpp);
        break;
    case XB_LOGIN_DONE:
        if (out_len) {
            xb_xmpp_conn_send(s->xmpp, out, out_len);
        }
        prebind_done(s);
        break;
    case XB_LOGIN_FAILED:
    default:
        prebind_fail(s, 502, xb_xmpp_login_error(s->login),
                     xb_xmpp_login_error_detail(s->login));
        break;
    }
}

/* After a site logout, the page still open in the browser reconnects through /prebind at
 * once (Converse does so on any terminate, and the logout request itself is authenticated, so
 * the site cannot end its login first). Prebind is refused for that user for this long. */
#define LOGOUT_QUIET apr_time_from_sec(10)

static int recently_logged_out(xb_daemon_t *d, const char *user)
{
    apr_time_t *until = apr_hash_get(d->logouts, user, (apr_ssize_t)strlen(user));

    return until && *until > apr_time_now();
}

/* One entry per user that ever logged out (from the daemon's pool: bounded by the number of
 * users; an entry is reused at the user's next logout). */
static void note_logout(xb_daemon_t *d, const char *user, apr_size_t len)
{
    apr_time_t *until = apr_hash_get(d->logouts, user, (apr_ssize_t)len);

    if (!until) {
        until = apr_palloc(d->pool, sizeof(*until));
        apr_hash_set(d->logouts, apr_pstrmemdup(d->pool, user, len), (apr_ssize_t)len, until);
    }
    *until = apr_time_now() + LOGOUT_QUIET;
}

static void handle_prebind(ipc_conn_t *conn, const char *payload, apr_size_t len)
{
    xb_daemon_t *d = conn->d;
    xb_ipc_prebind_meta_t meta_copy;
    const xb_ipc_prebind_meta_t *meta = &meta_copy;
    const char *f[XB_PREBIND_FIELD_COUNT];
    xb_xmpp_login_params_t params;
    const xb_domain_t *domain;
    xb_bosh_condition_t cond = XB_COND_NONE;
    bridge_session_t *s;
    char resource[XB_SID_HEX_LEN + 1];
    const char *answer = "{\"error\":\"bad-request\"}\n";
    char client_ip[sizeof(meta->client_ip)];

    if (len < sizeof(*meta) || conn->req_id
        || xb_ipc_strings_split(payload + sizeof(*meta), len - sizeof(*meta), f,
                                XB_PREBIND_FIELD_COUNT) != APR_SUCCESS) {
        conn_send_frame(conn, 400, answer, strlen(answer));
        return;
    }
    /* A copy: the payload may sit at any offset of the read buffer (see handle_bosh_request). */
    memcpy(&meta_copy, payload, sizeof(meta_copy));
    conn->req_id = ++d->last_req_id;
    apr_hash_set(d->requests, &conn->req_id, sizeof(conn->req_id), conn);
    domain = xb_config_find_domain(d->conf, f[XB_PREBIND_FIELD_DOMAIN]);
    if (!domain) {
        answer = "{\"error\":\"domain-not-configured\"}\n";
        conn_send_frame(conn, 500, answer, strlen(answer));
        return;
    }
    if (meta->mode == XB_PREBIND_TOKEN && !d->token_key) {
        answer = "{\"error\":\"no-token-key\"}\n";
        conn_send_frame(conn, 500, answer, strlen(answer));
        return;
    }
    if (recently_logged_out(d, f[XB_PREBIND_FIELD_SITE_USER])) {
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04034) "prebind for site user %s refused: "
               "logged out moments ago", f[XB_PREBIND_FIELD_SITE_USER]);
        answer = "{\"error\":\"logged-out\"}\n";
        conn_send_frame(conn, 403, answer, strlen(answer));
        return;
    }
    memcpy(client_ip, meta->client_ip, sizeof(client_ip));
    client_ip[sizeof(client_ip) - 1] = '\0';
    if (!address_admits(d, client_ip)) {
        refuse_address(d, client_ip, "prebind");
        answer = "{\"error\":\"too-many-sessions-from-address\"}\n";
        conn_send_frame(conn, 503, answer, strlen(answer));
        return;
    }
    s = session_new(d, domain, NULL, 0, 1, NULL, client_ip, &cond);
    if (!s) {
        answer = "{\"error\":\"too-many-sessions\"}\n";
        conn_send_frame(conn, 503, answer, strlen(answer));
        return;
    }
    xb_daemon_new_sid(resource); /* 32 hex digits; a 12-digit resource suffix is plenty */
    resource[12] = '\0';
    memset(&params, 0, sizeof(params));
    params.username = f[XB_PREBIND_FIELD_LOCALPART];
    params.domain = domain->name;
    params.resource = apr_pstrcat(s->pool, "xb-", resource, NULL);
    if (meta->mode == XB_PREBIND_PASSTHROUGH) {
        params.mode = XB_LOGIN_MODE_PASSWORD;
        params.secret = f[XB_PREBIND_FIELD_SECRET];
        /* The site password never crosses an unencrypted link: without TLS only SCRAM. */
        params.scram_only = domain->tls == XB_TLS_NONE;
    }
    else {
        params.mode = XB_LOGIN_MODE_TOKEN;
        params.secret = xb_jwt_mint(s->pool, d->token_key, f[XB_PREBIND_FIELD_JID],
                                    apr_time_now(), d->conf->token_lifetime);
    }
    if (!params.secret) {
        s->prebind_jid = apr_pstrdup(s->pool, f[XB_PREBIND_FIELD_JID]);
        s->prebind_req = conn->req_id;
        if (!s->warm_pending) {
            s->xmpp_closed = s->sock_closed = 1; /* never connected */
        }
        s->warm_pending = 0; /* a warm stream taken: prebind_fail closes it */
        prebind_fail(s, 500, "token-failed", "minting the token failed");
        session_sync(s);
        return;
    }
    s->login = xb_xmpp_login_create(s->pool, &params);
    /* The login keeps its own copy (wiped with its pool); none stays in the frame buffer. */
    OPENSSL_cleanse((void *)f[XB_PREBIND_FIELD_SECRET], strlen(f[XB_PREBIND_FIELD_SECRET]));
    s->prebind_jid = apr_pstrdup(s->pool, f[XB_PREBIND_FIELD_JID]);
    s->site_user = apr_pstrdup(s->pool, f[XB_PREBIND_FIELD_SITE_USER]);
    s->prebind_req = conn->req_id;
    conn->session = s;
    session_start(s);
}

/* ---- frames from handlers --------------------------------------------------------------- */

/* XmppBridgeRequireSiteUser: a prebound session's SID is useless without the site login that
 * prebound it. Sessions a browser created itself (password login) carry no site user. */
static int site_user_matches(const bridge_session_t *s, const char *user, apr_size_t len)
{
    return !s->site_user || (strlen(s->site_user) == len && memcmp(s->site_user, user, len) == 0);
}

static void handle_bosh_request(ipc_conn_t *conn, const char *payload, apr_size_t len)
{
    xb_daemon_t *d = conn->d;
    xb_ipc_request_meta_t meta_copy;
    const xb_ipc_request_meta_t *meta = &meta_copy;
    xb_bosh_body_t *body = NULL;
    const char *errmsg = NULL, *site_user;
    bridge_session_t *s;
    xb_bosh_body_status_t st;
    apr_size_t head;
    char client_ip[sizeof(meta->client_ip)];

    /* A copy, not a cast: a frame's payload starts wherever the frames before it in the same
     * read ended (xb_ipc_reader_next does not align it), and reading a uint32_t through a
     * misaligned pointer is undefined behaviour. */
    if (len < sizeof(*meta)) {
        conn_send_terminate(conn, XB_COND_BAD_REQUEST, 0);
        return;
    }
    memcpy(&meta_copy, payload, sizeof(meta_copy));
    if (conn->req_id || meta->site_user_len > len - sizeof(*meta)) {
        conn_send_terminate(conn, XB_COND_BAD_REQUEST, 0);
        return;
    }
    memcpy(client_ip, meta->client_ip, sizeof(client_ip));
    client_ip[sizeof(client_ip) - 1] = '\0';
    site_user = payload + sizeof(*meta);
    head = sizeof(*meta) + meta->site_user_len;
    conn->req_id = ++d->last_req_id;
    apr_hash_set(d->requests, &conn->req_id, sizeof(conn->req_id), conn);

    st = xb_bosh_body_parse(conn->pool, payload + head, len - head, &d->parse_limits, &body,
                            &errmsg);
    if (st != XB_BODY_OK) {
        /* The handler parsed the same bytes already; this only happens if the two disagree. */
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04013) "bad request body from %s: %s",
               client_ip, errmsg ? errmsg : "unparseable");
        conn_send_terminate(conn, XB_COND_BAD_REQUEST, 0);
        return;
    }
    if (!body->sid) {
        handle_creation(conn, body, client_ip);
        return;
    }
    s = apr_hash_get(d->sessions, body->sid, APR_HASH_KEY_STRING);
    if (!s || s->close_deadline || !s->bosh) {
        char tag[XB_LOG_TAG_LEN + 1];
        xb_log_session_tag(body->sid, tag);
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04014) "request from %s for unknown session %s",
               client_ip, tag);
        conn_send_terminate(conn, XB_COND_ITEM_NOT_FOUND, 0);
        return;
    }
    if ((meta->flags & XB_REQ_REQUIRE_SITE_USER)
        && !site_user_matches(s, site_user, meta->site_user_len)) {
        /* Refuse the request, keep the session: its owner is still chatting. */
        xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04026) "session of site user %s used by "
               "%s '%.*s' from %s: refused (XmppBridgeRequireSiteUser)", s->site_user,
               meta->site_user_len ? "site user" : "an unauthenticated request", 
               (int)(meta->site_user_len > 64 ? 64 : meta->site_user_len), site_user, client_ip);
        conn_send_terminate(conn, XB_COND_ITEM_NOT_FOUND, 0);
        return;
    }
    conn->session = s;
    if (s->site_user && !s->attached) {
        s->attached = 1;
        xb_shm_table_count(d->table, XB_CNT_PREBIND_ATTACHED, 1);
        xb_shm_table_set_flags(d->table, s->sid, XB_ROW_ATTACHED);
    }
    xb_shm_table_count(d->table, XB_CNT_BOSH_REQUESTS, 1);
    xb_bosh_session_request(s->bosh, conn->req_id, body, apr_time_now());
    if (!s->close_deadline && !s->ended) {
        update_table(s); /* held count and window as of this request (the status page) */
    }
    session_sync(s);
}

/* The terminate body's application-specific child when a site logout ends a session. */
#define XB_SITE_LOGOUT_DETAIL "<site-logout xmlns='urn:x-mod-xmpp-bridge:terminate'/>"

/* Ends a live session from the daemon's side (logout, per-user cap): its client gets `cond`,
 * with `detail` (an application-specific element, or NULL) for undefined-condition. */
static void session_end(bridge_session_t *s, xb_bosh_condition_t cond, const char *detail)
{
    s->ended = 1;
    xb_shm_table_remove(s->d->table, s->sid);
    xb_bosh_session_end_detail(s->bosh, cond, detail, detail ? strlen(detail) : 0,
                               apr_time_now());
    io_close_stream(s, 0);
    session_sync(s);
}

/* Live prebound sessions of `user`, oldest first. */
static apr_array_header_t *sessions_of(xb_daemon_t *d, apr_pool_t *p, const char *user,
                                       apr_size_t len)
{
    apr_array_header_t *found = apr_array_make(p, 4, sizeof(bridge_session_t *));
    apr_hash_index_t *hi;
    int i, j;

    for (hi = apr_hash_first(p, d->sessions); hi; hi = apr_hash_next(hi)) {
        bridge_session_t *s = apr_hash_this_val(hi);
        if (s->site_user && s->bosh && !s->close_deadline && !s->ended
            && site_user_matches(s, user, len)) {
            APR_ARRAY_PUSH(found, bridge_session_t *) = s;
        }
    }
    /* Few per user: insertion sort by creation time. */
    for (i = 1; i < found->nelts; i++) {
        bridge_session_t *x = APR_ARRAY_IDX(found, i, bridge_session_t *);
        for (j = i; j > 0 && APR_ARRAY_IDX(found, j - 1, bridge_session_t *)->created
                                 > x->created; j--) {
            APR_ARRAY_IDX(found, j, bridge_session_t *) =
                APR_ARRAY_IDX(found, j - 1, bridge_session_t *);
        }
        APR_ARRAY_IDX(found, j, bridge_session_t *) = x;
    }
    return found;
}

/* XmppBridgePrebindMaxPerUser: a new prebound session ends the oldest ones beyond the cap
 * (a user with many stale tabs keeps the newest). */
static void enforce_per_user_cap(bridge_session_t *fresh)
{
    xb_daemon_t *d = fresh->d;
    apr_pool_t *p;
    apr_array_header_t *mine;
    int i, excess;

    apr_pool_create(&p, d->pool);
    mine = sessions_of(d, p, fresh->site_user, strlen(fresh->site_user));
    excess = mine->nelts - (int)d->conf->max_per_user;
    for (i = 0; i < mine->nelts && excess > 0; i++) {
        bridge_session_t *old = APR_ARRAY_IDX(mine, i, bridge_session_t *);
        if (old == fresh) {
            continue;
        }
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04027) "site user %s has more than %u prebound "
               "sessions (XmppBridgePrebindMaxPerUser): the oldest ends", fresh->site_user,
               d->conf->max_per_user);
        session_end(old, XB_COND_OTHER_REQUEST, NULL);
        excess--;
    }
    apr_pool_destroy(p);
}

static void handle_logout(ipc_conn_t *conn, const char *payload, apr_size_t len)
{
    apr_pool_t *p;
    apr_array_header_t *mine;
    const char *json;
    int i;

    note_logout(conn->d, payload, len);
    apr_pool_create(&p, conn->pool);
    mine = sessions_of(conn->d, p, payload, len);
    for (i = 0; i < mine->nelts; i++) {
        /* No §17.2 condition says "the site user logged out": undefined-condition with the
         * application-specific reason, as §17.2 asks. */
        session_end(APR_ARRAY_IDX(mine, i, bridge_session_t *), XB_COND_UNDEFINED_CONDITION,
                    XB_SITE_LOGOUT_DETAIL);
    }
    xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04028) "site logout of %.*s ended %d XMPP "
           "session(s)", (int)(len > 256 ? 256 : len), payload, mine->nelts);
    json = apr_psprintf(conn->pool, "{\"ended\":%d}\n", mine->nelts);
    xb_shm_table_count(conn->d->table, XB_CNT_LOGOUTS, 1);
    apr_pool_destroy(p);
    conn_send_frame(conn, 200, json, strlen(json));
}

static void handle_credentials(ipc_conn_t *conn, const char *payload, apr_size_t len)
{
    xb_daemon_t *d = conn->d;
    const char *jid = apr_pstrmemdup(conn->pool, payload, len);
    const char *json = "{\"jid\":", *token;

    if (!d->token_key) {
        json = "{\"error\":\"no-token-key\"}\n";
        conn_send_frame(conn, 500, json, strlen(json));
        return;
    }
    token = xb_jwt_mint(conn->pool, d->token_key, jid, apr_time_now(), d->conf->token_lifetime);
    if (!token) {
        json = "{\"error\":\"token-failed\"}\n";
        conn_send_frame(conn, 500, json, strlen(json));
        return;
    }
    json_append_string(conn->pool, &json, jid);
    json = apr_pstrcat(conn->pool, json, ",\"password\":", NULL);
    json_append_string(conn->pool, &json, token);
    json = apr_pstrcat(conn->pool, json, "}\n", NULL);
    xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04029) "credentials issued for %s", jid);
    xb_shm_table_count(d->table, XB_CNT_CREDENTIALS_ISSUED, 1);
    conn_send_frame(conn, 200, json, strlen(json));
}

static void handle_terminate(ipc_conn_t *conn, const char *payload, apr_size_t len)
{
    char sid[XB_SID_HEX_LEN + 1];
    bridge_session_t *s;

    if (len != XB_SID_HEX_LEN) {
        conn_close(conn);
        return;
    }
    memcpy(sid, payload, XB_SID_HEX_LEN);
    sid[XB_SID_HEX_LEN] = '\0';
    s = apr_hash_get(conn->d->sessions, sid, APR_HASH_KEY_STRING);
    if (s && !s->close_deadline && s->bosh) {
        /* The handler already told the client item-not-found; end the session for good. */
        xb_shm_table_remove(conn->d->table, s->sid);
        xb_bosh_session_end(s->bosh, XB_COND_ITEM_NOT_FOUND, apr_time_now());
        io_close_stream(s, 0);
        session_sync(s);
    }
    conn_close(conn);
}

/* The limits new sessions get; sessions already running keep theirs. */
static void apply_limits(xb_daemon_t *d)
{
    d->limits.max_wait = d->conf->max_wait;
    d->limits.max_hold = d->conf->max_hold;
    d->limits.inactivity = d->conf->inactivity;
    d->limits.polling = d->conf->polling;
    d->limits.response_cache = d->conf->response_cache;
    d->limits.max_queued_bytes = d->conf->max_queued_bytes;
    d->limits.accept = d->conf->gzip ? "gzip" : NULL;
    d->limits.max_replays = d->conf->max_replays;
    d->limits.max_pause = d->conf->max_pause;
    d->limits.max_streams = d->conf->max_streams;
}

static int peer_is_admin(ipc_conn_t *conn)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    apr_os_sock_t fd;

    apr_os_sock_get(&fd, conn->sock);
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0
           && (unsigned)cred.uid == conn->d->hooks.admin_uid;
}

/* After a restart: sessions to a domain no longer in XmppBridgeDomain end with host-gone
 * (their held request is answered now, otherwise their next one). */
static void end_sessions_of_removed_domains(xb_daemon_t *d)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, d->sessions); hi; hi = apr_hash_next(hi)) {
        bridge_session_t *s = apr_hash_this_val(hi);

        if (s->close_deadline || s->ended || s->is_added_stream
            || xb_config_find_domain(d->conf, s->domain->name)) {
            continue;
        }
        xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04131) "session %s: %s is no longer an "
               "XmppBridgeDomain: it ends with host-gone", s->tag, s->domain->name);
        xb_shm_table_count(d->table, XB_CNT_HOST_GONE, 1);
        if (s->login) {
            prebind_fail(s, 503, "host-gone", "the domain was removed from the configuration");
            session_sync(s);
        }
        else if (s->bosh) {
            /* Unlike session_end, the row stays until the client has been told: a request
             * that arrives meanwhile must reach the session to get host-gone (the held one
             * was most likely released empty when the old generation's children stopped). */
            s->ended = 1;
            xb_bosh_session_end(s->bosh, XB_COND_HOST_GONE, apr_time_now());
            io_close_stream(s, 0);
            session_sync(s);
        }
    }
}

/* A graceful restart: the daemon and its sessions stay, the new generation's configuration and
 * error log take over. Sessions keep the domain entries they were made with (the old
 * configuration's memory is never freed: a few hundred bytes per restart), new sessions use
 * the new ones. The shared table cannot change size while it lives (httpd logs that). */
static void handle_reconfigure(ipc_conn_t *conn, uint32_t log_level, const char *payload,
                               apr_size_t len)
{
    xb_daemon_t *d = conn->d;
    xb_config_t *conf = NULL;
    apr_pool_t *p;
    SSL_CTX *ctx;
    const char *errmsg = NULL;
    const char *ok = "ok";

    if (!peer_is_admin(conn)) {
        xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04030) "reconfiguration refused: the peer "
               "is not the httpd parent");
        conn_close(conn);
        return;
    }
    if (d->hooks.new_log) {
        d->hooks.new_log(d->hooks.baton, conn->passed_fd, (int)log_level);
        conn->passed_fd = -1; /* the hook owns it now */
    }
    apr_pool_create(&p, d->pool);
    if (xb_config_deserialize(p, payload, len, &conf) != APR_SUCCESS) {
        xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(04031) "reconfiguration refused: malformed "
               "configuration; the daemon keeps the previous one");
        apr_pool_destroy(p);
        conn_send_frame(conn, 400, "bad", 3);
        return;
    }
    ctx = xb_xmpp_conn_ssl_ctx(conf->ca_file, &errmsg);
    if (!ctx) {
        xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(04032) "reconfiguration: TLS set-up failed "
               "(XmppBridgeTLSCAFile %s): %s; the daemon keeps the previous configuration",
               conf->ca_file ? conf->ca_file : "system default", errmsg ? errmsg : "");
        apr_pool_destroy(p);
        conn_send_frame(conn, 500, "tls", 3);
        return;
    }
    /* Live TLS connections hold their own reference to the old context. */
    SSL_CTX_free(d->ssl_ctx);
    d->ssl_ctx = ctx;
    d->conf = conf;
    d->addrs = apr_hash_make(p); /* hosts may have moved */
    apply_limits(d);
    warm_configure(d, "new configuration"); /* hosts, names, the CA may have changed */
    end_sessions_of_removed_domains(d);
    xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04033) "new configuration applied (%d domains); %u "
           "sessions carry on", conf->domains->nelts, apr_hash_count(d->sessions));
    conn_send_frame(conn, 200, ok, strlen(ok));
}

static void shutdown_sessions(xb_daemon_t *d);

static void handle_frame(ipc_conn_t *conn, const xb_ipc_header_t *hdr, const char *payload)
{
    conn_idle_remove(conn);
    switch (hdr->type) {
    case XB_IPC_BOSH_REQUEST:
        handle_bosh_request(conn, payload, hdr->length);
        break;
    case XB_IPC_RELEASE:
        if (conn->req_id && conn->session && conn->session->bosh) {
            /* The answer goes out from inside, and an answered connection forgets its
             * session: keep it at hand. */
            bridge_session_t *s = conn->session;
            xb_bosh_session_release(s->bosh, conn->req_id, apr_time_now());
            session_sync(s);
        }
        break;
    case XB_IPC_TERMINATE:
        handle_terminate(conn, payload, hdr->length);
        break;
    case XB_IPC_PREBIND:
        handle_prebind(conn, payload, hdr->length);
        break;
    case XB_IPC_CREDENTIALS:
        handle_credentials(conn, payload, hdr->length);
        break;
    case XB_IPC_LOGOUT:
        handle_logout(conn, payload, hdr->length);
        break;
    case XB_IPC_RECONFIGURE:
        handle_reconfigure(conn, hdr->aux, payload, hdr->length);
        break;
    case XB_IPC_END_SESSIONS:
        if (peer_is_admin(conn)) {
            xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04035) "httpd stops its children: %u "
                   "sessions end with system-shutdown", apr_hash_count(conn->d->sessions));
            shutdown_sessions(conn->d);
        }
        conn_close(conn);
        break;
    default:
        conn_close(conn);
        break;
    }
}

/* recvmsg rather than recv: a restart's new configuration comes with a descriptor. */
static apr_status_t conn_recv(ipc_conn_t *conn, char *buf, apr_size_t *len)
{
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg;
    struct iovec iov;
    struct cmsghdr *cmsg;
    apr_os_sock_t fd;
    ssize_t n;

    apr_os_sock_get(&fd, conn->sock);
    memset(&msg, 0, sizeof(msg));
    iov.iov_base = buf;
    iov.iov_len = *len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof(control.space);
    do {
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    *len = n > 0 ? (apr_size_t)n : 0;
    for (cmsg = CMSG_FIRSTHDR(&msg); n > 0 && cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
            int passed;
            memcpy(&passed, CMSG_DATA(cmsg), sizeof(passed));
            if (conn->passed_fd >= 0) {
                close(conn->passed_fd);
            }
            conn->passed_fd = passed;
        }
    }
    if (n > 0) {
        return APR_SUCCESS;
    }
    if (n == 0) {
        return APR_EOF;
    }
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? APR_EAGAIN : errno;
}

static void conn_read(ipc_conn_t *conn)
{
    char buf[READ_CHUNK];
    xb_ipc_header_t hdr;
    const char *payload;
    xb_ipc_read_status_t st = XB_IPC_NEED_MORE;
    int at_eof = 0;

    for (;;) {
        apr_size_t n = sizeof(buf);
        apr_status_t rv = conn_recv(conn, buf, &n);
        if (n > 0 && xb_ipc_reader_feed(conn->reader, buf, n) != APR_SUCCESS) {
            xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04015) "oversized frame from a handler");
            conn_close(conn);
            return;
        }
        if (APR_STATUS_IS_EAGAIN(rv) || (rv == APR_SUCCESS && n < sizeof(buf))) {
            break; /* drained, as in session_read; an end that follows wakes us again */
        }
        if (rv != APR_SUCCESS) {
            at_eof = 1;
            break;
        }
    }
    /* Frames that arrived before the end still count (a fire-and-forget terminate notice
     * is written and closed at once). */
    while (!conn->closing
           && (st = xb_ipc_reader_next(conn->reader, &hdr, &payload)) == XB_IPC_FRAME) {
        handle_frame(conn, &hdr, payload);
    }
    if (!conn->closing && st == XB_IPC_NEED_MORE) {
        /* Between requests, and while its request is held, a connection holds no buffer. */
        xb_ipc_reader_release_idle(conn->reader);
    }
    if (!conn->closing && st == XB_IPC_BAD) {
        xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04016) "malformed frame from a handler");
        conn_close(conn);
    }
    if (at_eof && !conn->closing && !conn_writing(conn)) {
        /* The handler went away (client gone, child stopping): its request is forgotten,
         * whatever its answer would have been stays queued for the client's re-send. */
        conn_close(conn);
    }
}

/* close(2) rather than apr_socket_close: the socket was put, not accepted, so no pool cleanup
 * is registered for it (apr_socket_close would look for one along d->pool's list). */
static void conn_close_descriptor(ipc_conn_t *conn)
{
    apr_os_sock_t fd = -1;

    apr_os_sock_get(&fd, conn->sock);
    if (fd >= 0) {
        close(fd);
        fd = -1;
        apr_os_sock_put(&conn->sock, &fd, conn->d->pool);
    }
}

static void conn_close(ipc_conn_t *conn)
{
    if (conn->closing) {
        return;
    }
    conn->closing = 1;
    conn_idle_remove(conn);
    if (conn->req_id) {
        xb_request_id_t id = conn->req_id;
        bridge_session_t *s = conn->session;
        conn_unregister(conn);
        if (s && !s->reaped && s->bosh) {
            xb_bosh_session_request_gone(s->bosh, id, apr_time_now());
            session_sync(s);
        }
    }
    poll_set(conn->d, &conn->pfd, &conn->events, 0);
    conn_close_descriptor(conn);
    xb_buf_free(&conn->out);
    if (conn->passed_fd >= 0) {
        close(conn->passed_fd);
        conn->passed_fd = -1;
    }
    APR_ARRAY_PUSH(conn->d->closed_conns, ipc_conn_t *) = conn;
}

/* Bytes wait on an idle connection: a child took it from its idle list and wrote its next
 * request, which this round reads. */
static int conn_has_input(ipc_conn_t *conn)
{
    apr_os_sock_t fd;
    char byte;

    return apr_os_sock_get(&fd, conn->sock) == APR_SUCCESS
           && recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Gives back every idle handler connection (its child sees it closed and connects afresh
 * next time); returns how many. Not one with a request waiting in it: closing it would drop
 * the request, and its handler would answer remote-connection-failed, ending the client's
 * session (test_7116). */
static int close_idle_conns(xb_daemon_t *d)
{
    ipc_conn_t *conn = d->idle_conns, *next;
    int n = 0;

    while (conn) {
        next = conn->idle_next;
        if (!conn_has_input(conn)) {
            conn_close(conn); /* takes it off the list */
            n++;
        }
        conn = next;
    }
    return n;
}

/* Out of descriptors (EMFILE/ENFILE). First the idle handler connections kept for reuse are
 * given back: then the caller accepts again. With none to give back, the connection stays in
 * the listener's backlog, so the listener stays readable and polling it would spin, logging a
 * line per try. Stop polling it for ACCEPT_RETRY instead: the handlers wait in the backlog
 * (their own timeout is wait + a margin) until a held request is answered or a session ends
 * and frees a descriptor. Returns true when the caller should accept again now. */
static int out_of_descriptors(xb_daemon_t *d, apr_status_t rv)
{
    char reason[120];
    apr_time_t now = apr_time_now();
    int freed = close_idle_conns(d);

    /* Under a steady load it flaps (one descriptor frees, one request is accepted, out
     * again): a line per second at most. */
    if (!d->accept_warned_at || now - d->accept_warned_at >= apr_time_from_sec(1)) {
        d->accept_warned_at = now;
        xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04160) "the bridge daemon is out of file "
               "descriptors (%s): %d idle handler connection(s) closed%s; raise its "
               "open-files limit (ulimit -n where httpd starts) or lower XmppBridgeMaxSessions",
               apr_strerror(rv, reason, sizeof(reason)), freed,
               freed ? "" : ", requests wait in the socket's backlog until one is free");
    }
    if (freed) {
        return 1;
    }
    d->accept_retry_at = now + ACCEPT_RETRY;
    poll_set(d, &d->listener_pfd, &d->listener_events, 0);
    return 0;
}

static void resume_accepting(xb_daemon_t *d, apr_time_t now, apr_time_t *next)
{
    if (!d->accept_retry_at) {
        return;
    }
    if (now < d->accept_retry_at) {
        if (d->accept_retry_at < *next) {
            *next = d->accept_retry_at;
        }
        return;
    }
    d->accept_retry_at = 0;
    poll_set(d, &d->listener_pfd, &d->listener_events, APR_POLLIN);
}

static ipc_conn_t *conn_slot_take(xb_daemon_t *d)
{
    ipc_conn_t *conn;

    if (!d->free_conns) {
        ipc_conn_t *slab = apr_pcalloc(d->pool, CONN_SLAB * sizeof(*slab));
        int i;

        for (i = CONN_SLAB - 1; i >= 0; i--) {
            slab[i].next_free = d->free_conns;
            d->free_conns = &slab[i];
        }
        APR_ARRAY_PUSH(d->conn_slabs, ipc_conn_t *) = slab;
    }
    conn = d->free_conns;
    d->free_conns = conn->next_free;
    return conn;
}

static void conn_slot_give(ipc_conn_t *conn)
{
    xb_daemon_t *d = conn->d;

    /* The reader goes only now: the frame being handled may still point into it. */
    xb_ipc_reader_free(conn->reader);
    conn->reader = NULL;
    conn->in_use = 0;
    conn->next_free = d->free_conns;
    d->free_conns = conn;
}

/* The daemon ends: the connections still open are closed (they have no pool whose cleanup
 * would do it). */
static void close_all_conns(xb_daemon_t *d)
{
    int i, j;

    for (i = 0; i < d->conn_slabs->nelts; i++) {
        ipc_conn_t *slab = APR_ARRAY_IDX(d->conn_slabs, i, ipc_conn_t *);
        for (j = 0; j < CONN_SLAB; j++) {
            if (slab[j].in_use) {
                conn_close_descriptor(&slab[j]);
                xb_buf_free(&slab[j].out);
                xb_ipc_reader_free(slab[j].reader);
                if (slab[j].passed_fd >= 0) {
                    close(slab[j].passed_fd);
                }
                slab[j].in_use = 0;
            }
        }
    }
}

static void accept_conns(xb_daemon_t *d)
{
    apr_os_sock_t lfd;

    apr_os_sock_get(&lfd, d->listener);
    for (;;) {
        ipc_conn_t *conn;
        apr_socket_t *sock;
        xb_ipc_reader_t *reader;
        apr_status_t rv;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        rv = fd >= 0 ? APR_SUCCESS : errno;
        reader = fd >= 0 ? xb_ipc_reader_new(d->conf->max_body_size + 1024) : NULL;
        if (fd >= 0 && !reader) {
            close(fd);
            rv = APR_ENOMEM;
        }
        if (rv != APR_SUCCESS) {
            if (APR_STATUS_IS_EMFILE(rv) || APR_STATUS_IS_ENFILE(rv)) {
                if (out_of_descriptors(d, rv)) {
                    continue; /* idle connections were given back: there is room now */
                }
            }
            else if (!APR_STATUS_IS_EAGAIN(rv) && !APR_STATUS_IS_EINTR(rv)) {
                xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(04017) "accept on the daemon socket "
                       "failed (%d)", rv);
            }
            return;
        }
        conn = conn_slot_take(d);
        sock = conn->sock;
        memset(conn, 0, sizeof(*conn));
        /* The slot's socket keeps its APR state from the last descriptor: non-blocking with a
         * zero timeout, which accept4 made true of this one too. */
        apr_os_sock_put(&sock, &fd, d->pool);
        conn->in_use = 1;
        conn->kind = FD_IPC;
        conn->d = d;
        conn->pool = d->scratch;
        conn->sock = sock;
        conn->reader = reader;
        conn->passed_fd = -1;
        apr_socket_opt_set(sock, APR_SO_NONBLOCK, 1);
        apr_socket_timeout_set(sock, 0);
        conn->pfd.desc_type = APR_POLL_SOCKET;
        conn->pfd.desc.s = sock;
        conn->pfd.client_data = conn;
        poll_set(d, &conn->pfd, &conn->events, APR_POLLIN);
    }
}

/* ---- timers ----------------------------------------------------------------------------- */

static apr_time_t earliest(apr_time_t a, apr_time_t b)
{
    return (a == 0 || (b != 0 && b < a)) ? b : a;
}

/* One session's upkeep: its timeouts, the end of a finished session, its place in the heap.
 * Returns 1 when the session is to be reaped. */
static int session_upkeep(bridge_session_t *s, apr_time_t now)
{
    xb_daemon_t *d = s->d;
    apr_time_t due;

    if (s->connect_deadline && now >= s->connect_deadline
        && (!xb_xmpp_conn_is_ready(s->xmpp) || s->warm) && !s->xmpp_closed) {
        if (!s->warm) { /* a warm stream's failures are logged by its pool, paced */
            xb_log(XB_LOG_MARK, XB_LOG_WARNING, XBLOGNO(04018) "session %s: %s:%u (%s) did "
                   "not complete the stream set-up within XmppBridgeConnectTimeout", s->tag,
                   s->domain->host, (unsigned)s->domain->port, s->domain->name);
        }
        s->connecting = 0;
        session_close_socket(s);
        if (s->login) {
            prebind_fail(s, 504, "timeout", "XmppBridgeConnectTimeout");
            s->xmpp_closed = 1;
        }
        else {
            session_fail(s, "timed out setting up the XMPP stream");
        }
    }
    if (s->connect_deadline && xb_xmpp_conn_is_ready(s->xmpp) && !s->login && !s->warm) {
        s->connect_deadline = 0;
    }
    if (s->warm && s->warm_state == WARM_READY && now >= warm_expiry(s)) {
        warm_drop(s, "older than XmppBridgeWarmStreamMaxAge");
    }
    if (s->bosh) {
        xb_bosh_session_tick(s->bosh, now);
        /* Most sessions sit idle for minutes: a stream quiet for a while frees its expat
         * parser (~9 kB), made again by its next bytes. No timer of its own: upkeep reaches an
         * idle session at its BOSH deadlines anyway (the held request's wait), and a stream
         * that gets a stanza at least every 10 s keeps its parser. */
        if (now - s->last_read >= IDLE_PARSER_AFTER && xb_xmpp_conn_compact(s->xmpp)) {
            d->compacted++;
            xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(04600) "session %s: XMPP stream quiet for "
                   "%d s: its parser is freed until the next bytes", s->tag,
                   (int)apr_time_sec(now - s->last_read));
        }
    }
    session_sync(s);
    if (s->close_deadline && (s->sock_closed || now >= s->close_deadline)) {
        return 1;
    }
    due = s->bosh ? xb_bosh_session_next_deadline(s->bosh) : 0;
    due = earliest(due, s->connect_deadline);
    due = earliest(due, s->close_deadline);
    if (s->warm && s->warm_state != WARM_GONE) {
        due = earliest(due, warm_expiry(s));
    }
    xb_timer_heap_set(d->timers, &s->timer, due);
    return 0;
}

/* The sessions whose deadline came and those this round touched get their upkeep; nobody
 * else is looked at. Returns when the loop must wake up next. */
static apr_time_t run_timers(xb_daemon_t *d, apr_time_t now)
{
    apr_time_t next = now + MAX_POLL_WAIT;
    apr_array_header_t *reap = d->to_reap;
    xb_timer_t *t;
    int i;

    reap->nelts = 0;
    while ((t = xb_timer_heap_pop_due(d->timers, now)) != NULL) {
        session_touch(t->data);
    }
    for (;;) {
        /* Warm streams taken, recycled or lost this round are replaced at once. */
        warm_refill(d, now, &next);
        if (d->touched->nelts == 0) {
            break;
        }
        /* The list may grow while it is walked (an upkeep that touches another session). A
         * session stays marked while it waits for reaping, so it is queued only once. */
        for (i = 0; i < d->touched->nelts; i++) {
            bridge_session_t *s = APR_ARRAY_IDX(d->touched, i, bridge_session_t *);
            if (session_upkeep(s, now)) {
                APR_ARRAY_PUSH(reap, bridge_session_t *) = s;
            }
            else {
                s->touched = 0;
            }
        }
        d->touched->nelts = 0;
        for (i = 0; i < reap->nelts; i++) {
            session_reap(APR_ARRAY_IDX(reap, i, bridge_session_t *));
        }
        reap->nelts = 0;
    }
    /* A freed parser's pages sit among live ones, so free() keeps them resident; malloc_trim
     * hands whole free pages back (madvise), paced because it walks the heap. */
    if (d->compacted && now - d->trimmed_at >= TRIM_EVERY) {
#ifdef __GLIBC__
        malloc_trim(0);
#endif
        d->compacted = 0;
        d->trimmed_at = now;
    }
    t = xb_timer_heap_first(d->timers);
    if (t && t->due < next) {
        next = t->due;
    }
    return next;
}

/* ---- the loop --------------------------------------------------------------------------- */

static void dispatch(xb_daemon_t *d, const apr_pollfd_t *pfd)
{
    fd_kind_t kind = *(fd_kind_t *)pfd->client_data;

    if (kind == FD_LISTENER) {
        accept_conns(d);
    }
    else if (kind == FD_IPC) {
        ipc_conn_t *conn = pfd->client_data;
        if (conn->closing) {
            return;
        }
        if (pfd->rtnevents & APR_POLLOUT) {
            conn_flush(conn);
        }
        else {
            conn_read(conn);
        }
    }
    else {
        bridge_session_t *s = pfd->client_data;
        if (s->reaped || s->sock_closed) {
            return;
        }
        if (s->connecting && (pfd->rtnevents & (APR_POLLOUT | APR_POLLERR | APR_POLLHUP))) {
            session_connected(s);
        }
        else if (pfd->rtnevents & (APR_POLLIN | APR_POLLHUP | APR_POLLERR)) {
            session_read(s);
        }
        session_sync(s);
        if (s->is_added_stream && s->owner && !s->owner->reaped) {
            session_sync(s->owner); /* its data may have answered a request, ended the session */
        }
    }
}

static void recycle_closed_conns(xb_daemon_t *d)
{
    int i;

    for (i = 0; i < d->closed_conns->nelts; i++) {
        conn_slot_give(APR_ARRAY_IDX(d->closed_conns, i, ipc_conn_t *));
    }
    d->closed_conns->nelts = 0;
    apr_pool_clear(d->scratch);
}

static void shutdown_sessions(xb_daemon_t *d)
{
    apr_hash_index_t *hi;

    warm_configure(d, "the daemon is stopping"); /* d->stopping: no new pools */
    for (hi = apr_hash_first(NULL, d->sessions); hi; hi = apr_hash_next(hi)) {
        bridge_session_t *s = apr_hash_this_val(hi);
        if (s->login) {
            prebind_fail(s, 503, "system-shutdown", "the daemon is stopping");
        }
        else if (!s->close_deadline && s->bosh) {
            xb_bosh_session_end(s->bosh, XB_COND_SYSTEM_SHUTDOWN, apr_time_now());
            io_close_stream(s, 0);
            session_sync(s);
        }
    }
}

/* The daemon's pool: a child of `parent` with an allocator of its own (POOL_MAX_FREE); the
 * daemon is one thread, so the allocator needs no mutex. */
static apr_pool_t *daemon_pool(apr_pool_t *parent)
{
    apr_allocator_t *allocator;
    apr_pool_t *pool;

    if (apr_allocator_create(&allocator) != APR_SUCCESS) {
        return parent;
    }
    apr_allocator_max_free_set(allocator, POOL_MAX_FREE);
    if (apr_pool_create_ex(&pool, parent, NULL, allocator) != APR_SUCCESS) {
        apr_allocator_destroy(allocator);
        return parent;
    }
    apr_allocator_owner_set(allocator, pool);
    return pool;
}

static apr_status_t daemon_init(xb_daemon_t *d, apr_pool_t *pool, const xb_config_t *conf,
                                xb_shm_table_t *table, apr_socket_t *listener)
{
    const char *errmsg = NULL;
    apr_status_t rv;
    /* Per session: its handlers' connections and one XMPP socket per stream (§16). */
    apr_uint32_t size = conf->max_sessions * (2 + (conf->max_streams ? conf->max_streams : 1))
                        + conf->warm_streams * (conf->domains ? conf->domains->nelts : 0) + 64;

    memset(d, 0, sizeof(*d));
    d->pool = pool;
    d->conf = conf;
    d->table = table;
    d->listener = listener;
    d->listener_kind = FD_LISTENER;
    d->sessions = apr_hash_make(pool);
    d->requests = apr_hash_make(pool);
    d->addrs = apr_hash_make(pool);
    d->logouts = apr_hash_make(pool);
    d->addresses = apr_hash_make(pool);
    d->closed_conns = apr_array_make(pool, 16, sizeof(ipc_conn_t *));
    d->conn_slabs = apr_array_make(pool, 16, sizeof(ipc_conn_t *));
    apr_pool_create(&d->scratch, pool);
    d->to_reap = apr_array_make(pool, 16, sizeof(bridge_session_t *));
    d->timers = xb_timer_heap_create(pool, conf->max_sessions);
    d->touched = apr_array_make(pool, 64, sizeof(bridge_session_t *));
    apply_limits(d);
    warm_configure(d, NULL);
    d->parse_limits.max_depth = 64;

    d->ssl_ctx = xb_xmpp_conn_ssl_ctx(conf->ca_file, &errmsg);
    if (!d->ssl_ctx) {
        xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(04019) "TLS set-up failed (XmppBridgeTLSCAFile "
               "%s): %s", conf->ca_file ? conf->ca_file : "system default",
               errmsg ? errmsg : "unknown error");
        return APR_EGENERAL;
    }
    /* NOCOPY: the pollset points at the apr_pollfd_t each ipc_conn_t and bridge_session_t
     * carries, which outlives its registration. Without it APR copies every descriptor into a
     * ring and apr_pollset_remove walks that ring: O(descriptors) for each change of a
     * session's or a request's events, most of the daemon's time per message at N = 1,000. */
    rv = apr_pollset_create(&d->pollset, size, pool, APR_POLLSET_NOCOPY);
    if (rv != APR_SUCCESS) {
        xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(04020) "cannot create the pollset (%d)", rv);
        return rv;
    }
    apr_socket_opt_set(listener, APR_SO_NONBLOCK, 1);
    apr_socket_timeout_set(listener, 0);
    d->listener_pfd.desc_type = APR_POLL_SOCKET;
    d->listener_pfd.desc.s = listener;
    d->listener_pfd.reqevents = APR_POLLIN;
    d->listener_pfd.client_data = &d->listener_kind;
    d->listener_events = APR_POLLIN;
    return apr_pollset_add(d->pollset, &d->listener_pfd);
}

apr_status_t xb_daemon_run(apr_pool_t *pool, const xb_config_t *conf, xb_shm_table_t *table,
                           apr_socket_t *listener, const xb_daemon_hooks_t *hooks,
                           volatile sig_atomic_t *stop)
{
    xb_daemon_t daemon, *d = &daemon;
    apr_time_t next, shutdown_until = 0;
    apr_status_t rv;

    rv = daemon_init(d, daemon_pool(pool), conf, table, listener);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    d->hooks = *hooks;
    d->token_key = hooks->token_key;
    xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04021) "bridge daemon ready (%d domains, %u session "
           "slots)", conf->domains ? conf->domains->nelts : 0, conf->max_sessions);
    next = apr_time_now() + MAX_POLL_WAIT;
    for (;;) {
        const apr_pollfd_t *results;
        apr_int32_t n = 0, i;
        apr_time_t now = apr_time_now();
        apr_interval_time_t timeout = next > now ? next - now : 0;

        if (*stop && !d->stopping) {
            d->stopping = 1;
            shutdown_until = now + SHUTDOWN_GRACE;
            xb_log(XB_LOG_MARK, XB_LOG_INFO, XBLOGNO(04022) "bridge daemon stopping: %u "
                   "sessions end with system-shutdown", apr_hash_count(d->sessions));
            shutdown_sessions(d);
        }
        if (d->stopping && (apr_hash_count(d->sessions) == 0 || now >= shutdown_until)) {
            break;
        }
        if (timeout > MAX_POLL_WAIT) {
            timeout = MAX_POLL_WAIT;
        }
        rv = apr_pollset_poll(d->pollset, timeout, &n, &results);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EINTR(rv) && !APR_STATUS_IS_TIMEUP(rv)) {
            xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(04023) "poll failed (%d)", rv);
            apr_sleep(apr_time_from_msec(10));
        }
        for (i = 0; rv == APR_SUCCESS && i < n; i++) {
            dispatch(d, &results[i]);
        }
        recycle_closed_conns(d);
        now = apr_time_now();
        next = run_timers(d, now);
        resume_accepting(d, now, &next);
        recycle_closed_conns(d);
    }
    close_all_conns(d);
    SSL_CTX_free(d->ssl_ctx);
    return APR_SUCCESS;
}
