/* libFuzzer harness: the BOSH <body/> request parser (xb_bosh_body_parse).
 *
 * The input is one HTTP request body. When it is accepted:
 *  - the attributes keep their documented ranges (rid 1..2^53-1, ack <= 2^53-1, type);
 *  - the payload is a C string of payload_len bytes, empty exactly when there are no children;
 *  - the payload wrapped in a response body (xb_bosh_response_build, plus a rid) parses again,
 *    to the same payload byte for byte and the same child count;
 *  - every element, attribute and text inside the children has the same expanded name and
 *    value in the original request and in the rewrapped copy (what the XMPP server sees is what
 *    the client meant, whatever prefixes <body/> declared), except that httpbind and no
 *    namespace read as jabber:client for elements (the parser's documented rewrite).
 */
#include <expat.h>
#include <apr_strings.h>

#include "fuzz_common.h"
#include "xb_bosh_body.h"

/* Expanded names with this separator: not an XML character, never inside a name or URI. */
#define SIG_SEP '\x01'

typedef struct {
    apr_pool_t *p;
    XML_Parser parser;
    int depth;
    int in_text;
    char *buf;
    size_t len, cap;
} nssig_t;

static void sig_add(nssig_t *s, const char *data, size_t len)
{
    if (s->len + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        char *nb;
        while (cap < s->len + len + 1) {
            cap *= 2;
        }
        nb = apr_palloc(s->p, cap);
        if (s->len) {
            memcpy(nb, s->buf, s->len);
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->buf[s->len] = '\0';
}

static void sig_str(nssig_t *s, const char *str)
{
    sig_add(s, str, strlen(str));
    sig_add(s, "\n", 1);
}

/* An element name. By design a child that inherits httpbind (or no namespace) from <body/>
 * is put in jabber:client, and its descendants with it: those three read the same here. */
static void sig_name(nssig_t *s, const char *name)
{
    static const char hb[] = XB_BOSH_NS "\x01";
    static const char client[] = XB_CLIENT_NS "\x01";

    if (!strchr(name, SIG_SEP)) {
        sig_add(s, client, sizeof(client) - 1);
    }
    else if (!strncmp(name, hb, sizeof(hb) - 1)) {
        sig_add(s, client, sizeof(client) - 1);
        name += sizeof(hb) - 1;
    }
    else if (!strncmp(name, client, sizeof(client) - 1)) {
        sig_add(s, client, sizeof(client) - 1);
        name += sizeof(client) - 1;
    }
    sig_str(s, name);
}

/* Adjacent text callbacks are one run of text: how expat cuts it up is not meaning. */
static void sig_text_end(nssig_t *s)
{
    if (s->in_text) {
        sig_add(s, "\n", 1);
        s->in_text = 0;
    }
}

static void XMLCALL sig_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    nssig_t *s = ud;
    int i;

    sig_text_end(s);
    s->depth++;
    if (s->depth < 2) {
        return; /* <body/> itself: its attributes differ by design */
    }
    sig_add(s, "<", 1);
    sig_name(s, name);
    for (i = 0; atts[i]; i += 2) {
        sig_add(s, "@", 1);
        sig_str(s, atts[i]);
        sig_add(s, "=", 1);
        sig_str(s, atts[i + 1]);
    }
}

static void XMLCALL sig_end(void *ud, const XML_Char *name)
{
    nssig_t *s = ud;

    sig_text_end(s);
    if (s->depth >= 2) {
        sig_add(s, ">", 1);
        sig_name(s, name);
    }
    s->depth--;
}

static void XMLCALL sig_text(void *ud, const XML_Char *text, int len)
{
    nssig_t *s = ud;

    if (s->depth >= 2 && len > 0) {
        if (!s->in_text) {
            sig_add(s, "t", 1);
            s->in_text = 1;
        }
        sig_add(s, text, (size_t)len);
    }
}

/* What the children mean, as expat in namespace mode reads them; NULL if it cannot parse. */
static const char *signature(apr_pool_t *p, const char *data, size_t len)
{
    nssig_t s;
    enum XML_Status st;

    memset(&s, 0, sizeof(s));
    s.p = p;
    s.parser = XML_ParserCreateNS("UTF-8", SIG_SEP);
    if (!s.parser) {
        abort();
    }
    XML_SetUserData(s.parser, &s);
    XML_SetElementHandler(s.parser, sig_start, sig_end);
    XML_SetCharacterDataHandler(s.parser, sig_text);
    XML_SetParamEntityParsing(s.parser, XML_PARAM_ENTITY_PARSING_NEVER);
    st = XML_Parse(s.parser, data, (int)len, 1);
    XML_ParserFree(s.parser);
    if (st != XML_STATUS_OK) {
        return NULL;
    }
    sig_add(&s, "", 0);
    return s.buf;
}

static void check_body(apr_pool_t *p, const char *input, size_t input_len,
                       const xb_bosh_body_t *b)
{
    xb_bosh_response_attrs_t attrs;
    xb_bosh_body_t *again = NULL;
    const char *errmsg = NULL, *sig1, *sig2;
    char *resp, *req;
    apr_size_t resp_len;
    xb_bosh_body_status_t st;

    FUZZ_CHECK(b->has_rid && b->rid >= 1 && b->rid <= XB_BOSH_RID_MAX);
    FUZZ_CHECK(!b->has_ack || b->ack <= XB_BOSH_RID_MAX);
    FUZZ_CHECK(!b->type || !strcmp(b->type, "terminate"));
    FUZZ_CHECK(b->payload != NULL);
    FUZZ_CHECK(strlen(b->payload) == b->payload_len);
    FUZZ_CHECK((b->child_count == 0) == (b->payload_len == 0));
    fuzz_touch(b->sid ? b->sid : "", b->sid ? strlen(b->sid) : 0);

    /* The payload inside one of our response bodies, given a rid so the request parser takes
     * it: it must parse, and to exactly the same payload. */
    memset(&attrs, 0, sizeof(attrs));
    resp = xb_bosh_response_build(p, &attrs, b->payload, b->payload_len, &resp_len);
    FUZZ_CHECK(resp && resp_len == strlen(resp) && !strncmp(resp, "<body ", 6));
    req = apr_pstrcat(p, "<body rid='1'", resp + 5, NULL);
    st = xb_bosh_body_parse(p, req, strlen(req), NULL, &again, &errmsg);
    if (st != XB_BODY_OK) {
        fprintf(stderr, "rewrapped payload refused (%d): %s\n", (int)st, errmsg);
    }
    FUZZ_CHECK(st == XB_BODY_OK);
    FUZZ_CHECK(again->payload_len == b->payload_len);
    FUZZ_CHECK(!memcmp(again->payload, b->payload, b->payload_len));
    FUZZ_CHECK(again->child_count == b->child_count);

    /* Same meaning: expanded names, attributes and text of everything inside the children. */
    sig1 = signature(p, input, input_len);
    sig2 = signature(p, req, strlen(req));
    FUZZ_CHECK(sig1 != NULL && sig2 != NULL);
    if (strcmp(sig1, sig2) != 0) {
        fprintf(stderr, "namespace meaning changed\n--- request:\n%s\n--- rewrapped:\n%s\n",
                sig1, sig2);
    }
    FUZZ_CHECK(!strcmp(sig1, sig2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    xb_bosh_body_t *body = NULL;
    const char *errmsg = NULL;
    xb_bosh_body_status_t st;
    xb_bosh_parse_limits_t limits;

    if (size > 1024 * 1024) {
        return 0;
    }
    p = fuzz_pool();
    /* Exactly the input bytes in their own allocation: a read past the end is an ASan report. */
    limits.max_depth = 8;
    st = xb_bosh_body_parse(p, (const char *)data, size, &limits, &body, &errmsg);
    if (st == XB_BODY_OK) {
        FUZZ_CHECK(body != NULL);
        check_body(p, (const char *)data, size, body);
    }
    else {
        FUZZ_CHECK(body == NULL && errmsg != NULL);
        fuzz_touch(errmsg, strlen(errmsg));
    }
    fuzz_pool_done(p);
    return 0;
}
