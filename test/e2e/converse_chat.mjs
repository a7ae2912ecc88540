#!/usr/bin/env node
// End-to-end chat through Converse.js 14 in headless Debian Chromium.
//
//   node converse_chat.mjs --base-url http://127.0.0.1:PORT/ \
//        --a-jid alice@example.test --a-password PW --b-jid bob@example.test --b-password PW \
//        [--out DIR] [--timeout SECONDS] [--login-a url|form] [--login-b url|form] [--headed]
//
// Two isolated browsers (each a persistent context on its own fresh profile directory) open the
// page at --base-url (site/index.html: Converse with bosh_service_url '/http-bind'). Each logs in
// (url: jid/password in the query and auto_login; form: Converse's login form), then:
//   1. A's roster shows B, and B is online there (and A on B's roster);
//   2. A opens the chat with B and sends a message with a random token; B's page shows it;
//   3. B replies with another token; A's page shows it.
// Every request that is not to the base URL's origin is aborted (and reported). Every wait is
// raced against a timeout, and the whole run against --timeout. Screenshots of both pages go to
// --out (a.png, b.png) on success and failure, with each page's console log. The last line on
// stdout is a JSON result; the exit status is 0 only if every step passed.
import { chromium } from 'playwright-core';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CHROMIUM = process.env.XB_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--disable-extensions', '--no-default-browser-check',
    '--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication',
    '--password-store=basic', '--use-mock-keychain',
];

function parseArgs(argv) {
    const opts = { timeout: 120, out: null, 'login-a': 'url', 'login-b': 'url', headed: false };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
        const eq = a.indexOf('=');
        let key, val;
        if (eq > 0) {
            key = a.slice(2, eq);
            val = a.slice(eq + 1);
        } else {
            key = a.slice(2);
            if (key === 'headed') { opts.headed = true; continue; }
            val = argv[++i];
            if (val === undefined) throw new Error(`--${key} needs a value`);
        }
        opts[key] = val;
    }
    for (const k of ['base-url', 'a-jid', 'a-password', 'b-jid', 'b-password']) {
        if (!opts[k]) throw new Error(`--${k} is required`);
    }
    for (const k of ['login-a', 'login-b']) {
        if (!['url', 'form'].includes(opts[k])) throw new Error(`--${k} must be url or form`);
    }
    opts.timeout = Number(opts.timeout);
    if (!(opts.timeout > 0)) throw new Error('--timeout must be a positive number of seconds');
    return opts;
}

const T0 = Date.now();
const elapsed = () => (Date.now() - T0) / 1000;
const steps = [];          // {step, ok, s (elapsed at end), ms (duration), error?}
let deadline = Infinity;

function withTimeout(promise, ms, label) {
    const left = Math.max(1, Math.min(ms, deadline - Date.now()));
    let timer;
    const t = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout after ${(left / 1000).toFixed(1)}s: ${label}`)), left);
    });
    return Promise.race([Promise.resolve(promise), t]).finally(() => clearTimeout(timer));
}

async function step(name, ms, fn) {
    const start = Date.now();
    try {
        const v = await withTimeout(fn(), ms, name);
        steps.push({ step: name, ok: true, s: +elapsed().toFixed(3), ms: Date.now() - start });
        return v;
    } catch (e) {
        steps.push({ step: name, ok: false, s: +elapsed().toFixed(3), ms: Date.now() - start,
                     error: String(e && e.message || e) });
        throw e;
    }
}

function writeOut(dir, name, text) {
    if (!dir) return;
    try {
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, name), text);
    } catch (e) {
        process.stderr.write(`cannot write ${name} in ${dir}: ${e.message}\n`);
    }
}

function bare(jid) { return jid.split('/')[0].toLowerCase(); }
function cssString(s) { return JSON.stringify(s); }

class User {
    constructor(tag, jid, password, loginMode, origin, outDir) {
        this.tag = tag;
        this.jid = jid;
        this.password = password;
        this.loginMode = loginMode;
        this.origin = origin;
        this.outDir = outDir;
        this.blocked = [];
        this.console = [];
        this.httpErrors = [];
        this.profile = null;
        this.context = null;
        this.page = null;
    }

    async launch(headed) {
        this.profile = fs.mkdtempSync(path.join(os.tmpdir(), `xb-e2e-${this.tag}-`));
        this.context = await chromium.launchPersistentContext(this.profile, {
            executablePath: CHROMIUM,
            headless: !headed,
            args: headed ? CHROMIUM_ARGS.filter((a) => a !== '--headless') : CHROMIUM_ARGS,
            viewport: { width: 1280, height: 800 },
            acceptDownloads: false,
            serviceWorkers: 'block',
            timeout: 30000,
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
        this.page.on('console', (m) => this.console.push(`[${elapsed().toFixed(3)}] ${m.type()}: ${m.text()}`));
        this.page.on('pageerror', (e) => this.console.push(`[${elapsed().toFixed(3)}] pageerror: ${e.message}`));
        this.page.on('response', (r) => {
            if (r.status() >= 400) this.httpErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`);
        });
        this.page.on('requestfailed', (r) => {
            const f = r.failure();
            if (!this.blocked.includes(r.url())) this.httpErrors.push(`failed ${r.method()} ${r.url()}: ${f && f.errorText}`);
        });
    }

    async open(baseUrl) {
        const u = new URL(baseUrl);
        if (this.loginMode === 'url') {
            u.searchParams.set('jid', this.jid);
            u.searchParams.set('password', this.password);
        }
        await this.page.goto(u.toString(), { waitUntil: 'domcontentloaded', timeout: 20000 });
        if (this.loginMode === 'form') {
            const form = this.page.locator('converse-login-form form, form.converse-form');
            await form.locator('input[name="jid"]').first().fill(this.jid, { timeout: 20000 });
            await form.locator('input[name="password"]').first().fill(this.password, { timeout: 5000 });
            await form.locator('button[type="submit"]').first().click({ timeout: 5000 });
        }
    }

    async evaluate(fn, arg, ms = 5000, label = 'evaluate') {
        return withTimeout(this.page.evaluate(fn, arg), ms, `${this.tag}: ${label}`);
    }

    async waitConnected(ms) {
        await withTimeout(this.page.waitForFunction(() => window.__xb && window.__xb.connected === true,
                                                    null, { timeout: ms, polling: 100 }),
                          ms + 1000, `${this.tag}: connected`);
        return this.evaluate(() => window.__xb.jid, null, 5000, 'bound jid');
    }

    contact(jid) {
        return this.page.locator(`converse-roster-contact a.open-chat[data-jid=${cssString(bare(jid))}]`);
    }

    async waitContactOnline(jid, ms) {
        await withTimeout(this.contact(jid).locator('.contact-name--online').first()
            .waitFor({ state: 'visible', timeout: ms }), ms + 1000, `${this.tag}: ${jid} online in roster`);
    }

    chatbox(jid) {
        return this.page.locator(`converse-chat[jid=${cssString(bare(jid))}]`);
    }

    async openChat(jid, ms) {
        await withTimeout(this.contact(jid).first().click({ timeout: ms }), ms + 1000, `${this.tag}: open chat with ${jid}`);
        await withTimeout(this.chatbox(jid).locator('textarea.chat-textarea').first()
            .waitFor({ state: 'visible', timeout: ms }), ms + 1000, `${this.tag}: chat textarea`);
    }

    async send(jid, text, ms) {
        const ta = this.chatbox(jid).locator('textarea.chat-textarea').first();
        await withTimeout(ta.fill(text, { timeout: ms }), ms + 1000, `${this.tag}: type message`);
        await withTimeout(ta.press('Enter', { timeout: ms }), ms + 1000, `${this.tag}: press Enter`);
    }

    async waitMessage(jid, text, ms) {
        const loc = this.chatbox(jid).locator('.chat-msg__text').filter({ hasText: text }).first();
        await withTimeout(loc.waitFor({ state: 'visible', timeout: ms }), ms + 1000,
                          `${this.tag}: message "${text}" visible`);
    }

    async snapshot(name) {
        if (!this.page || !this.outDir) return null;
        const file = path.join(this.outDir, name);
        try {
            fs.mkdirSync(this.outDir, { recursive: true });
            await withTimeout(this.page.screenshot({ path: file, fullPage: false, timeout: 10000 }),
                              12000, `${this.tag}: screenshot`);
            return file;
        } catch (e) {
            this.console.push(`screenshot failed: ${e.message}`);
            return null;
        }
    }

    async state() {
        try {
            return await this.evaluate(() => ({
                xb: window.__xb ? { connected: window.__xb.connected, jid: window.__xb.jid,
                                    status: window.__xb.status, events: window.__xb.events.slice(-40) } : null,
                roster: Array.from(document.querySelectorAll('converse-roster-contact a.open-chat'))
                    .map((a) => ({ jid: a.getAttribute('data-jid'),
                                   name: a.querySelector('.contact-name')?.textContent?.trim(),
                                   cls: a.querySelector('.contact-name')?.className })),
                messages: Array.from(document.querySelectorAll('.chat-msg__text')).map((m) => m.textContent.trim()).slice(-20),
                feedback: document.querySelector('.conn-feedback .feedback-message')?.textContent?.trim() || null,
            }), null, 5000, 'page state');
        } catch (e) {
            return { error: String(e.message || e) };
        }
    }

    async close() {
        if (this.context) {
            try { await withTimeout(this.context.close(), 10000, `${this.tag}: close`); } catch { /* bounded */ }
        }
        if (this.profile) fs.rmSync(this.profile, { recursive: true, force: true });
    }
}

async function main() {
    let opts;
    try {
        opts = parseArgs(process.argv.slice(2));
    } catch (e) {
        console.log(JSON.stringify({ ok: false, error: `usage: ${e.message}` }));
        return 2;
    }
    deadline = T0 + opts.timeout * 1000;
    const overall = setTimeout(() => {
        console.log(JSON.stringify({ ok: false, error: `hard timeout after ${opts.timeout + 30}s`, steps }));
        process.exit(3);
    }, (opts.timeout + 30) * 1000);
    overall.unref();

    const baseUrl = new URL(opts['base-url']).toString();
    const origin = new URL(baseUrl).origin;
    const outDir = opts.out ? path.resolve(opts.out) : null;
    if (outDir) fs.mkdirSync(outDir, { recursive: true });
    const token = 'xb-' + crypto.randomBytes(6).toString('hex');
    const reply = 'xb-reply-' + crypto.randomBytes(6).toString('hex');
    const A = new User('a', opts['a-jid'], opts['a-password'], opts['login-a'], origin, outDir);
    const B = new User('b', opts['b-jid'], opts['b-password'], opts['login-b'], origin, outDir);
    const result = { ok: false, base_url: baseUrl, a: A.jid, b: B.jid, login: [A.loginMode, B.loginMode],
                     token, reply, steps };
    let failure = null;
    try {
        await step('launch browsers', 45000, () => Promise.all([A.launch(opts.headed), B.launch(opts.headed)]));
        await step('open page and log in', 30000, () => Promise.all([A.open(baseUrl), B.open(baseUrl)]));
        const [ja, jb] = await step('both connected', 45000, () => Promise.all([A.waitConnected(40000), B.waitConnected(40000)]));
        result.bound = { a: ja, b: jb };
        await step("A's roster shows B online", 30000, () => A.waitContactOnline(B.jid, 28000));
        await step("B's roster shows A online", 30000, () => B.waitContactOnline(A.jid, 28000));
        await step('A opens the chat with B', 20000, () => A.openChat(B.jid, 15000));
        await step('A sends the token', 15000, () => A.send(B.jid, `hello from ${bare(A.jid)}: ${token}`, 10000));
        await step('A shows its own message', 15000, () => A.waitMessage(B.jid, token, 12000));
        await step('B opens the chat with A', 20000, () => B.openChat(A.jid, 15000));
        await step("B's page shows the token", 30000, () => B.waitMessage(A.jid, token, 28000));
        await step('B replies', 15000, () => B.send(A.jid, `reply from ${bare(B.jid)}: ${reply}`, 10000));
        await step("A's page shows the reply", 30000, () => A.waitMessage(B.jid, reply, 28000));
        result.ok = true;
    } catch (e) {
        failure = String(e && e.message || e);
        result.error = failure;
    }
    result.pages = { a: await A.state(), b: await B.state() };
    result.screenshots = [await A.snapshot('a.png'), await B.snapshot('b.png')].filter(Boolean);
    result.blocked_requests = { a: A.blocked, b: B.blocked };
    result.http_errors = { a: A.httpErrors.slice(-20), b: B.httpErrors.slice(-20) };
    for (const u of [A, B]) writeOut(outDir, `${u.tag}-console.log`, u.console.join('\n') + '\n');
    await Promise.all([A.close(), B.close()]);
    result.seconds = +elapsed().toFixed(3);
    writeOut(outDir, 'result.json', JSON.stringify(result, null, 2) + '\n');
    console.log(JSON.stringify(result));
    return result.ok ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => {
    console.log(JSON.stringify({ ok: false, error: `crash: ${e && e.stack || e}`, steps }));
    process.exit(1);
});
