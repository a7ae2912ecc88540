/* The bench's shared BOSH client parts; see bosh_client.h. */
#define _GNU_SOURCE
#include "bosh_client.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ basics */
uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void buf_reserve(buf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t c = b->cap ? b->cap : 512;
    while (c < b->len + more + 1)
        c *= 2;
    b->p = realloc(b->p, c);
    if (!b->p)
        die("out of memory");
    b->cap = c;
}

void buf_add(buf_t *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = b->cap > b->len ? b->cap - b->len : 0;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            die("vsnprintf");
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        buf_reserve(b, (size_t)n + 1);
    }
}

void b64(const char *raw, int rl, char *out)
{
    static const char tb[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int o = 0;
    for (int i = 0; i < rl; i += 3) {
        unsigned v = (unsigned char)raw[i] << 16;
        if (i + 1 < rl)
            v |= (unsigned char)raw[i + 1] << 8;
        if (i + 2 < rl)
            v |= (unsigned char)raw[i + 2];
        out[o++] = tb[(v >> 18) & 63];
        out[o++] = tb[(v >> 12) & 63];
        out[o++] = i + 1 < rl ? tb[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < rl ? tb[v & 63] : '=';
    }
    out[o] = 0;
}

static char reasons[16][160];
static int reason_count[16], nreasons;

void note_reason(const char *r)
{
    for (int i = 0; i < nreasons; i++)
        if (strcmp(reasons[i], r) == 0) {
            reason_count[i]++;
            return;
        }
    if (nreasons < 16) {
        snprintf(reasons[nreasons], sizeof reasons[0], "%s", r);
        reason_count[nreasons++] = 1;
    }
}

void print_reasons_json(void)
{
    for (int i = 0; i < nreasons; i++) {
        printf("%s\"", i ? "," : "");
        for (const char *s = reasons[i]; *s; s++)
            if (*s == '"' || *s == '\\')
                printf("\\%c", *s);
            else if ((unsigned char)*s >= 32)
                putchar(*s);
        printf("\":%d", reason_count[i]);
    }
}

void jnum(FILE *f, const char *k, double v, int comma)
{
    if (isinf(v) || isnan(v))
        fprintf(f, "\"%s\":null%s", k, comma ? "," : "");
    else
        fprintf(f, "\"%s\":%.3f%s", k, v, comma ? "," : "");
}

/* ------------------------------------------------------------------ HTTP */
void http_reset_parse(http_conn_t *c)
{
    c->in.len = 0;
    c->hdr_done = 0;
    c->status = 0;
    c->chunked = 0;
    c->close_after = 0;
    c->clen = -1;
    c->body_off = 0;
    c->stray = 0;
}

void http_close(http_conn_t *c, int ep)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = CS_CLOSED;
    c->woff = 0;
    http_reset_parse(c);
}

int http_open(http_conn_t *c, int ep, const struct sockaddr_in *srv, uint32_t tag)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)srv, sizeof *srv) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->gen++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = ((uint64_t)c->gen << 32) | tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = CS_CONNECTING;
    http_reset_parse(c);
    return 0;
}

int http_flush(http_conn_t *c, const char *data, size_t len)
{
    while (c->woff < len) {
        ssize_t n = send(c->fd, data + c->woff, len - c->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->woff += (size_t)n;
    }
    return 0;
}

int http_connect_error(http_conn_t *c)
{
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    return err;
}

int http_read(http_conn_t *c)
{
    for (;;) {
        buf_reserve(&c->in, 16384);
        ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            c->in.p[c->in.len] = 0;
            continue;
        }
        if (n == 0)
            return 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno == EINTR)
            continue;
        return 1;
    }
}

static int parse_headers(http_conn_t *c, int eof)
{
    char *e = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
    if (!e)
        return c->in.len > 65536 ? -1 : 0;
    *e = 0;
    if (strncmp(c->in.p, "HTTP/1.", 7) != 0)
        return -1;
    c->status = atoi(c->in.p + 9);
    c->clen = -1;
    c->chunked = 0;
    c->close_after = (c->in.p[7] == '0') || eof;
    for (char *l = strstr(c->in.p, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
        char *h = l + 2;
        char *eol = strstr(h, "\r\n");
        char save = 0;
        if (eol)
            save = *eol, *eol = 0;
        if (!strncasecmp(h, "Content-Length:", 15))
            c->clen = atol(h + 15);
        else if (!strncasecmp(h, "Transfer-Encoding:", 18) && strcasestr(h, "chunked"))
            c->chunked = 1;
        else if (!strncasecmp(h, "Connection:", 11)) {
            if (strcasestr(h, "close"))
                c->close_after = 1;
            else if (strcasestr(h, "keep-alive") && !eof)
                c->close_after = 0;
        }
        if (eol)
            *eol = save;
    }
    *e = '\r';
    c->body_off = (size_t)(e - c->in.p) + 4;
    c->hdr_done = 1;
    return 1;
}

int http_response(http_conn_t *c, int eof, buf_t *body)
{
    if (eof)
        c->close_after = 1;
    if (!c->hdr_done) {
        int r = parse_headers(c, eof);
        if (r <= 0)
            return r;
    }
    body->len = 0;
    if (c->chunked) {
        size_t pos = c->body_off;
        for (;;) {
            char *crlf = memmem(c->in.p + pos, c->in.len - pos, "\r\n", 2);
            if (!crlf)
                return 0;
            long sz = strtol(c->in.p + pos, NULL, 16);
            size_t dstart = (size_t)(crlf - c->in.p) + 2;
            if (sz == 0) {
                if (!memmem(c->in.p + dstart - 2, c->in.len - (dstart - 2), "\r\n\r\n", 4))
                    return 0;
                break;
            }
            if (c->in.len < dstart + (size_t)sz + 2)
                return 0;
            buf_add(body, c->in.p + dstart, (size_t)sz);
            pos = dstart + (size_t)sz + 2;
        }
    } else if (c->clen >= 0) {
        if (c->in.len - c->body_off < (size_t)c->clen)
            return 0;
        buf_add(body, c->in.p + c->body_off, (size_t)c->clen);
        c->stray = c->in.len - c->body_off - (size_t)c->clen;
    } else if (eof) {
        buf_add(body, c->in.p + c->body_off, c->in.len - c->body_off);
    } else {
        return 0;
    }
    buf_add(body, "", 0); /* NUL-terminated even when empty */
    return 1;
}

void http_post(buf_t *out, const char *path, const char *hosthdr, const char *agent,
               const char *body, size_t blen, int keepalive)
{
    out->len = 0;
    buf_printf(out,
               "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
               "Accept: */*\r\nContent-Type: text/xml; charset=UTF-8\r\n"
               "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
               path, hosthdr, agent, blen, keepalive ? "keep-alive" : "close");
    buf_add(out, body, blen);
}

/* ------------------------------------------------------------------ BOSH and XMPP login */
void bosh_creation_body(buf_t *b, uint64_t rid, const char *domain, int wait)
{
    buf_printf(b,
               "<body content='text/xml; charset=utf-8' hold='1' rid='%" PRIu64 "' to='%s' "
               "ver='1.6' wait='%d' xml:lang='en' xmpp:version='1.0' "
               "xmlns='" HTTPBIND_NS "' xmlns:xmpp='urn:xmpp:xbosh'/>",
               rid, domain, wait);
}

void bosh_restart_body(buf_t *b, uint64_t rid, const char *sid, const char *domain)
{
    buf_printf(b,
               "<body rid='%" PRIu64 "' sid='%s' to='%s' xml:lang='en' xmpp:restart='true' "
               "xmlns='" HTTPBIND_NS "' xmlns:xmpp='urn:xmpp:xbosh'/>",
               rid, sid, domain);
}

void bosh_terminate_body(buf_t *b, uint64_t rid, const char *sid)
{
    buf_printf(b,
               "<body rid='%" PRIu64 "' sid='%s' type='terminate' xmlns='" HTTPBIND_NS "'>"
               "<presence xmlns='jabber:client' type='unavailable'/></body>",
               rid, sid);
}

void xmpp_auth_plain(buf_t *b, const char *user, const char *pass)
{
    /* \0user\0pass, base64 */
    char raw[160], enc[256];
    int rl = snprintf(raw, sizeof raw, "%c%s%c%s", 0, user, 0, pass);
    if (rl >= (int)sizeof raw)
        rl = (int)sizeof raw - 1;
    b64(raw, rl, enc);
    buf_printf(b, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>",
               enc);
}

void xmpp_bind_iq(buf_t *b, const char *resource)
{
    buf_printf(b, "<iq xmlns='jabber:client' type='set' id='bind_1'>"
               "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s"
               "</resource></bind></iq>", resource);
}

void xmpp_session_iq(buf_t *b)
{
    buf_printf(b, "<iq xmlns='jabber:client' type='set' id='sess_1'>"
               "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
}

void xmpp_stream_header(buf_t *b, const char *domain)
{
    buf_printf(b, "<?xml version='1.0'?><stream:stream to='%s' version='1.0' xml:lang='en' "
               "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>", domain);
}

void xmpp_starttls(buf_t *b)
{
    buf_printf(b, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
}

char bosh_mechs_seen[256];

static const char *local(const char *n)
{
    const char *c = strrchr(n, ':');
    return c ? c + 1 : n;
}

const char *xml_attr(const char **a, const char *name)
{
    for (; *a; a += 2)
        if (strcmp(local(a[0]), name) == 0 && strncmp(a[0], "xmlns", 5) != 0)
            return a[1];
    return NULL;
}

static void x_start(void *ud, const char *name, const char **a)
{
    bosh_xml_t *x = ud;
    const char *n = local(name);
    x->depth++;
    if (x->depth == 1) {
        const char *t = xml_attr(a, "type");
        if (t && strcmp(t, "terminate") == 0)
            x->is_terminate = 1;
        const char *c = xml_attr(a, "condition");
        if (c)
            snprintf(x->condition, sizeof x->condition, "%s", c);
        if (x->on_body)
            x->on_body(x, a);
        return;
    }
    if (x->depth == 2) {
        x->kind = K_OTHER;
        x->id[0] = x->type[0] = 0;
        x->f_plain = x->f_bind = x->f_session = x->f_sess_opt = x->f_mechs = x->f_starttls = 0;
        x->text.len = 0;
        x->in_text = 0;
        if (!strcmp(n, "features"))
            x->kind = K_FEATURES;
        else if (!strcmp(n, "success"))
            x->kind = K_SUCCESS;
        else if (!strcmp(n, "failure"))
            x->kind = K_FAILURE;
        else if (!strcmp(n, "iq"))
            x->kind = K_IQ;
        else if (!strcmp(n, "message"))
            x->kind = K_MESSAGE;
        else if (!strcmp(n, "presence"))
            x->kind = K_PRESENCE;
        else if (!strcmp(n, "error"))
            x->kind = K_STREAMERR;
        else if (!strcmp(n, "proceed"))
            x->kind = K_PROCEED;
        const char *v = xml_attr(a, "id");
        if (v)
            snprintf(x->id, sizeof x->id, "%s", v);
        v = xml_attr(a, "type");
        if (v)
            snprintf(x->type, sizeof x->type, "%s", v);
        return;
    }
    switch (x->kind) {
    case K_FEATURES:
        if (!strcmp(n, "mechanisms"))
            x->f_mechs = 1;
        else if (!strcmp(n, "mechanism"))
            x->in_text = 1, x->text.len = 0;
        else if (!strcmp(n, "bind"))
            x->f_bind = 1;
        else if (!strcmp(n, "starttls"))
            x->f_starttls = 1;
        else if (!strcmp(n, "session"))
            x->f_session = 1;
        else if (!strcmp(n, "optional") && x->f_session)
            x->f_sess_opt = 1;
        break;
    case K_IQ:
        if (!strcmp(n, "jid"))
            x->in_text = 1, x->text.len = 0;
        break;
    case K_MESSAGE:
        if (x->depth == 3 && !strcmp(n, "body"))
            x->in_text = 1, x->text.len = 0;
        break;
    default:
        break;
    }
}

static void x_text(void *ud, const char *s, int len)
{
    bosh_xml_t *x = ud;
    if (x->in_text)
        buf_add(&x->text, s, (size_t)len);
}

static void x_end(void *ud, const char *name)
{
    bosh_xml_t *x = ud;
    const char *n = local(name);
    if (x->depth == 2) {
        if (x->on_stanza)
            x->on_stanza(x);
    } else if (x->depth >= 3) {
        if (x->kind == K_FEATURES && !strcmp(n, "mechanism")) {
            if (x->text.len == 5 && !memcmp(x->text.p, "PLAIN", 5))
                x->f_plain = 1;
            if (x->text.len && strlen(bosh_mechs_seen) + x->text.len + 2 < sizeof bosh_mechs_seen &&
                !strstr(bosh_mechs_seen, x->text.p)) {
                strcat(bosh_mechs_seen, x->text.p);
                strcat(bosh_mechs_seen, " ");
            }
            x->in_text = 0;
        } else if ((x->kind == K_IQ && !strcmp(n, "jid")) ||
                   (x->kind == K_MESSAGE && x->depth == 3 && !strcmp(n, "body"))) {
            x->in_text = 0;
        }
    }
    x->depth--;
}

void bosh_xml_init(bosh_xml_t *x, int namespaces, void (*on_body)(bosh_xml_t *, const char **),
                   void (*on_stanza)(bosh_xml_t *))
{
    memset(x, 0, sizeof *x);
    x->xp = namespaces ? XML_ParserCreateNS(NULL, ':') : XML_ParserCreate(NULL);
    if (!x->xp)
        die("out of memory");
    x->on_body = on_body;
    x->on_stanza = on_stanza;
}

void bosh_xml_stream_begin(bosh_xml_t *x, void *ud)
{
    XML_ParserReset(x->xp, NULL);
    XML_SetUserData(x->xp, x);
    XML_SetElementHandler(x->xp, x_start, x_end);
    XML_SetCharacterDataHandler(x->xp, x_text);
    x->ud = ud;
    x->depth = 0;
    x->is_terminate = 0;
    x->condition[0] = 0;
    x->kind = K_OTHER;
    x->in_text = 0;
    x->text.len = 0;
}

int bosh_xml_feed(bosh_xml_t *x, const char *data, size_t len)
{
    return XML_Parse(x->xp, data, (int)len, 0) == XML_STATUS_ERROR ? -1 : 0;
}

int bosh_xml_parse(bosh_xml_t *x, void *ud, const char *body, size_t blen)
{
    bosh_xml_stream_begin(x, ud);
    return XML_Parse(x->xp, body, (int)blen, 1) == XML_STATUS_ERROR ? -1 : 0;
}

const char *bosh_xml_error(const bosh_xml_t *x)
{
    return XML_ErrorString(XML_GetErrorCode(x->xp));
}
