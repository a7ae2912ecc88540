/* Regression test (found by test/fuzz/fuzz_xmpp_framer, split invariant, after 959af8e): what
 * the framer delivers before a byte no UTF-8 XML holds depends on how the bytes are split.
 *
 * Since 959af8e, xb_xmpp_framer_feed (src/xb_xmpp_framer.c) refuses a whole feed that holds a
 * NUL, 0xFE or 0xFF (xb_xml_has_foreign_bytes) before parsing any of it. Complete elements that
 * precede the bad byte in the same read are therefore dropped, while the same elements are
 * delivered when the bad byte comes in a later read; the error condition can differ too (the
 * fuzzer's input: a stream header in the wrong namespace followed, in the same read, by 0xFF
 * gives "not-well-formed" in one read and "invalid-namespace" byte by byte). The framer's header
 * promises that nothing depends on how the bytes are split, and a stanza the server sent whole
 * just before garbage is lost for the browser.
 *
 * Expected (what this test checks): the elements before the bad byte are handed up whatever
 * the split, then the stream fails with not-well-formed. Suggested fix: in
 * xb_xmpp_framer_feed, find the offset of the first foreign byte, parse the bytes before it as
 * usual, then fail (if the parse has not failed already).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "xb_xmpp_framer.h"

#include "unit_helpers.h"

typedef struct {
    int elements;
    int errors;
    const char *condition;
} rec_t;

static void ev_element(void *b, const char *name, const char *ns, const char *data,
                       apr_size_t len)
{
    rec_t *r = b;

    (void)name;
    (void)ns;
    (void)data;
    (void)len;
    r->elements++;
}

static void ev_error(void *b, const char *condition, const char *why)
{
    rec_t *r = b;

    (void)why;
    r->errors++;
    r->condition = condition;
}

static const xb_xmpp_framer_events_t events = { NULL, NULL, ev_element, NULL, ev_error };

#define STREAM                                                                              \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "  \
    "version='1.0'><message to='juliet@example.org'><body>hi</body></message>\xff"

/* The stream in two feeds, the first `first` bytes long. */
static rec_t run(apr_size_t first)
{
    rec_t r;
    xb_xmpp_framer_t *f;
    apr_size_t len = sizeof(STREAM) - 1;

    memset(&r, 0, sizeof(r));
    f = xb_xmpp_framer_create(pool, 0, 0, &events, &r);
    assert_non_null(f);
    xb_xmpp_framer_feed(f, STREAM, first);
    if (first < len) {
        xb_xmpp_framer_feed(f, STREAM + first, len - first);
    }
    return r;
}

static void test_bad_byte_in_a_later_read(void **state)
{
    rec_t r = run(sizeof(STREAM) - 2); /* passes today */

    (void)state;
    assert_int_equal(r.elements, 1);
    assert_int_equal(r.errors, 1);
    assert_string_equal(r.condition, "not-well-formed");
}

static void test_bad_byte_in_the_same_read(void **state)
{
    rec_t r = run(sizeof(STREAM) - 1);

    (void)state;
    assert_int_equal(r.elements, 1); /* today 0: the message is dropped */
    assert_int_equal(r.errors, 1);
    assert_string_equal(r.condition, "not-well-formed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_byte_in_a_later_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_byte_in_the_same_read, setup, teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
