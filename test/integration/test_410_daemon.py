"""The bridge daemon as a process: its socket (0600, owned by User, in DefaultRuntimeDir), its
privileges (User/Group, not root), and its respawn when it dies (Apache keeps serving)."""
import os
import pwd
import re
import signal
import stat
import time
import urllib.request

import pytest

import conftest
from xbtest.apache import RUN_USER

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module daemon")


def daemon_pid(apache):
    with open(apache.error_log_path) as f:
        pids = re.findall(r"XB05016: bridge daemon started, pid (\d+)", f.read())
    assert pids, "no daemon start logged"
    return int(pids[-1])


def proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_411_socket_and_privileges(apache):
    run_dir = apache.run_dir
    deadline = time.monotonic() + 5        # the daemon binds its socket just after the start
    while True:
        socks = [n for n in os.listdir(run_dir) if n.startswith("xmpp-bridge.")]
        if socks or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(socks) == 1, socks
    st = os.stat(os.path.join(run_dir, socks[0]))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    user = pwd.getpwnam(RUN_USER)
    assert st.st_uid == user.pw_uid
    pid = daemon_pid(apache)
    deadline = time.monotonic() + 5        # the socket exists just before the privilege drop
    while proc_uid(pid) != user.pw_uid and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc_uid(pid) == user.pw_uid          # dropped to User, never root


@pytest.mark.xb_log_expected("XB05017")
def test_412_daemon_killed_comes_back(apache, login):
    old = daemon_pid(apache)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        new = daemon_pid(apache)
        if new != old:
            break
        time.sleep(0.05)
    assert new != old, "no new daemon within 5 s"
    # Apache served everything else all along, and new sessions work with the new daemon
    with urllib.request.urlopen(apache.url("/"), timeout=5) as r:
        assert r.status == 200
    c = login("alice")
    assert c.jid.startswith("alice@")
    with open(apache.error_log_path) as f:
        assert "XB05017" in f.read()                 # the death is logged, as an error




@pytest.mark.xb_log_expected("XB05017")   # the daemon stopped without Apache asking
def test_413_daemon_stop_tells_held_requests_system_shutdown(apache, login):
    """XEP-0124 §17.2 system-shutdown: when the daemon stops (SIGTERM, as at `apachectl stop`),
    a request its session holds is answered type='terminate' condition='system-shutdown'; the
    daemon comes back and new sessions work."""
    import threading
    c = login("alice", wait=20)
    c.drain()
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "r", c.request("", check=False, process=False, timeout=30)), daemon=True)
    t.start()
    time.sleep(1.0)                                   # the empty request is held now
    old = daemon_pid(apache)
    os.kill(old, signal.SIGTERM)
    t.join(25)
    r = out.get("r")
    assert r is not None and r.type == "terminate", r
    assert r.condition == "system-shutdown", r.raw
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and daemon_pid(apache) == old:
        time.sleep(0.05)
    assert daemon_pid(apache) != old, "no new daemon within 10 s"
    assert login("bob").jid.startswith("bob@")
