/* Unit tests for HS256 JWT minting and verification (src/xb_jwt.c).
 *
 * Build and run:
 *   gcc -std=gnu99 -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Werror -g \
 *       -Iinclude $(pkg-config --cflags apr-1 openssl) test/unit/test_jwt.c src/xb_jwt.c \
 *       src/xb_log.c $(pkg-config --libs apr-1 openssl cmocka) -o /tmp/test_jwt && /tmp/test_jwt
 *
 * Known answers come from RFC 7515 Appendix A.1 and from tokens computed independently with
 * Python's hmac/base64 modules. Tokens with unusual headers or claims are signed here with
 * OpenSSL directly, so the verifier's JSON checks are reached with a valid signature.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "xb_jwt.h"

#define SECRET32 "0123456789abcdef0123456789abcdef"
#define T0 APR_INT64_C(1700000000)

#include "unit_helpers.h"

static char tmpdir[64];

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static xb_jwt_key_t *key_from(const char *text)
{
    xb_jwt_key_t *key = NULL;
    const char *err = NULL;

    assert_int_equal(xb_jwt_key_parse(pool, text, strlen(text), &key, &err), APR_SUCCESS);
    assert_non_null(key);
    assert_null(err);
    return key;
}

static char *b64url(const unsigned char *in, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = apr_palloc(pool, len * 4 / 3 + 4);
    size_t i, o = 0;
    unsigned v;

    for (i = 0; i < len; i += 3) {
        v = (unsigned)in[i] << 16;
        if (i + 1 < len) {
            v |= (unsigned)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        if (i + 1 < len) {
            out[o++] = abc[(v >> 6) & 63];
        }
        if (i + 2 < len) {
            out[o++] = abc[v & 63];
        }
    }
    out[o] = '\0';
    return out;
}

/* A token with any header and claims, signed with `secret`. */
static char *sign_raw(const char *secret, const char *header, const char *claims)
{
    unsigned char mac[32];
    unsigned int mac_len = 0;
    char *input = apr_pstrcat(pool, b64url((const unsigned char *)header, strlen(header)), ".",
                              b64url((const unsigned char *)claims, strlen(claims)), NULL);

    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret),
                         (const unsigned char *)input, strlen(input), mac, &mac_len));
    assert_int_equal(mac_len, 32);
    return apr_pstrcat(pool, input, ".", b64url(mac, mac_len), NULL);
}

#define HS256_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* Verifies `token` at T0 with SECRET32 and returns the error (NULL when it verified). */
static const char *verify_err(const char *token)
{
    const char *jid = NULL, *err = NULL;
    int ok = xb_jwt_verify(pool, key_from(SECRET32), token, apr_time_from_sec(T0), &jid, &err);

    if (ok) {
        assert_non_null(jid);
        assert_null(err);
        return NULL;
    }
    assert_null(jid);
    assert_non_null(err);
    return err;
}

static const char *write_file(const char *name, const char *data, size_t len, mode_t mode)
{
    const char *path = apr_pstrcat(pool, tmpdir, "/", name, NULL);
    FILE *f;

    unlink(path);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

/* ------------------------------------------------------------------------------------------ */
/* Known answers */

/* RFC 7515 Appendix A.1: the JWK, the token and its HMAC. Our verifier checks the signature
 * first, then the header, then the claims; the A.1 claims have no "jid", so a verifier that
 * accepted the signature and the exp gets exactly as far as the jid check. */
#define A1_JWK "{\"kty\":\"oct\",\n \"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH" \
               "75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"\n}"
#define A1_INPUT "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MT" \
                 "kzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
#define A1_SIG "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

static void test_rfc7515_a1(void **state)
{
    xb_jwt_key_t *key = key_from(A1_JWK);
    const char *jid, *err;
    char *bad;

    (void)state;
    assert_int_equal(xb_jwt_key_length(key), 64);
    /* Before exp (1300819380): signature, header and exp accepted; no jid claim. */
    assert_int_equal(xb_jwt_verify(pool, key, A1_INPUT "." A1_SIG,
                                   apr_time_from_sec(1300819379), &jid, &err), 0);
    assert_string_equal(err, "token has no jid claim");
    /* At exp: expired. */
    assert_int_equal(xb_jwt_verify(pool, key, A1_INPUT "." A1_SIG,
                                   apr_time_from_sec(1300819380), &jid, &err), 0);
    assert_string_equal(err, "token has expired");
    /* One signature character changed. */
    bad = apr_pstrdup(pool, A1_INPUT "." A1_SIG);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'X' ? 'Y' : 'X';
    assert_int_equal(xb_jwt_verify(pool, key, bad, apr_time_from_sec(1300819379), &jid, &err),
                     0);
    assert_string_equal(err, "token signature does not match");
}

/* Tokens computed with Python (hmac, hashlib, base64) from the same key, jid and times. */
static void test_mint_known_answer(void **state)
{
    xb_jwt_key_t *key = key_from(SECRET32);

    (void)state;
    assert_string_equal(
        xb_jwt_mint(pool, key, "alice@example.org", apr_time_from_sec(T0) + 999999, 60),
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJqaWQiOiJhbGljZUBleGFtcGxlLm9yZyIsImlhdCI6MTcwMDA"
        "wMDAwMCwiZXhwIjoxNzAwMDAwMDYwfQ.8kYMePUAdA7y2Ie8XowB7apwhK87vl_VTJlPE_EYkro");
    /* The backslash of an XEP-0106 escape is JSON-escaped. */
    assert_string_equal(
        xb_jwt_mint(pool, key, "john\\20doe@example.org", apr_time_from_sec(T0), 60),
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJqaWQiOiJqb2huXFwyMGRvZUBleGFtcGxlLm9yZyIsImlhdC"
        "I6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAwMDYwfQ.tMM_yJGQKYnE5DAFkrBS3M7WJiIYN58RwugBm7m1u60");
}

/* ------------------------------------------------------------------------------------------ */
/* Round trips and refusals */

static void test_round_trip(void **state)
{
    static const char *const jids[] = {
        "alice@example.org", "john\\20doe@example.org", "d\\27artagnan@musketeers.lit",
        "j\xc3\xb6rg@example.org", "q\"uote@example.org", "tab\there@example.org",
    };
    xb_jwt_key_t *key = key_from(SECRET32);
    const char *jid, *err;
    char *token;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(jids) / sizeof(jids[0]); i++) {
        token = xb_jwt_mint(pool, key, jids[i], apr_time_from_sec(T0), 30);
        assert_non_null(token);
        assert_null(strchr(token, '='));
        assert_int_equal(xb_jwt_verify(pool, key, token, apr_time_from_sec(T0), &jid, &err), 1);
        assert_string_equal(jid, jids[i]);
        /* Valid until the last microsecond before exp, expired from exp on. */
        assert_int_equal(xb_jwt_verify(pool, key, token, apr_time_from_sec(T0 + 30) - 1, &jid,
                                       &err), 1);
        assert_int_equal(xb_jwt_verify(pool, key, token, apr_time_from_sec(T0 + 30), &jid, &err),
                         0);
        assert_string_equal(err, "token has expired");
        assert_null(jid);
    }
}

static void test_mint_refuses(void **state)
{
    xb_jwt_key_t *key = key_from(SECRET32);

    (void)state;
    assert_null(xb_jwt_mint(pool, key, NULL, apr_time_from_sec(T0), 30));
    assert_null(xb_jwt_mint(pool, key, "", apr_time_from_sec(T0), 30));
    assert_null(xb_jwt_mint(pool, key, "bad\xff@example.org", apr_time_from_sec(T0), 30));
    assert_null(xb_jwt_mint(pool, key, "bad\xc0\xae@example.org", apr_time_from_sec(T0), 30));
    assert_null(xb_jwt_mint(pool, NULL, "a@b", apr_time_from_sec(T0), 30));
}

static void test_wrong_key(void **state)
{
    xb_jwt_key_t *k1 = key_from(SECRET32);
    xb_jwt_key_t *k2 = key_from("0123456789abcdef0123456789abcdeF");
    const char *jid, *err;
    char *token = xb_jwt_mint(pool, k1, "alice@example.org", apr_time_from_sec(T0), 30);

    (void)state;
    assert_int_equal(xb_jwt_verify(pool, k2, token, apr_time_from_sec(T0), &jid, &err), 0);
    assert_string_equal(err, "token signature does not match");
}

static void test_tampered(void **state)
{
    xb_jwt_key_t *key = key_from(SECRET32);
    char *token = xb_jwt_mint(pool, key, "alice@example.org", apr_time_from_sec(T0), 30);
    char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
    const char *admin_claims = "{\"jid\":\"admin@example.org\",\"exp\":1700000030}";
    const char *forged;
    char *t;
    size_t i, len = strlen(token);

    (void)state;
    /* Every single-character change anywhere is refused. */
    for (i = 0; i < len; i++) {
        t = apr_pstrdup(pool, token);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        assert_non_null(verify_err(t));
    }
    /* Claims swapped for another user's, signature kept. */
    forged = apr_pstrcat(pool, apr_pstrmemdup(pool, token, (apr_size_t)(dot1 - token + 1)),
                         b64url((const unsigned char *)admin_claims, strlen(admin_claims)),
                         dot2, NULL);
    assert_string_equal(verify_err(forged), "token signature does not match");
    /* alg "none" with the signature dropped, or empty. */
    forged = apr_pstrcat(pool, b64url((const unsigned char *)"{\"alg\":\"none\"}", 14), ".",
                         apr_pstrmemdup(pool, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1)), ".",
                         NULL);
    assert_non_null(verify_err(forged));
    assert_non_null(verify_err(apr_pstrmemdup(pool, token, (apr_size_t)(dot2 - token))));
    /* Truncated, extended, padded, extra part, junk. */
    assert_non_null(verify_err(apr_pstrmemdup(pool, token, len - 1)));
    assert_non_null(verify_err(apr_pstrcat(pool, token, "A", NULL)));
    assert_non_null(verify_err(apr_pstrcat(pool, token, "=", NULL)));
    assert_non_null(verify_err(apr_pstrcat(pool, token, ".", NULL)));
    assert_non_null(verify_err(apr_pstrcat(pool, token, ".AAAA", NULL)));
    assert_non_null(verify_err(apr_pstrcat(pool, " ", token, NULL)));
    assert_non_null(verify_err(""));
    assert_non_null(verify_err("..."));
    assert_non_null(verify_err("a.b.c"));
    assert_non_null(verify_err(".."));
    /* The signature's last character carries 2 unused bits: a non-canonical encoding of the
     * same MAC is refused too ('k' and 'l' differ only in the lowest bit). */
    t = apr_pstrdup(pool, token);
    t[len - 1] = (char)(t[len - 1] ^ 1);
    assert_non_null(verify_err(t));
    assert_null(verify_err(token));
}

static void test_overlong_token(void **state)
{
    char *big = apr_palloc(pool, XB_JWT_TOKEN_MAX + 2);

    (void)state;
    memset(big, 'A', XB_JWT_TOKEN_MAX + 1);
    big[XB_JWT_TOKEN_MAX + 1] = '\0';
    assert_string_equal(verify_err(big), "token too long");
}

/* Correctly signed tokens whose header or claims must be refused (or accepted). */
static void test_signed_header_and_claims(void **state)
{
    const char *c_ok = "{\"jid\":\"a@b\",\"exp\":1700000030}";

    (void)state;
    assert_null(verify_err(sign_raw(SECRET32, HS256_HEADER, c_ok)));
    assert_null(verify_err(sign_raw(SECRET32, "{\"alg\":\"HS256\"}", c_ok)));
    assert_null(verify_err(sign_raw(SECRET32, "{\"typ\":\"jwt\",\"alg\":\"HS256\"}", c_ok)));
    assert_null(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                    " {\"jid\" : \"a@b\", \"exp\":1700000030, \"iat\":1.5,"
                                    " \"x\":[1,{\"y\":null}]} ")));
    assert_null(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                    "{\"jid\":\"\\u0061\\u00e9@b\",\"exp\":1700000030}")));
    assert_null(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                    "{\"jid\":\"a@b\",\"exp\":1700000030,\"nbf\":1700000000}")));

    assert_string_equal(verify_err(sign_raw(SECRET32, "{\"alg\":\"HS512\"}", c_ok)),
                        "token header alg is not HS256");
    assert_string_equal(verify_err(sign_raw(SECRET32, "{\"alg\":\"none\"}", c_ok)),
                        "token header alg is not HS256");
    assert_string_equal(verify_err(sign_raw(SECRET32, "{\"alg\":\"hs256\"}", c_ok)),
                        "token header alg is not HS256");
    assert_string_equal(verify_err(sign_raw(SECRET32, "{}", c_ok)),
                        "token header alg is not HS256");
    assert_string_equal(verify_err(sign_raw(SECRET32, "{\"alg\":\"HS256\",\"typ\":\"JOSE\"}",
                                            c_ok)), "token header typ is not JWT");
    assert_contains(verify_err(sign_raw(SECRET32,
                                        "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", c_ok)),
                    "crit");
    assert_contains(verify_err(sign_raw(SECRET32, "[\"HS256\"]", c_ok)), "not a JSON object");
    assert_contains(verify_err(sign_raw(SECRET32, "{\"alg\":\"HS256\",\"alg\":\"none\"}", c_ok)),
                    "duplicate member name");

    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER, "{\"jid\":\"a@b\"}")),
                        "token has no integer exp claim");
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"jid\":\"a@b\",\"exp\":\"1700000030\"}")),
                        "token has no integer exp claim");
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"jid\":\"a@b\",\"exp\":1700000030.5}")),
                        "token has no integer exp claim");
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"jid\":\"a@b\",\"exp\":1e10}")),
                        "token has no integer exp claim");
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"jid\":\"a@b\",\"exp\":99999999999999999999}")),
                        "token has no integer exp claim");
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"jid\":\"a@b\",\"exp\":-1}")),
                        "token has expired");
    assert_null(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                    "{\"jid\":\"a@b\",\"exp\":9223372036854775807}")));
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"jid\":\"a@b\",\"exp\":1700000000}")),
                        "token has expired");
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"jid\":\"a@b\",\"exp\":1700000030,"
                                            "\"nbf\":1700000001}")),
                        "token is not valid yet (nbf)");
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"exp\":1700000030}")), "token has no jid claim");
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"jid\":42,\"exp\":1700000030}")),
                        "token has no jid claim");
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"jid\":\"\",\"exp\":1700000030}")),
                        "token has no jid claim");
    assert_string_equal(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                            "{\"jid\":\"a\\u0000@b\",\"exp\":1700000030}")),
                        "token has no jid claim");
    assert_contains(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                        "{\"jid\":\"a@b\",\"jid\":\"c@d\",\"exp\":1700000030}")),
                    "duplicate member name");
    assert_contains(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                        "{\"jid\":\"a@b\",\"exp\":1700000030")),
                    "not valid JSON");
    assert_contains(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                        "{\"jid\":\"\\ud800@b\",\"exp\":1700000030}")),
                    "not valid JSON");
    assert_contains(verify_err(sign_raw(SECRET32, HS256_HEADER,
                                        "{\"jid\":\"\xc3@b\",\"exp\":1700000030}")),
                    "not valid JSON");
}

/* ------------------------------------------------------------------------------------------ */
/* Key files */

static void test_key_file_raw(void **state)
{
    xb_jwt_key_t *key;
    const char *err, *path;

    (void)state;
    path = write_file("raw", SECRET32 "\n", 33, 0600);
    assert_int_equal(xb_jwt_key_load(pool, path, &key, &err), APR_SUCCESS);
    assert_int_equal(xb_jwt_key_length(key), 32);
    path = write_file("raw-crlf", SECRET32 "\r\n", 34, 0400);
    assert_int_equal(xb_jwt_key_load(pool, path, &key, &err), APR_SUCCESS);
    assert_int_equal(xb_jwt_key_length(key), 32);
    /* Only one newline is stripped; inner bytes are kept. */
    path = write_file("raw-2nl", SECRET32 "\n\n", 34, 0600);
    assert_int_equal(xb_jwt_key_load(pool, path, &key, &err), APR_SUCCESS);
    assert_int_equal(xb_jwt_key_length(key), 33);
    path = write_file("raw-bin", "\0\1\2\3\4\5\6\7\0\1\2\3\4\5\6\7\0\1\2\3\4\5\6\7\0\1\2\3\4\5\6\7",
                      32, 0700);
    assert_int_equal(xb_jwt_key_load(pool, path, &key, &err), APR_SUCCESS);
    assert_int_equal(xb_jwt_key_length(key), 32);
    /* The same token from the same secret, whichever file form holds it. */
    assert_string_equal(
        xb_jwt_mint(pool, key_from(SECRET32), "a@b", apr_time_from_sec(T0), 5),
        xb_jwt_mint(pool, key_from("{\"kty\":\"oct\",\"k\":"
                                   "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}"),
                    "a@b", apr_time_from_sec(T0), 5));
}

static void test_key_file_refusals(void **state)
{
    static const mode_t loose[] = { 0640, 0604, 0620, 0602, 0610, 0601, 0644, 0666, 0660 };
    xb_jwt_key_t *key;
    const char *err, *path;
    char *big;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
        path = write_file("loose", SECRET32, 32, loose[i]);
        key = (xb_jwt_key_t *)1;
        assert_int_equal(xb_jwt_key_load(pool, path, &key, &err), APR_EACCES);
        assert_null(key);
        assert_contains(err, "accessible by group or others");
        assert_contains(err, apr_psprintf(pool, "mode %04o", (unsigned)loose[i]));
        assert_null(strstr(err, SECRET32));
    }
    path = write_file("short", "0123456789abcdef0123456789abcde\n", 32, 0600);
    assert_int_not_equal(xb_jwt_key_load(pool, path, &key, &err), APR_SUCCESS);
    assert_contains(err, "31-byte secret");
    path = write_file("empty", "", 0, 0600);
    assert_int_not_equal(xb_jwt_key_load(pool, path, &key, &err), APR_SUCCESS);
    path = write_file("jwk-short", "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFi\"}",
                      strlen("{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFi\"}"), 0600);
    assert_int_not_equal(xb_jwt_key_load(pool, path, &key, &err), APR_SUCCESS);
    assert_contains(err, "12-byte secret");
    assert_int_not_equal(xb_jwt_key_load(pool, tmpdir, &key, &err), APR_SUCCESS);
    assert_contains(err, "not a regular file");
    assert_int_not_equal(xb_jwt_key_load(pool, apr_pstrcat(pool, tmpdir, "/nope", NULL), &key,
                                         &err), APR_SUCCESS);
    assert_contains(err, "cannot open");
    assert_int_not_equal(xb_jwt_key_load(pool, NULL, &key, &err), APR_SUCCESS);
    big = apr_palloc(pool, XB_JWT_KEY_FILE_MAX + 10);
    memset(big, 'k', XB_JWT_KEY_FILE_MAX + 10);
    path = write_file("big", big, XB_JWT_KEY_FILE_MAX + 10, 0600);
    assert_int_not_equal(xb_jwt_key_load(pool, path, &key, &err), APR_SUCCESS);
    assert_contains(err, "larger than");
}

static void test_jwk_forms(void **state)
{
    static const char k64[] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";
    xb_jwt_key_t *key;
    const char *err, *path;
    const char *jwk = apr_psprintf(pool, "{\"kty\":\"oct\",\"k\":\"%s\"}", k64);

    (void)state;
    path = write_file("jwk", jwk, strlen(jwk), 0600);
    assert_int_equal(xb_jwt_key_load(pool, path, &key, &err), APR_SUCCESS);
    assert_int_equal(xb_jwt_key_length(key), 32);
    assert_int_equal(xb_jwt_key_length(key_from(apr_psprintf(
                         pool, "\n  {\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"use\":\"sig\","
                         "\"k\":\"%s\"}]}\n", k64))), 32);
    /* Padding tolerated in "k"; \u escapes in names and values decoded. */
    assert_int_equal(xb_jwt_key_length(key_from(apr_psprintf(
                         pool, "{\"kty\":\"oct\",\"k\":\"%s=\"}", k64))), 32);
    assert_int_equal(xb_jwt_key_length(key_from(apr_psprintf(
                         pool, "{\"\\u006bty\":\"o\\u0063t\",\"k\":\"%s\"}", k64))), 32);
}

/* Hostile or broken JWK texts: each must be refused cleanly (valgrind watches the reads). */
static void test_jwk_hostile(void **state)
{
    static const char *const bad[] = {
        "{", "{}", "{\"kty\"", "{\"kty\":", "{\"kty\":\"oct\"", "{\"kty\":\"oct\",",
        "{\"kty\":\"oct\",\"k\":\"", "{\"kty\":\"oct\",\"k\":\"\\", "{\"kty\":\"oct\",\"k\":\"\\u",
        "{\"kty\":\"oct\",\"k\":\"\\u12", "{\"kty\":\"oct\",\"k\":\"\\ud800\"}",
        "{\"kty\":\"oct\",\"k\":\"\\udc00\"}", "{\"kty\":\"oct\",\"k\":\"\\ud800\\u0041\"}",
        "{\"kty\":\"oct\",\"k\":\"\\x41\"}", "{\"kty\":\"oct\",\"k\":\"a\tb\"}",
        "{\"kty\":\"oct\",\"k\":null}", "{\"kty\":\"oct\",\"k\":42}",
        "{\"kty\":\"oct\",\"k\":[\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"]}",
        "{\"kty\":\"RSA\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}",
        "{\"kty\":\"OCT\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}",
        "{\"kty\":\"oct\",\"alg\":\"HS512\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}",
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\",\"k\":\"AAAA\"}",
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}x",
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}}",
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\",}",
        "{\"kty\":\"oct\" \"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}",
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY+\"}",
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY/\"}",
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWZ\"}",
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYA=\"}",
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY===\"}",
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFi=Y2RlZjAxMjM0NTY3ODlhYmNkZWY\"}",
        "{\"kty\":\"oct\",\"k\":\"M\"}", "{\"kty\":\"oct\",\"k\":\"\"}",
        "{\"keys\":[]}", "{\"keys\":{}}", "{\"keys\":[1]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"},"
        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}",
        "{\"a\":tru}", "{\"a\":nul}", "{\"a\":-}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":1e}",
        "{\"a\":.5}", "{\"a\":+1}", "{\"a\":[1,]}", "{\"a\":[,1]}", "{\"a\":\"\xff\"}",
        "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"\xe2\x82\":1}", "{'kty':'oct'}", "{kty:\"oct\"}", "{\"kty\":\"oct\"\x01}",
    };
    static const char nested[] = "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]"
                                 "]]]]]]]]}";
    xb_jwt_key_t *key;
    const char *err;
    char *wide;
    size_t i, o;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        key = (xb_jwt_key_t *)1;
        err = NULL;
        if (xb_jwt_key_parse(pool, bad[i], strlen(bad[i]), &key, &err) == APR_SUCCESS) {
            fail_msg("accepted hostile JWK #%zu: %s", i, bad[i]);
        }
        assert_null(key);
        assert_non_null(err);
    }
    /* Embedded NUL bytes, in and after the object. */
    assert_int_not_equal(xb_jwt_key_parse(pool, "{\"kty\":\"o\0ct\"}", 15, &key, &err),
                         APR_SUCCESS);
    assert_int_not_equal(xb_jwt_key_parse(pool, "{\"kty\":\"oct\"}\0", 14, &key, &err),
                         APR_SUCCESS);
    assert_int_not_equal(xb_jwt_key_parse(pool, nested, strlen(nested), &key, &err),
                         APR_SUCCESS);
    assert_contains(err, "nested too deeply");
    /* Too many values. */
    wide = apr_palloc(pool, 8 * 2000 + 16);
    o = 0;
    wide[o++] = '[';
    for (i = 0; i < 2000; i++) {
        wide[o++] = i ? ',' : ' ';
        wide[o++] = '0';
    }
    wide[o++] = ']';
    assert_int_not_equal(xb_jwt_key_parse(pool, apr_pstrcat(pool, "{\"a\":",
                                                            apr_pstrmemdup(pool, wide, o), "}",
                                                            NULL),
                                          o + 6, &key, &err), APR_SUCCESS);
    assert_contains(err, "too many JSON values");
    /* A key error never quotes the file. */
    assert_int_not_equal(xb_jwt_key_parse(pool, "{\"kty\":\"oct\",\"k\":\"SECRETSECRET\"}", 32,
                                          &key, &err), APR_SUCCESS);
    assert_null(strstr(err, "SECRETSECRET"));
    assert_int_not_equal(xb_jwt_key_parse(pool, NULL, 0, &key, &err), APR_SUCCESS);
}

/* Random mutations of a valid JWK and of a valid token: nothing may crash or read out of
 * bounds (run under valgrind), and a mutated token never verifies. */
static void test_mutations(void **state)
{
    static const char jwk[] = "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":"
                              "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\",\"x\":[1,-2.5e3,"
                              "true,false,null,\"\\u00e9\\ud83d\\ude00\"]}]}";
    static const char bytes[] = "{}[]\":,\\u0aeE-+.tfn \xc3\xa9\xff";
    xb_jwt_key_t *key = key_from(SECRET32), *k;
    char *token = xb_jwt_mint(pool, key, "alice@example.org", apr_time_from_sec(T0), 30);
    size_t tlen = strlen(token), jlen = sizeof(jwk) - 1, len, n;
    const char *err, *jid;
    char buf[512];
    apr_pool_t *sub;
    unsigned seed = 12345;
    int round, edits;

    (void)state;
    for (round = 0; round < 20000; round++) {
        apr_pool_create(&sub, pool);
        memcpy(buf, jwk, jlen);
        len = jlen;
        for (edits = 1 + (int)(rand_r(&seed) % 3); edits > 0 && len > 1; edits--) {
            n = (size_t)rand_r(&seed) % len;
            switch (rand_r(&seed) % 3) {
            case 0:
                buf[n] = bytes[(size_t)rand_r(&seed) % (sizeof(bytes) - 1)];
                break;
            case 1:
                memmove(buf + n, buf + n + 1, len - n - 1);
                len--;
                break;
            default:
                len = n + 1; /* truncate */
                break;
            }
        }
        /* Copy to an exact-size heap block so valgrind catches any read past the end. */
        {
            char *exact = malloc(len);
            assert_non_null(exact);
            memcpy(exact, buf, len);
            k = NULL;
            if (xb_jwt_key_parse(sub, exact, len, &k, &err) == APR_SUCCESS) {
                assert_int_equal(xb_jwt_key_length(k) >= XB_JWT_KEY_MIN_BYTES, 1);
            }
            free(exact);
        }

        memcpy(buf, token, tlen + 1);
        n = (size_t)rand_r(&seed) % tlen;
        buf[n] = bytes[(size_t)rand_r(&seed) % (sizeof(bytes) - 1)];
        if (buf[n] != token[n]) {
            assert_int_equal(xb_jwt_verify(sub, key, buf, apr_time_from_sec(T0), &jid, &err), 0);
        }
        apr_pool_destroy(sub);
    }
}

/* A key's pool cleanup zeroes the secret. The pool's memory is still mapped right after a
 * clear (APR keeps the blocks), so the bytes can be looked at through a saved pointer. */
static void test_key_cleansed(void **state)
{
    apr_pool_t *sub;
    xb_jwt_key_t *key;
    const char *err;
    unsigned char **secret_field, *secret;
    size_t i;
    int all_zero = 1;

    (void)state;
    apr_pool_create(&sub, pool);
    assert_int_equal(xb_jwt_key_parse(sub, SECRET32, 32, &key, &err), APR_SUCCESS);
    /* The key struct starts with the secret pointer (see xb_jwt.c). */
    secret_field = (unsigned char **)(void *)key;
    secret = *secret_field;
    assert_memory_equal(secret, SECRET32, 32);
    apr_pool_clear(sub);
    for (i = 0; i < 32; i++) {
        all_zero &= secret[i] == 0;
    }
    assert_true(all_zero);
    apr_pool_destroy(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rfc7515_a1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mint_known_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mint_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_header_and_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwk_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwk_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mutations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_cleansed, setup, teardown),
    };
    int failed;
    char cmd[96];

    apr_initialize();
    strcpy(tmpdir, "/tmp/xb_test_jwt.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    apr_terminate();
    return failed;
}
