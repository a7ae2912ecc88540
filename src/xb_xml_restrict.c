/* Restricted XML: the expat set-up shared by every parser (see xb_xml_restrict.h). */
#include <string.h>

#include <apr_pools.h>

#include "xb_xml_restrict.h"

static const xb_xml_refusal_t refused_doctype = { "DOCTYPE", "DOCTYPE not allowed" };
static const xb_xml_refusal_t refused_entity_decl = { "entity declaration",
                                                      "entity declaration not allowed" };
static const xb_xml_refusal_t refused_pi = { "processing instruction",
                                             "processing instruction not allowed" };
static const xb_xml_refusal_t refused_comment = { "comment", "comment not allowed" };

static void refuse(void *ud, const xb_xml_refusal_t *what)
{
    xb_xml_restrict_t *r = ud;

    r->refuse(ud, what);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    /* Stop before any declaration inside the DTD is read: no entity is ever defined, so no
     * expansion can happen. */
    refuse(ud, &refused_doctype);
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    /* Unreachable while on_doctype stops the parser; kept as a second line of defence. */
    refuse(ud, &refused_entity_decl);
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    (void)target;
    (void)data;
    refuse(ud, &refused_pi);
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
    (void)data;
    refuse(ud, &refused_comment);
}

XML_Parser xb_xml_restrict_parser_create(int namespaces)
{
    return namespaces ? XML_ParserCreateNS(XB_XML_ENCODING, XB_XML_NS_SEP)
                      : XML_ParserCreate(XB_XML_ENCODING);
}

/* Pool memory for expat (xb_xml_restrict_parser_create_in). Each block starts with its size,
 * for realloc; free gives nothing back (the pool does, all at once). The header keeps the
 * block aligned as apr_palloc aligns. */
typedef union {
    apr_size_t size;
    double align_d;
    void *align_p;
    apr_uint64_t align_u;
} pool_block_t;

static __thread apr_pool_t *expat_pool;

static void *XMLCALL pool_malloc(size_t size)
{
    pool_block_t *b = apr_palloc(expat_pool, sizeof(*b) + size);

    b->size = size;
    return b + 1;
}

static void *XMLCALL pool_realloc(void *ptr, size_t size)
{
    pool_block_t *old = ptr ? (pool_block_t *)ptr - 1 : NULL;
    void *fresh;

    if (old && old->size >= size) {
        return ptr;
    }
    fresh = pool_malloc(size);
    if (old) {
        memcpy(fresh, ptr, old->size);
    }
    return fresh;
}

static void XMLCALL pool_free(void *ptr)
{
    (void)ptr;
}

static const XML_Memory_Handling_Suite pool_suite = { pool_malloc, pool_realloc, pool_free };

XML_Parser xb_xml_restrict_parser_create_in(apr_pool_t *scratch, int namespaces)
{
    static const XML_Char sep[2] = { XB_XML_NS_SEP, '\0' };

    expat_pool = scratch;
    return XML_ParserCreate_MM(XB_XML_ENCODING, &pool_suite, namespaces ? sep : NULL);
}

void xb_xml_restrict_install(XML_Parser xp, xb_xml_restrict_t *ud)
{
    XML_SetUserData(xp, ud);
    XML_SetStartDoctypeDeclHandler(xp, on_doctype);
    XML_SetEntityDeclHandler(xp, on_entity_decl);
    XML_SetProcessingInstructionHandler(xp, on_pi);
    XML_SetCommentHandler(xp, on_comment);
    XML_SetParamEntityParsing(xp, XML_PARAM_ENTITY_PARSING_NEVER);
}

int xb_xml_has_foreign_bytes(const char *data, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == 0x00 || c == 0xFE || c == 0xFF) {
            return 1;
        }
    }
    return 0;
}
