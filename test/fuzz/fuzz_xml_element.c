/* libFuzzer harness: one raw element into a tree (xb_xml_element_parse) and its accessors.
 *
 * Input: byte 0 picks limits (bit 0 set: small depth and element limits from the other bits),
 * the rest is the element as xb_xmpp_conn would hand it up.
 *
 * Invariants on an accepted tree: parent/child/sibling links agree, depth and element count
 * are within the limits, text is a C string of text_len bytes, the accessors find what the
 * arrays hold. And the tree means what it says: written out again (every namespace declared
 * explicitly, text escaped) it parses back to the same tree.
 */
#include <apr_strings.h>

#include "fuzz_common.h"
#include "xb_xml_element.h"

#define XML_NS "http://www.w3.org/XML/1998/namespace"

typedef struct {
    apr_pool_t *p;
    char *buf;
    size_t len, cap;
    int skip; /* a name the writer cannot spell back (see below) */
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        char *nb;
        while (cap < o->len + n + 1) {
            cap *= 2;
        }
        nb = apr_palloc(o->p, cap);
        if (o->len) {
            memcpy(nb, o->buf, o->len);
        }
        o->buf = nb;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Escaped for an attribute value in '...' or for text: what attribute-value normalisation or
 * line-end handling would change is written as a character reference. */
static void put_escaped(out_t *o, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': puts_(o, "&amp;"); break;
        case '<': puts_(o, "&lt;"); break;
        case '>': puts_(o, "&gt;"); break;
        case '\'': puts_(o, "&apos;"); break;
        case '"': puts_(o, "&quot;"); break;
        case '\t': puts_(o, "&#9;"); break;
        case '\n': puts_(o, "&#10;"); break;
        case '\r': puts_(o, "&#13;"); break;
        default: put(o, s + i, 1); break;
        }
    }
}

static void write_element(out_t *o, const xb_xml_element_t *e)
{
    const xb_xml_element_t *c;
    int i;

    if (strchr(e->name, ':')) {
        o->skip = 1;
        return;
    }
    puts_(o, "<");
    if (!strcmp(e->ns, XML_NS)) {
        /* Only the xml prefix may name that namespace. */
        puts_(o, "xml:");
        puts_(o, e->name);
    }
    else {
        puts_(o, e->name);
        puts_(o, " xmlns='");
        put_escaped(o, e->ns, strlen(e->ns));
        puts_(o, "'");
    }
    for (i = 0; i < e->nattrs; i++) {
        const xb_xml_attr_t *a = &e->attrs[i];
        char prefix[24];
        if (strchr(a->name, ':')) {
            o->skip = 1;
            return;
        }
        if (!a->ns[0]) {
            snprintf(prefix, sizeof(prefix), " ");
        }
        else if (!strcmp(a->ns, XML_NS)) {
            snprintf(prefix, sizeof(prefix), " xml:");
        }
        else {
            snprintf(prefix, sizeof(prefix), " xmlns:a%d='", i);
            puts_(o, prefix);
            put_escaped(o, a->ns, strlen(a->ns));
            snprintf(prefix, sizeof(prefix), "' a%d:", i);
        }
        puts_(o, prefix);
        puts_(o, a->name);
        puts_(o, "='");
        put_escaped(o, a->value, strlen(a->value));
        puts_(o, "'");
    }
    puts_(o, ">");
    put_escaped(o, e->text, e->text_len);
    for (c = e->first_child; c; c = c->next) {
        write_element(o, c);
    }
    puts_(o, "</");
    if (!strcmp(e->ns, XML_NS)) {
        puts_(o, "xml:");
    }
    puts_(o, e->name);
    puts_(o, ">");
}

static void same_tree(const xb_xml_element_t *a, const xb_xml_element_t *b)
{
    const xb_xml_element_t *ca, *cb;
    int i;

    FUZZ_CHECK(!strcmp(a->ns, b->ns) && !strcmp(a->name, b->name));
    FUZZ_CHECK(a->nattrs == b->nattrs);
    for (i = 0; i < a->nattrs; i++) {
        FUZZ_CHECK(!strcmp(a->attrs[i].ns, b->attrs[i].ns));
        FUZZ_CHECK(!strcmp(a->attrs[i].name, b->attrs[i].name));
        FUZZ_CHECK(!strcmp(a->attrs[i].value, b->attrs[i].value));
    }
    FUZZ_CHECK(a->text_len == b->text_len && !memcmp(a->text, b->text, a->text_len));
    for (ca = a->first_child, cb = b->first_child; ca && cb; ca = ca->next, cb = cb->next) {
        same_tree(ca, cb);
    }
    FUZZ_CHECK(!ca && !cb);
}

static void walk(const xb_xml_element_t *e, const xb_xml_element_t *parent, size_t depth,
                 const xb_xml_limits_t *lim, size_t *count)
{
    const xb_xml_element_t *c;
    int i;

    FUZZ_CHECK(e->parent == parent);
    FUZZ_CHECK(depth <= lim->max_depth);
    FUZZ_CHECK(++*count <= lim->max_elements);
    FUZZ_CHECK(e->ns && e->name && e->text);
    FUZZ_CHECK(strlen(e->text) == e->text_len);
    FUZZ_CHECK(e->nattrs >= 0 && (e->nattrs == 0 || e->attrs));
    FUZZ_CHECK(xb_xml_element_is(e, e->ns, e->name));
    for (i = 0; i < e->nattrs; i++) {
        FUZZ_CHECK(e->attrs[i].ns && e->attrs[i].name && e->attrs[i].value);
        if (!e->attrs[i].ns[0]) {
            /* The first unprefixed attribute of that name (expat refuses duplicates). */
            FUZZ_CHECK(xb_xml_element_attr(e, e->attrs[i].name) == e->attrs[i].value);
        }
    }
    for (c = e->first_child; c; c = c->next) {
        FUZZ_CHECK(xb_xml_element_child(e, c->ns, NULL) != NULL);
        FUZZ_CHECK(xb_xml_element_child(e, c->ns, c->name) != NULL);
        walk(c, e, depth + 1, lim, count);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    xb_xml_limits_t lim, eff, big;
    xb_xml_element_t *e, *again;
    const char *err = NULL;
    char *copy;
    size_t count = 0;
    out_t o;

    if (size < 1 || size > 300 * 1024) {
        return 0;
    }
    memset(&lim, 0, sizeof(lim));
    if (data[0] & 1) {
        lim.max_depth = 1 + (data[0] >> 1) % 8;
        lim.max_elements = 1 + (size_t)(data[0] >> 4) * 3;
        lim.max_size = 2048;
    }
    eff.max_depth = lim.max_depth ? lim.max_depth : XB_XML_ELEMENT_DEFAULT_MAX_DEPTH;
    eff.max_elements = lim.max_elements ? lim.max_elements : XB_XML_ELEMENT_DEFAULT_MAX_ELEMENTS;
    eff.max_size = lim.max_size ? lim.max_size : XB_XML_ELEMENT_DEFAULT_MAX_SIZE;
    data++;
    size--;

    p = fuzz_pool();
    copy = apr_pmemdup(p, data, size);
    e = xb_xml_element_parse(p, copy, size, &lim, &err);
    if (!e) {
        FUZZ_CHECK(err != NULL);
        fuzz_touch(err, strlen(err));
        fuzz_pool_done(p);
        return 0;
    }
    FUZZ_CHECK(size <= eff.max_size);
    walk(e, NULL, 1, &eff, &count);

    memset(&o, 0, sizeof(o));
    o.p = p;
    write_element(&o, e);
    if (!o.skip) {
        memset(&big, 0, sizeof(big));
        big.max_size = o.len + 1;
        big.max_depth = eff.max_depth;
        big.max_elements = eff.max_elements;
        again = xb_xml_element_parse(p, o.buf, o.len, &big, &err);
        if (!again) {
            fprintf(stderr, "rewritten tree refused (%s):\n%s\n", err, o.buf);
        }
        FUZZ_CHECK(again != NULL);
        same_tree(e, again);
    }
    fuzz_pool_done(p);
    return 0;
}
