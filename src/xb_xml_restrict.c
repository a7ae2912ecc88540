/* Restricted XML: the expat set-up shared by every parser (see xb_xml_restrict.h). */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

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

apr_size_t xb_xml_foreign_byte_offset(const char *data, apr_size_t len)
{
    /* Three memchr passes (vectorised in libc) instead of a test per byte: every request body
     * and every read from the XMPP server is checked on the relay path. */
    static const unsigned char foreign[] = { 0x00, 0xFE, 0xFF };
    apr_size_t end = len;
    unsigned i;

    for (i = 0; i < sizeof(foreign) && end > 0; i++) {
        const char *hit = memchr(data, foreign[i], end);
        if (hit) {
            end = (apr_size_t)(hit - data);
        }
    }
    return end;
}

int xb_xml_has_foreign_bytes(const char *data, apr_size_t len)
{
    return xb_xml_foreign_byte_offset(data, len) < len;
}

/* ---- reusable namespace parsers --------------------------------------------------------- */

/* Creating and freeing an expat parser costs more than parsing a typical BOSH body (callgrind:
 * ~9k of ~24k instructions per body), and each new parser reads the environment and calls
 * getrandom() for its hash salt. Parsers given back are reset and kept, a few per process
 * (threads of an Apache child share them; a parser is held only while one body is parsed, so
 * a few cover the threads parsing at once). One that grew a large input buffer is freed. */
#define KEEP_PARSERS 8
#define KEEP_PARSED_MAX 8192

static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static XML_Parser kept[KEEP_PARSERS];
static unsigned kept_n;
static pid_t salt_pid;      /* the process salt_seed belongs to (a fork draws its own) */
static uint64_t salt_seed;
static uint64_t salt_count;

/* splitmix64's finaliser over a per-process random seed and a counter: a different salt for
 * every parse, unpredictable without the seed, and no system call after the first. */
static unsigned long next_salt(void)
{
    uint64_t z;

    if (salt_pid != getpid()) {
        salt_pid = getpid();
        if (getrandom(&salt_seed, sizeof(salt_seed), 0) != (ssize_t)sizeof(salt_seed)) {
            salt_seed ^= (uint64_t)(uintptr_t)&salt_seed ^ ((uint64_t)salt_pid << 32);
        }
    }
    z = salt_seed + ++salt_count * UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    z ^= z >> 31;
    return (unsigned long)(z ? z : 1); /* 0 would make expat draw its own */
}

XML_Parser xb_xml_restrict_ns_parser_take(void)
{
    XML_Parser xp = NULL;
    unsigned long salt;

    pthread_mutex_lock(&kept_lock);
    if (kept_n > 0) {
        xp = kept[--kept_n];
    }
    salt = next_salt();
    pthread_mutex_unlock(&kept_lock);
    if (!xp) {
        xp = xb_xml_restrict_parser_create(1);
        if (!xp) {
            return NULL;
        }
    }
    XML_SetReturnNSTriplet(xp, 0); /* kept across XML_ParserReset: back to the default */
    XML_SetHashSalt(xp, salt);
    return xp;
}

void xb_xml_restrict_ns_parser_give(XML_Parser xp, apr_size_t parsed)
{
    if (!xp) {
        return;
    }
    /* Reset now, not at the next take: what this parse allocated goes back at once. */
    if (parsed <= KEEP_PARSED_MAX && XML_ParserReset(xp, XB_XML_ENCODING)) {
        pthread_mutex_lock(&kept_lock);
        if (kept_n < KEEP_PARSERS) {
            kept[kept_n++] = xp;
            xp = NULL;
        }
        pthread_mutex_unlock(&kept_lock);
    }
    if (xp) {
        XML_ParserFree(xp);
    }
}
