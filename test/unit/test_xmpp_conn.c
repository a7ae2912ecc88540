/* Unit tests for the XMPP client stream (src/xb_xmpp_conn.c) against an in-memory server.
 *
 * The fake server is a real OpenSSL server SSL object on memory BIOs, with a CA and server
 * certificates made at test time; the test shuttles bytes between it and the connection and
 * plays the server's side of the XMPP stream by hand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "xb_xmpp_conn.h"

#define DOMAIN "example.com"
#define STREAMS_NS "http://etherx.jabber.org/streams"
#define TLS_NS "urn:ietf:params:xml:ns:xmpp-tls"
#define SASL_NS "urn:ietf:params:xml:ns:xmpp-sasl"

#define SRV_HEADER                                                                          \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xml:lang='en' "            \
    "id='5f1c2a3b-1111-2222-3333-444455556666' version='1.0' from='" DOMAIN "' "            \
    "xmlns:stream='" STREAMS_NS "'>"
#define FEATURES_TLS                                                                        \
    "<stream:features><starttls xmlns='" TLS_NS "'><required/></starttls></stream:features>"
#define FEATURES_SASL                                                                       \
    "<stream:features><mechanisms xmlns='" SASL_NS "'><mechanism>SCRAM-SHA-1</mechanism>"   \
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
#define FEATURES_BIND                                                                       \
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
#define PROCEED "<proceed xmlns='" TLS_NS "'/>"
#define CLIENT_HEADER                                                                       \
    "<?xml version='1.0'?><stream:stream to='" DOMAIN "' xmlns='jabber:client' "            \
    "xmlns:stream='" STREAMS_NS "' version='1.0' xml:lang='en'>"
#define STARTTLS "<starttls xmlns='" TLS_NS "'/>"

/* -- test PKI ----------------------------------------------------------------------------- */

typedef struct {
    EVP_PKEY *key;
    X509 *cert;
} ident_t;

static ident_t ca1, ca2, srv1, srv2, srv_ip;
static char ca1_path[64];
static SSL_CTX *client_ctx;

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
}

/* A CA when `issuer` is NULL (self-signed), else a server certificate for `san`. */
static ident_t make_ident(const char *cn, const ident_t *issuer, const char *san)
{
    static long serial = 1;
    ident_t id;
    X509V3_CTX ctx;
    X509_NAME *name;

    id.key = EVP_EC_gen("P-256");
    assert_non_null(id.key);
    id.cert = X509_new();
    X509_set_version(id.cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(id.cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(id.cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(id.cert), 86400);
    X509_set_pubkey(id.cert, id.key);
    name = X509_get_subject_name(id.cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(id.cert, issuer ? X509_get_subject_name(issuer->cert) : name);
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer->cert : id.cert, id.cert, NULL, NULL, 0);
    if (!issuer) {
        add_ext(id.cert, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(id.cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(id.cert, &ctx, NID_subject_key_identifier, "hash");
    }
    else {
        add_ext(id.cert, &ctx, NID_basic_constraints, "CA:FALSE");
        add_ext(id.cert, &ctx, NID_ext_key_usage, "serverAuth");
        add_ext(id.cert, &ctx, NID_subject_alt_name, san);
    }
    assert_true(X509_sign(id.cert, issuer ? issuer->key : id.key, EVP_sha256()) > 0);
    return id;
}

static void free_ident(ident_t *id)
{
    EVP_PKEY_free(id->key);
    X509_free(id->cert);
}

static int group_setup(void **state)
{
    const char *err = NULL;
    FILE *fp;
    int fd;

    (void)state;
    apr_initialize();
    ca1 = make_ident("Test CA 1", NULL, NULL);
    ca2 = make_ident("Test CA 2", NULL, NULL);
    srv1 = make_ident(DOMAIN, &ca1, "DNS:" DOMAIN);
    srv2 = make_ident(DOMAIN, &ca2, "DNS:" DOMAIN);
    srv_ip = make_ident("127.0.0.1", &ca1, "IP:127.0.0.1");
    strcpy(ca1_path, "/tmp/xb-test-ca-XXXXXX");
    fd = mkstemp(ca1_path);
    assert_true(fd >= 0);
    fp = fdopen(fd, "w");
    PEM_write_X509(fp, ca1.cert);
    fclose(fp);
    client_ctx = xb_xmpp_conn_ssl_ctx(ca1_path, &err);
    assert_non_null(client_ctx);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    SSL_CTX_free(client_ctx);
    unlink(ca1_path);
    free_ident(&ca1);
    free_ident(&ca2);
    free_ident(&srv1);
    free_ident(&srv2);
    free_ident(&srv_ip);
    apr_terminate();
    return 0;
}

/* -- the fixture: connection, recorded events, fake server ------------------------------- */

#define MAX_ELEMS 64

typedef struct {
    apr_pool_t *pool;
    xb_xmpp_conn_t *conn;
    xb_xmpp_conn_params_t params;
    int nelems;
    const char *elems[MAX_ELEMS];
    int nclosed;
    xb_bosh_condition_t cond;
    const char *cdata;
    const char *why;
    int destroy_in_closed;
    int destroy_in_element;
    int close_in_element;
    int restart_on_success;

    SSL_CTX *srv_ctx;
    SSL *srv;
    BIO *srv_in;         /* ciphertext from the client */
    BIO *srv_out;        /* ciphertext to the client */
    int srv_got_close_notify;
    int ntls;            /* tls_established events */
    int resumed;         /* ... the last one's flag */
    char *got;           /* plaintext the server received, since the last take_got() */
    int byte_by_byte;    /* feed the connection one byte at a time */
    apr_size_t write_chunk; /* "socket" writes of at most this many bytes; 0: all */
} fx_t;

static void ev_element(void *b, const char *data, apr_size_t len)
{
    fx_t *fx = b;
    assert_true(fx->nelems < MAX_ELEMS);
    fx->elems[fx->nelems++] = apr_pstrmemdup(fx->pool, data, len);
    if (fx->restart_on_success && !strncmp(data, "<success", 8)) {
        xb_xmpp_conn_restart(fx->conn);
    }
    if (fx->close_in_element) {
        xb_xmpp_conn_close(fx->conn);
    }
    if (fx->destroy_in_element) {
        xb_xmpp_conn_destroy(fx->conn);
    }
}

static void ev_closed(void *b, xb_bosh_condition_t cond, const char *data, apr_size_t len,
                      const char *why)
{
    fx_t *fx = b;
    fx->nclosed++;
    fx->cond = cond;
    fx->cdata = data ? apr_pstrmemdup(fx->pool, data, len) : NULL;
    fx->why = apr_pstrdup(fx->pool, why);
    if (fx->destroy_in_closed) {
        xb_xmpp_conn_destroy(fx->conn);
    }
}

static void ev_tls(void *b, int resumed)
{
    fx_t *fx = b;
    fx->ntls++;
    fx->resumed = resumed;
}

static const xb_xmpp_conn_events_t events = { ev_element, ev_closed, ev_tls };

static fx_t *fx_new(void **state, xb_tls_mode_t tls)
{
    fx_t *fx;
    apr_pool_t *pool;

    apr_pool_create(&pool, NULL);
    fx = apr_pcalloc(pool, sizeof(*fx));
    fx->pool = pool;
    fx->got = "";
    fx->params.domain = DOMAIN;
    fx->params.xml_lang = "en";
    fx->params.tls = tls;
    fx->params.ssl_ctx = client_ctx;
    fx->params.max_stanza_size = 65536;
    fx->params.max_depth = 16;
    *state = fx;
    return fx;
}

static void fx_conn(fx_t *fx)
{
    fx->conn = xb_xmpp_conn_create(fx->pool, &fx->params, &events, fx);
    assert_non_null(fx->conn);
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;

    if (fx->srv) {
        SSL_free(fx->srv);
    }
    if (fx->srv_ctx) {
        SSL_CTX_free(fx->srv_ctx);
    }
    apr_pool_destroy(fx->pool); /* the pool cleanup frees the connection's OpenSSL objects */
    return 0;
}

static void feed_conn(fx_t *fx, const char *data, apr_size_t len)
{
    apr_size_t i;

    if (!fx->byte_by_byte) {
        xb_xmpp_conn_feed(fx->conn, data, len);
        return;
    }
    for (i = 0; i < len; i++) {
        xb_xmpp_conn_feed(fx->conn, data + i, 1);
    }
}

/* Server -> client: whatever ciphertext the server SSL produced. */
static int server_flush(fx_t *fx)
{
    char buf[4096];
    int n, moved = 0;

    while (fx->srv && (n = BIO_read(fx->srv_out, buf, sizeof(buf))) > 0) {
        feed_conn(fx, buf, (apr_size_t)n);
        moved += n;
    }
    return moved;
}

static void server_got(fx_t *fx, const char *data, apr_size_t len)
{
    fx->got = apr_pstrcat(fx->pool, fx->got, apr_pstrmemdup(fx->pool, data, len), NULL);
}

static void server_read_tls(fx_t *fx)
{
    char buf[4096];
    int n, err;

    if (!SSL_is_init_finished(fx->srv)) {
        ERR_clear_error();
        if (SSL_do_handshake(fx->srv) != 1) {
            ERR_clear_error();
            return;
        }
    }
    for (;;) {
        n = SSL_read(fx->srv, buf, sizeof(buf));
        if (n > 0) {
            server_got(fx, buf, (apr_size_t)n);
            continue;
        }
        err = SSL_get_error(fx->srv, n);
        if (err == SSL_ERROR_ZERO_RETURN) {
            fx->srv_got_close_notify = 1;
        }
        ERR_clear_error();
        return;
    }
}

/* Client -> server: what the connection has pending, written in `write_chunk` pieces. */
static int client_flush(fx_t *fx)
{
    const char *data;
    apr_size_t n, moved = 0;

    while ((n = xb_xmpp_conn_pending(fx->conn, &data)) > 0) {
        if (fx->write_chunk && n > fx->write_chunk) {
            n = fx->write_chunk;
        }
        if (fx->srv) {
            BIO_write(fx->srv_in, data, (int)n);
        }
        else {
            server_got(fx, data, n);
        }
        xb_xmpp_conn_written(fx->conn, n);
        moved += n;
    }
    if (fx->srv) {
        server_read_tls(fx);
    }
    return moved > 0;
}

static void pump(fx_t *fx)
{
    int moved;

    do {
        moved = client_flush(fx);
        moved |= server_flush(fx) > 0;
    } while (moved);
}

static const char *take_got(fx_t *fx)
{
    const char *got;

    client_flush(fx);
    got = fx->got;
    fx->got = "";
    return got;
}

/* The server says something: plaintext, or through TLS once it is on. */
static void server_send(fx_t *fx, const char *text)
{
    if (!fx->srv) {
        feed_conn(fx, text, strlen(text));
        return;
    }
    assert_int_equal(SSL_write(fx->srv, text, (int)strlen(text)), (int)strlen(text));
    pump(fx);
}

static SSL_CTX *server_ctx(const ident_t *id)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate(ctx, id->cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, id->key), 1);
    return ctx;
}

/* With fx->srv_ctx already set (a server kept across streams: its ticket key), `id` is not
 * used. */
static void server_start_tls(fx_t *fx, const ident_t *id)
{
    if (!fx->srv_ctx) {
        fx->srv_ctx = server_ctx(id);
    }
    fx->srv = SSL_new(fx->srv_ctx);
    fx->srv_in = BIO_new(BIO_s_mem());
    fx->srv_out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(fx->srv_in, -1);
    SSL_set_bio(fx->srv, fx->srv_in, fx->srv_out);
    SSL_set_accept_state(fx->srv);
}

/* Up to <proceed/> and the TLS handshake with server identity `id`. */
static void negotiate_to_tls(fx_t *fx, const ident_t *id)
{
    xb_xmpp_conn_start(fx->conn);
    assert_string_equal(take_got(fx), CLIENT_HEADER);
    server_send(fx, SRV_HEADER FEATURES_TLS);
    assert_string_equal(take_got(fx), STARTTLS);
    assert_false(xb_xmpp_conn_is_ready(fx->conn));
    server_send(fx, PROCEED);
    server_start_tls(fx, id);
    pump(fx);
}

/* A complete STARTTLS negotiation; the post-TLS features are handed up. */
static void negotiate(fx_t *fx)
{
    negotiate_to_tls(fx, &srv1);
    assert_int_equal(fx->nclosed, 0);
    assert_true(xb_xmpp_conn_is_ready(fx->conn));
    assert_string_equal(take_got(fx), CLIENT_HEADER);
    server_send(fx, SRV_HEADER FEATURES_SASL);
    assert_int_equal(fx->nelems, 1);
    assert_string_equal(fx->elems[0], FEATURES_SASL);
}

/* -- tests ---------------------------------------------------------------------------------- */

static void test_starttls_negotiation(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    negotiate(fx);
    assert_int_equal(fx->nclosed, 0);

    /* Stanzas both ways; the server's inherit jabber:client explicitly. */
    xb_xmpp_conn_send(fx->conn, "<presence xmlns='jabber:client'/>", 33);
    assert_string_equal(take_got(fx), "<presence xmlns='jabber:client'/>");
    server_send(fx, "<message from='a@" DOMAIN "'><body>hi</body></message> ");
    assert_int_equal(fx->nelems, 2);
    assert_string_equal(fx->elems[1], "<message xmlns='jabber:client' from='a@" DOMAIN
                                      "'><body>hi</body></message>");
}

/* The test's server side gives its buffers back too, so the heap only shows the client's. */
static void server_trim(fx_t *fx)
{
    assert_int_equal(BIO_ctrl_pending(fx->srv_in), 0);
    assert_int_equal(BIO_ctrl_pending(fx->srv_out), 0);
    fx->srv_in = BIO_new(BIO_s_mem());
    fx->srv_out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(fx->srv_in, -1);
    SSL_set0_rbio(fx->srv, fx->srv_in);
    SSL_set0_wbio(fx->srv, fx->srv_out);
    SSL_free_buffers(fx->srv);
}

/* An idle TLS stream holds no burst-sized buffer: after 20 kB stanzas both ways the heap is
 * back within a few kB of where it was (OpenSSL's record buffers, the memory BIOs, the socket
 * and framer buffers all gave theirs back), and the stream still works. */
static void test_idle_tls_gives_memory_back(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);
    char *big = apr_palloc(fx->pool, 20100), *body;
    size_t before, after;

    fx_conn(fx);
    negotiate(fx);
    xb_xmpp_conn_send(fx->conn, "<presence xmlns='jabber:client'/>", 33);
    assert_string_equal(take_got(fx), "<presence xmlns='jabber:client'/>");
    server_send(fx, "<message from='a@" DOMAIN "'><body>hi</body></message>");
    server_trim(fx);
    before = mallinfo2().uordblks;

    strcpy(big, "<message xmlns='jabber:client'><body>");
    body = big + strlen(big);
    memset(body, 'x', 20000);
    strcpy(body + 20000, "</body></message>");
    server_send(fx, big);
    assert_int_equal(fx->nelems, 3);
    assert_string_equal(fx->elems[2], big);
    xb_xmpp_conn_send(fx->conn, big, strlen(big));
    assert_string_equal(take_got(fx), big);
    server_trim(fx);
    after = mallinfo2().uordblks;
    print_message("heap after the burst: %+ld bytes\n", (long)after - (long)before);
    assert_true(after < before + 8192);

    /* Trimmed, it still works both ways. */
    server_send(fx, "<message from='b@" DOMAIN "'><body>again</body></message>");
    assert_int_equal(fx->nelems, 4);
    xb_xmpp_conn_send(fx->conn, "<presence xmlns='jabber:client'/>", 33);
    assert_string_equal(take_got(fx), "<presence xmlns='jabber:client'/>");
}

static void test_send_before_ready(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);
    const char *auth = "<auth xmlns='" SASL_NS "' mechanism='PLAIN'>AGEAYg==</auth>";

    fx_conn(fx);
    xb_xmpp_conn_send(fx->conn, auth, strlen(auth)); /* before start */
    xb_xmpp_conn_start(fx->conn);
    assert_string_equal(take_got(fx), CLIENT_HEADER);
    server_send(fx, SRV_HEADER FEATURES_TLS);
    xb_xmpp_conn_send(fx->conn, "<a/>", 4); /* during negotiation */
    assert_string_equal(take_got(fx), STARTTLS);
    server_send(fx, PROCEED);
    server_start_tls(fx, &srv1);
    pump(fx);
    assert_true(xb_xmpp_conn_is_ready(fx->conn));
    /* Only over TLS, after the new header, in order. */
    assert_string_equal(take_got(fx), apr_pstrcat(fx->pool, CLIENT_HEADER, auth, "<a/>", NULL));
    server_send(fx, SRV_HEADER FEATURES_SASL);
    assert_string_equal(fx->elems[0], FEATURES_SASL);
}

static void test_wrong_certificate_name(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx->params.tls_name = "xmpp.other.example";
    fx_conn(fx);
    negotiate_to_tls(fx, &srv1);
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_CONNECTION_FAILED);
    assert_non_null(strstr(fx->why, "xmpp.other.example"));
    assert_non_null(strstr(fx->why, "hostname mismatch"));
    assert_int_equal(fx->nelems, 0);
    assert_false(xb_xmpp_conn_is_ready(fx->conn));
    assert_true(xb_xmpp_conn_is_closed(fx->conn));
    /* Nothing of ours went out in the clear or otherwise after the failure. */
    assert_string_equal(fx->got, "");
}

static void test_untrusted_ca(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    negotiate_to_tls(fx, &srv2);
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_CONNECTION_FAILED);
    assert_non_null(strstr(fx->why, "certificate verification failed: unable to get local "
                                    "issuer certificate"));
    assert_int_equal(fx->nelems, 0);
}

static void test_ip_address_name(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx->params.tls_name = "127.0.0.1";
    fx_conn(fx);
    negotiate_to_tls(fx, &srv_ip);
    assert_int_equal(fx->nclosed, 0);
    assert_true(xb_xmpp_conn_is_ready(fx->conn));
}

static void test_no_starttls_offered(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    take_got(fx);
    server_send(fx, SRV_HEADER FEATURES_SASL);
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_CONNECTION_FAILED);
    assert_string_equal(fx->why, "server offers no STARTTLS");
    assert_int_equal(fx->nelems, 0);
    /* No credentials can have gone out: we only closed. */
    assert_string_equal(take_got(fx), "</stream:stream>");
}

static void test_starttls_failure(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    take_got(fx);
    server_send(fx, SRV_HEADER FEATURES_TLS);
    take_got(fx);
    server_send(fx, "<failure xmlns='" TLS_NS "'/></stream:stream>");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_CONNECTION_FAILED);
    assert_string_equal(fx->why, "server refused STARTTLS");
    assert_int_equal(fx->nelems, 0);
}

static void test_plaintext_after_proceed_dropped(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    take_got(fx);
    server_send(fx, SRV_HEADER FEATURES_TLS);
    take_got(fx);
    /* A man in the middle appends to the plaintext: it must not survive into the TLS
     * stream. */
    server_send(fx, PROCEED "<message><body>injected</body></message>");
    server_start_tls(fx, &srv1);
    pump(fx);
    assert_int_equal(fx->nclosed, 0);
    assert_string_equal(take_got(fx), CLIENT_HEADER);
    server_send(fx, SRV_HEADER FEATURES_SASL);
    assert_int_equal(fx->nelems, 1);
    assert_string_equal(fx->elems[0], FEATURES_SASL);
}

static void test_tls_none(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_NONE);

    fx->params.ssl_ctx = NULL;
    fx->params.xml_lang = NULL;
    fx_conn(fx);
    xb_xmpp_conn_send(fx->conn, "<early/>", 8);
    xb_xmpp_conn_start(fx->conn);
    assert_string_equal(take_got(fx),
                        "<?xml version='1.0'?><stream:stream to='" DOMAIN "' "
                        "xmlns='jabber:client' xmlns:stream='" STREAMS_NS "' version='1.0'>");
    assert_false(xb_xmpp_conn_is_ready(fx->conn));
    server_send(fx, SRV_HEADER FEATURES_SASL);
    assert_true(xb_xmpp_conn_is_ready(fx->conn));
    assert_int_equal(fx->nelems, 1);
    assert_string_equal(fx->elems[0], FEATURES_SASL);
    assert_string_equal(take_got(fx), "<early/>");
}

static void test_header_escaping(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_NONE);

    fx->params.domain = "a'b&c";
    fx->params.xml_lang = "e\"<n>";
    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    assert_string_equal(take_got(fx),
                        "<?xml version='1.0'?><stream:stream to='a&apos;b&amp;c' "
                        "xmlns='jabber:client' xmlns:stream='" STREAMS_NS "' version='1.0' "
                        "xml:lang='e&quot;&lt;n&gt;'>");
}

static void test_restart(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    negotiate(fx);
    xb_xmpp_conn_send(fx->conn, "<auth xmlns='" SASL_NS "' mechanism='PLAIN'>x</auth>",
                      strlen("<auth xmlns='" SASL_NS "' mechanism='PLAIN'>x</auth>"));
    take_got(fx);
    server_send(fx, "<success xmlns='" SASL_NS "'/>");
    assert_int_equal(fx->nelems, 2);
    assert_string_equal(fx->elems[1], "<success xmlns='" SASL_NS "'/>");
    xb_xmpp_conn_restart(fx->conn);
    assert_string_equal(take_got(fx), CLIENT_HEADER);
    server_send(fx, SRV_HEADER FEATURES_BIND);
    assert_int_equal(fx->nclosed, 0);
    assert_int_equal(fx->nelems, 3);
    assert_string_equal(fx->elems[2], FEATURES_BIND);
    server_send(fx, "<iq type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                    "<jid>u@" DOMAIN "/r</jid></bind></iq>");
    assert_string_equal(fx->elems[3], "<iq xmlns='jabber:client' type='result' id='b'><bind "
                                      "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>u@" DOMAIN
                                      "/r</jid></bind></iq>");
}

/* A warm stream is opened before anyone asks for a language; the session that takes it sets
 * the client's, which the headers of the restarts carry (and only those). */
static void test_xml_lang_set_later(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_NONE);

    fx->params.xml_lang = NULL;
    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    assert_string_equal(take_got(fx), "<?xml version='1.0'?><stream:stream to='" DOMAIN
                                      "' xmlns='jabber:client' xmlns:stream='" STREAMS_NS
                                      "' version='1.0'>");
    server_send(fx, SRV_HEADER FEATURES_SASL);
    assert_true(xb_xmpp_conn_is_ready(fx->conn));
    xb_xmpp_conn_set_xml_lang(fx->conn, "de'x");
    assert_string_equal(take_got(fx), ""); /* nothing is sent until the restart */
    xb_xmpp_conn_restart(fx->conn);
    assert_string_equal(take_got(fx), "<?xml version='1.0'?><stream:stream to='" DOMAIN
                                      "' xmlns='jabber:client' xmlns:stream='" STREAMS_NS
                                      "' version='1.0' xml:lang='de&apos;x'>");
    xb_xmpp_conn_set_xml_lang(fx->conn, NULL);
    xb_xmpp_conn_restart(fx->conn);
    assert_string_equal(take_got(fx), "<?xml version='1.0'?><stream:stream to='" DOMAIN
                                      "' xmlns='jabber:client' xmlns:stream='" STREAMS_NS
                                      "' version='1.0'>");
}

static void test_restart_from_element_event(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_NONE);

    fx->restart_on_success = 1;
    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    take_got(fx);
    server_send(fx, SRV_HEADER FEATURES_SASL);
    take_got(fx);
    server_send(fx, "<success xmlns='" SASL_NS "'/>");
    assert_string_equal(take_got(fx), "<?xml version='1.0'?><stream:stream to='" DOMAIN
                                      "' xmlns='jabber:client' xmlns:stream='" STREAMS_NS
                                      "' version='1.0' xml:lang='en'>");
    server_send(fx, SRV_HEADER FEATURES_BIND);
    assert_int_equal(fx->nelems, 3);
    assert_string_equal(fx->elems[2], FEATURES_BIND);
}

static void test_stream_error_raw(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);
    const char *err = "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                      "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>"
                      "Replaced by new connection</text></stream:error>";

    fx_conn(fx);
    negotiate(fx);
    server_send(fx, apr_pstrcat(fx->pool, err, "</stream:stream>", NULL));
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_STREAM_ERROR);
    assert_string_equal(fx->cdata, err);
    assert_string_equal(fx->why, "stream error from the server: conflict");
    assert_null(strstr(fx->why, "Replaced"));
    assert_int_equal(fx->nelems, 1);
    /* We answer with our own end and close_notify. */
    assert_string_equal(take_got(fx), "</stream:stream>");
    assert_true(fx->srv_got_close_notify);
}

static void test_stream_error_before_tls(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    take_got(fx);
    server_send(fx, SRV_HEADER "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:"
                               "xmpp-streams'>evil.example</see-other-host></stream:error>");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_CONNECTION_FAILED);
    assert_null(fx->cdata);
    assert_null(strstr(fx->why, "evil"));
}

static void test_close_handshake(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    negotiate(fx);
    xb_xmpp_conn_close(fx->conn);
    assert_false(xb_xmpp_conn_is_ready(fx->conn));
    assert_false(xb_xmpp_conn_is_closed(fx->conn));
    assert_string_equal(take_got(fx), "</stream:stream>");
    assert_false(fx->srv_got_close_notify); /* not before the server had its say */
    xb_xmpp_conn_send(fx->conn, "<late/>", 7); /* ignored */
    xb_xmpp_conn_close(fx->conn);             /* idempotent */
    /* What the server had in flight still arrives. */
    server_send(fx, "<message><body>last</body></message>");
    assert_int_equal(fx->nelems, 2);
    assert_int_equal(fx->nclosed, 0);
    server_send(fx, "</stream:stream>");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_NONE);
    assert_string_equal(fx->why, "stream closed");
    assert_true(xb_xmpp_conn_is_closed(fx->conn));
    assert_string_equal(take_got(fx), "");
    assert_true(fx->srv_got_close_notify);
    xb_xmpp_conn_eof(fx->conn, "connection reset");
    assert_int_equal(fx->nclosed, 1);
    assert_string_equal(take_got(fx), "");
}

static void test_close_then_eof(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_NONE);

    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    server_send(fx, SRV_HEADER FEATURES_SASL);
    xb_xmpp_conn_close(fx->conn);
    xb_xmpp_conn_eof(fx->conn, NULL);
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_NONE);
}

static void test_server_closes_stream(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    negotiate(fx);
    server_send(fx, "</stream:stream>");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_CONNECTION_FAILED);
    assert_string_equal(take_got(fx), "</stream:stream>");
}

static void test_eof(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    negotiate(fx);
    xb_xmpp_conn_eof(fx->conn, "connection reset by peer");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_CONNECTION_FAILED);
    assert_non_null(strstr(fx->why, "connection reset by peer"));
    xb_xmpp_conn_eof(fx->conn, "again");
    server_send(fx, "<message/>");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->nelems, 1);
}

static void test_stanza_too_big(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);
    char *body;

    fx->params.max_stanza_size = 1000;
    fx_conn(fx);
    negotiate(fx);
    body = apr_palloc(fx->pool, 2001);
    memset(body, 'x', 2000);
    body[2000] = '\0';
    server_send(fx, apr_pstrcat(fx->pool, "<message><body>", body, "</body></message>", NULL));
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_CONNECTION_FAILED);
    assert_null(strstr(fx->why, "xxx"));
    assert_int_equal(fx->nelems, 1);
    assert_string_equal(take_got(fx), "<stream:error><policy-violation xmlns='urn:ietf:params:"
                                      "xml:ns:xmpp-streams'/></stream:error></stream:stream>");
}

static void test_malformed(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    negotiate(fx);
    server_send(fx, "<message><body>secret</bdy></message>");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_CONNECTION_FAILED);
    assert_null(strstr(fx->why, "secret"));
    assert_non_null(strstr(fx->why, "not-well-formed"));
    assert_string_equal(take_got(fx), "<stream:error><not-well-formed xmlns='urn:ietf:params:"
                                      "xml:ns:xmpp-streams'/></stream:error></stream:stream>");
}

static void test_byte_by_byte(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx->byte_by_byte = 1;
    fx->write_chunk = 7;
    fx_conn(fx);
    negotiate(fx);
    server_send(fx, "<message from='a@" DOMAIN "'><body>hi</body></message>"
                    "<presence/>\n<r xmlns='urn:xmpp:sm:3'/>");
    assert_int_equal(fx->nelems, 4);
    assert_string_equal(fx->elems[2], "<presence xmlns='jabber:client'/>");
    xb_xmpp_conn_close(fx->conn);
    assert_string_equal(take_got(fx), "</stream:stream>");
    server_send(fx, "</stream:stream>");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_NONE);
}

static void test_output_is_reused(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_NONE);
    char stanza[1000];
    const char *data;
    apr_size_t n;
    int i;

    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    server_send(fx, SRV_HEADER FEATURES_SASL);
    take_got(fx);
    /* A long session of partial writes, one byte always left behind. */
    for (i = 0; i < 10000; i++) {
        memset(stanza, 'a' + i % 26, sizeof(stanza));
        xb_xmpp_conn_send(fx->conn, stanza, sizeof(stanza));
        n = xb_xmpp_conn_pending(fx->conn, &data);
        assert_int_equal(n, sizeof(stanza) + 1 - (i == 0));
        assert_int_equal(data[n - 1], 'a' + i % 26);
        xb_xmpp_conn_written(fx->conn, n / 2);
        n = xb_xmpp_conn_pending(fx->conn, &data);
        xb_xmpp_conn_written(fx->conn, n - 1);
    }
    assert_int_equal(xb_xmpp_conn_pending(fx->conn, &data), 1);
    xb_xmpp_conn_written(fx->conn, 1000000); /* more than pending: clamped */
    assert_int_equal(xb_xmpp_conn_pending(fx->conn, &data), 0);
}

static void test_destroy_in_callbacks(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    negotiate(fx);
    fx->destroy_in_element = 1;
    server_send(fx, "<message/><message/>");
    assert_int_equal(fx->nelems, 2);
    assert_true(xb_xmpp_conn_is_closed(fx->conn));
    xb_xmpp_conn_destroy(fx->conn); /* idempotent */
    xb_xmpp_conn_feed(fx->conn, "x", 1);
    xb_xmpp_conn_close(fx->conn);
    assert_int_equal(fx->nclosed, 0);
}

static void test_destroy_in_closed(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    negotiate(fx);
    fx->destroy_in_closed = 1;
    server_send(fx, "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                    "</stream:error></stream:stream>");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_STREAM_ERROR);
}

static void test_close_before_and_during_tls(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    xb_xmpp_conn_close(fx->conn);
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_NONE);
    assert_string_equal(take_got(fx), "");
    xb_xmpp_conn_destroy(fx->conn);

    fx->nclosed = 0;
    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    take_got(fx);
    server_send(fx, SRV_HEADER FEATURES_TLS);
    take_got(fx);
    server_send(fx, PROCEED);
    xb_xmpp_conn_close(fx->conn); /* the ClientHello is out, nothing else */
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_NONE);
}

static void test_ssl_ctx_bad_ca_file(void **state)
{
    const char *err = NULL;

    (void)state;
    assert_null(xb_xmpp_conn_ssl_ctx("/nonexistent/ca.pem", &err));
    assert_non_null(err);
    ERR_clear_error();
}

static void test_old_server_version(void **state)
{
    fx_t *fx = fx_new(state, XB_TLS_STARTTLS);

    fx_conn(fx);
    xb_xmpp_conn_start(fx->conn);
    take_got(fx);
    server_send(fx, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                    "xmlns:stream='" STREAMS_NS "' id='x'>");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->cond, XB_COND_REMOTE_CONNECTION_FAILED);
}

/* -- TLS session resumption ------------------------------------------------------------------ */

/* A fixture of its own (freed with fx_free) for one stream to the server `srv_ctx`, kept
 * across streams as a real server keeps its ticket key, up to the post-TLS features (and the
 * tickets the server sends after the handshake) or the failure. */
static fx_t *dial(SSL_CTX *srv_ctx, const char *key, const char *tls_name)
{
    void *state;
    fx_t *fx = fx_new(&state, XB_TLS_STARTTLS);

    fx->params.tls_resume_key = key;
    fx->params.tls_name = tls_name;
    assert_int_equal(SSL_CTX_up_ref(srv_ctx), 1);
    fx->srv_ctx = srv_ctx;
    fx_conn(fx);
    negotiate_to_tls(fx, NULL);
    if (fx->nclosed == 0) {
        assert_true(xb_xmpp_conn_is_ready(fx->conn));
        assert_string_equal(take_got(fx), CLIENT_HEADER);
        server_send(fx, SRV_HEADER FEATURES_SASL);
        assert_int_equal(fx->nelems, 1);
    }
    return fx;
}

static void fx_free(fx_t *fx)
{
    void *state = fx;
    fx_teardown(&state);
}

/* The first stream to a server does the full handshake and keeps the server's ticket; the
 * next ones to the same endpoint resume it (no certificate) and work as usual; another
 * endpoint (another key) does not get it. */
static void test_tls_resumption(void **state)
{
    SSL_CTX *srv = server_ctx(&srv1);
    fx_t *fx;
    int i;

    (void)state;
    fx = dial(srv, "resume-a", NULL);
    assert_int_equal(fx->ntls, 1);
    assert_int_equal(fx->resumed, 0);
    fx_free(fx);
    for (i = 0; i < 3; i++) {
        fx = dial(srv, "resume-a", NULL);
        assert_int_equal(fx->nclosed, 0);
        assert_int_equal(fx->ntls, 1);
        assert_int_equal(fx->resumed, 1);
        /* Stanzas both ways over the resumed session. */
        xb_xmpp_conn_send(fx->conn, "<presence xmlns='jabber:client'/>", 33);
        assert_string_equal(take_got(fx), "<presence xmlns='jabber:client'/>");
        server_send(fx, "<message from='a@" DOMAIN "'><body>hi</body></message>");
        assert_int_equal(fx->nelems, 2);
        fx_free(fx);
    }
    fx = dial(srv, "resume-b", NULL);
    assert_int_equal(fx->resumed, 0);
    fx_free(fx);
    /* Without a key: never resumed. */
    fx = dial(srv, NULL, NULL);
    assert_int_equal(fx->ntls, 1);
    assert_int_equal(fx->resumed, 0);
    fx_free(fx);
    SSL_CTX_free(srv);
}

/* A session is offered only for the name its certificate was verified for: the same key with
 * another name (which the server's certificate does not carry) gets a full handshake, which
 * fails on the name, although this server would have accepted the session. The failure drops
 * the endpoint's session. */
static void test_tls_resumption_checks_name(void **state)
{
    SSL_CTX *srv = server_ctx(&srv1);
    fx_t *fx;

    (void)state;
    fx_free(dial(srv, "resume-name", NULL));
    fx = dial(srv, "resume-name", "xmpp.other.example");
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->ntls, 0);
    assert_non_null(strstr(fx->why, "hostname mismatch"));
    fx_free(fx);
    fx = dial(srv, "resume-name", NULL);
    assert_int_equal(fx->nclosed, 0);
    assert_int_equal(fx->resumed, 0); /* dropped by the failure */
    fx_free(fx);
    SSL_CTX_free(srv);
}

/* A server that does not know the session (another ticket key) and presents a certificate of
 * an untrusted CA is refused as without resumption, and the session is dropped. */
static void test_tls_resumption_dropped_on_failure(void **state)
{
    SSL_CTX *srv = server_ctx(&srv1), *other = server_ctx(&srv2);
    fx_t *fx;

    (void)state;
    fx_free(dial(srv, "resume-fail", NULL));
    fx = dial(srv, "resume-fail", NULL);
    assert_int_equal(fx->resumed, 1);
    fx_free(fx);
    fx = dial(other, "resume-fail", NULL);
    assert_int_equal(fx->nclosed, 1);
    assert_int_equal(fx->ntls, 0);
    assert_non_null(strstr(fx->why, "unable to get local issuer certificate"));
    fx_free(fx);
    fx = dial(srv, "resume-fail", NULL);
    assert_int_equal(fx->nclosed, 0);
    assert_int_equal(fx->resumed, 0);
    fx_free(fx);
    SSL_CTX_free(srv);
    SSL_CTX_free(other);
}

/* The cache ends with its context: a stream made from a context its owner has let go (a new
 * configuration) still works and resumes within that context. */
static void test_tls_resumption_context_outlives_owner(void **state)
{
    SSL_CTX *srv = server_ctx(&srv1), *saved = client_ctx;
    const char *err = NULL;
    fx_t *fx;

    (void)state;
    client_ctx = xb_xmpp_conn_ssl_ctx(ca1_path, &err);
    assert_non_null(client_ctx);
    fx_free(dial(srv, "resume-ctx", NULL));
    {
        void *st;
        fx = fx_new(&st, XB_TLS_STARTTLS);
        fx->params.tls_resume_key = "resume-ctx";
        assert_int_equal(SSL_CTX_up_ref(srv), 1);
        fx->srv_ctx = srv;
        fx_conn(fx);
    }
    SSL_CTX_free(client_ctx); /* the owner's reference; the stream keeps its own */
    client_ctx = saved;
    negotiate_to_tls(fx, NULL);
    assert_int_equal(fx->nclosed, 0);
    assert_int_equal(fx->resumed, 1);
    fx_free(fx);
    SSL_CTX_free(srv);
}

#define T(name) cmocka_unit_test_teardown(name, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_starttls_negotiation),
        T(test_idle_tls_gives_memory_back),
        T(test_send_before_ready),
        T(test_wrong_certificate_name),
        T(test_untrusted_ca),
        T(test_ip_address_name),
        T(test_no_starttls_offered),
        T(test_starttls_failure),
        T(test_plaintext_after_proceed_dropped),
        T(test_tls_none),
        T(test_header_escaping),
        T(test_restart),
        T(test_restart_from_element_event),
        T(test_xml_lang_set_later),
        T(test_stream_error_raw),
        T(test_stream_error_before_tls),
        T(test_close_handshake),
        T(test_close_then_eof),
        T(test_server_closes_stream),
        T(test_eof),
        T(test_stanza_too_big),
        T(test_malformed),
        T(test_byte_by_byte),
        T(test_output_is_reused),
        T(test_destroy_in_callbacks),
        T(test_destroy_in_closed),
        T(test_close_before_and_during_tls),
        T(test_old_server_version),
        cmocka_unit_test(test_ssl_ctx_bad_ca_file),
        cmocka_unit_test(test_tls_resumption),
        cmocka_unit_test(test_tls_resumption_checks_name),
        cmocka_unit_test(test_tls_resumption_dropped_on_failure),
        cmocka_unit_test(test_tls_resumption_context_outlives_owner),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
