/* XEP-0206 §7: what becomes of a stanza from the server that its client never received, when
 * the BOSH session ends. Sans-I/O.
 *
 *   presence                 -> dropped
 *   iq get/set               -> iq type='error' <service-unavailable/> back to its sender
 *   message (not an error)   -> message type='error' <recipient-unavailable/> back to its sender
 *   anything of type error, iq result, anything not a jabber:client stanza -> dropped
 *
 * The bounce goes to the original `from` and keeps `id`, so the sender can match it. It carries
 * no `from`: the server stamps the session's full JID (RFC 6120 §8.1.2.1), whatever form of
 * the JID the original `to` had (a bare JID as `from` is refused by some servers).
 */
#ifndef XB_STANZA_BOUNCE_H
#define XB_STANZA_BOUNCE_H

#include <apr_pools.h>

/* The error stanza to send back for the raw top-level element `data` (as xb_xmpp_conn handed it
 * up), allocated from `p`, or NULL when nothing is to be sent. */
const char *xb_stanza_bounce(apr_pool_t *p, const char *data, apr_size_t len,
                             apr_size_t *out_len);

#endif
