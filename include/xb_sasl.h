/* Client side of the SASL mechanisms the gateway uses to log users in (RFC 4422), sans-I/O.
 *
 * PLAIN (RFC 4616, empty authzid) and SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677) without
 * channel binding (gs2 header "n,,"). Every step takes and produces raw payload bytes; the XMPP
 * layer does the base64 (helpers below) and the <auth/>/<response/> elements.
 *
 * SCRAM is mutual: the exchange only counts as done once the server has proven it knows the
 * password too (its signature in the final message matches). The iteration count is bounded on
 * both sides: below XB_SASL_SCRAM_MIN_ITERATIONS is too weak to accept, above
 * XB_SASL_SCRAM_MAX_ITERATIONS lets a server make us burn seconds of CPU.
 *
 * Secrets (the password, the SCRAM keys, a PLAIN message) live only in memory the object owns;
 * a cleanup on its pool wipes them with OPENSSL_cleanse, and the object wipes them as soon as
 * the exchange is over. No function here logs.
 *
 * Passwords are used as given (UTF-8), without SASLprep: servers store SASLprep'd passwords,
 * which for ASCII and for already normalised (NFKC) text are the same bytes.
 */
#ifndef XB_SASL_H
#define XB_SASL_H

#include <apr_pools.h>
#include <apr_tables.h>

#define XB_SASL_PLAIN "PLAIN"
#define XB_SASL_SCRAM_SHA_1 "SCRAM-SHA-1"
#define XB_SASL_SCRAM_SHA_256 "SCRAM-SHA-256"

/* RFC 7677 §4 recommends at least 4096. The upper bound keeps a hostile or misconfigured
 * server from stalling the daemon: PBKDF2 at 10 million rounds already takes seconds. */
#define XB_SASL_SCRAM_MIN_ITERATIONS 4096
/* PBKDF2 runs on the daemon's event loop: 1e6 rounds is ~0.2 s here; servers use 4096-10000. */
#define XB_SASL_SCRAM_MAX_ITERATIONS 1000000

typedef struct xb_sasl xb_sasl_t;

/* The mechanism to use among those the server offers (an array of const char *), by
 * preference SCRAM-SHA-256 > SCRAM-SHA-1 > PLAIN, each only if allowed. A token can only be
 * checked by the server in clear, so token logins pass allow_scram = 0. Returns one of the
 * XB_SASL_* constants (static storage) or NULL when nothing offered is acceptable. */
const char *xb_sasl_choose(const apr_array_header_t *offered, int allow_scram, int allow_plain);

/* A client for `mechanism` (an XB_SASL_* name) authenticating as `authcid` (the XMPP
 * localpart) with `password`; both are copied. NULL and *errmsg (static text) for an unknown
 * mechanism or an empty authcid/password. Secrets are wiped when `p` is cleared. */
xb_sasl_t *xb_sasl_create(apr_pool_t *p, const char *mechanism, const char *authcid,
                          const char *password, const char **errmsg);

/* The mechanism name as passed to create (one of the XB_SASL_* constants). */
const char *xb_sasl_mechanism(const xb_sasl_t *s);

/* The initial response (the payload of <auth/>). *out stays valid until the next call on `s`
 * or the pool's end, whichever comes first; it may hold a secret (PLAIN): do not log it.
 * APR_SUCCESS, or APR_EGENERAL with *errmsg (static text, no secrets). */
apr_status_t xb_sasl_initial(xb_sasl_t *s, const char **out, apr_size_t *out_len,
                             const char **errmsg);

/* A server challenge -> the response to send (possibly empty). For SCRAM the first challenge
 * is the server-first-message; a second one is the server-final-message of a server that does
 * not put it in <success/>: it is verified here and answered with an empty response. Failures
 * (malformed message, nonce not extending ours, iteration count out of bounds, wrong server
 * signature, "e=" from the server) return APR_EGENERAL and *errmsg; the exchange is then over. */
apr_status_t xb_sasl_challenge(xb_sasl_t *s, const char *in, apr_size_t in_len,
                               const char **out, apr_size_t *out_len, const char **errmsg);

/* The server said <success/> with `in` as additional data (in_len 0: none). APR_SUCCESS only
 * if the exchange is complete and, for SCRAM, the server's signature is verified (from `in`, or
 * from an earlier challenge). Either way the secrets are wiped on return. */
apr_status_t xb_sasl_success(xb_sasl_t *s, const char *in, apr_size_t in_len,
                             const char **errmsg);

/* TEST ONLY: use `nonce` (printable ASCII without ',') as the SCRAM client nonce instead of
 * one from the CSPRNG, to reproduce the RFC examples. Call before xb_sasl_initial. */
void xb_sasl_set_nonce_for_test(xb_sasl_t *s, const char *nonce);

/* Base64 (RFC 4648 §4, with padding, no line breaks), NUL-terminated, in `p`. */
char *xb_sasl_base64_encode(apr_pool_t *p, const char *data, apr_size_t len,
                            apr_size_t *out_len);

/* Strict base64 decoding: only the alphabet and correct padding, no whitespace (RFC 6120
 * §6.4.2). The result is NUL-terminated (not counted in *out_len), in `p`; NULL if invalid. */
char *xb_sasl_base64_decode(apr_pool_t *p, const char *b64, apr_size_t len,
                            apr_size_t *out_len);

#endif
