/* What several unit tests share: the APR pool each test gets (cmocka setup/teardown) and a
 * substring assertion. Include after <cmocka.h> and <apr_pools.h>. Definitions are static
 * inline: each test program is a single file and uses what it needs. */
#ifndef UNIT_HELPERS_H
#define UNIT_HELPERS_H

#include <string.h>

static apr_pool_t *pool;

static inline int setup(void **state)
{
    (void)state;
    return apr_pool_create(&pool, NULL) == APR_SUCCESS ? 0 : -1;
}

static inline int teardown(void **state)
{
    (void)state;
    apr_pool_destroy(pool);
    pool = NULL;
    return 0;
}

static inline void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle)) {
        fail_msg("\"%s\" does not contain \"%s\"", hay ? hay : "(null)", needle);
    }
}

#endif
