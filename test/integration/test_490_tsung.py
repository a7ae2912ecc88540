"""Interop with an independent BOSH client: Tsung's jabber plugin over its BOSH transport
(test/tsung/bosh_chat.xml) logs USERS users in through the module (SASL PLAIN, restart, bind,
session), has them send time-stamped chat messages to each other and close. The verdict comes
from Tsung's own report (tsung.log) and controller log, not from its exit code, which is 0 even
when every request failed: test_492 points the same scenario at a wrong path and checks that
the same verdict fails there.
"""
import os
import shutil
import tempfile

import pytest

import conftest
from xbtest.prosody import Prosody
from xbtest.tsung import TSUNG, run_tsung

pytestmark = [pytest.mark.skipif(conftest.TARGET != "module", reason="Tsung against the module"),
              pytest.mark.skipif(not os.path.exists(TSUNG), reason="tsung not installed"),
              pytest.mark.slow]

SCENARIO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tsung",
                        "bosh_chat.xml")
USERS = 20
MESSAGES = 10           # per user
TIMEOUT = 150           # seconds for one Tsung run (it takes about 35)


@pytest.fixture(scope="module")
def tsung_stack(workdir, ca):
    """A Prosody of its own with Tsung's users (tsungN / pwN; internal_plain, written at once)
    and an event-MPM Apache with the module in front of it."""
    p = Prosody(os.path.join(workdir, "prosody-tsung"), domain=conftest.DOMAIN, ca=ca, bosh=False,
                authentication="internal_plain")
    p.write_plain_accounts({"tsung%d" % i: "pw%d" % i for i in range(USERS + 1)})
    p.start()
    try:
        a = conftest.make_apache(tempfile.mkdtemp(prefix="tsung-event-", dir=workdir), "event", p,
                                 ca)
        a.start()
        try:
            yield p, a
        finally:
            conftest.stop_checked(a)
    finally:
        p.stop()


def run(apache, prosody, path, users=USERS, messages=MESSAGES):
    d = tempfile.mkdtemp(prefix="tsung-run-", dir=os.path.dirname(apache.root))
    return run_tsung(SCENARIO, d, {"PORT": apache.port, "PATH": path, "USERS": users,
                                   "MESSAGES": messages, "DOMAIN": prosody.domain,
                                   "DURATION": TIMEOUT}, timeout=TIMEOUT)


def verdict(r, users, messages):
    """Every login succeeded, every message was sent (and arrived), everyone closed, and Tsung
    counted no error. Raises AssertionError with Tsung's figures."""
    why = r.summary() + "\n--- tsung output:\n" + r.output[-1500:] + \
        ("\n--- error reports:\n" + "\n".join(r.crashes[:3]) if r.crashes else "")
    assert not r.timed_out, "tsung did not finish in time\n" + why
    assert r.log_dir, "tsung wrote no report\n" + why
    assert r.total("users_count") == users, why
    assert r.total("finish_users_count") == users, why
    assert r.total("tr_authenticate") == users, why
    assert r.total("tr_chat") == users * messages, why
    # Every receiver reports one latency sample per HTTP answer that carries a stamped message;
    # two messages for the same user within the few ms between an answer and the next poll
    # share one answer (hence one sample), so allow a little under the number sent.
    assert r.total("xmpp_msg_latency") >= 0.9 * users * messages, why
    assert r.total("tr_close") == users, why
    assert not r.errors, why
    assert not r.crashes, why


def test_491_tsung_logs_in_chats_and_closes(tsung_stack, capsys):
    prosody, apache = tsung_stack
    r = run(apache, prosody, "/http-bind")
    with capsys.disabled():
        print("\n" + r.summary())
    verdict(r, USERS, MESSAGES)
    # Tsung's requests did reach the module (not some other handler)
    posts = [e for e in apache.access_log_entries() if "/http-bind" in e.get("request", "")]
    assert len(posts) >= r.total("bosh_http_req") * 0.9, (len(posts), r.summary())
    shutil.rmtree(os.path.dirname(os.path.dirname(r.log_dir)), ignore_errors=True)


def test_492_the_verdict_fails_on_a_wrong_path(tsung_stack, capsys):
    """The same scenario against a path the module does not serve: Tsung still exits 0 and
    finishes its users, and the verdict must fail."""
    prosody, apache = tsung_stack
    r = run(apache, prosody, "/no-such-bind", users=3, messages=2)
    with capsys.disabled():
        print("\n(wrong path) " + r.summary())
    assert r.rc == 0 and r.total("finish_users_count") == 3     # what an exit-code check sees
    with pytest.raises(AssertionError):
        verdict(r, 3, 2)
    assert r.errors and r.total("tr_authenticate") == 0, r.summary()
