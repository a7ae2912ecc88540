// Converse.js 14 over BOSH at /http-bind on this origin (mod_xmpp_bridge, or a proxy to an XMPP
// server's own BOSH). Query parameters:
//   jid, password   log in automatically (used by the end-to-end test); without them the login
//                   form is shown (the demo)
//   domain          default XMPP domain for a bare user name typed into the form (example.test)
//   loglevel        Converse log level (default 'info'; 'debug' logs every stanza)
import converse from '/converse/dist/converse.min.js';

const q = new URLSearchParams(window.location.search);
const jid = q.get('jid');
const password = q.get('password');
const domain = q.get('domain') || (jid && jid.includes('@') ? jid.split('@')[1].split('/')[0] : 'example.test');

// What the test driver reads: connection events, in order, with a timestamp.
const state = { events: [], connected: false, jid: null, status: 'loading' };
window.__xb = state;

function record(name, detail) {
    state.events.push({ t: Date.now(), name, detail: detail === undefined ? null : String(detail) });
    if (state.events.length > 200) state.events.shift();
    document.title = 'Converse.js — ' + state.status;
}

converse.plugins.add('xb-e2e-probe', {
    initialize() {
        const { api } = this._converse;
        api.listen.on('connected', () => {
            state.connected = true;
            state.jid = api.connection.get()?.jid || null;
            state.status = 'connected as ' + state.jid;
            record('connected', state.jid);
        });
        api.listen.on('reconnected', () => { state.connected = true; record('reconnected'); });
        api.listen.on('disconnected', () => {
            state.connected = false;
            state.status = 'disconnected';
            record('disconnected');
        });
        api.listen.on('rosterContactsFetched', () => record('rosterContactsFetched'));
        api.listen.on('message', (data) => {
            const body = data?.attrs?.body ?? data?.attrs?.message;
            if (body) record('message', body);
        });
        api.listen.on('connectionInitialized', () => record('connectionInitialized'));
    },
});

const settings = {
    bosh_service_url: '/http-bind',
    discover_connection_methods: false,   // else it first fetches https://DOMAIN/.well-known/host-meta
    authentication: 'login',
    assets_path: '/converse/dist',
    view_mode: 'fullscreen',
    theme: 'classic',
    default_domain: domain,
    allow_registration: false,             // the registration form would fetch a public provider list
    show_connection_url_input: false,
    use_system_emojis: true,               // no twemoji images from a CDN
    play_sounds: false,
    show_desktop_notifications: false,
    allow_non_roster_messaging: true,
    message_archiving: 'never',            // the test Prosody has no MAM
    omemo_default: false,
    persistent_store: 'sessionStorage',
    clear_cache_on_logout: true,
    loglevel: q.get('loglevel') || 'info',
    whitelisted_plugins: ['xb-e2e-probe'],
    i18n: 'en',
};
if (jid && password) {
    Object.assign(settings, { auto_login: true, jid, password });
}

state.status = jid ? 'logging in as ' + jid : 'log in below';
record('initialize', jid || '(login form)');
converse.initialize(settings).catch((e) => {
    state.status = 'initialize failed: ' + e;
    record('initialize-failed', e);
});
