"""A quiet session's XMPP stream frees its parser (the daemon, after 10 s without bytes from the
server, at the session's next upkeep: here its held request's wait) and makes it again for the
next stanza: what arrives afterwards is delivered exactly as before, on a real Prosody stream
over TLS."""
import hashlib
import time

import pytest

from xbtest.bosh import message_body

# MPM-independent: runs under XB_PROTOCOL_MPMS (event + prefork) only, see conftest.py
pytestmark = pytest.mark.protocol

WAIT = 12   # the held request expires after this: the upkeep that frees a quiet parser


def test_218_message_after_the_parser_was_freed(target, login):
    if not target.is_module:
        pytest.skip("the module's daemon")
    mark = len(target.apache.error_log_lines())
    b = login("bob", poll=True, wait=WAIT)
    a = login("alice", poll=True, wait=20)
    b.presence()
    a.presence()
    a.send_message(b.jid, "before")
    assert message_body(b.wait_for_message(a.jid, timeout=10)) == "before"
    # bob's stream now gets nothing for longer than the quiet time and his poll's wait
    tag = hashlib.sha256(b.sid.encode()).hexdigest()[:8]     # how log lines name it
    deadline = time.monotonic() + WAIT + 15
    freed = []
    while time.monotonic() < deadline and not freed:
        time.sleep(1)
        freed = [l for l in target.apache.error_log_lines()[mark:]
                 if "XB04600" in l and tag in l]
    assert freed, "bob's stream parser was not freed"
    text = "after <b>&amp; ünïcødé ✓ 💬 ]]> '\"</b>"
    for i in range(3):
        a.send_message(b.jid, "%s %d" % (text, i))
        assert message_body(b.wait_for_message(a.jid, timeout=10)) == "%s %d" % (text, i)
    b.send_message(a.jid, "reply")
    assert message_body(a.wait_for_message(b.jid, timeout=10)) == "reply"
