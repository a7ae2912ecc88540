"""BOSH session management (XEP-0124 §7, §8, §13, §14, §17; XEP-0206 §4)."""
import re
import threading
import time

import pytest

from xbtest.bosh import NS_SASL, NS_STREAM, NS_BOSH, BoshClient

# MPM-independent: runs under XB_PROTOCOL_MPMS (event + prefork) only, see conftest.py
pytestmark = pytest.mark.protocol


def _ver(v):
    return tuple(int(x) for x in v.split("."))


class TestCreation:

    def test_101_creation_attributes(self, target, bosh):
        c = bosh(wait=20, hold=1)
        r = c.create()
        assert r.status == 200
        assert r.headers.get("content-type", "").replace(" ", "").lower() \
            == "text/xml;charset=utf-8"
        assert r.is_body and r.type is None, r.raw
        # sid: unpredictable
        sid = r.get("sid")
        assert sid
        if target.is_prosody:
            assert re.fullmatch(r"[0-9a-f]{32}", sid.replace("-", "")), sid   # a UUID
        else:
            assert re.fullmatch(r"[0-9a-fA-F]{32,}", sid), sid
        # wait granted as asked (below the cap), hold, requests = hold + 1
        assert int(r.get("wait")) == 20
        hold = int(r.get("hold", "1"))
        assert hold == 1
        assert int(r.get("requests")) == hold + 1
        # ver = min(client, server); the client said 1.6
        assert r.get("ver") is not None
        assert _ver(r.get("ver")) == (1, 6)
        assert int(r.get("inactivity")) > 0
        assert int(r.get("polling")) >= 0
        assert int(r.get("inactivity")) > int(r.get("polling"))
        if r.get("from") is not None:
            assert r.get("from") == target.domain
        assert r.get("xmpp:version") == "1.0"
        if target.is_module:
            # XEP-0206 §4: restart support MUST be advertised (Prosody does not)
            assert r.get("xmpp:restartlogic") == "true", r.raw
            assert int(r.get("inactivity")) == 60 and int(r.get("polling")) == 2
        # stream features with the SASL mechanisms in the first response (XEP-0206 §4)
        f = r.features()
        assert f is not None, r.raw
        mechs = [m.text for m in f.findall("{%s}mechanisms/{%s}mechanism" % (NS_SASL, NS_SASL))]
        assert "SCRAM-SHA-1" in mechs and "PLAIN" in mechs, mechs
        if target.is_module:
            # the CM ends TLS: no STARTTLS inside BOSH, no channel binding the browser can't do
            assert f.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None, r.raw
            assert not [m for m in mechs if m.endswith("-PLUS")], mechs

    def test_102_sids_unique(self, target, bosh):
        sids = set()
        for _ in range(5):
            c = bosh(wait=5)
            sids.add(c.create().get("sid"))
        assert len(sids) == 5

    def test_103_wait_capped(self, target, bosh):
        c = bosh(wait=3600)
        r = c.create()
        assert r.status == 200 and r.type is None, r.raw
        assert int(r.get("wait")) == target.max_wait

    def test_104_client_ver_1_11(self, target, bosh):
        c = bosh(wait=5, ver="1.11")
        r = c.create()
        assert r.type is None, r.raw
        assert _ver(r.get("ver")) <= (1, 11)
        assert _ver(r.get("ver")) >= (1, 6)

    def test_105_unknown_sid(self, target, bosh):
        c = bosh(wait=5)
        r = c.request("", rid=123456789, sid="0123456789abcdef0123456789abcdef")
        assert r.status == 200
        assert r.type == "terminate" and r.condition == "item-not-found", r.raw

    def test_106_unknown_domain(self, target, bosh):
        c = BoshClient(target.bosh_url, "not-configured.test", wait=5)
        try:
            r = c.create(check=False)
        finally:
            c.close()
        assert r.status == 200, r.raw
        assert r.type == "terminate", r.raw
        if target.is_prosody:
            assert r.condition == "improper-addressing"   # what Prosody says
        else:
            assert r.condition == "host-unknown", r.raw
        assert r.get("sid") is None

    def test_107_creation_without_to(self, target, bosh):
        c = bosh(wait=5)
        r = c.request("", sid=False, attrs={"wait": 5, "hold": 1, "ver": "1.6",
                                            "xml:lang": "en", "xmpp:version": "1.0"},
                      check=False, slot=False)
        assert r.status == 200 and r.type == "terminate", r.raw
        assert r.condition in ("improper-addressing", "host-unknown", "bad-request"), r.raw


class TestWait:

    def test_111_empty_answer_at_wait(self, target, login):
        c = login("alice", wait=2)
        assert c.wait == 2
        # drain whatever arrived after login (nothing expected before presence)
        r = c.request("")
        if r.children:
            r = c.request("")
        assert r.elapsed >= 1.7, r
        assert r.elapsed < 4.0, r
        assert r.type is None and r.children == [], r.raw

    def test_112_creation_wait_2_poll(self, target, bosh):
        # an unauthenticated session answers an empty request at `wait` too
        c = bosh(wait=2)
        c.create()
        r = c.request("")
        assert r.type is None and r.children == [], r.raw
        assert 1.7 <= r.elapsed < 4.0, r


class TestTerminate:

    def test_121_client_terminate(self, target, login):
        c = login("carol")
        r = c.terminate()
        assert r.status == 200 and r.type == "terminate", r.raw
        # the session is gone
        r2 = c.request("", check=False, process=False)
        assert r2.status == 200, r2.raw
        assert r2.type == "terminate" and r2.condition == "item-not-found", r2.raw

    def test_122_terminate_answers_held_request(self, target, login):
        c = login("carol", wait=20)
        held = {}

        def hold():
            held["r"] = c.request("", process=False)
        t = threading.Thread(target=hold, daemon=True)
        t.start()
        time.sleep(0.7)
        t0 = time.monotonic()
        r = c.terminate()
        t.join(10)
        assert not t.is_alive()
        assert r.type == "terminate", r.raw
        assert held["r"].status == 200
        assert time.monotonic() - t0 < 5.0


class TestRid:

    def test_131_resent_rid_identical(self, target, login):
        c = login("alice")
        ping = "<iq xmlns='jabber:client' type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
        r1 = c.request(ping % ("p1", target.domain))
        assert any(e.get("id") == "p1" for e in r1.children), r1.raw
        rid1 = r1.rid
        again = c.request(ping % ("p1", target.domain), rid=rid1)
        assert again.raw == r1.raw
        # one more, then the older rid again (still within the window)
        r2 = c.request(ping % ("p2", target.domain))
        assert any(e.get("id") == "p2" for e in r2.children), r2.raw
        again = c.request(ping % ("p1", target.domain), rid=rid1)
        assert again.raw == r1.raw
        again2 = c.request(ping % ("p2", target.domain), rid=r2.rid)
        assert again2.raw == r2.raw
        # the session still works with the next rid
        r3 = c.request(ping % ("p3", target.domain))
        assert any(e.get("id") == "p3" for e in r3.children), r3.raw

    def test_133_reordered_rids(self, target, login):
        # XEP-0124 §14.2: rid N+2 arrives before N+1 (both within the window): the CM
        # processes the payloads in rid order and every payload is answered
        c = login("alice", wait=4)
        ping = "<iq xmlns='jabber:client' type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
        base = c.rid
        out = {}

        def send(rid, iq_id):
            out[rid] = c.request(ping % iq_id, rid=rid, slot=False)
        t = threading.Thread(target=send, args=(base + 2, "second"), daemon=True)
        t.start()
        time.sleep(0.5)
        send(base + 1, "first")
        t.join(c.wait + 5)
        assert not t.is_alive()
        c.rid = base + 2
        assert out[base + 1].status == 200 and out[base + 2].status == 200
        got = c.wait_for(lambda e: e.get("id") == "first", timeout=5)
        assert got.get("type") == "result"
        got = c.wait_for(lambda e: e.get("id") == "second", timeout=5)
        assert got.get("type") == "result"
        ids = [e.get("id") for e in c.received if e.get("id") in ("first", "second")]
        assert ids == ["first", "second"], ids

    def test_132_rid_far_out_of_window(self, target, login):
        c = login("alice")
        r = c.request("", rid=c.rid + 1000, process=False, check=False)
        assert r.status == 200
        assert r.type == "terminate" and r.condition == "item-not-found", r.raw
        if target.is_module:
            # XEP-0124 §14.2: the session MUST be terminated (Prosody keeps it)
            r = c.request("", process=False, check=False)
            assert r.type == "terminate" and r.condition == "item-not-found", r.raw
            c.terminated = r.condition
