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
    "prebind-ldap-lookup.conf": "test_310_prebind_ldap.py (fixture `env`)",
    "prebind-ldap-passthrough.conf": "test_310_prebind_ldap.py, test_320_prebind_ejabberd.py",
    "prebind-jwt-ejabberd.conf": "test_320_prebind_ejabberd.py (fixture `env`)",
    "prebind-openidc.conf": "test_154_example_only_configs (example only)",
    "prebind-kerberos.conf": "test_154_example_only_configs (example only)",
    "event-10k-sessions.conf": "test_156_event_10k_example (configtest + its arithmetic)",
}

# Examples whose auth module the test machines lack: only what lies outside their
# ">>> example-only" ... "<<< example-only" blocks is checked (`apache2 -t`), and the README
# says they are examples only. example -> the httpd module file they need.
EXAMPLE_ONLY = {
    "prebind-openidc.conf": "mod_auth_openidc.so",
    "prebind-kerberos.conf": "mod_auth_gssapi.so",
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
    ("XmppBridgeMaxStreams 0", "XmppBridgeMaxStreams"),
    ("XmppBridgeMaxStreams 17", "XmppBridgeMaxStreams"),
    ("XmppBridgeTLSResumption maybe", "XmppBridgeTLSResumption"),
    ("<Location /x>\nXmppBridgeTLSResumption Off\n</Location>", "XmppBridgeTLSResumption"),
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


def _strip_example_only(text):
    out, skipping = [], False
    for line in text.splitlines():
        mark = line.strip()
        if mark.startswith("# >>> example-only"):
            assert not skipping, "nested example-only block"
            skipping = True
        elif mark.startswith("# <<< example-only"):
            assert skipping, "example-only block closed twice"
            skipping = False
        elif not skipping:
            out.append(line)
    assert not skipping, "example-only block not closed"
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("name", sorted(EXAMPLE_ONLY))
def test_154_example_only_configs(name, ca, workdir):
    from xbtest.apache import MODULES_DIR
    from xbtest.ejabberd import write_jwk
    from xbtest.examples import REPO

    with open(os.path.join(REPO, "README")) as f:
        paragraphs = f.read().split("\n\n")
    said = [p for p in paragraphs
            if name in p and "example only" in " ".join(p.lower().split())]
    assert said, "README must say (in the paragraph naming it) that %s is an example only" % name
    base = tempfile.mkdtemp(dir=workdir, prefix="example-only-")
    text = render_example(name, {
        "MODULE_PATH": conftest.module_snapshot(), "XMPP_DOMAIN": "example.org",
        "XMPP_PORT": 5222, "CA_FILE": ca.cert_path,
        "TOKEN_KEY_FILE": write_jwk(os.path.join(base, "key.jwk"), os.urandom(32))})
    if os.path.exists(os.path.join(MODULES_DIR, EXAMPLE_ONLY[name])):
        pytest.fail("%s is installed now: load %s for real in a test and drop it from "
                    "EXAMPLE_ONLY" % (EXAMPLE_ONLY[name], name))
    # (Require valid-user needs mod_authz_user, as on any Debian Apache)
    full = Apache(os.path.join(base, "full"), mpm="event", extra_conf=text,
                  modules=("authz_user",))
    rc, out = full.configtest()
    assert rc != 0 and EXAMPLE_ONLY[name] in out, out   # for want of its auth module only
    rest = Apache(os.path.join(base, "rest"), mpm="event", extra_conf=_strip_example_only(text),
                  modules=("authz_user",))
    rc, out = rest.configtest()
    assert rc == 0 and "Syntax OK" in out, out


def test_155_readme_table_lists_every_directive():
    """Every directive the module registers has a row (with a default) in the README table."""
    import re
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    names = set()
    for fn in os.listdir(os.path.join(root, "src")):
        if fn.startswith("mod_xmpp_bridge_") and fn.endswith(".c"):
            with open(os.path.join(root, "src", fn)) as f:
                names.update(re.findall(r'(?:AP_INIT_\w+|NUMBER_DIRECTIVE)\(\s*"(XmppBridge\w+)"',
                                        f.read()))
    assert len(names) > 20
    with open(os.path.join(root, "README")) as f:
        readme = f.read()
    rows = set(re.findall(r"^  (XmppBridge\w+)", readme, re.M))
    assert names - rows == set(), "directives missing from the README table"
    assert rows - names == set(), "README rows for directives that do not exist"


def test_156_event_10k_example(ca, workdir):
    """The 10,000-session event MPM example passes `apache2 -t`, and its numbers add up to what
    its comments and the README's sizing guide promise (no 10,000 sessions are started)."""
    import re
    from xbtest.examples import REPO

    text = render_example("event-10k-sessions.conf", {
        "MODULE_PATH": conftest.module_snapshot(), "XMPP_DOMAIN": "example.org",
        "XMPP_PORT": 5222, "CA_FILE": ca.cert_path})
    a = Apache(tempfile.mkdtemp(dir=workdir, prefix="example-10k-"), mpm="event",
               extra_conf=text)
    rc, out = a.configtest()
    assert rc == 0 and "Syntax OK" in out, out

    def value(name):
        found = re.findall(r"^\s*%s\s+(\d+)\s*$" % name, text, re.M)
        assert len(found) == 1, "%s: %r" % (name, found)
        return int(found[0])

    users = 10000
    threads, limit = value("ThreadsPerChild"), value("ThreadLimit")
    servers, workers = value("ServerLimit"), value("MaxRequestWorkers")
    assert threads <= limit
    assert workers % threads == 0 and workers <= servers * threads
    assert workers >= 1.25 * users              # a held thread per user + senders
    assert value("XmppBridgeMaxSessions") >= users
    assert value("ThreadStackSize") <= 512 * 1024
    assert value("Timeout") > value("XmppBridgeMaxWait")
    assert value("KeepAliveTimeout") > value("XmppBridgeMaxWait")
    nofile = int(re.search(r"LimitNOFILE=(\d+)", text).group(1))
    assert nofile > users + workers + 1024    # the daemon: streams + handler connections
    assert int(re.search(r"TasksMax=(\d+)", text).group(1)) > workers
    with open(os.path.join(REPO, "README")) as f:
        assert "event-10k-sessions.conf" in f.read(), "the README sizing guide names the example"
