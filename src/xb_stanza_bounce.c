/* XEP-0206 §7 bounces; see xb_stanza_bounce.h. */
#include <string.h>

#include <apr_strings.h>

#include "xb_bosh_body.h"
#include "xb_stanza_bounce.h"
#include "xb_xml_element.h"

#define NS_CLIENT "jabber:client"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

/* ` name='value'` when value is set, "" otherwise. */
static const char *attr(apr_pool_t *p, const char *name, const char *value)
{
    if (!value) {
        return "";
    }
    return apr_pstrcat(p, " ", name, "='", xb_xml_escape(p, value), "'", NULL);
}

const char *xb_stanza_bounce(apr_pool_t *p, const char *data, apr_size_t len,
                             apr_size_t *out_len)
{
    const xb_xml_element_t *e;
    const char *errmsg = NULL, *type, *condition, *error_type, *out;

    *out_len = 0;
    e = xb_xml_element_parse(p, data, len, NULL, &errmsg);
    if (!e || strcmp(e->ns, NS_CLIENT) != 0) {
        return NULL; /* stream features, SASL, a stream error: nobody to bounce to */
    }
    type = xb_xml_element_attr(e, "type");
    if (type && strcmp(type, "error") == 0) {
        return NULL; /* RFC 6120 §8.3.1: never answer an error with an error */
    }
    if (strcmp(e->name, "iq") == 0) {
        if (!type || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)) {
            return NULL; /* a result needs no answer */
        }
        condition = "service-unavailable";
        error_type = "cancel";
    }
    else if (strcmp(e->name, "message") == 0) {
        condition = "recipient-unavailable";
        error_type = "wait"; /* RFC 6120 §8.3.3.13: the recipient may come back */
    }
    else {
        return NULL; /* presence: dropped */
    }
    out = apr_pstrcat(p, "<", e->name, " xmlns='" NS_CLIENT "' type='error'",
                      attr(p, "id", xb_xml_element_attr(e, "id")),
                      attr(p, "to", xb_xml_element_attr(e, "from")),
                      "><error type='", error_type, "'><", condition, " xmlns='" NS_STANZAS
                      "'/></error></", e->name, ">", NULL);
    *out_len = strlen(out);
    return out;
}
