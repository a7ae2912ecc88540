/* libFuzzer harness: JWT / JWK handling (xb_jwt_key_parse, xb_jwt_verify, xb_jwt_mint).
 *
 * Input: byte 0 picks the mode (byte 0 % 4), the rest is its data.
 *   0: key file contents for xb_jwt_key_parse (JWK, JWK Set or raw secret). An accepted key
 *      holds at least XB_JWT_KEY_MIN_BYTES and a token minted with it verifies with it.
 *   1: a token string for xb_jwt_verify with a fixed key (mostly stops at the signature).
 *   2: header and claims JSON ("header\0claims", or just claims under a standard header),
 *      base64url-encoded and signed here with the fixed key, so the fuzzer reaches the JSON
 *      reader behind the signature check. An accepted token has a non-empty jid.
 *   3: a jid for xb_jwt_mint; a minted token verifies and gives back exactly that jid.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <apr_strings.h>

#include "fuzz_common.h"
#include "xb_jwt.h"

/* 2023-11-14T22:13:20Z; exp/nbf in the seeds are around it. */
#define NOW_SEC 1700000000

static const char key_text[] = "fuzz-key-0123456789abcdef0123456789abcdef";
static xb_jwt_key_t *fixed_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *err = NULL;

    (void)argc;
    (void)argv;
    fuzz_setup();
    if (xb_jwt_key_parse(fuzz_root_pool, key_text, sizeof(key_text) - 1, &fixed_key, &err)
        != APR_SUCCESS) {
        fprintf(stderr, "fixed key refused: %s\n", err);
        abort();
    }
    return 0;
}

static char *b64url(apr_pool_t *p, const unsigned char *in, size_t len)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = apr_palloc(p, (len + 2) / 3 * 4 + 1), *o = out;
    size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
        *o++ = a[v >> 6 & 63];
        *o++ = a[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
    }
    else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
        *o++ = a[v >> 6 & 63];
    }
    *o = '\0';
    return out;
}

static void check_verified(int ok, const char *jid, const char *err)
{
    if (ok) {
        FUZZ_CHECK(jid != NULL && *jid != '\0');
        fuzz_touch(jid, strlen(jid));
    }
    else {
        FUZZ_CHECK(jid == NULL && err != NULL);
        fuzz_touch(err, strlen(err));
    }
}

static void mint_and_verify(apr_pool_t *p, const xb_jwt_key_t *key, const char *jid)
{
    const char *got = NULL, *err = NULL;
    char *token = xb_jwt_mint(p, key, jid, apr_time_from_sec(NOW_SEC), 60);
    int ok;

    if (!token) {
        return;
    }
    if (strlen(token) > XB_JWT_TOKEN_MAX) {
        /* Only a jid far beyond 3 x 1023 bytes gets here; verify refuses such tokens. */
        FUZZ_CHECK(!xb_jwt_verify(p, key, token, apr_time_from_sec(NOW_SEC), &got, &err));
        return;
    }
    ok = xb_jwt_verify(p, key, token, apr_time_from_sec(NOW_SEC + 30), &got, &err);
    if (!ok) {
        fprintf(stderr, "minted token refused: %s\n", err);
    }
    FUZZ_CHECK(ok);
    FUZZ_CHECK(!strcmp(got, jid));
    /* ... and no longer once it has expired. */
    got = NULL;
    FUZZ_CHECK(!xb_jwt_verify(p, key, token, apr_time_from_sec(NOW_SEC + 60), &got, &err));
}

static int ascii_nonempty(const char *s)
{
    if (!*s) {
        return 0;
    }
    for (; *s; s++) {
        if ((unsigned char)*s >= 0x80) {
            return 0;
        }
    }
    return 1;
}

static void signed_json(apr_pool_t *p, const uint8_t *data, size_t size)
{
    static const char std_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const uint8_t *nul = memchr(data, '\0', size);
    const unsigned char *hdr = (const unsigned char *)std_header, *claims = data;
    size_t hdr_len = sizeof(std_header) - 1, claims_len = size;
    unsigned char mac[32];
    unsigned mac_len = 0;
    const char *input, *token, *jid = NULL, *err = NULL;
    int ok;

    if (nul) {
        hdr = data;
        hdr_len = (size_t)(nul - data);
        claims = nul + 1;
        claims_len = size - hdr_len - 1;
    }
    input = apr_pstrcat(p, b64url(p, hdr, hdr_len), ".", b64url(p, claims, claims_len), NULL);
    if (!HMAC(EVP_sha256(), key_text, (int)sizeof(key_text) - 1, (const unsigned char *)input,
              strlen(input), mac, &mac_len)) {
        abort();
    }
    token = apr_pstrcat(p, input, ".", b64url(p, mac, mac_len), NULL);
    ok = xb_jwt_verify(p, fixed_key, token, apr_time_from_sec(NOW_SEC), &jid, &err);
    check_verified(ok, jid, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const char *jid = NULL, *err = NULL;
    xb_jwt_key_t *key = NULL;
    int ok;

    if (size < 1 || size > 70000) {
        return 0;
    }
    p = fuzz_pool();
    switch (data[0] % 4) {
    case 0: {
        /* Exactly the bytes, in their own allocation. */
        char *copy = malloc(size - 1 ? size - 1 : 1);
        memcpy(copy, data + 1, size - 1);
        if (xb_jwt_key_parse(p, copy, size - 1, &key, &err) == APR_SUCCESS) {
            FUZZ_CHECK(key && xb_jwt_key_length(key) >= XB_JWT_KEY_MIN_BYTES);
            mint_and_verify(p, key, "juliet@example.org");
        }
        else {
            FUZZ_CHECK(!key && err);
            fuzz_touch(err, strlen(err));
        }
        free(copy);
        break;
    }
    case 1:
        ok = xb_jwt_verify(p, fixed_key, fuzz_strndup(p, data + 1, size - 1),
                           apr_time_from_sec(NOW_SEC), &jid, &err);
        check_verified(ok, jid, err);
        break;
    case 2:
        signed_json(p, data + 1, size - 1);
        break;
    default: {
        const char *s = fuzz_strndup(p, data + 1, size - 1);
        char *token = xb_jwt_mint(p, fixed_key, s, apr_time_from_sec(NOW_SEC), 60);
        if (ascii_nonempty(s)) {
            FUZZ_CHECK(token != NULL);
        }
        if (token) {
            mint_and_verify(p, fixed_key, s);
        }
        break;
    }
    }
    fuzz_pool_done(p);
    return 0;
}
