/* The per-endpoint TLS session cache; see xb_tls_sessions.h.
 *
 * A list, not a hash: the endpoints are the configured domains' servers (a handful), and the
 * look-up happens once per new XMPP connection. malloc, not a pool: the cache lives as long
 * as an SSL_CTX, whose end is a reference count reaching zero, not a pool's lifetime.
 */
#include <stdlib.h>
#include <string.h>
#include "xb_tls_sessions.h"

/* Keys come from the configuration; this only bounds a configuration gone wild. */
#define MAX_ENDPOINTS 4096

struct xb_tls_endpoint {
    xb_tls_endpoint_t *next;
    SSL_SESSION *session; /* NULL: nothing to offer */
    char key[];
};

struct xb_tls_sessions {
    xb_tls_endpoint_t *endpoints;
    unsigned count;
};

xb_tls_sessions_t *xb_tls_sessions_create(void)
{
    return calloc(1, sizeof(xb_tls_sessions_t));
}

void xb_tls_sessions_destroy(xb_tls_sessions_t *c)
{
    xb_tls_endpoint_t *e, *next;

    if (!c) {
        return;
    }
    for (e = c->endpoints; e; e = next) {
        next = e->next;
        SSL_SESSION_free(e->session);
        free(e);
    }
    free(c);
}

xb_tls_endpoint_t *xb_tls_sessions_endpoint(xb_tls_sessions_t *c, const char *key)
{
    xb_tls_endpoint_t *e;
    size_t len = strlen(key);

    for (e = c->endpoints; e; e = e->next) {
        if (!strcmp(e->key, key)) {
            return e;
        }
    }
    if (c->count >= MAX_ENDPOINTS || (e = calloc(1, sizeof(*e) + len + 1)) == NULL) {
        return NULL;
    }
    memcpy(e->key, key, len + 1);
    e->next = c->endpoints;
    c->endpoints = e;
    c->count++;
    return e;
}

time_t xb_tls_session_expiry(const SSL_SESSION *s)
{
    long life = SSL_SESSION_get_timeout(s);
    unsigned long hint = SSL_SESSION_get_ticket_lifetime_hint(s);

    if (hint > 0 && (life <= 0 || hint < (unsigned long)life)) {
        life = (long)hint;
    }
    return (time_t)SSL_SESSION_get_time(s) + (life > 0 ? life : 0);
}

SSL_SESSION *xb_tls_endpoint_session(xb_tls_endpoint_t *e, time_t now)
{
    if (e->session && (!SSL_SESSION_is_resumable(e->session)
                       || now >= xb_tls_session_expiry(e->session))) {
        xb_tls_endpoint_forget(e);
    }
    return e->session;
}

void xb_tls_endpoint_keep(xb_tls_endpoint_t *e, SSL_SESSION *s)
{
    SSL_SESSION *copy;

    /* A copy, not a reference: OpenSSL marks the connection's own session not resumable
     * when the connection is freed without a close_notify (the daemon often just drops a
     * stream that is over), which would spoil the cached one too. */
    if (!s || !SSL_SESSION_is_resumable(s) || (copy = SSL_SESSION_dup(s)) == NULL) {
        return;
    }
    SSL_SESSION_free(e->session);
    e->session = copy;
}

void xb_tls_endpoint_forget(xb_tls_endpoint_t *e)
{
    SSL_SESSION_free(e->session);
    e->session = NULL;
}
