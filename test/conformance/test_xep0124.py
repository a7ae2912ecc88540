"""XEP-0124 (BOSH) v1.11.2 conformance: one test per item of the checklist in
shared/references/bosh-anchors.md §5, named test_cSSss<item>_<what>: SSss is the section (0702 =
§7.2, 1403 = §14.3), the letter numbers the items of that section. Each docstring paraphrases the
requirement. The tests talk only BOSH over HTTP to `target.bosh_url`; optional features are
tested as well, so a target without them fails those items."""
import re
import socket
import threading
import time
import urllib.parse

import pytest

from xbtest.bosh import NS_BOSH, NS_CLIENT, BoshClient, BoshError, local_tag

from .bosh_helpers import (CREATION_ONLY, MAX_RID, Held, KeyedClient, body, creation_attrs,
                           decoded, is_terminate, norm_ctype, ping, session_gone)

ANSWER = 6.0        # "at once" on a loaded machine: well below every wait used with it


def _ver(v):
    return tuple(int(x) for x in v.split("."))


def created(bosh, wait=5, hold=1, **kw):
    c = bosh(wait=wait, hold=hold)
    r = c.create(check=False, **kw)
    assert r.status == 200 and r.is_body and r.type is None and r.get("sid"), r
    return c, r


# ---------------------------------------------------------------------------------- §5 HTTP
def test_c0500a_post_only(target, bosh):
    """§5: BOSH requests are HTTP POSTs; a GET carrying a session creation body creates no
    session."""
    c = bosh()
    data = body("", **creation_attrs(target, c.rid))
    r = c.raw(data, method="GET")
    assert not (r.status == 200 and r.is_body and r.get("sid")), r


def test_c0500b_no_chunked_responses(target, bosh):
    """§5: the chunked transfer coding SHOULD NOT be used for responses (creation, held)."""
    c, r = created(bosh, wait=2)
    assert "chunked" not in r.headers.get("transfer-encoding", "").lower(), r.headers
    r2 = c.request("", check=False)
    assert r2.status == 200, r2
    assert "chunked" not in r2.headers.get("transfer-encoding", "").lower(), r2.headers


def test_c0500c_content_encoding_follows_accept_encoding(target, bosh):
    """§5/§7.2: responses MAY be compressed with a Content-Encoding the request's
    Accept-Encoding allows (after `accept` advertised it); never with one it does not allow."""
    c = bosh(wait=3)
    rid = c.rid
    r = decoded(c.post(body("", accept="gzip", **creation_attrs(target, rid, wait=3)),
                       headers={"Accept-Encoding": "gzip"}))
    assert r.status == 200 and r.get("sid"), r
    sid = r.get("sid")
    assert "gzip" in (r.get("accept") or "").split(","), \
        "creation response does not advertise accept='gzip': %r" % r.raw
    r2 = decoded(c.post(body("", rid=rid + 1, sid=sid), headers={"Accept-Encoding": "gzip"}))
    assert r2.status == 200 and r2.is_body, r2
    assert r2.encoded, "response not gzip-encoded although accepted: %r" % (r2.headers,)
    r3 = c.post(body("", rid=rid + 2, sid=sid), headers={"Accept-Encoding": "identity"})
    assert r3.headers.get("content-encoding", "identity").lower() == "identity", r3.headers
    assert r3.status == 200 and r3.is_body, r3


def test_c0500d_request_content_type_ignored(target, bosh):
    """§5: the CM SHOULD ignore the Content-Type of a request."""
    c = bosh(headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = c.create(check=False)
    assert r.status == 200 and r.type is None and r.get("sid"), r


# ---------------------------------------------------------------------------------- §6 body
def test_c0600a_response_is_one_httpbind_body(target, bosh):
    """§6: every response is exactly one <body/> element qualified by the httpbind namespace."""
    c, r = created(bosh, wait=2)
    r2 = c.request("", check=False)
    r3 = c.terminate()
    for resp in (r, r2, r3):
        assert resp.parse_error is None, resp
        assert resp.body is not None and resp.body.tag == "{%s}body" % NS_BOSH, resp


def test_c0600b_response_has_no_comment_pi_dtd_or_text(target, login):
    """§6: a body holds no comments, processing instructions, DTD, or character data at body
    level."""
    c = login("alice", wait=2)
    c.request(ping("c0600b", target.domain))
    c.request("")
    for _rid, _req, resp in c.log:
        raw = resp.raw.decode("utf-8", "replace")
        rest = re.sub(r"^\s*<\?xml[^?]*\?>", "", raw)       # an XML declaration is allowed
        assert "<!--" not in rest and "<?" not in rest and "<!DOCTYPE" not in rest, raw
        if resp.body is not None:
            assert not (resp.body.text or "").strip(), raw
            assert all(not (el.tail or "").strip() for el in resp.body), raw


def test_c0600c_request_with_dtd_refused(target, bosh):
    """§6: a request carrying a DTD (or non-predefined entities) is refused: bad-request."""
    c = bosh()
    r = c.raw("<?xml version='1.0'?><!DOCTYPE body [<!ENTITY a 'aaaa'>]>"
              + body("&a;", **creation_attrs(target, c.rid)).replace("&amp;a;", "&a;"))
    assert r.status == 200 and is_terminate(r, "bad-request"), r


def test_c0600d_request_without_rid_refused(target, bosh):
    """§6: every request carries a rid; one without is refused: bad-request."""
    c = bosh()
    a = creation_attrs(target, c.rid)
    del a["rid"]
    r = c.raw(body("", **a))
    assert r.status == 200 and is_terminate(r, "bad-request"), r


# ------------------------------------------------------------------- §7.1 creation request
def test_c0701a_creation_request_with_standard_attributes(target, bosh):
    """§7.1: a creation request with to, xml:lang, ver, wait and hold opens a session."""
    c = bosh(wait=7)
    r = c.create(check=False)
    assert r.status == 200 and r.type is None and r.get("sid"), r
    assert int(r.get("wait")) <= 7


def test_c0701b_route_and_from_accepted(target, bosh):
    """§7.1: optional `route` ("proto:host:port") and `from` are accepted (a single-server CM
    MAY ignore route)."""
    c = bosh(route="xmpp:127.0.0.1:%d" % target.c2s_port)
    r = c.create(check=False, **{"from": target.jid("alice")})
    assert r.status == 200 and r.type is None and r.get("sid"), r


def test_c0701c_content_attribute_sets_response_content_type(target, bosh):
    """§7.1: with `content` in the creation request, responses MUST use that Content-Type."""
    want = "application/xml; charset=utf-8"
    c = bosh(wait=2, content=want)
    r = c.create(check=False)
    assert r.status == 200 and r.get("sid"), r
    assert norm_ctype(r.headers.get("content-type")) == norm_ctype(want), r.headers
    r2 = c.request("", check=False)
    assert norm_ctype(r2.headers.get("content-type")) == norm_ctype(want), r2.headers


def test_c0701d_default_content_type_text_xml_utf8(target, bosh):
    """§7.1: without `content`, responses are text/xml; charset=utf-8."""
    c = bosh(wait=2, content=None)
    r = c.create(check=False)
    assert r.status == 200 and r.get("sid"), r
    assert norm_ctype(r.headers.get("content-type")) == "text/xml;charset=utf-8", r.headers


def test_c0701e_wait_zero_is_polling_session(target, bosh):
    """§7.1/§12: wait='0' asks for a polling session: an empty request is answered at once."""
    c = bosh(wait=0, timeout=40)
    r = c.create(check=False)
    assert r.status == 200 and r.type is None and r.get("sid"), r
    assert int(r.get("wait")) == 0, r
    r2 = c.request("", check=False)
    assert r2.status == 200 and r2.type is None, r2
    assert r2.elapsed < ANSWER, r2


def test_c0701f_hold_zero_is_polling_session(target, bosh):
    """§7.1/§7.2: hold='0' asks for a polling session: the CM holds no request (hold <= the
    client's) and answers an empty request at once."""
    c = bosh(wait=8, hold=0)
    r = c.create(check=False)
    assert r.status == 200 and r.type is None and r.get("sid"), r
    assert int(r.get("hold", "0")) == 0, r
    r2 = c.request("", check=False)
    assert r2.status == 200 and r2.type is None, r2
    assert r2.elapsed < ANSWER, r2


def test_c0701g_request_with_invalid_sid_item_not_found(target, bosh):
    """§7.1/§17.2: requests after creation MUST carry a valid sid; an unknown sid is answered
    terminate item-not-found."""
    c = bosh()
    r = c.request("", rid=123456789, sid="0123456789abcdef0123456789abcdef", check=False)
    assert r.status == 200 and is_terminate(r, "item-not-found"), r


# ------------------------------------------------------------------ §7.2 creation response
def test_c0702a_sid_present_and_opaque(target, bosh):
    """§7.2: the creation response MUST carry a sid (unique, unpredictable)."""
    c, r = created(bosh)
    sid = r.get("sid")
    assert len(sid) >= 16, sid
    assert not sid.isdigit(), sid


def test_c0702b_wait_not_above_requested(target, bosh):
    """§7.2: the response MUST carry wait, not above what the client asked."""
    for asked in (7, 3600):
        c, r = created(bosh, wait=asked)
        assert r.get("wait") is not None, r
        assert 0 <= int(r.get("wait")) <= asked, r


def test_c0702c_creation_response_requests_is_hold_plus_one(target, bosh):
    """§7.2: the response MUST carry requests > hold; RECOMMENDED hold+1."""
    c, r = created(bosh, hold=1)
    hold = int(r.get("hold", "1"))
    assert r.get("requests") is not None, r
    assert int(r.get("requests")) == hold + 1, r


def test_c0702d_ver_is_min_of_client_and_server(target, bosh):
    """§7.2: the response SHOULD carry ver, the lower of the client's and the CM's highest."""
    for client_ver in ("1.6", "1.8", "1.11"):
        c = bosh(ver=client_ver)
        r = c.create(check=False)
        assert r.status == 200 and r.get("sid"), r
        assert r.get("ver") is not None, r
        assert re.fullmatch(r"\d+\.\d+", r.get("ver")), r
        assert _ver(r.get("ver")) <= _ver(client_ver), (client_ver, r.raw)


def test_c0702e_polling_inactivity_hold_advertised(target, bosh):
    """§7.2: the response SHOULD carry polling, inactivity and hold (hold <= the client's)."""
    c, r = created(bosh, hold=1)
    for name in ("polling", "inactivity", "hold"):
        assert r.get(name) is not None, (name, r.raw)
    assert int(r.get("hold")) <= 1, r


def test_c0702f_from_is_the_domain(target, bosh):
    """§7.2: the response SHOULD carry from = the domain the client asked for."""
    c, r = created(bosh)
    assert r.get("from") == target.domain, r


def test_c0702g_accept_advertised(target, bosh):
    """§7.2: the response MAY carry accept: the content codings the CM can send (comma list)."""
    c, r = created(bosh)
    acc = r.get("accept")
    assert acc, "no accept attribute: %r" % r.raw
    assert all(re.fullmatch(r"[a-z0-9-]+", x) for x in acc.split(",")), acc


def test_c0702h_maxpause_advertised(target, bosh):
    """§7.2/§10: the response SHOULD carry maxpause when pause is supported (tested as the
    optional pause feature)."""
    c, r = created(bosh)
    assert r.get("maxpause") is not None, "no maxpause: %r" % r.raw
    assert int(r.get("maxpause")) > 0, r


def test_c0702i_creation_attributes_absent_from_other_responses(target, login):
    """§7.2: sid, wait, requests, polling, inactivity, hold, ver, accept, maxpause, charsets
    SHOULD NOT appear in other responses."""
    c = login("alice", wait=2)
    c.request(ping("c0702i", target.domain))
    for _rid, _req, resp in c.log[1:]:
        extra = [a for a in CREATION_ONLY if resp.get(a) is not None]
        assert not extra, (extra, resp.raw)


def test_c0702j_attribute_types_match_schema(target, bosh):
    """§7.2/§22: hold and requests are unsignedByte; wait, inactivity, polling, maxpause are
    unsignedShort; ack is a positiveInteger."""
    c, r = created(bosh, ack="1")
    for name, hi in (("hold", 255), ("requests", 255), ("wait", 65535), ("inactivity", 65535),
                     ("polling", 65535), ("maxpause", 65535)):
        v = r.get(name)
        if v is not None:
            assert re.fullmatch(r"\d+", v) and int(v) <= hi, (name, v)
    if r.get("ack") is not None:
        assert re.fullmatch(r"[1-9]\d*", r.get("ack")), r


# ------------------------------------------------------------------------- §8 payloads
def test_c0800a_payloads_forwarded_answered_http_200(target, login):
    """§8: payloads are forwarded to the server; every response is HTTP 200 with a body."""
    c = login("alice", wait=5)
    c.request(ping("c0800a", target.domain))
    res = c.wait_for(lambda e: e.get("id") == "c0800a", timeout=15)
    assert res.get("type") == "result"
    assert all(resp.status == 200 and resp.is_body for _r, _q, resp in c.log)


def test_c0800b_held_request_answered_when_next_arrives(target, login):
    """§8: at most `hold` requests are held; when a new request arrives the oldest held one is
    answered."""
    c = login("alice", wait=15)
    h = Held(c, "")
    t0 = time.monotonic()
    c.request(ping("c0800b", target.domain), slot=False, check=False)
    r = h.get(ANSWER + 15)
    assert r.status == 200 and r.is_body, r
    assert h.done_at - t0 < ANSWER, "held request answered %.1f s after the next one" \
        % (h.done_at - t0)


def test_c0800c_responses_in_rid_order(target, login):
    """§8/§14.2: the CM responds in rid order: the answer to rid N comes no later than the
    answer to N+1."""
    c = login("alice", wait=4)
    base = c.rid
    later = Held(c, ping("c0800c-2", target.domain), rid=base + 2)
    t_sent = time.monotonic()
    first = c.request(ping("c0800c-1", target.domain), rid=base + 1, slot=False, check=False)
    r2 = later.get(c.wait + 15)
    c.rid = base + 2
    assert first.status == 200 and r2.status == 200
    assert later.done_at >= t_sent, "rid N+1 answered before rid N was even sent"


def test_c0800d_empty_request_held_until_wait(target, login):
    """§8: with nothing to send, the CM holds a request up to `wait` s, then answers an empty
    body."""
    c = login("alice", wait=2)
    r = c.request("")
    if r.children:
        r = c.request("")
    assert r.type is None and r.children == [], r
    assert 1.5 <= r.elapsed < 2 + ANSWER, r


# ------------------------------------------------------------------------------ §9 acks
def test_c0901a_creation_response_ack_is_creation_rid(target, bosh):
    """§9.1/§7.2: to a creation request with ack='1', a CM that uses acks answers ack = the
    creation rid."""
    c = bosh()
    r = c.create(check=False, ack="1")
    rid = r.rid                      # the rid the creation request carried
    assert r.status == 200 and r.get("sid"), r
    assert r.get("ack") == str(rid), "ack %r, creation rid %d" % (r.get("ack"), rid)


def test_c0901b_ack_sent_when_it_differs_from_the_answered_rid(target, bosh, users):
    """§9.1: ack = highest rid received with all lower ones received; present when it differs
    from the rid answered, omitted when equal."""
    c = bosh(wait=8)
    r = c.create(check=False, ack="1")
    assert r.get("ack") is not None, "the CM does not use acks: %r" % r.raw
    c.login("alice", users["alice"])
    h = Held(c, "")
    held_rid = c.rid
    r_next = c.request(ping("c0901b", target.domain), slot=False, check=False)
    r_held = h.get(ANSWER + 8)
    assert r_held.get("ack") == str(held_rid + 1), r_held
    if r_next.get("ack") is not None:
        assert r_next.get("ack") != str(r_next.rid), r_next


def test_c0902a_report_and_time_when_client_ack_is_behind(target, bosh, users):
    """§9.2: a client ack below the last answered rid MAY be answered at once with
    report = ack+1 and time = ms since that response."""
    c = bosh(wait=10)
    r = c.create(check=False, ack="1")
    assert r.get("ack") is not None, "the CM does not use acks: %r" % r.raw
    c.login("alice", users["alice"])
    r1 = c.request(ping("c0902a", target.domain), check=False, ack=c.rid)
    c.wait_for(lambda e: e.get("id") == "c0902a", timeout=15)
    last = c.log[-1][2].rid
    behind = last - 1
    r = c.request("", check=False, ack=behind)
    assert r.get("report") == str(behind + 1), r
    assert r.get("time") is not None and int(r.get("time")) >= 0, r
    assert r.elapsed < ANSWER, r
    assert r1.status == 200


# ------------------------------------------------------------------ §10 inactivity, pause
def test_c1000a_inactive_session_ends_silently(target, bosh):
    """§10: after `inactivity` s with no request held the CM ends the session; a later request
    is answered as for a session that does not exist."""
    c, r = created(bosh)
    inactivity = int(r.get("inactivity"))
    assert inactivity <= 30, "inactivity %d too long for this suite" % inactivity
    time.sleep(inactivity + 4)
    assert session_gone(c), "session alive %d s after its inactivity of %d s" \
        % (inactivity + 4, inactivity)
    c.terminated = "gone"


def test_c1000b_pause_above_maxpause_policy_violation(target, bosh):
    """§10: pause is allowed only up to maxpause; above it the session ends with
    policy-violation."""
    c, r = created(bosh)
    assert r.get("maxpause") is not None, "pause not supported (no maxpause): %r" % r.raw
    r2 = c.request("", pause=int(r.get("maxpause")) + 1, check=False)
    assert is_terminate(r2, "policy-violation"), r2


def test_c1000c_pause_answers_held_requests_without_payload(target, login):
    """§10: on pause <= maxpause the CM answers all held requests at once; the pause response
    MUST NOT carry payloads."""
    c = login("alice", wait=15)
    assert c.creation.get("maxpause") is not None, "pause not supported (no maxpause)"
    pause = min(int(c.creation.get("maxpause")), int(c.creation.get("inactivity")))
    h = Held(c, "")
    t0 = time.monotonic()
    rp = c.request("", pause=pause, slot=False, check=False, timeout=ANSWER + 6)
    assert rp.status == 200 and not rp.is_terminate, rp
    assert rp.children == [], rp
    assert time.monotonic() - t0 < ANSWER, rp
    rh = h.get(ANSWER)
    assert rh.status == 200 and not rh.is_terminate, rh
    assert h.done_at - t0 < ANSWER


def test_c1000d_pause_extends_inactivity(target, bosh):
    """§10: after pause=P the session survives P s without requests, even when P exceeds
    inactivity."""
    c, r = created(bosh)
    assert r.get("maxpause") is not None, "pause not supported (no maxpause): %r" % r.raw
    inactivity = int(r.get("inactivity"))
    pause = inactivity + 8
    assert pause <= int(r.get("maxpause")), r
    rp = c.request("", pause=pause, check=False)
    assert rp.status == 200 and not rp.is_terminate, rp
    time.sleep(inactivity + 3)
    r2 = c.request("", check=False, timeout=40)
    assert r2.status == 200 and not r2.is_terminate, r2


# ------------------------------------------------------------------------ §11 overactivity
def test_c1100a_more_than_requests_unanswered_policy_violation(target, login):
    """§11: more than `requests` new requests before the CM answered any (none a pause or
    terminate) -> policy-violation.

    Only reachable with hold >= 2: the window (§14.2, rid <= highest processed + requests)
    admits at most `requests` - 1 early requests besides the `hold` held ones, so with hold=1
    (requests=2) no client can have more than `requests` unanswered: n/a where the CM caps hold
    at 1. With hold=2, requests=3: rid+1 and rid+2 held (empty), rid+4 and rid+5 early (inside
    the window once rid+2 is processed), then rid+3 makes five unanswered."""
    c = login("alice", wait=10, hold=2)
    hold = int(c.creation.get("hold") or 1)
    requests = int(c.creation.get("requests"))
    if hold < 2:
        pytest.skip("n/a: the CM caps hold at %d, so the window keeps unanswered requests "
                    "<= requests=%d" % (hold, requests))
    rid0 = c.rid
    order = [1, 2] + list(range(hold + 2, hold + requests)) + [hold + 1]
    socks = []
    for k in order:
        data = body("", rid=rid0 + k, sid=c.sid).encode()
        sk = socket.create_connection((c.host, c.port), timeout=40)
        sk.sendall(("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/xml; charset=utf-8"
                    "\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                    % (c.path, c.host, c.port, len(data))).encode() + data)
        socks.append(sk)
        time.sleep(0.4)      # processed in this order (the window moves with rid+2)
    c.rid = rid0 + len(order)
    raws = []
    for sk in socks:
        chunks = []
        try:
            while True:
                d = sk.recv(65536)
                if not d:
                    break
                chunks.append(d)
        except OSError:
            pass
        sk.close()
        raws.append(b"".join(chunks))
    c.terminated = "gone"
    assert any(b"policy-violation" in r for r in raws), raws


def test_c1100b_requests_empty_within_polling_policy_violation(target, login):
    """§11: `requests` new unanswered requests, the last one empty and the last two within
    `polling` s -> policy-violation."""
    c = login("alice", wait=6)
    polling = int(c.creation.get("polling") or 0)
    assert polling >= 1, "no polling interval advertised"
    h = Held(c, "", settle=0.3)
    r = c.request("", slot=False, check=False)
    rh = h.get(ANSWER + 6)
    assert is_terminate(r, "policy-violation") or is_terminate(rh, "policy-violation"), (rh, r)


# ----------------------------------------------------------------------------- §12 polling
def test_c1200a_polling_session_inactivity_exceeds_polling(target, bosh):
    """§12: for a polling session inactivity SHOULD exceed polling."""
    c = bosh(wait=0, hold=0, timeout=40)
    r = c.create(check=False)
    assert r.status == 200 and r.get("sid"), r
    assert int(r.get("inactivity")) > int(r.get("polling")), r


def test_c1200b_two_empty_polls_within_polling_policy_violation(target, bosh):
    """§12: two empty new requests within `polling` s, the first answered without payload ->
    policy-violation."""
    c = bosh(wait=0, hold=0, timeout=40)
    r = c.create(check=False)
    assert r.status == 200 and r.get("sid"), r
    polling = int(r.get("polling") or 0)
    assert polling >= 1, r
    time.sleep(polling + 0.5)       # the creation response is no empty answer, but be clear
    for _ in range(3):
        r1 = c.request("", check=False)
        if not r1.children:
            break
    assert r1.children == [] and not r1.is_terminate, r1
    r2 = c.request("", check=False)
    assert is_terminate(r2, "policy-violation"), r2


# --------------------------------------------------------------------------- §13 terminate
def test_c1300a_terminate_payload_forwarded(target, login):
    """§13: the CM MUST forward the payloads of the terminate request to the server."""
    bob = login("bob", poll=True, wait=5)
    alice = login("alice", wait=5)
    msg = ("<message xmlns='%s' to='%s' type='chat' id='c1300a'><body>bye c1300a</body>"
           "</message>" % (NS_CLIENT, bob.jid))
    r = alice.terminate(payload=msg)
    assert r.status == 200 and r.type == "terminate", r
    got = bob.wait_for_message(text="bye c1300a", timeout=15)
    assert got is not None


def test_c1300b_terminate_answers_held_request(target, login):
    """§13: on terminate, held requests are answered at once (the oldest SHOULD carry
    type='terminate'); the session is gone afterwards."""
    c = login("carol", wait=20)
    h = Held(c, "", process=False)
    t0 = time.monotonic()
    r = c.terminate()
    rh = h.get(ANSWER)
    assert r.status == 200 and rh.status == 200
    assert r.type == "terminate" or rh.type == "terminate", (rh, r)
    assert h.done_at - t0 < ANSWER
    assert session_gone(c)


# ------------------------------------------------------------------------------ §14 rids
def test_c1401a_rid_up_to_2_53_minus_1_accepted(target, bosh):
    """§14.1: rids are positive integers up to 2^53-1 = 9007199254740991."""
    c = bosh(wait=2)
    c.rid = MAX_RID - 2          # the creation request takes MAX_RID - 1
    r = c.create(check=False)
    assert r.status == 200 and r.type is None and r.get("sid"), r
    r2 = c.request("", check=False)
    assert r2.rid == MAX_RID
    assert r2.status == 200 and not r2.is_terminate, r2


def test_c1401b_rid_above_2_53_minus_1_refused(target, bosh):
    """§14.1: a rid above 2^53-1 is refused: bad-request."""
    c = bosh()
    r = c.raw(body("", **creation_attrs(target, MAX_RID + 1)))
    assert r.status == 200 and is_terminate(r, "bad-request"), r


def test_c1401c_rid_not_a_positive_integer_refused(target, bosh):
    """§14.1/§22: rid is a positiveInteger; 0, a negative number or text is refused:
    bad-request."""
    for rid in ("0", "-5", "12ab"):
        c = bosh()
        r = c.raw(body("", **creation_attrs(target, rid)))
        assert r.status == 200 and is_terminate(r, "bad-request"), (rid, r)


def test_c1402a_payloads_forwarded_in_rid_order(target, login):
    """§14.2: requests that arrive out of order are forwarded in rid order."""
    c = login("alice", wait=4)
    base = c.rid
    later = Held(c, ping("second", target.domain), rid=base + 2, process=True)
    c.request(ping("first", target.domain), rid=base + 1, slot=False, check=False)
    later.get(c.wait + 15)
    c.rid = base + 2
    c.wait_for(lambda e: e.get("id") == "second", timeout=10, consume=False)
    c.wait_for(lambda e: e.get("id") == "first", timeout=10, consume=False)
    ids = [e.get("id") for e in c.received if e.get("id") in ("first", "second")]
    assert ids == ["first", "second"], ids


def test_c1402b_rid_above_window_terminates_item_not_found(target, login):
    """§14.2: a rid above the window (previous rid + requests) MUST end the session with
    item-not-found."""
    c = login("alice", wait=3)
    r = c.request("", rid=c.rid + int(c.creation.get("requests")) + 1, process=False,
                  check=False)
    assert is_terminate(r, "item-not-found"), r
    assert session_gone(c), "the session survived a rid above the window"
    c.terminated = "gone"


def test_c1403a_resent_rid_gets_buffered_copy(target, login):
    """§14.3: a re-sent rid that was answered gets the buffered copy of its response (HTTP
    200)."""
    c = login("alice")
    r1 = c.request(ping("c1403a", target.domain))
    again = c.request(ping("c1403a", target.domain), rid=r1.rid, check=False)
    assert again.status == 200 and again.raw == r1.raw, (r1, again)


def test_c1403b_resent_unanswered_rid_gets_recoverable_error(target, login):
    """§14.3/§17.3: a re-sent rid not yet answered: the older request is answered at once with
    a recoverable error (type='error'); the newer one stays."""
    c = login("alice", wait=15)
    h = Held(c, "")
    rid = c.rid
    t0 = time.monotonic()
    h2 = Held(c, "", rid=rid, settle=0.5)
    r_old = h.get(ANSWER + 15)
    assert h.done_at - t0 < ANSWER, "older request not answered at once"
    assert r_old.type == "error", r_old
    r_new = h2.get(c.wait + 15)
    assert r_new.status == 200 and not r_new.is_terminate, r_new


def test_c1403c_replays_limited_policy_violation(target, login):
    """§14.3: the CM MAY limit how often a rid is re-sent; then the session ends with
    policy-violation."""
    c = login("alice")
    r1 = c.request(ping("c1403c", target.domain))
    ended = None
    for _ in range(30):
        r = c.request(ping("c1403c", target.domain), rid=r1.rid, check=False, process=False)
        if r.is_terminate:
            ended = r
            break
    assert is_terminate(ended, "policy-violation"), ended


def test_c1403d_rid_below_buffer_item_not_found(target, login):
    """§14.3: a rid too small (its response is not buffered) MUST get item-not-found."""
    c = login("alice")
    r = c.request("", rid=c.initial_rid - 10, check=False, process=False)
    assert is_terminate(r, "item-not-found"), r
    c.terminated = "gone"


# ------------------------------------------------------------------------------ §15 keys
@pytest.fixture
def keyed(target, users):
    made = []

    def make(**kw):
        kw.setdefault("wait", 5)
        c = KeyedClient(target.bosh_url, target.domain, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        try:
            if c.sid and c.terminated is None:
                c.keying = True
                c.terminate(timeout=5)
        except Exception:       # noqa: BLE001 - cleanup
            pass
        c.close()


def test_c1500a_key_sequence_accepted(target, keyed, users):
    """§15: newkey=K(n) at creation, then key=K(n-1), K(n-2)...: the session works."""
    c = keyed()
    c.create()
    c.login("alice", users["alice"])
    c.request(ping("c1500a", target.domain))
    c.wait_for(lambda e: e.get("id") == "c1500a", timeout=15)


def test_c1500b_wrong_key_not_processed_item_not_found(target, keyed, users, login):
    """§15: a key whose SHA-1 is not the previous key MUST NOT be processed; the session ends
    with item-not-found."""
    bob = login("bob", poll=True, wait=5)
    c = keyed()
    c.create()
    c.login("alice", users["alice"])
    c.keying = False
    msg = ("<message xmlns='%s' to='%s' type='chat'><body>c1500b</body></message>"
           % (NS_CLIENT, bob.jid))
    r = c.request(msg, check=False, key="0" * 40)
    assert is_terminate(r, "item-not-found"), r
    c.terminated = "gone"
    with pytest.raises(TimeoutError):
        bob.wait_for_message(text="c1500b", timeout=3)


def test_c1500c_missing_key_once_keyed_item_not_found(target, keyed, users):
    """§15: a request without key in a keyed session MUST end it with item-not-found."""
    c = keyed()
    c.create()
    c.login("alice", users["alice"])
    c.keying = False
    r = c.request(ping("c1500c", target.domain), check=False)
    assert is_terminate(r, "item-not-found"), r
    c.terminated = "gone"


def test_c1500d_key_compared_case_insensitively(target, keyed, users):
    """§15: the CM compares hex(SHA-1(key)) with the previous key case-insensitively."""
    c = keyed(upper=True)
    c.create()
    c.login("alice", users["alice"])
    c.request(ping("c1500d", target.domain))
    c.wait_for(lambda e: e.get("id") == "c1500d", timeout=15)


def test_c1500e_key_sequence_switch(target, keyed, users):
    """§15.5: at K(1) the client sends key=K(1) plus newkey=K'(n'); the new chain is accepted."""
    c = keyed(chain_len=3)
    c.create()
    c.login("alice", users["alice"])
    c.request(ping("c1500e", target.domain))
    c.wait_for(lambda e: e.get("id") == "c1500e", timeout=15)
    assert c.switches >= 2


# ---------------------------------------------------------------------- §16 multi-stream
def _streams(bosh):
    c, r = created(bosh, wait=3)
    s1 = r.get("stream")
    assert s1, "multi-stream not offered (no stream attribute): %r" % r.raw
    return c, r, s1


def test_c1600a_stream_attribute_in_creation_response(target, bosh):
    """§16: a CM that supports multiple streams names the first one in a `stream` attribute."""
    _streams(bosh)


def test_c1600b_add_stream_gets_new_stream_name(target, bosh):
    """§16: an empty body with `to` opens another stream; the response names it."""
    c, r, s1 = _streams(bosh)
    r2 = c.request("", to=target.domain, xml_lang="en", check=False)
    assert r2.get("stream") and r2.get("stream") != s1, r2


def test_c1600c_payloads_carry_stream_with_two_streams(target, bosh):
    """§16: with more than one stream open, every non-empty CM body MUST carry `stream`."""
    c, r, s1 = _streams(bosh)
    r2 = c.request("", to=target.domain, xml_lang="en", check=False)
    assert r2.get("stream"), r2
    seen = [r2] + [c.request("", check=False) for _ in range(2)]
    full = [x for x in seen if x.children]
    assert full, "no payload arrived for the second stream"
    assert all(x.get("stream") for x in full), full


def test_c1600d_unknown_stream_item_not_found(target, bosh):
    """§16: a stream name that is not open -> item-not-found."""
    c, r, s1 = _streams(bosh)
    r2 = c.request("", stream="no-such-stream-" + s1, check=False)
    assert is_terminate(r2, "item-not-found"), r2


def test_c1600e_terminate_with_stream_closes_only_that_stream(target, bosh):
    """§16: a terminate naming a stream closes that stream; the session stays."""
    c, r, s1 = _streams(bosh)
    r2 = c.request("", to=target.domain, xml_lang="en", check=False)
    s2 = r2.get("stream")
    assert s2, r2
    r3 = c.request("", type="terminate", stream=s2, check=False)
    assert r3.status == 200, r3
    r4 = c.request("", stream=s1, check=False)
    assert r4.status == 200 and not r4.is_terminate, r4


# ---------------------------------------------------------------------------- §17 errors
def test_c1701a_legacy_client_bad_request_is_http_400(target, bosh):
    """§17.1: a client without ver (legacy) gets HTTP 400 for bad-request."""
    c = bosh(ver=None)
    a = creation_attrs(target, c.rid, ver=None)
    del a["rid"]
    r = c.raw(body("", **a))
    assert r.status == 400, r


def test_c1701b_legacy_client_item_not_found_is_http_404(target, bosh):
    """§17.1: a legacy client gets HTTP 404 for item-not-found."""
    c = bosh(ver=None, wait=3)
    r = c.create(check=False)
    assert r.status == 200 and r.get("sid"), r
    r2 = c.request("", rid=c.rid + 1000, check=False, process=False)
    assert r2.status == 404, r2
    c.terminated = "gone"


def test_c1701c_legacy_client_policy_violation_is_http_403(target, bosh):
    """§17.1: a legacy client gets HTTP 403 for policy-violation (here: polling too often)."""
    c = bosh(ver=None, wait=0, hold=0, timeout=40)
    r = c.create(check=False)
    assert r.status == 200 and r.get("sid"), r
    time.sleep(int(r.get("polling") or 0) + 0.5)
    for _ in range(3):
        r1 = c.request("", check=False)
        if not r1.children:
            break
    r2 = c.request("", check=False, process=False)
    assert r2.status == 403, r2
    c.terminated = "gone"


def test_c1701d_non_legacy_client_gets_no_http_errors(target, login):
    """§17.1: a CM SHOULD NOT send HTTP error codes to a client that sent ver: errors are HTTP
    200 terminate bodies."""
    c0 = BoshClient(target.bosh_url, target.domain)
    try:
        a = creation_attrs(target, 1000)
        del a["rid"]
        r = c0.raw(body("", **a))
        assert r.status == 200 and r.is_terminate, r
    finally:
        c0.close()
    c = login("alice", wait=3)
    r2 = c.request("", rid=c.rid + 1000, check=False, process=False)
    assert r2.status == 200 and r2.is_terminate, r2
    c.terminated = "gone"


def test_c1702a_bad_request_for_malformed_body(target, bosh):
    """§17.2: a body that is not well-formed XML -> terminate bad-request."""
    c = bosh()
    r = c.raw(body("", **creation_attrs(target, c.rid))[:-2])
    assert r.status == 200 and is_terminate(r, "bad-request"), r


def test_c1702b_host_unknown_for_unserved_domain(target, bosh):
    """§17.2: a `to` domain the CM does not serve -> terminate host-unknown."""
    c = BoshClient(target.bosh_url, "not-served.example", wait=5)
    try:
        r = c.create(check=False)
    finally:
        c.close()
    assert r.status == 200 and is_terminate(r, "host-unknown"), r
    assert r.get("sid") is None, r


def test_c1702c_improper_addressing_without_to(target, bosh):
    """§17.2: a creation request without `to` (or route) -> terminate improper-addressing."""
    c = bosh()
    r = c.raw(body("", **creation_attrs(target, c.rid, to=None)))
    assert r.status == 200 and is_terminate(r, "improper-addressing"), r


def test_c1702d_item_not_found_after_terminate(target, login):
    """§17.2: a request to a session that no longer exists -> terminate item-not-found."""
    c = login("carol", wait=3)
    c.terminate()
    r = c.request("", check=False, process=False)
    assert r.status == 200 and is_terminate(r, "item-not-found"), r


def test_c1702e_remote_connection_failed_when_server_down(target, bosh):
    """§17.2: the XMPP server of the domain cannot be reached -> terminate
    remote-connection-failed."""
    if target.unreachable_domain is None:
        pytest.skip("n/a: %s serves its own domain (no separate XMPP server)" % target.name)
    c = BoshClient(target.bosh_url, target.unreachable_domain, wait=5)
    try:
        r = c.create(check=False)
    finally:
        c.close()
    assert r.status == 200 and is_terminate(r, "remote-connection-failed"), r


def test_c1702f_see_other_uri_with_uri_child(target, bosh):
    """§17.2: a CM that moved answers terminate see-other-uri with a <uri/> child."""
    if target.see_other_url is None:
        pytest.skip("n/a: %s has no way to answer see-other-uri" % target.name)
    c = bosh(url=target.see_other_url)
    r = c.create(check=False)
    assert r.status == 200 and is_terminate(r, "see-other-uri"), r
    uri = r.find("{%s}uri" % NS_BOSH)
    assert uri is not None and uri.text == target.see_other_uri, r


def test_c1703a_session_continues_after_recoverable_error(target, login):
    """§17.3: after a recoverable error (type='error') the client re-sends the request and the
    session goes on."""
    c = login("alice", wait=6)
    h = Held(c, "")
    rid = c.rid
    h2 = Held(c, "", rid=rid, settle=0.5)
    r_old = h.get(ANSWER + 6)
    r_new = h2.get(c.wait + 15)
    assert r_old.type == "error", r_old
    assert r_new.status == 200 and not r_new.is_terminate, r_new
    c.request(ping("c1703a", target.domain))
    c.wait_for(lambda e: e.get("id") == "c1703a", timeout=15)


# -------------------------------------------------------------------------- §19 security
def test_c1900a_sids_unique_and_unpredictable(target, bosh):
    """§19: SIDs MUST be unpredictable and non-repeating."""
    sids = []
    for _ in range(12):
        c, r = created(bosh)
        sids.append(r.get("sid"))
        c.terminate(timeout=10)
    assert len(set(sids)) == len(sids), sids
    assert len({s[:8] for s in sids}) == len(sids), "SIDs share prefixes: %r" % sids
    if all(s.isdigit() for s in sids):
        nums = sorted(int(s) for s in sids)
        assert max(b - a for a, b in zip(nums, nums[1:])) > 1000, sids


def test_c1900b_no_secure_attribute(target, bosh):
    """§19 (v1.8): the `secure` attribute was removed; a CM answering ver >= 1.8 does not send
    it."""
    c = bosh(ver="1.11")
    r = c.create(check=False)
    assert r.status == 200 and r.get("sid"), r
    assert _ver(r.get("ver", "1.0")) < (1, 8) or r.get("secure") is None, r
