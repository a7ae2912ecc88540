/* SetHandler xmpp-bridge-status: what the gateway is doing, like mod_status.
 *
 *   /xmpp-status         an HTML page
 *   /xmpp-status?auto    "Key: value" lines (for scripts, like mod_status's ?auto)
 *   /xmpp-status?json    one JSON object
 *
 * Everything comes from the shared table and its counters, read under the lock only long
 * enough to copy them; no SID, RID, JID or token is ever shown (the rows hold no JID, and
 * SIDs are bearer credentials). Protect the location with the usual Require.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include "mod_xmpp_bridge_private.h"
#include "xb_log.h"

typedef struct status_view {
    apr_pool_t *pool;
    xb_shm_stats_t stats;
    unsigned live, held, prebound_waiting, prebound_attached, password_sessions;
    apr_hash_t *by_domain; /* domain -> unsigned * */
    apr_time_t now;
} status_view_t;

static void count_row(void *baton, const xb_shm_session_t *row)
{
    status_view_t *v = baton;
    unsigned *n = apr_hash_get(v->by_domain, row->domain, APR_HASH_KEY_STRING);

    v->live++;
    v->held += row->held;
    if (!(row->flags & XB_ROW_PREBOUND)) {
        v->password_sessions++;
    }
    else if (row->flags & XB_ROW_ATTACHED) {
        v->prebound_attached++;
    }
    else {
        v->prebound_waiting++;
    }
    if (!n) {
        n = apr_pcalloc(v->pool, sizeof(*n));
        apr_hash_set(v->by_domain, apr_pstrdup(v->pool, row->domain), APR_HASH_KEY_STRING, n);
    }
    (*n)++;
}

/* One name/value list serves all three forms, so they cannot drift apart. */
typedef struct status_item {
    const char *key;
    const char *value;
    int numeric;
} status_item_t;

static void add(apr_array_header_t *items, const char *key, const char *value, int numeric)
{
    status_item_t *it = apr_array_push(items);
    it->key = key;
    it->value = value;
    it->numeric = numeric;
}

static void add_num(apr_array_header_t *items, apr_pool_t *p, const char *key, apr_uint64_t v)
{
    add(items, key, apr_psprintf(p, "%" APR_UINT64_T_FMT, v), 1);
}

static apr_array_header_t *collect(request_rec *r, status_view_t *v)
{
    apr_array_header_t *items = apr_array_make(r->pool, 48, sizeof(status_item_t));
    apr_hash_index_t *hi;
    int i;

    add(items, "server", ap_get_server_description(), 0);
    add_num(items, r->pool, "daemon_pid", v->stats.daemon_pid);
    add_num(items, r->pool, "daemon_uptime_seconds",
            v->stats.daemon_started ? (apr_uint64_t)apr_time_sec(v->now - v->stats.daemon_started)
                                    : 0);
    add_num(items, r->pool, "daemon_restarts", v->stats.daemon_restarts);
    add_num(items, r->pool, "slots_total", v->stats.slots);
    add_num(items, r->pool, "slots_used", v->live);
    add_num(items, r->pool, "slots_free", v->stats.slots - v->live);
    add_num(items, r->pool, "sessions", v->live);
    add_num(items, r->pool, "sessions_password", v->password_sessions);
    add_num(items, r->pool, "sessions_prebound_waiting", v->prebound_waiting);
    add_num(items, r->pool, "sessions_prebound_attached", v->prebound_attached);
    add_num(items, r->pool, "held_requests", v->held);
    add_num(items, r->pool, "sessions_created", v->stats.sessions_created);
    add_num(items, r->pool, "sessions_ended", v->stats.sessions_ended);
    for (i = 0; i < XB_CNT_COUNT; i++) {
        add_num(items, r->pool, xb_counter_name((xb_counter_t)i), v->stats.counters[i]);
    }
    for (hi = apr_hash_first(r->pool, v->by_domain); hi; hi = apr_hash_next(hi)) {
        const char *domain = apr_hash_this_key(hi);
        unsigned *n = apr_hash_this_val(hi);
        add_num(items, r->pool, apr_pstrcat(r->pool, "sessions_domain_", domain, NULL), *n);
    }
    return items;
}

static void write_auto(request_rec *r, const apr_array_header_t *items)
{
    int i;

    ap_set_content_type(r, "text/plain; charset=utf-8");
    for (i = 0; i < items->nelts; i++) {
        const status_item_t *it = &APR_ARRAY_IDX(items, i, status_item_t);
        ap_rprintf(r, "%s: %s\n", it->key, it->value);
    }
}

static void write_json(request_rec *r, const apr_array_header_t *items)
{
    int i;

    ap_set_content_type(r, "application/json");
    ap_rputs("{", r);
    for (i = 0; i < items->nelts; i++) {
        const status_item_t *it = &APR_ARRAY_IDX(items, i, status_item_t);
        /* Keys and values here are ours (numbers, domain names, the server banner). */
        ap_rprintf(r, "%s\"%s\":%s%s%s", i ? "," : "", ap_escape_html(r->pool, it->key),
                   it->numeric ? "" : "\"",
                   it->numeric ? it->value : ap_escape_quotes(r->pool, it->value),
                   it->numeric ? "" : "\"");
    }
    ap_rputs("}\n", r);
}

static void write_html(request_rec *r, const apr_array_header_t *items)
{
    int i;

    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rputs(DOCTYPE_HTML_4_01 "<html><head><title>mod_xmpp_bridge status</title></head><body>"
             "<h1>mod_xmpp_bridge status</h1><table border=\"1\">", r);
    for (i = 0; i < items->nelts; i++) {
        const status_item_t *it = &APR_ARRAY_IDX(items, i, status_item_t);
        ap_rprintf(r, "<tr><th align=\"left\">%s</th><td>%s</td></tr>",
                   ap_escape_html(r->pool, it->key), ap_escape_html(r->pool, it->value));
    }
    ap_rputs("</table><p>No session ids, JIDs or tokens are shown.</p></body></html>\n", r);
}

int xb_status_handler(request_rec *r)
{
    xb_shm_table_t *table = xb_glue_table();
    status_view_t view;
    apr_array_header_t *items;

    if (!r->handler || strcmp(r->handler, XB_STATUS_HANDLER) != 0) {
        return DECLINED;
    }
    ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!table) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, XBLOGNO(05060) "status: no session table in "
                      "this process");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    memset(&view, 0, sizeof(view));
    view.pool = r->pool;
    view.by_domain = apr_hash_make(r->pool);
    view.now = apr_time_now();
    xb_shm_table_stats(table, &view.stats);
    xb_shm_table_each(table, count_row, &view);
    items = collect(r, &view);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->args && !strcmp(r->args, "auto")) {
        write_auto(r, items);
    }
    else if (r->args && !strcmp(r->args, "json")) {
        write_json(r, items);
    }
    else {
        write_html(r, items);
    }
    return OK;
}
