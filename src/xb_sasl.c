/* Client SASL mechanisms: PLAIN and SCRAM-SHA-1/-256 (see xb_sasl.h).
 *
 * SCRAM keeps as little secret material as it can for as short as it can: the password is
 * wiped once the salted password is derived, the salted password and the client/server keys
 * once the proof and the expected server signature are computed (all in the first step), and
 * the expected signature once the server's has been checked. What remains until then sits in
 * the object (fixed arrays) or in one output buffer, both wiped by the pool cleanup.
 */
#include <limits.h>
#include <string.h>

#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "xb_base64.h"
#include "xb_sasl.h"

/* 18 random bytes: 144 bits of nonce, 24 base64 characters (none of them ','). */
#define NONCE_RANDOM_BYTES 18
#define NONCE_MAX 128

/* "n,,": no channel binding (we do not support it), no authzid. Its base64 is the c= value. */
#define GS2_HEADER "n,,"
#define GS2_HEADER_B64 "biws"

typedef enum {
    ST_INIT,       /* nothing sent */
    ST_SENT_FIRST, /* initial response sent */
    ST_SENT_FINAL, /* SCRAM client-final sent, server signature expected */
    ST_VERIFIED,   /* SCRAM server signature checked (it came in a challenge) */
    ST_DONE,       /* success accepted */
    ST_FAILED
} sasl_state_t;

struct xb_sasl {
    apr_pool_t *p;
    const char *mechanism;
    const EVP_MD *md;      /* NULL for PLAIN */
    unsigned md_len;
    sasl_state_t state;
    const char *authcid;   /* not secret, but escaped into the SCRAM messages */
    char *password;        /* wiped once no longer needed */
    apr_size_t password_len;
    char nonce[NONCE_MAX + 1]; /* client nonce; empty: not chosen yet */
    const char *client_first_bare;
    unsigned char server_signature[EVP_MAX_MD_SIZE]; /* what the server must prove */
    char *out;             /* the last output: may hold the password (PLAIN) */
    apr_size_t out_len;
};

/* ------------------------------------------------------------------------------------------ */
/* Base64 */

/* RFC 6120 §6.4.2: base64 with padding, strict (xb_base64). */

char *xb_sasl_base64_encode(apr_pool_t *p, const char *data, apr_size_t len,
                            apr_size_t *out_len)
{
    return xb_base64_encode(p, data, len, XB_BASE64_PADDED, out_len);
}

char *xb_sasl_base64_decode(apr_pool_t *p, const char *b64, apr_size_t len,
                            apr_size_t *out_len)
{
    unsigned char *out = apr_palloc(p, XB_BASE64_DECODED_MAX(len) + 1);
    apr_size_t n;

    if (xb_base64_decode(b64, len, XB_BASE64_PADDED, out, &n) != 0) {
        return NULL;
    }
    out[n] = '\0';
    if (out_len) {
        *out_len = n;
    }
    return (char *)out;
}

/* ------------------------------------------------------------------------------------------ */
/* Object life */

static void wipe_output(xb_sasl_t *s)
{
    if (s->out) {
        OPENSSL_cleanse(s->out, s->out_len);
        s->out = NULL;
        s->out_len = 0;
    }
}

static void wipe_password(xb_sasl_t *s)
{
    if (s->password) {
        OPENSSL_cleanse(s->password, s->password_len);
        s->password = NULL;
        s->password_len = 0;
    }
}

/* Everything secret; the output too unless `keep_output` (it is what the caller sends next). */
static void wipe_secrets(xb_sasl_t *s, int keep_output)
{
    wipe_password(s);
    OPENSSL_cleanse(s->server_signature, sizeof(s->server_signature));
    if (!keep_output) {
        wipe_output(s);
    }
}

static apr_status_t sasl_cleanup(void *data)
{
    wipe_secrets(data, 0);
    return APR_SUCCESS;
}

const char *xb_sasl_choose(const apr_array_header_t *offered, int allow_scram, int allow_plain)
{
    static const char *const preference[] = {
        XB_SASL_SCRAM_SHA_256, XB_SASL_SCRAM_SHA_1, XB_SASL_PLAIN
    };
    apr_size_t i;
    int j;

    if (!offered) {
        return NULL;
    }
    for (i = 0; i < sizeof(preference) / sizeof(preference[0]); i++) {
        int is_plain = !strcmp(preference[i], XB_SASL_PLAIN);
        if (is_plain ? !allow_plain : !allow_scram) {
            continue;
        }
        for (j = 0; j < offered->nelts; j++) {
            const char *m = APR_ARRAY_IDX(offered, j, const char *);
            if (m && !strcmp(m, preference[i])) {
                return preference[i];
            }
        }
    }
    return NULL;
}

xb_sasl_t *xb_sasl_create(apr_pool_t *p, const char *mechanism, const char *authcid,
                          const char *password, const char **errmsg)
{
    xb_sasl_t *s;

    if (!authcid || !*authcid) {
        *errmsg = "empty username";
        return NULL;
    }
    if (!password || !*password) {
        *errmsg = "empty password";
        return NULL;
    }
    s = apr_pcalloc(p, sizeof(*s));
    s->p = p;
    if (mechanism && !strcmp(mechanism, XB_SASL_PLAIN)) {
        s->mechanism = XB_SASL_PLAIN;
    }
    else if (mechanism && !strcmp(mechanism, XB_SASL_SCRAM_SHA_1)) {
        s->mechanism = XB_SASL_SCRAM_SHA_1;
        s->md = EVP_sha1();
    }
    else if (mechanism && !strcmp(mechanism, XB_SASL_SCRAM_SHA_256)) {
        s->mechanism = XB_SASL_SCRAM_SHA_256;
        s->md = EVP_sha256();
    }
    else {
        *errmsg = "unsupported SASL mechanism";
        return NULL;
    }
    if (s->md) {
        int n = EVP_MD_get_size(s->md);
        if (n <= 0 || n > EVP_MAX_MD_SIZE) {
            *errmsg = "digest unavailable";
            return NULL;
        }
        s->md_len = (unsigned)n;
    }
    s->authcid = apr_pstrdup(p, authcid);
    s->password_len = strlen(password);
    s->password = apr_pstrmemdup(p, password, s->password_len);
    apr_pool_cleanup_register(p, s, sasl_cleanup, apr_pool_cleanup_null);
    return s;
}

const char *xb_sasl_mechanism(const xb_sasl_t *s)
{
    return s->mechanism;
}

void xb_sasl_set_nonce_for_test(xb_sasl_t *s, const char *nonce)
{
    apr_size_t n = strlen(nonce);

    if (n <= NONCE_MAX) {
        memcpy(s->nonce, nonce, n + 1);
    }
}

/* Marks the exchange failed, wipes everything and returns the error. */
static apr_status_t fail(xb_sasl_t *s, const char **errmsg, const char *msg)
{
    s->state = ST_FAILED;
    wipe_secrets(s, 0);
    *errmsg = msg;
    return APR_EGENERAL;
}

/* ------------------------------------------------------------------------------------------ */
/* PLAIN */

static apr_status_t plain_initial(xb_sasl_t *s, const char **errmsg)
{
    apr_size_t alen = strlen(s->authcid);
    char *msg;

    (void)errmsg;
    /* authzid (empty) NUL authcid NUL password: the server derives the authzid. */
    s->out_len = 1 + alen + 1 + s->password_len;
    msg = s->out = apr_palloc(s->p, s->out_len);
    msg[0] = '\0';
    memcpy(msg + 1, s->authcid, alen);
    msg[1 + alen] = '\0';
    memcpy(msg + 2 + alen, s->password, s->password_len);
    wipe_password(s);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* SCRAM */

/* RFC 5802 §5.1 saslname: ',' and '=' escaped as =2C and =3D. */
static const char *scram_saslname(apr_pool_t *p, const char *name)
{
    apr_size_t extra = 0;
    const char *in;
    char *out, *o;

    for (in = name; *in; in++) {
        if (*in == ',' || *in == '=') {
            extra += 2;
        }
    }
    out = o = apr_palloc(p, strlen(name) + extra + 1);
    for (in = name; *in; in++) {
        if (*in == ',') {
            memcpy(o, "=2C", 3);
            o += 3;
        }
        else if (*in == '=') {
            memcpy(o, "=3D", 3);
            o += 3;
        }
        else {
            *o++ = *in;
        }
    }
    *o = '\0';
    return out;
}

/* RFC 5802 §7 printable: %x21-2B / %x2D-7E (no ',' and nothing outside ASCII graphic). */
static int scram_printable(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ',') {
            return 0;
        }
    }
    return 1;
}

static apr_status_t scram_initial(xb_sasl_t *s, const char **errmsg)
{
    if (!s->nonce[0]) {
        unsigned char rnd[NONCE_RANDOM_BYTES];
        char *b64;

        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            return fail(s, errmsg, "no random bytes for the SCRAM nonce");
        }
        b64 = xb_sasl_base64_encode(s->p, (const char *)rnd, sizeof(rnd), NULL);
        apr_cpystrn(s->nonce, b64, sizeof(s->nonce));
    }
    else if (!scram_printable(s->nonce, strlen(s->nonce))) {
        return fail(s, errmsg, "invalid SCRAM client nonce");
    }
    s->client_first_bare = apr_pstrcat(s->p, "n=", scram_saslname(s->p, s->authcid),
                                       ",r=", s->nonce, NULL);
    s->out = apr_pstrcat(s->p, GS2_HEADER, s->client_first_bare, NULL);
    s->out_len = strlen(s->out);
    return APR_SUCCESS;
}

/* The value of attribute `name` ("r", "s", ...) at *pos in a SCRAM message, which must start
 * there; *pos moves past it and its ','. NULL if the attribute is not next. */
static const char *scram_attr(apr_pool_t *p, const char **pos, char name)
{
    const char *s = *pos, *end;

    if (s[0] != name || s[1] != '=') {
        return NULL;
    }
    s += 2;
    end = strchr(s, ',');
    if (!end) {
        end = s + strlen(s);
        *pos = end;
    }
    else {
        *pos = end + 1;
    }
    return apr_pstrmemdup(p, s, (apr_size_t)(end - s));
}

/* Decimal digits only, within the iteration bounds. */
static int scram_iterations(const char *s, int *out)
{
    long v = 0;

    if (!*s) {
        return 0;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
        v = v * 10 + (*s - '0');
        if (v > XB_SASL_SCRAM_MAX_ITERATIONS) {
            return 0;
        }
    }
    if (v < XB_SASL_SCRAM_MIN_ITERATIONS) {
        return 0;
    }
    *out = (int)v;
    return 1;
}

/* The message as a C string; NULL if it contains NUL (SCRAM messages never do). */
static const char *scram_message(apr_pool_t *p, const char *in, apr_size_t len)
{
    if (memchr(in, '\0', len)) {
        return NULL;
    }
    return apr_pstrmemdup(p, in, len);
}

/* Derives the proof for the client-final-message and the server signature to expect.
 * Keys live on the stack only for the duration and are wiped before returning. */
static int scram_compute(xb_sasl_t *s, const unsigned char *salt, apr_size_t salt_len,
                         int iterations, const char *auth_message, unsigned char *proof)
{
    unsigned char salted[EVP_MAX_MD_SIZE], client_key[EVP_MAX_MD_SIZE];
    unsigned char stored_key[EVP_MAX_MD_SIZE], client_sig[EVP_MAX_MD_SIZE];
    unsigned char server_key[EVP_MAX_MD_SIZE];
    unsigned int n;
    apr_size_t am_len = strlen(auth_message), i;
    int ok = 0;

    if (s->password_len > INT_MAX || salt_len > INT_MAX) {
        return 0;
    }
    /* SaltedPassword := Hi(password, salt, i), Hi being PBKDF2 with HMAC-H. */
    if (PKCS5_PBKDF2_HMAC(s->password, (int)s->password_len, salt, (int)salt_len, iterations,
                          s->md, (int)s->md_len, salted) != 1) {
        goto done;
    }
    /* ClientKey := HMAC(SaltedPassword, "Client Key"); StoredKey := H(ClientKey) */
    if (!HMAC(s->md, salted, (int)s->md_len, (const unsigned char *)"Client Key", 10,
              client_key, &n) || n != s->md_len) {
        goto done;
    }
    if (EVP_Digest(client_key, s->md_len, stored_key, &n, s->md, NULL) != 1
        || n != s->md_len) {
        goto done;
    }
    /* ClientSignature := HMAC(StoredKey, AuthMessage); ClientProof := ClientKey XOR it */
    if (!HMAC(s->md, stored_key, (int)s->md_len, (const unsigned char *)auth_message, am_len,
              client_sig, &n) || n != s->md_len) {
        goto done;
    }
    for (i = 0; i < s->md_len; i++) {
        proof[i] = client_key[i] ^ client_sig[i];
    }
    /* ServerKey := HMAC(SaltedPassword, "Server Key");
     * ServerSignature := HMAC(ServerKey, AuthMessage) */
    if (!HMAC(s->md, salted, (int)s->md_len, (const unsigned char *)"Server Key", 10,
              server_key, &n) || n != s->md_len) {
        goto done;
    }
    if (!HMAC(s->md, server_key, (int)s->md_len, (const unsigned char *)auth_message, am_len,
              s->server_signature, &n) || n != s->md_len) {
        goto done;
    }
    ok = 1;
done:
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(stored_key, sizeof(stored_key));
    OPENSSL_cleanse(client_sig, sizeof(client_sig));
    OPENSSL_cleanse(server_key, sizeof(server_key));
    return ok;
}

/* server-first-message -> client-final-message. */
static apr_status_t scram_server_first(xb_sasl_t *s, const char *in, apr_size_t in_len,
                                       const char **errmsg)
{
    const char *msg, *pos, *nonce, *salt_b64, *iter_s, *without_proof, *auth_message;
    unsigned char proof[EVP_MAX_MD_SIZE] = { 0 };
    apr_size_t salt_len, our_len = strlen(s->nonce);
    char *salt;
    int iterations;

    msg = scram_message(s->p, in, in_len);
    if (!msg) {
        return fail(s, errmsg, "malformed SCRAM server-first-message");
    }
    pos = msg;
    if (pos[0] == 'm' && pos[1] == '=') {
        /* RFC 5802 §5.1: a mandatory extension we do not know means we must not go on. */
        return fail(s, errmsg, "SCRAM server requires an unsupported extension");
    }
    nonce = scram_attr(s->p, &pos, 'r');
    salt_b64 = nonce ? scram_attr(s->p, &pos, 's') : NULL;
    iter_s = salt_b64 ? scram_attr(s->p, &pos, 'i') : NULL;
    if (!iter_s) {
        return fail(s, errmsg, "malformed SCRAM server-first-message");
    }
    /* The server's nonce must be ours plus its own part; anything else is a replay or a
     * confused server. */
    if (strlen(nonce) <= our_len || strncmp(nonce, s->nonce, our_len)
        || !scram_printable(nonce, strlen(nonce))) {
        return fail(s, errmsg, "SCRAM server nonce does not extend the client nonce");
    }
    salt = xb_sasl_base64_decode(s->p, salt_b64, strlen(salt_b64), &salt_len);
    if (!salt || !salt_len) {
        return fail(s, errmsg, "invalid SCRAM salt");
    }
    if (!scram_iterations(iter_s, &iterations)) {
        return fail(s, errmsg, "SCRAM iteration count missing or out of bounds");
    }
    without_proof = apr_pstrcat(s->p, "c=" GS2_HEADER_B64 ",r=", nonce, NULL);
    auth_message = apr_pstrcat(s->p, s->client_first_bare, ",", msg, ",", without_proof, NULL);
    if (!scram_compute(s, (const unsigned char *)salt, salt_len, iterations, auth_message,
                       proof)) {
        OPENSSL_cleanse(proof, sizeof(proof));
        return fail(s, errmsg, "SCRAM key derivation failed");
    }
    /* The password has served its purpose; the proof goes out on the wire anyway. */
    wipe_password(s);
    s->out = apr_pstrcat(s->p, without_proof, ",p=",
                         xb_sasl_base64_encode(s->p, (const char *)proof, s->md_len, NULL),
                         NULL);
    s->out_len = strlen(s->out);
    OPENSSL_cleanse(proof, sizeof(proof));
    s->state = ST_SENT_FINAL;
    return APR_SUCCESS;
}

/* A server error value ("invalid-proof", ...), cut to a safe length and character set so it
 * can go into a log line. */
static const char *scram_server_error(apr_pool_t *p, const char *value)
{
    char buf[48];
    apr_size_t i;

    for (i = 0; value[i] && i < sizeof(buf) - 1; i++) {
        char c = value[i];
        buf[i] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') ? c : '?';
    }
    buf[i] = '\0';
    return apr_pstrcat(p, "SCRAM server error: ", buf, NULL);
}

/* server-final-message: "v=" signature (or "e=" error), then optional extensions. */
static apr_status_t scram_server_final(xb_sasl_t *s, const char *in, apr_size_t in_len,
                                       const char **errmsg)
{
    const char *msg, *pos, *v;
    char *sig;
    apr_size_t sig_len;

    msg = scram_message(s->p, in, in_len);
    if (!msg) {
        return fail(s, errmsg, "malformed SCRAM server-final-message");
    }
    pos = msg;
    if (pos[0] == 'e' && pos[1] == '=') {
        return fail(s, errmsg, scram_server_error(s->p, scram_attr(s->p, &pos, 'e')));
    }
    v = scram_attr(s->p, &pos, 'v');
    if (!v) {
        return fail(s, errmsg, "malformed SCRAM server-final-message");
    }
    sig = xb_sasl_base64_decode(s->p, v, strlen(v), &sig_len);
    /* Constant time, although the value is no secret by now: habits are cheaper than audits. */
    if (!sig || sig_len != s->md_len
        || CRYPTO_memcmp(sig, s->server_signature, s->md_len) != 0) {
        return fail(s, errmsg, "SCRAM server signature does not verify");
    }
    s->state = ST_VERIFIED;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Steps */

apr_status_t xb_sasl_initial(xb_sasl_t *s, const char **out, apr_size_t *out_len,
                             const char **errmsg)
{
    apr_status_t rv;

    *out = NULL;
    *out_len = 0;
    if (s->state != ST_INIT) {
        return fail(s, errmsg, "SASL exchange already started");
    }
    wipe_output(s);
    rv = s->md ? scram_initial(s, errmsg) : plain_initial(s, errmsg);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    s->state = ST_SENT_FIRST;
    *out = s->out;
    *out_len = s->out_len;
    return APR_SUCCESS;
}

apr_status_t xb_sasl_challenge(xb_sasl_t *s, const char *in, apr_size_t in_len,
                               const char **out, apr_size_t *out_len, const char **errmsg)
{
    apr_status_t rv;

    *out = NULL;
    *out_len = 0;
    wipe_output(s);
    if (!s->md) {
        return fail(s, errmsg, "unexpected challenge for PLAIN");
    }
    switch (s->state) {
    case ST_SENT_FIRST:
        rv = scram_server_first(s, in, in_len, errmsg);
        break;
    case ST_SENT_FINAL:
        /* Servers that do not use <success/> for additional data send the server-final
         * message as a challenge; the answer is an empty response. */
        rv = scram_server_final(s, in, in_len, errmsg);
        if (rv == APR_SUCCESS) {
            s->out = apr_pstrdup(s->p, "");
            s->out_len = 0;
        }
        break;
    default:
        return fail(s, errmsg, "unexpected SCRAM challenge");
    }
    if (rv == APR_SUCCESS) {
        *out = s->out;
        *out_len = s->out_len;
    }
    return rv;
}

apr_status_t xb_sasl_success(xb_sasl_t *s, const char *in, apr_size_t in_len,
                             const char **errmsg)
{
    apr_status_t rv = APR_SUCCESS;

    if (!s->md) {
        /* PLAIN defines no additional data; a server that sends some anyway has still
         * authenticated us, and there is nothing in it to check. */
        if (s->state != ST_SENT_FIRST) {
            return fail(s, errmsg, "SASL success before the exchange started");
        }
    }
    else if (s->state == ST_SENT_FINAL) {
        if (!in_len) {
            return fail(s, errmsg, "SCRAM success without the server signature");
        }
        rv = scram_server_final(s, in, in_len, errmsg);
    }
    else if (s->state == ST_VERIFIED) {
        if (in_len) {
            rv = scram_server_final(s, in, in_len, errmsg);
        }
    }
    else {
        /* A success before the server has proven anything is exactly what an impostor would
         * send: SCRAM's mutual authentication must not be skippable. */
        return fail(s, errmsg, "SASL success before the SCRAM exchange completed");
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    s->state = ST_DONE;
    wipe_secrets(s, 0);
    return APR_SUCCESS;
}
