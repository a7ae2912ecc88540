/* Framing of an XMPP server's stream into top-level elements (RFC 6120 §4, §11), sans-I/O.
 *
 * An expat parser in plain (non-namespace) mode, so names arrive raw ("stream:features").
 * Each top-level element is handed up as the exact bytes the server sent, never re-serialised;
 * an unprefixed element without an xmlns= attribute of its own gets xmlns='jabber:client'
 * inserted after its name, because inside a BOSH <body/> it would otherwise inherit httpbind.
 *
 * Restricted XML (RFC 6120 §11.1) is enforced: a DOCTYPE, entity declarations, processing
 * instructions and comments end the stream (the parser stops at the DOCTYPE, before any entity
 * could expand). Element size and nesting depth are capped. All state is per framer.
 */
#ifndef XB_XMPP_FRAMER_H
#define XB_XMPP_FRAMER_H

#include <apr_pools.h>

#define XB_XMPP_FRAMER_DEFAULT_MAX_DEPTH 32

typedef struct xb_xmpp_framer xb_xmpp_framer_t;

typedef struct xb_xmpp_framer_events {
    /* <stream:stream> arrived; attributes are NULL when absent; valid during the call. */
    void (*stream_open)(void *baton, const char *from, const char *id, const char *version);
    /* A direct child of the current top-level element started (to look into
     * <stream:features/> without a second parse). `atts` as expat gives them. May be NULL. */
    void (*child)(void *baton, const char *name, const char **atts);
    /* One top-level element. `name` is raw; `ns` its namespace: the element's own xmlns
     * (or xmlns:prefix) declaration, jabber:client for an unprefixed element without one,
     * the streams namespace for stream:*, NULL if unknown. All valid during the call. */
    void (*element)(void *baton, const char *name, const char *ns, const char *data,
                    apr_size_t len);
    /* </stream:stream> arrived. */
    void (*stream_close)(void *baton);
    /* The stream is broken; no more events follow until a reset. `condition` is the RFC 6120
     * §4.9.3 stream error to answer with ("not-well-formed", "restricted-xml",
     * "policy-violation", "invalid-namespace", "bad-format", ...); `why` is for the log and
     * carries no content. */
    void (*error)(void *baton, const char *condition, const char *why);
} xb_xmpp_framer_events_t;

/* `max_element`: bytes of one top-level element as received (0: XB_DEFAULT_MAX_STANZA_SIZE);
 * `max_depth`: nesting inside the stream, the top-level element being 1
 * (0: XB_XMPP_FRAMER_DEFAULT_MAX_DEPTH). NULL if expat cannot allocate. */
xb_xmpp_framer_t *xb_xmpp_framer_create(apr_pool_t *pool, apr_size_t max_element,
                                        apr_size_t max_depth,
                                        const xb_xmpp_framer_events_t *events, void *baton);

/* Parses `len` bytes; events fire from inside. APR_SUCCESS, or an error status once the
 * stream is broken (the error event has fired). Bytes after </stream:stream> are ignored. */
apr_status_t xb_xmpp_framer_feed(xb_xmpp_framer_t *f, const char *data, apr_size_t len);

/* A new stream starts on the same connection (after STARTTLS or SASL): parser state and
 * offsets begin again. Called from inside an event, it takes effect when the parser returns
 * and drops the rest of the bytes being fed: a server sends nothing between <proceed/> or
 * <success/> and our new header, and plaintext after <proceed/> must never be trusted. */
void xb_xmpp_framer_reset(xb_xmpp_framer_t *f);

/* Between top-level elements with nothing partial fed, frees the expat parser (most of an
 * idle stream's memory) and the buffers; the next feed makes a new parser and brings it back
 * inside <stream:stream> first, so the events are the same as without it. Returns 1 when it
 * freed them, 0 when the framer is mid-element, busy, not in a stream, or already compact. */
int xb_xmpp_framer_compact(xb_xmpp_framer_t *f);

/* Frees the parser and buffers (also done by a cleanup on the pool); safe inside an event. */
void xb_xmpp_framer_destroy(xb_xmpp_framer_t *f);

#endif
