/* Restricted XML: the expat set-up that every parser in the gateway shares (the BOSH body
 * parser, the XMPP stream framer, the element tree parser).
 *
 * RFC 6120 §11.1 (and XEP-0124 §6 for BOSH bodies) allow no DTD, no entity declaration, no
 * comment and no processing instruction. A DOCTYPE stops the parser before its internal subset
 * is read, so no entity is ever declared and none can expand (billion laughs, external
 * entities); the entity declaration handler is a second line of defence. Input is read as
 * UTF-8 whatever it declares (RFC 6120 §11.6): expat's view of the bytes is then the raw one
 * that the gateway splices and relays.
 *
 * expat hands every handler the same user data, so the refusal handlers find the caller's
 * callback there: the caller's context starts with an xb_xml_restrict_t.
 */
#ifndef XB_XML_RESTRICT_H
#define XB_XML_RESTRICT_H

#include <apr.h>
#include <expat.h>

/* The encoding every parser is created (and reset) with. */
#define XB_XML_ENCODING "UTF-8"

/* Separates namespace URI, local name and prefix in expat's expanded names ("uri SEP local
 * SEP prefix" with triplets on; "uri SEP local" when unprefixed; "local" in no namespace).
 * U+0001 is not an XML 1.0 character, so it can never be part of a URI or a name. */
#define XB_XML_NS_SEP '\x01'
#define XB_XML_NS_SEP_STR "\x01"

/* A construct restricted XML refuses, as the caller's callback is told. */
typedef struct xb_xml_refusal {
    const char *construct; /* "DOCTYPE", "entity declaration", "processing instruction",
                            * "comment" */
    const char *message;   /* "<construct> not allowed"; static text without input */
} xb_xml_refusal_t;

/* The first member of the parser's user data. `refuse` gets that user data (the caller's
 * context) and should stop the parser; it may be called again for a later construct if the
 * caller does not stop it. */
typedef struct xb_xml_restrict {
    void (*refuse)(void *ud, const xb_xml_refusal_t *what);
} xb_xml_restrict_t;

/* A parser reading UTF-8 whatever the input declares; with `namespaces`, in namespace mode with
 * XB_XML_NS_SEP. NULL when out of memory. The caller installs the restrictions. */
XML_Parser xb_xml_restrict_parser_create(int namespaces);

/* A namespace-mode parser as xb_xml_restrict_parser_create(1) makes, taken from the ones this
 * process keeps for reuse (or a new one), with triplets off and a fresh hash salt. The caller
 * installs the restrictions and its handlers, parses one document and gives it back with
 * xb_xml_restrict_ns_parser_give (`parsed`: the bytes fed; a parser that read a large input
 * is freed rather than kept with its buffer). Thread-safe. NULL when out of memory. */
XML_Parser xb_xml_restrict_ns_parser_take(void);
void xb_xml_restrict_ns_parser_give(XML_Parser xp, apr_size_t parsed);

/* As xb_xml_restrict_parser_create, with every byte expat allocates taken from `scratch`: the
 * caller frees the parser (XML_ParserFree) and then clears or destroys `scratch`. For a
 * parser that lives for one call on one thread (expat's memory functions take no context, so
 * the pool is the thread's: at most one such parser per thread at a time). Why: in Apache's
 * worker threads malloc keeps the chunks a parse freed in a cache per thread (glibc's
 * tcache, about 8 kB after one BOSH body), and an event MPM sized for 10,000 held requests
 * runs 12,800 threads. */
XML_Parser xb_xml_restrict_parser_create_in(apr_pool_t *scratch, int namespaces);

/* Makes `ud` (the caller's context, starting with an xb_xml_restrict_t) the parser's user data
 * and refuses DOCTYPEs, entity declarations, processing instructions and comments through
 * ud->refuse; parameter entities are never parsed. Call again after XML_ParserReset. */
void xb_xml_restrict_install(XML_Parser xp, xb_xml_restrict_t *ud);

/* True when `data` holds a byte no UTF-8 XML document can contain (NUL, 0xFE, 0xFF). The
 * parsers that relay raw bytes refuse such input before expat sees it: expat would otherwise
 * switch to UTF-16 on a NUL or a UTF-16 byte order mark whatever encoding it was created with
 * (fuzzer finding, test_regress_utf16), and the raw bytes relayed would no longer be what it
 * parsed. */
int xb_xml_has_foreign_bytes(const char *data, apr_size_t len);

/* The offset of the first such byte in `data`, `len` when there is none. */
apr_size_t xb_xml_foreign_byte_offset(const char *data, apr_size_t len);

#endif
