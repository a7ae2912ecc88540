"""TLS session resumption on the daemon's XMPP streams (XmppBridgeTLSResumption, default On).

After the first verified handshake with a server, later streams to the same server endpoint
(domain, host, port, certificate name) resume the TLS session: no certificate, no signature.
Real parts: Apache with the module (prebind with tokens, as test_300) and a real Prosody with
stateless session tickets on c2s (`c2s_ssl = { options = { no_ticket = false } }`: Prosody's
default `no_ticket = true` makes OpenSSL issue stateful tickets that LuaSec's disabled session
cache can never find, so Prosody as shipped never resumes: test_416_5). A fake XMPP server
(xbtest.fake_xmpp) that would accept any of its own tickets plays one server process holding a
certificate for one name only, to show that a session is never offered to another name.
Counters: tls_handshakes_full / tls_handshakes_resumed on the status page."""
import os
import tempfile
import time

import pytest

import conftest
from xbtest.apache import Apache
from xbtest.bosh import BoshClient, attach_prebound, message_body
from xbtest.ejabberd import write_jwk
from xbtest.fake_xmpp import FakeXmpp
from xbtest.prosody import Prosody, token_prosody
from xbtest.stack import SITE_AUTH_MODULES, prebind_json, site_htpasswd, token_prebind_conf

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module feature")

DOMAIN = "example.test"
PLAIN_DOMAIN = "defaults.test"  # a Prosody as shipped: no resumption
SITE_USERS = {"alice": "alice-site-Pw"}
XMPP_USERS = {"bob": "bob-xmpp-Pw"}
SECRET = os.urandom(32)
TICKETS = 'c2s_ssl = { options = { no_ticket = false } }\n'


@pytest.fixture(scope="module")
def stack(workdir, ca):
    base = tempfile.mkdtemp(dir=workdir, prefix="tlsresume-")
    os.chmod(base, 0o755)
    module_key = write_jwk(os.path.join(base, "token-key.jwk"), SECRET)
    prosody = token_prosody(os.path.join(base, "prosody"), SECRET, domain=DOMAIN, ca=ca,
                            users=XMPP_USERS, extra_config=TICKETS)
    prosody.start()
    plain = Prosody(os.path.join(base, "prosody-defaults"), domain=PLAIN_DOMAIN,
                    users={"dave": "dave-Pw-4"}, ca=ca, bosh=False)
    plain.start()
    # one server process, one certificate (tlsok.test), reached under two names
    fake = FakeXmpp("open", "tlsok.test", tls_cert=ca.issue("tlsok.test")).start()
    htpasswd = site_htpasswd(base, SITE_USERS)
    conf = token_prebind_conf(conftest.module_snapshot(), prosody, ca, module_key, htpasswd)
    conf += """
LogLevel info xmpp_bridge:debug
XmppBridgeMaxWait 20
XmppBridgePrebindMaxPerUser 100
XmppBridgeMaxSessionsPerAddress 0
XmppBridgeConnectTimeout 5
XmppBridgeDomain %s 127.0.0.1:%d starttls
XmppBridgeDomain tlsok.test 127.0.0.1:%d starttls
XmppBridgeDomain alias.test 127.0.0.1:%d starttls
<Location /xmpp-status>
    SetHandler xmpp-bridge-status
    Require local
</Location>
""" % (PLAIN_DOMAIN, plain.c2s_port, fake.port, fake.port)
    apache = Apache(os.path.join(base, "apache"), mpm="event", extra_conf=conf,
                    modules=SITE_AUTH_MODULES)
    apache.start()
    yield {"prosody": prosody, "plain": plain, "fake": fake, "apache": apache}
    try:
        # test_416_4 provokes these on purpose: the refused handshake and its session's end
        apache.assert_no_unexpected_log(expected_tags=("XB03100", "XB04004"))
    finally:
        apache.stop()
        fake.stop()
        plain.stop()
        prosody.stop()


def handshakes(apache):
    s = apache.status()
    return int(s["tls_handshakes_full"]), int(s["tls_handshakes_resumed"])


def prebind(apache, user="alice"):
    return prebind_json(apache, user, SITE_USERS[user])


def test_416_1_later_prebinds_resume(stack):
    apache = stack["apache"]
    code, answer = prebind(apache)  # the first stream may be the daemon's first handshake
    assert code == 200, answer
    full, resumed = handshakes(apache)
    mark = apache.log_mark()
    for _ in range(4):
        code, answer = prebind(apache)
        assert code == 200, answer
        assert answer["jid"].startswith("alice@%s/" % DOMAIN)
    # every later stream resumed the session the previous ones got from Prosody
    assert handshakes(apache) == (full, resumed + 4)
    lines = [line for line in apache.error_log_lines(mark) if "XB03200" in line]
    assert len(lines) == 4, lines
    assert all("TLS session resumed" in line for line in lines), lines


def test_416_2_chat_over_resumed_streams(stack):
    """A prebound session and a password login, both on resumed streams, chat both ways."""
    apache = stack["apache"]
    prebind(apache)
    full, resumed = handshakes(apache)
    code, answer = prebind(apache)
    assert code == 200, answer
    a = attach_prebound(apache.url("/http-bind"), DOMAIN, answer)
    b = BoshClient(apache.url("/http-bind"), DOMAIN, wait=20)
    b.create()
    b.login("bob", XMPP_USERS["bob"])
    try:
        assert handshakes(apache) == (full, resumed + 2)
        a.start_polling()
        b.start_polling()
        a.presence()
        b.presence()
        b.send_message(a.jid, "hello over a resumed TLS session")
        assert message_body(a.wait_for_message("bob@" + DOMAIN, 15)) == \
            "hello over a resumed TLS session"
        a.send_message("bob@" + DOMAIN, "and back")
        assert message_body(b.wait_for_message("alice@" + DOMAIN, 15)) == "and back"
    finally:
        for c in (a, b):
            c.terminate(timeout=5)
            c.close()


def open_and_end(apache, domain):
    c = BoshClient(apache.url("/http-bind"), domain, wait=10)
    r = c.create(check=False)
    c.terminate(timeout=5)
    c.close()
    return r


def test_416_3_fake_server_resumes_for_its_own_name(stack):
    """The control for test_416_4: this server does accept its tickets."""
    apache, fake = stack["apache"], stack["fake"]
    for _ in range(3):
        before = len(fake.connections)
        r = open_and_end(apache, "tlsok.test")
        assert not r.is_terminate, r.raw
        assert fake.wait_connections(before + 1)
    conns = fake.connections[-3:]
    assert all(c.tls_ok for c in conns)
    assert [c.tls_resumed for c in conns[1:]] == [True, True]


def test_416_4_session_never_offered_to_another_name(stack):
    """alias.test is served by the very process (same host, port, ticket key) that has
    sessions for tlsok.test, but its certificate does not carry alias.test: offered a
    tlsok.test session it would resume it and skip the certificate. The daemon offers none
    (another endpoint), so the full handshake refuses the name."""
    apache, fake = stack["apache"], stack["fake"]
    open_and_end(apache, "tlsok.test")  # a tlsok.test session is cached
    full, resumed = handshakes(apache)
    mark = apache.log_mark()
    before = len(fake.connections)
    r = open_and_end(apache, "alias.test")
    assert r.is_terminate and r.condition == "remote-connection-failed", r.raw
    assert fake.wait_connections(before + 1)
    time.sleep(0.3)
    conn = fake.connections[before]
    # the handshake failed on the module's side: no TLS session, no XMPP over it
    assert not conn.tls_resumed and not conn.tls_ok
    assert b"<auth" not in conn.received
    log = "\n".join(apache.error_log_lines(mark))
    assert "XB03100" in log and "hostname mismatch" in log, log
    assert handshakes(apache) == (full, resumed)
    # and tlsok.test's own session was not spent on it
    before = len(fake.connections)
    assert not open_and_end(apache, "tlsok.test").is_terminate
    assert fake.wait_connections(before + 1)
    assert fake.connections[before].tls_resumed


def test_416_5_prosody_defaults_do_not_resume(stack):
    """Prosody as shipped (no_ticket): every stream is a full handshake, and works."""
    apache = stack["apache"]
    open_and_end(apache, PLAIN_DOMAIN)
    full, resumed = handshakes(apache)
    for _ in range(2):
        r = open_and_end(apache, PLAIN_DOMAIN)
        assert not r.is_terminate, r.raw
    assert handshakes(apache) == (full + 2, resumed)
