/* xb_xmpp_framer: a compacted framer (xb_xmpp_framer_compact) makes its parser again on the next
 * feed, which can run out of memory where an uncompacted framer never allocates a parser. That
 * must end the stream with a resource-constraint error event like any other allocation failure,
 * not leave a framer that refuses feeds without saying why.
 *
 * The failure is injected by defining XML_ParserCreate here: the core library linked into this
 * test calls this one, which fails on request and otherwise calls expat's (RTLD_NEXT).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <expat.h>
#include "xb_xmpp_framer.h"

#define HEADER                                                                              \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' version='1.0' "             \
    "from='localhost' id='x' xmlns:stream='http://etherx.jabber.org/streams'>"

static int refuse_parsers; /* XML_ParserCreate returns NULL while set */

XML_Parser XMLCALL XML_ParserCreate(const XML_Char *encoding)
{
    typedef XML_Parser (*create_fn)(const XML_Char *);
    create_fn real;

    if (refuse_parsers) {
        return NULL;
    }
    real = (create_fn)dlsym(RTLD_NEXT, "XML_ParserCreate");
    return real ? real(encoding) : NULL;
}

typedef struct {
    int opens;
    int elements;
    int errors;
    char cond[64];
} rec_t;

static void ev_open(void *b, const char *from, const char *id, const char *version)
{
    (void)from;
    (void)id;
    (void)version;
    ((rec_t *)b)->opens++;
}

static void ev_element(void *b, const char *name, const char *ns, const char *data,
                       apr_size_t len)
{
    (void)name;
    (void)ns;
    (void)data;
    (void)len;
    ((rec_t *)b)->elements++;
}

static void ev_error(void *b, const char *cond, const char *why)
{
    rec_t *r = b;

    (void)why;
    r->errors++;
    apr_cpystrn(r->cond, cond, sizeof(r->cond));
}

static const xb_xmpp_framer_events_t events = { ev_open, NULL, ev_element, NULL, ev_error };

static int setup(void **state)
{
    apr_pool_t *pool;

    apr_pool_create(&pool, NULL);
    *state = pool;
    refuse_parsers = 0;
    return 0;
}

static int teardown(void **state)
{
    refuse_parsers = 0;
    apr_pool_destroy(*state);
    return 0;
}

static apr_status_t feed_str(xb_xmpp_framer_t *f, const char *s)
{
    return xb_xmpp_framer_feed(f, s, strlen(s));
}

/* The next stanza after a compaction finds no memory for the parser. */
static void test_rebuild_out_of_memory(void **state)
{
    rec_t r = { 0 };
    xb_xmpp_framer_t *f = xb_xmpp_framer_create(*state, 0, 0, &events, &r);

    assert_non_null(f);
    assert_int_equal(feed_str(f, HEADER "<presence/>"), APR_SUCCESS);
    assert_int_equal(xb_xmpp_framer_compact(f), 1);
    refuse_parsers = 1;
    assert_int_not_equal(feed_str(f, "<message><body>hi</body></message>"), APR_SUCCESS);
    assert_int_equal(r.errors, 1);
    assert_string_equal(r.cond, "resource-constraint");
    assert_int_equal(r.elements, 1);
    /* broken for good, quietly; memory back or not */
    refuse_parsers = 0;
    assert_int_not_equal(feed_str(f, "<presence/>"), APR_SUCCESS);
    assert_int_equal(xb_xmpp_framer_compact(f), 0);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.elements, 1);
    xb_xmpp_framer_destroy(f);
}

/* A compacted framer reset (STARTTLS, SASL) makes the new stream's parser on its first bytes:
 * no memory then is an error event too, and with memory the new stream opens as usual. */
static void test_reset_then_out_of_memory(void **state)
{
    rec_t r = { 0 };
    xb_xmpp_framer_t *f = xb_xmpp_framer_create(*state, 0, 0, &events, &r);
    xb_xmpp_framer_t *g = xb_xmpp_framer_create(*state, 0, 0, &events, &r);

    assert_non_null(f);
    assert_non_null(g);
    assert_int_equal(feed_str(f, HEADER "<proceed/>"), APR_SUCCESS);
    assert_int_equal(feed_str(g, HEADER "<proceed/>"), APR_SUCCESS);
    assert_int_equal(xb_xmpp_framer_compact(f), 1);
    assert_int_equal(xb_xmpp_framer_compact(g), 1);
    refuse_parsers = 1;
    xb_xmpp_framer_reset(f); /* allocates nothing */
    xb_xmpp_framer_reset(g);
    assert_int_not_equal(feed_str(f, HEADER), APR_SUCCESS);
    assert_int_equal(r.errors, 1);
    assert_string_equal(r.cond, "resource-constraint");
    assert_int_equal(r.opens, 2);
    refuse_parsers = 0;
    assert_int_equal(feed_str(g, HEADER "<features/>"), APR_SUCCESS);
    assert_int_equal(r.opens, 3);
    assert_int_equal(r.elements, 3);
    assert_int_equal(r.errors, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rebuild_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_then_out_of_memory, setup, teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
