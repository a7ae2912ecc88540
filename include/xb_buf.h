/* A growable byte buffer for data whose size follows the traffic (socket output, stream bytes
 * being framed, frames being read).
 *
 * malloc-backed on purpose: no pool lifetime fits memory that grows and shrinks for as long as
 * a connection lives, and a pool would only ever grow. Bytes [start, len) are live; consumed
 * bytes are reclaimed before the buffer grows, and an emptied buffer gives back a large
 * allocation so one burst does not pin memory for the rest of the session.
 */
#ifndef XB_BUF_H
#define XB_BUF_H

#include <apr.h>

typedef struct xb_buf {
    char *data;
    apr_size_t start; /* first live byte */
    apr_size_t len;   /* one past the last live byte */
    apr_size_t cap;
} xb_buf_t;

/* Room for `extra` more bytes after `len`. 0 when memory ran out. */
int xb_buf_reserve(xb_buf_t *b, apr_size_t extra);
int xb_buf_append(xb_buf_t *b, const char *data, apr_size_t len);
int xb_buf_append_str(xb_buf_t *b, const char *s);
/* `n` live bytes are done with; once empty, an allocation over `keep` bytes is released. */
void xb_buf_consume(xb_buf_t *b, apr_size_t n, apr_size_t keep);
/* Releases the allocation of an empty buffer larger than `keep` bytes. */
void xb_buf_trim(xb_buf_t *b, apr_size_t keep);
void xb_buf_free(xb_buf_t *b);

#endif
