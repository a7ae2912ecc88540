"""Sessions survive `apache2 -k graceful` (Debian's logrotate does one every day)."""
import time

import pytest

import conftest
from xbtest.bosh import message_body

pytestmark = [
    pytest.mark.skipif(conftest.TARGET == "prosody", reason="needs Apache (XB_TARGET=prosody)"),
]


def test_421_chat_across_graceful(target, login):
    a = login("alice", poll=True, wait=20)
    b = login("bob", poll=True, wait=20)
    a.presence()
    b.presence()
    a.send_message(b.jid, "before graceful")
    assert message_body(b.wait_for_message(a.jid, 10)) == "before graceful"
    time.sleep(0.5)                 # both have a request held in a current-generation child
    t0 = time.monotonic()
    target.apache.graceful()
    a.send_message(b.jid, "after graceful")
    assert message_body(b.wait_for_message(a.jid, 10)) == "after graceful"
    b.send_message(a.jid, "reply after graceful")
    assert message_body(a.wait_for_message(b.jid, 10)) == "reply after graceful"
    assert a.terminated is None and b.terminated is None
    # the requests held across the restart were answered promptly, not at `wait`
    for c in (a, b):
        for _rid, _req, resp in c.log:
            assert resp.status == 200, resp
    assert time.monotonic() - t0 < 15


def _daemon_pids(log_text):
    import re
    return re.findall(r"XB05016: bridge daemon started, pid (\d+)", log_text)


def test_422_logrotate_then_graceful(target, login):
    """What Debian's logrotate does: move the error log away, then `reload` (graceful). The
    same daemon goes on, and its lines land in the new error log, not the moved one."""
    import os
    a = target.apache
    with open(a.error_log_path) as f:
        started = _daemon_pids(f.read())
    rotated = a.error_log_path + ".1"
    os.rename(a.error_log_path, rotated)
    try:
        a.graceful()
        c = login("carol")                       # the daemon logs this session at debug level
        assert c.jid.startswith("carol@")
        with open(a.error_log_path) as f:
            fresh = f.read()
        assert "XB05026" in fresh                # carried on with the new configuration
        assert not _daemon_pids(fresh)           # no new daemon was started
        import hashlib
        tag = hashlib.sha256(c.sid.encode()).hexdigest()[:8]
        assert ("session %s" % tag) in fresh     # the daemon writes here now (by tag, no SID)
        assert c.sid not in fresh
        assert _daemon_pids(open(rotated).read()) == started
    finally:
        # keep the harness's log checks whole: append the rotated part back in front
        with open(rotated) as f:
            old = f.read()
        with open(a.error_log_path) as f:
            new = f.read()
        with open(a.error_log_path, "w") as f:
            f.write(old + new)
        os.unlink(rotated)
