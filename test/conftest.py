"""Fixtures for the mod_xmpp_bridge integration tests.

Target (env XB_TARGET):
  module  (default) Apache + mod_xmpp_bridge (env XB_MODULE or <repo>/.libs/mod_xmpp_bridge.so),
          one Apache per MPM (event, worker, prefork) per test module
  prosody Prosody's own mod_bosh (validates the client and the tests; no Apache)
  proxy   Apache (each MPM) with mod_proxy_http in front of Prosody's mod_bosh (validates the
          Apache harness, the access log, the multi-child test)
  ejabberd ejabberd's own mod_bosh (conformance/ only: its conftest.py builds that target)
Env XB_KEEP=1 keeps the temp dir (its path is in the pytest header).
"""
import os
import shutil
import signal
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from xbtest import stack  # noqa: E402
from xbtest.apache import Apache, default_module_path  # noqa: E402
from xbtest.bosh import BoshClient  # noqa: E402
from xbtest.ca import TestCA  # noqa: E402
from xbtest.prosody import Prosody  # noqa: E402
from xbtest import sanitizers  # noqa: E402
from xbtest.target import Target  # noqa: E402

TARGET = os.environ.get("XB_TARGET", "module").strip().lower() or "module"
if TARGET not in ("module", "prosody", "proxy", "ejabberd"):
    raise pytest.UsageError("XB_TARGET must be module, prosody, proxy or ejabberd (not %r)"
                            % TARGET)

DOMAIN = "example.test"
USERS = dict(stack.DEFAULT_USERS)
MAX_WAIT = 30          # XmppBridgeMaxWait for the module, bosh_max_wait for Prosody
MPMS = ["event", "worker", "prefork"] if TARGET not in ("prosody", "ejabberd") else ["none"]
if TARGET not in ("prosody", "ejabberd") and os.environ.get("XB_MPMS"):
    # a subset, e.g. the sanitizer pass of scripts/run-tests.sh (XB_MPMS="event prefork")
    MPMS = [m for m in os.environ["XB_MPMS"].split() if m in MPMS] or MPMS
# Test modules marked `pytest.mark.protocol` check what the daemon's session machine and the
# handler's request path do: the same code under every MPM. They run under these MPMs only:
# threads (event) and processes (prefork, where one session's requests land in different
# children, so the shared table is crossed). The modules that test MPM behaviour (children
# coming and going, graceful restarts, descriptors, the daemon's links) run under all of MPMS.
PROTOCOL_MPMS = [m for m in os.environ.get("XB_PROTOCOL_MPMS", "event prefork").split()
                 if m in MPMS] or MPMS[:1]

_TOP = {}


def pytest_report_header(config):
    mod = "-"
    if TARGET == "module":
        st = os.stat(default_module_path())
        mod = "%s (%d bytes, mtime %s)" % (default_module_path(), st.st_size,
                                           time.strftime("%H:%M:%S", time.localtime(st.st_mtime)))
    return ["xbtest: target=%s mpms=%s (protocol modules: %s) module=%s"
            % (TARGET, ",".join(MPMS), ",".join(PROTOCOL_MPMS), mod),
            "xbtest: workdir=%s" % _top_dir()]


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        mpm = getattr(item, "callspec", None) and item.callspec.params.get("mpm")
        if mpm and mpm not in PROTOCOL_MPMS and item.get_closest_marker("protocol"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _interrupt(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def pytest_sessionstart(session):
    # SIGTERM (scripts/run-tests.sh stopping its background sanitizer pass, a CI cancel) ends
    # the run as Ctrl-C does: every fixture's teardown runs and stops what it started, by PID.
    signal.signal(signal.SIGTERM, _interrupt)
    sanitizers.session_start(_top_dir())
    if TARGET == "module" and not os.path.exists(default_module_path()):
        pytest.exit("XB_TARGET=module but the module is not built: %s (run ./configure && make, "
                    "or set XB_MODULE, or use XB_TARGET=prosody / XB_TARGET=proxy)"
                    % default_module_path(), returncode=4)


def _top_dir():
    if "dir" not in _TOP:
        d = tempfile.mkdtemp(prefix="xbtest-")
        os.chmod(d, 0o755)
        _TOP["dir"] = d
    return _TOP["dir"]


def pytest_sessionfinish(session, exitstatus):
    # env XB_SANITIZER_DIR (instrumented module): any ASan/UBSan report fails the run
    _TOP["sanitizer_reports"] = sanitizers.summary_lines()
    if _TOP["sanitizer_reports"]:
        session.exitstatus = exitstatus = pytest.ExitCode.TESTS_FAILED
    d = _TOP.get("dir")
    if d and os.environ.get("XB_KEEP") != "1" and exitstatus == 0:
        shutil.rmtree(d, ignore_errors=True)


def pytest_runtest_logfinish(nodeid, location):
    sanitizers.note(nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _TOP.get("sanitizer_reports"):
        terminalreporter.section("sanitizer reports (XB_SANITIZER_DIR)", red=True)
        for line in _TOP["sanitizer_reports"]:
            terminalreporter.line(line)


def bridge_conf(prosody, ca, extra=""):
    return stack.bridge_conf(prosody, ca, MAX_WAIT, extra)


def make_apache(workdir, mpm, prosody, ca, extra=""):
    """An Apache (not started) for the current target: the module, or a proxy to Prosody."""
    if TARGET == "prosody":
        raise RuntimeError("no Apache for XB_TARGET=prosody")
    return stack.make_apache(workdir, mpm, prosody, ca, target=TARGET, extra=extra,
                             max_wait=MAX_WAIT,
                             module_path=module_snapshot() if TARGET == "module" else None)


def module_snapshot():
    """A copy of the module taken once per test session, so that a rebuild while the suite runs
    cannot hand a half-written .so to an Apache that starts later."""
    if "module" not in _TOP:
        src = default_module_path()
        dst = os.path.join(_top_dir(), "mod_xmpp_bridge.so")
        shutil.copy2(src, dst)
        os.chmod(dst, 0o755)
        _TOP["module"] = dst
    return _TOP["module"]


# ---------------------------------------------------------------------- session-wide
@pytest.fixture(scope="session")
def xb_target():
    return TARGET


@pytest.fixture(scope="session")
def workdir():
    return _top_dir()


@pytest.fixture(scope="session")
def ca(workdir):
    return TestCA(os.path.join(workdir, "ca"))


@pytest.fixture(scope="session")
def users():
    return dict(USERS)


@pytest.fixture(scope="session")
def prosody(workdir, ca):
    p = Prosody(os.path.join(workdir, "prosody"), domain=DOMAIN, users=USERS, ca=ca, bosh=True,
                bosh_max_wait=MAX_WAIT)
    p.start()
    yield p
    p.stop()


# ---------------------------------------------------------------------- per MPM
@pytest.fixture(scope="module", params=MPMS)
def mpm(request):
    return request.param


@pytest.fixture(scope="module")
def apache(request, mpm, prosody, ca, workdir):
    """Apache for this test module and MPM, configured with the module (or the proxy)."""
    if TARGET == "prosody":
        pytest.skip("no Apache with XB_TARGET=prosody")
    name = "%s-%s" % (request.module.__name__.rsplit(".", 1)[-1], mpm)
    a = make_apache(tempfile.mkdtemp(prefix=name + "-", dir=workdir), mpm, prosody, ca)
    a.start()
    yield a
    stop_checked(a)


def stop_checked(a):
    """Stop an Apache and check that shutting down logged nothing unexpected (no crash, no
    XB-tagged warning)."""
    a.log_mark()
    a.stop()
    a.assert_no_unexpected_log()


@pytest.fixture(scope="module")
def target(request, mpm, prosody, ca):
    if TARGET == "prosody":
        return Target("prosody", prosody.bosh_url, prosody, ca=ca, max_wait=MAX_WAIT)
    a = request.getfixturevalue("apache")
    return Target(TARGET, a.url("/http-bind"), prosody, apache=a, mpm=mpm, ca=ca,
                  max_wait=MAX_WAIT)


# ---------------------------------------------------------------------- per test
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _xb_log_check(request):
    """Error-log assertion after every test that uses an Apache: no unexpected
    [xmpp_bridge:error|warn] (or XB-tagged error/warn) lines, no crashed child."""
    apache = None
    if TARGET != "prosody":
        for name in ("apache", "target"):
            if name in request.fixturenames:
                v = request.getfixturevalue(name)
                apache = v if isinstance(v, Apache) else getattr(v, "apache", None)
                break
    if apache is not None:
        apache.log_mark()
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        if apache is not None:
            sys.stderr.write("\n--- apache error log (%s):\n%s\n"
                             % (apache.error_log_path, apache.error_log_tail(60)))
        if "prosody" in request.fixturenames or "target" in request.fixturenames:
            p = request.getfixturevalue("prosody")
            sys.stderr.write("\n--- prosody log (%s):\n%s\n" % (p.log_path, p.log_tail(40)))
    if apache is not None:
        expected = []
        for m in request.node.iter_markers("xb_log_expected"):
            expected.extend(m.args)
        apache.assert_no_unexpected_log(expected_tags=expected)


@pytest.fixture
def bosh(target):
    """Factory: bosh(wait=10, hold=1, **kw) -> BoshClient on the target; all terminated/closed
    after the test."""
    clients = []

    def make(wait=10, hold=1, url=None, **kw):
        c = BoshClient(url or target.bosh_url, target.domain, wait=wait, hold=hold, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            if c.sid and c.terminated is None:
                c.terminate(timeout=5)
            c.stop_polling(timeout=2)
        except Exception:
            pass
        c.close()


@pytest.fixture
def login(bosh, users):
    """Factory: login(user, mechanism='SCRAM-SHA-1', poll=False, wait=10, **kw) -> a bound
    BoshClient (poll=True: long-poll mode started)."""
    def make(user, mechanism="SCRAM-SHA-1", poll=False, wait=10, resource=None, **kw):
        c = bosh(wait=wait, **kw)
        c.create()
        c.login(user, users[user], mechanism=mechanism, resource=resource)
        if poll:
            c.start_polling()
        return c
    return make
