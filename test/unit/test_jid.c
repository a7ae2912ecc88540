/* Unit tests for user -> JID mapping and JID checks (src/xb_jid.c).
 *
 * Build and run:
 *   gcc -std=gnu99 -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Werror -g \
 *       -Iinclude $(pkg-config --cflags apr-1) test/unit/test_jid.c src/xb_jid.c src/xb_log.c \
 *       $(pkg-config --libs apr-1 cmocka) -o /tmp/test_jid && /tmp/test_jid
 *
 * The escaping cases are XEP-0106's own examples (§5 and §4.3). Its table rows 9-11 escape a
 * backslash that starts no escape sequence, which §4.3 forbids ("foo\bar is not modified");
 * those rows are tested with the output the normative rules give, noted where they are.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "xb_jid.h"

#include "unit_helpers.h"

static void assert_escapes(const char *raw, const char *want)
{
    const char *got = xb_jid_escape_local(pool, raw);

    if (!got || strcmp(got, want) != 0) {
        fail_msg("escape(\"%s\") = \"%s\", want \"%s\"", raw, got ? got : "(null)", want);
    }
}

/* XEP-0106 §3.3 unescaping: only the ten sequences, left to right. */
static char *unescape(const char *s)
{
    static const char *const seqs[] = { "20", "22", "26", "27", "2f", "3a", "3c", "3e", "40",
                                        "5c" };
    static const char chars[] = " \"&'/:<>@\\";
    char *out = apr_palloc(pool, strlen(s) + 1);
    size_t o = 0, k;

    while (*s) {
        if (s[0] == '\\' && s[1] && s[2]) {
            for (k = 0; k < 10; k++) {
                if (s[1] == seqs[k][0] && s[2] == seqs[k][1]) {
                    break;
                }
            }
            if (k < 10) {
                out[o++] = chars[k];
                s += 3;
                continue;
            }
        }
        out[o++] = *s++;
    }
    out[o] = '\0';
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Escaping */

static void test_xep0106_table(void **state)
{
    (void)state;
    /* §5.1 table, localparts of rows 1-8 and 12 */
    assert_escapes("space cadet", "space\\20cadet");
    assert_escapes("call me \"ishmael\"", "call\\20me\\20\\22ishmael\\22");
    assert_escapes("at&t guy", "at\\26t\\20guy");
    assert_escapes("d'artagnan", "d\\27artagnan");
    assert_escapes("/.fanboy", "\\2f.fanboy");
    assert_escapes("::foo::", "\\3a\\3afoo\\3a\\3a");
    assert_escapes("<foo>", "\\3cfoo\\3e");
    assert_escapes("user@host", "user\\40host");
    assert_escapes("c:\\5commas", "c\\3a\\5c5commas");
    /* Rows 9-11: the table escapes every backslash; §4.1 rule 7 / §4.3 escape only one that
     * starts a sequence, so \n, \\n and \c stay as they are. */
    assert_escapes("c:\\net", "c\\3a\\net");
    assert_escapes("c:\\\\net", "c\\3a\\\\net");
    assert_escapes("c:\\cool stuff", "c\\3a\\cool\\20stuff");
}

static void test_xep0106_other_examples(void **state)
{
    (void)state;
    /* §4.3 Exceptions */
    assert_escapes("\\2plus\\2is\\4", "\\2plus\\2is\\4");
    assert_escapes("foo\\bar", "foo\\bar");
    assert_escapes("foob\\41r", "foob\\41r");
    /* §4.2 / §5.5 IMPS */
    assert_escapes("\\3and\\2is\\5cool", "\\5c3and\\2is\\5c5cool");
    /* §5.2 email */
    assert_escapes("here's_a_wild_&_/cr%zy/_address",
                   "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address");
    /* §5.5 IMPS with more characters */
    assert_escapes("here's_a_wild_&_/cr%zy/_address_for:<wv>(\"IMPS\")",
                   "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address_for\\3a\\3cwv\\3e(\\22IMPS\\22)");
    /* §5.7 IRC */
    assert_escapes("somenick!user\"&'/:<>\\3address",
                   "somenick!user\\22\\26\\27\\2f\\3a\\3c\\3e\\5c3address");
    /* §5.6 LDAP DN (after the DN's own \, unescaping) */
    assert_escapes("CN=D'Artagnan Saint-Andr\\E9,O=Example & Company, Inc.,DC=example,DC=com",
                   "CN=D\\27Artagnan\\20Saint-Andr\\E9,O=Example\\20\\26\\20Company,\\20Inc.,"
                   "DC=example,DC=com");
    /* Case is significant: \2F and \5C are not sequences. */
    assert_escapes("a\\2Fb\\5Cc", "a\\2Fb\\5Cc");
    /* Every sequence after a backslash, and a backslash at the very end. */
    assert_escapes("\\20\\22\\26\\27\\2f\\3a\\3c\\3e\\40\\5c\\",
                   "\\5c20\\5c22\\5c26\\5c27\\5c2f\\5c3a\\5c3c\\5c3e\\5c40\\5c5c\\");
    /* A backslash before a character that is itself escaped: "\@" is no sequence. */
    assert_escapes("\\@", "\\\\40");
    assert_escapes("plain", "plain");
    assert_escapes("j\xc3\xb6rg", "j\xc3\xb6rg");
}

static void test_escape_refusals(void **state)
{
    char *big;

    (void)state;
    assert_null(xb_jid_escape_local(pool, NULL));
    assert_null(xb_jid_escape_local(pool, ""));
    assert_null(xb_jid_escape_local(pool, " lead"));
    assert_null(xb_jid_escape_local(pool, "trail "));
    assert_null(xb_jid_escape_local(pool, " "));
    assert_null(xb_jid_escape_local(pool, "ctl\x01"));
    assert_null(xb_jid_escape_local(pool, "del\x7f"));
    assert_null(xb_jid_escape_local(pool, "bad\xff"));
    assert_null(xb_jid_escape_local(pool, "overlong\xc0\xaf"));
    assert_null(xb_jid_escape_local(pool, "surrogate\xed\xa0\x80"));
    assert_null(xb_jid_escape_local(pool, "nbsp\xc2\xa0x"));
    assert_null(xb_jid_escape_local(pool, "bom\xef\xbb\xbfx"));
    assert_null(xb_jid_escape_local(pool, "pua\xee\x80\x80"));
    assert_null(xb_jid_escape_local(pool, "c1\xc2\x85"));
    /* Escaping grows it past 1023 bytes. */
    big = apr_palloc(pool, 400);
    memset(big, '@', 399);
    big[399] = '\0';
    assert_null(xb_jid_escape_local(pool, big));
    big[341] = '\0'; /* 341 * 3 = 1023 */
    assert_non_null(xb_jid_escape_local(pool, big));
}

/* unescape(escape(x)) == x over strings built from the characters that matter. */
static void test_escape_round_trip(void **state)
{
    static const char alphabet[] = "\\25cf0a4 @/'x";
    unsigned seed = 4242;
    char raw[24];
    const char *esc;
    int i, n, k;

    (void)state;
    for (i = 0; i < 50000; i++) {
        n = 1 + (int)(rand_r(&seed) % 20);
        for (k = 0; k < n; k++) {
            raw[k] = alphabet[(size_t)rand_r(&seed) % (sizeof(alphabet) - 1)];
        }
        raw[n] = '\0';
        esc = xb_jid_escape_local(pool, raw);
        if (raw[0] == ' ' || raw[n - 1] == ' ') {
            assert_null(esc);
            continue;
        }
        assert_non_null(esc);
        if (strcmp(unescape(esc), raw) != 0) {
            fail_msg("unescape(escape(\"%s\")) = \"%s\" (escaped \"%s\")", raw, unescape(esc),
                     esc);
        }
        assert_null(strpbrk(esc, " @/'"));
        if (i % 1000 == 0) {
            apr_pool_clear(pool);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Templates */

/* Variables come from a table; an absent name gives NULL. */
static const char *table_lookup(void *baton, const char *name)
{
    return apr_table_get((apr_table_t *)baton, name);
}

static apr_table_t *vars(const char *first, ...)
{
    apr_table_t *t = apr_table_make(pool, 4);
    va_list ap;
    const char *k, *v;

    va_start(ap, first);
    for (k = first; k; k = va_arg(ap, const char *)) {
        v = va_arg(ap, const char *);
        apr_table_setn(t, k, v);
    }
    va_end(ap);
    return t;
}

static void assert_expands(const char *tmpl, apr_table_t *t, const char *want)
{
    const char *jid = NULL, *err = NULL;

    if (xb_jid_expand(pool, tmpl, table_lookup, t, &jid, &err) != APR_SUCCESS) {
        fail_msg("expand(\"%s\") failed: %s", tmpl, err);
    }
    assert_null(err);
    assert_string_equal(jid, want);
    assert_int_equal(xb_jid_validate(jid, 0, &err), APR_SUCCESS);
}

static const char *expand_err(const char *tmpl, apr_table_t *t)
{
    const char *jid = (const char *)1, *err = NULL;

    if (xb_jid_expand(pool, tmpl, table_lookup, t, &jid, &err) == APR_SUCCESS) {
        fail_msg("expand(\"%s\") succeeded: %s", tmpl, jid);
    }
    assert_null(jid);
    assert_non_null(err);
    return err;
}

static void test_expand(void **state)
{
    (void)state;
    assert_expands("%{REMOTE_USER}@example.org", vars("REMOTE_USER", "alice", NULL),
                   "alice@example.org");
    assert_expands("%{REMOTE_USER}@example.org", vars("REMOTE_USER", "d'artagnan", NULL),
                   "d\\27artagnan@example.org");
    assert_expands("%{AUTHENTICATE_uid}@%{SERVER_NAME}",
                   vars("AUTHENTICATE_uid", "Bob Smith", "SERVER_NAME", "Chat.Example.ORG", NULL),
                   "Bob\\20Smith@chat.example.org");
    /* An '@' in a value is escaped; only the template's own '@' splits. */
    assert_expands("%{REMOTE_USER}@example.org",
                   vars("REMOTE_USER", "user@corp.example", NULL),
                   "user\\40corp.example@example.org");
    /* Literal text around values, %% for a percent sign, a domain from pieces. */
    assert_expands("web_%{U}_%%x@chat.%{D}", vars("U", "a b", "D", "Example.COM", NULL),
                   "web_a\\20b_%x@chat.example.com");
    assert_expands("%{U}@EXAMPLE.org", vars("U", "x", NULL), "x@example.org");
    /* A value's leading space is fine when template text precedes it. */
    assert_expands("x%{U}@example.org", vars("U", " bob", NULL), "x\\20bob@example.org");
    /* Already-escaped template text is kept as it is. */
    assert_expands("team\\40%{U}@example.org", vars("U", "ops", NULL),
                   "team\\40ops@example.org");
    /* A value's backslash is escaped when what follows it, from wherever, makes a
     * sequence: the literal "20" here, the next value's "5c" below. */
    assert_expands("%{U}20@example.org", vars("U", "a\\", NULL), "a\\5c20@example.org");
    assert_expands("%{U}%{V}@example.org", vars("U", "a\\", "V", "5c", NULL),
                   "a\\5c5c@example.org");
    assert_expands("%{U}zz@example.org", vars("U", "a\\", NULL), "a\\zz@example.org");
    assert_expands("%{U}@example.org", vars("U", "j\xc3\xb6rg", NULL),
                   "j\xc3\xb6rg@example.org");
    assert_expands("%{U}@[::1]", vars("U", "a", NULL), "a@[::1]");
    assert_expands("%{OIDC_CLAIM_preferred-username}@example.org",
                   vars("OIDC_CLAIM_preferred-username", "carol", NULL), "carol@example.org");
}

static void test_expand_errors(void **state)
{
    apr_table_t *t = vars("U", "alice", "EMPTY", "", "D", "example.org", NULL);
    const char *err;
    char *big;

    (void)state;
    assert_contains(expand_err("%{NOPE}@example.org", t), "%{NOPE}");
    assert_contains(expand_err("%{NOPE}@example.org", t), "not set");
    assert_contains(expand_err("%{EMPTY}@example.org", t), "%{EMPTY}");
    assert_contains(expand_err("%{U}@%{NOPE}", t), "%{NOPE}");
    assert_contains(expand_err("%{U}", t), "no '@'");
    assert_contains(expand_err("%{U}@a@b", t), "more than one '@'");
    assert_contains(expand_err("%{U}@example.org/res", t), "resource");
    assert_contains(expand_err("a/%{U}@example.org", t), "resource");
    assert_contains(expand_err("%{U}@example.org%", t), "stray '%'");
    assert_contains(expand_err("%U@example.org", t), "stray '%'");
    assert_contains(expand_err("%{U@example.org", t), "unterminated");
    assert_contains(expand_err("%{U", t), "unterminated");
    assert_contains(expand_err("%{A B}@example.org", t), "unterminated or invalid");
    assert_contains(expand_err("%{}@example.org", t), "empty %{}");
    assert_contains(expand_err("@example.org", t), "empty localpart");
    assert_contains(expand_err("%{U}@", t), "domainpart is empty");
    assert_contains(expand_err("%{U}@example.org.", t), "ends with '.'");
    assert_contains(expand_err("%{U}@-example.org", t), "'-'");
    assert_contains(expand_err("%{U}@exa_mple.org", t), "not allowed in a DNS name");
    assert_contains(expand_err("", t), "empty");
    assert_contains(expand_err("a b%{U}@example.org", t), "must be escaped");
    assert_contains(expand_err("a\\q%{U}@example.org", t), "escape sequence");
    assert_contains(expand_err("a\\%{U}@example.org", t), "escape sequence");
    assert_contains(expand_err("\\20%{U}@example.org", t), "\\20");

    /* Domain values must be DNS names; errors name the variable, never quote the value. */
    err = expand_err("%{U}@%{D}", vars("U", "a", "D", "evil.org/x", NULL));
    assert_contains(err, "%{D}");
    assert_null(strstr(err, "evil"));
    assert_contains(expand_err("%{U}@%{D}", vars("U", "a", "D", "a@b", NULL)), "%{D}");
    assert_contains(expand_err("%{U}@%{D}", vars("U", "a", "D", "a b", NULL)), "%{D}");
    assert_contains(expand_err("%{U}@%{D}", vars("U", "a", "D", "m\xc3\xbcller.de", NULL)),
                    "%{D}");
    assert_contains(expand_err("%{U}@x%{D}", vars("U", "a", "D", ".", NULL)), "ends with '.'");

    /* Localpart values: leading/trailing space, controls, bad UTF-8. */
    assert_contains(expand_err("%{U}@example.org", vars("U", " bob", NULL)), "\\20");
    assert_contains(expand_err("%{U}@example.org", vars("U", "bob ", NULL)), "\\20");
    err = expand_err("%{U}@example.org", vars("U", "sekrit\x01", NULL));
    assert_contains(err, "%{U}");
    assert_null(strstr(err, "sekrit"));
    assert_contains(expand_err("%{U}@example.org", vars("U", "x\xff", NULL)), "%{U}");
    assert_contains(expand_err("%{U}@example.org", vars("U", "x\xe2\x80\xa8", NULL)), "%{U}");

    /* Too long, by value and by escaping. */
    big = apr_palloc(pool, 1100);
    memset(big, 'a', 1099);
    big[1099] = '\0';
    assert_contains(expand_err("%{U}@example.org", vars("U", big, NULL)), "longer than 1023");
    assert_contains(expand_err("%{U}@%{D}", vars("U", "a", "D", big, NULL)), "longer than 1023");
    memset(big, '@', 400);
    big[400] = '\0';
    assert_contains(expand_err("%{U}@example.org", vars("U", big, NULL)), "longer than 1023");
    /* A NULL lookup function means no variable is set. */
    {
        const char *jid;
        assert_int_equal(xb_jid_expand(pool, "%{U}@example.org", NULL, NULL, &jid, &err),
                         APR_EINVAL);
        assert_contains(err, "%{U}");
        assert_int_equal(xb_jid_expand(pool, "static@example.org", NULL, NULL, &jid, &err),
                         APR_SUCCESS);
        assert_string_equal(jid, "static@example.org");
    }
}

static void test_template_check(void **state)
{
    const char *err;

    (void)state;
    assert_int_equal(xb_jid_template_check(pool, "%{REMOTE_USER}@example.org", &err),
                     APR_SUCCESS);
    assert_int_equal(xb_jid_template_check(pool, "%{AUTHENTICATE_uid}@%{SERVER_NAME}", &err),
                     APR_SUCCESS);
    assert_int_equal(xb_jid_template_check(pool, "%{REMOTE_USER}", &err), APR_EINVAL);
    assert_int_equal(xb_jid_template_check(pool, "%{REMOTE_USER}@example.org/r", &err),
                     APR_EINVAL);
    assert_int_equal(xb_jid_template_check(pool, "%{REMOTE_USER@example.org", &err), APR_EINVAL);
    assert_int_equal(xb_jid_template_check(pool, "%{REMOTE_USER}@exa mple.org", &err),
                     APR_EINVAL);
}

/* ------------------------------------------------------------------------------------------ */
/* Validation, splitting, comparing */

static void test_validate(void **state)
{
    static const char *const good[] = {
        "a@b", "alice@example.org", "example.org", "d\\27artagnan@musketeers.lit",
        "j\xc3\xb6rg@m\xc3\xbcller.de", "a@[::1]", "a@[2001:db8::1]", "a@127.0.0.1",
        "foo\\bar@example.org", "a%b@example.org", "x-1@a-b.c-d.example",
    };
    static const char *const good_full[] = {
        "a@b/c", "a@b/c d", "a@b/c/d@e", "example.org/r", "a@b/j\xc3\xb6rg",
    };
    static const char *const bad[] = {
        "", "@b", "a@", "a@b/", "a b@c", "a\"b@c", "a&b@c", "a'b@c", "a:b@c", "a<b@c",
        "a>b@c", "a@b c", "a@-b.org", "a@b-.org", "a@b..org", "a@b.org.", "a@.b", "\\20a@b",
        "a\\20@b", "a\x01@b", "a@b\x7f", "a\xff@b", "a@[1.2.3.4]", "a@[::1", "a@[::g]",
        "a@b_c", "nb\xc2\xa0sp@b", "a@b/\x01", "a@b/\xff", "zw\xe2\x80\x8bsp@b",
    };
    const char *err;
    char *big;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (xb_jid_validate(good[i], 0, &err) != APR_SUCCESS) {
            fail_msg("refused \"%s\": %s", good[i], err);
        }
    }
    for (i = 0; i < sizeof(good_full) / sizeof(good_full[0]); i++) {
        if (xb_jid_validate(good_full[i], 1, &err) != APR_SUCCESS) {
            fail_msg("refused \"%s\": %s", good_full[i], err);
        }
        assert_int_equal(xb_jid_validate(good_full[i], 0, &err), APR_EINVAL);
        assert_contains(err, "resourcepart");
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        if (xb_jid_validate(bad[i], 1, &err) == APR_SUCCESS) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_non_null(err);
    }
    assert_int_equal(xb_jid_validate(NULL, 1, &err), APR_EINVAL);

    big = apr_palloc(pool, 1100);
    memset(big, 'a', 1023);
    strcpy(big + 1023, "@b");
    assert_int_equal(xb_jid_validate(big, 0, &err), APR_SUCCESS);
    memset(big, 'a', 1024);
    strcpy(big + 1024, "@b");
    assert_int_equal(xb_jid_validate(big, 0, &err), APR_EINVAL);
    assert_contains(err, "localpart is longer");
    memset(big, 'a', 63);
    strcpy(big + 63, ".org");
    assert_int_equal(xb_jid_validate(big, 0, &err), APR_SUCCESS);
    memset(big, 'a', 64);
    strcpy(big + 64, ".org");
    assert_int_equal(xb_jid_validate(big, 0, &err), APR_EINVAL);
    assert_contains(err, "63");
}

static void test_split_and_bare(void **state)
{
    const char *l, *d, *r;

    (void)state;
    xb_jid_split(pool, "a@b/c/d@e", &l, &d, &r);
    assert_string_equal(l, "a");
    assert_string_equal(d, "b");
    assert_string_equal(r, "c/d@e");
    xb_jid_split(pool, "b/c@d", &l, &d, &r);
    assert_null(l);
    assert_string_equal(d, "b");
    assert_string_equal(r, "c@d");
    xb_jid_split(pool, "a@b@c", &l, &d, &r);
    assert_string_equal(l, "a");
    assert_string_equal(d, "b@c");
    assert_null(r);
    xb_jid_split(pool, "example.org", &l, &d, NULL);
    assert_null(l);
    assert_string_equal(d, "example.org");
    xb_jid_split(pool, NULL, &l, &d, &r);
    assert_null(l);
    assert_null(d);
    assert_null(r);

    assert_string_equal(xb_jid_bare(pool, "a@b/c/d"), "a@b");
    assert_string_equal(xb_jid_bare(pool, "a@b"), "a@b");
    assert_null(xb_jid_bare(pool, NULL));

    assert_true(xb_jid_bare_equal("Alice@Example.ORG", "alice@example.org/converse.js-1"));
    assert_true(xb_jid_bare_equal("a@b/x", "a@b/y"));
    assert_true(xb_jid_bare_equal("d\\27artagnan@m.lit", "D\\27Artagnan@M.lit/r"));
    assert_false(xb_jid_bare_equal("alice@example.org", "alice@example.com"));
    assert_false(xb_jid_bare_equal("alice@example.org", "alicex@example.org"));
    assert_false(xb_jid_bare_equal("a@b", "b"));
    assert_false(xb_jid_bare_equal("ab@c", "a@bc"));
    assert_false(xb_jid_bare_equal("a@b", NULL));
    /* Non-ASCII letters are compared exactly (see xb_jid.h). */
    assert_false(xb_jid_bare_equal("\xc3\xa4@b", "\xc3\x84@b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_xep0106_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xep0106_other_examples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escape_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escape_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expand_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_and_bare, setup, teardown),
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return failed;
}
