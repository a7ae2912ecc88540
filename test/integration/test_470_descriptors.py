"""Descriptors: requests that talk to the daemon leave no descriptor open in the children
(each request's daemon connection is closed with its pool; found by the bench: a cleanup that
pointed into a dead stack frame leaked one per request)."""
import os

import pytest

import conftest
from xbtest.bosh import BoshClient

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module descriptors")

REQUESTS = 300


def open_fds(apache):
    total = 0
    parent = apache.pid or apache._read_pid()
    for pid in apache.processes():
        if pid == parent:
            continue
        try:
            total += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
    return total


def test_471_no_descriptor_leak(apache):
    c = BoshClient(apache.url("/http-bind"), "unconfigured.example", wait=5)
    c.create(check=False)                  # warm up: every child has its usual descriptors
    before = open_fds(apache)
    for _ in range(REQUESTS):
        # an unconfigured domain: the daemon answers host-unknown, so each request opens (and
        # must close) a connection to the daemon
        r = c.create(check=False)
        assert r.condition == "host-unknown", r.raw
    after = open_fds(apache)
    assert after - before < 20, "children hold %d more descriptors after %d requests" % (
        after - before, REQUESTS)
    c.close()



def daemon_unix_sockets(apache):
    """The daemon's Unix sockets: its listener and the handlers' connections."""
    import re
    with open(apache.error_log_path) as f:
        pids = re.findall(r"XB05016: bridge daemon started, pid (\d+)", f.read())
    assert pids, "no daemon start logged"
    with open("/proc/net/unix") as f:
        unix_inodes = {line.split()[6] for line in f.readlines()[1:] if len(line.split()) > 6}
    fd_dir = "/proc/%d/fd" % int(pids[-1])
    count = 0
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in unix_inodes:
            count += 1
    return count


def test_472_daemon_connections_are_reused(apache):
    """A BOSH handler gives its daemon connection back to its child once the answer is read,
    and the next request takes it: after many requests the daemon holds a few idle handler
    connections (at most one per child thread that was used) besides its listener, neither
    none (a connection per request, closed after it) nor one per request."""
    c = BoshClient(apache.url("/http-bind"), "unconfigured.example", wait=5)
    for _ in range(REQUESTS):
        r = c.create(check=False)
        assert r.condition == "host-unknown", r.raw
    handler_conns = daemon_unix_sockets(apache) - 1
    assert handler_conns >= 1, "no handler connection stayed open for the next request"
    assert handler_conns < 20, "the daemon holds %d handler connections after %d requests" % (
        handler_conns, REQUESTS)
    c.close()
