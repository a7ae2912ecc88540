/* XEP-0124 §15 key sequencing (see xb_bosh_key.h). */
#include <string.h>

#include <apr_lib.h>
#include <openssl/evp.h>

#include "xb_bosh_key.h"

void xb_bosh_key_hash(const char *key, char out[XB_BOSH_KEY_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0, i;

    /* The key is hashed as the client sent it: K(i) is the hash of K(i-1)'s own characters, so
     * a client that spells its keys in upper case hashes upper-case text too. */
    if (!EVP_Digest(key, strlen(key), md, &md_len, EVP_sha1(), NULL) || md_len != 20) {
        /* Cannot happen with a working libcrypto; an all-zero string matches no real key. */
        memset(out, '0', XB_BOSH_KEY_HEX_LEN);
        out[XB_BOSH_KEY_HEX_LEN] = '\0';
        return;
    }
    for (i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[XB_BOSH_KEY_HEX_LEN] = '\0';
}

/* hex(SHA-1(key)) == expected, hex digits of `expected` in either case; constant time. */
static int hash_equals(const char *key, const char *expected)
{
    char got[XB_BOSH_KEY_HEX_LEN + 1];
    unsigned diff = 0, i;

    xb_bosh_key_hash(key, got);
    for (i = 0; i < XB_BOSH_KEY_HEX_LEN; i++) {
        diff |= (unsigned)(got[i] ^ apr_tolower((unsigned char)expected[i]));
    }
    return diff == 0;
}

int xb_bosh_key_matches(const char *key, const char *expected)
{
    char lower[XB_BOSH_KEY_HEX_LEN + 1];
    apr_size_t i, n;
    int as_sent, as_lower;

    if (!key || !expected || strlen(expected) != XB_BOSH_KEY_HEX_LEN) {
        return 0;
    }
    as_sent = hash_equals(key, expected);
    /* A key is a hex value, and hex is case-insensitive (§15: "case-insensitive"): a client
     * that builds its chain in lower case but sends the digits in upper case holds the same
     * keys. A chain built from upper-case text hashes as sent. Both spellings are checked so
     * neither reading of the XEP is refused. */
    n = strlen(key);
    if (n != XB_BOSH_KEY_HEX_LEN) {
        return as_sent;
    }
    for (i = 0; i < n; i++) {
        lower[i] = (char)apr_tolower((unsigned char)key[i]);
    }
    lower[n] = '\0';
    as_lower = hash_equals(lower, expected);
    return as_sent | as_lower;
}
