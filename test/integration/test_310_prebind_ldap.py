"""Prebind with a directory: the module's own LDAP look-up (through mod_ldap's uldap_* functions)
and the pass-through mode where the site and Prosody check logins against the same directory.

Real parts: slapd (xbtest.slapd, with its awkward uids), Apache with mod_ldap (and
mod_authnz_ldap for the pass-through login), Prosody with the project's token provider
(look-up example) and Prosody with `authentication = "ldap"` (Prosody's mod_auth_ldap, lua-ldap;
pass-through example). Both examples run as written in conf-examples/.
"""
import base64
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import conftest
from xbtest.apache import Apache
from xbtest.bosh import prebound_pair_chats
from xbtest.ejabberd import write_jwk
from xbtest.examples import render_example
from xbtest.ports import free_port
from xbtest.prosody import Prosody, token_prosody as make_token_prosody
from xbtest.slapd import AWKWARD_USERS, SLAPD, Slapd

pytestmark = [
    pytest.mark.skipif(conftest.TARGET != "module", reason="module feature"),
    pytest.mark.skipif(not os.path.exists(SLAPD), reason="slapd not installed"),
]

LOOKUP_DOMAIN = "example.org"           # the directory's mail addresses are JIDs here
PASS_DOMAIN = "ldap.example.test"       # Prosody with authentication = "ldap"
SECRET = os.urandom(32)
AWKWARD = ["x*y", "p(q)", "back\\slash", "c,d+e=f"]
# site users of the look-up Apache (HTTP Basic, password file): directory users, one the
# directory does not know, one that matches two entries, and filter-injection attempts
SITE_USERS = {u: "site-%d-Pw" % i for i, u in enumerate(
    ["alice", "bob", "carol", "nobody", "staff", "al*", "*", "*)(uid=alice", "alice)(|(uid=*"]
    + AWKWARD)}
INJECTIONS = ["al*", "*", "*)(uid=alice", "alice)(|(uid=*"]
# refusals the tests provoke on purpose
EXPECTED_TAGS = ("XB05103", "XB05104", "XB05105", "XB05106", "XB05107", "XB05108", "XB05112",
                 "XB04024")


def _ldap_values(slapd):
    return {"LDAP_HOST_PORT": "127.0.0.1:%d" % slapd.port, "LDAP_PEOPLE_DN": slapd.people_dn,
            "LDAP_READER_DN": slapd.reader_dn, "LDAP_READER_PASSWORD": slapd.reader_password,
            "LDAP_GROUP_DN": slapd.group_dn("xmpp-users")}


def _people_url(slapd, attrs="uid", port=None):
    return "ldap://127.0.0.1:%d/%s?%s?sub?(objectClass=inetOrgPerson)" % (
        port or slapd.port, slapd.people_dn, attrs)


@pytest.fixture(scope="module")
def env(workdir, ca):
    base = tempfile.mkdtemp(dir=workdir, prefix="prebind-ldap-")
    os.chmod(base, 0o755)
    started = []
    try:
        slapd = Slapd(os.path.join(base, "slapd"),
                      groups={"xmpp-users": ["alice", "bob"] + AWKWARD, "admins": ["alice"]},
                      extra_attrs={"alice": {"employeeType": "staff"},
                                   "bob": {"employeeType": "staff"}})
        slapd.start()
        started.append(slapd)

        # Prosody #1: token logins (the look-up example)
        module_key = write_jwk(os.path.join(base, "token-key.jwk"), SECRET)
        token_prosody = make_token_prosody(os.path.join(base, "prosody-token"), SECRET,
                                           domain=LOOKUP_DOMAIN, ca=ca, bosh=False,
                                           fallback="none")
        token_prosody.start()
        started.append(token_prosody)

        # Prosody #2: checks passwords against the same slapd (the pass-through example)
        ldap_prosody = Prosody(os.path.join(base, "prosody-ldap"), domain=PASS_DOMAIN, ca=ca,
                               bosh=False, authentication="ldap", extra_config="""
ldap_server = "127.0.0.1:%d"
ldap_base = %r
ldap_filter = "(&(objectClass=inetOrgPerson)(uid=$user))"
ldap_rootdn = %r
ldap_password = %r
ldap_mode = "bind"
""" % (slapd.port, slapd.people_dn, slapd.reader_dn, slapd.reader_password))
        ldap_prosody.start()
        started.append(ldap_prosody)

        htpasswd = os.path.join(base, "htpasswd")
        with open(htpasswd, "w") as f:
            for user, pw in SITE_USERS.items():
                r = subprocess.run(["htpasswd", "-nbB", "-C", "4", user, pw], check=True,
                                   capture_output=True)
                f.write(r.stdout.decode().strip() + "\n")
        os.chmod(htpasswd, 0o644)

        values = dict(_ldap_values(slapd), MODULE_PATH=conftest.module_snapshot(),
                      XMPP_DOMAIN=LOOKUP_DOMAIN, XMPP_PORT=token_prosody.c2s_port,
                      CA_FILE=ca.cert_path, TOKEN_KEY_FILE=module_key, HTPASSWD_FILE=htpasswd)
        site_auth = """
    AuthType Basic
    AuthName "site"
    AuthBasicProvider file
    AuthUserFile %s
    Require valid-user
    SetHandler xmpp-prebind
    XmppBridgePrebindLDAPBindDN "%s"
    XmppBridgePrebindLDAPBindPassword "%s"
""" % (htpasswd, slapd.reader_dn, slapd.reader_password)

        def location(path, comment, url, *lines):
            return "# %s\n<Location %s>%s    XmppBridgePrebindLDAPURL \"%s\"\n%s\n</Location>\n" % (
                comment, path, site_auth, url, "\n".join("    " + l for l in lines))

        template = "XmppBridgePrebindJID %%{LDAP:uid}@%s" % LOOKUP_DOMAIN
        lookup_conf = "".join([
            render_example("prebind-ldap-lookup.conf", values),
            "XmppBridgeMaxWait 20\n",
            location("/prebind-template", "the JID from the entry's uid; no group required",
                     _people_url(slapd), template),
            location("/prebind-by-type", "REMOTE_USER matched against employeeType, which "
                     "alice and bob share", _people_url(slapd, "employeeType,uid"), template),
            location("/prebind-down", "nothing listens there",
                     _people_url(slapd, port=free_port()), template),
            location("/prebind-bad-bind", "a reader the directory does not know (a typo)",
                     _people_url(slapd), 'XmppBridgePrebindLDAPBindDN "cn=raeder,%s"'
                     % slapd.base_dn, template),
            location("/prebind-no-such-group", "a group that does not exist",
                     _people_url(slapd), 'XmppBridgePrebindLDAPRequireGroup '
                     '"cn=no-such-group,%s"' % slapd.groups_dn, template),
            location("/prebind-bad-jid-attr", "the JID attribute holds no JID",
                     _people_url(slapd), "XmppBridgePrebindLDAPJIDAttribute cn"),
        ])
        lookup = Apache(os.path.join(base, "apache-lookup"), mpm="event", extra_conf=lookup_conf,
                        modules=("ldap", "auth_basic", "authn_core", "authn_file", "authz_user",
                                 "headers"))
        lookup.start()
        started.append(lookup)

        pass_conf = render_example("prebind-ldap-passthrough.conf", dict(
            _ldap_values(slapd), MODULE_PATH=conftest.module_snapshot(),
            XMPP_DOMAIN=PASS_DOMAIN, XMPP_PORT=ldap_prosody.c2s_port, CA_FILE=ca.cert_path))
        passthrough = Apache(os.path.join(base, "apache-passthrough"), mpm="event",
                             extra_conf=pass_conf + "XmppBridgeMaxWait 20\n",
                             modules=("ldap", "authnz_ldap", "auth_basic", "authn_core",
                                      "authz_user"))
        passthrough.start()
        started.append(passthrough)
        yield {"slapd": slapd, "lookup": lookup, "passthrough": passthrough,
               "token_prosody": token_prosody, "ldap_prosody": ldap_prosody}
        for a in (lookup, passthrough):
            a.assert_no_unexpected_log(expected_tags=EXPECTED_TAGS, since=0)
    finally:
        for part in reversed(started):
            part.stop()


def get(apache, path, user=None, password=None, headers=None):
    req = urllib.request.Request(apache.url(path), headers={"Accept": "application/json"})
    if user is not None:
        token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode()
        req.add_header("Authorization", "Basic " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def site(env, user, path="/prebind"):
    """A prebind call on the look-up Apache as a site user (password file login)."""
    return get(env["lookup"], path, user, SITE_USERS[user])


def refused(env, user, path, status, reason, tag, apache=None):
    apache = apache or env["lookup"]
    mark = apache.log_mark()
    got, headers, body = site(env, user, path) if apache is env["lookup"] else \
        get(apache, path, user, env["slapd"].users[user])
    assert got == status, body
    assert headers.get("Content-Type", "").startswith("application/json")
    assert json.loads(body) == {"error": reason}
    lines = apache.unexpected_log_lines(since=mark)
    assert any(tag in l for l in lines), lines
    return lines


def chat(apache, answer_a, answer_b, domain):
    """Both prebound sessions attach; each sends the other a message that must arrive."""
    prebound_pair_chats(apache.url("/http-bind"), domain, answer_a, answer_b)


# ---------------------------------------------------------------------- the look-up example
def test_3101_lookup_maps_user_to_directory_jid_and_nick(env):
    status, headers, body = site(env, "alice")
    assert status == 200, body
    answer = json.loads(body)
    assert set(answer) == {"jid", "sid", "rid"}
    assert answer["jid"].startswith(env["slapd"].mail("alice") + "/")   # the mail attribute
    assert headers.get("X-Chat-Nick") == "User alice"                    # cn, via the env
    assert headers.get("Cache-Control") == "no-store"


def test_3102_looked_up_sessions_chat(env):
    answers = []
    for user in ("alice", "bob"):
        status, _, body = site(env, user)
        assert status == 200, body
        answers.append(json.loads(body))
    chat(env["lookup"], answers[0], answers[1], LOOKUP_DOMAIN)


@pytest.mark.parametrize("uid", AWKWARD)
def test_3103_awkward_uids_found_literally(env, uid):
    """x*y, p(q), back\\slash, c,d+e=f: escaped in the filter (one entry each, their own), and
    a DN full of DN specials still matches the group's member value (compared by the server)."""
    status, _, body = site(env, uid)
    assert status == 200, body
    assert json.loads(body)["jid"].startswith(env["slapd"].mail(uid) + "/")
    status, _, body = site(env, uid, "/prebind-template")
    assert status == 200, body
    # %{LDAP:uid} is the directory's value, XEP-0106-escaped where needed (none of these is)
    assert json.loads(body)["jid"].startswith("%s@%s/" % (uid, LOOKUP_DOMAIN))


def test_3104_no_directory_entry(env):
    refused(env, "nobody", "/prebind", 403, "no-directory-entry", "XB05103")


def test_3105_two_entries_are_ambiguous(env):
    refused(env, "staff", "/prebind-by-type", 403, "ambiguous-directory-entry", "XB05104")


def test_3106_not_in_group(env):
    # carol is in the directory but not in xmpp-users
    refused(env, "carol", "/prebind", 403, "not-in-group", "XB05105")
    # without the group requirement she is welcome
    status, _, body = site(env, "carol", "/prebind-template")
    assert status == 200, body
    # a group that does not exist: nobody is in it, and the log says why
    lines = refused(env, "alice", "/prebind-no-such-group", 403, "not-in-group", "XB05105")
    assert any("XB05108" in l for l in lines), lines


@pytest.mark.parametrize("user", INJECTIONS)
def test_3107_filter_injection_is_escaped(env, user):
    """Unescaped, 'al*' or '*)(uid=alice' would find alice and prebind her JID."""
    slapd = env["slapd"]
    before = os.path.getsize(slapd.log_path)
    refused(env, user, "/prebind-template", 403, "no-directory-entry", "XB05103")
    with open(slapd.log_path, "rb") as f:
        f.seek(before)
        searched = f.read().decode(errors="replace")
    filters = re.findall(r'filter="([^"]*)"', searched)
    assert filters, searched
    # every metacharacter of the site user arrived as an RFC 4515 \XX escape
    value = filters[-1].rsplit("(uid=", 1)[1][:-2]
    assert not set(value) & set("*()"), filters[-1]
    assert value.lower().count("\\2a") == user.count("*")
    assert value.lower().count("\\28") == user.count("(")


def test_3108_directory_unreachable_is_503(env):
    refused(env, "alice", "/prebind-down", 503, "directory-unavailable", "XB05106")


def test_3109_directory_refusing_the_reader_is_500(env):
    refused(env, "alice", "/prebind-bad-bind", 500, "directory-error", "XB05107")


def test_3110_jid_attribute_without_a_jid(env):
    refused(env, "alice", "/prebind-bad-jid-attr", 403, "no-jid", "XB05112")


def test_3111_slapd_stopped_mid_run_is_503(env):
    """The pooled connection to a directory that went away: retried, then 503 (bob's look-up
    under /prebind-template is not in the cache yet)."""
    slapd = env["slapd"]
    slapd.stop()
    try:
        refused(env, "bob", "/prebind-template", 503, "directory-unavailable", "XB05106")
    finally:
        slapd.start()
    status, _, body = site(env, "bob", "/prebind-template")
    assert status == 200, body


# ---------------------------------------------------------------------- pass-through example
def passthrough(env, user, password=None):
    return get(env["passthrough"], "/prebind", user,
               env["slapd"].users[user] if password is None else password)


def test_3120_passthrough_binds_and_chats(env):
    answers = []
    for user in ("alice", "bob"):
        status, _, body = passthrough(env, user)
        assert status == 200, body
        answer = json.loads(body)
        assert answer["jid"].startswith("%s@%s/" % (user, PASS_DOMAIN))
        answers.append(answer)
    chat(env["passthrough"], answers[0], answers[1], PASS_DOMAIN)
    # Prosody checked the password against the directory (mod_auth_ldap offers PLAIN only)
    log = open(env["ldap_prosody"].log_path, errors="replace").read()
    assert re.search(r"Authenticated as alice@%s" % re.escape(PASS_DOMAIN), log) or \
        "alice@%s" % PASS_DOMAIN in log


def test_3121_passthrough_awkward_uid(env):
    status, _, body = passthrough(env, "x*y")
    assert status == 200, body
    assert json.loads(body)["jid"].startswith("x*y@%s/" % PASS_DOMAIN)


def test_3122_wrong_password_never_reaches_xmpp(env):
    prosody_log = env["ldap_prosody"].log_path
    before = os.path.getsize(prosody_log)
    mark = env["passthrough"].log_mark()
    status, _, _ = passthrough(env, "alice", "not-" + env["slapd"].users["alice"])
    assert status == 401
    status, _, _ = passthrough(env, "nobody-at-all", "x")
    assert status == 401
    time.sleep(0.3)
    with open(prosody_log, "rb") as f:
        f.seek(before)
        assert b"Client connected" not in f.read()
    assert not [l for l in env["passthrough"].error_log_lines(mark)
                if "XB04024" in l or "XB04025" in l]


def test_3123_passthrough_refused_by_xmpp_server_is_json(env):
    """o'neil's JID localpart is o\\27neil (XEP-0106): Prosody's LDAP look-up finds no such
    uid, so the login fails; the answer is a clean JSON 502, not a hang."""
    mark = env["passthrough"].log_mark()
    status, headers, body = passthrough(env, "o'neil")
    assert status == 502, body
    assert headers.get("Content-Type", "").startswith("application/json")
    assert json.loads(body)["error"] == "auth-failed:not-authorized"
    assert any("XB04024" in l for l in env["passthrough"].unexpected_log_lines(since=mark))


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize("line,needle", [
    ("XmppBridgePrebindLDAPURL http://not-ldap/", "XmppBridgePrebindLDAPURL"),
    ("XmppBridgePrebindLDAPURL ldap://h/dc=x?uid?sub?(a=b) SOMETIMES", "XmppBridgePrebindLDAPURL"),
    ("XmppBridgePrebindLDAPURL \"ldap://h/dc=x?u(id?sub\"", "XmppBridgePrebindLDAPURL"),
    ("XmppBridgePrebindLDAPJIDAttribute mail)(x", "XmppBridgePrebindLDAPJIDAttribute"),
    ("XmppBridgePrebindLDAPRequireGroup chat-users", "XmppBridgePrebindLDAPRequireGroup"),
])
def test_3130_configtest_refuses_bad_values(workdir, line, needle):
    a = Apache(tempfile.mkdtemp(dir=workdir, prefix="configtest-ldap-"), mpm="event",
               module_path=conftest.module_snapshot(), modules=("ldap",),
               extra_conf="<Location /prebind>\n%s\n</Location>\n" % line)
    rc, out = a.configtest()
    assert rc != 0, out
    assert needle in out, out


def test_3131_configtest_needs_mod_ldap(workdir):
    conf = """<Location /prebind>
    XmppBridgePrebindLDAPURL "ldap://127.0.0.1/dc=example,dc=org?uid"
</Location>
"""
    a = Apache(tempfile.mkdtemp(dir=workdir, prefix="configtest-noldap-"), mpm="event",
               module_path=conftest.module_snapshot(), extra_conf=conf)
    rc, out = a.configtest()
    assert rc != 0, out
    assert "XB05100" in out and "mod_ldap" in out, out
    ok = Apache(tempfile.mkdtemp(dir=workdir, prefix="configtest-ldap-"), mpm="event",
                module_path=conftest.module_snapshot(), extra_conf=conf, modules=("ldap",))
    rc, out = ok.configtest()
    assert rc == 0 and "Syntax OK" in out, out


def test_3132_ldap_directives_only_in_sections(workdir):
    a = Apache(tempfile.mkdtemp(dir=workdir, prefix="configtest-ldap-"), mpm="event",
               module_path=conftest.module_snapshot(), modules=("ldap",),
               extra_conf="XmppBridgePrebindLDAPURL ldap://127.0.0.1/dc=x?uid\n")
    rc, out = a.configtest()
    # server-wide is no place for it either: ACCESS_CONF only (<Location>/<Directory>)
    assert rc != 0 and "XmppBridgePrebindLDAPURL" in out, out
