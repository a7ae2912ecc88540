"""Frames written back to back on one connection to the bridge daemon's socket.

The handlers write one frame per connection today, but the daemon's reader takes whatever
arrived, so a frame may start at any offset of its read buffer. A request's fixed metadata
(xb_ipc_request_meta_t, xb_ipc_prebind_meta_t) then sits at an unaligned address: the daemon
must copy it out, not read it through a cast pointer (undefined behaviour; with the sanitizer
build, scripts/run-tests.sh second pass, UBSan stops the daemon and leaves a report, and this
test sees the daemon gone)."""
import os
import re
import socket
import struct
import time

import pytest

import conftest
from xbtest.proc import pid_alive

pytestmark = [pytest.mark.skipif(conftest.TARGET != "module", reason="module daemon"),
              pytest.mark.skipif(os.getuid() != 0, reason="the socket belongs to User")]

MAGIC = 0x31524258
BOSH_REQUEST, RELEASE, RESPONSE, PREBIND = 1, 2, 4, 5
PREBIND_TOKEN = 1


def daemon_pid(apache):
    with open(apache.error_log_path) as f:
        pids = re.findall(r"XB05016: bridge daemon started, pid (\d+)", f.read())
    assert pids, "no daemon start logged"
    return int(pids[-1])


def frame(ftype, payload, aux=0):
    return struct.pack("=IIII", MAGIC, ftype, aux, len(payload)) + payload


def connect_daemon(apache, timeout=10):
    """A connection to the daemon's socket; the daemon binds it on its own after httpd has
    started (later still when it is instrumented), so wait for it a bounded time."""
    deadline = time.monotonic() + timeout
    while True:
        socks = [n for n in os.listdir(apache.run_dir) if n.startswith("xmpp-bridge.")]
        if len(socks) == 1:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(os.path.join(apache.run_dir, socks[0]))
                return s
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise
        elif time.monotonic() > deadline:
            raise AssertionError("daemon sockets: %r" % socks)
        time.sleep(0.05)


def exchange(apache, data, timeout=10):
    """Writes `data` in one send and returns the first RESPONSE frame (status, body)."""
    s = connect_daemon(apache)
    s.settimeout(timeout)
    try:
        s.sendall(data)
        got = b""
        while len(got) < 16 or len(got) < 16 + struct.unpack("=IIII", got[:16])[3]:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    assert len(got) >= 16, "no answer from the daemon: %r" % got
    magic, ftype, aux, length = struct.unpack("=IIII", got[:16])
    assert (magic, ftype) == (MAGIC, RESPONSE)
    return aux, got[16:16 + length]


def request_meta(client_ip=b"192.0.2.7", flags=0, site_user=b""):
    return struct.pack("=64sII", client_ip, flags, len(site_user)) + site_user


# A RELEASE with one byte of payload (ignored: no request is held on this connection) puts the
# next frame's payload at offset 16 + 1 + 16 = 33 of the daemon's read buffer.
MISALIGN = frame(RELEASE, b"x")


def test_481_request_after_odd_frame(apache):
    pid = daemon_pid(apache)
    body = (b"<body rid='1001' sid='0123456789abcdef0123456789abcdef' "
            b"xmlns='http://jabber.org/protocol/httpbind'/>")
    status, answer = exchange(apache, MISALIGN + frame(BOSH_REQUEST, request_meta() + body))
    assert status == 200
    assert b"item-not-found" in answer        # the request was read and answered
    time.sleep(0.2)
    assert pid_alive(pid) and daemon_pid(apache) == pid


def test_482_prebind_after_odd_frame(apache, prosody):
    pid = daemon_pid(apache)
    fields = [prosody.domain, "alice", "alice@" + prosody.domain, "site-alice", ""]
    payload = (struct.pack("=64sII", b"192.0.2.7", PREBIND_TOKEN, 0)
               + b"".join(f.encode() + b"\0" for f in fields))
    status, answer = exchange(apache, MISALIGN + frame(PREBIND, payload))
    # token mode without XmppBridgeTokenKeyFile: refused after reading the mode
    assert status == 500 and b"no-token-key" in answer, (status, answer)
    time.sleep(0.2)
    assert pid_alive(pid) and daemon_pid(apache) == pid
