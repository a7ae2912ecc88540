"""Fault injection (issue 7): the XMPP server or the bridge's own processes misbehave.

Each test provokes one fault and checks (docs/hardening.md, "Faults", lists them one to one):
 - the affected client gets a clear BOSH terminate condition;
 - the error log says what happened (tag and words);
 - a bystander session (alice and bob on the real Prosody, through the same Apache) still
   chats, before and after;
 - Apache and the bridge daemon are the same processes (except where the daemon is killed).

The faults a real server will not produce on demand come from xbtest.fake_xmpp (one fake per
domain, reached with `plain` or with STARTTLS and a certificate from the test CA or another
one); a second, real Prosody is killed and restarted. One Apache (event MPM) for the file:
the failure paths are in the daemon, which is the same under every MPM.
"""
import os
import signal
import subprocess
import tempfile
import socket
import threading
import time

import pytest

import conftest
from xbtest.apache import RUN_USER
from xbtest.bosh import BoshClient, BoshError, BoshTerminated, NS_STREAM
from xbtest.bystander import Watched, daemon_pid, fds_of
from xbtest.ca import TestCA
from xbtest.fake_xmpp import FakeXmpp
from xbtest.prosody import Prosody

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module faults")

CONNECT_TIMEOUT = 3
MAX_STANZA = 65536


def _fakes(ca, other_ca):
    wrong_name = ca.issue("not-the-domain.test")          # trusted CA, wrong name
    untrusted = other_ca.issue("untrusted.test")           # right name, unknown CA
    good = ca.issue("tlsok.test")
    return {
        "stall.test": FakeXmpp("stall", "stall.test"),
        "nofeatures.test": FakeXmpp("no_features", "nofeatures.test"),
        "garbage.test": FakeXmpp("garbage", "garbage.test"),
        "big.test": FakeXmpp("open", "big.test", after_open="oversized",
                             oversize=MAX_STANZA + 1000),
        "streamerror.test": FakeXmpp("open", "streamerror.test", after_open="stream_error"),
        "midstanza.test": FakeXmpp("open", "midstanza.test", after_open="mid_stanza"),
        "wrongname.test": FakeXmpp("open", "wrongname.test", tls_cert=wrong_name),
        "untrusted.test": FakeXmpp("open", "untrusted.test", tls_cert=untrusted),
        "tlsok.test": FakeXmpp("open", "tlsok.test", tls_cert=good),
        "downgrade.test": FakeXmpp("no_starttls", "downgrade.test"),
    }


TLS_DOMAINS = ("wrongname.test", "untrusted.test", "tlsok.test", "downgrade.test")


@pytest.fixture(scope="module")
def env(workdir, ca, prosody, users):
    base = tempfile.mkdtemp(dir=workdir, prefix="faults-")
    os.chmod(base, 0o755)
    other_ca = TestCA(os.path.join(base, "other-ca"))
    fakes = _fakes(ca, other_ca)
    for f in fakes.values():
        f.start()
    restart = Prosody(os.path.join(base, "prosody-restart"), domain="restart.test",
                      users={"dave": "dave-Pw-4"}, ca=ca, bosh=False)
    restart.start()
    extra = "XmppBridgeConnectTimeout %d\nXmppBridgeMaxStanzaSize %d\n" % (CONNECT_TIMEOUT,
                                                                          MAX_STANZA)
    for name, f in fakes.items():
        extra += "XmppBridgeDomain %s 127.0.0.1:%d %s\n" % (
            name, f.port, "starttls" if name in TLS_DOMAINS else "plain")
    extra += "XmppBridgeDomain restart.test 127.0.0.1:%d starttls\n" % restart.c2s_port
    apache = conftest.make_apache(tempfile.mkdtemp(dir=base, prefix="apache-"), "event",
                                  prosody, ca, extra=extra)
    apache.start()
    w = Watched(apache, prosody.domain, users)
    w.fakes = fakes
    w.restart = restart
    w.base = base
    w.prosody = prosody
    w.ca = ca
    yield w
    w.close()
    apache.stop()
    restart.stop()
    for f in fakes.values():
        f.stop()


def client(env, domain, wait=10, **kw):
    return BoshClient(env.apache.url("/http-bind"), domain, wait=wait, **kw)


def create_expect_terminate(env, domain, within):
    """A session creation towards a faulty server: the answer is a terminate, in time."""
    c = client(env, domain)
    t0 = time.monotonic()
    r = c.create(check=False)
    took = time.monotonic() - t0
    c.close()
    assert r.status == 200 and r.is_terminate, r
    assert took < within, "answered after %.1f s" % took
    return r


def open_session(env, domain):
    """A session on a fake that completes the stream: the creation response carries the
    fake's features."""
    c = client(env, domain)
    r = c.create()
    assert not r.is_terminate, r.raw
    assert r.find("{%s}features" % NS_STREAM) is not None, r.raw
    return c


def trigger_and_wait_end(c, timeout=15):
    """Sends the stanza the fake waits for, then polls until the session ends; returns the
    terminating response."""
    c.request("<iq xmlns='jabber:client' type='get' id='trigger'>"
              "<ping xmlns='urn:xmpp:ping'/></iq>", check=False)
    deadline = time.monotonic() + timeout
    while c.terminated is None and time.monotonic() < deadline:
        c.request("", check=False)
    assert c.terminated is not None, "the session did not end"
    for _rid, _req, resp in reversed(c.log):
        if resp.is_terminate:
            return resp
    return c.last_response


# --------------------------------------------------------------------- the XMPP server
def test_7101_server_stalls_after_connect(env):
    """TCP connect works, the server never says a word: within XmppBridgeConnectTimeout."""
    env.begin()
    r = create_expect_terminate(env, "stall.test", CONNECT_TIMEOUT + 6)
    assert r.condition == "remote-connection-failed", r.raw
    env.end(expect=[("XB04018", "did not complete the stream set-up within "
                                "XmppBridgeConnectTimeout"),
                    ("XB04004", "stall.test ended: remote-connection-failed")])


def test_7102_server_sends_no_features(env):
    env.begin()
    r = create_expect_terminate(env, "nofeatures.test", CONNECT_TIMEOUT + 6)
    assert r.condition == "remote-connection-failed", r.raw
    env.end(expect=[("XB04018", "XmppBridgeConnectTimeout"),
                    ("XB04004", "nofeatures.test ended: remote-connection-failed")])


def test_7103_server_sends_garbage(env):
    env.begin()
    r = create_expect_terminate(env, "garbage.test", 5)
    assert r.condition == "remote-connection-failed", r.raw
    env.end(expect=[("XB03001", "bad stream from the server"),
                    ("XB04004", "garbage.test ended: remote-connection-failed")])


def test_7104_stanza_over_max_stanza_size(env):
    env.begin()
    c = open_session(env, "big.test")
    r = trigger_and_wait_end(c)
    assert r.condition == "remote-connection-failed", r.raw
    # nothing of the oversized stanza reached the client
    assert not any(el.tag.endswith("message") for el in c.received)
    c.close()
    env.end(expect=[("XB03001", "bad stream"),
                    ("XB04004", "big.test ended: remote-connection-failed")])


def test_7105_stream_error_is_copied(env):
    """XEP-0206 §6 (XEP-0124 §17.2): remote-stream-error with the server's <stream:error/>."""
    env.begin()
    c = open_session(env, "streamerror.test")
    r = trigger_and_wait_end(c)
    assert r.condition == "remote-stream-error", r.raw
    err = r.find("{%s}error" % NS_STREAM)
    assert err is not None, r.raw
    kids = [k.tag for k in err]
    assert "{urn:ietf:params:xml:ns:xmpp-streams}conflict" in kids, r.raw
    assert b"Replaced by new connection" in r.raw
    c.close()
    env.end(expect=[("XB04004", "streamerror.test ended: remote-stream-error"),
                    ("XB03001", "stream error from the server: conflict")])


def test_7106_close_mid_stanza(env):
    env.begin()
    c = open_session(env, "midstanza.test")
    r = trigger_and_wait_end(c)
    assert r.condition == "remote-connection-failed", r.raw
    assert not any(el.tag.endswith("message") for el in c.received)   # no half stanza
    c.close()
    env.end(expect=[("XB04004", "midstanza.test ended: remote-connection-failed")])


# --------------------------------------------------------------------- TLS
def _tls_refused(env, domain, tag, reason):
    env.begin()
    fake = env.fakes[domain]
    before = len(fake.connections)
    r = create_expect_terminate(env, domain, 8)
    assert r.condition == "remote-connection-failed", r.raw
    assert fake.wait_connections(before + 1)
    conn = fake.connections[before]
    time.sleep(0.3)
    # the handshake failed on the module's side; not one byte of XMPP went over the
    # (unverified) TLS session, nor after it in plain
    assert b"<auth" not in fake.all_received()
    assert not conn.received or b"<stream:stream" not in conn.received or not conn.tls_ok
    env.end(expect=[(tag, reason), ("XB04004", domain + " ended: remote-connection-failed")])


def test_7107_tls_wrong_certificate_name(env):
    _tls_refused(env, "wrongname.test", "XB03100", "hostname mismatch")


def test_7108_tls_untrusted_ca(env):
    _tls_refused(env, "untrusted.test", "XB03100", "unable to get local issuer certificate")


def test_7109_tls_good_certificate_control(env):
    """The control for the two rows above: the same fake with a valid certificate is reached."""
    env.begin()
    c = open_session(env, "tlsok.test")
    c.terminate(timeout=5)
    c.close()
    assert env.fakes["tlsok.test"].connections[-1].tls_ok
    env.end()


def test_7110_no_starttls_offered_is_not_downgraded(env):
    env.begin()
    fake = env.fakes["downgrade.test"]
    r = create_expect_terminate(env, "downgrade.test", 8)
    assert r.condition == "remote-connection-failed", r.raw
    time.sleep(0.3)
    assert b"<auth" not in fake.all_received()
    # nothing after the stream header: no stanza, no SASL in plain text
    for conn in fake.connections:
        assert conn.received.count(b"<") <= 3, conn.received    # <?xml, <stream:stream, close
    env.end(expect=[("XB03101", "offers no STARTTLS"),
                    ("XB04004", "downgrade.test ended: remote-connection-failed")])


# --------------------------------------------------------------------- a real server dies
def test_7111_prosody_killed_and_restarted(env):
    env.begin()
    dave = client(env, "restart.test")
    dave.create()
    dave.login("dave", "dave-Pw-4")
    dave.start_polling()
    time.sleep(1)
    os.kill(env.restart.pid, signal.SIGKILL)
    env.restart.proc.wait(10)
    with pytest.raises(BoshTerminated) as e:
        dave.wait_for(lambda el: False, timeout=15)
    assert e.value.condition == "remote-connection-failed"
    dave.close()
    # while it is down: new sessions are refused clearly and at once
    r = create_expect_terminate(env, "restart.test", 8)
    assert r.condition == "remote-connection-failed", r.raw
    env.restart.start()
    again = client(env, "restart.test")
    again.create()
    assert again.login("dave", "dave-Pw-4").startswith("dave@restart.test/")
    again.terminate(timeout=5)
    again.close()
    env.end(expect=[("XB04004", "restart.test ended: remote-connection-failed"),
                    ("XB04005", "Connection refused")])


# --------------------------------------------------------------------- the bridge itself
def test_7112_daemon_killed(env):
    """SIGKILL of the daemon: held requests get remote-connection-failed at once, the session
    is gone afterwards (item-not-found), a new daemon serves new sessions. The bystander's
    sessions lived in the killed daemon too: they end the same way and log in again."""
    env.begin()
    victim = client(env, env.domain)
    victim.create()
    victim.login("carol", env.users["carol"])
    victim.start_polling()
    time.sleep(1.5)                      # its poll is held now
    old = env.daemon
    os.kill(old, signal.SIGKILL)
    with pytest.raises(BoshTerminated) as e:
        victim.wait_for(lambda el: False, timeout=10)
    assert e.value.condition == "remote-connection-failed"
    victim.stop_polling()
    new = daemon_pid(env.apache, timeout=10)
    deadline = time.monotonic() + 10
    while new == old and time.monotonic() < deadline:
        time.sleep(0.1)
        new = daemon_pid(env.apache)
    assert new != old
    r = victim.request("", check=False, process=False)
    assert r.is_terminate and r.condition == "item-not-found", r.raw
    victim.close()
    env.login()                          # the bystander's sessions died with the daemon
    env.daemon = new
    env.end(expect=[("XB05017", "died; starting a new one"),
                    ("XB05031", "went away while this request was held")])


def test_7113_daemon_out_of_descriptors(env):
    """RLIMIT_NOFILE of the running daemon lowered (prlimit) to a few above what it holds: the
    sessions that do not fit are refused clearly, the others keep working, nothing spins, and
    everything is back once descriptors are free again."""
    env.begin()
    pid = env.daemon
    soft, hard = nofile_limits(pid)
    in_use = fds_of(pid)
    set_nofile_soft(pid, in_use + 6, hard)
    opened, answers = [], []
    try:
        for _ in range(8):
            c = client(env, env.domain, timeout=25)
            opened.append(c)
            try:
                r = c.create(check=False)
            except BoshError as e:
                answers.append(("error", repr(e)))
                continue
            answers.append((r.status, r.condition))
        refused = [a for a in answers if a[1] is not None or a[0] != 200]
        assert refused, answers
        # every refusal is a clear BOSH answer, never a hang or an HTTP error page
        for a in refused:
            assert a[0] == 200 and a[1] in ("remote-connection-failed", "internal-server-error",
                                            "policy-violation"), answers
        # the daemon does not spin on the listener it cannot accept from
        cpu0 = _cpu_ticks(pid)
        time.sleep(2)
        assert _cpu_ticks(pid) - cpu0 < 100, "the daemon spins while out of descriptors"
    finally:
        set_nofile_soft(pid, soft, hard)
        for c in opened:
            c.end_quietly()
    # descriptors are back: new sessions work
    c = client(env, env.domain)
    c.create()
    assert c.login("carol", env.users["carol"]).startswith("carol@")
    c.terminate(timeout=5)
    c.close()
    # depending on timing the daemon may also have run out while accepting (test_7114)
    env.also_expected = ("XB04160",)
    env.end(expect=[("XB04012", "Too many open files")])


def test_7114_daemon_out_of_descriptors_while_requests_are_held(env):
    """Every descriptor in use, one of them a held request: a new request cannot be accepted
    yet. The daemon must not spin on its readable listener (nor log a line per try); it pauses
    accepting, and the waiting request is served once the held one is answered."""
    env.begin()
    pid = env.daemon
    soft, hard = nofile_limits(pid)
    a = b = None
    result = {}
    env.pause()
    time.sleep(0.5)
    try:
        set_nofile_soft(pid, fds_of(pid) + 2, hard)
        a = client(env, env.domain, wait=5)
        assert not a.create().is_terminate          # leaves one descriptor: its XMPP socket
        a.start_polling()                            # takes the last one: a held request
        time.sleep(1)
        # Children reuse their idle connections, so the count above may have left room:
        # no descriptor free at all from here on.
        set_nofile_soft(pid, fds_of(pid), hard)
        b = client(env, "nowhere.test", timeout=30)

        def ask():
            t0 = time.monotonic()
            try:
                result["r"] = b.create(check=False)
            except BoshError as e:
                result["r"] = e
            result["took"] = time.monotonic() - t0
        t = threading.Thread(target=ask, daemon=True)
        t.start()
        # Apache's children keep idle connections to the daemon and may serve b through one;
        # connections of our own make sure the listener has one to accept that cannot be
        # (each closed again at once: it must not keep the descriptor b needs). One is not
        # always enough: a descriptor the daemon frees in the meantime (a child closing an
        # idle connection) lets it accept that one, so connect until it says it is out.
        for _ in range(10):
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            raw.connect(daemon_socket(env.apache))
            time.sleep(0.3)
            raw.close()
            if any("XB04160" in l for l in env.lines()):
                break
        time.sleep(0.2)
        cpu0 = _cpu_ticks(pid)
        time.sleep(2)
        spent = _cpu_ticks(pid) - cpu0
        t.join(25)
        assert spent < 50, "the daemon spun (%d ticks in 2 s) while out of descriptors" % spent
        r = result.get("r")
        assert r is not None and not isinstance(r, Exception), result
        assert r.condition == "host-unknown", r.raw     # served once a descriptor was free
        flood = [l for l in env.lines() if "XB04017" in l]
        assert len(flood) < 5, "%d accept failures logged:\n%s" % (len(flood), flood[-3:])
    finally:
        set_nofile_soft(pid, soft, hard)
        if "raw" in locals():
            raw.close()
        for c in (a, b):
            if c is not None:
                c.end_quietly()
        env.resume()
    env.end(expect=[("XB04160", "out of file descriptors"),
                    ("XB04008", "nowhere.test")])


def test_7116_daemon_closes_idle_connection_with_a_request_in_it(env):
    """Out of descriptors, the daemon closes the idle connections Apache's children keep for
    reuse (XB04160). A child may have just taken one and written a request the daemon has not
    read: the handler must send it again on a fresh connection, not answer
    remote-connection-failed (which would end the client's session)."""
    env.begin()
    pid = env.daemon
    soft, hard = nofile_limits(pid)
    c = client(env, env.domain, wait=5)
    c.create()
    c.login("carol", env.users["carol"])
    ping = "<iq xmlns='jabber:client' type='get' id='p%d'><ping xmlns='urn:xmpp:ping'/></iq>"
    # every child keeps idle connections to the daemon after these
    for i in range(12):
        c.request(ping % i)
    env.pause()
    time.sleep(0.5)
    result = {}
    raw = None
    try:
        os.kill(pid, signal.SIGSTOP)
        # the daemon's listener becomes readable first (a connection it cannot accept)...
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(daemon_socket(env.apache))
        # RLIMIT_NOFILE bounds descriptor numbers: the lowest free one is the limit
        used = {int(n) for n in os.listdir("/proc/%d/fd" % pid)}
        set_nofile_soft(pid, min(set(range(len(used) + 1)) - used), hard)

        def ask():
            try:
                result["r"] = c.request(ping % 99, check=False, timeout=20)
            except BoshError as e:
                result["r"] = e
        # ...then the request goes out on a connection taken from a child's idle list
        t = threading.Thread(target=ask, daemon=True)
        t.start()
        time.sleep(1.0)
        os.kill(pid, signal.SIGCONT)
        time.sleep(1.0)
        set_nofile_soft(pid, soft, hard)
        t.join(25)
        r = result.get("r")
        assert r is not None and not isinstance(r, Exception), result
        assert not r.is_terminate, r.raw
        assert not [l for l in env.lines() if "XB05031" in l]
        assert [l for l in env.lines() if "XB04160" in l], "the daemon did not run out"
    finally:
        os.kill(pid, signal.SIGCONT)
        set_nofile_soft(pid, soft, hard)
        if raw is not None:
            raw.close()
        c.end_quietly()
        env.resume()
    env.also_expected = ("XB04160",)
    env.end()


def daemon_socket(apache):
    socks = [n for n in os.listdir(apache.run_dir)
             if n.startswith("xmpp-bridge.") and n.endswith(".sock")]
    assert len(socks) == 1, socks
    return os.path.join(apache.run_dir, socks[0])


def nofile_limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open-files limit for %d" % pid)


def set_nofile_soft(pid, soft, hard):
    """prlimit on the daemon, run as the daemon's own user: lowering (and raising back, up to
    the hard limit) needs no CAP_SYS_RESOURCE then, which the test machine may not grant."""
    cmd = ["prlimit", "--pid", str(pid), "--nofile=%d:%d" % (soft, hard)]
    if os.getuid() == 0:
        cmd = ["setpriv", "--reuid=" + RUN_USER, "--regid=" + RUN_USER, "--clear-groups"] + cmd
    subprocess.run(cmd, check=True, timeout=10, capture_output=True)
    assert nofile_limits(pid) == (soft, hard)


def _cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_7115_session_table_full(env, workdir, prosody, ca, users):
    """XmppBridgeMaxSessions 4: its own Apache, with its own bystander (2 of the 4 slots)."""
    a = conftest.make_apache(tempfile.mkdtemp(dir=env.base, prefix="apache-full-"), "event",
                             prosody, ca, extra="XmppBridgeMaxSessions 4\n")
    a.start()
    w = None
    extra = []
    try:
        w = Watched(a, prosody.domain, users)
        w.begin()
        for _ in range(2):
            c = BoshClient(a.url("/http-bind"), prosody.domain, wait=10)
            extra.append(c)
            assert not c.create().is_terminate
        over = BoshClient(a.url("/http-bind"), prosody.domain, wait=10)
        r = over.create(check=False)
        over.close()
        assert r.status == 200 and r.condition == "policy-violation", r.raw
        legacy = BoshClient(a.url("/http-bind"), prosody.domain, wait=10, ver=None)
        r = legacy.create(check=False)
        legacy.close()
        assert r.status == 403, r                   # XEP-0124 §17.1 for a client without ver
        for c in extra:
            c.terminate(timeout=5)
        # a slot is free again: a new session works
        c = BoshClient(a.url("/http-bind"), prosody.domain, wait=10)
        c.create()
        assert c.login("carol", users["carol"]).startswith("carol@")
        c.terminate(timeout=5)
        c.close()
        w.end(expect=[("XB04010", "the session table is full (XmppBridgeMaxSessions 4)")])
    finally:
        for c in extra:
            c.close()
        if w is not None:
            w.close()
        a.stop()
