"""Child churn: with MaxConnectionsPerChild 1 every connection gets a fresh child process and
old children stop while they hold long-polls. Two users chat through it under each MPM: every
message arrives, once, in order."""
import tempfile

import pytest

import conftest
from xbtest.bosh import BoshClient, message_body

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module under churn")

CHURN_CONF = """\
MaxConnectionsPerChild 1
KeepAlive Off
<IfModule mpm_prefork_module>
    StartServers 4
    MinSpareServers 4
    MaxSpareServers 16
    MaxRequestWorkers 64
</IfModule>
<IfModule !mpm_prefork_module>
    # Stopping children keep their scoreboard slot until their last request is done, and
    # every connection needs a fresh child: keep spare children ready.
    ServerLimit 64
    StartServers 8
    ThreadsPerChild 4
    MinSpareThreads 16
    MaxSpareThreads 64
    MaxRequestWorkers 256
</IfModule>
"""
MESSAGES = 15


def bodies_in_rid_order(client, frm):
    """Message bodies from `frm` in the order the gateway answered (RID order). A client with
    two requests in flight may read two answers in either order; what the gateway guarantees
    is the order of the RIDs that carry them (XEP-0124 §8)."""
    answers = {}
    for rid, _req, resp in client.log:
        if resp.status == 200 and resp.body is not None and rid is not None:
            answers[rid] = resp          # a replay carries the same bytes: once per rid
    out = []
    for rid in sorted(answers):
        for el in answers[rid].children:
            if el.tag.endswith("message") and (el.get("from") or "").startswith(frm):
                out.append(message_body(el))
    return out


@pytest.fixture(scope="module", params=["event", "worker", "prefork"])
def churn_apache(request, prosody, ca, workdir):
    a = conftest.make_apache(tempfile.mkdtemp(prefix="churn-%s-" % request.param, dir=workdir),
                             request.param, prosody, ca, extra=CHURN_CONF)
    a.start()
    yield a
    conftest.stop_checked(a)


def test_451_no_message_lost_under_child_churn(churn_apache, prosody, users):
    clients = []
    try:
        for name in ("alice", "bob"):
            c = BoshClient(churn_apache.url("/http-bind"), prosody.domain, wait=10)
            clients.append(c)
            c.create()
            c.login(name, users[name])
            c.start_polling()
            c.presence()
        a, b = clients
        for i in range(MESSAGES):
            a.send_message(b.jid, "a%02d" % i)
            b.send_message(a.jid, "b%02d" % i)
        for _ in range(MESSAGES):
            b.wait_for_message(a.jid, 20)
            a.wait_for_message(b.jid, 20)
        assert bodies_in_rid_order(b, a.jid) == ["a%02d" % i for i in range(MESSAGES)]
        assert bodies_in_rid_order(a, b.jid) == ["b%02d" % i for i in range(MESSAGES)]
        # nothing more (no duplicate) arrives
        for c, frm in ((a, b.jid), (b, a.jid)):
            with pytest.raises(Exception):
                c.wait_for_message(frm, 1.5)
        pids = {e.get("pid") for e in churn_apache.access_log_entries()}
        assert len(pids) > 4, "children did not churn: %s" % pids
    finally:
        for c in clients:
            try:
                c.terminate(timeout=5)
            except Exception:
                pass
            c.close()
