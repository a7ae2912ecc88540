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

/* Runs until *stop becomes non-zero (set it from a signal handler), then answers held requests
 * with system-shutdown, closes the XMPP streams (bounded in time) and returns. `token_key`
 * (read before privileges were dropped; NULL when none is configured) signs prebind tokens. */
apr_status_t xb_daemon_run(apr_pool_t *pool, const xb_config_t *conf, xb_shm_table_t *table,
                           apr_socket_t *listener, const xb_jwt_key_t *token_key,
                           volatile sig_atomic_t *stop);

/* 128 bits from the CSPRNG as 32 lower-case hex digits (+ NUL). */
apr_status_t xb_daemon_new_sid(char sid[XB_SID_HEX_LEN + 1]);

#endif
