"""A minimal XMPP c2s client over TCP (stdlib only): STARTTLS verified against the TestCA, SASL
PLAIN or SCRAM-SHA-1, resource binding. For checking real servers directly (no BOSH).

    jid = login('127.0.0.1', port, 'example.test', 'alice', 'pw', ca)   # raises on failure

    c = XmppDirect('127.0.0.1', port, 'example.test', ca)
    c.connect(); c.starttls(); c.auth('alice', 'pw', 'SCRAM-SHA-1'); c.bind(); c.close()

`ca` is a TestCA or the path of a CA certificate (PEM). Every read is bounded by `timeout`.
"""
import base64
import socket
import ssl
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from xml.sax.saxutils import escape, quoteattr

from .bosh import AuthFailed as _BoshAuthFailed
from .bosh import ScramSha1Client

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"


class XmppError(Exception):
    pass


class StreamError(XmppError):
    def __init__(self, condition, text=None):
        super().__init__("stream error: %s%s" % (condition, (" (%s)" % text) if text else ""))
        self.condition = condition
        self.text = text


class AuthFailed(XmppError):
    """SASL <failure/>: .condition (e.g. 'not-authorized'), .text."""

    def __init__(self, condition, text=None, mechanism=None):
        super().__init__("SASL %s failed: %s%s" % (mechanism or "", condition,
                                                   (" (%s)" % text) if text else ""))
        self.condition = condition
        self.text = text
        self.mechanism = mechanism


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def _ns(tag):
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


class XmppDirect:
    """One c2s connection. Methods follow the order of a login: connect(), starttls(), auth(),
    bind(); .features (the last <stream:features/>), .mechanisms, .jid, .tls (bool)."""

    def __init__(self, host, port, domain, ca=None, timeout=10.0, lang="en"):
        self.host = host
        self.port = port
        self.domain = domain
        self.ca_path = getattr(ca, "cert_path", ca)
        self.timeout = timeout
        self.lang = lang
        self.sock = None
        self.tls = False
        self.features = None
        self.stream_attrs = None
        self.jid = None
        self._parser = None
        self._root = None
        self._depth = 0
        self._queue = deque()
        self._closed = False

    # ------------------------------------------------------------------ stream
    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self._open_stream()
        return self

    def _open_stream(self):
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root = None
        self._queue.clear()
        self._closed = False
        self.features = None
        self.send("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' to=%s "
                  "version='1.0' xml:lang=%s>" % (NS_CLIENT, NS_STREAM, quoteattr(self.domain),
                                                  quoteattr(self.lang)))
        self.features = self.expect(NS_STREAM, "features")

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _feed(self, data):
        self._parser.feed(data)
        for ev, el in self._parser.read_events():
            if ev == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root = el
                    self.stream_attrs = dict(el.attrib)
            else:
                self._depth -= 1
                if self._depth == 1:
                    self._queue.append(el)
                    try:
                        self._root.remove(el)
                    except ValueError:
                        pass
                elif self._depth == 0:
                    self._closed = True

    def recv(self, timeout=None):
        """The next top-level element; raises StreamError on <stream:error/>, XmppError on a
        closed stream, socket.timeout past the deadline."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._queue:
            if self._closed:
                raise XmppError("stream closed by the server")
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no XMPP element within the timeout")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise XmppError("connection closed by the server")
            self._feed(data)
        el = self._queue.popleft()
        if el.tag == "{%s}error" % NS_STREAM:
            cond = next((_local(c.tag) for c in el if _ns(c.tag) == NS_STREAMS_ERR
                         and _local(c.tag) != "text"), "undefined-condition")
            text = el.findtext("{%s}text" % NS_STREAMS_ERR)
            raise StreamError(cond, text)
        return el

    def expect(self, ns, name, timeout=None):
        el = self.recv(timeout)
        if el.tag != "{%s}%s" % (ns, name):
            raise XmppError("expected <%s xmlns='%s'/>, got %s" % (name, ns, ET.tostring(el)[:300]))
        return el

    @property
    def mechanisms(self):
        if self.features is None:
            return []
        m = self.features.find("{%s}mechanisms" % NS_SASL)
        return [x.text for x in m.findall("{%s}mechanism" % NS_SASL)] if m is not None else []

    # ------------------------------------------------------------------ STARTTLS
    def starttls(self):
        if self.features is None or self.features.find("{%s}starttls" % NS_TLS) is None:
            raise XmppError("server offers no STARTTLS")
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        el = self.recv()
        if el.tag != "{%s}proceed" % NS_TLS:
            raise XmppError("STARTTLS refused: %s" % ET.tostring(el)[:300])
        ctx = ssl.create_default_context(cafile=self.ca_path) if self.ca_path else \
            ssl.create_default_context()
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.domain)
        self.tls = True
        self._open_stream()
        return self

    # ------------------------------------------------------------------ SASL
    def _sasl_reply(self):
        el = self.recv()
        if _ns(el.tag) != NS_SASL or _local(el.tag) not in ("challenge", "success", "failure"):
            raise XmppError("unexpected during SASL: %s" % ET.tostring(el)[:300])
        return el

    @staticmethod
    def _failure(el, mechanism):
        cond = next((_local(c.tag) for c in el if _local(c.tag) != "text"), "undefined")
        return AuthFailed(cond, el.findtext("{%s}text" % NS_SASL), mechanism)

    def auth(self, user, password, mechanism="PLAIN", authzid=""):
        """SASL PLAIN or SCRAM-SHA-1, then the stream restart. Raises AuthFailed on <failure/>."""
        if mechanism not in self.mechanisms:
            raise XmppError("mechanism %s not offered (offered: %s)" % (mechanism,
                                                                        self.mechanisms))
        if mechanism == "PLAIN":
            msg = b"%s\0%s\0%s" % (authzid.encode(), user.encode(), password.encode())
            self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
                      % (NS_SASL, base64.b64encode(msg).decode()))
            r = self._sasl_reply()
            if _local(r.tag) != "success":
                raise self._failure(r, mechanism)
        elif mechanism == "SCRAM-SHA-1":
            scram = ScramSha1Client(user, password)
            self.send("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>"
                      % (NS_SASL, base64.b64encode(scram.client_first()).decode()))
            r = self._sasl_reply()
            if _local(r.tag) == "failure":
                raise self._failure(r, mechanism)
            if _local(r.tag) != "challenge":
                raise XmppError("SCRAM: expected a challenge, got %s" % ET.tostring(r)[:300])
            try:
                final = scram.client_final(base64.b64decode(r.text or ""))
            except _BoshAuthFailed as e:
                raise AuthFailed("bad-server-first", str(e), mechanism) from e
            self.send("<response xmlns='%s'>%s</response>"
                      % (NS_SASL, base64.b64encode(final).decode()))
            r = self._sasl_reply()
            if _local(r.tag) == "challenge":
                data = base64.b64decode(r.text or "")
                self.send("<response xmlns='%s'/>" % NS_SASL)
                r = self._sasl_reply()
                if _local(r.tag) != "success":
                    raise self._failure(r, mechanism)
            elif _local(r.tag) == "success":
                data = base64.b64decode(r.text or "")
            else:
                raise self._failure(r, mechanism)
            try:
                scram.verify_server_final(data)
            except _BoshAuthFailed as e:
                raise AuthFailed("bad-server-signature", str(e), mechanism) from e
        else:
            raise ValueError("unsupported mechanism %s" % mechanism)
        self._open_stream()
        return self

    # ------------------------------------------------------------------ bind
    def iq(self, type_, payload, timeout=None):
        iq_id = "xb" + uuid.uuid4().hex[:10]
        self.send("<iq type=%s id=%s>%s</iq>" % (quoteattr(type_), quoteattr(iq_id), payload))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            el = self.recv(max(0.01, deadline - time.monotonic()))
            if el.tag == "{%s}iq" % NS_CLIENT and el.get("id") == iq_id:
                if el.get("type") == "error":
                    raise XmppError("iq error: %s" % ET.tostring(el)[:400])
                return el

    def bind(self, resource=None):
        if self.features is None or self.features.find("{%s}bind" % NS_BIND) is None:
            raise XmppError("no bind feature: %s" % (ET.tostring(self.features)[:300]
                                                     if self.features is not None else None))
        resource = resource or "xbtest-" + uuid.uuid4().hex[:8]
        res = self.iq("set", "<bind xmlns='%s'><resource>%s</resource></bind>"
                      % (NS_BIND, escape(resource)))
        jid = res.findtext("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND))
        if not jid:
            raise XmppError("bind result without jid: %s" % ET.tostring(res)[:300])
        sess = self.features.find("{%s}session" % NS_SESSION)
        if sess is not None and sess.find("{%s}optional" % NS_SESSION) is None:
            self.iq("set", "<session xmlns='%s'/>" % NS_SESSION)
        self.jid = jid
        return jid

    # ------------------------------------------------------------------ end
    def close(self):
        if self.sock is None:
            return
        try:
            self.sock.settimeout(1.0)
            self.send("</stream:stream>")
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def login(host, port, domain, user, password, ca, mechanism="PLAIN", resource=None,
          timeout=10.0):
    """TCP, STARTTLS (certificate verified against `ca` for `domain`), SASL, bind -> the bound
    full JID. Raises AuthFailed (SASL failure), StreamError, XmppError, ssl.SSLError, OSError."""
    c = XmppDirect(host, port, domain, ca, timeout=timeout)
    try:
        c.connect()
        c.starttls()
        c.auth(user, password, mechanism)
        return c.bind(resource)
    finally:
        c.close()
