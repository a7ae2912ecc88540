/* Regression test (found by test/fuzz/fuzz_xmpp_framer and fuzz_bosh_body): UTF-16 input is
 * accepted although both parsers create expat for "UTF-8".
 *
 * expat's initial scan (xmltok.c initScan) looks at the first two bytes of a document and
 * switches to UTF-16 when one of them is NUL ("<\0" little-endian, "\0<" big-endian) or when
 * they are a UTF-16 byte order mark (FF FE, FE FF), whatever encoding the parser was created
 * with. What it decides can depend on how the first bytes are split: the fuzzer's first case,
 * "z\0stream:stream\0\0", is refused ("invalid token") when fed one byte at a time and
 * accepted (as UTF-16) in one read, so the framer's result depends on the split.
 *
 * Consequences:
 *  - xb_bosh_body_parse (src/xb_bosh_body.c) accepts a UTF-16 request body: attributes are
 *    decoded correctly, but the payload is the raw UTF-16 bytes (NULs inside, strlen(payload)
 *    != payload_len) with an ASCII " xmlns='jabber:client'" spliced into them, and that goes to
 *    the XMPP server as the client's stanza.
 *  - the framer (src/xb_xmpp_framer.c) hands up a prefixed element as raw UTF-16 bytes (which
 *    then travel inside a UTF-8 BOSH response to the browser), and fails an unprefixed one with
 *    "internal-server-error: cannot add the element's namespace".
 *
 * Expected (what these tests check): both refuse such input as not well-formed. Suggested fix:
 * before the first XML_Parse of a document (xb_bosh_body_parse; the framer at stream start and
 * after every reset), refuse input whose first two bytes hold a NUL or are FF FE / FE FF; or
 * refuse any NUL byte at all (never valid in UTF-8 XML) plus those two BOMs at the start.
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
#include <apr_strings.h>

#include "xb_bosh_body.h"
#include "xb_xmpp_framer.h"

#include "unit_helpers.h"

/* `s` (ASCII) as UTF-16, little- or big-endian, optionally after a byte order mark. */
static char *utf16(const char *s, int big_endian, int bom, apr_size_t *len)
{
    apr_size_t n = strlen(s), o = 0, i;
    char *out = apr_palloc(pool, 2 * n + 2);

    if (bom) {
        out[o++] = big_endian ? (char)0xFE : (char)0xFF;
        out[o++] = big_endian ? (char)0xFF : (char)0xFE;
    }
    for (i = 0; i < n; i++) {
        out[o++] = big_endian ? '\0' : s[i];
        out[o++] = big_endian ? s[i] : '\0';
    }
    *len = o;
    return out;
}

#define BODY                                                                                \
    "<body rid='1' to='example.org' xmlns='http://jabber.org/protocol/httpbind'>"           \
    "<message to='juliet@example.org'><body>hi</body></message></body>"

static void check_body_refused(int big_endian, int bom)
{
    apr_size_t len;
    const char *data = utf16(BODY, big_endian, bom, &len);
    xb_bosh_body_t *body = NULL;
    const char *err = NULL;
    xb_bosh_body_status_t st = xb_bosh_body_parse(pool, data, len, NULL, &body, &err);

    if (st == XB_BODY_OK) {
        print_message("UTF-16%s%s body accepted: payload_len %lu, strlen(payload) %lu\n",
                      big_endian ? "BE" : "LE", bom ? " with BOM" : "",
                      (unsigned long)body->payload_len, (unsigned long)strlen(body->payload));
    }
    assert_int_equal(st, XB_BODY_MALFORMED);
}

static void test_bosh_body_utf16le(void **state)
{
    (void)state;
    check_body_refused(0, 0);
}

static void test_bosh_body_utf16le_bom(void **state)
{
    (void)state;
    check_body_refused(0, 1);
}

static void test_bosh_body_utf16be_bom(void **state)
{
    (void)state;
    check_body_refused(1, 1);
}

typedef struct {
    int elements;
    int elements_with_nul;
    int errors;
    const char *condition;
} rec_t;

static void ev_element(void *b, const char *name, const char *ns, const char *data,
                       apr_size_t len)
{
    rec_t *r = b;

    (void)name;
    (void)ns;
    r->elements++;
    if (memchr(data, '\0', len)) {
        r->elements_with_nul++;
    }
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
    "version='1.0'><foo:bar xmlns:foo='urn:x'>hi</foo:bar><message to='a@b'/>"

/* The stream as a server would write it in one go. */
static void check_stream_refused(int bom, apr_size_t first_chunk)
{
    rec_t r;
    apr_size_t len;
    const char *data = utf16(STREAM, 0, bom, &len);
    xb_xmpp_framer_t *f;

    memset(&r, 0, sizeof(r));
    f = xb_xmpp_framer_create(pool, 0, 0, &events, &r);
    assert_non_null(f);
    xb_xmpp_framer_feed(f, data, first_chunk);
    xb_xmpp_framer_feed(f, data + first_chunk, len - first_chunk);
    /* Whatever the split: no raw UTF-16 element is handed up, the stream is refused. */
    assert_int_equal(r.elements_with_nul, 0);
    assert_int_equal(r.elements, 0);
    assert_int_equal(r.errors, 1);
    assert_string_equal(r.condition, "not-well-formed");
}

static void test_framer_utf16_one_byte_first(void **state)
{
    (void)state;
    check_stream_refused(0, 1); /* "<" alone, then the rest: expat still goes UTF-16 */
}

static void test_framer_utf16_one_read(void **state)
{
    (void)state;
    check_stream_refused(0, 64);
}

static void test_framer_utf16_bom(void **state)
{
    (void)state;
    check_stream_refused(1, 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bosh_body_utf16le, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bosh_body_utf16le_bom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bosh_body_utf16be_bom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_framer_utf16_one_byte_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_framer_utf16_one_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_framer_utf16_bom, setup, teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
