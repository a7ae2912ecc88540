/* The prebind login state machine (see xb_xmpp_login.h).
 *
 * Each element is parsed into a tree in a scratch pool that dies before the call returns, so
 * a login costs the same memory however chatty the server is; only what must outlive the call
 * (the bytes to send, the bound JID, the error) goes into the login's pool.
 *
 * What the server says is checked as strictly as the protocol allows: an element that does not
 * fit the state ends the login rather than being skipped, because a login that goes on after a
 * surprise hands the user a stream in a state nobody tested.
 */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <apr_tables.h>
#include <openssl/crypto.h>

#include "xb_log.h"
#include "xb_sasl.h"
#include "xb_xml_element.h"
#include "xb_xmpp_login.h"

#define STREAM_NS "http://etherx.jabber.org/streams"
#define CLIENT_NS "jabber:client"
#define SASL_NS "urn:ietf:params:xml:ns:xmpp-sasl"
#define BIND_NS "urn:ietf:params:xml:ns:xmpp-bind"
#define SESSION_NS "urn:ietf:params:xml:ns:xmpp-session"
#define STANZAS_NS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define STREAMS_ERR_NS "urn:ietf:params:xml:ns:xmpp-streams"

#define BIND_ID "xb-bind"
#define SESSION_ID "xb-session"

/* RFC 4422 §3.1: mechanism names are 1-20 of [A-Z0-9-_]. */
#define MECH_NAME_MAX 20
/* RFC 7622 §3.1: each JID part at most 1023 octets. */
#define JID_MAX (3 * 1023 + 2)
/* How much of a server-chosen name goes into a log line. */
#define LOG_NAME_MAX 64

typedef enum {
    LS_FEATURES,      /* waiting for the post-TLS features */
    LS_SASL,          /* <auth/> sent: challenges until success or failure */
    LS_BIND_FEATURES, /* stream restarted: waiting for the features with <bind/> */
    LS_BIND,          /* bind iq sent */
    LS_SESSION,       /* session iq sent */
    LS_DONE,
    LS_FAILED
} login_state_t;

struct xb_xmpp_login {
    apr_pool_t *p;
    const char *username;
    const char *domain;
    const char *resource;
    char *secret;         /* wiped once handed to the SASL client, and by the cleanup */
    apr_size_t secret_len;
    xb_xmpp_login_mode_t mode;
    int scram_only;
    login_state_t state;
    xb_sasl_t *sasl;
    int session_required;
    const char *bound_jid;
    const char *error;
    const char *detail;
    char *send_buf;       /* last bytes handed out (may hold PLAIN's base64): wiped on reuse */
    apr_size_t send_len;
};

static const char *state_name(login_state_t s)
{
    switch (s) {
    case LS_FEATURES: return "the stream features";
    case LS_SASL: return "the SASL outcome";
    case LS_BIND_FEATURES: return "the stream features after SASL";
    case LS_BIND: return "the bind result";
    case LS_SESSION: return "the session result";
    case LS_DONE: return "nothing (login done)";
    default: return "nothing (login failed)";
    }
}

static void wipe_secret(xb_xmpp_login_t *l)
{
    if (l->secret) {
        OPENSSL_cleanse(l->secret, l->secret_len);
        l->secret = NULL;
        l->secret_len = 0;
    }
}

static void wipe_send(xb_xmpp_login_t *l)
{
    if (l->send_buf) {
        OPENSSL_cleanse(l->send_buf, l->send_len);
        l->send_buf = NULL;
        l->send_len = 0;
    }
}

static apr_status_t login_cleanup(void *data)
{
    wipe_secret(data);
    wipe_send(data);
    return APR_SUCCESS;
}

/* A server-chosen name made safe for a log line: printable ASCII, bounded length. */
static const char *log_safe(apr_pool_t *p, const char *s)
{
    char buf[LOG_NAME_MAX + 4];
    apr_size_t i;

    for (i = 0; s[i] && i < LOG_NAME_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c >= 0x20 && c < 0x7f && c != '\\') ? (char)c : '?';
    }
    if (s[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return apr_pstrdup(p, buf);
}

/* "{ns}name" of an element, for the log. */
static const char *element_label(apr_pool_t *p, const xb_xml_element_t *e)
{
    return apr_pstrcat(p, "{", log_safe(p, e->ns), "}", log_safe(p, e->name), NULL);
}

static xb_login_result_t login_fail(xb_xmpp_login_t *l, const char *code, const char *detail)
{
    l->state = LS_FAILED;
    l->error = apr_pstrdup(l->p, code);
    l->detail = apr_pstrdup(l->p, detail);
    wipe_secret(l);
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(07004) "XMPP login %s@%s failed: %s (%s)",
           l->username, l->domain, l->error, l->detail);
    return XB_LOGIN_FAILED;
}

static xb_login_result_t unexpected(xb_xmpp_login_t *l, apr_pool_t *tmp,
                                    const xb_xml_element_t *e)
{
    return login_fail(l, "protocol-error",
                      apr_pstrcat(tmp, "unexpected ", element_label(tmp, e),
                                  " while waiting for ", state_name(l->state), NULL));
}

/* Hands `buf` out as the bytes to send; the login keeps it to wipe it later. */
static xb_login_result_t send_bytes(xb_xmpp_login_t *l, char *buf, apr_size_t len)
{
    l->send_buf = buf;
    l->send_len = len;
    return XB_LOGIN_CONTINUE;
}

static const char *xml_escape(apr_pool_t *p, const char *s)
{
    apr_size_t n = 0;
    const char *in;
    char *out, *o;

    for (in = s; *in; in++) {
        n += (*in == '&') ? 5 : (*in == '<' || *in == '>') ? 4 : (*in == '\'') ? 6 : 1;
    }
    out = o = apr_palloc(p, n + 1);
    for (in = s; *in; in++) {
        const char *rep = (*in == '&') ? "&amp;" : (*in == '<') ? "&lt;"
                          : (*in == '>') ? "&gt;" : (*in == '\'') ? "&apos;" : NULL;
        if (rep) {
            memcpy(o, rep, strlen(rep));
            o += strlen(rep);
        }
        else {
            *o++ = *in;
        }
    }
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* SASL */

static int is_xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Text with surrounding XML whitespace removed, in `p`. */
static const char *trimmed(apr_pool_t *p, const xb_xml_element_t *e, apr_size_t *len)
{
    const char *s = e->text, *end = e->text + e->text_len;

    while (s < end && is_xml_space(*s)) {
        s++;
    }
    while (end > s && is_xml_space(end[-1])) {
        end--;
    }
    *len = (apr_size_t)(end - s);
    return apr_pstrmemdup(p, s, *len);
}

static int valid_mechanism_name(const char *s, apr_size_t len)
{
    apr_size_t i;

    if (!len || len > MECH_NAME_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return 0;
        }
    }
    return 1;
}

/* The payload of a SASL element: base64 text, "=" meaning empty (RFC 6120 §6.4.2), whitespace
 * around it tolerated. NULL if it is not base64. */
static const char *sasl_payload(apr_pool_t *p, const xb_xml_element_t *e, apr_size_t *len)
{
    apr_size_t n;
    const char *b64 = trimmed(p, e, &n);

    if (n == 0 || (n == 1 && b64[0] == '=')) {
        *len = 0;
        return "";
    }
    return xb_sasl_base64_decode(p, b64, n, len);
}

/* <tag xmlns='SASL_NS'[ attrs]>base64</tag>, or "=" for an empty payload when `empty_eq`
 * (initial responses), or an empty element. The base64 may encode a secret: wiped here, and
 * the result is wiped by the login. */
static xb_login_result_t send_sasl(xb_xmpp_login_t *l, apr_pool_t *tmp, const char *tag,
                                   const char *attrs, const char *payload, apr_size_t len,
                                   int empty_eq)
{
    apr_size_t b64_len = 0;
    char *b64 = len ? xb_sasl_base64_encode(tmp, payload, len, &b64_len) : NULL;
    const char *body = b64 ? b64 : (empty_eq ? "=" : NULL);
    char *out;

    if (body) {
        out = apr_pstrcat(l->p, "<", tag, " xmlns='" SASL_NS "'", attrs, ">", body, "</", tag,
                          ">", NULL);
    }
    else {
        out = apr_pstrcat(l->p, "<", tag, " xmlns='" SASL_NS "'", attrs, "/>", NULL);
    }
    if (b64) {
        OPENSSL_cleanse(b64, b64_len);
    }
    return send_bytes(l, out, strlen(out));
}

static xb_login_result_t on_features(xb_xmpp_login_t *l, apr_pool_t *tmp,
                                     const xb_xml_element_t *e)
{
    const xb_xml_element_t *mechs, *m;
    apr_array_header_t *offered = apr_array_make(tmp, 8, sizeof(const char *));
    const char *chosen, *errmsg = NULL, *out, *list = "";
    apr_size_t out_len;
    int allow_scram = (l->mode == XB_LOGIN_MODE_PASSWORD);
    int allow_plain = (l->mode == XB_LOGIN_MODE_TOKEN) || !l->scram_only;

    if (!xb_xml_element_is(e, STREAM_NS, "features")) {
        return unexpected(l, tmp, e);
    }
    mechs = xb_xml_element_child(e, SASL_NS, "mechanisms");
    if (!mechs) {
        /* Prosody offers none before TLS, or when c2s_require_encryption cannot be met. */
        return login_fail(l, "auth-no-mechanism", "the server offers no SASL mechanisms");
    }
    for (m = mechs->first_child; m; m = m->next) {
        apr_size_t n;
        const char *name;
        if (!xb_xml_element_is(m, SASL_NS, "mechanism")) {
            continue;
        }
        name = trimmed(tmp, m, &n);
        if (valid_mechanism_name(name, n)) {
            APR_ARRAY_PUSH(offered, const char *) = name;
            list = apr_pstrcat(tmp, list, *list ? " " : "", name, NULL);
        }
    }
    chosen = xb_sasl_choose(offered, allow_scram, allow_plain);
    if (!chosen) {
        return login_fail(l, "auth-no-mechanism",
                          apr_pstrcat(tmp, "none acceptable among those offered: ",
                                      *list ? list : "(none)",
                                      l->mode == XB_LOGIN_MODE_TOKEN ? " (token login: PLAIN only)"
                                      : !allow_plain ? " (SCRAM only)" : "", NULL));
    }
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(07000) "XMPP login %s@%s: offered %s; using %s",
           l->username, l->domain, list, chosen);
    l->sasl = xb_sasl_create(l->p, chosen, l->username, l->secret, &errmsg);
    /* The SASL client has its own copy, wiped as soon as it is used. */
    wipe_secret(l);
    if (!l->sasl || xb_sasl_initial(l->sasl, &out, &out_len, &errmsg) != APR_SUCCESS) {
        /* Not the server's doing: no randomness for the nonce, or a digest missing. */
        return login_fail(l, "internal-error", errmsg);
    }
    l->state = LS_SASL;
    return send_sasl(l, tmp, "auth", apr_pstrcat(tmp, " mechanism='", chosen, "'", NULL), out,
                     out_len, 1);
}

static xb_login_result_t on_sasl(xb_xmpp_login_t *l, apr_pool_t *tmp, const xb_xml_element_t *e)
{
    const char *payload, *out, *errmsg = NULL;
    apr_size_t len, out_len;

    if (xb_xml_element_is(e, SASL_NS, "challenge")) {
        payload = sasl_payload(tmp, e, &len);
        if (!payload) {
            return login_fail(l, "protocol-error", "SASL challenge is not base64");
        }
        if (xb_sasl_challenge(l->sasl, payload, len, &out, &out_len, &errmsg) != APR_SUCCESS) {
            return login_fail(l, "auth-server-unverified", errmsg);
        }
        return send_sasl(l, tmp, "response", "", out, out_len, 0);
    }
    if (xb_xml_element_is(e, SASL_NS, "success")) {
        payload = sasl_payload(tmp, e, &len);
        if (!payload) {
            return login_fail(l, "protocol-error", "SASL success data is not base64");
        }
        if (xb_sasl_success(l->sasl, payload, len, &errmsg) != APR_SUCCESS) {
            return login_fail(l, "auth-server-unverified", errmsg);
        }
        xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(07001) "XMPP login %s@%s: SASL %s succeeded, "
               "restarting the stream", l->username, l->domain, xb_sasl_mechanism(l->sasl));
        l->state = LS_BIND_FEATURES;
        return XB_LOGIN_RESTART;
    }
    if (xb_xml_element_is(e, SASL_NS, "failure")) {
        const xb_xml_element_t *c;
        const char *cond = "undefined-condition";
        for (c = e->first_child; c; c = c->next) {
            if (!strcmp(c->ns, SASL_NS) && strcmp(c->name, "text")) {
                cond = log_safe(tmp, c->name);
                break;
            }
        }
        return login_fail(l, apr_pstrcat(tmp, "auth-failed:", cond, NULL),
                          apr_pstrcat(tmp, "the server refused SASL ",
                                      xb_sasl_mechanism(l->sasl), NULL));
    }
    return unexpected(l, tmp, e);
}

/* ------------------------------------------------------------------------------------------ */
/* Bind and session */

static xb_login_result_t on_bind_features(xb_xmpp_login_t *l, apr_pool_t *tmp,
                                          const xb_xml_element_t *e)
{
    const xb_xml_element_t *session;
    char *out;

    if (!xb_xml_element_is(e, STREAM_NS, "features")) {
        return unexpected(l, tmp, e);
    }
    if (!xb_xml_element_child(e, BIND_NS, "bind")) {
        return login_fail(l, "protocol-error", "no resource binding in the features after SASL");
    }
    /* RFC 6121 dropped sessions; servers that still advertise the feature mark it
     * <optional/> when it may be skipped, and the older ones that do not need it done. */
    session = xb_xml_element_child(e, SESSION_NS, "session");
    l->session_required = session && !xb_xml_element_child(session, SESSION_NS, "optional");
    out = apr_pstrcat(l->p, "<iq type='set' id='" BIND_ID "'><bind xmlns='" BIND_NS "'>"
                      "<resource>", xml_escape(tmp, l->resource), "</resource></bind></iq>",
                      NULL);
    l->state = LS_BIND;
    return send_bytes(l, out, strlen(out));
}

/* The condition of an <iq type='error'/>, safe for the log. */
static const char *stanza_error_condition(apr_pool_t *p, const xb_xml_element_t *iq)
{
    const xb_xml_element_t *err = xb_xml_element_child(iq, CLIENT_NS, "error"), *c;

    for (c = err ? err->first_child : NULL; c; c = c->next) {
        if (!strcmp(c->ns, STANZAS_NS) && strcmp(c->name, "text")) {
            return log_safe(p, c->name);
        }
    }
    return "undefined-condition";
}

/* An iq answering ours (`id`): "result", "error", or NULL for anything else. */
static const char *iq_reply_type(const xb_xml_element_t *e, const char *id)
{
    const char *type, *eid;

    if (!xb_xml_element_is(e, CLIENT_NS, "iq")) {
        return NULL;
    }
    type = xb_xml_element_attr(e, "type");
    eid = xb_xml_element_attr(e, "id");
    if (!type || !eid || strcmp(eid, id)) {
        return NULL;
    }
    return (!strcmp(type, "result") || !strcmp(type, "error")) ? type : NULL;
}

static int is_ascii(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s >= 0x80) {
            return 0;
        }
    }
    return 1;
}

/* The bound JID must be a full JID for the account we logged in as. Servers normalise the
 * localpart (case); for ASCII names that is all they may change, so a different bare JID there
 * means the server put us somewhere else and the login must not hand that stream to the user.
 * Non-ASCII names may legitimately fold differently from a byte comparison: noted, accepted. */
static const char *check_jid(xb_xmpp_login_t *l, apr_pool_t *tmp, const char *jid,
                             apr_size_t len)
{
    const char *slash = memchr(jid, '/', len);
    const char *bare, *want;
    apr_size_t i;

    if (!len || len > JID_MAX || !slash || slash == jid || (apr_size_t)(slash - jid) + 1 == len) {
        return "bind result is not a full JID";
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char)jid[i] < 0x20) {
            return "bind result is not a full JID";
        }
    }
    bare = apr_pstrmemdup(tmp, jid, (apr_size_t)(slash - jid));
    want = apr_pstrcat(tmp, l->username, "@", l->domain, NULL);
    if (strcasecmp(bare, want)) {
        if (is_ascii(want)) {
            return "bind result is for another account";
        }
        xb_log(XB_LOG_MARK, XB_LOG_NOTICE, XBLOGNO(07005) "XMPP login %s: the server bound "
               "%s (non-ASCII name normalised by the server)", want, log_safe(tmp, bare));
    }
    return NULL;
}

static xb_login_result_t finish(xb_xmpp_login_t *l)
{
    l->state = LS_DONE;
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(07002) "XMPP login %s@%s: bound as %s",
           l->username, l->domain, l->bound_jid);
    return XB_LOGIN_DONE;
}

static xb_login_result_t on_bind_result(xb_xmpp_login_t *l, apr_pool_t *tmp,
                                        const xb_xml_element_t *e)
{
    const char *type = iq_reply_type(e, BIND_ID), *why;
    const xb_xml_element_t *bind, *jid;
    char *out;

    if (!type) {
        return unexpected(l, tmp, e);
    }
    if (!strcmp(type, "error")) {
        return login_fail(l, apr_pstrcat(tmp, "bind-failed:", stanza_error_condition(tmp, e),
                                         NULL), "the server refused to bind the resource");
    }
    bind = xb_xml_element_child(e, BIND_NS, "bind");
    jid = bind ? xb_xml_element_child(bind, BIND_NS, "jid") : NULL;
    if (!jid) {
        return login_fail(l, "protocol-error", "bind result without a JID");
    }
    why = check_jid(l, tmp, jid->text, jid->text_len);
    if (why) {
        return login_fail(l, "protocol-error", why);
    }
    /* The server may pick another resource than ours (RFC 6120 §7.7.2.2): its word counts. */
    l->bound_jid = apr_pstrmemdup(l->p, jid->text, jid->text_len);
    if (!l->session_required) {
        return finish(l);
    }
    xb_log(XB_LOG_MARK, XB_LOG_DEBUG, XBLOGNO(07003) "XMPP login %s@%s: the server requires a "
           "session", l->username, l->domain);
    out = apr_pstrcat(l->p, "<iq type='set' id='" SESSION_ID "'><session xmlns='" SESSION_NS
                      "'/></iq>", NULL);
    l->state = LS_SESSION;
    return send_bytes(l, out, strlen(out));
}

static xb_login_result_t on_session_result(xb_xmpp_login_t *l, apr_pool_t *tmp,
                                           const xb_xml_element_t *e)
{
    const char *type = iq_reply_type(e, SESSION_ID);

    if (!type) {
        return unexpected(l, tmp, e);
    }
    if (!strcmp(type, "error")) {
        return login_fail(l, apr_pstrcat(tmp, "session-failed:",
                                         stanza_error_condition(tmp, e), NULL),
                          "the server refused to establish the session");
    }
    return finish(l);
}

/* ------------------------------------------------------------------------------------------ */
/* API */

static int has_control_chars(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return 1;
        }
    }
    return 0;
}

xb_xmpp_login_t *xb_xmpp_login_create(apr_pool_t *p, const xb_xmpp_login_params_t *params)
{
    xb_xmpp_login_t *l;

    if (!params || !params->username || !*params->username || !params->domain
        || !*params->domain || !params->secret || !*params->secret || !params->resource
        || !*params->resource || has_control_chars(params->resource)
        || (params->mode != XB_LOGIN_MODE_PASSWORD && params->mode != XB_LOGIN_MODE_TOKEN)) {
        return NULL;
    }
    l = apr_pcalloc(p, sizeof(*l));
    l->p = p;
    l->username = apr_pstrdup(p, params->username);
    l->domain = apr_pstrdup(p, params->domain);
    l->resource = apr_pstrdup(p, params->resource);
    l->secret_len = strlen(params->secret);
    l->secret = apr_pstrmemdup(p, params->secret, l->secret_len);
    l->mode = params->mode;
    l->scram_only = params->scram_only;
    l->state = LS_FEATURES;
    apr_pool_cleanup_register(p, l, login_cleanup, apr_pool_cleanup_null);
    return l;
}

xb_login_result_t xb_xmpp_login_element(xb_xmpp_login_t *l, const char *data, apr_size_t len,
                                        const char **send, apr_size_t *send_len)
{
    apr_pool_t *tmp;
    xb_xml_element_t *e;
    const char *errmsg = NULL;
    xb_login_result_t rv;

    *send = NULL;
    *send_len = 0;
    wipe_send(l);
    if (l->state == LS_DONE || l->state == LS_FAILED) {
        /* Keep the first reason: it is the one worth logging. */
        if (l->state == LS_DONE) {
            return login_fail(l, "protocol-error", "element fed after the login was done");
        }
        return XB_LOGIN_FAILED;
    }
    if (apr_pool_create(&tmp, l->p) != APR_SUCCESS) {
        return login_fail(l, "internal-error", "out of memory");
    }
    e = xb_xml_element_parse(tmp, data, len, NULL, &errmsg);
    if (!e) {
        rv = login_fail(l, "protocol-error",
                        apr_pstrcat(tmp, "cannot parse the server's element: ", errmsg, NULL));
    }
    else if (xb_xml_element_is(e, STREAM_NS, "error")) {
        /* xb_xmpp_conn reports stream errors through `closed`; this covers any other path. */
        const xb_xml_element_t *c;
        for (c = e->first_child; c; c = c->next) {
            if (!strcmp(c->ns, STREAMS_ERR_NS) && strcmp(c->name, "text")) {
                break;
            }
        }
        rv = login_fail(l, apr_pstrcat(tmp, "stream-error:",
                                       c ? log_safe(tmp, c->name) : "undefined-condition",
                                       NULL), "the server ended the stream");
    }
    else {
        switch (l->state) {
        case LS_FEATURES:
            rv = on_features(l, tmp, e);
            break;
        case LS_SASL:
            rv = on_sasl(l, tmp, e);
            break;
        case LS_BIND_FEATURES:
            rv = on_bind_features(l, tmp, e);
            break;
        case LS_BIND:
            rv = on_bind_result(l, tmp, e);
            break;
        default:
            rv = on_session_result(l, tmp, e);
            break;
        }
    }
    apr_pool_destroy(tmp);
    if (rv == XB_LOGIN_CONTINUE) {
        *send = l->send_buf;
        *send_len = l->send_len;
    }
    else {
        wipe_send(l);
    }
    return rv;
}

const char *xb_xmpp_login_bound_jid(const xb_xmpp_login_t *l)
{
    return l->state == LS_DONE ? l->bound_jid : NULL;
}

const char *xb_xmpp_login_mechanism(const xb_xmpp_login_t *l)
{
    return l->sasl ? xb_sasl_mechanism(l->sasl) : NULL;
}

const char *xb_xmpp_login_error(const xb_xmpp_login_t *l)
{
    return l->state == LS_FAILED ? l->error : NULL;
}

const char *xb_xmpp_login_error_detail(const xb_xmpp_login_t *l)
{
    return l->state == LS_FAILED ? l->detail : NULL;
}
