"""The status page (SetHandler xmpp-bridge-status): HTML, ?auto and ?json tell the same
figures, follow what happens, and never show a SID."""
import json
import urllib.request

import pytest

import conftest

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="module status page")


def fetch(apache, query=""):
    with urllib.request.urlopen(apache.url("/xmpp-status" + query), timeout=10) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def auto(apache):
    status, ctype, body = fetch(apache, "?auto")
    assert status == 200 and ctype.startswith("text/plain")
    return dict(line.split(": ", 1) for line in body.splitlines())


def test_431_three_forms_agree_and_follow_traffic(apache, login):
    before = auto(apache)
    a = login("alice", poll=True, wait=20)
    b = login("bob", poll=True, wait=20)
    a.presence()
    b.presence()
    a.send_message(b.jid, "counted")
    b.wait_for_message(a.jid, 10)
    after = auto(apache)
    assert int(after["sessions"]) >= 2
    assert int(after["held_requests"]) >= 1
    assert int(after["sessions_password"]) >= 2
    assert int(after["sessions_domain_example.test"]) >= 2
    assert int(after["sessions_created"]) >= int(before["sessions_created"]) + 2
    assert int(after["stanzas_to_client"]) > int(before["stanzas_to_client"])
    assert int(after["payloads_to_server"]) > int(before["payloads_to_server"])
    assert int(after["slots_used"]) + int(after["slots_free"]) == int(after["slots_total"])
    assert int(after["daemon_pid"]) > 0
    status, ctype, body = fetch(apache, "?json")
    assert ctype.startswith("application/json")
    js = json.loads(body)
    assert js["slots_total"] == int(after["slots_total"])
    assert js["daemon_pid"] == int(after["daemon_pid"])
    status, ctype, html = fetch(apache)
    assert ctype.startswith("text/html") and "<table" in html and "held_requests" in html
    for page in (body, html, "\n".join("%s: %s" % kv for kv in after.items())):
        assert a.sid not in page and b.sid not in page


def test_432_replays_and_unknown_sids_counted(apache, login, bosh):
    before = auto(apache)
    c = login("carol")
    r = c.request("<iq xmlns='jabber:client' type='get' id='s1'>"
                  "<ping xmlns='urn:xmpp:ping'/></iq>")
    c.request("", rid=r.rid, process=False)          # the same RID again: a replay
    stranger = bosh()
    stranger.request("", sid="0" * 32, rid=12345, check=False, process=False, slot=False)
    after = auto(apache)
    assert int(after["replays"]) == int(before["replays"]) + 1
    assert int(after["unknown_sid"]) == int(before["unknown_sid"]) + 1
