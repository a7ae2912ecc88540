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
from xbtest.bosh import BoshClient, attach_prebound, bare  # noqa: E402,F401

SITE_DIR = os.path.join(HERE, "site")
NODE_MODULES = os.path.join(HERE, "node_modules")
CONVERSE_DIR = os.path.join(NODE_MODULES, "converse.js")
CHAT_SCRIPT = os.path.join(HERE, "converse_chat.mjs")

# BOSH wait Converse asks for is 59 s: the proxy's timeout must be above it (PITFALLS)
PROXY_TIMEOUT = 90


def require_e2e_tools(node=False):
    """In a fixture: fail the tests (skip them when XB_E2E_OPTIONAL is set) unless the e2e
    node_modules and Debian chromium are there, and with `node` the node binary too."""
    import pytest
    problem = node_modules_problem()
    if problem:
        if os.environ.get("XB_E2E_OPTIONAL"):
            pytest.skip(problem + " (XB_E2E_OPTIONAL is set)")
        pytest.fail(problem, pytrace=False)
    if not os.path.exists("/usr/bin/chromium") and not os.environ.get("XB_CHROMIUM"):
        pytest.fail("Debian chromium (/usr/bin/chromium) is not installed", pytrace=False)
    if node and not shutil.which(node_binary()) and not os.path.exists(node_binary()):
        pytest.fail("node is not installed", pytrace=False)


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
            c.end_quietly()


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


# ---------------------------------------------------------------------- prebind (site login)
# Used by test_prebind_e2e.py, measure_prebind.py and scripts/demo.py.
PREBIND_SCRIPT = os.path.join(HERE, "converse_prebind.mjs")
PREBIND_REALM = "Intranet"


def write_htpasswd(path, users):
    """An htpasswd file (htpasswd's default hash) with users {name: password}, readable by the
    Apache run user (mode 0644: it holds hashes only)."""
    import subprocess as sp
    for i, (user, pw) in enumerate(users.items()):
        sp.run(["htpasswd", "-b" + ("c" if i == 0 else ""), path, user, pw],
               check=True, capture_output=True, timeout=30)
    os.chmod(path, 0o644)
    return path


def prebind_site_conf(htpasswd, realm=PREBIND_REALM):
    """site_conf() (the password-login page at /, Converse at /converse/) plus the prebind page
    at /chat/ behind the same HTTP Basic site login as /prebind."""
    return site_conf() + """\
# ---- the prebind page (site/prebind.html) behind the site login, same auth as /prebind
Alias /chat/ "{site}/"
<Location /chat/>
    AuthType Basic
    AuthName "{realm}"
    AuthBasicProvider file
    AuthUserFile "{htpasswd}"
    Require valid-user
    DirectoryIndex prebind.html
</Location>
""".format(site=SITE_DIR, realm=realm, htpasswd=htpasswd)


def basic_auth(user, password):
    import base64
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def http_prebind(url, user, password, timeout=30, conn=None):
    """GET url (the /prebind handler) with HTTP Basic credentials: (status, parsed JSON or raw
    bytes, seconds). `conn` (an http.client.HTTPConnection to the same host) is reused when
    given (keep-alive)."""
    import http.client
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    t0 = time.monotonic()
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""), headers={
            "Accept": "application/json, text/javascript",
            "Authorization": basic_auth(user, password)})
        r = conn.getresponse()
        body = r.read()
        took = time.monotonic() - t0
    finally:
        if own:
            conn.close()
    try:
        data = json.loads(body)
    except ValueError:
        data = body
    return r.status, data, took


def prebound_client(base_url, domain, user, password, wait=20, client_tag=None):
    """Prebind `user` through base_url/prebind with the site credentials and attach: a bound
    BoshClient (polling not started) at base_url/http-bind."""
    base = base_url.rstrip("/")
    status, answer, _ = http_prebind(base + "/prebind", user, password)
    if status != 200 or not isinstance(answer, dict):
        raise RuntimeError("prebind of %s: HTTP %s %r" % (user, status, answer))
    return attach_prebound(base + "/http-bind", domain, answer, wait=wait,
                           client_tag=client_tag or "e2e-prebound-" + user)


def befriend_clients(ca, cb, name_a=None, name_b=None, timeout=30.0):
    """Like befriend(), with two bound, polling BoshClients (e.g. prebound ones: users who have
    no XMPP password). No initial presence is sent. Returns the subscriptions."""
    ja, jb = bare(ca.jid), bare(cb.jid)
    deadline = time.monotonic() + timeout
    if _subscription(ca, jb) == "both" and _subscription(cb, ja) == "both":
        return {ja: "both", jb: "both"}
    ca.roster_add(jb, name=name_b or jb.split("@")[0].capitalize())
    cb.roster_add(ja, name=name_a or ja.split("@")[0].capitalize())
    # The requests, then the approvals, and the approvals again every 2 s until both sides say
    # 'both': an approval the server handles before the request it answers is lost (ejabberd).
    ca.presence(to=jb, type_="subscribe")
    cb.presence(to=ja, type_="subscribe")
    resend = 0.0
    while True:
        if time.monotonic() >= resend:
            cb.presence(to=ja, type_="subscribed")
            ca.presence(to=jb, type_="subscribed")
            resend = time.monotonic() + 2.0
        subs = {ja: _subscription(ca, jb), jb: _subscription(cb, ja)}
        if subs[ja] == "both" and subs[jb] == "both":
            return subs
        if time.monotonic() > deadline:
            raise RuntimeError("roster subscriptions not mutual after %.0fs: %r" % (timeout, subs))
        time.sleep(0.2)


class BrowserError(AssertionError):
    pass


class BrowserDriver:
    """converse_prebind.mjs as a Python object: headless Chromium contexts driven one bounded
    command at a time (see the script's header for the commands).

        with BrowserDriver(origin, out_dir) as b:
            b.call("launch", ctx="alice", username="alice", password="...")
            b.call("goto", ctx="alice", path="/chat/")
            jid = b.call("waitConnected", ctx="alice", ms=30000)["jid"]

    call() raises BrowserError on a failed command or when no answer comes within ms + 10 s;
    the node process (its own process group) is killed by its id on close() if it lingers."""

    def __init__(self, origin, out_dir=None, timeout=300):
        import queue
        import threading
        self.origin = origin
        self.out_dir = out_dir
        self.transcript = []
        cmd = [node_binary(), PREBIND_SCRIPT, "--origin", origin, "--timeout", str(int(timeout))]
        if out_dir:
            cmd += ["--out", out_dir]
        self.proc = subprocess.Popen(cmd, cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self._q = queue.Queue()
        self._stderr = []
        self._id = 0
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self):
        for line in self.proc.stdout:
            self._q.put(line.decode(errors="replace"))
        self._q.put(None)

    def _read_err(self):
        for line in self.proc.stderr:
            self._stderr.append(line.decode(errors="replace"))
            del self._stderr[:-200]

    def stderr_text(self):
        return "".join(self._stderr)

    def call(self, cmd, ms=20000, check=True, **args):
        """Send one command; its answer's value (check=False: the whole answer dict)."""
        import queue
        self._id += 1
        msg = dict(args, id=self._id, cmd=cmd, ms=ms)
        t0 = time.monotonic()
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise BrowserError("browser driver is gone (%s): %s" % (e, self.stderr_text()[-2000:]))
        deadline = t0 + ms / 1000.0 + 10
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("no answer to %s within %.0fs" % (cmd, ms / 1000.0 + 10))
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise BrowserError("browser driver exited during %s (rc %s): %s"
                                   % (cmd, self.proc.poll(), self.stderr_text()[-2000:]))
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                ans = json.loads(line)
            except ValueError:
                continue
            if ans.get("id") == -1:
                raise BrowserError("browser driver: %s" % ans.get("error"))
            if ans.get("id") != self._id:
                continue
            self.transcript.append({"cmd": cmd, "args": {k: v for k, v in args.items()
                                                          if k != "password"},
                                    "ok": ans.get("ok"), "s": round(time.monotonic() - t0, 3),
                                    "error": ans.get("error")})
            if not check:
                return ans
            if not ans.get("ok"):
                raise BrowserError("%s %s failed: %s" % (cmd, args.get("ctx", ""), ans.get("error")))
            return ans.get("value")

    def try_call(self, cmd, ms=10000, **args):
        """call() that never raises (for diagnostics): the value or {'error': ...}."""
        try:
            return self.call(cmd, ms=ms, **args)
        except Exception as e:  # noqa: BLE001 - diagnostics only
            return {"error": str(e)}

    def close(self, timeout=30):
        if self.proc.poll() is None:
            try:
                self.call("quit", ms=20000, check=False)
            except Exception:  # noqa: BLE001 - killed below
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)   # the group of the node process we started
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def module_has(module_path, feature):
    """Whether the module binary knows `feature` (a directive or handler name)."""
    with open(module_path, "rb") as f:
        return feature.encode() in f.read()


class PrebindSite:
    """An XMPP server that accepts the module's tokens and an Apache (event MPM) with the module
    serving the prebind page at /chat/ behind HTTP Basic site login, as the conf example for the
    server has it (conf-examples/prebind-token-prosody.conf, prebind-jwt-ejabberd.conf).

    PrebindSite(workdir, server='prosody'|'ejabberd', ca, module_path, site_users,
                xmpp_users=None (Prosody only: ordinary XMPP accounts, for the password page),
                port=None, site_wide=False (the whole site behind the login, not just /chat/,
                /prebind, /http-bind and /logout), max_wait=30, domain='example.test',
                xmpp_extra='' (appended to prosody.cfg.lua's global section / ejabberd.yml))
    start()/stop(); .xmpp, .apache, .htpasswd, .url(path), .require_site_user, .logout.
    When the module has them: /http-bind behind the site login with XmppBridgeRequireSiteUser
    On, and `SetHandler xmpp-logout` at /logout."""

    def __init__(self, workdir, server, ca, module_path, site_users, xmpp_users=None, port=None,
                 site_wide=False, max_wait=30, domain="example.test", xmpp_extra=""):
        from xbtest.ejabberd import write_jwk
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.server = server
        self.ca = ca
        self.domain = domain
        self.module_path = module_path
        self.site_users = dict(site_users)
        self.xmpp_users = dict(xmpp_users or {})
        self.port = port
        self.site_wide = site_wide
        self.max_wait = max_wait
        self.xmpp_extra = xmpp_extra
        self.require_site_user = module_has(module_path, "XmppBridgeRequireSiteUser")
        self.logout = module_has(module_path, "xmpp-logout")
        secret = os.urandom(32)
        # one secret, two files: the module's (root, 0600) and the XMPP server's
        self.module_key = write_jwk(os.path.join(self.workdir, "token-key.jwk"), secret)
        self.htpasswd = write_htpasswd(os.path.join(self.workdir, "htpasswd"), self.site_users)
        self.xmpp = self._make_xmpp(secret)
        self.apache = None

    def _make_xmpp(self, secret):
        from xbtest.ejabberd import Ejabberd, write_jwk
        from xbtest.prosody import token_prosody
        if self.server == "prosody":
            return token_prosody(os.path.join(self.workdir, "prosody"), secret,
                                 domain=self.domain, ca=self.ca, users=self.xmpp_users,
                                 bosh=False, extra_config=self.xmpp_extra + "\n")
        if self.server == "ejabberd":
            if self.xmpp_users:
                raise ValueError("a JWT-only ejabberd host has no XMPP accounts")
            key = write_jwk(os.path.join(self.workdir, "ejabberd-jwt.jwk"), secret)
            return Ejabberd(os.path.join(self.workdir, "ejabberd"), domain=self.domain,
                            ca=self.ca, bosh=False, jwt_key_path=key, extra_yaml=self.xmpp_extra)
        raise ValueError("unknown XMPP server %r (prosody or ejabberd)" % self.server)

    def example_name(self):
        from xbtest.examples import EXAMPLES_DIR
        if self.server == "ejabberd" and os.path.exists(
                os.path.join(EXAMPLES_DIR, "prebind-jwt-ejabberd.conf")):
            return "prebind-jwt-ejabberd.conf"
        return "prebind-token-prosody.conf"

    def apache_conf(self):
        from xbtest.examples import render_example
        conf = render_example(self.example_name(), {
            "MODULE_PATH": self.module_path, "XMPP_DOMAIN": self.domain,
            "XMPP_PORT": self.xmpp.c2s_port, "CA_FILE": self.ca.cert_path,
            "TOKEN_KEY_FILE": self.module_key, "HTPASSWD_FILE": self.htpasswd})
        conf += "XmppBridgeMaxWait %d\n" % self.max_wait + prebind_site_conf(self.htpasswd)
        auth = """\
    AuthType Basic
    AuthName "{realm}"
    AuthBasicProvider file
    AuthUserFile "{htpasswd}"
    Require valid-user
""".format(realm=PREBIND_REALM, htpasswd=self.htpasswd)
        if self.site_wide:
            conf += "<Location />\n" + auth + "</Location>\n"
        if self.require_site_user:
            # /http-bind behind the site login as well, and a SID only works with its own login
            conf += ("<Location /http-bind>\n" + auth +
                     "    XmppBridgeRequireSiteUser On\n</Location>\n")
        if self.logout:
            conf += "<Location /logout>\n" + auth + "    SetHandler xmpp-logout\n</Location>\n"
        return conf

    def start(self):
        from xbtest.apache import Apache
        self.xmpp.start()
        try:
            self.apache = Apache(os.path.join(self.workdir, "apache"), mpm="event",
                                 extra_conf=self.apache_conf(), port=self.port,
                                 modules=("auth_basic", "authn_core", "authn_file",
                                          "authz_user"))
            self.apache.start()
        except Exception:
            self.xmpp.stop()
            raise
        return self

    def stop(self):
        try:
            if self.apache is not None:
                self.apache.stop()
        finally:
            self.xmpp.stop()

    def url(self, path="/"):
        return self.apache.url(path)

    def site_headers(self, user):
        """Headers a suite client needs at /http-bind: the site login when it is required."""
        if not (self.require_site_user or self.site_wide):
            return {}
        return {"Authorization": basic_auth(user, self.site_users[user])}

    def prebound_client(self, user, wait=20):
        """prebound_client() for a site user, with the site login at /http-bind if needed."""
        c = prebound_client(self.url("/"), self.domain, user, self.site_users[user], wait=wait)
        c.headers.update(self.site_headers(user))
        return c

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
