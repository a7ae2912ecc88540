/* Frames between the Apache children (handlers) and the bridge daemon over its Unix socket.
 *
 * One frame = a fixed header + `length` payload bytes. Both ends run on the same host from the
 * same binary, so integers travel in host byte order. The reader is incremental (sans-I/O):
 * the daemon feeds it whatever a non-blocking read returned.
 */
#ifndef XB_IPC_H
#define XB_IPC_H

#include <stdint.h>
#include <apr_pools.h>

#define XB_IPC_MAGIC 0x31524258u /* "XBR1" */
#define XB_IPC_MAX_PAYLOAD (16u * 1024u * 1024u)

typedef enum {
    XB_IPC_BOSH_REQUEST = 1, /* handler -> daemon: xb_ipc_request_meta_t + body bytes */
    XB_IPC_RELEASE = 2,      /* handler -> daemon: answer my held request now */
    XB_IPC_TERMINATE = 3,    /* handler -> daemon: end session <sid> (payload), e.g. the
                                handler already answered an out-of-window RID */
    XB_IPC_RESPONSE = 4,     /* daemon -> handler: aux = HTTP status, payload = body */
    XB_IPC_PREBIND = 5,      /* handler -> daemon: xb_ipc_prebind_meta_t + the strings of
                                xb_ipc_prebind_field_t, each NUL-terminated, in that order;
                                the answer is a RESPONSE carrying JSON */
    XB_IPC_CREDENTIALS = 6,  /* handler -> daemon: bare JID; answer: JSON jid + token */
    XB_IPC_LOGOUT = 7,       /* handler -> daemon: site user; answer: JSON {"ended": N} */
    XB_IPC_RECONFIGURE = 8,  /* httpd parent -> daemon after a restart: aux = log level,
                                payload = xb_config_serialize(), the new ErrorLog descriptor
                                passed along (SCM_RIGHTS); answer: RESPONSE 200 */
    XB_IPC_END_SESSIONS = 9  /* httpd parent -> daemon when it stops or restarts hard: every
                                session ends with system-shutdown while the children that
                                hold its requests are still there to answer; no answer */
} xb_ipc_type_t;

#define XB_IPC_TYPE_MAX XB_IPC_END_SESSIONS

/* How the daemon vouches for a prebound user. */
typedef enum {
    XB_PREBIND_TOKEN = 1,      /* it mints a short-lived JWT and sends it as the PLAIN password */
    XB_PREBIND_PASSTHROUGH = 2 /* the site login's own credentials (same directory) */
} xb_prebind_mode_t;

typedef enum {
    XB_PREBIND_FIELD_DOMAIN = 0, /* configured XMPP domain */
    XB_PREBIND_FIELD_LOCALPART,  /* SASL authentication identity */
    XB_PREBIND_FIELD_JID,        /* bare JID the token vouches for */
    XB_PREBIND_FIELD_SITE_USER,  /* REMOTE_USER, to bind the session to the site login */
    XB_PREBIND_FIELD_SECRET,     /* pass-through password; "" in token mode */
    XB_PREBIND_FIELD_COUNT
} xb_ipc_prebind_field_t;

typedef struct xb_ipc_prebind_meta {
    char client_ip[64];
    uint32_t mode; /* xb_prebind_mode_t */
    uint32_t reserved;
} xb_ipc_prebind_meta_t;

/* Splits `n` NUL-terminated strings out of `data`; APR_EINVAL when they are not all there. */
apr_status_t xb_ipc_strings_split(const char *data, apr_size_t len, const char **out,
                                  unsigned n);

typedef struct xb_ipc_header {
    uint32_t magic;
    uint32_t type;
    uint32_t aux;
    uint32_t length;
} xb_ipc_header_t;

/* Leads the payload of XB_IPC_BOSH_REQUEST; `site_user_len` bytes of the site user (the
 * request's REMOTE_USER, no NUL) follow it, then the body. */
typedef struct xb_ipc_request_meta {
    char client_ip[64];     /* NUL-terminated */
    uint32_t flags;         /* XB_REQ_* */
    uint32_t site_user_len;
} xb_ipc_request_meta_t;

/* XmppBridgeRequireSiteUser: a prebound session takes requests only from its site user. */
#define XB_REQ_REQUIRE_SITE_USER 0x1u

/* Header + payload in one contiguous buffer from `p`, ready to write. */
char *xb_ipc_frame(apr_pool_t *p, xb_ipc_type_t type, uint32_t aux, const void *payload,
                   apr_size_t len, const void *payload2, apr_size_t len2, apr_size_t *out_len);

typedef struct xb_ipc_reader xb_ipc_reader_t;

typedef enum {
    XB_IPC_NEED_MORE = 0, /* no complete frame yet */
    XB_IPC_FRAME = 1,     /* *hdr and *payload describe one frame (valid until the next call) */
    XB_IPC_BAD = -1       /* wrong magic, unknown type or payload over `max_payload` */
} xb_ipc_read_status_t;

xb_ipc_reader_t *xb_ipc_reader_create(apr_pool_t *p, apr_size_t max_payload);

/* Appends bytes read from the socket. Returns APR_ENOSPC when they exceed the frame limit. */
int xb_ipc_reader_feed(xb_ipc_reader_t *r, const char *data, apr_size_t len);

/* Takes the next complete frame, if any. */
xb_ipc_read_status_t xb_ipc_reader_next(xb_ipc_reader_t *r, xb_ipc_header_t *hdr,
                                        const char **payload);

void xb_ipc_reader_destroy(xb_ipc_reader_t *r);

/* A reader owned by no pool, for objects recycled by hand (the daemon's handler connections,
 * which have no pool of their own): NULL when out of memory; xb_ipc_reader_free ends it. */
xb_ipc_reader_t *xb_ipc_reader_new(apr_size_t max_payload);
void xb_ipc_reader_free(xb_ipc_reader_t *r);

/* Gives the buffer back when no partial frame is left in it (after the frames were handled:
 * payloads returned by xb_ipc_reader_next are invalid afterwards). A connection that waits
 * for its answer, or for its next request, then holds no buffer. */
void xb_ipc_reader_release_idle(xb_ipc_reader_t *r);

#endif
