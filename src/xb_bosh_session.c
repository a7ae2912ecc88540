/* One BOSH session's state machine (see xb_bosh_session.h).
 *
 * The state, in RID order:
 *
 *   cached answers  <  held (processed, unanswered)  <=  rid_hi  <  pending (arrived early)
 *
 * - `held`: RIDs processed in order whose answer is still due, oldest first. A slot whose HTTP
 *   request went away keeps its RID with req = 0 ("orphan"): a re-send of that RID takes the
 *   slot, and if the answer falls due first it is built and cached all the same, so the re-send
 *   gets it as a replay. Answers are only ever given to the oldest slot, which keeps them in
 *   RID order (XEP-0124 §8) and keeps the cache sorted.
 * - `pending`: requests above rid_hi + 1, kept (body copied) until the gap fills (§14.2).
 * - `cache`: a ring of the last answers for re-sent RIDs (§14.3).
 * - `queue`: server elements waiting for a request. Invariant after every public call: the
 *   queue is empty whenever a request is held.
 *
 * Memory. A session may live for days, so nothing may accumulate in its pool. Cached answers
 * and queued elements are malloc'ed and freed one by one: a subpool per answer would cost at
 * least one 8 KiB APR block for bodies that are mostly a few hundred bytes, times
 * `response_cache` per session. A pool cleanup frees whatever is left when the session pool
 * goes. Answers are built in `scratch`, a subpool made when an answer needs it and destroyed
 * after each one: a held session keeps no 8 KiB block for it. Early requests (rare) get a
 * subpool each, destroyed once processed.
 *
 * Extension points: key sequencing and pause belong in process_request() (they act in RID
 * order), client acks in process_request() and answer_oldest() (the `ack` attribute), and
 * multiple streams in the held/queue structures, which would gain a stream name.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_lib.h>

#include "xb_bosh_key.h"
#include "xb_bosh_session.h"
#include "xb_log.h"
#include "xb_stanza_bounce.h"

/* The highest XEP-0124 version we implement. */
#define OUR_VER_MAJOR 1UL
#define OUR_VER_MINOR 11UL
#define OUR_VER "1.11"

/* §16 stream names: 128 bits, hex, like the SID. */
#define XB_STREAM_NAME_LEN 32

typedef struct xb_held {
    uint64_t rid;
    xb_request_id_t req; /* 0: the HTTP request went away; a re-send of rid takes the slot */
    apr_time_t deadline; /* answered, empty if nothing is queued, at this time */
    unsigned resends;    /* times this RID came again (XmppBridgeMaxReplays) */
    /* §16.3 add-stream request: 1 + the new stream's index while its answer (which names the
     * stream) is due; or a refused one: `refused` and the name it is refused under. */
    unsigned add_stream;
    xb_bosh_condition_t refused;
    char refused_name[XB_STREAM_NAME_LEN + 1];
} xb_held_t;

/* One XMPP stream of the session (§16; without it only streams[0]). */
typedef enum {
    XB_STREAM_UNUSED = 0,
    XB_STREAM_OPENING, /* added; its data waits for the add-stream answer that names it */
    XB_STREAM_OPEN,
    XB_STREAM_CLOSED   /* closed; its name stays until the slot is reused, so a request that
                          still names it is ignored rather than refused (item-not-found) */
} xb_stream_state_t;

typedef struct xb_stream {
    xb_stream_state_t state;
    int io_closed;   /* close_stream was called for it */
    int naming_due;  /* its add-stream answer, which names it, has not been built yet */
    char name[XB_STREAM_NAME_LEN + 1];
    char domain[256];
    apr_time_t closed_at;
} xb_stream_t;

typedef struct xb_pending xb_pending_t;
struct xb_pending {
    xb_pending_t *next;  /* sorted by rid */
    uint64_t rid;
    xb_request_id_t req; /* 0: went away or timed out; the body is still processed in order */
    apr_time_t deadline; /* arrival + wait */
    apr_time_t arrived;
    unsigned resends;
    apr_pool_t *pool;    /* holds this struct and `body` */
    xb_bosh_body_t *body;
};

typedef struct xb_cached {
    uint64_t rid;
    int status;
    char *data; /* malloc'ed: see the top of the file */
    apr_size_t len;
    int undelivered; /* its HTTP request went away: only a re-send can deliver it */
    unsigned resends;
    apr_time_t sent; /* for `time` in a §9.2 report */
    unsigned stream; /* whose stanzas its payload holds */
    /* XEP-0206 §7: an undelivered answer's stanzas, for bouncing them if no re-send ever
     * fetches the answer: their lengths (malloc'ed) and where the first starts in `data`.
     * NULL once the answer went to a live request or the client acknowledged it. */
    apr_size_t *elem_lens;
    unsigned n_elems;
    apr_size_t payload_off;
    int bounced; /* its stanzas went back to their senders: never replay it */
} xb_cached_t;

/* Answers whose request went away outlive the ordinary cache: a client (Strophe) may run up to
 * its window ahead of a request it is still re-sending, and that answer must still be there
 * when the re-send arrives. Bounded so a client that never comes back costs little. */
#define XB_ORPHANS_MAX 32

typedef struct xb_queued xb_queued_t;
struct xb_queued {
    xb_queued_t *next;
    unsigned stream;          /* from which XMPP stream */
    xb_bosh_condition_t end;  /* != NONE: not data but the end of that stream (§16), `data`
                                 the <stream:error/> copy if any */
    apr_size_t len;
    char data[];
};

/* RIDs in log lines as their distance from the session's first RID ("#n"): absolute RIDs are,
 * with the SID, the session's credentials and never reach a log. */
#define LOG_RID(s, rid) ((apr_uint64_t)((rid) - (s)->creation_rid))

struct xb_bosh_session {
    apr_pool_t *pool;
    apr_pool_t *scratch; /* answers are built here (scratch_of); destroyed after each */
    const char *sid;
    char tag[XB_LOG_TAG_LEN + 1]; /* what log lines call the session (never the SID) */
    const char *from; /* the creation request's `to` */
    const char *ver;  /* negotiated; NULL for a legacy client */
    xb_bosh_io_t io;
    void *baton;

    unsigned wait, hold, requests, inactivity, polling;
    /* Seconds of idleness that end the session: `inactivity`, except for a prebound session
     * that no browser has attached to yet, which gets its own attach grace. */
    unsigned idle_limit;
    apr_size_t max_queued_bytes;

    uint64_t creation_rid;
    uint64_t rid_hi;

    xb_held_t *held;
    unsigned held_n, held_cap;

    xb_pending_t *pending;
    unsigned pending_live; /* pending entries with a live request */

    xb_cached_t *cache; /* ring, oldest at cache_first */
    xb_cached_t *orphans; /* undelivered answers that left the ring, oldest first */
    unsigned orphan_n;
    unsigned cache_cap, cache_n, cache_first;

    xb_queued_t *queue_head, *queue_tail;
    apr_size_t queued_bytes;

    int idle;              /* no request held or in flight */
    apr_time_t idle_since; /* valid while idle */

    /* The stream ended while no request could take the terminating answer: the next one will. */
    int terminal_pending;
    int terminal_status;
    const char *terminal;
    apr_size_t terminal_len;

    int stream_closed; /* every stream closed */
    int finished;

    /* §16: streams[0] always; more only when max_streams > 1 (`multi`). */
    xb_stream_t *streams;
    unsigned max_streams, streams_made;
    int multi;

    apr_time_t now; /* of the public call in progress */
    unsigned max_replays, max_pause;
    const char *accept;  /* creation response `accept` */
    const char *content; /* creation request `content` */

    /* §15: the key the next request's key must hash to (lower-case hex), once keyed. */
    int keyed;
    char key[XB_BOSH_KEY_HEX_LEN + 1];

    /* §9: the client acks responses (it sent ack='1' at creation); we ack requests back. */
    int acks;
    uint64_t client_ack;    /* highest rid the client says it has all answers up to */
    uint64_t last_answered; /* highest rid whose answer went to a live request */
    /* §9.2: the answer to rid `report_for` carries report/time. */
    uint64_t report_for, report;
    apr_uint64_t report_ms;

    /* §11/§12 overactivity: arrival of the last request processed in order, and the last
     * empty request whose empty answer was due to the client's own timing (wait ran out, or a
     * polling session's immediate answer). */
    apr_time_t last_arrival;
    uint64_t poll_rid;
    apr_time_t poll_arrived;
    int poll_answered_empty;
};

/* ------------------------------------------------------------------------------------------ */
/* Small helpers */

/* The pool answers are built in, made on first use: most of a session's life is spent
 * holding a request, with nothing being built. */
static apr_pool_t *scratch_of(xb_bosh_session_t *s)
{
    if (!s->scratch) {
        apr_pool_create(&s->scratch, s->pool);
    }
    return s->scratch;
}

/* The answer is out: its memory goes back to the allocator. */
static void scratch_done(xb_bosh_session_t *s)
{
    if (s->scratch) {
        apr_pool_destroy(s->scratch);
        s->scratch = NULL;
    }
}

static void *malloc_or_abort(apr_size_t n)
{
    void *m = malloc(n ? n : 1);

    if (!m) {
        /* The same policy httpd applies to pools: out of memory is not recoverable here. */
        abort();
    }
    return m;
}

static apr_time_t wait_deadline(const xb_bosh_session_t *s, apr_time_t from)
{
    return from + apr_time_from_sec(s->wait);
}

static int is_terminate(const xb_bosh_body_t *body)
{
    return body->type && strcmp(body->type, "terminate") == 0;
}

static void close_one_stream(xb_bosh_session_t *s, unsigned i)
{
    xb_stream_t *st = &s->streams[i];

    if (st->state != XB_STREAM_UNUSED && !st->io_closed) {
        st->io_closed = 1;
        s->io.close_stream(s->baton, i);
    }
    if (st->state != XB_STREAM_UNUSED && st->state != XB_STREAM_CLOSED) {
        st->state = XB_STREAM_CLOSED;
        st->closed_at = s->now;
    }
}

static void close_stream_once(xb_bosh_session_t *s)
{
    unsigned i;

    if (!s->stream_closed) {
        s->stream_closed = 1;
        for (i = 0; i < s->max_streams; i++) {
            close_one_stream(s, i);
        }
    }
}

static int stream_is_live(const xb_bosh_session_t *s, unsigned i)
{
    return s->streams[i].state == XB_STREAM_OPEN || s->streams[i].state == XB_STREAM_OPENING;
}

static unsigned live_streams(const xb_bosh_session_t *s)
{
    unsigned i, n = 0;

    for (i = 0; i < s->max_streams; i++) {
        n += stream_is_live(s, i);
    }
    return n;
}

/* Client payload to one stream, or to every live one (`stream` < 0: §16.4 broadcast). */
static void send_payload(xb_bosh_session_t *s, int stream, const char *data, apr_size_t len)
{
    unsigned i;

    if (!len) {
        return;
    }
    for (i = 0; i < s->max_streams; i++) {
        if ((stream < 0 || (unsigned)stream == i) && stream_is_live(s, i)
            && !s->streams[i].io_closed) {
            s->io.send_to_server(s->baton, i, data, len);
        }
    }
}

static void respond(xb_bosh_session_t *s, xb_request_id_t req, int status, const char *data,
                    apr_size_t len)
{
    if (req) {
        s->io.respond(s->baton, req, status, data, len);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Queue of server elements */

static void queue_append(xb_bosh_session_t *s, unsigned stream, xb_bosh_condition_t end,
                         const char *data, apr_size_t len)
{
    xb_queued_t *q = malloc_or_abort(sizeof(*q) + len);

    q->next = NULL;
    q->stream = stream;
    q->end = end;
    q->len = len;
    memcpy(q->data, data, len);
    if (s->queue_tail) {
        s->queue_tail->next = q;
    }
    else {
        s->queue_head = q;
    }
    s->queue_tail = q;
    s->queued_bytes += len;
}

static void queue_free(xb_bosh_session_t *s)
{
    xb_queued_t *q, *next;

    for (q = s->queue_head; q; q = next) {
        next = q->next;
        free(q);
    }
    s->queue_head = s->queue_tail = NULL;
    s->queued_bytes = 0;
}

/* The stream whose data the next answer carries: the oldest queued element's (§16: one answer
 * never mixes streams), skipping streams whose add-stream answer is still due (`any`: not
 * even those). -1: nothing queued. */
static int queue_pick(const xb_bosh_session_t *s, int any)
{
    const xb_queued_t *q;

    for (q = s->queue_head; q; q = q->next) {
        if (any || !s->streams[q->stream].naming_due) {
            return (int)q->stream;
        }
    }
    return -1;
}

static int queue_has(const xb_bosh_session_t *s, unsigned stream)
{
    const xb_queued_t *q;

    for (q = s->queue_head; q; q = q->next) {
        if (q->stream == stream) {
            return 1;
        }
    }
    return 0;
}

/* Everything queued for `stream` as one payload allocated from `p` (NULL when empty), taken
 * off the queue; an end-of-stream mark stops it (*end: its condition, else NONE). */
static const char *queue_take(xb_bosh_session_t *s, apr_pool_t *p, int stream, apr_size_t *len,
                              xb_bosh_condition_t *end)
{
    char *out, *o;
    xb_queued_t *q, **at;
    apr_size_t total = 0;

    *len = 0;
    if (end) {
        *end = XB_COND_NONE;
    }
    for (q = s->queue_head; q; q = q->next) {
        if ((int)q->stream == stream) {
            total += q->len;
        }
    }
    if (stream < 0 || (!total && !queue_has(s, (unsigned)stream))) {
        return NULL;
    }
    o = out = apr_palloc(p, total + 1);
    s->queue_tail = NULL;
    for (at = &s->queue_head; (q = *at) != NULL;) {
        if ((int)q->stream != stream) {
            s->queue_tail = q;
            at = &q->next;
            continue;
        }
        memcpy(o, q->data, q->len);
        o += q->len;
        s->queued_bytes -= q->len;
        if (q->end != XB_COND_NONE && end) {
            *end = q->end;
        }
        *at = q->next;
        free(q);
    }
    *o = '\0';
    *len = (apr_size_t)(o - out);
    return out;
}

/* The length of each element queued for `stream`, malloc'ed (NULL when none). */
static apr_size_t *queue_lengths(const xb_bosh_session_t *s, int stream, unsigned *n)
{
    const xb_queued_t *q;
    apr_size_t *lens;
    unsigned i = 0;

    *n = 0;
    for (q = s->queue_head; q; q = q->next) {
        *n += (int)q->stream == stream && q->end == XB_COND_NONE;
    }
    if (!*n) {
        return NULL;
    }
    lens = malloc_or_abort(*n * sizeof(*lens));
    for (q = s->queue_head; q; q = q->next) {
        if ((int)q->stream == stream && q->end == XB_COND_NONE) {
            lens[i++] = q->len;
        }
    }
    return lens;
}

/* ------------------------------------------------------------------------------------------ */
/* Answer cache */

/* The answer reached a live request: nothing in it is left to bounce. */
static void cached_delivered(xb_cached_t *c)
{
    free(c->elem_lens);
    c->elem_lens = NULL;
    c->n_elems = 0;
}

static void cached_free(xb_cached_t *c)
{
    cached_delivered(c);
    free(c->data);
    c->data = NULL;
}

/* A re-sent request gets the answer its RID had (`req` 0: nobody is waiting for it). */
static void replay_cached(xb_bosh_session_t *s, xb_request_id_t req, xb_cached_t *c)
{
    respond(s, req, c->status, c->data, c->len);
    if (req) {
        cached_delivered(c);
    }
}

static xb_cached_t *cache_at(const xb_bosh_session_t *s, unsigned i)
{
    return &s->cache[(s->cache_first + i) % s->cache_cap];
}

static const xb_cached_t *cache_find(const xb_bosh_session_t *s, uint64_t rid)
{
    unsigned i;

    for (i = 0; i < s->cache_n; i++) {
        if (cache_at(s, i)->rid == rid) {
            return cache_at(s, i);
        }
    }
    for (i = 0; i < s->orphan_n; i++) {
        if (s->orphans[i].rid == rid) {
            return &s->orphans[i];
        }
    }
    return NULL;
}

/* Keeps an undelivered answer leaving the ring (oldest orphan dropped when full). */
static void orphan_keep(xb_bosh_session_t *s, const xb_cached_t *c)
{
    if (!s->orphans) {
        s->orphans = apr_pcalloc(s->pool, XB_ORPHANS_MAX * sizeof(*s->orphans));
    }
    if (s->orphan_n == XB_ORPHANS_MAX) {
        cached_free(&s->orphans[0]);
        memmove(s->orphans, s->orphans + 1, (XB_ORPHANS_MAX - 1) * sizeof(*s->orphans));
        s->orphan_n--;
    }
    s->orphans[s->orphan_n++] = *c;
}

/* §14.3: with acks the buffer holds every answer the client has not acknowledged (bounded by
 * the orphan store), without them the last `response_cache`. */
static int cache_must_keep(const xb_bosh_session_t *s, const xb_cached_t *c)
{
    return !s->finished && (c->undelivered || (s->acks && c->rid > s->client_ack));
}

static void cache_evict_oldest(xb_bosh_session_t *s)
{
    xb_cached_t *c = cache_at(s, 0);

    if (cache_must_keep(s, c)) {
        orphan_keep(s, c); /* the data moves along */
        c->elem_lens = NULL;
        c->data = NULL;
    }
    else {
        cached_free(c);
    }
    s->cache_first = (s->cache_first + 1) % s->cache_cap;
    s->cache_n--;
}

static const xb_cached_t *cache_store(xb_bosh_session_t *s, uint64_t rid, int status,
                                      const char *data, apr_size_t len, int undelivered,
                                      unsigned resends)
{
    xb_cached_t *c;

    if (s->cache_n == s->cache_cap) {
        cache_evict_oldest(s);
    }
    c = cache_at(s, s->cache_n);
    c->rid = rid;
    c->status = status;
    c->len = len;
    c->undelivered = undelivered;
    c->resends = resends;
    c->sent = s->now;
    c->elem_lens = NULL;
    c->n_elems = 0;
    c->payload_off = 0;
    c->bounced = 0;
    c->data = malloc_or_abort(len);
    memcpy(c->data, data, len);
    s->cache_n++;
    return c;
}

/* §9.2: the client has every answer up to `ack`; their copies are no longer needed. */
static void cache_drop_acked(xb_bosh_session_t *s, uint64_t ack)
{
    unsigned i, kept = 0;

    if (ack <= s->client_ack) {
        return;
    }
    s->client_ack = ack;
    while (s->cache_n && cache_at(s, 0)->rid <= ack) {
        xb_cached_t *c = cache_at(s, 0);
        cached_free(c);
        s->cache_first = (s->cache_first + 1) % s->cache_cap;
        s->cache_n--;
    }
    for (i = 0; i < s->orphan_n; i++) {
        if (s->orphans[i].rid <= ack) {
            cached_free(&s->orphans[i]);
        }
        else {
            s->orphans[kept++] = s->orphans[i];
        }
    }
    s->orphan_n = kept;
}

static apr_status_t session_cleanup(void *data)
{
    xb_bosh_session_t *s = data;

    queue_free(s);
    s->finished = 1; /* nothing moves to the orphans now */
    while (s->cache_n) {
        cache_evict_oldest(s);
    }
    while (s->orphan_n) {
        cached_free(&s->orphans[--s->orphan_n]);
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Held requests */

static xb_held_t *held_find_rid(xb_bosh_session_t *s, uint64_t rid)
{
    unsigned i;

    for (i = 0; i < s->held_n; i++) {
        if (s->held[i].rid == rid) {
            return &s->held[i];
        }
    }
    return NULL;
}

static int held_find_req(const xb_bosh_session_t *s, xb_request_id_t req)
{
    unsigned i;

    for (i = 0; i < s->held_n; i++) {
        if (s->held[i].req == req) {
            return (int)i;
        }
    }
    return -1;
}

static xb_held_t held_pop(xb_bosh_session_t *s)
{
    xb_held_t h = s->held[0];

    s->held_n--;
    memmove(&s->held[0], &s->held[1], s->held_n * sizeof(s->held[0]));
    return h;
}

static void answer_oldest(xb_bosh_session_t *s);
static unsigned live_requests(const xb_bosh_session_t *s);

static void held_push(xb_bosh_session_t *s, uint64_t rid, xb_request_id_t req,
                      apr_time_t deadline, unsigned resends)
{
    if (s->held_n == s->held_cap) {
        /* Cannot happen while answer_due() runs after each push; never overrun the array. */
        answer_oldest(s);
    }
    memset(&s->held[s->held_n], 0, sizeof(s->held[0]));
    s->held[s->held_n].rid = rid;
    s->held[s->held_n].req = req;
    s->held[s->held_n].deadline = deadline;
    s->held[s->held_n].resends = resends;
    s->held_n++;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests that arrived before their predecessor */

static xb_pending_t *pending_find_rid(xb_bosh_session_t *s, uint64_t rid)
{
    xb_pending_t *p;

    for (p = s->pending; p; p = p->next) {
        if (p->rid == rid) {
            return p;
        }
    }
    return NULL;
}

static xb_pending_t *pending_find_req(xb_bosh_session_t *s, xb_request_id_t req)
{
    xb_pending_t *p;

    for (p = s->pending; p; p = p->next) {
        if (p->req == req) {
            return p;
        }
    }
    return NULL;
}

/* Where request `req` waits: the index of its held slot, or -1 with *pending its entry among
 * the requests that came before their predecessor (NULL: neither). */
static int find_request(xb_bosh_session_t *s, xb_request_id_t req, xb_pending_t **pending)
{
    int i = held_find_req(s, req);

    *pending = i >= 0 ? NULL : pending_find_req(s, req);
    return i;
}

/* The body must outlive the request that brought it: copy every part later code may read. */
static xb_bosh_body_t *body_copy(apr_pool_t *p, const xb_bosh_body_t *b)
{
    xb_bosh_body_t *c = apr_pmemdup(p, b, sizeof(*b));

    c->sid = apr_pstrdup(p, b->sid);
    c->to = apr_pstrdup(p, b->to);
    c->from = apr_pstrdup(p, b->from);
    c->route = apr_pstrdup(p, b->route);
    c->xml_lang = apr_pstrdup(p, b->xml_lang);
    c->ver = apr_pstrdup(p, b->ver);
    c->content = apr_pstrdup(p, b->content);
    c->type = apr_pstrdup(p, b->type);
    c->key = apr_pstrdup(p, b->key);
    c->newkey = apr_pstrdup(p, b->newkey);
    c->stream = apr_pstrdup(p, b->stream);
    c->xmpp_version = apr_pstrdup(p, b->xmpp_version);
    if (b->payload && b->payload_len) {
        c->payload = apr_pstrmemdup(p, b->payload, b->payload_len);
    }
    else {
        c->payload = "";
        c->payload_len = 0;
    }
    return c;
}

static void pending_insert(xb_bosh_session_t *s, xb_request_id_t req,
                           const xb_bosh_body_t *body, apr_time_t now)
{
    apr_pool_t *pool;
    xb_pending_t *p, **at;

    apr_pool_create(&pool, s->pool);
    p = apr_pcalloc(pool, sizeof(*p));
    p->pool = pool;
    p->rid = body->rid;
    p->req = req;
    p->deadline = wait_deadline(s, now);
    p->arrived = now;
    p->body = body_copy(pool, body);
    for (at = &s->pending; *at && (*at)->rid < p->rid; at = &(*at)->next) {
    }
    p->next = *at;
    *at = p;
    s->pending_live++;
}

/* ------------------------------------------------------------------------------------------ */
/* Building answers */

static void answer_attrs(const xb_bosh_session_t *s, uint64_t rid, xb_bosh_response_attrs_t *a)
{
    memset(a, 0, sizeof(*a));
    /* §9.1: rid_hi is the highest RID received with all lower ones received. Always on the
     * creation response (it commits us to acks), then only where it says something new. */
    if (s->acks && (rid == s->creation_rid || s->rid_hi != rid)) {
        a->ack = s->rid_hi;
    }
    if (rid == s->report_for && s->report) {
        a->report = s->report;
        a->time_ms = s->report_ms;
    }
    if (rid != s->creation_rid) {
        return;
    }
    /* §7.2: the creation attributes go on the creation request's answer, and only there. */
    a->creation = 1;
    a->sid = s->sid;
    a->wait = s->wait;
    a->requests = s->requests;
    a->hold = s->hold;
    a->inactivity = s->inactivity;
    a->polling = s->polling;
    a->ver = s->ver;
    a->from = s->from;
    a->maxpause = s->max_pause;
    a->accept = s->accept;
    if (s->multi) {
        a->stream = s->streams[0].name; /* §16.2: the feature is on; this is the first */
    }
}

/* Answers the oldest held RID with everything queued and caches the answer; an orphan's
 * answer only goes to the cache, where the client's re-send will find it. */
static void answer_oldest(xb_bosh_session_t *s)
{
    xb_held_t h = held_pop(s);
    xb_bosh_response_attrs_t attrs;
    xb_cached_t *c;
    const char *payload = NULL;
    char *body;
    apr_size_t plen = 0, blen, *lens = NULL;
    unsigned n_elems = 0;
    xb_bosh_condition_t end = XB_COND_NONE;
    int stream;

    /* §16: an add-stream answer carries that stream's data only (its features), any other
     * answer the oldest stream's; a refused add-stream answer nothing. */
    stream = h.refused ? -1 : h.add_stream ? (int)h.add_stream - 1 : queue_pick(s, 0);
    if (!h.req) {
        lens = queue_lengths(s, stream, &n_elems);
    }
    payload = queue_take(s, scratch_of(s), stream, &plen, &end);
    answer_attrs(s, h.rid, &attrs);
    if (h.refused) {
        attrs.condition = h.refused;
        attrs.stream = h.refused_name;
    }
    else if (s->multi && stream >= 0) {
        xb_stream_t *st = &s->streams[stream];
        /* With the feature on every non-empty answer names its stream (§16.4 requires it
         * once two are open; always is simpler for clients and allowed). */
        if (plen || end != XB_COND_NONE || h.add_stream || h.rid == s->creation_rid) {
            attrs.stream = st->name;
        }
        if (h.add_stream) {
            attrs.stream_from = st->domain;
            st->naming_due = 0;
            if (st->state == XB_STREAM_OPENING) {
                st->state = XB_STREAM_OPEN;
            }
        }
        if (end != XB_COND_NONE) {
            attrs.condition = end; /* that stream only: the session goes on */
        }
    }
    body = xb_bosh_response_build(scratch_of(s), &attrs, payload, plen, &blen);
    c = (xb_cached_t *)cache_store(s, h.rid, 200, body, blen, !h.req, h.resends);
    c->stream = stream < 0 ? 0 : (unsigned)stream;
    if (lens) {
        /* The payload is the body's content, right before its closing </body>. */
        c->elem_lens = lens;
        c->n_elems = n_elems;
        c->payload_off = blen - strlen("</body>") - plen;
    }
    scratch_done(s);
    if (h.req && h.rid > s->last_answered) {
        s->last_answered = h.rid;
    }
    /* §12: an empty poll answered empty (in a polling session every answer is immediate). */
    if (h.rid == s->poll_rid && !plen) {
        s->poll_answered_empty = 1;
    }
    if (!h.req) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
               XBLOGNO(02013) "session %s: answer for rid #%" APR_UINT64_T_FMT
                              " kept for its re-send (request gone)",
               s->tag, LOG_RID(s, h.rid));
    }
    respond(s, h.req, c->status, c->data, c->len);
}

/* An answer outside the RID sequence: not cached (§14.3 excludes error responses). */
static void respond_plain(xb_bosh_session_t *s, xb_request_id_t req, int recoverable)
{
    xb_bosh_response_attrs_t attrs;
    char *body;
    apr_size_t len;

    memset(&attrs, 0, sizeof(attrs));
    attrs.recoverable_error = recoverable;
    body = xb_bosh_response_build(scratch_of(s), &attrs, NULL, 0, &len);
    respond(s, req, 200, body, len);
    scratch_done(s);
}

/* §17.1: a legacy client (no `ver`) gets an HTTP error and no body for the conditions that
 * have one; everyone else a 200 with a terminate body. */
static void build_terminal(const xb_bosh_session_t *s, apr_pool_t *p, xb_bosh_condition_t cond,
                           const char *payload, apr_size_t plen, int *status,
                           const char **body, apr_size_t *len)
{
    xb_bosh_response_attrs_t attrs;
    int legacy_status = xb_bosh_condition_legacy_status(cond);

    if (!s->ver && legacy_status != 200) {
        *status = legacy_status;
        *body = "";
        *len = 0;
        return;
    }
    memset(&attrs, 0, sizeof(attrs));
    attrs.condition = cond;
    *status = 200;
    *body = xb_bosh_response_build(p, &attrs, payload, plen, len);
}

/* ------------------------------------------------------------------------------------------ */
/* Timers and the hold limit */

static int over_hold(const xb_bosh_session_t *s)
{
    /* The creation request waits for the stream features even in a polling session (hold=0):
     * XEP-0206 §4 wants them sent as soon as they are available. */
    if (s->held_n == 1 && s->held[0].rid == s->creation_rid) {
        return 0;
    }
    return s->held_n > s->hold;
}

/* Answers every held RID up to the last one whose wait ran out (older ones first: RID order). */
static void expire_held(xb_bosh_session_t *s, apr_time_t now)
{
    unsigned i, due = 0;

    for (i = 0; i < s->held_n; i++) {
        if (s->held[i].deadline <= now) {
            due = i + 1;
        }
    }
    while (due--) {
        answer_oldest(s);
    }
}

/* An early request cannot be answered before its predecessors. At its wait it gets a
 * recoverable error (§17.3), which asks the client to re-send it and every earlier
 * unanswered one: exactly what fills the gap. Its body stays, to be processed in order. */
/* An early request (its predecessor has not arrived) cannot be answered: any answer, even an
 * empty or a recoverable one, lets the client move past it, and its next RID then falls
 * outside the window (Strophe treats type='error' as an ordinary answer). So its HTTP request
 * is abandoned unanswered: the client sees the connection close and sends the same RID again,
 * which takes over the pending slot; the payload stays and is processed in order. */
static void abandon_pending(xb_bosh_session_t *s, xb_pending_t *p, const char *why)
{
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
           XBLOGNO(02010) "session %s: rid #%" APR_UINT64_T_FMT " still waits for its "
                          "predecessor; its request is closed unanswered (%s)",
           s->tag, LOG_RID(s, p->rid), why);
    s->io.respond(s->baton, p->req, XB_BOSH_ABANDON, "", 0);
    p->req = 0;
    s->pending_live--;
}

static void expire_pending(xb_bosh_session_t *s, apr_time_t now)
{
    xb_pending_t *p;

    for (p = s->pending; p; p = p->next) {
        if (p->req && p->deadline <= now) {
            abandon_pending(s, p, "its wait ran out");
        }
    }
}

/* Held slot `i` can be answered with what it must carry: a refused add-stream always; an
 * add-stream once its stream sent something; any other once some stream's data is queued. */
static int held_ready(const xb_bosh_session_t *s, unsigned i)
{
    const xb_held_t *h = &s->held[i];

    if (h->refused) {
        return 1;
    }
    if (h->add_stream) {
        return queue_has(s, h->add_stream - 1);
    }
    return queue_pick(s, 0) >= 0;
}

/* Answers what queued data makes due. A ready add-stream slot behind older held ones gets
 * them answered first (RID order), so a new stream's name never waits for their wait. */
static void answer_ready(xb_bosh_session_t *s)
{
    unsigned i;

    for (i = s->held_n; i-- > 1;) {
        if (s->held[i].add_stream || s->held[i].refused) {
            if (held_ready(s, i)) {
                while (i-- > 0) {
                    answer_oldest(s);
                }
                break;
            }
        }
    }
    while (s->held_n && held_ready(s, 0)) {
        answer_oldest(s);
    }
}

/* What is due after a change: the hold limit, expired waits, and queued data for a held request
 * (which also answers an empty rid+1 at once when rid+2 arrives, REFERENCES point 6). */
static void answer_due(xb_bosh_session_t *s, apr_time_t now)
{
    while (over_hold(s)) {
        answer_oldest(s);
    }
    expire_held(s, now);
    answer_ready(s);
}

/* Inactivity (§10) counts from the moment nothing is held or in flight; any request restarts
 * it (`activity`), since even a replay shows the client is alive. */
static void update_idle(xb_bosh_session_t *s, apr_time_t now, int activity)
{
    if (s->held_n || s->pending_live) {
        s->idle = 0;
    }
    else if (!s->idle || activity) {
        s->idle = 1;
        s->idle_since = now;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Ending the session */

static void flush_held(xb_bosh_session_t *s)
{
    while (s->held_n) {
        answer_oldest(s);
    }
}

static void flush_pending(xb_bosh_session_t *s)
{
    xb_pending_t *p;

    while ((p = s->pending) != NULL) {
        s->pending = p->next;
        respond_plain(s, p->req, 0);
        apr_pool_destroy(p->pool);
    }
    s->pending_live = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* XEP-0206 §7: stanzas the client never received go back to their senders */

static unsigned bounce_one(xb_bosh_session_t *s, apr_pool_t *p, unsigned stream,
                           const char *data, apr_size_t len)
{
    apr_size_t blen;
    const char *b;

    if (s->streams[stream].io_closed) {
        return 0; /* that stream is gone: nowhere to send it */
    }
    b = xb_stanza_bounce(p, data, len, &blen);
    if (!b) {
        return 0;
    }
    s->io.send_to_server(s->baton, stream, b, blen);
    return 1;
}

static unsigned bounce_cached(xb_bosh_session_t *s, apr_pool_t *p, xb_cached_t *c)
{
    unsigned i, n = 0;
    apr_size_t off = c->payload_off;

    if (!c->undelivered || !c->elem_lens) {
        return 0;
    }
    for (i = 0; i < c->n_elems; i++) {
        n += bounce_one(s, p, c->stream, c->data + off, c->elem_lens[i]);
        off += c->elem_lens[i];
    }
    cached_delivered(c);
    c->bounced = 1;
    return n;
}

/* The session is ending and its stream is still open: what was never put in an answer to a live
 * request is bounced before </stream:stream>. That is the queue (`with_queue`: unless it goes
 * into the terminating answer) and every answer built for a request that had gone away and
 * never fetched by a re-send: no re-send can come once the session is over, so those stanzas
 * are as lost as the queued ones. An answer handed to a live request counts as delivered (the
 * session cannot see past the handler). */
static void bounce_undelivered(xb_bosh_session_t *s, int with_queue)
{
    apr_pool_t *p;
    unsigned i, n = 0;
    xb_queued_t *q;

    if (s->stream_closed) {
        return; /* nowhere to send them */
    }
    apr_pool_create(&p, s->pool);
    for (i = 0; i < s->orphan_n; i++) { /* older than the ring */
        n += bounce_cached(s, p, &s->orphans[i]);
    }
    for (i = 0; i < s->cache_n; i++) {
        n += bounce_cached(s, p, cache_at(s, i));
    }
    for (q = with_queue ? s->queue_head : NULL; q; q = q->next) {
        if (q->end == XB_COND_NONE) {
            n += bounce_one(s, p, q->stream, q->data, q->len);
        }
    }
    if (with_queue) {
        queue_free(s);
    }
    apr_pool_destroy(p);
    if (n) {
        xb_log(XB_LOG_MARK, XB_LOG_INFO,
               XBLOGNO(02200) "session %s: %u undelivered stanza(s) bounced to their senders "
                              "(XEP-0206 section 7)",
               s->tag, n);
    }
}

/* Everyone still waiting gets an empty body; what the client never got is bounced; the stream
 * closes; the owner may destroy us. */
static void end_session(xb_bosh_session_t *s)
{
    flush_held(s);
    flush_pending(s);
    bounce_undelivered(s, 1);
    queue_free(s);
    close_stream_once(s);
    s->finished = 1;
}

/* §17.2 other-request: every other request of the session still waiting is told that another
 * one ended the session. The oldest also gets whatever the server sent (nothing is lost that
 * could still be delivered; the queue is empty while a request is held anyway). */
static void fail_others(xb_bosh_session_t *s)
{
    xb_pending_t *p;
    const char *payload, *body;
    apr_size_t plen, len;
    int status;

    /* Nobody live: the queue stays, to be bounced (end_session). */
    payload = live_requests(s) ? queue_take(s, scratch_of(s), queue_pick(s, 1), &plen, NULL)
                               : NULL;
    plen = payload ? plen : 0;
    while (s->held_n) {
        xb_held_t h = held_pop(s);
        if (h.req) {
            build_terminal(s, scratch_of(s), XB_COND_OTHER_REQUEST, payload, plen, &status, &body,
                           &len);
            respond(s, h.req, status, body, len);
            payload = NULL;
            plen = 0;
        }
    }
    for (p = s->pending; p; p = p->next) {
        if (p->req) {
            build_terminal(s, scratch_of(s), XB_COND_OTHER_REQUEST, payload, plen, &status, &body,
                           &len);
            respond(s, p->req, status, body, len);
            payload = NULL;
            plen = 0;
            p->req = 0;
            s->pending_live--;
        }
    }
    scratch_done(s);
}

/* A request the session cannot accept ends it (§11, §14.2, §14.3, §15): the other waiting
 * requests get other-request, the culprit the terminal condition. */
static void fail_request(xb_bosh_session_t *s, xb_request_id_t req, xb_bosh_condition_t cond)
{
    const char *body;
    apr_size_t len;
    int status;

    fail_others(s);
    build_terminal(s, scratch_of(s), cond, NULL, 0, &status, &body, &len);
    respond(s, req, status, body, len);
    scratch_done(s);
    end_session(s);
}

/* §11, §12, §14.3 limits: the session ends with policy-violation, and the owner counts it. */
static void fail_overactive(xb_bosh_session_t *s, xb_request_id_t req, uint64_t rid,
                            const char *why)
{
    xb_log(XB_LOG_MARK, XB_LOG_INFO,
           XBLOGNO(02100) "session %s: %s at rid #%" APR_UINT64_T_FMT ": policy-violation",
           s->tag, why, LOG_RID(s, rid));
    if (s->io.note) {
        s->io.note(s->baton, XB_NOTE_OVERACTIVITY);
    }
    fail_request(s, req, XB_COND_POLICY_VIOLATION);
}

/* §13: forward the payload; the oldest held request gets type='terminate' (with anything the
 * server sent), the other held ones empty bodies, the terminate request type='terminate'. */
static void client_terminate(xb_bosh_session_t *s, xb_request_id_t req,
                             const xb_bosh_body_t *body)
{
    xb_bosh_response_attrs_t attrs;
    const char *payload;
    char *answer;
    apr_size_t len, plen;
    int first = 1;

    xb_log(XB_LOG_MARK, XB_LOG_INFO,
           XBLOGNO(02006) "session %s: client terminated the session", s->tag);
    send_payload(s, -1, body->payload, body->payload_len);
    s->rid_hi = body->rid;
    /* With no live held request the queue stays, to be bounced (end_session). */
    payload = live_requests(s) > s->pending_live
                  ? queue_take(s, scratch_of(s), queue_pick(s, 1), &plen, NULL)
                  : NULL;
    plen = payload ? plen : 0;
    while (s->held_n) {
        xb_held_t h = held_pop(s);
        if (!h.req) {
            continue;
        }
        if (first) {
            answer = xb_bosh_terminate_build(scratch_of(s), XB_COND_NONE, &len);
            if (plen) {
                /* The same plain terminate, with the payload inside. */
                apr_pool_t *sp = scratch_of(s);
                answer = apr_pstrcat(sp, apr_pstrndup(sp, answer, len - 2), ">",
                                     apr_pstrmemdup(sp, payload, plen), "</body>", NULL);
                len = strlen(answer);
            }
            first = 0;
        }
        else {
            memset(&attrs, 0, sizeof(attrs));
            answer = xb_bosh_response_build(scratch_of(s), &attrs, NULL, 0, &len);
        }
        respond(s, h.req, 200, answer, len);
    }
    answer = xb_bosh_terminate_build(scratch_of(s), XB_COND_NONE, &len);
    respond(s, req, 200, answer, len);
    scratch_done(s);
    end_session(s);
}

/* After server_closed with nobody to tell: a replay is still a replay, anything else gets the
 * terminating answer, whatever its RID (the session is over either way). */
static void deliver_terminal(xb_bosh_session_t *s, xb_request_id_t req, uint64_t rid)
{
    xb_cached_t *c = (xb_cached_t *)cache_find(s, rid);

    if (c && !c->bounced) {
        replay_cached(s, req, c);
        return;
    }
    respond(s, req, s->terminal_status, s->terminal, s->terminal_len);
    end_session(s);
}

/* The oldest live request, taken out of the held slots (orphans older than it are dropped: their
 * would-be answer is in the queue, hence in the terminating body) or else the early ones. */
static xb_request_id_t take_oldest_live(xb_bosh_session_t *s)
{
    xb_pending_t *p;
    xb_request_id_t req;

    while (s->held_n) {
        xb_held_t h = held_pop(s);
        if (h.req) {
            return h.req;
        }
    }
    for (p = s->pending; p; p = p->next) {
        if (p->req) {
            req = p->req;
            p->req = 0;
            s->pending_live--;
            return req;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests */

/* §15.4: a keyed session's request must carry the key that hashes to the last one. The first
 * request (creation) may start keying with newkey; a key plus newkey switches sequences
 * (§15.5). False: the request must not be processed. */
static int key_accepted(xb_bosh_session_t *s, const xb_bosh_body_t *body)
{
    if (!s->keyed) {
        return 1;
    }
    if (!xb_bosh_key_matches(body->key, s->key)) {
        xb_log(XB_LOG_MARK, XB_LOG_INFO,
               XBLOGNO(02101) "session %s: rid #%" APR_UINT64_T_FMT " %s: item-not-found",
               s->tag, LOG_RID(s, body->rid),
               body->key ? "carries a key that does not match" : "carries no key");
        return 0;
    }
    /* The next request must hash to this one's key, or to the new sequence's first key. */
    apr_cpystrn(s->key, body->newkey ? body->newkey : body->key, sizeof(s->key));
    for (char *c = s->key; *c; c++) {
        *c = (char)apr_tolower((unsigned char)*c);
    }
    return 1;
}

static void set_initial_key(xb_bosh_session_t *s, const char *newkey)
{
    if (newkey && *newkey) {
        s->keyed = 1;
        apr_cpystrn(s->key, newkey, sizeof(s->key));
        for (char *c = s->key; *c; c++) {
            *c = (char)apr_tolower((unsigned char)*c);
        }
    }
}

/* Requests the client is waiting on right now (HTTP requests still open). */
static unsigned live_requests(const xb_bosh_session_t *s)
{
    unsigned i, n = s->pending_live;

    for (i = 0; i < s->held_n; i++) {
        if (s->held[i].req) {
            n++;
        }
    }
    return n;
}

static int is_pause(const xb_bosh_session_t *s, const xb_bosh_body_t *body)
{
    /* Without maxpause the client MUST NOT send pause (§10); if it does, the request is an
     * ordinary one: nothing was promised, and ending a session over it helps nobody. */
    return body->has_pause && s->max_pause;
}

/* §12 is about polling sessions (wait or hold 0). In a long-polling session an empty answer
 * comes when the client's own wait ran out, and §10 wants the next request "as soon as
 * possible": that must never count as polling too fast, whatever wait the client chose. */
static int is_polling_session(const xb_bosh_session_t *s)
{
    return s->hold == 0 || s->wait == 0;
}

/* An empty request asks only for payloads (§8). A restart carries a meaning of its own. */
/* §16.3: an empty body with `to` asks for one more stream (only with the feature on: without
 * it such a request is an ordinary empty one). Restart requests carry `to` too. */
static int is_add_stream(const xb_bosh_session_t *s, const xb_bosh_body_t *body)
{
    return s->multi && body->to && !body->restart && !body->ver && !body->content
           && !body->has_wait && !body->has_hold && !body->stream && !is_terminate(body)
           && !body->payload_len;
}

static int is_empty_request(const xb_bosh_session_t *s, const xb_bosh_body_t *body)
{
    return !body->payload_len && !body->restart && !body->has_pause && !is_terminate(body)
           && !is_add_stream(s, body);
}

/* §11 and §12, counted when the request is processed in RID order and only for requests whose
 * HTTP request is still open (a re-send is never a new request). Returns the reason for a
 * policy-violation, or NULL.
 *
 * Why Strophe (Converse) never trips these, hold=1 and requests=2, including a prebound session
 * it attached to: it sends an empty request only when none of its requests is in flight, and at
 * most two at a time. Its second request while one is held carries data, so §11's second rule
 * (last request empty) does not apply, and the held one is answered as that second one arrives,
 * before the client can send a third. An empty request right after an answer finds nothing
 * held. §12 applies to polling sessions only (is_polling_session). */
static const char *overactive(xb_bosh_session_t *s, const xb_bosh_body_t *body,
                              apr_time_t arrived)
{
    unsigned outstanding = live_requests(s) + 1;
    int empty = is_empty_request(s, body);
    int may_exceed = is_terminate(body) || is_pause(s, body);
    const xb_pending_t *p;

    /* The last of the sequence may be an early one still waiting for this one. */
    for (p = s->pending; p && !may_exceed; p = p->next) {
        may_exceed = p->req && (is_terminate(p->body) || is_pause(s, p->body));
    }

    if (outstanding > s->requests + (may_exceed ? 1 : 0)) {
        return "more simultaneous requests than 'requests'";
    }
    /* Narrowed to two empty requests: a request carrying data is no poll, and a client that
     * keeps an empty request open beside a data request (xbtest's BoshClient, others) only
     * costs the early answer of the data request, which over_hold gives anyway. */
    if (empty && s->polling && s->requests >= 2 && outstanding == s->requests && !s->pending_live
        && s->poll_rid && body->rid == s->poll_rid + 1
        && arrived - s->last_arrival < apr_time_from_sec(s->polling)) {
        return "'requests' simultaneous requests, the last empty, within 'polling'";
    }
    if (empty && s->polling && is_polling_session(s) && s->poll_rid
        && body->rid == s->poll_rid + 1
        && s->poll_answered_empty && arrived - s->poll_arrived < apr_time_from_sec(s->polling)) {
        return "two empty requests within 'polling' after an empty answer";
    }
    return NULL;
}

/* §9.2: the client acknowledges answers; one behind what we answered gets a report at once. */
static int client_acks(xb_bosh_session_t *s, const xb_bosh_body_t *body)
{
    uint64_t ack;
    const xb_cached_t *c;

    if (!s->acks) {
        return 0;
    }
    /* Without `ack` the client says it has every earlier answer (§9.2). */
    ack = body->has_ack ? body->ack : body->rid - 1;
    ack = ack < s->rid_hi ? ack : s->rid_hi; /* never beyond what was received */
    if (ack < s->last_answered && (c = cache_find(s, ack + 1)) != NULL) {
        apr_time_t since = s->now > c->sent ? s->now - c->sent : 0;
        apr_uint64_t ms = (apr_uint64_t)apr_time_as_msec(since);
        s->report_for = body->rid;
        s->report = ack + 1;
        s->report_ms = ms > 65535 ? 65535 : ms; /* `time` is an unsignedShort (§22) */
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
               XBLOGNO(02102) "session %s: client ack #%" APR_UINT64_T_FMT " is behind rid #%"
                              APR_UINT64_T_FMT ": report",
               s->tag, LOG_RID(s, ack), LOG_RID(s, s->last_answered));
        cache_drop_acked(s, ack);
        return 1;
    }
    cache_drop_acked(s, ack);
    return 0;
}

/* §10: answer everything held now, the pause request without payload (and not cached:
 * §14.3 keeps no pause responses), then allow `pause` seconds of silence. */
static void client_pause(xb_bosh_session_t *s, xb_request_id_t req, const xb_bosh_body_t *body,
                         int target)
{
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
           XBLOGNO(02103) "session %s: paused for %u s at rid #%" APR_UINT64_T_FMT, s->tag,
           body->pause, LOG_RID(s, body->rid));
    if (target != -2) {
        send_payload(s, target, body->payload, body->payload_len);
    }
    s->rid_hi = body->rid;
    flush_held(s);
    respond_plain(s, req, 0);
    s->idle_limit = body->pause;
}

/* ------------------------------------------------------------------------------------------ */
/* §16 multiple streams */

/* Opaque, unpredictable to anyone without the SID, unique within the session: 128 bits of
 * SHA-1(SID, "/stream/", counter), in hex like the SID. */
static void new_stream_name(xb_bosh_session_t *s, char name[XB_STREAM_NAME_LEN + 1])
{
    char hex[XB_BOSH_KEY_HEX_LEN + 1];

    xb_bosh_key_hash(apr_psprintf(scratch_of(s), "%s/stream/%u", s->sid, s->streams_made++), hex);
    scratch_done(s);
    memcpy(name, hex, XB_STREAM_NAME_LEN);
    name[XB_STREAM_NAME_LEN] = '\0';
}

static int stream_find(const xb_bosh_session_t *s, const char *name)
{
    unsigned i;

    for (i = 0; i < s->max_streams; i++) {
        if (s->streams[i].state != XB_STREAM_UNUSED && strcmp(s->streams[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The index of the one live stream, or -1 when there are several. */
static int only_live_stream(const xb_bosh_session_t *s)
{
    unsigned i;
    int found = -1;

    for (i = 0; i < s->max_streams; i++) {
        if (stream_is_live(s, i)) {
            if (found >= 0) {
                return -1;
            }
            found = (int)i;
        }
    }
    return found;
}

/* A slot for a new stream: a never used one, else the one closed longest ago whose end the
 * client has been told (nothing of it queued, its name given). -1: none. */
static int stream_slot(const xb_bosh_session_t *s)
{
    unsigned i;
    int best = -1;

    for (i = 1; i < s->max_streams; i++) {
        const xb_stream_t *st = &s->streams[i];
        if (st->state == XB_STREAM_UNUSED) {
            return (int)i;
        }
        if (st->state == XB_STREAM_CLOSED && !st->naming_due && !queue_has(s, i)
            && (best < 0 || st->closed_at < s->streams[best].closed_at)) {
            best = (int)i;
        }
    }
    return best;
}

/* §16.3: open one more stream; the request is held and answered, naming the stream (and its
 * `from`), in RID order once the stream's first data (its features) came, or at its wait. A
 * stream that cannot be had is refused under a name of its own: type='terminate' with that
 * `stream`, so the streams already open go on. */
static void add_stream(xb_bosh_session_t *s, xb_request_id_t req, const xb_bosh_body_t *body,
                       apr_time_t deadline, unsigned resends, apr_time_t now)
{
    int slot = stream_slot(s);
    xb_bosh_condition_t refused = XB_COND_NONE;
    char name[XB_STREAM_NAME_LEN + 1];
    xb_held_t *h;

    new_stream_name(s, name);
    if (slot < 0) {
        xb_log(XB_LOG_MARK, XB_LOG_INFO,
               XBLOGNO(02205) "session %s: add-stream refused: %u streams open "
                              "(XmppBridgeMaxStreams)",
               s->tag, s->max_streams);
        refused = XB_COND_POLICY_VIOLATION;
    }
    else {
        xb_stream_t *st = &s->streams[slot];
        memset(st, 0, sizeof(*st));
        st->state = XB_STREAM_OPENING;
        st->naming_due = 1;
        memcpy(st->name, name, sizeof(st->name));
        apr_cpystrn(st->domain, body->to, sizeof(st->domain));
        refused = s->io.open_stream(s->baton, (unsigned)slot, body->to, body->xml_lang);
        if (refused != XB_COND_NONE) {
            memset(st, 0, sizeof(*st));
            xb_log(XB_LOG_MARK, XB_LOG_INFO,
                   XBLOGNO(02206) "session %s: add-stream refused: %s",
                   s->tag, xb_bosh_condition_name(refused));
        }
        else {
            xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
                   XBLOGNO(02207) "session %s: stream %d added (%u open)",
                   s->tag, slot, live_streams(s));
        }
    }
    s->rid_hi = body->rid;
    held_push(s, body->rid, req, deadline, resends);
    h = &s->held[s->held_n - 1];
    if (refused != XB_COND_NONE) {
        h->refused = refused;
        memcpy(h->refused_name, name, sizeof(h->refused_name));
    }
    else {
        h->add_stream = (unsigned)slot + 1;
    }
    answer_due(s, now);
}

/* §16.5: terminate naming one of several streams closes that one: its payload goes to it, the
 * stanzas still queued from it go back to their senders (XEP-0206 §7: the client has said it
 * will not read them), then </stream:stream>. */
static void client_close_stream(xb_bosh_session_t *s, unsigned i, const xb_bosh_body_t *body)
{
    xb_queued_t *q, **at;
    apr_pool_t *p;
    unsigned n = 0;

    xb_log(XB_LOG_MARK, XB_LOG_INFO,
           XBLOGNO(02209) "session %s: client closed stream %u", s->tag, i);
    send_payload(s, (int)i, body->payload, body->payload_len);
    apr_pool_create(&p, s->pool);
    s->queue_tail = NULL;
    for (at = &s->queue_head; (q = *at) != NULL;) {
        if (q->stream != i) {
            s->queue_tail = q;
            at = &q->next;
            continue;
        }
        if (q->end == XB_COND_NONE) {
            n += bounce_one(s, p, i, q->data, q->len);
        }
        s->queued_bytes -= q->len;
        *at = q->next;
        free(q);
    }
    apr_pool_destroy(p);
    if (n) {
        xb_log(XB_LOG_MARK, XB_LOG_INFO,
               XBLOGNO(02210) "session %s: %u undelivered stanza(s) of stream %u bounced",
               s->tag, n, i);
    }
    s->streams[i].naming_due = 0;
    close_one_stream(s, i);
}

/* One request in RID order. `deadline` is when its wait runs out (its arrival + wait). */
static void process_request(xb_bosh_session_t *s, xb_request_id_t req,
                            const xb_bosh_body_t *body, apr_time_t deadline, apr_time_t arrived,
                            unsigned resends, apr_time_t now)
{
    const char *why;
    int report;
    int target = -1; /* §16: the stream addressed; -1: every one (broadcast); -2: a closed one
                        (its payload is dropped) */

    if (!key_accepted(s, body)) {
        fail_request(s, req, XB_COND_ITEM_NOT_FOUND);
        return;
    }
    if (req && s->requests && (why = overactive(s, body, arrived)) != NULL) {
        fail_overactive(s, req, body->rid, why);
        return;
    }
    s->last_arrival = arrived;
    if (is_empty_request(s, body)) {
        s->poll_rid = body->rid;
        s->poll_arrived = arrived;
        s->poll_answered_empty = 0;
    }
    else {
        s->poll_rid = 0;
    }
    report = client_acks(s, body);
    if (s->multi) {
        if (is_add_stream(s, body)) {
            add_stream(s, req, body, deadline, resends, now);
            return;
        }
        if (body->stream) {
            int i = stream_find(s, body->stream);
            if (i < 0) {
                xb_log(XB_LOG_MARK, XB_LOG_INFO,
                       XBLOGNO(02204) "session %s: a request names a stream the session never "
                                      "had: item-not-found",
                       s->tag);
                fail_request(s, req, XB_COND_ITEM_NOT_FOUND);
                return;
            }
            target = stream_is_live(s, (unsigned)i) ? i : -2;
        }
    }
    if (is_terminate(body)) {
        if (target == -1 || (target >= 0 && live_streams(s) == 1)) {
            client_terminate(s, req, body);
            return;
        }
        if (target >= 0) {
            client_close_stream(s, (unsigned)target, body);
        }
        /* The request itself is an ordinary one from here (a closed stream's: ignored). */
        s->rid_hi = body->rid;
        held_push(s, body->rid, req, deadline, resends);
        answer_due(s, now);
        return;
    }
    if (is_pause(s, body)) {
        if (body->pause > s->max_pause) {
            xb_log(XB_LOG_MARK, XB_LOG_INFO,
                   XBLOGNO(02104) "session %s: pause %u s is longer than maxpause %u s: "
                                  "policy-violation",
                   s->tag, body->pause, s->max_pause);
            fail_request(s, req, XB_COND_POLICY_VIOLATION);
        }
        else {
            client_pause(s, req, body, target);
        }
        return;
    }
    if (body->restart) {
        /* XEP-0206 §5: the request SHOULD be empty and the CM SHOULD ignore what it holds. */
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
               XBLOGNO(02012) "session %s: stream restart at rid #%" APR_UINT64_T_FMT, s->tag,
               LOG_RID(s, body->rid));
        if (target == -1) {
            target = only_live_stream(s);
            if (target == -1) {
                xb_log(XB_LOG_MARK, XB_LOG_INFO,
                       XBLOGNO(02208) "session %s: restart without 'stream' while several "
                                      "streams are open: bad-request",
                       s->tag);
                fail_request(s, req, XB_COND_BAD_REQUEST);
                return;
            }
        }
        if (target >= 0 && !s->streams[target].io_closed) {
            s->io.restart_stream(s->baton, (unsigned)target);
        }
    }
    else if (target != -2) {
        send_payload(s, target, body->payload, body->payload_len);
    }
    s->rid_hi = body->rid;
    held_push(s, body->rid, req, deadline, resends);
    if (report) {
        /* Answered at once, after every older held one (RID order). */
        flush_held(s);
    }
    answer_due(s, now);
}

/* rid == rid_hi + 1: process it, then every early request it unblocks. */
static void process_in_order(xb_bosh_session_t *s, xb_request_id_t req,
                             const xb_bosh_body_t *body, apr_time_t now)
{
    xb_pending_t *p;

    process_request(s, req, body, wait_deadline(s, now), now, 0, now);
    while (!s->finished && (p = s->pending) != NULL && p->rid == s->rid_hi + 1) {
        s->pending = p->next;
        if (p->req) {
            s->pending_live--;
        }
        /* A live request keeps the wait it has been serving since it arrived; one that went
         * away (or got its recoverable error) gives its re-send a whole wait to take the slot. */
        process_request(s, p->req, p->body, p->req ? p->deadline : wait_deadline(s, now),
                        p->arrived, p->resends, now);
        apr_pool_destroy(p->pool);
    }
}

/* §14.3 MAY limit repeats: one more re-send of a RID than max_replays ends the session. */
static int too_many_resends(const xb_bosh_session_t *s, unsigned *resends)
{
    (*resends)++;
    return s->max_replays && *resends > s->max_replays;
}

/* rid_hi + 1 < rid <= rid_hi + requests: keep it until the gap fills (§14.2). */
static void buffer_request(xb_bosh_session_t *s, xb_request_id_t req,
                           const xb_bosh_body_t *body, apr_time_t now)
{
    xb_pending_t *p = pending_find_rid(s, body->rid);

    if (!p) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
               XBLOGNO(02009) "session %s: rid #%" APR_UINT64_T_FMT " arrived before rid #%"
                              APR_UINT64_T_FMT ", kept",
               s->tag, LOG_RID(s, body->rid), LOG_RID(s, (s->rid_hi + 1)));
        pending_insert(s, req, body, now);
        return;
    }
    /* The same early RID again: §14.3 says the older request gets a recoverable error. The
     * content is identical by the client's contract, so the first copy stays. */
    xb_log(XB_LOG_MARK, XB_LOG_INFO,
           XBLOGNO(02018) "session %s: early rid #%" APR_UINT64_T_FMT " sent again",
           s->tag, LOG_RID(s, body->rid));
    if (too_many_resends(s, &p->resends)) {
        fail_overactive(s, req, body->rid, "one request re-sent more than XmppBridgeMaxReplays");
        return;
    }
    if (p->req) {
        respond_plain(s, p->req, 1);
    }
    else {
        s->pending_live++;
    }
    p->req = req;
    p->deadline = wait_deadline(s, now);
}

/* rid <= rid_hi: a replay, a re-send of a held RID, or too old (§14.3). */
static void note(const xb_bosh_session_t *s, xb_bosh_note_t what)
{
    if (s->io.note) {
        s->io.note(s->baton, what);
    }
}

static void resend_request(xb_bosh_session_t *s, xb_request_id_t req, uint64_t rid,
                           apr_time_t now)
{
    xb_cached_t *c = (xb_cached_t *)cache_find(s, rid);
    xb_held_t *h;

    if (c) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
               XBLOGNO(02002) "session %s: rid #%" APR_UINT64_T_FMT " sent again, replayed",
               s->tag, LOG_RID(s, rid));
        if (too_many_resends(s, &c->resends)) {
            fail_overactive(s, req, rid, "one request re-sent more than XmppBridgeMaxReplays");
            return;
        }
        note(s, XB_NOTE_REPLAY);
        replay_cached(s, req, c);
        return;
    }
    h = held_find_rid(s, rid);
    if (h) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
               XBLOGNO(02003) "session %s: held rid #%" APR_UINT64_T_FMT " sent again%s",
               s->tag, LOG_RID(s, rid),
               h->req ? ", the older request gets a recoverable error" : "");
        note(s, XB_NOTE_HELD_RESEND);
        if (too_many_resends(s, &h->resends)) {
            fail_overactive(s, req, rid, "one request re-sent more than XmppBridgeMaxReplays");
            return;
        }
        /* Never echo the request back to its sender: the old one gets type='error'. */
        if (h->req) {
            respond_plain(s, h->req, 1);
        }
        h->req = req;
        h->deadline = wait_deadline(s, now);
        return;
    }
    xb_log(XB_LOG_MARK, XB_LOG_INFO,
           XBLOGNO(02005) "session %s: rid is %" APR_UINT64_T_FMT " below the window's top "
                          "and its answer is gone: item-not-found",
           s->tag, (apr_uint64_t)(s->rid_hi - rid));
    note(s, XB_NOTE_WINDOW_VIOLATION);
    fail_request(s, req, XB_COND_ITEM_NOT_FOUND);
}

void xb_bosh_session_request(xb_bosh_session_t *s, xb_request_id_t req,
                             const xb_bosh_body_t *body, apr_time_t now)
{
    const char *body_out;
    apr_size_t len;
    int status;

    s->now = now;
    /* Attached: from now on the ordinary inactivity applies (§10: and a pause ends). */
    s->idle_limit = s->inactivity;
    if (s->finished) {
        /* The owner should have removed us; still, never leave a request unanswered. */
        xb_log(XB_LOG_MARK, XB_LOG_INFO,
               XBLOGNO(02015) "session %s: request after the session ended", s->tag);
        build_terminal(s, scratch_of(s), XB_COND_ITEM_NOT_FOUND, NULL, 0, &status, &body_out, &len);
        respond(s, req, status, body_out, len);
        scratch_done(s);
        return;
    }
    if (s->terminal_pending) {
        deliver_terminal(s, req, body->rid);
    }
    else if (!body->has_rid) {
        xb_log(XB_LOG_MARK, XB_LOG_INFO,
               XBLOGNO(02016) "session %s: request without rid: bad-request", s->tag);
        fail_request(s, req, XB_COND_BAD_REQUEST);
    }
    else if (body->rid <= s->rid_hi) {
        resend_request(s, req, body->rid, now);
    }
    else if (body->rid - s->rid_hi > s->requests + (is_terminate(body) || is_pause(s, body))) {
        /* §11: a pause or terminate may come on top of `requests`. */
        xb_log(XB_LOG_MARK, XB_LOG_INFO,
               XBLOGNO(02004) "session %s: rid is %" APR_UINT64_T_FMT " above the window's "
                              "top, the window is %u: item-not-found",
               s->tag, (apr_uint64_t)(body->rid - s->rid_hi), s->requests);
        note(s, XB_NOTE_WINDOW_VIOLATION);
        fail_request(s, req, XB_COND_ITEM_NOT_FOUND);
    }
    else if (body->rid == s->rid_hi + 1) {
        process_in_order(s, req, body, now);
    }
    else {
        buffer_request(s, req, body, now);
    }
    update_idle(s, now, 1);
}

void xb_bosh_session_request_gone(xb_bosh_session_t *s, xb_request_id_t req, apr_time_t now)
{
    xb_pending_t *p;
    int i;

    s->now = now;
    if (s->finished || !req) {
        return;
    }
    i = find_request(s, req, &p);
    if (i >= 0) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
               XBLOGNO(02011) "session %s: request for held rid #%" APR_UINT64_T_FMT " went away",
               s->tag, LOG_RID(s, s->held[i].rid));
        s->held[i].req = 0;
    }
    else if (p) {
        p->req = 0;
        s->pending_live--;
    }
    update_idle(s, now, 0);
}

void xb_bosh_session_release(xb_bosh_session_t *s, xb_request_id_t req, apr_time_t now)
{
    xb_pending_t *p;
    int i;

    s->now = now;
    if (s->finished || !req) {
        return;
    }
    i = find_request(s, req, &p);
    if (i >= 0) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
               XBLOGNO(02017) "session %s: held rid #%" APR_UINT64_T_FMT " released", s->tag,
               LOG_RID(s, s->held[i].rid));
        /* Older held RIDs must be answered first to keep RID order. */
        while (i-- >= 0) {
            answer_oldest(s);
        }
    }
    else if (p) {
        abandon_pending(s, p, "released");
    }
    update_idle(s, now, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Server side */

void xb_bosh_session_stream_data(xb_bosh_session_t *s, unsigned stream, const char *data,
                                 apr_size_t len, apr_time_t now)
{
    s->now = now;
    if (stream >= s->max_streams || !stream_is_live(s, stream)) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
               XBLOGNO(02202) "session %s: %" APR_SIZE_T_FMT " bytes from closed stream %u, "
                              "dropped",
               s->tag, len, stream);
        return;
    }
    if (s->finished || s->terminal_pending) {
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
               XBLOGNO(02014) "session %s: %" APR_SIZE_T_FMT " bytes from the server after the "
                              "end, dropped",
               s->tag, len);
        return;
    }
    if (!len) {
        return;
    }
    queue_append(s, stream, XB_COND_NONE, data, len);
    answer_ready(s);
    update_idle(s, now, 0);
}

void xb_bosh_session_server_data(xb_bosh_session_t *s, const char *data, apr_size_t len,
                                 apr_time_t now)
{
    xb_bosh_session_stream_data(s, 0, data, len, now);
}

/* The session ends with `cond`. When the stream is still open (the gateway ends the session)
 * and no live request can take the terminating answer now, the queued stanzas are bounced
 * rather than kept in it for a next request that may never come (XEP-0206 §7); a client that
 * does come back gets the terminating answer without them. */
static void session_closing(xb_bosh_session_t *s, unsigned stream, xb_bosh_condition_t cond,
                            const char *stream_error, apr_size_t stream_error_len,
                            int stream_open)
{
    xb_request_id_t req;

    /* XEP-0206 §6: the stanzas first, then a copy of the <stream:error/>; likewise the
     * application-specific element of an undefined-condition (XEP-0124 §17.2). */
    if ((cond == XB_COND_REMOTE_STREAM_ERROR || cond == XB_COND_UNDEFINED_CONDITION)
        && stream_error && stream_error_len) {
        queue_append(s, stream, XB_COND_NONE, stream_error, stream_error_len);
    }
    /* Undelivered answers can no longer be fetched by a re-send that is not here already. */
    if (stream_open) {
        bounce_undelivered(s, !live_requests(s));
    }
    else {
        close_stream_once(s); /* nothing can be bounced through it (end_session) */
    }
    {
        const char *payload;
        apr_size_t plen;

        /* Built once in the session pool: it may have to wait for the next request. With
         * several streams it carries the oldest one's stanzas; the others' are bounced (the
         * gateway ends the session) or lost with their streams. */
        payload = queue_take(s, scratch_of(s), queue_pick(s, 1), &plen, NULL);
        build_terminal(s, s->pool, cond, payload, plen, &s->terminal_status, &s->terminal,
                       &s->terminal_len);
        scratch_done(s);
    }
    close_stream_once(s);

    req = take_oldest_live(s);
    if (req) {
        respond(s, req, s->terminal_status, s->terminal, s->terminal_len);
        end_session(s);
        return;
    }
    s->terminal_pending = 1;
    update_idle(s, s->now, 0);
}

void xb_bosh_session_stream_closed(xb_bosh_session_t *s, unsigned stream,
                                   xb_bosh_condition_t cond, const char *stream_error,
                                   apr_size_t stream_error_len, apr_time_t now)
{
    s->now = now;
    if (s->finished || s->terminal_pending) {
        close_stream_once(s);
        return;
    }
    if (stream >= s->max_streams || !stream_is_live(s, stream)) {
        return; /* already closed (by the client, §16.5) */
    }
    if (live_streams(s) > 1) {
        /* §16: only this stream ends; the client learns it from a terminate body naming it
         * (with its stanzas before it and the <stream:error/> copy), in RID order. */
        xb_log(XB_LOG_MARK, XB_LOG_INFO,
               XBLOGNO(02203) "session %s: XMPP stream %u ended: %s; %u stream(s) go on",
               s->tag, stream, xb_bosh_condition_name(cond), live_streams(s) - 1);
        queue_append(s, stream, cond,
                     cond == XB_COND_REMOTE_STREAM_ERROR && stream_error ? stream_error : "",
                     cond == XB_COND_REMOTE_STREAM_ERROR && stream_error ? stream_error_len : 0);
        close_one_stream(s, stream);
        answer_ready(s);
        update_idle(s, now, 0);
        return;
    }
    xb_log(XB_LOG_MARK, XB_LOG_INFO,
           XBLOGNO(02007) "session %s: XMPP stream ended: %s", s->tag,
           xb_bosh_condition_name(cond));
    session_closing(s, stream, cond, stream_error, stream_error_len, 0);
}

void xb_bosh_session_server_closed(xb_bosh_session_t *s, xb_bosh_condition_t cond,
                                   const char *stream_error, apr_size_t stream_error_len,
                                   apr_time_t now)
{
    xb_bosh_session_stream_closed(s, 0, cond, stream_error, stream_error_len, now);
}

void xb_bosh_session_end(xb_bosh_session_t *s, xb_bosh_condition_t cond, apr_time_t now)
{
    xb_bosh_session_end_detail(s, cond, NULL, 0, now);
}

void xb_bosh_session_end_detail(xb_bosh_session_t *s, xb_bosh_condition_t cond,
                                const char *detail, apr_size_t detail_len, apr_time_t now)
{
    s->now = now;
    if (s->finished || s->terminal_pending) {
        close_stream_once(s);
        return;
    }
    xb_log(XB_LOG_MARK, XB_LOG_INFO,
           XBLOGNO(02201) "session %s: ended by the gateway: %s", s->tag,
           xb_bosh_condition_name(cond));
    session_closing(s, 0, cond, detail, detail_len, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Time */

void xb_bosh_session_tick(xb_bosh_session_t *s, apr_time_t now)
{
    s->now = now;
    if (s->finished) {
        return;
    }
    expire_held(s, now);
    expire_pending(s, now);
    update_idle(s, now, 0);
    if (s->idle && now >= s->idle_since + apr_time_from_sec(s->idle_limit)) {
        /* §10: terminate silently; a later request finds no session. */
        xb_log(XB_LOG_MARK, XB_LOG_INFO,
               XBLOGNO(02008) "session %s: no request for %u s, session ended", s->tag,
               s->idle_limit);
        end_session(s);
    }
}

static apr_time_t earlier(apr_time_t a, apr_time_t b)
{
    return (a == 0 || b < a) ? b : a;
}

apr_time_t xb_bosh_session_next_deadline(const xb_bosh_session_t *s)
{
    const xb_pending_t *p;
    apr_time_t t = 0;
    unsigned i;

    if (s->finished) {
        return 0;
    }
    for (i = 0; i < s->held_n; i++) {
        t = earlier(t, s->held[i].deadline);
    }
    for (p = s->pending; p; p = p->next) {
        if (p->req) {
            t = earlier(t, p->deadline);
        }
    }
    if (s->idle) {
        t = earlier(t, s->idle_since + apr_time_from_sec(s->idle_limit));
    }
    return t;
}

/* ------------------------------------------------------------------------------------------ */
/* Creation and queries */

/* §7.1: `ver` is major.minor, compared as integers ("1.9" < "1.11"). Anything unreadable gets
 * our own version: the client did say it is not a legacy client. */
static const char *negotiate_ver(apr_pool_t *p, const char *client)
{
    unsigned long major, minor = 0;
    char *end;

    if (!apr_isdigit(client[0])) {
        return OUR_VER;
    }
    major = strtoul(client, &end, 10);
    if (*end == '.') {
        if (!apr_isdigit(end[1])) {
            return OUR_VER;
        }
        minor = strtoul(end + 1, &end, 10);
    }
    if (*end != '\0') {
        return OUR_VER;
    }
    if (major > OUR_VER_MAJOR || (major == OUR_VER_MAJOR && minor >= OUR_VER_MINOR)) {
        return OUR_VER;
    }
    return apr_psprintf(p, "%lu.%lu", major, minor);
}

static void negotiate_limits(xb_bosh_session_t *s, const xb_bosh_body_t *c,
                             const xb_bosh_session_limits_t *limits)
{
    s->wait = (c->has_wait && c->wait < limits->max_wait) ? c->wait : limits->max_wait;
    if (c->has_hold && c->hold == 0) {
        s->hold = 0; /* a polling session (§7.1): every request is answered at once */
    }
    else {
        s->hold = c->has_hold ? c->hold : 1;
        if (s->hold > limits->max_hold) {
            s->hold = limits->max_hold;
        }
        if (s->hold < 1) {
            s->hold = 1;
        }
    }
    s->requests = s->hold + 1; /* §7.2 RECOMMENDED */
    s->inactivity = limits->inactivity;
    s->idle_limit = limits->inactivity;
    s->polling = limits->polling;
    s->max_queued_bytes = limits->max_queued_bytes;
    s->max_replays = limits->max_replays;
    s->max_pause = limits->max_pause;
    s->accept = limits->accept ? apr_pstrdup(s->pool, limits->accept) : NULL;
}

/* streams[0] is the stream the session was made with; §16 is on with max_streams > 1 and an
 * owner that can open streams. */
static void init_streams(xb_bosh_session_t *s, const char *domain, unsigned max_streams)
{
    s->max_streams = max_streams > 1 && s->io.open_stream ? max_streams : 1;
    s->multi = s->max_streams > 1;
    s->streams = apr_pcalloc(s->pool, s->max_streams * sizeof(*s->streams));
    s->streams[0].state = XB_STREAM_OPEN;
    apr_cpystrn(s->streams[0].domain, domain ? domain : "", sizeof(s->streams[0].domain));
    if (s->multi) {
        new_stream_name(s, s->streams[0].name);
    }
}

xb_bosh_session_t *xb_bosh_session_create(apr_pool_t *pool, const char *sid,
                                          const xb_bosh_body_t *creation, xb_request_id_t req,
                                          const xb_bosh_session_limits_t *limits,
                                          const xb_bosh_io_t *io, void *baton, apr_time_t now)
{
    xb_bosh_session_t *s = apr_pcalloc(pool, sizeof(*s));

    s->pool = pool;
    s->sid = apr_pstrdup(pool, sid);
    xb_log_session_tag(sid, s->tag);
    s->from = apr_pstrdup(pool, creation->to);
    /* A legacy client gets no `ver` back: it could not compare it with its own anyway. */
    s->ver = creation->ver ? negotiate_ver(pool, creation->ver) : NULL;
    s->io = *io;
    s->baton = baton;
    negotiate_limits(s, creation, limits);

    /* hold + 1 (momentarily, before answer_due) + the creation exception of a polling session */
    s->held_cap = s->requests + 1;
    s->held = apr_pcalloc(pool, s->held_cap * sizeof(*s->held));
    s->cache_cap = limits->response_cache > s->requests ? limits->response_cache : s->requests;
    s->cache = apr_pcalloc(pool, s->cache_cap * sizeof(*s->cache));
    apr_pool_cleanup_register(pool, s, session_cleanup, apr_pool_cleanup_null);

    s->creation_rid = s->rid_hi = creation->rid;
    s->now = s->last_arrival = now;
    init_streams(s, creation->to, limits->max_streams);
    s->content = creation->content ? apr_pstrdup(pool, creation->content) : NULL;
    /* §9.2: ack='1' at creation commits the client to acks, and so do we (§9.1). */
    s->acks = creation->has_ack && creation->ack == 1;
    set_initial_key(s, creation->newkey);
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
           XBLOGNO(02001) "session %s created: wait %u, hold %u, requests %u, ver %s",
           s->tag, s->wait, s->hold, s->requests,
           s->ver ? s->ver : "(legacy)");
    if (creation->payload && creation->payload_len) {
        send_payload(s, 0, creation->payload, creation->payload_len);
    }
    held_push(s, creation->rid, req, wait_deadline(s, now), 0);
    update_idle(s, now, 1);
    return s;
}

xb_bosh_session_t *xb_bosh_session_create_prebound(apr_pool_t *pool, const char *sid,
                                                   const char *domain, uint64_t next_rid,
                                                   unsigned attach_grace,
                                                   const xb_bosh_session_limits_t *limits,
                                                   const xb_bosh_io_t *io, void *baton,
                                                   apr_time_t now)
{
    xb_bosh_session_t *s = apr_pcalloc(pool, sizeof(*s));
    xb_bosh_body_t strophe_attach;

    /* What Strophe's attach() assumes: hold 1, its own wait (59 s), never a creation answer. */
    memset(&strophe_attach, 0, sizeof(strophe_attach));
    strophe_attach.has_hold = 1;
    strophe_attach.hold = 1;
    strophe_attach.has_wait = 1;
    strophe_attach.wait = XB_PREBIND_CLIENT_WAIT;
    s->pool = pool;
    s->sid = apr_pstrdup(pool, sid);
    xb_log_session_tag(sid, s->tag);
    s->from = apr_pstrdup(pool, domain);
    s->ver = OUR_VER;
    s->io = *io;
    s->baton = baton;
    negotiate_limits(s, &strophe_attach, limits);
    s->idle_limit = attach_grace > s->inactivity ? attach_grace : s->inactivity;
    s->held_cap = s->requests + 1;
    s->held = apr_pcalloc(pool, s->held_cap * sizeof(*s->held));
    s->cache_cap = limits->response_cache > s->requests ? limits->response_cache : s->requests;
    s->cache = apr_pcalloc(pool, s->cache_cap * sizeof(*s->cache));
    apr_pool_cleanup_register(pool, s, session_cleanup, apr_pool_cleanup_null);
    init_streams(s, domain, 1); /* Strophe's attach() knows nothing of §16 */
    /* The browser's first request carries next_rid: everything below it counts as done. */
    s->creation_rid = s->rid_hi = next_rid - 1;
    s->now = s->last_arrival = now;
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG,
           XBLOGNO(02019) "session %s prebound: waits up to %u s for the browser to attach",
           s->tag, s->idle_limit);
    update_idle(s, now, 1);
    return s;
}

int xb_bosh_session_wants_server_data(const xb_bosh_session_t *s)
{
    return !s->finished && !s->terminal_pending && s->queued_bytes <= s->max_queued_bytes;
}

int xb_bosh_session_is_finished(const xb_bosh_session_t *s)
{
    return s->finished;
}

/* rid_lo also covers held RIDs: their re-send is valid too, so the shared table must let it
 * through. With nothing cached or held, nothing below rid_hi + 1 can be answered. */
void xb_bosh_session_window(const xb_bosh_session_t *s, uint64_t *rid_hi, uint64_t *rid_lo,
                            unsigned *requests)
{
    uint64_t lo = s->rid_hi + 1;

    if (s->cache_n && s->cache[s->cache_first].rid < lo) {
        lo = s->cache[s->cache_first].rid;
    }
    if (s->orphan_n && s->orphans[0].rid < lo) {
        lo = s->orphans[0].rid;
    }
    if (s->held_n && s->held[0].rid < lo) {
        lo = s->held[0].rid;
    }
    *rid_hi = s->rid_hi;
    *rid_lo = lo;
    *requests = s->requests;
}

unsigned xb_bosh_session_stream_count(const xb_bosh_session_t *s)
{
    return s->finished ? 0 : live_streams(s);
}

unsigned xb_bosh_session_held_count(const xb_bosh_session_t *s)
{
    return s->held_n;
}

int xb_bosh_session_has_ver(const xb_bosh_session_t *s)
{
    return s->ver != NULL;
}

const char *xb_bosh_session_content(const xb_bosh_session_t *s)
{
    return s->content;
}
