"""XMPP over BOSH: SASL, stream restart, bind, session, roster, presence (XEP-0206)."""
import base64
import xml.etree.ElementTree as ET

import pytest

from xbtest.bosh import (NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, AuthFailed, bare, local_tag)

# MPM-independent: runs under XB_PROTOCOL_MPMS (event + prefork) only, see conftest.py
pytestmark = pytest.mark.protocol


class TestLogin:

    def test_201_login_scram_sha1(self, target, login):
        c = login("alice", mechanism="SCRAM-SHA-1")   # verifies the server signature
        assert bare(c.jid) == target.jid("alice")

    def test_202_login_plain(self, target, login):
        c = login("bob", mechanism="PLAIN")
        assert bare(c.jid) == target.jid("bob")

    def test_203_bind_full_jid(self, target, login):
        c = login("carol", resource="xb-res-203")
        assert c.jid == target.jid("carol") + "/xb-res-203"

    def test_204_wrong_password(self, target, bosh):
        c = bosh(wait=5)
        c.create()
        with pytest.raises(AuthFailed):
            c.login("alice", "not-the-password", mechanism="PLAIN")
        # the session survives a failed attempt: the right password still works
        assert bare(c.login("alice", "alice-Pw-1", mechanism="PLAIN")) == target.jid("alice")

    def test_205_stream_restart(self, target, bosh, users):
        c = bosh(wait=5)
        r = c.create()
        assert r.features() is not None
        c.drain()
        msg = base64.b64encode(b"\0carol\0" + users["carol"].encode()).decode()
        r = c.request("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, msg))
        ok = c.wait_for(lambda e: local_tag(e) in ("success", "failure"), 10)
        assert local_tag(ok) == "success", ET.tostring(ok)
        # XEP-0206 §5: restart request (empty, to + xml:lang) -> new features
        r = c.request("", to=target.domain, xml_lang="en", xmpp_restart="true")
        feats = c.wait_for(lambda e: e.tag == "{%s}features" % NS_STREAM, 10)
        assert feats.find("{%s}bind" % NS_BIND) is not None, ET.tostring(feats)
        assert feats.find("{%s}mechanisms" % NS_SASL) is None, ET.tostring(feats)
        res = c.iq("set", "<bind xmlns='%s'><resource>r205</resource></bind>" % NS_BIND)
        assert res.find("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND)).text == \
            target.jid("carol") + "/r205"

    def test_206_stanza_before_auth_not_routed(self, target, bosh, login):
        # a message before SASL must never reach anyone (Prosody drops it; a CM may also end
        # the session)
        b = login("bob", poll=True)
        c = bosh(wait=2)
        c.create()
        r = c.request("<message xmlns='jabber:client' to='%s' type='chat'><body>unauth</body>"
                      "</message>" % b.jid, check=False)
        assert r.status == 200 and r.is_body, r.raw
        with pytest.raises(TimeoutError):
            b.wait_for(lambda e: local_tag(e) == "message", timeout=2.5)


class TestRosterPresence:

    def test_211_roster(self, target, login):
        c = login("alice")
        c.roster_add(target.jid("carol"), name="Carol")
        items = c.roster()
        assert target.jid("carol") in [i["jid"] for i in items], items
        assert [i for i in items if i["jid"] == target.jid("carol")][0]["name"] == "Carol"

    def test_212_presence_directed(self, target, login):
        b = login("bob", poll=True)
        a = login("alice", poll=True)
        a.presence(status="here")
        a.presence(to=b.jid, status="hello bob")
        p = b.wait_for_presence(a.jid, timeout=10)
        assert p.get("type") in (None, "available"), ET.tostring(p)
        st = p.find("{%s}status" % NS_CLIENT)
        assert st is not None and st.text == "hello bob"

    def test_213_presence_unavailable_on_terminate(self, target, login):
        b = login("bob", poll=True)
        a = login("alice", poll=True)
        a.presence()
        a.presence(to=b.jid)
        b.wait_for_presence(a.jid, timeout=10)
        a.terminate()
        p = b.wait_for(lambda e: local_tag(e) == "presence" and e.get("from") == a.jid
                       and e.get("type") == "unavailable", timeout=10)
        assert p is not None
