/* A handler's connection to the bridge daemon: connect (riding out a daemon restart), write a
 * frame, read the answer frame. Shared by every handler so they all behave the same when the
 * daemon is slow, restarting or gone. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <httpd.h>
#include <http_log.h>
#include <apr_portable.h>
#include <apr_strings.h>

#include "mod_xmpp_bridge_private.h"
#include "xb_ipc.h"

/* How long a handler retries while the daemon (re)starts. */
#define DAEMON_CONNECT_PATIENCE apr_time_from_sec(3)

/* The cleanup carries the descriptor itself, not the link: a link lives in the handler's
 * stack frame, which is gone long before r->pool is cleared. */
static apr_status_t link_fd_cleanup(void *data)
{
    close((int)(apr_uintptr_t)data);
    return APR_SUCCESS;
}

void xb_link_close(xb_daemon_link_t *link)
{
    if (link->fd >= 0) {
        apr_pool_cleanup_kill(link->r->pool, (void *)(apr_uintptr_t)link->fd, link_fd_cleanup);
        close(link->fd);
        link->fd = -1;
    }
}

apr_status_t xb_link_open(xb_daemon_link_t *link, request_rec *r, const char *socket_path)
{
    struct sockaddr_un sun;
    apr_time_t give_up = apr_time_now() + DAEMON_CONNECT_PATIENCE;
    apr_interval_time_t pause = apr_time_from_msec(10);

    link->r = r;
    link->fd = -1;
    link->sock = NULL;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    apr_cpystrn(sun.sun_path, socket_path, sizeof(sun.sun_path));
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int err;
        if (fd < 0) {
            return errno;
        }
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            link->fd = fd;
            apr_pool_cleanup_register(r->pool, (void *)(apr_uintptr_t)fd, link_fd_cleanup,
                                      apr_pool_cleanup_null);
            return apr_os_sock_put(&link->sock, &link->fd, r->pool);
        }
        err = errno;
        close(fd);
        /* The daemon may be (re)starting: the socket is missing or not yet listening. */
        if ((err != ENOENT && err != ECONNREFUSED && err != EAGAIN)
            || apr_time_now() >= give_up) {
            return err;
        }
        apr_sleep(pause);
        if (pause < apr_time_from_msec(200)) {
            pause *= 2;
        }
    }
}

apr_status_t xb_link_write(xb_daemon_link_t *link, const char *data, apr_size_t len)
{
    while (len > 0) {
        ssize_t n = send(link->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        data += n;
        len -= (apr_size_t)n;
    }
    return APR_SUCCESS;
}

apr_status_t xb_link_send(xb_daemon_link_t *link, int type, const void *part1,
                          apr_size_t len1, const void *part2, apr_size_t len2)
{
    apr_size_t frame_len;
    char *frame = xb_ipc_frame(link->r->pool, (xb_ipc_type_t)type, 0, part1, len1, part2, len2, &frame_len);
    return xb_link_write(link, frame, frame_len);
}

static apr_status_t read_all(int fd, char *buf, apr_size_t len)
{
    while (len > 0) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n == 0) {
            return APR_EOF;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        buf += n;
        len -= (apr_size_t)n;
    }
    return APR_SUCCESS;
}

apr_status_t xb_link_read_answer(xb_daemon_link_t *link, int *status, char **body,
                                 apr_size_t *len)
{
    xb_ipc_header_t hdr;
    apr_status_t rv = read_all(link->fd, (char *)&hdr, sizeof(hdr));

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (hdr.magic != XB_IPC_MAGIC || hdr.type != XB_IPC_RESPONSE
        || hdr.length > XB_IPC_MAX_PAYLOAD) {
        return APR_EGENERAL;
    }
    *body = apr_palloc(link->r->pool, hdr.length + 1);
    rv = read_all(link->fd, *body, hdr.length);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    (*body)[hdr.length] = '\0';
    *status = (int)hdr.aux;
    *len = hdr.length;
    return APR_SUCCESS;
}
