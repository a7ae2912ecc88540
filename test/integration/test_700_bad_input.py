"""The bad-input matrix (issue 7): what a hostile or broken client can send.

One test per row of docs/hardening.md, "Bad input" (test_705_docs_tables.py checks that the
table and the tests match one to one; rows about prebind point to the tests in test_300 /
test_310 that already cover them). Each test here checks:
 (a) the answer: the BOSH terminate condition, or the HTTP status;
 (b) the line the error log has for it (tag and words);
 (c) a bystander session (alice and bob, logged in through the same Apache, on the real
     Prosody) chats before and after;
 (d) Apache and the bridge daemon are the same processes afterwards.
One Apache (event MPM) for the file: input checks are in the shared glue and the daemon.
"""
import os
import re
import tempfile
import time

import pytest

import conftest
from xbtest.bosh import BoshClient, NS_BOSH, NS_STREAM, message_body
from xbtest.bystander import Watched
from xbtest.fake_xmpp import FakeXmpp

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module input checks")

BODY = "<body xmlns='%s' " % NS_BOSH
RID_MAX = 2 ** 53 - 1
PER_ADDRESS = 6          # XmppBridgeMaxSessionsPerAddress of this Apache (h-edge's directive)
FLOOD_FROM = "127.0.0.2"  # loopback: any 127.x address reaches Apache on 127.0.0.1


@pytest.fixture(scope="module")
def env(workdir, ca, prosody, users):
    base = tempfile.mkdtemp(dir=workdir, prefix="bad-input-")
    os.chmod(base, 0o755)
    # a listener the module must never be talked into connecting to (open-relay attempts)
    trap = FakeXmpp("stall", "trap.test").start()
    extra = """
<IfDirective XmppBridgeMaxSessionsPerAddress>
    XmppBridgeMaxSessionsPerAddress %d
</IfDirective>
""" % PER_ADDRESS
    apache = conftest.make_apache(tempfile.mkdtemp(dir=base, prefix="apache-"), "event",
                                  prosody, ca, extra=extra)
    apache.start()
    w = Watched(apache, prosody.domain, users)
    w.trap = trap
    w.prosody = prosody
    yield w
    w.close()
    apache.stop()
    trap.stop()


def raw(env, data, method="POST", headers=None):
    c = BoshClient(env.url, env.domain, wait=5)
    try:
        return c.raw(data, method=method, headers=headers)
    finally:
        c.close()


def creation(env, to=None, rid=1001, extra="", payload=""):
    to = env.domain if to is None else to
    attrs = "rid='%d' to='%s' wait='5' hold='1' ver='1.6' %s" % (rid, to, extra)
    return BODY + attrs + (">" + payload + "</body>" if payload else "/>")


def assert_terminate(r, condition):
    assert r.status == 200, r
    assert r.is_body and r.type == "terminate" and r.condition == condition, r.raw


def new_session(env, **kw):
    c = BoshClient(env.url, env.domain, wait=5, **kw)
    r = c.create()
    assert not r.is_terminate, r.raw
    return c


def end_session(c):
    c.end_quietly()


def no_trap_connection(env):
    time.sleep(0.5)
    assert not env.trap.connections, "the module connected to an address the client chose"


# ------------------------------------------------------------------------- XML
def test_7001_malformed_xml(env):
    env.begin()
    r = raw(env, creation(env, payload="<message xmlns='jabber:client'><body>x</message>"))
    assert_terminate(r, "bad-request")
    r = raw(env, BODY + "rid='1001' to='%s' wait='5'" % env.domain)        # truncated
    assert_terminate(r, "bad-request")
    env.end(expect=[("XB05040", "malformed BOSH body from 127.0.0.1: not well-formed XML")])


def test_7002_doctype_billion_laughs(env):
    lol = ("<?xml version='1.0'?><!DOCTYPE body [<!ENTITY lol 'lol'>"
           + "".join("<!ENTITY lol%d '%s'>" % (i, ("&lol%d;" % (i - 1) if i > 1 else "&lol;") * 10)
                     for i in range(1, 10))
           + "]>" + creation(env, payload="<message xmlns='jabber:client'><body>&lol9;</body>"
                                          "</message>"))
    env.begin()
    t0 = time.monotonic()
    r = raw(env, lol)
    assert time.monotonic() - t0 < 5              # refused at the DOCTYPE, nothing expanded
    assert_terminate(r, "bad-request")
    env.end(expect=[("XB05040", "DOCTYPE not allowed")])


def test_7003_body_over_max_body_size(env):
    env.begin()
    r = raw(env, creation(env, payload="<message xmlns='jabber:client'><body>%s</body>"
                                       "</message>" % ("x" * 70000)))
    assert r.status == 413, r                      # XmppBridgeMaxBodySize 65536 (default)
    env.end(expect=[("XB05030", "BOSH body over XmppBridgeMaxBodySize (65536 bytes)")])


def test_7004_stanza_over_the_servers_limit(env):
    """A stanza within the body limit but over the XMPP server's (Prosody: 10000 bytes before
    authentication): the server ends that stream, the client gets remote-stream-error with
    the server's <stream:error/>, nobody else notices."""
    env.begin()
    c = new_session(env)
    try:
        r = c.request("<message xmlns='jabber:client' to='bob@%s'><body>%s</body></message>"
                      % (env.domain, "y" * 20000), check=False)
        deadline = time.monotonic() + 15
        while not r.is_terminate and time.monotonic() < deadline:
            r = c.request("", check=False)
        assert_terminate(r, "remote-stream-error")
        err = r.find("{%s}error" % NS_STREAM)
        assert err is not None, r.raw
        assert err.find("{urn:ietf:params:xml:ns:xmpp-streams}policy-violation") is not None, \
            r.raw
    finally:
        c.close()
    env.end(expect=[("XB04004", "ended: remote-stream-error")])


def test_7005_oversized_attribute(env):
    """A 30 KB `to`: refused as an unknown domain; the log line is bounded."""
    env.begin()
    r = raw(env, creation(env, to="a" * 30000))
    assert_terminate(r, "host-unknown")
    lines = env.assert_logged("XB04008", "is not configured")
    assert all(len(l) < 4096 for l in lines), max(len(l) for l in lines)
    env.end(expect=[("XB04008", "session creation refused: domain 'aaaa")])


def test_7006_nesting_too_deep(env):
    env.begin()
    deep = "<message xmlns='jabber:client'>" + "<x>" * 100 + "</x>" * 100 + "</message>"
    r = raw(env, creation(env, payload=deep))
    assert_terminate(r, "bad-request")
    env.end(expect=[("XB05040", "elements nested too deep")])


def test_7007_invalid_utf8(env):
    env.begin()
    for bad in (b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"):   # bad, surrogate, 5-byte
        r = raw(env, creation(env, payload="<message xmlns='jabber:client'><body>B</body>"
                                           "</message>").encode().replace(b"B", bad))
        assert_terminate(r, "bad-request")
    r = raw(env, creation(env).encode().replace(b"ver=", b"\xff ver="))
    assert_terminate(r, "bad-request")
    env.end(expect=[("XB05040", "not well-formed XML"),
                    ("XB05040", "a byte no UTF-8 XML can contain")])


def test_7008_content_type_ignored(env):
    """XEP-0124 §5 does not make the Content-Type meaningful: any is accepted."""
    env.begin()
    for ctype in ("application/x-www-form-urlencoded", "text/plain", "application/json"):
        c = BoshClient(env.url, env.domain, wait=5, headers={"Content-Type": ctype})
        r = c.create()
        assert r.status == 200 and not r.is_terminate and r.get("sid"), r.raw
        end_session(c)
    env.end(expect=[("XB02001", "created")])


def test_7009_methods_other_than_post(env):
    """405 with Allow; no error-log line (the access log has them)."""
    env.begin()
    for method in ("GET", "PUT", "DELETE"):
        r = raw(env, creation(env) if method != "GET" else b"", method=method)
        assert r.status == 405, (method, r)
        allow = [m.strip() for m in r.headers.get("allow", "").split(",")]
        assert "POST" in allow and method not in allow, r.headers
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen = [e["status"] for e in env.apache.access_log_entries()
                if e["request"].split(" ")[0] in ("GET", "PUT", "DELETE")
                and "/http-bind" in e["request"]]
        if len(seen) >= 3:
            break
        time.sleep(0.1)
    assert seen[-3:] == [405, 405, 405], seen
    env.end()


# ------------------------------------------------------------------------- sessions
def test_7010_unknown_sid(env):
    env.begin()
    r = raw(env, BODY + "rid='1002' sid='%s'/>" % ("0" * 32))
    assert_terminate(r, "item-not-found")
    env.end(expect=[("XB05033", "BOSH request for unknown or ended session")])


def test_7011_rid_replayed_outside_the_window(env):
    env.begin()
    c = new_session(env)
    first = c.initial_rid
    for _ in range(8):                          # more than the replay cache keeps
        r = c.request("<presence xmlns='jabber:client' type='unavailable'/>", check=False)
        assert not r.is_terminate, r.raw
    r = c.request("", rid=first, check=False, process=False)
    assert_terminate(r, "item-not-found")
    # and the session is over (§14.3: a rid outside the window ends it)
    r = c.request("", check=False, process=False)
    assert_terminate(r, "item-not-found")
    c.close()
    lines = [l for l in env.lines() if "XB05034" in l or "XB02005" in l]
    assert lines, env.lines()[-20:]
    env.end(expect=[("XB05034" if "XB05034" in lines[0] else "XB02005", "window")])


def test_7012_rid_above_2_53_minus_1(env):
    """XEP-0124 §14.1: bad-request; HTTP 400 for a client without `ver` (§17.1)."""
    env.begin()
    r = raw(env, creation(env, rid=RID_MAX + 1))
    assert_terminate(r, "bad-request")
    r = raw(env, creation(env, rid=RID_MAX + 1).replace("ver='1.6' ", ""))
    assert r.status == 400, r
    # inside a session: the window never reaches it
    c = new_session(env)
    r = c.request("", rid=RID_MAX + 1, check=False, process=False)
    assert_terminate(r, "bad-request")
    end_session(c)
    env.end(expect=[("XB05040", "rid attribute is not a positive integer")])


def test_7013_key_mismatch(env):
    """XEP-0124 §15: a wrong key ends the session with item-not-found; the request is not
    processed (its message never reaches bob)."""
    import hashlib
    keys = [b"seed-%d" % os.getpid()]
    for _ in range(4):
        keys.append(hashlib.sha1(keys[-1]).hexdigest().encode())
    env.begin()
    c = BoshClient(env.url, env.domain, wait=5)
    r = c.create(newkey=keys[-1].decode())
    assert not r.is_terminate, r.raw
    r = c.request("<message xmlns='jabber:client' to='%s' type='chat'><body>keyed</body>"
                  "</message>" % env.bob.jid, key="0" * 40, check=False, process=False)
    assert_terminate(r, "item-not-found")
    time.sleep(1)
    assert not [m for m in env.bob.received if message_body(m) == "keyed"]
    c.close()
    key_lines = [l for l in env.lines() if re.search(r"XB021\d\d", l) and "key" in l]
    assert key_lines, "no h-session log line about the key:\n" + "\n".join(env.lines()[-20:])
    env.end(expect=[(re.search(r"XB021\d\d", key_lines[0]).group(0), "key")])


# ------------------------------------------------------------------------- open relay
def test_7014_to_unlisted_domain(env):
    env.begin()
    r = raw(env, creation(env, to="jabber.org"))
    assert_terminate(r, "host-unknown")
    no_trap_connection(env)
    env.end(expect=[("XB04008", "domain 'jabber.org' is not configured")])


@pytest.mark.parametrize("to", ["127.0.0.1", "[::1]", "localhost", "169.254.169.254",
                                "127.0.0.1:%(trap)d", "%(domain)s:%(trap)d"])
def test_7015_to_ip_literal_or_internal_address(env, to):
    to = to % {"trap": env.trap.port, "domain": env.domain}
    env.begin()
    r = raw(env, creation(env, to=to))
    assert_terminate(r, "host-unknown")
    no_trap_connection(env)
    env.end(expect=[("XB04008", "is not configured")])


def test_7016_route_to_internal_address_ignored(env):
    """`route` (XEP-0124 §7.1) never decides where the stream goes: the session reaches the
    configured server, the trap listener sees nothing."""
    env.begin()
    for route in ("xmpp:127.0.0.1:%d" % env.trap.port, "xmpp:169.254.169.254:5222"):
        c = BoshClient(env.url, env.domain, wait=5, route=route)
        r = c.create()
        assert not r.is_terminate and r.get("from") == env.domain, r.raw
        assert c.login("carol", env.users["carol"]).startswith("carol@%s/" % env.domain)
        end_session(c)
    no_trap_connection(env)
    env.end(expect=[("XB04162", "route attribute ignored")])


def test_7017_log_injection_through_attributes(env):
    """Attribute values end up in log lines: a newline in them must not forge a line."""
    env.begin()
    forged = "XB09999: forged line"
    r = raw(env, creation(env, to="evil.test&#10;[xmpp_bridge:error] " + forged +
                               "&#13;&#10;" + forged))
    assert_terminate(r, "host-unknown")
    env.assert_logged("XB04008", "evil.test")
    bad = [l for l in env.lines() if forged in l and "XB04008" not in l]
    assert not bad, bad
    env.end(expect=[("XB04008", "evil.test")])


# ------------------------------------------------------------------------- floods
def test_7018_session_flood_from_one_address(env):
    """XmppBridgeMaxSessionsPerAddress (h-edge, contract): creations from one address beyond
    the limit get policy-violation (HTTP 403 without `ver`) and a log line; the bystander
    (another address) and sessions already open are not touched."""
    env.begin()
    flood = []
    try:
        answers = []
        for _ in range(PER_ADDRESS + 2):
            c = BoshClient(env.url, env.domain, wait=5, source_address=(FLOOD_FROM, 0))
            flood.append(c)
            r = c.create(check=False)
            answers.append(r.condition)
        assert answers[:PER_ADDRESS] == [None] * PER_ADDRESS, answers
        assert answers[PER_ADDRESS:] == ["policy-violation"] * 2, answers
        legacy = BoshClient(env.url, env.domain, wait=5, ver=None,
                            source_address=(FLOOD_FROM, 0))
        r = legacy.create(check=False)
        legacy.close()
        assert r.status == 403, r
        # the sessions that fit still work
        assert not flood[0].request("", check=False, timeout=15).is_terminate
    finally:
        for c in flood:
            end_session(c)
    lines = [l for l in env.lines()
             if re.search(r"XB(041[3-5]\d|052[3-9]\d)", l) and FLOOD_FROM in l]
    assert lines, "no h-edge log line naming the address:\n" + "\n".join(env.lines()[-20:])
    env.end(expect=[(re.search(r"XB(041[3-5]\d|052[3-9]\d)", lines[0]).group(0), FLOOD_FROM)])
