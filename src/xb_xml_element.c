/* One raw XML element into a tree (see xb_xml_element.h).
 *
 * The element is parsed inside a synthetic root that declares what the stream header declared
 * (default namespace jabber:client, prefix stream), so expat in namespace mode resolves names
 * exactly as they were meant in the stream. The input can never escape that root: anything
 * that closes it early leaves our closing tag as junk after the document, which expat rejects.
 */
#include <limits.h>
#include <string.h>

#include <apr_strings.h>
#include <expat.h>

#include "xb_xml_element.h"
#include "xb_xml_restrict.h"

#define WRAP_OPEN                                                                           \
    "<xb-wrap xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
#define WRAP_CLOSE "</xb-wrap>"

/* An element under construction; `e` first so the public pointer is the node pointer. */
typedef struct node {
    xb_xml_element_t e;
    char *buf;                    /* text being collected */
    apr_size_t cap;
    xb_xml_element_t *last_child; /* to append children in order */
} node_t;

typedef struct {
    xb_xml_restrict_t restrict_xml; /* first: the parser's user data is the context */
    apr_pool_t *p;
    XML_Parser parser;
    xb_xml_limits_t limits;
    apr_size_t depth;    /* 0: outside the wrapper, 1: inside it, 2: inside the element... */
    apr_size_t elements;
    node_t *root;
    node_t *cur;
    int root_closed;
    const char *errmsg;
} parse_ctx_t;

/* Records the first failure and stops expat (which may still deliver an event or two). */
static void fail(parse_ctx_t *ctx, const char *msg)
{
    if (!ctx->errmsg) {
        ctx->errmsg = msg;
        XML_StopParser(ctx->parser, XML_FALSE);
    }
}

/* Splits an expanded name into namespace and local name. */
static void split_name(apr_pool_t *p, const XML_Char *expanded, const char **ns,
                       const char **local)
{
    const char *sep = strchr(expanded, XB_XML_NS_SEP);

    if (sep) {
        *ns = apr_pstrmemdup(p, expanded, (apr_size_t)(sep - expanded));
        *local = apr_pstrdup(p, sep + 1);
    }
    else {
        *ns = "";
        *local = apr_pstrdup(p, expanded);
    }
}

static void on_start(void *data, const XML_Char *name, const XML_Char **atts)
{
    parse_ctx_t *ctx = data;
    node_t *n;
    xb_xml_attr_t *attrs;
    int i, count = 0;

    if (ctx->errmsg) {
        return;
    }
    ctx->depth++;
    if (ctx->depth == 1) {
        return; /* our wrapper */
    }
    if (ctx->depth == 2 && (ctx->root || ctx->root_closed)) {
        fail(ctx, "more than one element");
        return;
    }
    if (ctx->depth - 1 > ctx->limits.max_depth) {
        fail(ctx, "element nested too deeply");
        return;
    }
    if (++ctx->elements > ctx->limits.max_elements) {
        fail(ctx, "too many elements");
        return;
    }
    n = apr_pcalloc(ctx->p, sizeof(*n));
    split_name(ctx->p, name, &n->e.ns, &n->e.name);
    for (i = 0; atts[i]; i += 2) {
        count++;
    }
    attrs = apr_pcalloc(ctx->p, sizeof(*attrs) * (apr_size_t)(count ? count : 1));
    for (i = 0; i < count; i++) {
        split_name(ctx->p, atts[2 * i], &attrs[i].ns, &attrs[i].name);
        attrs[i].value = apr_pstrdup(ctx->p, atts[2 * i + 1]);
    }
    n->e.attrs = attrs;
    n->e.nattrs = count;
    n->e.text = "";
    if (ctx->cur) {
        n->e.parent = &ctx->cur->e;
        if (ctx->cur->last_child) {
            ctx->cur->last_child->next = &n->e;
        }
        else {
            ctx->cur->e.first_child = &n->e;
        }
        ctx->cur->last_child = &n->e;
    }
    else {
        ctx->root = n;
    }
    ctx->cur = n;
}

static void on_end(void *data, const XML_Char *name)
{
    parse_ctx_t *ctx = data;

    (void)name;
    if (ctx->errmsg) {
        return;
    }
    if (ctx->depth >= 2 && ctx->cur) {
        ctx->cur->buf = NULL; /* text is final; the buffer is e.text */
        ctx->cur = (node_t *)ctx->cur->e.parent;
        if (ctx->depth == 2) {
            ctx->root_closed = 1;
        }
    }
    ctx->depth--;
}

static void on_text(void *data, const XML_Char *s, int len)
{
    parse_ctx_t *ctx = data;
    node_t *n = ctx->cur;
    apr_size_t need;

    if (ctx->errmsg || len <= 0) {
        return;
    }
    if (!n) {
        /* Between our wrapper and the element: only whitespace belongs there. */
        int i;
        for (i = 0; i < len; i++) {
            if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
                fail(ctx, "text outside the element");
                return;
            }
        }
        return;
    }
    need = n->e.text_len + (apr_size_t)len + 1;
    if (need > n->cap) {
        /* Doubling bounds the waste to the text size; the input size bounds the text. */
        apr_size_t cap = n->cap ? n->cap * 2 : 64;
        char *buf;
        while (cap < need) {
            cap *= 2;
        }
        buf = apr_palloc(ctx->p, cap);
        memcpy(buf, n->e.text, n->e.text_len);
        n->buf = buf;
        n->cap = cap;
        n->e.text = buf;
    }
    memcpy(n->buf + n->e.text_len, s, (apr_size_t)len);
    n->e.text_len += (apr_size_t)len;
    n->buf[n->e.text_len] = '\0';
}

/* RFC 6120 §11.1: no DTD, entity declaration, processing instruction or comment may appear
 * in an XMPP stream (xb_xml_restrict). */
static void refuse(void *data, const xb_xml_refusal_t *what)
{
    fail(data, what->message);
}

static int feed(parse_ctx_t *ctx, const char *data, apr_size_t len, int final)
{
    if (ctx->errmsg) {
        return 0;
    }
    if (XML_Parse(ctx->parser, data, (int)len, final) != XML_STATUS_OK) {
        if (!ctx->errmsg) {
            ctx->errmsg = "not well-formed";
        }
        return 0;
    }
    return !ctx->errmsg;
}

xb_xml_element_t *xb_xml_element_parse(apr_pool_t *p, const char *data, apr_size_t len,
                                       const xb_xml_limits_t *limits, const char **errmsg)
{
    parse_ctx_t ctx;
    int ok;

    memset(&ctx, 0, sizeof(ctx));
    ctx.p = p;
    if (limits) {
        ctx.limits = *limits;
    }
    if (!ctx.limits.max_size) {
        ctx.limits.max_size = XB_XML_ELEMENT_DEFAULT_MAX_SIZE;
    }
    if (!ctx.limits.max_depth) {
        ctx.limits.max_depth = XB_XML_ELEMENT_DEFAULT_MAX_DEPTH;
    }
    if (!ctx.limits.max_elements) {
        ctx.limits.max_elements = XB_XML_ELEMENT_DEFAULT_MAX_ELEMENTS;
    }
    /* The cap also keeps the length within expat's int. */
    if (len > ctx.limits.max_size || len > (apr_size_t)INT_MAX / 2) {
        *errmsg = "element too large";
        return NULL;
    }
    ctx.parser = xb_xml_restrict_parser_create(1);
    if (!ctx.parser) {
        *errmsg = "out of memory";
        return NULL;
    }
    ctx.restrict_xml.refuse = refuse;
    xb_xml_restrict_install(ctx.parser, &ctx.restrict_xml);
    XML_SetElementHandler(ctx.parser, on_start, on_end);
    XML_SetCharacterDataHandler(ctx.parser, on_text);

    ok = feed(&ctx, WRAP_OPEN, sizeof(WRAP_OPEN) - 1, 0)
         && feed(&ctx, data, len, 0)
         && feed(&ctx, WRAP_CLOSE, sizeof(WRAP_CLOSE) - 1, 1);
    XML_ParserFree(ctx.parser);
    if (!ok) {
        *errmsg = ctx.errmsg;
        return NULL;
    }
    if (!ctx.root || !ctx.root_closed) {
        *errmsg = "no element";
        return NULL;
    }
    return &ctx.root->e;
}

int xb_xml_element_is(const xb_xml_element_t *e, const char *ns, const char *name)
{
    return e && !strcmp(e->ns, ns) && !strcmp(e->name, name);
}

xb_xml_element_t *xb_xml_element_child(const xb_xml_element_t *e, const char *ns,
                                       const char *name)
{
    xb_xml_element_t *c;

    for (c = e ? e->first_child : NULL; c; c = c->next) {
        if (!strcmp(c->ns, ns) && (!name || !strcmp(c->name, name))) {
            return c;
        }
    }
    return NULL;
}

const char *xb_xml_element_attr(const xb_xml_element_t *e, const char *name)
{
    int i;

    for (i = 0; i < e->nattrs; i++) {
        if (!e->attrs[i].ns[0] && !strcmp(e->attrs[i].name, name)) {
            return e->attrs[i].value;
        }
    }
    return NULL;
}
