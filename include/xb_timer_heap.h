/* A binary min-heap of deadlines, intrusive: the owner embeds an xb_timer_t in each object
 * that has a deadline (the daemon: one per session) and moves it with xb_timer_heap_set.
 *
 * Why: the daemon wakes up for every handler request and every stanza; visiting every session
 * at each wake-up to find the due ones made that wake-up cost O(sessions). With the heap the
 * earliest deadline is O(1) to read and a change is O(log n), so a wake-up costs what the
 * sessions that have something to do cost. Insertion order breaks no ties: two timers due at
 * the same instant come out in either order.
 */
#ifndef XB_TIMER_HEAP_H
#define XB_TIMER_HEAP_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct xb_timer_heap xb_timer_heap_t;

/* Zero-initialise (apr_pcalloc or memset) before the first use; `data` is the owner's. */
typedef struct xb_timer {
    apr_time_t due;   /* valid while armed */
    apr_size_t slot;  /* 1 + index in the heap; 0: not armed */
    void *data;
} xb_timer_t;

/* The heap's array grows as needed (malloc, freed with `pool`; out of memory aborts, the
 * policy httpd applies to pools); `initial` is a size hint. */
xb_timer_heap_t *xb_timer_heap_create(apr_pool_t *pool, apr_size_t initial);

/* Arms `t` for `due`, or moves it there if it is armed already; due == 0 disarms it. */
void xb_timer_heap_set(xb_timer_heap_t *h, xb_timer_t *t, apr_time_t due);

/* Disarms `t`; nothing happens if it is not armed. */
void xb_timer_heap_remove(xb_timer_heap_t *h, xb_timer_t *t);

/* The earliest armed timer, NULL when none is. */
xb_timer_t *xb_timer_heap_first(const xb_timer_heap_t *h);

/* Disarms and returns the earliest timer if it is due at or before `now`, else NULL. */
xb_timer_t *xb_timer_heap_pop_due(xb_timer_heap_t *h, apr_time_t now);

apr_size_t xb_timer_heap_count(const xb_timer_heap_t *h);

#endif
