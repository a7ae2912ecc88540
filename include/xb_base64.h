/* Base64 (RFC 4648 §4) and base64url (§5), strict both ways, for SASL (RFC 6120 §6.4.2) and
 * JSON Web Tokens (RFC 7515 §2).
 *
 * Decoding accepts only the variant's alphabet and padding rules, no whitespace, and unused
 * trailing bits must be zero, so that each value has exactly one spelling: a peer that sends
 * another is broken, and accepting several spellings of one value helps nobody.
 */
#ifndef XB_BASE64_H
#define XB_BASE64_H

#include <apr_pools.h>

typedef enum {
    XB_BASE64_PADDED,          /* "+/" alphabet, "=" padding written and required (SASL) */
    XB_BASE64URL,              /* "-_" alphabet, no padding written or accepted (JWS) */
    XB_BASE64URL_OPTIONAL_PAD  /* "-_" alphabet; decoding also accepts "=" padding (a JWK's
                                * "k"); encodes as XB_BASE64URL */
} xb_base64_variant_t;

/* The most bytes xb_base64_decode writes for `len` characters. */
#define XB_BASE64_DECODED_MAX(len) ((len) / 4 * 3 + 3)

/* `len` bytes encoded without line breaks, NUL-terminated, in `p`; *out_len (may be NULL) gets
 * the length. */
char *xb_base64_encode(apr_pool_t *p, const void *data, apr_size_t len, xb_base64_variant_t v,
                       apr_size_t *out_len);

/* Strict decoding into `out` (XB_BASE64_DECODED_MAX(len) bytes; the caller owns it, so that a
 * secret can be cleansed). 0 on success with *out_len set, -1 when `in` is not valid. */
int xb_base64_decode(const char *in, apr_size_t len, xb_base64_variant_t v, unsigned char *out,
                     apr_size_t *out_len);

/* The value (0..63) of `c` in the variant's alphabet, or -1. */
int xb_base64_value(unsigned char c, xb_base64_variant_t v);

#endif
