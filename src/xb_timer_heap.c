/* A binary min-heap of deadlines; see xb_timer_heap.h.
 *
 * The array holds pointers to the owners' timers; each timer knows its own slot, so moving or
 * removing an arbitrary timer needs no search. Slots are 1-based in the timer (0 = not armed)
 * and 0-based in the array.
 */
#include <stdlib.h>
#include "xb_timer_heap.h"

struct xb_timer_heap {
    xb_timer_t **v;
    apr_size_t n, cap;
};

static apr_status_t heap_cleanup(void *data)
{
    xb_timer_heap_t *h = data;

    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
    return APR_SUCCESS;
}

xb_timer_heap_t *xb_timer_heap_create(apr_pool_t *pool, apr_size_t initial)
{
    xb_timer_heap_t *h = apr_pcalloc(pool, sizeof(*h));

    h->cap = initial ? initial : 16;
    h->v = malloc(h->cap * sizeof(*h->v));
    if (!h->v) {
        abort();
    }
    apr_pool_cleanup_register(pool, h, heap_cleanup, apr_pool_cleanup_null);
    return h;
}

static void place(xb_timer_heap_t *h, apr_size_t i, xb_timer_t *t)
{
    h->v[i] = t;
    t->slot = i + 1;
}

static void sift_up(xb_timer_heap_t *h, apr_size_t i)
{
    xb_timer_t *t = h->v[i];

    while (i > 0) {
        apr_size_t parent = (i - 1) / 2;
        if (h->v[parent]->due <= t->due) {
            break;
        }
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(xb_timer_heap_t *h, apr_size_t i)
{
    xb_timer_t *t = h->v[i];

    for (;;) {
        apr_size_t child = 2 * i + 1;
        if (child >= h->n) {
            break;
        }
        if (child + 1 < h->n && h->v[child + 1]->due < h->v[child]->due) {
            child++;
        }
        if (t->due <= h->v[child]->due) {
            break;
        }
        place(h, i, h->v[child]);
        i = child;
    }
    place(h, i, t);
}

void xb_timer_heap_remove(xb_timer_heap_t *h, xb_timer_t *t)
{
    apr_size_t i;
    xb_timer_t *last;

    if (!t->slot) {
        return;
    }
    i = t->slot - 1;
    t->slot = 0;
    last = h->v[--h->n];
    if (i == h->n) {
        return; /* it was the last one */
    }
    /* The last timer fills the hole and moves whichever way its deadline says. */
    place(h, i, last);
    if (i > 0 && h->v[(i - 1) / 2]->due > last->due) {
        sift_up(h, i);
    }
    else {
        sift_down(h, i);
    }
}

void xb_timer_heap_set(xb_timer_heap_t *h, xb_timer_t *t, apr_time_t due)
{
    apr_time_t old;

    if (due == 0) {
        xb_timer_heap_remove(h, t);
        return;
    }
    if (t->slot) {
        old = t->due;
        t->due = due;
        if (due < old) {
            sift_up(h, t->slot - 1);
        }
        else if (due > old) {
            sift_down(h, t->slot - 1);
        }
        return;
    }
    if (h->n == h->cap) {
        apr_size_t cap = h->cap ? h->cap * 2 : 16;
        xb_timer_t **v = realloc(h->v, cap * sizeof(*v));
        if (!v) {
            abort(); /* the same policy httpd applies to pools */
        }
        h->v = v;
        h->cap = cap;
    }
    t->due = due;
    place(h, h->n++, t);
    sift_up(h, h->n - 1);
}

xb_timer_t *xb_timer_heap_first(const xb_timer_heap_t *h)
{
    return h->n ? h->v[0] : NULL;
}

xb_timer_t *xb_timer_heap_pop_due(xb_timer_heap_t *h, apr_time_t now)
{
    xb_timer_t *t = xb_timer_heap_first(h);

    if (!t || t->due > now) {
        return NULL;
    }
    xb_timer_heap_remove(h, t);
    return t;
}

apr_size_t xb_timer_heap_count(const xb_timer_heap_t *h)
{
    return h->n;
}
