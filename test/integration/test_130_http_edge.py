"""HTTP behaviour of the BOSH handler (XEP-0124 §5, §7, §17; the module's CORS, see-other-uri,
front-proxy and compression settings), each against a real Apache."""
import gzip
import os
import tempfile

import pytest

import conftest
from xbtest import stack
from xbtest.apache import Apache
from xbtest.bosh import BoshClient

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module behaviour")

BODY = "<body xmlns='http://jabber.org/protocol/httpbind' "
LISTED = "https://chat.example.org"
MOVED_TO = "https://chat2.example.org/http-bind?a=1&b=<2>"
PLAIN = "text/plain; charset=utf-8"

EDGE_CONF = """
XmppBridgeCORSOrigin %s http://LISTED.example:8080
<Location /open-bind>
    SetHandler xmpp-bosh
    Require all granted
    XmppBridgeCORSOrigin *
</Location>
<Location /moved-bind>
    SetHandler xmpp-bosh
    Require all granted
    XmppBridgeSeeOtherURI "%s"
</Location>
""" % (LISTED, MOVED_TO)


def _apache(workdir, prosody, ca, extra, modules=(), name="edge"):
    return Apache(tempfile.mkdtemp(dir=workdir, prefix=name + "-"), mpm="event",
                  module_path=conftest.module_snapshot(), modules=modules,
                  extra_conf=stack.bridge_conf(prosody, ca, conftest.MAX_WAIT, extra))


@pytest.fixture(scope="module")
def edge(prosody, ca, workdir):
    """Apache with CORS, see-other-uri locations and mod_deflate."""
    a = _apache(workdir, prosody, ca, EDGE_CONF, modules=("filter", "deflate"))
    a.start()
    yield a
    conftest.stop_checked(a)


@pytest.fixture(scope="module")
def plain(prosody, ca, workdir):
    """Apache without mod_deflate."""
    a = _apache(workdir, prosody, ca, "", name="nodeflate")
    a.start()
    yield a
    conftest.stop_checked(a)


@pytest.fixture
def client(edge, prosody):
    made = []

    def make(path="/http-bind", **kw):
        c = BoshClient(edge.url(path), prosody.domain, wait=5, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.end_quietly()


def creation(domain, ver="1.6", extra=""):
    v = " ver='%s'" % ver if ver else ""
    return (BODY + "rid='1001' to='%s' wait='5' hold='1'%s xmlns:xmpp='urn:xmpp:xbosh' "
            "xmpp:version='1.0'%s/>" % (domain, v, extra))


def own_origin(a):
    return "http://127.0.0.1:%d" % a.port


def _allowed(r):
    # httpd adds TRACE itself while TraceEnable is on (its core answers TRACE, not us)
    return {m.strip() for m in r.headers["allow"].split(",")} - {"TRACE"}


def log_since(a, mark):
    return "\n".join(a.error_log_lines(mark))


# ---------------------------------------------------------------------- CORS

def test_131_same_origin_post_is_served(edge, client):
    c = client(headers={"Origin": own_origin(edge)})
    r = c.create()
    assert r.status == 200 and r.get("sid"), r
    assert "origin" in r.headers["vary"].lower()
    assert "access-control-allow-origin" not in r.headers     # no CORS needed, none given


@pytest.mark.xb_log_expected("XB05231")
def test_132_cross_site_origin_refused(edge, client):
    mark = edge.log_mark()
    for origin in ("http://evil.example", "http://127.0.0.1:%d" % (edge.port + 1),
                   "https://127.0.0.1:%d" % edge.port, "null"):
        c = client(headers={"Origin": origin})
        r = c.raw(creation("example.test"))
        assert r.status == 403, (origin, r)
        assert "origin" in r.headers["vary"].lower()
        assert "access-control-allow-origin" not in r.headers
    text = log_since(edge, mark)
    assert "XB05231" in text and "evil.example" in text and "XmppBridgeCORSOrigin" in text
    assert "XB04011" not in text                   # no session was made for any of them
    assert "refused_cross_site" in edge.status()
    assert edge.counter("refused_cross_site") >= 4


def test_133_listed_origin_gets_its_cors_headers(edge, client):
    for origin in (LISTED, "HTTPS://Chat.Example.org", "http://listed.example:8080"):
        c = client(headers={"Origin": origin})
        r = c.create()
        assert r.status == 200 and r.get("sid"), r
        assert r.headers["access-control-allow-origin"] == origin
        assert "origin" in r.headers["vary"].lower()
        c.terminate()


def test_134_preflight(edge, client):
    c = client(headers={"Origin": LISTED, "Access-Control-Request-Method": "POST",
                        "Access-Control-Request-Headers": "content-type"})
    r = c.raw(b"", method="OPTIONS")
    assert r.status in (200, 204), r
    h = r.headers
    assert h["access-control-allow-origin"] == LISTED
    assert h["access-control-allow-methods"] == "POST, OPTIONS"
    assert h["access-control-allow-headers"] == "Content-Type"
    assert int(h["access-control-max-age"]) > 0
    assert "origin" in h["vary"].lower()


@pytest.mark.xb_log_expected("XB05231")
def test_135_preflight_from_unlisted_origin_refused(edge, client):
    c = client(headers={"Origin": "https://other.example",
                        "Access-Control-Request-Method": "POST"})
    r = c.raw(b"", method="OPTIONS")
    assert r.status == 403, r
    assert "access-control-allow-origin" not in r.headers


def test_136_wildcard_location_and_errors_keep_cors_headers(edge, client):
    c = client(path="/open-bind", headers={"Origin": "https://anyone.example"})
    r = c.create()
    assert r.status == 200 and r.headers["access-control-allow-origin"] == \
        "https://anyone.example"
    # an error answer (405) still carries the CORS headers and the method list
    r = c.raw(b"", method="GET")
    assert r.status == 405, r
    assert r.headers["access-control-allow-origin"] == "https://anyone.example"
    assert _allowed(r) == {"POST", "OPTIONS"}
    assert r.headers["cache-control"] == "no-store"
    # and so does 413
    big = creation("example.test", extra=">" + "x" * 10) .replace("/>>", ">") + \
        "<message xmlns='jabber:client'><body>%s</body></message></body>" % ("x" * 70000)
    r = c.raw(big)
    assert r.status == 413, r
    assert r.headers["access-control-allow-origin"] == "https://anyone.example"


# ---------------------------------------------------------------------- plain HTTP behaviour

def test_137_post_only_and_no_store(edge, client):
    c = client()
    for method in ("GET", "PUT", "DELETE"):
        r = c.raw(b"", method=method)
        assert r.status == 405, (method, r)
        assert _allowed(r) == {"POST", "OPTIONS"}
    r = c.raw(b"", method="OPTIONS")
    assert r.status == 200 and _allowed(r) == {"POST", "OPTIONS"}
    r = c.create()
    assert r.status == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-type"] == "text/xml; charset=utf-8"   # §7.1 default
    assert "content-length" in r.headers and "transfer-encoding" not in r.headers


# ---------------------------------------------------------------------- see-other-uri

def test_138_see_other_uri(edge, client, prosody):
    from xml.etree import ElementTree as ET
    for ver in ("1.6", None):                  # a legacy client gets the body too
        c = client(path="/moved-bind")
        r = c.raw(creation(prosody.domain, ver=ver))
        assert r.status == 200, r
        assert r.type == "terminate" and r.condition == "see-other-uri", r.raw
        uri = r.body.find("{http://jabber.org/protocol/httpbind}uri")
        assert uri is not None and uri.text == MOVED_TO, r.raw
        assert b"&amp;" in r.raw and b"&lt;2&gt;" in r.raw
        ET.fromstring(r.raw)
    # a request of an existing session there too
    c = client(path="/moved-bind")
    r = c.raw(BODY + "rid='1002' sid='0123456789abcdef0123456789abcdef'/>")
    assert r.status == 200 and r.condition == "see-other-uri", r.raw


# ---------------------------------------------------------------------- configtest

@pytest.mark.parametrize("line,name", [
    ("XmppBridgeSeeOtherURI /http-bind", "XmppBridgeSeeOtherURI"),
    ("XmppBridgeSeeOtherURI chat2.example.org/http-bind", "XmppBridgeSeeOtherURI"),
    ("XmppBridgeCORSOrigin https://chat.example.org/page", "XmppBridgeCORSOrigin"),
    ("XmppBridgeCORSOrigin chat.example.org", "XmppBridgeCORSOrigin"),
    ("XmppBridgeFrontProxyTimeout 5", "XmppBridgeFrontProxyTimeout"),
    ("XmppBridgeFrontProxyTimeout soon", "XmppBridgeFrontProxyTimeout"),
    ("XmppBridgeMaxSessionsPerAddress -1", "XmppBridgeMaxSessionsPerAddress"),
])
def test_139_configtest_refuses(prosody, ca, workdir, line, name):
    a = _apache(workdir, prosody, ca, line + "\n", name="bad")
    rc, out = a.configtest()
    assert rc != 0 and name in out, out


# ---------------------------------------------------------------------- wait vs timeouts

@pytest.mark.parametrize("extra,granted", [
    ("XmppBridgeMaxWait 60\nXmppBridgeFrontProxyTimeout 20\n", 15),
    ("XmppBridgeMaxWait 60\nTimeout 17\n", 12),
    ("XmppBridgeMaxWait 60\nTimeout 40\nXmppBridgeFrontProxyTimeout 30\n", 25),
])
def test_140_wait_kept_below_timeouts(prosody, ca, workdir, extra, granted):
    a = _apache(workdir, prosody, ca, extra, name="timeouts")
    a.start()
    try:
        c = BoshClient(a.url("/http-bind"), prosody.domain, wait=60)
        r = c.create()
        assert r.status == 200 and int(r.get("wait")) == granted, r.raw
        c.terminate()
        c.close()
        text = "\n".join(a.error_log_lines())
        assert ("XB05230" if "FrontProxy" in extra else "XB05001") in text
    finally:
        a.stop()


# ---------------------------------------------------------------------- content (§7.1)

def test_141_content_attribute_sets_content_type(edge, client, users):
    c = client(content=PLAIN)
    r = c.create()
    assert r.status == 200 and r.headers["content-type"] == PLAIN, r.headers
    c.login("alice", users["alice"])
    assert c.log[-1][2].headers["content-type"] == PLAIN
    r = c.request("")
    assert r.headers["content-type"] == PLAIN
    # a value no header may carry falls back to the default
    c2 = client(content="text/plain\r\nX-Injected: 1")
    r = c2.create()
    assert r.status == 200 and r.headers["content-type"] == "text/xml; charset=utf-8"
    assert "x-injected" not in r.headers


# ---------------------------------------------------------------------- gzip

def test_142_gzip_responses(edge, client, users):
    c = client(headers={"Accept-Encoding": "gzip"})
    r = c.create(accept="deflate,gzip")
    assert r.status == 200, r
    assert r.headers.get("content-encoding") == "gzip", r.headers
    assert "content-length" in r.headers and "transfer-encoding" not in r.headers
    assert r.get("sid")                              # BoshResponse inflated it
    c.login("alice", users["alice"])
    assert c.log[-1][2].headers.get("content-encoding") == "gzip"
    # the same session, a request whose Accept-Encoding does not allow gzip: identity
    c.headers["Accept-Encoding"] = "identity"
    r = c.request("")
    assert r.status == 200 and "content-encoding" not in r.headers, r.headers
    # a session that did not ask for it: never compressed
    c2 = client(headers={"Accept-Encoding": "gzip"})
    r = c2.create()
    assert r.status == 200 and "content-encoding" not in r.headers, r.headers
    r = c2.request("")
    assert "content-encoding" not in r.headers


def test_143_accept_advertised_only_with_mod_deflate(edge, plain, prosody):
    c = BoshClient(edge.url("/http-bind"), prosody.domain, wait=5)
    assert c.create().get("accept") == "gzip"
    c.terminate()
    c.close()
    c = BoshClient(plain.url("/http-bind"), prosody.domain, wait=5)
    assert c.create().get("accept") is None
    c.terminate()
    c.close()


@pytest.mark.xb_log_expected("XB05232")
def test_144_gzip_request_bodies(edge, plain, prosody):
    data = gzip.compress(creation(prosody.domain).encode())
    c = BoshClient(edge.url("/http-bind"), prosody.domain, wait=5)
    r = c.raw(data, headers={"Content-Encoding": "gzip"})
    assert r.status == 200 and r.get("sid") and r.type is None, r
    sid = r.get("sid")
    r = c.raw(gzip.compress((BODY + "rid='1002' sid='%s' type='terminate'/>" % sid).encode()),
              headers={"Content-Encoding": "gzip"})
    assert r.status == 200 and r.type == "terminate", r
    c.close()
    # inflated far beyond its Content-Length (~40 kB from a few hundred bytes): the handler's
    # body buffer, sized by Content-Length, grows to hold it all
    big = creation(prosody.domain, extra=" pad='%s'" % ("x" * 40000))
    c = BoshClient(edge.url("/http-bind"), prosody.domain, wait=5)
    r = c.raw(gzip.compress(big.encode()), headers={"Content-Encoding": "gzip"})
    assert r.status == 200 and r.get("sid") and r.type is None, r
    r = c.raw(gzip.compress((BODY + "rid='1002' sid='%s' type='terminate'/>"
                             % r.get("sid")).encode()), headers={"Content-Encoding": "gzip"})
    assert r.status == 200 and r.type == "terminate", r
    c.close()
    # without mod_deflate a compressed body cannot be read: 415, not a parse error
    c = BoshClient(plain.url("/http-bind"), prosody.domain, wait=5)
    r = c.raw(data, headers={"Content-Encoding": "gzip"})
    assert r.status == 415, r
    c.close()
    assert "XB05232" in "\n".join(plain.error_log_lines())
