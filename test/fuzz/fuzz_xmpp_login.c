/* libFuzzer harness: the prebind login machine (xb_xmpp_login_*) fed arbitrary elements.
 *
 * Input: byte 0 = flags (bit 0: token mode, PLAIN only; bit 1: SCRAM only in password mode),
 * then the elements the server sends, separated by NUL bytes (no XML holds one). The login is
 * user@example.org, password "pencil", resource "xb-0123456789ab". OpenSSL's random generator is
 * replaced by one that gives zero bytes, so the SCRAM client nonce is always
 * "AAAAAAAAAAAAAAAAAAAAAAAA" and the seeds can carry a server that proves it knows the
 * password: the fuzzer starts on paths through SASL, bind and session.
 *
 * Invariants: every result is one of the four; CONTINUE only ever carries bytes, the others
 * none; after FAILED there is an error code and a detail, and every later element fails; after
 * DONE the bound JID is a full JID of user@example.org (ASCII case aside) and nothing more is
 * accepted; DONE is impossible without a SASL success that verified.
 */
#include <strings.h>
/* RAND_set_rand_method is deprecated in OpenSSL 3 but still works, and is all a test needs. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/rand.h>
#include <apr_strings.h>

#include "fuzz_common.h"
#include "xb_sasl.h"
#include "xb_xmpp_login.h"

#define MAX_FUZZ_ITERATIONS 20000

static int zero_bytes(unsigned char *buf, int num)
{
    memset(buf, 0, (size_t)num);
    return 1;
}

static int zero_status(void)
{
    return 1;
}

static RAND_METHOD zero_rand = { NULL, zero_bytes, NULL, NULL, zero_bytes, zero_status };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    if (!RAND_set_rand_method(&zero_rand)) {
        abort();
    }
    return 0;
}

/* PBKDF2 rounds are the server's choice, bounded by the client at 1e6 (0.2 s each): inputs
 * whose element text decodes to an "i=" above 20000 are skipped, so that the fuzzer's time goes
 * to parsing. The text of every element is decoded the way the login does (trimmed base64). */
static int costly_text(apr_pool_t *p, const char *t, size_t n)
{
    apr_size_t len = 0, i;
    const char *dec;

    while (n && (*t == ' ' || *t == '\t' || *t == '\r' || *t == '\n')) {
        t++;
        n--;
    }
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\r' || t[n - 1] == '\n')) {
        n--;
    }
    dec = xb_sasl_base64_decode(p, t, n, &len);
    for (i = 0; dec && i + 2 < len; i++) {
        if (dec[i] == 'i' && dec[i + 1] == '=') {
            unsigned long v = 0;
            apr_size_t j = i + 2;
            while (j < len && dec[j] >= '0' && dec[j] <= '9' && v <= MAX_FUZZ_ITERATIONS) {
                v = v * 10 + (unsigned long)(dec[j] - '0');
                j++;
            }
            if (v > MAX_FUZZ_ITERATIONS) {
                return 1;
            }
        }
    }
    return 0;
}

static int looks_costly(const uint8_t *d, size_t n)
{
    apr_pool_t *p = fuzz_pool();
    size_t i = 0;
    int costly = 0;

    while (i < n && !costly) {
        const uint8_t *gt = memchr(d + i, '>', n - i), *lt;
        if (!gt) {
            break;
        }
        i = (size_t)(gt - d) + 1;
        lt = memchr(d + i, '<', n - i);
        if (!lt) {
            lt = d + n;
        }
        costly = costly_text(p, (const char *)d + i, (size_t)(lt - (d + i)));
        i = (size_t)(lt - d);
    }
    fuzz_pool_done(p);
    return costly;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    xb_xmpp_login_t *l;
    xb_xmpp_login_params_t params;
    const uint8_t *elem;
    size_t elem_len;
    int state_done = 0, state_failed = 0, sasl_succeeded = 0;

    if (size < 1 || size > 65536 || looks_costly(data, size)) {
        return 0;
    }
    memset(&params, 0, sizeof(params));
    params.username = "user";
    params.domain = "example.org";
    params.secret = "pencil";
    params.mode = (data[0] & 1) ? XB_LOGIN_MODE_TOKEN : XB_LOGIN_MODE_PASSWORD;
    params.scram_only = (data[0] >> 1) & 1;
    params.resource = "xb-0123456789ab";
    data++;
    size--;

    p = fuzz_pool();
    l = xb_xmpp_login_create(p, &params);
    FUZZ_CHECK(l != NULL);
    while (fuzz_next_field(&data, &size, '\0', &elem, &elem_len)) {
        const char *send = (const char *)"x";
        apr_size_t send_len = 99;
        /* The element in an allocation of its own size: a read past it is reported. */
        char *e = malloc(elem_len ? elem_len : 1);
        xb_login_result_t rv;

        memcpy(e, elem, elem_len);
        rv = xb_xmpp_login_element(l, e, elem_len, &send, &send_len);
        free(e);
        switch (rv) {
        case XB_LOGIN_CONTINUE:
            FUZZ_CHECK(!state_done && !state_failed);
            FUZZ_CHECK(send != NULL && send_len == strlen(send));
            fuzz_touch(send, send_len);
            break;
        case XB_LOGIN_RESTART:
            FUZZ_CHECK(!state_done && !state_failed);
            FUZZ_CHECK(send == NULL && send_len == 0);
            sasl_succeeded = 1;
            break;
        case XB_LOGIN_DONE: {
            const char *jid = xb_xmpp_login_bound_jid(l);
            FUZZ_CHECK(!state_done && !state_failed);
            FUZZ_CHECK(sasl_succeeded);
            FUZZ_CHECK(send == NULL && send_len == 0);
            FUZZ_CHECK(jid != NULL);
            FUZZ_CHECK(!strncasecmp(jid, "user@example.org/", 17) && jid[17] != '\0');
            FUZZ_CHECK(xb_xmpp_login_error(l) == NULL);
            state_done = 1;
            break;
        }
        case XB_LOGIN_FAILED: {
            const char *code = xb_xmpp_login_error(l), *detail = xb_xmpp_login_error_detail(l);
            FUZZ_CHECK(send == NULL && send_len == 0);
            FUZZ_CHECK(code != NULL && detail != NULL);
            fuzz_touch(code, strlen(code));
            fuzz_touch(detail, strlen(detail));
            FUZZ_CHECK(xb_xmpp_login_bound_jid(l) == NULL);
            state_failed = 1;
            break;
        }
        default:
            FUZZ_CHECK(0);
        }
        if (xb_xmpp_login_mechanism(l)) {
            fuzz_touch(xb_xmpp_login_mechanism(l), strlen(xb_xmpp_login_mechanism(l)));
        }
    }
    fuzz_pool_done(p);
    return 0;
}
