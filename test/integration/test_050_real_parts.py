"""The real parts the module will talk to start for real and behave as it needs: slapd (user and
group lookups, simple binds, awkward uids), ejabberd with internal auth, with JWT auth
(`auth_method: [jwt]`, HS256 token as the SASL PLAIN password), with LDAP auth against the same
slapd (Basic credentials passed through), and ejabberd's own BOSH.

No Apache and no module here. The conftest stops the session when XB_TARGET=module (the
default) and the module is not built: run these alone with XB_TARGET=prosody in that case.
"""
import os
import shutil
import socket
import ssl
import tempfile
import time

import pytest

from xbtest.bosh import BoshClient
from xbtest.ejabberd import EJABBERDCTL, ERL, Ejabberd, make_jwt, write_jwk
from xbtest.proc import pid_alive
from xbtest.slapd import (AWKWARD_USERS, LDAPSEARCH, LDAPWHOAMI, SLAPADD, SLAPD, Slapd,
                          escape_filter_value)
from xbtest.xmpp_direct import AuthFailed, XmppDirect, login

DOMAIN = "example.test"
EJ_USERS = {"alice": "alice-Pw-1", "bob": "bob-Pw-2"}
JWT_SECRET = b"xbtest-jwt-secret-0123456789abcdef"   # 34 bytes, >= 256 bits for HS256


def _need(paths, package):
    missing = [p for p in paths if not (os.path.exists(p) or shutil.which(p))]
    if missing:
        pytest.skip("%s missing: install the Debian package %s (scripts/install-deps.sh)"
                    % (", ".join(missing), package))


def _need_slapd():
    _need([SLAPD, SLAPADD], "slapd")
    _need([LDAPSEARCH, LDAPWHOAMI], "ldap-utils")


def _need_ejabberd():
    _need([EJABBERDCTL, ERL], "ejabberd")


def _listening(pid):
    """(ip, port) of the TCP sockets in LISTEN state that process `pid` holds."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] != "0A" or cols[9] not in inodes:       # 0A = LISTEN
                continue
            addr, port = cols[1].split(":")
            if v6:
                ip = socket.inet_ntop(socket.AF_INET6,
                                      b"".join(bytes.fromhex(addr[i:i + 8])[::-1]
                                               for i in range(0, 32, 8)))
            else:
                ip = socket.inet_ntoa(bytes.fromhex(addr)[::-1])
            out.add((ip, int(port, 16)))
    return out


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def part_dir(workdir):
    return tempfile.mkdtemp(prefix="real-parts-", dir=workdir)


@pytest.fixture(scope="module")
def ldap(part_dir):
    _need_slapd()
    s = Slapd(os.path.join(part_dir, "slapd"))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ej_internal(part_dir, ca):
    _need_ejabberd()
    e = Ejabberd(os.path.join(part_dir, "ej-internal"), domain=DOMAIN, ca=ca, users=EJ_USERS)
    e.start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def ej_jwt(part_dir, ca):
    _need_ejabberd()
    key = write_jwk(os.path.join(part_dir, "jwt-key.jwk"), JWT_SECRET)
    e = Ejabberd(os.path.join(part_dir, "ej-jwt"), domain=DOMAIN, ca=ca, jwt_key_path=key)
    e.start()
    yield e
    e.stop()


def token(jid="alice@" + DOMAIN, exp_in=60, secret=JWT_SECRET, **kw):
    claims = {"jid": jid}
    if exp_in is not None:
        claims["exp"] = int(time.time()) + exp_in
    return make_jwt(secret, claims, **kw)


# ---------------------------------------------------------------------- slapd
def test_slapd_started_fast_on_loopback(ldap):
    assert ldap.url == "ldap://127.0.0.1:%d" % ldap.port
    assert ldap.start_seconds < 5, ldap.start_seconds
    assert _listening(ldap.pid) == {("127.0.0.1", ldap.port)}


def test_slapd_user_lookup_as_reader(ldap):
    res = ldap.search("(&(objectClass=inetOrgPerson)(uid=alice))", ["uid", "cn", "mail",
                                                                     "userPassword"])
    assert len(res) == 1
    dn, attrs = res[0]
    assert dn == ldap.user_dn("alice") == "uid=alice,ou=people,dc=example,dc=org"
    assert attrs["uid"] == ["alice"] and attrs["mail"] == ["alice@example.org"]
    assert "userPassword" not in attrs          # the reader never sees hashes


def test_slapd_anonymous_search_sees_nothing(ldap):
    assert ldap.search("(uid=alice)", anonymous=True) == []


def test_slapd_group_membership(ldap):
    alice, carol = ldap.user_dn("alice"), ldap.user_dn("carol")
    groups = ldap.search("(&(objectClass=groupOfNames)(member=%s))" % alice, ["cn"],
                         base=ldap.groups_dn)
    assert sorted(a["cn"][0] for _, a in groups) == ["admins", "xmpp-users"]
    # the compare mod_authnz_ldap's `Require ldap-group` does, as a search
    assert ldap.search("(member=%s)" % alice, base=ldap.group_dn("xmpp-users"), scope="base")
    assert ldap.search("(member=%s)" % carol, base=ldap.group_dn("xmpp-users"), scope="base") == []
    members = ldap.search("(objectClass=*)", ["member"], base=ldap.group_dn("xmpp-users"),
                          scope="base")[0][1]["member"]
    assert sorted(members) == sorted([alice, ldap.user_dn("bob")])


def test_slapd_simple_bind(ldap):
    assert ldap.bind_ok(ldap.user_dn("alice"), ldap.users["alice"])
    assert not ldap.bind_ok(ldap.user_dn("alice"), "wrong-" + ldap.users["alice"])
    assert ldap.bind_rc(ldap.user_dn("alice"), "wrong") == 49           # invalidCredentials
    assert ldap.bind_rc(ldap.user_dn("nobody"), "x") == 49              # no such user: same
    # an empty password would be an unauthenticated bind: slapd refuses it (but a module
    # must not rely on that: it has to reject empty passwords itself)
    assert ldap.bind_rc(ldap.user_dn("alice"), "") == 53
    assert ldap.bind_ok(ldap.reader_dn, ldap.reader_password)


@pytest.mark.parametrize("uid", sorted(AWKWARD_USERS))
def test_slapd_awkward_uids(ldap, uid):
    res = ldap.search("(uid=%s)" % escape_filter_value(uid), ["uid"])
    assert [a["uid"] for _, a in res] == [[uid]]
    assert ldap.bind_ok(ldap.user_dn(uid), AWKWARD_USERS[uid])      # RFC 4514 escaped DN
    assert ldap.bind_ok(res[0][0], AWKWARD_USERS[uid])              # slapd's own form
    assert not ldap.bind_ok(ldap.user_dn(uid), "wrong")


def test_slapd_unescaped_filter_is_an_injection(ldap):
    """Why the module must escape: 'x*y' unescaped is a wildcard, '*' matches everyone."""
    assert len(ldap.search("(uid=x*y)", ["uid"])) == 1
    assert len(ldap.search("(uid=%s)" % "*", ["uid"])) == len(ldap.users)
    assert ldap.search("(uid=%s)" % escape_filter_value("*"), ["uid"]) == []


# ---------------------------------------------------------------------- ejabberd, internal auth
def test_ejabberd_started_on_loopback_only(ej_internal):
    e = ej_internal
    assert e.start_seconds < 20, e.start_seconds
    socks = _listening(e.pid)
    assert socks == {("127.0.0.1", e.c2s_port), ("127.0.0.1", e.http_port),
                     ("127.0.0.1", e.dist_port)}, socks
    # no epmd: nothing it spawned is an epmd
    assert e.child_pids
    for c in e.child_pids:
        if pid_alive(c):
            with open("/proc/%d/comm" % c) as f:
                assert f.read().strip() != "epmd"


def test_ejabberd_requires_starttls(ej_internal):
    e = ej_internal
    with XmppDirect("127.0.0.1", e.c2s_port, DOMAIN, ca=e.ca.cert_path, timeout=5) as c:
        c.connect()
        tls = c.features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls")
        assert tls is not None and tls.find("{urn:ietf:params:xml:ns:xmpp-tls}required") is not None
        assert c.mechanisms == []                       # no SASL before TLS
        c.starttls()
        assert "PLAIN" in c.mechanisms and "SCRAM-SHA-1" in c.mechanisms


def test_ejabberd_certificate_is_checked(ej_internal):
    """The client side verifies the TestCA certificate for the domain (a wrong name fails)."""
    e = ej_internal
    with XmppDirect("127.0.0.1", e.c2s_port, DOMAIN, ca=e.ca.cert_path, timeout=5) as c:
        c.connect()
        c.domain = "other.test"                         # server_hostname for the handshake
        with pytest.raises(ssl.SSLCertVerificationError):
            c.starttls()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-1"])
def test_ejabberd_internal_login(ej_internal, mechanism):
    jid = login("127.0.0.1", ej_internal.c2s_port, DOMAIN, "alice", EJ_USERS["alice"],
                ej_internal.ca, mechanism=mechanism)
    assert jid.startswith("alice@%s/" % DOMAIN)


def test_ejabberd_internal_wrong_password(ej_internal):
    with pytest.raises(AuthFailed) as ei:
        login("127.0.0.1", ej_internal.c2s_port, DOMAIN, "bob", "wrong", ej_internal.ca)
    assert ei.value.condition == "not-authorized"


def test_ejabberd_own_bosh(ej_internal):
    c = BoshClient(ej_internal.bosh_url, DOMAIN, wait=5, hold=1)
    try:
        r = c.create()
        assert r.status == 200 and r.is_body and not r.is_terminate, r.raw[:300]
        assert c.sid
        assert "SCRAM-SHA-1" in c.mechanisms()
        jid = c.login("bob", EJ_USERS["bob"], mechanism="SCRAM-SHA-1")
        assert jid.startswith("bob@%s/" % DOMAIN)
        c.terminate(timeout=5)
    finally:
        c.close()


# ---------------------------------------------------------------------- ejabberd, JWT
def test_jwk_file(ej_jwt):
    st = os.stat(ej_jwt.jwt_key_path)
    assert st.st_mode & 0o777 == 0o600


def test_ejabberd_jwt_login(ej_jwt):
    jid = login("127.0.0.1", ej_jwt.c2s_port, DOMAIN, "alice", token(), ej_jwt.ca)
    assert jid.startswith("alice@%s/" % DOMAIN)


def test_ejabberd_jwt_offers_plain_only_after_tls(ej_jwt):
    with XmppDirect("127.0.0.1", ej_jwt.c2s_port, DOMAIN, ca=ej_jwt.ca, timeout=5) as c:
        c.connect()
        c.starttls()
        assert "PLAIN" in c.mechanisms and "SCRAM-SHA-1" not in c.mechanisms, c.mechanisms


@pytest.mark.parametrize("case", ["expired", "wrong-signature", "other-jid", "no-exp",
                                  "alg-none", "garbage", "password-not-token"])
def test_ejabberd_jwt_refused(ej_jwt, case):
    tok = {
        "expired": lambda: token(exp_in=-5),
        "wrong-signature": lambda: token(secret=b"not-the-secret-0123456789abcdefgh"),
        "other-jid": lambda: token(jid="bob@" + DOMAIN),
        "no-exp": lambda: token(exp_in=None),
        "alg-none": lambda: token(alg="none"),
        "garbage": lambda: "not.a.token",
        "password-not-token": lambda: "alice-Pw-1",
    }[case]()
    with pytest.raises(AuthFailed) as ei:
        login("127.0.0.1", ej_jwt.c2s_port, DOMAIN, "alice", tok, ej_jwt.ca)
    assert ei.value.condition == "not-authorized"


def test_ejabberd_jwt_over_its_own_bosh(ej_jwt):
    c = BoshClient(ej_jwt.bosh_url, DOMAIN, wait=5, hold=1)
    try:
        c.create()
        jid = c.login("carol", token(jid="carol@" + DOMAIN), mechanism="PLAIN")
        assert jid.startswith("carol@%s/" % DOMAIN)
        c.terminate(timeout=5)
    finally:
        c.close()


# ---------------------------------------------------------------------- ejabberd, LDAP auth
def test_ejabberd_ldap_auth_and_bounded_stop(part_dir, ca, ldap):
    """Pass-through: ejabberd checks the site's credentials against the same slapd. Also: stop()
    leaves no process of the node behind."""
    _need_ejabberd()
    e = Ejabberd(os.path.join(part_dir, "ej-ldap"), domain=DOMAIN, ca=ca, ldap=ldap)
    e.start()
    try:
        jid = login("127.0.0.1", e.c2s_port, DOMAIN, "alice", ldap.users["alice"], ca)
        assert jid.startswith("alice@%s/" % DOMAIN)
        with pytest.raises(AuthFailed):
            login("127.0.0.1", e.c2s_port, DOMAIN, "alice", "wrong", ca)
        with pytest.raises(AuthFailed):
            login("127.0.0.1", e.c2s_port, DOMAIN, "nobody", "x", ca)
        pids = [e.pid] + e.child_pids
    finally:
        t0 = time.monotonic()
        e.stop()
        stop_seconds = time.monotonic() - t0
    assert stop_seconds < 12
    assert [p for p in pids if pid_alive(p)] == []
