/* Unit tests: the per-endpoint TLS session cache (xb_tls_sessions): endpoints apart, the
 * latest session kept, lifetime honoured, forgetting. The handshakes themselves (what is
 * kept, what is offered to whom) are in test_xmpp_conn.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "xb_tls_sessions.h"

#define T0 ((time_t)2000000000)

/* A session OpenSSL calls resumable (it has an id), started at `start`, valid `timeout` s. */
static SSL_SESSION *session(const char *id, time_t start, long timeout)
{
    SSL_SESSION *s = SSL_SESSION_new();

    assert_non_null(s);
    assert_int_equal(SSL_SESSION_set1_id(s, (const unsigned char *)id, (unsigned)strlen(id)), 1);
    SSL_SESSION_set_time(s, (long)start);
    SSL_SESSION_set_timeout(s, timeout);
    assert_true(SSL_SESSION_is_resumable(s));
    return s;
}

static int same_id(SSL_SESSION *s, const char *id)
{
    unsigned int len;
    const unsigned char *got = SSL_SESSION_get_id(s, &len);

    return len == strlen(id) && !memcmp(got, id, len);
}

static void test_endpoints_apart(void **state)
{
    xb_tls_sessions_t *c = xb_tls_sessions_create();
    xb_tls_endpoint_t *a, *b;
    SSL_SESSION *s = session("one", T0, 100);

    (void)state;
    a = xb_tls_sessions_endpoint(c, "example.test 127.0.0.1 5222 example.test");
    b = xb_tls_sessions_endpoint(c, "example.test 127.0.0.1 5223 example.test");
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(xb_tls_sessions_endpoint(c, "example.test 127.0.0.1 5222 example.test"), a);
    assert_null(xb_tls_endpoint_session(a, T0));
    xb_tls_endpoint_keep(a, s);
    SSL_SESSION_free(s); /* the cache has its own copy */
    assert_non_null(xb_tls_endpoint_session(a, T0 + 1));
    assert_true(same_id(xb_tls_endpoint_session(a, T0 + 1), "one"));
    assert_null(xb_tls_endpoint_session(b, T0 + 1));
    xb_tls_sessions_destroy(c);
}

static void test_latest_kept(void **state)
{
    xb_tls_sessions_t *c = xb_tls_sessions_create();
    xb_tls_endpoint_t *a = xb_tls_sessions_endpoint(c, "a");
    SSL_SESSION *s1 = session("first", T0, 100), *s2 = session("second", T0 + 5, 100);

    (void)state;
    xb_tls_endpoint_keep(a, s1);
    xb_tls_endpoint_keep(a, s2);
    assert_true(same_id(xb_tls_endpoint_session(a, T0 + 10), "second"));
    SSL_SESSION_free(s1);
    SSL_SESSION_free(s2);
    xb_tls_sessions_destroy(c);
}

static void test_lifetime(void **state)
{
    xb_tls_sessions_t *c = xb_tls_sessions_create();
    xb_tls_endpoint_t *a = xb_tls_sessions_endpoint(c, "a");
    SSL_SESSION *s = session("one", T0, 100);

    (void)state;
    assert_int_equal(xb_tls_session_expiry(s), T0 + 100);
    xb_tls_endpoint_keep(a, s);
    assert_non_null(xb_tls_endpoint_session(a, T0 + 99));
    assert_null(xb_tls_endpoint_session(a, T0 + 100));
    /* Dropped, not just hidden: a clock that went back does not bring it back. */
    assert_null(xb_tls_endpoint_session(a, T0));
    SSL_SESSION_free(s);
    xb_tls_sessions_destroy(c);
}

static void test_not_resumable_ignored(void **state)
{
    xb_tls_sessions_t *c = xb_tls_sessions_create();
    xb_tls_endpoint_t *a = xb_tls_sessions_endpoint(c, "a");
    SSL_SESSION *bare = SSL_SESSION_new(); /* no id, no ticket */

    (void)state;
    xb_tls_endpoint_keep(a, bare);
    assert_null(xb_tls_endpoint_session(a, T0));
    xb_tls_endpoint_keep(a, NULL);
    assert_null(xb_tls_endpoint_session(a, T0));
    SSL_SESSION_free(bare);
    xb_tls_sessions_destroy(c);
}

static void test_forget(void **state)
{
    xb_tls_sessions_t *c = xb_tls_sessions_create();
    xb_tls_endpoint_t *a = xb_tls_sessions_endpoint(c, "a");
    SSL_SESSION *s = session("one", T0, 100);

    (void)state;
    xb_tls_endpoint_keep(a, s);
    xb_tls_endpoint_forget(a);
    assert_null(xb_tls_endpoint_session(a, T0));
    xb_tls_endpoint_forget(a); /* nothing to forget: fine */
    SSL_SESSION_free(s);
    xb_tls_sessions_destroy(c);
    xb_tls_sessions_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints_apart),
        cmocka_unit_test(test_latest_kept),
        cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_not_resumable_ignored),
        cmocka_unit_test(test_forget),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
