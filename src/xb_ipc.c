/* Frame encoding and the incremental frame reader; see xb_ipc.h. */
#include <stdlib.h>
#include <string.h>
#include <apr_errno.h>
#include "xb_buf.h"
#include "xb_ipc.h"

/* What a reader keeps allocated between frames: larger buffers go back after a big frame. */
#define READER_KEEP 16384

struct xb_ipc_reader {
    xb_buf_t in;
    apr_size_t max_payload;
};

char *xb_ipc_frame(apr_pool_t *p, xb_ipc_type_t type, uint32_t aux, const void *payload,
                   apr_size_t len, const void *payload2, apr_size_t len2, apr_size_t *out_len)
{
    xb_ipc_header_t hdr;
    apr_size_t total = sizeof(hdr) + len + len2;
    char *frame = apr_palloc(p, total);

    hdr.magic = XB_IPC_MAGIC;
    hdr.type = (uint32_t)type;
    hdr.aux = aux;
    hdr.length = (uint32_t)(len + len2);
    memcpy(frame, &hdr, sizeof(hdr));
    if (len) {
        memcpy(frame + sizeof(hdr), payload, len);
    }
    if (len2) {
        memcpy(frame + sizeof(hdr) + len, payload2, len2);
    }
    *out_len = total;
    return frame;
}

static apr_status_t reader_cleanup(void *data)
{
    xb_ipc_reader_t *r = data;
    xb_buf_free(&r->in);
    return APR_SUCCESS;
}

xb_ipc_reader_t *xb_ipc_reader_create(apr_pool_t *p, apr_size_t max_payload)
{
    xb_ipc_reader_t *r = apr_pcalloc(p, sizeof(*r));
    r->max_payload = max_payload;
    apr_pool_cleanup_register(p, r, reader_cleanup, apr_pool_cleanup_null);
    return r;
}

void xb_ipc_reader_destroy(xb_ipc_reader_t *r)
{
    reader_cleanup(r);
}

xb_ipc_reader_t *xb_ipc_reader_new(apr_size_t max_payload)
{
    xb_ipc_reader_t *r = calloc(1, sizeof(*r));

    if (r) {
        r->max_payload = max_payload;
    }
    return r;
}

void xb_ipc_reader_free(xb_ipc_reader_t *r)
{
    if (r) {
        xb_buf_free(&r->in);
        free(r);
    }
}

void xb_ipc_reader_release_idle(xb_ipc_reader_t *r)
{
    xb_buf_trim(&r->in, 0);
}

int xb_ipc_reader_feed(xb_ipc_reader_t *r, const char *data, apr_size_t len)
{
    xb_buf_trim(&r->in, READER_KEEP);
    if (r->in.len - r->in.start + len > sizeof(xb_ipc_header_t) + r->max_payload) {
        return APR_ENOSPC;
    }
    return xb_buf_append(&r->in, data, len) ? APR_SUCCESS : APR_ENOMEM;
}

xb_ipc_read_status_t xb_ipc_reader_next(xb_ipc_reader_t *r, xb_ipc_header_t *hdr,
                                        const char **payload)
{
    apr_size_t avail = r->in.len - r->in.start;

    if (avail < sizeof(*hdr)) {
        return XB_IPC_NEED_MORE;
    }
    memcpy(hdr, r->in.data + r->in.start, sizeof(*hdr));
    if (hdr->magic != XB_IPC_MAGIC || hdr->type < XB_IPC_BOSH_REQUEST
        || hdr->type > XB_IPC_TYPE_MAX || hdr->length > r->max_payload) {
        return XB_IPC_BAD;
    }
    if (avail < sizeof(*hdr) + hdr->length) {
        return XB_IPC_NEED_MORE;
    }
    *payload = r->in.data + r->in.start + sizeof(*hdr);
    /* The payload stays readable until the next feed: consuming only moves `start` (an emptied
     * big buffer is released at the next feed). */
    r->in.start += sizeof(*hdr) + hdr->length;
    return XB_IPC_FRAME;
}

apr_status_t xb_ipc_strings_split(const char *data, apr_size_t len, const char **out,
                                  unsigned n)
{
    apr_size_t pos = 0;
    unsigned i;

    for (i = 0; i < n; i++) {
        const char *nul = pos < len ? memchr(data + pos, '\0', len - pos) : NULL;
        if (!nul) {
            return APR_EINVAL;
        }
        out[i] = data + pos;
        pos = (apr_size_t)(nul - data) + 1;
    }
    return pos == len ? APR_SUCCESS : APR_EINVAL;
}
