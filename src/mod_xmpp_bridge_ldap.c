/* Prebind's directory look-up: the site user's entry in LDAP gives the JID (or the values a
 * JID template is made of), a nickname, and group membership as authorization.
 *
 * Every LDAP operation goes through mod_ldap's optional functions (uldap_*), the way
 * mod_authnz_ldap does it, so the look-up gets what operators already configure there: the
 * per-process connection pool, LDAPRetries/LDAPTimeout, the shared search and compare cache
 * and the LDAPTrustedGlobalCert TLS settings. That ties it to a request_rec: it runs in the
 * prebind (and credentials) handler, never in the daemon.
 *
 * The search is (&(<URL filter>)(<first URL attribute>=<REMOTE_USER, RFC 4515-escaped>));
 * exactly one entry must match. Group membership is an LDAP compare of the user's DN against
 * the group's member and uniqueMember values (the server matches DNs, so its own spelling of
 * the DN and the group's need not be byte-equal).
 */
#include <string.h>
#include <strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_ldap.h>
#include <apr_lib.h>
#include <apr_optional.h>
#include <apr_strings.h>

#if !APR_HAS_LDAP
#error "mod_xmpp_bridge needs APR-util built with LDAP (apr_ldap.h: APR_HAS_LDAP)"
#endif

#include <util_ldap.h>

#include "mod_xmpp_bridge_private.h"
#include "xb_log.h"

/* Marks, on pconf, that some section of this configuration uses the look-up: check_config
 * then insists on mod_ldap. pconf is new at every (re)start, so the mark never goes stale. */
#define LDAP_USED_KEY "xmpp_bridge_ldap_used"
#define DEFAULT_UID_ATTR "uid"
/* Where the prebind template finds the entry's values: %{LDAP:mail}. */
#define TEMPLATE_PREFIX "%{LDAP:"

struct xb_ldap_dir_conf {
    /* XmppBridgePrebindLDAPURL, parsed; url == NULL: not set at this level */
    const char *url;
    const char *host;
    int port;
    const char *basedn;
    int scope;
    const char *filter;              /* the URL's filter, in parentheses */
    const char *uid_attr;            /* the URL's first attribute, else "uid" */
    apr_array_header_t *url_attrs;   /* const char *: every attribute the URL names */
    int secure;                      /* APR_LDAP_NONE, APR_LDAP_SSL, APR_LDAP_STARTTLS */
    const char *bind_dn;             /* NULL: not set here; "": anonymous */
    const char *bind_pw;
    const char *jid_attr;
    const char *nick_attr;
    apr_array_header_t *groups;      /* const char *: group DNs (any one suffices); NULL unset */
};

/* mod_ldap's functions, looked up once per generation (NULL: mod_ldap is not loaded). */
static APR_OPTIONAL_FN_TYPE(uldap_connection_find) *ufn_find;
static APR_OPTIONAL_FN_TYPE(uldap_connection_close) *ufn_close;
static APR_OPTIONAL_FN_TYPE(uldap_cache_getuserdn) *ufn_getuserdn;
static APR_OPTIONAL_FN_TYPE(uldap_cache_compare) *ufn_compare;

void xb_ldap_optional_fn_retrieve(void)
{
    ufn_find = APR_RETRIEVE_OPTIONAL_FN(uldap_connection_find);
    ufn_close = APR_RETRIEVE_OPTIONAL_FN(uldap_connection_close);
    ufn_getuserdn = APR_RETRIEVE_OPTIONAL_FN(uldap_cache_getuserdn);
    ufn_compare = APR_RETRIEVE_OPTIONAL_FN(uldap_cache_compare);
}

/* Runs before `apachectl configtest` says "Syntax OK" and before every start: a location that
 * looks users up cannot work without mod_ldap, so say so now rather than at the first login. */
int xb_ldap_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    void *used = NULL;

    (void)plog;
    (void)ptemp;
    apr_pool_userdata_get(&used, LDAP_USED_KEY, pconf);
    if (used && !ap_find_linked_module("util_ldap.c")) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s, XBLOGNO(05100)
                     "XmppBridgePrebindLDAP* directives need mod_ldap (util_ldap.c), which is "
                     "not loaded: add 'LoadModule ldap_module .../mod_ldap.so' (a2enmod ldap)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static xb_ldap_dir_conf_t *ldap_conf_of(cmd_parms *cmd, void *dconf)
{
    xb_dir_conf_t *dc = dconf;

    if (!dc->ldap) {
        dc->ldap = apr_pcalloc(cmd->pool, sizeof(*dc->ldap));
    }
    apr_pool_userdata_setn((const void *)1, LDAP_USED_KEY, NULL, cmd->pool);
    return dc->ldap;
}

/* An attribute description as RFC 4512 allows it (a name or an OID, options after ';'): no
 * filter or DN metacharacters can hide in it. */
static int is_attribute_name(const char *name)
{
    const char *c;

    if (!name || !*name) {
        return 0;
    }
    for (c = name; *c; c++) {
        if (!apr_isalnum(*c) && *c != '-' && *c != '.' && *c != ';') {
            return 0;
        }
    }
    return 1;
}

/* XmppBridgePrebindLDAPURL ldap[s]://host[:port]/basedn?attr[,attr...]?scope?filter
 *                          [NONE|SSL|TLS|STARTTLS] */
const char *xb_ldap_set_url(cmd_parms *cmd, void *dconf, const char *url, const char *mode)
{
    xb_ldap_dir_conf_t *lc = ldap_conf_of(cmd, dconf);
    apr_ldap_url_desc_t *urld = NULL;
    apr_ldap_err_t *result = NULL;
    int i;

    if (apr_ldap_url_parse(cmd->pool, url, &urld, &result) != APR_LDAP_URL_SUCCESS) {
        return apr_psprintf(cmd->pool, "XmppBridgePrebindLDAPURL: '%s' is not an LDAP URL "
                            "(ldap://host[:port]/basedn?attribute?scope?filter): %s", url,
                            result && result->reason ? result->reason : "parse error");
    }
    lc->url = url;
    lc->host = urld->lud_host && *urld->lud_host ? urld->lud_host : "localhost";
    lc->basedn = urld->lud_dn ? urld->lud_dn : "";
    lc->scope = urld->lud_scope == LDAP_SCOPE_ONELEVEL ? LDAP_SCOPE_ONELEVEL
                                                       : LDAP_SCOPE_SUBTREE;
    lc->url_attrs = apr_array_make(cmd->pool, 4, sizeof(const char *));
    for (i = 0; urld->lud_attrs && urld->lud_attrs[i]; i++) {
        if (!is_attribute_name(urld->lud_attrs[i])) {
            return apr_psprintf(cmd->pool, "XmppBridgePrebindLDAPURL: '%s' is not an attribute "
                                "name", urld->lud_attrs[i]);
        }
        APR_ARRAY_PUSH(lc->url_attrs, const char *) = urld->lud_attrs[i];
    }
    lc->uid_attr = lc->url_attrs->nelts ? APR_ARRAY_IDX(lc->url_attrs, 0, const char *)
                                        : DEFAULT_UID_ATTR;
    if (!urld->lud_filter || !*urld->lud_filter) {
        lc->filter = "(objectClass=*)";
    }
    else if (urld->lud_filter[0] == '(') {
        lc->filter = urld->lud_filter;
    }
    else {
        lc->filter = apr_pstrcat(cmd->pool, "(", urld->lud_filter, ")", NULL);
    }
    lc->secure = apr_ldap_is_ldaps_url(url) ? APR_LDAP_SSL : APR_LDAP_NONE;
    if (mode) {
        if (!strcasecmp(mode, "NONE")) {
            lc->secure = APR_LDAP_NONE;
        }
        else if (!strcasecmp(mode, "SSL")) {
            lc->secure = APR_LDAP_SSL;
        }
        else if (!strcasecmp(mode, "TLS") || !strcasecmp(mode, "STARTTLS")) {
            lc->secure = APR_LDAP_STARTTLS;
        }
        else {
            return apr_psprintf(cmd->pool, "XmppBridgePrebindLDAPURL: '%s' is not NONE, SSL, "
                                "TLS or STARTTLS", mode);
        }
    }
    lc->port = urld->lud_port ? urld->lud_port
                              : (lc->secure == APR_LDAP_SSL ? LDAPS_PORT : LDAP_PORT);
    return NULL;
}

const char *xb_ldap_set_string(cmd_parms *cmd, void *dconf, const char *arg)
{
    xb_ldap_dir_conf_t *lc = ldap_conf_of(cmd, dconf);

    xb_ldap_setting_t which = (xb_ldap_setting_t)(apr_uintptr_t)cmd->info;

    switch (which) {
    case XB_LDAP_BIND_DN:
        lc->bind_dn = arg;
        break;
    case XB_LDAP_BIND_PASSWORD:
        lc->bind_pw = arg;
        break;
    case XB_LDAP_JID_ATTRIBUTE:
    case XB_LDAP_NICK_ATTRIBUTE:
        if (!is_attribute_name(arg)) {
            return apr_psprintf(cmd->pool, "%s: '%s' is not an LDAP attribute name",
                                cmd->cmd->name, arg);
        }
        if (which == XB_LDAP_JID_ATTRIBUTE) {
            lc->jid_attr = arg;
        }
        else {
            lc->nick_attr = arg;
        }
        break;
    }
    return NULL;
}

/* XmppBridgePrebindLDAPRequireGroup <group DN>; repeated: membership in any one suffices. */
const char *xb_ldap_add_group(cmd_parms *cmd, void *dconf, const char *dn)
{
    xb_ldap_dir_conf_t *lc = ldap_conf_of(cmd, dconf);

    if (!*dn || !strchr(dn, '=')) {
        return apr_psprintf(cmd->pool, "XmppBridgePrebindLDAPRequireGroup: '%s' is not a DN "
                            "(e.g. cn=chat,ou=groups,dc=example,dc=org)", dn);
    }
    if (!lc->groups) {
        lc->groups = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(lc->groups, const char *) = dn;
    return NULL;
}

xb_ldap_dir_conf_t *xb_ldap_merge_dir(apr_pool_t *p, const xb_ldap_dir_conf_t *base,
                                      const xb_ldap_dir_conf_t *add)
{
    xb_ldap_dir_conf_t *m;

    if (!base || !add) {
        return (xb_ldap_dir_conf_t *)(add ? add : base);
    }
    m = apr_pcalloc(p, sizeof(*m));
    /* The URL's parts travel together: an inner URL replaces the outer one whole. */
    if (add->url) {
        m->url = add->url;
        m->host = add->host;
        m->port = add->port;
        m->basedn = add->basedn;
        m->scope = add->scope;
        m->filter = add->filter;
        m->uid_attr = add->uid_attr;
        m->url_attrs = add->url_attrs;
        m->secure = add->secure;
    }
    else {
        m->url = base->url;
        m->host = base->host;
        m->port = base->port;
        m->basedn = base->basedn;
        m->scope = base->scope;
        m->filter = base->filter;
        m->uid_attr = base->uid_attr;
        m->url_attrs = base->url_attrs;
        m->secure = base->secure;
    }
    m->bind_dn = add->bind_dn ? add->bind_dn : base->bind_dn;
    m->bind_pw = add->bind_pw ? add->bind_pw : base->bind_pw;
    m->jid_attr = add->jid_attr ? add->jid_attr : base->jid_attr;
    m->nick_attr = add->nick_attr ? add->nick_attr : base->nick_attr;
    m->groups = add->groups ? add->groups : base->groups;
    return m;
}

int xb_ldap_has_jid_attribute(const xb_ldap_dir_conf_t *lc)
{
    return lc && lc->jid_attr;
}

/* RFC 4515 §3: in an assertion value, '*', '(', ')', '\' and NUL must be written \XX. Control
 * bytes are escaped too (harmless, and it keeps log lines and caches clean); other UTF-8 goes
 * as it is. */
const char *xb_ldap_escape_filter_value(apr_pool_t *p, const char *value)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *c;
    char *out = apr_palloc(p, strlen(value) * 3 + 1), *w = out;

    for (c = (const unsigned char *)value; *c; c++) {
        if (*c == '*' || *c == '(' || *c == ')' || *c == '\\' || *c < 0x20 || *c == 0x7f) {
            *w++ = '\\';
            *w++ = hex[*c >> 4];
            *w++ = hex[*c & 0xf];
        }
        else {
            *w++ = (char)*c;
        }
    }
    *w = '\0';
    return out;
}

static void add_attr(apr_array_header_t *attrs, const char *name)
{
    int i;

    for (i = 0; i < attrs->nelts; i++) {
        if (!strcasecmp(APR_ARRAY_IDX(attrs, i, const char *), name)) {
            return;
        }
    }
    APR_ARRAY_PUSH(attrs, const char *) = name;
}

/* The attributes to fetch: the URL's, the JID and nickname attributes and every %{LDAP:x} of
 * the JID template. NULL-terminated, as uldap wants them. */
static char **wanted_attrs(apr_pool_t *p, const xb_ldap_dir_conf_t *lc, const char *tmpl,
                           apr_array_header_t **names)
{
    apr_array_header_t *attrs = apr_array_make(p, 8, sizeof(const char *));
    const char *at = tmpl;
    int i;

    add_attr(attrs, lc->uid_attr);
    for (i = 0; lc->url_attrs && i < lc->url_attrs->nelts; i++) {
        add_attr(attrs, APR_ARRAY_IDX(lc->url_attrs, i, const char *));
    }
    if (lc->jid_attr) {
        add_attr(attrs, lc->jid_attr);
    }
    if (lc->nick_attr) {
        add_attr(attrs, lc->nick_attr);
    }
    while (at && (at = strstr(at, TEMPLATE_PREFIX)) != NULL) {
        const char *name = at + strlen(TEMPLATE_PREFIX), *end = strchr(name, '}');
        if (!end) {
            break;
        }
        name = apr_pstrmemdup(p, name, (apr_size_t)(end - name));
        if (is_attribute_name(name)) { /* else it stays unset, and the template says so */
            add_attr(attrs, name);
        }
        at = end;
    }
    *names = attrs;
    APR_ARRAY_PUSH(attrs, const char *) = NULL;
    attrs->nelts--; /* the NULL stays after the last name, outside the count */
    return (char **)attrs->elts;
}

const char *xb_ldap_entry_value(const xb_ldap_entry_t *e, const char *attr)
{
    int i;

    if (!e || !e->values) {
        return NULL;
    }
    for (i = 0; i < e->names->nelts; i++) {
        if (!strcasecmp(APR_ARRAY_IDX(e->names, i, const char *), attr)) {
            const char *v = e->values[i];
            return v && *v ? v : NULL;
        }
    }
    return NULL;
}

static int is_directory_down(int rc)
{
    return AP_LDAP_IS_SERVER_DOWN(rc) || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR
           || rc == LDAP_BUSY || rc == LDAP_UNAVAILABLE;
}

/* Logs why the directory could not answer and picks the refusal: 503 when it is unreachable
 * (a retry may work), 500 when it refused us (the configuration needs a look). */
static int directory_failed(request_rec *r, const xb_ldap_dir_conf_t *lc,
                            util_ldap_connection_t *ldc, int rc, const char *what,
                            const char **reason)
{
    if (is_directory_down(rc)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05106) "directory unavailable: %s "
                      "for user %s failed: %s (%s); XmppBridgePrebindLDAPURL %s", what, r->user,
                      ldap_err2string(rc), ldc && ldc->reason ? ldc->reason : "no detail",
                      lc->url);
        *reason = "directory-unavailable";
        return HTTP_SERVICE_UNAVAILABLE;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05107) "directory error: %s for user %s "
                  "failed: %s (%s); check XmppBridgePrebindLDAPURL %s, ...BindDN '%s' and "
                  "...BindPassword", what, r->user, ldap_err2string(rc),
                  ldc && ldc->reason ? ldc->reason : "no detail", lc->url,
                  lc->bind_dn ? lc->bind_dn : "(anonymous)");
    *reason = "directory-error";
    return HTTP_INTERNAL_SERVER_ERROR;
}

/* member, then uniqueMember, of each required group; OK as soon as one compare is true. */
static int check_groups(request_rec *r, const xb_ldap_dir_conf_t *lc,
                        util_ldap_connection_t *ldc, const char *cache_url, const char *user_dn,
                        const char **reason)
{
    static const char *const member_attrs[] = { "member", "uniqueMember" };
    int g;
    unsigned a;

    for (g = 0; g < lc->groups->nelts; g++) {
        const char *group = APR_ARRAY_IDX(lc->groups, g, const char *);
        for (a = 0; a < sizeof(member_attrs) / sizeof(member_attrs[0]); a++) {
            int rc = ufn_compare(r, ldc, cache_url, group, member_attrs[a], user_dn);
            if (rc == LDAP_COMPARE_TRUE) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, XBLOGNO(05110) "user %s (%s) is "
                              "in group %s (%s)", r->user, user_dn, group, member_attrs[a]);
                return OK;
            }
            if (is_directory_down(rc)) {
                return directory_failed(r, lc, ldc, rc, "the group compare", reason);
            }
            if (rc != LDAP_COMPARE_FALSE && rc != LDAP_NO_SUCH_ATTRIBUTE
                && rc != LDAP_UNDEFINED_TYPE) {
                /* e.g. the group does not exist: a configuration mistake, and no membership */
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05108) "comparing %s of "
                              "group %s with %s failed: %s (does the group exist?)",
                              member_attrs[a], group, user_dn, ldap_err2string(rc));
                break;
            }
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, XBLOGNO(05105) "user %s (%s) is in none of "
                  "the groups XmppBridgePrebindLDAPRequireGroup names: refused", r->user,
                  user_dn);
    *reason = "not-in-group";
    return HTTP_FORBIDDEN;
}

static int search_user(request_rec *r, const xb_ldap_dir_conf_t *lc,
                       util_ldap_connection_t *ldc, const char *cache_url, char **attrs,
                       xb_ldap_entry_t *e, const char **reason)
{
    const char *filter = apr_pstrcat(r->pool, "(&", lc->filter, "(", lc->uid_attr, "=",
                                     xb_ldap_escape_filter_value(r->pool, r->user), "))", NULL);
    const char **vals = NULL;
    int rc = ufn_getuserdn(r, ldc, cache_url, lc->basedn, lc->scope, attrs, filter, &e->dn,
                            &vals);

    if (rc == LDAP_SUCCESS) {
        e->values = vals;
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, XBLOGNO(05111) "user %s is %s", r->user,
                      e->dn);
        return OK;
    }
    /* uldap_cache_getuserdn answers LDAP_NO_SUCH_OBJECT for zero and for several entries
     * alike; only its reason tells them apart. */
    if (rc == LDAP_NO_SUCH_OBJECT && ldc->reason && strstr(ldc->reason, "not unique")) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, XBLOGNO(05104) "user %s: several "
                      "directory entries match %s under '%s': refused (which one is meant "
                      "cannot be told)", r->user, filter, lc->basedn);
        *reason = "ambiguous-directory-entry";
        return HTTP_FORBIDDEN;
    }
    if (rc == LDAP_NO_SUCH_OBJECT && ldc->reason && strstr(ldc->reason, "not found")) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, XBLOGNO(05103) "user %s: no directory "
                      "entry matches %s under '%s': refused", r->user, filter, lc->basedn);
        *reason = "no-directory-entry";
        return HTTP_FORBIDDEN;
    }
    return directory_failed(r, lc, ldc, rc, "the user search", reason);
}

int xb_ldap_lookup(request_rec *r, const xb_ldap_dir_conf_t *lc, const char *jid_template,
                   xb_ldap_entry_t **entry, const char **reason)
{
    util_ldap_connection_t *ldc;
    xb_ldap_entry_t *e;
    char **attrs;
    const char *cache_url, *bind_dn;
    int rc;

    *entry = NULL;
    if (!lc->url) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05101) "%s: XmppBridgePrebindLDAP* "
                      "directives apply here but no XmppBridgePrebindLDAPURL does", r->uri);
        *reason = "not-configured";
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!ufn_find || !ufn_close || !ufn_getuserdn || !ufn_compare) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05102) "%s: the LDAP look-up needs "
                      "mod_ldap, which is not loaded", r->uri);
        *reason = "not-configured";
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    e = apr_pcalloc(r->pool, sizeof(*e));
    attrs = wanted_attrs(r->pool, lc, jid_template, &e->names);
    /* util_ldap caches searches and compares per URL string, with the values of the
     * attributes that search asked for: a key of our own keeps a search of the same URL with
     * other attributes (another location's, mod_authnz_ldap's), or made as another reader who
     * may see other entries, from answering ours. */
    cache_url = apr_pstrcat(r->pool, lc->url, " xmpp_bridge:",
                            apr_array_pstrcat(r->pool, e->names, ','), " as:",
                            lc->bind_dn ? lc->bind_dn : "", NULL);
    /* No bind DN: an anonymous bind, whatever password may be configured. */
    bind_dn = lc->bind_dn && *lc->bind_dn ? lc->bind_dn : NULL;
    ldc = ufn_find(r, lc->host, lc->port, bind_dn, bind_dn && lc->bind_pw ? lc->bind_pw : NULL,
                   always, lc->secure);
    if (!ldc) {
        return directory_failed(r, lc, NULL, LDAP_UNAVAILABLE, "getting a connection", reason);
    }
    rc = search_user(r, lc, ldc, cache_url, attrs, e, reason);
    if (rc == OK && lc->groups && lc->groups->nelts) {
        rc = check_groups(r, lc, ldc, cache_url, e->dn, reason);
    }
    ufn_close(ldc);
    if (rc != OK) {
        return rc;
    }
    if (lc->jid_attr) {
        e->jid = xb_ldap_entry_value(e, lc->jid_attr);
    }
    if (lc->nick_attr) {
        e->nick = xb_ldap_entry_value(e, lc->nick_attr);
    }
    /* For the site's own use: mod_headers (Header set X-Chat-Nick %{XMPP_BRIDGE_NICK}e), the
     * access log, a CGI. */
    apr_table_set(r->subprocess_env, "XMPP_BRIDGE_LDAP_DN", e->dn);
    if (e->nick) {
        apr_table_set(r->subprocess_env, "XMPP_BRIDGE_NICK", e->nick);
    }
    *entry = e;
    return OK;
}
