"""A compact asyncio BOSH client that behaves like Strophe.js, for many sessions in one process.

Raw sockets and a small HTTP/1.1 reader (keep-alive, at most `requests` connections a session),
so hundreds of sessions cost little CPU. What it shares with Strophe (bosh-anchors.md, client
contract):
  - one request always held while logged in (an empty poll when nothing is to be sent);
  - queued stanzas leave together in the next request; never more than `requests` (hold + 1)
    requests outstanding, and a new RID only within `requests` of the oldest unanswered one
    (Strophe's `window`, set from `requests`): while a lost answer's request is re-sent, the
    client does not run ahead of it;
  - a request whose connection broke, that got no answer, a 5xx, or a recoverable
    type='error' answer is sent again with the same RID and the same bytes, after a short
    random back-off (Strophe waits min(sends^3, 1.1 x wait) s; shorter here to keep the test
    short, random so that the gateway meanwhile holds answers for requests that are gone);
    any 4xx is fatal.

    s = AsyncBoshSession('127.0.0.1', port, '/http-bind', 'example.test', tag='u1')
    await s.create(); await s.login_plain('u1', 'pw')      # starts the poller
    s.queue("<message .../>"); el = await s.wait_for(pred, 10)
    await s.terminate()

Every answer is kept per RID (`answers`: rid -> list of child Elements, the first answer that
arrived for that RID), so a test can check what the gateway delivered in RID order.
"""
import asyncio
import base64
import random
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from xml.sax.saxutils import escape, quoteattr

from .bosh import NS_BIND, NS_BOSH, NS_CLIENT, NS_SASL, NS_SESSION, NS_STREAM, NS_XBOSH, local_tag
from .lossy_proxy import HttpClosed, read_message

_sysrand = random.SystemRandom()


class AsyncBoshError(Exception):
    pass


class Broken(AsyncBoshError):
    """No HTTP answer (connection closed or broken, or timed out): the request may be re-sent."""


class AsyncBoshSession:
    RESENDS = 12            # per request; a 10 % lossy path makes 12 in a row ~1e-12

    def __init__(self, host, port, path, domain, wait=20, hold=1, tag=None, lang="en",
                 http_timeout=None, resend_delay=0.8):
        self.host, self.port, self.path, self.domain = host, port, path, domain
        self.wait, self.hold, self.lang, self.tag = wait, hold, lang, tag
        self.http_timeout = http_timeout or wait + 15
        # A re-send waits a random 0..resend_delay*n s (n-th re-send; Strophe backs off too):
        # meanwhile the gateway holds an answer for a request that is gone.
        self.resend_delay = resend_delay
        self.rid = _sysrand.randint(10 ** 9, 2 ** 44)
        self.sid = None
        self.requests = 1
        self.jid = None
        self.out = deque()          # ("stanza", xml) | ("special", attrs, payload)
        self.inflight = 0
        self.unanswered = set()     # RIDs sent (or being re-sent) without an answer yet
        self.polling = False
        self.answers = {}           # rid -> [child Elements]
        self.inbox = []
        self.terminated = None
        self.error = None           # a fatal error in a request task
        self._cond = asyncio.Condition()
        self._idle = []             # keep-alive connections: (reader, writer)
        self._tasks = set()
        self.pending = {}           # rid -> sends so far, for requests still unanswered
        self.last_answer = None     # monotonic time of the last answer
        self.counts = {"requests": 0, "resends": 0, "broken": 0, "timeouts": 0, "http_5xx": 0,
                       "recoverable": 0}

    # ------------------------------------------------------------------ HTTP
    def _host_header(self):
        return "%s:%d" % (self.host, self.port)

    async def _post_once(self, data):
        conn = self._idle.pop() if self._idle else None
        if conn is None:
            try:
                conn = await asyncio.open_connection(self.host, self.port)
            except OSError as e:
                raise Broken("connect: %r" % (e,)) from e
        reader, writer = conn
        head = ("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml; charset=utf-8\r\n"
                "Content-Length: %d\r\n\r\n" % (self.path, self._host_header(), len(data)))
        try:
            writer.write(head.encode() + data)
            async with asyncio.timeout(self.http_timeout):
                start, _headers, raw, close = await read_message(reader, True)
        except asyncio.TimeoutError:
            writer.close()
            self.counts["timeouts"] += 1
            raise Broken("no answer within %ss" % self.http_timeout) from None
        except asyncio.CancelledError:
            writer.close()
            raise
        except (HttpClosed, ConnectionError, OSError) as e:
            writer.close()
            raise Broken("connection closed: %r" % (e,)) from None
        if close:
            writer.close()
        elif len(self._idle) < 2:
            self._idle.append(conn)
        else:
            writer.close()
        status = int(start.split(b" ", 2)[1])
        body = raw[raw.index(b"\r\n\r\n") + 4:]
        return status, body

    async def exchange(self, rid, data):
        """One BOSH request, re-sent (same RID, same bytes) until it gets an answer; returns the
        <body> Element."""
        self.counts["requests"] += 1
        try:
            return await self._exchange(rid, data)
        finally:
            self.pending.pop(rid, None)

    async def _exchange(self, rid, data):
        for attempt in range(self.RESENDS + 1):
            self.pending[rid] = attempt + 1
            if attempt:
                self.counts["resends"] += 1
                await asyncio.sleep(min(self.resend_delay * attempt * _sysrand.random(), 3.0))
            try:
                status, raw = await self._post_once(data)
            except Broken:
                self.counts["broken"] += 1
                continue
            if status >= 500:
                self.counts["http_5xx"] += 1
                continue
            if status != 200:
                raise AsyncBoshError("rid %d: HTTP %d %r" % (rid, status, raw[:200]))
            try:
                body = ET.fromstring(raw)
            except ET.ParseError as e:
                raise AsyncBoshError("rid %d: not XML: %r" % (rid, raw[:200])) from e
            if body.tag != "{%s}body" % NS_BOSH:
                raise AsyncBoshError("rid %d: not a BOSH body: %r" % (rid, raw[:200]))
            if body.get("type") == "error":
                self.counts["recoverable"] += 1
                continue
            return body
        raise AsyncBoshError("rid %d: no answer after %d sends" % (rid, self.RESENDS + 1))

    def _body(self, rid, payload="", attrs=None):
        parts = ["<body xmlns='%s' rid='%d'" % (NS_BOSH, rid)]
        if self.sid:
            parts.append(" sid=%s" % quoteattr(self.sid))
        for k, v in (attrs or {}).items():
            parts.append(" %s=%s" % (k, quoteattr(str(v))))
        if any(k.startswith("xmpp:") for k in (attrs or {})):
            parts.append(" xmlns:xmpp='%s'" % NS_XBOSH)
        return ("".join(parts) + (">" + payload + "</body>" if payload else "/>")).encode()

    # ------------------------------------------------------------------ session
    async def create(self):
        self.rid += 1
        data = self._body(self.rid, attrs={
            "to": self.domain, "xml:lang": self.lang, "wait": self.wait, "hold": self.hold,
            "content": "text/xml; charset=utf-8", "ver": "1.6", "xmpp:version": "1.0"})
        body = await self.exchange(self.rid, data)
        if body.get("type") == "terminate" or not body.get("sid"):
            raise AsyncBoshError("creation refused: %s" % ET.tostring(body)[:300])
        self.sid = body.get("sid")
        self.requests = int(body.get("requests") or 1)
        self.wait = int(body.get("wait") or self.wait)
        await self._absorb(self.rid, body)
        self.polling = True
        self._kick()
        return body

    def state(self):
        """One line for a failure report."""
        age = "%.1fs ago" % (time.monotonic() - self.last_answer) if self.last_answer else "never"
        return ("%s: next rid +%d, in flight %d %s, %d queued, last answer %s, terminated %s, "
                "error %r" % (self.tag, self.rid - max(self.answers or [self.rid]), self.inflight,
                              {r - max(self.answers or [r]): n for r, n in self.pending.items()},
                              len(self.out), age, self.terminated, self.error))

    def queue(self, stanza):
        self.out.append(("stanza", stanza))
        self._kick()

    def _queue_special(self, attrs, payload=""):
        self.out.append(("special", attrs, payload))
        self._kick()

    def _kick(self):
        """Start every request the client may send now (Strophe's _throttledRequestHandler)."""
        while self.terminated is None and self.error is None and self.sid:
            if self.inflight >= self.requests:
                return
            if self.unanswered and self.rid + 1 - min(self.unanswered) >= self.requests:
                return              # the window: wait for the oldest request's answer
            if self.out:
                if self.out[0][0] == "special":
                    _, attrs, payload = self.out.popleft()
                else:
                    attrs, parts = None, []
                    while self.out and self.out[0][0] == "stanza":
                        parts.append(self.out.popleft()[1])
                    payload = "".join(parts)
            elif self.polling and self.inflight == 0:
                attrs, payload = None, ""
            else:
                return
            self.rid += 1
            data = self._body(self.rid, payload, attrs)
            self.inflight += 1
            self.unanswered.add(self.rid)
            t = asyncio.ensure_future(self._run(self.rid, data))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _run(self, rid, data):
        try:
            body = await self.exchange(rid, data)
        except Exception as e:  # noqa: BLE001 - reported to waiters
            self.inflight -= 1
            self.unanswered.discard(rid)
            self.error = e
            async with self._cond:
                self._cond.notify_all()
            return
        self.inflight -= 1
        self.unanswered.discard(rid)
        await self._absorb(rid, body)
        self._kick()

    async def _absorb(self, rid, body):
        self.last_answer = time.monotonic()
        kids = list(body)
        if rid not in self.answers:
            self.answers[rid] = kids
        async with self._cond:
            self.inbox.extend(kids)
            if body.get("type") == "terminate" and self.terminated is None:
                self.terminated = body.get("condition") or "terminate"
            self._cond.notify_all()

    async def wait_for(self, pred, timeout=20.0, consume=True):
        deadline = time.monotonic() + timeout
        async with self._cond:
            while True:
                for i, el in enumerate(self.inbox):
                    if pred(el):
                        if consume:
                            del self.inbox[i]
                        return el
                if self.error is not None:
                    raise AsyncBoshError("%s: request failed: %r" % (self.tag, self.error))
                if self.terminated is not None:
                    raise AsyncBoshError("%s: session terminated: %s" % (self.tag, self.terminated))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise asyncio.TimeoutError("%s: no matching stanza within %.1fs"
                                               % (self.tag, timeout))
                try:
                    async with asyncio.timeout(left):
                        await self._cond.wait()
                except asyncio.TimeoutError:
                    pass

    async def login_plain(self, user, password, timeout=30.0, resource=None):
        """SASL PLAIN, restart, bind (and session if required); returns the full JID."""
        is_features = lambda e: e.tag == "{%s}features" % NS_STREAM  # noqa: E731
        await self.wait_for(is_features, timeout)
        cred = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        self.queue("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, cred))
        r = await self.wait_for(lambda e: e.tag in ("{%s}success" % NS_SASL,
                                                    "{%s}failure" % NS_SASL), timeout)
        if local_tag(r) != "success":
            raise AsyncBoshError("%s: PLAIN failed: %s" % (self.tag, ET.tostring(r)[:200]))
        self._queue_special({"to": self.domain, "xml:lang": self.lang, "xmpp:restart": "true"})
        feats = await self.wait_for(is_features, timeout)
        resource = resource or "lossy-" + uuid.uuid4().hex[:8]
        res = await self.iq("set", "<bind xmlns='%s'><resource>%s</resource></bind>"
                            % (NS_BIND, escape(resource)), timeout)
        self.jid = res.find("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND)).text
        sess = feats.find("{%s}session" % NS_SESSION)
        if sess is not None and sess.find("{%s}optional" % NS_SESSION) is None:
            await self.iq("set", "<session xmlns='%s'/>" % NS_SESSION, timeout)
        return self.jid

    async def iq(self, type_, payload, timeout=20.0):
        iq_id = "a" + uuid.uuid4().hex[:12]
        self.queue("<iq xmlns='%s' type='%s' id='%s'>%s</iq>" % (NS_CLIENT, type_, iq_id, payload))
        r = await self.wait_for(lambda e: local_tag(e) == "iq" and e.get("id") == iq_id, timeout)
        if r.get("type") != "result":
            raise AsyncBoshError("%s: iq error: %s" % (self.tag, ET.tostring(r)[:300]))
        return r

    async def terminate(self, timeout=20.0):
        """type='terminate' with unavailable presence; waits (bounded) for its answer."""
        if self.terminated is not None or self.sid is None:
            return
        self.polling = False
        self._queue_special({"type": "terminate"},
                            "<presence xmlns='%s' type='unavailable'/>" % NS_CLIENT)
        deadline = time.monotonic() + timeout
        async with self._cond:
            while self.terminated is None and self.error is None and \
                    time.monotonic() < deadline:
                try:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        await self._cond.wait()
                except asyncio.TimeoutError:
                    break

    async def close(self):
        """Drop everything locally."""
        self.polling = False
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for _r, w in self._idle:
            w.close()
        self._idle = []
