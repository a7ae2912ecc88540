/* libFuzzer harness: JID checks, XEP-0106 escaping and template expansion (xb_jid_*).
 *
 * Input: byte 0 = flags (bit 0: a resource is allowed), then fields separated by NUL bytes:
 *   jid \0 raw-localpart \0 template \0 REMOTE_USER \0 SERVER_NAME
 * (missing fields are absent variables). Invariants:
 *  - xb_jid_split puts the JID back together exactly; the bare JID is bare_equal to the JID;
 *    a JID that validates has a bare form that validates without a resource;
 *  - an escaped localpart validates as a localpart and unescapes (XEP-0106 §4.3) to the input;
 *  - an expanded template validates as a bare JID with a lower-case ASCII domain, and the
 *    template check agrees with expansion for well-set variables.
 */
#include <apr_strings.h>

#include "fuzz_common.h"
#include "xb_jid.h"

typedef struct {
    const char *remote_user;
    const char *server_name;
} vars_t;

static const char *lookup(void *baton, const char *name)
{
    const vars_t *v = baton;

    if (!strcmp(name, "REMOTE_USER")) {
        return v->remote_user;
    }
    if (!strcmp(name, "SERVER_NAME")) {
        return v->server_name;
    }
    if (!strcmp(name, "AUTHENTICATE_uid")) {
        return "j.doe";
    }
    return NULL;
}

static int hexval(char c)
{
    return (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* XEP-0106 §4.3 unescaping: each of the ten sequences (lower-case hex) becomes its character,
 * scanning left to right; anything else stays. */
static char *unescape(apr_pool_t *p, const char *s)
{
    static const char seqs[] = " \"&'/:<>@\\";
    char *out = apr_palloc(p, strlen(s) + 1), *o = out;

    while (*s) {
        if (s[0] == '\\' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            char c = (char)(hexval(s[1]) << 4 | hexval(s[2]));
            if (c && strchr(seqs, c) && !((s[1] >= 'A' && s[1] <= 'F') || (s[2] >= 'A'
                                                                          && s[2] <= 'F'))) {
                *o++ = c;
                s += 3;
                continue;
            }
        }
        *o++ = *s++;
    }
    *o = '\0';
    return out;
}

static void check_jid(apr_pool_t *p, const char *jid, int allow_resource)
{
    const char *local, *domain, *resource, *bare, *err = NULL, *rebuilt;

    xb_jid_split(p, jid, &local, &domain, &resource);
    FUZZ_CHECK(domain != NULL);
    rebuilt = apr_pstrcat(p, local ? local : "", local ? "@" : "", domain, resource ? "/" : "",
                          resource ? resource : "", NULL);
    FUZZ_CHECK(!strcmp(rebuilt, jid));
    bare = xb_jid_bare(p, jid);
    FUZZ_CHECK(xb_jid_bare_equal(bare, jid));
    FUZZ_CHECK(xb_jid_bare_equal(jid, jid));
    if (xb_jid_validate(jid, allow_resource, &err) == APR_SUCCESS) {
        FUZZ_CHECK(err == NULL);
        FUZZ_CHECK(allow_resource || !resource);
        FUZZ_CHECK(xb_jid_validate(bare, 0, &err) == APR_SUCCESS);
    }
    else {
        FUZZ_CHECK(err != NULL);
    }
}

static void check_escape(apr_pool_t *p, const char *raw)
{
    const char *esc = xb_jid_escape_local(p, raw), *err = NULL;

    if (!esc) {
        return;
    }
    if (xb_jid_validate(apr_pstrcat(p, esc, "@example.org", NULL), 0, &err) != APR_SUCCESS) {
        fprintf(stderr, "escaped localpart does not validate: %s\n", err);
        FUZZ_CHECK(0);
    }
    FUZZ_CHECK(!strcmp(unescape(p, esc), raw));
}

static void check_expand(apr_pool_t *p, const char *tmpl, vars_t *v)
{
    const char *jid = NULL, *err = NULL, *at;
    apr_status_t rv = xb_jid_expand(p, tmpl, lookup, v, &jid, &err);

    if (rv != APR_SUCCESS) {
        FUZZ_CHECK(jid == NULL && err != NULL);
        fuzz_touch(err, strlen(err));
        return;
    }
    FUZZ_CHECK(jid != NULL);
    if (xb_jid_validate(jid, 0, &err) != APR_SUCCESS) {
        fprintf(stderr, "expanded JID does not validate: %s\n", err);
        FUZZ_CHECK(0);
    }
    at = strchr(jid, '@');
    FUZZ_CHECK(at != NULL);
    for (at++; *at; at++) {
        FUZZ_CHECK(!(*at >= 'A' && *at <= 'Z'));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const uint8_t *field;
    size_t field_len;
    const char *fields[5] = { NULL, NULL, NULL, NULL, NULL };
    vars_t v;
    int flags, i = 0;
    const char *err = NULL;

    if (size < 1 || size > 16384) {
        return 0;
    }
    flags = data[0];
    data++;
    size--;
    p = fuzz_pool();
    while (i < 5 && fuzz_next_field(&data, &size, '\0', &field, &field_len)) {
        fields[i++] = fuzz_strndup(p, field, field_len);
    }
    if (fields[0]) {
        check_jid(p, fields[0], flags & 1);
    }
    if (fields[1]) {
        check_escape(p, fields[1]);
    }
    if (fields[2]) {
        v.remote_user = fields[3];
        v.server_name = fields[4];
        check_expand(p, fields[2], &v);
        if (xb_jid_template_check(p, fields[2], &err) != APR_SUCCESS) {
            FUZZ_CHECK(err != NULL);
        }
    }
    fuzz_pool_done(p);
    return 0;
}
