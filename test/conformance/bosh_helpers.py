"""Helpers of the conformance suite: raw BOSH bodies, a request held in a thread, key chains."""
import gzip
import hashlib
import os
import threading
import time
import xml.etree.ElementTree as ET

from xbtest.bosh import NS_BOSH, NS_CLIENT, BoshClient, BoshError, BoshResponse

MAX_RID = 2 ** 53 - 1
# Every BOSH <body> attribute the XEP-0124 §7.2 creation response may carry; none of them
# SHOULD appear in another response.
CREATION_ONLY = ("sid", "wait", "requests", "polling", "inactivity", "hold", "ver", "accept",
                 "maxpause", "charsets")


def ping(iq_id, to=None):
    t = " to='%s'" % to if to else ""
    return ("<iq xmlns='%s' type='get' id='%s'%s><ping xmlns='urn:xmpp:ping'/></iq>"
            % (NS_CLIENT, iq_id, t))


def creation_attrs(target, rid, **kw):
    a = {"rid": rid, "to": target.domain, "xml:lang": "en", "wait": 5, "hold": 1,
         "ver": "1.6", "xmpp:version": "1.0"}
    for k, v in kw.items():
        a[k.replace("xmpp_", "xmpp:").replace("xml_", "xml:")] = v
    return {k: v for k, v in a.items() if v is not None}


def body(payload="", **attrs):
    """A request body (xmpp_x -> xmpp:x, xml_lang -> xml:lang)."""
    a = {}
    for k, v in attrs.items():
        a[k.replace("xmpp_", "xmpp:").replace("xml_", "xml:")] = v
    return BoshClient.build_body(payload, a)


def decoded(resp):
    """A BoshResponse whose gzip Content-Encoding (if any) is undone."""
    if resp.headers.get("content-encoding", "").lower() == "gzip":
        if not resp.raw.startswith(b"\x1f\x8b"):
            # BoshResponse inflated it already (the bytes as received are in .wire_raw)
            assert getattr(resp, "wire_raw", b"").startswith(b"\x1f\x8b"), resp.headers
            resp.encoded = True
            return resp
        raw = gzip.decompress(resp.raw)
        out = BoshResponse(resp.status, resp.headers, raw, resp.elapsed, resp.rid, resp.request)
        out.encoded = True
        return out
    resp.encoded = False
    return resp


def norm_ctype(v):
    return (v or "").replace(" ", "").lower()


class Held:
    """One request sent from a thread (so that the test can send others meanwhile):
    Held(client, payload, rid=None, **attrs).get(timeout) -> BoshResponse (or raises)."""

    def __init__(self, client, payload="", rid=None, settle=0.8, **kw):
        self.client = client
        self.result = None
        self.error = None
        self.done_at = None
        kw.setdefault("check", False)
        kw.setdefault("slot", False)

        def run():
            try:
                self.result = client.request(payload, rid=rid, **kw)
            except Exception as e:      # noqa: BLE001 - handed to get()
                self.error = e
            self.done_at = time.monotonic()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        time.sleep(settle)      # let it reach the server first

    def done(self):
        return not self.thread.is_alive()

    def get(self, timeout):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("request not answered within %.1f s" % timeout)
        if self.error is not None:
            raise self.error
        return self.result


def key_chain(seed, n):
    """[K(1), ..., K(n)] of XEP-0124 §15.1: K(1) = hex(SHA-1(seed)), K(i) = hex(SHA-1(K(i-1)))."""
    out = []
    k = seed
    for _ in range(n):
        k = hashlib.sha1(k.encode()).hexdigest()
        out.append(k)
    return out


class KeyedClient(BoshClient):
    """A BoshClient that keys its requests (XEP-0124 §15): create() sends newkey=K(n), every later
    new request key=K(n-1), K(n-2), ...; at K(1) it switches to a fresh chain (§15.5: key=K(1)
    plus newkey=K'(n')). upper=True sends the keys in upper case."""

    def __init__(self, *a, chain_len=20, upper=False, **kw):
        super().__init__(*a, **kw)
        self.chain_len = chain_len
        self.upper = upper
        self.keys = key_chain(os.urandom(8).hex(), chain_len)
        self.switches = 0
        self.keying = True

    def _fmt(self, k):
        return k.upper() if self.upper else k

    def create(self, check=True, **kw):
        kw.setdefault("newkey", self._fmt(self.keys.pop()))
        return super().create(check=check, **kw)

    def request(self, payload="", rid=None, sid=True, attrs=None, **kw):
        if self.keying and self.sid and rid is None and sid is True and self.keys:
            attrs = dict(attrs or {})
            attrs["key"] = self._fmt(self.keys.pop())
            if not self.keys:
                self.keys = key_chain(os.urandom(8).hex(), self.chain_len)
                attrs["newkey"] = self._fmt(self.keys.pop())
                self.switches += 1
        return super().request(payload, rid=rid, sid=sid, attrs=attrs, **kw)


def children_tags(resp):
    return [el.tag for el in resp.children]


def is_terminate(resp, condition=None):
    return (resp is not None and resp.is_body and resp.type == "terminate" and
            (condition is None or resp.condition == condition))


def session_gone(client):
    """True if the next request of the session is answered as for a session that does not
    exist (terminate item-not-found, or HTTP 404 for a legacy client)."""
    try:
        r = client.request("", check=False, process=False, slot=False, timeout=40)
    except BoshError:
        return False
    return r.status == 404 or is_terminate(r, "item-not-found")


def el_text(el):
    return ET.tostring(el).decode() if el is not None else None
