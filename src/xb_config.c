/* Look-ups over the plain configuration; see xb_config.h. */
#include <strings.h>
#include "xb_config.h"

const xb_domain_t *xb_config_find_domain(const xb_config_t *conf, const char *name)
{
    int i;

    if (!name || !conf->domains) {
        return NULL;
    }
    for (i = 0; i < conf->domains->nelts; i++) {
        const xb_domain_t *d = &APR_ARRAY_IDX(conf->domains, i, xb_domain_t);
        if (strcasecmp(d->name, name) == 0) {
            return d;
        }
    }
    return NULL;
}
