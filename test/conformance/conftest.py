"""Targets of the BOSH conformance suite (XEP-0124 / XEP-0206 checklist, see test_conformance.py).

XB_TARGET (read by ../conftest.py):
  module    Apache (event MPM) + mod_xmpp_bridge in front of a real Prosody (the default)
  prosody   Prosody's own mod_bosh
  ejabberd  ejabberd's own mod_bosh
  proxy     Apache + mod_proxy_http in front of Prosody's mod_bosh (behaves as prosody)

Every target runs with the same short timers so that the inactivity and pause items stay fast:
inactivity INACTIVITY s, wait capped at MAX_WAIT s, users alice/bob/carol. The tests only talk
BOSH over HTTP to `target.bosh_url`; what a target cannot be set up for (a second location that
answers see-other-uri, a domain whose XMPP server is down) is None here and the test is skipped
(n/a in the table) for that target only.
"""
import os
import sys
import tempfile

import pytest

import conftest as root     # test/conftest.py (shared fixtures: bosh, login, users); this
                            # directory is a package so that the two conftest modules differ
from xbtest.apache import Apache
from xbtest.ejabberd import EJABBERDCTL, Ejabberd
from xbtest.ports import free_port
from xbtest.prosody import Prosody
from xbtest.stack import bridge_conf, proxy_conf
from xbtest.target import Target

TARGET = root.TARGET
DOMAIN = root.DOMAIN
MAX_WAIT = 30
INACTIVITY = 10
DOWN_DOMAIN = "down.example.test"


def _module_conf(prosody, ca, moved_uri):
    # XmppBridgeSeeOtherURI is being added on another branch: <IfDirective> keeps this
    # configuration valid before and after the merge (without it the test fails, as it should).
    extra = """\
XmppBridgeInactivity {inactivity}
# hold 2 makes §11's "more than `requests` unanswered" reachable (test_c1100a)
XmppBridgeMaxHold 2
# §16 multiple streams are off by default (one stream per session)
XmppBridgeMaxStreams 4
XmppBridgeDomain {down} 127.0.0.1:{down_port} starttls
<Location /http-bind-moved>
    SetHandler xmpp-bosh
    Require all granted
    <IfDirective XmppBridgeSeeOtherURI>
        XmppBridgeSeeOtherURI {moved_uri}
    </IfDirective>
</Location>
""".format(inactivity=INACTIVITY, down=DOWN_DOMAIN, down_port=free_port(), moved_uri=moved_uri)
    return bridge_conf(prosody, ca, MAX_WAIT, extra)


@pytest.fixture(scope="session")
def conformance_target(workdir, ca, users):
    base = tempfile.mkdtemp(prefix="conformance-", dir=workdir)
    os.chmod(base, 0o755)
    started = []
    common = dict(ca=ca, max_wait=MAX_WAIT, inactivity_config=INACTIVITY)
    try:
        if TARGET == "ejabberd":
            if not os.path.exists(EJABBERDCTL):
                pytest.exit("XB_TARGET=ejabberd but ejabberd is not installed", returncode=4)
            e = Ejabberd(os.path.join(base, "ejabberd"), domain=DOMAIN, ca=ca, users=users,
                         bosh_options="max_inactivity: %d" % INACTIVITY)
            e.start()
            started.append(e)
            t = Target("ejabberd", e.bosh_url, e, **common)
        else:
            p = Prosody(os.path.join(base, "prosody"), domain=DOMAIN, users=users, ca=ca,
                        bosh=True, bosh_max_wait=MAX_WAIT, bosh_max_inactivity=INACTIVITY)
            p.start()
            started.append(p)
            if TARGET == "prosody":
                t = Target("prosody", p.bosh_url, p, **common)
            elif TARGET == "proxy":
                a = Apache(os.path.join(base, "apache-proxy"), mpm="event",
                           modules=("proxy", "proxy_http"), extra_conf=proxy_conf(p))
                a.start()
                started.append(a)
                t = Target("proxy", a.url("/http-bind"), p, apache=a, **common)
            else:
                port = free_port()
                moved_uri = "http://127.0.0.1:%d/http-bind" % port
                a = Apache(os.path.join(base, "apache-module"), mpm="event", port=port,
                           module_path=root.module_snapshot(), modules=("deflate",),
                           extra_conf=_module_conf(p, ca, moved_uri))
                a.start()
                started.append(a)
                t = Target("module", a.url("/http-bind"), p, apache=a,
                           see_other_url=a.url("/http-bind-moved"), see_other_uri=moved_uri,
                           unreachable_domain=DOWN_DOMAIN, **common)
    except Exception:
        for s in reversed(started):
            s.stop()
        raise
    yield t
    for s in reversed(started):
        try:
            s.stop()
        except Exception as e:      # noqa: BLE001 - stop the others anyway
            sys.stderr.write("stopping %r: %r\n" % (s, e))


@pytest.fixture
def target(conformance_target):
    """Overrides ../conftest.py's `target`: the `bosh` and `login` factories use this one."""
    return conformance_target


@pytest.fixture(autouse=True)
def _xb_log_check(request, conformance_target):
    """Overrides ../conftest.py's log check: conformance items provoke errors on purpose, so only
    a crashed Apache child fails a test here; on failure the server logs are printed."""
    t = conformance_target
    if t.apache is not None:
        t.apache.log_mark()
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        if t.apache is not None:
            sys.stderr.write("\n--- apache error log (%s):\n%s\n"
                             % (t.apache.error_log_path, t.apache.error_log_tail(40)))
        sys.stderr.write("\n--- %s log:\n%s\n" % (t.name, t.server.log_tail(30)))
    if t.apache is not None:
        crashed = [line for line in t.apache.error_log_lines(t.apache._log_mark)
                   if "AH00052" in line or "Segmentation fault" in line]
        assert not crashed, "Apache child crashed:\n" + "\n".join(crashed)


def pytest_report_header(config):
    return ["conformance: target=%s inactivity=%d max_wait=%d" % (TARGET, INACTIVITY, MAX_WAIT)]
