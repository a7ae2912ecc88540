"""XEP-0206 §7 end to end (module only): when a BOSH session ends while stanzas from the server
still wait for its client, the sender of each gets an error (message -> recipient-unavailable,
iq get/set -> service-unavailable) through the real Prosody; presence is dropped. The corners
(answers built for requests that went away, gateway-ended sessions) are unit tests in
test/unit/test_bosh_session.c (test_bounce_*)."""
import tempfile
import time
import uuid

import pytest

import conftest
from xbtest.bosh import NS_CLIENT, NS_STANZAS, BoshClient, local_tag

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module behaviour")

INACTIVITY = 5   # the smallest XmppBridgeInactivity configtest allows


@pytest.fixture(scope="module")
def short_apache(prosody, ca, workdir):
    a = conftest.make_apache(tempfile.mkdtemp(prefix="bounce-", dir=workdir), "event", prosody,
                             ca, extra="XmppBridgeInactivity %d\n" % INACTIVITY)
    a.start()
    yield a
    conftest.stop_checked(a)


@pytest.fixture
def clients():
    made = []
    yield made
    for c in made:
        c.end_quietly()


def _login(apache, prosody, users, user, made, wait=4):
    c = BoshClient(apache.url("/http-bind"), prosody.domain, wait=wait, client_tag="bounce-" + user)
    made.append(c)
    c.create()
    c.login(user, users[user])
    return c


def _error_condition(el):
    err = el.find("{%s}error" % NS_CLIENT)
    if err is None:
        return None
    kids = [local_tag(k) for k in err if k.tag.startswith("{%s}" % NS_STANZAS)]
    return kids[0] if kids else None


def test_216_undelivered_stanzas_bounced_at_inactivity(short_apache, prosody, users, clients):
    alice = _login(short_apache, prosody, users, "alice", clients)
    alice.presence()                 # answered at once or at its wait: nothing stays in flight
    bob = _login(short_apache, prosody, users, "bob", clients)
    bob.start_polling()              # bob stays alive; alice sends nothing more from here
    mid = "bounce-m-" + uuid.uuid4().hex[:8]
    qid = "bounce-q-" + uuid.uuid4().hex[:8]
    bob.send("<presence xmlns='%s' to='%s' type='probe'/>" % (NS_CLIENT, alice.jid))
    bob.send("<message xmlns='%s' to='%s' type='chat' id='%s'><body>are you there?</body>"
             "</message>" % (NS_CLIENT, alice.jid, mid))
    bob.send("<iq xmlns='%s' to='%s' type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
             % (NS_CLIENT, alice.jid, qid))
    t0 = time.monotonic()
    # alice's session ends INACTIVITY seconds after her last request was answered; the two
    # stanzas waiting for her come back to bob as errors.
    m = bob.wait_for(lambda e: local_tag(e) == "message" and e.get("id") == mid,
                     timeout=INACTIVITY + 20)
    assert m.get("type") == "error", m.attrib
    assert m.get("from") == alice.jid
    assert _error_condition(m) == "recipient-unavailable"
    q = bob.wait_for(lambda e: local_tag(e) == "iq" and e.get("id") == qid, timeout=10)
    assert q.get("type") == "error", q.attrib
    assert q.get("from") == alice.jid
    assert _error_condition(q) == "service-unavailable"
    assert time.monotonic() - t0 < INACTIVITY + 20
    # alice's session is over: her next request finds no session.
    r = alice.request("", check=False)
    assert r.is_terminate and r.condition == "item-not-found", r.raw
    alice.terminated = "item-not-found"
    assert any("XB02200" in l for l in short_apache.error_log_lines())
