/* Directives: parsing, validation at config time, defaults, merge.
 *
 * Every directive is server-wide (main server only): one daemon serves all virtual hosts, so a
 * per-vhost value could not be honoured. Values are validated when read, so `apachectl
 * configtest` names the directive and the value that is wrong.
 */
#include <stdlib.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_uri.h>

#include "mod_xmpp_bridge_private.h"
#include "xb_ipc.h"
#include "xb_jid.h"
#include "xb_log.h"

void *xb_conf_create_server(apr_pool_t *p, server_rec *s)
{
    xb_server_conf_t *sc = apr_pcalloc(p, sizeof(*sc));
    (void)s;
    sc->core.domains = apr_array_make(p, 2, sizeof(xb_domain_t));
    sc->core.max_wait = XB_UNSET;
    sc->core.max_hold = XB_UNSET;
    sc->core.inactivity = XB_UNSET;
    sc->core.polling = XB_UNSET;
    sc->core.max_sessions = XB_UNSET;
    sc->core.response_cache = XB_UNSET;
    sc->core.max_body_size = 0;
    sc->core.max_stanza_size = 0;
    sc->core.max_queued_bytes = 0;
    sc->core.connect_timeout = -1;
    sc->core.token_lifetime = XB_UNSET;
    sc->core.attach_grace = XB_UNSET;
    sc->core.max_per_user = XB_UNSET;
    sc->core.max_per_address = XB_UNSET;
    sc->core.front_proxy_timeout = XB_UNSET;
    sc->core.max_replays = XB_UNSET;
    sc->core.max_pause = XB_UNSET;
    sc->core.max_streams = XB_UNSET;
    sc->core.warm_streams = XB_UNSET;
    sc->core.warm_max_age = XB_UNSET;
    sc->core.tls_resumption = XB_UNSET;
    return sc;
}

/* Directives are GLOBAL_ONLY, so a vhost never sets anything: it sees the main server's. */
void *xb_conf_merge_server(apr_pool_t *p, void *basev, void *addv)
{
    (void)p;
    (void)addv;
    return basev;
}

const xb_config_t *xb_conf_get(server_rec *s)
{
    xb_server_conf_t *sc = ap_get_module_config(s->module_config, &xmpp_bridge_module);
    return &sc->core;
}

static xb_server_conf_t *conf_of(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &xmpp_bridge_module);
}

/* For the server-wide directives: the main server's config in *sc, or the error to return when
 * the directive stands inside <VirtualHost>, <Directory> or the like. */
static const char *global_conf(cmd_parms *cmd, xb_server_conf_t **sc)
{
    *sc = conf_of(cmd);
    return ap_check_cmd_context(cmd, GLOBAL_ONLY);
}

/* `arg` relative to ServerRoot, in *path, when it names a regular file; `finfo` gets `wanted`
 * of its metadata. Else an error naming the directive. */
static const char *regular_file(cmd_parms *cmd, const char *arg, apr_int32_t wanted,
                                apr_finfo_t *finfo, const char **path)
{
    *path = ap_server_root_relative(cmd->pool, arg);
    if (!*path || apr_stat(finfo, *path, APR_FINFO_TYPE | wanted, cmd->temp_pool) != APR_SUCCESS
        || finfo->filetype != APR_REG) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file", cmd->cmd->name, arg);
    }
    return NULL;
}

/* A whole number in [min, max], or an error naming the directive. */
static const char *parse_number(cmd_parms *cmd, const char *arg, apr_int64_t min,
                                apr_int64_t max, apr_int64_t *out)
{
    char *end;
    apr_int64_t v = 0;

    if (!*arg || !apr_isdigit(*arg)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a whole number", cmd->cmd->name, arg);
    }
    v = apr_strtoi64(arg, &end, 10);
    if (*end || v < min || v > max) {
        return apr_psprintf(cmd->pool, "%s: '%s' is out of range (%" APR_INT64_T_FMT
                            " to %" APR_INT64_T_FMT ")", cmd->cmd->name, arg, min, max);
    }
    *out = v;
    return NULL;
}

/* Each numeric directive: where its value goes and its bounds. */
typedef enum {
    NUM_MAX_WAIT, NUM_MAX_HOLD, NUM_INACTIVITY, NUM_POLLING, NUM_MAX_SESSIONS,
    NUM_RESPONSE_CACHE, NUM_MAX_BODY, NUM_MAX_STANZA, NUM_MAX_QUEUED, NUM_CONNECT_TIMEOUT,
    NUM_TOKEN_LIFETIME, NUM_ATTACH_GRACE, NUM_MAX_PER_USER, NUM_MAX_PER_ADDRESS,
    NUM_FRONT_PROXY_TIMEOUT, NUM_MAX_REPLAYS, NUM_MAX_PAUSE, NUM_MAX_STREAMS,
    NUM_WARM_STREAMS, NUM_WARM_MAX_AGE
} num_directive_t;

static const struct {
    apr_int64_t min, max;
} num_bounds[] = {
    [NUM_MAX_WAIT] = { 1, 3600 },
    [NUM_MAX_HOLD] = { 1, 10 },
    [NUM_INACTIVITY] = { 5, 86400 },
    [NUM_POLLING] = { 0, 3600 },
    [NUM_MAX_SESSIONS] = { 1, 1000000 },
    [NUM_RESPONSE_CACHE] = { 2, 100 },
    [NUM_MAX_BODY] = { 1024, 16 * 1024 * 1024 },
    [NUM_MAX_STANZA] = { 1024, 16 * 1024 * 1024 },
    [NUM_MAX_QUEUED] = { 4096, 256 * 1024 * 1024 },
    [NUM_CONNECT_TIMEOUT] = { 1, 600 },
    [NUM_TOKEN_LIFETIME] = { 5, 3600 },
    [NUM_ATTACH_GRACE] = { 5, 3600 },
    [NUM_MAX_PER_USER] = { 1, 1000 },
    [NUM_MAX_PER_ADDRESS] = { 0, 1000000 },
    [NUM_FRONT_PROXY_TIMEOUT] = { 0, 86400 },
    [NUM_MAX_REPLAYS] = { 0, 1000 },
    [NUM_MAX_PAUSE] = { 0, 65535 }, /* XEP-0124 §22: unsignedShort */
    [NUM_MAX_STREAMS] = { 1, 16 },  /* each stream is one more XMPP connection */
    [NUM_WARM_STREAMS] = { 0, 64 }, /* per domain: idle connections the server holds */
    [NUM_WARM_MAX_AGE] = { 2, 3600 },
};

static const char *set_number(cmd_parms *cmd, void *dconf, const char *arg)
{
    xb_server_conf_t *sc;
    num_directive_t which = (num_directive_t)(apr_uintptr_t)cmd->info;
    const char *err = global_conf(cmd, &sc);
    apr_int64_t v = 0;

    (void)dconf;
    if (err) {
        return err;
    }
    err = parse_number(cmd, arg, num_bounds[which].min, num_bounds[which].max, &v);
    if (err) {
        return err;
    }
    if (which == NUM_FRONT_PROXY_TIMEOUT && v > 0 && v <= XB_WAIT_MARGIN_SEC) {
        return apr_psprintf(cmd->pool, "%s: %s s leaves no room for a held request (answers "
                            "go out %d s before it): 0 (no proxy) or more than %d",
                            cmd->cmd->name, arg, XB_WAIT_MARGIN_SEC, XB_WAIT_MARGIN_SEC);
    }
    switch (which) {
    case NUM_MAX_WAIT: sc->core.max_wait = (unsigned)v; break;
    case NUM_MAX_HOLD: sc->core.max_hold = (unsigned)v; break;
    case NUM_INACTIVITY: sc->core.inactivity = (unsigned)v; break;
    case NUM_POLLING: sc->core.polling = (unsigned)v; break;
    case NUM_MAX_SESSIONS: sc->core.max_sessions = (unsigned)v; break;
    case NUM_RESPONSE_CACHE: sc->core.response_cache = (unsigned)v; break;
    case NUM_MAX_BODY: sc->core.max_body_size = (apr_size_t)v; break;
    case NUM_MAX_STANZA: sc->core.max_stanza_size = (apr_size_t)v; break;
    case NUM_MAX_QUEUED: sc->core.max_queued_bytes = (apr_size_t)v; break;
    case NUM_CONNECT_TIMEOUT: sc->core.connect_timeout = apr_time_from_sec(v); break;
    case NUM_TOKEN_LIFETIME: sc->core.token_lifetime = (unsigned)v; break;
    case NUM_ATTACH_GRACE: sc->core.attach_grace = (unsigned)v; break;
    case NUM_MAX_PER_USER: sc->core.max_per_user = (unsigned)v; break;
    case NUM_MAX_PER_ADDRESS: sc->core.max_per_address = (unsigned)v; break;
    case NUM_FRONT_PROXY_TIMEOUT: sc->core.front_proxy_timeout = (unsigned)v; break;
    case NUM_MAX_REPLAYS: sc->core.max_replays = (unsigned)v; break;
    case NUM_MAX_PAUSE: sc->core.max_pause = (unsigned)v; break;
    case NUM_MAX_STREAMS: sc->core.max_streams = (unsigned)v; break;
    case NUM_WARM_STREAMS: sc->core.warm_streams = (unsigned)v; break;
    case NUM_WARM_MAX_AGE: sc->core.warm_max_age = (unsigned)v; break;
    }
    return NULL;
}

/* An XMPP domain name as it may appear in `to`: a DNS-ish name, no port, no path, no IP
 * literal brackets. Lower-cased on the way in. */
static const char *check_domain_name(cmd_parms *cmd, const char *name, char **out)
{
    char *lower = apr_pstrdup(cmd->pool, name);
    char *c;

    if (!*lower || strlen(lower) > XB_DOMAIN_MAX - 1) {
        return apr_psprintf(cmd->pool, "XmppBridgeDomain: '%s' is not a valid XMPP domain",
                            name);
    }
    for (c = lower; *c; c++) {
        if (!apr_isalnum(*c) && *c != '-' && *c != '.') {
            return apr_psprintf(cmd->pool, "XmppBridgeDomain: '%s' is not a valid XMPP domain",
                                name);
        }
        *c = (char)apr_tolower(*c);
    }
    *out = lower;
    return NULL;
}

/* XmppBridgeDomain <domain> <host>[:<port>] [starttls|plain] [tls-name=<name>] */
static const char *set_domain(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    xb_server_conf_t *sc;
    const char *err = global_conf(cmd, &sc);
    xb_domain_t *d;
    char *name = NULL, *host = NULL, *scope = NULL;
    apr_port_t port = 0;
    int i;

    (void)dconf;
    if (err) {
        return err;
    }
    if (argc < 2 || argc > 4) {
        return "XmppBridgeDomain: takes <domain> <host>[:<port>] [starttls|plain] "
               "[tls-name=<name>]";
    }
    if ((err = check_domain_name(cmd, argv[0], &name))) {
        return err;
    }
    for (i = 0; i < sc->core.domains->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(sc->core.domains, i, xb_domain_t).name, name)) {
            return apr_psprintf(cmd->pool, "XmppBridgeDomain: '%s' is configured twice", name);
        }
    }
    if (apr_parse_addr_port(&host, &scope, &port, argv[1], cmd->pool) != APR_SUCCESS || !host
        || scope) {
        return apr_psprintf(cmd->pool, "XmppBridgeDomain %s: '%s' is not <host>[:<port>]",
                            name, argv[1]);
    }
    /* APR reads "host:junk" as an unbracketed IPv6 literal; only [v6]:port is meant that way. */
    if (argv[1][0] != '[' && strspn(host, "abcdefghijklmnopqrstuvwxyz"
                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
                                 != strlen(host)) {
        return apr_psprintf(cmd->pool, "XmppBridgeDomain %s: '%s' is not <host>[:<port>]",
                            name, argv[1]);
    }
    d = apr_array_push(sc->core.domains);
    d->name = name;
    d->host = host;
    d->port = port ? port : XB_DEFAULT_XMPP_PORT;
    d->tls = XB_TLS_STARTTLS;
    d->tls_name = NULL;
    for (i = 2; i < argc; i++) {
        if (!strcasecmp(argv[i], "starttls")) {
            d->tls = XB_TLS_STARTTLS;
        }
        else if (!strcasecmp(argv[i], "plain")) {
            d->tls = XB_TLS_NONE;
        }
        else if (!strncasecmp(argv[i], "tls-name=", 9) && argv[i][9]) {
            d->tls_name = apr_pstrdup(cmd->pool, argv[i] + 9);
        }
        else {
            return apr_psprintf(cmd->pool, "XmppBridgeDomain %s: unknown option '%s' (expected "
                                "starttls, plain or tls-name=<name>)", name, argv[i]);
        }
    }
    return NULL;
}

static const char *set_ca_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    xb_server_conf_t *sc;
    const char *err = global_conf(cmd, &sc);
    const char *path;
    apr_finfo_t finfo;

    (void)dconf;
    if (err || (err = regular_file(cmd, arg, 0, &finfo, &path))) {
        return err;
    }
    sc->core.ca_file = path;
    return NULL;
}

/* The key itself is read by the daemon alone (before it drops privileges), so Apache's
 * children never hold it; here only its existence is checked, so configtest catches a typo.
 * Its permissions are checked when it is read. */
static const char *set_token_key_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    xb_server_conf_t *sc;
    const char *err = global_conf(cmd, &sc);
    const char *path;
    apr_finfo_t finfo;

    (void)dconf;
    if (err || (err = regular_file(cmd, arg, APR_FINFO_PROT, &finfo, &path))) {
        return err;
    }
    if (finfo.protection & (APR_GREAD | APR_GWRITE | APR_WREAD | APR_WWRITE)) {
        return apr_psprintf(cmd->pool, "XmppBridgeTokenKeyFile: '%s' is readable or writable "
                            "by group or others: it can impersonate any user, make it 0600",
                            arg);
    }
    sc->core.token_key_file = path;
    return NULL;
}

static const char *set_prebind_jid(cmd_parms *cmd, void *dconf, const char *arg)
{
    xb_dir_conf_t *dc = dconf;
    const char *errmsg = NULL;

    if (xb_jid_template_check(cmd->pool, arg, &errmsg) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "XmppBridgePrebindJID: '%s': %s", arg,
                            errmsg ? errmsg : "not a valid JID template");
    }
    dc->prebind_jid = arg;
    return NULL;
}

static const char *set_prebind_auth(cmd_parms *cmd, void *dconf, const char *arg)
{
    xb_dir_conf_t *dc = dconf;

    if (!strcasecmp(arg, "token")) {
        dc->prebind_mode = XB_PREBIND_TOKEN;
    }
    else if (!strcasecmp(arg, "passthrough")) {
        dc->prebind_mode = XB_PREBIND_PASSTHROUGH;
    }
    else {
        return apr_psprintf(cmd->pool, "XmppBridgePrebindAuth: '%s' is not token or "
                            "passthrough", arg);
    }
    return NULL;
}

static const char *set_tls_resumption(cmd_parms *cmd, void *dconf, int on)
{
    xb_server_conf_t *sc;
    const char *err = global_conf(cmd, &sc);

    (void)dconf;
    if (!err) {
        sc->core.tls_resumption = on ? 1 : 0;
    }
    return err;
}

static const char *set_require_site_user(cmd_parms *cmd, void *dconf, int on)
{
    xb_dir_conf_t *dc = dconf;

    (void)cmd;
    dc->require_site_user = on ? 1 : 0;
    return NULL;
}

/* XmppBridgeCORSOrigin <origin>...: scheme://host[:port] as browsers send it, or `*`. */
static const char *add_cors_origin(cmd_parms *cmd, void *dconf, const char *arg)
{
    xb_dir_conf_t *dc = dconf;
    apr_uri_t uri;
    char *lower, *c;

    if (strcmp(arg, "*") != 0) {
        if (apr_uri_parse(cmd->pool, arg, &uri) != APR_SUCCESS || !uri.scheme || !uri.hostname
            || (strcasecmp(uri.scheme, "http") && strcasecmp(uri.scheme, "https"))
            || (uri.path && *uri.path) || uri.query || uri.fragment || uri.user) {
            return apr_psprintf(cmd->pool, "XmppBridgeCORSOrigin: '%s' is not an origin "
                                "(scheme://host[:port], no path, e.g. https://chat.example.org) "
                                "nor *", arg);
        }
    }
    if (!dc->cors_origins) {
        dc->cors_origins = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    lower = apr_pstrdup(cmd->pool, arg);
    for (c = lower; *c; c++) {
        *c = (char)apr_tolower(*c);
    }
    APR_ARRAY_PUSH(dc->cors_origins, const char *) = lower;
    return NULL;
}

/* XmppBridgeSeeOtherURI <uri>: an absolute http(s) URI the clients are sent to. */
static const char *set_see_other_uri(cmd_parms *cmd, void *dconf, const char *arg)
{
    xb_dir_conf_t *dc = dconf;
    apr_uri_t uri;

    if (apr_uri_parse(cmd->pool, arg, &uri) != APR_SUCCESS || !uri.scheme || !uri.hostname
        || (strcasecmp(uri.scheme, "http") && strcasecmp(uri.scheme, "https"))) {
        return apr_psprintf(cmd->pool, "XmppBridgeSeeOtherURI: '%s' is not an absolute http(s) "
                            "URI (e.g. https://chat2.example.org/http-bind)", arg);
    }
    dc->see_other_uri = arg;
    return NULL;
}

void *xb_conf_create_dir(apr_pool_t *p, char *dir)
{
    xb_dir_conf_t *dc = apr_pcalloc(p, sizeof(xb_dir_conf_t));

    (void)dir;
    dc->require_site_user = -1;
    return dc;
}

void *xb_conf_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    const xb_dir_conf_t *base = basev, *add = addv;
    xb_dir_conf_t *merged = apr_pcalloc(p, sizeof(*merged));

    merged->prebind_jid = add->prebind_jid ? add->prebind_jid : base->prebind_jid;
    merged->prebind_mode = add->prebind_mode ? add->prebind_mode : base->prebind_mode;
    merged->require_site_user = add->require_site_user >= 0 ? add->require_site_user
                                                            : base->require_site_user;
    merged->ldap = xb_ldap_merge_dir(p, base->ldap, add->ldap);
    merged->cors_origins = add->cors_origins ? add->cors_origins : base->cors_origins;
    merged->see_other_uri = add->see_other_uri ? add->see_other_uri : base->see_other_uri;
    return merged;
}

const xb_dir_conf_t *xb_conf_dir(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &xmpp_bridge_module);
}

static const char *set_socket(cmd_parms *cmd, void *dconf, const char *arg)
{
    xb_server_conf_t *sc;
    const char *err = global_conf(cmd, &sc);

    (void)dconf;
    if (err) {
        return err;
    }
    sc->socket_setting = arg;
    return NULL;
}

#define NUMBER_DIRECTIVE(name, which, help) \
    AP_INIT_TAKE1(name, set_number, (void *)(apr_uintptr_t)(which), RSRC_CONF, help)

const command_rec xb_directives[] = {
    AP_INIT_TAKE_ARGV("XmppBridgeDomain", set_domain, NULL, RSRC_CONF,
                      "<domain> <host>[:<port>] [starttls|plain] [tls-name=<name>]: an XMPP "
                      "domain the gateway may reach, and where"),
    AP_INIT_TAKE1("XmppBridgeTLSCAFile", set_ca_file, NULL, RSRC_CONF,
                  "CA certificates (PEM) that verify the XMPP servers; default: the system's"),
    AP_INIT_TAKE1("XmppBridgeSocket", set_socket, NULL, RSRC_CONF,
                  "the daemon's Unix socket, relative to DefaultRuntimeDir"),
    NUMBER_DIRECTIVE("XmppBridgeMaxWait", NUM_MAX_WAIT,
                     "seconds: cap on the client's 'wait' (default 60)"),
    NUMBER_DIRECTIVE("XmppBridgeMaxHold", NUM_MAX_HOLD,
                     "cap on the client's 'hold' (default 1)"),
    NUMBER_DIRECTIVE("XmppBridgeInactivity", NUM_INACTIVITY,
                     "seconds without a held request before a session ends (default 60)"),
    NUMBER_DIRECTIVE("XmppBridgePolling", NUM_POLLING,
                     "seconds: advertised shortest polling interval (default 2)"),
    NUMBER_DIRECTIVE("XmppBridgeMaxSessions", NUM_MAX_SESSIONS,
                     "sessions at once; sizes the shared table (default 1024)"),
    NUMBER_DIRECTIVE("XmppBridgeResponseCache", NUM_RESPONSE_CACHE,
                     "answers kept per session for re-sent requests (default 5)"),
    NUMBER_DIRECTIVE("XmppBridgeMaxBodySize", NUM_MAX_BODY,
                     "bytes: largest BOSH request body (default 65536)"),
    NUMBER_DIRECTIVE("XmppBridgeMaxStanzaSize", NUM_MAX_STANZA,
                     "bytes: largest element from the XMPP server (default 262144)"),
    NUMBER_DIRECTIVE("XmppBridgeMaxQueuedBytes", NUM_MAX_QUEUED,
                     "bytes queued per session before reading from the server pauses "
                     "(default 1048576)"),
    NUMBER_DIRECTIVE("XmppBridgeConnectTimeout", NUM_CONNECT_TIMEOUT,
                     "seconds to reach the XMPP server's stream features (default 10)"),
    AP_INIT_TAKE1("XmppBridgeTokenKeyFile", set_token_key_file, NULL, RSRC_CONF,
                  "HS256 key (JWK or raw, mode 0600) for the tokens prebind vouches with"),
    NUMBER_DIRECTIVE("XmppBridgeTokenLifetime", NUM_TOKEN_LIFETIME,
                     "seconds a prebind token is valid (default 60)"),
    NUMBER_DIRECTIVE("XmppBridgeAttachGrace", NUM_ATTACH_GRACE,
                     "seconds a prebound session waits for the browser (default 120)"),
    NUMBER_DIRECTIVE("XmppBridgePrebindMaxPerUser", NUM_MAX_PER_USER,
                     "live prebound sessions per site user; a new one ends the oldest "
                     "(default 5)"),
    NUMBER_DIRECTIVE("XmppBridgeMaxSessionsPerAddress", NUM_MAX_PER_ADDRESS,
                     "live sessions per client address (r->useragent_ip); 0: unlimited "
                     "(default 256)"),
    NUMBER_DIRECTIVE("XmppBridgeFrontProxyTimeout", NUM_FRONT_PROXY_TIMEOUT,
                     "seconds a proxy in front of Apache waits for an answer: wait is kept 5 s "
                     "below it (default 0: no proxy)"),
    AP_INIT_ITERATE("XmppBridgeCORSOrigin", add_cors_origin, NULL, RSRC_CONF | ACCESS_CONF,
                    "origins (scheme://host[:port]) whose pages may use this BOSH service "
                    "cross-site, or *; default none (same-origin only)"),
    AP_INIT_TAKE1("XmppBridgeSeeOtherURI", set_see_other_uri, NULL, RSRC_CONF | ACCESS_CONF,
                  "absolute URI every BOSH request here is sent to (terminate see-other-uri)"),
    NUMBER_DIRECTIVE("XmppBridgeMaxReplays", NUM_MAX_REPLAYS,
                     "times one request may be re-sent before the session ends with "
                     "policy-violation; 0: unlimited (default 10)"),
    NUMBER_DIRECTIVE("XmppBridgeMaxPause", NUM_MAX_PAUSE,
                     "seconds: longest session pause a client may ask for; 0: pause not "
                     "offered (default 120)"),
    NUMBER_DIRECTIVE("XmppBridgeMaxStreams", NUM_MAX_STREAMS,
                     "XMPP streams one BOSH session may carry (XEP-0124 section 16); 1: the "
                     "feature is off (default 1, at most 16)"),
    NUMBER_DIRECTIVE("XmppBridgeWarmStreams", NUM_WARM_STREAMS,
                     "XMPP streams per domain kept set up (TLS verified, before SASL) for the "
                     "next prebinds and session creations; 0: none (default 0, at most 64)"),
    NUMBER_DIRECTIVE("XmppBridgeWarmStreamMaxAge", NUM_WARM_MAX_AGE,
                     "seconds an idle warm stream is kept before it is replaced; keep it below "
                     "the XMPP server's timeout for unauthenticated streams (default 25)"),
    AP_INIT_FLAG("XmppBridgeTLSResumption", set_tls_resumption, NULL, RSRC_CONF,
                 "On (default): XMPP streams resume the TLS session of the last verified "
                 "handshake with the same server and name (no certificate exchanged); Off: a "
                 "full handshake every time"),
    AP_INIT_FLAG("XmppBridgeRequireSiteUser", set_require_site_user, NULL,
                 OR_AUTHCFG | ACCESS_CONF,
                 "On: every request of a prebound session must come from the site user that "
                 "prebound it (put /http-bind behind the same login); default Off"),
    AP_INIT_TAKE1("XmppBridgePrebindJID", set_prebind_jid, NULL, OR_AUTHCFG | ACCESS_CONF,
                  "template of the JID a prebound user gets, e.g. %{REMOTE_USER}@example.org"),
    AP_INIT_TAKE1("XmppBridgePrebindAuth", set_prebind_auth, NULL, OR_AUTHCFG | ACCESS_CONF,
                  "token (default) or passthrough: how prebind vouches for the user"),
    /* Prebind's directory look-up (mod_xmpp_bridge_ldap.c): in <Location>/<Directory> only,
     * never .htaccess (a bind password does not belong there). */
    AP_INIT_TAKE12("XmppBridgePrebindLDAPURL", xb_ldap_set_url, NULL, ACCESS_CONF,
                   "ldap[s]://host[:port]/basedn?uidattr[,attr...]?scope?filter [NONE|SSL|TLS|"
                   "STARTTLS]: where prebind looks the site user up (needs mod_ldap)"),
    AP_INIT_TAKE1("XmppBridgePrebindLDAPBindDN", xb_ldap_set_string,
                  (void *)(apr_uintptr_t)XB_LDAP_BIND_DN, ACCESS_CONF,
                  "DN the look-up binds as (a directory reader); default: anonymous"),
    AP_INIT_TAKE1("XmppBridgePrebindLDAPBindPassword", xb_ldap_set_string,
                  (void *)(apr_uintptr_t)XB_LDAP_BIND_PASSWORD, ACCESS_CONF,
                  "password of XmppBridgePrebindLDAPBindDN (the reader's, no user's)"),
    AP_INIT_TAKE1("XmppBridgePrebindLDAPJIDAttribute", xb_ldap_set_string,
                  (void *)(apr_uintptr_t)XB_LDAP_JID_ATTRIBUTE, ACCESS_CONF,
                  "attribute holding the user's bare JID, which is then the JID (instead of "
                  "XmppBridgePrebindJID)"),
    AP_INIT_TAKE1("XmppBridgePrebindLDAPNickAttribute", xb_ldap_set_string,
                  (void *)(apr_uintptr_t)XB_LDAP_NICK_ATTRIBUTE, ACCESS_CONF,
                  "attribute holding the user's nickname (request env XMPP_BRIDGE_NICK)"),
    AP_INIT_TAKE1("XmppBridgePrebindLDAPRequireGroup", xb_ldap_add_group, NULL, ACCESS_CONF,
                  "DN of a group (member or uniqueMember) the user must be in; repeated: any "
                  "one of them"),
    { NULL }
};

static unsigned or_default(unsigned v, unsigned dflt)
{
    return v == XB_UNSET ? dflt : v;
}

const xb_config_t *xb_conf_finalize(apr_pool_t *pconf, server_rec *s)
{
    xb_server_conf_t *sc = ap_get_module_config(s->module_config, &xmpp_bridge_module);
    xb_config_t *c = &sc->core;
    const char *name = sc->socket_setting ? sc->socket_setting
                                          : apr_psprintf(pconf, "xmpp-bridge.%" APR_PID_T_FMT
                                                         ".sock", getpid());
    apr_interval_time_t timeout = s->timeout;
    struct sockaddr_un sun;

    c->max_wait = or_default(c->max_wait, XB_DEFAULT_MAX_WAIT);
    c->max_hold = or_default(c->max_hold, XB_DEFAULT_MAX_HOLD);
    c->inactivity = or_default(c->inactivity, XB_DEFAULT_INACTIVITY);
    c->polling = or_default(c->polling, XB_DEFAULT_POLLING);
    c->max_sessions = or_default(c->max_sessions, XB_DEFAULT_MAX_SESSIONS);
    c->response_cache = or_default(c->response_cache, XB_DEFAULT_RESPONSE_CACHE);
    if (!c->max_body_size) {
        c->max_body_size = XB_DEFAULT_MAX_BODY_SIZE;
    }
    if (!c->max_stanza_size) {
        c->max_stanza_size = XB_DEFAULT_MAX_STANZA_SIZE;
    }
    if (!c->max_queued_bytes) {
        c->max_queued_bytes = XB_DEFAULT_MAX_QUEUED_BYTES;
    }
    if (c->connect_timeout < 0) {
        c->connect_timeout = apr_time_from_sec(XB_DEFAULT_CONNECT_TIMEOUT_SEC);
    }
    c->token_lifetime = or_default(c->token_lifetime, XB_DEFAULT_TOKEN_LIFETIME);
    c->attach_grace = or_default(c->attach_grace, XB_DEFAULT_ATTACH_GRACE);
    c->max_per_user = or_default(c->max_per_user, XB_DEFAULT_MAX_PER_USER);
    c->max_per_address = or_default(c->max_per_address, XB_DEFAULT_MAX_PER_ADDRESS);
    c->front_proxy_timeout = or_default(c->front_proxy_timeout, 0);
    c->gzip = ap_find_linked_module("mod_deflate.c") != NULL;
    c->max_replays = or_default(c->max_replays, XB_DEFAULT_MAX_REPLAYS);
    c->max_pause = or_default(c->max_pause, XB_DEFAULT_MAX_PAUSE);
    c->max_streams = or_default(c->max_streams, XB_DEFAULT_MAX_STREAMS);
    c->warm_streams = or_default(c->warm_streams, XB_DEFAULT_WARM_STREAMS);
    c->warm_max_age = or_default(c->warm_max_age, XB_DEFAULT_WARM_MAX_AGE);
    c->tls_resumption = or_default(c->tls_resumption, XB_DEFAULT_TLS_RESUMPTION);
    if (c->response_cache < c->max_hold + 1) {
        c->response_cache = c->max_hold + 1;
    }
    /* A held request must be answered before Apache's own Timeout (and any proxy in front)
     * gives up on it: the classic BOSH 504. Keep 5 s of margin. */
    if (timeout > 0 && apr_time_from_sec(c->max_wait + 5) > timeout) {
        unsigned capped = apr_time_sec(timeout) > 6 ? (unsigned)apr_time_sec(timeout) - 5 : 1;
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, XBLOGNO(05001) "XmppBridgeMaxWait %u is "
                     "not below Timeout %" APR_TIME_T_FMT " minus 5 s: using %u", c->max_wait,
                     apr_time_sec(timeout), capped);
        c->max_wait = capped;
    }
    /* The same for a proxy in front (its own timeout, e.g. ProxyTimeout or nginx's
     * proxy_read_timeout); the directive refuses values that leave no room. */
    if (c->front_proxy_timeout && c->max_wait + XB_WAIT_MARGIN_SEC > c->front_proxy_timeout) {
        unsigned capped = c->front_proxy_timeout - XB_WAIT_MARGIN_SEC;
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, XBLOGNO(05230) "XmppBridgeMaxWait %u is "
                     "not below XmppBridgeFrontProxyTimeout %u minus %d s: using %u",
                     c->max_wait, c->front_proxy_timeout, XB_WAIT_MARGIN_SEC, capped);
        c->max_wait = capped;
    }
    c->socket_path = ap_runtime_dir_relative(pconf, name);
    /* Room for the ".new" staging name the daemon binds first (daemon_listen). */
    if (!c->socket_path || strlen(c->socket_path) + 4 >= sizeof(sun.sun_path)) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, XBLOGNO(05002) "XmppBridgeSocket: the path "
                     "'%s' is longer than a Unix socket path may be here (%u bytes)",
                     c->socket_path ? c->socket_path : name,
                     (unsigned)sizeof(sun.sun_path) - 5);
        return NULL;
    }
    return c;
}
