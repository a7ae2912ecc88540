/* Unit tests for XEP-0206 §7 bounces (src/xb_stanza_bounce.c). */
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

#include "xb_stanza_bounce.h"

#include "unit_helpers.h"

static const char *bounce(const char *stanza)
{
    apr_size_t len = 99;
    const char *b = xb_stanza_bounce(pool, stanza, strlen(stanza), &len);

    assert_int_equal(len, b ? strlen(b) : 0);
    return b;
}

static void test_message_recipient_unavailable(void **state)
{
    (void)state;
    assert_string_equal(bounce("<message xmlns='jabber:client' from='bob@x/r' to='alice@x/s' "
                               "type='chat' id='m&amp;1'><body>hi</body></message>"),
                        "<message xmlns='jabber:client' type='error' id='m&amp;1' to='bob@x/r'>"
                        "<error type='wait'><recipient-unavailable "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    /* Unprefixed means jabber:client (as the stream hands it up); no id: none. */
    assert_string_equal(bounce("<message from='bob@x'><body>x</body></message>"),
                        "<message xmlns='jabber:client' type='error' to='bob@x'>"
                        "<error type='wait'><recipient-unavailable "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
}

static void test_iq_service_unavailable(void **state)
{
    (void)state;
    assert_string_equal(bounce("<iq from='bob@x/r' to='alice@x/s' type='get' id='v1'>"
                               "<query xmlns='jabber:iq:version'/></iq>"),
                        "<iq xmlns='jabber:client' type='error' id='v1' to='bob@x/r'>"
                        "<error type='cancel'><service-unavailable "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
    assert_non_null(bounce("<iq from='bob@x/r' type='set' id='s'><q xmlns='y'/></iq>"));
}

static void test_dropped(void **state)
{
    (void)state;
    assert_null(bounce("<presence from='bob@x/r'/>"));
    assert_null(bounce("<presence from='bob@x/r' type='unavailable'/>"));
    assert_null(bounce("<message from='bob@x/r' type='error' id='e'><error type='cancel'/>"
                       "</message>"));
    assert_null(bounce("<iq from='bob@x/r' type='error' id='e'/>"));
    assert_null(bounce("<iq from='bob@x/r' type='result' id='r'/>"));
    assert_null(bounce("<iq from='bob@x/r' id='no-type'/>"));
    assert_null(bounce("<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"));
    assert_null(bounce("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"));
    assert_null(bounce("<message from='bob@x'><unclosed></message>"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_message_recipient_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iq_service_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped, setup, teardown),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
