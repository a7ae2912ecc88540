/* Growable byte buffers; see xb_buf.h. */
#include <stdlib.h>
#include <string.h>
#include "xb_buf.h"

#define XB_BUF_FIRST_ALLOC 1024

int xb_buf_reserve(xb_buf_t *b, apr_size_t extra)
{
    apr_size_t cap;
    char *p;

    if (b->cap - b->len >= extra) {
        return 1;
    }
    if (b->start > 0) {
        /* Reuse the space already consumed before growing. */
        memmove(b->data, b->data + b->start, b->len - b->start);
        b->len -= b->start;
        b->start = 0;
        if (b->cap - b->len >= extra) {
            return 1;
        }
    }
    cap = b->cap ? b->cap : XB_BUF_FIRST_ALLOC;
    while (cap - b->len < extra) {
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (!p) {
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

int xb_buf_append(xb_buf_t *b, const char *data, apr_size_t len)
{
    if (!xb_buf_reserve(b, len)) {
        return 0;
    }
    if (len) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    return 1;
}

int xb_buf_append_str(xb_buf_t *b, const char *s)
{
    return xb_buf_append(b, s, strlen(s));
}

void xb_buf_trim(xb_buf_t *b, apr_size_t keep)
{
    if (b->start == b->len) {
        b->start = b->len = 0;
        if (b->cap > keep) {
            xb_buf_free(b);
        }
    }
}

void xb_buf_consume(xb_buf_t *b, apr_size_t n, apr_size_t keep)
{
    b->start += n;
    if (b->start > b->len) {
        b->start = b->len;
    }
    xb_buf_trim(b, keep);
}

void xb_buf_free(xb_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}
