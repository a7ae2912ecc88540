/* Regression test (found by test/fuzz/fuzz_bosh_body): a default namespace declared on a
 * prefixed <body/> is lost by unprefixed descendants of a prefixed child.
 *
 * xb_bosh_body_parse copies each child of <body/> raw and, so that the copy stands on its own,
 * inserts xmlns='...' into a child's start tag when the child is unprefixed and declares no
 * default namespace (src/xb_bosh_body.c, start_child: `if (!prefixed && !declares_default)`),
 * taking the namespace <body/> gave it (inherited_ns: jabber:client for httpbind, else the
 * body's own default, "keep that one"). A prefixed child gets no such declaration, although its
 * unprefixed descendants inherit the same default namespace from <body/>. In
 *
 *   <b:body xmlns:b='http://jabber.org/protocol/httpbind' xmlns='urn:x' rid='1'>
 *     <p:q xmlns:p='urn:p'><item/></p:q></b:body>
 *
 * <item/> is {urn:x}item, but the payload is "<p:q xmlns:p='urn:p'><item/></p:q>", where the
 * XMPP server reads {jabber:client}item (the stream's default).
 *
 * Only clients that prefix <body/> and declare a default other than httpbind are affected (no
 * known client does); the effect is a changed namespace in what is forwarded, not memory
 * safety. Suggested fix: in start_child, insert the default namespace declaration whenever the
 * child declares none, prefixed or not (drop `!prefixed &&`); on a prefixed element it only
 * binds the unprefixed names inside it, which is exactly what is missing, and with an httpbind
 * body it inserts xmlns='jabber:client', which is what the stream gives anyway.
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

/* The namespace the XMPP server gives the first grandchild of the payload's first child: the
 * payload parsed as xb_xmpp_conn would see it in the stream (default jabber:client). */
static const char *grandchild_ns(const char *request)
{
    xb_bosh_body_t *body = NULL;
    const char *err = NULL;
    xb_xml_element_t *e;

    assert_int_equal(xb_bosh_body_parse(pool, request, strlen(request), NULL, &body, &err),
                     XB_BODY_OK);
    e = xb_xml_element_parse(pool, body->payload, body->payload_len, NULL, &err);
    assert_non_null(e);
    assert_non_null(e->first_child);
    return e->first_child->ns;
}

static void test_prefixed_child_keeps_body_default(void **state)
{
    (void)state;
    assert_string_equal(grandchild_ns("<b:body xmlns:b='http://jabber.org/protocol/httpbind' "
                                      "xmlns='urn:x' rid='1'><p:q xmlns:p='urn:p'><item/></p:q>"
                                      "</b:body>"),
                        "urn:x");
}

/* What already works, for contrast: an unprefixed child gets the declaration. */
static void test_unprefixed_child_keeps_body_default(void **state)
{
    (void)state;
    assert_string_equal(grandchild_ns("<b:body xmlns:b='http://jabber.org/protocol/httpbind' "
                                      "xmlns='urn:x' rid='1'><q><item/></q></b:body>"),
                        "urn:x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prefixed_child_keeps_body_default, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unprefixed_child_keeps_body_default, setup,
                                        teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
