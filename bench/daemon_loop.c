/* bench/daemon_loop: the bridge daemon's loop alone, N sessions each holding a long-poll, for
 * counting instructions per relayed message with callgrind (repeatable on a loaded machine,
 * unlike wall-clock figures). See bench/README.md, "Daemon loop instruction counts".
 *
 *   daemon_loop serve SOCK PORT SLOTS [CAFILE]
 *       runs xb_daemon_run (libxbcore.a) on Unix socket SOCK, one domain "localhost" at
 *       127.0.0.1:PORT: plain TCP, or STARTTLS verified against CAFILE; SIGTERM stops.
 *   daemon_loop drive SOCK PORT N M PID [CERT KEY]
 *       is the XMPP server (127.0.0.1:PORT, answers each stream with its features) and the
 *       handlers: creates N sessions, each holding one request (wait 3600), then toggles the
 *       collection of PID on, relays M messages (server -> held request -> the client sends the
 *       next long-poll) round-robin over the first min(N, 16) sessions, and toggles it off
 *       (callgrind_control --instr; PID 0: no valgrind). With CERT and KEY the server side
 *       offers STARTTLS (required) with that certificate, as Prosody does. Before the first and
 *       after the last session it prints PID's memory (VmRSS and the anonymous part of its
 *       PSS), and the difference per held session (bench/daemon-memory).
 *
 * Run under valgrind --instr-atstart=no the daemon's instruction count between the two toggles, divided by M, is
 * the daemon's cost of one message with N sessions held; bench/daemon-loop-callgrind does it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <openssl/ssl.h>

#include <apr_general.h>
#include <apr_global_mutex.h>
#include <apr_network_io.h>
#include <apr_portable.h>
#include <apr_strings.h>

#include "xb_config.h"
#include "xb_daemon.h"
#include "xb_ipc.h"
#include "xb_shm_table.h"

static volatile sig_atomic_t stop_flag;

static void on_term(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* callgrind's state is saved and restored around a signal handler, so the switch comes from
 * outside: callgrind_control, which the daemon answers at its next wake-up (<= 0.5 s). */
static void instrumentation(pid_t pid, const char *on_off)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "callgrind_control --instr=%s %ld >/dev/null", on_off, (long)pid);
    if (system(cmd) != 0) {
        fprintf(stderr, "daemon_loop drive: %s failed\n", cmd);
        exit(1);
    }
}

static int serve(const char *sock_path, int port, unsigned slots, const char *ca_file)
{
    apr_pool_t *pool;
    xb_config_t conf;
    xb_domain_t *dom;
    apr_global_mutex_t *mutex;
    xb_shm_table_t *table;
    apr_size_t size;
    apr_socket_t *listener;
    apr_sockaddr_t *sa;
    xb_daemon_hooks_t hooks;
    apr_status_t rv;

    apr_pool_create(&pool, NULL);
    memset(&conf, 0, sizeof(conf));
    conf.domains = apr_array_make(pool, 1, sizeof(xb_domain_t));
    dom = apr_array_push(conf.domains);
    memset(dom, 0, sizeof(*dom));
    dom->name = "localhost";
    dom->host = "127.0.0.1";
    dom->port = (apr_port_t)port;
    dom->tls = ca_file ? XB_TLS_STARTTLS : XB_TLS_NONE;
    conf.ca_file = ca_file;
    dom->tls_name = "localhost";
    conf.socket_path = sock_path;
    conf.max_wait = 3600;
    conf.max_hold = 1;
    conf.inactivity = 3600;
    conf.polling = XB_DEFAULT_POLLING;
    conf.max_sessions = slots;
    conf.response_cache = XB_DEFAULT_RESPONSE_CACHE;
    conf.max_body_size = XB_DEFAULT_MAX_BODY_SIZE;
    conf.max_stanza_size = XB_DEFAULT_MAX_STANZA_SIZE;
    conf.max_queued_bytes = XB_DEFAULT_MAX_QUEUED_BYTES;
    conf.connect_timeout = apr_time_from_sec(600);
    conf.token_lifetime = XB_DEFAULT_TOKEN_LIFETIME;
    conf.attach_grace = XB_DEFAULT_ATTACH_GRACE;
    conf.max_per_user = XB_DEFAULT_MAX_PER_USER;

    if (apr_global_mutex_create(&mutex, NULL, APR_LOCK_DEFAULT, pool) != APR_SUCCESS) {
        fprintf(stderr, "mutex\n");
        return 1;
    }
    size = xb_shm_table_size(slots);
    table = xb_shm_table_create(pool, apr_pcalloc(pool, size), size, slots, mutex);

    unlink(sock_path);
    apr_sockaddr_info_get(&sa, sock_path, APR_UNIX, 0, 0, pool);
    rv = apr_socket_create(&listener, APR_UNIX, SOCK_STREAM, 0, pool);
    if (rv == APR_SUCCESS) {
        rv = apr_socket_bind(listener, sa);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_socket_listen(listener, 4096);
    }
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "cannot listen on %s (%d)\n", sock_path, rv);
        return 1;
    }
    memset(&hooks, 0, sizeof(hooks));
    hooks.admin_uid = (unsigned)getuid();
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    rv = xb_daemon_run(pool, &conf, table, listener, &hooks, &stop_flag);
    unlink(sock_path);
    return rv == APR_SUCCESS ? 0 : 1;
}

/* ---- the driver: blocking sockets, one step at a time ------------------------------------ */

static const char *sock_path_g;

static void die(const char *what)
{
    fprintf(stderr, "daemon_loop drive: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("write");
        }
        p += w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            die("read (frame)");
        }
        p += r;
        n -= (size_t)r;
    }
}

static int ipc_connect(void)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path_g);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        die("connect to the daemon");
    }
    return fd;
}

/* Sends one BOSH request frame on `fd`, or on a fresh connection when fd < 0; returns the
 * connection. */
static int send_body_on(apr_pool_t *p, int fd, const char *body)
{
    xb_ipc_request_meta_t meta;
    apr_size_t len;
    char *frame;

    if (fd < 0) {
        fd = ipc_connect();
    }

    memset(&meta, 0, sizeof(meta));
    strcpy(meta.client_ip, "127.0.0.1");
    frame = xb_ipc_frame(p, XB_IPC_BOSH_REQUEST, 0, &meta, sizeof(meta), body, strlen(body),
                         &len);
    write_all(fd, frame, len);
    return fd;
}

static int send_body(apr_pool_t *p, const char *body)
{
    return send_body_on(p, -1, body);
}

/* Reads the response frame on `fd` (blocking) into `out` (NUL-terminated); returns the status. */
static int read_response(int fd, char *out, size_t cap)
{
    xb_ipc_header_t h;

    read_all(fd, (char *)&h, sizeof(h));
    if (h.magic != XB_IPC_MAGIC || h.type != XB_IPC_RESPONSE || h.length >= cap) {
        fprintf(stderr, "daemon_loop drive: unexpected frame\n");
        exit(1);
    }
    read_all(fd, out, h.length);
    out[h.length] = '\0';
    return (int)h.aux;
}

static const char features[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' id='s2' from='localhost' version='1.0'>"
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>";

static SSL_CTX *server_ctx; /* NULL: plain TCP */

/* The server's end of one XMPP connection, plain or TLS. */
typedef struct {
    int fd;
    SSL *ssl;
} xconn_t;

static void x_write(xconn_t *x, const char *p, size_t n)
{
    if (!x->ssl) {
        write_all(x->fd, p, n);
        return;
    }
    if (SSL_write(x->ssl, p, (int)n) != (int)n) {
        fprintf(stderr, "daemon_loop drive: SSL_write failed\n");
        exit(1);
    }
}

/* Reads until `token` has been seen (the daemon sends each step of the set-up whole and waits
 * for the answer, so nothing after the token is lost). */
static void x_read_until(xconn_t *x, const char *token)
{
    char buf[4096];
    size_t have = 0;

    for (;;) {
        int r = x->ssl ? SSL_read(x->ssl, buf + have, (int)(sizeof(buf) - 1 - have))
                       : (int)read(x->fd, buf + have, sizeof(buf) - 1 - have);
        if (r <= 0) {
            die("read (XMPP side)");
        }
        have += (size_t)r;
        buf[have] = '\0';
        if (strstr(buf, token)) {
            return;
        }
        if (have >= sizeof(buf) - 1) {
            memmove(buf, buf + have / 2, have - have / 2);
            have -= have / 2;
        }
    }
}

static const char stream_header[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>";

/* Plays the server's part of the stream set-up up to the features a client logs in with. */
static void xmpp_setup(xconn_t *x)
{
    x_read_until(x, "<stream:stream");
    if (server_ctx) {
        static const char offer[] = "<stream:features><starttls "
            "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>";
        static const char proceed[] = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
        x_write(x, stream_header, sizeof(stream_header) - 1);
        x_write(x, offer, sizeof(offer) - 1);
        x_read_until(x, "starttls");
        x_write(x, proceed, sizeof(proceed) - 1);
        x->ssl = SSL_new(server_ctx);
        SSL_set_fd(x->ssl, x->fd);
        if (SSL_accept(x->ssl) != 1) {
            fprintf(stderr, "daemon_loop drive: TLS handshake failed\n");
            exit(1);
        }
        x_read_until(x, "<stream:stream");
    }
    x_write(x, features, sizeof(features) - 1);
}

/* The anonymous part of PSS and VmRSS of `pid`, kB. */
static void memory_of(pid_t pid, long *pss_anon, long *rss)
{
    char path[64], line[256];
    FILE *f;

    *pss_anon = *rss = -1;
    snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", (long)pid);
    if ((f = fopen(path, "r")) != NULL) {
        while (fgets(line, sizeof(line), f)) {
            sscanf(line, "Pss_Anon: %ld", pss_anon);
            sscanf(line, "Rss: %ld", rss);
        }
        fclose(f);
    }
}

typedef struct {
    char sid[64];
    unsigned long long rid;
    xconn_t xmpp; /* our end of the session's XMPP connection */
    int held;  /* the connection carrying its held request */
} client_t;

/* REUSE_LINK=1: the held request goes on the connection that carried the session creation,
 * as an Apache child reuses its idle connections (xb_link_keep); else on a fresh one. */
static int reuse_link;

static void hold_next_on(apr_pool_t *p, client_t *c, int fd)
{
    char body[256];

    c->rid++;
    snprintf(body, sizeof(body), "<body rid='%llu' sid='%s' "
             "xmlns='http://jabber.org/protocol/httpbind'/>", c->rid, c->sid);
    c->held = send_body_on(p, fd, body);
}

static void hold_next(apr_pool_t *p, client_t *c)
{
    hold_next_on(p, c, -1);
}

static int drive(const char *sock_path, int port, unsigned n, unsigned m, pid_t pid,
                 const char *cert, const char *key)
{
    long pss0, rss0, pss1, rss1;
    apr_pool_t *p;
    struct sockaddr_in sin;
    client_t *cl = calloc(n, sizeof(*cl));
    static char buf[65536];
    int lfd, one = 1;
    unsigned i, k, busy = n < 16 ? n : 16;
    int wait_s, quiet_s;

    sock_path_g = sock_path;
    reuse_link = getenv("REUSE_LINK") && !strcmp(getenv("REUSE_LINK"), "1");
    /* QUIET=S (memory only): S more seconds with nothing sent, then the memory again: with
     * WAIT below S the held requests expire meanwhile, which is when the daemon frees a quiet
     * stream's parser (session_upkeep, IDLE_PARSER_AFTER). */
    wait_s = getenv("WAIT") ? atoi(getenv("WAIT")) : 3600;
    quiet_s = getenv("QUIET") ? atoi(getenv("QUIET")) : 0;
    apr_pool_create(&p, NULL);
    signal(SIGPIPE, SIG_IGN);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 1024) != 0) {
        die("listen (XMPP side)");
    }

    if (cert) {
        server_ctx = SSL_CTX_new(TLS_server_method());
        if (!server_ctx || SSL_CTX_use_certificate_chain_file(server_ctx, cert) != 1
            || SSL_CTX_use_PrivateKey_file(server_ctx, key, SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, "daemon_loop drive: cannot load %s / %s\n", cert, key);
            return 1;
        }
    }
    memory_of(pid, &pss0, &rss0);
    for (i = 0; i < n; i++) {
        client_t *c = &cl[i];
        const char *s;
        int fd;

        c->rid = 1000000 + (unsigned long long)i * 1000;
        snprintf(buf, sizeof(buf), "<body rid='%llu' to='localhost' wait='%d' hold='1' "
                 "ver='1.6' xml:lang='en' xmlns='http://jabber.org/protocol/httpbind' "
                 "xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>", c->rid, wait_s);
        fd = send_body(p, buf);
        c->xmpp.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c->xmpp.fd < 0) {
            die("accept (XMPP side)");
        }
        xmpp_setup(&c->xmpp);
        read_response(fd, buf, sizeof(buf));
        if (!reuse_link) {
            close(fd);
            fd = -1;
        }
        s = strstr(buf, "sid='");
        if (!s) {
            s = strstr(buf, "sid=\"");
        }
        if (!s || sscanf(s + 5, "%32[0-9a-f]", c->sid) != 1) {
            fprintf(stderr, "daemon_loop drive: no sid in %s\n", buf);
            return 1;
        }
        hold_next_on(p, c, fd);
        apr_pool_clear(p);
    }
    /* Let the daemon take the last held request before counting starts. */
    usleep(500000);
    memory_of(pid, &pss1, &rss1);
    fprintf(stderr, "daemon_loop drive: %u sessions hold a request; relaying %u messages\n", n,
            m);
    if (pss0 >= 0 && pss1 >= 0 && n > 0) {
        printf("N=%u tls=%s daemon Rss %ld -> %ld kB, Pss_Anon %ld -> %ld kB; per held "
               "session: Rss %.1f kB, Pss_Anon %.1f kB\n", n, cert ? "yes" : "no", rss0, rss1,
               pss0, pss1, (double)(rss1 - rss0) / n, (double)(pss1 - pss0) / n);
        fflush(stdout);
    }
    if (quiet_s > 0 && pss0 >= 0 && n > 0) {
        sleep((unsigned)quiet_s);
        memory_of(pid, &pss1, &rss1);
        printf("after %d s quiet (wait %d s): daemon Rss %ld kB, Pss_Anon %ld kB; per "
               "session: Rss %.1f kB, Pss_Anon %.1f kB\n", quiet_s, wait_s, rss1, pss1,
               (double)(rss1 - rss0) / n, (double)(pss1 - pss0) / n);
        fflush(stdout);
    }
    if (m == 0) {
        return 0; /* memory only */
    }
    if (pid > 0) {
        instrumentation(pid, "on");
    }
    for (k = 0; k < m; k++) {
        client_t *c = &cl[k % busy];
        char msg[256];
        int len = snprintf(msg, sizeof(msg), "<message from='a@localhost/r' to='b@localhost/r' "
                           "type='chat'><body>xb %u</body></message>", k);

        x_write(&c->xmpp, msg, (size_t)len);
        read_response(c->held, buf, sizeof(buf));
        if (!strstr(buf, "<message")) {
            fprintf(stderr, "daemon_loop drive: answer without the message: %s\n", buf);
            return 1;
        }
        close(c->held);
        hold_next(p, c);
        apr_pool_clear(p);
    }
    if (pid > 0) {
        instrumentation(pid, "off");
    }
    fprintf(stderr, "daemon_loop drive: done\n");
    return 0;
}

int main(int argc, char **argv)
{
    apr_initialize();
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "serve")) {
        return serve(argv[2], atoi(argv[3]), (unsigned)atoi(argv[4]), argc == 6 ? argv[5] : NULL);
    }
    if ((argc == 7 || argc == 9) && !strcmp(argv[1], "drive")) {
        return drive(argv[2], atoi(argv[3]), (unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]),
                     (pid_t)atoi(argv[6]), argc == 9 ? argv[7] : NULL, argc == 9 ? argv[8] : NULL);
    }
    fprintf(stderr, "usage: daemon_loop serve SOCK PORT SLOTS [CAFILE]\n"
                    "       daemon_loop drive SOCK PORT N M PID [CERT KEY]\n");
    return 2;
}
