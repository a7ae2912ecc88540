/* Strict base64 and base64url; see xb_base64.h. */
#include "xb_base64.h"

static const char std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int xb_base64_value(unsigned char c, xb_base64_variant_t v)
{
    int url = v != XB_BASE64_PADDED;

    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == (url ? '-' : '+')) {
        return 62;
    }
    if (c == (url ? '_' : '/')) {
        return 63;
    }
    return -1;
}

char *xb_base64_encode(apr_pool_t *p, const void *data, apr_size_t len, xb_base64_variant_t v,
                       apr_size_t *out_len)
{
    const unsigned char *in = data;
    const char *alphabet = v == XB_BASE64_PADDED ? std_alphabet : url_alphabet;
    int pad = v == XB_BASE64_PADDED;
    char *out = apr_palloc(p, (len + 2) / 3 * 4 + 1), *o = out;
    apr_size_t i, rest;
    unsigned bits;

    for (i = 0; i < len; i += 3) {
        rest = len - i;
        bits = (unsigned)in[i] << 16 | (rest > 1 ? (unsigned)in[i + 1] << 8 : 0u)
               | (rest > 2 ? (unsigned)in[i + 2] : 0u);
        *o++ = alphabet[(bits >> 18) & 63];
        *o++ = alphabet[(bits >> 12) & 63];
        if (rest > 1) {
            *o++ = alphabet[(bits >> 6) & 63];
        }
        else if (pad) {
            *o++ = '=';
        }
        if (rest > 2) {
            *o++ = alphabet[bits & 63];
        }
        else if (pad) {
            *o++ = '=';
        }
    }
    *o = '\0';
    if (out_len) {
        *out_len = (apr_size_t)(o - out);
    }
    return out;
}

int xb_base64_decode(const char *in, apr_size_t len, xb_base64_variant_t v, unsigned char *out,
                     apr_size_t *out_len)
{
    apr_size_t i, o = 0, pad = 0;
    unsigned acc = 0;
    int val, bits = 0;

    while (v != XB_BASE64URL && len > 0 && in[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    /* Padding, where there is any (always in XB_BASE64_PADDED), completes the last quantum. */
    if ((pad || v == XB_BASE64_PADDED) && (len + pad) % 4 != 0) {
        return -1;
    }
    if (len % 4 == 1) {
        return -1; /* 6 bits: not even one byte */
    }
    for (i = 0; i < len; i++) {
        val = xb_base64_value((unsigned char)in[i], v);
        if (val < 0) {
            return -1;
        }
        acc = (acc << 6) | (unsigned)val;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        return -1; /* non-zero unused bits */
    }
    *out_len = o;
    return 0;
}
