/* BOSH <body/> wrapper: parsing requests and building responses (XEP-0124 §6, §7, §17;
 * XEP-0206 §3-§5). Sans-I/O: bytes in, structures and bytes out.
 *
 * Payload children are never re-serialised: the parser hands back the raw bytes of each
 * top-level child, adding xmlns='jabber:client' to a child start tag that has no default
 * namespace declaration of its own (it would otherwise inherit the httpbind namespace), and
 * copying onto a child any prefix declaration it uses that only <body/> carries.
 */
#ifndef XB_BOSH_BODY_H
#define XB_BOSH_BODY_H

#include <stdint.h>
#include <apr_pools.h>

#define XB_BOSH_NS "http://jabber.org/protocol/httpbind"
#define XB_XBOSH_NS "urn:xmpp:xbosh"
#define XB_STREAM_NS "http://etherx.jabber.org/streams"
#define XB_CLIENT_NS "jabber:client"

/* XEP-0124 §14.1: RIDs never exceed 2^53-1. */
#define XB_BOSH_RID_MAX UINT64_C(9007199254740991)

/* XEP-0124 §17.2 terminal conditions. */
typedef enum {
    XB_COND_NONE = 0,
    XB_COND_BAD_REQUEST,
    XB_COND_HOST_GONE,
    XB_COND_HOST_UNKNOWN,
    XB_COND_IMPROPER_ADDRESSING,
    XB_COND_INTERNAL_SERVER_ERROR,
    XB_COND_ITEM_NOT_FOUND,
    XB_COND_OTHER_REQUEST,
    XB_COND_POLICY_VIOLATION,
    XB_COND_REMOTE_CONNECTION_FAILED,
    XB_COND_REMOTE_STREAM_ERROR,
    XB_COND_SEE_OTHER_URI,
    XB_COND_SYSTEM_SHUTDOWN,
    XB_COND_UNDEFINED_CONDITION
} xb_bosh_condition_t;

/* "item-not-found" etc.; "" for XB_COND_NONE. */
const char *xb_bosh_condition_name(xb_bosh_condition_t cond);

/* §17.1: the HTTP status a legacy client (one that sent no `ver`) gets for `cond`:
 * 400 bad-request, 403 policy-violation, 404 item-not-found, else 200. */
int xb_bosh_condition_legacy_status(xb_bosh_condition_t cond);

typedef struct xb_bosh_limits_parse {
    apr_size_t max_depth; /* element nesting inside <body/>, counting the payload's own */
    int expat_in_pool;    /* expat's memory from a pool of its own, gone after the parse, not
                           * from malloc: for Apache's many threads (xb_xml_restrict.h). Not
                           * in the daemon: its one thread's malloc reuses the same chunks,
                           * and pool nodes expat filled would be handed on to other pools */
} xb_bosh_parse_limits_t;

/* A parsed request. String attributes are NULL when absent; numeric ones have a has_ flag. */
typedef struct xb_bosh_body {
    int has_rid;
    uint64_t rid; /* 1 .. XB_BOSH_RID_MAX */
    const char *sid;
    const char *to;
    const char *from;
    const char *route;
    const char *xml_lang;
    const char *ver;     /* as sent, "1.6"; NULL means a legacy client */
    const char *content;
    const char *accept;  /* content codings the client accepts, comma-separated (§7.1) */
    const char *type;    /* "terminate" or NULL */
    const char *key;
    const char *newkey;
    const char *stream;
    const char *xmpp_version; /* urn:xmpp:xbosh version */
    int restart;              /* urn:xmpp:xbosh restart='true' */
    int has_wait;
    unsigned wait;
    int has_hold;
    unsigned hold;
    int has_ack;
    uint64_t ack;
    int has_pause;
    unsigned pause;
    /* The children, raw, concatenated in order (xmlns fixed as said above); "" when empty. */
    const char *payload;
    apr_size_t payload_len;
    unsigned child_count;
} xb_bosh_body_t;

typedef enum {
    XB_BODY_OK = 0,
    XB_BODY_MALFORMED,   /* not well-formed XML, truncated, or character data at body level */
    XB_BODY_NOT_BODY,    /* root is not <body xmlns='http://jabber.org/protocol/httpbind'> */
    XB_BODY_FORBIDDEN,   /* DOCTYPE, entity declaration, processing instruction, comment */
    XB_BODY_TOO_DEEP,    /* nesting over the limit */
    XB_BODY_BAD_ATTRIBUTE /* rid missing, not a positive integer, above 2^53-1; other numeric
                             attributes not numbers */
} xb_bosh_body_status_t;

/* Parses one request body. On failure *errmsg says what was wrong, for the log line.
 * All results are allocated from `p`. */
xb_bosh_body_status_t xb_bosh_body_parse(apr_pool_t *p, const char *data, apr_size_t len,
                                         const xb_bosh_parse_limits_t *limits,
                                         xb_bosh_body_t **body, const char **errmsg);

/* After a failed parse: true when the root start tag carried neither `sid` nor `ver`, i.e. a
 * session creation request from a legacy client (§17.1: it gets HTTP error codes). False when
 * the start tag cannot be read at all: a terminate body is what every current client reads. */
int xb_bosh_body_legacy_hint(const char *data, apr_size_t len);

/* What a response <body/> carries besides its payload. */
typedef struct xb_bosh_response_attrs {
    xb_bosh_condition_t condition; /* != NONE: type='terminate' condition='...' */
    int recoverable_error;         /* type='error' (§17.3) */
    const char *see_other_uri;     /* <uri/> child for see-other-uri */
    /* Creation response (§7.2, XEP-0206 §4): attributes only it may carry. */
    int creation;
    const char *sid;
    unsigned wait, requests, hold, inactivity, polling, maxpause;
    const char *ver;  /* min(client's, ours) */
    const char *from; /* the XMPP domain */
    const char *accept; /* codings the CM accepts in requests ("gzip"); NULL: none */
    uint64_t ack;     /* 0: no ack attribute */
    uint64_t report;  /* §9.2: 0: no report/time attributes */
    apr_uint64_t time_ms; /* with report: ms since that response was sent */
    /* §16 multiple streams: the stream the payload belongs to (or a condition applies to
     * alone); NULL: none. `stream_from`: `from` of an add-stream answer (§16.3). */
    const char *stream;
    const char *stream_from;
} xb_bosh_response_attrs_t;

/* Builds a complete response body. It always declares xmlns:stream (stream:features and
 * stream:error go inside) and, on creation, xmlns:xmpp with xmpp:version='1.0' and
 * xmpp:restartlogic='true'. `payload` is copied verbatim. */
char *xb_bosh_response_build(apr_pool_t *p, const xb_bosh_response_attrs_t *attrs,
                             const char *payload, apr_size_t payload_len, apr_size_t *len);

/* Shorthand: an empty terminate body with `cond`, for answers outside any session. */
char *xb_bosh_terminate_build(apr_pool_t *p, xb_bosh_condition_t cond, apr_size_t *len);

/* Escapes & < > ' " (and tab, newline, carriage return as character references, which an
 * attribute value would otherwise normalise to spaces) for an attribute value or text. */
const char *xb_xml_escape(apr_pool_t *p, const char *s);

/* True when the comma-separated `list` (an `accept` attribute) names `coding`
 * (case-insensitive, spaces around items allowed). */
int xb_bosh_accept_has(const char *list, const char *coding);

/* The creation request's `content` (§7.1: the Content-Type responses MUST use) when it is one
 * a response header can carry: printable ASCII, a type/subtype, at most 127 bytes. NULL when
 * absent or unusable (the caller answers text/xml; charset=utf-8). */
const char *xb_bosh_content_type(const xb_bosh_body_t *body);

#endif
