/* Look-ups over the plain configuration; see xb_config.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <apr_strings.h>
#include <stddef.h>
#include <stdio.h>
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

/* ---- serialization ------------------------------------------------------------------------ */

/* Each numeric field: its key and where it lives. One table serves both directions, so a new
 * field cannot be written and then forgotten on the way back. */
typedef enum { F_UNSIGNED, F_SIZE, F_INTERVAL } field_kind_t;

static const struct {
    const char *key;
    field_kind_t kind;
    apr_size_t offset;
} numeric_fields[] = {
    { "max_wait", F_UNSIGNED, offsetof(xb_config_t, max_wait) },
    { "max_hold", F_UNSIGNED, offsetof(xb_config_t, max_hold) },
    { "inactivity", F_UNSIGNED, offsetof(xb_config_t, inactivity) },
    { "polling", F_UNSIGNED, offsetof(xb_config_t, polling) },
    { "max_sessions", F_UNSIGNED, offsetof(xb_config_t, max_sessions) },
    { "response_cache", F_UNSIGNED, offsetof(xb_config_t, response_cache) },
    { "max_body_size", F_SIZE, offsetof(xb_config_t, max_body_size) },
    { "max_stanza_size", F_SIZE, offsetof(xb_config_t, max_stanza_size) },
    { "max_queued_bytes", F_SIZE, offsetof(xb_config_t, max_queued_bytes) },
    { "connect_timeout", F_INTERVAL, offsetof(xb_config_t, connect_timeout) },
    { "token_lifetime", F_UNSIGNED, offsetof(xb_config_t, token_lifetime) },
    { "attach_grace", F_UNSIGNED, offsetof(xb_config_t, attach_grace) },
    { "max_per_user", F_UNSIGNED, offsetof(xb_config_t, max_per_user) },
    { "max_per_address", F_UNSIGNED, offsetof(xb_config_t, max_per_address) },
    { "front_proxy_timeout", F_UNSIGNED, offsetof(xb_config_t, front_proxy_timeout) },
    { "gzip", F_UNSIGNED, offsetof(xb_config_t, gzip) },
    { "max_replays", F_UNSIGNED, offsetof(xb_config_t, max_replays) },
    { "max_pause", F_UNSIGNED, offsetof(xb_config_t, max_pause) },
    { "max_streams", F_UNSIGNED, offsetof(xb_config_t, max_streams) },
    { "warm_streams", F_UNSIGNED, offsetof(xb_config_t, warm_streams) },
    { "warm_max_age", F_UNSIGNED, offsetof(xb_config_t, warm_max_age) },
    { "tls_resumption", F_UNSIGNED, offsetof(xb_config_t, tls_resumption) },
};

#define N_NUMERIC (sizeof(numeric_fields) / sizeof(numeric_fields[0]))

static const char *numeric_value(apr_pool_t *p, const xb_config_t *c, unsigned i)
{
    const char *at = (const char *)c + numeric_fields[i].offset;

    switch (numeric_fields[i].kind) {
    case F_UNSIGNED:
        return apr_psprintf(p, "%u", *(const unsigned *)at);
    case F_SIZE:
        return apr_psprintf(p, "%" APR_SIZE_T_FMT, *(const apr_size_t *)at);
    default:
        return apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)*(const apr_interval_time_t *)at);
    }
}

static void put(apr_array_header_t *parts, const char *key, const char *value)
{
    APR_ARRAY_PUSH(parts, const char *) = key;
    APR_ARRAY_PUSH(parts, const char *) = value ? value : "";
}

char *xb_config_serialize(apr_pool_t *p, const xb_config_t *conf, apr_size_t *len)
{
    apr_array_header_t *parts = apr_array_make(p, 64, sizeof(const char *));
    apr_size_t total = 0, pos = 0;
    unsigned i;
    int d;
    char *out;

    for (i = 0; i < N_NUMERIC; i++) {
        put(parts, numeric_fields[i].key, numeric_value(p, conf, i));
    }
    put(parts, "ca_file", conf->ca_file);
    put(parts, "socket_path", conf->socket_path);
    put(parts, "token_key_file", conf->token_key_file);
    for (d = 0; conf->domains && d < conf->domains->nelts; d++) {
        const xb_domain_t *dom = &APR_ARRAY_IDX(conf->domains, d, xb_domain_t);
        put(parts, "domain", apr_psprintf(p, "%s %s %u %d %s", dom->name, dom->host,
                                          (unsigned)dom->port, (int)dom->tls,
                                          dom->tls_name ? dom->tls_name : "-"));
    }
    for (d = 0; d < parts->nelts; d++) {
        total += strlen(APR_ARRAY_IDX(parts, d, const char *)) + 1;
    }
    out = apr_palloc(p, total);
    for (d = 0; d < parts->nelts; d++) {
        const char *v = APR_ARRAY_IDX(parts, d, const char *);
        apr_size_t n = strlen(v) + 1;
        memcpy(out + pos, v, n);
        pos += n;
    }
    *len = total;
    return out;
}

static apr_status_t set_numeric(xb_config_t *c, unsigned i, const char *value)
{
    char *end;
    apr_int64_t v = apr_strtoi64(value, &end, 10);
    char *at = (char *)c + numeric_fields[i].offset;

    if (*value == '\0' || *end != '\0' || v < 0) {
        return APR_EINVAL;
    }
    switch (numeric_fields[i].kind) {
    case F_UNSIGNED:
        *(unsigned *)at = (unsigned)v;
        break;
    case F_SIZE:
        *(apr_size_t *)at = (apr_size_t)v;
        break;
    default:
        *(apr_interval_time_t *)at = (apr_interval_time_t)v;
        break;
    }
    return APR_SUCCESS;
}

static apr_status_t add_domain(apr_pool_t *p, xb_config_t *c, const char *value)
{
    char name[256], host[256], tls_name[256];
    unsigned port;
    int tls;
    xb_domain_t *d;

    if (sscanf(value, "%255s %255s %u %d %255s", name, host, &port, &tls, tls_name) != 5
        || port == 0 || port > 65535 || (tls != XB_TLS_STARTTLS && tls != XB_TLS_NONE)) {
        return APR_EINVAL;
    }
    d = apr_array_push(c->domains);
    d->name = apr_pstrdup(p, name);
    d->host = apr_pstrdup(p, host);
    d->port = (apr_port_t)port;
    d->tls = (xb_tls_mode_t)tls;
    d->tls_name = strcmp(tls_name, "-") ? apr_pstrdup(p, tls_name) : NULL;
    return APR_SUCCESS;
}

static apr_status_t apply_entry(apr_pool_t *p, xb_config_t *c, const char *key,
                                const char *value)
{
    const char *str = *value ? apr_pstrdup(p, value) : NULL;
    unsigned i;

    for (i = 0; i < N_NUMERIC; i++) {
        if (!strcmp(key, numeric_fields[i].key)) {
            return set_numeric(c, i, value);
        }
    }
    if (!strcmp(key, "domain")) {
        return add_domain(p, c, value);
    }
    if (!strcmp(key, "ca_file")) {
        c->ca_file = str;
    }
    else if (!strcmp(key, "socket_path")) {
        c->socket_path = str;
    }
    else if (!strcmp(key, "token_key_file")) {
        c->token_key_file = str;
    }
    else {
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t xb_config_deserialize(apr_pool_t *p, const char *data, apr_size_t len,
                                   xb_config_t **conf)
{
    xb_config_t *c = apr_pcalloc(p, sizeof(*c));
    apr_size_t pos = 0;

    c->domains = apr_array_make(p, 2, sizeof(xb_domain_t));
    while (pos < len) {
        const char *key = data + pos, *value, *nul;

        nul = memchr(key, '\0', len - pos);
        if (!nul || (apr_size_t)(nul - data) + 1 >= len) {
            return APR_EINVAL;
        }
        value = nul + 1;
        nul = memchr(value, '\0', len - (apr_size_t)(value - data));
        if (!nul) {
            return APR_EINVAL;
        }
        pos = (apr_size_t)(nul - data) + 1;
        if (apply_entry(p, c, key, value) != APR_SUCCESS) {
            return APR_EINVAL;
        }
    }
    *conf = c;
    return APR_SUCCESS;
}
