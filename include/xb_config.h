/* The module's configuration as the httpd-free core sees it.
 *
 * The glue (mod_xmpp_bridge_config.c) fills this from the directives; the daemon and the handlers
 * read it. Only plain data here, so the daemon and the unit tests need no httpd header.
 */
#ifndef XB_CONFIG_H
#define XB_CONFIG_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_network_io.h>

typedef enum {
    XB_TLS_STARTTLS = 0, /* STARTTLS required, certificate verified (the default) */
    XB_TLS_NONE = 1      /* plain TCP: only where the admin says so explicitly */
} xb_tls_mode_t;

/* One XMPP domain the gateway may reach: the only way to reach anything (no open relay). */
typedef struct xb_domain {
    const char *name;     /* XMPP domain, lower case, as in the client's `to` */
    const char *host;     /* where its c2s listens */
    apr_port_t port;      /* default 5222 */
    xb_tls_mode_t tls;
    const char *tls_name; /* name the server certificate must carry; default: `name` */
} xb_domain_t;

typedef struct xb_config {
    apr_array_header_t *domains; /* of xb_domain_t */
    const char *ca_file;         /* CA bundle for the XMPP servers' certificates; NULL: system */
    const char *socket_path;     /* daemon's Unix socket, absolute */
    unsigned max_wait;           /* seconds; the client's `wait` is capped to it */
    unsigned max_hold;           /* the client's `hold` is capped to it */
    unsigned inactivity;         /* seconds without a held request before a session ends */
    unsigned polling;            /* seconds, advertised minimum between polls */
    unsigned max_sessions;       /* size of the shared session table */
    unsigned response_cache;     /* answers kept per session for re-sent RIDs (>= 2) */
    apr_size_t max_body_size;    /* bytes of one HTTP request body */
    apr_size_t max_stanza_size;  /* bytes of one stanza from the XMPP server */
    apr_size_t max_queued_bytes; /* bytes queued per session for the browser */
    apr_interval_time_t connect_timeout; /* to the XMPP server, through TLS to the features */
    const char *token_key_file;  /* HS256 key for prebind tokens; read by the daemon only */
    unsigned token_lifetime;     /* seconds a minted token is valid */
    unsigned attach_grace;       /* seconds a prebound session waits for the browser */
    unsigned max_per_user;       /* live prebound sessions per site user; the oldest ends */
    unsigned max_per_address;    /* live sessions per client address; 0: unlimited */
    unsigned front_proxy_timeout; /* seconds a proxy in front waits; 0: none (glue only) */
    unsigned gzip;               /* 1: mod_deflate is loaded, creation responses say accept */
    unsigned max_replays;        /* times one RID may be re-sent; 0: unlimited (XEP-0124 §14.3) */
    unsigned max_pause;          /* largest client `pause`, seconds; 0: pause not offered (§10) */
    unsigned max_streams;        /* XMPP streams per BOSH session (XEP-0124 §16); 1: feature off */
    unsigned warm_streams;       /* streams per domain set up ahead of need; 0: none */
    unsigned warm_max_age;       /* seconds before an idle warm stream is replaced */
    unsigned tls_resumption;     /* 1: XMPP streams resume TLS sessions per server endpoint */
} xb_config_t;

/* Defaults, documented in the README's directive table. */
#define XB_DEFAULT_MAX_WAIT 60
#define XB_DEFAULT_MAX_HOLD 1
#define XB_DEFAULT_INACTIVITY 60
#define XB_DEFAULT_POLLING 2
#define XB_DEFAULT_MAX_SESSIONS 1024
#define XB_DEFAULT_RESPONSE_CACHE 5
#define XB_DEFAULT_MAX_BODY_SIZE (64 * 1024)
#define XB_DEFAULT_MAX_STANZA_SIZE (256 * 1024)
#define XB_DEFAULT_MAX_QUEUED_BYTES (1024 * 1024)
#define XB_DEFAULT_CONNECT_TIMEOUT_SEC 10
#define XB_DEFAULT_XMPP_PORT 5222
#define XB_DEFAULT_TOKEN_LIFETIME 60
#define XB_DEFAULT_ATTACH_GRACE 120
#define XB_DEFAULT_MAX_PER_USER 5
#define XB_DEFAULT_MAX_PER_ADDRESS 256
/* A held request is answered this long before Timeout / XmppBridgeFrontProxyTimeout. */
#define XB_WAIT_MARGIN_SEC 5
#define XB_DEFAULT_MAX_REPLAYS 10
#define XB_DEFAULT_MAX_PAUSE 120
#define XB_DEFAULT_MAX_STREAMS 1
#define XB_DEFAULT_WARM_STREAMS 0
/* Below the servers' timeouts for unauthenticated streams (Prosody's c2s_timeout 300 s,
 * ejabberd's negotiation_timeout 30 s), so a warm stream is never closed under a session. */
#define XB_DEFAULT_WARM_MAX_AGE 25
#define XB_DEFAULT_TLS_RESUMPTION 1

/* The configuration as bytes, for a daemon that outlives a generation of Apache's config (a
 * graceful restart hands it the new one): NUL-terminated key and value strings. */
char *xb_config_serialize(apr_pool_t *p, const xb_config_t *conf, apr_size_t *len);
/* The reverse; APR_EINVAL for anything malformed. Everything is allocated from `p`. */
apr_status_t xb_config_deserialize(apr_pool_t *p, const char *data, apr_size_t len,
                                   xb_config_t **conf);

/* The configured domain `name` (case-insensitive), or NULL: the caller answers host-unknown. */
const xb_domain_t *xb_config_find_domain(const xb_config_t *conf, const char *name);

#endif
