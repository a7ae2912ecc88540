/* Mapping an authenticated web user to a JID, and JID checks.
 *
 * A template such as "%{REMOTE_USER}@example.org" or "%{AUTHENTICATE_uid}@%{SERVER_NAME}" is
 * expanded with values from the request. Values that land in the localpart are escaped per
 * XEP-0106 (so "d'artagnan" becomes d\27artagnan); values in the domainpart must be DNS names
 * and are lower-cased. The result is checked before it is used to mint a token, so a strange
 * user name becomes a clear refusal here rather than a login failure at the XMPP server.
 *
 * The checks are the syntax of RFC 7622 plus the characters the server's stringprep/PRECIS
 * profiles refuse that can be told without Unicode tables (controls, non-ASCII spaces, private
 * use, non-characters). Case is not folded: the server does that (nodeprep lower-cases), which
 * is why xb_jid_bare_equal() compares ASCII letters without regard to case.
 */
#ifndef XB_JID_H
#define XB_JID_H

#include <apr_pools.h>

/* RFC 7622 §3.3-§3.5: each part is at most 1023 bytes. */
#define XB_JID_PART_MAX 1023

/* XEP-0106 escaping of a whole localpart: space " & ' / : < > @ become \20 \22 \26 \27 \2f \3a
 * \3c \3e \40, and a backslash becomes \5c only where it starts one of the ten escape sequences
 * (\20 \22 \26 \27 \2f \3a \3c \3e \40 \5c, lower-case hex; §4.1 rule 7, §4.2 step 3);
 * any other backslash is left alone (§4.3). Returns NULL when `raw` is NULL or empty, begins
 * or ends with a space (\20 may not be first or last, §3.2), is not valid UTF-8, holds a
 * character no localpart may hold (controls, non-ASCII spaces...), or escapes to more than
 * XB_JID_PART_MAX bytes. */
const char *xb_jid_escape_local(apr_pool_t *p, const char *raw);

/* Returns the value of the variable `name` (e.g. "REMOTE_USER"), or NULL when it is not set. */
typedef const char *xb_jid_lookup_fn(void *baton, const char *name);

/* Expands `tmpl`: "%{NAME}" is replaced by lookup(baton, NAME) (NAME: letters, digits, "_",
 * "-", ".", ":"; at most 128 bytes), "%%" by a literal "%". The first literal '@' of the
 * template separates localpart from domainpart (an '@' inside a value never does). Values in
 * the localpart are XEP-0106-escaped as a whole with the template's own text around them, which
 * is already in escaped form (a literal '\' there must start an escape sequence). Values in the
 * domainpart must be ASCII letters, digits, '-' and '.', and the whole domainpart is
 * lower-cased. The template may not carry a resource ('/').
 * On success sets *jid (a bare JID, allocated in `p`); otherwise returns APR_EINVAL and sets
 * *errmsg, naming the variable at fault where there is one (never quoting its value). */
apr_status_t xb_jid_expand(apr_pool_t *p, const char *tmpl, xb_jid_lookup_fn *lookup,
                           void *baton, const char **jid, const char **errmsg);

/* Checks a template's syntax at configuration time (variables substituted by a dummy value). */
apr_status_t xb_jid_template_check(apr_pool_t *p, const char *tmpl, const char **errmsg);

/* Checks "[localpart@]domainpart[/resourcepart]" (RFC 7622 §3): each part present is 1..1023
 * bytes of valid UTF-8 without control characters; the localpart holds none of
 * space " & ' / : < > @ (unescaped) and does not begin or end with \20; the domainpart is DNS
 * labels (1..63 bytes, ASCII letters, digits and inner '-', or UTF-8 IDN labels) or an IPv6
 * literal in brackets; a resource only when `allow_resource`. Sets *errmsg (a static string) on
 * failure. */
apr_status_t xb_jid_validate(const char *jid, int allow_resource, const char **errmsg);

/* Splits `jid` per RFC 7622 §3.2 (the first '/' starts the resource, then the first '@' ends
 * the localpart). Absent parts are set to NULL; any out-pointer may be NULL. No validation. */
void xb_jid_split(apr_pool_t *p, const char *jid, const char **local, const char **domain,
                  const char **resource);

/* `jid` without its resource. */
const char *xb_jid_bare(apr_pool_t *p, const char *jid);

/* 1 when the bare parts of `a` and `b` (either may carry a resource) are the same JID: ASCII
 * letters compared without case (servers fold case), every other byte exactly. A server that
 * folds non-ASCII letters too may thus bind a JID this calls different: callers that check a
 * bound JID against the expected one fail closed in that case. */
int xb_jid_bare_equal(const char *a, const char *b);

#endif
