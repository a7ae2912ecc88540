"""XEP-0206 (XMPP over BOSH) v1.4 conformance: one test per item of the checklist in
shared/references/bosh-anchors.md §5, named test_xSSss<item>_<what> (x = XEP-0206, SSss the
section: 0500 = §5). Each docstring paraphrases the requirement."""
import base64
import time
import uuid

import pytest

from xbtest.bosh import (NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, BoshTerminated, local_tag,
                         ns_of)

from .bosh_helpers import Held, is_terminate, ping

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_COMPRESS_FEATURE = "http://jabber.org/features/compress"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def features_of(c, r):
    f = r.features()
    if f is None:
        f = c.wait_for(lambda e: e.tag == "{%s}features" % NS_STREAM, timeout=15, consume=False)
    return f


def test_x0200a_payloads_are_features_sasl_stanzas_or_stream_error(target, login):
    """§2: a non-empty body holds stream features, SASL elements, jabber:client stanzas, or
    stanzas followed by a stream error."""
    c = login("alice", wait=2)
    c.request(ping("x0200a", target.domain))
    c.wait_for(lambda e: e.get("id") == "x0200a", timeout=15)
    for _rid, _req, resp in c.log:
        for el in resp.children:
            ok = (el.tag in ("{%s}features" % NS_STREAM, "{%s}error" % NS_STREAM) or
                  ns_of(el) in (NS_SASL, NS_CLIENT))
            assert ok, "unexpected payload %s in %r" % (el.tag, resp.raw)


def test_x0200b_no_starttls_inside_bosh(target, bosh):
    """§2: TLS inside BOSH is NOT RECOMMENDED: the features offer no STARTTLS."""
    c = bosh()
    r = c.create(check=False)
    f = features_of(c, r)
    assert f.find("{%s}starttls" % NS_TLS) is None, r


def test_x0300a_xmpp_version_forwarded(target, bosh):
    """§3: the client sends xmpp:version='1.0', the CM forwards it: the server answers with
    XMPP 1.0 stream features (SASL mechanisms)."""
    c = bosh()
    r = c.create(check=False, xmpp_version="1.0")
    f = features_of(c, r)
    mechs = f.findall("{%s}mechanisms/{%s}mechanism" % (NS_SASL, NS_SASL))
    assert mechs, r


def test_x0400a_response_carries_xmpp_version(target, bosh):
    """§4: the creation response SHOULD carry xmpp:version."""
    c = bosh()
    r = c.create(check=False)
    assert r.get("xmpp:version") == "1.0", r


def test_x0400b_restart_logic_advertised(target, bosh):
    """§4: a CM that supports restarts MUST say xmpp:restartlogic='true'."""
    c = bosh()
    r = c.create(check=False)
    assert r.get("xmpp:restartlogic") == "true", r


def test_x0400c_no_stream_compression_offered(target, bosh):
    """§4: compression goes through HTTP; XEP-0138 stream compression is NOT RECOMMENDED."""
    c = bosh()
    r = c.create(check=False)
    f = features_of(c, r)
    assert f.find("{%s}compression" % NS_COMPRESS_FEATURE) is None, r


def _sasl(c, user, password):
    if c.features is None:
        c.wait_for(lambda e: e.tag == "{%s}features" % NS_STREAM, timeout=15)
    else:
        c.drain()
    c._scram_sha1(user, password, 15)


def test_x0500a_restart_gives_new_stream_features(target, bosh, users):
    """§5: after SASL success a request with xmpp:restart='true' opens a new stream: the new
    features (bind, no SASL) arrive."""
    c = bosh(wait=5)
    c.create()
    _sasl(c, "alice", users["alice"])
    c.features = None
    c.request("", to=target.domain, xml_lang="en", xmpp_restart="true")
    f = c.wait_for(lambda e: e.tag == "{%s}features" % NS_STREAM, timeout=15)
    assert f.find("{%s}bind" % NS_BIND) is not None
    assert f.find("{%s}mechanisms" % NS_SASL) is None


def test_x0500b_stanza_in_restart_request_ignored(target, bosh, users):
    """§5: a restart request SHOULD be empty; the CM SHOULD ignore a stanza in it."""
    c = bosh(wait=3)
    c.create()
    _sasl(c, "alice", users["alice"])
    c.features = None
    c.request(ping("x0500b", target.domain), to=target.domain, xml_lang="en",
              xmpp_restart="true")
    f = c.wait_for(lambda e: e.tag == "{%s}features" % NS_STREAM, timeout=15)
    assert f.find("{%s}bind" % NS_BIND) is not None
    c.iq("set", "<bind xmlns='%s'><resource>x0500b</resource></bind>" % NS_BIND)
    with pytest.raises(TimeoutError):
        c.wait_for(lambda e: e.get("id") == "x0500b", timeout=3)


def test_x0600a_remote_stream_error_copied(target, login):
    """§6 (and XEP-0124 §17.2): when the server ends the stream the CM answers terminate
    remote-stream-error with a copy of the <stream:error/>."""
    resource = "x0600a-" + uuid.uuid4().hex[:6]
    first = login("alice", wait=5, resource=resource)
    second = login("alice", wait=5, resource=resource)     # the server kicks the first one
    deadline = time.monotonic() + 20
    r = None
    while time.monotonic() < deadline:
        r = first.request("", check=False)
        if r.is_terminate or r.status != 200:
            break
    assert is_terminate(r, "remote-stream-error"), r
    err = r.find("{%s}error" % NS_STREAM)
    assert err is not None, "no <stream:error/> copied: %r" % r.raw
    assert second.jid


def test_x0700a_stanzas_for_dead_client_bounced(target, login):
    """§7: stanzas the CM holds for a client whose session ended: an iq is answered
    service-unavailable, a message recipient-unavailable (presence is dropped)."""
    bob = login("bob", poll=True, wait=5)
    alice = login("alice", wait=5)
    inactivity = int(alice.creation.get("inactivity"))
    assert inactivity <= 30, inactivity
    # alice holds no request: both stanzas wait in the CM for her
    bob.send("<iq xmlns='%s' type='get' id='x0700a-iq' to='%s'>"
             "<query xmlns='jabber:iq:version'/></iq>" % (NS_CLIENT, alice.jid))
    bob.send("<message xmlns='%s' type='chat' id='x0700a-msg' to='%s'><body>hello</body>"
             "</message>" % (NS_CLIENT, alice.jid))
    t_end = inactivity + 12
    iq = bob.wait_for(lambda e: e.get("id") == "x0700a-iq", timeout=t_end)
    msg = bob.wait_for(lambda e: e.get("id") == "x0700a-msg", timeout=10)
    alice.terminated = "gone"
    assert iq.get("type") == "error", iq
    assert iq.find("{%s}error/{%s}service-unavailable" % (NS_CLIENT, NS_STANZAS)) is not None
    assert msg.get("type") == "error", msg
    assert msg.find("{%s}error/{%s}recipient-unavailable" % (NS_CLIENT, NS_STANZAS)) is not None
