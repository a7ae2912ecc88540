/* libFuzzer harness: the SASL client (xb_sasl_*) fed arbitrary server messages, and its
 * base64 helpers.
 *
 * Input: byte 0 picks the mechanism (% 3: SCRAM-SHA-1, SCRAM-SHA-256, PLAIN), the rest is a
 * sequence of server messages separated by NUL bytes (SCRAM messages cannot hold NUL). A
 * message starting with 's' is <success/> additional data (the rest of it), anything else a
 * challenge (without its first byte when that is 'c'). The client authenticates as "user" with
 * password "pencil" and the client nonce of the RFC 5802 / RFC 7677 examples, so the example
 * exchanges verify and the seeds start on the successful path.
 *
 * Invariants: SCRAM success is accepted only after a server-first-message was accepted (the
 * server must prove it knows the password: no skipping to <success/>); after a failure every
 * step fails; PLAIN's initial response is "\0user\0pencil"; base64 round trips: every string
 * the strict decoder accepts re-encodes to itself, and every message encodes and decodes back.
 *
 * The iteration count is bounded by the client at 1e6 (0.2 s per step): inputs asking for more
 * than 20000 are skipped so that the fuzzer's time goes to the parsing, not to PBKDF2.
 */
#include <apr_strings.h>

#include "fuzz_common.h"
#include "xb_sasl.h"

#define MAX_FUZZ_ITERATIONS 20000

static int too_many_iterations(const uint8_t *m, size_t len)
{
    size_t i;

    for (i = 0; i + 2 < len; i++) {
        if (m[i] == 'i' && m[i + 1] == '=') {
            unsigned long v = 0;
            size_t j = i + 2;
            while (j < len && m[j] >= '0' && m[j] <= '9' && v <= MAX_FUZZ_ITERATIONS) {
                v = v * 10 + (unsigned long)(m[j] - '0');
                j++;
            }
            if (v > MAX_FUZZ_ITERATIONS) {
                return 1;
            }
        }
    }
    return 0;
}

static void check_base64(apr_pool_t *p, const char *m, size_t len)
{
    apr_size_t n = 0, n2 = 0;
    char *dec = xb_sasl_base64_decode(p, m, len, &n);
    char *enc;

    if (dec) {
        enc = xb_sasl_base64_encode(p, dec, n, &n2);
        FUZZ_CHECK(n2 == len && !memcmp(enc, m, len));
    }
    enc = xb_sasl_base64_encode(p, m, len, &n);
    FUZZ_CHECK(n == strlen(enc));
    dec = xb_sasl_base64_decode(p, enc, n, &n2);
    FUZZ_CHECK(dec && n2 == len && !memcmp(dec, m, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const mechs[] = { XB_SASL_SCRAM_SHA_1, XB_SASL_SCRAM_SHA_256,
                                         XB_SASL_PLAIN };
    static const char *const nonces[] = { "fyko+d2lbbFgONRv9qkxdawL", "rOprNGfwEbeRWgbNEkqO" };
    apr_pool_t *p;
    xb_sasl_t *s;
    const char *mech, *out = NULL, *err = NULL;
    const uint8_t *msg;
    size_t msg_len;
    apr_size_t out_len = 0;
    int scram, first_ok = 0, failed = 0, done = 0;
    unsigned idx;

    if (size < 1 || size > 8192 || too_many_iterations(data, size)) {
        return 0;
    }
    idx = data[0] % 3;
    mech = mechs[idx];
    scram = idx < 2;
    data++;
    size--;

    p = fuzz_pool();
    s = xb_sasl_create(p, mech, "user", "pencil", &err);
    FUZZ_CHECK(s != NULL);
    if (scram) {
        xb_sasl_set_nonce_for_test(s, nonces[idx]);
    }
    FUZZ_CHECK(xb_sasl_initial(s, &out, &out_len, &err) == APR_SUCCESS);
    fuzz_touch(out, out_len);
    if (!scram) {
        FUZZ_CHECK(out_len == 12 && !memcmp(out, "\0user\0pencil", 12));
    }

    while (fuzz_next_field(&data, &size, '\0', &msg, &msg_len)) {
        int success = msg_len > 0 && msg[0] == 's';
        apr_status_t rv;
        /* The message in an allocation of its own size: a read past it is reported. */
        char *m;

        if (msg_len > 0 && (msg[0] == 's' || msg[0] == 'c')) {
            msg++;
            msg_len--;
        }
        m = malloc(msg_len ? msg_len : 1);
        memcpy(m, msg, msg_len);
        check_base64(p, m, msg_len);
        if (success) {
            rv = xb_sasl_success(s, m, msg_len, &err);
            if (rv == APR_SUCCESS) {
                FUZZ_CHECK(!failed && !done);
                /* SCRAM: the server signature was checked, which needs the first step. */
                FUZZ_CHECK(!scram || first_ok);
                done = 1;
            }
        }
        else {
            out = NULL;
            rv = xb_sasl_challenge(s, m, msg_len, &out, &out_len, &err);
            if (rv == APR_SUCCESS) {
                FUZZ_CHECK(scram && !failed);
                FUZZ_CHECK(out != NULL);
                fuzz_touch(out, out_len);
                first_ok = 1;
            }
        }
        free(m);
        if (rv != APR_SUCCESS) {
            FUZZ_CHECK(err != NULL);
            fuzz_touch(err, strlen(err));
            failed = 1;
        }
    }
    fuzz_pool_done(p);
    return 0;
}
