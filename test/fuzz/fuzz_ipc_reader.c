/* libFuzzer harness: the worker<->daemon frame reader (xb_ipc_reader_*) and
 * xb_ipc_strings_split.
 *
 * Input: byte 0 = mode (bits 0-1) and frame limit (bits 2-3), bytes 1-2 seed the split points.
 *   mode 0: the rest is what a handler wrote on the socket, fed in chunks of any size; frames
 *           are taken after every feed and decoded the way the daemon does (request meta, site
 *           user length, prebind strings). Every payload must lie inside what was fed, and stay
 *           readable until the next feed as the header promises.
 *   mode 1: the rest describes frames (type, aux, length, bytes); they are encoded with
 *           xb_ipc_frame, fed in chunks, and must come back identical and in order.
 *   mode 2 and 3: the rest goes to xb_ipc_strings_split(n = byte 0 >> 4); on success the
 *           strings, each with its NUL, are exactly the input.
 */
#include <apr_strings.h>

#include "fuzz_common.h"
#include "xb_ipc.h"

static const apr_size_t limits[4] = { 64, 1024, 65536 + 1024, XB_IPC_MAX_PAYLOAD };

/* What xb_daemon.c does with a frame's payload, with the same checks, minus the session work. */
static void decode_like_daemon(const xb_ipc_header_t *hdr, const char *payload)
{
    apr_size_t len = hdr->length;

    fuzz_touch(payload, len);
    if (hdr->type == XB_IPC_BOSH_REQUEST) {
        xb_ipc_request_meta_t meta;
        if (len < sizeof(meta)) {
            return;
        }
        memcpy(&meta, payload, sizeof(meta));
        if (meta.site_user_len > len - sizeof(meta)) {
            return;
        }
        fuzz_touch(payload + sizeof(meta), meta.site_user_len);
        fuzz_touch(payload + sizeof(meta) + meta.site_user_len,
                   len - sizeof(meta) - meta.site_user_len);
    }
    else if (hdr->type == XB_IPC_PREBIND) {
        const char *f[XB_PREBIND_FIELD_COUNT];
        unsigned i;
        if (len < sizeof(xb_ipc_prebind_meta_t)) {
            return;
        }
        if (xb_ipc_strings_split(payload + sizeof(xb_ipc_prebind_meta_t),
                                 len - sizeof(xb_ipc_prebind_meta_t), f,
                                 XB_PREBIND_FIELD_COUNT) == APR_SUCCESS) {
            for (i = 0; i < XB_PREBIND_FIELD_COUNT; i++) {
                FUZZ_CHECK(f[i] >= payload && f[i] < payload + len);
                fuzz_touch(f[i], strlen(f[i]) + 1);
            }
        }
    }
}

static void raw_mode(apr_pool_t *p, apr_size_t max, const uint8_t *data, size_t size,
                     fuzz_rng_t *rng)
{
    xb_ipc_reader_t *r = xb_ipc_reader_create(p, max);
    size_t off = 0, n;
    const char *held[64];
    apr_size_t held_len[64];

    while (off < size) {
        xb_ipc_header_t hdr;
        const char *payload = NULL;
        xb_ipc_read_status_t st = XB_IPC_NEED_MORE;
        unsigned nheld = 0, i;

        n = fuzz_chunk(rng, size - off, 4096);
        if (xb_ipc_reader_feed(r, (const char *)data + off, n) != APR_SUCCESS) {
            break; /* the daemon closes the connection */
        }
        off += n;
        while ((st = xb_ipc_reader_next(r, &hdr, &payload)) == XB_IPC_FRAME) {
            FUZZ_CHECK(hdr.magic == XB_IPC_MAGIC);
            FUZZ_CHECK(hdr.type >= XB_IPC_BOSH_REQUEST && hdr.type <= XB_IPC_TYPE_MAX);
            FUZZ_CHECK(hdr.length <= max);
            decode_like_daemon(&hdr, payload);
            if (nheld < 64) {
                held[nheld] = payload;
                held_len[nheld++] = hdr.length;
            }
        }
        /* All payloads of this feed are still readable (the daemon handles them in a row). */
        for (i = 0; i < nheld; i++) {
            fuzz_touch(held[i], held_len[i]);
        }
        if (st == XB_IPC_BAD) {
            break;
        }
    }
    xb_ipc_reader_destroy(r);
}

typedef struct {
    uint32_t type, aux;
    const char *data;
    apr_size_t len;
} frame_t;

static void roundtrip_mode(apr_pool_t *p, apr_size_t max, const uint8_t *data, size_t size,
                           fuzz_rng_t *rng)
{
    frame_t frames[256];
    unsigned nframes = 0, got = 0;
    char *stream;
    apr_size_t stream_len = 0, off = 0, consumed = 0, i;
    xb_ipc_reader_t *r;

    /* Each frame: type byte, aux byte, length byte (x 7, so long ones occur), bytes. */
    while (size >= 3 && nframes < 256) {
        frame_t *f = &frames[nframes];
        apr_size_t want = (apr_size_t)data[2] * 7;
        f->type = 1 + data[0] % XB_IPC_TYPE_MAX;
        f->aux = data[1] * 257u;
        data += 3;
        size -= 3;
        f->len = want < size ? want : size;
        if (f->len > max) {
            f->len = max;
        }
        f->data = (const char *)data;
        data += f->len;
        size -= f->len;
        nframes++;
    }
    stream = apr_palloc(p, nframes * (sizeof(xb_ipc_header_t) + 7 * 255) + 1);
    for (i = 0; i < nframes; i++) {
        apr_size_t flen;
        /* Split the payload in two as the BOSH handler does (meta, then body). */
        apr_size_t half = frames[i].len / 2;
        char *fr = xb_ipc_frame(p, (xb_ipc_type_t)frames[i].type, frames[i].aux, frames[i].data,
                                half, frames[i].data + half, frames[i].len - half, &flen);
        FUZZ_CHECK(flen == sizeof(xb_ipc_header_t) + frames[i].len);
        memcpy(stream + stream_len, fr, flen);
        stream_len += flen;
    }

    r = xb_ipc_reader_create(p, max);
    while (off < stream_len || got < nframes) {
        xb_ipc_header_t hdr;
        const char *payload;
        xb_ipc_read_status_t st;
        apr_size_t n = off < stream_len ? fuzz_chunk(rng, stream_len - off, 8192) : 0;

        /* The reader holds at most one frame's worth (header + max) of unread bytes: feed no
         * more than fits, as the limit says (what is left after taking the frames is less
         * than one frame, so something always fits). */
        if (n > sizeof(xb_ipc_header_t) + max - (off - consumed)) {
            n = sizeof(xb_ipc_header_t) + max - (off - consumed);
            FUZZ_CHECK(n > 0);
        }
        if (n) {
            FUZZ_CHECK(xb_ipc_reader_feed(r, stream + off, n) == APR_SUCCESS);
            off += n;
        }
        while ((st = xb_ipc_reader_next(r, &hdr, &payload)) == XB_IPC_FRAME) {
            FUZZ_CHECK(got < nframes);
            FUZZ_CHECK(hdr.type == frames[got].type && hdr.aux == frames[got].aux);
            FUZZ_CHECK(hdr.length == frames[got].len);
            FUZZ_CHECK(!memcmp(payload, frames[got].data, hdr.length));
            consumed += sizeof(hdr) + hdr.length;
            got++;
        }
        FUZZ_CHECK(st == XB_IPC_NEED_MORE);
        if (!n && got < nframes) {
            FUZZ_CHECK(0); /* all bytes fed, frames missing */
        }
    }
    FUZZ_CHECK(got == nframes);
    xb_ipc_reader_destroy(r);
}

static void strings_mode(apr_pool_t *p, unsigned n, const uint8_t *data, size_t size)
{
    const char *out[16];
    /* Its own allocation, exactly `size` bytes: a read past the end is an ASan report. */
    char *copy = malloc(size ? size : 1);
    apr_size_t pos = 0;
    unsigned i;

    (void)p;
    memcpy(copy, data, size);
    if (xb_ipc_strings_split(copy, size, out, n) == APR_SUCCESS) {
        for (i = 0; i < n; i++) {
            apr_size_t len = strlen(out[i]);
            FUZZ_CHECK(out[i] == copy + pos);
            pos += len + 1;
            FUZZ_CHECK(pos <= size);
        }
        FUZZ_CHECK(pos == size);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    fuzz_rng_t rng;
    uint8_t mode;
    apr_size_t max;

    if (size < 3) {
        return 0;
    }
    mode = data[0];
    max = limits[(mode >> 2) & 3];
    fuzz_rng_seed(&rng, (uint32_t)data[1] << 8 | data[2]);
    p = fuzz_pool();
    switch (mode & 3) {
    case 0:
        raw_mode(p, max, data + 3, size - 3, &rng);
        break;
    case 1:
        roundtrip_mode(p, max, data + 3, size - 3, &rng);
        break;
    default:
        strings_mode(p, (unsigned)(mode >> 4), data + 3, size - 3);
        break;
    }
    fuzz_pool_done(p);
    return 0;
}
