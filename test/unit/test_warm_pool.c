/* Unit tests: the rules of a domain's warm XMPP streams (xb_warm_pool): refill to the target,
 * back-off and warning pace while set-ups fail, recovery, expiry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>

#include "xb_warm_pool.h"

#define SEC(n) apr_time_from_sec(n)
#define T0 SEC(1000000)

static void test_off(void **state)
{
    xb_warm_pool_t p;

    (void)state;
    xb_warm_pool_init(&p, 0, SEC(25));
    assert_int_equal(xb_warm_pool_wanted(&p, T0), 0);
    assert_int_equal(xb_warm_pool_next_wakeup(&p, T0), 0);
}

static void test_refill_to_target(void **state)
{
    xb_warm_pool_t p;
    unsigned i;

    (void)state;
    xb_warm_pool_init(&p, 3, SEC(25));
    assert_int_equal(xb_warm_pool_wanted(&p, T0), 3);
    for (i = 0; i < 3; i++) {
        xb_warm_pool_started(&p);
    }
    assert_int_equal(xb_warm_pool_wanted(&p, T0), 0); /* being set up count */
    assert_int_equal(xb_warm_pool_ready(&p), 0);
    assert_int_equal(xb_warm_pool_ready(&p), 0);
    assert_int_equal(xb_warm_pool_wanted(&p, T0), 0);
    assert_int_equal(p.ready, 2);
    assert_int_equal(p.starting, 1);
    /* one taken, one recycled: both replaced */
    xb_warm_pool_left(&p);
    xb_warm_pool_left(&p);
    assert_int_equal(xb_warm_pool_wanted(&p, T0), 2);
    /* an abandoned set-up (reconfiguration) is replaced without any back-off */
    xb_warm_pool_abandoned(&p);
    assert_int_equal(xb_warm_pool_wanted(&p, T0), 3);
    assert_int_equal(p.failures, 0);
    /* never below zero */
    xb_warm_pool_left(&p);
    xb_warm_pool_abandoned(&p);
    assert_int_equal(p.ready, 0);
    assert_int_equal(p.starting, 0);
}

static void test_backoff_and_probe(void **state)
{
    xb_warm_pool_t p;
    unsigned since = 0, i;
    apr_time_t now = T0;
    apr_interval_time_t expect[] = { SEC(1), SEC(2), SEC(4), SEC(8), SEC(16), SEC(30), SEC(30) };

    (void)state;
    xb_warm_pool_init(&p, 4, SEC(25));
    for (i = 0; i < 4; i++) {
        xb_warm_pool_started(&p);
    }
    /* the first failure warns and backs off 1 s */
    assert_true(xb_warm_pool_failed(&p, now, &since));
    assert_int_equal(since, 1);
    assert_int_equal(p.retry_at, now + SEC(1));
    /* the other three fail in the same instant: no more warnings */
    for (i = 0; i < 3; i++) {
        assert_false(xb_warm_pool_failed(&p, now, &since));
    }
    assert_int_equal(p.starting, 0);
    assert_int_equal(xb_warm_pool_wanted(&p, now), 0);
    assert_true(xb_warm_pool_next_wakeup(&p, now) > now);
    /* growing back-off, one probe at a time, never a busy loop */
    p.failures = 0;
    for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        now = p.retry_at ? p.retry_at : now;
        if (i > 0) {
            assert_int_equal(xb_warm_pool_wanted(&p, now - 1), 0);
            assert_int_equal(xb_warm_pool_wanted(&p, now), 1);
        }
        xb_warm_pool_started(&p);
        if (i > 0) {
            assert_int_equal(xb_warm_pool_wanted(&p, now), 0); /* the probe is out */
        }
        xb_warm_pool_failed(&p, now, &since);
        assert_int_equal(p.retry_at - now, expect[i]);
    }
}

static void test_warning_pace(void **state)
{
    xb_warm_pool_t p;
    unsigned since = 0, warnings = 0, i;
    apr_time_t now = T0;

    (void)state;
    xb_warm_pool_init(&p, 2, SEC(25));
    /* ten minutes of a server that is down: one warning per period (plus the first) */
    for (i = 0; now < T0 + SEC(600); i++) {
        now = p.retry_at > now ? p.retry_at : now;
        xb_warm_pool_started(&p);
        if (xb_warm_pool_failed(&p, now, &since)) {
            warnings++;
            if (warnings > 1) {
                assert_true(since > 1); /* the warning says how many it covers */
            }
        }
    }
    assert_true(warnings >= 9 && warnings <= 11);
    assert_true(i > warnings);
}

static void test_recovery(void **state)
{
    xb_warm_pool_t p;
    unsigned since = 0;

    (void)state;
    xb_warm_pool_init(&p, 2, SEC(25));
    xb_warm_pool_started(&p);
    xb_warm_pool_failed(&p, T0, &since);
    xb_warm_pool_started(&p);
    xb_warm_pool_failed(&p, T0 + SEC(1), &since);
    xb_warm_pool_started(&p);
    /* the probe gets through: the failures end, the pool fills up again at once */
    assert_int_equal(xb_warm_pool_ready(&p), 2);
    assert_int_equal(p.retry_at, 0);
    assert_int_equal(xb_warm_pool_wanted(&p, T0 + SEC(3)), 1);
    /* a later failure warns again at once: a new run */
    xb_warm_pool_started(&p);
    assert_true(xb_warm_pool_failed(&p, T0 + SEC(4), &since));
    assert_int_equal(since, 1);
}

static void test_expiry(void **state)
{
    xb_warm_pool_t p;

    (void)state;
    xb_warm_pool_init(&p, 1, SEC(7));
    assert_int_equal(xb_warm_pool_expiry(&p, T0), T0 + SEC(7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_refill_to_target),
        cmocka_unit_test(test_backoff_and_probe),
        cmocka_unit_test(test_warning_pace),
        cmocka_unit_test(test_recovery),
        cmocka_unit_test(test_expiry),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
