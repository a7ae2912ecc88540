"""Self-tests of the harness (no servers): SCRAM vectors, error-log filter, body building."""
import os
import tempfile

import pytest

from xbtest.apache import Apache
from xbtest.bosh import AuthFailed, BoshClient, ScramSha1Client


def test_001_scram_sha1_rfc5802_vector():
    s = ScramSha1Client("user", "pencil", cnonce="fyko+d2lbbFgONRv9qkxdawL")
    assert s.client_first() == b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
    final = s.client_final(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                           b"s=QSXCR+Q6sek8bf92,i=4096")
    assert final == (b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                     b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
    s.verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
    with pytest.raises(AuthFailed):
        s.verify_server_final(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=")


def test_002_scram_rejects_foreign_nonce():
    s = ScramSha1Client("user", "pencil", cnonce="abc")
    with pytest.raises(AuthFailed):
        s.client_final(b"r=xyz123,s=QSXCR+Q6sek8bf92,i=4096")


def test_003_build_body():
    b = BoshClient.build_body("", {"rid": 5, "sid": "s", "xmpp:restart": "true"})
    assert b == ("<body xmlns='http://jabber.org/protocol/httpbind' rid=\"5\" sid=\"s\" "
                 "xmpp:restart=\"true\" xmlns:xmpp=\"urn:xmpp:xbosh\"/>")
    assert BoshClient._attr_names({"xmpp_restart": "true", "xml_lang": "en"}) == \
        {"xmpp:restart": "true", "xml:lang": "en"}


def test_004_error_log_filter(workdir):
    a = Apache(tempfile.mkdtemp(prefix="logfilter-", dir=workdir))
    lines = [
        "[Sat Nov 22 00:00:00.000001 2025] [mpm_event:notice] [pid 1:tid 2] AH00489: resuming normal operations",
        "[Sat Nov 22 00:00:00.000002 2025] [xmpp_bridge:debug] [pid 1:tid 2] XB00001: fine",
        "[Sat Nov 22 00:00:00.000003 2025] [xmpp_bridge:info] [pid 1:tid 2] XB00002: fine",
        "[Sat Nov 22 00:00:00.000004 2025] [xmpp_bridge:warn] [pid 1:tid 2] XB00010: expected one",
    ]
    with open(a.error_log_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    assert len(a.unexpected_log_lines()) == 1
    a.assert_no_unexpected_log(expected_tags=("XB00010",))
    with pytest.raises(AssertionError):
        a.assert_no_unexpected_log()
    a.log_mark()
    with open(a.error_log_path, "a") as f:
        f.write("[Sat Nov 22 00:00:01.000000 2025] [core:error] [pid 1:tid 2] XB00011: tagged elsewhere\n")
        f.write("[Sat Nov 22 00:00:01.000000 2025] [xmpp_bridge:error] [pid 1:tid 2] untagged\n")
        f.write("[Sat Nov 22 00:00:01.000000 2025] [core:notice] [pid 1:tid 2] AH00052: child pid 7 exit signal Segmentation fault (11)\n")
        f.write("[Sat Nov 22 00:00:01.000000 2025] [core:error] [pid 1:tid 2] AH00000: not ours\n")
    bad = a.unexpected_log_lines(expected_tags=("XB00010",))
    assert len(bad) == 3, bad
    assert len(a.unexpected_log_lines(expected_tags=("XB00011", "AH00052"))) == 1
