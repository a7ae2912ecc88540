/*
 * bosh_client: what the bench's BOSH clients (loadgen, prebinder) share: the clock, growable
 * buffers, failure reasons and JSON numbers for the RESULT line, one HTTP/1.1 connection on an
 * epoll set with its response parser, the BOSH bodies and stanzas of a login, and the parse of
 * a BOSH response body into login stanzas. loadgen's direct mode (--c2s) parses a plain XMPP
 * stream with the same parser: <stream:stream> plays the part of <body/>, fed as it arrives.
 *
 * One thread, no locking; the failure reasons and the mechanisms seen are process-wide.
 */
#ifndef BOSH_CLIENT_H
#define BOSH_CLIENT_H

#include <expat.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NS 1000000000ULL
#define MS 1000000ULL

/* ------------------------------------------------------------------ basics */
uint64_t now_ns(void); /* CLOCK_MONOTONIC */
double cpu_self_s(void); /* user + system CPU of this process */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

typedef struct {
    char *p; /* NUL-terminated once anything was added */
    size_t len, cap;
} buf_t;

void buf_reserve(buf_t *b, size_t more);
void buf_add(buf_t *b, const char *s, size_t n);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* base64 with padding of rl bytes into out (4 * ((rl + 2) / 3) + 1 bytes) */
void b64(const char *raw, int rl, char *out);

/* counts a failure by its reason (the first 16 distinct reasons) */
void note_reason(const char *r);
/* the reasons as JSON members "reason":count, comma-separated, on stdout */
void print_reasons_json(void);
/* "k":v with 3 decimals, null when not finite; a comma after it when `comma` */
void jnum(FILE *f, const char *k, double v, int comma);

/* ------------------------------------------------------------------ HTTP */
enum { CS_CLOSED = 0, CS_CONNECTING, CS_IDLE, CS_BUSY };

/* One HTTP/1.1 connection and the response being read on it. */
typedef struct {
    int fd;
    uint32_t gen; /* bumped at every open: epoll events of an earlier socket are ignored */
    int state;
    size_t woff;  /* bytes of the request written */
    buf_t in;
    int hdr_done, status, chunked, close_after;
    long clen;
    size_t body_off;
    size_t stray; /* bytes after the last Content-Length response */
} http_conn_t;

void http_reset_parse(http_conn_t *c);
void http_close(http_conn_t *c, int ep);
/* Non-blocking connect to srv, registered on ep with data.u64 = gen << 32 | tag; the state is
 * CS_CONNECTING. 0 ok, -1 error. */
int http_open(http_conn_t *c, int ep, const struct sockaddr_in *srv, uint32_t tag);
/* Writes what is left of data[0..len) from c->woff on; 0 ok (maybe partial), -1 error. */
int http_flush(http_conn_t *c, const char *data, size_t len);
/* After EPOLLOUT on a connecting socket: 0 when connected, else the socket error. */
int http_connect_error(http_conn_t *c);
/* Reads all that is there into c->in; 1 at end of stream (or a read error), else 0. */
int http_read(http_conn_t *c);
/* Parses the response in c->in; 1 complete (its body in `body`, NUL-terminated; c->status,
 * c->close_after set), 0 more is needed, -1 not HTTP. */
int http_response(http_conn_t *c, int eof, buf_t *body);
/* A POST of body to path, replacing out's contents. */
void http_post(buf_t *out, const char *path, const char *hosthdr, const char *agent,
               const char *body, size_t blen, int keepalive);

/* ------------------------------------------------------------------ BOSH and XMPP login */
#define HTTPBIND_NS "http://jabber.org/protocol/httpbind"

/* the bodies of a session's requests, appended to b */
void bosh_creation_body(buf_t *b, uint64_t rid, const char *domain, int wait);
void bosh_restart_body(buf_t *b, uint64_t rid, const char *sid, const char *domain);
void bosh_terminate_body(buf_t *b, uint64_t rid, const char *sid);
/* the login's stanzas, appended to b */
void xmpp_auth_plain(buf_t *b, const char *user, const char *pass);
void xmpp_bind_iq(buf_t *b, const char *resource);
void xmpp_session_iq(buf_t *b);
/* a c2s stream header to domain (the opening, and every restart); the STARTTLS request */
void xmpp_stream_header(buf_t *b, const char *domain);
void xmpp_starttls(buf_t *b);

enum {
    K_OTHER = 0, K_FEATURES, K_SUCCESS, K_FAILURE, K_IQ, K_MESSAGE, K_STREAMERR, K_PRESENCE,
    K_PROCEED /* STARTTLS <proceed/> (a c2s stream) */
};

/* A BOSH response body (or a c2s stream) read into what a login and a chat client need. */
typedef struct bosh_xml {
    XML_Parser xp;
    void *ud; /* the caller's, for the callbacks */
    void (*on_body)(struct bosh_xml *x, const char **attrs); /* the <body/> start tag */
    void (*on_stanza)(struct bosh_xml *x);                   /* a child of <body/> ended */
    int depth, is_terminate;
    char condition[64];
    /* the stanza at depth 2 */
    int kind;
    char id[64], type[16];
    int f_plain, f_bind, f_session, f_sess_opt, f_mechs, f_starttls;
    int in_text;
    buf_t text; /* <mechanism/>, the bound <jid/>, a message's <body/> */
} bosh_xml_t;

/* names the SASL mechanisms seen in any features, space-separated */
extern char bosh_mechs_seen[256];

/* namespaces: expat in namespace mode (':' separator), else prefixed names */
void bosh_xml_init(bosh_xml_t *x, int namespaces, void (*on_body)(bosh_xml_t *, const char **),
                   void (*on_stanza)(bosh_xml_t *));
/* 0 parsed, -1 not well-formed (bosh_xml_error says why) */
int bosh_xml_parse(bosh_xml_t *x, void *ud, const char *body, size_t blen);
/* A c2s stream: begin (again at every stream restart, never from inside a callback), then
 * feed what arrives; 0 ok so far, -1 not well-formed. */
void bosh_xml_stream_begin(bosh_xml_t *x, void *ud);
int bosh_xml_feed(bosh_xml_t *x, const char *data, size_t len);
const char *bosh_xml_error(const bosh_xml_t *x);
/* the value of the attribute with local name `name` (never an xmlns one), or NULL */
const char *xml_attr(const char **a, const char *name);

#endif
