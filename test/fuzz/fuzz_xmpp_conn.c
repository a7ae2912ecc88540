/* libFuzzer harness: the client side of an XMPP stream (xb_xmpp_conn_*), fed server bytes.
 *
 * Input: byte 0 = mode, bytes 1-2 seed the choice of operations and split points, the rest is
 * what the server sends.
 *   mode bit 0 clear: XB_TLS_NONE (the admin said `plain`): elements are handed up after the
 *                     first features;
 *   mode bit 0 set:   STARTTLS required; unless bit 1 is set, a canned Prosody header and
 *                     features offering <starttls/> are fed first, so the input starts in the
 *                     "<starttls/> sent, waiting for <proceed/>" state (and what follows a
 *                     <proceed/> goes to the TLS handshake);
 *   mode bit 2:       a small stanza limit.
 * Between feeds the harness also does what the daemon does: sends client data, marks output
 * written, restarts the stream, closes it, reports EOF, and destroys the connection from
 * inside an event (on an element starting "<destroy").
 *
 * Invariants: nothing is handed up before TLS when TLS is required (the pre-TLS stream is
 * anyone's), so no element and no remote-stream-error reach the browser in that mode; with
 * TLS_NONE the first element handed up is <stream:features/>; `closed` fires at most once and
 * nothing is handed up after it; pending output is always readable.
 */
#include <apr_strings.h>

#include "fuzz_common.h"
#include "xb_xmpp_conn.h"

#define PROSODY_HEADER                                                                      \
    "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "  \
    "xml:lang='en' id='5d2b52a5-4c2b-4f4b-9a07-2b6c1c3f1e77' from='example.org' "          \
    "version='1.0' xmlns='jabber:client'>"
#define STARTTLS_FEATURES                                                                   \
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"       \
    "</starttls></stream:features>"

static SSL_CTX *ssl_ctx;

typedef struct {
    xb_xmpp_conn_t *c;
    int tls_required;
    int elements;
    int closed;
    int destroyed;
    xb_bosh_condition_t cond;
} state_t;

static void on_element(void *baton, const char *data, apr_size_t len)
{
    state_t *s = baton;

    FUZZ_CHECK(!s->closed);
    FUZZ_CHECK(!s->destroyed);
    FUZZ_CHECK(data && len > 0);
    fuzz_touch(data, len);
    FUZZ_CHECK(!memchr(data, '\0', len));
    if (s->elements == 0) {
        /* The first element the browser sees is the stream features. */
        FUZZ_CHECK(len >= 16 && !memcmp(data, "<stream:features", 16));
    }
    s->elements++;
    if (len >= 8 && !memcmp(data, "<destroy", 8)) {
        xb_xmpp_conn_destroy(s->c);
        s->destroyed = 1;
    }
}

static void on_closed(void *baton, xb_bosh_condition_t cond, const char *data, apr_size_t len,
                      const char *why)
{
    state_t *s = baton;

    FUZZ_CHECK(!s->closed);
    FUZZ_CHECK(why != NULL);
    fuzz_touch(why, strlen(why));
    if (data) {
        fuzz_touch(data, len);
    }
    FUZZ_CHECK(cond != XB_COND_REMOTE_STREAM_ERROR || (data && len > 0));
    s->closed = 1;
    s->cond = cond;
}

static const xb_xmpp_conn_events_t events = { on_element, on_closed, NULL };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *err = NULL;

    (void)argc;
    (void)argv;
    fuzz_setup();
    ssl_ctx = xb_xmpp_conn_ssl_ctx(NULL, &err);
    if (!ssl_ctx) {
        fprintf(stderr, "no SSL_CTX: %s\n", err);
        abort();
    }
    return 0;
}

static void drain(state_t *s, fuzz_rng_t *rng)
{
    const char *out;
    apr_size_t n = xb_xmpp_conn_pending(s->c, &out);

    if (n) {
        FUZZ_CHECK(out != NULL);
        fuzz_touch(out, n);
        /* Sometimes only part of it goes out, like a short write. */
        xb_xmpp_conn_written(s->c, (fuzz_rng_next(rng) & 1) ? n : n / 2);
    }
}

static void feed(state_t *s, const char *data, size_t len)
{
    if (!s->destroyed) {
        xb_xmpp_conn_feed(s->c, data, len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    state_t s;
    xb_xmpp_conn_params_t params;
    fuzz_rng_t rng;
    uint8_t mode;
    size_t off = 0, n;

    if (size < 3 || size > 256 * 1024) {
        return 0;
    }
    mode = data[0];
    fuzz_rng_seed(&rng, (uint32_t)data[1] << 8 | data[2]);
    data += 3;
    size -= 3;

    p = fuzz_pool();
    memset(&s, 0, sizeof(s));
    memset(&params, 0, sizeof(params));
    params.domain = "example.org";
    params.xml_lang = "en";
    params.tls = (mode & 0x01) ? XB_TLS_STARTTLS : XB_TLS_NONE;
    params.ssl_ctx = ssl_ctx;
    params.max_stanza_size = (mode & 0x04) ? 256 : 0;
    params.max_depth = 0;
    s.tls_required = (params.tls == XB_TLS_STARTTLS);
    s.c = xb_xmpp_conn_create(p, &params, &events, &s);
    FUZZ_CHECK(s.c != NULL);
    xb_xmpp_conn_start(s.c);
    drain(&s, &rng);

    if (s.tls_required && !(mode & 0x02)) {
        feed(&s, PROSODY_HEADER, sizeof(PROSODY_HEADER) - 1);
        feed(&s, STARTTLS_FEATURES, sizeof(STARTTLS_FEATURES) - 1);
        drain(&s, &rng);
    }

    while (off < size && !s.destroyed) {
        uint32_t op = fuzz_rng_next(&rng) % 100;
        if (op < 80) {
            n = fuzz_chunk(&rng, size - off, 2048);
            feed(&s, (const char *)data + off, n);
            off += n;
        }
        else if (op < 88) {
            xb_xmpp_conn_send(s.c, "<presence/>", 11);
        }
        else if (op < 94) {
            drain(&s, &rng);
        }
        else if (op < 97) {
            xb_xmpp_conn_restart(s.c);
        }
        else if (op < 99) {
            xb_xmpp_conn_close(s.c);
        }
        else {
            xb_xmpp_conn_eof(s.c, "fuzz eof");
        }
        FUZZ_CHECK(!(xb_xmpp_conn_is_ready(s.c) && xb_xmpp_conn_is_closed(s.c)));
    }
    if (!s.destroyed) {
        drain(&s, &rng);
        xb_xmpp_conn_eof(s.c, "end of input");
        FUZZ_CHECK(s.closed);
        drain(&s, &rng);
    }
    if (s.tls_required) {
        /* No certificate can be forged by fuzzing: TLS never completes, so the browser must
         * have seen nothing of the stream. */
        FUZZ_CHECK(s.elements == 0);
        FUZZ_CHECK(!s.closed || s.cond != XB_COND_REMOTE_STREAM_ERROR);
    }
    if (!s.destroyed) {
        xb_xmpp_conn_destroy(s.c);
    }
    fuzz_pool_done(p);
    return 0;
}
