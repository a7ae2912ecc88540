/* Framing an XMPP server's stream into raw top-level elements; see xb_xmpp_framer.h.
 *
 * expat reports every event's position as an absolute offset into the stream
 * (XML_GetCurrentByteIndex) and its length (XML_GetCurrentByteCount). We keep the bytes from
 * the current top-level element's start on (`in`, whose first byte is at offset `in_base`)
 * and cut the element out of them when its end tag arrives. An element may span any number of
 * feeds, and one feed may carry many elements, so nothing depends on how the bytes are split.
 * Between elements the buffer is trimmed up to the end of the last event, so whitespace
 * keep-alives do not accumulate.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <apr_errno.h>
#include <expat.h>
#include "xb_config.h"
#include "xb_bosh_body.h"
#include "xb_buf.h"
#include "xb_xml_restrict.h"
#include "xb_xmpp_framer.h"

/* Input is parsed in slices so a huge read cannot make `in` hold more than one slice beyond
 * the element limit before the limit is checked. */
#define FEED_SLICE 4096
/* Buffers bigger than this are released when empty: one big stanza must not pin memory for
 * the rest of a long session. Most sessions sit idle most of the time, so the bar is low:
 * 64 kB here made a session that once got a 30 kB roster keep 64 kB for its whole life, and
 * 4 kB kept the first 1 kB allocation of every idle stream (a malloc per read costs less). */
#define KEEP_CAPACITY 0

#define CLIENT_NS_ATTR " xmlns='" XB_CLIENT_NS "'"

/* expat 2.6 defers reparsing a partial token until twice as many bytes are there
 * (CVE-2023-52425). On a stream that would hold a complete stanza back until more bytes
 * arrive, which on a quiet XMPP connection may be minutes, so we turn it off. Distributions
 * backport the deferral into 2.5.0 without changing the version (Debian bookworm does), so
 * without a version to go by the function is taken as a weak symbol when present. */
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6) \
    || defined(HAVE_XML_SETREPARSEDEFERRALENABLED)
static void disable_reparse_deferral(XML_Parser p)
{
    XML_SetReparseDeferralEnabled(p, XML_FALSE);
}
#else
XMLPARSEAPI(XML_Bool) XML_SetReparseDeferralEnabled(XML_Parser parser, XML_Bool enabled);
#pragma weak XML_SetReparseDeferralEnabled

static void disable_reparse_deferral(XML_Parser p)
{
    if (XML_SetReparseDeferralEnabled) {
        XML_SetReparseDeferralEnabled(p, XML_FALSE);
    }
}
#endif


struct xb_xmpp_framer {
    xb_xml_restrict_t restrict_xml; /* first: the parser's user data is the framer */
    apr_pool_t *pool;
    XML_Parser parser;
    xb_xmpp_framer_events_t events;
    void *baton;
    apr_size_t max_element;
    apr_size_t max_depth;

    xb_buf_t in;          /* stream bytes from offset in_base on */
    XML_Index in_base;
    XML_Index consumed; /* end of the last event outside a top-level element */
    xb_buf_t out;         /* an element with xmlns inserted */
    xb_buf_t ns;          /* namespace of the current top-level element, NUL-terminated */

    apr_size_t depth;   /* 0: before the stream, 1: in it, 2: in a top-level element... */
    XML_Index elem_start;
    int elem_add_ns;
    int elem_has_ns;

    int busy;           /* inside xb_xmpp_framer_feed */
    int compacted;      /* parser freed (xb_xmpp_framer_compact); the next feed makes one */
    int replaying;      /* feeding the rebuilt parser its root start tag: no events */
    /* 0, or (rebuilt parser) the stream's line and column its position after the replayed
     * tag stands for: error messages name positions in the stream as the server sent it. */
    XML_Size origin_line;
    XML_Size origin_column;
    int failed;
    int stream_closed;
    int reset_pending;
    int destroy_pending;
    char why[200];
};

/* No event may fire once the stream is broken, over, or about to be reset or freed: expat
 * still calls the end handler of an empty element after we stopped it in the start handler. */
static int halted(const xb_xmpp_framer_t *f)
{
    return f->failed || f->stream_closed || f->reset_pending || f->destroy_pending;
}

static void fail(xb_xmpp_framer_t *f, const char *condition, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(xb_xmpp_framer_t *f, const char *condition, const char *fmt, ...)
{
    va_list ap;

    if (f->failed) {
        return;
    }
    f->failed = 1;
    va_start(ap, fmt);
    vsnprintf(f->why, sizeof(f->why), fmt, ap);
    va_end(ap);
    if (f->parser) {
        XML_StopParser(f->parser, XML_FALSE);
    }
    if (f->events.error) {
        f->events.error(f->baton, condition, f->why);
    }
}

static const char *find_att(const char **atts, const char *name)
{
    for (; atts && atts[0]; atts += 2) {
        if (!strcmp(atts[0], name)) {
            return atts[1];
        }
    }
    return NULL;
}

static void event_range(xb_xmpp_framer_t *f, XML_Index *start, XML_Index *end)
{
    *start = XML_GetCurrentByteIndex(f->parser);
    *end = *start + XML_GetCurrentByteCount(f->parser);
}

/* The root start tag a rebuilt parser is fed. stream_start accepts no other root name, and in
 * expat's plain mode a prefix needs no declaration, so this is all the state a parser holds
 * between top-level elements. */
#define REPLAYED_ROOT "<stream:stream>"
#define REPLAYED_LEN (sizeof(REPLAYED_ROOT) - 1)

/* expat's current line (from 1) and column (from 0), counted from the stream's start even
 * when the parser was rebuilt after a compaction. */
static void stream_position(const xb_xmpp_framer_t *f, XML_Size *line, XML_Size *column)
{
    XML_Size l = XML_GetCurrentLineNumber(f->parser);
    XML_Size c = XML_GetCurrentColumnNumber(f->parser);

    if (f->origin_line) {
        if (l == 1) {
            c = f->origin_column + (c - REPLAYED_LEN);
        }
        l += f->origin_line - 1;
    }
    *line = l;
    *column = c;
}

static void stream_start(xb_xmpp_framer_t *f, const char *name, const char **atts)
{
    const char *stream_ns = find_att(atts, "xmlns:stream");
    const char *default_ns = find_att(atts, "xmlns");
    XML_Index start, end;

    /* Elements are handed up with raw names: that is only sound if the prefix is the one the
     * BOSH body declares and unprefixed names mean jabber:client. */
    if (strcmp(name, "stream:stream") || !stream_ns || strcmp(stream_ns, XB_STREAM_NS)) {
        fail(f, "invalid-namespace", "the server's root element is not <stream:stream/>");
        return;
    }
    if (!default_ns || strcmp(default_ns, XB_CLIENT_NS)) {
        fail(f, "invalid-namespace", "the server's stream is not in jabber:client");
        return;
    }
    event_range(f, &start, &end);
    f->depth = 1;
    f->consumed = end;
    if (f->events.stream_open) {
        f->events.stream_open(f->baton, find_att(atts, "from"), find_att(atts, "id"),
                              find_att(atts, "version"));
    }
}

/* The namespace the element's name is in, from its own declarations or the stream's. */
static const char *element_ns(xb_xmpp_framer_t *f, const char *name, const char **atts)
{
    const char *colon = strchr(name, ':');
    const char *own;
    char attr[128];

    if (!colon) {
        own = find_att(atts, "xmlns");
        f->elem_add_ns = (own == NULL);
        return own ? own : XB_CLIENT_NS;
    }
    f->elem_add_ns = 0;
    if ((apr_size_t)(colon - name) + sizeof("xmlns:") > sizeof(attr)) {
        return NULL;
    }
    snprintf(attr, sizeof(attr), "xmlns:%.*s", (int)(colon - name), name);
    own = find_att(atts, attr);
    if (own) {
        return own;
    }
    return strcmp(attr, "xmlns:stream") ? NULL : XB_STREAM_NS;
}

static void element_start(xb_xmpp_framer_t *f, const char *name, const char **atts)
{
    const char *ns = element_ns(f, name, atts);
    XML_Index end;

    event_range(f, &f->elem_start, &end);
    if (f->elem_start < f->in_base || (apr_size_t)(f->elem_start - f->in_base) >= f->in.len
        || f->in.data[f->elem_start - f->in_base] != '<') {
        fail(f, "internal-server-error", "element offset outside the kept bytes");
        return;
    }
    f->ns.len = 0;
    f->elem_has_ns = (ns != NULL);
    if (ns && !xb_buf_append(&f->ns, ns, strlen(ns) + 1)) {
        fail(f, "resource-constraint", "out of memory");
    }
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xb_xmpp_framer_t *f = ud;

    if (halted(f)) {
        return;
    }
    if (f->depth == 0) {
        if (f->replaying) {
            f->depth = 1; /* the header was checked when the server sent it */
            return;
        }
        stream_start(f, name, atts);
        return;
    }
    f->depth++;
    if (f->depth - 1 > f->max_depth) {
        fail(f, "policy-violation", "elements nested more than %lu deep",
             (unsigned long)f->max_depth);
        return;
    }
    if (f->depth == 2) {
        element_start(f, name, atts);
    }
    else if (f->depth == 3 && f->events.child) {
        f->events.child(f->baton, name, atts);
    }
}

/* The element's bytes with xmlns='jabber:client' after its name, in `out`. */
static int insert_client_ns(xb_xmpp_framer_t *f, const char *name, const char *raw,
                            apr_size_t len)
{
    apr_size_t head = 1 + strlen(name);

    if (head > len || memcmp(raw + 1, name, head - 1)) {
        return 0;
    }
    f->out.len = 0;
    if (!xb_buf_reserve(&f->out, len + sizeof(CLIENT_NS_ATTR) - 1)) {
        return 0;
    }
    xb_buf_append(&f->out, raw, head);
    xb_buf_append(&f->out, CLIENT_NS_ATTR, sizeof(CLIENT_NS_ATTR) - 1);
    xb_buf_append(&f->out, raw + head, len - head);
    return 1;
}

static void element_end(xb_xmpp_framer_t *f, const char *name)
{
    XML_Index start, end;
    apr_size_t len;
    const char *raw;

    event_range(f, &start, &end);
    len = (apr_size_t)(end - f->elem_start);
    if (len > f->max_element) {
        fail(f, "policy-violation", "element of %lu bytes over the limit of %lu",
             (unsigned long)len, (unsigned long)f->max_element);
        return;
    }
    if (end - f->in_base > (XML_Index)f->in.len) {
        fail(f, "internal-server-error", "element end outside the kept bytes");
        return;
    }
    raw = f->in.data + (f->elem_start - f->in_base);
    f->consumed = end;
    if (f->elem_add_ns) {
        if (!insert_client_ns(f, name, raw, len)) {
            fail(f, "internal-server-error", "cannot add the element's namespace");
            return;
        }
        raw = f->out.data;
        len = f->out.len;
    }
    if (f->events.element) {
        f->events.element(f->baton, name, f->elem_has_ns ? f->ns.data : NULL, raw, len);
    }
    f->out.len = 0;
    xb_buf_trim(&f->out, KEEP_CAPACITY);
    xb_buf_free(&f->ns); /* between stanzas a stream keeps no buffer for it */
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    xb_xmpp_framer_t *f = ud;

    if (halted(f)) {
        return;
    }
    if (f->depth == 1) {
        /* </stream:stream>: whatever follows is not ours to parse. */
        f->depth = 0;
        f->stream_closed = 1;
        XML_StopParser(f->parser, XML_FALSE);
        if (f->events.stream_close) {
            f->events.stream_close(f->baton);
        }
        return;
    }
    f->depth--;
    if (f->depth == 1) {
        element_end(f, name);
    }
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    xb_xmpp_framer_t *f = ud;
    XML_Index start, end;
    int i;

    if (halted(f) || f->depth != 1) {
        return;
    }
    /* Between top-level elements only whitespace (keep-alives) is allowed. */
    for (i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            fail(f, "bad-format", "text outside any element in the stream");
            return;
        }
    }
    event_range(f, &start, &end);
    f->consumed = end;
}

/* RFC 6120 §11.1: no DTD, entity declaration, processing instruction or comment
 * (xb_xml_restrict). */
static void refuse(void *ud, const xb_xml_refusal_t *what)
{
    fail(ud, "restricted-xml", "%s in the stream", what->construct);
}

static void setup_parser(xb_xmpp_framer_t *f)
{
    f->restrict_xml.refuse = refuse;
    xb_xml_restrict_install(f->parser, &f->restrict_xml);
    XML_SetElementHandler(f->parser, on_start, on_end);
    XML_SetCharacterDataHandler(f->parser, on_text);
    disable_reparse_deferral(f->parser);
}

static apr_status_t framer_cleanup(void *data)
{
    xb_xmpp_framer_t *f = data;

    if (f->parser) {
        XML_ParserFree(f->parser);
        f->parser = NULL;
    }
    f->compacted = 0; /* gone for good: no feed may rebuild it */
    xb_buf_free(&f->in);
    xb_buf_free(&f->out);
    xb_buf_free(&f->ns);
    return APR_SUCCESS;
}

xb_xmpp_framer_t *xb_xmpp_framer_create(apr_pool_t *pool, apr_size_t max_element,
                                        apr_size_t max_depth,
                                        const xb_xmpp_framer_events_t *events, void *baton)
{
    xb_xmpp_framer_t *f = apr_pcalloc(pool, sizeof(*f));

    f->pool = pool;
    f->events = *events;
    f->baton = baton;
    f->max_element = max_element ? max_element : XB_DEFAULT_MAX_STANZA_SIZE;
    f->max_depth = max_depth ? max_depth : XB_XMPP_FRAMER_DEFAULT_MAX_DEPTH;
    /* XMPP is UTF-8 only (RFC 6120 §11.6); naming it overrides any encoding declaration, and
     * keeps expat's names byte-identical to the raw ones we splice around. */
    f->parser = xb_xml_restrict_parser_create(0);
    if (!f->parser) {
        return NULL;
    }
    setup_parser(f);
    apr_pool_cleanup_register(pool, f, framer_cleanup, apr_pool_cleanup_null);
    return f;
}

static void do_reset(xb_xmpp_framer_t *f)
{
    /* A compacted framer stays so: its next feed makes a parser for the new stream (depth 0),
     * where running out of memory can be told as an error event. */
    if (f->parser) {
        XML_ParserReset(f->parser, XB_XML_ENCODING);
        setup_parser(f);
    }
    f->origin_line = 0;
    f->in.len = 0;
    xb_buf_trim(&f->in, KEEP_CAPACITY);
    f->in_base = 0;
    f->consumed = 0;
    f->depth = 0;
    f->failed = 0;
    f->stream_closed = 0;
    f->reset_pending = 0;
    f->why[0] = '\0';
}

void xb_xmpp_framer_reset(xb_xmpp_framer_t *f)
{
    if (!f->parser && !f->compacted) {
        return;
    }
    if (f->busy) {
        f->reset_pending = 1;
        if (f->parser) {
            XML_StopParser(f->parser, XML_FALSE);
        }
        return;
    }
    do_reset(f);
}

void xb_xmpp_framer_destroy(xb_xmpp_framer_t *f)
{
    if (f->busy) {
        f->destroy_pending = 1;
        if (f->parser) {
            XML_StopParser(f->parser, XML_FALSE);
        }
        return;
    }
    apr_pool_cleanup_run(f->pool, f, framer_cleanup);
}

int xb_xmpp_framer_compact(xb_xmpp_framer_t *f)
{
    /* in.len == 0: every byte fed so far belonged to a finished event (no partial tag or
     * character waiting in expat's buffer), see trim_input. */
    if (!f->parser || f->busy || f->depth != 1 || halted(f) || f->in.len != 0) {
        return 0;
    }
    /* Outside a parse expat's position is past the last byte fed: where the next one goes. */
    stream_position(f, &f->origin_line, &f->origin_column);
    XML_ParserFree(f->parser);
    f->parser = NULL;
    f->compacted = 1;
    xb_buf_free(&f->in);
    xb_buf_free(&f->out);
    xb_buf_free(&f->ns);
    return 1;
}

/* A compacted framer's parser, made again and brought inside the stream root. Offsets count
 * from the new parser's first byte: the stream goes on right after the replayed tag. */
static int rebuild(xb_xmpp_framer_t *f)
{
    enum XML_Status st;

    f->compacted = 0;
    f->parser = xb_xml_restrict_parser_create(0);
    if (!f->parser) {
        return 0;
    }
    setup_parser(f);
    if (f->depth == 0) {
        return 1; /* reset since the compaction: a new stream, from its first byte */
    }
    f->depth = 0;
    f->replaying = 1;
    st = XML_Parse(f->parser, REPLAYED_ROOT, (int)REPLAYED_LEN, XML_FALSE);
    f->replaying = 0;
    if (st != XML_STATUS_OK || f->depth != 1) {
        return 0;
    }
    f->in.len = 0;
    f->in_base = (XML_Index)REPLAYED_LEN;
    f->consumed = f->in_base;
    return 1;
}

/* Drops the bytes no later event can refer to; enforces the size limit on what is left,
 * which is the start of an element still arriving. */
static void trim_input(xb_xmpp_framer_t *f)
{
    XML_Index keep = (f->depth >= 2) ? f->elem_start : f->consumed;
    apr_size_t drop;

    if (keep > f->in_base) {
        drop = (apr_size_t)(keep - f->in_base);
        if (drop > f->in.len) {
            drop = f->in.len;
        }
        memmove(f->in.data, f->in.data + drop, f->in.len - drop);
        f->in.len -= drop;
        f->in_base += (XML_Index)drop;
    }
    xb_buf_trim(&f->in, KEEP_CAPACITY);
    if (f->in.len > f->max_element) {
        fail(f, "policy-violation", "element over the limit of %lu bytes",
             (unsigned long)f->max_element);
    }
}

static void parse_slice(xb_xmpp_framer_t *f, const char *data, apr_size_t len)
{
    enum XML_Status st;

    if (!xb_buf_append(&f->in, data, len)) {
        fail(f, "resource-constraint", "out of memory");
        return;
    }
    st = XML_Parse(f->parser, data, (int)len, XML_FALSE);
    if (halted(f)) {
        return;
    }
    if (st == XML_STATUS_ERROR) {
        XML_Size line, column;
        stream_position(f, &line, &column);
        fail(f, "not-well-formed", "malformed XML at line %lu, column %lu: %s",
             (unsigned long)line, (unsigned long)column,
             XML_ErrorString(XML_GetErrorCode(f->parser)));
        return;
    }
    trim_input(f);
}

apr_status_t xb_xmpp_framer_feed(xb_xmpp_framer_t *f, const char *data, apr_size_t len)
{
    apr_size_t n, good;
    int foreign;

    if ((!f->parser && !f->compacted) || f->busy) {
        return APR_EINVAL;
    }
    f->busy = 1;
    if (f->compacted && !rebuild(f)) {
        fail(f, "resource-constraint", "out of memory rebuilding the stream parser");
    }
    /* Bytes before a foreign byte are framed as usual (what is delivered must not depend on
     * how the stream was split into reads); the foreign byte then ends the stream. */
    good = xb_xml_foreign_byte_offset(data, len);
    foreign = good < len;
    len = good;
    while (len > 0 && !halted(f)) {
        n = len < FEED_SLICE ? len : FEED_SLICE;
        parse_slice(f, data, n);
        data += n;
        len -= n;
    }
    if (foreign && !halted(f)) {
        fail(f, "not-well-formed", "a byte no UTF-8 XML can contain (NUL, 0xFE, 0xFF)");
    }
    f->busy = 0;
    if (f->destroy_pending) {
        apr_pool_cleanup_run(f->pool, f, framer_cleanup);
        return APR_SUCCESS;
    }
    if (f->reset_pending) {
        do_reset(f);
        return APR_SUCCESS;
    }
    return f->failed ? APR_EGENERAL : APR_SUCCESS;
}
