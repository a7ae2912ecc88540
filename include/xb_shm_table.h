/* The session table in shared memory.
 *
 * One anonymous segment, created once by the httpd parent and inherited by every child and the
 * daemon. The daemon is the only writer of session rows; children read them to reject unknown
 * SIDs and out-of-window RIDs without a round trip, and to render the status page. Writers
 * and the status page hold the global mutex briefly, never across I/O; a child's look-up of one
 * row takes no lock (a seqlock per row, xb_shm_table.c). Rows are found by open addressing on the
 * SID (SIDs are random, so their first hex digits are a good hash).
 */
#ifndef XB_SHM_TABLE_H
#define XB_SHM_TABLE_H

#include <stdint.h>
#include <apr_pools.h>
#include <apr_global_mutex.h>
#include <apr_time.h>

#define XB_SID_HEX_LEN 32 /* 128 random bits */
#define XB_SHM_LAYOUT_VERSION 6 /* 5 on two branches: row seqlocks; TLS handshake counters */
#define XB_DOMAIN_MAX 128

typedef enum {
    XB_ROW_FREE = 0,
    XB_ROW_LIVE = 1,
    XB_ROW_DELETED = 2 /* tombstone: keeps probe chains intact */
} xb_row_state_t;

/* What a child may learn about one session. */
#define XB_ROW_PREBOUND 0x1u   /* made by prebind */
#define XB_ROW_ATTACHED 0x2u   /* a prebound session the browser has used */
#define XB_ROW_ACCEPT_GZIP 0x4u /* its creation request's `accept` named gzip */
#define XB_CONTENT_TYPE_MAX 128

typedef struct xb_shm_session {
    char sid[XB_SID_HEX_LEN + 1];
    char domain[XB_DOMAIN_MAX];
    uint64_t rid_hi;      /* highest RID processed in order */
    uint64_t rid_lo;      /* lowest RID whose answer is still cached */
    uint32_t requests;
    uint32_t held;
    uint32_t has_ver;     /* not a legacy client */
    uint32_t flags;       /* XB_ROW_* */
    apr_time_t created;
    apr_time_t last_activity;
    char content_type[XB_CONTENT_TYPE_MAX]; /* creation request's `content`; "": default */
} xb_shm_session_t;

typedef struct xb_shm_table xb_shm_table_t;

/* Counters shared by every process (updated with atomics, no lock): what the status page
 * shows besides the rows. Add at the end only; XB_SHM_LAYOUT_VERSION guards the layout. */
typedef enum {
    XB_CNT_BOSH_REQUESTS = 0,
    XB_CNT_UNKNOWN_SID,
    XB_CNT_WINDOW_VIOLATIONS,
    XB_CNT_REPLAYS,
    XB_CNT_HELD_RESENDS,
    XB_CNT_STANZAS_TO_CLIENT,
    XB_CNT_BYTES_TO_CLIENT,
    XB_CNT_PAYLOADS_TO_SERVER,
    XB_CNT_BYTES_TO_SERVER,
    XB_CNT_PREBIND_OK,
    XB_CNT_PREBIND_AUTH_FAILED,
    XB_CNT_PREBIND_CONNECT_FAILED,
    XB_CNT_PREBIND_TIMEOUT,
    XB_CNT_PREBIND_OTHER_FAILED,
    XB_CNT_PREBIND_ATTACHED,
    XB_CNT_CREDENTIALS_ISSUED,
    XB_CNT_LOGOUTS,
    XB_CNT_REFUSED_PER_ADDRESS,  /* creations over XmppBridgeMaxSessionsPerAddress */
    XB_CNT_REFUSED_TABLE_FULL,   /* creations over XmppBridgeMaxSessions */
    XB_CNT_REFUSED_CROSS_SITE,   /* requests from an Origin not in XmppBridgeCORSOrigin */
    XB_CNT_HOST_GONE,            /* sessions ended because their domain was unconfigured */
    XB_CNT_OVERACTIVITY, /* sessions ended with policy-violation for overactivity or replays */
    XB_CNT_WARM_TAKEN,     /* prebinds and creations served by a warm stream */
    XB_CNT_WARM_MISSED,    /* ... that found none ready (XmppBridgeWarmStreams > 0) */
    XB_CNT_WARM_RECYCLED,  /* warm streams replaced: too old, or closed by the server */
    XB_CNT_WARM_FAILED,    /* warm stream set-ups that failed (connect, TLS, timeout) */
    XB_CNT_TLS_FULL,       /* XMPP streams' TLS handshakes with a verified certificate */
    XB_CNT_TLS_RESUMED,    /* ... that resumed a session instead (XmppBridgeTLSResumption) */
    XB_CNT_COUNT
} xb_counter_t;

/* Stable names, for ?auto and ?json. */
const char *xb_counter_name(xb_counter_t c);

void xb_shm_table_count(xb_shm_table_t *t, xb_counter_t c, uint64_t n);

typedef struct xb_shm_stats {
    uint32_t slots;
    uint32_t live;
    uint32_t daemon_pid;
    uint32_t daemon_restarts;
    apr_time_t daemon_started;
    uint64_t sessions_created;
    uint64_t sessions_ended;
    uint64_t counters[XB_CNT_COUNT];
} xb_shm_stats_t;

/* Calls `fn` with a copy of every live row (under the lock, so `fn` must not block). */
void xb_shm_table_each(xb_shm_table_t *t, void (*fn)(void *baton, const xb_shm_session_t *row),
                       void *baton);


/* Bytes a table of `slots` rows needs. */
apr_size_t xb_shm_table_size(unsigned slots);

/* Formats a fresh table in `base` (the creator, once). */
xb_shm_table_t *xb_shm_table_create(apr_pool_t *p, void *base, apr_size_t size, unsigned slots,
                                    apr_global_mutex_t *mutex);

/* Wraps an existing table (after a graceful restart the retained segment is reused): NULL when
 * its header does not carry our magic and layout version. */
xb_shm_table_t *xb_shm_table_attach(apr_pool_t *p, void *base, apr_global_mutex_t *mutex);

/* Later processes (a new daemon) may be handed a different mutex handle. */
void xb_shm_table_set_mutex(xb_shm_table_t *t, apr_global_mutex_t *mutex);

unsigned xb_shm_table_slots(const xb_shm_table_t *t);

/* Daemon side. insert: APR_ENOSPC when the table is full, APR_EEXIST for a duplicate SID. */
apr_status_t xb_shm_table_insert(xb_shm_table_t *t, const xb_shm_session_t *row);
apr_status_t xb_shm_table_update_window(xb_shm_table_t *t, const char *sid, uint64_t rid_hi,
                                        uint64_t rid_lo, uint32_t requests, uint32_t held,
                                        apr_time_t now);
apr_status_t xb_shm_table_remove(xb_shm_table_t *t, const char *sid);
apr_status_t xb_shm_table_set_flags(xb_shm_table_t *t, const char *sid, uint32_t flags);
/* A new daemon owns no session of the old one: drop every row (no ghosts). */
void xb_shm_table_clear(xb_shm_table_t *t);
void xb_shm_table_note_daemon(xb_shm_table_t *t, uint32_t pid, apr_time_t started,
                              int is_restart);

/* Child side: copies the row of `sid` into *row. APR_NOTFOUND when there is none. */
apr_status_t xb_shm_table_lookup(xb_shm_table_t *t, const char *sid, xb_shm_session_t *row);
void xb_shm_table_stats(xb_shm_table_t *t, xb_shm_stats_t *stats);

#endif
