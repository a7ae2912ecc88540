"""End to end: two people chat through Converse.js 14 in headless Chromium, over BOSH at
/http-bind of an Apache (event MPM) that also serves the page.

  XB_TARGET unset/module   /http-bind is mod_xmpp_bridge (SetHandler xmpp-bosh)
  XB_TARGET=prosody|proxy  /http-bind is mod_proxy_http in front of Prosody's own mod_bosh
                           (proves the page and the browser script without the module)
  XB_E2E_OPTIONAL=1        skip (instead of fail) when test/e2e/node_modules is missing
  XB_E2E_OUT=DIR           screenshots, console logs and result.json go here (default: a new
                           test/e2e/artifacts/<target>-<time>-<pid>/ per run; the 10 newest are kept)
  XB_E2E_TIMEOUT=SECONDS   the browser script's overall limit (default 120)

Alice and Bob are put in each other's rosters (subscription 'both') through Prosody's own BOSH
with the roster protocol before the browsers start (xbe2e.befriend).
"""
import json
import os
import shutil
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xbe2e  # noqa: E402

TARGET = (os.environ.get("XB_TARGET", "module").strip().lower() or "module")
OUT_ROOT = os.path.join(xbe2e.HERE, "artifacts")
KEEP_RUNS = 10
CHAT_TIMEOUT = int(os.environ.get("XB_E2E_TIMEOUT", "120"))

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def e2e_ready():
    xbe2e.require_e2e_tools(node=True)


@pytest.fixture(scope="module")
def site(e2e_ready, prosody, ca, workdir):
    """Apache (event MPM) serving the Converse page, /http-bind = the module or the proxy."""
    d = tempfile.mkdtemp(prefix="e2e-converse-event-", dir=workdir)
    a = xbe2e.make_site_apache(d, TARGET, prosody, ca)
    a.start()
    yield a
    a.stop()


def _out_dir():
    """A directory of its own for this run (suites may run concurrently in one tree)."""
    if os.environ.get("XB_E2E_OUT"):
        d = os.environ["XB_E2E_OUT"]
        os.makedirs(d, exist_ok=True)
        return d
    os.makedirs(OUT_ROOT, exist_ok=True)
    runs = sorted((e for e in os.listdir(OUT_ROOT) if os.path.isdir(os.path.join(OUT_ROOT, e))),
                  key=lambda e: os.path.getmtime(os.path.join(OUT_ROOT, e)))
    for old in runs[:max(0, len(runs) - (KEEP_RUNS - 1))]:
        shutil.rmtree(os.path.join(OUT_ROOT, old), ignore_errors=True)
    d = os.path.join(OUT_ROOT, "%s-%s-%d" % (TARGET, time.strftime("%Y%m%d-%H%M%S"), os.getpid()))
    os.makedirs(d, exist_ok=True)
    return d


def _dump(site, prosody, proc, result):
    sys.stderr.write("\n--- node stdout (last 4000 chars):\n%s\n" % proc.stdout_text[-4000:])
    sys.stderr.write("--- node stderr (last 4000 chars):\n%s\n" % proc.stderr_text[-4000:])
    if result:
        sys.stderr.write("--- result:\n%s\n" % json.dumps(result, indent=2)[:12000])
    sys.stderr.write("--- apache error log (%s):\n%s\n" % (site.error_log_path, site.error_log_tail(60)))
    sys.stderr.write("--- prosody log (%s):\n%s\n" % (prosody.log_path, prosody.log_tail(60)))


def test_converse_chat(site, prosody, users):
    """Alice (login form) and Bob (auto_login) log in, see each other online, exchange messages
    with random tokens; both pages show both messages."""
    site.log_mark()
    subs = xbe2e.befriend(prosody.bosh_url, prosody.domain, ("alice", users["alice"]),
                          ("bob", users["bob"]))
    assert set(subs.values()) == {"both"}, subs

    # the page and the dist bundle are served with a JavaScript MIME type
    import urllib.request
    for path, ctype in (("/", "text/html"), ("/chat.js", "text/javascript"),
                        ("/converse/dist/converse.min.js", "text/javascript")):
        with urllib.request.urlopen(site.url(path), timeout=10) as r:
            assert r.status == 200 and r.headers.get("Content-Type", "").startswith(ctype), \
                (path, r.status, r.headers.get("Content-Type"))

    out_dir = _out_dir()
    t0 = time.monotonic()
    result, proc = xbe2e.run_converse_chat(
        site.url("/"), ("alice@" + prosody.domain, users["alice"]),
        ("bob@" + prosody.domain, users["bob"]), out_dir, timeout=CHAT_TIMEOUT,
        login_a="form", login_b="url")
    took = time.monotonic() - t0
    sys.stderr.write("converse_chat.mjs: exit %s in %.1fs; artefacts in %s\n"
                     % (proc.returncode, took, out_dir))
    ok = (result is not None and result.get("ok") is True and proc.returncode == 0)
    if not ok:
        _dump(site, prosody, proc, result)
    assert result is not None, "no JSON result line from converse_chat.mjs (exit %s)" % proc.returncode
    assert result.get("ok") is True, "converse chat failed: %s (steps: %s)" % (
        result.get("error"), [s for s in result.get("steps", []) if not s.get("ok")])
    assert proc.returncode == 0
    # what each page showed at the end
    a_msgs = " ".join(result["pages"]["a"].get("messages", []))
    b_msgs = " ".join(result["pages"]["b"].get("messages", []))
    assert result["token"] in a_msgs and result["reply"] in a_msgs, a_msgs
    assert result["token"] in b_msgs and result["reply"] in b_msgs, b_msgs
    a_roster = {c["jid"] for c in result["pages"]["a"].get("roster", [])}
    assert "bob@" + prosody.domain in a_roster, a_roster
    # both bound through the BOSH endpoint under test
    assert result["bound"]["a"].startswith("alice@" + prosody.domain + "/")
    assert result["bound"]["b"].startswith("bob@" + prosody.domain + "/")
    # the page only ever talked to its own origin (everything else was blocked, and reported)
    for who in ("a", "b"):
        for url in result["blocked_requests"][who]:
            sys.stderr.write("blocked outside request (%s): %s\n" % (who, url))
    if TARGET == "module":
        site.assert_no_unexpected_log()
