/* Unit tests for the client SASL mechanisms (src/xb_sasl.c): the RFC 5802 and RFC 7677 test
 * vectors, PLAIN, and every way a server's SCRAM messages must be refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include "xb_sasl.h"

/* RFC 5802 §5 */
#define SHA1_NONCE "fyko+d2lbbFgONRv9qkxdawL"
#define SHA1_CLIENT_FIRST "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
#define SHA1_SERVER_FIRST "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
#define SHA1_CLIENT_FINAL                                                                   \
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
#define SHA1_SERVER_FINAL "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

/* RFC 7677 §3 */
#define SHA256_NONCE "rOprNGfwEbeRWgbNEkqO"
#define SHA256_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define SHA256_SERVER_FIRST                                                                 \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define SHA256_CLIENT_FINAL                                                                 \
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"                          \
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define SHA256_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

#include "unit_helpers.h"

/* A SCRAM client at the point where the client-first-message went out. */
static xb_sasl_t *scram_started(const char *mech, const char *nonce, const char *expect_first)
{
    const char *errmsg = NULL, *out;
    apr_size_t len;
    xb_sasl_t *s = xb_sasl_create(pool, mech, "user", "pencil", &errmsg);

    assert_non_null(s);
    xb_sasl_set_nonce_for_test(s, nonce);
    assert_int_equal(xb_sasl_initial(s, &out, &len, &errmsg), APR_SUCCESS);
    assert_int_equal(len, strlen(expect_first));
    assert_memory_equal(out, expect_first, len);
    return s;
}

static void step(xb_sasl_t *s, const char *in, const char *expect_out)
{
    const char *errmsg = NULL, *out;
    apr_size_t len;

    assert_int_equal(xb_sasl_challenge(s, in, strlen(in), &out, &len, &errmsg), APR_SUCCESS);
    assert_int_equal(len, strlen(expect_out));
    assert_memory_equal(out, expect_out, len);
}

/* The challenge must be refused; returns the error message. */
static const char *step_fails(xb_sasl_t *s, const char *in)
{
    const char *errmsg = NULL, *out = "x";
    apr_size_t len = 1;

    assert_int_not_equal(xb_sasl_challenge(s, in, strlen(in), &out, &len, &errmsg), APR_SUCCESS);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_non_null(errmsg);
    return errmsg;
}

/* -- RFC vectors ------------------------------------------------------------------------- */

static void test_rfc5802_sha1(void **state)
{
    const char *errmsg = NULL;
    xb_sasl_t *s;

    (void)state;
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    assert_string_equal(xb_sasl_mechanism(s), "SCRAM-SHA-1");
    step(s, SHA1_SERVER_FIRST, SHA1_CLIENT_FINAL);
    assert_int_equal(xb_sasl_success(s, SHA1_SERVER_FINAL, strlen(SHA1_SERVER_FINAL), &errmsg),
                     APR_SUCCESS);
}

static void test_rfc7677_sha256(void **state)
{
    const char *errmsg = NULL;
    xb_sasl_t *s;

    (void)state;
    s = scram_started(XB_SASL_SCRAM_SHA_256, SHA256_NONCE, SHA256_CLIENT_FIRST);
    step(s, SHA256_SERVER_FIRST, SHA256_CLIENT_FINAL);
    assert_int_equal(xb_sasl_success(s, SHA256_SERVER_FINAL, strlen(SHA256_SERVER_FINAL),
                                     &errmsg), APR_SUCCESS);
}

/* Servers that send the server-final-message as a challenge, then an empty <success/>. */
static void test_server_final_as_challenge(void **state)
{
    const char *errmsg = NULL;
    xb_sasl_t *s;

    (void)state;
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step(s, SHA1_SERVER_FIRST, SHA1_CLIENT_FINAL);
    step(s, SHA1_SERVER_FINAL, "");
    assert_int_equal(xb_sasl_success(s, "", 0, &errmsg), APR_SUCCESS);
}

/* Extensions after the mandatory attributes are ignored (RFC 5802 §5.1). */
static void test_server_first_extension_ignored(void **state)
{
    const char *errmsg = NULL;
    xb_sasl_t *s;

    (void)state;
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    /* The extension changes AuthMessage, so the proof differs: only check it is accepted. */
    {
        const char *in = SHA1_SERVER_FIRST ",x=future", *out;
        apr_size_t len;
        assert_int_equal(xb_sasl_challenge(s, in, strlen(in), &out, &len, &errmsg), APR_SUCCESS);
        assert_true(len > 0);
        assert_memory_equal(out, "c=biws,r=" SHA1_NONCE, strlen("c=biws,r=" SHA1_NONCE));
    }
}

/* -- what must be refused ------------------------------------------------------------------ */

static void test_bad_server_signature(void **state)
{
    const char *errmsg = NULL;
    /* Canonical base64 of the right length, one bit off: only the comparison can refuse it. */
    const char *forged = "v=smF9pqV8S7suAoZWja4dJRkFsKQ=";
    xb_sasl_t *s;

    (void)state;
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step(s, SHA1_SERVER_FIRST, SHA1_CLIENT_FINAL);
    assert_int_not_equal(xb_sasl_success(s, forged, strlen(forged), &errmsg), APR_SUCCESS);
    assert_string_equal(errmsg, "SCRAM server signature does not verify");

    /* Right signature, wrong length (a SHA-1 signature for a SHA-256 exchange). */
    s = scram_started(XB_SASL_SCRAM_SHA_256, SHA256_NONCE, SHA256_CLIENT_FIRST);
    step(s, SHA256_SERVER_FIRST, SHA256_CLIENT_FINAL);
    assert_int_not_equal(xb_sasl_success(s, SHA1_SERVER_FINAL, strlen(SHA1_SERVER_FINAL),
                                         &errmsg), APR_SUCCESS);

    /* As a challenge, too. */
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step(s, SHA1_SERVER_FIRST, SHA1_CLIENT_FINAL);
    step_fails(s, forged);
    /* ...and the exchange stays failed: a later success changes nothing. */
    assert_int_not_equal(xb_sasl_success(s, SHA1_SERVER_FINAL, strlen(SHA1_SERVER_FINAL),
                                         &errmsg), APR_SUCCESS);
}

/* Success without (or before) the server's proof is what an impostor would send. */
static void test_success_without_proof(void **state)
{
    const char *errmsg = NULL;
    xb_sasl_t *s;

    (void)state;
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    assert_int_not_equal(xb_sasl_success(s, "", 0, &errmsg), APR_SUCCESS);

    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step(s, SHA1_SERVER_FIRST, SHA1_CLIENT_FINAL);
    assert_int_not_equal(xb_sasl_success(s, "", 0, &errmsg), APR_SUCCESS);
    assert_string_equal(errmsg, "SCRAM success without the server signature");
}

static void test_iteration_count_bounds(void **state)
{
    xb_sasl_t *s;

    (void)state;
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    assert_string_equal(
        step_fails(s, "r=" SHA1_NONCE "3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4095"),
        "SCRAM iteration count missing or out of bounds");
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step_fails(s, "r=" SHA1_NONCE "3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=1");
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step_fails(s, "r=" SHA1_NONCE "3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=1000001");
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step_fails(s, "r=" SHA1_NONCE "3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=99999999999999999999");
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step_fails(s, "r=" SHA1_NONCE "3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=-4096");
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step_fails(s, "r=" SHA1_NONCE "3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=");
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step_fails(s, "r=" SHA1_NONCE "3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92");
}

static void test_server_nonce_must_extend_ours(void **state)
{
    xb_sasl_t *s;

    (void)state;
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    assert_string_equal(
        step_fails(s, "r=Xyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"),
        "SCRAM server nonce does not extend the client nonce");
    /* Ours alone: the server added nothing. */
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step_fails(s, "r=" SHA1_NONCE ",s=QSXCR+Q6sek8bf92,i=4096");
    /* A prefix of ours. */
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step_fails(s, "r=fyko+d2lbb,s=QSXCR+Q6sek8bf92,i=4096");
}

static void test_malformed_server_first(void **state)
{
    static const char *const bad[] = {
        "",
        "s=QSXCR+Q6sek8bf92,r=" SHA1_NONCE "abc,i=4096",         /* order */
        "r=" SHA1_NONCE "abc,s=,i=4096",                          /* empty salt */
        "r=" SHA1_NONCE "abc,s=QSXCR+Q6sek8bf9,i=4096",           /* salt not base64 */
        "r=" SHA1_NONCE "ab c,s=QSXCR+Q6sek8bf92,i=4096",         /* nonce not printable */
        "m=ext,r=" SHA1_NONCE "abc,s=QSXCR+Q6sek8bf92,i=4096",    /* mandatory extension */
        "e=other-error",
    };
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        xb_sasl_t *s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
        step_fails(s, bad[i]);
    }
    {
        /* Embedded NUL. */
        const char msg[] = "r=" SHA1_NONCE "a\0b,s=QSXCR+Q6sek8bf92,i=4096";
        const char *errmsg, *out;
        apr_size_t len;
        xb_sasl_t *s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
        assert_int_not_equal(xb_sasl_challenge(s, msg, sizeof(msg) - 1, &out, &len, &errmsg),
                             APR_SUCCESS);
    }
}

static void test_server_error_in_final(void **state)
{
    const char *errmsg = NULL;
    const char *final = "e=invalid-proof";
    xb_sasl_t *s;

    (void)state;
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step(s, SHA1_SERVER_FIRST, SHA1_CLIENT_FINAL);
    assert_int_not_equal(xb_sasl_success(s, final, strlen(final), &errmsg), APR_SUCCESS);
    assert_string_equal(errmsg, "SCRAM server error: invalid-proof");

    /* A hostile value is cut and masked before it can reach a log line. */
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step(s, SHA1_SERVER_FIRST, SHA1_CLIENT_FINAL);
    final = "e=A\"<x>\x1b[31m-very-long-value-that-goes-on-and-on-and-on-and-on-forever";
    assert_int_not_equal(xb_sasl_success(s, final, strlen(final), &errmsg), APR_SUCCESS);
    assert_string_equal(errmsg,
                        "SCRAM server error: ???x???31m-very-long-value-that-goes-on-and-on-");
}

static void test_third_challenge_refused(void **state)
{
    xb_sasl_t *s;

    (void)state;
    s = scram_started(XB_SASL_SCRAM_SHA_1, SHA1_NONCE, SHA1_CLIENT_FIRST);
    step(s, SHA1_SERVER_FIRST, SHA1_CLIENT_FINAL);
    step(s, SHA1_SERVER_FINAL, "");
    step_fails(s, SHA1_SERVER_FINAL);
}

/* -- names and nonces ---------------------------------------------------------------------- */

static void test_saslname_escaping(void **state)
{
    const char *errmsg = NULL, *out;
    apr_size_t len;
    xb_sasl_t *s = xb_sasl_create(pool, XB_SASL_SCRAM_SHA_1, "a,b=c", "pw", &errmsg);

    (void)state;
    assert_non_null(s);
    xb_sasl_set_nonce_for_test(s, "abc");
    assert_int_equal(xb_sasl_initial(s, &out, &len, &errmsg), APR_SUCCESS);
    assert_int_equal(len, strlen("n,,n=a=2Cb=3Dc,r=abc"));
    assert_memory_equal(out, "n,,n=a=2Cb=3Dc,r=abc", len);
}

static void test_random_nonce(void **state)
{
    const char *errmsg = NULL, *out1, *out2;
    char first[128];
    apr_size_t len1, len2, i;
    xb_sasl_t *a = xb_sasl_create(pool, XB_SASL_SCRAM_SHA_256, "user", "pw", &errmsg);
    xb_sasl_t *b = xb_sasl_create(pool, XB_SASL_SCRAM_SHA_256, "user", "pw", &errmsg);

    (void)state;
    assert_int_equal(xb_sasl_initial(a, &out1, &len1, &errmsg), APR_SUCCESS);
    assert_true(len1 < sizeof(first));
    memcpy(first, out1, len1);
    assert_int_equal(xb_sasl_initial(b, &out2, &len2, &errmsg), APR_SUCCESS);
    /* "n,,n=user,r=" + 24 base64 characters of 18 random bytes */
    assert_int_equal(len1, 12 + 24);
    assert_int_equal(len2, 12 + 24);
    assert_memory_equal(first, "n,,n=user,r=", 12);
    assert_memory_not_equal(first + 12, out2 + 12, 24);
    for (i = 12; i < len1; i++) {
        assert_true(first[i] != ',' && first[i] > 0x20 && first[i] < 0x7f);
    }
}

/* -- PLAIN --------------------------------------------------------------------------------- */

static void test_plain(void **state)
{
    const char *errmsg = NULL, *out;
    apr_size_t len;
    char *b64;
    xb_sasl_t *s = xb_sasl_create(pool, XB_SASL_PLAIN, "juliet", "r0m30myr0m30", &errmsg);

    (void)state;
    assert_non_null(s);
    assert_int_equal(xb_sasl_initial(s, &out, &len, &errmsg), APR_SUCCESS);
    assert_int_equal(len, 1 + 6 + 1 + 12);
    assert_memory_equal(out, "\0juliet\0r0m30myr0m30", len);
    /* RFC 6120 §6.4.2 example payload */
    b64 = xb_sasl_base64_encode(pool, out, len, NULL);
    assert_string_equal(b64, "AGp1bGlldAByMG0zMG15cjBtMzA=");
    assert_int_equal(xb_sasl_success(s, "", 0, &errmsg), APR_SUCCESS);
}

static void test_plain_rejects_challenge(void **state)
{
    const char *errmsg = NULL, *out;
    apr_size_t len;
    xb_sasl_t *s = xb_sasl_create(pool, XB_SASL_PLAIN, "u", "p", &errmsg);

    (void)state;
    assert_int_equal(xb_sasl_initial(s, &out, &len, &errmsg), APR_SUCCESS);
    step_fails(s, "anything");
}

/* The password leaves memory once used: the PLAIN message is wiped on success, the SCRAM
 * state on success and on failure. */
static void test_secrets_wiped(void **state)
{
    const char *errmsg = NULL, *out;
    apr_size_t len, i;
    xb_sasl_t *s = xb_sasl_create(pool, XB_SASL_PLAIN, "juliet", "r0m30myr0m30", &errmsg);

    (void)state;
    assert_int_equal(xb_sasl_initial(s, &out, &len, &errmsg), APR_SUCCESS);
    assert_int_equal(xb_sasl_success(s, "", 0, &errmsg), APR_SUCCESS);
    for (i = 0; i < len; i++) {
        assert_int_equal(out[i], 0);
    }

    s = xb_sasl_create(pool, XB_SASL_PLAIN, "juliet", "r0m30myr0m30", &errmsg);
    assert_int_equal(xb_sasl_initial(s, &out, &len, &errmsg), APR_SUCCESS);
    step_fails(s, "x");
    for (i = 0; i < len; i++) {
        assert_int_equal(out[i], 0);
    }
}

/* The pool cleanup wipes what is still there. */
static void test_cleanup_wipes(void **state)
{
    const char *errmsg = NULL, *out;
    apr_size_t len, i;
    apr_pool_t *sub;
    xb_sasl_t *s;
    char *copy;

    (void)state;
    apr_pool_create(&sub, pool);
    s = xb_sasl_create(sub, XB_SASL_PLAIN, "juliet", "r0m30myr0m30", &errmsg);
    assert_int_equal(xb_sasl_initial(s, &out, &len, &errmsg), APR_SUCCESS);
    /* apr_pool_clear keeps the memory (no use-after-free to read it), runs the cleanups. */
    copy = (char *)out;
    apr_pool_clear(sub);
    for (i = 0; i < len; i++) {
        assert_int_equal(copy[i], 0);
    }
    apr_pool_destroy(sub);
}

static void test_create_errors(void **state)
{
    const char *errmsg = NULL;

    (void)state;
    assert_null(xb_sasl_create(pool, "DIGEST-MD5", "u", "p", &errmsg));
    assert_non_null(errmsg);
    assert_null(xb_sasl_create(pool, "SCRAM-SHA-1-PLUS", "u", "p", &errmsg));
    assert_null(xb_sasl_create(pool, XB_SASL_PLAIN, "", "p", &errmsg));
    assert_null(xb_sasl_create(pool, XB_SASL_PLAIN, "u", "", &errmsg));
    assert_null(xb_sasl_create(pool, XB_SASL_PLAIN, "u", NULL, &errmsg));
}

static apr_array_header_t *mechs(const char *first, ...)
{
    apr_array_header_t *a = apr_array_make(pool, 4, sizeof(const char *));
    const char *m;
    va_list ap;

    va_start(ap, first);
    for (m = first; m; m = va_arg(ap, const char *)) {
        APR_ARRAY_PUSH(a, const char *) = m;
    }
    va_end(ap);
    return a;
}

static void test_choose(void **state)
{
    apr_array_header_t *all = mechs("PLAIN", "SCRAM-SHA-1", "X-OAUTH2", "SCRAM-SHA-256",
                                    "SCRAM-SHA-256-PLUS", NULL);

    (void)state;
    assert_string_equal(xb_sasl_choose(all, 1, 1), "SCRAM-SHA-256");
    assert_string_equal(xb_sasl_choose(all, 0, 1), "PLAIN");
    assert_string_equal(xb_sasl_choose(all, 1, 0), "SCRAM-SHA-256");
    assert_null(xb_sasl_choose(all, 0, 0));
    assert_string_equal(xb_sasl_choose(mechs("SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN", NULL),
                                       1, 1), "SCRAM-SHA-1");
    assert_string_equal(xb_sasl_choose(mechs("PLAIN", NULL), 1, 1), "PLAIN");
    assert_null(xb_sasl_choose(mechs("PLAIN", NULL), 1, 0));
    assert_null(xb_sasl_choose(mechs("SCRAM-SHA-1", NULL), 0, 1));
    assert_null(xb_sasl_choose(mechs("X-OAUTH2", "scram-sha-1", NULL), 1, 1));
    assert_null(xb_sasl_choose(mechs(NULL), 1, 1));
    assert_null(xb_sasl_choose(NULL, 1, 1));
}

static void test_base64(void **state)
{
    static const char *const bad[] = {
        "Zm9", "Zm9v YmFy", "Zm9v\nYmFy", "Zm=v", "Z===", "Zm9vY===", "Zh==", "Zm9=",
        "Zm9vY*Fy", "====",
    };
    apr_size_t len, i;
    char *d;

    (void)state;
    assert_string_equal(xb_sasl_base64_encode(pool, "", 0, &len), "");
    assert_int_equal(len, 0);
    assert_string_equal(xb_sasl_base64_encode(pool, "f", 1, NULL), "Zg==");
    assert_string_equal(xb_sasl_base64_encode(pool, "fo", 2, NULL), "Zm8=");
    assert_string_equal(xb_sasl_base64_encode(pool, "foobar", 6, NULL), "Zm9vYmFy");
    d = xb_sasl_base64_decode(pool, "Zm9vYg==", 8, &len);
    assert_non_null(d);
    assert_int_equal(len, 4);
    assert_string_equal(d, "foob");
    d = xb_sasl_base64_decode(pool, "Zm9vYmE=", 8, &len);
    assert_int_equal(len, 5);
    assert_string_equal(d, "fooba");
    d = xb_sasl_base64_decode(pool, "", 0, &len);
    assert_non_null(d);
    assert_int_equal(len, 0);
    d = xb_sasl_base64_decode(pool, "AP8A", 4, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(d, "\0\377\0", 3);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(xb_sasl_base64_decode(pool, bad[i], strlen(bad[i]), &len));
    }
}

int main(void)
{
    int rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rfc5802_sha1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rfc7677_sha256, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_final_as_challenge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_first_extension_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_server_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_success_without_proof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iteration_count_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_nonce_must_extend_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_server_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_error_in_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_third_challenge_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_saslname_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_nonce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_rejects_challenge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_wiped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup_wipes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_choose, setup, teardown),
        cmocka_unit_test_setup_teardown(test_base64, setup, teardown),
    };

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
