"""A BOSH (XEP-0124 / XEP-0206) client that behaves like Strophe.js, stdlib only.

    c = BoshClient(url, 'example.test', wait=10, hold=1)
    c.create()                         # session creation; c.sid, c.creation (BoshResponse)
    c.login('alice', 'pw')             # SASL SCRAM-SHA-1 (or mechanism='PLAIN'), restart, bind
    c.start_polling()                  # one request always held on its own connection
    c.send_message('bob@example.test', 'hi')
    msg = c.wait_for_message('bob@example.test', timeout=10)
    c.terminate()

Protocol tests use request(payload, rid=..., sid=..., **attrs) (attribute names: `xmpp_restart`
-> 'xmpp:restart', `xml_lang` -> 'xml:lang'; or pass attrs={'xmpp:restart': 'true'}), or raw()
for an arbitrary HTTP body. Every response is a BoshResponse (.status, .raw, .body, .elapsed).
All calls are bounded in time.
"""
import base64
import hashlib
import hmac
import http.client
import os
import random
import socket
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS_BOSH = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_ROSTER = "jabber:iq:roster"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

_PREFIXES = {"xmpp": NS_XBOSH, "xml": NS_XML, "stream": NS_STREAM}

_sysrand = random.SystemRandom()


def qname(name):
    """'xmpp:version' -> '{urn:xmpp:xbosh}version' (for Element.get)."""
    if ":" in name and not name.startswith("{"):
        prefix, local = name.split(":", 1)
        if prefix in _PREFIXES:
            return "{%s}%s" % (_PREFIXES[prefix], local)
    return name


def bare(jid):
    return (jid or "").split("/", 1)[0]


def local_tag(el):
    return el.tag.rsplit("}", 1)[-1]


def ns_of(el):
    return el.tag[1:].split("}", 1)[0] if el.tag.startswith("{") else ""


def message_body(el):
    b = el.find("{%s}body" % NS_CLIENT)
    return b.text if b is not None else None


class BoshError(Exception):
    pass


class BoshConnectionBroken(BoshError):
    """The connection broke before an answer came (the request may be sent again)."""


class BoshHTTPError(BoshError):
    def __init__(self, response):
        super().__init__("HTTP %s: %r" % (response.status, response.raw[:300]))
        self.response = response


class BoshTerminated(BoshError):
    def __init__(self, condition, response=None):
        super().__init__("session terminated: %s" % condition)
        self.condition = condition
        self.response = response


class AuthFailed(BoshError):
    pass


class BoshResponse:
    """One HTTP response: .status, .headers (lower-case names), .raw (bytes), .body (Element or
    None), .elapsed (seconds), .rid (of the request, if known), .request (bytes sent)."""

    def __init__(self, status, headers, raw, elapsed, rid=None, request=None):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.elapsed = elapsed
        self.rid = rid
        self.request = request
        self.parse_error = None
        self.wire_raw = raw             # as sent (compressed when Content-Encoding says so)
        if raw and headers.get("content-encoding") == "gzip":
            import gzip
            raw = self.raw = gzip.decompress(raw)
        try:
            self.body = ET.fromstring(raw) if raw else None
        except ET.ParseError as e:
            self.body = None
            self.parse_error = e

    def get(self, name, default=None):
        """Attribute of <body>; 'xmpp:restartlogic', 'xml:lang' work."""
        if self.body is None:
            return default
        return self.body.get(qname(name), default)

    @property
    def attrib(self):
        return dict(self.body.attrib) if self.body is not None else {}

    @property
    def type(self):
        return self.get("type")

    @property
    def condition(self):
        return self.get("condition")

    @property
    def is_terminate(self):
        return self.type == "terminate"

    @property
    def children(self):
        return list(self.body) if self.body is not None else []

    @property
    def is_body(self):
        return self.body is not None and self.body.tag == "{%s}body" % NS_BOSH

    def find(self, path):
        return self.body.find(path) if self.body is not None else None

    def features(self):
        return self.find("{%s}features" % NS_STREAM)

    def __repr__(self):
        return "<BoshResponse %s %.2fs %r>" % (self.status, self.elapsed, self.raw[:200])


class ScramSha1Client:
    """Client side of SCRAM-SHA-1 (RFC 5802), no channel binding ("n,,")."""

    def __init__(self, user, password, cnonce=None):
        self.user = user
        self.password = password
        self.cnonce = cnonce or base64.b64encode(os.urandom(18)).decode()
        self.gs2 = "n,,"
        self.first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"),
                                         self.cnonce)
        self.server_sig = None

    def client_first(self) -> bytes:
        return (self.gs2 + self.first_bare).encode()

    def client_final(self, server_first: bytes) -> bytes:
        server_first = server_first.decode()
        try:
            f = dict(kv.split("=", 1) for kv in server_first.split(","))
            nonce, salt, iters = f["r"], base64.b64decode(f["s"]), int(f["i"])
        except (ValueError, KeyError) as e:
            raise AuthFailed("SCRAM: bad server-first-message %r" % server_first) from e
        if not nonce.startswith(self.cnonce) or len(nonce) <= len(self.cnonce):
            raise AuthFailed("SCRAM: server nonce does not extend the client nonce")
        salted = hashlib.pbkdf2_hmac("sha1", self.password.encode(), salt, iters)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
        stored_key = hashlib.sha1(client_key).digest()
        final_wo_proof = "c=%s,r=%s" % (base64.b64encode(self.gs2.encode()).decode(), nonce)
        auth_message = ",".join([self.first_bare, server_first, final_wo_proof]).encode()
        client_sig = hmac.new(stored_key, auth_message, hashlib.sha1).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, client_sig))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha1).digest()
        self.server_sig = hmac.new(server_key, auth_message, hashlib.sha1).digest()
        return (final_wo_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify_server_final(self, server_final: bytes):
        attrs = dict(kv.split("=", 1) for kv in server_final.decode().split(",") if "=" in kv)
        v = attrs.get("v")
        if v is None or self.server_sig is None or \
                not hmac.compare_digest(base64.b64decode(v), self.server_sig):
            raise AuthFailed("SCRAM: bad server signature")


def message_stanza(to, text, type_="chat", id_=None):
    """A <message> with a <body> as XML text (xmlns='jabber:client')."""
    id_ = id_ or "m" + uuid.uuid4().hex[:12]
    return ("<message xmlns='%s' to=%s type=%s id=%s><body>%s</body></message>"
            % (NS_CLIENT, quoteattr(to), quoteattr(type_), quoteattr(id_), escape(text)))


class BoshClient:
    """See the module docstring.

    BoshClient(url, domain, lang='en', wait=10, hold=1, timeout=None, headers=None,
               client_tag=None, ver='1.6', content='text/xml; charset=utf-8')
    timeout: socket timeout per HTTP request (default: wait + 15 s).
    client_tag: sent as `X-Xbtest-Client` (the test Apache logs it in the access log).
    """

    def __init__(self, url, domain, lang="en", wait=10, hold=1, timeout=None, headers=None,
                 client_tag=None, ver="1.6", content="text/xml; charset=utf-8", route=None,
                 source_address=None):
        u = urllib.parse.urlsplit(url)
        self.url = url
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.path = u.path or "/"
        if u.query:
            self.path += "?" + u.query
        self.domain = domain
        self.lang = lang
        self.wait = wait            # requested; after create(): what the server granted
        self.requested_wait = wait
        self.hold = hold
        self.ver = ver
        self.content = content
        self.route = route
        self.source_address = source_address   # (ip, 0): e.g. 127.0.0.2, another client address
        self.timeout = timeout
        self.headers = {"Content-Type": "text/xml; charset=utf-8"}
        if client_tag:
            self.headers["X-Xbtest-Client"] = client_tag
        self.headers.update(headers or {})
        # never above 2^53-1, with room for many requests
        self.rid = _sysrand.randint(10 ** 9, 2 ** 44)
        self.initial_rid = self.rid
        self.sid = None
        self.requests = 1
        self.creation = None
        self.features = None
        self.jid = None
        self.authenticated = False
        self.terminated = None      # condition string once the session ended
        self.last_response = None
        self.log = []               # (rid, request bytes, BoshResponse) for debugging
        self._send_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(1)
        self._pool = []
        self._pool_lock = threading.Lock()
        self._inflight = set()
        self._cond = threading.Condition()
        self.inbox = []             # stanzas (Elements) not yet consumed
        self.received = []          # every stanza ever received
        self._poller = None
        self._polling = False
        self._aborting = False
        self.poll_error = None

    # ------------------------------------------------------------------ HTTP
    def _new_conn(self, timeout):
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        if self.source_address:
            return cls(self.host, self.port, timeout=timeout, source_address=self.source_address)
        return cls(self.host, self.port, timeout=timeout)

    def _get_conn(self, timeout):
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self._new_conn(timeout)
            return conn, False
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def _put_conn(self, conn):
        with self._pool_lock:
            if len(self._pool) < 4:
                self._pool.append(conn)
                return
        conn.close()

    def _default_timeout(self):
        return self.timeout if self.timeout else max(self.wait or 0, self.requested_wait or 0) + 15

    def post(self, data, timeout=None, headers=None, method="POST", path=None, lock=None):
        """One HTTP request with `data` as the body on a pooled keep-alive connection; returns a
        BoshResponse (any status). Retries once on a fresh connection when a reused keep-alive
        connection turns out to be closed. `lock` (optional) is held while the request is
        written, so requests leave in order."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        timeout = timeout or self._default_timeout()
        hdrs = dict(self.headers)
        hdrs.update(headers or {})
        for attempt in (0, 1):
            conn, reused = self._get_conn(timeout)
            t0 = time.monotonic()
            try:
                if lock is not None:
                    with lock:
                        conn.request(method, path or self.path, body=data, headers=hdrs)
                else:
                    conn.request(method, path or self.path, body=data, headers=hdrs)
                resp, raw = self._read_response(conn)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine) as e:
                conn.close()
                if reused and attempt == 0 and not self._aborting:
                    continue
                raise BoshError("HTTP request failed: %r" % (e,)) from e
            except (socket.timeout, OSError) as e:
                conn.close()
                raise BoshError("HTTP request failed after %.1fs: %r"
                                % (time.monotonic() - t0, e)) from e
            elapsed = time.monotonic() - t0
            headers_l = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                conn.close()
            else:
                self._put_conn(conn)
            return BoshResponse(resp.status, headers_l, raw, elapsed, request=data)
        raise BoshError("unreachable")

    def raw(self, data, timeout=None, headers=None, method="POST"):
        """Send an arbitrary HTTP body (str/bytes); no rid/sid bookkeeping; any status."""
        return self.post(data, timeout=timeout, headers=headers, method=method)

    # ------------------------------------------------------------------ BOSH bodies
    @staticmethod
    def build_body(payload="", attrs=None):
        attrs = dict(attrs or {})
        parts = ["<body xmlns='%s'" % NS_BOSH]
        if any(k.startswith("xmpp:") for k in attrs) and "xmlns:xmpp" not in attrs:
            attrs["xmlns:xmpp"] = NS_XBOSH
        for k, v in attrs.items():
            if v is None:
                continue
            parts.append(" %s=%s" % (k, quoteattr(str(v))))
        if payload:
            return "".join(parts) + ">" + payload + "</body>"
        return "".join(parts) + "/>"

    @staticmethod
    def _attr_names(kw):
        out = {}
        for k, v in kw.items():
            for p in ("xmpp_", "xml_", "xmlns_"):
                if k.startswith(p):
                    k = p[:-1] + ":" + k[len(p):]
                    break
            out[k] = v
        return out

    def next_rid(self):
        with self._send_lock:
            self.rid += 1
            return self.rid

    def request(self, payload="", rid=None, sid=True, attrs=None, timeout=None, check=True,
                process=True, slot=True, **kw):
        """Send one BOSH request and return its BoshResponse.

        rid: None = next rid; an int = exactly that rid (re-send; the counter is not changed).
        sid: True = this session's sid, None/False = no sid, a string = that sid.
        attrs / **kw: more <body> attributes (xmpp_restart='true' -> xmpp:restart='true').
        check: raise BoshHTTPError on non-200 / non-<body> answers.
        process: queue the received stanzas, note a terminate.
        slot: respect the server's `requests` limit (wait for a free slot).
        """
        a = {}
        if sid is True:
            if self.sid:
                a["sid"] = self.sid
        elif sid:
            a["sid"] = sid
        a.update(self._attr_names(kw))
        a.update(attrs or {})
        if slot and not self._slots.acquire(timeout=self._default_timeout()):
            raise BoshError("no free request slot (requests=%s)" % self.requests)
        try:
            holder = {}

            class _L:
                # allocates the rid and writes the request under the send lock
                def __enter__(s):
                    self._send_lock.acquire()
                    if rid is None:
                        self.rid += 1
                        holder["rid"] = self.rid
                    else:
                        holder["rid"] = rid
                    b = self.build_body(payload, dict({"rid": holder["rid"]}, **a))
                    holder["data"] = b.encode("utf-8")

                def __exit__(s, *e):
                    self._send_lock.release()

            # the body depends on the rid, so build it inside the lock: post() with a lazy body
            resp = self._post_lazy(holder, _L(), timeout)
        finally:
            if slot:
                self._slots.release()
        resp.rid = holder.get("rid")
        self.log.append((resp.rid, resp.request, resp))
        self.last_response = resp
        if check and (resp.status != 200 or not resp.is_body):
            raise BoshHTTPError(resp)
        if process and resp.body is not None:
            self._process(resp)
        return resp

    # Like Strophe: a request whose connection broke, or that got a 5xx, is sent again with
    # the same rid and body (never skipped: the next rid would fall outside the window).
    RESENDS = 3

    def _post_lazy(self, holder, lockctx, timeout):
        for attempt in range(self.RESENDS + 1):
            try:
                resp = self._post_lazy_once(holder, lockctx, timeout)
            except BoshConnectionBroken:
                if attempt == self.RESENDS or self._aborting:
                    raise
                resp = None
            if resp is not None and (resp.status < 500 or attempt == self.RESENDS):
                return resp
            lockctx = _Null()       # the rid and body are fixed now
            time.sleep(0.1 * (attempt + 1))
        raise BoshError("unreachable")

    def _read_response(self, conn):
        """The response on conn, read whole; meanwhile conn is in _inflight (what abort
        closes)."""
        with self._pool_lock:
            self._inflight.add(conn)
        try:
            resp = conn.getresponse()
            return resp, resp.read()
        finally:
            with self._pool_lock:
                self._inflight.discard(conn)

    def _post_lazy_once(self, holder, lockctx, timeout):
        timeout = timeout or self._default_timeout()
        for attempt in (0, 1):
            conn, reused = self._get_conn(timeout)
            t0 = time.monotonic()
            try:
                with lockctx:
                    conn.request("POST", self.path, body=holder["data"], headers=self.headers)
                    t0 = time.monotonic()
                resp, raw = self._read_response(conn)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine) as e:
                conn.close()
                if reused and attempt == 0 and not self._aborting:
                    # a keep-alive connection the server had closed: same body, same rid
                    lockctx = _Null()
                    continue
                raise BoshConnectionBroken("HTTP request (rid %s) failed: %r"
                                           % (holder.get("rid"), e)) from e
            except (socket.timeout, OSError) as e:
                conn.close()
                raise BoshError("HTTP request (rid %s) failed after %.1fs: %r"
                                % (holder.get("rid"), time.monotonic() - t0, e)) from e
            elapsed = time.monotonic() - t0
            headers_l = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                conn.close()
            else:
                self._put_conn(conn)
            return BoshResponse(resp.status, headers_l, raw, elapsed, request=holder["data"])
        raise BoshError("unreachable")

    def _process(self, resp):
        if resp.body is None or not resp.is_body:
            return
        kids = list(resp.body)
        with self._cond:
            for el in kids:
                if el.tag == "{%s}features" % NS_STREAM:
                    self.features = el
                self.inbox.append(el)
                self.received.append(el)
            if resp.is_terminate and self.terminated is None:
                self.terminated = resp.condition or "terminate"
            self._cond.notify_all()

    # ------------------------------------------------------------------ session
    def create(self, check=True, **kw):
        """Session creation request (like Strophe: to, xml:lang, wait, hold, content, ver,
        xmpp:version); returns the creation BoshResponse. Extra attributes via **kw."""
        a = {"to": self.domain, "xml:lang": self.lang, "wait": self.requested_wait,
             "hold": self.hold, "content": self.content, "ver": self.ver,
             "xmpp:version": "1.0"}
        if self.route:
            a["route"] = self.route
        a.update(self._attr_names(kw))
        a = {k: v for k, v in a.items() if v is not None}
        resp = self.request("", sid=False, attrs=a, check=check, slot=False)
        self.creation = resp
        if resp.status == 200 and resp.is_body and not resp.is_terminate:
            self.sid = resp.get("sid")
            self.initial_rid = resp.rid
            if resp.get("wait") is not None:
                self.wait = int(resp.get("wait"))
            self.requests = int(resp.get("requests") or 1)
            self._slots = threading.BoundedSemaphore(max(1, self.requests))
        return resp

    def wait_for(self, pred, timeout=15.0, consume=True, poll=True):
        """The first queued stanza with pred(el) true (removed from the inbox if consume). When
        no background poller runs and poll is True, sends empty requests to fetch more."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                for i, el in enumerate(self.inbox):
                    if pred(el):
                        if consume:
                            del self.inbox[i]
                        return el
                if self.terminated is not None:
                    raise BoshTerminated(self.terminated, self.last_response)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching stanza within %.1fs (inbox: %s)"
                                       % (timeout, [ET.tostring(e)[:120] for e in self.inbox]))
                if self.poll_error is not None:
                    raise BoshError("long-poll request failed: %r" % (self.poll_error,))
                if self._polling or not poll:
                    self._cond.wait(min(left, 0.5))
                    continue
            # nobody is listening: poll (bounded by the wait the server granted)
            self.request("")

    def drain(self):
        """Empty the inbox; returns what was in it."""
        with self._cond:
            out, self.inbox = self.inbox, []
        return out

    def _await_features(self, timeout=15.0):
        return self.wait_for(lambda e: e.tag == "{%s}features" % NS_STREAM, timeout)

    def mechanisms(self):
        f = self.features
        if f is None:
            return []
        m = f.find("{%s}mechanisms" % NS_SASL)
        return [x.text for x in m.findall("{%s}mechanism" % NS_SASL)] if m is not None else []

    def _sasl_reply(self, timeout):
        return self.wait_for(lambda e: ns_of(e) == NS_SASL and
                             local_tag(e) in ("challenge", "success", "failure"), timeout)

    def login(self, user, password, mechanism="SCRAM-SHA-1", resource=None, timeout=15.0):
        """SASL (SCRAM-SHA-1 with server-signature check, or PLAIN), restart, bind, session.
        Returns the bound full JID."""
        if self.sid is None:
            self.create()
        feats = self.features
        if feats is None or feats.find("{%s}mechanisms" % NS_SASL) is None:
            feats = self._await_features(timeout)
        else:
            # consume the queued features
            with self._cond:
                if feats in self.inbox:
                    self.inbox.remove(feats)
        if mechanism not in self.mechanisms():
            raise AuthFailed("mechanism %s not offered (offered: %s)" % (mechanism, self.mechanisms()))
        if mechanism == "PLAIN":
            msg = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
            self.request("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, msg))
            r = self._sasl_reply(timeout)
            if local_tag(r) != "success":
                raise AuthFailed("PLAIN: %s" % ET.tostring(r).decode())
        elif mechanism == "SCRAM-SHA-1":
            self._scram_sha1(user, password, timeout)
        else:
            raise ValueError("unsupported mechanism %s" % mechanism)
        self.authenticated = True
        # XEP-0206 §5: restart
        self.features = None
        self.request("", to=self.domain, xml_lang=self.lang, xmpp_restart="true")
        feats = self._await_features(timeout)
        if feats.find("{%s}bind" % NS_BIND) is None:
            raise BoshError("no bind feature after restart: %s" % ET.tostring(feats).decode())
        resource = resource or "xbtest-" + uuid.uuid4().hex[:8]
        res = self.iq("set", "<bind xmlns='%s'><resource>%s</resource></bind>"
                      % (NS_BIND, escape(resource)), timeout=timeout)
        j = res.find("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND))
        if j is None or not j.text:
            raise BoshError("bind result without jid: %s" % ET.tostring(res).decode())
        self.jid = j.text
        sess = feats.find("{%s}session" % NS_SESSION)
        if sess is not None and sess.find("{%s}optional" % NS_SESSION) is None:
            self.iq("set", "<session xmlns='%s'/>" % NS_SESSION, timeout=timeout)
        return self.jid

    def _scram_sha1(self, user, password, timeout):
        scram = ScramSha1Client(user, password)
        self.request("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>"
                     % (NS_SASL, base64.b64encode(scram.client_first()).decode()))
        r = self._sasl_reply(timeout)
        if local_tag(r) != "challenge":
            raise AuthFailed("SCRAM: expected challenge, got %s" % ET.tostring(r).decode())
        final = scram.client_final(base64.b64decode(r.text or ""))
        self.request("<response xmlns='%s'>%s</response>"
                     % (NS_SASL, base64.b64encode(final).decode()))
        r = self._sasl_reply(timeout)
        if local_tag(r) == "challenge":
            # RFC 6120 allows the additional data in a final challenge
            data = base64.b64decode(r.text or "")
            self.request("<response xmlns='%s'/>" % NS_SASL)
            r2 = self._sasl_reply(timeout)
            if local_tag(r2) != "success":
                raise AuthFailed("SCRAM: %s" % ET.tostring(r2).decode())
        elif local_tag(r) == "success":
            data = base64.b64decode(r.text or "")
        else:
            raise AuthFailed("SCRAM: %s" % ET.tostring(r).decode())
        scram.verify_server_final(data)

    # ------------------------------------------------------------------ stanzas
    def send(self, payload, timeout=None):
        """Send stanza(s) (XML text, xmlns='jabber:client' added by the caller) in one request."""
        return self.request(payload, timeout=timeout)

    def iq(self, type_, payload="", to=None, timeout=15.0):
        """An iq get/set; returns the result iq (raises BoshError on type='error')."""
        iq_id = "xb" + uuid.uuid4().hex[:12]
        to_attr = " to=%s" % quoteattr(to) if to else ""
        self.request("<iq xmlns='%s' type='%s' id='%s'%s>%s</iq>"
                     % (NS_CLIENT, type_, iq_id, to_attr, payload))
        r = self.wait_for(lambda e: local_tag(e) == "iq" and e.get("id") == iq_id and
                          e.get("type") in ("result", "error"), timeout)
        if r.get("type") == "error":
            raise BoshError("iq error: %s" % ET.tostring(r).decode())
        return r

    def roster(self, timeout=15.0):
        """Roster items as a list of dicts (jid, name, subscription, groups)."""
        r = self.iq("get", "<query xmlns='%s'/>" % NS_ROSTER, timeout=timeout)
        q = r.find("{%s}query" % NS_ROSTER)
        items = []
        for it in (q.findall("{%s}item" % NS_ROSTER) if q is not None else []):
            items.append({"jid": it.get("jid"), "name": it.get("name"),
                          "subscription": it.get("subscription"),
                          "groups": [g.text for g in it.findall("{%s}group" % NS_ROSTER)]})
        return items

    def roster_add(self, jid, name=None, timeout=15.0):
        n = " name=%s" % quoteattr(name) if name else ""
        return self.iq("set", "<query xmlns='%s'><item jid=%s%s/></query>"
                       % (NS_ROSTER, quoteattr(jid), n), timeout=timeout)

    def presence(self, show=None, status=None, to=None, type_=None, priority=None):
        a = ""
        if to:
            a += " to=%s" % quoteattr(to)
        if type_:
            a += " type=%s" % quoteattr(type_)
        inner = ""
        if show:
            inner += "<show>%s</show>" % escape(show)
        if status:
            inner += "<status>%s</status>" % escape(status)
        if priority is not None:
            inner += "<priority>%d</priority>" % priority
        return self.send("<presence xmlns='%s'%s>%s</presence>" % (NS_CLIENT, a, inner)
                         if inner else "<presence xmlns='%s'%s/>" % (NS_CLIENT, a))

    def send_message(self, to, text, type_="chat", id_=None):
        id_ = id_ or "m" + uuid.uuid4().hex[:12]
        self.send(message_stanza(to, text, type_, id_))
        return id_

    def wait_for_message(self, frm=None, timeout=15.0, text=None):
        """The next <message> with a <body> from `frm` (a bare JID matches any resource)."""
        def pred(el):
            if local_tag(el) != "message" or message_body(el) is None:
                return False
            f = el.get("from") or ""
            if frm and not (f == frm or bare(f) == frm):
                return False
            return text is None or message_body(el) == text
        return self.wait_for(pred, timeout)

    def wait_for_presence(self, frm=None, timeout=15.0):
        def pred(el):
            f = el.get("from") or ""
            return local_tag(el) == "presence" and (frm is None or f == frm or bare(f) == frm)
        return self.wait_for(pred, timeout)

    # ------------------------------------------------------------------ long-poll mode
    def start_polling(self):
        """Keep one empty request held at all times on its own connection (like Strophe);
        received stanzas go to the inbox."""
        if self._poller is not None and self._poller.is_alive():
            return
        self._polling = True
        self.poll_error = None
        self._poller = threading.Thread(target=self._poll_loop, name="bosh-poll-%s" % self.sid,
                                        daemon=True)
        self._poller.start()

    def _poll_loop(self):
        try:
            while self._polling and self.terminated is None:
                self.request("")
        except Exception as e:  # noqa: BLE001 - reported to waiters
            if self._polling and self.terminated is None:
                self.poll_error = e
        finally:
            with self._cond:
                self._polling = False
                self._cond.notify_all()

    def stop_polling(self, timeout=None):
        """Stop the poller (aborts a held request by closing its socket)."""
        self._polling = False
        t = self._poller
        if t is None:
            return
        t.join(0.2)
        if t.is_alive():
            self._abort_inflight()
            t.join(timeout or 5.0)
            self._aborting = False
        self._poller = None

    def _abort_inflight(self):
        self._aborting = True
        with self._pool_lock:
            conns = list(self._inflight)
        for c in conns:
            try:
                if c.sock is not None:
                    c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def terminate(self, payload=None, timeout=None):
        """type='terminate' with unavailable presence (like Strophe); stops the poller."""
        if payload is None:
            payload = "<presence xmlns='%s' type='unavailable'/>" % NS_CLIENT
        self._polling = False
        try:
            resp = self.request(payload, type="terminate", timeout=timeout or 15, check=False)
        finally:
            self.stop_polling()
        if self.terminated is None:
            self.terminated = "terminate"
        return resp

    def close(self):
        """Drop everything locally (no terminate sent)."""
        self._polling = False
        self._abort_inflight()
        if self._poller is not None:
            self._poller.join(5.0)
            self._poller = None
        with self._pool_lock:
            conns, self._pool = self._pool, []
        for c in conns:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.end_quietly(timeout=None)

    def end_quietly(self, timeout=5):
        """Cleanup after a test: terminate the session if it is still open (errors ignored),
        then close the connections."""
        try:
            if self.sid and self.terminated is None:
                self.terminate(timeout=timeout)
        except Exception:
            pass
        self.close()


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *e):
        return False


def attach_prebound(url, domain, answer, wait=20, headers=None, client_tag=None):
    """A BoshClient attached to a prebound session (a prebind answer {"jid", "sid", "rid"}) the
    way Strophe's attach(jid, sid, rid) does it: the answer's rid is used by the first request."""
    c = BoshClient(url, domain, wait=wait, headers=headers, client_tag=client_tag)
    c.sid = answer["sid"]
    c.jid = answer["jid"]
    c.rid = int(answer["rid"]) - 1
    c.requests = 2
    c.authenticated = True
    c._slots = threading.BoundedSemaphore(2)
    return c


def prebound_pair_chats(url, domain, answer_a, answer_b):
    """Two prebound sessions attach at `url`; each sends the other a message that must arrive;
    then both end."""
    a, b = attach_prebound(url, domain, answer_a), attach_prebound(url, domain, answer_b)
    try:
        a.start_polling()
        b.start_polling()
        a.presence()
        b.presence()
        a.send_message(b.jid, "hello from %s" % a.jid)
        assert message_body(b.wait_for_message(a.jid.split("/")[0], 15)) == \
            "hello from %s" % a.jid
        b.send_message(a.jid, "hello back")
        assert message_body(a.wait_for_message(b.jid.split("/")[0], 15)) == "hello back"
    finally:
        for c in (a, b):
            c.terminate(timeout=5)
            c.close()
