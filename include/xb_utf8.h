/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), for the
 * parsers that check text themselves (JIDs, the JSON of tokens). */
#ifndef XB_UTF8_H
#define XB_UTF8_H

#include <apr.h>

/* Decodes the well-formed sequence at `s` (`avail` bytes there) into *cp; returns its length,
 * or 0 when it is not one. */
apr_size_t xb_utf8_decode(const unsigned char *s, apr_size_t avail, unsigned *cp);

/* True when all `len` bytes at `s` are well-formed UTF-8. */
int xb_utf8_valid(const char *s, apr_size_t len);

/* Writes code point `cp` (at most U+10FFFF, not a surrogate) as UTF-8 to `out` (4 bytes of
 * room) and returns its length; with `out` NULL only the length. */
apr_size_t xb_utf8_encode(char *out, unsigned cp);

#endif
