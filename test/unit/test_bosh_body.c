/* Unit tests for the BOSH <body/> parser and response builder (src/xb_bosh_body.c).
 *
 * Build and run:
 *   gcc -std=gnu99 -Wall -Wextra -g -Iinclude $(pkg-config --cflags apr-1) \
 *       test/unit/test_bosh_body.c src/xb_bosh_body.c src/xb_log.c \
 *       $(pkg-config --libs apr-1 expat cmocka) -o /tmp/test_bosh_body && /tmp/test_bosh_body
 *
 * Every request is copied into a malloc'd buffer of exactly its length (no terminating NUL) and
 * freed right after parsing, so valgrind sees any read past the input or any payload that still
 * points into it.
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
#include <expat.h>

#include "xb_bosh_body.h"

#define HB "http://jabber.org/protocol/httpbind"
#define HB_ATTR "xmlns='" HB "'"
/* Every response starts with this. */
#define RESP_HEAD "<body xmlns='" HB "' xmlns:stream='http://etherx.jabber.org/streams'"

#include "unit_helpers.h"

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static xb_bosh_body_status_t parse_n_depth(const char *xml, size_t len, apr_size_t max_depth,
                                           xb_bosh_body_t **body, const char **errmsg)
{
    xb_bosh_parse_limits_t limits;
    xb_bosh_body_status_t st, st_pool;
    xb_bosh_body_t *body_pool = NULL;
    const char *errmsg_pool = NULL;
    char *copy = malloc(len ? len : 1);

    assert_non_null(copy);
    memcpy(copy, xml, len);
    memset(&limits, 0, sizeof(limits));
    limits.max_depth = max_depth;
    st = xb_bosh_body_parse(pool, copy, len, &limits, body, errmsg);
    /* Apache's handler lets expat allocate from a pool (expat_in_pool): the same answer. */
    limits.expat_in_pool = 1;
    st_pool = xb_bosh_body_parse(pool, copy, len, &limits, &body_pool, &errmsg_pool);
    assert_int_equal(st_pool, st);
    if (st == XB_BODY_OK) {
        assert_non_null(body_pool);
        assert_int_equal(body_pool->payload_len, (*body)->payload_len);
        assert_memory_equal(body_pool->payload, (*body)->payload, (*body)->payload_len);
        assert_int_equal(body_pool->rid, (*body)->rid);
        assert_int_equal(body_pool->child_count, (*body)->child_count);
    }
    else {
        assert_string_equal(errmsg_pool, *errmsg);
    }
    /* The result must not point into the input. */
    memset(copy, 'X', len);
    free(copy);
    if (st == XB_BODY_OK) {
        assert_non_null(*body);
        assert_null(*errmsg);
    }
    else {
        assert_null(*body);
        assert_non_null(*errmsg);
        assert_true(strlen(*errmsg) > 0);
    }
    return st;
}

static xb_bosh_body_status_t parse(const char *xml, xb_bosh_body_t **body)
{
    const char *errmsg;
    return parse_n_depth(xml, strlen(xml), 16, body, &errmsg);
}

static xb_bosh_body_status_t parse_status(const char *xml)
{
    xb_bosh_body_t *body;
    return parse(xml, &body);
}

/* Parses a request that must succeed and returns it. */
static xb_bosh_body_t *parse_ok(const char *xml)
{
    xb_bosh_body_t *body = NULL;
    const char *errmsg = NULL;
    xb_bosh_body_status_t st = parse_n_depth(xml, strlen(xml), 16, &body, &errmsg);

    if (st != XB_BODY_OK) {
        fail_msg("status %d (%s) for %s", st, errmsg, xml);
    }
    assert_int_equal(body->payload_len, strlen(body->payload));
    return body;
}

/* The payload of `<body rid='1' xmlns=httpbind>` + inner + `</body>`. */
static void assert_payload(const char *inner, const char *expected, unsigned children)
{
    const char *xml = apr_pstrcat(pool, "<body rid='1' " HB_ATTR ">", inner, "</body>", NULL);
    xb_bosh_body_t *b = parse_ok(xml);

    assert_string_equal(b->payload, expected);
    assert_int_equal(b->payload_len, strlen(expected));
    assert_int_equal(b->child_count, children);
}

static xb_bosh_body_status_t rid_status(const char *rid, uint64_t *value)
{
    xb_bosh_body_t *b = NULL;
    xb_bosh_body_status_t st =
        parse(apr_psprintf(pool, "<body rid='%s' " HB_ATTR "/>", rid), &b);

    if (st == XB_BODY_OK) {
        assert_true(b->has_rid);
        *value = b->rid;
    }
    return st;
}

static xb_bosh_body_status_t attr_status(const char *attr)
{
    return parse_status(apr_psprintf(pool, "<body rid='5' %s " HB_ATTR "/>", attr));
}

/* True when `s` (length len) is well-formed XML for plain expat. */
static int well_formed(const char *s, size_t len)
{
    XML_Parser xp = XML_ParserCreateNS(NULL, '\x01');
    int ok = XML_Parse(xp, s, (int)len, 1) == XML_STATUS_OK;

    XML_ParserFree(xp);
    return ok;
}

static const char *strophe_creation =
    "<body content='text/xml; charset=utf-8' hold='1' rid='1573741820' to='localhost' "
    "ver='1.6' wait='60' xml:lang='en' xmpp:version='1.0' "
    "xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh'/>";

static const char *sasl_auth =
    "<body rid='1573741821' xmlns='http://jabber.org/protocol/httpbind' "
    "sid='a0e9b1c6-2d84-4c0e-9d7b-7e8c5f0a1b2c'>"
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
    "AGFsaWNlAHNlY3JldA==</auth></body>";

static const char *strophe_restart =
    "<body rid='1573741822' sid='a0e9b1c6' to='localhost' xml:lang='en' "
    "xmpp:restart='true' xmlns='http://jabber.org/protocol/httpbind' "
    "xmlns:xmpp='urn:xmpp:xbosh'/>";

static const char *several_children =
    "<?xml version='1.0' encoding='utf-8'?>\n"
    "<body rid='1573741823' sid='s1' xmlns='http://jabber.org/protocol/httpbind'>\n"
    "  <iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>\n"
    "\t<presence/>\r\n"
    "  <message xmlns='jabber:client' to='bob@localhost' type='chat'>"
    "<body>a &amp; b &#x263A; <![CDATA[<x>]]></body></message>"
    "  <x:foo xmlns:x='urn:example:x' a=\"1\"><x:bar/></x:foo>"
    "</body>";

/* ------------------------------------------------------------------------------------------ */
/* Valid requests */

static void test_strophe_creation(void **state)
{
    xb_bosh_body_t *b = parse_ok(strophe_creation);

    (void)state;
    assert_true(b->has_rid);
    assert_true(b->rid == UINT64_C(1573741820));
    assert_string_equal(b->content, "text/xml; charset=utf-8");
    assert_true(b->has_hold);
    assert_int_equal(b->hold, 1);
    assert_true(b->has_wait);
    assert_int_equal(b->wait, 60);
    assert_string_equal(b->to, "localhost");
    assert_string_equal(b->ver, "1.6");
    assert_string_equal(b->xml_lang, "en");
    assert_string_equal(b->xmpp_version, "1.0");
    assert_null(b->sid);
    assert_null(b->from);
    assert_null(b->route);
    assert_null(b->type);
    assert_null(b->key);
    assert_null(b->newkey);
    assert_null(b->stream);
    assert_false(b->restart);
    assert_false(b->has_ack);
    assert_false(b->has_pause);
    assert_string_equal(b->payload, "");
    assert_int_equal(b->payload_len, 0);
    assert_int_equal(b->child_count, 0);
}

static void test_all_string_attributes(void **state)
{
    xb_bosh_body_t *b = parse_ok(
        "<body rid='7' sid='S' to='T' from='F' route='xmpp:h:5222' ver='1.11' content='C' "
        "key='K' newkey='NK' stream='ST' type='terminate' ack='6' pause='30' "
        "xml:lang='de' " HB_ATTR "/>");

    (void)state;
    assert_string_equal(b->sid, "S");
    assert_string_equal(b->to, "T");
    assert_string_equal(b->from, "F");
    assert_string_equal(b->route, "xmpp:h:5222");
    assert_string_equal(b->ver, "1.11");
    assert_string_equal(b->content, "C");
    assert_string_equal(b->key, "K");
    assert_string_equal(b->newkey, "NK");
    assert_string_equal(b->stream, "ST");
    assert_string_equal(b->type, "terminate");
    assert_string_equal(b->xml_lang, "de");
    assert_true(b->has_ack);
    assert_true(b->ack == 6);
    assert_true(b->has_pause);
    assert_int_equal(b->pause, 30);
    assert_null(b->xmpp_version);
}

static void test_attribute_values_unescaped(void **state)
{
    xb_bosh_body_t *b = parse_ok("<body rid='1' to='a&amp;b&apos;&#x41;' " HB_ATTR "/>");

    (void)state;
    assert_string_equal(b->to, "a&b'A");
}

static void test_type_other_than_terminate_ignored(void **state)
{
    (void)state;
    assert_null(parse_ok("<body rid='1' type='error' " HB_ATTR "/>")->type);
}

static void test_unknown_attributes_ignored(void **state)
{
    xb_bosh_body_t *b = parse_ok(
        "<body rid='9' foo='bar' secure='true' x:rid='abc' x:wait='-1' xmlns:x='urn:x' "
        "charsets='ISO_8859-1' " HB_ATTR "/>");

    (void)state;
    assert_true(b->rid == 9);
    assert_false(b->has_wait);
}

static void test_sasl_auth(void **state)
{
    xb_bosh_body_t *b = parse_ok(sasl_auth);

    (void)state;
    assert_string_equal(b->sid, "a0e9b1c6-2d84-4c0e-9d7b-7e8c5f0a1b2c");
    assert_string_equal(b->payload, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                                    "mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>");
    assert_int_equal(b->child_count, 1);
}

static void test_restart(void **state)
{
    xb_bosh_body_t *b = parse_ok(strophe_restart);

    (void)state;
    assert_true(b->restart);
    assert_string_equal(b->to, "localhost");
    assert_string_equal(b->sid, "a0e9b1c6");
    assert_int_equal(b->child_count, 0);
    assert_int_equal(b->payload_len, 0);
}

static void test_restart_any_prefix_and_values(void **state)
{
    xb_bosh_body_t *b;

    (void)state;
    b = parse_ok("<body rid='1' xmlns:q='urn:xmpp:xbosh' q:restart='1' q:version='1.0' "
                 HB_ATTR "/>");
    assert_true(b->restart);
    assert_string_equal(b->xmpp_version, "1.0");
    assert_false(parse_ok("<body rid='1' xmlns:q='urn:xmpp:xbosh' q:restart='false' "
                          HB_ATTR "/>")->restart);
    assert_false(parse_ok("<body rid='1' xmlns:q='urn:xmpp:xbosh' q:restart='0' "
                          HB_ATTR "/>")->restart);
    /* Without the namespace it is some other attribute. */
    assert_false(parse_ok("<body rid='1' restart='true' " HB_ATTR "/>")->restart);
    assert_false(parse_ok("<body rid='1' xmlns:q='urn:other' q:restart='true' "
                          HB_ATTR "/>")->restart);
}

static void test_message_without_xmlns(void **state)
{
    (void)state;
    assert_payload("<message to='bob@localhost' type='chat'><body>hi</body></message>",
                   "<message xmlns='jabber:client' to='bob@localhost' type='chat'>"
                   "<body>hi</body></message>",
                   1);
    /* Name followed by a newline or tab instead of a space. */
    assert_payload("<message\n to='b'/>", "<message xmlns='jabber:client'\n to='b'/>", 1);
    assert_payload("<message\tto='b'></message>",
                   "<message xmlns='jabber:client'\tto='b'></message>", 1);
}

static void test_message_with_xmlns(void **state)
{
    (void)state;
    assert_payload("<message xmlns='jabber:client' to='bob@localhost'><body>hi</body></message>",
                   "<message xmlns='jabber:client' to='bob@localhost'><body>hi</body></message>",
                   1);
    /* Its default declaration need not come first, and may use double quotes. */
    assert_payload("<message to='b' xmlns=\"jabber:client\"/>",
                   "<message to='b' xmlns=\"jabber:client\"/>", 1);
    /* xmlns='' puts it in no namespace on purpose: leave it so. */
    assert_payload("<message xmlns=''/>", "<message xmlns=''/>", 1);
}

static void test_only_default_declaration_counts(void **state)
{
    (void)state;
    /* A prefixed declaration does not change the element's own namespace. */
    assert_payload("<message xmlns:x='urn:x' x:a='1'/>",
                   "<message xmlns='jabber:client' xmlns:x='urn:x' x:a='1'/>", 1);
    /* A default declaration on a grandchild is not the child's own. */
    assert_payload("<iq><q xmlns='urn:q'/></iq>",
                   "<iq xmlns='jabber:client'><q xmlns='urn:q'/></iq>", 1);
}

static void test_several_children(void **state)
{
    xb_bosh_body_t *b = parse_ok(several_children);

    (void)state;
    assert_string_equal(b->payload,
                        "<iq xmlns='jabber:client' type='get' id='r1'>"
                        "<query xmlns='jabber:iq:roster'/></iq>"
                        "<presence xmlns='jabber:client'/>"
                        "<message xmlns='jabber:client' to='bob@localhost' type='chat'>"
                        "<body>a &amp; b &#x263A; <![CDATA[<x>]]></body></message>"
                        "<x:foo xmlns:x='urn:example:x' a=\"1\"><x:bar/></x:foo>");
    assert_int_equal(b->child_count, 4);
}

static void test_empty_element_children(void **state)
{
    (void)state;
    assert_payload("<presence/>", "<presence xmlns='jabber:client'/>", 1);
    assert_payload("<presence />", "<presence xmlns='jabber:client' />", 1);
    assert_payload("<r xmlns='urn:xmpp:sm:3'/>", "<r xmlns='urn:xmpp:sm:3'/>", 1);
    assert_payload("<a/><b/><c/>",
                   "<a xmlns='jabber:client'/><b xmlns='jabber:client'/>"
                   "<c xmlns='jabber:client'/>",
                   3);
    assert_payload("<a/> <b x='1'/>\n<c></c>",
                   "<a xmlns='jabber:client'/><b xmlns='jabber:client' x='1'/>"
                   "<c xmlns='jabber:client'></c>",
                   3);
    /* An empty child right after a non-empty one, and nested empties. */
    assert_payload("<a><b/></a><c/>",
                   "<a xmlns='jabber:client'><b/></a><c xmlns='jabber:client'/>", 2);
}

static void test_nested_prefixes(void **state)
{
    (void)state;
    assert_payload("<iq type='set' id='p1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                   "<p:item xmlns:p='urn:p' p:id='1'><p:x/></p:item></pubsub></iq>",
                   "<iq xmlns='jabber:client' type='set' id='p1'>"
                   "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                   "<p:item xmlns:p='urn:p' p:id='1'><p:x/></p:item></pubsub></iq>",
                   1);
    /* A prefixed top-level child names its namespace itself: untouched. */
    assert_payload("<s:foo xmlns:s='urn:s'><s:bar/></s:foo>",
                   "<s:foo xmlns:s='urn:s'><s:bar/></s:foo>", 1);
    assert_payload("<s:foo xmlns:s='urn:s'/>", "<s:foo xmlns:s='urn:s'/>", 1);
}

/* A prefix declared on <body/> and used inside a child is declared again on the child's copy,
 * else the XMPP server would see an unbound prefix. */
static void test_body_prefix_used_in_child(void **state)
{
    xb_bosh_body_t *b;

    (void)state;
    b = parse_ok("<body rid='1' " HB_ATTR " xmlns:x='urn:x' xmlns:xmpp='urn:xmpp:xbosh'>"
                 "<m><x:y x:a='1'/></m>"
                 "<n x:b='2' xml:lang='en'/>"
                 "<x:z/>"
                 "<x:w xmlns:x='urn:x2'/>"
                 "<p xmlns:x='urn:x3'><x:q/></p>"
                 "<r><x:s xmlns:x='urn:i'/><x:t/></r>"
                 "<u/>"
                 "</body>");
    assert_string_equal(b->payload,
                        "<m xmlns='jabber:client' xmlns:x='urn:x'><x:y x:a='1'/></m>"
                        "<n xmlns='jabber:client' xmlns:x='urn:x' x:b='2' xml:lang='en'/>"
                        "<x:z xmlns:x='urn:x'/>"
                        "<x:w xmlns:x='urn:x2'/>"
                        "<p xmlns='jabber:client' xmlns:x='urn:x3'><x:q/></p>"
                        "<r xmlns='jabber:client' xmlns:x='urn:x'><x:s xmlns:x='urn:i'/><x:t/></r>"
                        "<u xmlns='jabber:client'/>");
    assert_int_equal(b->child_count, 7);
    assert_true(well_formed(apr_pstrcat(pool, "<w xmlns='" HB "'>", b->payload, "</w>", NULL),
                            strlen(b->payload) + strlen("<w xmlns='" HB "'></w>")));
    /* The copied URI is escaped again; a child declaring the default keeps it. */
    b = parse_ok("<body rid='1' " HB_ATTR " xmlns:x=\"urn:a'b&amp;\"><m xmlns='jabber:client'>"
                 "<x:y/></m></body>");
    assert_string_equal(b->payload, "<m xmlns:x='urn:a&apos;b&amp;' xmlns='jabber:client'>"
                                    "<x:y/></m>");
}

static void test_raw_bytes_kept(void **state)
{
    (void)state;
    /* References, CDATA, quoting, attribute spacing and non-ASCII are not re-serialised. */
    assert_payload("<message xmlns='jabber:client'  to = \"a&amp;b\" ><body>&lt;&#65;&gt; "
                   "\xc3\xa9\xe2\x98\xba<![CDATA[ & ]]></body></message>",
                   "<message xmlns='jabber:client'  to = \"a&amp;b\" ><body>&lt;&#65;&gt; "
                   "\xc3\xa9\xe2\x98\xba<![CDATA[ & ]]></body></message>",
                   1);
}

static void test_whitespace_between_children(void **state)
{
    (void)state;
    assert_payload(" \t\r\n<a xmlns='x'/>\n\n<b xmlns='y'/> ", "<a xmlns='x'/><b xmlns='y'/>", 2);
    assert_payload("   ", "", 0);
    /* A character reference to whitespace is still whitespace. */
    assert_payload("&#32;&#x9;", "", 0);
}

static void test_many_children(void **state)
{
    const char *inner = "";
    const char *expected = "";
    int i;

    (void)state;
    for (i = 0; i < 200; i++) {
        inner = apr_pstrcat(pool, inner, "<presence/>", NULL);
        expected = apr_pstrcat(pool, expected, "<presence xmlns='jabber:client'/>", NULL);
    }
    assert_payload(inner, expected, 200);
}

static void test_prefixed_body(void **state)
{
    xb_bosh_body_t *b;

    (void)state;
    b = parse_ok("<h:body xmlns:h='" HB "' rid='3'><message/></h:body>");
    assert_string_equal(b->payload, "<message xmlns='jabber:client'/>");
    b = parse_ok("<h:body xmlns:h='" HB "' xmlns='jabber:client' rid='3'><message/></h:body>");
    assert_string_equal(b->payload, "<message xmlns='jabber:client'/>");
    /* A child inheriting some other default declared on the body keeps that namespace. */
    b = parse_ok("<h:body xmlns:h='" HB "' xmlns='urn:o&apos;x' rid='3'><m/></h:body>");
    assert_string_equal(b->payload, "<m xmlns='urn:o&apos;x'/>");
}

static void test_xml_declaration(void **state)
{
    (void)state;
    parse_ok("<?xml version='1.0'?><body rid='1' " HB_ATTR "/>");
    parse_ok("<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n<body rid='1' "
             HB_ATTR "/>");
    parse_ok("\xef\xbb\xbf<body rid='1' " HB_ATTR "/>");
    assert_int_equal(parse_status("<?xml version='1.0' encoding='ISO-8859-1'?>"
                                  "<body rid='1' " HB_ATTR "/>"),
                     XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<?xml version='1.0' encoding='UTF-16'?>"
                                  "<body rid='1' " HB_ATTR "/>"),
                     XB_BODY_MALFORMED);
}

/* ------------------------------------------------------------------------------------------ */
/* Attributes */

static void test_rid_edges(void **state)
{
    uint64_t v = 0;

    (void)state;
    assert_int_equal(rid_status("1", &v), XB_BODY_OK);
    assert_true(v == 1);
    assert_int_equal(rid_status("9007199254740991", &v), XB_BODY_OK);
    assert_true(v == XB_BOSH_RID_MAX);
    assert_int_equal(rid_status("007", &v), XB_BODY_OK);
    assert_true(v == 7);

    assert_int_equal(rid_status("0", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("000", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("9007199254740992", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("18446744073709551615", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("18446744073709551616", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("99999999999999999999999999999999", &v),
                     XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("+1", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("-1", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status(" 1", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("1 ", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("1.0", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("0x10", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("1e3", &v), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(rid_status("\xd9\xa1", &v), XB_BODY_BAD_ATTRIBUTE); /* Arabic-Indic 1 */
}

static void test_rid_missing(void **state)
{
    xb_bosh_body_t *b;
    const char *errmsg;
    const char *xml = "<body sid='x' " HB_ATTR "><message/></body>";

    (void)state;
    assert_int_equal(parse_n_depth(xml, strlen(xml), 16, &b, &errmsg), XB_BODY_BAD_ATTRIBUTE);
    assert_non_null(strstr(errmsg, "rid"));
    /* A rid in another namespace is not the rid. */
    assert_int_equal(parse_status("<body x:rid='1' xmlns:x='urn:x' " HB_ATTR "/>"),
                     XB_BODY_BAD_ATTRIBUTE);
}

static void test_numeric_attributes(void **state)
{
    xb_bosh_body_t *b;

    (void)state;
    b = parse_ok("<body rid='5' wait='4294967295' hold='0' pause='0' ack='0' " HB_ATTR "/>");
    assert_int_equal(b->wait, 4294967295u);
    assert_true(b->has_hold);
    assert_int_equal(b->hold, 0);
    assert_true(b->has_pause);
    assert_true(b->has_ack);
    assert_true(b->ack == 0);
    b = parse_ok("<body rid='5' ack='9007199254740991' " HB_ATTR "/>");
    assert_true(b->ack == XB_BOSH_RID_MAX);

    assert_int_equal(attr_status("wait='4294967296'"), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(attr_status("wait='-1'"), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(attr_status("wait='+60'"), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(attr_status("wait=''"), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(attr_status("wait='60s'"), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(attr_status("hold='one'"), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(attr_status("hold='1.5'"), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(attr_status("pause=' 10'"), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(attr_status("pause='99999999999999999999'"), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(attr_status("ack='9007199254740992'"), XB_BODY_BAD_ATTRIBUTE);
    assert_int_equal(attr_status("ack='-3'"), XB_BODY_BAD_ATTRIBUTE);
}

static void test_errmsg_does_not_echo_input(void **state)
{
    xb_bosh_body_t *b;
    const char *errmsg;
    const char *value = "1234567890abcdefghijklmnopqrstuvwxyzSECRETSECRETSECRET";
    const char *xml = apr_psprintf(pool, "<body rid='%s' " HB_ATTR "/>", value);

    (void)state;
    assert_int_equal(parse_n_depth(xml, strlen(xml), 16, &b, &errmsg), XB_BODY_BAD_ATTRIBUTE);
    assert_null(strstr(errmsg, "SECRET"));
    xml = "<body rid='1' " HB_ATTR ">SECRETSECRETSECRET</body>";
    assert_int_equal(parse_n_depth(xml, strlen(xml), 16, &b, &errmsg), XB_BODY_MALFORMED);
    assert_null(strstr(errmsg, "SECRET"));
}

/* ------------------------------------------------------------------------------------------ */
/* Refused requests */

static void test_doctype(void **state)
{
    (void)state;
    assert_int_equal(parse_status("<!DOCTYPE body><body rid='1' " HB_ATTR "/>"),
                     XB_BODY_FORBIDDEN);
    assert_int_equal(parse_status("<!DOCTYPE body SYSTEM 'http://example.com/x.dtd'>"
                                  "<body rid='1' " HB_ATTR "/>"),
                     XB_BODY_FORBIDDEN);
    /* XXE */
    assert_int_equal(parse_status("<!DOCTYPE body [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
                                  "<body rid='1' " HB_ATTR "><m>&x;</m></body>"),
                     XB_BODY_FORBIDDEN);
    /* A DOCTYPE cut short is still refused for what it is, not for being truncated. */
    assert_int_equal(parse_status("<!DOCTYPE body [<!ENTITY a 'aaaa"), XB_BODY_FORBIDDEN);
}

static void test_billion_laughs(void **state)
{
    const char *xml =
        "<?xml version='1.0'?>\n"
        "<!DOCTYPE body [\n"
        " <!ENTITY lol 'lol'>\n"
        " <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n"
        " <!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>\n"
        " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\n"
        " <!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>\n"
        " <!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>\n"
        " <!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>\n"
        " <!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>\n"
        " <!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>\n"
        " <!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>\n"
        "]>\n"
        "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'>"
        "<message><body>&lol9;</body></message></body>";
    xb_bosh_body_t *b;
    const char *errmsg;

    (void)state;
    assert_int_equal(parse_n_depth(xml, strlen(xml), 16, &b, &errmsg), XB_BODY_FORBIDDEN);
    assert_non_null(strstr(errmsg, "DOCTYPE"));
}

static void test_comment(void **state)
{
    (void)state;
    assert_int_equal(parse_status("<!-- hi --><body rid='1' " HB_ATTR "/>"), XB_BODY_FORBIDDEN);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><!-- hi --></body>"),
                     XB_BODY_FORBIDDEN);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><m><!----></m></body>"),
                     XB_BODY_FORBIDDEN);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "/><!-- after -->"),
                     XB_BODY_FORBIDDEN);
}

static void test_processing_instruction(void **state)
{
    (void)state;
    assert_int_equal(parse_status("<?foo bar?><body rid='1' " HB_ATTR "/>"), XB_BODY_FORBIDDEN);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><?foo?></body>"),
                     XB_BODY_FORBIDDEN);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><m><?xml-stylesheet href='x'?>"
                                  "</m></body>"),
                     XB_BODY_FORBIDDEN);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "/><?foo?>"), XB_BODY_FORBIDDEN);
}

static void test_text_at_body_level(void **state)
{
    (void)state;
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR ">hello</body>"), XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><a/> x <b/></body>"),
                     XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR ">&amp;</body>"), XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><![CDATA[x]]></body>"),
                     XB_BODY_MALFORMED);
    /* U+00A0 is not XML whitespace. */
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR ">\xc2\xa0</body>"),
                     XB_BODY_MALFORMED);
}

static void test_wrong_root(void **state)
{
    (void)state;
    assert_int_equal(parse_status("<bodyx rid='1' " HB_ATTR "/>"), XB_BODY_NOT_BODY);
    assert_int_equal(parse_status("<message rid='1' " HB_ATTR "/>"), XB_BODY_NOT_BODY);
    assert_int_equal(parse_status("<body rid='1'/>"), XB_BODY_NOT_BODY);
    assert_int_equal(parse_status("<body rid='1' xmlns='jabber:client'/>"), XB_BODY_NOT_BODY);
    assert_int_equal(parse_status("<body rid='1' xmlns='http://jabber.org/protocol/httpbind/'/>"),
                     XB_BODY_NOT_BODY);
    assert_int_equal(parse_status("<x:body rid='1' xmlns:x='urn:x' " HB_ATTR "/>"),
                     XB_BODY_NOT_BODY);
    /* NOT_BODY wins over a missing rid: the wrong thing came in altogether. */
    assert_int_equal(parse_status("<html><body/></html>"), XB_BODY_NOT_BODY);
}

static void test_too_deep(void **state)
{
    const char *xml;
    xb_bosh_body_t *b;
    const char *errmsg;

    (void)state;
    xml = "<body rid='1' " HB_ATTR "><a><b/></a></body>";
    assert_int_equal(parse_n_depth(xml, strlen(xml), 2, &b, &errmsg), XB_BODY_OK);
    xml = "<body rid='1' " HB_ATTR "><a><b><c/></b></a></body>";
    assert_int_equal(parse_n_depth(xml, strlen(xml), 2, &b, &errmsg), XB_BODY_TOO_DEEP);
    assert_int_equal(parse_n_depth(xml, strlen(xml), 3, &b, &errmsg), XB_BODY_OK);
    xml = "<body rid='1' " HB_ATTR "/>";
    assert_int_equal(parse_n_depth(xml, strlen(xml), 0, &b, &errmsg), XB_BODY_OK);
    xml = "<body rid='1' " HB_ATTR "><a/></body>";
    assert_int_equal(parse_n_depth(xml, strlen(xml), 0, &b, &errmsg), XB_BODY_TOO_DEEP);
    assert_int_equal(parse_n_depth(xml, strlen(xml), 1, &b, &errmsg), XB_BODY_OK);
}

static void test_too_deep_huge(void **state)
{
    const char *open = "", *close = "", *xml;
    xb_bosh_body_t *b;
    const char *errmsg;
    int i;

    (void)state;
    for (i = 0; i < 5000; i++) {
        open = apr_pstrcat(pool, open, "<a>", NULL);
        close = apr_pstrcat(pool, close, "</a>", NULL);
    }
    xml = apr_pstrcat(pool, "<body rid='1' " HB_ATTR ">", open, close, "</body>", NULL);
    assert_int_equal(parse_n_depth(xml, strlen(xml), 16, &b, &errmsg), XB_BODY_TOO_DEEP);
}

/* A body larger than every buffer expat starts with (many attributes, a 5,000-byte attribute
 * value): with expat_in_pool (parse_n_depth runs both ways) its buffers grow through the
 * pool's realloc, which must copy what they held. */
static void test_large_body_both_allocators(void **state)
{
    apr_size_t text_len = 60000, i;
    char *text = apr_palloc(pool, text_len + 1);
    const char *xml, *expected;
    xb_bosh_body_t *b;

    (void)state;
    for (i = 0; i < text_len; i++) {
        text[i] = (char)('a' + i % 26);
    }
    text[text_len] = '\0';
    xml = apr_pstrcat(pool, "<body rid='7' sid='s' " HB_ATTR "><message xmlns='jabber:client' "
                      "to='a@b' a1='1' a2='2' a3='3' a4='4' a5='5' a6='6' a7='7' a8='8' a9='9' "
                      "a10='10' a11='11' a12='12' a13='13' a14='14' a15='15' a16='16' a17='17' "
                      "long='", text + text_len - 5000, "'><body>", text,
                      "</body></message></body>", NULL);
    expected = apr_pstrcat(pool, "<message xmlns='jabber:client' to='a@b' a1='1' a2='2' a3='3' "
                           "a4='4' a5='5' a6='6' a7='7' a8='8' a9='9' a10='10' a11='11' "
                           "a12='12' a13='13' a14='14' a15='15' a16='16' a17='17' long='",
                           text + text_len - 5000, "'><body>", text, "</body></message>", NULL);
    assert_int_equal(parse(xml, &b), XB_BODY_OK);
    assert_int_equal(b->payload_len, strlen(expected));
    assert_memory_equal(b->payload, expected, b->payload_len);
}

static void test_default_limits(void **state)
{
    xb_bosh_body_t *b;
    const char *errmsg;
    const char *xml = "<body rid='1' " HB_ATTR "><a><b/></a></body>";

    (void)state;
    assert_int_equal(xb_bosh_body_parse(pool, xml, strlen(xml), NULL, &b, &errmsg), XB_BODY_OK);
}

static void test_truncated_and_empty(void **state)
{
    xb_bosh_body_t *b;
    const char *errmsg;

    (void)state;
    assert_int_equal(parse_n_depth("", 0, 16, &b, &errmsg), XB_BODY_MALFORMED);
    assert_int_equal(xb_bosh_body_parse(pool, NULL, 0, NULL, &b, &errmsg), XB_BODY_MALFORMED);
    assert_int_equal(parse_status("   "), XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR ">"), XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><message>"), XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><message/></bo"), XB_BODY_MALFORMED);
}

static void test_not_well_formed(void **state)
{
    (void)state;
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "/><body rid='2' " HB_ATTR "/>"),
                     XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><a></b></body>"), XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' rid='2' " HB_ATTR "/>"), XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><a>&undefined;</a></body>"),
                     XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><u:a/></body>"), XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "/>junk"), XB_BODY_MALFORMED);
    assert_int_equal(parse_status("junk<body rid='1' " HB_ATTR "/>"), XB_BODY_MALFORMED);
}

static void test_invalid_utf8(void **state)
{
    static const char nul_inside[] = "<body rid='1' " HB_ATTR "><m>a\0b</m></body>";
    xb_bosh_body_t *b;
    const char *errmsg;

    (void)state;
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><m>\xff\xfe</m></body>"),
                     XB_BODY_MALFORMED);
    /* Overlong '/', a lone continuation byte, a surrogate, a cut sequence. */
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><m>\xc0\xaf</m></body>"),
                     XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><m>\x80</m></body>"),
                     XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><m>\xed\xa0\x80</m></body>"),
                     XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><m>\xe2\x98</m></body>"),
                     XB_BODY_MALFORMED);
    assert_int_equal(parse_status("<body rid='1' to='\xff' " HB_ATTR "/>"), XB_BODY_MALFORMED);
    assert_int_equal(parse_n_depth(nul_inside, sizeof(nul_inside) - 1, 16, &b, &errmsg),
                     XB_BODY_MALFORMED);
    /* A control character is not an XML character, even as a reference. */
    assert_int_equal(parse_status("<body rid='1' " HB_ATTR "><m>&#1;</m></body>"),
                     XB_BODY_MALFORMED);
}

/* Every strict prefix of a valid request is refused, and nothing reads past its end. */
static void test_every_truncation(void **state)
{
    const char *samples[] = { strophe_creation, sasl_auth, strophe_restart, several_children,
                              "<body rid='1' " HB_ATTR "><a/><b x='1'/><c></c></body>",
                              "<h:body xmlns:h='" HB "' rid='3'><m>\xe2\x98\xba</m></h:body>" };
    size_t i, cut;

    (void)state;
    for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        size_t len = strlen(samples[i]);
        xb_bosh_body_t *b;
        const char *errmsg;

        assert_int_equal(parse_n_depth(samples[i], len, 16, &b, &errmsg), XB_BODY_OK);
        for (cut = 0; cut < len; cut++) {
            xb_bosh_body_status_t st = parse_n_depth(samples[i], cut, 16, &b, &errmsg);
            if (st == XB_BODY_OK) {
                fail_msg("sample %zu cut at %zu parsed OK", i, cut);
            }
        }
        apr_pool_clear(pool);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Responses */

static const char *build(const xb_bosh_response_attrs_t *a, const char *payload)
{
    apr_size_t len = 0;
    char *out = xb_bosh_response_build(pool, a, payload, payload ? strlen(payload) : 0, &len);

    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    assert_true(well_formed(out, len));
    return out;
}

static void test_response_empty(void **state)
{
    xb_bosh_response_attrs_t a;

    (void)state;
    memset(&a, 0, sizeof(a));
    assert_string_equal(build(&a, NULL), RESP_HEAD "/>");
    assert_string_equal(build(&a, ""), RESP_HEAD "/>");
}

static void test_response_payload(void **state)
{
    xb_bosh_response_attrs_t a;
    apr_size_t len;
    char *out;

    (void)state;
    memset(&a, 0, sizeof(a));
    assert_string_equal(build(&a, "<message xmlns='jabber:client'><body>x</body></message>"
                                  "<stream:features><mechanisms/></stream:features>"),
                        RESP_HEAD "><message xmlns='jabber:client'><body>x</body></message>"
                                  "<stream:features><mechanisms/></stream:features></body>");
    /* payload_len is what counts, not a NUL. */
    out = xb_bosh_response_build(pool, &a, "<a/><b/>", 4, &len);
    assert_string_equal(out, RESP_HEAD "><a/></body>");
    assert_int_equal(len, strlen(out));
}

static void test_response_creation(void **state)
{
    xb_bosh_response_attrs_t a;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.creation = 1;
    a.sid = "ab'c";
    a.wait = 60;
    a.requests = 2;
    a.hold = 1;
    a.inactivity = 60;
    a.polling = 2;
    a.ver = "1.6";
    a.from = "example.com&<>";
    assert_string_equal(build(&a, NULL),
                        RESP_HEAD " sid='ab&apos;c' wait='60' requests='2' hold='1' "
                                  "inactivity='60' polling='2' ver='1.6' "
                                  "from='example.com&amp;&lt;&gt;' xmlns:xmpp='urn:xmpp:xbosh' "
                                  "xmpp:version='1.0' xmpp:restartlogic='true'/>");
    a.ack = UINT64_C(1573741820);
    a.maxpause = 120;
    a.ver = NULL;
    a.from = NULL;
    assert_string_equal(build(&a, "<stream:features/>"),
                        RESP_HEAD " sid='ab&apos;c' wait='60' requests='2' hold='1' "
                                  "inactivity='60' polling='2' maxpause='120' "
                                  "xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0' "
                                  "xmpp:restartlogic='true' ack='1573741820'>"
                                  "<stream:features/></body>");
}

static void test_response_non_creation_has_no_creation_attrs(void **state)
{
    xb_bosh_response_attrs_t a;
    const char *out;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.sid = "s";
    a.wait = 60;
    a.requests = 2;
    a.hold = 1;
    a.inactivity = 60;
    a.polling = 2;
    a.maxpause = 120;
    a.ver = "1.6";
    a.from = "example.com";
    out = build(&a, "<presence/>");
    assert_string_equal(out, RESP_HEAD "><presence/></body>");
    a.ack = 42;
    out = build(&a, NULL);
    assert_string_equal(out, RESP_HEAD " ack='42'/>");
}

static void test_response_terminate(void **state)
{
    xb_bosh_response_attrs_t a;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.condition = XB_COND_HOST_UNKNOWN;
    assert_string_equal(build(&a, NULL), RESP_HEAD " type='terminate' condition='host-unknown'/>");
    /* remote-stream-error carries the stanzas and the stream error (XEP-0206 §6). */
    a.condition = XB_COND_REMOTE_STREAM_ERROR;
    a.recoverable_error = 1; /* the terminal condition wins */
    assert_string_equal(build(&a, "<stream:error><conflict/></stream:error>"),
                        RESP_HEAD " type='terminate' condition='remote-stream-error'>"
                                  "<stream:error><conflict/></stream:error></body>");
}

static void test_response_see_other_uri(void **state)
{
    xb_bosh_response_attrs_t a;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.condition = XB_COND_SEE_OTHER_URI;
    a.see_other_uri = "https://b.example/http-bind?a=1&b='2'";
    assert_string_equal(build(&a, NULL),
                        RESP_HEAD " type='terminate' condition='see-other-uri'>"
                                  "<uri>https://b.example/http-bind?a=1&amp;b=&apos;2&apos;</uri>"
                                  "</body>");
    /* A uri given with another condition is not sent. */
    a.condition = XB_COND_HOST_GONE;
    assert_string_equal(build(&a, NULL), RESP_HEAD " type='terminate' condition='host-gone'/>");
}

static void test_response_recoverable_error(void **state)
{
    xb_bosh_response_attrs_t a;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.recoverable_error = 1;
    assert_string_equal(build(&a, NULL), RESP_HEAD " type='error'/>");
}

/* §9.2 report/time, §9.1 ack, §7.2 accept and maxpause (creation only). */
static void test_response_ack_report_accept(void **state)
{
    xb_bosh_response_attrs_t a;
    const char *out;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.ack = 12;
    a.report = 11;
    a.time_ms = 852;
    assert_string_equal(build(&a, NULL), RESP_HEAD " ack='12' report='11' time='852'/>");
    memset(&a, 0, sizeof(a));
    a.accept = "gzip";
    a.maxpause = 120;
    assert_string_equal(build(&a, NULL), RESP_HEAD "/>"); /* not a creation response */
    a.creation = 1;
    a.sid = "s";
    out = build(&a, NULL);
    assert_non_null(strstr(out, " maxpause='120'"));
    assert_non_null(strstr(out, " accept='gzip'"));
    assert_true(well_formed(out, strlen(out)));
    a.accept = NULL;
    a.maxpause = 0;
    out = build(&a, NULL);
    assert_null(strstr(out, "maxpause"));
    assert_null(strstr(out, "accept"));
}

static void test_terminate_build(void **state)
{
    xb_bosh_condition_t c;
    apr_size_t len;
    char *out;

    (void)state;
    for (c = XB_COND_BAD_REQUEST; c <= XB_COND_UNDEFINED_CONDITION; c++) {
        out = xb_bosh_terminate_build(pool, c, &len);
        assert_int_equal(len, strlen(out));
        assert_true(well_formed(out, len));
        assert_string_equal(out, apr_pstrcat(pool, RESP_HEAD " type='terminate' condition='",
                                             xb_bosh_condition_name(c), "'/>", NULL));
    }
    out = xb_bosh_terminate_build(pool, XB_COND_NONE, &len);
    assert_string_equal(out, RESP_HEAD " type='terminate'/>");
    assert_int_equal(len, strlen(out));
}

static void test_condition_names(void **state)
{
    static const char *const names[] = {
        "", "bad-request", "host-gone", "host-unknown", "improper-addressing",
        "internal-server-error", "item-not-found", "other-request", "policy-violation",
        "remote-connection-failed", "remote-stream-error", "see-other-uri", "system-shutdown",
        "undefined-condition"
    };
    int i;

    (void)state;
    for (i = XB_COND_NONE; i <= XB_COND_UNDEFINED_CONDITION; i++) {
        assert_string_equal(xb_bosh_condition_name((xb_bosh_condition_t)i), names[i]);
    }
}

static void test_legacy_status(void **state)
{
    int i;

    (void)state;
    assert_int_equal(xb_bosh_condition_legacy_status(XB_COND_BAD_REQUEST), 400);
    assert_int_equal(xb_bosh_condition_legacy_status(XB_COND_POLICY_VIOLATION), 403);
    assert_int_equal(xb_bosh_condition_legacy_status(XB_COND_ITEM_NOT_FOUND), 404);
    for (i = XB_COND_NONE; i <= XB_COND_UNDEFINED_CONDITION; i++) {
        if (i != XB_COND_BAD_REQUEST && i != XB_COND_POLICY_VIOLATION
            && i != XB_COND_ITEM_NOT_FOUND) {
            assert_int_equal(xb_bosh_condition_legacy_status((xb_bosh_condition_t)i), 200);
        }
    }
}

static void test_xml_escape(void **state)
{
    (void)state;
    assert_string_equal(xb_xml_escape(pool, "a&b<c>d'e\"f"), "a&amp;b&lt;c&gt;d&apos;e&quot;f");
    assert_string_equal(xb_xml_escape(pool, "plain \xc3\xa9"), "plain \xc3\xa9");
    assert_string_equal(xb_xml_escape(pool, ""), "");
    assert_string_equal(xb_xml_escape(pool, "&&"), "&amp;&amp;");
}

/* A response body built around a parsed payload is the same bytes, well-formed. */
static void test_payload_round_trip(void **state)
{
    xb_bosh_body_t *b = parse_ok(several_children);
    xb_bosh_response_attrs_t a;
    apr_size_t len;
    char *out;

    (void)state;
    memset(&a, 0, sizeof(a));
    out = xb_bosh_response_build(pool, &a, b->payload, b->payload_len, &len);
    assert_true(well_formed(out, len));
    assert_memory_equal(out + strlen(RESP_HEAD ">"), b->payload, b->payload_len);
}

/* §17.1: after a failed parse the glue still tells a legacy creation (no sid, no ver) apart. */
static void test_legacy_hint(void **state)
{
    const char *no_ver = "<body xmlns='http://jabber.org/protocol/httpbind' rid='9007199254740992'"
                         " to='x'/>";
    const char *with_ver = "<body xmlns='http://jabber.org/protocol/httpbind' rid='0' ver='1.6'/>";
    const char *with_sid = "<body xmlns='http://jabber.org/protocol/httpbind' rid='x' sid='s'/>";
    (void)state;
    assert_int_equal(xb_bosh_body_legacy_hint(no_ver, strlen(no_ver)), 1);
    assert_int_equal(xb_bosh_body_legacy_hint(with_ver, strlen(with_ver)), 0);
    assert_int_equal(xb_bosh_body_legacy_hint(with_sid, strlen(with_sid)), 0);
    assert_int_equal(xb_bosh_body_legacy_hint("<<<", 3), 0);
    assert_int_equal(xb_bosh_body_legacy_hint("<stream xmlns='jabber:client' rid='1'/>", 39), 0);
    assert_int_equal(xb_bosh_body_legacy_hint("", 0), 0);
    {   /* a DOCTYPE is refused before its internal subset is read */
        const char *dtd = "<!DOCTYPE body [<!ENTITY a 'b'>]><body xmlns='http://jabber.org/"
                          "protocol/httpbind' rid='1'/>";
        assert_int_equal(xb_bosh_body_legacy_hint(dtd, strlen(dtd)), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_strophe_creation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_string_attributes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attribute_values_unescaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_other_than_terminate_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_attributes_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sasl_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_any_prefix_and_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_without_xmlns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_with_xmlns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_default_declaration_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_element_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_prefix_used_in_child, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_bytes_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whitespace_between_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefixed_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_declaration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rid_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rid_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numeric_attributes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errmsg_does_not_echo_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_doctype, setup, teardown),
        cmocka_unit_test_setup_teardown(test_billion_laughs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_comment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processing_instruction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_at_body_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_deep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_deep_huge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_body_both_allocators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_well_formed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_creation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_non_creation_has_no_creation_attrs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_response_terminate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_see_other_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_recoverable_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_ack_report_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_terminate_build, setup, teardown),
        cmocka_unit_test_setup_teardown(test_condition_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_escape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_payload_round_trip, setup, teardown),
        cmocka_unit_test(test_legacy_hint),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
