/* BOSH <body/> wrapper: request parsing and response building (see xb_bosh_body.h).
 *
 * The request parser is expat in namespace mode, fed the whole request at once. It never
 * rebuilds the payload from events: for each top-level child it records the byte range of the
 * child in the input and copies those bytes, so what the client sent is what the XMPP server
 * gets (attribute order, quoting, character references and all).
 *
 * Everything a hostile client could use to make the parser do work out of proportion to the
 * request (DTDs, entity declarations) stops the parser at the first event; comments and
 * processing instructions are refused because XEP-0124 §6 forbids them and the payload bytes
 * would otherwise carry them to the XMPP server.
 */
#include <stddef.h>
#include <string.h>
#include <limits.h>
#include <strings.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <expat.h>

#include "xb_bosh_body.h"
#include "xb_xml_restrict.h"

#define XML_NS "http://www.w3.org/XML/1998/namespace"

/* Nesting allowed when the caller passes no limits: XMPP stanzas rarely go past 6 levels. */
#define DEFAULT_MAX_DEPTH 32

/* ------------------------------------------------------------------------------------------ */
/* Conditions */

static const char *const condition_names[] = {
    "",
    "bad-request",
    "host-gone",
    "host-unknown",
    "improper-addressing",
    "internal-server-error",
    "item-not-found",
    "other-request",
    "policy-violation",
    "remote-connection-failed",
    "remote-stream-error",
    "see-other-uri",
    "system-shutdown",
    "undefined-condition",
};

const char *xb_bosh_condition_name(xb_bosh_condition_t cond)
{
    if ((unsigned)cond >= sizeof(condition_names) / sizeof(condition_names[0])) {
        /* An out-of-range value is a caller bug; say something the client can act on. */
        return "undefined-condition";
    }
    return condition_names[cond];
}

int xb_bosh_condition_legacy_status(xb_bosh_condition_t cond)
{
    switch (cond) {
    case XB_COND_BAD_REQUEST:
        return 400;
    case XB_COND_POLICY_VIOLATION:
        return 403;
    case XB_COND_ITEM_NOT_FOUND:
        return 404;
    default:
        return 200;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Escaping */

const char *xb_xml_escape(apr_pool_t *p, const char *s)
{
    apr_size_t extra = 0;
    const char *in;
    char *out, *o;

    if (!s) {
        return "";
    }
    for (in = s; *in; in++) {
        switch (*in) {
        case '&':
            extra += 4; /* &amp; */
            break;
        case '<':
        case '>':
            extra += 3; /* &lt; &gt; */
            break;
        case '\'':
        case '"':
            extra += 5; /* &apos; &quot; */
            break;
        case '\t':
        case '\n':
        case '\r':
            extra += 4; /* &#9; &#10; &#13; at most */
            break;
        default:
            break;
        }
    }
    out = apr_palloc(p, (apr_size_t)(in - s) + extra + 1);
    for (in = s, o = out; *in; in++) {
        const char *rep;
        switch (*in) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '\'': rep = "&apos;"; break;
        case '"': rep = "&quot;"; break;
        case '\t': rep = "&#9;"; break;
        case '\n': rep = "&#10;"; break;
        case '\r': rep = "&#13;"; break;
        default:
            *o++ = *in;
            continue;
        }
        memcpy(o, rep, strlen(rep));
        o += strlen(rep);
    }
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Request parsing */

/* One top-level child: its bytes in the input, and the namespace declarations to insert after
 * its name so that it stands on its own outside <body/>. */
typedef struct {
    apr_size_t start;     /* offset of '<' */
    apr_size_t name_end;  /* offset just past the element name */
    apr_size_t end;       /* offset just past the end tag or "/>" */
    const char *insert;   /* " xmlns='...' xmlns:p='...'", or "" */
    apr_hash_t *prefixes; /* prefixes its start tag declares, its own or inserted */
} child_range_t;

typedef struct {
    xb_xml_restrict_t restrict_xml; /* first: the parser's user data is the context */
    apr_pool_t *p;
    XML_Parser parser;
    const char *data;
    apr_size_t len;
    apr_size_t max_depth;
    apr_size_t depth;          /* 0 outside <body/>, 1 inside it, 2 inside a child... */
    int child_declares_default; /* the element about to start declares a default xmlns */
    apr_hash_t *pending_prefixes; /* prefixes it declares (NULL: none) */
    apr_hash_t *body_prefixes;  /* prefix -> URI declared on <body/> */
    const char *body_default;   /* default namespace declared on <body/>, NULL: none */
    xb_bosh_body_status_t status;
    const char *errmsg;
    xb_bosh_body_t *body;
    apr_array_header_t *children; /* of child_range_t */
    child_range_t *open_child;    /* the top-level child being parsed */
} parse_ctx_t;

/* Records the first failure and stops expat; later events are ignored (expat may still
 * deliver a few after XML_StopParser). */
static void fail(parse_ctx_t *ctx, xb_bosh_body_status_t status, const char *msg)
{
    if (ctx->status != XB_BODY_OK) {
        return;
    }
    ctx->status = status;
    ctx->errmsg = msg;
    XML_StopParser(ctx->parser, XML_FALSE);
}

/* Unsigned decimal, digits only (no sign, no space, not empty), at most `max`. */
static int parse_decimal(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s) {
        return 0;
    }
    for (; *s; s++) {
        unsigned d;
        if (*s < '0' || *s > '9') {
            return 0;
        }
        d = (unsigned)(*s - '0');
        if (v > (max - d) / 10) {
            return 0;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

/* True when expanded name `name` is `want` ("uri SEP local" or "local"), whatever prefix the
 * client chose. */
static int name_is(const XML_Char *name, const char *want)
{
    size_t n = strlen(want);

    return !strncmp(name, want, n) && (name[n] == '\0' || name[n] == XB_XML_NS_SEP);
}

/* The prefix of an expanded name, or NULL when it has none. */
static const char *name_prefix(const XML_Char *name)
{
    const char *sep = strchr(name, XB_XML_NS_SEP);

    sep = sep ? strchr(sep + 1, XB_XML_NS_SEP) : NULL;
    return sep ? sep + 1 : NULL;
}

/* Attributes kept as strings, by expanded name. */
static const struct {
    const char *name;
    size_t offset;
} string_attrs[] = {
    { "sid", offsetof(xb_bosh_body_t, sid) },
    { "to", offsetof(xb_bosh_body_t, to) },
    { "from", offsetof(xb_bosh_body_t, from) },
    { "route", offsetof(xb_bosh_body_t, route) },
    { XML_NS XB_XML_NS_SEP_STR "lang", offsetof(xb_bosh_body_t, xml_lang) },
    { "ver", offsetof(xb_bosh_body_t, ver) },
    { "content", offsetof(xb_bosh_body_t, content) },
    { "accept", offsetof(xb_bosh_body_t, accept) },
    { "key", offsetof(xb_bosh_body_t, key) },
    { "newkey", offsetof(xb_bosh_body_t, newkey) },
    { "stream", offsetof(xb_bosh_body_t, stream) },
    { XB_XBOSH_NS XB_XML_NS_SEP_STR "version", offsetof(xb_bosh_body_t, xmpp_version) },
};

static int set_string_attr(parse_ctx_t *ctx, const char *name, const char *value)
{
    size_t i;

    for (i = 0; i < sizeof(string_attrs) / sizeof(string_attrs[0]); i++) {
        if (name_is(name, string_attrs[i].name)) {
            const char **field = (const char **)((char *)ctx->body + string_attrs[i].offset);
            *field = apr_pstrdup(ctx->p, value);
            return 1;
        }
    }
    return 0;
}

/* An unsigned numeric attribute into *has / *out; fails the parse when it is no number. */
static void set_unsigned_attr(parse_ctx_t *ctx, const char *value, int *has, unsigned *out,
                              const char *errmsg)
{
    uint64_t v;

    if (!parse_decimal(value, UINT_MAX, &v)) {
        fail(ctx, XB_BODY_BAD_ATTRIBUTE, errmsg);
        return;
    }
    *has = 1;
    *out = (unsigned)v;
}

static void set_body_attr(parse_ctx_t *ctx, const char *name, const char *value)
{
    xb_bosh_body_t *b = ctx->body;

    if (set_string_attr(ctx, name, value)) {
        return;
    }
    if (name_is(name, "rid")) {
        if (!parse_decimal(value, XB_BOSH_RID_MAX, &b->rid) || b->rid == 0) {
            fail(ctx, XB_BODY_BAD_ATTRIBUTE, "rid attribute is not a positive integer "
                                             "up to 2^53-1");
            return;
        }
        b->has_rid = 1;
    }
    else if (name_is(name, "ack")) {
        /* The client acks one of its own rids, so the same bound applies. */
        if (!parse_decimal(value, XB_BOSH_RID_MAX, &b->ack)) {
            fail(ctx, XB_BODY_BAD_ATTRIBUTE, "ack attribute is not an unsigned integer "
                                             "up to 2^53-1");
            return;
        }
        b->has_ack = 1;
    }
    else if (name_is(name, "wait")) {
        set_unsigned_attr(ctx, value, &b->has_wait, &b->wait,
                          "wait attribute is not an unsigned integer");
    }
    else if (name_is(name, "hold")) {
        set_unsigned_attr(ctx, value, &b->has_hold, &b->hold,
                          "hold attribute is not an unsigned integer");
    }
    else if (name_is(name, "pause")) {
        set_unsigned_attr(ctx, value, &b->has_pause, &b->pause,
                          "pause attribute is not an unsigned integer");
    }
    else if (name_is(name, "type")) {
        /* The header promises "terminate" or NULL; other types mean nothing in a request. */
        if (!strcmp(value, "terminate")) {
            b->type = "terminate";
        }
    }
    else if (name_is(name, XB_XBOSH_NS XB_XML_NS_SEP_STR "restart")) {
        b->restart = !strcmp(value, "true") || !strcmp(value, "1");
    }
    /* Anything else is ignored (XEP-0124 lets future versions add attributes). */
}

static void start_body(parse_ctx_t *ctx, const XML_Char *name, const XML_Char **atts)
{
    int i;

    if (!name_is(name, XB_BOSH_NS XB_XML_NS_SEP_STR "body")) {
        fail(ctx, XB_BODY_NOT_BODY, "root element is not <body/> in the httpbind namespace");
        return;
    }
    for (i = 0; atts[i] && ctx->status == XB_BODY_OK; i += 2) {
        set_body_attr(ctx, atts[i], atts[i + 1]);
    }
    if (ctx->status == XB_BODY_OK && !ctx->body->has_rid) {
        fail(ctx, XB_BODY_BAD_ATTRIBUTE, "rid attribute missing");
    }
}

/* Current event's byte offset in the input, or the input length if expat has none. */
static apr_size_t event_offset(parse_ctx_t *ctx)
{
    XML_Index idx = XML_GetCurrentByteIndex(ctx->parser);

    if (idx < 0 || (apr_size_t)idx > ctx->len) {
        return ctx->len;
    }
    return (apr_size_t)idx;
}

static int is_name_end(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '/' || c == '>';
}

/* The namespace a top-level child without prefix or default declaration inherits from
 * <body/>, as it must be spelt out on the copy. */
static const char *inherited_ns(parse_ctx_t *ctx, const XML_Char *name)
{
    const char *sep = strchr(name, XB_XML_NS_SEP);

    /* For every real client that is the httpbind namespace (or none), and the stanza belongs
     * in jabber:client. A body that is itself prefixed may declare some other default: keep
     * that one. */
    if (!sep || !strncmp(name, XB_BOSH_NS XB_XML_NS_SEP_STR, sizeof(XB_BOSH_NS))) {
        return XB_CLIENT_NS;
    }
    return xb_xml_escape(ctx->p, apr_pstrndup(ctx->p, name, (apr_size_t)(sep - name)));
}

/* A child of <body/> starts: remember where its bytes begin and whether its start tag needs
 * a default namespace declaration to stand on its own. */
static void start_child(parse_ctx_t *ctx, const XML_Char *name, int declares_default,
                        apr_hash_t *own_prefixes)
{
    child_range_t *c = apr_array_push(ctx->children);
    apr_size_t i;
    int prefixed = 0;

    c->start = event_offset(ctx);
    for (i = c->start + 1; i < ctx->len && !is_name_end(ctx->data[i]); i++) {
        if (ctx->data[i] == ':') {
            prefixed = 1;
        }
    }
    c->name_end = i;
    c->end = c->start;
    c->insert = "";
    c->prefixes = own_prefixes ? own_prefixes : apr_hash_make(ctx->p);
    ctx->open_child = c;

    if (!prefixed && !declares_default) {
        c->insert = apr_pstrcat(ctx->p, " xmlns='", inherited_ns(ctx, name), "'", NULL);
    }
    else if (prefixed && !declares_default && ctx->body_default && *ctx->body_default
             && strcmp(ctx->body_default, XB_BOSH_NS)) {
        /* Unprefixed descendants of a prefixed child inherit the default of <body/>; the
         * stream would give them jabber:client instead unless it is declared here (found by
         * the fuzzer: test_regress_body_default_ns). With an httpbind default, jabber:client
         * is what they should get, so nothing is added. */
        c->insert = apr_pstrcat(ctx->p, " xmlns='", xb_xml_escape(ctx->p, ctx->body_default),
                                "'", NULL);
    }
}

/* An element or attribute inside a child uses a prefix: if <body/> declared it, copy the
 * declaration onto the child's start tag, or the forwarded bytes would carry an unbound
 * prefix. A declaration nearer the use shadows the copy, so adding it is always safe. */
static void need_prefix(parse_ctx_t *ctx, const XML_Char *name)
{
    child_range_t *c = ctx->open_child;
    const char *prefix = name_prefix(name);
    const char *uri;

    if (!prefix || !c || apr_hash_get(c->prefixes, prefix, APR_HASH_KEY_STRING)) {
        return;
    }
    uri = apr_hash_get(ctx->body_prefixes, prefix, APR_HASH_KEY_STRING);
    if (!uri) {
        return; /* declared inside the child itself */
    }
    prefix = apr_pstrdup(ctx->p, prefix);
    apr_hash_set(c->prefixes, prefix, APR_HASH_KEY_STRING, prefix);
    c->insert = apr_pstrcat(ctx->p, c->insert, " xmlns:", prefix, "='", xb_xml_escape(ctx->p, uri),
                            "'", NULL);
}

static void start_inside_child(parse_ctx_t *ctx, const XML_Char *name, const XML_Char **atts)
{
    int i;

    if (apr_hash_count(ctx->body_prefixes) == 0) {
        return; /* the common case: nothing to inherit */
    }
    need_prefix(ctx, name);
    for (i = 0; atts[i]; i += 2) {
        need_prefix(ctx, atts[i]);
    }
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    parse_ctx_t *ctx = ud;
    int declares_default = ctx->child_declares_default;
    apr_hash_t *own_prefixes = ctx->pending_prefixes;

    /* They belonged to this element only. */
    ctx->child_declares_default = 0;
    ctx->pending_prefixes = NULL;
    if (ctx->status != XB_BODY_OK) {
        return;
    }
    if (ctx->depth == 0) {
        start_body(ctx, name, atts);
    }
    else if (ctx->depth > ctx->max_depth) {
        /* This element would sit at nesting level `depth` inside <body/>. */
        fail(ctx, XB_BODY_TOO_DEEP, "elements nested too deep");
        return;
    }
    else {
        if (ctx->depth == 1) {
            start_child(ctx, name, declares_default, own_prefixes);
            ctx->body->child_count++;
        }
        start_inside_child(ctx, name, atts);
    }
    ctx->depth++;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    parse_ctx_t *ctx = ud;

    (void)name;
    if (ctx->status != XB_BODY_OK || ctx->depth == 0) {
        return;
    }
    ctx->depth--;
    if (ctx->depth == 1 && ctx->open_child) {
        /* For "</a>" the event is the end tag; for "<a/>" expat reports the end event at the
         * offset just past the tag with a count of 0. index + count is the end either way. */
        apr_size_t end = event_offset(ctx) + (apr_size_t)XML_GetCurrentByteCount(ctx->parser);
        ctx->open_child->end = end > ctx->len ? ctx->len : end;
        ctx->open_child = NULL;
    }
}

/* Fires just before the start event of the element carrying the declaration. */
static void XMLCALL on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    parse_ctx_t *ctx = ud;

    if (ctx->status != XB_BODY_OK) {
        return;
    }
    if (!prefix) {
        ctx->child_declares_default = 1;
        if (ctx->depth == 0) {
            ctx->body_default = uri ? apr_pstrdup(ctx->p, uri) : NULL;
        }
    }
    else if (ctx->depth == 0 && uri) {
        apr_hash_set(ctx->body_prefixes, apr_pstrdup(ctx->p, prefix), APR_HASH_KEY_STRING,
                     apr_pstrdup(ctx->p, uri));
    }
    else if (ctx->depth == 1) {
        /* On a top-level child's own start tag: never insert a second declaration of it. */
        if (!ctx->pending_prefixes) {
            ctx->pending_prefixes = apr_hash_make(ctx->p);
        }
        prefix = apr_pstrdup(ctx->p, prefix);
        apr_hash_set(ctx->pending_prefixes, prefix, APR_HASH_KEY_STRING, prefix);
    }
}

static int is_xml_space(const XML_Char *s, int len)
{
    int i;

    for (i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            return 0;
        }
    }
    return 1;
}

static void XMLCALL on_chardata(void *ud, const XML_Char *s, int len)
{
    parse_ctx_t *ctx = ud;

    /* Inside a child it is payload (copied from the raw bytes); between children only
     * whitespace may appear (XEP-0124 §6). */
    if (ctx->status == XB_BODY_OK && ctx->depth == 1 && !is_xml_space(s, len)) {
        fail(ctx, XB_BODY_MALFORMED, "character data at body level");
    }
}

/* Restricted XML (xb_xml_restrict): a DOCTYPE, an entity declaration, a comment or a
 * processing instruction is refused. */
static void refuse(void *ud, const xb_xml_refusal_t *what)
{
    fail(ud, XB_BODY_FORBIDDEN, what->message);
}

static void XMLCALL on_xml_decl(void *ud, const XML_Char *version, const XML_Char *encoding,
                                int standalone)
{
    (void)version;
    (void)standalone;
    /* The parser reads the input as UTF-8 whatever it declares, and the payload bytes go to the
     * XMPP server (UTF-8 only, RFC 6120 §11.6) untouched: a body declaring another encoding
     * would be misread. */
    if (encoding && strcasecmp(encoding, "UTF-8") != 0) {
        fail(ud, XB_BODY_MALFORMED, "encoding is not UTF-8");
    }
}

static void setup_parser(parse_ctx_t *ctx)
{
    XML_Parser xp = ctx->parser;

    ctx->restrict_xml.refuse = refuse;
    xb_xml_restrict_install(xp, &ctx->restrict_xml);
    XML_SetElementHandler(xp, on_start, on_end);
    XML_SetStartNamespaceDeclHandler(xp, on_ns_start);
    XML_SetCharacterDataHandler(xp, on_chardata);
    XML_SetXmlDeclHandler(xp, on_xml_decl);
    /* Prefixes in expanded names tell which of <body/>'s declarations a child relies on. */
    XML_SetReturnNSTriplet(xp, 1);
}

static char *append(char *o, const char *s, apr_size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

/* Concatenates the children's bytes, inserting the namespace declarations they need. */
static void assemble_payload(parse_ctx_t *ctx)
{
    const child_range_t *c = (const child_range_t *)ctx->children->elts;
    apr_size_t total = 0;
    char *out, *o;
    int i;

    for (i = 0; i < ctx->children->nelts; i++) {
        total += c[i].end - c[i].start + strlen(c[i].insert);
    }
    o = out = apr_palloc(ctx->p, total + 1);
    for (i = 0; i < ctx->children->nelts; i++) {
        o = append(o, ctx->data + c[i].start, c[i].name_end - c[i].start);
        o = append(o, c[i].insert, strlen(c[i].insert));
        o = append(o, ctx->data + c[i].name_end, c[i].end - c[i].name_end);
    }
    *o = '\0';
    ctx->body->payload = out;
    ctx->body->payload_len = total;
}

static void run_parser(parse_ctx_t *ctx)
{
    if (ctx->len > INT_MAX) {
        fail(ctx, XB_BODY_MALFORMED, "body too large");
        return;
    }
    if (XML_Parse(ctx->parser, ctx->data, (int)ctx->len, 1) != XML_STATUS_OK
        && ctx->status == XB_BODY_OK) {
        /* expat's own message names the problem without quoting the input. */
        ctx->status = XB_BODY_MALFORMED;
        ctx->errmsg = apr_psprintf(ctx->p, "not well-formed XML: %s at byte %" APR_INT64_T_FMT,
                                   XML_ErrorString(XML_GetErrorCode(ctx->parser)),
                                   (apr_int64_t)XML_GetCurrentByteIndex(ctx->parser));
    }
}

xb_bosh_body_status_t xb_bosh_body_parse(apr_pool_t *p, const char *data, apr_size_t len,
                                         const xb_bosh_parse_limits_t *limits,
                                         xb_bosh_body_t **body, const char **errmsg)
{
    parse_ctx_t ctx;
    apr_pool_t *scratch = NULL;

    memset(&ctx, 0, sizeof(ctx));
    ctx.p = p;
    ctx.data = data;
    ctx.len = data ? len : 0;
    ctx.max_depth = limits ? limits->max_depth : DEFAULT_MAX_DEPTH;
    ctx.status = XB_BODY_OK;
    ctx.body = apr_pcalloc(p, sizeof(*ctx.body));
    ctx.children = apr_array_make(p, 4, sizeof(child_range_t));
    ctx.body_prefixes = apr_hash_make(p);
    *body = NULL;
    *errmsg = NULL;
    if (xb_xml_has_foreign_bytes(ctx.data, ctx.len)) {
        *errmsg = "a byte no UTF-8 XML can contain (NUL, 0xFE, 0xFF)";
        return XB_BODY_MALFORMED;
    }

    /* Forcing UTF-8 keeps expat's view of the bytes and the payload copies the same. */
    if (limits && limits->expat_in_pool) {
        /* Apache's handler threads: expat's memory from a pool (see
         * xb_xml_restrict_parser_create_in). Elsewhere (the daemon, one thread): a parser
         * kept for reuse, which saves its set-up on every body. */
        if (apr_pool_create(&scratch, p) != APR_SUCCESS) {
            *errmsg = "cannot create XML parser";
            return XB_BODY_MALFORMED;
        }
        ctx.parser = xb_xml_restrict_parser_create_in(scratch, 1);
    }
    else {
        ctx.parser = xb_xml_restrict_ns_parser_take();
    }
    if (!ctx.parser) {
        if (scratch) {
            apr_pool_destroy(scratch);
        }
        *errmsg = "cannot create XML parser";
        return XB_BODY_MALFORMED;
    }
    setup_parser(&ctx);
    run_parser(&ctx);
    if (scratch) {
        XML_ParserFree(ctx.parser);
        apr_pool_destroy(scratch);
    }
    else {
        xb_xml_restrict_ns_parser_give(ctx.parser, ctx.len);
    }
    ctx.parser = NULL;

    if (ctx.status != XB_BODY_OK) {
        *errmsg = ctx.errmsg;
        return ctx.status;
    }
    assemble_payload(&ctx);
    *body = ctx.body;
    return XB_BODY_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Response building */

static const char *creation_attrs(apr_pool_t *p, const xb_bosh_response_attrs_t *a)
{
    const char *s;

    s = apr_psprintf(p, "%s%s%s wait='%u' requests='%u' hold='%u' inactivity='%u' polling='%u'",
                     a->sid ? " sid='" : "", a->sid ? xb_xml_escape(p, a->sid) : "",
                     a->sid ? "'" : "", a->wait, a->requests, a->hold, a->inactivity,
                     a->polling);
    if (a->ver) {
        s = apr_pstrcat(p, s, " ver='", xb_xml_escape(p, a->ver), "'", NULL);
    }
    if (a->from) {
        s = apr_pstrcat(p, s, " from='", xb_xml_escape(p, a->from), "'", NULL);
    }
    if (a->maxpause) {
        s = apr_psprintf(p, "%s maxpause='%u'", s, a->maxpause);
    }
    if (a->accept) {
        s = apr_pstrcat(p, s, " accept='", xb_xml_escape(p, a->accept), "'", NULL);
    }
    return apr_pstrcat(p, s, " xmlns:xmpp='" XB_XBOSH_NS "' xmpp:version='1.0'"
                             " xmpp:restartlogic='true'", NULL);
}

/* Everything between "<body" and ">" (or "/>"). */
static const char *response_attrs(apr_pool_t *p, const xb_bosh_response_attrs_t *a)
{
    const char *s = " xmlns='" XB_BOSH_NS "' xmlns:stream='" XB_STREAM_NS "'";

    if (a->creation) {
        s = apr_pstrcat(p, s, creation_attrs(p, a), NULL);
    }
    if (a->ack) {
        s = apr_psprintf(p, "%s ack='%" APR_UINT64_T_FMT "'", s, (apr_uint64_t)a->ack);
    }
    if (a->report) {
        s = apr_psprintf(p, "%s report='%" APR_UINT64_T_FMT "' time='%" APR_UINT64_T_FMT "'", s,
                         (apr_uint64_t)a->report, a->time_ms);
    }
    if (a->stream) {
        s = apr_pstrcat(p, s, " stream='", xb_xml_escape(p, a->stream), "'", NULL);
    }
    if (a->stream_from && !a->creation) {
        s = apr_pstrcat(p, s, " from='", xb_xml_escape(p, a->stream_from), "'", NULL);
    }
    /* A terminal condition ends the session, so it wins over a recoverable error. */
    if (a->condition != XB_COND_NONE) {
        s = apr_pstrcat(p, s, " type='terminate' condition='",
                        xb_bosh_condition_name(a->condition), "'", NULL);
    }
    else if (a->recoverable_error) {
        s = apr_pstrcat(p, s, " type='error'", NULL);
    }
    return s;
}

char *xb_bosh_response_build(apr_pool_t *p, const xb_bosh_response_attrs_t *attrs,
                             const char *payload, apr_size_t payload_len, apr_size_t *len)
{
    const char *head = response_attrs(p, attrs);
    const char *uri = "";
    apr_size_t head_len, uri_len, total;
    char *out, *o;

    if (attrs->condition == XB_COND_SEE_OTHER_URI && attrs->see_other_uri) {
        uri = apr_pstrcat(p, "<uri>", xb_xml_escape(p, attrs->see_other_uri), "</uri>", NULL);
    }
    if (!payload) {
        payload_len = 0;
    }
    head_len = strlen(head);
    uri_len = strlen(uri);

    if (uri_len == 0 && payload_len == 0) {
        out = apr_pstrcat(p, "<body", head, "/>", NULL);
        *len = strlen(out);
        return out;
    }
    total = strlen("<body>") + head_len + uri_len + payload_len + strlen("</body>");
    o = out = apr_palloc(p, total + 1);
    o = append(o, "<body", 5);
    o = append(o, head, head_len);
    o = append(o, ">", 1);
    o = append(o, uri, uri_len);
    if (payload_len) {
        o = append(o, payload, payload_len);
    }
    o = append(o, "</body>", 7);
    *o = '\0';
    *len = total;
    return out;
}

char *xb_bosh_terminate_build(apr_pool_t *p, xb_bosh_condition_t cond, apr_size_t *len)
{
    xb_bosh_response_attrs_t attrs;
    char *out;

    if (cond == XB_COND_NONE) {
        /* A plain terminate (XEP-0124 §13): the session ends without an error. */
        out = apr_pstrdup(p, "<body xmlns='" XB_BOSH_NS "' xmlns:stream='" XB_STREAM_NS "'"
                             " type='terminate'/>");
        *len = strlen(out);
        return out;
    }
    memset(&attrs, 0, sizeof(attrs));
    attrs.condition = cond;
    return xb_bosh_response_build(p, &attrs, NULL, 0, len);
}

int xb_bosh_accept_has(const char *list, const char *coding)
{
    apr_size_t n = strlen(coding);
    const char *c = list;

    while (c && *c) {
        const char *end;
        apr_size_t len;

        while (*c == ' ' || *c == '\t' || *c == ',') {
            c++;
        }
        end = strchr(c, ',');
        len = end ? (apr_size_t)(end - c) : strlen(c);
        while (len && (c[len - 1] == ' ' || c[len - 1] == '\t')) {
            len--;
        }
        if (len == n && strncasecmp(c, coding, n) == 0) {
            return 1;
        }
        c = end;
    }
    return 0;
}

const char *xb_bosh_content_type(const xb_bosh_body_t *body)
{
    const char *c, *ct = body ? body->content : NULL;
    int slash = 0;

    if (!ct || !*ct || strlen(ct) > 127) {
        return NULL;
    }
    for (c = ct; *c; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch < 0x20 || ch > 0x7e) {
            return NULL; /* no CR/LF (header splitting), nothing a header cannot carry */
        }
        slash += ch == '/';
    }
    return slash ? ct : NULL;
}

/* For xb_bosh_body_legacy_hint: what the root start tag carries. */
typedef struct {
    xb_xml_restrict_t restrict_cb; /* first: the refusal handlers find it (xb_xml_restrict.h) */
    XML_Parser parser;
    int seen, has_sid, has_ver;
} legacy_hint_ctx_t;

/* A DOCTYPE (or any other refused construct) before the root: not a request to answer with a
 * legacy code, and nothing of it is read further. */
static void legacy_hint_refuse(void *ud, const xb_xml_refusal_t *what)
{
    legacy_hint_ctx_t *h = ud;

    (void)what;
    h->seen = 0;
    XML_StopParser(h->parser, XML_FALSE);
}

static void XMLCALL legacy_hint_start(void *data, const XML_Char *name, const XML_Char **atts)
{
    legacy_hint_ctx_t *h = data;
    int i;

    /* Only a BOSH <body/> can be a legacy client's request; anything else is not BOSH. */
    h->seen = name_is(name, XB_BOSH_NS XB_XML_NS_SEP_STR "body");
    for (i = 0; atts[i]; i += 2) {
        h->has_sid |= name_is(atts[i], "sid");
        h->has_ver |= name_is(atts[i], "ver");
    }
    XML_StopParser(h->parser, XML_FALSE);
}

int xb_bosh_body_legacy_hint(const char *data, apr_size_t len)
{
    legacy_hint_ctx_t h;

    memset(&h, 0, sizeof(h));
    if (!data || len > INT_MAX || xb_xml_has_foreign_bytes(data, len)) {
        return 0;
    }
    h.parser = xb_xml_restrict_parser_create(1);
    if (!h.parser) {
        return 0;
    }
    h.restrict_cb.refuse = legacy_hint_refuse;
    xb_xml_restrict_install(h.parser, &h.restrict_cb);
    XML_SetStartElementHandler(h.parser, legacy_hint_start);
    (void)XML_Parse(h.parser, data, (int)len, 1);
    XML_ParserFree(h.parser);
    return h.seen && !h.has_sid && !h.has_ver;
}
