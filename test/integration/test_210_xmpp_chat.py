"""Two BOSH clients chat; a held long-poll is answered as soon as a message arrives."""
import time

import pytest

from xbtest.bosh import message_body

# MPM-independent: runs under XB_PROTOCOL_MPMS (event + prefork) only, see conftest.py
pytestmark = pytest.mark.protocol


def _response_carrying(client, el):
    for _rid, _req, resp in list(client.log):
        if resp.body is not None and any(x is el for x in list(resp.body)):
            return resp
    return None


class TestChat:

    def test_221_message_alice_to_bob(self, target, login):
        b = login("bob", poll=True, wait=20)
        a = login("alice", poll=True, wait=20)
        b.presence()
        a.presence()
        time.sleep(1.5)          # bob's poll is now held (nothing else to deliver)
        t_send = time.monotonic()
        a.send_message(b.jid, "hello bob, it's alice")
        m = b.wait_for_message(a.jid, timeout=10)
        t_recv = time.monotonic()
        assert message_body(m) == "hello bob, it's alice"
        assert m.get("from") == a.jid
        # delivered on the held request, long before `wait`
        assert t_recv - t_send < 2.0, t_recv - t_send
        resp = _response_carrying(b, m)
        assert resp is not None
        assert resp.elapsed >= 0.8, resp          # it had been held before the message came
        assert resp.elapsed < b.wait - 5, resp

    def test_222_conversation(self, target, login):
        b = login("bob", poll=True, wait=20)
        a = login("alice", poll=True, wait=20)
        b.presence()
        a.presence()
        for i in range(5):
            a.send_message(b.jid, "ping %d" % i)
            m = b.wait_for_message(a.jid, timeout=10)
            assert message_body(m) == "ping %d" % i
            b.send_message(a.jid, "pong %d" % i)
            m = a.wait_for_message(b.jid, timeout=10)
            assert message_body(m) == "pong %d" % i

    def test_223_unicode_and_escaping(self, target, login):
        b = login("bob", poll=True)
        a = login("alice", poll=True)
        b.presence()
        text = "<b>&amp; ünïcødé ✓ 💬 ]]> '\"</b>"
        a.send_message(b.jid, text)
        m = b.wait_for_message(a.jid, timeout=10)
        assert message_body(m) == text

    def test_224_three_parties(self, target, login):
        a = login("alice", poll=True)
        b = login("bob", poll=True)
        c = login("carol", poll=True)
        for x in (a, b, c):
            x.presence()
        a.send_message(c.jid, "a->c")
        b.send_message(c.jid, "b->c")
        c.send_message(a.jid, "c->a")
        assert message_body(c.wait_for_message(a.jid, 10)) == "a->c"
        assert message_body(c.wait_for_message(b.jid, 10)) == "b->c"
        assert message_body(a.wait_for_message(c.jid, 10)) == "c->a"

    def test_225_several_stanzas_in_one_body(self, target, login):
        b = login("bob", poll=True)
        a = login("alice", poll=True)
        b.presence()
        payload = "".join("<message xmlns='jabber:client' to='%s' type='chat' id='multi%d'>"
                          "<body>multi %d</body></message>" % (b.jid, i, i) for i in range(3))
        a.send(payload)
        for i in range(3):
            assert message_body(b.wait_for_message(a.jid, 10)) == "multi %d" % i
