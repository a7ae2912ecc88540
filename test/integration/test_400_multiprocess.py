"""One BOSH session whose requests land on different Apache child processes (prefork,
KeepAlive Off, MaxConnectionsPerChild 3): the session state must not live in a child."""
import os
import tempfile

import pytest

from xbtest.bosh import BoshClient, message_body

import conftest

pytestmark = pytest.mark.skipif(conftest.TARGET == "prosody",
                                reason="needs Apache's access log (no Apache with XB_TARGET=prosody)")

PREFORK_CONF = """\
<IfModule mpm_prefork_module>
    StartServers 4
    MinSpareServers 4
    MaxSpareServers 8
    MaxRequestWorkers 64
    MaxConnectionsPerChild 3
</IfModule>
KeepAlive Off
"""


@pytest.fixture(scope="module")
def prefork_apache(prosody, ca, workdir):
    a = conftest.make_apache(tempfile.mkdtemp(prefix="multichild-", dir=workdir), "prefork",
                             prosody, ca, extra=PREFORK_CONF)
    a.start()
    yield a
    conftest.stop_checked(a)


@pytest.fixture
def mc_login(prefork_apache, prosody, users):
    """Clients on the prefork Apache (not parametrized by MPM: this test runs once)."""
    clients = []

    def make(user, wait=10):
        c = BoshClient(prefork_apache.url("/http-bind"), prosody.domain, wait=wait,
                       client_tag="mc-" + user)
        clients.append(c)
        c.create()
        c.login(user, users[user])
        c.start_polling()
        return c
    yield make
    for c in clients:
        try:
            if c.terminated is None:
                c.terminate(timeout=5)
        except Exception:
            pass
        c.close()


def test_401_session_across_children(prefork_apache, prosody, mc_login):
    prefork_apache.log_mark()
    b = mc_login("bob")
    a = mc_login("alice")
    b.presence()
    a.presence()
    for i in range(3):
        a.send_message(b.jid, "across children %d" % i)
        assert message_body(b.wait_for_message(a.jid, 10)) == "across children %d" % i
        b.send_message(a.jid, "reply %d" % i)
        assert message_body(a.wait_for_message(b.jid, 10)) == "reply %d" % i
    a.terminate()
    b.terminate()
    entries = prefork_apache.access_log_entries()
    for user in ("alice", "bob"):
        mine = [e for e in entries if e["client"] == "mc-" + user]
        assert len(mine) >= 8, mine
        assert all(e["status"] == 200 for e in mine), mine
        assert all(e["request"].startswith("POST /http-bind ") for e in mine), mine
        pids = {e["pid"] for e in mine}
        assert len(pids) >= 2, pids
    prefork_apache.assert_no_unexpected_log()
