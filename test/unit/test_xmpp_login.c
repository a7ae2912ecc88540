/* Unit tests for the prebind login (src/xb_xmpp_login.c) and the element parser under it
 * (src/xb_xml_element.c).
 *
 * The login talks to a scripted fake server. Its elements are what xb_xmpp_conn hands up from
 * a real server: the Prosody ones were captured from Prosody 0.12.3 (TLS 1.3, internal_hashed;
 * Lua table order makes it list mechanisms and features in varying order); the ejabberd ones
 * follow ejabberd 23.01's shape (fxml serialisation, its feature set and messages). The SCRAM
 * side of the server is computed here with OpenSSL, independently of src/xb_sasl.c, so the
 * client is checked against a real verifier rather than against itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "xb_log.h"
#include "xb_sasl.h"
#include "xb_xml_element.h"
#include "xb_xmpp_login.h"

#define SASL_NS "urn:ietf:params:xml:ns:xmpp-sasl"
#define BIND_NS "urn:ietf:params:xml:ns:xmpp-bind"
#define SESSION_NS "urn:ietf:params:xml:ns:xmpp-session"
#define STREAM_NS "http://etherx.jabber.org/streams"

#define USER "alice"
#define DOMAIN "example.test"
#define PASSWORD "s3cret pass,=x"
#define RESOURCE "xb-0123456789ab"

/* -- transcripts ----------------------------------------------------------------------------- */

/* Prosody 0.12.3, after STARTTLS (TLS 1.3: no -PLUS mechanism, tls-unique is undefined). */
#define PROSODY_FEATURES                                                                    \
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"                \
    "<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>"           \
    "</stream:features>"
#define PROSODY_FEATURES_BIND                                                               \
    "<stream:features><c ver='K6O9YjVxE0PL/XlyRItxqIkjKhA=' "                              \
    "xmlns='http://jabber.org/protocol/caps' node='http://prosody.im' hash='sha-1'/>"       \
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"                                       \
    "<required/></bind><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/>"    \
    "</session><sub xmlns='urn:xmpp:features:pre-approval'/>"                               \
    "<ver xmlns='urn:xmpp:features:rosterver'/></stream:features>"
#define PROSODY_SUCCESS_EMPTY "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
#define PROSODY_FAILURE_SCRAM                                                               \
    "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>The response " \
    "provided by the client doesn&apos;t match the one we calculated.</text></failure>"
#define PROSODY_BIND_RESULT(jid)                                                            \
    "<iq xmlns='jabber:client' type='result' id='xb-bind'><bind "                           \
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>" jid "</jid></bind></iq>"
/* conflict_resolve = "kick_new" and the resource already online. */
#define PROSODY_BIND_CONFLICT                                                               \
    "<iq xmlns='jabber:client' type='error' id='xb-bind'><error type='cancel'><conflict "   \
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "                                   \
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Resource already exists</text></error></iq>"

/* ejabberd 23.01 after STARTTLS, plain password storage: every SCRAM it has, X-OAUTH2. */
#define EJABBERD_FEATURES                                                                   \
    "<stream:features><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "             \
    "node='http://www.process-one.net/en/ejabberd/' ver='w4WtrMJ0fXNTKsfTBrNq4P8VYFs='/>"   \
    "<register xmlns='http://jabber.org/features/iq-register'/>"                            \
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"     \
    "<mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism>"             \
    "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-256-PLUS</mechanism>"         \
    "<mechanism>SCRAM-SHA-512</mechanism><mechanism>SCRAM-SHA-512-PLUS</mechanism>"         \
    "<mechanism>X-OAUTH2</mechanism></mechanisms></stream:features>"
/* auth_method: jwt (external store): SCRAM cannot work, only PLAIN and X-OAUTH2. */
#define EJABBERD_FEATURES_JWT                                                               \
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"                \
    "<mechanism>PLAIN</mechanism><mechanism>X-OAUTH2</mechanism></mechanisms>"              \
    "</stream:features>"
#define EJABBERD_FEATURES_BIND                                                              \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session "            \
    "xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session><c "                  \
    "xmlns='http://jabber.org/protocol/caps' hash='sha-1' "                                 \
    "node='http://www.process-one.net/en/ejabberd/' ver='w4WtrMJ0fXNTKsfTBrNq4P8VYFs='/>"   \
    "<sm xmlns='urn:xmpp:sm:2'/><sm xmlns='urn:xmpp:sm:3'/><csi xmlns='urn:xmpp:csi:0'/>"   \
    "<ver xmlns='urn:xmpp:features:rosterver'/><sub xmlns='urn:xmpp:features:pre-approval'/>" \
    "</stream:features>"
/* A server (ejabberd before 17.x, many others) whose session is not optional. */
#define LEGACY_FEATURES_BIND_SESSION                                                        \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session "            \
    "xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>"
#define EJABBERD_BIND_RESULT(jid)                                                           \
    "<iq xmlns='jabber:client' xml:lang='en' to='" jid "' from='alice@example.test' "       \
    "type='result' id='xb-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>" jid   \
    "</jid></bind></iq>"
#define EJABBERD_SESSION_RESULT                                                             \
    "<iq xmlns='jabber:client' xml:lang='en' to='alice@example.test/xb-0123456789ab' "      \
    "from='example.test' type='result' id='xb-session'/>"
#define EJABBERD_FAILURE                                                                    \
    "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text "            \
    "xml:lang='en'>Invalid username or password</text></failure>"
#define EJABBERD_BIND_NOT_ALLOWED                                                           \
    "<iq xmlns='jabber:client' xml:lang='en' type='error' id='xb-bind'><bind "             \
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>xb-0123456789ab</resource></bind>" \
    "<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text " \
    "xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Access denied by service "   \
    "policy</text></error></iq>"

#include "unit_helpers.h"

/* -- fake server ----------------------------------------------------------------------------- */

typedef struct {
    const EVP_MD *md;
    const char *password;
    const char *salt;       /* raw */
    int iterations;
    const char *client_first_bare;
    const char *server_first;
    unsigned char server_sig[EVP_MAX_MD_SIZE];
    unsigned md_len;
    int corrupt_signature;  /* send a server signature that does not verify */
} scram_server_t;

/* Everything the login sent, in order, to check that no presence ever went out. */
static char transcript[16384];

static xb_login_result_t feed(xb_xmpp_login_t *l, const char *elem, const char **sent)
{
    apr_size_t len = 99;
    const char *out = "junk";
    xb_login_result_t r = xb_xmpp_login_element(l, elem, strlen(elem), &out, &len);

    if (r != XB_LOGIN_CONTINUE) {
        assert_null(out);
        assert_int_equal(len, 0);
    }
    else if (out) {
        assert_int_equal(strlen(out), len); /* NUL-terminated, no embedded NUL */
        assert_true(strlen(transcript) + len < sizeof(transcript));
        strcat(transcript, out);
    }
    if (sent) {
        *sent = out ? apr_pstrdup(pool, out) : NULL;
    }
    return r;
}

/* The decoded SASL payload of a sent <auth/> or <response/>. */
static const char *sasl_payload(const char *sent, const char *name, apr_size_t *len)
{
    const char *errmsg = NULL;
    xb_xml_element_t *e = xb_xml_element_parse(pool, sent, strlen(sent), NULL, &errmsg);
    char *d;

    assert_non_null(e);
    assert_true(xb_xml_element_is(e, SASL_NS, name));
    if (e->text_len == 1 && e->text[0] == '=') {
        *len = 0;
        return "";
    }
    d = xb_sasl_base64_decode(pool, e->text, e->text_len, len);
    assert_non_null(d);
    return d;
}

static const char *b64(const char *s)
{
    return xb_sasl_base64_encode(pool, s, strlen(s), NULL);
}

static void hmac(scram_server_t *s, const unsigned char *key, const char *msg,
                 unsigned char *out)
{
    unsigned n;

    assert_non_null(HMAC(s->md, key, (int)s->md_len, (const unsigned char *)msg, strlen(msg),
                         out, &n));
}

/* client-first-message -> server-first-message */
static const char *scram_server_first(scram_server_t *s, const char *client_first)
{
    const char *cnonce;

    s->md_len = (unsigned)EVP_MD_get_size(s->md);
    assert_memory_equal(client_first, "n,,n=" USER ",r=", strlen("n,,n=" USER ",r="));
    s->client_first_bare = apr_pstrdup(pool, client_first + 3);
    cnonce = client_first + strlen("n,,n=" USER ",r=");
    assert_int_equal(strlen(cnonce), 24);
    s->server_first = apr_psprintf(pool, "r=%s%s,s=%s,i=%d", cnonce, "3rfcNHYJY1ZVvWVs7j",
                                   b64(s->salt), s->iterations);
    return s->server_first;
}

/* client-final-message -> server-final-message, or NULL if the proof is wrong. */
static const char *scram_server_final(scram_server_t *s, const char *client_final)
{
    unsigned char salted[EVP_MAX_MD_SIZE], client_key[EVP_MAX_MD_SIZE];
    unsigned char stored[EVP_MAX_MD_SIZE], client_sig[EVP_MAX_MD_SIZE];
    unsigned char server_key[EVP_MAX_MD_SIZE], proof[EVP_MAX_MD_SIZE];
    const char *p = strstr(client_final, ",p="), *auth_message;
    char *without_proof, *decoded;
    apr_size_t dlen, i;
    unsigned n;

    assert_non_null(p);
    without_proof = apr_pstrmemdup(pool, client_final, (apr_size_t)(p - client_final));
    assert_memory_equal(without_proof, "c=biws,r=", 9);
    auth_message = apr_pstrcat(pool, s->client_first_bare, ",", s->server_first, ",",
                               without_proof, NULL);
    assert_int_equal(PKCS5_PBKDF2_HMAC(s->password, (int)strlen(s->password),
                                       (const unsigned char *)s->salt, (int)strlen(s->salt),
                                       s->iterations, s->md, (int)s->md_len, salted), 1);
    hmac(s, salted, "Client Key", client_key);
    assert_int_equal(EVP_Digest(client_key, s->md_len, stored, &n, s->md, NULL), 1);
    hmac(s, stored, auth_message, client_sig);
    decoded = xb_sasl_base64_decode(pool, p + 3, strlen(p + 3), &dlen);
    assert_non_null(decoded);
    if (dlen != s->md_len) {
        return NULL;
    }
    for (i = 0; i < s->md_len; i++) {
        proof[i] = (unsigned char)(client_key[i] ^ client_sig[i]);
    }
    if (memcmp(proof, decoded, s->md_len)) {
        return NULL;
    }
    hmac(s, salted, "Server Key", server_key);
    hmac(s, server_key, auth_message, s->server_sig);
    if (s->corrupt_signature) {
        s->server_sig[0] ^= 1;
    }
    return apr_pstrcat(pool, "v=",
                       xb_sasl_base64_encode(pool, (const char *)s->server_sig, s->md_len, NULL),
                       NULL);
}

static const char *sasl_element(const char *name, const char *payload)
{
    return apr_psprintf(pool, "<%s xmlns='" SASL_NS "'>%s</%s>", name,
                        *payload ? b64(payload) : "", name);
}

static xb_xmpp_login_t *new_login(xb_xmpp_login_mode_t mode, const char *secret, int scram_only)
{
    xb_xmpp_login_params_t params;
    xb_xmpp_login_t *l;

    memset(&params, 0, sizeof(params));
    params.username = USER;
    params.domain = DOMAIN;
    params.secret = secret;
    params.mode = mode;
    params.resource = RESOURCE;
    params.scram_only = scram_only;
    l = xb_xmpp_login_create(pool, &params);
    assert_non_null(l);
    transcript[0] = '\0';
    return l;
}

/* Runs features -> auth -> challenge/response -> success with the fake SCRAM server and
 * checks the mechanism chosen; returns the result of feeding `success` (RESTART when the
 * server proved itself). */
static xb_login_result_t scram_exchange(xb_xmpp_login_t *l, scram_server_t *srv,
                                        const char *features, const char *want_mech)
{
    const char *sent, *payload, *server_final;
    apr_size_t len;

    assert_int_equal(feed(l, features, &sent), XB_LOGIN_CONTINUE);
    assert_non_null(strstr(sent, apr_psprintf(pool, "mechanism='%s'", want_mech)));
    assert_string_equal(xb_xmpp_login_mechanism(l), want_mech);
    payload = sasl_payload(sent, "auth", &len);
    assert_int_equal(feed(l, sasl_element("challenge", scram_server_first(srv, payload)), &sent),
                     XB_LOGIN_CONTINUE);
    payload = sasl_payload(sent, "response", &len);
    server_final = scram_server_final(srv, payload);
    assert_non_null(server_final); /* the client's proof verified */
    return feed(l, sasl_element("success", server_final), &sent);
}

static void assert_no_presence(void)
{
    assert_null(strstr(transcript, "<presence"));
}

/* -- logins that work ------------------------------------------------------------------------ */

static void test_prosody_scram_sha1(void **state)
{
    scram_server_t srv = { EVP_sha1(), PASSWORD, "salt-from-prosody", 10000, NULL, NULL,
                           { 0 }, 0, 0 };
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 0);
    const char *sent;

    (void)state;
    assert_int_equal(scram_exchange(l, &srv, PROSODY_FEATURES, "SCRAM-SHA-1"), XB_LOGIN_RESTART);
    assert_null(xb_xmpp_login_bound_jid(l));
    assert_int_equal(feed(l, PROSODY_FEATURES_BIND, &sent), XB_LOGIN_CONTINUE);
    assert_string_equal(sent, "<iq type='set' id='xb-bind'><bind xmlns='" BIND_NS "'>"
                              "<resource>" RESOURCE "</resource></bind></iq>");
    /* Session is <optional/> on Prosody: bound means done. */
    assert_int_equal(feed(l, PROSODY_BIND_RESULT("alice@example.test/" RESOURCE), &sent),
                     XB_LOGIN_DONE);
    assert_string_equal(xb_xmpp_login_bound_jid(l), "alice@example.test/" RESOURCE);
    assert_null(xb_xmpp_login_error(l));
    assert_null(strstr(transcript, "xmpp-session"));
    assert_no_presence();
}

static void test_prosody_plain_token(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "tok.en.value", 0);
    const char *sent, *payload;
    apr_size_t len;

    (void)state;
    /* Prosody lists SCRAM first here; a token still goes as PLAIN. */
    assert_int_equal(feed(l, PROSODY_FEATURES, &sent), XB_LOGIN_CONTINUE);
    assert_non_null(strstr(sent, "mechanism='PLAIN'"));
    payload = sasl_payload(sent, "auth", &len);
    assert_int_equal(len, 1 + 5 + 1 + 12);
    assert_memory_equal(payload, "\0alice\0tok.en.value", len);
    assert_int_equal(feed(l, PROSODY_SUCCESS_EMPTY, &sent), XB_LOGIN_RESTART);
    assert_int_equal(feed(l, PROSODY_FEATURES_BIND, &sent), XB_LOGIN_CONTINUE);
    assert_int_equal(feed(l, PROSODY_BIND_RESULT("alice@example.test/" RESOURCE), &sent),
                     XB_LOGIN_DONE);
    assert_string_equal(xb_xmpp_login_bound_jid(l), "alice@example.test/" RESOURCE);
    assert_no_presence();
}

/* Both mechanisms offered, PLAIN first (Prosody's order varies from run to run): password
 * logins still take SCRAM. */
static void test_prosody_plain_listed_first(void **state)
{
    scram_server_t srv = { EVP_sha1(), PASSWORD, "salt", 10000, NULL, NULL, { 0 }, 0, 0 };
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 0);

    (void)state;
    assert_int_equal(scram_exchange(l, &srv,
                                    "<stream:features><mechanisms xmlns='" SASL_NS "'>"
                                    "<mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1"
                                    "</mechanism></mechanisms></stream:features>",
                                    "SCRAM-SHA-1"), XB_LOGIN_RESTART);
}

/* ejabberd offers SHA-256; it assigns its own resource; the session is optional. */
static void test_ejabberd_scram_sha256_server_resource(void **state)
{
    scram_server_t srv = { EVP_sha256(), PASSWORD, "ejabberd-salt-16", 4096, NULL, NULL,
                           { 0 }, 0, 0 };
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 0);
    const char *sent;

    (void)state;
    assert_int_equal(scram_exchange(l, &srv, EJABBERD_FEATURES, "SCRAM-SHA-256"),
                     XB_LOGIN_RESTART);
    assert_int_equal(feed(l, EJABBERD_FEATURES_BIND, &sent), XB_LOGIN_CONTINUE);
    assert_non_null(strstr(sent, "<resource>" RESOURCE "</resource>"));
    assert_int_equal(feed(l, EJABBERD_BIND_RESULT("alice@example.test/1397236912389482309"),
                          &sent), XB_LOGIN_DONE);
    assert_string_equal(xb_xmpp_login_bound_jid(l), "alice@example.test/1397236912389482309");
    assert_no_presence();
}

/* With store_type external (JWT) ejabberd offers only PLAIN and X-OAUTH2. */
static void test_ejabberd_jwt_token(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "eyJhbGciOi.J9.sig", 0);
    const char *sent;

    (void)state;
    assert_int_equal(feed(l, EJABBERD_FEATURES_JWT, &sent), XB_LOGIN_CONTINUE);
    assert_non_null(strstr(sent, "mechanism='PLAIN'"));
    assert_int_equal(feed(l, PROSODY_SUCCESS_EMPTY, &sent), XB_LOGIN_RESTART);
    assert_int_equal(feed(l, EJABBERD_FEATURES_BIND, &sent), XB_LOGIN_CONTINUE);
    assert_int_equal(feed(l, EJABBERD_BIND_RESULT("alice@example.test/" RESOURCE), &sent),
                     XB_LOGIN_DONE);
}

static void test_session_required(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    const char *sent;

    (void)state;
    assert_int_equal(feed(l, EJABBERD_FEATURES_JWT, &sent), XB_LOGIN_CONTINUE);
    assert_int_equal(feed(l, PROSODY_SUCCESS_EMPTY, &sent), XB_LOGIN_RESTART);
    assert_int_equal(feed(l, LEGACY_FEATURES_BIND_SESSION, &sent), XB_LOGIN_CONTINUE);
    assert_int_equal(feed(l, EJABBERD_BIND_RESULT("alice@example.test/" RESOURCE), &sent),
                     XB_LOGIN_CONTINUE);
    assert_null(xb_xmpp_login_bound_jid(l)); /* not done until the session is */
    assert_string_equal(sent, "<iq type='set' id='xb-session'><session xmlns='" SESSION_NS
                              "'/></iq>");
    assert_int_equal(feed(l, EJABBERD_SESSION_RESULT, &sent), XB_LOGIN_DONE);
    assert_string_equal(xb_xmpp_login_bound_jid(l), "alice@example.test/" RESOURCE);
    assert_no_presence();
}

static void test_session_error(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    const char *sent;

    (void)state;
    feed(l, EJABBERD_FEATURES_JWT, &sent);
    feed(l, PROSODY_SUCCESS_EMPTY, &sent);
    feed(l, LEGACY_FEATURES_BIND_SESSION, &sent);
    assert_int_equal(feed(l, EJABBERD_BIND_RESULT("alice@example.test/" RESOURCE), &sent),
                     XB_LOGIN_CONTINUE);
    assert_int_equal(feed(l, "<iq xmlns='jabber:client' type='error' id='xb-session'><error "
                             "type='wait'><internal-server-error xmlns='urn:ietf:params:xml:"
                             "ns:xmpp-stanzas'/></error></iq>", &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "session-failed:internal-server-error");
    assert_null(xb_xmpp_login_bound_jid(l));
}

/* Servers that send the SCRAM server-final-message as a challenge, then an empty success. */
static void test_server_final_in_challenge(void **state)
{
    scram_server_t srv = { EVP_sha1(), PASSWORD, "salt", 4096, NULL, NULL, { 0 }, 0, 0 };
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 0);
    const char *sent, *payload;
    apr_size_t len;

    (void)state;
    feed(l, PROSODY_FEATURES, &sent);
    payload = sasl_payload(sent, "auth", &len);
    feed(l, sasl_element("challenge", scram_server_first(&srv, payload)), &sent);
    payload = sasl_payload(sent, "response", &len);
    assert_int_equal(feed(l, sasl_element("challenge", scram_server_final(&srv, payload)),
                          &sent), XB_LOGIN_CONTINUE);
    assert_string_equal(sent, "<response xmlns='" SASL_NS "'/>");
    assert_int_equal(feed(l, "<success xmlns='" SASL_NS "'>=</success>", &sent),
                     XB_LOGIN_RESTART);
}

/* The bound JID may differ from ours only by the server's case normalisation. */
static void test_bound_jid_case(void **state)
{
    xb_xmpp_login_params_t params = { "Alice", "Example.Test", "t", XB_LOGIN_MODE_TOKEN,
                                      RESOURCE, 0 };
    xb_xmpp_login_t *l = xb_xmpp_login_create(pool, &params);
    const char *sent;

    (void)state;
    feed(l, EJABBERD_FEATURES_JWT, &sent);
    feed(l, PROSODY_SUCCESS_EMPTY, &sent);
    feed(l, PROSODY_FEATURES_BIND, &sent);
    assert_int_equal(feed(l, PROSODY_BIND_RESULT("alice@example.test/" RESOURCE), &sent),
                     XB_LOGIN_DONE);
}

static char logged[1024];

static void capture_log(void *baton, const char *file, int line, int level, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    if (level <= XB_LOG_NOTICE) {
        apr_cpystrn(logged, msg, sizeof(logged));
    }
}

static int log_all(void *baton, int level)
{
    (void)baton;
    (void)level;
    return 1;
}

/* A non-ASCII localpart may be folded by the server in ways a byte comparison cannot follow:
 * accepted, with a notice. */
static void test_bound_jid_non_ascii(void **state)
{
    xb_xmpp_login_params_t params = { "\xc3\x84sa", DOMAIN, "t", XB_LOGIN_MODE_TOKEN,
                                      RESOURCE, 0 };
    xb_xmpp_login_t *l = xb_xmpp_login_create(pool, &params);
    const char *sent;

    (void)state;
    logged[0] = '\0';
    xb_log_bind(capture_log, log_all, NULL);
    feed(l, EJABBERD_FEATURES_JWT, &sent);
    feed(l, PROSODY_SUCCESS_EMPTY, &sent);
    feed(l, PROSODY_FEATURES_BIND, &sent);
    assert_int_equal(feed(l, PROSODY_BIND_RESULT("\xc3\xa4sa@example.test/" RESOURCE), &sent),
                     XB_LOGIN_DONE);
    xb_log_bind(NULL, NULL, NULL);
    assert_memory_equal(logged, "XB07005: ", 9);
    assert_string_equal(xb_xmpp_login_bound_jid(l), "\xc3\xa4sa@example.test/" RESOURCE);
}

static void test_resource_escaped(void **state)
{
    xb_xmpp_login_params_t params = { USER, DOMAIN, "t", XB_LOGIN_MODE_TOKEN, "a<b&c'd", 0 };
    xb_xmpp_login_t *l = xb_xmpp_login_create(pool, &params);
    const char *sent;

    (void)state;
    feed(l, EJABBERD_FEATURES_JWT, &sent);
    feed(l, PROSODY_SUCCESS_EMPTY, &sent);
    assert_int_equal(feed(l, PROSODY_FEATURES_BIND, &sent), XB_LOGIN_CONTINUE);
    assert_non_null(strstr(sent, "<resource>a&lt;b&amp;c&apos;d</resource>"));
}

/* -- the server refuses ---------------------------------------------------------------------- */

static void test_prosody_scram_wrong_password(void **state)
{
    scram_server_t srv = { EVP_sha1(), PASSWORD, "salt", 10000, NULL, NULL, { 0 }, 0, 0 };
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_PASSWORD, "wrong", 0);
    const char *sent, *payload;
    apr_size_t len;

    (void)state;
    feed(l, PROSODY_FEATURES, &sent);
    payload = sasl_payload(sent, "auth", &len);
    feed(l, sasl_element("challenge", scram_server_first(&srv, payload)), &sent);
    payload = sasl_payload(sent, "response", &len);
    assert_null(scram_server_final(&srv, payload)); /* the fake server sees a bad proof */
    assert_int_equal(feed(l, PROSODY_FAILURE_SCRAM, &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-failed:not-authorized");
    assert_non_null(xb_xmpp_login_error_detail(l));
    assert_null(strstr(xb_xmpp_login_error_detail(l), "wrong"));
    assert_null(xb_xmpp_login_bound_jid(l));
}

static void test_ejabberd_plain_failure(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "expired", 0);
    const char *sent;

    (void)state;
    feed(l, EJABBERD_FEATURES, &sent);
    assert_non_null(strstr(sent, "mechanism='PLAIN'"));
    assert_int_equal(feed(l, EJABBERD_FAILURE, &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-failed:not-authorized");
    /* A failure without a condition still gives a code. */
    l = new_login(XB_LOGIN_MODE_TOKEN, "expired", 0);
    feed(l, EJABBERD_FEATURES, &sent);
    assert_int_equal(feed(l, "<failure xmlns='" SASL_NS "'/>", &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-failed:undefined-condition");
}

static void test_prosody_bind_conflict(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    const char *sent;

    (void)state;
    feed(l, PROSODY_FEATURES, &sent);
    feed(l, PROSODY_SUCCESS_EMPTY, &sent);
    feed(l, PROSODY_FEATURES_BIND, &sent);
    assert_int_equal(feed(l, PROSODY_BIND_CONFLICT, &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "bind-failed:conflict");
}

static void test_ejabberd_bind_not_allowed(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    const char *sent;

    (void)state;
    feed(l, EJABBERD_FEATURES_JWT, &sent);
    feed(l, PROSODY_SUCCESS_EMPTY, &sent);
    feed(l, EJABBERD_FEATURES_BIND, &sent);
    assert_int_equal(feed(l, EJABBERD_BIND_NOT_ALLOWED, &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "bind-failed:not-allowed");
}

static void test_no_acceptable_mechanism(void **state)
{
    xb_xmpp_login_t *l;
    const char *sent;

    (void)state;
    /* A token cannot go through SCRAM. */
    l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    assert_int_equal(feed(l, "<stream:features><mechanisms xmlns='" SASL_NS "'><mechanism>"
                             "SCRAM-SHA-1</mechanism></mechanisms></stream:features>", &sent),
                     XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-no-mechanism");
    assert_non_null(strstr(xb_xmpp_login_error_detail(l), "SCRAM-SHA-1"));
    /* SCRAM only: PLAIN is not enough. */
    l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 1);
    assert_int_equal(feed(l, EJABBERD_FEATURES_JWT, &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-no-mechanism");
    /* Nothing we know. */
    l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 0);
    assert_int_equal(feed(l, "<stream:features><mechanisms xmlns='" SASL_NS "'><mechanism>"
                             "X-OAUTH2</mechanism><mechanism>EXTERNAL</mechanism></mechanisms>"
                             "</stream:features>", &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-no-mechanism");
    /* No SASL at all (e.g. Prosody on an insecure stream). */
    l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 0);
    assert_int_equal(feed(l, "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'"
                             "/></stream:features>", &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-no-mechanism");
}

/* -- the server misbehaves ------------------------------------------------------------------- */

static void test_bad_server_signature(void **state)
{
    scram_server_t srv = { EVP_sha256(), PASSWORD, "salt", 4096, NULL, NULL, { 0 }, 0, 1 };
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 0);

    (void)state;
    assert_int_equal(scram_exchange(l, &srv, EJABBERD_FEATURES, "SCRAM-SHA-256"),
                     XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-server-unverified");
    assert_string_equal(xb_xmpp_login_error_detail(l), "SCRAM server signature does not verify");
}

/* An impostor that does not know the password says success straight away. */
static void test_success_without_scram(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 0);
    const char *sent;

    (void)state;
    feed(l, PROSODY_FEATURES, &sent);
    assert_int_equal(feed(l, PROSODY_SUCCESS_EMPTY, &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-server-unverified");
}

static void test_weak_iteration_count(void **state)
{
    scram_server_t srv = { EVP_sha1(), PASSWORD, "salt", 1024, NULL, NULL, { 0 }, 0, 0 };
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 0);
    const char *sent, *payload;
    apr_size_t len;

    (void)state;
    feed(l, PROSODY_FEATURES, &sent);
    payload = sasl_payload(sent, "auth", &len);
    assert_int_equal(feed(l, sasl_element("challenge", scram_server_first(&srv, payload)),
                          &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-server-unverified");
}

static void test_unexpected_stanzas(void **state)
{
    xb_xmpp_login_t *l;
    const char *sent;

    (void)state;
    /* A message while the SASL outcome is pending. */
    l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    feed(l, PROSODY_FEATURES, &sent);
    assert_int_equal(feed(l, "<message xmlns='jabber:client' from='x@y'><body>hi</body>"
                             "</message>", &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "protocol-error");
    assert_string_equal(xb_xmpp_login_error_detail(l),
                        "unexpected {jabber:client}message while waiting for the SASL outcome");
    /* The first element is not features. */
    l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    assert_int_equal(feed(l, PROSODY_SUCCESS_EMPTY, &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "protocol-error");
    /* A presence while the bind result is pending. */
    l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    feed(l, PROSODY_FEATURES, &sent);
    feed(l, PROSODY_SUCCESS_EMPTY, &sent);
    feed(l, PROSODY_FEATURES_BIND, &sent);
    assert_int_equal(feed(l, "<presence xmlns='jabber:client' from='bob@example.test/x'/>",
                          &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error_detail(l),
                        "unexpected {jabber:client}presence while waiting for the bind result");
    /* A bind result with another id. */
    l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    feed(l, PROSODY_FEATURES, &sent);
    feed(l, PROSODY_SUCCESS_EMPTY, &sent);
    feed(l, PROSODY_FEATURES_BIND, &sent);
    assert_int_equal(feed(l, "<iq xmlns='jabber:client' type='result' id='other'/>", &sent),
                     XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "protocol-error");
    /* Features again instead of the SASL outcome. */
    l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    feed(l, PROSODY_FEATURES, &sent);
    assert_int_equal(feed(l, PROSODY_FEATURES, &sent), XB_LOGIN_FAILED);
    /* A challenge to PLAIN. */
    l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    feed(l, PROSODY_FEATURES, &sent);
    assert_int_equal(feed(l, sasl_element("challenge", "x"), &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-server-unverified");
}

static void test_bad_bind(void **state)
{
    static const char *const results[] = {
        PROSODY_BIND_RESULT(""),
        PROSODY_BIND_RESULT("alice@example.test"),              /* not a full JID */
        PROSODY_BIND_RESULT("alice@example.test/"),
        PROSODY_BIND_RESULT("mallory@example.test/" RESOURCE),  /* another account */
        PROSODY_BIND_RESULT("alice@example.org/" RESOURCE),
        "<iq xmlns='jabber:client' type='result' id='xb-bind'/>", /* no JID */
        "<iq xmlns='jabber:client' type='result' id='xb-bind'><bind xmlns='" BIND_NS "'/></iq>",
    };
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
        xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
        const char *sent;
        feed(l, PROSODY_FEATURES, &sent);
        feed(l, PROSODY_SUCCESS_EMPTY, &sent);
        feed(l, PROSODY_FEATURES_BIND, &sent);
        assert_int_equal(feed(l, results[i], &sent), XB_LOGIN_FAILED);
        assert_string_equal(xb_xmpp_login_error(l), "protocol-error");
        assert_null(xb_xmpp_login_bound_jid(l));
    }
}

static void test_no_bind_feature(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    const char *sent;

    (void)state;
    feed(l, PROSODY_FEATURES, &sent);
    feed(l, PROSODY_SUCCESS_EMPTY, &sent);
    assert_int_equal(feed(l, "<stream:features><sm xmlns='urn:xmpp:sm:3'/></stream:features>",
                          &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "protocol-error");
}

static void test_bad_sasl_payloads(void **state)
{
    xb_xmpp_login_t *l;
    const char *sent;

    (void)state;
    l = new_login(XB_LOGIN_MODE_PASSWORD, PASSWORD, 0);
    feed(l, PROSODY_FEATURES, &sent);
    assert_int_equal(feed(l, "<challenge xmlns='" SASL_NS "'>not base64!</challenge>", &sent),
                     XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "protocol-error");

    l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    feed(l, PROSODY_FEATURES, &sent);
    assert_int_equal(feed(l, "<success xmlns='" SASL_NS "'>#</success>", &sent),
                     XB_LOGIN_FAILED);
}

static void test_stream_error_element(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    const char *sent;

    (void)state;
    assert_int_equal(feed(l, "<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
                             "bye</text><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-"
                             "streams'/></stream:error>", &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "stream-error:policy-violation");
}

static void test_malformed_elements(void **state)
{
    static const char *const bad[] = {
        "<stream:features>",
        "<stream:features/><stream:features/>",
        "<!DOCTYPE x [<!ENTITY a 'b'>]><stream:features/>",
        "<stream:features><!-- c --></stream:features>",
        "<x:features xmlns:y='z'/>",
        "",
    };
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
        const char *sent;
        assert_int_equal(feed(l, bad[i], &sent), XB_LOGIN_FAILED);
        assert_string_equal(xb_xmpp_login_error(l), "protocol-error");
    }
}

/* Once over, the login stays over and keeps its first reason. */
static void test_after_the_end(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    const char *sent;

    (void)state;
    feed(l, PROSODY_FEATURES, &sent);
    feed(l, EJABBERD_FAILURE, &sent);
    assert_int_equal(feed(l, PROSODY_FEATURES, &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "auth-failed:not-authorized");

    l = new_login(XB_LOGIN_MODE_TOKEN, "t", 0);
    feed(l, PROSODY_FEATURES, &sent);
    feed(l, PROSODY_SUCCESS_EMPTY, &sent);
    feed(l, PROSODY_FEATURES_BIND, &sent);
    assert_int_equal(feed(l, PROSODY_BIND_RESULT("alice@example.test/" RESOURCE), &sent),
                     XB_LOGIN_DONE);
    assert_int_equal(feed(l, "<message xmlns='jabber:client'/>", &sent), XB_LOGIN_FAILED);
    assert_string_equal(xb_xmpp_login_error(l), "protocol-error");
}

/* The bytes that carried PLAIN's secret are wiped at the next step; the secret never shows
 * in an error. */
static void test_secret_wiped(void **state)
{
    xb_xmpp_login_t *l = new_login(XB_LOGIN_MODE_TOKEN, "tok.en.value", 0);
    const char *out, *secret_b64;
    char *keep;
    apr_size_t len, keep_len, i;

    (void)state;
    assert_int_equal(xb_xmpp_login_element(l, PROSODY_FEATURES, strlen(PROSODY_FEATURES), &out,
                                           &len), XB_LOGIN_CONTINUE);
    secret_b64 = xb_sasl_base64_encode(pool, "\0alice\0tok.en.value", 19, NULL);
    assert_non_null(strstr(out, secret_b64));
    keep = (char *)out;
    keep_len = len;
    assert_int_equal(xb_xmpp_login_element(l, EJABBERD_FAILURE, strlen(EJABBERD_FAILURE), &out,
                                           &len), XB_LOGIN_FAILED);
    for (i = 0; i < keep_len; i++) {
        assert_int_equal(keep[i], 0);
    }
    assert_null(strstr(xb_xmpp_login_error_detail(l), "tok.en"));
}

static void test_create_rejects(void **state)
{
    xb_xmpp_login_params_t ok = { USER, DOMAIN, "t", XB_LOGIN_MODE_TOKEN, RESOURCE, 0 };
    xb_xmpp_login_params_t p;

    (void)state;
    assert_non_null(xb_xmpp_login_create(pool, &ok));
    assert_null(xb_xmpp_login_create(pool, NULL));
    p = ok; p.username = "";
    assert_null(xb_xmpp_login_create(pool, &p));
    p = ok; p.domain = NULL;
    assert_null(xb_xmpp_login_create(pool, &p));
    p = ok; p.secret = "";
    assert_null(xb_xmpp_login_create(pool, &p));
    p = ok; p.resource = "";
    assert_null(xb_xmpp_login_create(pool, &p));
    p = ok; p.resource = "a\nb";
    assert_null(xb_xmpp_login_create(pool, &p));
    p = ok; p.mode = (xb_xmpp_login_mode_t)7;
    assert_null(xb_xmpp_login_create(pool, &p));
}

/* -- the element parser ---------------------------------------------------------------------- */

static xb_xml_element_t *parse(const char *s)
{
    const char *errmsg = NULL;
    xb_xml_element_t *e = xb_xml_element_parse(pool, s, strlen(s), NULL, &errmsg);

    assert_non_null(e);
    return e;
}

static const char *parse_error(const char *s, const xb_xml_limits_t *limits)
{
    const char *errmsg = NULL;

    assert_null(xb_xml_element_parse(pool, s, strlen(s), limits, &errmsg));
    assert_non_null(errmsg);
    return errmsg;
}

static void test_xml_features_tree(void **state)
{
    xb_xml_element_t *e = parse(EJABBERD_FEATURES), *m, *c;
    int n = 0;

    (void)state;
    assert_true(xb_xml_element_is(e, STREAM_NS, "features"));
    assert_null(e->parent);
    c = xb_xml_element_child(e, "http://jabber.org/protocol/caps", "c");
    assert_non_null(c);
    assert_string_equal(xb_xml_element_attr(c, "hash"), "sha-1");
    assert_null(xb_xml_element_attr(c, "xmlns"));
    m = xb_xml_element_child(e, SASL_NS, "mechanisms");
    assert_non_null(m);
    assert_ptr_equal(m->parent, e);
    for (c = m->first_child; c; c = c->next) {
        assert_true(xb_xml_element_is(c, SASL_NS, "mechanism"));
        n++;
    }
    assert_int_equal(n, 8);
    assert_string_equal(m->first_child->text, "PLAIN");
    assert_string_equal(xb_xml_element_child(e, SASL_NS, NULL)->name, "mechanisms");
    assert_null(xb_xml_element_child(e, SASL_NS, "auth"));
}

static void test_xml_namespaces_and_text(void **state)
{
    xb_xml_element_t *e;
    int i, found = 0;

    (void)state;
    /* Unprefixed means jabber:client; xml:lang is in the XML namespace. */
    e = parse("<iq xml:lang='en' type='result'><query xmlns='jabber:iq:version'><name>"
              "a &amp; b &lt;c&gt; <![CDATA[<d>]]> &#x263A;</name></query></iq>");
    assert_true(xb_xml_element_is(e, "jabber:client", "iq"));
    for (i = 0; i < e->nattrs; i++) {
        if (!strcmp(e->attrs[i].name, "lang")) {
            assert_string_equal(e->attrs[i].ns, "http://www.w3.org/XML/1998/namespace");
            found = 1;
        }
    }
    assert_true(found);
    assert_null(xb_xml_element_attr(e, "lang"));
    e = xb_xml_element_child(xb_xml_element_child(e, "jabber:iq:version", "query"),
                             "jabber:iq:version", "name");
    assert_string_equal(e->text, "a & b <c> <d> \xe2\x98\xba");
    assert_int_equal(e->text_len, strlen(e->text));
    /* Another prefix for the streams namespace works as well; own declarations override. */
    e = parse("<s:features xmlns:s='http://etherx.jabber.org/streams'/>");
    assert_true(xb_xml_element_is(e, STREAM_NS, "features"));
    e = parse("<x xmlns=''/>");
    assert_true(xb_xml_element_is(e, "", "x"));
    /* Whitespace around is fine; text of an element without any is "". */
    e = parse("\n <a/> \n");
    assert_string_equal(e->text, "");
    assert_int_equal(e->text_len, 0);
    /* Long text in many pieces. */
    {
        char big[9000];
        memset(big, 'x', sizeof(big));
        memcpy(big, "<a>", 3);
        memcpy(big + sizeof(big) - 5, "</a>", 5);
        e = parse(big);
        assert_int_equal(e->text_len, sizeof(big) - 8);
    }
}

static void test_xml_refused(void **state)
{
    xb_xml_limits_t small = { 64, 3, 4 };

    (void)state;
    assert_string_equal(parse_error("<a/><b/>", NULL), "more than one element");
    assert_string_equal(parse_error("x<a/>", NULL), "text outside the element");
    assert_string_equal(parse_error("<a/>x", NULL), "text outside the element");
    assert_string_equal(parse_error("<!DOCTYPE a><a/>", NULL), "not well-formed");
    assert_string_equal(parse_error("<a><!-- x --></a>", NULL), "comment not allowed");
    assert_string_equal(parse_error("<a><?pi x?></a>", NULL),
                        "processing instruction not allowed");
    assert_string_equal(parse_error("<?xml version='1.0'?><a/>", NULL), "not well-formed");
    assert_string_equal(parse_error("<a>&ent;</a>", NULL), "not well-formed");
    assert_string_equal(parse_error("<a>", NULL), "not well-formed");
    assert_string_equal(parse_error("<a></b>", NULL), "not well-formed");
    assert_string_equal(parse_error("<p:a/>", NULL), "not well-formed");
    assert_string_equal(parse_error("", NULL), "no element");
    assert_string_equal(parse_error("  ", NULL), "no element");
    /* Closing the synthetic root from inside cannot smuggle anything out. */
    parse_error("<a/></xb-wrap><xb-wrap>", NULL);
    parse_error("</xb-wrap><a/><xb-wrap>", NULL);
    parse_error("<a/></xb-wrap>", NULL);
    /* Limits. */
    assert_string_equal(parse_error("<a><b><c><d/></c></b></a>", &small),
                        "element nested too deeply");
    {
        const char *errmsg = NULL;
        assert_non_null(xb_xml_element_parse(pool, "<a><b><c/></b></a>", 18, &small, &errmsg));
    }
    assert_string_equal(parse_error("<a><b/><b/><b/><b/></a>", &small), "too many elements");
    assert_string_equal(parse_error("<a>0123456789012345678901234567890123456789012345678901234567"
                                    "89</a>", &small), "element too large");
    /* Not UTF-8. */
    assert_string_equal(parse_error("<a>\xff</a>", NULL), "not well-formed");
}

int main(void)
{
    int rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prosody_scram_sha1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prosody_plain_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prosody_plain_listed_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ejabberd_scram_sha256_server_resource, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ejabberd_jwt_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_final_in_challenge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound_jid_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound_jid_non_ascii, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prosody_scram_wrong_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ejabberd_plain_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prosody_bind_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ejabberd_bind_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_acceptable_mechanism, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_server_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_success_without_scram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weak_iteration_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unexpected_stanzas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_bind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_bind_feature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_sasl_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_error_element, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_elements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_the_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_wiped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_features_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_namespaces_and_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_refused, setup, teardown),
    };

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
