"""The bridge daemon under valgrind memcheck through a chat session (issue 7).

The daemon is a fork() of the httpd parent (post_config), not an exec, so valgrind has to run
the whole apache2: `valgrind apache2 -X` (one process, no detach) under the worker MPM, whose
threads serve the concurrent long-polls; the daemon, forked from it, runs on the same
(emulated) CPU and writes its own log file (--log-file=...%p). Two users log in (SCRAM over a
real TLS stream to Prosody), exchange messages both ways, terminate; then the daemon is
stopped with SIGTERM (its own clean shutdown: system-shutdown answers, streams closed,
_exit) and its valgrind log must show 0 errors and 0 bytes definitely lost. Memory reachable at
_exit is not a leak (pools of the process, OpenSSL's and APR's globals). No suppressions are
needed (valgrind 3.19, OpenSSL 3.0, APR 1.7 on Debian bookworm).

Bounded: about 10 s here (valgrind included); every step has its own timeout (60-90 s).
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import conftest
from xbtest.apache import APACHE2
from xbtest.bosh import BoshClient, message_body
from xbtest.ports import wait_for_port
from xbtest.proc import wait_pid_gone

pytestmark = [
    pytest.mark.skipif(conftest.TARGET != "module", reason="module daemon"),
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed"),
    pytest.mark.skipif(bool(os.environ.get("XB_SANITIZER_DIR")),
                       reason="ASan and valgrind do not mix (sanitizer pass)"),
    pytest.mark.slow,
]

VALGRIND = ["valgrind", "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite",
            "--errors-for-leak-kinds=definite", "--track-origins=yes", "--num-callers=30",
            "--child-silent-after-fork=no", "--trace-children=no", "--vgdb=no"]


def _daemon_pid(error_log, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(error_log) as f:
                m = re.findall(r"XB04021: bridge daemon ready", f.read())
            if m:
                with open(error_log) as f:
                    pids = re.findall(r"XB05016: bridge daemon started, pid (\d+)", f.read())
                return int(pids[-1])
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the daemon under valgrind did not get ready within %d s" % timeout)


def _summary(text):
    errors = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
    definite = re.findall(r"definitely lost: ([\d,]+) bytes", text)
    return (int(errors[-1]) if errors else None,
            int(definite[-1].replace(",", "")) if definite else 0)


def test_721_daemon_chat_under_valgrind(prosody, ca, workdir, users):
    d = tempfile.mkdtemp(prefix="valgrind-", dir=workdir)
    os.chmod(d, 0o755)               # httpd serves as User
    vg_dir = os.path.join(d, "vg")
    os.makedirs(vg_dir)
    os.chmod(vg_dir, 0o1777)         # the daemon writes its log after dropping to User
    apache = conftest.make_apache(os.path.join(d, "httpd"), "worker", prosody, ca,
                                  extra="XmppBridgeConnectTimeout 30\n")
    cmd = VALGRIND + ["--log-file=%s/vg.%%p" % vg_dir, APACHE2, "-X", "-d", apache.root,
                      "-f", apache.conf_path]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=apache.root,
                            env=dict(os.environ, LANG="C"))
    daemon = None
    clients = []
    try:
        daemon = _daemon_pid(apache.error_log_path, 90)
        assert wait_for_port(apache.port, timeout=60, alive=lambda: proc.poll() is None)
        url = apache.url("/http-bind")
        for user in ("alice", "bob"):
            c = BoshClient(url, prosody.domain, wait=10, timeout=60)
            clients.append(c)
            c.create()
            c.login(user, users[user], timeout=60)
            c.start_polling()
            c.presence()
        a, b = clients
        for i in range(3):
            a.send_message(b.jid, "ping %d ✓" % i)
            assert message_body(b.wait_for_message(a.jid, timeout=30)) == "ping %d ✓" % i
            b.send_message(a.jid, "pong %d" % i)
            assert message_body(a.wait_for_message(b.jid, timeout=30)) == "pong %d" % i
        a.terminate(timeout=30)
        # bob's session is still up when the daemon stops: it ends with system-shutdown
        os.kill(daemon, signal.SIGTERM)
        assert wait_pid_gone(daemon, 60), "the daemon did not exit within 60 s of SIGTERM"
    finally:
        for c in clients:
            try:
                c.stop_polling(timeout=2)
            except Exception:
                pass
            c.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for pid in [p for p in apache.processes() if p != proc.pid]:
            os.kill(pid, signal.SIGKILL)
    path = os.path.join(vg_dir, "vg.%d" % daemon)
    with open(path) as f:
        text = f.read()
    errors, definite = _summary(text)
    print("valgrind, daemon %d: %s errors, %d bytes definitely lost (%s)"
          % (daemon, errors, definite, path))
    assert errors == 0 and definite == 0, "valgrind report of the daemon:\n" + text[-6000:]
    with open(apache.error_log_path) as f:
        log = f.read()
    assert "XB05014: bridge daemon %d exits" % daemon in log     # its own clean exit
