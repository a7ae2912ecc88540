/* Daemon lifecycle, shared memory and mutex: the httpd side of the bridge daemon.
 *
 * The pattern is mod_cgid's (a helper forked by the parent in post_config, reached over a Unix
 * socket in DefaultRuntimeDir, respawned through apr_proc_other_child), with two changes:
 *  - the shared session table and its mutex are created once and kept in retained data, so a
 *    graceful restart neither recreates them nor loses their contents;
 *  - the daemon lives in its own process group, so the signals prefork sends to its whole
 *    group (SIGUSR1 graceful, SIGTERM stop) reach it only through our own handling.
 *  - the daemon survives restarts too: it is noted on the process pool (killed at the final
 *    exit), not on pconf, and each new generation re-registers it and hands it the new
 *    configuration and error log over its socket (XB_IPC_RECONFIGURE), so the chats that were
 *    going on before Debian's daily logrotate reload are still going on after it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_main.h>
#include <ap_listen.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <unixd.h>
#include <util_mutex.h>
#include <apr_portable.h>
#include <apr_shm.h>
#include <apr_signal.h>
#include <apr_strings.h>

#include "mod_xmpp_bridge_private.h"
#include "xb_daemon.h"
#include "xb_ipc.h"
#include "xb_jwt.h"
#include "xb_log.h"

/* What survives a restart of the configuration (the parent process keeps it). */
typedef struct xb_retained {
    apr_shm_t *shm;
    unsigned slots;
    apr_global_mutex_t *mutex;
    const char *mutex_file;
    unsigned daemon_starts;
    apr_proc_t daemon;          /* pid 0: none yet */
} xb_retained_t;

static xb_retained_t *retained;
/* This generation's view of the daemon; valid in the parent between post_config and pconf
 * cleanup. */
static server_rec *daemon_server;
static apr_pool_t *daemon_pconf;
static const xb_config_t *daemon_conf;

/* Per-process view (children and the daemon). */
static xb_shm_table_t *process_table;
static apr_file_t *wake_read, *wake_write;

static volatile sig_atomic_t daemon_stop;
/* Once per generation: reclaim reports RESTART on every round of its loop. */
static int ended_for_reclaim;

xb_shm_table_t *xb_glue_table(void)
{
    return process_table;
}

apr_file_t *xb_glue_wake_pipe(void)
{
    return wake_read;
}

/* ---- logging ------------------------------------------------------------------------------ */

static int log_is_level(void *baton, int level)
{
    server_rec *s = baton;
    return APLOG_IS_LEVEL(s, level);
}

static void log_print(void *baton, const char *file, int line, int level, const char *msg)
{
    server_rec *s = baton;
    ap_log_error_(file, line, APLOG_MODULE_INDEX, level, 0, s, "%s", msg);
}

void xb_glue_bind_log(server_rec *s)
{
    xb_log_bind(log_print, log_is_level, s);
}

/* ---- pre_config: the mutex type, every generation ------------------------------------------ */

int xb_daemon_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    return ap_mutex_register(pconf, XB_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

/* ---- the daemon process ------------------------------------------------------------------ */

static void daemon_on_term(int sig)
{
    (void)sig;
    daemon_stop = 1;
}

static apr_status_t daemon_listen(apr_pool_t *p, server_rec *s, const char *path,
                                  apr_socket_t **listener)
{
    struct sockaddr_un sun;
    const char *staging = apr_pstrcat(p, path, ".new", NULL);
    mode_t old_umask;
    int fd, rc;

    /* The socket is made ready under a staging name (mode, owner, listen) and renamed into place
     * last: a child connecting at any moment finds the old socket, none, or the finished one,
     * never one it may not open yet (EACCES) or that does not listen. */
    if (strlen(staging) >= sizeof(sun.sun_path)) {
        return APR_ENAMETOOLONG;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    apr_cpystrn(sun.sun_path, staging, sizeof(sun.sun_path));
    unlink(staging);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        return errno;
    }
    /* Created 0600 from the start: no window in which others could connect. */
    old_umask = umask(0077);
    rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old_umask);
    /* bind() under umask 077 gives 0700; a socket needs read+write only. */
    if (rc == 0) {
        rc = chmod(staging, 0600);
    }
    if (rc == 0 && geteuid() == 0
        && chown(staging, ap_unixd_config.user_id, ap_unixd_config.group_id) < 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s, XBLOGNO(05010) "cannot give the daemon "
                     "socket %s to User %s", path, ap_unixd_config.user_name);
    }
    if (rc < 0 || listen(fd, 511) < 0 || rename(staging, path) < 0) {
        rc = errno;
        close(fd);
        unlink(staging);
        return rc;
    }
    return apr_os_sock_put(listener, &fd, p);
}

static void daemon_signals(void)
{
    /* Its own process group: prefork signals its whole group on restart and stop. */
    setpgid(0, 0);
    apr_signal(SIGTERM, daemon_on_term);
    apr_signal(SIGINT, daemon_on_term);
    apr_signal(SIGHUP, SIG_IGN);
    apr_signal(SIGUSR1, SIG_IGN);
    apr_signal(SIGWINCH, SIG_IGN);
    apr_signal(SIGPIPE, SIG_IGN);
    apr_signal(SIGCHLD, SIG_DFL);
}

/* XB_IPC_RECONFIGURE brought the new generation's error log: write there from now on (the old
 * descriptor may point at a file logrotate has moved away). */
static void daemon_new_log(void *baton, int fd, int level)
{
    server_rec *s = baton;
    apr_os_file_t old = -1;

    if (fd >= 0) {
        if (s->error_log && apr_os_file_get(&old, s->error_log) == APR_SUCCESS && old >= 0) {
            dup2(fd, old);
        }
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    if (level >= 0) {
        ap_set_module_loglevel(s->process->pconf, &s->log, APLOG_MODULE_INDEX, level);
    }
}

static void daemon_main(apr_pool_t *pool, server_rec *s, const xb_config_t *conf)
{
    apr_socket_t *listener = NULL;
    xb_jwt_key_t *token_key = NULL;
    xb_daemon_hooks_t hooks;
    const char *errmsg = NULL;
    apr_status_t rv;
    int status = 0;

    daemon_signals();
    ap_close_listeners();
    xb_glue_bind_log(s);
    rv = daemon_listen(pool, s, conf->socket_path, &listener);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, XBLOGNO(05011) "the bridge daemon cannot "
                     "listen on %s", conf->socket_path);
        _exit(1);
    }
    /* The prebind key is read here, by the daemon alone and while still root: Apache's children
     * never hold it. */
    if (conf->token_key_file
        && xb_jwt_key_load(pool, conf->token_key_file, &token_key, &errmsg) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, XBLOGNO(05024) "XmppBridgeTokenKeyFile %s: %s; "
                     "token prebind is refused until this is fixed", conf->token_key_file,
                     errmsg ? errmsg : "cannot be read");
        token_key = NULL;
    }
    memset(&hooks, 0, sizeof(hooks));
    hooks.token_key = token_key;
    hooks.admin_uid = (unsigned)geteuid(); /* the parent, before we drop to User */
    hooks.new_log = daemon_new_log;
    hooks.baton = s;
    /* Everything that needs root (the socket, the key) is done: drop to User/Group. */
    if (ap_run_drop_privileges(pool, s)) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, XBLOGNO(05012) "the bridge daemon cannot "
                     "drop privileges");
        _exit(1);
    }
    rv = apr_global_mutex_child_init(&retained->mutex, retained->mutex_file, pool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, XBLOGNO(05013) "the bridge daemon cannot "
                     "attach the session table mutex");
        _exit(1);
    }
    process_table = xb_shm_table_attach(pool, apr_shm_baseaddr_get(retained->shm),
                                        retained->mutex);
    /* A new daemon owns none of its predecessor's streams: drop their rows (no ghosts). */
    xb_shm_table_clear(process_table);
    xb_shm_table_note_daemon(process_table, (uint32_t)getpid(), apr_time_now(),
                             retained->daemon_starts > 1);
    rv = xb_daemon_run(pool, conf, process_table, listener, &hooks, &daemon_stop);
    if (rv != APR_SUCCESS) {
        status = 1;
    }
    apr_socket_close(listener);
    unlink(conf->socket_path);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, XBLOGNO(05014) "bridge daemon %" APR_PID_T_FMT
                 " exits", getpid());
    _exit(status);
}

static void daemon_maint(int reason, void *data, apr_wait_t status);
static void daemon_end_sessions(server_rec *s);

static apr_status_t daemon_start(apr_pool_t *pconf, server_rec *s, const xb_config_t *conf)
{
    apr_proc_t *proc = &retained->daemon;
    apr_status_t rv;

    retained->daemon_starts++;
    rv = apr_proc_fork(proc, pconf);
    if (rv == APR_INCHILD) {
        apr_pool_t *dpool;
        apr_pool_create(&dpool, pconf);
        daemon_main(dpool, s, conf);
        _exit(1); /* not reached */
    }
    if (rv != APR_INPARENT) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, XBLOGNO(05015) "cannot fork the bridge "
                     "daemon");
        return rv;
    }
    /* Killed when httpd exits for good (the process pool goes): SIGTERM, up to 3 s for the
     * daemon to answer held requests with system-shutdown, then SIGKILL. A restart clears
     * only pconf, so the daemon lives on. The note is a copy: retained->daemon may be reused
     * by a later daemon. */
    apr_pool_note_subprocess(s->process->pool, apr_pmemdup(s->process->pool, proc,
                                                           sizeof(*proc)),
                             APR_KILL_AFTER_TIMEOUT);
    apr_proc_other_child_register(proc, daemon_maint, proc, NULL, pconf);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, XBLOGNO(05016) "bridge daemon started, pid %"
                 APR_PID_T_FMT ", socket %s", proc->pid, conf->socket_path);
    return APR_SUCCESS;
}

static void daemon_maint(int reason, void *data, apr_wait_t status)
{
    apr_proc_t *proc = data;
    int mpm_state = AP_MPMQ_STOPPING;

    (void)status;
    switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST:
        apr_proc_other_child_unregister(data);
        if (ap_mpm_query(AP_MPMQ_MPM_STATE, &mpm_state) == APR_SUCCESS
            && mpm_state != AP_MPMQ_STOPPING && daemon_pconf) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, daemon_server, XBLOGNO(05017) "bridge daemon "
                         "%" APR_PID_T_FMT " died; starting a new one", proc->pid);
            daemon_start(daemon_pconf, daemon_server, daemon_conf);
        }
        break;
    case APR_OC_REASON_RESTART:
        /* ap_reclaim_child_processes, on a stop or a hard restart (never on a graceful one):
         * the children are told to go and may still hold long-polls. End the sessions now,
         * while those children can still write the system-shutdown answers. */
        if (daemon_server && !ended_for_reclaim) {
            ended_for_reclaim = 1;
            daemon_end_sessions(daemon_server);
        }
        break;
    case APR_OC_REASON_UNREGISTER:
    default:
        break;
    }
}

static apr_status_t forget_generation(void *data)
{
    (void)data;
    ended_for_reclaim = 0;
    daemon_pconf = NULL;
    daemon_server = NULL;
    daemon_conf = NULL;
    return APR_SUCCESS;
}

/* ---- restarts: the running daemon takes the new generation's configuration ------------------ */

/* Sends XB_IPC_RECONFIGURE (as root, so the daemon knows it is us) with the error log's
 * descriptor, and waits a bounded time for the daemon's answer. */
static apr_status_t daemon_reconfigure(apr_pool_t *ptemp, server_rec *s,
                                       const xb_config_t *conf)
{
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    struct sockaddr_un sun;
    struct msghdr msg;
    struct iovec iov;
    struct pollfd pfd;
    xb_ipc_header_t answer;
    apr_os_file_t log_fd = -1;
    apr_size_t len = 0, frame_len;
    char *payload = xb_config_serialize(ptemp, conf, &len);
    char *frame;
    int fd, ok = 0;

    frame = xb_ipc_frame(ptemp, XB_IPC_RECONFIGURE,
                         (uint32_t)ap_get_server_module_loglevel(s, APLOG_MODULE_INDEX),
                         payload, len, NULL, 0, &frame_len);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    apr_cpystrn(sun.sun_path, conf->socket_path, sizeof(sun.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return APR_ECONNREFUSED;
    }
    memset(&msg, 0, sizeof(msg));
    iov.iov_base = frame;
    iov.iov_len = frame_len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (s->error_log && apr_os_file_get(&log_fd, s->error_log) == APR_SUCCESS && log_fd >= 0) {
        struct cmsghdr *cmsg;
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.space;
        msg.msg_controllen = sizeof(control.space);
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &log_fd, sizeof(int));
    }
    /* The frame is small (well under the socket buffer): one sendmsg carries it whole. */
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) == (ssize_t)frame_len) {
        pfd.fd = fd;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, 5000) == 1 && recv(fd, &answer, sizeof(answer), MSG_WAITALL)
                                             == (ssize_t)sizeof(answer)) {
            ok = answer.magic == XB_IPC_MAGIC && answer.aux == 200;
        }
    }
    close(fd);
    if (ok) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, XBLOGNO(05026) "bridge daemon %"
                     APR_PID_T_FMT " carries on with the new configuration",
                     retained->daemon.pid);
    }
    return ok ? APR_SUCCESS : APR_EGENERAL;
}

/* Tells the daemon (as root) to end every session with system-shutdown; fire and forget. */
static void daemon_end_sessions(server_rec *s)
{
    const xb_config_t *conf = daemon_conf;
    struct sockaddr_un sun;
    xb_ipc_header_t hdr;
    int fd;

    if (!conf) {
        return;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    apr_cpystrn(sun.sun_path, conf->socket_path, sizeof(sun.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
        memset(&hdr, 0, sizeof(hdr));
        hdr.magic = XB_IPC_MAGIC;
        hdr.type = XB_IPC_END_SESSIONS;
        if (send(fd, &hdr, sizeof(hdr), MSG_NOSIGNAL) == (ssize_t)sizeof(hdr)) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, XBLOGNO(05027) "httpd stops its "
                         "children: the bridge daemon ends its sessions with system-shutdown");
        }
    }
    close(fd);
}

/* ---- post_config: table + mutex once, daemon every generation ------------------------------ */

static apr_status_t create_table(server_rec *s, const xb_config_t *conf)
{
    apr_pool_t *gpool = s->process->pool;
    apr_size_t size = xb_shm_table_size(conf->max_sessions);
    apr_status_t rv;

    rv = ap_global_mutex_create(&retained->mutex, &retained->mutex_file, XB_MUTEX_TYPE, NULL, s,
                                gpool, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, XBLOGNO(05018) "cannot create the session "
                     "table mutex");
        return rv;
    }
    /* Anonymous: inherited by every child and the daemon, nothing to clean up on disk. */
    rv = apr_shm_create(&retained->shm, size, NULL, gpool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, XBLOGNO(05019) "cannot create %"
                     APR_SIZE_T_FMT " bytes of shared memory for %u sessions "
                     "(XmppBridgeMaxSessions)", size, conf->max_sessions);
        return rv;
    }
    if (!xb_shm_table_create(gpool, apr_shm_baseaddr_get(retained->shm), size,
                             conf->max_sessions, retained->mutex)) {
        return APR_EGENERAL;
    }
    retained->slots = conf->max_sessions;
    return APR_SUCCESS;
}

int xb_daemon_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s)
{
    const xb_config_t *conf;

    (void)plog;
    (void)ptemp;
    xb_glue_bind_log(s);
    conf = xb_conf_finalize(pconf, s);
    if (!conf) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* The first pass (configtest, and before the MPM detaches) only checks: fork nothing. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    retained = ap_retained_data_get("mod_xmpp_bridge");
    if (!retained) {
        retained = ap_retained_data_create("mod_xmpp_bridge", sizeof(*retained));
        memset(retained, 0, sizeof(*retained));
    }
    if (!retained->shm) {
        if (create_table(s, conf) != APR_SUCCESS) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    else if (retained->slots != conf->max_sessions) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, XBLOGNO(05020) "XmppBridgeMaxSessions "
                     "changed from %u to %u: the session table keeps its size until a full "
                     "stop and start", retained->slots, conf->max_sessions);
    }
    process_table = xb_shm_table_attach(pconf, apr_shm_baseaddr_get(retained->shm),
                                        retained->mutex);
    if (!conf->domains->nelts) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, XBLOGNO(05021) "no XmppBridgeDomain is "
                     "configured: every session creation will be refused with host-unknown");
    }
    daemon_pconf = pconf;
    daemon_server = s;
    daemon_conf = conf;
    apr_pool_cleanup_register(pconf, NULL, forget_generation, apr_pool_cleanup_null);
    if (retained->daemon.pid > 0 && kill(retained->daemon.pid, 0) == 0) {
        /* A restart: the daemon of the previous generation carries on with the new config. */
        apr_proc_other_child_register(&retained->daemon, daemon_maint, &retained->daemon, NULL,
                                      pconf);
        if (daemon_reconfigure(ptemp, s, conf) == APR_SUCCESS) {
            return OK;
        }
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, XBLOGNO(05025) "the bridge daemon %"
                     APR_PID_T_FMT " did not take the new configuration: replacing it (its "
                     "sessions end)", retained->daemon.pid);
        apr_proc_other_child_unregister(&retained->daemon);
        kill(retained->daemon.pid, SIGKILL);
    }
    if (daemon_start(pconf, s, conf) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* ---- children -------------------------------------------------------------------------- */

void xb_daemon_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    xb_glue_bind_log(s);
    if (!retained || !retained->shm) {
        return;
    }
    rv = apr_global_mutex_child_init(&retained->mutex, retained->mutex_file, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, XBLOGNO(05022) "cannot attach the session "
                     "table mutex in a child");
    }
    process_table = xb_shm_table_attach(pchild, apr_shm_baseaddr_get(retained->shm),
                                        retained->mutex);
    /* Held long-polls watch this pipe: when the child stops, they release their requests
     * instead of holding the child for up to `wait` seconds. */
    xb_link_child_init(pchild);
    rv = apr_file_pipe_create_ex(&wake_read, &wake_write, APR_FULL_NONBLOCK, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, XBLOGNO(05023) "cannot create the wake-up "
                     "pipe");
        wake_read = wake_write = NULL;
    }
}

void xb_daemon_child_stopping(apr_pool_t *pchild, int graceful)
{
    apr_size_t one = 1;

    (void)pchild;
    (void)graceful;
    if (wake_write) {
        /* Never read: it stays readable for every handler polling it. */
        apr_file_write(wake_write, "x", &one);
    }
}
