/* User -> JID mapping and JID checks; see xb_jid.h.
 *
 * The escaping follows XEP-0106's normative rules (§4.1 rule 7, §4.2 step 3, §4.3): a
 * backslash is escaped only where it would otherwise start one of the ten escape sequences.
 * Examples 9-11 of the XEP's own table (c:\net -> c\3a\5cnet) contradict §4.3 ("foo\bar is not
 * modified by escaping"); the rules win, which is also what Prosody's util.jid.escape does.
 */
#include <string.h>
#include <apr_strings.h>
#include "xb_jid.h"
#include "xb_utf8.h"

#define TEMPLATE_NAME_MAX 128

/* The nine characters XEP-0106 escapes (the tenth, '\', is handled apart). */
static const char *escape_of(unsigned char c)
{
    switch (c) {
    case ' ':
        return "\\20";
    case '"':
        return "\\22";
    case '&':
        return "\\26";
    case '\'':
        return "\\27";
    case '/':
        return "\\2f";
    case ':':
        return "\\3a";
    case '<':
        return "\\3c";
    case '>':
        return "\\3e";
    case '@':
        return "\\40";
    default:
        return NULL;
    }
}

/* True when the `avail` bytes at `s` (just after a backslash) begin one of the ten sequences.
 * Case is significant: \2F is not an escape sequence (XEP-0106 §3.1). */
static int starts_escape_seq(const char *s, apr_size_t avail)
{
    static const char seqs[][3] = { "20", "22", "26", "27", "2f", "3a", "3c", "3e", "40", "5c" };
    apr_size_t i;

    if (avail < 2) {
        return 0;
    }
    for (i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        if (s[0] == seqs[i][0] && s[1] == seqs[i][1]) {
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The characters no part of a JID may hold */

/* Code points stringprep (RFC 3454 tables C.1.2, C.2, C.3, C.4, C.8) and PRECIS refuse in every
 * part of a JID that can be told without Unicode tables: controls, non-ASCII spaces,
 * format characters, private use, non-characters. ASCII space is the caller's business (a
 * resource may hold it). */
static int prohibited_cp(unsigned cp)
{
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
        return 1; /* C0, DEL, C1 */
    }
    if (cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) || cp == 0x2028
        || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000) {
        return 1; /* non-ASCII spaces, zero-width and direction marks */
    }
    if (cp == 0x06DD || cp == 0x070F || cp == 0x180E || (cp >= 0x202A && cp <= 0x202E)
        || (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFD)) {
        return 1; /* format and replacement characters */
    }
    if ((cp >= 0xE000 && cp <= 0xF8FF) || cp >= 0xF0000) {
        return 1; /* private use */
    }
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
        return 1; /* non-characters */
    }
    return 0;
}

/* 0 when `s` is valid UTF-8 without prohibited code points. */
static int check_text(const char *s, apr_size_t len)
{
    apr_size_t i = 0, n;
    unsigned cp;

    while (i < len) {
        n = xb_utf8_decode((const unsigned char *)s + i, len - i, &cp);
        if (n == 0 || prohibited_cp(cp)) {
            return -1;
        }
        i += n;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Part checks */

static const char *check_localpart(const char *s, apr_size_t len)
{
    apr_size_t i;

    if (len == 0) {
        return "the localpart is empty";
    }
    if (len > XB_JID_PART_MAX) {
        return "the localpart is longer than 1023 bytes";
    }
    if (check_text(s, len) != 0) {
        return "the localpart is not valid UTF-8 or holds a control, space or other "
               "prohibited character";
    }
    for (i = 0; i < len; i++) {
        if (escape_of((unsigned char)s[i])) {
            return "the localpart holds a character that must be escaped "
                   "(space \" & ' / : < > @)";
        }
    }
    if ((len >= 3 && memcmp(s, "\\20", 3) == 0)
        || (len >= 3 && memcmp(s + len - 3, "\\20", 3) == 0)) {
        return "the localpart begins or ends with an escaped space (\\20), which XEP-0106 "
               "forbids";
    }
    return NULL;
}

/* ASCII only, whatever the locale: JID syntax is not locale-dependent. */
static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static int is_ascii_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_ascii_xdigit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_ldh(unsigned char c)
{
    return is_ascii_alnum(c) || c == '-';
}

static const char *check_ipv6_literal(const char *s, apr_size_t len)
{
    apr_size_t i;
    int colons = 0;

    if (len < 4 || s[len - 1] != ']') {
        return "the domainpart is not a valid IPv6 literal";
    }
    for (i = 1; i + 1 < len; i++) {
        if (s[i] == ':') {
            colons++;
        }
        else if (!is_ascii_xdigit((unsigned char)s[i]) && s[i] != '.') {
            return "the domainpart is not a valid IPv6 literal";
        }
    }
    return colons >= 2 ? NULL : "the domainpart is not a valid IPv6 literal";
}

static const char *check_domainpart(const char *s, apr_size_t len)
{
    apr_size_t i, start = 0;
    apr_size_t j;
    int ascii;

    if (len == 0) {
        return "the domainpart is empty";
    }
    if (len > XB_JID_PART_MAX) {
        return "the domainpart is longer than 1023 bytes";
    }
    if (s[0] == '[') {
        return check_ipv6_literal(s, len);
    }
    if (check_text(s, len) != 0) {
        return "the domainpart is not valid UTF-8 or holds a control or other prohibited "
               "character";
    }
    /* Labels: ASCII ones are letters, digits and inner hyphens (RFC 1123); labels with
     * non-ASCII characters are IDN U-labels, which the server's nameprep judges. */
    for (i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            continue;
        }
        if (i == start) {
            return i == len ? "the domainpart ends with '.'"
                            : "the domainpart has an empty label";
        }
        if (i - start > 63) {
            return "the domainpart has a label longer than 63 bytes";
        }
        ascii = 1;
        for (j = start; j < i; j++) {
            unsigned char c = (unsigned char)s[j];
            if (c >= 0x80) {
                ascii = 0;
            }
            else if (!is_ldh(c)) {
                return "the domainpart holds a character not allowed in a DNS name";
            }
        }
        if (ascii && (s[start] == '-' || s[i - 1] == '-')) {
            return "the domainpart has a label that begins or ends with '-'";
        }
        start = i + 1;
    }
    return NULL;
}

static const char *check_resourcepart(const char *s, apr_size_t len)
{
    if (len == 0) {
        return "the resourcepart is empty";
    }
    if (len > XB_JID_PART_MAX) {
        return "the resourcepart is longer than 1023 bytes";
    }
    if (check_text(s, len) != 0) {
        return "the resourcepart is not valid UTF-8 or holds a control or other prohibited "
               "character";
    }
    return NULL;
}

apr_status_t xb_jid_validate(const char *jid, int allow_resource, const char **errmsg)
{
    const char *slash, *at, *end, *domain;
    const char *err;

    *errmsg = NULL;
    if (!jid || !*jid) {
        *errmsg = "the JID is empty";
        return APR_EINVAL;
    }
    slash = strchr(jid, '/');
    end = slash ? slash : jid + strlen(jid);
    at = memchr(jid, '@', (apr_size_t)(end - jid));
    domain = at ? at + 1 : jid;
    if (at && (err = check_localpart(jid, (apr_size_t)(at - jid))) != NULL) {
        *errmsg = err;
        return APR_EINVAL;
    }
    if ((err = check_domainpart(domain, (apr_size_t)(end - domain))) != NULL) {
        *errmsg = err;
        return APR_EINVAL;
    }
    if (slash) {
        if (!allow_resource) {
            *errmsg = "the JID has a resourcepart where none is allowed";
            return APR_EINVAL;
        }
        if ((err = check_resourcepart(slash + 1, strlen(slash + 1))) != NULL) {
            *errmsg = err;
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Escaping */

/* Escapes `len` bytes of localpart source. Bytes with from_value[i] set came from a variable
 * and are escaped; the others are the template's own text, already in escaped form. Whether a
 * value's backslash starts an escape sequence depends on the bytes that follow it, whatever
 * their origin: the hex digits of a sequence are never themselves escaped, so looking at the
 * source is looking at the output. */
static char *escape_source(apr_pool_t *p, const char *src, const unsigned char *from_value,
                           apr_size_t len)
{
    char *out = apr_palloc(p, len * 3 + 1);
    apr_size_t i, o = 0;
    const char *esc;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (!from_value[i]) {
            out[o++] = (char)c;
        }
        else if (c == '\\' && starts_escape_seq(src + i + 1, len - i - 1)) {
            memcpy(out + o, "\\5c", 3);
            o += 3;
        }
        else if ((esc = escape_of(c)) != NULL) {
            memcpy(out + o, esc, 3);
            o += 3;
        }
        else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return out;
}

const char *xb_jid_escape_local(apr_pool_t *p, const char *raw)
{
    apr_size_t len;
    unsigned char *flags;
    char *out;

    if (!raw || !*raw) {
        return NULL;
    }
    len = strlen(raw);
    if (len > XB_JID_PART_MAX || raw[0] == ' ' || raw[len - 1] == ' ') {
        return NULL;
    }
    flags = apr_palloc(p, len);
    memset(flags, 1, len);
    out = escape_source(p, raw, flags, len);
    return check_localpart(out, strlen(out)) ? NULL : out;
}

/* ------------------------------------------------------------------------------------------ */
/* Templates */

typedef struct {
    apr_pool_t *p;
    char *local;            /* localpart source, before escaping */
    unsigned char *from_value;
    apr_size_t local_len;
    char *domain;
    apr_size_t domain_len;
    int in_domain;
} expansion_t;

static int is_name_char(unsigned char c)
{
    return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.' || c == ':';
}

static apr_status_t fail(const char **errmsg, const char *msg)
{
    *errmsg = msg;
    return APR_EINVAL;
}

static apr_status_t append(expansion_t *x, const char *s, apr_size_t len, int from_value,
                           const char **errmsg)
{
    if (!x->in_domain) {
        if (len > XB_JID_PART_MAX - x->local_len) {
            return fail(errmsg, "the JID's localpart would be longer than 1023 bytes");
        }
        memcpy(x->local + x->local_len, s, len);
        memset(x->from_value + x->local_len, from_value, len);
        x->local_len += len;
    }
    else {
        if (len > XB_JID_PART_MAX - x->domain_len) {
            return fail(errmsg, "the JID's domainpart would be longer than 1023 bytes");
        }
        memcpy(x->domain + x->domain_len, s, len);
        x->domain_len += len;
    }
    return APR_SUCCESS;
}

static apr_status_t append_value(expansion_t *x, const char *name, const char *value,
                                 const char **errmsg)
{
    apr_size_t len, i;

    if (!value || !*value) {
        *errmsg = apr_psprintf(x->p, "JID template variable %%{%s} is not set or empty", name);
        return APR_EINVAL;
    }
    len = strlen(value);
    if (check_text(value, len) != 0) {
        *errmsg = apr_psprintf(x->p, "the value of JID template variable %%{%s} is not valid "
                               "UTF-8 or holds a control or other prohibited character", name);
        return APR_EINVAL;
    }
    if (x->in_domain) {
        for (i = 0; i < len; i++) {
            if (!is_ldh((unsigned char)value[i]) && value[i] != '.') {
                *errmsg = apr_psprintf(x->p, "the value of JID template variable %%{%s} is not "
                                       "a DNS name (only letters, digits, '-' and '.')", name);
                return APR_EINVAL;
            }
        }
    }
    if (append(x, value, len, 1, errmsg) != APR_SUCCESS) {
        *errmsg = apr_psprintf(x->p, "%s (with the value of %%{%s})", *errmsg, name);
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t xb_jid_expand(apr_pool_t *p, const char *tmpl, xb_jid_lookup_fn *lookup,
                           void *baton, const char **jid, const char **errmsg)
{
    expansion_t x;
    const char *s, *name_start, *err, *local;
    char name[TEMPLATE_NAME_MAX + 1];
    apr_size_t name_len, i;
    apr_status_t rv;

    *jid = NULL;
    *errmsg = NULL;
    if (!tmpl || !*tmpl) {
        return fail(errmsg, "the JID template is empty");
    }
    memset(&x, 0, sizeof(x));
    x.p = p;
    x.local = apr_palloc(p, XB_JID_PART_MAX);
    x.from_value = apr_palloc(p, XB_JID_PART_MAX);
    x.domain = apr_palloc(p, XB_JID_PART_MAX + 1);

    for (s = tmpl; *s; s++) {
        if (*s == '%') {
            if (s[1] == '%') {
                if ((rv = append(&x, "%", 1, 0, errmsg)) != APR_SUCCESS) {
                    return rv;
                }
                s++;
                continue;
            }
            if (s[1] != '{') {
                return fail(errmsg, "stray '%' in the JID template (write %% for a literal "
                                    "percent sign, %{NAME} for a variable)");
            }
            name_start = s + 2;
            for (name_len = 0; is_name_char((unsigned char)name_start[name_len]); name_len++) {
                if (name_len >= TEMPLATE_NAME_MAX) {
                    return fail(errmsg, "a variable name in the JID template is longer than "
                                        "128 bytes");
                }
            }
            if (name_start[name_len] != '}') {
                return fail(errmsg, "unterminated or invalid %{NAME} in the JID template "
                                    "(names are letters, digits, '_', '-', '.' and ':')");
            }
            if (name_len == 0) {
                return fail(errmsg, "empty %{} in the JID template");
            }
            memcpy(name, name_start, name_len);
            name[name_len] = '\0';
            if ((rv = append_value(&x, name, lookup ? lookup(baton, name) : NULL, errmsg))
                != APR_SUCCESS) {
                return rv;
            }
            s = name_start + name_len;
            continue;
        }
        if (*s == '/') {
            return fail(errmsg, "the JID template may not contain a resource ('/')");
        }
        if (*s == '@') {
            if (x.in_domain) {
                return fail(errmsg, "the JID template has more than one '@' (escape one in "
                                    "the localpart as \\40)");
            }
            x.in_domain = 1;
            continue;
        }
        if (*s == '\\' && !x.in_domain && !starts_escape_seq(s + 1, strnlen(s + 1, 2))) {
            return fail(errmsg, "a '\\' in the JID template's localpart must start an XEP-0106 "
                                "escape sequence such as \\20 or \\5c");
        }
        if ((rv = append(&x, s, 1, 0, errmsg)) != APR_SUCCESS) {
            return rv;
        }
    }
    if (!x.in_domain) {
        return fail(errmsg, "the JID template has no '@' (expected e.g. "
                            "%{REMOTE_USER}@example.org)");
    }
    if (x.local_len == 0) {
        return fail(errmsg, "the JID template has an empty localpart");
    }
    for (i = 0; i < x.domain_len; i++) {
        x.domain[i] = (char)ascii_lower((unsigned char)x.domain[i]);
    }
    x.domain[x.domain_len] = '\0';

    local = escape_source(p, x.local, x.from_value, x.local_len);
    if ((err = check_localpart(local, strlen(local))) != NULL
        || (err = check_domainpart(x.domain, x.domain_len)) != NULL) {
        *errmsg = apr_psprintf(p, "the JID the template gives is not valid: %s", err);
        return APR_EINVAL;
    }
    *jid = apr_pstrcat(p, local, "@", x.domain, NULL);
    return APR_SUCCESS;
}

static const char *dummy_lookup(void *baton, const char *name)
{
    (void)baton;
    (void)name;
    return "x";
}

apr_status_t xb_jid_template_check(apr_pool_t *p, const char *tmpl, const char **errmsg)
{
    const char *jid;

    return xb_jid_expand(p, tmpl, dummy_lookup, NULL, &jid, errmsg);
}

/* ------------------------------------------------------------------------------------------ */
/* Splitting and comparing */

/* Offsets of the bare parts of `jid`: localpart [0, at) when *has_local, domainpart up to
 * *bare_len. */
static void bare_bounds(const char *jid, apr_size_t *bare_len, apr_size_t *at, int *has_local)
{
    const char *slash = strchr(jid, '/');
    const char *end = slash ? slash : jid + strlen(jid);
    const char *a = memchr(jid, '@', (apr_size_t)(end - jid));

    *bare_len = (apr_size_t)(end - jid);
    *has_local = a != NULL;
    *at = a ? (apr_size_t)(a - jid) : 0;
}

void xb_jid_split(apr_pool_t *p, const char *jid, const char **local, const char **domain,
                  const char **resource)
{
    apr_size_t bare_len, at;
    int has_local;
    const char *d;

    if (local) {
        *local = NULL;
    }
    if (domain) {
        *domain = NULL;
    }
    if (resource) {
        *resource = NULL;
    }
    if (!jid) {
        return;
    }
    bare_bounds(jid, &bare_len, &at, &has_local);
    d = has_local ? jid + at + 1 : jid;
    if (local && has_local) {
        *local = apr_pstrmemdup(p, jid, at);
    }
    if (domain) {
        *domain = apr_pstrmemdup(p, d, (apr_size_t)(jid + bare_len - d));
    }
    if (resource && jid[bare_len] == '/') {
        *resource = apr_pstrdup(p, jid + bare_len + 1);
    }
}

const char *xb_jid_bare(apr_pool_t *p, const char *jid)
{
    const char *slash;

    if (!jid) {
        return NULL;
    }
    slash = strchr(jid, '/');
    return slash ? apr_pstrmemdup(p, jid, (apr_size_t)(slash - jid)) : apr_pstrdup(p, jid);
}

int xb_jid_bare_equal(const char *a, const char *b)
{
    apr_size_t a_len, b_len, a_at, b_at, i;
    int a_local, b_local;

    if (!a || !b) {
        return 0;
    }
    bare_bounds(a, &a_len, &a_at, &a_local);
    bare_bounds(b, &b_len, &b_at, &b_local);
    /* Same lengths and the '@' at the same place: then a byte-wise caseless compare of the
     * whole bare JID compares localpart with localpart and domain with domain. */
    if (a_len != b_len || a_local != b_local || a_at != b_at) {
        return 0;
    }
    for (i = 0; i < a_len; i++) {
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i])) {
            return 0;
        }
    }
    return 1;
}
