"""Configuration: every example under conf-examples/ runs for real, and `apache2 -t`
(apachectl configtest) refuses bad directive values with a message naming the directive."""
import os
import tempfile

import pytest

import conftest
from xbtest.apache import Apache
from xbtest.examples import example_names, render_example

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module configuration")



def test_150_every_example_is_exercised():
    """Each conf-examples/ file is loaded by some test: this list must name them all."""
    assert example_names() == sorted(EXERCISED), "add a test for the new example"


# example -> the test that runs it
EXERCISED = {
    "bosh-prosody.conf": "test_151_bosh_prosody_example_chats",
    "prebind-token-prosody.conf": "test_300_prebind.py (fixture `stack`)",
}


def test_151_bosh_prosody_example_chats(prosody, ca, workdir, users, bosh):
    conf = render_example("bosh-prosody.conf", {
        "MODULE_PATH": conftest.module_snapshot(), "XMPP_DOMAIN": prosody.domain,
        "XMPP_PORT": prosody.c2s_port, "CA_FILE": ca.cert_path})
    a = Apache(tempfile.mkdtemp(dir=workdir, prefix="example-"), mpm="event",
               extra_conf=conf)
    a.start()
    try:
        c = bosh(url=a.url("/http-bind"))
        c.create()
        c.login("alice", users["alice"])
        assert c.jid.startswith("alice@%s/" % prosody.domain)
        c.terminate()
        a.assert_no_unexpected_log()
    finally:
        a.stop()


BAD_VALUES = [
    ("XmppBridgeMaxWait 0", "XmppBridgeMaxWait"),
    ("XmppBridgeMaxWait soon", "XmppBridgeMaxWait"),
    ("XmppBridgeMaxHold 99", "XmppBridgeMaxHold"),
    ("XmppBridgeMaxSessions -5", "XmppBridgeMaxSessions"),
    ("XmppBridgeMaxBodySize 10", "XmppBridgeMaxBodySize"),
    ("XmppBridgeDomain example.test", "XmppBridgeDomain"),
    ("XmppBridgeDomain exa_mple!test 127.0.0.1:5222", "XmppBridgeDomain"),
    ("XmppBridgeDomain example.test 127.0.0.1:5222 tls-off", "XmppBridgeDomain"),
    ("XmppBridgeDomain example.test 127.0.0.1:notaport", "XmppBridgeDomain"),
    ("XmppBridgeTLSCAFile /nonexistent/ca.pem", "XmppBridgeTLSCAFile"),
    ("<Location /x>\nXmppBridgeMaxWait 10\n</Location>", "XmppBridgeMaxWait"),
]


@pytest.mark.parametrize("line,directive", BAD_VALUES)
def test_152_configtest_refuses_bad_values(workdir, line, directive):
    a = Apache(tempfile.mkdtemp(dir=workdir, prefix="configtest-"), mpm="event",
               module_path=conftest.module_snapshot(), extra_conf=line + "\n")
    rc, out = a.configtest()
    assert rc != 0, out
    assert directive in out, out


def test_153_configtest_accepts_good_config(prosody, ca, workdir):
    a = Apache(tempfile.mkdtemp(dir=workdir, prefix="configtest-"), mpm="event",
               module_path=conftest.module_snapshot(),
               extra_conf=conftest.bridge_conf(prosody, ca))
    rc, out = a.configtest()
    assert rc == 0, out
    assert "Syntax OK" in out
