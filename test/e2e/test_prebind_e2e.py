"""End to end: a user logged in to the site (HTTP Basic, mod_authn_file) opens the chat page and
is in chat through Converse.js 14 (headless Chromium) without typing any XMPP password: the page
asks /prebind (SetHandler xmpp-prebind, behind the same site login), the module's daemon logs
in to the XMPP server with a short-lived JWT it mints, and Converse attaches to the session.

Real parts, for each XMPP server:
  prosody   Prosody 0.12 with contrib/prosody/mod_auth_xmpp_bridge.lua (token provider; no
            XMPP account or password is stored for alice or bob)
  ejabberd  ejabberd 23.01 with `auth_method: jwt` on the host (JWT-only: no users anywhere)
Apache (event MPM) with the module, configured from conf-examples/prebind-token-prosody.conf or
prebind-jwt-ejabberd.conf, plus the page at /chat/ behind the same Basic auth as /prebind
(xbe2e.PrebindSite). When the module has XmppBridgeRequireSiteUser, /http-bind sits behind the
site login too with it On (the prebind deployment this test recommends); when it has
xmpp-logout, that handler is at /logout. Without them, steps r and l skip and say why.
Bob (prebound by the suite) and alice are made contacts first: Converse 14 never finishes
opening a chat with a non-roster JID when the server lacks XEP-0191 blocking (both here).

Steps, in order, per server (each test needs the one before; later ones skip if one failed):
  a  alice opens /chat/ with her site login only -> Converse is connected (the page sent no SASL
     <auth> at all) and a message from bob (prebound by the suite, BoshClient) shows in the page
  b  alice sends a message from the page; bob receives it
  c  reload -> Converse re-attaches from sessionStorage (same JID, no new /prebind call) and a
     new message still arrives
  r  (XmppBridgeRequireSiteUser) alice's SID and next RID, replayed with bob's site login, get
     terminate item-not-found; without a site login 401; alice's page chats on undisturbed
  d  the session is killed on the server side (a BOSH terminate with the page's SID/RID) ->
     Converse calls /prebind once by itself (counted in Apache's access log), gets a new
     session (new resource) and a new message arrives; it can still send
  l  (xmpp-logout) the site logout: fetch POST /logout from the page (while still logged in,
     as the handler requires) ends her sessions ({"ended": n}, XB04028); then her site login
     ends (removed from the password file: a browser cannot log out of HTTP Basic) -> Converse
     tries /prebind (401; once more 3 s later), stays disconnected, roster gone. Converse
     re-prebinds within ~0.1 s of the logout, so it may get one more session before the login
     ends; the test allows that (and says so on stderr), the old SID stays dead.

Env: XB_E2E_OPTIONAL=1 skips (instead of failing) when test/e2e/node_modules is missing;
XB_E2E_OUT=DIR puts the screenshots and logs there (default test/e2e/artifacts/prebind-...);
XB_PREBIND_SERVERS=prosody,ejabberd chooses the servers.
Artefacts per server: <server>-final.png (the chat at the end), <server>-<test>-failed.png on a
failure, <server>-state.json (the page's last state and connection events), <server>-console.log,
<server>-transcript.json (the browser commands and their times).
"""
import json
import os
import secrets
import shutil
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import conftest  # noqa: E402
import xbe2e  # noqa: E402
from xbtest.bosh import BoshClient, message_body  # noqa: E402
from xbtest.ejabberd import EJABBERDCTL  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(conftest.TARGET != "module", reason="module feature")]

DOMAIN = "example.test"
SITE_USERS = {"alice": "alice-site-" + secrets.token_hex(4),
              "bob": "bob-site-" + secrets.token_hex(4)}
SERVERS = [s.strip() for s in os.environ.get("XB_PREBIND_SERVERS", "prosody,ejabberd").split(",")
           if s.strip()]
OUT_ROOT = os.path.join(xbe2e.HERE, "artifacts")
KEEP_RUNS = 10
WAIT_MS = 30000          # any single browser wait
MSG_S = 20               # any single XMPP-side wait (seconds)
# Converse 14: a dropped session -> reconnect (debounced 3 s) -> restore fails -> prebind_url
RECONNECT_MS = 30000


def _out_dir(server):
    if os.environ.get("XB_E2E_OUT"):
        d = os.path.join(os.environ["XB_E2E_OUT"], server)
        os.makedirs(d, exist_ok=True)
        return d
    os.makedirs(OUT_ROOT, exist_ok=True)
    runs = sorted((e for e in os.listdir(OUT_ROOT) if os.path.isdir(os.path.join(OUT_ROOT, e))),
                  key=lambda e: os.path.getmtime(os.path.join(OUT_ROOT, e)))
    for old in runs[:max(0, len(runs) - (KEEP_RUNS - 1))]:
        shutil.rmtree(os.path.join(OUT_ROOT, old), ignore_errors=True)
    d = os.path.join(OUT_ROOT, "prebind-%s-%s-%d" % (server, time.strftime("%Y%m%d-%H%M%S"),
                                                    os.getpid()))
    os.makedirs(d, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def e2e_ready():
    xbe2e.require_e2e_tools()


class Run:
    """Everything one server's run shares: the servers, the browser, bob, what happened."""

    def __init__(self, server):
        self.server = server
        self.site = self.xmpp = self.apache = self.browser = self.bob = None
        self.out_dir = None
        self.htpasswd = None
        self.failed = None          # the first failed step
        self.alice_jid = None
        self.connects = 0
        self.site_user_feature = False
        self.logout_feature = False

    def step(self, name):
        if self.failed:
            pytest.skip("an earlier step failed (%s)" % self.failed)
        self.current = name

    # -- the page
    def call(self, cmd, ms=WAIT_MS, **kw):
        return self.browser.call(cmd, ms=ms, **kw)

    def page_state(self):
        return self.call("state", ms=10000, ctx="alice")

    # -- the access log
    def prebind_calls(self, status=None):
        return [e for e in self.apache.access_log_entries()
                if e["request"].startswith("GET /prebind ") and
                (status is None or e["status"] == status)]

    def prebinds_become(self, status, expected, timeout=3.0):
        """The number of /prebind answers with `status` in the access log once it reaches
        `expected` (Apache writes the line just after the answer), or after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            n = len(self.prebind_calls(status))
            if n == expected or time.monotonic() > deadline:
                return n
            time.sleep(0.05)

    def bosh_url(self):
        return self.apache.url("/http-bind")

    def site_headers(self, user):
        return self.site.site_headers(user) or None

    # -- bob, the second user: prebound by the suite through the same /prebind
    def bob_says(self, to, text):
        self.bob.send_message(to, text)

    def bob_hears(self, text):
        el = self.bob.wait_for_message("alice@" + DOMAIN, MSG_S, text=text)
        return message_body(el)


@pytest.fixture(scope="module", params=SERVERS)
def run(request, e2e_ready, workdir, ca):
    server = request.param
    if server == "ejabberd" and not os.path.exists(EJABBERDCTL):
        pytest.skip("ejabberd is not installed (%s)" % EJABBERDCTL)
    r = Run(server)
    r.out_dir = _out_dir(server)
    t0 = time.monotonic()
    r.site = xbe2e.PrebindSite(tempfile.mkdtemp(dir=workdir, prefix="e2e-prebind-%s-" % server),
                               server, ca, conftest.module_snapshot(), SITE_USERS)
    r.htpasswd = r.site.htpasswd
    r.site_user_feature = r.site.require_site_user
    r.logout_feature = r.site.logout
    try:
        r.site.start()
        r.xmpp, r.apache = r.site.xmpp, r.site.apache
        r.browser = xbe2e.BrowserDriver(r.apache.url("/").rstrip("/"), r.out_dir, timeout=240)
        sys.stderr.write("\n[%s] stack up in %.1fs (%s); artefacts in %s\n"
                         % (server, time.monotonic() - t0, r.site.example_name(), r.out_dir))
        yield r
    finally:
        _teardown(r)


def _teardown(r):
    try:
        if r.browser is not None:
            logs = r.browser.try_call("logs", ctx="alice")
            with open(os.path.join(r.out_dir, "%s-state.json" % r.server), "w") as f:
                json.dump(r.browser.try_call("state", ctx="alice"), f, indent=1)
            with open(os.path.join(r.out_dir, "%s-console.log" % r.server), "w") as f:
                f.write(json.dumps(logs, indent=1) if isinstance(logs, dict) else str(logs))
            with open(os.path.join(r.out_dir, "%s-transcript.json" % r.server), "w") as f:
                json.dump(r.browser.transcript, f, indent=1)
            if isinstance(logs, dict):
                for url in logs.get("blocked", []):
                    sys.stderr.write("[%s] blocked outside request: %s\n" % (r.server, url))
            r.browser.close()
        if r.bob is not None:
            try:
                if r.bob.terminated is None:
                    r.bob.terminate(timeout=5)
            except Exception:  # noqa: BLE001 - best effort
                pass
            r.bob.close()
    finally:
        r.site.stop()
        if r.apache is not None:
            # refusals provoked on purpose: XB04026 (replayed SID)
            r.apache.assert_no_unexpected_log(expected_tags=("XB04026",), since=0)


@pytest.fixture(autouse=True)
def _on_failure(request):
    """A failed step: screenshot, page state and the logs on stderr; later steps skip."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.failed or "run" not in request.fixturenames:
        return
    r = request.getfixturevalue("run")
    r.failed = r.failed or request.node.name
    if r.browser is None:
        return
    shot = r.browser.try_call("screenshot", ctx="alice",
                              name="%s-%s-failed.png" % (r.server, request.node.originalname))
    state = r.browser.try_call("state", ctx="alice")
    logs = r.browser.try_call("logs", ctx="alice")
    sys.stderr.write("\n--- [%s] screenshot: %s\n--- page state:\n%s\n" % (
        r.server, shot, json.dumps(state, indent=1)[:6000]))
    if isinstance(logs, dict):
        sys.stderr.write("--- console (last 60):\n%s\n--- http errors:\n%s\n" % (
            "\n".join(logs.get("console", [])[-60:]), "\n".join(logs.get("httpErrors", []))))
    sys.stderr.write("--- driver stderr:\n%s\n" % r.browser.stderr_text()[-3000:])
    if r.apache is not None:
        sys.stderr.write("--- apache error log:\n%s\n" % r.apache.error_log_tail(60))
    if r.xmpp is not None:
        sys.stderr.write("--- %s log:\n%s\n" % (r.server, r.xmpp.log_tail(40)))


def token(what):
    return "%s-%s" % (what, secrets.token_hex(4))


# ---------------------------------------------------------------------- the steps
def test_a_online_without_xmpp_password(run):
    run.step("a")
    # bob: a site user too, prebound by the suite (no XMPP password exists for anyone)
    run.bob = run.site.prebound_client("bob")
    run.bob.start_polling()
    # alice and bob are contacts (subscription both), set up through a session the suite
    # prebinds for alice (Converse 14 only opens chats with roster contacts when the server
    # has no XEP-0191 blocking, as both test servers here)
    a = run.site.prebound_client("alice")
    try:
        a.start_polling()
        assert set(xbe2e.befriend_clients(a, run.bob).values()) == {"both"}
    finally:
        a.terminate(timeout=5)
        a.close()
    suite_prebinds = run.prebinds_become(200, 2)          # bob's and alice's, by the suite

    t0 = time.monotonic()
    run.call("launch", ms=45000, ctx="alice", username="alice", password=SITE_USERS["alice"])
    assert run.call("goto", ctx="alice", path="/chat/") == 200
    up = run.call("waitConnected", ms=WAIT_MS, ctx="alice", after=0)
    took = time.monotonic() - t0
    run.alice_jid, run.connects = up["jid"], up["connects"]
    sys.stderr.write("[%s] page open to Converse connected: %.2fs (%s)\n"
                     % (run.server, took, run.alice_jid))
    assert run.alice_jid.startswith("alice@%s/" % DOMAIN), up
    st = run.page_state()
    assert st["saslAuths"] == 0, "the page did SASL itself: %r" % st
    assert [c[0] for c in st["prebindCalls"] if c[0] != 401] == [200], st["prebindCalls"]
    assert run.prebinds_become(200, suite_prebinds + 1) == suite_prebinds + 1
    assert st["bosh"] and st["bosh"]["jid"] == run.alice_jid, st["bosh"]
    run.bob.presence()                # now that alice is online: bob shows online in her roster

    run.call("openChat", ctx="alice", jid="bob@" + DOMAIN)
    text = token("hello-alice-from-bob")
    run.bob_says(run.alice_jid, text)
    run.call("waitMessage", ctx="alice", jid="bob@" + DOMAIN, text=text)


def test_b_alice_sends(run):
    run.step("b")
    text = token("hello-bob-from-alices-page")
    run.call("send", ctx="alice", jid="bob@" + DOMAIN, text=text)
    assert run.bob_hears(text) == text
    run.call("waitMessage", ctx="alice", jid="bob@" + DOMAIN, text=text)   # her own, shown


def test_c_reload_reattaches(run):
    run.step("c")
    before = len(run.prebind_calls())
    assert run.call("reload", ctx="alice") == 200
    up = run.call("waitConnected", ms=WAIT_MS, ctx="alice", after=0)   # counters restart
    assert up["jid"] == run.alice_jid, "reload did not re-attach: %r" % up
    st = run.page_state()
    assert st["saslAuths"] == 0
    assert len(run.prebind_calls()) == before, "reload called /prebind"
    events = [e["name"] for e in st["xb"]["events"]]
    assert "connected" in events, events
    run.call("openChat", ctx="alice", jid="bob@" + DOMAIN)
    text = token("after-reload")
    run.bob_says(run.alice_jid, text)
    run.call("waitMessage", ctx="alice", jid="bob@" + DOMAIN, text=text)
    run.connects = up["connects"]


def test_r_replayed_sid_refused(run):
    run.step("r")
    if not run.site_user_feature:
        pytest.skip("the module has no XmppBridgeRequireSiteUser yet")
    st = run.page_state()
    sid, rid = st["bosh"]["sid"], int(st["bosh"]["rid"])
    before = len(run.prebind_calls())
    mark = run.apache.log_mark()
    # bob, logged in to the site himself, replays alice's SID with her next RID
    thief = BoshClient(run.bosh_url(), DOMAIN, wait=10, headers=run.site_headers("bob"))
    try:
        r = thief.request("", sid=sid, rid=rid, check=False, process=False, slot=False)
        assert r.status == 200 and r.type == "terminate" and r.condition == "item-not-found", \
            (r.status, r.raw)
        # and nobody without a site login gets to the handler at all
        anon = BoshClient(run.bosh_url(), DOMAIN, wait=10)
        r = anon.request("", sid=sid, rid=rid, check=False, process=False, slot=False)
        assert r.status == 401, (r.status, r.raw)
        anon.close()
    finally:
        thief.close()
    assert any("XB04026" in l for l in run.apache.unexpected_log_lines(
        expected_tags=(), since=mark)), "no XB04026 logged for the refused replay"
    # alice's page goes on with the same session
    text = token("after-replay")
    run.bob_says(run.alice_jid, text)
    run.call("waitMessage", ctx="alice", jid="bob@" + DOMAIN, text=text)
    st = run.page_state()
    assert st["xb"]["connected"] and st["xb"]["connects"] == run.connects, st["xb"]
    assert len(run.prebind_calls()) == before


def test_d_killed_session_comes_back_by_prebind(run):
    run.step("d")
    st = run.page_state()
    sid, rid = st["bosh"]["sid"], int(st["bosh"]["rid"])
    before_ok = len(run.prebind_calls(200))
    old_jid = run.alice_jid
    # kill it on the server side: a terminate with the page's SID and its next RID (as if the
    # page had logged out), with the site login of the session's own user
    killer = BoshClient(run.bosh_url(), DOMAIN, wait=10, headers=run.site_headers("alice"))
    killer.sid = sid
    killer.rid = rid - 1
    try:
        r = killer.terminate(timeout=15)
        assert r.status == 200, (r.status, r.raw)
    finally:
        killer.close()
    t0 = time.monotonic()
    up = run.call("waitConnected", ms=RECONNECT_MS, ctx="alice", after=run.connects)
    took = time.monotonic() - t0
    sys.stderr.write("[%s] killed session -> Converse back via /prebind in %.2fs (%s)\n"
                     % (run.server, took, up["jid"]))
    st = run.page_state()
    events = [e["name"] for e in st["xb"]["events"]]
    assert "will-reconnect" in events, events
    assert st["terminates"], "the page saw no BOSH terminate"
    assert up["jid"] != old_jid and up["jid"].startswith("alice@%s/" % DOMAIN), up
    assert st["bosh"]["sid"] != sid
    assert st["saslAuths"] == 0
    assert run.prebinds_become(200, before_ok + 1) == before_ok + 1, run.prebind_calls()
    assert [c[0] for c in st["prebindCalls"] if c[0] != 401] == [200, 200], st["prebindCalls"]
    run.alice_jid, run.connects = up["jid"], up["connects"]
    # the new session chats both ways
    run.call("openChat", ctx="alice", jid="bob@" + DOMAIN)
    text = token("after-kill")
    run.bob_says(run.alice_jid, text)
    run.call("waitMessage", ctx="alice", jid="bob@" + DOMAIN, text=text)
    text = token("alice-after-kill")
    run.call("send", ctx="alice", jid="bob@" + DOMAIN, text=text)
    assert run.bob_hears(text) == text
    # the proof for a human: the chat with every message of the run
    shot = run.call("screenshot", ctx="alice", name="%s-final.png" % run.server)
    sys.stderr.write("[%s] screenshot: %s\n" % (run.server, shot))


def test_l_site_logout_ends_the_chat(run):
    run.step("l")
    if not run.logout_feature:
        pytest.skip("the module has no xmpp-logout handler yet")
    st = run.page_state()
    sid, rid = st["bosh"]["sid"], int(st["bosh"]["rid"])
    n_terminates = len(st["terminates"])
    before_401 = len(run.prebind_calls(401))
    # The site's logout, in the order a site has to do it: xmpp-logout while the user is still
    # logged in (the handler wants an authenticated, same-origin request) ...
    ans = run.call("fetch", ctx="alice", path="/logout", method="POST")
    # ... then the site login ends: alice's credentials no longer open the site. (A browser
    # cannot log out of HTTP Basic; a form/cookie login would drop its session cookie here.)
    xbe2e.write_htpasswd(run.htpasswd, {"bob": SITE_USERS["bob"]})
    assert ans["status"] == 200, ans
    assert json.loads(ans["body"]).get("ended", 0) >= 1, ans
    assert any("XB04028" in l and "alice" in l for l in run.apache.error_log_lines()), \
        "no XB04028 (site logout) in the error log"
    try:
        t0 = time.monotonic()
        # Converse: the terminate -> restore fails -> prebind_url -> 401 -> it gives up; it
        # tries once more after its 3 s reconnect debounce, then stays off
        deadline = time.monotonic() + RECONNECT_MS / 1000.0
        st = run.page_state()
        while time.monotonic() < deadline and st["xb"]["prebindFailures"] < 2:
            time.sleep(0.25)
            st = run.page_state()
        sys.stderr.write("[%s] logout -> Converse off, its prebind refused, in %.2fs\n"
                         % (run.server, time.monotonic() - t0))
        connects, ok_prebinds = st["xb"]["connects"], len(run.prebind_calls(200))
        time.sleep(3.5)          # it stays off: no new session, no successful prebind
        st = run.page_state()
        xb = st["xb"]
        assert xb["connects"] == connects and len(run.prebind_calls(200)) == ok_prebinds, xb
        got = [c for c, _ in st["terminates"][n_terminates:]]
        sys.stderr.write("[%s] after logout: terminates %r, /prebind answers %r, connects %d -> "
                         "%d\n" % (run.server, got, [c for c, _ in st["prebindCalls"]],
                                    run.connects, xb["connects"]))
        # (what the page sees depends on timing: a held request gets policy-violation, one sent
        # after the logout item-not-found, one sent after the login ended a 401; all end it)
        assert 1 <= xb["prebindFailures"] <= 2, "Converse keeps calling /prebind: %r" % xb
        assert not xb["connected"], xb
        assert st["roster"] == [], "the roster is still shown: %r" % st["roster"]
        assert len(run.prebind_calls(401)) > before_401
        if xb["connects"] != run.connects:
            # Converse re-prebound in the moment between xmpp-logout and the end of the login
            # (within ~0.1 s); that session died at the next /http-bind request (401), but it
            # stays on the XMPP server until the bridge's inactivity timeout
            sys.stderr.write("[%s] NOTE: Converse got a new session between xmpp-logout and the "
                             "end of the site login (the race a site logout has)\n" % run.server)
        # the old session is gone for good: its SID is refused even with a valid login
        probe = BoshClient(run.bosh_url(), DOMAIN, wait=10, headers=run.site_headers("bob"))
        try:
            r = probe.request("", sid=sid, rid=rid, check=False, process=False, slot=False)
            assert r.type == "terminate" and r.condition == "item-not-found", r.raw
        finally:
            probe.close()
        run.call("screenshot", ctx="alice", name="%s-logged-out.png" % run.server)
    finally:
        xbe2e.write_htpasswd(run.htpasswd, SITE_USERS)
