/* The bridge daemon's event loop: one process, one apr_pollset, every XMPP stream.
 *
 * httpd-free: the glue (mod_xmpp_bridge_daemon.c) forks the process, binds the socket, drops
 * privileges and then hands over here. Inside, nothing blocks: the Unix-socket connections of
 * the handlers, the XMPP sockets and the session timers are all driven from one poll.
 */
#ifndef XB_DAEMON_H
#define XB_DAEMON_H

#include <signal.h>
#include <apr_pools.h>
#include <apr_network_io.h>
#include "xb_config.h"
#include "xb_jwt.h"
#include "xb_shm_table.h"

/* What the daemon needs from the process that runs it, besides the configuration. */
typedef struct xb_daemon_hooks {
    /* Signs prebind tokens; read before privileges were dropped. NULL: none configured. */
    const xb_jwt_key_t *token_key;
    /* Only a peer with this uid (the httpd parent) may hand over a new configuration. */
    unsigned admin_uid;
    /* A new generation's error log (the callee owns `fd`, -1 when none came) and the module's
     * log level, applied before the new configuration. */
    void (*new_log)(void *baton, int fd, int level);
    void *baton;
} xb_daemon_hooks_t;

/* Runs until *stop becomes non-zero (set it from a signal handler), then answers held requests
 * with system-shutdown, closes the XMPP streams (bounded in time) and returns. A graceful
 * restart of httpd does not stop it: the new generation sends XB_IPC_RECONFIGURE instead. */
apr_status_t xb_daemon_run(apr_pool_t *pool, const xb_config_t *conf, xb_shm_table_t *table,
                           apr_socket_t *listener, const xb_daemon_hooks_t *hooks,
                           volatile sig_atomic_t *stop);

/* 128 bits from the CSPRNG as 32 lower-case hex digits (+ NUL). */
apr_status_t xb_daemon_new_sid(char sid[XB_SID_HEX_LEN + 1]);

#endif
