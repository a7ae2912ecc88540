/* Unit tests for the XMPP stream framer (src/xb_xmpp_framer.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include "xb_xmpp_framer.h"

#define STREAMS_NS "http://etherx.jabber.org/streams"

/* A Prosody-like server header. */
#define HEADER                                                                              \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xml:lang='en' "            \
    "id='0f7e5b0c-61d8-4e6c-8d83-1f0a6a3b5c11' version='1.0' from='localhost' "             \
    "xmlns:stream='" STREAMS_NS "'>"

static const char *transcript =
    HEADER
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    "</stream:features>\n"
    "<iq type='result' id='bind_1' to='juliet@localhost/balcony'><bind "
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>juliet@localhost/balcony</jid></bind></iq>"
    "<message from='romeo@localhost/orchard' to='juliet@localhost' type='chat' id='m1'>"
    "<body>Hi &amp; &lt;there&gt; \xc3\xa9 \xf0\x9f\x98\x80</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    "<presence/>"
    " \n\t "
    "<presence from='romeo@localhost/orchard'\n  type='unavailable'/>"
    "<iq xmlns='jabber:client' type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>"
    "<r xmlns='urn:xmpp:sm:3'/>"
    "<message id='c'><body><![CDATA[<not-an-element/> & more]]></body></message>"
    "<m\xc3\xa9ssage/>"
    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
    "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text>"
    "</stream:error>"
    "</stream:stream>";

static const char *expected_elements[] = {
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    "</stream:features>",
    "<iq xmlns='jabber:client' type='result' id='bind_1' to='juliet@localhost/balcony'><bind "
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>juliet@localhost/balcony</jid></bind></iq>",
    "<message xmlns='jabber:client' from='romeo@localhost/orchard' to='juliet@localhost' "
    "type='chat' id='m1'><body>Hi &amp; &lt;there&gt; \xc3\xa9 \xf0\x9f\x98\x80</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<presence xmlns='jabber:client'/>",
    "<presence xmlns='jabber:client' from='romeo@localhost/orchard'\n  type='unavailable'/>",
    "<iq xmlns='jabber:client' type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<r xmlns='urn:xmpp:sm:3'/>",
    "<message xmlns='jabber:client' id='c'><body><![CDATA[<not-an-element/> & more]]></body>"
    "</message>",
    "<m\xc3\xa9ssage xmlns='jabber:client'/>",
    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
    "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text>"
    "</stream:error>",
};

typedef struct {
    apr_pool_t *pool;
    xb_xmpp_framer_t *f;
    char *log;          /* every event, in order */
    int elements;
    const char *last_elem;
    const char *last_ns;
    const char *err_cond;
    const char *err_why;
    int errors;
    int closes;
    int reset_on_element; /* reset the framer from inside the n-th element event */
    int destroy_on_element;
} rec_t;

static void rec_add(rec_t *r, const char *s)
{
    r->log = apr_pstrcat(r->pool, r->log ? r->log : "", s, "\n", NULL);
}

static void ev_open(void *b, const char *from, const char *id, const char *version)
{
    rec_t *r = b;
    rec_add(r, apr_psprintf(r->pool, "OPEN from=%s id=%s version=%s", from ? from : "-",
                            id ? id : "-", version ? version : "-"));
}

static void ev_child(void *b, const char *name, const char **atts)
{
    rec_t *r = b;
    const char *ns = "-";
    for (; atts[0]; atts += 2) {
        if (!strcmp(atts[0], "xmlns")) {
            ns = atts[1];
        }
    }
    rec_add(r, apr_psprintf(r->pool, "CHILD %s %s", name, ns));
}

static void ev_element(void *b, const char *name, const char *ns, const char *data,
                       apr_size_t len)
{
    rec_t *r = b;
    r->elements++;
    r->last_elem = apr_pstrmemdup(r->pool, data, len);
    r->last_ns = ns ? apr_pstrdup(r->pool, ns) : NULL;
    rec_add(r, apr_psprintf(r->pool, "ELEM %s %s |%s|", name, ns ? ns : "-", r->last_elem));
    if (r->reset_on_element == r->elements) {
        xb_xmpp_framer_reset(r->f);
    }
    if (r->destroy_on_element == r->elements) {
        xb_xmpp_framer_destroy(r->f);
    }
}

static void ev_close(void *b)
{
    rec_t *r = b;
    r->closes++;
    rec_add(r, "CLOSE");
}

static void ev_error(void *b, const char *cond, const char *why)
{
    rec_t *r = b;
    r->errors++;
    r->err_cond = apr_pstrdup(r->pool, cond);
    r->err_why = apr_pstrdup(r->pool, why);
    rec_add(r, apr_psprintf(r->pool, "ERROR %s", cond));
}

static const xb_xmpp_framer_events_t events = {
    ev_open, ev_child, ev_element, ev_close, ev_error
};

static rec_t *rec_new(apr_pool_t *pool, apr_size_t max_elem, apr_size_t max_depth)
{
    rec_t *r = apr_pcalloc(pool, sizeof(*r));
    r->pool = pool;
    r->f = xb_xmpp_framer_create(pool, max_elem, max_depth, &events, r);
    assert_non_null(r->f);
    return r;
}

static int setup(void **state)
{
    apr_pool_t *pool;
    apr_pool_create(&pool, NULL);
    *state = pool;
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy(*state);
    return 0;
}

static void feed_str(rec_t *r, const char *s)
{
    xb_xmpp_framer_feed(r->f, s, strlen(s));
}

static const char *run_split(apr_pool_t *pool, const char *doc, apr_size_t split)
{
    rec_t *r = rec_new(pool, 0, 0);
    apr_size_t len = strlen(doc);
    xb_xmpp_framer_feed(r->f, doc, split);
    xb_xmpp_framer_feed(r->f, doc + split, len - split);
    return r->log;
}

static void test_transcript_one_block(void **state)
{
    rec_t *r = rec_new(*state, 0, 0);
    size_t i, n = sizeof(expected_elements) / sizeof(expected_elements[0]);
    const char *p;

    assert_int_equal(xb_xmpp_framer_feed(r->f, transcript, strlen(transcript)), APR_SUCCESS);
    assert_int_equal(r->errors, 0);
    assert_int_equal(r->closes, 1);
    assert_int_equal(r->elements, (int)n);
    assert_non_null(strstr(r->log, "OPEN from=localhost id=0f7e5b0c-61d8-4e6c-8d83-1f0a6a3b5c11 "
                                   "version=1.0\n"));
    assert_non_null(strstr(r->log, "CHILD starttls urn:ietf:params:xml:ns:xmpp-tls\n"));
    /* The expected elements appear in order in the log. */
    p = r->log;
    for (i = 0; i < n; i++) {
        const char *hit = strstr(p, apr_psprintf(*state, "|%s|", expected_elements[i]));
        assert_non_null(hit);
        p = hit + 1;
    }
    assert_non_null(strstr(r->log, "ELEM stream:features " STREAMS_NS " |"));
    assert_non_null(strstr(r->log, "ELEM iq jabber:client |"));
    assert_non_null(strstr(r->log, "ELEM r urn:xmpp:sm:3 |"));
    assert_non_null(strstr(r->log, "ELEM stream:error " STREAMS_NS " |"));
}

static void test_transcript_byte_by_byte(void **state)
{
    const char *block = run_split(*state, transcript, 0);
    rec_t *r = rec_new(*state, 0, 0);
    const char *p;

    for (p = transcript; *p; p++) {
        assert_int_equal(xb_xmpp_framer_feed(r->f, p, 1), APR_SUCCESS);
    }
    assert_string_equal(r->log, block);
}

/* Each element must come out as soon as its last byte is in: a server may then stay quiet
 * for minutes (expat 2.6's reparse deferral would hold it back). */
static void test_element_delivered_at_its_last_byte(void **state)
{
    rec_t *r = rec_new(*state, 0, 0);
    const char *stanzas[] = { "<presence/>", "<message to='a'><body>b</body></message>",
                              "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>" };
    char *big;
    size_t i, j;

    feed_str(r, HEADER);
    for (i = 0; i < 3; i++) {
        for (j = 0; stanzas[i][j]; j++) {
            assert_int_equal(r->elements, (int)i);
            xb_xmpp_framer_feed(r->f, stanzas[i] + j, 1);
        }
        assert_int_equal(r->elements, (int)i + 1);
    }
    /* A long partial token completed by a short read. */
    big = apr_palloc(*state, 6001);
    memset(big, 'a', 6000);
    big[6000] = '\0';
    feed_str(r, "<presence id='");
    feed_str(r, big);
    assert_int_equal(r->elements, 3);
    feed_str(r, "'/>");
    assert_int_equal(r->elements, 4);
    assert_int_equal(r->errors, 0);
}

static void test_transcript_every_split(void **state)
{
    apr_pool_t *sub;
    const char *block = run_split(*state, transcript, strlen(transcript));
    apr_size_t i, len = strlen(transcript);

    apr_pool_create(&sub, *state);
    for (i = 0; i <= len; i++) {
        assert_string_equal(run_split(sub, transcript, i), block);
        apr_pool_clear(sub);
    }
}

static void test_many_stanzas_one_block(void **state)
{
    rec_t *r = rec_new(*state, 0, 0);
    char *doc = apr_pstrdup(*state, HEADER);
    int i;

    for (i = 0; i < 5000; i++) {
        doc = apr_pstrcat(*state, doc, "<message id='", apr_itoa(*state, i),
                          "'><body>x</body></message>", NULL);
    }
    /* Bigger than one internal slice: elements straddle slices too. */
    assert_true(strlen(doc) > 100000);
    assert_int_equal(xb_xmpp_framer_feed(r->f, doc, strlen(doc)), APR_SUCCESS);
    assert_int_equal(r->elements, 5000);
    assert_string_equal(r->last_elem,
                        "<message xmlns='jabber:client' id='4999'><body>x</body></message>");
}

static void test_xmlns_insertion(void **state)
{
    static const char *cases[][2] = {
        { "<message to='a'>x</message>", "<message xmlns='jabber:client' to='a'>x</message>" },
        { "<message\tto='a'/>", "<message xmlns='jabber:client'\tto='a'/>" },
        { "<presence/>", "<presence xmlns='jabber:client'/>" },
        { "<presence></presence>", "<presence xmlns='jabber:client'></presence>" },
        { "<iq xmlns='jabber:client'/>", "<iq xmlns='jabber:client'/>" },
        { "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1=</success>",
          "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1=</success>" },
        { "<iq xmlns:x='urn:x' type='get'><x:q/></iq>",
          "<iq xmlns='jabber:client' xmlns:x='urn:x' type='get'><x:q/></iq>" },
        { "<message><body xmlns=''>x</body></message>",
          "<message xmlns='jabber:client'><body xmlns=''>x</body></message>" },
        { "<stream:features/>", "<stream:features/>" },
        { "<foo:bar xmlns:foo='urn:foo'/>", "<foo:bar xmlns:foo='urn:foo'/>" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rec_t *r = rec_new(*state, 0, 0);
        feed_str(r, HEADER);
        feed_str(r, cases[i][0]);
        assert_int_equal(r->errors, 0);
        assert_int_equal(r->elements, 1);
        assert_string_equal(r->last_elem, cases[i][1]);
    }
}

static void test_element_ns(void **state)
{
    rec_t *r = rec_new(*state, 0, 0);

    feed_str(r, HEADER);
    feed_str(r, "<foo:bar xmlns:foo='urn:foo'/>");
    assert_string_equal(r->last_ns, "urn:foo");
    feed_str(r, "<db:result/>");
    assert_null(r->last_ns);
    feed_str(r, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_string_equal(r->last_ns, "urn:ietf:params:xml:ns:xmpp-tls");
    feed_str(r, "<message/>");
    assert_string_equal(r->last_ns, "jabber:client");
    assert_int_equal(r->errors, 0);
}

static void test_size_limit(void **state)
{
    const char *stanza = "<message to='a'>xx</message>"; /* 28 bytes */
    rec_t *ok = rec_new(*state, strlen(stanza), 0);
    rec_t *big = rec_new(*state, strlen(stanza) - 1, 0);

    feed_str(ok, HEADER);
    feed_str(ok, stanza);
    assert_int_equal(ok->errors, 0);
    assert_int_equal(ok->elements, 1);

    feed_str(big, HEADER);
    assert_int_not_equal(xb_xmpp_framer_feed(big->f, stanza, strlen(stanza)), APR_SUCCESS);
    assert_int_equal(big->errors, 1);
    assert_int_equal(big->elements, 0);
    assert_string_equal(big->err_cond, "policy-violation");
    /* Once broken, nothing more happens. */
    feed_str(big, "<presence/>");
    assert_int_equal(big->elements, 0);
    assert_int_equal(big->errors, 1);
}

static void test_size_limit_before_end(void **state)
{
    rec_t *r = rec_new(*state, 1024, 0);
    char chunk[100];
    int i;

    memset(chunk, 'a', sizeof(chunk));
    feed_str(r, HEADER);
    feed_str(r, "<message><body>");
    /* The element never ends: the error must come once the kept bytes pass the limit. */
    for (i = 0; i < 100 && !r->errors; i++) {
        xb_xmpp_framer_feed(r->f, chunk, sizeof(chunk));
    }
    assert_int_equal(r->errors, 1);
    assert_true(i <= 11);
    assert_string_equal(r->err_cond, "policy-violation");

    /* The same for a start tag that never ends: expat reports nothing until '>'. */
    r = rec_new(*state, 1024, 0);
    feed_str(r, HEADER);
    feed_str(r, "<message ");
    for (i = 0; i < 1000 && !r->errors; i++) {
        feed_str(r, apr_psprintf(*state, "a%04d='b' ", i));
    }
    assert_int_equal(r->errors, 1);
    assert_true(i <= 1024 / 10 + 1);
    assert_string_equal(r->err_cond, "policy-violation");
}

static void test_whitespace_keepalives_do_not_accumulate(void **state)
{
    rec_t *r = rec_new(*state, 256, 0);
    char spaces[1000];
    int i;

    memset(spaces, ' ', sizeof(spaces));
    feed_str(r, HEADER);
    for (i = 0; i < 2000; i++) {
        assert_int_equal(xb_xmpp_framer_feed(r->f, spaces, sizeof(spaces)), APR_SUCCESS);
    }
    feed_str(r, "<presence/>");
    assert_int_equal(r->errors, 0);
    assert_int_equal(r->elements, 1);
}

static void test_depth_limit(void **state)
{
    rec_t *ok = rec_new(*state, 0, 2);
    rec_t *deep = rec_new(*state, 0, 2);

    feed_str(ok, HEADER "<a><b/></a><c><d>t</d></c>");
    assert_int_equal(ok->errors, 0);
    assert_int_equal(ok->elements, 2);

    feed_str(deep, HEADER "<a><b><c/></b></a>");
    assert_int_equal(deep->errors, 1);
    assert_int_equal(deep->elements, 0);
    assert_string_equal(deep->err_cond, "policy-violation");
}

static void test_billion_laughs_rejected(void **state)
{
    static const char *doc =
        "<?xml version='1.0'?>"
        "<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
        "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
        "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
        "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>"
        "<!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>"
        "<!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>"
        "<!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>"
        "<!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>"
        "<!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>"
        "<!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>]>"
        "<stream:stream xmlns='jabber:client' xmlns:stream='" STREAMS_NS "'>"
        "<message><body>&lol9;</body></message>";
    rec_t *r = rec_new(*state, 0, 0);
    const char *p;

    assert_int_not_equal(xb_xmpp_framer_feed(r->f, doc, strlen(doc)), APR_SUCCESS);
    assert_int_equal(r->errors, 1);
    assert_string_equal(r->err_cond, "restricted-xml");
    assert_int_equal(r->elements, 0);
    assert_null(strstr(r->log, "OPEN"));

    r = rec_new(*state, 0, 0);
    for (p = doc; *p && !r->errors; p++) {
        xb_xmpp_framer_feed(r->f, p, 1);
    }
    assert_int_equal(r->errors, 1);
    assert_string_equal(r->err_cond, "restricted-xml");
}

static void test_restricted_xml(void **state)
{
    static const char *cases[][2] = {
        { "<?xml version='1.0'?><!DOCTYPE stream:stream>", "restricted-xml" },
        { HEADER "<?php echo 1 ?>", "restricted-xml" },
        { HEADER "<message><?pi x?></message>", "restricted-xml" },
        { HEADER "<!-- hello -->", "restricted-xml" },
        { HEADER "<message><body>&xxe;</body></message>", "not-well-formed" },
        { HEADER "hello<presence/>", "bad-format" },
        { "<stream:stream xmlns='jabber:server' xmlns:stream='" STREAMS_NS "'>",
          "invalid-namespace" },
        { "<stream:stream xmlns='jabber:client' xmlns:stream='urn:other'>",
          "invalid-namespace" },
        { "<html xmlns='jabber:client'>", "invalid-namespace" },
        { HEADER "<message><body>secret words</foo></message>", "not-well-formed" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rec_t *r = rec_new(*state, 0, 0);
        feed_str(r, cases[i][0]);
        assert_int_equal(r->errors, 1);
        assert_string_equal(r->err_cond, cases[i][1]);
        assert_int_equal(r->elements, 0);
        assert_null(strstr(r->err_why, "secret"));
    }
}

static void test_stream_close_then_junk(void **state)
{
    rec_t *r = rec_new(*state, 0, 0);

    feed_str(r, HEADER "<presence/></stream:stream><junk");
    assert_int_equal(r->closes, 1);
    assert_int_equal(r->errors, 0);
    assert_int_equal(xb_xmpp_framer_feed(r->f, "<more/>", 7), APR_SUCCESS);
    assert_int_equal(r->elements, 1);
    assert_int_equal(r->errors, 0);
}

static void test_reset(void **state)
{
    rec_t *r = rec_new(*state, 0, 0);
    const char *first;

    feed_str(r, HEADER "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                       "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
                       "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_int_equal(r->elements, 2);
    first = r->log;
    /* Half a start tag pending when the reset comes: it must be forgotten. */
    feed_str(r, "<mess");
    xb_xmpp_framer_reset(r->f);
    r->log = NULL;
    feed_str(r, HEADER "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                       "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
                       "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_int_equal(r->errors, 0);
    assert_int_equal(r->elements, 4);
    assert_string_equal(r->log, first);
}

static void test_reset_inside_event_drops_rest(void **state)
{
    rec_t *r = rec_new(*state, 0, 0);

    r->reset_on_element = 2;
    feed_str(r, HEADER "<stream:features/><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                       "<message>injected</message>");
    assert_int_equal(r->elements, 2);
    assert_int_equal(r->errors, 0);
    assert_null(strstr(r->log, "injected"));
    /* The framer now expects a new stream. */
    feed_str(r, HEADER "<stream:features/>");
    assert_int_equal(r->errors, 0);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->last_elem, "<stream:features/>");
}

static void test_destroy_inside_event(void **state)
{
    rec_t *r = rec_new(*state, 0, 0);

    r->destroy_on_element = 1;
    feed_str(r, HEADER "<presence/><presence/>");
    assert_int_equal(r->elements, 1);
    xb_xmpp_framer_destroy(r->f); /* idempotent */
    assert_int_not_equal(xb_xmpp_framer_feed(r->f, "<x/>", 4), APR_SUCCESS);
}

/* ---- compaction: the parser freed between elements, rebuilt on the next feed ---------- */

/* The transcript fed byte by byte with a compaction tried after every byte: every event must
 * be the same as fed whole without any, and compaction must have happened between elements. */
static void test_compact_after_every_byte(void **state)
{
    const char *block = run_split(*state, transcript, strlen(transcript));
    rec_t *r = rec_new(*state, 0, 0);
    apr_size_t i, len = strlen(transcript);
    int compacted = 0;

    for (i = 0; i < len; i++) {
        xb_xmpp_framer_feed(r->f, transcript + i, 1);
        compacted += xb_xmpp_framer_compact(r->f);
    }
    assert_string_equal(r->log, block);
    /* between the ten elements (and around the keep-alive whitespace), not inside them */
    assert_true(compacted >= 10);
}

static void test_compact_only_between_elements(void **state)
{
    rec_t *r = rec_new(*state, 0, 0);

    assert_int_equal(xb_xmpp_framer_compact(r->f), 0);       /* before the stream */
    feed_str(r, HEADER);
    assert_int_equal(xb_xmpp_framer_compact(r->f), 1);
    assert_int_equal(xb_xmpp_framer_compact(r->f), 0);       /* already */
    feed_str(r, "<message><body>half");
    assert_int_equal(xb_xmpp_framer_compact(r->f), 0);       /* inside an element */
    feed_str(r, "</body></message><pres");
    assert_int_equal(xb_xmpp_framer_compact(r->f), 0);       /* a partial start tag */
    feed_str(r, "ence/>");
    assert_int_equal(xb_xmpp_framer_compact(r->f), 1);
    feed_str(r, "<presence type='unavailable'/>");
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->last_elem, "<presence xmlns='jabber:client' type='unavailable'/>");
    feed_str(r, "</stream:stream>");
    assert_int_equal(r->closes, 1);
    assert_int_equal(r->errors, 0);
    assert_int_equal(xb_xmpp_framer_compact(r->f), 0);       /* the stream is over */
}

/* Whatever the server sends after a compaction is judged as without one. */
static void test_compact_then_bad_input(void **state)
{
    static const char *cases[][2] = {
        { "<?php echo 1 ?>", "restricted-xml" },
        { "<!-- hello -->", "restricted-xml" },
        { "<!DOCTYPE x>", "not-well-formed" },   /* a DTD past the prolog: a syntax error */
        { "<message><body>&xxe;</body></message>", "not-well-formed" },
        { "hello<presence/>", "bad-format" },
        { "<message><body>secret words</foo></message>", "not-well-formed" },
        { "</stream:other>", "not-well-formed" },
        { "<a><b><c/></b></a>", "policy-violation" },                  /* max_depth 2 */
        { "<message to='a'>xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx</message>", "policy-violation" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rec_t *r = rec_new(*state, 40, 2);
        rec_t *plain = rec_new(*state, 40, 2); /* the same bytes, never compacted */
        feed_str(r, HEADER "<presence/>");
        feed_str(plain, HEADER "<presence/>");
        assert_int_equal(xb_xmpp_framer_compact(r->f), 1);
        feed_str(r, cases[i][0]);
        feed_str(plain, cases[i][0]);
        assert_int_equal(r->errors, 1);
        assert_string_equal(r->err_cond, cases[i][1]);
        assert_string_equal(r->err_cond, plain->err_cond);
        assert_string_equal(r->err_why, plain->err_why);
        assert_string_equal(r->log, plain->log);
        assert_int_equal(r->elements, 1);
        assert_null(strstr(r->err_why, "secret"));
    }
}

/* The error's sentence names the line and column of the bad byte in the stream: a compaction,
 * or several, must not move them (the daemon logs it). */
static void test_compact_keeps_error_position(void **state)
{
    static const char *bad[] = {
        "<message><body>x</foo></message>",          /* same line as the compaction */
        "\n  <message>\n<body>x</foo></message>",    /* a later line */
        "<message><body>\xc3\xa9\xe2\x9c\x93 x</foo></message>", /* after multi-byte characters */
        "<a b='1' b='2'/>",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rec_t *r = rec_new(*state, 0, 0);
        rec_t *plain = rec_new(*state, 0, 0);
        const char *before[] = { HEADER "\n<presence/>\n  ", "<iq type='result' id='1'>\n</iq>",
                                 "<message>\xc3\xa9</message>  " };
        size_t k;

        for (k = 0; k < sizeof(before) / sizeof(before[0]); k++) {
            feed_str(r, before[k]);
            feed_str(plain, before[k]);
            assert_int_equal(xb_xmpp_framer_compact(r->f), 1);
        }
        feed_str(r, bad[i]);
        feed_str(plain, bad[i]);
        assert_int_equal(r->errors, 1);
        assert_string_equal(r->err_cond, "not-well-formed");
        assert_string_equal(r->err_why, plain->err_why);
        assert_string_equal(r->log, plain->log);
    }
}

static void test_compact_then_reset(void **state)
{
    rec_t *r = rec_new(*state, 0, 0);

    feed_str(r, HEADER "<stream:features/>");
    assert_int_equal(xb_xmpp_framer_compact(r->f), 1);
    xb_xmpp_framer_reset(r->f);
    r->log = NULL;
    feed_str(r, HEADER "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_int_equal(r->errors, 0);
    assert_int_equal(r->elements, 2);
    assert_non_null(strstr(r->log, "OPEN from=localhost"));
    /* a compacted framer destroyed stays destroyed */
    assert_int_equal(xb_xmpp_framer_compact(r->f), 1);
    xb_xmpp_framer_destroy(r->f);
    assert_int_not_equal(xb_xmpp_framer_feed(r->f, "<x/>", 4), APR_SUCCESS);
    assert_int_equal(r->elements, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transcript_one_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transcript_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transcript_every_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_element_delivered_at_its_last_byte, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_stanzas_one_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xmlns_insertion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_element_ns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit_before_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whitespace_keepalives_do_not_accumulate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_billion_laughs_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restricted_xml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_close_then_junk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_inside_event_drops_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_inside_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_after_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_only_between_elements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_then_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_keeps_error_position, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_then_reset, setup, teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
