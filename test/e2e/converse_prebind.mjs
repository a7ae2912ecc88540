#!/usr/bin/env node
// A scriptable headless Chromium for the prebind end-to-end test and the demo check: the Python
// side (xbe2e.BrowserDriver) sends one JSON command per line on stdin and reads one JSON answer
// per line on stdout, so the XMPP-side actions (a second user, killing a session, reading the
// Apache access log) happen in pytest between the browser steps.
//
//   node converse_prebind.mjs --origin http://127.0.0.1:PORT [--out DIR] [--timeout SECONDS]
//
// Commands ({"id": N, "cmd": NAME, ...}; answer {"id": N, "ok": true, "value": ...} or
// {"id": N, "ok": false, "error": "..."}); every one bounded by its "ms" (default 20000):
//   launch      {ctx, username, password}  a fresh persistent context (own profile dir) whose
//               HTTP Basic credentials are the site login (httpCredentials: a 401 without them
//               hangs headless Chromium); every request off --origin is aborted and reported
//   goto        {ctx, path}                open origin+path
//   reload      {ctx}
//   waitConnected {ctx, after}             until window.__xb.connected and connects > after;
//               value: {jid, connects}
//   waitDisconnected {ctx}                 until window.__xb.connected is false
//   openChat    {ctx, jid}                 click jid in the roster; until its chat shows
//   send        {ctx, jid, text}           type text in that chat and press Enter
//   waitMessage {ctx, jid, text}           until a message containing text is visible there
//   evaluate    {ctx, js}                  the value of a JavaScript expression in the page
//   fetch       {ctx, path, method}        fetch() from the page; value: {status, body}
//   state       {ctx}                      page state: __xb, messages, roster, connection
//               feedback, sessionStorage strophe-bosh-session, /prebind answers seen,
//               SASL <auth> bodies sent (prebind: none), BOSH terminates received
//   screenshot  {ctx, name}                PNG in --out; value: its path
//   logs        {ctx}                      console, HTTP errors, blocked requests, the last
//               BOSH exchanges (diagnostics)
//   close       {ctx}
//   quit
// The whole process exits after --timeout seconds (default 300) whatever happens.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const CHROMIUM = process.env.XB_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--disable-extensions', '--no-default-browser-check',
    '--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication',
    '--password-store=basic', '--use-mock-keychain',
];

function parseArgs(argv) {
    const opts = { timeout: 300, out: null, origin: null };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
        const eq = a.indexOf('=');
        const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
        const val = eq > 0 ? a.slice(eq + 1) : argv[++i];
        if (val === undefined) throw new Error(`--${key} needs a value`);
        opts[key] = val;
    }
    if (!opts.origin) throw new Error('--origin is required');
    opts.origin = new URL(opts.origin).origin;
    opts.timeout = Number(opts.timeout);
    if (!(opts.timeout > 0)) throw new Error('--timeout must be a positive number of seconds');
    return opts;
}

const T0 = Date.now();
const elapsed = () => ((Date.now() - T0) / 1000).toFixed(3);

function withTimeout(promise, ms, label) {
    let timer;
    const t = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout after ${(ms / 1000).toFixed(1)}s: ${label}`)), ms);
    });
    return Promise.race([Promise.resolve(promise), t]).finally(() => clearTimeout(timer));
}

const bare = (jid) => jid.split('/')[0].toLowerCase();
const cssString = (s) => JSON.stringify(s);

class Ctx {
    constructor(name, origin, outDir) {
        this.name = name;
        this.origin = origin;
        this.outDir = outDir;
        this.blocked = [];
        this.console = [];
        this.httpErrors = [];
        this.prebindCalls = [];     // [status, elapsed] of every GET /prebind the page made
        this.saslAuths = 0;         // BOSH bodies the page sent with a SASL <auth> (prebind: none)
        this.terminates = [];       // [condition, elapsed] of every BOSH terminate the page got
        this.boshLog = [];          // the last BOSH exchanges, for diagnostics
        this.profile = null;
        this.context = null;
        this.page = null;
    }

    async launch(username, password) {
        this.profile = fs.mkdtempSync(path.join(os.tmpdir(), `xb-prebind-${this.name}-`));
        this.context = await chromium.launchPersistentContext(this.profile, {
            executablePath: CHROMIUM,
            headless: true,
            args: CHROMIUM_ARGS,
            viewport: { width: 1280, height: 800 },
            acceptDownloads: false,
            serviceWorkers: 'block',
            timeout: 30000,
            httpCredentials: { username, password, origin: this.origin },
        });
        this.context.setDefaultTimeout(20000);
        await this.context.route('**/*', (route) => {
            const url = route.request().url();
            let ok = false;
            try {
                const u = new URL(url);
                ok = u.origin === this.origin || u.protocol === 'data:' || u.protocol === 'blob:';
            } catch { ok = false; }
            if (ok) return route.continue();
            this.blocked.push(url);
            return route.abort('blockedbyclient');
        });
        this.page = this.context.pages()[0] || await this.context.newPage();
        this.page.on('console', (m) => this.console.push(`[${elapsed()}] ${m.type()}: ${m.text()}`));
        this.page.on('pageerror', (e) => this.console.push(`[${elapsed()}] pageerror: ${e.message}`));
        this.page.on('request', (r) => {
            if (new URL(r.url()).pathname === '/http-bind' && /<auth[\s>]/.test(r.postData() || '')) this.saslAuths += 1;
        });
        this.page.on('requestfinished', async (req) => {
            try {
                if (new URL(req.url()).pathname !== '/http-bind') return;
                const resp = await req.response();
                const text = resp ? await resp.text() : '';
                const t = req.timing();
                this.boshLog.push(`[${elapsed()}] ${resp ? resp.status() : '-'} ${(t.responseEnd / 1000).toFixed(3)}s `
                                  + `sent: ${(req.postData() || '').slice(0, 160)} got: ${text.slice(0, 200)}`);
                if (this.boshLog.length > 60) this.boshLog.shift();
                if (/<body[^>]*type=["']terminate["']/.test(text)) {
                    const m = /<body[^>]*condition=["']([^"']+)["']/.exec(text);
                    this.terminates.push([m ? m[1] : null, +elapsed()]);
                }
            } catch (e) {
                this.console.push(`[${elapsed()}] driver: no body for ${req.method()} ${req.url()}: ${e.message}`);
            }
        });
        this.page.on('response', (r) => {
            const u = new URL(r.url());
            if (u.pathname === '/prebind') this.prebindCalls.push([r.status(), +elapsed()]);
            if (r.status() >= 400) this.httpErrors.push(`[${elapsed()}] ${r.status()} ${r.request().method()} ${r.url()}`);
        });
        this.page.on('requestfailed', (r) => {
            const f = r.failure();
            if (!this.blocked.includes(r.url())) this.httpErrors.push(`[${elapsed()}] failed ${r.method()} ${r.url()}: ${f && f.errorText}`);
        });
        return true;
    }

    evaluate(fn, arg, ms = 5000, label = 'evaluate') {
        return withTimeout(this.page.evaluate(fn, arg), ms, `${this.name}: ${label}`);
    }

    async goto(p, ms) {
        const r = await this.page.goto(new URL(p, this.origin).toString(), { waitUntil: 'domcontentloaded', timeout: ms });
        return r ? r.status() : null;
    }

    async reload(ms) {
        const r = await this.page.reload({ waitUntil: 'domcontentloaded', timeout: ms });
        return r ? r.status() : null;
    }

    async waitConnected(after, ms) {
        await this.page.waitForFunction((n) => window.__xb && window.__xb.connected === true && window.__xb.connects > n,
                                        after, { timeout: ms, polling: 100 });
        return this.evaluate(() => ({ jid: window.__xb.jid, connects: window.__xb.connects }), null, 5000, 'jid');
    }

    async waitDisconnected(ms) {
        await this.page.waitForFunction(() => window.__xb && window.__xb.connected === false,
                                        null, { timeout: ms, polling: 100 });
        return true;
    }

    chatbox(jid) {
        return this.page.locator(`converse-chat[jid=${cssString(bare(jid))}]`);
    }

    // a click on the contact in the roster, as a person would (Converse 14 never finishes
    // opening a chat with a non-roster JID when the server has no XEP-0191 blocking support)
    async openChat(jid, ms) {
        await this.page.locator(`converse-roster-contact a.open-chat[data-jid=${cssString(bare(jid))}]`)
            .first().click({ timeout: ms });
        await this.chatbox(jid).locator('textarea.chat-textarea').first().waitFor({ state: 'visible', timeout: ms });
        return true;
    }

    async send(jid, text, ms) {
        const ta = this.chatbox(jid).locator('textarea.chat-textarea').first();
        await ta.fill(text, { timeout: ms });
        await ta.press('Enter', { timeout: ms });
        return true;
    }

    async waitMessage(jid, text, ms) {
        await this.chatbox(jid).locator('.chat-msg__text').filter({ hasText: text }).first()
            .waitFor({ state: 'visible', timeout: ms });
        return true;
    }

    // fetch() from the page (same origin, the browser's own credentials and Sec-Fetch-* headers)
    fetchFromPage(p, method, ms) {
        return this.evaluate(async ([url, m]) => {
            const r = await fetch(url, { method: m, headers: { Accept: 'application/json' } });
            return { status: r.status, body: await r.text() };
        }, [p, method || 'GET'], ms, `fetch ${p}`);
    }

    state() {
        return this.evaluate(() => {
            let bosh = null;
            try { bosh = JSON.parse(sessionStorage.getItem('strophe-bosh-session')); } catch { bosh = null; }
            const xb = window.__xb;
            return {
                url: location.href,
                xb: xb ? { connected: xb.connected, jid: xb.jid, status: xb.status, connects: xb.connects,
                           disconnects: xb.disconnects, prebindFailures: xb.prebindFailures,
                           connectionStatus: xb.connectionStatus ? xb.connectionStatus() : null,
                           events: xb.events.slice(-40) } : null,
                bosh,
                roster: Array.from(document.querySelectorAll('converse-roster-contact a.open-chat'))
                    .map((a) => ({ jid: a.getAttribute('data-jid'),
                                   cls: a.querySelector('.contact-name')?.className })),
                messages: Array.from(document.querySelectorAll('.chat-msg__text')).map((m) => m.textContent.trim()).slice(-30),
                feedback: document.querySelector('.conn-feedback .feedback-message')?.textContent?.trim() || null,
            };
        }, null, 5000, 'state').then((s) => ({ ...s, prebindCalls: this.prebindCalls.slice(), saslAuths: this.saslAuths,
                              terminates: this.terminates.slice() }));
    }

    async screenshot(name) {
        if (!this.outDir) throw new Error('no --out directory');
        fs.mkdirSync(this.outDir, { recursive: true });
        const file = path.join(this.outDir, name);
        await this.page.screenshot({ path: file, fullPage: false, timeout: 10000 });
        return file;
    }

    logs() {
        return { console: this.console.slice(-200), httpErrors: this.httpErrors.slice(-50),
                 blocked: this.blocked.slice(), prebindCalls: this.prebindCalls.slice(),
                 saslAuths: this.saslAuths, terminates: this.terminates.slice(),
                 bosh: this.boshLog.slice() };
    }

    async close() {
        if (this.context) {
            try { await withTimeout(this.context.close(), 10000, `${this.name}: close`); } catch { /* bounded */ }
            this.context = null;
        }
        if (this.profile) fs.rmSync(this.profile, { recursive: true, force: true });
        this.profile = null;
        return true;
    }
}

async function main() {
    let opts;
    try {
        opts = parseArgs(process.argv.slice(2));
    } catch (e) {
        console.log(JSON.stringify({ id: 0, ok: false, error: `usage: ${e.message}` }));
        return 2;
    }
    const outDir = opts.out ? path.resolve(opts.out) : null;
    const ctxs = new Map();
    const closeAll = () => Promise.all([...ctxs.values()].map((c) => c.close()));
    const hard = setTimeout(async () => {
        console.log(JSON.stringify({ id: -1, ok: false, error: `hard timeout after ${opts.timeout}s` }));
        await withTimeout(closeAll(), 15000, 'close all').catch(() => {});
        process.exit(3);
    }, opts.timeout * 1000);
    hard.unref();

    const get = (name) => {
        const c = ctxs.get(name);
        if (!c || !c.page) throw new Error(`no launched context ${name}`);
        return c;
    };
    const handlers = {
        launch: async (m) => {
            if (ctxs.has(m.ctx)) throw new Error(`context ${m.ctx} exists`);
            const c = new Ctx(m.ctx, opts.origin, outDir);
            ctxs.set(m.ctx, c);
            return c.launch(m.username, m.password);
        },
        goto: (m, ms) => get(m.ctx).goto(m.path, ms),
        reload: (m, ms) => get(m.ctx).reload(ms),
        waitConnected: (m, ms) => get(m.ctx).waitConnected(m.after || 0, ms),
        waitDisconnected: (m, ms) => get(m.ctx).waitDisconnected(ms),
        openChat: (m, ms) => get(m.ctx).openChat(m.jid, ms),
        send: (m, ms) => get(m.ctx).send(m.jid, m.text, ms),
        waitMessage: (m, ms) => get(m.ctx).waitMessage(m.jid, m.text, ms),
        state: (m) => get(m.ctx).state(),
        evaluate: (m, ms) => get(m.ctx).evaluate((js) => Promise.resolve((0, eval)(js)), m.js, ms, 'evaluate'),
        fetch: (m, ms) => get(m.ctx).fetchFromPage(m.path, m.method, ms),
        screenshot: (m) => get(m.ctx).screenshot(m.name),
        logs: (m) => get(m.ctx).logs(),
        close: async (m) => {
            const c = ctxs.get(m.ctx);
            ctxs.delete(m.ctx);
            return c ? c.close() : false;
        },
    };

    const rl = readline.createInterface({ input: process.stdin });
    for await (const line of rl) {
        if (!line.trim()) continue;
        let m;
        try {
            m = JSON.parse(line);
        } catch (e) {
            console.log(JSON.stringify({ id: 0, ok: false, error: `bad JSON: ${e.message}` }));
            continue;
        }
        if (m.cmd === 'quit') {
            await withTimeout(closeAll(), 20000, 'close all').catch(() => {});
            console.log(JSON.stringify({ id: m.id, ok: true, value: true }));
            return 0;
        }
        const h = handlers[m.cmd];
        const ms = Number(m.ms) > 0 ? Number(m.ms) : 20000;
        const t = Date.now();
        try {
            if (!h) throw new Error(`unknown command ${m.cmd}`);
            const value = await withTimeout(h(m, ms), ms + 2000, `${m.ctx || ''} ${m.cmd}`);
            console.log(JSON.stringify({ id: m.id, ok: true, value, ms: Date.now() - t }));
        } catch (e) {
            console.log(JSON.stringify({ id: m.id, ok: false, error: String(e && e.message || e), ms: Date.now() - t }));
        }
    }
    // stdin closed: the driver is gone
    await withTimeout(closeAll(), 20000, 'close all').catch(() => {});
    return 0;
}

main().then((code) => process.exit(code), (e) => {
    console.log(JSON.stringify({ id: -1, ok: false, error: `crash: ${e && e.stack || e}` }));
    process.exit(1);
});
