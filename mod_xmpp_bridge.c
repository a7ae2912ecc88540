/* mod_xmpp_bridge: an Apache httpd 2.4 gateway from HTTP (BOSH, XEP-0124/0206) to XMPP.
 *
 * This file holds only the module record and the hook registration; the directives live in
 * src/mod_xmpp_bridge_config.c, the daemon lifecycle in src/mod_xmpp_bridge_daemon.c and the
 * handlers in src/mod_xmpp_bridge_bosh.c. The protocol work is in the httpd-free src/xb_*.c.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <mpm_common.h>

#define XB_MODULE_RECORD_FILE
#include "mod_xmpp_bridge_private.h"

static void xb_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(xb_daemon_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(xb_daemon_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(xb_daemon_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(xb_daemon_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(xb_bosh_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(xb_prebind_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(xb_credentials_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(xb_logout_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(xb_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* prebind's LDAP look-up: mod_ldap's uldap_* functions, and a configtest that fails when
     * it is used without mod_ldap */
    ap_hook_check_config(xb_ldap_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_optional_fn_retrieve(xb_ldap_optional_fn_retrieve, NULL, NULL, APR_HOOK_MIDDLE);
}

/* The build hides every symbol (-fvisibility=hidden); the module record is the one httpd must
 * find by name. */
#pragma GCC visibility push(default)
AP_DECLARE_MODULE(xmpp_bridge) = {
    STANDARD20_MODULE_STUFF,
    xb_conf_create_dir,
    xb_conf_merge_dir,
    xb_conf_create_server,
    xb_conf_merge_server,
    xb_directives,
    xb_register_hooks,
    AP_MODULE_FLAG_NONE
};
#pragma GCC visibility pop
