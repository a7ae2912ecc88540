"""Prebind against ejabberd 23.01: JWT logins checked by ejabberd itself (`auth_method: [jwt]`,
the module's XmppBridgeTokenKeyFile holding the same JWK), and pass-through logins where Apache
(mod_authnz_ldap) and ejabberd (`auth_method: [ldap]`) check passwords against one slapd.

A JWT-only host has no accounts at all: both chat partners are prebound. Both examples run as
written in conf-examples/ (prebind-jwt-ejabberd.conf, prebind-ldap-passthrough.conf)."""
import base64
import datetime
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import conftest
from xbtest.apache import Apache
from xbtest.bosh import prebound_pair_chats
from xbtest.ejabberd import EJABBERDCTL, Ejabberd, write_jwk
from xbtest.examples import render_example
from xbtest.slapd import SLAPD, Slapd
from xbtest.xmpp_direct import AuthFailed, login

pytestmark = [
    pytest.mark.skipif(conftest.TARGET != "module", reason="module feature"),
    pytest.mark.skipif(not (os.path.exists(EJABBERDCTL) and os.path.exists(SLAPD)),
                       reason="ejabberd or slapd not installed"),
]

JWT_DOMAIN = "example.test"
LDAP_DOMAIN = "ldap.example.test"
SECRET = os.urandom(32)
SITE_USERS = {"alice": "alice-site-Pw", "bob": "bob-site-Pw"}
TOKEN_LIFETIME = 5          # the shortest XmppBridgeTokenLifetime: the expiry test waits it out


@pytest.fixture(scope="module")
def env(workdir, ca):
    base = tempfile.mkdtemp(dir=workdir, prefix="prebind-ejabberd-")
    os.chmod(base, 0o755)
    started = []
    try:
        slapd = Slapd(os.path.join(base, "slapd"))
        slapd.start()
        started.append(slapd)
        ej_jwt = Ejabberd(os.path.join(base, "ej-jwt"), domain=JWT_DOMAIN, ca=ca,
                          jwt_key_path=write_jwk(os.path.join(base, "ejabberd.jwk"), SECRET))
        ej_jwt.start()
        started.append(ej_jwt)
        ej_ldap = Ejabberd(os.path.join(base, "ej-ldap"), domain=LDAP_DOMAIN, ca=ca, ldap=slapd)
        ej_ldap.start()
        started.append(ej_ldap)

        htpasswd = os.path.join(base, "htpasswd")
        for i, (user, pw) in enumerate(SITE_USERS.items()):
            subprocess.run(["htpasswd", "-b" + ("c" if i == 0 else ""), htpasswd, user, pw],
                           check=True, capture_output=True)
        os.chmod(htpasswd, 0o644)
        values = {"MODULE_PATH": conftest.module_snapshot(), "XMPP_DOMAIN": JWT_DOMAIN,
                  "XMPP_PORT": ej_jwt.c2s_port, "CA_FILE": ca.cert_path,
                  "TOKEN_KEY_FILE": write_jwk(os.path.join(base, "module.jwk"), SECRET),
                  "HTPASSWD_FILE": htpasswd}
        site_auth = """
    AuthType Basic
    AuthName "site"
    AuthBasicProvider file
    AuthUserFile %s
    Require valid-user
""" % htpasswd
        jwt_conf = render_example("prebind-jwt-ejabberd.conf", values) + """
XmppBridgeMaxWait 20
XmppBridgeTokenLifetime %d
<Location /credentials>
%s
    SetHandler xmpp-credentials
    XmppBridgePrebindJID %%{REMOTE_USER}@%s
</Location>
""" % (TOKEN_LIFETIME, site_auth, JWT_DOMAIN)
        modules = ("auth_basic", "authn_core", "authn_file", "authz_user")
        jwt_apache = Apache(os.path.join(base, "apache-jwt"), mpm="event", extra_conf=jwt_conf,
                            modules=modules)
        jwt_apache.start()
        started.append(jwt_apache)

        # the same example with a key ejabberd does not know
        wrong = dict(values, TOKEN_KEY_FILE=write_jwk(os.path.join(base, "other.jwk"),
                                                      os.urandom(32)))
        wrong_apache = Apache(os.path.join(base, "apache-wrong-key"), mpm="event",
                              extra_conf=render_example("prebind-jwt-ejabberd.conf", wrong),
                              modules=modules)
        wrong_apache.start()
        started.append(wrong_apache)

        pass_conf = render_example("prebind-ldap-passthrough.conf", {
            "MODULE_PATH": conftest.module_snapshot(), "XMPP_DOMAIN": LDAP_DOMAIN,
            "XMPP_PORT": ej_ldap.c2s_port, "CA_FILE": ca.cert_path,
            "LDAP_HOST_PORT": "127.0.0.1:%d" % slapd.port, "LDAP_PEOPLE_DN": slapd.people_dn,
            "LDAP_READER_DN": slapd.reader_dn, "LDAP_READER_PASSWORD": slapd.reader_password})
        pass_apache = Apache(os.path.join(base, "apache-passthrough"), mpm="event",
                             extra_conf=pass_conf + "XmppBridgeMaxWait 20\n",
                             modules=("ldap", "authnz_ldap", "auth_basic", "authn_core",
                                      "authz_user"))
        pass_apache.start()
        started.append(pass_apache)
        yield {"slapd": slapd, "ej_jwt": ej_jwt, "ej_ldap": ej_ldap, "jwt": jwt_apache,
               "wrong": wrong_apache, "passthrough": pass_apache, "ca": ca}
        jwt_apache.assert_no_unexpected_log(since=0)
        pass_apache.assert_no_unexpected_log(since=0)
        wrong_apache.assert_no_unexpected_log(expected_tags=("XB04024",), since=0)
    finally:
        for part in reversed(started):
            part.stop()


def get(apache, path, user, password):
    req = urllib.request.Request(apache.url(path), headers={"Accept": "application/json"})
    token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode()
    req.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def chat(apache, answer_a, answer_b, domain):
    """Both prebound sessions attach; each sends the other a message that must arrive."""
    prebound_pair_chats(apache.url("/http-bind"), domain, answer_a, answer_b)


def prebind_all(apache, domain, credentials):
    answers = []
    for user, password in credentials.items():
        status, headers, body = get(apache, "/prebind", user, password)
        assert status == 200, body
        assert headers.get("Cache-Control") == "no-store"
        answer = json.loads(body)
        assert answer["jid"].startswith("%s@%s/" % (user, domain))
        answers.append(answer)
    return answers


# ---------------------------------------------------------------------- JWT (ejabberd verifies)
def test_3201_jwt_prebound_users_chat(env):
    """A JWT-only host knows no accounts: both partners are prebound, neither has a password
    at ejabberd."""
    a, b = prebind_all(env["jwt"], JWT_DOMAIN, SITE_USERS)
    assert set(a) == {"jid", "sid", "rid"}
    chat(env["jwt"], a, b, JWT_DOMAIN)


def test_3202_jwt_token_expires(env):
    """The token (here from xmpp-credentials, the same one the daemon sends) logs in while
    fresh; ejabberd refuses it once `exp` has passed."""
    status, _, body = get(env["jwt"], "/credentials", "alice", SITE_USERS["alice"])
    assert status == 200, body
    creds = json.loads(body)
    assert creds["jid"] == "alice@" + JWT_DOMAIN
    payload = creds["password"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] == TOKEN_LIFETIME
    ej = env["ej_jwt"]
    assert login("127.0.0.1", ej.c2s_port, JWT_DOMAIN, "alice", creds["password"],
                 env["ca"]).startswith("alice@%s/" % JWT_DOMAIN)
    time.sleep(max(0.0, claims["exp"] + 1.2 - time.time()))
    with pytest.raises(AuthFailed) as ei:
        login("127.0.0.1", ej.c2s_port, JWT_DOMAIN, "alice", creds["password"], env["ca"])
    assert ei.value.condition == "not-authorized"
    # every prebind mints a fresh one
    prebind_all(env["jwt"], JWT_DOMAIN, {"alice": SITE_USERS["alice"]})


def test_3203_jwt_wrong_key_is_a_json_502(env):
    mark = env["wrong"].log_mark()
    status, headers, body = get(env["wrong"], "/prebind", "alice", SITE_USERS["alice"])
    assert status == 502, body
    assert headers.get("Content-Type", "").startswith("application/json")
    assert json.loads(body) == {"error": "auth-failed:not-authorized"}
    assert any("XB04024" in l for l in env["wrong"].unexpected_log_lines(since=mark))


# ---------------------------------------------------------------------- pass-through (LDAP)
def test_3210_passthrough_users_chat(env):
    slapd = env["slapd"]
    a, b = prebind_all(env["passthrough"], LDAP_DOMAIN,
                       {u: slapd.users[u] for u in ("alice", "bob")})
    chat(env["passthrough"], a, b, LDAP_DOMAIN)


def test_3211_passthrough_wrong_password_never_reaches_xmpp(env):
    """Apache (mod_authnz_ldap) answers 401: the daemon is never asked, ejabberd sees no login."""
    ej_log = env["ej_ldap"].log_path
    since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    mark = env["passthrough"].log_mark()
    status, _, _ = get(env["passthrough"], "/prebind", "alice", "wrong-" +
                       env["slapd"].users["alice"])
    assert status == 401
    status, _, _ = get(env["passthrough"], "/prebind", "nobody-at-all", "x")
    assert status == 401
    time.sleep(0.3)
    assert not [l for l in env["passthrough"].error_log_lines(mark)
                if "XB04024" in l or "XB04025" in l]
    # ejabberd's log is written late: judge its lines by their own (UTC) time stamps
    def accepted():
        with open(ej_log, errors="replace") as f:
            return [l for l in f if "Accepted connection" in l and l[:26] >= since]
    assert not accepted()
    # the control: the right password does reach ejabberd, and this check sees it
    status, _, body = get(env["passthrough"], "/prebind", "alice", env["slapd"].users["alice"])
    assert status == 200, body
    deadline = time.monotonic() + 10
    while not accepted() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(accepted()) == 1


@pytest.mark.parametrize("uid", ["x*y", "p(q)"])
def test_3212_passthrough_awkward_uid(env, uid):
    """Filter metacharacters in the login name: mod_authnz_ldap and ejabberd each escape them
    in their own search, so the user logs in as herself, nobody else."""
    prebind_all(env["passthrough"], LDAP_DOMAIN, {uid: env["slapd"].users[uid]})
