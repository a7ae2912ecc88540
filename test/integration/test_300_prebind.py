"""Prebind: a user logged in to the site (HTTP Basic here; any auth module works) gets a live,
bound XMPP session without an XMPP password, from `SetHandler xmpp-prebind`.

Real parts: Apache with the module and mod_auth_basic/mod_authn_file in front of the handler,
a real Prosody with the project's token provider (contrib/prosody/mod_auth_xmpp_bridge.lua)
that verifies the JWT the daemon mints, and the suite's BOSH client attaching the way Strophe's
attach() does (the returned rid is used by the first request)."""
import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
import base64

import pytest

import conftest
from xbtest.apache import Apache
from xbtest.bosh import BoshClient, attach_prebound, message_body
from xbtest.ejabberd import write_jwk
from xbtest.prosody import token_prosody
from xbtest.stack import SITE_AUTH_MODULES, site_htpasswd, token_prebind_conf

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module feature")

DOMAIN = "example.test"
SITE_USERS = {"alice": "alice-site-Pw", "bob": "bob-site-Pw", "o'neil": "oneil-site-Pw",
              "carol": "carol-site-Pw"}
XMPP_USERS = {"bob": "bob-xmpp-Pw"}   # bob also has an ordinary XMPP password (SCRAM)
SECRET = os.urandom(32)


@pytest.fixture(scope="module")
def stack(workdir, ca):
    base = tempfile.mkdtemp(dir=workdir, prefix="prebind-")
    os.chmod(base, 0o755)
    # One secret, two files: the module's (root, 0600) and Prosody's (its user, 0600).
    module_key = write_jwk(os.path.join(base, "token-key.jwk"), SECRET)
    prosody = token_prosody(os.path.join(base, "prosody"), SECRET, domain=DOMAIN, ca=ca,
                            users=XMPP_USERS)
    prosody.start()
    htpasswd = site_htpasswd(base, SITE_USERS)
    conf = token_prebind_conf(conftest.module_snapshot(), prosody, ca, module_key, htpasswd)
    site_auth = """
    AuthType Basic
    AuthName "site"
    AuthBasicProvider file
    AuthUserFile %s
    Require valid-user
""" % htpasswd
    conf += """
# the strictest check for secrets in logs: everything the module says
LogLevel info xmpp_bridge:trace1
XmppBridgeMaxWait 20
XmppBridgePrebindMaxPerUser 3
<Location /prebind-unprotected>
    SetHandler xmpp-prebind
    XmppBridgePrebindJID %{REMOTE_USER}@example.test
</Location>
<Location /site/http-bind>
""" + site_auth + """
    SetHandler xmpp-bosh
    XmppBridgeRequireSiteUser On
</Location>
<Location /site/credentials>
""" + site_auth + """
    SetHandler xmpp-credentials
    XmppBridgePrebindJID %{REMOTE_USER}@example.test
</Location>
<Location /site/logout>
""" + site_auth + """
    SetHandler xmpp-logout
</Location>
"""
    apache = Apache(os.path.join(base, "apache"), mpm="event", extra_conf=conf,
                    modules=SITE_AUTH_MODULES)
    apache.start()
    yield {"prosody": prosody, "apache": apache, "ca": ca}
    try:
        # the refusals the tests provoke on purpose, nothing else
        apache.assert_no_unexpected_log(expected_tags=("XB05050", "XB05051", "XB04026"))
    finally:
        apache.stop()
    prosody.stop()


def prebind(apache, user=None, password=None, path="/prebind", headers=None):
    req = urllib.request.Request(apache.url(path), headers={"Accept": "application/json"})
    if user is not None:
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def basic(user):
    return {"Authorization": "Basic " + base64.b64encode(
        ("%s:%s" % (user, SITE_USERS[user])).encode()).decode()}


def attach(apache, answer, path="/http-bind", headers=None):
    """What Strophe's attach(jid, sid, rid) does: the next request carries `rid`."""
    return attach_prebound(apache.url(path), DOMAIN, answer, headers=headers)


def test_301_prebind_answers_converse_contract(stack):
    status, headers, body = prebind(stack["apache"], "alice", SITE_USERS["alice"])
    assert status == 200, body
    answer = json.loads(body)
    assert set(answer) == {"jid", "sid", "rid"}
    assert answer["jid"].startswith("alice@%s/" % DOMAIN)     # the bound full JID
    assert isinstance(answer["rid"], int) and 2 ** 32 <= answer["rid"] < 2 ** 53
    assert len(answer["sid"]) >= 32
    assert headers.get("Cache-Control") == "no-store"
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Content-Type", "").startswith("application/json")
    assert "Access-Control-Allow-Origin" not in headers


def test_302_attached_session_chats(stack, users):
    status, _, body = prebind(stack["apache"], "alice", SITE_USERS["alice"])
    assert status == 200, body
    a = attach(stack["apache"], json.loads(body))
    # bob logs in the ordinary way (password, SCRAM-SHA-1) through the same gateway
    b = BoshClient(stack["apache"].url("/http-bind"), DOMAIN, wait=20)
    b.create()
    b.login("bob", XMPP_USERS["bob"])
    try:
        a.start_polling()
        b.start_polling()
        a.presence()
        b.presence()
        b.send_message(a.jid, "hello prebound alice")
        assert message_body(a.wait_for_message("bob@" + DOMAIN, 15)) == "hello prebound alice"
        a.send_message("bob@" + DOMAIN, "hello bob, from a session I never typed a password for")
        got = b.wait_for_message("alice@" + DOMAIN, 15)
        assert message_body(got) == "hello bob, from a session I never typed a password for"
    finally:
        for c in (a, b):
            c.terminate(timeout=5)
            c.close()


def test_303_each_call_gives_a_fresh_session(stack):
    answers = []
    for _ in range(2):
        status, _, body = prebind(stack["apache"], "alice", SITE_USERS["alice"])
        assert status == 200, body
        answers.append(json.loads(body))
    assert answers[0]["sid"] != answers[1]["sid"]
    assert answers[0]["jid"] != answers[1]["jid"]      # a unique resource per prebind


def test_304_escaped_localpart(stack):
    status, _, body = prebind(stack["apache"], "o'neil", SITE_USERS["o'neil"])
    assert status == 200, body
    assert json.loads(body)["jid"].startswith("o\\27neil@%s/" % DOMAIN)   # XEP-0106


def test_305_unprotected_location_refuses(stack):
    mark = stack["apache"].log_mark()
    status, headers, body = prebind(stack["apache"], path="/prebind-unprotected")
    assert status == 500
    assert json.loads(body) == {"error": "not-protected"}
    assert headers.get("Content-Type", "").startswith("application/json")
    lines = stack["apache"].unexpected_log_lines(since=mark)
    assert any("XB05050" in l for l in lines), lines


def test_306_wrong_site_password_never_reaches_xmpp(stack):
    status, _, _ = prebind(stack["apache"], "alice", "not-her-password")
    assert status == 401


def test_307_cross_site_refused(stack):
    mark = stack["apache"].log_mark()
    status, _, body = prebind(stack["apache"], "alice", SITE_USERS["alice"],
                              headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and json.loads(body)["error"] == "cross-site"
    status, _, body = prebind(stack["apache"], "alice", SITE_USERS["alice"],
                              headers={"Origin": "http://evil.example"})
    assert status == 403
    status, _, body = prebind(stack["apache"], "alice", SITE_USERS["alice"],
                              headers={"Sec-Fetch-Site": "same-origin"})
    assert status == 200, body
    assert any("XB05051" in l for l in stack["apache"].unexpected_log_lines(since=mark))


def test_308_no_secret_in_any_log(stack):
    status, _, body = prebind(stack["apache"], "alice", SITE_USERS["alice"])
    answer = json.loads(body)
    logs = open(stack["apache"].error_log_path).read()
    logs += open(stack["prosody"].log_path).read()
    assert answer["sid"] not in logs
    assert str(answer["rid"]) not in logs
    assert "eyJ" not in logs                           # no JWT (base64url of '{"')
    assert SITE_USERS["alice"] not in logs


# answered at once (an empty request would be held for `wait`)
PING = "<iq xmlns='jabber:client' type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>"


def test_309_credentials_for_converse_credentials_url(stack):
    status, headers, body = prebind(stack["apache"], "alice", SITE_USERS["alice"],
                                    path="/site/credentials")
    assert status == 200, body
    creds = json.loads(body)
    assert creds["jid"] == "alice@" + DOMAIN
    assert headers.get("Cache-Control") == "no-store"
    # the token logs in like a password would (SASL PLAIN), here through the gateway itself
    c = BoshClient(stack["apache"].url("/http-bind"), DOMAIN, wait=20)
    c.create()
    c.login("alice", creds["password"], mechanism="PLAIN")
    assert c.jid.startswith("alice@%s/" % DOMAIN)
    c.terminate(timeout=5)
    c.close()


def test_310_sid_useless_without_its_site_login(stack):
    status, _, body = prebind(stack["apache"], "alice", SITE_USERS["alice"])
    answer = json.loads(body)
    mine = attach(stack["apache"], answer, path="/site/http-bind", headers=basic("alice"))
    r = mine.request("<iq xmlns='jabber:client' type='get' id='p1'>"
                     "<ping xmlns='urn:xmpp:ping'/></iq>")
    assert not r.is_terminate
    mark = stack["apache"].log_mark()
    # bob, logged in to the site himself, replays alice's SID and next RID
    thief = BoshClient(stack["apache"].url("/site/http-bind"), DOMAIN, wait=20,
                       headers=basic("bob"))
    r = thief.request("", sid=answer["sid"], rid=mine.rid + 1, check=False, process=False,
                      slot=False)
    assert r.type == "terminate" and r.condition == "item-not-found", r.raw
    assert any("XB04026" in l for l in stack["apache"].unexpected_log_lines(since=mark))
    # alice's session goes on
    r = mine.request("<iq xmlns='jabber:client' type='get' id='p2'>"
                     "<ping xmlns='urn:xmpp:ping'/></iq>")
    assert not r.is_terminate
    mine.terminate(timeout=5)


def test_311_site_logout_ends_the_chat(stack):
    answers = [json.loads(prebind(stack["apache"], "o'neil", SITE_USERS["o'neil"])[2])
               for _ in range(2)]
    c = attach(stack["apache"], answers[0])
    assert not c.request(PING).is_terminate
    status, _, body = prebind(stack["apache"], "o'neil", SITE_USERS["o'neil"],
                              path="/site/logout")
    assert status == 200, body
    assert json.loads(body)["ended"] >= 2         # ours, and any an earlier test left
    r = c.request("", check=False, process=False)
    assert r.type == "terminate" and r.condition == "item-not-found", r.raw
    r = attach(stack["apache"], answers[1]).request("", check=False, process=False)
    assert r.type == "terminate" and r.condition == "item-not-found", r.raw
    # the page still open reconnects through /prebind at once: refused for a moment
    status, _, body = prebind(stack["apache"], "o'neil", SITE_USERS["o'neil"])
    assert status == 403 and json.loads(body)["error"] == "logged-out"


def test_313_site_logout_tells_a_held_request_why(stack):
    """XEP-0124 §17.2: no condition says "the site user logged out", so the request held at
    that moment gets undefined-condition with the application-specific reason in the body."""
    answer = json.loads(prebind(stack["apache"], "carol", SITE_USERS["carol"])[2])
    c = attach(stack["apache"], answer)
    c.request(PING)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "r", c.request("", check=False, process=False, timeout=30)), daemon=True)
    t.start()
    time.sleep(1.0)                                   # the empty request is held now
    status, _, body = prebind(stack["apache"], "carol", SITE_USERS["carol"], path="/site/logout")
    assert status == 200 and json.loads(body)["ended"] >= 1, body
    t.join(20)
    r = out.get("r")
    assert r is not None and r.type == "terminate", r
    assert r.condition == "undefined-condition", r.raw
    assert b"<site-logout xmlns='urn:x-mod-xmpp-bridge:terminate'/>" in r.raw, r.raw


def test_312_per_user_cap_ends_the_oldest(stack):
    answers = [json.loads(prebind(stack["apache"], "bob", SITE_USERS["bob"])[2])
               for _ in range(4)]              # XmppBridgePrebindMaxPerUser 3
    oldest = attach(stack["apache"], answers[0])
    r = oldest.request("", check=False, process=False)
    assert r.type == "terminate" and r.condition == "item-not-found", r.raw
    newest = attach(stack["apache"], answers[3])
    assert not newest.request(PING).is_terminate
    newest.terminate(timeout=5)
    status, _, body = prebind(stack["apache"], "bob", SITE_USERS["bob"], path="/site/logout")
    assert json.loads(body) == {"ended": 2}
    status, _, body = prebind(stack["apache"], "bob", SITE_USERS["bob"])
    assert status == 403
