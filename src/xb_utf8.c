/* Strict UTF-8; see xb_utf8.h. */
#include "xb_utf8.h"

apr_size_t xb_utf8_decode(const unsigned char *s, apr_size_t avail, unsigned *cp)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    apr_size_t n, i;
    unsigned v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
        if (c == 0xE0) {
            lo = 0xA0;
        }
        else if (c == 0xED) {
            hi = 0x9F; /* U+D800..U+DFFF are surrogates */
        }
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
        if (c == 0xF0) {
            lo = 0x90;
        }
        else if (c == 0xF4) {
            hi = 0x8F;
        }
    }
    else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    v = (v << 6) | (s[1] & 0x3F);
    for (i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return n;
}

int xb_utf8_valid(const char *s, apr_size_t len)
{
    apr_size_t i = 0, n;
    unsigned cp;

    while (i < len) {
        n = xb_utf8_decode((const unsigned char *)s + i, len - i, &cp);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

apr_size_t xb_utf8_encode(char *out, unsigned cp)
{
    if (cp < 0x80) {
        if (out) {
            out[0] = (char)cp;
        }
        return 1;
    }
    if (cp < 0x800) {
        if (out) {
            out[0] = (char)(0xC0 | (cp >> 6));
            out[1] = (char)(0x80 | (cp & 0x3F));
        }
        return 2;
    }
    if (cp < 0x10000) {
        if (out) {
            out[0] = (char)(0xE0 | (cp >> 12));
            out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[2] = (char)(0x80 | (cp & 0x3F));
        }
        return 3;
    }
    if (out) {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
    }
    return 4;
}
