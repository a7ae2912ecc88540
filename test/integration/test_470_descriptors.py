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
