/* Shared by the httpd glue files only (never by the httpd-free core). */
#ifndef MOD_XMPP_BRIDGE_PRIVATE_H
#define MOD_XMPP_BRIDGE_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_global_mutex.h>

#include "xb_config.h"
#include "xb_shm_table.h"

extern module AP_MODULE_DECLARE_DATA xmpp_bridge_module;

/* mod_xmpp_bridge.c gets this from AP_DECLARE_MODULE itself. */
#if defined(APLOG_USE_MODULE) && !defined(XB_MODULE_RECORD_FILE)
APLOG_USE_MODULE(xmpp_bridge);
#endif

#define XB_BOSH_HANDLER "xmpp-bosh"
#define XB_PREBIND_HANDLER "xmpp-prebind"
#define XB_CREDENTIALS_HANDLER "xmpp-credentials"
#define XB_LOGOUT_HANDLER "xmpp-logout"
#define XB_STATUS_HANDLER "xmpp-bridge-status"
#define XB_MUTEX_TYPE "xmpp-bridge-shm"

/* ---- configuration (mod_xmpp_bridge_config.c) ---- */

typedef struct xb_server_conf {
    xb_config_t core;           /* unset fields hold XB_UNSET until xb_conf_finalize */
    const char *socket_setting; /* XmppBridgeSocket as written */
} xb_server_conf_t;

#define XB_UNSET ((unsigned)-1)

/* Per-directory settings: what a prebind location maps users to and how it vouches. */
typedef struct xb_dir_conf {
    const char *prebind_jid; /* XmppBridgePrebindJID template; NULL: unset */
    int prebind_mode;        /* xb_prebind_mode_t; 0: unset (token) */
    int require_site_user;   /* XmppBridgeRequireSiteUser: -1 unset, 0 off, 1 on */
    struct xb_ldap_dir_conf *ldap; /* XmppBridgePrebindLDAP* (mod_xmpp_bridge_ldap.c); NULL:
                                      none apply here */
    apr_array_header_t *cors_origins; /* XmppBridgeCORSOrigin (const char *, lower case, "*"
                                         for any); NULL: unset */
    const char *see_other_uri;        /* XmppBridgeSeeOtherURI; NULL: unset */
} xb_dir_conf_t;

void *xb_conf_create_dir(apr_pool_t *p, char *dir);
void *xb_conf_merge_dir(apr_pool_t *p, void *basev, void *addv);
const xb_dir_conf_t *xb_conf_dir(request_rec *r);

extern const command_rec xb_directives[];
void *xb_conf_create_server(apr_pool_t *p, server_rec *s);
void *xb_conf_merge_server(apr_pool_t *p, void *basev, void *addv);
/* Applies defaults and cross-checks (wait below Timeout); returns the effective config of the
 * main server, or NULL after logging why the configuration cannot work. */
const xb_config_t *xb_conf_finalize(apr_pool_t *pconf, server_rec *s);
/* The effective configuration (the main server's: one daemon serves every vhost). */
const xb_config_t *xb_conf_get(server_rec *s);

/* ---- daemon lifecycle, shm, mutex (mod_xmpp_bridge_daemon.c) ---- */

int xb_daemon_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
int xb_daemon_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *s);
void xb_daemon_child_init(apr_pool_t *pchild, server_rec *s);
void xb_daemon_child_stopping(apr_pool_t *pchild, int graceful);
/* This process's view of the shared session table (NULL before child_init). */
xb_shm_table_t *xb_glue_table(void);
/* Read end of the pipe that turns readable when this child is stopping. */
apr_file_t *xb_glue_wake_pipe(void);

/* ---- a handler's connection to the daemon (mod_xmpp_bridge_link.c) ---- */

typedef struct xb_daemon_link {
    request_rec *r;
    int fd;
    apr_socket_t *sock; /* the same fd, for apr_poll */
    int reused;         /* taken from this child's idle connections */
} xb_daemon_link_t;

/* This child's idle daemon connections (created in child_init, closed with `pchild`). */
void xb_link_child_init(apr_pool_t *pchild);
/* Like xb_link_open, but takes an idle connection of this child when there is one (`reused`
 * set): one request at a time per connection, no connect and no accept per request. */
apr_status_t xb_link_open_reuse(xb_daemon_link_t *link, request_rec *r,
                                const char *socket_path);
/* The answer was read whole: the connection goes back to this child's idle ones (closed if
 * there is no room). Any other end of an exchange is xb_link_close or the pool cleanup, which
 * tells the daemon the request is gone. */
void xb_link_keep(xb_daemon_link_t *link);

/* Connects, retrying for a few seconds while the daemon (re)starts; closed with r->pool. */
apr_status_t xb_link_open(xb_daemon_link_t *link, request_rec *r, const char *socket_path);
apr_status_t xb_link_write(xb_daemon_link_t *link, const char *data, apr_size_t len);
/* One frame of `type` whose payload is part1 followed by part2. */
apr_status_t xb_link_send(xb_daemon_link_t *link, int type, const void *part1,
                          apr_size_t len1, const void *part2, apr_size_t len2);
/* Blocks for the RESPONSE frame (poll first for a bounded wait). */
apr_status_t xb_link_read_answer(xb_daemon_link_t *link, int *status, char **body,
                                 apr_size_t *len);
void xb_link_close(xb_daemon_link_t *link);

/* ---- handlers ---- */

int xb_bosh_handler(request_rec *r);
int xb_prebind_handler(request_rec *r);
int xb_credentials_handler(request_rec *r);
int xb_logout_handler(request_rec *r);
int xb_status_handler(request_rec *r);

/* Binds the core's xb_log to ap_log_error for server `s`. */
void xb_glue_bind_log(server_rec *s);

/* ---- prebind's LDAP look-up through mod_ldap (mod_xmpp_bridge_ldap.c) ---- */

typedef struct xb_ldap_dir_conf xb_ldap_dir_conf_t;

/* What cmd->info of xb_ldap_set_string names. */
typedef enum {
    XB_LDAP_BIND_DN = 1,
    XB_LDAP_BIND_PASSWORD,
    XB_LDAP_JID_ATTRIBUTE,
    XB_LDAP_NICK_ATTRIBUTE
} xb_ldap_setting_t;

const char *xb_ldap_set_url(cmd_parms *cmd, void *dconf, const char *url, const char *mode);
const char *xb_ldap_set_string(cmd_parms *cmd, void *dconf, const char *arg);
const char *xb_ldap_add_group(cmd_parms *cmd, void *dconf, const char *dn);
xb_ldap_dir_conf_t *xb_ldap_merge_dir(apr_pool_t *p, const xb_ldap_dir_conf_t *base,
                                      const xb_ldap_dir_conf_t *add);
/* Hooks: check_config refuses a configuration that uses the look-up without mod_ldap. */
int xb_ldap_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
void xb_ldap_optional_fn_retrieve(void);

/* The site user's directory entry. */
typedef struct xb_ldap_entry {
    const char *dn;
    apr_array_header_t *names; /* const char *: the attributes fetched */
    const char **values;       /* values[i] for names[i]: NULL when absent; several values
                                  joined by "; " (util_ldap's way) */
    const char *jid;           /* XmppBridgePrebindLDAPJIDAttribute's value, or NULL */
    const char *nick;          /* XmppBridgePrebindLDAPNickAttribute's value, or NULL */
} xb_ldap_entry_t;

/* 1 when XmppBridgePrebindLDAPJIDAttribute applies (the entry then gives the JID). */
int xb_ldap_has_jid_attribute(const xb_ldap_dir_conf_t *lc);
/* Looks r->user up (and checks the required groups). OK with *entry set; otherwise the HTTP
 * status of the refusal with *reason its JSON reason code, already logged. The attributes
 * fetched are those of the URL, the JID and nickname attributes and each %{LDAP:attr} that
 * `jid_template` (may be NULL) names. */
int xb_ldap_lookup(request_rec *r, const xb_ldap_dir_conf_t *lc, const char *jid_template,
                   xb_ldap_entry_t **entry, const char **reason);
/* The value of `attr` (case-insensitive) in the entry, NULL when absent or empty. */
const char *xb_ldap_entry_value(const xb_ldap_entry_t *e, const char *attr);
/* RFC 4515 escaping of an assertion value. */
const char *xb_ldap_escape_filter_value(apr_pool_t *p, const char *value);

#endif
