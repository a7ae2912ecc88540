/* The bookkeeping of one domain's warm XMPP streams (XmppBridgeWarmStreams), sans-I/O.
 *
 * A warm stream is one the daemon opened ahead of need: TCP connected, STARTTLS done, the
 * server's certificate verified, the post-TLS <stream:features/> received, idle before SASL.
 * A prebind (or a browser's session creation) takes one instead of connecting, which saves the
 * connect and the TLS handshake (about half of a prebind's time). The daemon owns the streams
 * themselves; this object only decides when to set up more, how long one may stay idle, and
 * how to back off and when to warn while the server cannot be reached, so those rules are unit
 * tested apart from the event loop.
 *
 * The rules:
 *  - `target` streams are kept ready or being set up; a taken or recycled one is replaced.
 *  - A stream is recycled `max_age` after its connect began: servers close streams that stay
 *    unauthenticated (Prosody's c2s_timeout, ejabberd's negotiation_timeout), and a stream the
 *    server is closing must never be handed out.
 *  - A set-up that fails (connect refused, TLS verification, timeout) backs off: 1 s, doubled
 *    per failure in a row up to XB_WARM_MAX_BACKOFF, one probe stream at a time, never a busy
 *    loop. The daemon warns at the first failure and then at most once per XB_WARM_WARN_PERIOD
 *    (with the count of failures since); meanwhile every prebind connects directly, so a TLS
 *    failure is still reported to it as before.
 */
#ifndef XB_WARM_POOL_H
#define XB_WARM_POOL_H

#include <apr_time.h>

#define XB_WARM_FIRST_BACKOFF apr_time_from_sec(1)
#define XB_WARM_MAX_BACKOFF apr_time_from_sec(30)
#define XB_WARM_WARN_PERIOD apr_time_from_sec(60)

typedef struct xb_warm_pool {
    unsigned target;              /* streams to keep (XmppBridgeWarmStreams) */
    apr_interval_time_t max_age;  /* from the connect to the recycling */
    unsigned ready;               /* set up and idle: can be taken */
    unsigned starting;            /* connecting, in TLS, waiting for the features */
    unsigned failures;            /* set-ups failed in a row */
    apr_time_t retry_at;          /* no set-up starts before this; 0: no back-off */
    apr_time_t warned_at;         /* the last warning; 0: none in this failure run */
    unsigned unreported;          /* failures since that warning */
} xb_warm_pool_t;

void xb_warm_pool_init(xb_warm_pool_t *p, unsigned target, apr_interval_time_t max_age);

/* How many set-ups to start now: none while backing off, one probe at a time while the last
 * set-up failed, else what brings ready + starting up to the target. */
unsigned xb_warm_pool_wanted(const xb_warm_pool_t *p, apr_time_t now);

/* The daemon started a set-up. */
void xb_warm_pool_started(xb_warm_pool_t *p);

/* A set-up completed (features received): the stream is ready. Returns the number of
 * failures in a row it ends (non-zero: the server is back, worth an info line). */
unsigned xb_warm_pool_ready(xb_warm_pool_t *p);

/* A set-up failed before the stream was ready. Returns 1 when a warning is due now (the
 * first failure of a run, then once per XB_WARM_WARN_PERIOD); *failed_since gets the number
 * of failures the warning covers. */
int xb_warm_pool_failed(xb_warm_pool_t *p, apr_time_t now, unsigned *failed_since);

/* A ready stream left the pool: taken by a session, or recycled. */
void xb_warm_pool_left(xb_warm_pool_t *p);

/* A stream still being set up was dropped on purpose (reconfiguration, shutdown): no
 * failure, no back-off. */
void xb_warm_pool_abandoned(xb_warm_pool_t *p);

/* When a stream whose connect began at `born` is to be recycled. */
apr_time_t xb_warm_pool_expiry(const xb_warm_pool_t *p, apr_time_t born);

/* When the pool wants the loop to wake up for it (end of a back-off), 0: no need. */
apr_time_t xb_warm_pool_next_wakeup(const xb_warm_pool_t *p, apr_time_t now);

#endif
