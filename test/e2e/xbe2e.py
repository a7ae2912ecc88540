"""Shared pieces of the Converse.js end-to-end test and the demo (scripts/demo.py).

  site_conf()                    Apache config serving the Converse page and dist/
  make_site_apache(...)          an xbtest Apache (event MPM) with the module, or a proxy to
                                 Prosody's BOSH, plus the page
  befriend(bosh_url, domain, (user, pw), (user, pw))
                                 puts two users in each other's rosters, subscription 'both'
  node_modules_problem()         None, or why `npm install` in test/e2e is needed
  run_converse_chat(...)         runs converse_chat.mjs bounded in time; returns (result, proc)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(TEST_DIR)
if TEST_DIR not in sys.path:
    sys.path.insert(0, TEST_DIR)

from xbtest import stack  # noqa: E402
from xbtest.bosh import BoshClient, bare  # noqa: E402

SITE_DIR = os.path.join(HERE, "site")
NODE_MODULES = os.path.join(HERE, "node_modules")
CONVERSE_DIR = os.path.join(NODE_MODULES, "converse.js")
CHAT_SCRIPT = os.path.join(HERE, "converse_chat.mjs")

# BOSH wait Converse asks for is 59 s: the proxy's timeout must be above it (PITFALLS)
PROXY_TIMEOUT = 90


def node_modules_problem():
    """None when `npm install` has been run in test/e2e, else a sentence saying what is missing."""
    need = [os.path.join(CONVERSE_DIR, "dist", "converse.min.js"),
            os.path.join(NODE_MODULES, "playwright-core", "package.json")]
    missing = [p for p in need if not os.path.exists(p)]
    if missing:
        return ("test/e2e/node_modules is incomplete (missing %s): run `npm install` in test/e2e "
                "(or scripts/install-deps.sh)" % ", ".join(os.path.relpath(p, REPO) for p in missing))
    return None


def site_conf():
    """The page at / and Converse's package at /converse/ (dist/ whole, JS with a JS MIME type)."""
    return """\
# ---- Converse.js page (test/e2e/site) and its package (test/e2e/node_modules/converse.js)
Alias /converse/ "{converse}/"
DocumentRoot "{site}"
<Directory "{site}">
    Options None
    Require all granted
</Directory>
<Directory "{converse}">
    Options None
    Require all granted
</Directory>
AddType text/javascript .js .mjs
AddType application/wasm .wasm
AddType application/json .json .map
""".format(converse=CONVERSE_DIR, site=SITE_DIR)


def make_site_apache(workdir, target, prosody, ca, port=None, mpm="event", max_wait=30):
    """An xbtest Apache (not started) serving the page, with /http-bind handled by the module
    (target 'module') or proxied to Prosody's own BOSH (target 'prosody' or 'proxy')."""
    if target == "module":
        return stack.make_apache(workdir, mpm, prosody, ca, target="module", extra=site_conf(),
                                 max_wait=max_wait, port=port)
    if target in ("prosody", "proxy"):
        from xbtest.apache import Apache
        extra = """\
ProxyTimeout {t}
ProxyPass /http-bind {url} timeout={t}
ProxyPassReverse /http-bind {url}
""".format(t=PROXY_TIMEOUT, url=prosody.bosh_url) + site_conf()
        return Apache(workdir, mpm=mpm, modules=("proxy", "proxy_http"), extra_conf=extra,
                      port=port)
    raise ValueError("unknown target %r (module, prosody or proxy)" % target)


def _subscription(client, jid):
    for item in client.roster():
        if bare(item["jid"] or "") == jid:
            return item["subscription"]
    return None


def befriend(bosh_url, domain, user_a, user_b, timeout=30.0):
    """Make (user, password) pairs user_a and user_b contacts of each other with subscription
    'both', through an XMPP server's BOSH with the roster protocol (RFC 6121): each adds the
    other, each sends `subscribe`, each approves with `subscribed`. No initial presence is sent,
    so the two sessions are invisible. Idempotent; raises on failure. Returns the two rosters'
    subscriptions as {a_jid: sub_of_b, b_jid: sub_of_a}."""
    (ua, pa), (ub, pb) = user_a, user_b
    ja, jb = "%s@%s" % (ua, domain), "%s@%s" % (ub, domain)
    deadline = time.monotonic() + timeout
    ca = BoshClient(bosh_url, domain, wait=5, client_tag="e2e-roster-" + ua)
    cb = BoshClient(bosh_url, domain, wait=5, client_tag="e2e-roster-" + ub)
    try:
        ca.login(ua, pa)
        cb.login(ub, pb)
        ca.start_polling()
        cb.start_polling()
        if _subscription(ca, jb) == "both" and _subscription(cb, ja) == "both":
            return {ja: "both", jb: "both"}
        ca.roster_add(jb, name=ub.capitalize())
        cb.roster_add(ja, name=ua.capitalize())
        ca.presence(to=jb, type_="subscribe")
        cb.presence(to=ja, type_="subscribe")
        cb.presence(to=ja, type_="subscribed")
        ca.presence(to=jb, type_="subscribed")
        subs = {}
        while True:
            subs = {ja: _subscription(ca, jb), jb: _subscription(cb, ja)}
            if subs[ja] == "both" and subs[jb] == "both":
                return subs
            if time.monotonic() > deadline:
                raise RuntimeError("roster subscriptions not mutual after %.0fs: %r" % (timeout, subs))
            time.sleep(0.2)
    finally:
        for c in (ca, cb):
            try:
                if c.sid and c.terminated is None:
                    c.terminate(timeout=5)
            except Exception:
                pass
            c.close()


def node_binary():
    return os.environ.get("XB_NODE") or shutil.which("node") or "/usr/bin/node"


def run_converse_chat(base_url, a, b, out_dir, timeout=120, login_a="url", login_b="url",
                      extra_args=()):
    """Run converse_chat.mjs (a and b are (jid, password)); bounded by timeout + 60 s, its process
    group killed by its id if it overruns. Returns (result dict or None, CompletedProcess-like)."""
    cmd = [node_binary(), CHAT_SCRIPT, "--base-url", base_url,
           "--a-jid", a[0], "--a-password", a[1], "--b-jid", b[0], "--b-password", b[1],
           "--out", out_dir, "--timeout", str(timeout), "--login-a", login_a,
           "--login-b", login_b] + list(extra_args)
    p = subprocess.Popen(cmd, cwd=HERE, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)   # the group of the node process started here
        except ProcessLookupError:
            pass
        out, err = p.communicate(timeout=10)
    result = None
    for line in reversed(out.decode(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                continue
            break
    p.stdout_text = out.decode(errors="replace")
    p.stderr_text = err.decode(errors="replace")
    return result, p
