// Converse.js 14 logged in through prebind: the page sits behind the site's own login (HTTP
// Basic in the test and the demo; any Apache auth works), and Converse asks /prebind
// (SetHandler xmpp-prebind, behind the same login) for a live, bound BOSH session
// {"jid","sid","rid"}, then attaches to it at /http-bind. No XMPP password is typed or stored.
//
// Query parameters: domain (default XMPP domain, example.test), loglevel (Converse log level).
//
// What Converse needs for prebind (shared/PITFALLS.md): authentication 'prebind', prebind_url,
// auto_login true (else the first page load never calls prebind_url), bosh_service_url and no
// websocket_url; same origin as /prebind (the XHR carries no credentials cross-origin).
import converse from '/converse/dist/converse.min.js';

const q = new URLSearchParams(window.location.search);
const domain = q.get('domain') || document.documentElement.dataset.xmppDomain || 'example.test';

// What the test driver reads: connection events in order with a timestamp, and counters that
// tell a fresh connection from an old one (connects only grows).
const state = { events: [], connected: false, jid: null, status: 'loading', connects: 0,
                disconnects: 0, prebindFailures: 0 };
window.__xb = state;

function record(name, detail) {
    state.events.push({ t: Date.now(), name, detail: detail === undefined ? null : String(detail) });
    if (state.events.length > 200) state.events.shift();
    document.title = 'Converse.js (prebind) — ' + state.status;
}

converse.plugins.add('xb-e2e-probe', {
    initialize() {
        const { api } = this._converse;
        const up = (name) => {
            state.connected = true;
            state.connects += 1;
            state.jid = api.connection.get()?.jid || null;
            state.status = 'connected as ' + state.jid;
            record(name, state.jid);
        };
        api.listen.on('connected', () => up('connected'));
        api.listen.on('reconnected', () => up('reconnected'));
        api.listen.on('disconnected', () => {
            state.connected = false;
            state.disconnects += 1;
            state.status = 'disconnected';
            record('disconnected');
        });
        api.listen.on('will-reconnect', () => {
            // the session dropped; Converse tries restore, then prebind_url once
            state.connected = false;
            state.status = 'reconnecting';
            record('will-reconnect');
        });
        api.listen.on('noResumeableBOSHSession', () => {
            state.prebindFailures += 1;
            state.connected = false;
            state.status = 'prebind failed: not logged in to chat';
            record('noResumeableBOSHSession');
        });
        api.listen.on('message', (data) => {
            const body = data?.attrs?.body ?? data?.attrs?.message;
            if (body) record('message', body);
        });
        state.connectionStatus = () => api.connection.get()?.status ?? null;
    },
});

const settings = {
    authentication: 'prebind',
    prebind_url: '/prebind',
    auto_login: true,
    bosh_service_url: '/http-bind',        // and no websocket_url: prebind is BOSH only
    discover_connection_methods: false,
    keepalive: true,                       // re-attach from sessionStorage on reload
    assets_path: '/converse/dist',
    view_mode: 'fullscreen',
    theme: 'classic',
    default_domain: domain,
    allow_registration: false,
    show_connection_url_input: false,
    use_system_emojis: true,
    play_sounds: false,
    show_desktop_notifications: false,
    allow_non_roster_messaging: true,
    message_archiving: 'never',
    omemo_default: false,
    persistent_store: 'sessionStorage',
    clear_cache_on_logout: true,
    loglevel: q.get('loglevel') || 'info',
    whitelisted_plugins: ['xb-e2e-probe'],
    i18n: 'en',
};

state.status = 'prebinding';
record('initialize', 'prebind');
converse.initialize(settings).catch((e) => {
    state.status = 'initialize failed: ' + e;
    record('initialize-failed', e);
});
