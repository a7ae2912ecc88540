"""Warm XMPP streams (XmppBridgeWarmStreams): the daemon keeps streams to each domain set up
ahead of need (TCP, STARTTLS, certificate verified, post-TLS features read), and a prebind or
a browser's session creation takes one instead of connecting.

Real parts: Apache with the module, a real Prosody with the project's token provider (as in
test_300), stopped and started again by the tests that need the server gone or restarted.
A short XmppBridgeWarmStreamMaxAge (4 s) lets the recycling be seen within a test."""
import os
import re
import tempfile
import time

import pytest

import conftest
from xbtest.apache import Apache
from xbtest.bosh import BoshClient
from xbtest.ejabberd import write_jwk
from xbtest.prosody import token_prosody
from xbtest.stack import SITE_AUTH_MODULES, prebind_json, site_htpasswd, token_prebind_conf

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module feature")

DOMAIN = "example.test"
SITE_USERS = {"alice": "alice-site-Pw"}
XMPP_USERS = {"bob": "bob-xmpp-Pw"}
SECRET = os.urandom(32)
WARM = 2
MAX_AGE = 4
TAKEN_RE = re.compile(r"XB04505.*warm stream opened (\d+) ms ago")


@pytest.fixture(scope="module")
def stack(workdir, ca):
    base = tempfile.mkdtemp(dir=workdir, prefix="warm-")
    os.chmod(base, 0o755)
    module_key = write_jwk(os.path.join(base, "token-key.jwk"), SECRET)
    prosody = token_prosody(os.path.join(base, "prosody"), SECRET, domain=DOMAIN, ca=ca,
                            users=XMPP_USERS)
    prosody.start()
    htpasswd = site_htpasswd(base, SITE_USERS)
    conf = token_prebind_conf(conftest.module_snapshot(), prosody, ca, module_key, htpasswd)
    conf += """
LogLevel info xmpp_bridge:debug
XmppBridgeMaxWait 20
XmppBridgePrebindMaxPerUser 100
XmppBridgeMaxSessionsPerAddress 0
XmppBridgeConnectTimeout 3
XmppBridgeWarmStreams %d
XmppBridgeWarmStreamMaxAge %d
<Location /xmpp-status>
    SetHandler xmpp-bridge-status
    Require local
</Location>
""" % (WARM, MAX_AGE)
    apache = Apache(os.path.join(base, "apache"), mpm="event", extra_conf=conf,
                    modules=SITE_AUTH_MODULES)
    apache.start()
    yield {"prosody": prosody, "apache": apache}
    try:
        # the server-down test provokes these on purpose: the pool's paced warning, the
        # prebind that fails, the direct connect that fails
        apache.assert_no_unexpected_log(expected_tags=("XB04501", "XB04024", "XB04005",
                                                       "XB04012"))
    finally:
        apache.stop()
        prosody.stop()


def prebind(apache, user="alice"):
    return prebind_json(apache, user, SITE_USERS[user])


def wait_for(pred, timeout, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def taken_ages(apache, since):
    return [int(m.group(1)) for line in apache.error_log_lines(since)
            for m in [TAKEN_RE.search(line)] if m]


def test_415_1_prebind_served_from_the_pool_and_refilled(stack):
    apache = stack["apache"]
    mark = apache.log_mark()
    time.sleep(1.5)  # the pool fills after the daemon starts
    taken, missed = apache.counter("warm_streams_taken"), apache.counter("warm_streams_missed")
    for _ in range(2 * WARM + 1):
        code, answer = prebind(apache)
        assert code == 200, answer
        assert answer["jid"].startswith("alice@%s/" % DOMAIN)
        time.sleep(0.5)  # a taken stream is replaced in a few ms; leave room on a busy machine
    # more prebinds than the pool holds, each from the pool: it refilled after each one
    assert apache.counter("warm_streams_taken") == taken + 2 * WARM + 1
    assert apache.counter("warm_streams_missed") == missed
    assert len(taken_ages(apache, mark)) == 2 * WARM + 1


def test_415_2_bosh_session_creation_from_the_pool(stack):
    apache = stack["apache"]
    time.sleep(0.5)
    taken = apache.counter("warm_streams_taken")
    c = BoshClient(apache.url("/http-bind"), DOMAIN, lang="de", wait=10)
    try:
        c.create()
        c.login("bob", XMPP_USERS["bob"])   # SCRAM, the restart (with xml:lang), bind
        assert c.jid.startswith("bob@%s/" % DOMAIN)
    finally:
        c.terminate(timeout=5)
        c.close()
    assert apache.counter("warm_streams_taken") == taken + 1


def test_415_3_a_stream_older_than_the_max_age_is_never_used(stack):
    apache = stack["apache"]
    mark = apache.log_mark()
    recycled = apache.counter("warm_streams_recycled")
    time.sleep(2.5 * MAX_AGE)  # every idle stream is replaced at least twice
    assert apache.counter("warm_streams_recycled") >= recycled + 2 * WARM
    for _ in range(3):
        code, answer = prebind(apache)
        assert code == 200, answer
        time.sleep(0.3)
    ages = taken_ages(apache, mark)
    assert ages, "no prebind was served from the pool"
    assert all(age < MAX_AGE * 1000 for age in ages), ages


def test_415_4_prosody_restarted_pool_recovers(stack):
    apache, prosody = stack["apache"], stack["prosody"]
    recycled = apache.counter("warm_streams_recycled")
    prosody.stop()
    time.sleep(1)
    prosody.start()
    # the streams the old Prosody held were closed under the pool and replaced
    assert wait_for(lambda: apache.counter("warm_streams_recycled") >= recycled + WARM, 10)
    taken = apache.counter("warm_streams_taken")

    def served_from_pool():
        code, answer = prebind(apache)
        assert code == 200, answer
        return apache.counter("warm_streams_taken") > taken
    # back-off after a failed refill is at most a few seconds here
    assert wait_for(served_from_pool, 20, step=1.0)


def test_415_5_server_down_prebind_falls_back_and_fails_clearly(stack):
    apache, prosody = stack["apache"], stack["prosody"]
    mark = apache.log_mark()
    failed = apache.counter("warm_streams_failed")
    prosody.stop()
    try:
        time.sleep(6)  # refills fail and back off: 1 s, 2 s, ...
        code, answer = prebind(apache)
        assert code == 502, answer
        assert answer == {"error": "xmpp-connection-failed"}
        lines = apache.error_log_lines(mark)
        n_failed = apache.counter("warm_streams_failed") - failed
        assert 2 <= n_failed <= 6, n_failed          # backing off, no busy loop
        warnings = [l for l in lines if "XB04501" in l]
        assert len(warnings) == 1, warnings           # one warning per period
        assert "connect" in warnings[0]
    finally:
        prosody.start()
    # the server is back: the pool recovers and says so
    assert wait_for(lambda: any("XB04502" in l for l in apache.error_log_lines(mark)), 40, 1.0)
    code, answer = prebind(apache)
    assert code == 200, answer


def test_415_6_tls_verification_failure_is_never_hidden(stack, workdir, ca):
    """A server whose certificate does not match: the pool never gets a stream, every set-up
    fails with the TLS warning (paced by the back-off), and a prebind connects directly and
    fails with it as before."""
    prosody = stack["prosody"]
    base = tempfile.mkdtemp(dir=workdir, prefix="warm-tls-")
    os.chmod(base, 0o755)
    module_key = write_jwk(os.path.join(base, "token-key.jwk"), SECRET)
    htpasswd = site_htpasswd(base, {"alice": SITE_USERS["alice"]})
    conf = token_prebind_conf(conftest.module_snapshot(), prosody, ca, module_key, htpasswd)
    # the certificate says example.test; this gateway insists on another name
    conf = conf.replace("127.0.0.1:%d starttls" % prosody.c2s_port,
                        "127.0.0.1:%d starttls tls-name=wrong.example" % prosody.c2s_port)
    assert "tls-name=wrong.example" in conf
    conf += """
XmppBridgeWarmStreams 2
<Location /xmpp-status>
    SetHandler xmpp-bridge-status
    Require local
</Location>
"""
    apache = Apache(os.path.join(base, "apache"), mpm="event", extra_conf=conf,
                    modules=SITE_AUTH_MODULES)
    apache.start()
    try:
        time.sleep(4)
        assert apache.counter("warm_streams_failed") >= 2
        code, answer = prebind(apache)
        assert code == 502, answer
        assert answer == {"error": "xmpp-connection-failed"}
        assert apache.counter("warm_streams_taken") == 0
        lines = apache.error_log_lines()
        tls = [l for l in lines if "XB03100" in l]
        # one per warm set-up (1 s, 2 s back-off: 2 or 3 in 4 s) and one for the prebind
        assert 2 <= len(tls) <= 6, tls
        assert all("wrong.example" in l for l in tls)
        warm = [l for l in lines if "XB04501" in l]
        assert len(warm) == 1 and "TLS handshake" in warm[0], warm
        apache.assert_no_unexpected_log(expected_tags=("XB03100", "XB04501", "XB04024"),
                                        since=0)
    finally:
        apache.stop()
