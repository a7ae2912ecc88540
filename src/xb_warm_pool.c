/* The bookkeeping of one domain's warm XMPP streams; see xb_warm_pool.h. */
#include <string.h>
#include "xb_warm_pool.h"

void xb_warm_pool_init(xb_warm_pool_t *p, unsigned target, apr_interval_time_t max_age)
{
    memset(p, 0, sizeof(*p));
    p->target = target;
    p->max_age = max_age;
}

unsigned xb_warm_pool_wanted(const xb_warm_pool_t *p, apr_time_t now)
{
    unsigned have = p->ready + p->starting;

    if (!p->target || (p->retry_at && now < p->retry_at)) {
        return 0;
    }
    if (p->failures) {
        /* The server did not answer the last time: probe with one stream, not `target`. */
        return p->starting ? 0 : 1;
    }
    return have < p->target ? p->target - have : 0;
}

void xb_warm_pool_started(xb_warm_pool_t *p)
{
    p->starting++;
}

unsigned xb_warm_pool_ready(xb_warm_pool_t *p)
{
    unsigned ended = p->failures;

    if (p->starting) {
        p->starting--;
    }
    p->ready++;
    p->failures = 0;
    p->retry_at = 0;
    p->warned_at = 0;
    p->unreported = 0;
    return ended;
}

int xb_warm_pool_failed(xb_warm_pool_t *p, apr_time_t now, unsigned *failed_since)
{
    apr_interval_time_t backoff = XB_WARM_FIRST_BACKOFF;
    unsigned i;

    if (p->starting) {
        p->starting--;
    }
    p->failures++;
    p->unreported++;
    for (i = 1; i < p->failures && backoff < XB_WARM_MAX_BACKOFF; i++) {
        backoff *= 2;
    }
    if (backoff > XB_WARM_MAX_BACKOFF) {
        backoff = XB_WARM_MAX_BACKOFF;
    }
    p->retry_at = now + backoff;
    if (p->warned_at && now - p->warned_at < XB_WARM_WARN_PERIOD) {
        return 0;
    }
    *failed_since = p->unreported;
    p->unreported = 0;
    p->warned_at = now;
    return 1;
}

void xb_warm_pool_left(xb_warm_pool_t *p)
{
    if (p->ready) {
        p->ready--;
    }
}

void xb_warm_pool_abandoned(xb_warm_pool_t *p)
{
    if (p->starting) {
        p->starting--;
    }
}

apr_time_t xb_warm_pool_expiry(const xb_warm_pool_t *p, apr_time_t born)
{
    return born + p->max_age;
}

apr_time_t xb_warm_pool_next_wakeup(const xb_warm_pool_t *p, apr_time_t now)
{
    if (!p->target || !p->retry_at || now >= p->retry_at) {
        return 0;
    }
    return p->retry_at;
}
