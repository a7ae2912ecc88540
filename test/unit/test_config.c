/* Unit tests: the configuration survives serialization (what a graceful restart hands the
 * daemon), and malformed bytes are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "xb_config.h"

static apr_pool_t *pool;

static xb_config_t *sample(void)
{
    xb_config_t *c = apr_pcalloc(pool, sizeof(*c));
    xb_domain_t *d;

    c->domains = apr_array_make(pool, 2, sizeof(xb_domain_t));
    d = apr_array_push(c->domains);
    d->name = "example.org";
    d->host = "xmpp.internal";
    d->port = 5222;
    d->tls = XB_TLS_STARTTLS;
    d->tls_name = "xmpp.example.org";
    d = apr_array_push(c->domains);
    d->name = "plain.test";
    d->host = "127.0.0.1";
    d->port = 15222;
    d->tls = XB_TLS_NONE;
    c->ca_file = "/etc/ssl/ca.pem";
    c->socket_path = "/run/apache2/xmpp-bridge.1.sock";
    c->max_wait = 45;
    c->max_hold = 2;
    c->inactivity = 90;
    c->polling = 3;
    c->max_sessions = 2048;
    c->response_cache = 7;
    c->max_body_size = 131072;
    c->max_stanza_size = 524288;
    c->max_queued_bytes = 4194304;
    c->connect_timeout = apr_time_from_sec(7);
    c->token_lifetime = 30;
    c->attach_grace = 300;
    c->max_per_user = 4;
    c->max_per_address = 3;
    c->front_proxy_timeout = 60;
    c->gzip = 1;
    c->warm_streams = 4;
    c->warm_max_age = 17;
    c->tls_resumption = 1;
    return c;
}

static void test_round_trip(void **state)
{
    xb_config_t *in = sample(), *out = NULL;
    apr_size_t len;
    char *bytes = xb_config_serialize(pool, in, &len);
    const xb_domain_t *d;

    (void)state;
    assert_int_equal(xb_config_deserialize(pool, bytes, len, &out), APR_SUCCESS);
    assert_int_equal(out->max_wait, 45);
    assert_int_equal(out->max_hold, 2);
    assert_int_equal(out->inactivity, 90);
    assert_int_equal(out->polling, 3);
    assert_int_equal(out->max_sessions, 2048);
    assert_int_equal(out->response_cache, 7);
    assert_int_equal(out->max_body_size, 131072);
    assert_int_equal(out->max_stanza_size, 524288);
    assert_int_equal(out->max_queued_bytes, 4194304);
    assert_true(out->connect_timeout == apr_time_from_sec(7));
    assert_int_equal(out->token_lifetime, 30);
    assert_int_equal(out->attach_grace, 300);
    assert_int_equal(out->max_per_user, 4);
    assert_int_equal(out->max_per_address, 3);
    assert_int_equal(out->front_proxy_timeout, 60);
    assert_int_equal(out->gzip, 1);
    assert_int_equal(out->warm_streams, 4);
    assert_int_equal(out->warm_max_age, 17);
    assert_int_equal(out->tls_resumption, 1);
    assert_string_equal(out->ca_file, "/etc/ssl/ca.pem");
    assert_string_equal(out->socket_path, "/run/apache2/xmpp-bridge.1.sock");
    assert_null(out->token_key_file);
    assert_int_equal(out->domains->nelts, 2);
    d = xb_config_find_domain(out, "EXAMPLE.org");
    assert_non_null(d);
    assert_string_equal(d->host, "xmpp.internal");
    assert_int_equal(d->port, 5222);
    assert_int_equal(d->tls, XB_TLS_STARTTLS);
    assert_string_equal(d->tls_name, "xmpp.example.org");
    d = xb_config_find_domain(out, "plain.test");
    assert_int_equal(d->tls, XB_TLS_NONE);
    assert_null(d->tls_name);
    assert_null(xb_config_find_domain(out, "elsewhere.test"));
}

static void test_malformed_refused(void **state)
{
    xb_config_t *in = sample(), *out = NULL;
    apr_size_t len, cut;
    char *bytes = xb_config_serialize(pool, in, &len);
    static const char unknown[] = "no_such_key\0" "1";
    static const char bad_number[] = "max_wait\0" "12x";
    static const char bad_domain[] = "domain\0" "a.test host 0 0 -";

    (void)state;
    /* every strict prefix that ends inside a key or value is refused */
    for (cut = 1; cut < len; cut++) {
        if (bytes[cut - 1] == '\0') {
            continue; /* a prefix that ends between two pairs may be complete */
        }
        assert_int_equal(xb_config_deserialize(pool, bytes, cut, &out), APR_EINVAL);
    }
    assert_int_equal(xb_config_deserialize(pool, unknown, sizeof(unknown), &out), APR_EINVAL);
    assert_int_equal(xb_config_deserialize(pool, bad_number, sizeof(bad_number), &out),
                     APR_EINVAL);
    assert_int_equal(xb_config_deserialize(pool, bad_domain, sizeof(bad_domain), &out),
                     APR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_malformed_refused),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    rc = cmocka_run_group_tests_name("config", tests, NULL, NULL);
    apr_terminate();
    return rc;
}
