/* One XML element parsed into a small tree (for the gateway's own XMPP logic), sans-I/O.
 *
 * Input is one raw top-level element as xb_xmpp_conn hands it up: it may use the `stream:`
 * prefix that only the stream header declared, and unprefixed names mean jabber:client. The
 * parser supplies those two declarations itself, so the tree carries real namespaces whatever
 * prefix the server chose.
 *
 * Restricted XML as in RFC 6120 §11.1: a DOCTYPE, entity declarations, comments and processing
 * instructions are refused. Size, nesting depth and the number of elements are capped.
 */
#ifndef XB_XML_ELEMENT_H
#define XB_XML_ELEMENT_H

#include <apr_pools.h>

#define XB_XML_ELEMENT_DEFAULT_MAX_SIZE (256 * 1024)
#define XB_XML_ELEMENT_DEFAULT_MAX_DEPTH 32
#define XB_XML_ELEMENT_DEFAULT_MAX_ELEMENTS 4096

typedef struct xb_xml_attr {
    const char *ns;    /* namespace URI; "" for an unprefixed attribute */
    const char *name;  /* local name */
    const char *value;
} xb_xml_attr_t;

typedef struct xb_xml_element xb_xml_element_t;

struct xb_xml_element {
    const char *ns;              /* namespace URI; "" when in no namespace */
    const char *name;            /* local name */
    const xb_xml_attr_t *attrs;  /* nattrs entries; xmlns declarations are not attributes */
    int nattrs;
    const char *text;            /* character data directly inside, concatenated, never NULL */
    apr_size_t text_len;
    xb_xml_element_t *parent;    /* NULL for the root */
    xb_xml_element_t *first_child;
    xb_xml_element_t *next;      /* next sibling */
};

typedef struct xb_xml_limits {
    apr_size_t max_size;     /* bytes of input (0: default) */
    apr_size_t max_depth;    /* nesting, the element itself being 1 (0: default) */
    apr_size_t max_elements; /* elements in the tree (0: default) */
} xb_xml_limits_t;

/* Parses `data` (exactly one element, surrounding whitespace allowed) into a tree in `p`.
 * `limits` may be NULL. NULL and *errmsg (static text, no content) on failure. */
xb_xml_element_t *xb_xml_element_parse(apr_pool_t *p, const char *data, apr_size_t len,
                                       const xb_xml_limits_t *limits, const char **errmsg);

/* True when `e` is {ns}name. */
int xb_xml_element_is(const xb_xml_element_t *e, const char *ns, const char *name);

/* The first child {ns}name, or NULL. `name` NULL: the first child in `ns`. */
xb_xml_element_t *xb_xml_element_child(const xb_xml_element_t *e, const char *ns,
                                       const char *name);

/* The value of an attribute without namespace (`type`, `id`, ...), or NULL. */
const char *xb_xml_element_attr(const xb_xml_element_t *e, const char *name);

#endif
