/* Regression test (found while checking the fuzz_bosh_body "same meaning" invariant): a
 * namespace URI holding a tab, newline or carriage return changes when xb_bosh_body_parse
 * copies its declaration from <body/> onto a child.
 *
 * The parser inserts declarations it takes from <body/> (need_prefix for a prefix <body/>
 * declared, inherited_ns / the body's default for a child without one) as
 * xmlns:p='<URI>' with the URI escaped by xb_xml_escape (src/xb_bosh_body.c), which escapes
 * & < > ' " but not \t \n \r. The URI came from expat already decoded ("urn:&#10;x" is
 * "urn:\nx"), and in an attribute value a literal tab, newline or CR is normalised to a space
 * (XML 1.0 §3.3.3), so downstream the XMPP server reads the namespace "urn: x": the client's
 * stanza is in another namespace than the one it declared.
 *
 * Harmless for memory and for routing; it only matters to a client that puts such characters
 * in a namespace name (none known). Suggested fix: xb_xml_escape also writes \t \n \r as
 * &#9; &#10; &#13; (valid in attribute values and in text alike, so every caller can take it).
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

#include "xb_bosh_body.h"
#include "xb_xml_element.h"

#include "unit_helpers.h"

/* The payload as the XMPP server parses it (xb_xml_element_parse: the stream's context). */
static xb_xml_element_t *payload_tree(const char *request)
{
    xb_bosh_body_t *body = NULL;
    const char *err = NULL;
    xb_xml_element_t *e;

    assert_int_equal(xb_bosh_body_parse(pool, request, strlen(request), NULL, &body, &err),
                     XB_BODY_OK);
    e = xb_xml_element_parse(pool, body->payload, body->payload_len, NULL, &err);
    assert_non_null(e);
    return e;
}

static void test_prefix_from_body_with_newline(void **state)
{
    xb_xml_element_t *e;

    (void)state;
    e = payload_tree("<body rid='1' xmlns='http://jabber.org/protocol/httpbind' "
                     "xmlns:p='urn:&#10;x'><m xmlns='jabber:client'><p:a/></m></body>");
    assert_non_null(e->first_child);
    assert_string_equal(e->first_child->ns, "urn:\nx");
}

static void test_default_from_prefixed_body_with_tab(void **state)
{
    xb_xml_element_t *e;

    (void)state;
    e = payload_tree("<b:body rid='1' xmlns:b='http://jabber.org/protocol/httpbind' "
                     "xmlns='urn:&#9;y&#13;'><m/></b:body>");
    assert_string_equal(e->ns, "urn:\ty\r");
}

static void test_escape_keeps_whitespace(void **state)
{
    (void)state;
    assert_string_equal(xb_xml_escape(pool, "a\tb\nc\rd"), "a&#9;b&#10;c&#13;d");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prefix_from_body_with_newline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_from_prefixed_body_with_tab, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_escape_keeps_whitespace, setup, teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
