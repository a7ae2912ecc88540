/*
 * c2s_io: the byte pipe of one XMPP client stream over TCP, plain until STARTTLS, then TLS
 * (OpenSSL, non-blocking, on an edge-triggered epoll set): an output buffer written as far as
 * the socket takes it, the TLS handshake driven by the socket's readiness, and reads of all
 * that is there. loadgen's direct mode (--c2s) uses it; the socket itself is a bosh_client.h
 * http_conn_t (its connect and epoll registration are the same).
 */
#ifndef C2S_IO_H
#define C2S_IO_H

#include <openssl/ssl.h>

#include "bosh_client.h"

typedef struct {
    SSL *ssl;        /* NULL while the stream is plain */
    int handshaking; /* SSL_connect has not finished */
    buf_t out;       /* to write, from `woff` on */
    size_t woff;
} c2s_io_t;

/* A client context; with cafile the server's certificate must chain to it (and match the
 * host name given to c2s_io_starttls), as the bridge daemon checks Prosody's. */
SSL_CTX *c2s_tls_ctx(const char *cafile);
/* After <proceed/>: TLS on fd from now on, the handshake started. 0 ok, -1 error. */
int c2s_io_starttls(c2s_io_t *io, SSL_CTX *ctx, int fd, const char *host);
/* Drives the handshake: 1 done, 0 wants the socket again, -1 failed (why in `err`). */
int c2s_io_handshake(c2s_io_t *io, char *err, size_t errlen);
/* Writes what is buffered; 0 ok (maybe partial: the rest on EPOLLOUT), -1 error. */
int c2s_io_flush(c2s_io_t *io, int fd);
/* Reads all that is there, appended to in; 1 at end of stream or on an error, else 0. */
int c2s_io_read(c2s_io_t *io, int fd, buf_t *in);
/* Frees the TLS state and empties the output (the caller closes the socket). */
void c2s_io_reset(c2s_io_t *io);

#endif
