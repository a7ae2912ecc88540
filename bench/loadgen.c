/*
 * loadgen: a BOSH (XEP-0124/XEP-0206) load generator, one thread, epoll.
 *
 * Each client behaves like Strophe.js with flush() after every send: two keep-alive HTTP/1.1
 * connections, at most two requests outstanding (hold=1), one long-poll always held, full login
 * (session creation, SASL PLAIN, restart, bind, session if required, initial presence). Clients
 * 2k and 2k+1 are partners: during a rate step the aggregate rate R (messages/s) is spread
 * round-robin over all online clients, each message goes to the partner's full JID and carries
 * "xb <sender> <seq> <send time, CLOCK_MONOTONIC ns> <step>" so the receiver measures latency
 * and counts lost and duplicated messages exactly (a bitmap per receiver).
 *
 * Direct mode (--c2s 127.0.0.1:PORT, the reference without BOSH): each client is one XMPP
 * client stream over TCP to the server's c2s port instead: stream header, STARTTLS when offered
 * (certificate checked with --tls-ca), SASL PLAIN, restart, bind, session if required, initial
 * presence; the same pairs, ramp, ladder and message format. Latency then ends when the read
 * that completes the receiver's <message/> returns; closing = unavailable presence and
 * </stream:stream>, done when the server closes the connection.
 *
 * Output on stdout, one line each, flushed (bench/run reads it live):
 *   MARK <name> <monotonic ns> [k=v ...]     phase boundaries (the harness samples /proc there)
 *   STEP {json}                              one rate step
 *   RESULT {json}                            totals, login latency, errors
 * Diagnostics on stderr. Exit 0 ok, 2 usage, 3 wall-clock limit reached (RESULT still printed).
 *
 * Build: make -C bench loadgen (loadgen.c bosh_client.c c2s_io.c -lexpat -lssl -lcrypto -lm)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <expat.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bosh_client.h"
#include "c2s_io.h"

#define MAX_STEPS 64
#define MAX_MSGS_PER_REQ 64

/* ------------------------------------------------------------------ histogram (µs, ~1.5 %) */
#define HSUB 64
#define HBUCKETS (36 * HSUB)
typedef struct {
    uint64_t n, max, sum;
    uint32_t b[HBUCKETS];
} hist_t;

static int hidx(uint64_t v)
{
    if (v < HSUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 6;
    int idx = (msb - 5) * HSUB + (int)((v >> shift) & (HSUB - 1));
    return idx < HBUCKETS ? idx : HBUCKETS - 1;
}

static double hval(int idx) /* midpoint of the bucket, µs */
{
    if (idx < HSUB)
        return idx;
    int msb = idx / HSUB + 5, sub = idx % HSUB, shift = msb - 6;
    double lo = (double)((uint64_t)(HSUB + sub) << shift);
    return lo + (double)(1ULL << shift) / 2.0;
}

static void hadd(hist_t *h, uint64_t us)
{
    h->b[hidx(us)]++;
    h->n++;
    h->sum += us;
    if (us > h->max)
        h->max = us;
}

/* percentile in ms; `total` >= h->n counts the missing values as +infinity */
static double hpct(const hist_t *h, double p, uint64_t total)
{
    if (total < h->n)
        total = h->n;
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)total);
    if (want < 1)
        want = 1;
    if (want > h->n)
        return INFINITY;
    uint64_t acc = 0;
    for (int i = 0; i < HBUCKETS; i++) {
        acc += h->b[i];
        if (acc >= want) {
            double v = hval(i);
            if (v > (double)h->max)
                v = (double)h->max;
            return v / 1000.0;
        }
    }
    return h->max / 1000.0;
}

/* ------------------------------------------------------------------ options */
static struct {
    char host[64];
    int port;
    char path[256];
    char hosthdr[128];
    char domain[128];
    int clients;
    int first_user;
    char user_fmt[64], pass_fmt[64];
    int wait;
    double login_rate;
    int login_conc;
    double login_timeout;
    double settle;
    double idle_secs;
    double steps[MAX_STEPS];
    int nsteps;
    double step_secs, drain_secs, final_drain_secs;
    double p99_limit_ms;
    int continue_after_fail;
    int step_retries;
    double max_seconds;
    int terminate;
    double terminate_secs;
    int verbose;
    int dump_missing;
    int c2s;          /* direct mode: XMPP over TCP to srv, no BOSH */
    char tls_ca[512]; /* direct mode: the CA the server's certificate must chain to */
} opt;

/* ------------------------------------------------------------------ state */
typedef struct {
    uint32_t seq;
    uint16_t step;
    uint64_t ts;
} msg_t;

enum { R_FREE = 0, R_CREATE, R_NORMAL, R_RESTART, R_TERMINATE };

typedef struct req {
    int kind;
    uint64_t rid;
    buf_t data; /* the whole HTTP request */
    msg_t msgs[MAX_MSGS_PER_REQ];
    int nmsgs;
    int retried;       /* the free retry on a reused keep-alive connection was used */
    int resends;       /* Strophe-like re-sends (same rid and body) after a broken request */
    uint64_t resend_at;
    uint64_t t_sent;
} req_t;

struct client;
typedef struct conn {
    http_conn_t h;
    int served; /* responses read on this TCP connection (keep-alive reuse) */
    struct client *cl;
    req_t *req;
    uint64_t deadline;
    c2s_io_t io; /* direct mode: the stream's bytes (conn[0] only) */
} conn_t;

enum {
    S_NEW = 0, S_CREATING, S_WAIT_FEATURES, S_AUTH, S_WAIT_FEATURES2, S_BIND, S_SESSION,
    S_ONLINE, S_TERMINATING, S_DONE, S_FAILED,
    S_TLS_FEATURES, S_STARTTLS, S_TLS_HANDSHAKE /* direct mode, before S_WAIT_FEATURES */
};

typedef struct client {
    int id;
    int state;
    char user[64], pass[64];
    char sid[128];
    uint64_t rid;
    int wait;
    conn_t conn[2];
    req_t reqs[2];
    int outstanding;
    buf_t pend;        /* stanzas for the next request (login, presence) */
    int pend_restart;
    int sess_required;
    msg_t *q;          /* queued messages (ring) */
    size_t qhead, qlen, qcap;
    char jid[256];
    uint64_t t_login0;
    uint32_t next_seq;
    uint8_t *seen;     /* bitmap of partner seqs received */
    size_t seen_bytes;
    uint64_t *carried; /* --dump-missing: rid that carried seq i (bit 63: retried) */
    size_t carried_cap;
    bosh_xml_t *sx;    /* direct mode: the stream's parser */
} client_t;

static client_t *C;
static int ep;
static int n_online, n_failed, n_logging_in, n_done_term;
static hist_t login_hist;
static hist_t step_hist[MAX_STEPS];
static uint64_t st_gen[MAX_STEPS], st_written[MAX_STEPS], st_recv[MAX_STEPS], st_dup[MAX_STEPS],
    st_failed_send[MAX_STEPS];
static uint64_t st_gen_lag_max[MAX_STEPS];
static int step_is_retry[MAX_STEPS];
static uint64_t unsent_at_term, resends_total;
#define MAX_RESENDS 3
typedef struct {
    client_t *cl;
    req_t *rq;
} pending_t;
static pending_t *resendq;
static size_t resendq_len, resendq_cap;
static uint64_t msg_errors, msg_stray, http_errors, conn_retries, req_timeouts, requests_sent,
    responses_recv;
static int granted_wait = -1, granted_requests = -1;
static struct sockaddr_in srv;
static SSL_CTX *tls_ctx; /* direct mode */

static void mark(const char *name, const char *fmt, ...)
{
    printf("MARK %s %" PRIu64, name, now_ns());
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        putchar(' ');
        vprintf(fmt, ap);
        va_end(ap);
    }
    printf(" lg_cpu=%.3f\n", cpu_self_s());
    fflush(stdout);
}

/* ------------------------------------------------------------------ connections */
static void conn_close(conn_t *c)
{
    c2s_io_reset(&c->io);
    http_close(&c->h, ep);
    c->served = 0;
}

static void client_fail(client_t *cl, const char *why);
static int schedule_resend(client_t *cl, req_t *rq, const char *why);
static void pump(client_t *cl);

static int conn_open(conn_t *c)
{
    if (http_open(&c->h, ep, &srv, (uint32_t)(c->cl->id * 2 + (c == &c->cl->conn[1]))) < 0)
        return -1;
    c->served = 0;
    return 0;
}

/* write what is pending; 0 ok (maybe partial), -1 error */
static int conn_flush(conn_t *c)
{
    if (c->h.state != CS_BUSY || !c->req)
        return 0;
    return http_flush(&c->h, c->req->data.p, c->req->data.len);
}

static uint64_t req_deadline(client_t *cl)
{
    int w = cl->wait > 0 ? cl->wait : opt.wait;
    return now_ns() + (uint64_t)(w + 30) * NS;
}

/* put req on a free connection of cl and start writing */
static int conn_start(client_t *cl, req_t *rq)
{
    conn_t *c = NULL;
    for (int i = 0; i < 2; i++)
        if (cl->conn[i].h.state == CS_IDLE) {
            c = &cl->conn[i];
            break;
        }
    if (!c)
        for (int i = 0; i < 2; i++)
            if (cl->conn[i].h.state == CS_CLOSED) {
                c = &cl->conn[i];
                break;
            }
    if (!c)
        return -1;
    int connecting = 0;
    if (c->h.state == CS_CLOSED) {
        if (conn_open(c) < 0)
            return -1;
        connecting = 1;
    }
    c->req = rq;
    c->h.woff = 0;
    http_reset_parse(&c->h);
    c->deadline = req_deadline(cl);
    rq->t_sent = now_ns();
    requests_sent++;
    if (connecting) {
        c->h.state = CS_CONNECTING; /* written on EPOLLOUT */
        return 0;
    }
    c->h.state = CS_BUSY;
    if (conn_flush(c) < 0)
        return -2;
    return 0;
}

/* ------------------------------------------------------------------ requests */
static req_t *req_alloc(client_t *cl)
{
    for (int i = 0; i < 2; i++)
        if (cl->reqs[i].kind == R_FREE)
            return &cl->reqs[i];
    return NULL;
}

static void http_wrap(req_t *rq, const char *body, size_t blen)
{
    http_post(&rq->data, opt.path, opt.hosthdr, "xb-loadgen/1", body, blen, 1);
}

static buf_t scratch;

static void send_req(client_t *cl, req_t *rq)
{
    int r = conn_start(cl, rq);
    if (r < 0)
        client_fail(cl, r == -1 ? "cannot open a connection" : "write failed");
}

static void do_create(client_t *cl)
{
    req_t *rq = req_alloc(cl);
    rq->kind = R_CREATE;
    rq->nmsgs = 0;
    rq->retried = 0;
    rq->resends = 0;
    rq->resend_at = 0;
    rq->rid = cl->rid++;
    scratch.len = 0;
    bosh_creation_body(&scratch, rq->rid, opt.domain, opt.wait);
    http_wrap(rq, scratch.p, scratch.len);
    cl->outstanding++;
    cl->state = S_CREATING;
    cl->t_login0 = now_ns();
    send_req(cl, rq);
}

static void gen_body_text(client_t *cl, const msg_t *m, buf_t *b)
{
    client_t *to = &C[cl->id ^ 1];
    buf_printf(b,
               "<message xmlns='jabber:client' to='%s' type='chat' id='m%u'><body>xb %d %u %"
               PRIu64 " %u</body></message>",
               to->jid, m->seq, cl->id, m->seq, m->ts, m->step);
}

/* one request with whatever is pending (restart alone; stanzas + messages), or empty */
static void send_next(client_t *cl, int kind)
{
    req_t *rq = req_alloc(cl);
    if (!rq)
        return;
    rq->kind = kind;
    rq->nmsgs = 0;
    rq->retried = 0;
    rq->resends = 0;
    rq->resend_at = 0;
    rq->rid = cl->rid++;
    scratch.len = 0;
    if (kind == R_RESTART) {
        bosh_restart_body(&scratch, rq->rid, cl->sid, opt.domain);
    } else if (kind == R_TERMINATE) {
        bosh_terminate_body(&scratch, rq->rid, cl->sid);
    } else {
        buf_printf(&scratch, "<body rid='%" PRIu64 "' sid='%s' xmlns='" HTTPBIND_NS "'",
                   rq->rid, cl->sid);
        if (cl->pend.len == 0 && cl->qlen == 0) {
            buf_add(&scratch, "/>", 2);
        } else {
            buf_add(&scratch, ">", 1);
            if (cl->pend.len) {
                buf_add(&scratch, cl->pend.p, cl->pend.len);
                cl->pend.len = 0;
            }
            while (cl->qlen && rq->nmsgs < MAX_MSGS_PER_REQ) {
                msg_t *m = &cl->q[cl->qhead];
                gen_body_text(cl, m, &scratch);
                if (opt.dump_missing) {
                    if (m->seq >= cl->carried_cap) {
                        size_t nc = cl->carried_cap ? cl->carried_cap : 1024;
                        while (nc <= m->seq)
                            nc *= 2;
                        cl->carried = realloc(cl->carried, nc * sizeof *cl->carried);
                        memset(cl->carried + cl->carried_cap, 0,
                               (nc - cl->carried_cap) * sizeof *cl->carried);
                        cl->carried_cap = nc;
                    }
                    cl->carried[m->seq] = rq->rid;
                }
                rq->msgs[rq->nmsgs++] = *m;
                st_written[m->step]++;
                cl->qhead = (cl->qhead + 1) % cl->qcap;
                cl->qlen--;
            }
            buf_add(&scratch, "</body>", 7);
        }
    }
    http_wrap(rq, scratch.p, scratch.len);
    cl->outstanding++;
    send_req(cl, rq);
}

static void c2s_pump(client_t *cl);

static void pump(client_t *cl)
{
    if (opt.c2s) {
        c2s_pump(cl);
        return;
    }
    if (cl->state == S_FAILED || cl->state == S_DONE || cl->state == S_CREATING ||
        cl->state == S_NEW)
        return;
    if (cl->state == S_TERMINATING)
        return;
    while (cl->outstanding < 2 && cl->state != S_FAILED) {
        if (cl->pend_restart) {
            cl->pend_restart = 0;
            send_next(cl, R_RESTART);
        } else if (cl->pend.len || cl->qlen) {
            send_next(cl, R_NORMAL);
        } else if (cl->outstanding == 0) {
            send_next(cl, R_NORMAL);
            break;
        } else {
            break;
        }
    }
}

static void client_fail(client_t *cl, const char *why)
{
    if (cl->state == S_FAILED || cl->state == S_DONE)
        return;
    int was = cl->state;
    char r[160];
    snprintf(r, sizeof r, "%s (in state %d)", why, was);
    note_reason(r);
    if (opt.verbose)
        fprintf(stderr, "client %d failed: %s\n", cl->id, r);
    if (was == S_ONLINE)
        n_online--;
    else if (was == S_TERMINATING)
        n_done_term++;
    else if (was != S_NEW)
        n_logging_in--;
    n_failed++;
    cl->state = S_FAILED;
    for (int i = 0; i < 2; i++) {
        req_t *rq = &cl->reqs[i];
        if (rq->kind != R_FREE)
            for (int k = 0; k < rq->nmsgs; k++)
                st_failed_send[rq->msgs[k].step]++;
        rq->kind = R_FREE;
        conn_close(&cl->conn[i]);
        cl->conn[i].req = NULL;
    }
    cl->outstanding = 0;
    unsent_at_term += cl->qlen;
    cl->qlen = 0;
}

/* ------------------------------------------------------------------ XML of a response */
static bosh_xml_t X;
static uint64_t t_resp; /* time the response being parsed was complete */

static void on_message(client_t *cl, const char *type, const char *text)
{
    if (type && strcmp(type, "error") == 0) {
        msg_errors++;
        return;
    }
    int from;
    unsigned seq, step;
    uint64_t ts;
    if (!text || sscanf(text, "xb %d %u %" SCNu64 " %u", &from, &seq, &ts, &step) != 4 ||
        step >= MAX_STEPS) {
        msg_stray++;
        return;
    }
    if (from != (cl->id ^ 1)) {
        msg_stray++;
        return;
    }
    size_t byte = seq >> 3;
    if (byte >= cl->seen_bytes) {
        size_t nb = cl->seen_bytes ? cl->seen_bytes : 1024;
        while (nb <= byte)
            nb *= 2;
        cl->seen = realloc(cl->seen, nb);
        memset(cl->seen + cl->seen_bytes, 0, nb - cl->seen_bytes);
        cl->seen_bytes = nb;
    }
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (cl->seen[byte] & bit) {
        st_dup[step]++;
        return;
    }
    cl->seen[byte] |= bit;
    st_recv[step]++;
    uint64_t lat = t_resp > ts ? (t_resp - ts) / 1000 : 0;
    hadd(&step_hist[step], lat);
}

static void logged_in(client_t *cl);

/* the creation response's attributes */
static void on_body(bosh_xml_t *x, const char **a)
{
    client_t *cl = x->ud;
    if (cl->state == S_CREATING) {
        const char *s = xml_attr(a, "sid");
        if (s)
            snprintf(cl->sid, sizeof cl->sid, "%s", s);
        const char *w = xml_attr(a, "wait");
        if (w)
            cl->wait = atoi(w);
        if (w && granted_wait < 0)
            granted_wait = atoi(w);
        const char *rq = xml_attr(a, "requests");
        if (rq && granted_requests < 0)
            granted_requests = atoi(rq);
        if (cl->sid[0])
            cl->state = S_WAIT_FEATURES; /* features may come in this very response */
    }
}

static void stanza_done(bosh_xml_t *x)
{
    client_t *cl = x->ud;
    if (cl->state == S_FAILED)
        return;
    switch (x->kind) {
    case K_FEATURES:
        if (cl->state == S_TLS_FEATURES) {
            if (x->f_starttls) {
                xmpp_starttls(&cl->pend);
                cl->state = S_STARTTLS;
                break;
            }
            cl->state = S_WAIT_FEATURES; /* a plain stream: SASL at once */
        }
        if (cl->state == S_WAIT_FEATURES) {
            if (!x->f_mechs)
                return; /* not yet the SASL features */
            if (!x->f_plain) {
                client_fail(cl, "PLAIN not offered");
                return;
            }
            xmpp_auth_plain(&cl->pend, cl->user, cl->pass);
            cl->state = S_AUTH;
        } else if (cl->state == S_WAIT_FEATURES2) {
            if (!x->f_bind) {
                client_fail(cl, "no bind feature after restart");
                return;
            }
            cl->sess_required = x->f_session && !x->f_sess_opt;
            char res[32];
            snprintf(res, sizeof res, "lg%d", cl->id);
            xmpp_bind_iq(&cl->pend, res);
            cl->state = S_BIND;
        }
        break;
    case K_SUCCESS:
        if (cl->state == S_AUTH) {
            cl->pend_restart = 1;
            cl->state = S_WAIT_FEATURES2;
        }
        break;
    case K_FAILURE:
        client_fail(cl, cl->state == S_STARTTLS ? "STARTTLS failure" : "SASL failure");
        break;
    case K_PROCEED:
        if (cl->state == S_STARTTLS)
            cl->state = S_TLS_HANDSHAKE; /* started once the parser has returned */
        break;
    case K_STREAMERR:
        client_fail(cl, "stream error");
        break;
    case K_IQ:
        if (!strcmp(x->type, "error")) {
            client_fail(cl, "iq error");
        } else if (!strcmp(x->type, "result")) {
            if (cl->state == S_BIND && !strcmp(x->id, "bind_1")) {
                snprintf(cl->jid, sizeof cl->jid, "%.*s", (int)x->text.len,
                         x->text.p ? x->text.p : "");
                if (cl->sess_required) {
                    xmpp_session_iq(&cl->pend);
                    cl->state = S_SESSION;
                } else {
                    logged_in(cl);
                }
            } else if (cl->state == S_SESSION && !strcmp(x->id, "sess_1")) {
                logged_in(cl);
            }
        }
        break;
    case K_MESSAGE:
        on_message(cl, x->type, x->text.p ? x->text.p : "");
        break;
    default:
        break;
    }
}

static void logged_in(client_t *cl)
{
    uint64_t t = now_ns();
    hadd(&login_hist, (t - cl->t_login0) / 1000);
    buf_printf(&cl->pend, "<presence xmlns='jabber:client'/>");
    cl->state = S_ONLINE;
    n_logging_in--;
    n_online++;
}

/* ------------------------------------------------------------------ responses */
static void handle_response(conn_t *c, const char *body, size_t blen)
{
    client_t *cl = c->cl;
    req_t *rq = c->req;
    int status = c->h.status;
    c->req = NULL;
    c->served++;
    c->h.state = CS_IDLE;
    if (c->h.close_after)
        conn_close(c);
    responses_recv++;
    if (status >= 500 && status < 600) {
        http_errors++;
        char r[64];
        snprintf(r, sizeof r, "HTTP %d", status);
        if (schedule_resend(cl, rq, r) == 0)
            return;
    }
    cl->outstanding--;
    int kind = rq->kind;
    rq->kind = R_FREE;
    if (status != 200) {
        if (status < 500 || status >= 600)
            http_errors++;
        char r[64];
        snprintf(r, sizeof r, "HTTP %d", status);
        for (int k = 0; k < rq->nmsgs; k++)
            st_failed_send[rq->msgs[k].step]++;
        client_fail(cl, r);
        return;
    }
    t_resp = now_ns();
    if (bosh_xml_parse(&X, cl, body, blen) < 0) {
        if (opt.verbose)
            fprintf(stderr, "client %d: bad XML (%s): %.*s\n", cl->id, bosh_xml_error(&X),
                    (int)(blen > 300 ? 300 : blen), body);
        client_fail(cl, "unparsable response body");
        return;
    }
    if (cl->state == S_FAILED)
        return;
    if (kind == R_CREATE) {
        if (!cl->sid[0] && !X.is_terminate) {
            client_fail(cl, "no sid in the creation response");
            return;
        }
    }
    if (X.is_terminate) {
        if (cl->state == S_TERMINATING) {
            if (cl->outstanding == 0) {
                cl->state = S_DONE;
                n_done_term++;
                for (int i = 0; i < 2; i++)
                    conn_close(&cl->conn[i]);
            }
            return;
        }
        char r[128];
        snprintf(r, sizeof r, "terminated by the server: %s",
                 X.condition[0] ? X.condition : "(no condition)");
        client_fail(cl, r);
        return;
    }
    if (cl->state == S_TERMINATING) {
        if (cl->pend_restart == 2 && cl->outstanding < 2) {
            cl->pend_restart = 0;
            send_next(cl, R_TERMINATE);
        } else if (cl->outstanding == 0) {
            cl->state = S_DONE;
            n_done_term++;
            for (int i = 0; i < 2; i++)
                conn_close(&cl->conn[i]);
        }
        return;
    }
    pump(cl);
}

/* parse what is in c->h.in; 1 = one response handled, 0 = need more, -1 = broken */
static int try_response(conn_t *c, int eof)
{
    static buf_t rbody; /* copied out: handle_response may close the connection */
    int r = http_response(&c->h, eof, &rbody);
    if (r != 1)
        return r;
    if (c->h.stray && opt.verbose)
        fprintf(stderr, "client %d: %zu stray bytes after a response\n", c->cl->id, c->h.stray);
    handle_response(c, rbody.p, rbody.len);
    return 1;
}

/* the connection broke: retry the request once on a fresh connection if it was a reused
 * keep-alive connection and nothing of the answer came, else the client fails */
/* Like Strophe (and test/xbtest's client): a request whose connection broke before an answer,
 * or that got a 5xx, is sent again with the same rid and body, up to MAX_RESENDS times, after
 * 100, 200, 300 ms; never skipped (the next rid would fall outside the window). */
static int schedule_resend(client_t *cl, req_t *rq, const char *why)
{
    if (rq->resends >= MAX_RESENDS || cl->state == S_TERMINATING)
        return -1;
    rq->resends++;
    resends_total++;
    rq->resend_at = now_ns() + (uint64_t)rq->resends * 100 * MS;
    if (opt.verbose)
        fprintf(stderr, "%.3f client %d: rid %" PRIu64 " (%d msgs) re-sent (#%d): %s\n",
                now_ns() / 1e9, cl->id, rq->rid, rq->nmsgs, rq->resends, why);
    if (resendq_len == resendq_cap) {
        resendq_cap = resendq_cap ? resendq_cap * 2 : 64;
        resendq = realloc(resendq, resendq_cap * sizeof *resendq);
    }
    resendq[resendq_len].cl = cl;
    resendq[resendq_len].rq = rq;
    resendq_len++;
    return 0;
}

/* due re-sends; returns the next due time (or `next`) */
static uint64_t run_resends(uint64_t now, uint64_t next)
{
    size_t w = 0;
    for (size_t i = 0; i < resendq_len; i++) {
        pending_t p = resendq[i];
        if (p.cl->state == S_FAILED || p.cl->state == S_DONE || p.rq->kind == R_FREE)
            continue;
        if (p.rq->resend_at <= now) {
            p.rq->resend_at = 0;
            requests_sent--; /* counted again by conn_start */
            if (conn_start(p.cl, p.rq) < 0)
                client_fail(p.cl, "re-send failed");
            continue;
        }
        if (p.rq->resend_at < next)
            next = p.rq->resend_at;
        resendq[w++] = p;
    }
    resendq_len = w;
    return next;
}

/* the connection broke: retry at once on a fresh connection if it was a reused keep-alive
 * connection and nothing of the answer came (the server may have closed it idle), else
 * re-send like Strophe; the client fails when the re-sends are used up */
static void conn_broken(conn_t *c, const char *why)
{
    client_t *cl = c->cl;
    req_t *rq = c->req;
    int fresh_retry = rq && c->served > 0 && c->h.in.len == 0 && !rq->retried;
    int served = c->served;
    conn_close(c);
    c->req = NULL;
    if (!rq)
        return;
    for (int k = 0; opt.dump_missing && k < rq->nmsgs; k++)
        if (rq->msgs[k].seq < cl->carried_cap)
            cl->carried[rq->msgs[k].seq] |= 1ULL << 63;
    if (fresh_retry) {
        conn_retries++;
        rq->retried = 1;
        if (opt.verbose)
            fprintf(stderr, "%.3f client %d: rid %" PRIu64 " (%d msgs) retried: %s after %d "
                    "responses on that connection\n", now_ns() / 1e9, cl->id, rq->rid,
                    rq->nmsgs, why, served);
        requests_sent--; /* counted again by conn_start */
        if (conn_start(cl, rq) < 0)
            client_fail(cl, "retry failed");
        return;
    }
    if (cl->state == S_TERMINATING) {
        rq->kind = R_FREE;
        cl->outstanding--;
        if (cl->outstanding == 0) {
            cl->state = S_DONE;
            n_done_term++;
            for (int i = 0; i < 2; i++)
                conn_close(&cl->conn[i]);
        }
        return;
    }
    if (schedule_resend(cl, rq, why) == 0)
        return;
    client_fail(cl, why);
}

static void on_event(conn_t *c, uint32_t ev)
{
    client_t *cl = c->cl;
    if (c->h.state == CS_CONNECTING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        if (http_connect_error(&c->h)) {
            conn_broken(c, "connect failed");
            return;
        }
        c->h.state = c->req ? CS_BUSY : CS_IDLE;
    }
    if (c->h.state == CS_BUSY && (ev & EPOLLOUT)) {
        if (conn_flush(c) < 0) {
            conn_broken(c, "write failed");
            return;
        }
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        int eof = http_read(&c->h);
        if (c->h.in.len && c->h.state == CS_BUSY) {
            int r = try_response(c, eof);
            if (r < 0) {
                client_fail(cl, "bad HTTP response");
                return;
            }
            if (r == 1)
                return; /* handle_response closed it if the server did (eof included): the
                           connection may already carry the client's next request */
        }
        if (eof && c->h.fd >= 0) {
            if (c->h.state == CS_BUSY)
                conn_broken(c, "connection closed by the server");
            else
                conn_close(c);
        }
    }
}

/* ------------------------------------------------------------------ direct mode (--c2s) */
static buf_t c2s_in; /* what one read brought, parsed at once */

static void c2s_start(client_t *cl)
{
    conn_t *c = &cl->conn[0];
    if (!cl->sx) {
        cl->sx = calloc(1, sizeof *cl->sx);
        bosh_xml_init(cl->sx, 0, on_body, stanza_done);
    }
    bosh_xml_stream_begin(cl->sx, cl);
    cl->t_login0 = now_ns();
    cl->state = S_TLS_FEATURES;
    if (conn_open(c) < 0) {
        client_fail(cl, "cannot open a connection");
        return;
    }
    xmpp_stream_header(&c->io.out, opt.domain); /* written once connected */
}

/* pending stanzas and queued messages go out at once: a stream has no request to wait for */
static void c2s_pump(client_t *cl)
{
    conn_t *c = &cl->conn[0];
    if (cl->state == S_FAILED || cl->state == S_DONE || c->h.fd < 0)
        return;
    if (cl->pend.len) {
        buf_add(&c->io.out, cl->pend.p, cl->pend.len);
        cl->pend.len = 0;
    }
    while (cl->qlen) {
        msg_t *m = &cl->q[cl->qhead];
        gen_body_text(cl, m, &c->io.out);
        st_written[m->step]++;
        cl->qhead = (cl->qhead + 1) % cl->qcap;
        cl->qlen--;
    }
    if (c->h.state == CS_BUSY && c2s_io_flush(&c->io, c->h.fd) < 0)
        client_fail(cl, "write failed");
}

static void c2s_terminate(client_t *cl)
{
    conn_t *c = &cl->conn[0];
    buf_printf(&c->io.out, "<presence xmlns='jabber:client' type='unavailable'/>"
               "</stream:stream>");
    if (c->h.state == CS_BUSY && c2s_io_flush(&c->io, c->h.fd) < 0) {
        cl->state = S_DONE;
        n_done_term++;
        conn_close(c);
    }
}

static void c2s_event(conn_t *c, uint32_t ev)
{
    client_t *cl = c->cl;
    char err[200];
    int readable = (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    if (c->h.state == CS_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (http_connect_error(&c->h)) {
            client_fail(cl, "connect failed");
            return;
        }
        c->h.state = CS_BUSY;
    }
    if (c->io.handshaking) {
        int one = 1; /* ACK the server's flight at once (see below) */
        setsockopt(c->h.fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
        int r = c2s_io_handshake(&c->io, err, sizeof err);
        if (r < 0) {
            client_fail(cl, err);
            return;
        }
        if (r == 0)
            return;
        /* TLS is up: a new stream over it; the handshake's last read may have left records
           (session tickets) behind, so read whatever the event */
        bosh_xml_stream_begin(cl->sx, cl);
        xmpp_stream_header(&c->io.out, opt.domain);
        cl->state = S_WAIT_FEATURES;
        readable = 1;
    }
    if (c2s_io_flush(&c->io, c->h.fd) < 0) {
        client_fail(cl, "write failed");
        return;
    }
    if (!readable)
        return;
    int eof = c2s_io_read(&c->io, c->h.fd, &c2s_in);
    /* as the bridge daemon does on its streams, after every read (TLS records with no stream
       data, such as session tickets, too): ACK at once, so that Prosody's next small write is
       not held by Nagle until our delayed ACK (40 ms) */
    int one = 1;
    setsockopt(c->h.fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    if (c2s_in.len) {
        t_resp = now_ns();
        int r = bosh_xml_feed(cl->sx, c2s_in.p, c2s_in.len);
        c2s_in.len = 0;
        if (cl->state == S_FAILED)
            return;
        if (r < 0) {
            if (opt.verbose)
                fprintf(stderr, "client %d: bad XML (%s)\n", cl->id, bosh_xml_error(cl->sx));
            client_fail(cl, "unparsable stream");
            return;
        }
        if (cl->pend_restart == 1) { /* SASL success: the server waits for a new header */
            cl->pend_restart = 0;
            bosh_xml_stream_begin(cl->sx, cl);
            xmpp_stream_header(&c->io.out, opt.domain);
        }
        if (cl->state == S_TLS_HANDSHAKE && !c->io.ssl) {
            if (c2s_io_starttls(&c->io, tls_ctx, c->h.fd, opt.domain) < 0) {
                client_fail(cl, "cannot start TLS");
                return;
            }
            /* drive the handshake as if the socket were ready: with the server on the other
               CPU its answer may be there already, and then the handshake ends in this call */
            c2s_event(c, EPOLLIN | EPOLLOUT);
            return;
        }
        c2s_pump(cl);
    }
    if (eof && c->h.fd >= 0) {
        if (cl->state == S_TERMINATING) {
            cl->state = S_DONE;
            n_done_term++;
            conn_close(c);
        } else {
            client_fail(cl, "connection closed by the server");
        }
    }
}

/* ------------------------------------------------------------------ messages */
static void enqueue_msg(client_t *cl, uint64_t ts, int step)
{
    if (cl->qlen == cl->qcap) {
        size_t nc = cl->qcap ? cl->qcap * 2 : 64;
        msg_t *nq = malloc(nc * sizeof *nq);
        for (size_t i = 0; i < cl->qlen; i++)
            nq[i] = cl->q[(cl->qhead + i) % cl->qcap];
        free(cl->q);
        cl->q = nq;
        cl->qhead = 0;
        cl->qcap = nc;
    }
    msg_t *m = &cl->q[(cl->qhead + cl->qlen) % cl->qcap];
    m->seq = cl->next_seq++;
    m->ts = ts;
    m->step = (uint16_t)step;
    cl->qlen++;
    st_gen[step]++;
}

/* ------------------------------------------------------------------ JSON output */
static void print_step(int i, double rate, double secs, int pass, double lg_cpu,
                       int failed_clients)
{
    hist_t *h = &step_hist[i];
    uint64_t missing = st_gen[i] > st_recv[i] ? st_gen[i] - st_recv[i] : 0;
    printf("STEP {\"i\":%d,\"rate\":%.1f,\"secs\":%.3f,\"generated\":%" PRIu64
           ",\"written\":%" PRIu64 ",\"received\":%" PRIu64 ",\"dups\":%" PRIu64
           ",\"missing_at_end\":%" PRIu64 ",\"failed_send\":%" PRIu64 ",",
           i, rate, secs, st_gen[i], st_written[i], st_recv[i], st_dup[i], missing,
           st_failed_send[i]);
    jnum(stdout, "p50_ms", hpct(h, 50, st_gen[i]), 1);
    jnum(stdout, "p90_ms", hpct(h, 90, st_gen[i]), 1);
    jnum(stdout, "p99_ms", hpct(h, 99, st_gen[i]), 1);
    jnum(stdout, "max_ms", h->n ? h->max / 1000.0 : 0, 1);
    jnum(stdout, "mean_ms", h->n ? (double)h->sum / h->n / 1000.0 : 0, 1);
    jnum(stdout, "gen_lag_max_ms", st_gen_lag_max[i] / 1e6, 1);
    jnum(stdout, "lg_cpu_s", lg_cpu, 1);
    printf("\"online\":%d,\"clients_failed\":%d,\"retry\":%s,\"pass\":%s}\n", n_online,
           failed_clients, step_is_retry[i] ? "true" : "false", pass ? "true" : "false");
    fflush(stdout);
}

/* ------------------------------------------------------------------ main loop */
enum { PH_LOGIN, PH_SETTLE, PH_IDLE, PH_STEP, PH_DRAIN, PH_FINAL, PH_TERM, PH_END };

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --url http://127.0.0.1:PORT/http-bind --domain D --clients N [options]\n"
            "       loadgen --c2s 127.0.0.1:PORT --domain D --clients N [options]   (no BOSH: XMPP\n"
            "               client streams over TCP, STARTTLS when offered)\n"
            "  --tls-ca FILE          --c2s: the server certificate must chain to FILE\n"
            "  --user-fmt user%%d --pass-fmt pass%%d --first-user 0\n"
            "  --wait 60              BOSH wait requested\n"
            "  --login-rate 50        session starts per second\n"
            "  --login-conc 200       logins in progress at most\n"
            "  --login-timeout 120    seconds for the whole login phase\n"
            "  --settle 1             seconds after the last login before the idle phase\n"
            "  --idle-secs 10         N sessions holding, no messages\n"
            "  --steps 100,250,500    aggregate msg/s per step\n"
            "  --step-secs 5 --drain-secs 3 --final-drain-secs 10\n"
            "  --p99-limit-ms 100 --continue-after-fail 0   (consecutive failing rates "
            "tolerated)\n"
            "  --step-retries 0       run a failing step once more at the same rate\n"
            "  --max-seconds 600      hard wall-clock limit\n"
            "  --no-terminate --terminate-secs 10 --verbose\n");
    exit(2);
}

int main(int argc, char **argv)
{
    char url[512] = "";
    snprintf(opt.domain, sizeof opt.domain, "example.test");
    snprintf(opt.user_fmt, sizeof opt.user_fmt, "user%%d");
    snprintf(opt.pass_fmt, sizeof opt.pass_fmt, "pass%%d");
    opt.clients = 100;
    opt.wait = 60;
    opt.login_rate = 50;
    opt.login_conc = 200;
    opt.login_timeout = 120;
    opt.settle = 1;
    opt.idle_secs = 10;
    opt.step_secs = 5;
    opt.drain_secs = 3;
    opt.final_drain_secs = 10;
    opt.p99_limit_ms = 100;
    opt.max_seconds = 600;
    opt.terminate = 1;
    opt.terminate_secs = 10;
    double defsteps[] = {100, 250, 500, 1000, 2000, 4000};
    memcpy(opt.steps, defsteps, sizeof defsteps);
    opt.nsteps = 6;
    static struct option lo[] = {
        {"url", 1, 0, 'u'}, {"domain", 1, 0, 'd'}, {"clients", 1, 0, 'n'},
        {"user-fmt", 1, 0, 1}, {"pass-fmt", 1, 0, 2}, {"first-user", 1, 0, 3},
        {"wait", 1, 0, 4}, {"login-rate", 1, 0, 5}, {"login-conc", 1, 0, 6},
        {"login-timeout", 1, 0, 7}, {"settle", 1, 0, 8}, {"idle-secs", 1, 0, 9},
        {"steps", 1, 0, 10}, {"step-secs", 1, 0, 11}, {"drain-secs", 1, 0, 12},
        {"final-drain-secs", 1, 0, 13}, {"p99-limit-ms", 1, 0, 14},
        {"continue-after-fail", 1, 0, 15}, {"max-seconds", 1, 0, 16},
        {"no-terminate", 0, 0, 17}, {"terminate-secs", 1, 0, 18}, {"verbose", 0, 0, 'v'},
        {"dump-missing", 1, 0, 19}, {"step-retries", 1, 0, 20},
        {"c2s", 1, 0, 21}, {"tls-ca", 1, 0, 22},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "u:d:n:vh", lo, NULL)) != -1) {
        switch (o) {
        case 'u': snprintf(url, sizeof url, "%s", optarg); break;
        case 'd': snprintf(opt.domain, sizeof opt.domain, "%s", optarg); break;
        case 'n': opt.clients = atoi(optarg); break;
        case 1: snprintf(opt.user_fmt, sizeof opt.user_fmt, "%s", optarg); break;
        case 2: snprintf(opt.pass_fmt, sizeof opt.pass_fmt, "%s", optarg); break;
        case 3: opt.first_user = atoi(optarg); break;
        case 4: opt.wait = atoi(optarg); break;
        case 5: opt.login_rate = atof(optarg); break;
        case 6: opt.login_conc = atoi(optarg); break;
        case 7: opt.login_timeout = atof(optarg); break;
        case 8: opt.settle = atof(optarg); break;
        case 9: opt.idle_secs = atof(optarg); break;
        case 10: {
            opt.nsteps = 0;
            char *s = strdup(optarg), *tok, *sv;
            for (tok = strtok_r(s, ",", &sv); tok && opt.nsteps < MAX_STEPS;
                 tok = strtok_r(NULL, ",", &sv))
                if (atof(tok) > 0)
                    opt.steps[opt.nsteps++] = atof(tok);
            free(s);
            break;
        }
        case 11: opt.step_secs = atof(optarg); break;
        case 12: opt.drain_secs = atof(optarg); break;
        case 13: opt.final_drain_secs = atof(optarg); break;
        case 14: opt.p99_limit_ms = atof(optarg); break;
        case 15: opt.continue_after_fail = atoi(optarg); break;
        case 16: opt.max_seconds = atof(optarg); break;
        case 17: opt.terminate = 0; break;
        case 18: opt.terminate_secs = atof(optarg); break;
        case 19: opt.dump_missing = atoi(optarg); break;
        case 20: opt.step_retries = atoi(optarg); break;
        case 21:
            opt.c2s = 1;
            snprintf(url, sizeof url, "%s", optarg);
            break;
        case 22: snprintf(opt.tls_ca, sizeof opt.tls_ca, "%s", optarg); break;
        case 'v': opt.verbose = 1; break;
        default: usage();
        }
    }
    if ((!opt.c2s && strncmp(url, "http://", 7) != 0) || opt.clients < 2 || (opt.clients & 1))
        usage();
    {
        /* --url http://HOST:PORT/PATH, or --c2s HOST:PORT */
        const char *h = opt.c2s ? url : url + 7, *sl = opt.c2s ? NULL : strchr(h, '/');
        snprintf(opt.path, sizeof opt.path, "%s", sl ? sl : "/");
        size_t hl = sl ? (size_t)(sl - h) : strlen(h);
        snprintf(opt.hosthdr, sizeof opt.hosthdr, "%.*s", (int)hl, h);
        const char *colon = memchr(h, ':', hl);
        snprintf(opt.host, sizeof opt.host, "%.*s", (int)(colon ? colon - h : (long)hl), h);
        opt.port = colon ? atoi(colon + 1) : 80;
    }
    memset(&srv, 0, sizeof srv);
    srv.sin_family = AF_INET;
    srv.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &srv.sin_addr) != 1)
        die("--url: the host must be an IPv4 address (loopback)");
    if ((ntohl(srv.sin_addr.s_addr) >> 24) != 127)
        die("--url: loopback only");

    signal(SIGPIPE, SIG_IGN);
    /* a backstop if the loop itself wedges */
    alarm((unsigned)(opt.max_seconds + 30));
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)(2 * opt.clients + 64))
            die("RLIMIT_NOFILE %lu too small for %d clients (2 connections each)",
                (unsigned long)rl.rlim_cur, opt.clients);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    bosh_xml_init(&X, 0, on_body, stanza_done);
    if (opt.c2s)
        tls_ctx = c2s_tls_ctx(opt.tls_ca);
    C = calloc((size_t)opt.clients, sizeof *C);
    uint64_t seed = now_ns();
    for (int i = 0; i < opt.clients; i++) {
        client_t *cl = &C[i];
        cl->id = i;
        snprintf(cl->user, sizeof cl->user, opt.user_fmt, i + opt.first_user);
        snprintf(cl->pass, sizeof cl->pass, opt.pass_fmt, i + opt.first_user);
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        cl->rid = 1000000000ULL + (seed >> 24) % (1ULL << 40);
        for (int k = 0; k < 2; k++) {
            cl->conn[k].h.fd = -1;
            cl->conn[k].cl = cl;
        }
    }

    uint64_t t_start = now_ns();
    uint64_t hard_end = t_start + (uint64_t)(opt.max_seconds * NS);
    int aborted = 0;
    int phase = PH_LOGIN;
    uint64_t phase_end = t_start + (uint64_t)(opt.login_timeout * NS);
    int next_login = 0;
    uint64_t next_login_t = t_start;
    uint64_t login_interval = (uint64_t)(NS / (opt.login_rate > 0 ? opt.login_rate : 1e9));
    int step = 0, fails = 0, last_pass_step = -1, step_failed0 = 0;
    uint64_t k_msg = 0, step_t0 = 0;
    double step_lg0 = 0;
    int *active = malloc(sizeof(int) * (size_t)opt.clients);
    int nactive = 0;
    uint64_t last_sweep = t_start;
    uint64_t drain_t0 = 0;
    mark("login_start", "clients=%d", opt.clients);
    struct epoll_event evs[512];

    while (phase != PH_END) {
        uint64_t now = now_ns();
        if (now >= hard_end && !aborted) {
            aborted = 1;
            fprintf(stderr, "loadgen: wall-clock limit (%.0f s) reached\n", opt.max_seconds);
            mark("aborted", NULL);
            break;
        }
        uint64_t next_due = now + 100 * MS;
        switch (phase) {
        case PH_LOGIN:
            while (next_login < opt.clients && now >= next_login_t &&
                   n_logging_in < opt.login_conc) {
                n_logging_in++;
                if (opt.c2s)
                    c2s_start(&C[next_login++]);
                else
                    do_create(&C[next_login++]);
                next_login_t += login_interval;
                if (next_login_t < now - 100 * MS)
                    next_login_t = now; /* do not burst after a concurrency stall */
            }
            if (next_login < opt.clients && next_login_t < next_due)
                next_due = next_login_t;
            if (next_login == opt.clients && n_logging_in == 0) {
                mark("login_done", "online=%d failed=%d", n_online, n_failed);
                phase = PH_SETTLE;
                phase_end = now + (uint64_t)(opt.settle * NS);
            } else if (now >= phase_end) {
                for (int i = 0; i < opt.clients; i++)
                    if (C[i].state != S_ONLINE && C[i].state != S_FAILED)
                        client_fail(&C[i], "login phase timed out");
                next_login = opt.clients;
                mark("login_done", "online=%d failed=%d timeout=1", n_online, n_failed);
                phase = PH_SETTLE;
                phase_end = now + (uint64_t)(opt.settle * NS);
            }
            break;
        case PH_SETTLE:
            if (now >= phase_end) {
                mark("idle_start", "online=%d", n_online);
                phase = PH_IDLE;
                phase_end = now + (uint64_t)(opt.idle_secs * NS);
            } else if (phase_end < next_due)
                next_due = phase_end;
            break;
        case PH_IDLE:
            if (now >= phase_end) {
                mark("idle_end", "online=%d", n_online);
                goto start_step;
            } else if (phase_end < next_due)
                next_due = phase_end;
            break;
        start_step:
            if (step >= opt.nsteps) {
                phase = PH_FINAL;
                phase_end = now + (uint64_t)(opt.final_drain_secs * NS);
                mark("final_drain", NULL);
                break;
            }
            nactive = 0;
            for (int i = 0; i < opt.clients; i++)
                if (C[i].state == S_ONLINE && C[i ^ 1].state == S_ONLINE)
                    active[nactive++] = i;
            if (nactive == 0) {
                fprintf(stderr, "loadgen: no client pair online\n");
                phase = PH_FINAL;
                phase_end = now;
                break;
            }
            phase = PH_STEP;
            step_failed0 = n_failed;
            k_msg = 0;
            step_t0 = now_ns();
            step_lg0 = cpu_self_s();
            phase_end = step_t0 + (uint64_t)(opt.step_secs * NS);
            mark("step_start", "i=%d rate=%.1f", step, opt.steps[step]);
            now = step_t0;
            /* fall through */
        case PH_STEP: {
            double per = 1e9 / opt.steps[step];
            for (;;) {
                uint64_t due = step_t0 + (uint64_t)((double)k_msg * per);
                if (due >= phase_end || due > now)
                    break;
                client_t *cl = &C[active[k_msg % (uint64_t)nactive]];
                k_msg++;
                if (cl->state != S_ONLINE || C[cl->id ^ 1].state != S_ONLINE)
                    continue;
                if (now - due > st_gen_lag_max[step])
                    st_gen_lag_max[step] = now - due;
                enqueue_msg(cl, due, step);
                pump(cl);
            }
            uint64_t due = step_t0 + (uint64_t)((double)k_msg * per);
            if (now >= phase_end) {
                mark("step_sent", "i=%d", step);
                phase = PH_DRAIN;
                drain_t0 = now;
            } else if (due < next_due)
                next_due = due < phase_end ? due : phase_end;
            break;
        }
        case PH_DRAIN: {
            uint64_t lim = drain_t0 + (uint64_t)(opt.drain_secs * NS);
            int complete = st_recv[step] >= st_gen[step] - st_failed_send[step];
            if (complete || now >= lim) {
                double secs = (double)(drain_t0 - step_t0) / 1e9;
                double p99 = hpct(&step_hist[step], 99, st_gen[step]);
                /* a client lost during the step fails it, whatever the latency */
                int pass = p99 <= opt.p99_limit_ms && n_online > 0 &&
                           n_failed == step_failed0 && st_failed_send[step] == 0;
                mark("step_end", "i=%d", step);
                print_step(step, opt.steps[step], secs, pass, cpu_self_s() - step_lg0,
                           n_failed - step_failed0);
                if (pass) {
                    last_pass_step = step;
                    fails = 0;
                } else if (!step_is_retry[step] && opt.step_retries > 0 &&
                           opt.nsteps < MAX_STEPS) {
                    /* a failing step runs once more at the same rate (a transient stall on a
                       shared machine must not end the ladder) */
                    memmove(&opt.steps[step + 2], &opt.steps[step + 1],
                            sizeof opt.steps[0] * (size_t)(opt.nsteps - step - 1));
                    memmove(&step_is_retry[step + 2], &step_is_retry[step + 1],
                            sizeof step_is_retry[0] * (size_t)(opt.nsteps - step - 1));
                    opt.steps[step + 1] = opt.steps[step];
                    step_is_retry[step + 1] = 1;
                    opt.nsteps++;
                } else {
                    fails++; /* consecutive failing rates */
                }
                step++;
                if (fails > opt.continue_after_fail)
                    step = opt.nsteps;
                goto start_step;
            }
            if (lim < next_due)
                next_due = lim;
            /* check again soon: arrivals do not wake this switch */
            if (now + 5 * MS < next_due)
                next_due = now + 5 * MS;
            break;
        }
        case PH_FINAL: {
            uint64_t g = 0, r = 0, f = 0;
            for (int i = 0; i < MAX_STEPS; i++)
                g += st_gen[i], r += st_recv[i], f += st_failed_send[i];
            if (r + f >= g || now >= phase_end) {
                mark("final_end", NULL);
                if (opt.terminate) {
                    phase = PH_TERM;
                    phase_end = now + (uint64_t)(opt.terminate_secs * NS);
                    for (int i = 0; i < opt.clients; i++) {
                        client_t *cl = &C[i];
                        if (cl->state != S_ONLINE)
                            continue;
                        cl->state = S_TERMINATING;
                        n_online--;
                        unsent_at_term += cl->qlen;
                        cl->qlen = 0;
                        if (opt.c2s)
                            c2s_terminate(cl);
                        else if (cl->outstanding < 2)
                            send_next(cl, R_TERMINATE);
                        else
                            cl->pend_restart = 2; /* terminate when a slot frees */
                    }
                } else {
                    phase = PH_END;
                }
            } else {
                if (phase_end < next_due)
                    next_due = phase_end;
                if (now + 10 * MS < next_due)
                    next_due = now + 10 * MS;
            }
            break;
        }
        case PH_TERM: {
            int left = 0;
            for (int i = 0; i < opt.clients; i++) {
                client_t *cl = &C[i];
                if (cl->state != S_TERMINATING)
                    continue;
                if (cl->pend_restart == 2 && cl->outstanding < 2) {
                    cl->pend_restart = 0;
                    send_next(cl, R_TERMINATE);
                }
                if (cl->state == S_TERMINATING)
                    left++;
            }
            if (left == 0 || now >= phase_end) {
                mark("terminated", "left=%d", left);
                phase = PH_END;
            } else if (now + 20 * MS < next_due)
                next_due = now + 20 * MS;
            break;
        }
        }
        if (phase == PH_END)
            break;
        if (resendq_len)
            next_due = run_resends(now, next_due);
        /* request timeouts, once a second */
        if (now - last_sweep >= NS) {
            last_sweep = now;
            for (int i = 0; i < opt.clients; i++)
                for (int k = 0; k < 2; k++) {
                    conn_t *c = &C[i].conn[k];
                    if ((c->h.state == CS_BUSY || c->h.state == CS_CONNECTING) && c->req &&
                        now > c->deadline) {
                        req_timeouts++;
                        client_fail(&C[i], "request timed out");
                    }
                }
        }
        now = now_ns();
        if (next_due > hard_end)
            next_due = hard_end;
        struct timespec to = {0, 0};
        if (next_due > now) {
            uint64_t d = next_due - now;
            to.tv_sec = (time_t)(d / NS);
            to.tv_nsec = (long)(d % NS);
        }
        int n = epoll_pwait2(ep, evs, 512, &to, NULL);
        if (n < 0 && errno != EINTR)
            die("epoll_pwait2: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            uint32_t idx = (uint32_t)evs[i].data.u64, gen = (uint32_t)(evs[i].data.u64 >> 32);
            conn_t *c = &C[idx / 2].conn[idx % 2];
            if (c->h.fd < 0 || c->h.gen != gen)
                continue; /* an event of a socket closed earlier in this batch */
            if (opt.c2s)
                c2s_event(c, evs[i].events);
            else
                on_event(c, evs[i].events);
        }
    }

    /* ---- missing messages and stuck clients, for debugging (stderr) */
    if (opt.dump_missing) {
        uint64_t tn = now_ns();
        int shown_stuck = 0;
        for (int i = 0; i < opt.clients && shown_stuck < opt.dump_missing; i++) {
            client_t *cl = &C[i];
            if (cl->state != S_ONLINE && cl->state != S_TERMINATING)
                continue;
            if (cl->outstanding < 2 && cl->qlen == 0)
                continue;
            fprintf(stderr, "stuck? client %d state %d outstanding %d queued %zu:", i,
                    cl->state, cl->outstanding, cl->qlen);
            for (int k = 0; k < 2; k++) {
                req_t *rq = &cl->reqs[k];
                if (rq->kind == R_FREE)
                    continue;
                int on = -1;
                for (int j = 0; j < 2; j++)
                    if (cl->conn[j].req == rq)
                        on = j;
                fprintf(stderr, " [rid %" PRIu64 " kind %d msgs %d age %.1f s conn %d "
                        "(state %d, %zu bytes in) retried %d resends %d]", rq->rid, rq->kind,
                        rq->nmsgs, (tn - rq->t_sent) / 1e9, on,
                        on >= 0 ? cl->conn[on].h.state : -1, on >= 0 ? cl->conn[on].h.in.len : 0,
                        rq->retried, rq->resends);
            }
            fputc('\n', stderr);
            shown_stuck++;
        }
        int shown = 0;
        for (int i = 0; i < opt.clients && shown < opt.dump_missing; i++) {
            client_t *snd = &C[i], *rcv = &C[i ^ 1];
            for (uint32_t q = 0; q < snd->next_seq && shown < opt.dump_missing; q++) {
                int got = (q >> 3) < rcv->seen_bytes && (rcv->seen[q >> 3] & (1u << (q & 7)));
                if (got)
                    continue;
                uint64_t cr = q < snd->carried_cap ? snd->carried[q] : 0;
                fprintf(stderr, "missing: from client %d seq %u to client %d: carried by rid %"
                        PRIu64 "%s\n", i, q, i ^ 1, (uint64_t)(cr & ~(1ULL << 63)),
                        (cr >> 63) ? " (retried)" : cr ? "" : " (never written)");
                shown++;
            }
        }
    }

    /* ---- result */
    uint64_t g = 0, w = 0, r = 0, d = 0, f = 0;
    for (int i = 0; i < MAX_STEPS; i++)
        g += st_gen[i], w += st_written[i], r += st_recv[i], d += st_dup[i],
            f += st_failed_send[i];
    uint64_t unsent = unsent_at_term;
    for (int i = 0; i < opt.clients; i++)
        unsent += C[i].qlen;
    uint64_t lost = w > r + f ? w - r - f : 0;
    printf("RESULT {\"clients\":%d,\"login_ok\":%" PRIu64 ",\"login_failed\":%d,", opt.clients,
           login_hist.n, (int)(opt.clients - (int)login_hist.n));
    jnum(stdout, "login_p50_ms", hpct(&login_hist, 50, 0), 1);
    jnum(stdout, "login_p99_ms", hpct(&login_hist, 99, 0), 1);
    jnum(stdout, "login_max_ms", login_hist.max / 1000.0, 1);
    printf("\"generated\":%" PRIu64 ",\"written\":%" PRIu64 ",\"received\":%" PRIu64
           ",\"dups\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"failed_send\":%" PRIu64
           ",\"unsent\":%" PRIu64 ",\"stray\":%" PRIu64 ",\"msg_errors\":%" PRIu64
           ",\"http_errors\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"resends\":%" PRIu64 ",\"timeouts\":%" PRIu64
           ",\"requests\":%" PRIu64 ",\"responses\":%" PRIu64
           ",\"client_failures\":%d,\"granted_wait\":%d,\"granted_requests\":%d,"
           "\"last_pass_step\":%d,\"last_pass_rate\":%.1f,\"aborted\":%s,\"mechanisms\":\"%s\","
           "\"elapsed_s\":%.3f,\"lg_cpu_s\":%.3f,\"failure_reasons\":{",
           g, w, r, d, lost, f, unsent, msg_stray, msg_errors, http_errors, conn_retries,
           resends_total, req_timeouts, requests_sent, responses_recv, n_failed, granted_wait, granted_requests,
           last_pass_step, last_pass_step >= 0 ? opt.steps[last_pass_step] : 0.0,
           aborted ? "true" : "false", bosh_mechs_seen, (now_ns() - t_start) / 1e9, cpu_self_s());
    print_reasons_json();
    printf("}}\n");
    fflush(stdout);
    return aborted ? 3 : 0;
}
