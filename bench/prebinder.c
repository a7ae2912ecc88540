/*
 * prebinder: times prebinds, one thread, epoll, K calls in flight.
 *
 * Two ways to get {"jid","sid","rid"} for a user, timed by the same client with the same clock
 * (CLOCK_MONOTONIC, from the moment a call starts, TCP connect included, to the moment its
 * answer is complete):
 *
 *   --mode module   GET <path> (mod_xmpp_bridge's xmpp-prebind handler) with the site login
 *                   (HTTP Basic user:password) -> 200 {"jid","sid","rid"}.
 *   --mode bosh     a BOSH-client prebinder of the xmpp-prebind-php kind against an XMPP
 *                   server's own BOSH endpoint (<path>): session creation, SASL PLAIN with the
 *                   user's password, restart, bind, session (when required, or with
 *                   --session-iq advertised when offered at all, as xmpp-prebind-php does), one
 *                   request at a time over one keep-alive connection (as one curl handle does);
 *                   the answer is the bound JID, the sid and the next unused rid.
 *
 * --end says what becomes of each prebound session after its answer (never timed):
 *   none   left alone, as a real prebound session waiting for its page (the default);
 *   sync   ended (BOSH terminate with the answer's rid, on a second connection of the slot)
 *          before the slot's next call starts: every call sees the same idle server;
 *   async  ended the same way while the slot's next call already runs.
 *
 * Calls go to users user_fmt % (i mod --users). A call fails on a non-200 answer, an answer
 * without jid/sid/rid, a SASL failure, a stream error, a broken connection or --call-timeout;
 * failures are counted and named, never retried.
 *
 * Output on stdout: one line `RESULT {json}` (latency p50/p90/p99/max in ms, prebinds per
 * second over the run's wall time, failures by reason; --samples adds every latency in µs).
 * Exit 0 ok, 2 usage, 3 the --max-seconds limit cut the run short (RESULT still printed).
 *
 * Build: make -C bench prebinder (prebinder.c bosh_client.c -lexpat -lm)
 * The HTTP and BOSH handling is bench/loadgen.c's (bosh_client.c).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <expat.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bosh_client.h"

#define MAX_CONC 1024
#define TQ 16 /* terminates queued per slot */

/* ------------------------------------------------------------------ options */
enum { M_MODULE = 1, M_BOSH };
static struct {
    int mode;
    char host[64];
    int port;
    char path[256], term_path[256], hosthdr[128];
    char domain[128];
    char user_fmt[64], pass_fmt[64];
    int users, first_user;
    int calls, conc, warmup;
    int keepalive;
    int terminate; /* 0 none, 1 async, 2 sync */
    int session_advertised;
    double call_timeout, max_seconds;
    int samples;
    int verbose;
} opt;

static struct sockaddr_in srv;

/* ------------------------------------------------------------------ connections */
typedef struct slot slot_t;
typedef struct {
    http_conn_t h;
    int which; /* 0 the call's, 1 the terminates' */
    slot_t *sl;
    buf_t out;
} hconn_t;

enum {
    P_IDLE = 0, P_MODULE, P_CREATE, P_FEATURES, P_AUTH, P_FEATURES2, P_BIND, P_SESSION, P_DONE,
    P_ENDING /* --end sync: the answer is in, the terminate is under way */
};

struct slot {
    int id;
    hconn_t c, t;
    int st;
    int timed;        /* counts in the figures (not a warm-up call) */
    uint64_t t0;
    int user;
    int call;         /* index of the call (warm-up calls negative) */
    char uname[64], upass[64];
    uint64_t rid;     /* next rid to use */
    char sid[160], jid[320];
    int sess_required, sess_offered;
    buf_t pend;       /* stanzas for the next request */
    int pend_restart;
    struct {
        char sid[160];
        uint64_t rid;
    } tq[TQ];
    int tqh, tql;
    int term_busy;
};

static slot_t *S;
static int ep;
static int next_call, calls_total, in_flight, stop_issuing;
static int warm_phase;
static uint64_t *lat_us;
static size_t nlat;
static int n_ok, n_failed;
static int term_ok, term_failed, term_dropped;

static void conn_close(hconn_t *c)
{
    http_close(&c->h, ep);
}

static int conn_open(hconn_t *c)
{
    return http_open(&c->h, ep, &srv, (uint32_t)(c->sl->id * 2 + c->which));
}

static int conn_flush(hconn_t *c)
{
    return http_flush(&c->h, c->out.p, c->out.len);
}

/* c->out holds the request: send it, on a fresh connection when none is open */
static int conn_send(hconn_t *c)
{
    c->h.woff = 0;
    http_reset_parse(&c->h);
    if (c->h.state == CS_CLOSED) {
        if (conn_open(c) < 0)
            return -1;
        return 0; /* written on EPOLLOUT */
    }
    c->h.state = CS_BUSY;
    return conn_flush(c);
}

static void conn_post(hconn_t *c, const char *path, const char *body, size_t blen, int keep)
{
    http_post(&c->out, path, opt.hosthdr, "xb-prebinder/1", body, blen, keep);
}

/* ------------------------------------------------------------------ calls */
static void start_call(slot_t *sl);
static void bosh_send(slot_t *sl);

static void slot_next(slot_t *sl)
{
    sl->st = P_IDLE;
    in_flight--;
    if (!opt.keepalive)
        conn_close(&sl->c);
    if (!stop_issuing && next_call < calls_total)
        start_call(sl);
}

static void call_fail(slot_t *sl, const char *why)
{
    char r[160];
    static const char *names[] = {"idle", "prebind answer", "creation answer", "features",
                                  "SASL outcome", "features after restart", "bind result",
                                  "session result", "done", "end of the session"};
    snprintf(r, sizeof r, "%s (waiting for the %s)", why, names[sl->st]);
    note_reason(r);
    if (opt.verbose)
        fprintf(stderr, "slot %d user %s: %s\n", sl->id, sl->uname, r);
    if (!warm_phase)
        n_failed++;
    conn_close(&sl->c);
    slot_next(sl);
}

static void term_pump(slot_t *sl);

static void call_done(slot_t *sl)
{
    uint64_t t = now_ns();
    if (sl->timed) {
        lat_us[nlat++] = (t - sl->t0) / 1000;
        n_ok++;
    }
    if (opt.terminate) {
        if (sl->tql < TQ) {
            int k = (sl->tqh + sl->tql) % TQ;
            snprintf(sl->tq[k].sid, sizeof sl->tq[k].sid, "%s", sl->sid);
            sl->tq[k].rid = sl->rid;
            sl->tql++;
        } else {
            term_dropped++;
        }
        term_pump(sl);
        if (opt.terminate == 2 && sl->term_busy) {
            sl->st = P_ENDING; /* slot_next when the terminate's answer is in */
            return;
        }
    }
    sl->st = P_DONE;
    slot_next(sl);
}

static void start_call(slot_t *sl)
{
    int i = next_call++;
    in_flight++;
    sl->call = warm_phase ? -1 - i : i;
    sl->timed = !warm_phase;
    sl->user = opt.first_user + i % opt.users;
    snprintf(sl->uname, sizeof sl->uname, opt.user_fmt, sl->user);
    snprintf(sl->upass, sizeof sl->upass, opt.pass_fmt, sl->user);
    sl->sid[0] = sl->jid[0] = 0;
    sl->pend.len = 0;
    sl->pend_restart = 0;
    sl->sess_required = sl->sess_offered = 0;
    sl->t0 = now_ns();
    if (opt.mode == M_MODULE) {
        char raw[160], enc[256];
        int rl = snprintf(raw, sizeof raw, "%s:%s", sl->uname, sl->upass);
        b64(raw, rl, enc);
        sl->c.out.len = 0;
        buf_printf(&sl->c.out,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: xb-prebinder/1\r\n"
                   "Accept: application/json, text/javascript\r\nAuthorization: Basic %s\r\n"
                   "Connection: %s\r\n\r\n",
                   opt.path, opt.hosthdr, enc, opt.keepalive ? "keep-alive" : "close");
        sl->st = P_MODULE;
        if (conn_send(&sl->c) < 0)
            call_fail(sl, "cannot send");
        return;
    }
    /* bosh: a large random initial rid below 2^53, as XEP-0124 asks */
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = now_ns();
    sl->rid = (r % (1ULL << 40)) + (1ULL << 32);
    buf_t body = {0};
    bosh_creation_body(&body, sl->rid++, opt.domain, 60);
    conn_post(&sl->c, opt.path, body.p, body.len, 1);
    free(body.p);
    sl->st = P_CREATE;
    if (conn_send(&sl->c) < 0)
        call_fail(sl, "cannot send");
}

/* the next request of a BOSH login: the restart, or the pending stanzas, or an empty poll */
static void bosh_send(slot_t *sl)
{
    buf_t body = {0};
    if (sl->pend_restart) {
        sl->pend_restart = 0;
        bosh_restart_body(&body, sl->rid++, sl->sid, opt.domain);
    } else if (sl->pend.len) {
        buf_printf(&body, "<body rid='%" PRIu64 "' sid='%s' xmlns='" HTTPBIND_NS "'>%s</body>",
                   sl->rid++, sl->sid, sl->pend.p);
        sl->pend.len = 0;
    } else {
        buf_printf(&body, "<body rid='%" PRIu64 "' sid='%s' xmlns='" HTTPBIND_NS "'/>",
                   sl->rid++, sl->sid);
    }
    conn_post(&sl->c, opt.path, body.p, body.len, 1);
    free(body.p);
    if (conn_send(&sl->c) < 0)
        call_fail(sl, "cannot send");
}

static void term_pump(slot_t *sl)
{
    if (sl->term_busy || sl->tql == 0)
        return;
    int k = sl->tqh;
    buf_t body = {0};
    bosh_terminate_body(&body, sl->tq[k].rid, sl->tq[k].sid);
    conn_post(&sl->t, opt.term_path, body.p, body.len, 1);
    free(body.p);
    sl->tqh = (sl->tqh + 1) % TQ;
    sl->tql--;
    sl->term_busy = 1;
    if (conn_send(&sl->t) < 0) {
        term_failed++;
        sl->term_busy = 0;
        conn_close(&sl->t);
    }
}

/* ------------------------------------------------------------------ the module's JSON answer */
static int json_str(const char *body, const char *key, char *out, size_t outsz)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(body, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    while (*p == ' ' || *p == ':')
        p++;
    if (*p != '"')
        return -1;
    p++;
    const char *e = strchr(p, '"');
    if (!e || (size_t)(e - p) >= outsz)
        return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 0;
}

static void module_answer(slot_t *sl, int status, const char *body)
{
    if (status != 200) {
        char r[96];
        snprintf(r, sizeof r, "HTTP %d", status);
        call_fail(sl, r);
        return;
    }
    const char *rp = strstr(body, "\"rid\"");
    if (json_str(body, "jid", sl->jid, sizeof sl->jid) < 0 ||
        json_str(body, "sid", sl->sid, sizeof sl->sid) < 0 || !rp) {
        call_fail(sl, "answer without jid/sid/rid");
        return;
    }
    rp += 5;
    while (*rp == ' ' || *rp == ':' || *rp == '"')
        rp++;
    sl->rid = strtoull(rp, NULL, 10);
    if (!strchr(sl->jid, '/')) {
        call_fail(sl, "jid is not a full JID");
        return;
    }
    call_done(sl);
}

/* ------------------------------------------------------------------ the BOSH login's XML */
static bosh_xml_t X;
/* what the parse of one answer found */
static struct {
    const char *fail;
    int advanced;
} P;

/* the creation answer's sid */
static void on_body(bosh_xml_t *x, const char **a)
{
    slot_t *sl = x->ud;
    const char *s = xml_attr(a, "sid");
    if (sl->st == P_CREATE && s) {
        snprintf(sl->sid, sizeof sl->sid, "%s", s);
        sl->st = P_FEATURES;
        P.advanced = 1;
    }
}

static void stanza_done(bosh_xml_t *x)
{
    slot_t *sl = x->ud;
    if (P.fail)
        return;
    switch (x->kind) {
    case K_FEATURES:
        if (sl->st == P_FEATURES && x->f_mechs) {
            if (!x->f_plain) {
                P.fail = "PLAIN not offered";
                return;
            }
            xmpp_auth_plain(&sl->pend, sl->uname, sl->upass);
            sl->st = P_AUTH;
            P.advanced = 1;
        } else if (sl->st == P_FEATURES2 && x->f_bind) {
            sl->sess_offered = x->f_session;
            sl->sess_required = x->f_session && !x->f_sess_opt;
            char res[48];
            snprintf(res, sizeof res, "pb%d-%d", (int)getpid(), sl->call);
            xmpp_bind_iq(&sl->pend, res);
            sl->st = P_BIND;
            P.advanced = 1;
        }
        break;
    case K_SUCCESS:
        if (sl->st == P_AUTH) {
            sl->pend_restart = 1;
            sl->st = P_FEATURES2;
            P.advanced = 1;
        }
        break;
    case K_FAILURE:
        P.fail = "SASL failure";
        break;
    case K_STREAMERR:
        P.fail = "stream error";
        break;
    case K_IQ:
        if (!strcmp(x->type, "error")) {
            P.fail = "iq error";
        } else if (!strcmp(x->type, "result")) {
            if (sl->st == P_BIND && !strcmp(x->id, "bind_1")) {
                snprintf(sl->jid, sizeof sl->jid, "%.*s", (int)x->text.len,
                         x->text.p ? x->text.p : "");
                if (sl->sess_required || (opt.session_advertised && sl->sess_offered)) {
                    xmpp_session_iq(&sl->pend);
                    sl->st = P_SESSION;
                } else {
                    sl->st = P_DONE;
                }
                P.advanced = 1;
            } else if (sl->st == P_SESSION && !strcmp(x->id, "sess_1")) {
                sl->st = P_DONE;
                P.advanced = 1;
            }
        }
        break;
    default:
        break;
    }
}

static void bosh_answer(slot_t *sl, int status, const char *body, size_t blen)
{
    if (status != 200) {
        char r[96];
        snprintf(r, sizeof r, "HTTP %d", status);
        call_fail(sl, r);
        return;
    }
    P.fail = NULL;
    P.advanced = 0;
    if (bosh_xml_parse(&X, sl, body, blen) < 0) {
        call_fail(sl, "unparsable response body");
        return;
    }
    if (P.fail) {
        call_fail(sl, P.fail);
        return;
    }
    if (X.is_terminate) {
        char r[128];
        snprintf(r, sizeof r, "terminated by the server: %s",
                 X.condition[0] ? X.condition : "(no condition)");
        call_fail(sl, r);
        return;
    }
    if (sl->st == P_CREATE) {
        call_fail(sl, "no sid in the creation response");
        return;
    }
    if (sl->st == P_DONE) {
        call_done(sl);
        return;
    }
    bosh_send(sl); /* the next step, or an empty poll for what has not come yet */
}

/* ------------------------------------------------------------------ HTTP responses */
static void handle_response(hconn_t *c, const char *body, size_t blen)
{
    slot_t *sl = c->sl;
    int status = c->h.status;
    c->h.state = CS_IDLE;
    if (c->h.close_after)
        conn_close(c);
    if (c->which == 1) {
        sl->term_busy = 0;
        if (status == 200) {
            term_ok++;
        } else {
            char r[64];
            snprintf(r, sizeof r, "terminate: HTTP %d", status);
            note_reason(r);
            term_failed++;
        }
        term_pump(sl);
        if (sl->st == P_ENDING && !sl->term_busy)
            slot_next(sl);
        return;
    }
    if (opt.mode == M_MODULE)
        module_answer(sl, status, body);
    else
        bosh_answer(sl, status, body, blen);
}

/* 1 = one response handled, 0 = need more, -1 = broken */
static int try_response(hconn_t *c, int eof)
{
    static buf_t rbody; /* copied out: handle_response may close the connection */
    int r = http_response(&c->h, eof, &rbody);
    if (r == 1)
        handle_response(c, rbody.p, rbody.len);
    return r;
}

static void conn_broken(hconn_t *c, const char *why)
{
    slot_t *sl = c->sl;
    int busy = c->h.state == CS_BUSY || c->h.state == CS_CONNECTING;
    conn_close(c);
    if (c->which == 1) {
        if (sl->term_busy && busy) {
            note_reason("terminate: connection broke");
            term_failed++;
            sl->term_busy = 0;
            term_pump(sl);
            if (sl->st == P_ENDING && !sl->term_busy)
                slot_next(sl);
        }
        return;
    }
    if (sl->st != P_IDLE && sl->st != P_DONE && sl->st != P_ENDING)
        call_fail(sl, why);
}

static void on_event(hconn_t *c, uint32_t ev)
{
    if (c->h.state == CS_CONNECTING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        if (http_connect_error(&c->h)) {
            conn_broken(c, "connect failed");
            return;
        }
        c->h.state = CS_BUSY;
    }
    if (c->h.state == CS_BUSY && (ev & EPOLLOUT) && conn_flush(c) < 0) {
        conn_broken(c, "write failed");
        return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        int eof = http_read(&c->h);
        if (c->h.in.len && c->h.state == CS_BUSY) {
            int r = try_response(c, eof);
            if (r < 0) {
                conn_broken(c, "bad HTTP response");
                return;
            }
            if (r == 1)
                return;
        }
        if (eof && c->h.fd >= 0) {
            if (c->h.state == CS_BUSY)
                conn_broken(c, "connection closed by the server");
            else
                conn_close(c);
        }
    }
}

/* ------------------------------------------------------------------ main */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* nearest rank, ms */
static double pct(const uint64_t *v, size_t n, double q)
{
    if (!n)
        return NAN;
    size_t k = (size_t)ceil(q / 100.0 * (double)n);
    if (k < 1)
        k = 1;
    return v[k - 1] / 1000.0;
}

static void usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: prebinder --mode module|bosh --url http://127.0.0.1:PORT/PATH --domain D\n"
            "  [--term-path /http-bind] [--users U] [--first-user 0] [--user-fmt user%%d]\n"
            "  [--pass-fmt pass%%d] [--calls N] [--conc K] [--warmup W] [--keepalive]\n"
            "  [--end none|sync|async] [--session-iq required|advertised] [--call-timeout 15]\n"
            "  [--max-seconds 120] [--samples] [--verbose]\n"
            "module: GET PATH (xmpp-prebind) with HTTP Basic user:pass; bosh: a BOSH login\n"
            "(create, SASL PLAIN, restart, bind, session) against the server's BOSH at PATH.\n"
            "Prints RESULT {json}: latency p50/p90/p99/max (ms) and prebinds/s.\n");
    exit(rc);
}

static void parse_url(const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7))
        die("--url must be http://HOST:PORT/PATH (loopback)");
    p += 7;
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    if (!colon || !slash || colon > slash)
        die("--url needs a port and a path");
    snprintf(opt.host, sizeof opt.host, "%.*s", (int)(colon - p), p);
    opt.port = atoi(colon + 1);
    snprintf(opt.path, sizeof opt.path, "%s", slash);
    snprintf(opt.hosthdr, sizeof opt.hosthdr, "%.*s", (int)(slash - p), p);
}

int main(int argc, char **argv)
{
    opt.users = 100;
    opt.calls = 200;
    opt.conc = 1;
    opt.warmup = 3;
    opt.terminate = 0;
    opt.call_timeout = 15;
    opt.max_seconds = 120;
    snprintf(opt.user_fmt, sizeof opt.user_fmt, "user%%d");
    snprintf(opt.pass_fmt, sizeof opt.pass_fmt, "pass%%d");
    snprintf(opt.term_path, sizeof opt.term_path, "%s", "");
    static struct option lo[] = {
        {"mode", 1, 0, 'm'}, {"url", 1, 0, 'u'}, {"domain", 1, 0, 'd'},
        {"term-path", 1, 0, 'T'}, {"users", 1, 0, 'U'}, {"first-user", 1, 0, 'F'},
        {"user-fmt", 1, 0, 'f'}, {"pass-fmt", 1, 0, 'p'}, {"calls", 1, 0, 'n'},
        {"conc", 1, 0, 'c'}, {"warmup", 1, 0, 'w'}, {"keepalive", 0, 0, 'k'},
        {"no-terminate", 0, 0, 'N'}, {"end", 1, 0, 'E'}, {"session-iq", 1, 0, 'S'}, {"call-timeout", 1, 0, 't'},
        {"max-seconds", 1, 0, 'M'}, {"samples", 0, 0, 's'}, {"verbose", 0, 0, 'v'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    char url[512] = "";
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm':
            opt.mode = !strcmp(optarg, "module") ? M_MODULE : !strcmp(optarg, "bosh") ? M_BOSH : 0;
            break;
        case 'u': snprintf(url, sizeof url, "%s", optarg); break;
        case 'd': snprintf(opt.domain, sizeof opt.domain, "%s", optarg); break;
        case 'T': snprintf(opt.term_path, sizeof opt.term_path, "%s", optarg); break;
        case 'U': opt.users = atoi(optarg); break;
        case 'F': opt.first_user = atoi(optarg); break;
        case 'f': snprintf(opt.user_fmt, sizeof opt.user_fmt, "%s", optarg); break;
        case 'p': snprintf(opt.pass_fmt, sizeof opt.pass_fmt, "%s", optarg); break;
        case 'n': opt.calls = atoi(optarg); break;
        case 'c': opt.conc = atoi(optarg); break;
        case 'w': opt.warmup = atoi(optarg); break;
        case 'k': opt.keepalive = 1; break;
        case 'N': opt.terminate = 0; break;
        case 'E':
            opt.terminate = !strcmp(optarg, "none") ? 0 : !strcmp(optarg, "async") ? 1
                            : !strcmp(optarg, "sync") ? 2 : -1;
            if (opt.terminate < 0)
                usage(2);
            break;
        case 'S':
            if (!strcmp(optarg, "advertised"))
                opt.session_advertised = 1;
            else if (strcmp(optarg, "required"))
                usage(2);
            break;
        case 't': opt.call_timeout = atof(optarg); break;
        case 'M': opt.max_seconds = atof(optarg); break;
        case 's': opt.samples = 1; break;
        case 'v': opt.verbose = 1; break;
        case 'h': usage(0); break;
        default: usage(2);
        }
    }
    if (!opt.mode || !url[0] || !opt.domain[0] || opt.calls < 1 || opt.conc < 1 ||
        opt.conc > MAX_CONC || opt.users < 1 || opt.warmup < 0)
        usage(2);
    parse_url(url);
    if (!opt.term_path[0])
        snprintf(opt.term_path, sizeof opt.term_path, "%s",
                 opt.mode == M_BOSH ? opt.path : "/http-bind");
    if (strcmp(opt.host, "127.0.0.1") && strcmp(opt.host, "localhost"))
        die("loopback only: the host must be 127.0.0.1");
    memset(&srv, 0, sizeof srv);
    srv.sin_family = AF_INET;
    srv.sin_port = htons((uint16_t)opt.port);
    inet_pton(AF_INET, "127.0.0.1", &srv.sin_addr);

    bosh_xml_init(&X, 1, on_body, stanza_done);
    ep = epoll_create1(EPOLL_CLOEXEC);
    S = calloc((size_t)opt.conc, sizeof *S);
    lat_us = calloc((size_t)opt.calls, sizeof *lat_us);
    for (int i = 0; i < opt.conc; i++) {
        S[i].id = i;
        S[i].c.h.fd = S[i].t.h.fd = -1;
        S[i].c.sl = S[i].t.sl = &S[i];
        S[i].t.which = 1;
    }

    uint64_t t_start = now_ns(), hard_end = t_start + (uint64_t)(opt.max_seconds * NS);
    uint64_t run_t0 = 0, run_t1 = 0;
    double cpu0 = 0;
    int aborted = 0;
    struct epoll_event evs[256];
    /* phase 0: warm-up calls one at a time (not counted); phase 1: the run; phase 2: the
       terminates still queued */
    for (int phase = 0; phase < 3; phase++) {
        if (phase == 0) {
            if (!opt.warmup)
                continue;
            warm_phase = 1;
            calls_total = opt.warmup;
            next_call = 0;
            start_call(&S[0]);
        } else if (phase == 1) {
            warm_phase = 0;
            calls_total = opt.calls;
            next_call = 0;
            run_t0 = now_ns();
            cpu0 = cpu_self_s();
            for (int i = 0; i < opt.conc && next_call < calls_total; i++)
                start_call(&S[i]);
        }
        uint64_t phase_end = phase == 2 ? now_ns() + 10 * NS : hard_end;
        for (;;) {
            uint64_t now = now_ns();
            if (phase < 2 && in_flight == 0 && (next_call >= calls_total || stop_issuing))
                break;
            if (phase == 2) {
                int busy = 0;
                for (int i = 0; i < opt.conc; i++)
                    busy += S[i].term_busy || S[i].tql;
                if (!busy || now >= phase_end)
                    break;
            }
            if (now >= hard_end && phase < 2) {
                if (!stop_issuing)
                    fprintf(stderr, "prebinder: --max-seconds %.0f reached\n", opt.max_seconds);
                stop_issuing = 1;
                aborted = 1;
                if (now >= hard_end + (uint64_t)(opt.call_timeout * NS))
                    for (int i = 0; i < opt.conc; i++)
                        if (S[i].st != P_IDLE && S[i].st != P_DONE && S[i].st != P_ENDING)
                            call_fail(&S[i], "cut off by --max-seconds");
            }
            /* per-call timeouts */
            for (int i = 0; i < opt.conc; i++) {
                if (S[i].st == P_ENDING && now - S[i].t0 > (uint64_t)(2 * opt.call_timeout * NS)) {
                    note_reason("terminate: timed out");
                    term_failed++;
                    conn_close(&S[i].t);
                    S[i].term_busy = 0;
                    slot_next(&S[i]);
                } else if (S[i].st != P_IDLE && S[i].st != P_DONE && S[i].st != P_ENDING &&
                           now - S[i].t0 > (uint64_t)(opt.call_timeout * NS)) {
                    call_fail(&S[i], "call timed out");
                }
            }
            int n = epoll_wait(ep, evs, 256, 100);
            if (n < 0 && errno != EINTR)
                die("epoll_wait: %s", strerror(errno));
            for (int i = 0; i < n; i++) {
                uint32_t idx = (uint32_t)evs[i].data.u64, gen = (uint32_t)(evs[i].data.u64 >> 32);
                slot_t *sl = &S[idx / 2];
                hconn_t *c = idx % 2 ? &sl->t : &sl->c;
                if (c->h.fd < 0 || c->h.gen != gen)
                    continue;
                on_event(c, evs[i].events);
            }
        }
        if (phase == 1)
            run_t1 = now_ns();
    }
    double cpu = cpu_self_s() - cpu0;
    for (int i = 0; i < opt.conc; i++) {
        term_dropped += S[i].tql + S[i].term_busy;
        conn_close(&S[i].c);
        conn_close(&S[i].t);
    }

    qsort(lat_us, nlat, sizeof *lat_us, cmp_u64);
    double secs = (run_t1 - run_t0) / 1e9, sum = 0;
    for (size_t i = 0; i < nlat; i++)
        sum += lat_us[i];
    printf("RESULT {\"mode\":\"%s\",\"conc\":%d,\"calls\":%d,\"ok\":%d,\"failed\":%d,"
           "\"keepalive\":%s,\"end\":\"%s\",\"session_iq\":\"%s\",",
           opt.mode == M_MODULE ? "module" : "bosh", opt.conc, opt.calls, n_ok, n_failed,
           opt.keepalive ? "true" : "false",
           opt.terminate == 2 ? "sync" : opt.terminate ? "async" : "none",
           opt.session_advertised ? "advertised" : "required");
    jnum(stdout, "p50_ms", pct(lat_us, nlat, 50), 1);
    jnum(stdout, "p90_ms", pct(lat_us, nlat, 90), 1);
    jnum(stdout, "p99_ms", pct(lat_us, nlat, 99), 1);
    jnum(stdout, "min_ms", nlat ? lat_us[0] / 1000.0 : NAN, 1);
    jnum(stdout, "max_ms", nlat ? lat_us[nlat - 1] / 1000.0 : NAN, 1);
    jnum(stdout, "mean_ms", nlat ? sum / (double)nlat / 1000.0 : NAN, 1);
    jnum(stdout, "elapsed_s", secs, 1);
    jnum(stdout, "per_s", secs > 0 ? n_ok / secs : NAN, 1);
    jnum(stdout, "client_cpu_s", cpu, 1);
    printf("\"terminated\":%d,\"terminate_failed\":%d,\"terminate_dropped\":%d,"
           "\"aborted\":%s,\"failure_reasons\":{",
           term_ok, term_failed, term_dropped, aborted ? "true" : "false");
    print_reasons_json();
    printf("}");
    if (opt.samples) {
        printf(",\"samples_us\":[");
        for (size_t i = 0; i < nlat; i++)
            printf("%s%" PRIu64, i ? "," : "", lat_us[i]);
        printf("]");
    }
    printf("}\n");
    fflush(stdout);
    return aborted ? 3 : 0;
}
