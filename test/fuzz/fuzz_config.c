/* libFuzzer harness: the configuration the httpd parent hands the retained daemon after a
 * restart (xb_config_deserialize; the socket only takes it from the parent's uid, so this is
 * the least exposed decoder, fuzzed for completeness).
 *
 * Input: the serialized bytes (NUL-terminated keys and values). Invariant: whatever is accepted
 * serializes to bytes that deserialize again, and from then on serialization is a fixed point
 * (nothing is lost or changed by a second trip through the socket).
 */
#include "fuzz_common.h"
#include "xb_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    xb_config_t *c1 = NULL, *c2 = NULL, *c3 = NULL;
    char *copy, *s1, *s2, *s3;
    apr_size_t n1, n2, n3;
    int i;

    if (size > 65536) {
        return 0;
    }
    p = fuzz_pool();
    /* Exactly the bytes, in their own allocation: a read past them is an ASan report. */
    copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    if (xb_config_deserialize(p, copy, size, &c1) == APR_SUCCESS) {
        FUZZ_CHECK(c1 != NULL && c1->domains != NULL);
        for (i = 0; i < c1->domains->nelts; i++) {
            const xb_domain_t *d = &APR_ARRAY_IDX(c1->domains, i, xb_domain_t);
            FUZZ_CHECK(d->name && d->host && d->port > 0);
            FUZZ_CHECK(xb_config_find_domain(c1, d->name) != NULL);
        }
        s1 = xb_config_serialize(p, c1, &n1);
        FUZZ_CHECK(xb_config_deserialize(p, s1, n1, &c2) == APR_SUCCESS);
        s2 = xb_config_serialize(p, c2, &n2);
        FUZZ_CHECK(xb_config_deserialize(p, s2, n2, &c3) == APR_SUCCESS);
        s3 = xb_config_serialize(p, c3, &n3);
        FUZZ_CHECK(n2 == n3 && !memcmp(s2, s3, n2));
        FUZZ_CHECK(c2->domains->nelts == c1->domains->nelts);
    }
    free(copy);
    fuzz_pool_done(p);
    return 0;
}
