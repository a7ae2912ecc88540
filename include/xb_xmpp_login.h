/* Logging a user in to XMPP on their behalf (prebind), sans-I/O.
 *
 * Runs on top of xb_xmpp_conn once TLS is up: SASL (RFC 6120 §6), the stream restart, resource
 * binding (§7) and, for servers that still require it, session establishment (RFC 3921 §3;
 * skipped when the feature carries <optional/>). It sends no presence: the browser that takes
 * the session over decides when to become available.
 *
 * The caller feeds every element xb_xmpp_conn hands up, starting with the post-TLS
 * <stream:features/>, sends what it is given, restarts the stream when told, and enforces the
 * overall timeout. Nothing here logs a secret; error codes and details are safe to log.
 */
#ifndef XB_XMPP_LOGIN_H
#define XB_XMPP_LOGIN_H

#include <apr_pools.h>

typedef enum {
    XB_LOGIN_MODE_PASSWORD = 0, /* the user's password: SCRAM preferred, PLAIN allowed */
    XB_LOGIN_MODE_TOKEN         /* a token only the server can check: PLAIN only */
} xb_xmpp_login_mode_t;

typedef struct xb_xmpp_login_params {
    const char *username; /* localpart, the SASL authcid */
    const char *domain;   /* XMPP domain */
    const char *secret;   /* password or token; copied, and the copy is wiped with the pool */
    xb_xmpp_login_mode_t mode;
    const char *resource; /* unique per login, e.g. "xb-" + 12 random hex digits */
    int scram_only;       /* password mode: refuse PLAIN even when it is all that is offered */
} xb_xmpp_login_params_t;

typedef enum {
    XB_LOGIN_CONTINUE = 0, /* send the bytes given (if any), feed the next element */
    XB_LOGIN_RESTART,      /* call xb_xmpp_conn_restart, then feed the new features */
    XB_LOGIN_DONE,         /* bound (and session established): the stream is the user's */
    XB_LOGIN_FAILED        /* see xb_xmpp_login_error; close the stream */
} xb_login_result_t;

typedef struct xb_xmpp_login xb_xmpp_login_t;

/* NULL if a parameter is missing or empty, or the resource has control characters. */
xb_xmpp_login_t *xb_xmpp_login_create(apr_pool_t *p, const xb_xmpp_login_params_t *params);

/* One element as xb_xmpp_conn handed it up. *send / *send_len are set on every return; only
 * CONTINUE ever carries bytes, valid until the next call on `l` (they may hold a secret, e.g.
 * PLAIN's: do not log them). After DONE or FAILED every further element gives FAILED. */
xb_login_result_t xb_xmpp_login_element(xb_xmpp_login_t *l, const char *data, apr_size_t len,
                                        const char **send, apr_size_t *send_len);

/* The full JID the server bound, once DONE; NULL before. */
const char *xb_xmpp_login_bound_jid(const xb_xmpp_login_t *l);

/* The SASL mechanism in use (XB_SASL_* name), NULL before one was chosen. */
const char *xb_xmpp_login_mechanism(const xb_xmpp_login_t *l);

/* After FAILED, a reason code for the log and for mapping to an HTTP status; NULL otherwise:
 *   "auth-failed:<condition>"   the server refused (<failure/>), e.g. auth-failed:not-authorized
 *   "auth-no-mechanism"         no acceptable SASL mechanism offered
 *   "auth-server-unverified"    the SASL exchange failed on our side: the server's SCRAM
 *                               messages were malformed, its nonce or iteration count was bad,
 *                               or it could not prove it knows the password
 *   "bind-failed:<condition>"   the bind iq came back as an error, e.g. bind-failed:conflict
 *   "session-failed:<condition>" the session iq came back as an error
 *   "stream-error:<condition>"  the server sent <stream:error/> as an element
 *   "protocol-error"            an element the login did not expect, or malformed XML
 *   "internal-error"            our side: no randomness for the SCRAM nonce, out of memory */
const char *xb_xmpp_login_error(const xb_xmpp_login_t *l);

/* After FAILED, one sentence on what happened (names of elements, never their content or a
 * secret), for the log line. */
const char *xb_xmpp_login_error_detail(const xb_xmpp_login_t *l);

#endif
