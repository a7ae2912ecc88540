/* One BOSH session's state machine (XEP-0124 §7-§14, §17; XEP-0206 §5). Sans-I/O.
 *
 * The daemon owns the sockets and the clock. It feeds the session parsed requests (each with an
 * opaque request id naming the HTTP request in flight), stanzas from the XMPP server and the
 * time; the session answers through the callbacks in xb_bosh_io_t. Nothing here blocks, reads
 * a clock or touches a socket, so every path is unit-testable.
 *
 * Guarantees the daemon relies on:
 *  - requests are processed strictly in RID order inside the window hi < rid <= hi + requests;
 *  - every answered RID's body is kept (the last `response_cache` of them) and a re-sent RID
 *    gets the identical bytes back;
 *  - a stanza from the server is put in exactly one answer; an answer whose HTTP request went
 *    away before it was written is still cached, so the client's re-send recovers it;
 *  - when the session ends with its stream still open, stanzas never put in an answer to a
 *    live request (queued, or in such an answer no re-send fetched) are bounced to their
 *    senders through send_to_server before close_stream (XEP-0206 §7, xb_stanza_bounce.h);
 *  - at most `hold` requests are held; each is answered when data arrives or at its `wait`.
 */
#ifndef XB_BOSH_SESSION_H
#define XB_BOSH_SESSION_H

#include <stdint.h>
#include <apr_pools.h>
#include <apr_time.h>
#include "xb_bosh_body.h"

typedef struct xb_bosh_session xb_bosh_session_t;

/* The daemon's name for one HTTP request in flight; 0 is never a valid id. */
typedef uint64_t xb_request_id_t;

typedef struct xb_bosh_session_limits {
    unsigned max_wait;           /* cap on the client's wait, seconds */
    unsigned max_hold;           /* cap on the client's hold */
    unsigned inactivity;         /* seconds */
    unsigned polling;            /* seconds */
    unsigned response_cache;     /* answers kept for replay, >= requests */
    apr_size_t max_queued_bytes; /* stanza bytes waiting for a request before backpressure */
    const char *accept;          /* creation response's `accept` ("gzip" when the glue can
                                    inflate request bodies); NULL: none. Static string. */
    unsigned max_replays;        /* re-sends of one RID before policy-violation; 0: no limit */
    unsigned max_pause;          /* advertised `maxpause`, seconds; 0: pause not offered */
    unsigned max_streams;        /* §16: XMPP streams one session may have open at once;
                                    <= 1: the feature is off (no `stream` advertised) */
} xb_bosh_session_limits_t;

/* Events the owner may count (status page); the session only reports them. */
typedef enum {
    XB_NOTE_REPLAY = 1,         /* a re-sent RID answered from the cache */
    XB_NOTE_WINDOW_VIOLATION,   /* a RID outside the window ended the session */
    XB_NOTE_HELD_RESEND,        /* a still-held RID sent again */
    XB_NOTE_OVERACTIVITY        /* policy-violation: too many requests (§11, §12) or re-sends
                                   of one RID over max_replays (§14.3) */
} xb_bosh_note_t;

/* `status` of an answer that must not be given: close the HTTP connection without a response,
 * so the client sends the same RID again (see abandon_pending in xb_bosh_session.c). */
#define XB_BOSH_ABANDON 0

typedef struct xb_bosh_io {
    /* Answer HTTP request `req` now: `status` is 200 except for legacy clients (§17.1), or
     * XB_BOSH_ABANDON. `body` stays valid only during the call: copy it. */
    void (*respond)(void *baton, xb_request_id_t req, int status, const char *body,
                    apr_size_t len);
    /* Write client payload (raw stanzas, SASL elements) to XMPP stream `stream` (0: the
     * session's first stream; others exist only with §16 multiple streams). */
    void (*send_to_server)(void *baton, unsigned stream, const char *data, apr_size_t len);
    /* XEP-0206 §5: send a fresh stream header on the same connection and reset the parser. */
    void (*restart_stream)(void *baton, unsigned stream);
    /* The stream is over (the session ended, or §16 closed this one stream): send
     * </stream:stream> (if still open) and close its connection. Called once per stream. */
    void (*close_stream)(void *baton, unsigned stream);
    /* Optional (NULL: not counted). */
    void (*note)(void *baton, xb_bosh_note_t what);
    /* §16.3 add a stream: open XMPP stream number `stream` (never 0, never one in use) to
     * domain `to`; its elements then come through xb_bosh_session_stream_data(). Returns
     * XB_COND_NONE, or the condition refusing it (host-unknown: not a configured domain).
     * NULL: the owner cannot open streams, and the feature stays off. */
    xb_bosh_condition_t (*open_stream)(void *baton, unsigned stream, const char *to,
                                       const char *xml_lang);
} xb_bosh_io_t;

/* Creates a session from its creation request (already validated by the daemon: `to` is a
 * configured domain). The creation request `req` is held and answered with the creation
 * attributes as soon as the first data (the stream features) arrives, or empty at `wait`.
 * `pool` is the session's own pool; the session lives in it. `sid` is copied. */
xb_bosh_session_t *xb_bosh_session_create(apr_pool_t *pool, const char *sid,
                                          const xb_bosh_body_t *creation, xb_request_id_t req,
                                          const xb_bosh_session_limits_t *limits,
                                          const xb_bosh_io_t *io, void *baton, apr_time_t now);

/* Strophe's attach() uses wait 59 s on the client side: a prebound session answers sooner. */
#define XB_PREBIND_CLIENT_WAIT 59

/* Creates a session whose XMPP stream the daemon already logged in and bound (prebind): no
 * creation request; the browser's first request carries `next_rid`. Until that first request
 * the session waits `attach_grace` seconds (if longer than `inactivity`) before ending: pages
 * take a while to load. */
xb_bosh_session_t *xb_bosh_session_create_prebound(apr_pool_t *pool, const char *sid,
                                                   const char *domain, uint64_t next_rid,
                                                   unsigned attach_grace,
                                                   const xb_bosh_session_limits_t *limits,
                                                   const xb_bosh_io_t *io, void *baton,
                                                   apr_time_t now);

/* A request carrying this session's sid. The body and its payload need only live during the
 * call: the session copies what it keeps. */
void xb_bosh_session_request(xb_bosh_session_t *s, xb_request_id_t req,
                             const xb_bosh_body_t *body, apr_time_t now);

/* The HTTP request went away before it was answered (client closed, handler gave up). The
 * session forgets the request id; what would have been its answer stays queued. */
void xb_bosh_session_request_gone(xb_bosh_session_t *s, xb_request_id_t req, apr_time_t now);

/* Answer this held request now with whatever is queued (its Apache child is stopping). */
void xb_bosh_session_release(xb_bosh_session_t *s, xb_request_id_t req, apr_time_t now);

/* One complete top-level element from the XMPP server, raw, namespace already fixed for
 * BOSH (stream:features, SASL answers, stanzas). Copied. */
void xb_bosh_session_server_data(xb_bosh_session_t *s, const char *data, apr_size_t len,
                                 apr_time_t now);

/* §16: the same for stream `stream` of a session with several. server_data and server_closed
 * are these for stream 0. When other streams stay open, a stream's end is told to the client
 * as a terminate body carrying that stream's name, and the session goes on. */
void xb_bosh_session_stream_data(xb_bosh_session_t *s, unsigned stream, const char *data,
                                 apr_size_t len, apr_time_t now);
void xb_bosh_session_stream_closed(xb_bosh_session_t *s, unsigned stream,
                                   xb_bosh_condition_t cond, const char *stream_error,
                                   apr_size_t stream_error_len, apr_time_t now);

/* Streams open now (1 without §16; the status page). */
unsigned xb_bosh_session_stream_count(const xb_bosh_session_t *s);

/* The XMPP stream ended. `cond` is REMOTE_STREAM_ERROR with `stream_error` the raw
 * <stream:error/> to copy into the terminating body (XEP-0206 §6), REMOTE_CONNECTION_FAILED,
 * SYSTEM_SHUTDOWN, ...; stanzas queued before it are delivered first. */
void xb_bosh_session_server_closed(xb_bosh_session_t *s, xb_bosh_condition_t cond,
                                   const char *stream_error, apr_size_t stream_error_len,
                                   apr_time_t now);

/* The gateway ends the session (logout, per-user cap, host-gone, shutdown, ...) while its XMPP
 * stream is still open: the client gets `cond` (now if a request is live, else at its next
 * request), and stanzas it never received are bounced to their senders first (XEP-0206 §7),
 * then the stream is closed. */
void xb_bosh_session_end(xb_bosh_session_t *s, xb_bosh_condition_t cond, apr_time_t now);

/* The same with application-specific information: `detail` (one complete element with its own
 * namespace, copied) goes into the terminating body after any stanzas, as XEP-0124 §17.2 asks
 * for `undefined-condition`. */
void xb_bosh_session_end_detail(xb_bosh_session_t *s, xb_bosh_condition_t cond,
                                const char *detail, apr_size_t detail_len, apr_time_t now);

/* Answers held requests whose wait ran out; ends the session after `inactivity` seconds with
 * no request held. */
void xb_bosh_session_tick(xb_bosh_session_t *s, apr_time_t now);

/* When tick next has something to do; 0 when nothing is pending. */
apr_time_t xb_bosh_session_next_deadline(const xb_bosh_session_t *s);

/* False while more queued bytes than max_queued_bytes wait for a request: the daemon stops
 * reading the XMPP socket until it turns true again (backpressure, nothing dropped). */
int xb_bosh_session_wants_server_data(const xb_bosh_session_t *s);

/* True once the session is over and told its client so (or can no longer): the owner removes
 * it from the table and destroys its pool. */
int xb_bosh_session_is_finished(const xb_bosh_session_t *s);

/* Window edges for the shared table: the highest RID processed in order, the lowest RID whose
 * answer is still cached, and `requests`. */
void xb_bosh_session_window(const xb_bosh_session_t *s, uint64_t *rid_hi, uint64_t *rid_lo,
                            unsigned *requests);

/* Number of requests held right now (status page, tests). */
unsigned xb_bosh_session_held_count(const xb_bosh_session_t *s);

/* True when the client sent `ver` at creation (not a legacy client). */
int xb_bosh_session_has_ver(const xb_bosh_session_t *s);

/* The `content` attribute of the creation request (XEP-0124 §7.1: every response of the
 * session uses it as its Content-Type), or NULL: text/xml; charset=utf-8. */
const char *xb_bosh_session_content(const xb_bosh_session_t *s);

#endif
