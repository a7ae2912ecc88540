/* HS256 JSON Web Tokens (RFC 7519, RFC 7515) for logging users in on their behalf.
 *
 * The daemon mints a short-lived token {"jid","iat","exp"} and sends it as the SASL PLAIN
 * password; ejabberd (auth_method: jwt) and contrib/prosody/mod_auth_xmpp_bridge.lua verify it
 * with the same shared secret. Verification is here too, for the tests and for a
 * credentials_url-style handler.
 *
 * The key file is the one ejabberd's `jwt_key` takes, a JWK {"kty":"oct","k":"<base64url>"}
 * (or a JWK Set {"keys":[that]} holding exactly one key), or else the raw secret bytes with one
 * trailing newline ("\n" or "\r\n") stripped. A file whose first non-blank byte is '{' is
 * always read as a JWK, so a raw secret must not start with '{' (a text secret such as the
 * output of `openssl rand -base64 48` never does).
 *
 * The secret lives in pool memory that a pool cleanup cleanses; it is never logged, and no
 * error message quotes the file's or the token's contents.
 */
#ifndef XB_JWT_H
#define XB_JWT_H

#include <apr_pools.h>
#include <apr_time.h>

/* Shorter secrets are refused: RFC 7518 §3.2 wants a key at least as long as the hash. */
#define XB_JWT_KEY_MIN_BYTES 32
/* A key file (or a JWK text) larger than this is refused before it is parsed. */
#define XB_JWT_KEY_FILE_MAX 65536
/* Tokens longer than this are refused before anything is decoded. */
#define XB_JWT_TOKEN_MAX 8192

typedef struct xb_jwt_key xb_jwt_key_t;

/* Reads the secret from `path`. Refuses a file that is not a regular file, a file that group or
 * others may read, write or execute (mode & 077), a malformed JWK, a JWK whose kty is not "oct"
 * or whose optional "alg" is not "HS256", and a secret shorter than XB_JWT_KEY_MIN_BYTES.
 * On failure returns an error status and sets *errmsg (which names the file, never its bytes). */
apr_status_t xb_jwt_key_load(apr_pool_t *p, const char *path, xb_jwt_key_t **key,
                             const char **errmsg);

/* Parses key file contents already in memory (same rules as xb_jwt_key_load, without the file
 * checks). `data` need not be NUL-terminated; the caller cleanses its own copy. */
apr_status_t xb_jwt_key_parse(apr_pool_t *p, const char *data, apr_size_t len,
                              xb_jwt_key_t **key, const char **errmsg);

/* The number of secret bytes (for diagnostics: the length is not the secret). */
apr_size_t xb_jwt_key_length(const xb_jwt_key_t *key);

/* Returns "<header>.<claims>.<signature>", base64url without padding, with the header
 * {"alg":"HS256","typ":"JWT"} and the claims {"jid":"<jid>","iat":N,"exp":N+lifetime_sec},
 * N = now in whole seconds. Returns NULL when `jid` is NULL, empty or not valid UTF-8, or when
 * OpenSSL fails. The token is a credential: do not log it. */
char *xb_jwt_mint(apr_pool_t *p, const xb_jwt_key_t *key, const char *jid, apr_time_t now,
                  unsigned lifetime_sec);

/* Returns 1 when `token` is a well-formed HS256 JWT signed with `key` (compared in constant
 * time), its header says alg "HS256" (typ, if present, "JWT"; no "crit"), its claims hold a
 * non-empty string "jid" and an integer "exp" later than `now`, and an integer "nbf", if
 * present, not later than `now`; *jid_out is then the jid claim. Otherwise returns 0 and sets
 * *errmsg. Only signed bytes are ever JSON-parsed. Duplicate member names are refused. */
int xb_jwt_verify(apr_pool_t *p, const xb_jwt_key_t *key, const char *token, apr_time_t now,
                  const char **jid_out, const char **errmsg);

#endif
