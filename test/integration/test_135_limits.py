"""Limits and terminal conditions: what a client gets at each limit, the log tag the admin sees
(asserted from Apache's error log), and the status counters. Real Apache and Prosody."""
import http.client
import tempfile
import time

import pytest

import conftest
from xbtest import stack
from xbtest.apache import Apache
from xbtest.bosh import BoshClient, message_body, message_stanza

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module limits")

BODY = "<body xmlns='http://jabber.org/protocol/httpbind' "


class AddressedClient(BoshClient):
    """A BoshClient whose connections leave from `source` (any 127/8 address is loopback, so
    Apache on 127.0.0.1 sees another client address without any proxy in between)."""

    def __init__(self, *a, source="127.0.0.1", **kw):
        super().__init__(*a, **kw)
        self.source = source

    def _new_conn(self, timeout):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout,
                                          source_address=(self.source, 0))


def _apache(workdir, prosody, ca, extra, name):
    return Apache(tempfile.mkdtemp(dir=workdir, prefix=name + "-"), mpm="event",
                  module_path=conftest.module_snapshot(),
                  extra_conf=stack.bridge_conf(prosody, ca, conftest.MAX_WAIT, extra))


def log_text(a, since=0):
    return "\n".join(a.error_log_lines(since))


@pytest.fixture(scope="module")
def limited(prosody, ca, workdir):
    a = _apache(workdir, prosody, ca, "XmppBridgeMaxSessionsPerAddress 3\n"
                "XmppBridgeMaxSessions 5\n", "limits")
    a.start()
    yield a
    conftest.stop_checked(a)


@pytest.fixture
def clients():
    made = []

    def make(a, domain, source="127.0.0.1", **kw):
        c = AddressedClient(a.url("/http-bind"), domain, wait=5, source=source, **kw)
        made.append(c)
        return c
    yield made, make
    for c in made:
        c.end_quietly()


@pytest.mark.xb_log_expected("XB04130", "XB04010")
def test_136_sessions_per_address_and_in_all(limited, prosody, clients):
    made, make = clients
    mark = limited.log_mark()
    before = limited.status()
    first = [make(limited, prosody.domain) for _ in range(3)]
    for c in first:
        r = c.create()
        assert r.status == 200 and r.get("sid"), r
    # the 4th from the same address: policy-violation, 403 for a legacy client
    r = make(limited, prosody.domain).create()
    assert r.status == 200 and r.type == "terminate" and r.condition == "policy-violation", r
    r = make(limited, prosody.domain).raw(
        BODY + "rid='1001' to='%s' wait='5' hold='1'/>" % prosody.domain)
    assert r.status == 403, r
    # another address is not affected
    other = make(limited, prosody.domain, source="127.0.0.2")
    r = other.create()
    assert r.status == 200 and r.get("sid"), r
    # one of the three ends: the address may have one more
    first[0].terminate()
    r = make(limited, prosody.domain).create()
    assert r.status == 200 and r.get("sid"), r
    text = log_text(limited, mark)
    assert text.count("XB04130") == 2 and "from 127.0.0.1 refused" in text, text
    assert "XmppBridgeMaxSessionsPerAddress" in text
    after = limited.status()
    assert int(after["refused_per_address"]) - int(before["refused_per_address"]) == 2
    # XmppBridgeMaxSessions 5: four live now (three from 127.0.0.1, one from 127.0.0.2)
    live = int(after["sessions"])
    assert live == 4, after
    r = make(limited, prosody.domain, source="127.0.0.3").create()
    assert r.status == 200 and r.get("sid"), r
    r = make(limited, prosody.domain, source="127.0.0.4").create()
    assert r.status == 200 and r.condition == "policy-violation", r
    text = log_text(limited, mark)
    assert "XB04010" in text and "XmppBridgeMaxSessions 5" in text
    assert int(limited.status()["refused_table_full"]) - int(before["refused_table_full"]) == 1


def test_137_nesting_depth(limited, prosody, clients):
    made, make = clients
    mark = limited.log_mark()
    deep = "<a xmlns='jabber:client'>" * 70 + "</a>" * 70
    r = make(limited, prosody.domain).raw(
        BODY + "rid='1001' to='%s' wait='5' hold='1' ver='1.6'>%s</body>" % (prosody.domain, deep))
    assert r.status == 200 and r.type == "terminate" and r.condition == "bad-request", r
    text = log_text(limited, mark)
    assert "XB05040" in text and "deep" in text.lower(), text


@pytest.fixture(scope="module")
def small(prosody, ca, workdir):
    a = _apache(workdir, prosody, ca, "XmppBridgeMaxStanzaSize 4096\n"
                "XmppBridgeMaxQueuedBytes 4096\n", "small")
    a.start()
    yield a
    conftest.stop_checked(a)


def _login(a, prosody, users, user):
    c = BoshClient(a.url("/http-bind"), prosody.domain, wait=5)
    c.create()
    c.login(user, users[user])
    c.presence()
    return c


def test_138_queued_bytes_pause_reading_and_lose_nothing(small, prosody, users):
    alice = _login(small, prosody, users, "alice")
    bob = _login(small, prosody, users, "bob")
    try:
        mark = small.log_mark()
        texts = ["%02d %s" % (i, "q" * 1500) for i in range(10)]     # 15 kB > 4096 queued
        # in one request: bob's own requests are held for his `wait` (5 s) each otherwise
        bob.send("".join(message_stanza(alice.jid, t) for t in texts))
        time.sleep(2)                      # alice sends nothing meanwhile: the queue fills
        got = [message_body(alice.wait_for_message(bob.jid, 15)) for _ in texts]
        assert got == texts
        assert alice.terminated is None
        assert "XB04132" in log_text(small, mark)
    finally:
        for c in (alice, bob):
            c.terminate()
            c.close()


@pytest.mark.xb_log_expected("XB04004")
def test_139_stanza_over_the_limit_ends_the_session(small, prosody, users):
    alice = _login(small, prosody, users, "alice")
    bob = _login(small, prosody, users, "bob")
    try:
        mark = small.log_mark()
        bob.send_message(alice.jid, "x" * 6000)
        with pytest.raises(Exception):
            alice.wait_for_message(bob.jid, 10)
        assert alice.terminated == "remote-connection-failed", alice.terminated
        text = log_text(small, mark)
        assert "XB04004" in text, text
    finally:
        bob.terminate()
        bob.close()
        alice.close()


@pytest.mark.xb_log_expected("XB04008")
def test_140_host_gone_after_graceful(prosody, ca, workdir, users):
    a = _apache(workdir, prosody, ca, "", "hostgone")
    a.start()
    try:
        alice = BoshClient(a.url("/http-bind"), prosody.domain, wait=20)
        alice.create()
        alice.login("alice", users["alice"])
        alice.start_polling()
        time.sleep(1)                                   # a request is held
        mark = a.log_mark()
        a.extra_conf = a.extra_conf.replace(
            "XmppBridgeDomain %s " % prosody.domain, "XmppBridgeDomain other.test 127.0.0.1:9 "
            "plain\n# was: XmppBridgeDomain %s " % prosody.domain)
        assert "XmppBridgeDomain other.test" in a.extra_conf
        a.write_config()
        t0 = time.monotonic()
        a.graceful()
        deadline = time.monotonic() + 15
        while alice.terminated is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alice.terminated == "host-gone", alice.terminated
        assert time.monotonic() - t0 < 10              # the held request, not its wait
        alice.stop_polling(timeout=5)
        alice.close()
        text = log_text(a, mark)
        assert "XB04131" in text and prosody.domain in text
        assert int(a.status()["host_gone"]) == 1
        # and new sessions to it are refused as unknown now
        c = BoshClient(a.url("/http-bind"), prosody.domain, wait=5)
        r = c.create()
        assert r.condition == "host-unknown", r
        c.close()
        a.assert_no_unexpected_log(expected_tags=("XB04008",))
    finally:
        a.stop()
