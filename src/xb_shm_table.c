/* The shared-memory session table; see xb_shm_table.h. */
#include <stdlib.h>
#include <string.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include "xb_shm_table.h"
#include "xb_log.h"

#define XB_SHM_MAGIC UINT32_C(0x58425348) /* "XBSH" */

/* Children read rows without the mutex (a seqlock): the writer (the daemon, under the mutex)
 * makes `seq` odd, changes the row, makes it even again; a reader copies the row and keeps the
 * copy only when `seq` was even and unchanged around it. Moving rows (compaction, clearing)
 * does the same with the header's `layout_seq`. */
typedef struct shm_row {
    uint32_t state; /* xb_row_state_t */
    uint32_t seq;
    xb_shm_session_t s;
} shm_row_t;

typedef struct shm_header {
    uint32_t magic;
    uint32_t layout_version;
    uint32_t slots;
    uint32_t live;
    uint32_t tombstones;
    uint32_t daemon_pid;
    uint32_t daemon_restarts;
    uint32_t layout_seq; /* odd while rows move (see shm_row_t) */
    apr_time_t daemon_started;
    uint64_t sessions_created;
    uint64_t sessions_ended;
    volatile apr_uint64_t counters[XB_CNT_COUNT];
} shm_header_t;

struct xb_shm_table {
    shm_header_t *hdr;
    shm_row_t *rows;
    apr_global_mutex_t *mutex;
};

/* Rows start on a 64-byte boundary so that neighbouring rows share no more cache lines than
 * they must. */
#define ROWS_OFFSET APR_ALIGN(sizeof(shm_header_t), 64)

apr_size_t xb_shm_table_size(unsigned slots)
{
    return ROWS_OFFSET + (apr_size_t)slots * sizeof(shm_row_t);
}

static xb_shm_table_t *wrap(apr_pool_t *p, void *base, apr_global_mutex_t *mutex)
{
    xb_shm_table_t *t = apr_pcalloc(p, sizeof(*t));
    t->hdr = base;
    t->rows = (shm_row_t *)((char *)base + ROWS_OFFSET);
    t->mutex = mutex;
    return t;
}

xb_shm_table_t *xb_shm_table_create(apr_pool_t *p, void *base, apr_size_t size, unsigned slots,
                                    apr_global_mutex_t *mutex)
{
    xb_shm_table_t *t;

    if (size < xb_shm_table_size(slots) || slots == 0) {
        return NULL;
    }
    memset(base, 0, xb_shm_table_size(slots));
    t = wrap(p, base, mutex);
    t->hdr->magic = XB_SHM_MAGIC;
    t->hdr->layout_version = XB_SHM_LAYOUT_VERSION;
    t->hdr->slots = slots;
    return t;
}

xb_shm_table_t *xb_shm_table_attach(apr_pool_t *p, void *base, apr_global_mutex_t *mutex)
{
    const shm_header_t *hdr = base;

    if (hdr->magic != XB_SHM_MAGIC || hdr->layout_version != XB_SHM_LAYOUT_VERSION) {
        return NULL;
    }
    return wrap(p, base, mutex);
}

void xb_shm_table_set_mutex(xb_shm_table_t *t, apr_global_mutex_t *mutex)
{
    t->mutex = mutex;
}

unsigned xb_shm_table_slots(const xb_shm_table_t *t)
{
    return t->hdr->slots;
}

static void lock(xb_shm_table_t *t)
{
    apr_status_t rv = apr_global_mutex_lock(t->mutex);
    if (rv != APR_SUCCESS) {
        xb_log(XB_LOG_MARK, XB_LOG_ERR, XBLOGNO(00101) "locking the session table failed (%d)",
               rv);
    }
}

static void unlock(xb_shm_table_t *t)
{
    apr_global_mutex_unlock(t->mutex);
}

/* ---- the seqlock (see shm_row_t) ---- */

static void seq_write_begin(uint32_t *seq)
{
    __atomic_store_n(seq, *seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE); /* odd before any change of the row */
}

static void seq_write_end(uint32_t *seq)
{
    __atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE); /* the changes before even */
}

static uint32_t seq_read_begin(const uint32_t *seq)
{
    return __atomic_load_n(seq, __ATOMIC_ACQUIRE);
}

/* True when nothing was written between seq_read_begin (which returned `begin`) and now. */
static int seq_read_valid(const uint32_t *seq, uint32_t begin)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the reads of the row before the check */
    return !(begin & 1) && __atomic_load_n(seq, __ATOMIC_RELAXED) == begin;
}

static void set_state(shm_row_t *row, uint32_t state)
{
    __atomic_store_n(&row->state, state, __ATOMIC_RELAXED);
}

static uint32_t sid_hash(const char *sid)
{
    /* FNV-1a: SIDs are already random, this only spreads them over the slots. */
    uint32_t h = 2166136261u;
    for (; *sid; sid++) {
        h ^= (unsigned char)*sid;
        h *= 16777619u;
    }
    return h;
}

/* The row holding `sid`, or NULL; with `free_row` also the first reusable row on its chain. */
static shm_row_t *probe(xb_shm_table_t *t, const char *sid, shm_row_t **free_row)
{
    uint32_t n = t->hdr->slots;
    uint32_t i = sid_hash(sid) % n;
    uint32_t step;

    if (free_row) {
        *free_row = NULL;
    }
    for (step = 0; step < n; step++, i = (i + 1) % n) {
        shm_row_t *row = &t->rows[i];
        if (row->state == XB_ROW_FREE) {
            if (free_row && !*free_row) {
                *free_row = row;
            }
            return NULL;
        }
        if (row->state == XB_ROW_DELETED) {
            if (free_row && !*free_row) {
                *free_row = row;
            }
            continue;
        }
        if (strcmp(row->s.sid, sid) == 0) {
            return row;
        }
    }
    return NULL;
}

apr_status_t xb_shm_table_insert(xb_shm_table_t *t, const xb_shm_session_t *session)
{
    shm_row_t *row, *free_row;
    apr_status_t rv = APR_SUCCESS;

    lock(t);
    row = probe(t, session->sid, &free_row);
    if (row) {
        rv = APR_EEXIST;
    }
    else if (!free_row || t->hdr->live >= t->hdr->slots) {
        rv = APR_ENOSPC;
    }
    else {
        if (free_row->state == XB_ROW_DELETED) {
            t->hdr->tombstones--;
        }
        seq_write_begin(&free_row->seq);
        free_row->s = *session;
        set_state(free_row, XB_ROW_LIVE);
        seq_write_end(&free_row->seq);
        t->hdr->live++;
        t->hdr->sessions_created++;
    }
    unlock(t);
    return rv;
}

apr_status_t xb_shm_table_update_window(xb_shm_table_t *t, const char *sid, uint64_t rid_hi,
                                        uint64_t rid_lo, uint32_t requests, uint32_t held,
                                        apr_time_t now)
{
    shm_row_t *row;
    apr_status_t rv = APR_NOTFOUND;

    lock(t);
    row = probe(t, sid, NULL);
    if (row) {
        seq_write_begin(&row->seq);
        row->s.rid_hi = rid_hi;
        row->s.rid_lo = rid_lo;
        row->s.requests = requests;
        row->s.held = held;
        row->s.last_activity = now;
        seq_write_end(&row->seq);
        rv = APR_SUCCESS;
    }
    unlock(t);
    return rv;
}

/* With many tombstones every miss walks far: rebuild the chains. Live rows are copied out and
 * put back into an emptied table, which is the only re-seating that cannot break a chain that
 * wraps around the end. Called with the lock held, by the daemon only, and rarely (at most once
 * per slots/2 removals), so the temporary copy is plain malloc. */
static void compact(xb_shm_table_t *t)
{
    uint32_t i, n = t->hdr->slots, kept = 0;
    shm_row_t *live = malloc((apr_size_t)t->hdr->live * sizeof(shm_row_t) + 1);

    if (!live) {
        return; /* tombstones only cost probe length; try again at the next removal */
    }
    for (i = 0; i < n; i++) {
        if (t->rows[i].state == XB_ROW_LIVE) {
            live[kept++] = t->rows[i];
        }
    }
    seq_write_begin(&t->hdr->layout_seq);
    memset(t->rows, 0, (apr_size_t)n * sizeof(shm_row_t));
    t->hdr->tombstones = 0;
    for (i = 0; i < kept; i++) {
        shm_row_t *dest;
        probe(t, live[i].s.sid, &dest);
        *dest = live[i];
        dest->seq = 0;
    }
    seq_write_end(&t->hdr->layout_seq);
    free(live);
}

apr_status_t xb_shm_table_remove(xb_shm_table_t *t, const char *sid)
{
    shm_row_t *row;
    apr_status_t rv = APR_NOTFOUND;

    lock(t);
    row = probe(t, sid, NULL);
    if (row) {
        seq_write_begin(&row->seq);
        set_state(row, XB_ROW_DELETED);
        memset(&row->s, 0, sizeof(row->s));
        seq_write_end(&row->seq);
        t->hdr->live--;
        t->hdr->tombstones++;
        t->hdr->sessions_ended++;
        if (t->hdr->tombstones > t->hdr->slots / 2) {
            compact(t);
        }
        rv = APR_SUCCESS;
    }
    unlock(t);
    return rv;
}

void xb_shm_table_clear(xb_shm_table_t *t)
{
    lock(t);
    t->hdr->sessions_ended += t->hdr->live;
    seq_write_begin(&t->hdr->layout_seq);
    memset(t->rows, 0, (apr_size_t)t->hdr->slots * sizeof(shm_row_t));
    seq_write_end(&t->hdr->layout_seq);
    t->hdr->live = 0;
    t->hdr->tombstones = 0;
    unlock(t);
}

void xb_shm_table_note_daemon(xb_shm_table_t *t, uint32_t pid, apr_time_t started, int is_restart)
{
    lock(t);
    t->hdr->daemon_pid = pid;
    t->hdr->daemon_started = started;
    if (is_restart) {
        t->hdr->daemon_restarts++;
    }
    unlock(t);
}

/* probe() for a reader without the mutex: a row may change under it, so the SID is compared
 * within its fixed size (never past the row) and the state is read once. The caller validates
 * what it found with the seqlock. */
static shm_row_t *probe_unlocked(xb_shm_table_t *t, const char *sid)
{
    uint32_t n = t->hdr->slots;
    uint32_t i = sid_hash(sid) % n;
    uint32_t step;

    for (step = 0; step < n; step++, i = (i + 1) % n) {
        shm_row_t *row = &t->rows[i];
        uint32_t state = __atomic_load_n(&row->state, __ATOMIC_RELAXED);
        if (state == XB_ROW_FREE) {
            return NULL;
        }
        if (state == XB_ROW_LIVE && memcmp(row->s.sid, sid, XB_SID_HEX_LEN + 1) == 0) {
            return row;
        }
    }
    return NULL;
}

/* Attempts before a reader gives up on the seqlock and takes the mutex: each retry means the
 * daemon wrote that very row (or moved rows) during a copy of a few hundred bytes. */
#define LOOKUP_TRIES 16

apr_status_t xb_shm_table_lookup(xb_shm_table_t *t, const char *sid, xb_shm_session_t *session)
{
    shm_row_t *row;
    apr_status_t rv = APR_NOTFOUND;
    int tries;

    if (strlen(sid) != XB_SID_HEX_LEN) {
        return APR_NOTFOUND;
    }
    /* Every BOSH request looks its session up: without the mutex, children never wait for each
     * other or for the daemon, and the daemon never waits for a child that was descheduled
     * while holding it. */
    for (tries = 0; tries < LOOKUP_TRIES; tries++) {
        uint32_t layout = seq_read_begin(&t->hdr->layout_seq);
        uint32_t seq = 0;

        if (layout & 1) {
            continue;
        }
        row = probe_unlocked(t, sid);
        if (row) {
            seq = seq_read_begin(&row->seq);
            memcpy(session, &row->s, sizeof(*session));
            if (!seq_read_valid(&row->seq, seq)
                || __atomic_load_n(&row->state, __ATOMIC_RELAXED) != XB_ROW_LIVE
                || memcmp(session->sid, sid, XB_SID_HEX_LEN + 1) != 0) {
                continue; /* written meanwhile, or the row now holds another session */
            }
        }
        if (seq_read_valid(&t->hdr->layout_seq, layout)) {
            return row ? APR_SUCCESS : APR_NOTFOUND;
        }
    }
    lock(t);
    row = probe(t, sid, NULL);
    if (row) {
        *session = row->s;
        rv = APR_SUCCESS;
    }
    unlock(t);
    return rv;
}

void xb_shm_table_stats(xb_shm_table_t *t, xb_shm_stats_t *stats)
{
    lock(t);
    stats->slots = t->hdr->slots;
    stats->live = t->hdr->live;
    stats->daemon_pid = t->hdr->daemon_pid;
    stats->daemon_restarts = t->hdr->daemon_restarts;
    stats->daemon_started = t->hdr->daemon_started;
    stats->sessions_created = t->hdr->sessions_created;
    stats->sessions_ended = t->hdr->sessions_ended;
    unlock(t);
    for (int i = 0; i < XB_CNT_COUNT; i++) {
        stats->counters[i] = apr_atomic_read64(&t->hdr->counters[i]);
    }
}

static const char *const counter_names[XB_CNT_COUNT] = {
    [XB_CNT_BOSH_REQUESTS] = "bosh_requests",
    [XB_CNT_UNKNOWN_SID] = "unknown_sid",
    [XB_CNT_WINDOW_VIOLATIONS] = "window_violations",
    [XB_CNT_REPLAYS] = "replays",
    [XB_CNT_HELD_RESENDS] = "held_resends",
    [XB_CNT_STANZAS_TO_CLIENT] = "stanzas_to_client",
    [XB_CNT_BYTES_TO_CLIENT] = "bytes_to_client",
    [XB_CNT_PAYLOADS_TO_SERVER] = "payloads_to_server",
    [XB_CNT_BYTES_TO_SERVER] = "bytes_to_server",
    [XB_CNT_PREBIND_OK] = "prebind_ok",
    [XB_CNT_PREBIND_AUTH_FAILED] = "prebind_failed_auth",
    [XB_CNT_PREBIND_CONNECT_FAILED] = "prebind_failed_connect",
    [XB_CNT_PREBIND_TIMEOUT] = "prebind_failed_timeout",
    [XB_CNT_PREBIND_OTHER_FAILED] = "prebind_failed_other",
    [XB_CNT_PREBIND_ATTACHED] = "prebind_attached",
    [XB_CNT_CREDENTIALS_ISSUED] = "credentials_issued",
    [XB_CNT_LOGOUTS] = "logouts",
    [XB_CNT_REFUSED_PER_ADDRESS] = "refused_per_address",
    [XB_CNT_REFUSED_TABLE_FULL] = "refused_table_full",
    [XB_CNT_REFUSED_CROSS_SITE] = "refused_cross_site",
    [XB_CNT_HOST_GONE] = "host_gone",
    [XB_CNT_OVERACTIVITY] = "overactivity",
    [XB_CNT_WARM_TAKEN] = "warm_streams_taken",
    [XB_CNT_WARM_MISSED] = "warm_streams_missed",
    [XB_CNT_WARM_RECYCLED] = "warm_streams_recycled",
    [XB_CNT_WARM_FAILED] = "warm_streams_failed",
    [XB_CNT_TLS_FULL] = "tls_handshakes_full",
    [XB_CNT_TLS_RESUMED] = "tls_handshakes_resumed",
};

const char *xb_counter_name(xb_counter_t c)
{
    return (unsigned)c < XB_CNT_COUNT ? counter_names[c] : "unknown";
}

void xb_shm_table_count(xb_shm_table_t *t, xb_counter_t c, uint64_t n)
{
    if (t && (unsigned)c < XB_CNT_COUNT) {
        apr_atomic_add64(&t->hdr->counters[c], n);
    }
}

apr_status_t xb_shm_table_set_flags(xb_shm_table_t *t, const char *sid, uint32_t flags)
{
    shm_row_t *row;
    apr_status_t rv = APR_NOTFOUND;

    lock(t);
    row = probe(t, sid, NULL);
    if (row) {
        seq_write_begin(&row->seq);
        row->s.flags |= flags;
        seq_write_end(&row->seq);
        rv = APR_SUCCESS;
    }
    unlock(t);
    return rv;
}

void xb_shm_table_each(xb_shm_table_t *t, void (*fn)(void *baton, const xb_shm_session_t *row),
                       void *baton)
{
    uint32_t i;

    lock(t);
    for (i = 0; i < t->hdr->slots; i++) {
        if (t->rows[i].state == XB_ROW_LIVE) {
            fn(baton, &t->rows[i].s);
        }
    }
    unlock(t);
}
