/* One XMPP client stream's bytes, plain or TLS; see c2s_io.h. */
#define _GNU_SOURCE
#include "c2s_io.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/socket.h>

SSL_CTX *c2s_tls_ctx(const char *cafile)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        die("SSL_CTX_new failed");
    /* a write may take part of a buffer, and the buffer may move (it grows) before the rest */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (cafile && *cafile) {
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
            die("cannot load the CA file %s", cafile);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    return ctx;
}

int c2s_io_starttls(c2s_io_t *io, SSL_CTX *ctx, int fd, const char *host)
{
    io->ssl = SSL_new(ctx);
    if (!io->ssl || SSL_set_fd(io->ssl, fd) != 1)
        return -1;
    SSL_set_tlsext_host_name(io->ssl, host);
    if (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER)
        SSL_set1_host(io->ssl, host);
    io->handshaking = 1;
    return 0;
}

int c2s_io_handshake(c2s_io_t *io, char *err, size_t errlen)
{
    ERR_clear_error();
    int r = SSL_connect(io->ssl);
    if (r == 1) {
        io->handshaking = 0;
        return 1;
    }
    int e = SSL_get_error(io->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    long v = SSL_get_verify_result(io->ssl);
    snprintf(err, errlen, "TLS handshake failed: %s",
             v != X509_V_OK ? X509_verify_cert_error_string(v)
                            : ERR_reason_error_string(ERR_peek_error())
                                  ? ERR_reason_error_string(ERR_peek_error())
                                  : "connection closed");
    return -1;
}

int c2s_io_flush(c2s_io_t *io, int fd)
{
    if (io->handshaking)
        return 0; /* written once the handshake is done */
    while (io->woff < io->out.len) {
        size_t left = io->out.len - io->woff;
        if (io->ssl) {
            ERR_clear_error();
            int n = SSL_write(io->ssl, io->out.p + io->woff, left > (1 << 30) ? 1 << 30 : (int)left);
            if (n <= 0) {
                int e = SSL_get_error(io->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    return 0;
                return -1;
            }
            io->woff += (size_t)n;
        } else {
            ssize_t n = send(fd, io->out.p + io->woff, left, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return 0;
                if (errno == EINTR)
                    continue;
                return -1;
            }
            io->woff += (size_t)n;
        }
    }
    io->out.len = io->woff = 0;
    return 0;
}

int c2s_io_read(c2s_io_t *io, int fd, buf_t *in)
{
    for (;;) {
        buf_reserve(in, 16384);
        size_t room = in->cap - in->len - 1;
        if (io->ssl) {
            ERR_clear_error();
            int n = SSL_read(io->ssl, in->p + in->len, room > (1 << 30) ? 1 << 30 : (int)room);
            if (n > 0) {
                in->len += (size_t)n;
                in->p[in->len] = 0;
                continue;
            }
            int e = SSL_get_error(io->ssl, n);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            return 1; /* close_notify, EOF or an error */
        }
        ssize_t n = recv(fd, in->p + in->len, room, 0);
        if (n > 0) {
            in->len += (size_t)n;
            in->p[in->len] = 0;
            continue;
        }
        if (n == 0)
            return 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno == EINTR)
            continue;
        return 1;
    }
}

void c2s_io_reset(c2s_io_t *io)
{
    if (io->ssl)
        SSL_free(io->ssl);
    io->ssl = NULL;
    io->handshaking = 0;
    io->out.len = io->woff = 0;
}
