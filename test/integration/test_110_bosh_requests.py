"""Malformed and out-of-bounds requests (XEP-0124 §5, §6, §7; the module's limits)."""
import pytest

from xbtest.bosh import BoshClient

# MPM-independent: runs under XB_PROTOCOL_MPMS (event + prefork) only, see conftest.py
pytestmark = pytest.mark.protocol

BODY = "<body xmlns='http://jabber.org/protocol/httpbind' "


class TestBadRequests:

    def test_141_hold_capped(self, target, bosh):
        c = bosh(wait=5, hold=2)
        r = c.create()
        assert r.type is None, r.raw
        assert int(r.get("hold")) == 1                 # XmppBridgeMaxHold 1 / Prosody's fixed 1
        assert int(r.get("requests")) == int(r.get("hold")) + 1

    def test_142_dtd_rejected(self, target, bosh):
        c = bosh(wait=5)
        r = c.raw("<?xml version='1.0'?><!DOCTYPE body [<!ENTITY a 'aaaa'>]>" + BODY +
                  "rid='1001' to='%s' wait='5' hold='1' ver='1.6'>&a;</body>" % target.domain)
        assert r.status == 200, r.raw
        assert r.is_body and r.type == "terminate" and r.condition == "bad-request", r.raw

    def test_143_truncated_body(self, target, bosh):
        c = bosh(wait=5)
        r = c.raw(BODY + "rid='1001' to='%s' wait='5' hold='1' ver='1.6'" % target.domain)
        assert r.status == 200, r.raw
        assert r.is_body and r.type == "terminate", r.raw
        if target.is_prosody:
            assert r.condition == "item-not-found"       # Prosody's answer
        else:
            assert r.condition == "bad-request", r.raw

    def test_144_not_a_bosh_body(self, target, bosh):
        c = bosh(wait=5)
        r = c.raw("<stream xmlns='jabber:client' rid='1001' to='%s'/>" % target.domain)
        assert r.status == 200, r.raw
        assert r.is_body and r.type == "terminate", r.raw

    def test_145_missing_rid(self, target, bosh):
        c = bosh(wait=5)
        r = c.raw(BODY + "to='%s' wait='5' hold='1' ver='1.6'/>" % target.domain)
        assert r.status == 200, r.raw
        assert r.is_body and r.type == "terminate" and r.condition == "bad-request", r.raw

    @pytest.mark.skipif(__import__("conftest").TARGET != "module", reason="module limit")
    def test_146_body_too_large(self, target, bosh):
        # XmppBridgeMaxBodySize default 65536 -> 413
        c = bosh(wait=5)
        big = (BODY + "rid='1001' to='%s' wait='5' hold='1' ver='1.6'>"
               "<message xmlns='jabber:client'><body>%s</body></message></body>"
               % (target.domain, "x" * 70000))
        r = c.raw(big)
        assert r.status == 413, r

    @pytest.mark.skipif(__import__("conftest").TARGET != "module", reason="module behaviour")
    def test_147_get_not_allowed(self, target, bosh):
        # XEP-0124 §5: POST only (Prosody answers GET with an HTML page)
        c = bosh(wait=5)
        r = c.raw(b"", method="GET")
        assert r.status == 405, r
