"""XEP-0124 §16 multiple streams end to end (module only), against the real Prosody: one BOSH
session carries alice's stream (made at creation) and bob's (added), each authenticated with
SASL over its own stream (bodies naming it), restarted and bound on its own; they chat through
Prosody; a body without `stream` goes to both; closing one stream (terminate + stream) leaves
the other working; a body naming a stream the session never had ends it with item-not-found.
With XmppBridgeMaxStreams 1 (the default) nothing advertises the feature. The state machine's
corners are unit tests (test/unit/test_bosh_session.c, test_*stream*)."""
import base64
import tempfile
import time
import uuid

import pytest

import conftest
from xbtest.bystander import daemon_pid
from xbtest.fake_xmpp import FakeXmpp
from xbtest.bosh import (NS_BIND, NS_CLIENT, NS_SASL, NS_SESSION, NS_STREAM, BoshClient,
                         local_tag, message_body, ns_of)

# protocol: MPM-independent, runs under XB_PROTOCOL_MPMS (event + prefork) only (conftest.py)
pytestmark = [pytest.mark.skipif(conftest.TARGET != "module", reason="module behaviour"),
              pytest.mark.protocol]


@pytest.fixture(scope="module")
def multi_apache(prosody, ca, workdir):
    a = conftest.make_apache(tempfile.mkdtemp(prefix="multistream-", dir=workdir), "event",
                             prosody, ca, extra="XmppBridgeMaxStreams 3\n")
    a.start()
    yield a
    conftest.stop_checked(a)


class Multi:
    """A BOSH session driven by hand, stream by stream: what each response carries is filed
    under its `stream` attribute."""

    def __init__(self, url, domain):
        self.c = BoshClient(url, domain, wait=2, hold=1, client_tag="multistream")
        self.domain = domain
        self.inbox = {}

    def file(self, r):
        if r.body is not None:
            kids = list(r.body)
            name = r.get("stream")
            if kids:
                assert name, "a non-empty answer without 'stream': %r" % r.raw
            self.inbox.setdefault(name, []).extend(kids)
        return r

    def req(self, payload="", stream=None, **kw):
        if stream:
            kw["stream"] = stream
        return self.file(self.c.request(payload, process=False, **kw))

    def wait_for(self, stream, pred, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            box = self.inbox.get(stream, [])
            for i, el in enumerate(box):
                if pred(el):
                    del box[i]
                    return el
            assert time.monotonic() < deadline, "nothing matching on stream %s: %r" % (
                stream, {k: [local_tag(e) for e in v] for k, v in self.inbox.items()})
            r = self.req("")
            assert not (r.is_terminate and not r.get("stream")), r.raw

    def login(self, stream, user, password):
        """SASL PLAIN, restart and bind on one stream; its full JID."""
        self.wait_for(stream, lambda e: local_tag(e) == "features")
        msg = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        self.req("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, msg), stream)
        ok = self.wait_for(stream, lambda e: ns_of(e) == NS_SASL)
        assert local_tag(ok) == "success", ok
        self.req("", stream, to=self.domain, xml_lang="en", xmpp_restart="true")
        feats = self.wait_for(stream, lambda e: e.tag == "{%s}features" % NS_STREAM)
        assert feats.find("{%s}bind" % NS_BIND) is not None
        jid = self.iq(stream, "set", "<bind xmlns='%s'><resource>ms-%s</resource></bind>"
                      % (NS_BIND, uuid.uuid4().hex[:6])).find(
                          "{%s}bind/{%s}jid" % (NS_BIND, NS_BIND)).text
        sess = feats.find("{%s}session" % NS_SESSION)
        if sess is not None and sess.find("{%s}optional" % NS_SESSION) is None:
            self.iq(stream, "set", "<session xmlns='%s'/>" % NS_SESSION)
        return jid

    def iq(self, stream, type_, payload):
        iq_id = "ms" + uuid.uuid4().hex[:10]
        self.req("<iq xmlns='%s' type='%s' id='%s'>%s</iq>" % (NS_CLIENT, type_, iq_id, payload),
                 stream)
        r = self.wait_for(stream, lambda e: local_tag(e) == "iq" and e.get("id") == iq_id)
        assert r.get("type") == "result", r.attrib
        return r

    def message(self, stream, to, text):
        self.req("<message xmlns='%s' to='%s' type='chat'><body>%s</body></message>"
                 % (NS_CLIENT, to, text), stream)

    def got_message(self, stream, text):
        return self.wait_for(stream, lambda e: local_tag(e) == "message"
                             and message_body(e) == text)


def test_218_two_accounts_in_one_session(multi_apache, prosody, users):
    m = Multi(multi_apache.url("/http-bind"), prosody.domain)
    try:
        r = m.file(m.c.create())
        a = r.get("stream")
        assert a and len(a) == 32, r.raw                       # §16.2: the feature is on
        m.c.sid = r.get("sid")
        alice = m.login(a, "alice", users["alice"])

        # §16.3: add a stream; the answer names it (and where it goes), never the session
        r = m.req("", to=prosody.domain, xml_lang="en")
        b = r.get("stream")
        assert b and b != a, r.raw
        assert r.get("from") == prosody.domain and r.get("sid") is None, r.raw
        bob = m.login(b, "bob", users["bob"])
        assert alice.startswith("alice@") and bob.startswith("bob@")

        # §16.4: no stream attribute: both streams send their initial presence; Prosody
        # reflects each to its own sender
        m.req("<presence xmlns='%s'/>" % NS_CLIENT)
        m.wait_for(a, lambda e: local_tag(e) == "presence" and e.get("from") == alice)
        m.wait_for(b, lambda e: local_tag(e) == "presence" and e.get("from") == bob)

        # messages between the two accounts, each arriving on its own stream
        m.message(a, bob, "hi bob, from the same session")
        assert m.got_message(b, "hi bob, from the same session").get("from") == alice
        m.message(b, alice, "hi alice")
        assert m.got_message(a, "hi alice").get("from") == bob

        # §16.5: close bob's stream only; alice's goes on
        r = m.req("<presence xmlns='%s' type='unavailable'/>" % NS_CLIENT, b,
                  type="terminate")
        assert not (r.is_terminate and r.get("stream") is None), r.raw
        m.iq(a, "get", "<query xmlns='jabber:iq:roster'/>")
        m.message(a, bob, "bob is gone")                       # nobody there now
        m.message(a, alice, "note to self")
        assert m.got_message(a, "note to self").get("from") == alice

        # a stream this session never had
        r = m.req("<message xmlns='%s' to='%s'><body>x</body></message>" % (NS_CLIENT, alice),
                  "0123456789abcdef0123456789abcdef", check=False)
        assert r.is_terminate and r.condition == "item-not-found", r.raw
        m.c.terminated = "item-not-found"
    finally:
        m.c.close()


STALL_CONNECT_TIMEOUT = 2


@pytest.fixture(scope="module")
def stall_apache(prosody, ca, workdir):
    """Multi-stream on, and a second domain whose server accepts TCP and never writes."""
    fake = FakeXmpp("stall", "stall.test").start()
    a = conftest.make_apache(
        tempfile.mkdtemp(prefix="multistream-stall-", dir=workdir), "event", prosody, ca,
        extra="XmppBridgeMaxStreams 3\nXmppBridgeConnectTimeout %d\n"
              "XmppBridgeDomain stall.test 127.0.0.1:%d plain\n"
              % (STALL_CONNECT_TIMEOUT, fake.port))
    a.start()
    yield a
    try:
        conftest.stop_checked(a)
    finally:
        fake.stop()


@pytest.mark.xb_log_expected("XB04004")
def test_220_added_stream_that_never_connects(stall_apache, prosody, users):
    """An added stream whose server never answers reaches its connect deadline: that stream
    ends with remote-connection-failed, the session's first stream goes on, and the daemon
    lives (an added stream's deadline once found no owner in the daemon's timer heap)."""
    daemon = daemon_pid(stall_apache)
    m = Multi(stall_apache.url("/http-bind"), prosody.domain)
    try:
        r = m.file(m.c.create())
        a = r.get("stream")
        alice = m.login(a, "alice", users["alice"])
        t0 = time.monotonic()
        r = m.req("", to="stall.test", xml_lang="en", check=False)
        b = r.get("stream")
        assert b and b != a, r.raw
        ended = None
        while ended is None and time.monotonic() - t0 < STALL_CONNECT_TIMEOUT + 10:
            r = m.req("", check=False)
            assert not (r.is_terminate and r.get("stream") is None), r.raw   # session lives
            if r.is_terminate and r.get("stream") == b:
                ended = r
        assert ended is not None, "the stalled stream never ended"
        assert ended.condition == "remote-connection-failed", ended.raw
        m.message(a, alice, "still here")
        assert m.got_message(a, "still here").get("from") == alice
        assert daemon_pid(stall_apache) == daemon, "the bridge daemon was replaced"
    finally:
        m.c.close()


def test_219_feature_off_by_default(target, bosh):
    c = bosh(wait=2)
    r = c.create()
    assert r.get("stream") is None, r.raw
