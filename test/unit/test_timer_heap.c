/* Unit tests: the daemon's deadline heap (xb_timer_heap), against a brute-force model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>

#include "xb_timer_heap.h"

static apr_pool_t *pool;

/* The earliest armed deadline of `n` timers, by looking at every one; 0 when none is armed. */
static apr_time_t model_min(const xb_timer_t *t, int n)
{
    apr_time_t m = 0;
    int i;

    for (i = 0; i < n; i++) {
        if (t[i].slot && (m == 0 || t[i].due < m)) {
            m = t[i].due;
        }
    }
    return m;
}

static int model_count(const xb_timer_t *t, int n)
{
    int i, c = 0;

    for (i = 0; i < n; i++) {
        c += t[i].slot != 0;
    }
    return c;
}

static unsigned long long rng_state = 88172645463325252ULL;

static unsigned long long rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_empty(void **state)
{
    xb_timer_heap_t *h = xb_timer_heap_create(pool, 0);
    xb_timer_t t;

    (void)state;
    memset(&t, 0, sizeof(t));
    assert_null(xb_timer_heap_first(h));
    assert_null(xb_timer_heap_pop_due(h, APR_INT64_MAX));
    xb_timer_heap_remove(h, &t); /* not armed: nothing happens */
    assert_int_equal(xb_timer_heap_count(h), 0);
    xb_timer_heap_set(h, &t, 0);
    assert_int_equal(xb_timer_heap_count(h), 0);
    assert_int_equal(t.slot, 0);
}

static void test_order_and_pop_due(void **state)
{
    static const apr_time_t dues[] = { 50, 10, 40, 30, 20, 60, 10 };
    xb_timer_t t[7];
    xb_timer_heap_t *h = xb_timer_heap_create(pool, 2); /* grows */
    xb_timer_t *x;
    apr_time_t last = 0;
    int i, popped = 0;

    (void)state;
    memset(t, 0, sizeof(t));
    for (i = 0; i < 7; i++) {
        t[i].data = &t[i];
        xb_timer_heap_set(h, &t[i], dues[i]);
    }
    assert_int_equal(xb_timer_heap_count(h), 7);
    assert_int_equal(xb_timer_heap_first(h)->due, 10);
    /* Only what is due by 35 comes out, earliest first. */
    while ((x = xb_timer_heap_pop_due(h, 35)) != NULL) {
        assert_true(x->due >= last && x->due <= 35);
        assert_int_equal(x->slot, 0);
        assert_ptr_equal(x->data, x);
        last = x->due;
        popped++;
    }
    assert_int_equal(popped, 4);
    assert_int_equal(xb_timer_heap_count(h), 3);
    assert_int_equal(xb_timer_heap_first(h)->due, 40);
}

static void test_move_and_remove(void **state)
{
    xb_timer_t a, b, c;
    xb_timer_heap_t *h = xb_timer_heap_create(pool, 4);

    (void)state;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));
    xb_timer_heap_set(h, &a, 100);
    xb_timer_heap_set(h, &b, 200);
    xb_timer_heap_set(h, &c, 300);
    xb_timer_heap_set(h, &c, 50); /* earlier: to the top */
    assert_ptr_equal(xb_timer_heap_first(h), &c);
    xb_timer_heap_set(h, &c, 400); /* later: to the bottom */
    assert_ptr_equal(xb_timer_heap_first(h), &a);
    xb_timer_heap_set(h, &a, 0); /* disarmed */
    assert_int_equal(a.slot, 0);
    assert_ptr_equal(xb_timer_heap_first(h), &b);
    xb_timer_heap_remove(h, &b);
    xb_timer_heap_remove(h, &b); /* twice: harmless */
    assert_ptr_equal(xb_timer_heap_first(h), &c);
    assert_int_equal(xb_timer_heap_count(h), 1);
}

/* Random arm / move / disarm / pop on 300 timers; after every step the heap's first deadline
 * and size equal the model's, and every armed timer's slot points back at it. */
static void test_random_against_model(void **state)
{
    enum { N = 300, STEPS = 20000 };
    static xb_timer_t t[N];
    xb_timer_heap_t *h = xb_timer_heap_create(pool, 1);
    int step, i;

    (void)state;
    memset(t, 0, sizeof(t));
    for (step = 0; step < STEPS; step++) {
        unsigned long long r = rng();
        xb_timer_t *x = &t[r % N];
        switch ((r >> 20) % 5) {
        case 0:
        case 1:
            /* small range: many ties */
            xb_timer_heap_set(h, x, 1 + (apr_time_t)((r >> 32) % 1000));
            break;
        case 2:
            xb_timer_heap_set(h, x, 0);
            break;
        case 3:
            xb_timer_heap_remove(h, x);
            break;
        default: {
            apr_time_t now = (apr_time_t)((r >> 32) % 1000);
            apr_time_t want = model_min(t, N);
            xb_timer_t *p = xb_timer_heap_pop_due(h, now);
            if (want && want <= now) {
                assert_non_null(p);
                assert_int_equal(p->due, want);
                assert_int_equal(p->slot, 0);
            }
            else {
                assert_null(p);
            }
            break;
        }
        }
        assert_int_equal(xb_timer_heap_count(h), model_count(t, N));
        if (model_count(t, N)) {
            assert_int_equal(xb_timer_heap_first(h)->due, model_min(t, N));
        }
        else {
            assert_null(xb_timer_heap_first(h));
        }
        if (step % 97 == 0) {
            for (i = 0; i < N; i++) {
                if (t[i].slot) {
                    assert_true(t[i].slot <= xb_timer_heap_count(h));
                }
            }
        }
    }
    /* Drain: strictly non-decreasing. */
    {
        apr_time_t last = 0;
        xb_timer_t *p;
        while ((p = xb_timer_heap_pop_due(h, APR_INT64_MAX)) != NULL) {
            assert_true(p->due >= last);
            last = p->due;
        }
        assert_int_equal(model_count(t, N), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_order_and_pop_due),
        cmocka_unit_test(test_move_and_remove),
        cmocka_unit_test(test_random_against_model),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}
