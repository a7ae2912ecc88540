"""The daemon's memory returns to its baseline after many sessions are opened and closed
(issue 7).

Each session is real: a BOSH session creation, for which the daemon opens a TCP connection to
Prosody, runs STARTTLS and the TLS handshake and waits for the stream features, then a
type='terminate' request, which closes the stream; CONCURRENCY clients do this in a loop.
The daemon's memory is read from /proc/<pid>/status (VmRSS and RssAnon: the heap, APR's pools
and OpenSSL's buffers are anonymous memory) after a warm-up and after each quarter, each time
once the status page shows no session left. The APR allocators keep freed blocks for reuse and
malloc's free lists settle, so memory grows during the first few thousand sessions until it
holds what CONCURRENCY sessions at a time need (+60 kB after 500 sessions, then flat for the
next 15,000 in a 20,000-session run); a leak of L bytes per session adds L * SESSIONS / 2
between the halfway mark and the end. Asserted: end - halfway <= TOLERANCE (RssAnon), i.e.
under TOLERANCE / (SESSIONS / 2) bytes per session (262 with 2,000, 52 with 10,000), and no
descriptor left behind. What is still allocated when the daemon exits is checked by valgrind
(test_720).

Env XB_LEAK_SESSIONS (default 2000: about a minute here) sets the count; `make leakcheck` runs
10,000. The figures are printed (pytest -s shows them).
"""
import http.client
import json
import os
import re
import threading
import time
import urllib.request

import pytest

import conftest

pytestmark = [pytest.mark.skipif(conftest.TARGET != "module", reason="module daemon"),
              pytest.mark.skipif(bool(os.environ.get("XB_SANITIZER_DIR")),
                                 reason="ASan's quarantine and shadow memory hide the figures"),
              pytest.mark.slow]

SESSIONS = int(os.environ.get("XB_LEAK_SESSIONS", "2000"))
WARMUP = 1000
CONCURRENCY = 8
QUARTERS = 4                    # memory is read after each quarter of the sessions
TOLERANCE = 256 * 1024          # bytes of RssAnon between the halfway mark and the end
TIME_LIMIT = 600 + SESSIONS * 0.1

NS = "http://jabber.org/protocol/httpbind"


def daemon_pid(apache):
    with open(apache.error_log_path) as f:
        pids = re.findall(r"XB05016: bridge daemon started, pid (\d+)", f.read())
    assert pids, "no daemon start logged"
    return int(pids[-1])


def memory(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "VmHWM", "VmSize"):
                out[k] = int(v.split()[0]) * 1024
    out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    out["unix"] = unix_sockets(pid)
    return out


def unix_sockets(pid):
    """How many of the daemon's descriptors are Unix sockets (its listener and the handlers'
    connections, which Apache's children keep open for reuse)."""
    with open("/proc/net/unix") as f:
        inodes = {line.split()[6] for line in f.readlines()[1:] if len(line.split()) > 6}
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            n += 1
    return n


def status(apache):
    with urllib.request.urlopen(apache.url("/xmpp-status?json"), timeout=10) as r:
        return json.loads(r.read().decode())


def wait_idle(apache, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        st = status(apache)
        if st["sessions"] == 0 or time.monotonic() > deadline:
            return st
        time.sleep(0.2)


def run_sessions(apache, domain, count, deadline):
    """`count` sessions created and terminated by CONCURRENCY clients; returns the number of
    creations that did not give a session (must be 0)."""
    lock = threading.Lock()
    state = {"left": count, "failed": [], "rid": 1000}

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", apache.port, timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if state["left"] <= 0:
                        return
                    state["left"] -= 1
                    state["rid"] += 10
                    rid = state["rid"]
                body = ("<body rid='%d' to='%s' xml:lang='en' wait='10' hold='1' ver='1.6' "
                        "content='text/xml; charset=utf-8' xmpp:version='1.0' xmlns='%s' "
                        "xmlns:xmpp='urn:xmpp:xbosh'/>" % (rid, domain, NS))
                conn.request("POST", "/http-bind", body,
                             {"Content-Type": "text/xml; charset=utf-8"})
                resp = conn.getresponse()
                data = resp.read().decode(errors="replace")
                m = re.search(r"\ssid=['\"]([0-9a-f]+)['\"]", data)
                if resp.status != 200 or not m or "type='terminate'" in data \
                        or 'type="terminate"' in data:
                    with lock:
                        state["failed"].append((resp.status, data[:200]))
                    continue
                body = ("<body rid='%d' sid='%s' type='terminate' xmlns='%s'>"
                        "<presence type='unavailable' xmlns='jabber:client'/></body>"
                        % (rid + 1, m.group(1), NS))
                conn.request("POST", "/http-bind", body,
                             {"Content-Type": "text/xml; charset=utf-8"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    with lock:
                        state["failed"].append((resp.status, "terminate"))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic()))
    assert state["left"] <= 0, "%d sessions not run within the time limit" % state["left"]
    return state["failed"]


@pytest.fixture(scope="module")
def mpm():
    """One MPM is enough: the daemon is the same process under all three."""
    return "event"


def test_731_memory_back_to_baseline(apache, prosody):
    pid = daemon_pid(apache)
    deadline = time.monotonic() + TIME_LIMIT
    half = SESSIONS // 2
    figures = []

    def mark(name, n, t0):
        st = wait_idle(apache)
        m = memory(pid)
        figures.append((name, n, m, time.monotonic() - t0, st))
        return m

    t0 = time.monotonic()
    mark("start", 0, t0)
    assert not run_sessions(apache, prosody.domain, WARMUP, deadline)
    base = mark("after warm-up", WARMUP, t0)
    done = 0
    for q in range(1, QUARTERS + 1):
        n = SESSIONS * q // QUARTERS - done
        failed = run_sessions(apache, prosody.domain, n, deadline)
        assert not failed, failed[:5]
        done += n
        m = mark("%d/%d" % (q, QUARTERS), WARMUP + done, t0)
        if q == QUARTERS // 2:
            mid = m
    end = m

    print("\ndaemon %d memory, %d sessions after %d warm-up, %d concurrent:"
          % (pid, SESSIONS, WARMUP, CONCURRENCY))
    for name, n, m, t, st in figures:
        print("  %-14s %6d sessions %7.1f s  VmRSS %7d kB  RssAnon %7d kB  VmHWM %7d kB  "
              "fds %3d  live %d  created %d  ended %d"
              % (name, n, t, m["VmRSS"] // 1024, m["RssAnon"] // 1024, m["VmHWM"] // 1024,
                 m["fds"], st["sessions"], st["sessions_created"], st["sessions_ended"]))
    growth = end["RssAnon"] - mid["RssAnon"]
    print("  RssAnon end - halfway: %+d bytes over %d sessions = %+.1f bytes/session "
          "(bound %d bytes = %.1f bytes/session); end - after warm-up: %+d bytes"
          % (growth, SESSIONS - half, growth / float(SESSIONS - half), TOLERANCE,
             TOLERANCE / float(SESSIONS - half), end["RssAnon"] - base["RssAnon"]))
    assert figures[-1][4]["sessions_created"] - figures[0][4]["sessions_created"] \
        == WARMUP + SESSIONS
    assert growth <= TOLERANCE
    # No socket left behind. Handler connections (Unix sockets) are kept open by Apache's
    # children for reuse, at most one per request that was in flight at once (2 per client);
    # every other descriptor (XMPP sockets, files) is back to its count after the warm-up.
    others = (base["fds"] - base["unix"], end["fds"] - end["unix"])
    assert others[1] <= others[0] + 2, ("descriptors other than Unix sockets", others)
    assert end["unix"] <= base["unix"] + 2 * CONCURRENCY + 2, (base["unix"], end["unix"])
