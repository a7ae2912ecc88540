/* HS256 JSON Web Tokens; see xb_jwt.h.
 *
 * There is no JSON library among the dependencies, and the only JSON we read is a JWK and the
 * header and claims of a token, so a small strict reader lives here: RFC 8259 grammar, strict
 * UTF-8, bounded depth and node count, duplicate member names refused (RFC 7515 §5.2 allows a
 * verifier to refuse them, and accepting "the last one" is how parsers get confused with each
 * other). String values are kept as slices of the input and decoded only on demand, so the
 * only copies of a JWK's "k" are the caller's buffer, one decode buffer that is cleansed at once,
 * and the key itself.
 */
#include <string.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "xb_base64.h"
#include "xb_jwt.h"
#include "xb_utf8.h"

#define HS256_LEN 32
/* base64url of 32 bytes without padding */
#define HS256_B64_LEN 43

/* Nesting and size limits for the JSON reader: a JWK or a claims set needs neither depth nor
 * many nodes, and the limits keep hostile input from costing stack or time. */
#define JSON_MAX_DEPTH 16
#define JSON_MAX_NODES 1024

struct xb_jwt_key {
    unsigned char *secret;
    apr_size_t len;
};

/* ------------------------------------------------------------------------------------------ */
/* A small strict JSON reader */

typedef enum {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type_t;

typedef struct json_value json_value_t;
struct json_value {
    json_type_t type;
    const char *raw;      /* string: the bytes between the quotes, still escaped; number: text */
    apr_size_t raw_len;
    int integral;         /* number without fraction or exponent */
    json_value_t *first;  /* array elements or object members */
    json_value_t *next;
    const char *name;     /* object member: its decoded name (may hold NULs, see name_len) */
    apr_size_t name_len;
};

typedef struct {
    apr_pool_t *p;
    const char *start;
    const char *cur;
    const char *end;
    unsigned depth;
    unsigned nodes;
    const char *err;
} json_reader_t;

static json_value_t *json_parse_value(json_reader_t *r);

static int hex4(const char *s, apr_size_t avail, unsigned *cp)
{
    apr_size_t i;
    unsigned v = 0;
    char c;

    if (avail < 4) {
        return 0;
    }
    for (i = 0; i < 4; i++) {
        c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        }
        else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        }
        else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        }
        else {
            return 0;
        }
    }
    *cp = v;
    return 1;
}

/* Decodes the body of a JSON string (between the quotes). With `out` NULL it only validates and
 * measures. The decoded form is never longer than `len`. Returns 0 on success. */
static int json_string_decode(const char *raw, apr_size_t len, char *out, apr_size_t *out_len)
{
    apr_size_t i = 0, o = 0, n;
    unsigned char c;
    unsigned cp, lo;

    while (i < len) {
        c = (unsigned char)raw[i];
        if (c == '"' || c < 0x20) {
            return -1;
        }
        if (c != '\\') {
            n = xb_utf8_decode((const unsigned char *)raw + i, len - i, &cp);
            if (n == 0) {
                return -1;
            }
            if (out) {
                memcpy(out + o, raw + i, n);
            }
            o += n;
            i += n;
            continue;
        }
        if (i + 1 >= len) {
            return -1;
        }
        c = (unsigned char)raw[i + 1];
        i += 2;
        switch (c) {
        case '"': case '\\': case '/':
            cp = c;
            break;
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            if (!hex4(raw + i, len - i, &cp)) {
                return -1;
            }
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1; /* a lone low surrogate */
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 6 > len || raw[i] != '\\' || raw[i + 1] != 'u'
                    || !hex4(raw + i + 2, len - i - 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    return -1;
                }
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            break;
        default:
            return -1;
        }
        o += xb_utf8_encode(out ? out + o : NULL, cp);
    }
    *out_len = o;
    return 0;
}

static void json_skip_ws(json_reader_t *r)
{
    while (r->cur < r->end
           && (*r->cur == ' ' || *r->cur == '\t' || *r->cur == '\n' || *r->cur == '\r')) {
        r->cur++;
    }
}

static json_value_t *json_fail(json_reader_t *r, const char *what)
{
    if (!r->err) {
        r->err = apr_psprintf(r->p, "%s at byte %" APR_SIZE_T_FMT, what,
                              (apr_size_t)(r->cur - r->start));
    }
    return NULL;
}

static json_value_t *json_node(json_reader_t *r, json_type_t type)
{
    json_value_t *v;

    if (++r->nodes > JSON_MAX_NODES) {
        return json_fail(r, "too many JSON values");
    }
    v = apr_pcalloc(r->p, sizeof(*v));
    v->type = type;
    return v;
}

/* At the opening quote; leaves the reader after the closing one. Sets *raw, *raw_len. */
static int json_scan_string(json_reader_t *r, const char **raw, apr_size_t *raw_len)
{
    const char *s = ++r->cur;
    apr_size_t decoded;

    while (r->cur < r->end && *r->cur != '"') {
        if (*r->cur == '\\') {
            if (r->end - r->cur < 2) {
                r->cur = r->end; /* a backslash as the last byte */
                break;
            }
            r->cur++;
        }
        r->cur++;
    }
    if (r->cur >= r->end) {
        json_fail(r, "unterminated JSON string");
        return -1;
    }
    if (json_string_decode(s, (apr_size_t)(r->cur - s), NULL, &decoded) != 0) {
        json_fail(r, "invalid JSON string (escape, control character or UTF-8)");
        return -1;
    }
    *raw = s;
    *raw_len = (apr_size_t)(r->cur - s);
    r->cur++;
    return 0;
}

static int json_digit(json_reader_t *r)
{
    return r->cur < r->end && *r->cur >= '0' && *r->cur <= '9';
}

static json_value_t *json_parse_number(json_reader_t *r)
{
    json_value_t *v = json_node(r, JSON_NUMBER);
    const char *s = r->cur;

    if (!v) {
        return NULL;
    }
    v->integral = 1;
    if (r->cur < r->end && *r->cur == '-') {
        r->cur++;
    }
    if (!json_digit(r)) {
        return json_fail(r, "invalid JSON number");
    }
    if (*r->cur == '0') {
        r->cur++;
    }
    else {
        while (json_digit(r)) {
            r->cur++;
        }
    }
    if (r->cur < r->end && *r->cur == '.') {
        r->cur++;
        v->integral = 0;
        if (!json_digit(r)) {
            return json_fail(r, "invalid JSON number");
        }
        while (json_digit(r)) {
            r->cur++;
        }
    }
    if (r->cur < r->end && (*r->cur == 'e' || *r->cur == 'E')) {
        r->cur++;
        v->integral = 0;
        if (r->cur < r->end && (*r->cur == '+' || *r->cur == '-')) {
            r->cur++;
        }
        if (!json_digit(r)) {
            return json_fail(r, "invalid JSON number");
        }
        while (json_digit(r)) {
            r->cur++;
        }
    }
    v->raw = s;
    v->raw_len = (apr_size_t)(r->cur - s);
    return v;
}

static json_value_t *json_parse_literal(json_reader_t *r, const char *word, json_type_t type)
{
    apr_size_t n = strlen(word);

    if ((apr_size_t)(r->end - r->cur) < n || memcmp(r->cur, word, n) != 0) {
        return json_fail(r, "invalid JSON literal");
    }
    r->cur += n;
    return json_node(r, type);
}

static json_value_t *json_parse_array(json_reader_t *r)
{
    json_value_t *v = json_node(r, JSON_ARRAY), *item, **tail;

    if (!v) {
        return NULL;
    }
    tail = &v->first;
    r->cur++; /* '[' */
    json_skip_ws(r);
    if (r->cur < r->end && *r->cur == ']') {
        r->cur++;
        return v;
    }
    for (;;) {
        if (!(item = json_parse_value(r))) {
            return NULL;
        }
        *tail = item;
        tail = &item->next;
        json_skip_ws(r);
        if (r->cur < r->end && *r->cur == ',') {
            r->cur++;
            continue;
        }
        if (r->cur < r->end && *r->cur == ']') {
            r->cur++;
            return v;
        }
        return json_fail(r, "expected ',' or ']' in JSON array");
    }
}

static json_value_t *json_parse_object(json_reader_t *r)
{
    json_value_t *v = json_node(r, JSON_OBJECT), *member, *other, **tail;
    const char *raw;
    apr_size_t raw_len, name_len;
    char *name;

    if (!v) {
        return NULL;
    }
    tail = &v->first;
    r->cur++; /* '{' */
    json_skip_ws(r);
    if (r->cur < r->end && *r->cur == '}') {
        r->cur++;
        return v;
    }
    for (;;) {
        json_skip_ws(r);
        if (r->cur >= r->end || *r->cur != '"') {
            return json_fail(r, "expected a member name in JSON object");
        }
        if (json_scan_string(r, &raw, &raw_len) != 0) {
            return NULL;
        }
        name = apr_palloc(r->p, raw_len + 1);
        json_string_decode(raw, raw_len, name, &name_len); /* validated by the scan */
        name[name_len] = '\0';
        json_skip_ws(r);
        if (r->cur >= r->end || *r->cur != ':') {
            return json_fail(r, "expected ':' in JSON object");
        }
        r->cur++;
        if (!(member = json_parse_value(r))) {
            return NULL;
        }
        for (other = v->first; other; other = other->next) {
            if (other->name_len == name_len && memcmp(other->name, name, name_len) == 0) {
                return json_fail(r, "duplicate member name in JSON object");
            }
        }
        member->name = name;
        member->name_len = name_len;
        *tail = member;
        tail = &member->next;
        json_skip_ws(r);
        if (r->cur < r->end && *r->cur == ',') {
            r->cur++;
            continue;
        }
        if (r->cur < r->end && *r->cur == '}') {
            r->cur++;
            return v;
        }
        return json_fail(r, "expected ',' or '}' in JSON object");
    }
}

static json_value_t *json_parse_value(json_reader_t *r)
{
    json_value_t *v;

    json_skip_ws(r);
    if (r->cur >= r->end) {
        return json_fail(r, "unexpected end of JSON");
    }
    if (r->depth >= JSON_MAX_DEPTH) {
        return json_fail(r, "JSON nested too deeply");
    }
    r->depth++;
    switch (*r->cur) {
    case '{':
        v = json_parse_object(r);
        break;
    case '[':
        v = json_parse_array(r);
        break;
    case '"':
        v = json_node(r, JSON_STRING);
        if (v && json_scan_string(r, &v->raw, &v->raw_len) != 0) {
            v = NULL;
        }
        break;
    case 't':
        v = json_parse_literal(r, "true", JSON_TRUE);
        break;
    case 'f':
        v = json_parse_literal(r, "false", JSON_FALSE);
        break;
    case 'n':
        v = json_parse_literal(r, "null", JSON_NULL);
        break;
    default:
        v = json_parse_number(r);
        break;
    }
    r->depth--;
    return v;
}

/* Parses a whole JSON text (one value, optional surrounding whitespace). Nodes go to `p`. */
static json_value_t *json_parse(apr_pool_t *p, const char *data, apr_size_t len,
                                const char **errmsg)
{
    json_reader_t r;
    json_value_t *v;

    memset(&r, 0, sizeof(r));
    r.p = p;
    r.start = r.cur = data;
    r.end = data + len;
    v = json_parse_value(&r);
    if (v) {
        json_skip_ws(&r);
        if (r.cur != r.end) {
            v = json_fail(&r, "trailing data after JSON value");
        }
    }
    if (!v) {
        *errmsg = r.err ? r.err : "malformed JSON";
    }
    return v;
}

static const json_value_t *json_member(const json_value_t *obj, const char *name)
{
    const json_value_t *m;
    apr_size_t n = strlen(name);

    if (!obj || obj->type != JSON_OBJECT) {
        return NULL;
    }
    for (m = obj->first; m; m = m->next) {
        if (m->name_len == n && memcmp(m->name, name, n) == 0) {
            return m;
        }
    }
    return NULL;
}

/* The decoded string as a C string; NULL unless `v` is a string without NUL characters. */
static char *json_string_dup(apr_pool_t *p, const json_value_t *v, apr_size_t *len_out)
{
    char *s;
    apr_size_t len;

    if (!v || v->type != JSON_STRING) {
        return NULL;
    }
    s = apr_palloc(p, v->raw_len + 1);
    if (json_string_decode(v->raw, v->raw_len, s, &len) != 0 || memchr(s, '\0', len)) {
        return NULL;
    }
    s[len] = '\0';
    if (len_out) {
        *len_out = len;
    }
    return s;
}

static int json_string_is(const json_value_t *v, const char *want, int nocase)
{
    char buf[64];
    apr_size_t len, i;
    unsigned char a, b;

    if (!v || v->type != JSON_STRING || v->raw_len >= sizeof(buf)
        || json_string_decode(v->raw, v->raw_len, buf, &len) != 0 || len != strlen(want)) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        a = (unsigned char)buf[i];
        b = (unsigned char)want[i];
        if (nocase) { /* ASCII only, whatever the locale */
            a = a >= 'A' && a <= 'Z' ? (unsigned char)(a + 32) : a;
            b = b >= 'A' && b <= 'Z' ? (unsigned char)(b + 32) : b;
        }
        if (a != b) {
            return 0;
        }
    }
    return 1;
}

/* An integral JSON number as a 64-bit value; 0 when it is not one or does not fit. */
static int json_int64(const json_value_t *v, apr_int64_t *out)
{
    apr_uint64_t acc = 0, limit;
    apr_size_t i = 0;
    int neg = 0;

    if (!v || v->type != JSON_NUMBER || !v->integral) {
        return 0;
    }
    if (v->raw[0] == '-') {
        neg = 1;
        i = 1;
    }
    limit = neg ? (apr_uint64_t)APR_INT64_MAX + 1 : (apr_uint64_t)APR_INT64_MAX;
    for (; i < v->raw_len; i++) {
        unsigned d = (unsigned)(v->raw[i] - '0');
        if (acc > (limit - d) / 10) {
            return 0;
        }
        acc = acc * 10 + d;
    }
    if (neg) {
        *out = acc == (apr_uint64_t)APR_INT64_MAX + 1 ? APR_INT64_MIN : -(apr_int64_t)acc;
    }
    else {
        *out = (apr_int64_t)acc;
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Keys */

static apr_status_t key_cleanup(void *data)
{
    xb_jwt_key_t *key = data;

    if (key->secret) {
        OPENSSL_cleanse(key->secret, key->len);
    }
    key->len = 0;
    return APR_SUCCESS;
}

static xb_jwt_key_t *key_make(apr_pool_t *p, const unsigned char *secret, apr_size_t len)
{
    xb_jwt_key_t *key = apr_pcalloc(p, sizeof(*key));

    key->secret = apr_palloc(p, len ? len : 1);
    memcpy(key->secret, secret, len);
    key->len = len;
    apr_pool_cleanup_register(p, key, key_cleanup, apr_pool_cleanup_null);
    return key;
}

/* The JWK (or JWK Set of one) in `data`; `tmp` holds the parse and is destroyed by the caller. */
static apr_status_t key_parse_jwk(apr_pool_t *p, apr_pool_t *tmp, const char *data,
                                  apr_size_t len, xb_jwt_key_t **key, const char **errmsg)
{
    const json_value_t *root, *jwk, *keys, *k, *alg;
    const char *jerr;
    unsigned char *secret;
    char *k_text;
    apr_size_t k_len, secret_len;
    int rc;

    if (!(root = json_parse(tmp, data, len, &jerr))) {
        *errmsg = apr_psprintf(p, "is not a valid JWK: %s", jerr);
        return APR_EINVAL;
    }
    if (root->type != JSON_OBJECT) {
        *errmsg = "is not a valid JWK: not a JSON object";
        return APR_EINVAL;
    }
    jwk = root;
    if ((keys = json_member(root, "keys")) != NULL) {
        /* A JWK Set, as ejabberd also accepts, holding exactly one key. */
        if (keys->type != JSON_ARRAY || !keys->first || keys->first->next
            || keys->first->type != JSON_OBJECT) {
            *errmsg = "is a JWK Set that does not hold exactly one key";
            return APR_EINVAL;
        }
        jwk = keys->first;
    }
    if (!json_string_is(json_member(jwk, "kty"), "oct", 0)) {
        *errmsg = "is a JWK whose \"kty\" is not \"oct\" (a shared HMAC secret)";
        return APR_EINVAL;
    }
    alg = json_member(jwk, "alg");
    if (alg && !json_string_is(alg, "HS256", 0)) {
        *errmsg = "is a JWK whose \"alg\" is not \"HS256\"";
        return APR_EINVAL;
    }
    k = json_member(jwk, "k");
    if (!(k_text = json_string_dup(tmp, k, &k_len))) {
        *errmsg = "is a JWK without a string \"k\"";
        return APR_EINVAL;
    }
    secret = apr_palloc(tmp, XB_BASE64_DECODED_MAX(k_len));
    rc = xb_base64_decode(k_text, k_len, XB_BASE64URL_OPTIONAL_PAD, secret, &secret_len);
    OPENSSL_cleanse(k_text, k_len);
    if (rc != 0) {
        OPENSSL_cleanse(secret, XB_BASE64_DECODED_MAX(k_len));
        *errmsg = "is a JWK whose \"k\" is not valid base64url";
        return APR_EINVAL;
    }
    if (secret_len < XB_JWT_KEY_MIN_BYTES) {
        OPENSSL_cleanse(secret, secret_len);
        *errmsg = apr_psprintf(p, "holds a %" APR_SIZE_T_FMT "-byte secret; at least %d bytes "
                               "are required", secret_len, XB_JWT_KEY_MIN_BYTES);
        return APR_EINVAL;
    }
    *key = key_make(p, secret, secret_len);
    OPENSSL_cleanse(secret, secret_len);
    return APR_SUCCESS;
}

apr_status_t xb_jwt_key_parse(apr_pool_t *p, const char *data, apr_size_t len,
                              xb_jwt_key_t **key, const char **errmsg)
{
    apr_pool_t *tmp;
    apr_size_t i = 0;
    apr_status_t rv;

    *key = NULL;
    *errmsg = NULL;
    if (!data) {
        *errmsg = "is empty";
        return APR_EINVAL;
    }
    if (len > XB_JWT_KEY_FILE_MAX) {
        *errmsg = apr_psprintf(p, "is larger than %d bytes", XB_JWT_KEY_FILE_MAX);
        return APR_EINVAL;
    }
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) {
        i++;
    }
    if (i < len && data[i] == '{') {
        if ((rv = apr_pool_create(&tmp, p)) != APR_SUCCESS) {
            *errmsg = "cannot be parsed: out of memory";
            return rv;
        }
        rv = key_parse_jwk(p, tmp, data, len, key, errmsg);
        apr_pool_destroy(tmp);
        return rv;
    }
    /* Raw secret bytes; editors add a final newline, which is not part of the secret. */
    if (len > 0 && data[len - 1] == '\n') {
        len--;
        if (len > 0 && data[len - 1] == '\r') {
            len--;
        }
    }
    if (len < XB_JWT_KEY_MIN_BYTES) {
        *errmsg = apr_psprintf(p, "holds a %" APR_SIZE_T_FMT "-byte secret; at least %d bytes "
                               "are required", len, XB_JWT_KEY_MIN_BYTES);
        return APR_EINVAL;
    }
    *key = key_make(p, (const unsigned char *)data, len);
    return APR_SUCCESS;
}

apr_status_t xb_jwt_key_load(apr_pool_t *p, const char *path, xb_jwt_key_t **key,
                             const char **errmsg)
{
    const apr_fileperms_t loose = APR_FPROT_GREAD | APR_FPROT_GWRITE | APR_FPROT_GEXECUTE
                                  | APR_FPROT_WREAD | APR_FPROT_WWRITE | APR_FPROT_WEXECUTE;
    apr_pool_t *tmp;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    apr_size_t got = 0, n;
    char *buf, ebuf[256];
    unsigned mode;

    *key = NULL;
    *errmsg = NULL;
    if (!path || !*path) {
        *errmsg = "no JWT key file given";
        return APR_EINVAL;
    }
    if ((rv = apr_pool_create(&tmp, p)) != APR_SUCCESS) {
        *errmsg = "out of memory";
        return rv;
    }
    /* Unbuffered: APR's read buffer would be one more copy of the secret that nobody cleanses. */
    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, tmp);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "cannot open JWT key file %s: %s", path,
                               apr_strerror(rv, ebuf, sizeof(ebuf)));
        apr_pool_destroy(tmp);
        return rv;
    }
    /* Checked on the open descriptor, so the file we read is the file we checked. */
    rv = apr_file_info_get(&fi, APR_FINFO_TYPE | APR_FINFO_PROT, f);
    if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
        *errmsg = apr_psprintf(p, "cannot stat JWT key file %s: %s", path,
                               apr_strerror(rv, ebuf, sizeof(ebuf)));
        apr_pool_destroy(tmp);
        return rv;
    }
    if (!(fi.valid & APR_FINFO_TYPE) || fi.filetype != APR_REG) {
        *errmsg = apr_psprintf(p, "JWT key file %s is not a regular file", path);
        apr_pool_destroy(tmp);
        return APR_EINVAL;
    }
    if (!(fi.valid & APR_FINFO_PROT) || (fi.protection & loose)) {
        /* APR keeps the permission bits in the same three-nibble layout as the octal mode. */
        mode = ((unsigned)(fi.protection >> 8) & 7) << 6 | ((unsigned)(fi.protection >> 4) & 7) << 3
               | ((unsigned)fi.protection & 7);
        *errmsg = apr_psprintf(p, "refusing JWT key file %s: it is accessible by group or "
                               "others (mode %04o); it must be readable by its owner only "
                               "(chmod 600)", path, mode);
        apr_pool_destroy(tmp);
        return APR_EACCES;
    }
    buf = apr_palloc(tmp, XB_JWT_KEY_FILE_MAX + 1);
    for (;;) {
        n = XB_JWT_KEY_FILE_MAX + 1 - got;
        if (n == 0) {
            break;
        }
        rv = apr_file_read(f, buf + got, &n);
        got += n;
        if (rv == APR_EOF) {
            break;
        }
        if (rv != APR_SUCCESS) {
            OPENSSL_cleanse(buf, got);
            *errmsg = apr_psprintf(p, "cannot read JWT key file %s: %s", path,
                                   apr_strerror(rv, ebuf, sizeof(ebuf)));
            apr_pool_destroy(tmp);
            return rv;
        }
    }
    apr_file_close(f);
    rv = xb_jwt_key_parse(p, buf, got, key, errmsg);
    OPENSSL_cleanse(buf, got);
    apr_pool_destroy(tmp);
    if (rv != APR_SUCCESS) {
        *errmsg = apr_psprintf(p, "JWT key file %s %s", path, *errmsg);
    }
    return rv;
}

apr_size_t xb_jwt_key_length(const xb_jwt_key_t *key)
{
    return key ? key->len : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Tokens */

static const char jwt_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* A JSON string body for `s` (valid UTF-8): quotes, backslashes and control characters
 * escaped. An XEP-0106-escaped localpart such as john\20doe carries backslashes. */
static char *json_escape(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    apr_size_t len = strlen(s), i, o = 0;
    char *out = apr_palloc(p, len * 6 + 1);
    unsigned char c;

    for (i = 0; i < len; i++) {
        c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        }
        else if (c < 0x20 || c == 0x7F) {
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
        else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return out;
}

static int hs256(const xb_jwt_key_t *key, const char *data, apr_size_t len,
                 unsigned char mac[HS256_LEN])
{
    unsigned int mac_len = 0;

    if (key->len > (apr_size_t)XB_JWT_KEY_FILE_MAX) {
        return -1;
    }
    if (!HMAC(EVP_sha256(), key->secret, (int)key->len, (const unsigned char *)data, len, mac,
              &mac_len) || mac_len != HS256_LEN) {
        return -1;
    }
    return 0;
}

char *xb_jwt_mint(apr_pool_t *p, const xb_jwt_key_t *key, const char *jid, apr_time_t now,
                  unsigned lifetime_sec)
{
    unsigned char mac[HS256_LEN];
    apr_int64_t iat;
    const char *claims, *signing_input;
    char *token;

    if (!key || !key->len || !jid || !*jid || !xb_utf8_valid(jid, strlen(jid))) {
        return NULL;
    }
    iat = (apr_int64_t)apr_time_sec(now);
    claims = apr_psprintf(p, "{\"jid\":\"%s\",\"iat\":%" APR_INT64_T_FMT ",\"exp\":%"
                          APR_INT64_T_FMT "}", json_escape(p, jid), iat,
                          iat + (apr_int64_t)lifetime_sec);
    /* Without padding, as JWS requires (RFC 7515 §2). */
    signing_input = apr_pstrcat(p,
                                xb_base64_encode(p, jwt_header, sizeof(jwt_header) - 1,
                                                 XB_BASE64URL, NULL),
                                ".",
                                xb_base64_encode(p, claims, strlen(claims), XB_BASE64URL, NULL),
                                NULL);
    if (hs256(key, signing_input, strlen(signing_input), mac) != 0) {
        return NULL;
    }
    token = apr_pstrcat(p, signing_input, ".",
                        xb_base64_encode(p, mac, sizeof(mac), XB_BASE64URL, NULL), NULL);
    OPENSSL_cleanse(mac, sizeof(mac));
    return token;
}

/* Decodes one base64url JWS segment and parses it as a JSON object. */
static const json_value_t *segment_object(apr_pool_t *p, const char *seg, apr_size_t len,
                                          const char *what, const char **errmsg)
{
    unsigned char *buf = apr_palloc(p, XB_BASE64_DECODED_MAX(len));
    apr_size_t n;
    const json_value_t *v;
    const char *jerr;

    if (xb_base64_decode(seg, len, XB_BASE64URL, buf, &n) != 0) {
        *errmsg = apr_psprintf(p, "token %s is not valid base64url", what);
        return NULL;
    }
    if (!(v = json_parse(p, (const char *)buf, n, &jerr))) {
        *errmsg = apr_psprintf(p, "token %s is not valid JSON: %s", what, jerr);
        return NULL;
    }
    if (v->type != JSON_OBJECT) {
        *errmsg = apr_psprintf(p, "token %s is not a JSON object", what);
        return NULL;
    }
    return v;
}

/* `when` (seconds since the epoch) as apr_time_t, saturating instead of overflowing. */
static apr_time_t seconds_to_apr(apr_int64_t when)
{
    if (when >= APR_INT64_MAX / APR_USEC_PER_SEC) {
        return APR_INT64_MAX;
    }
    if (when <= APR_INT64_MIN / APR_USEC_PER_SEC) {
        return APR_INT64_MIN;
    }
    return apr_time_from_sec(when);
}

int xb_jwt_verify(apr_pool_t *p, const xb_jwt_key_t *key, const char *token, apr_time_t now,
                  const char **jid_out, const char **errmsg)
{
    unsigned char mac[HS256_LEN], sig[HS256_LEN + 3];
    const char *dot1, *dot2, *s;
    const json_value_t *header, *claims, *v;
    apr_size_t len, sig_len;
    apr_int64_t exp, nbf;
    const char *jid;
    int good;

    if (jid_out) {
        *jid_out = NULL;
    }
    *errmsg = NULL;
    if (!key || !key->len || !token) {
        *errmsg = "no key or no token";
        return 0;
    }
    len = strnlen(token, XB_JWT_TOKEN_MAX + 1);
    if (len > XB_JWT_TOKEN_MAX) {
        *errmsg = "token too long";
        return 0;
    }
    dot1 = dot2 = NULL;
    for (s = token; *s; s++) {
        if (*s == '.') {
            if (!dot1) {
                dot1 = s;
            }
            else if (!dot2) {
                dot2 = s;
            }
            else {
                *errmsg = "token is not a JWS compact serialization (too many parts)";
                return 0;
            }
        }
        else if (xb_base64_value((unsigned char)*s, XB_BASE64URL) < 0) {
            *errmsg = "token contains a character outside base64url";
            return 0;
        }
    }
    if (!dot2 || dot1 == token || dot2 == dot1 + 1) {
        *errmsg = "token is not a JWS compact serialization (header.claims.signature)";
        return 0;
    }
    /* The signature first: nothing unauthenticated reaches the JSON reader. */
    if ((apr_size_t)(token + len - (dot2 + 1)) != HS256_B64_LEN
        || xb_base64_decode(dot2 + 1, HS256_B64_LEN, XB_BASE64URL, sig, &sig_len) != 0
        || sig_len != HS256_LEN) {
        *errmsg = "token signature is not an HS256 signature";
        return 0;
    }
    if (hs256(key, token, (apr_size_t)(dot2 - token), mac) != 0) {
        *errmsg = "HMAC-SHA256 failed";
        return 0;
    }
    good = CRYPTO_memcmp(mac, sig, HS256_LEN) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    if (!good) {
        *errmsg = "token signature does not match";
        return 0;
    }

    if (!(header = segment_object(p, token, (apr_size_t)(dot1 - token), "header", errmsg))) {
        return 0;
    }
    if (!json_string_is(json_member(header, "alg"), "HS256", 0)) {
        *errmsg = "token header alg is not HS256";
        return 0;
    }
    v = json_member(header, "typ");
    if (v && !json_string_is(v, "JWT", 1)) {
        *errmsg = "token header typ is not JWT";
        return 0;
    }
    if (json_member(header, "crit")) {
        *errmsg = "token header has crit extensions, which are not supported";
        return 0;
    }

    claims = segment_object(p, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1), "claims", errmsg);
    if (!claims) {
        return 0;
    }
    if (!json_int64(json_member(claims, "exp"), &exp)) {
        *errmsg = "token has no integer exp claim";
        return 0;
    }
    if (now >= seconds_to_apr(exp)) {
        *errmsg = "token has expired";
        return 0;
    }
    if ((v = json_member(claims, "nbf")) != NULL) {
        if (!json_int64(v, &nbf)) {
            *errmsg = "token nbf claim is not an integer";
            return 0;
        }
        if (now < seconds_to_apr(nbf)) {
            *errmsg = "token is not valid yet (nbf)";
            return 0;
        }
    }
    jid = json_string_dup(p, json_member(claims, "jid"), NULL);
    if (!jid || !*jid) {
        *errmsg = "token has no jid claim";
        return 0;
    }
    if (jid_out) {
        *jid_out = jid;
    }
    return 1;
}
