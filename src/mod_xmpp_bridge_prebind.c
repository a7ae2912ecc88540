/* SetHandler xmpp-prebind: the site's logged-in user becomes a live, bound XMPP session.
 *
 * Apache's own authentication (any module) has already run: r->user is who the site says this
 * is. The handler maps that user to a JID, asks the daemon to log in on the user's behalf
 * (a token the daemon mints, or the site login's own Basic credentials where the XMPP server
 * shares the directory) and answers Converse.js's prebind_url contract:
 *     200 {"jid": bound full JID, "sid": ..., "rid": next unused RID}
 * Every failure is JSON with a 4xx/5xx status and a reason code, never 200 and never HTML
 * (Converse JSON.parses any 2xx/3xx and hangs on HTML).
 */
#include <string.h>
#include <strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_poll.h>
#include <apr_strings.h>

#include "mod_xmpp_bridge_private.h"
#include "xb_ipc.h"
#include "xb_jid.h"
#include "xb_log.h"

#define JSON_TYPE "application/json"
/* Beyond the connect timeout: SASL, restart, bind and session take a few round trips more. */
#define PREBIND_ANSWER_SLACK apr_time_from_sec(10)

static int json_error(request_rec *r, int status, const char *reason)
{
    const char *body = apr_psprintf(r->pool, "{\"error\":\"%s\"}\n", reason);

    r->status = status;
    ap_set_content_type(r, JSON_TYPE);
    ap_set_content_length(r, (apr_off_t)strlen(body));
    ap_rputs(body, r);
    /* DONE, not the status: the JSON body is written and httpd must not add its own HTML
     * error page; and not OK, which the checks below use for "go on". */
    return DONE;
}

/* Fetch metadata first; without it (older browsers), Origin, then Referer. A request carrying
 * none of them is no browser's cross-site request. */
static int is_cross_site(request_rec *r)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *host = apr_table_get(r->headers_in, "Host");
    const char *origin, *referer, *own;

    if (site) {
        return strcasecmp(site, "same-origin") != 0 && strcasecmp(site, "none") != 0;
    }
    if (!host) {
        return 0;
    }
    own = apr_pstrcat(r->pool, ap_http_scheme(r), "://", host, NULL);
    origin = apr_table_get(r->headers_in, "Origin");
    if (origin) {
        return strcasecmp(origin, own) != 0;
    }
    referer = apr_table_get(r->headers_in, "Referer");
    if (referer) {
        apr_size_t n = strlen(own);
        return strncasecmp(referer, own, n) != 0 || (referer[n] != '/' && referer[n] != '\0');
    }
    return 0;
}

/* %{NAME} in XmppBridgePrebindJID: the authenticated user, then the request environment
 * (e.g. mod_authnz_ldap's AUTHENTICATE_* attributes), then a few request facts. */
static const char *lookup_variable(void *baton, const char *name)
{
    request_rec *r = baton;
    const char *v;

    if (!strcmp(name, "REMOTE_USER")) {
        return r->user;
    }
    v = apr_table_get(r->subprocess_env, name);
    if (v) {
        return v;
    }
    if (!strcmp(name, "SERVER_NAME")) {
        return ap_get_server_name(r);
    }
    return NULL;
}

static void set_headers(request_rec *r)
{
    /* A SID is a bearer credential: never cached, never sniffed, never shared cross-origin. */
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "X-Content-Type-Options", "nosniff");
}

/* The fields travel as consecutive NUL-terminated strings (xb_ipc_strings_split). */
static char *pack_fields(apr_pool_t *p, const char *const *values, unsigned n, apr_size_t *len)
{
    apr_size_t total = 0, pos = 0;
    unsigned i;
    char *buf;

    for (i = 0; i < n; i++) {
        total += strlen(values[i]) + 1;
    }
    buf = apr_palloc(p, total);
    for (i = 0; i < n; i++) {
        apr_size_t part = strlen(values[i]) + 1;
        memcpy(buf + pos, values[i], part);
        pos += part;
    }
    *len = total;
    return buf;
}

static int wait_answer(request_rec *r, xb_daemon_link_t *link, apr_interval_time_t timeout,
                       int *status, char **body, apr_size_t *len)
{
    apr_pollfd_t pfd;
    apr_int32_t n = 0;
    apr_status_t rv;

    memset(&pfd, 0, sizeof(pfd));
    pfd.desc_type = APR_POLL_SOCKET;
    pfd.desc.s = link->sock;
    pfd.reqevents = APR_POLLIN;
    pfd.p = r->pool;
    do {
        rv = apr_poll(&pfd, 1, &n, timeout);
    } while (APR_STATUS_IS_EINTR(rv));
    if (rv != APR_SUCCESS) {
        return APR_STATUS_IS_TIMEUP(rv) ? HTTP_GATEWAY_TIME_OUT : HTTP_BAD_GATEWAY;
    }
    rv = xb_link_read_answer(link, status, body, len);
    return rv == APR_SUCCESS ? OK : HTTP_BAD_GATEWAY;
}

/* Who the site says this is, and the JID that makes of them. */
typedef struct site_identity {
    const char *jid;       /* bare */
    const char *localpart;
    const char *domain;
} site_identity_t;

/* What every handler of this file checks first: an authenticated user, a same-site request,
 * a method it takes. Returns OK, or the (already written) refusal. */
static int check_request(request_rec *r, const char *handler_name)
{
    set_headers(r);
    ap_allow_methods(r, REPLACE_ALLOW, "GET", "POST", NULL);
    if (r->method_number != M_GET && r->method_number != M_POST) {
        apr_table_setn(r->err_headers_out, "Allow", "GET, POST");
        return json_error(r, HTTP_METHOD_NOT_ALLOWED, "method-not-allowed");
    }
    if (!r->user || !*r->user) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05050) "%s at %s has no "
                      "authenticated user: protect it with the site's authentication "
                      "(AuthType ... / Require valid-user); refusing", handler_name, r->uri);
        return json_error(r, HTTP_INTERNAL_SERVER_ERROR, "not-protected");
    }
    if (is_cross_site(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, XBLOGNO(05051) "cross-site %s request "
                      "refused (user %s)", handler_name, r->user);
        return json_error(r, HTTP_FORBIDDEN, "cross-site");
    }
    return OK;
}

/* The template's variables where a directory look-up applies: %{LDAP:attr} is a value of the
 * user's entry, everything else as lookup_variable. */
typedef struct identity_vars {
    request_rec *r;
    const xb_ldap_entry_t *entry;
} identity_vars_t;

static const char *lookup_identity_variable(void *baton, const char *name)
{
    const identity_vars_t *v = baton;

    if (!strncmp(name, "LDAP:", 5)) {
        return xb_ldap_entry_value(v->entry, name + 5);
    }
    return lookup_variable(v->r, name);
}

/* XmppBridgePrebindLDAPJIDAttribute: the entry holds the bare JID itself (already a JID: its
 * localpart is taken as written, not escaped again). */
static int jid_from_entry(request_rec *r, const xb_ldap_entry_t *entry, site_identity_t *id)
{
    const char *value = entry ? entry->jid : NULL, *errmsg = NULL, *why = NULL;
    const char *at = value ? strrchr(value, '@') : NULL;

    if (!value) {
        why = "has no value of the JID attribute";
    }
    else if (strstr(value, "; ")) {
        why = "has several values of the JID attribute";
    }
    else if (!at || at == value || xb_jid_validate(value, 0, &errmsg) != APR_SUCCESS) {
        why = apr_pstrcat(r->pool, "has a JID attribute value that is not a bare JID: ",
                          errmsg ? errmsg : "no localpart@domain", NULL);
    }
    if (why) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, XBLOGNO(05112) "user %s: the directory "
                      "entry %s %s (XmppBridgePrebindLDAPJIDAttribute): refused", r->user,
                      entry ? entry->dn : "-", why);
        return json_error(r, HTTP_FORBIDDEN, "no-jid");
    }
    id->localpart = apr_pstrmemdup(r->pool, value, (apr_size_t)(at - value));
    id->domain = apr_pstrdup(r->pool, at + 1);
    ap_str_tolower((char *)id->domain);
    id->jid = apr_pstrcat(r->pool, id->localpart, "@", id->domain, NULL);
    return OK;
}

/* The site user -> JID mapping of this location: XmppBridgePrebindJID, filled in with the
 * user's directory entry where XmppBridgePrebindLDAP* apply, or that entry's JID attribute. */
static int identify(request_rec *r, const xb_config_t *conf, const xb_dir_conf_t *dc,
                    site_identity_t *id)
{
    const char *errmsg = NULL, *at, *reason = NULL;
    xb_ldap_entry_t *entry = NULL;
    identity_vars_t vars;
    int rc;

    if (!dc->prebind_jid && !xb_ldap_has_jid_attribute(dc->ldap)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05052) "%s: no "
                      "XmppBridgePrebindJID is configured", r->uri);
        return json_error(r, HTTP_INTERNAL_SERVER_ERROR, "not-configured");
    }
    if (!dc->ldap && strstr(dc->prebind_jid, "%{LDAP:")) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05113) "%s: XmppBridgePrebindJID "
                      "'%s' uses %%{LDAP:...} but no XmppBridgePrebindLDAPURL applies here",
                      r->uri, dc->prebind_jid);
        return json_error(r, HTTP_INTERNAL_SERVER_ERROR, "not-configured");
    }
    if (dc->ldap && (rc = xb_ldap_lookup(r, dc->ldap, dc->prebind_jid, &entry, &reason)) != OK) {
        return json_error(r, rc, reason);
    }
    if (xb_ldap_has_jid_attribute(dc->ldap)) {
        if ((rc = jid_from_entry(r, entry, id)) != OK) {
            return rc;
        }
    }
    else {
        vars.r = r;
        vars.entry = entry;
        if (xb_jid_expand(r->pool, dc->prebind_jid, lookup_identity_variable, &vars, &id->jid,
                          &errmsg) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, XBLOGNO(05053) "user %s cannot be "
                          "mapped to a JID with '%s': %s", r->user, dc->prebind_jid,
                          errmsg ? errmsg : "invalid");
            return json_error(r, HTTP_FORBIDDEN, "no-jid");
        }
        at = strrchr(id->jid, '@');
        id->localpart = apr_pstrmemdup(r->pool, id->jid, (apr_size_t)(at - id->jid));
        id->domain = at + 1;
    }
    if (!xb_config_find_domain(conf, id->domain)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05054) "JID %s: domain %s is not an "
                      "XmppBridgeDomain", id->jid, id->domain);
        return json_error(r, HTTP_INTERNAL_SERVER_ERROR, "domain-not-configured");
    }
    return OK;
}

/* Sends one frame to the daemon and relays its JSON answer. */
static int ask_daemon(request_rec *r, const xb_config_t *conf, int type, const void *part1,
                      apr_size_t len1, void *part2, apr_size_t len2, const char *what)
{
    xb_daemon_link_t link;
    char *body = NULL;
    apr_size_t len = 0;
    int status = 0, rc;
    apr_status_t rv = xb_link_open(&link, r, conf->socket_path);

    if (rv == APR_SUCCESS) {
        rv = xb_link_send(&link, type, part1, len1, part2, len2);
    }
    /* A pass-through password may be in this frame; wipe our copy. */
    if (part2) {
        memset(part2, 0, len2);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, XBLOGNO(05057) "cannot reach the bridge "
                      "daemon at %s", conf->socket_path);
        return json_error(r, HTTP_SERVICE_UNAVAILABLE, "daemon-unavailable");
    }
    rc = wait_answer(r, &link, conf->connect_timeout + PREBIND_ANSWER_SLACK, &status, &body,
                     &len);
    if (rc != OK) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05058) "no answer from the bridge "
                      "daemon for %s", what);
        return json_error(r, rc, rc == HTTP_GATEWAY_TIME_OUT ? "timeout" : "daemon-failed");
    }
    r->status = status;
    ap_set_content_type(r, JSON_TYPE);
    ap_set_content_length(r, (apr_off_t)len);
    ap_rwrite(body, (int)len, r);
    return OK;
}

int xb_prebind_handler(request_rec *r)
{
    const xb_config_t *conf;
    const xb_dir_conf_t *dc;
    xb_ipc_prebind_meta_t meta;
    site_identity_t id;
    const char *password = "", *basic_user = NULL, *basic_pw = NULL;
    const char *values[XB_PREBIND_FIELD_COUNT];
    char *fields;
    apr_size_t fields_len;
    int rc;

    if (!r->handler || strcmp(r->handler, XB_PREBIND_HANDLER) != 0) {
        return DECLINED;
    }
    conf = xb_conf_get(r->server);
    dc = xb_conf_dir(r);
    if ((rc = check_request(r, XB_PREBIND_HANDLER)) != OK
        || (rc = identify(r, conf, dc, &id)) != OK) {
        return rc;
    }
    memset(&meta, 0, sizeof(meta));
    meta.mode = dc->prebind_mode ? (uint32_t)dc->prebind_mode : XB_PREBIND_TOKEN;
    apr_cpystrn(meta.client_ip, r->useragent_ip ? r->useragent_ip : "", sizeof(meta.client_ip));
    if (meta.mode == XB_PREBIND_PASSTHROUGH) {
        if (ap_get_basic_auth_components(r, &basic_user, &basic_pw) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05055) "XmppBridgePrebindAuth "
                          "passthrough needs HTTP Basic credentials on %s", r->uri);
            return json_error(r, HTTP_INTERNAL_SERVER_ERROR, "no-site-credentials");
        }
        password = basic_pw;
    }
    else if (!conf->token_key_file) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05056) "XmppBridgePrebindAuth token "
                      "needs XmppBridgeTokenKeyFile");
        return json_error(r, HTTP_INTERNAL_SERVER_ERROR, "not-configured");
    }
    values[XB_PREBIND_FIELD_DOMAIN] = id.domain;
    values[XB_PREBIND_FIELD_LOCALPART] = id.localpart;
    values[XB_PREBIND_FIELD_JID] = id.jid;
    values[XB_PREBIND_FIELD_SITE_USER] = r->user;
    values[XB_PREBIND_FIELD_SECRET] = password;
    fields = pack_fields(r->pool, values, XB_PREBIND_FIELD_COUNT, &fields_len);
    return ask_daemon(r, conf, XB_IPC_PREBIND, &meta, sizeof(meta), fields, fields_len, id.jid);
}

/* SetHandler xmpp-credentials: Converse's credentials_url + auto_login (also over websocket):
 * {"jid": bare JID, "password": a short-lived token} for the same identity. The daemon mints
 * the token: only it holds the key. */
int xb_credentials_handler(request_rec *r)
{
    const xb_config_t *conf;
    site_identity_t id;
    int rc;

    if (!r->handler || strcmp(r->handler, XB_CREDENTIALS_HANDLER) != 0) {
        return DECLINED;
    }
    conf = xb_conf_get(r->server);
    if ((rc = check_request(r, XB_CREDENTIALS_HANDLER)) != OK
        || (rc = identify(r, conf, xb_conf_dir(r), &id)) != OK) {
        return rc;
    }
    if (!conf->token_key_file) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05059) "xmpp-credentials needs "
                      "XmppBridgeTokenKeyFile");
        return json_error(r, HTTP_INTERNAL_SERVER_ERROR, "not-configured");
    }
    return ask_daemon(r, conf, XB_IPC_CREDENTIALS, id.jid, strlen(id.jid), NULL, 0, id.jid);
}

/* SetHandler xmpp-logout: the site's logout page calls it (same origin, still authenticated)
 * and every XMPP session the user prebound ends at once. */
int xb_logout_handler(request_rec *r)
{
    int rc;

    if (!r->handler || strcmp(r->handler, XB_LOGOUT_HANDLER) != 0) {
        return DECLINED;
    }
    if ((rc = check_request(r, XB_LOGOUT_HANDLER)) != OK) {
        return rc;
    }
    return ask_daemon(r, xb_conf_get(r->server), XB_IPC_LOGOUT, r->user, strlen(r->user), NULL,
                      0, r->user);
}
