/* A handler's connection to the bridge daemon: connect (riding out a daemon restart), write a
 * frame, read the answer frame. Shared by every handler so they all behave the same when the
 * daemon is slow, restarting or gone.
 *
 * A connection carries one request at a time. Once its answer is read whole, a BOSH handler
 * gives it back to this child's idle connections and the next request takes it: no connect,
 * no accept and no new daemon-side state per request. A connection that ends any other way
 * (client gone, timeout, error) is closed, which is how the daemon learns the request is
 * gone. When the child exits its idle connections close with it; the daemon keeps nothing for
 * a connection without a request. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <httpd.h>
#include <http_log.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "mod_xmpp_bridge_private.h"
#include "xb_ipc.h"

/* How long a handler retries while the daemon (re)starts. */
#define DAEMON_CONNECT_PATIENCE apr_time_from_sec(3)

/* Idle connections a child keeps: enough for every thread of a large ThreadsPerChild. */
#define IDLE_MAX 256

static apr_thread_mutex_t *idle_lock; /* NULL: no reuse (before child_init, after exit) */
static int idle_fd[IDLE_MAX];
static int idle_n;
static char idle_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static apr_status_t idle_cleanup(void *data)
{
    (void)data;
    idle_lock = NULL; /* the mutex goes with the same pool, after this (cleanups run LIFO) */
    while (idle_n > 0) {
        close(idle_fd[--idle_n]);
    }
    return APR_SUCCESS;
}

void xb_link_child_init(apr_pool_t *pchild)
{
    if (apr_thread_mutex_create(&idle_lock, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS) {
        idle_lock = NULL;
        return;
    }
    apr_pool_cleanup_register(pchild, NULL, idle_cleanup, apr_pool_cleanup_null);
}

static int idle_take(const char *socket_path)
{
    int fd = -1;

    if (!idle_lock || apr_thread_mutex_lock(idle_lock) != APR_SUCCESS) {
        return -1;
    }
    /* No poll to check that the daemon still has it: a send on a connection the daemon
     * closed (it stopped or restarted) fails at once with EPIPE, and the caller sends again on
     * a fresh one (one system call less per request). */
    if (strcmp(idle_path, socket_path) == 0 && idle_n > 0) {
        fd = idle_fd[--idle_n];
    }
    apr_thread_mutex_unlock(idle_lock);
    return fd;
}

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

apr_status_t xb_link_open_reuse(xb_daemon_link_t *link, request_rec *r,
                                const char *socket_path)
{
    int fd = idle_take(socket_path);

    if (fd < 0) {
        apr_status_t rv = xb_link_open(link, r, socket_path);
        link->reused = 0;
        return rv;
    }
    link->r = r;
    link->fd = fd;
    link->sock = NULL;
    link->reused = 1;
    apr_pool_cleanup_register(r->pool, (void *)(apr_uintptr_t)fd, link_fd_cleanup,
                              apr_pool_cleanup_null);
    return apr_os_sock_put(&link->sock, &link->fd, r->pool);
}

void xb_link_keep(xb_daemon_link_t *link)
{
    const char *socket_path = xb_conf_get(link->r->server)->socket_path;
    int fd = link->fd;

    if (fd < 0) {
        return;
    }
    if (!idle_lock || strlen(socket_path) >= sizeof(idle_path)
        || apr_thread_mutex_lock(idle_lock) != APR_SUCCESS) {
        xb_link_close(link);
        return;
    }
    apr_pool_cleanup_kill(link->r->pool, (void *)(apr_uintptr_t)fd, link_fd_cleanup);
    link->fd = -1;
    if (strcmp(idle_path, socket_path) != 0) {
        /* Another socket (a new configuration): the old ones are of no use. */
        while (idle_n > 0) {
            close(idle_fd[--idle_n]);
        }
        apr_cpystrn(idle_path, socket_path, sizeof(idle_path));
    }
    if (idle_n < IDLE_MAX) {
        idle_fd[idle_n++] = fd;
        fd = -1;
    }
    apr_thread_mutex_unlock(idle_lock);
    if (fd >= 0) {
        close(fd);
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

/* Reads at least `min` and at most `max` bytes into buf; *got: how many came. */
static apr_status_t read_at_least(int fd, char *buf, apr_size_t min, apr_size_t max,
                                  apr_size_t *got)
{
    *got = 0;
    while (*got < min) {
        ssize_t n = recv(fd, buf + *got, max - *got, 0);
        if (n == 0) {
            return APR_EOF;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        *got += (apr_size_t)n;
    }
    return APR_SUCCESS;
}

/* Most answers are small: the first recv asks for this much beyond the header, so that one
 * system call usually brings the whole frame. */
#define ANSWER_FIRST_READ 4096

apr_status_t xb_link_read_answer(xb_daemon_link_t *link, int *status, char **body,
                                 apr_size_t *len)
{
    xb_ipc_header_t hdr;
    apr_size_t cap = sizeof(hdr) + ANSWER_FIRST_READ, got = 0, have;
    char *buf = apr_palloc(link->r->pool, cap + 1);
    apr_status_t rv;

    rv = read_at_least(link->fd, buf, sizeof(hdr), cap, &got);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    memcpy(&hdr, buf, sizeof(hdr));
    have = got - sizeof(hdr);
    /* One request, one answer: bytes past it would be a daemon bug. */
    if (hdr.magic != XB_IPC_MAGIC || hdr.type != XB_IPC_RESPONSE
        || hdr.length > XB_IPC_MAX_PAYLOAD || have > hdr.length) {
        return APR_EGENERAL;
    }
    if (hdr.length <= ANSWER_FIRST_READ) {
        *body = buf + sizeof(hdr);
    }
    else {
        *body = apr_palloc(link->r->pool, hdr.length + 1);
        memcpy(*body, buf + sizeof(hdr), have);
    }
    rv = read_at_least(link->fd, *body + have, hdr.length - have, hdr.length - have, &got);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    (*body)[hdr.length] = '\0';
    *status = (int)hdr.aux;
    *len = hdr.length;
    return APR_SUCCESS;
}
