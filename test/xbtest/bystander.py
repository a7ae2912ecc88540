"""What the bad-input and fault tests check around each provoked failure: a bystander session
(two users logged in through the module on the real Prosody, chatting) is unaffected, Apache and
the bridge daemon are still the same processes, and the error log says what the row expects.

    env = Watched(apache, domain, users)        # logs alice and bob in
    env.begin()                                 # message both ways, log mark, pids
    ... provoke ...
    env.end(expect=[('XB05040', 'malformed BOSH body')], same_daemon=True)
"""
import os
import re
import time
import urllib.request
import uuid

from .bosh import BoshClient, message_body
from .proc import pid_alive

_DAEMON_RE = re.compile(r"XB05016: bridge daemon started, pid (\d+)")


def daemon_pid(apache, timeout=5.0):
    """The pid of the newest bridge daemon the error log announced (and that runs)."""
    deadline = time.monotonic() + timeout
    while True:
        with open(apache.error_log_path, errors="replace") as f:
            pids = _DAEMON_RE.findall(f.read())
        if pids and pid_alive(int(pids[-1])):
            return int(pids[-1])
        if time.monotonic() > deadline:
            raise AssertionError("no running bridge daemon announced in the error log")
        time.sleep(0.05)


class Watched:
    def __init__(self, apache, domain, users, url=None, source_address=None):
        self.apache = apache
        self.domain = domain
        self.users = users
        self.url = url or apache.url("/http-bind")
        self.source_address = source_address
        self.alice = self.bob = None
        self.mark = 0
        self.daemon = None
        self.login()

    def _login(self, user):
        c = BoshClient(self.url, self.domain, wait=10, client_tag="bystander-" + user,
                       source_address=self.source_address)
        c.create()
        c.login(user, self.users[user])
        c.start_polling()
        c.presence()
        return c

    def login(self):
        self.close()
        self.alice = self._login("alice")
        self.bob = self._login("bob")

    def pause(self):
        """No held requests for a while (a test that counts the daemon's descriptors)."""
        for c in (self.alice, self.bob):
            c.stop_polling()

    def resume(self):
        for c in (self.alice, self.bob):
            c.start_polling()

    def chat(self):
        """One message each way, each must arrive."""
        text = "bystander " + uuid.uuid4().hex[:8]
        self.alice.send_message(self.bob.jid, text)
        m = self.bob.wait_for_message(self.alice.jid, timeout=15)
        assert message_body(m) == text, "bystander message garbled: %r" % message_body(m)
        self.bob.send_message(self.alice.jid, text + " back")
        m = self.alice.wait_for_message(self.bob.jid, timeout=15)
        assert message_body(m) == text + " back"

    def begin(self):
        self.chat()
        self.daemon = daemon_pid(self.apache)
        self.parent = self.apache.pid
        self.mark = self.apache.log_mark()
        return self.mark

    def lines(self):
        return self.apache.error_log_lines(self.mark)

    def find(self, tag, text="", timeout=5.0):
        """The error-log lines (since begin) with `tag` and `text` (waits a little: the daemon's
        lines come through httpd's parent)."""
        deadline = time.monotonic() + timeout
        while True:
            got = [l for l in self.lines() if tag in l and text in l]
            if got or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def assert_logged(self, tag, text=""):
        got = self.find(tag, text)
        assert got, "no %s line saying %r in the error log; since the mark:\n%s" % (
            tag, text, "\n".join(self.lines()[-40:]))
        return got

    def end(self, expect=(), same_daemon=True, chat=True):
        """The row's log lines, the processes, the bystander, and no other complaint."""
        for tag, text in expect:
            self.assert_logged(tag, text)
        assert self.parent and pid_alive(self.parent), "Apache's parent is gone"
        with urllib.request.urlopen(self.apache.url("/"), timeout=10) as r:
            assert r.status == 200
        if same_daemon:
            assert daemon_pid(self.apache) == self.daemon, "the bridge daemon was replaced"
            assert pid_alive(self.daemon)
        if chat:
            for c in (self.alice, self.bob):
                assert c.terminated is None, "bystander session ended: %s" % c.terminated
                assert c.poll_error is None, "bystander poll failed: %r" % (c.poll_error,)
            self.chat()
        self.apache.assert_no_unexpected_log(
            expected_tags=[t for t, _ in expect] + list(getattr(self, "also_expected", ())),
            since=self.mark)
        self.also_expected = ()

    def close(self):
        for c in (self.alice, self.bob):
            if c is None:
                continue
            try:
                if c.terminated is None:
                    c.terminate(timeout=5)
            except Exception:
                pass
            c.close()
        self.alice = self.bob = None


def fds_of(pid):
    return len(os.listdir("/proc/%d/fd" % pid))
