"""Session semantics of XEP-0124 end to end (module only): key sequencing (§15), pause (§10),
overactivity (§11), acks and reports (§9), the repeat limit (§14.3), creation attributes
(§7.2) and improper-addressing (§17.2). The state machine's unit tests
(test/unit/test_bosh_session.c) cover the corners; these prove the parser, daemon and glue
carry each rule through."""
import threading
import time

import pytest

import conftest

# protocol: MPM-independent, runs under XB_PROTOCOL_MPMS (event + prefork) only (conftest.py)
pytestmark = [pytest.mark.skipif(conftest.TARGET != "module", reason="module behaviour"),
              pytest.mark.protocol]

# XEP-0124 §15 test vector (shared/references/bosh-anchors.md §5): seed 'bosh-test-seed', n=3
K1 = "e509dc2b2747d7f6100e2e059ad91a329fe77181"
K2 = "dec2904f0f062f4eca2c5d367dc868c3bfeb90bd"
K3 = "d583ba24c90d5c3eef28735c57d66a45088c32ca"


def started(bosh, **kw):
    """A created session whose creation answer came (with the features)."""
    c = bosh(wait=2)
    r = c.create(**kw)
    assert r.status == 200 and not r.is_terminate, r.raw
    return c, r


def in_thread(fn):
    out = {}

    def run():
        try:
            out["r"] = fn()
        except Exception as e:  # reported by the caller
            out["e"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


class TestKeys:

    def test_121_key_sequence_accepted(self, target, bosh):
        c, _ = started(bosh, newkey=K3)
        r = c.request("", key=K2, check=False)
        assert r.status == 200 and not r.is_terminate, r.raw
        r = c.request("", key=K1, check=False)
        assert r.status == 200 and not r.is_terminate, r.raw

    def test_122_wrong_key_ends_session(self, target, bosh):
        c, _ = started(bosh, newkey=K3)
        r = c.request("<message xmlns='jabber:client' to='nobody@%s'><body>x</body></message>"
                      % target.domain, key=K1, check=False)   # skips K2
        assert r.is_terminate and r.condition == "item-not-found", r.raw
        c.terminated = "item-not-found"
        r = c.request("", check=False, process=False)
        assert r.is_terminate and r.condition == "item-not-found", r.raw

    def test_123_missing_key_ends_session(self, target, bosh):
        c, _ = started(bosh, newkey=K3)
        r = c.request("", check=False)
        assert r.is_terminate and r.condition == "item-not-found", r.raw
        c.terminated = "item-not-found"

    def test_124_replay_not_key_checked(self, target, bosh):
        c, _ = started(bosh, newkey=K3)
        first = c.request("", key=K2, check=False)
        again = c.request("", rid=first.rid, key=K2, check=False)
        assert again.raw == first.raw
        r = c.request("", key=K1, check=False)
        assert not r.is_terminate, r.raw


class TestPause:

    def test_125_maxpause_advertised(self, target, bosh):
        _, r = started(bosh)
        assert r.get("maxpause") == "120", r.raw

    def test_126_pause_too_long(self, target, bosh):
        c, _ = started(bosh)
        r = c.request("", pause="121", check=False)
        assert r.is_terminate and r.condition == "policy-violation", r.raw
        c.terminated = "policy-violation"

    def test_127_pause_answers_held_at_once(self, target, bosh):
        c = bosh(wait=20)
        c.create()
        t, out = in_thread(lambda: c.request("", slot=False, check=False))
        time.sleep(1.0)                                      # the empty request is held
        t0 = time.monotonic()
        r = c.request("", pause="60", slot=False, check=False)
        t.join(10)
        assert time.monotonic() - t0 < 5
        assert "r" in out, out
        assert r.status == 200 and not r.is_terminate and len(r.children) == 0, r.raw
        assert not out["r"].is_terminate, out["r"].raw
        r = c.terminate()        # the session lives on (an empty request would be held 20 s)
        assert r.status == 200 and r.is_terminate and r.condition is None, r.raw


class TestOveractivity:

    def test_128_empty_request_while_one_held(self, target, bosh, apache):
        before = int(apache.status().get("overactivity", "0"))
        c = bosh(wait=20)
        c.create()
        t, out = in_thread(lambda: c.request("", slot=False, check=False))
        time.sleep(0.5)
        r = c.request("", slot=False, check=False)           # 2nd empty one within polling
        t.join(10)
        assert r.is_terminate and r.condition == "policy-violation", r.raw
        assert out["r"].is_terminate and out["r"].condition == "other-request", out["r"].raw
        c.terminated = "policy-violation"
        assert int(apache.status()["overactivity"]) == before + 1

    def test_129_data_request_while_one_held_is_fine(self, target, bosh):
        c = bosh(wait=20)
        c.create()
        t, out = in_thread(lambda: c.request("", slot=False, check=False))
        time.sleep(0.5)
        r = c.request("<presence xmlns='jabber:client'/>", slot=False, check=False)
        t.join(10)
        assert not out["r"].is_terminate, out["r"].raw
        assert r.status == 200, r.raw


class TestAcksAndReplays:

    def test_130_acks(self, target, bosh):
        c = bosh(wait=1)
        r = c.create(ack="1")
        assert r.get("ack") == str(r.rid), r.raw
        first = c.request("", check=False)                   # answered empty at wait (1 s)
        assert not first.is_terminate, first.raw
        # the client says it never got `first`: answered at once with a report
        t0 = time.monotonic()
        r = c.request("", ack=str(r.rid), check=False)
        assert time.monotonic() - t0 < 0.9, "held instead of answered at once"
        assert r.get("report") == str(first.rid), r.raw
        assert int(r.get("time")) >= 0, r.raw
        again = c.request("", rid=first.rid, check=False)
        assert again.raw == first.raw

    def test_131_no_acks_without_ack_at_creation(self, target, bosh):
        c = bosh(wait=1)
        r = c.create()
        assert r.get("ack") is None, r.raw

    def test_132_repeat_limit(self, target, bosh):
        c = bosh(wait=1)
        c.create()
        first = c.request("", check=False)
        for _ in range(10):                                  # XmppBridgeMaxReplays 10
            again = c.request("", rid=first.rid, check=False)
            assert again.raw == first.raw
        r = c.request("", rid=first.rid, check=False)
        assert r.is_terminate and r.condition == "policy-violation", r.raw
        c.terminated = "policy-violation"


class TestCreation:

    def test_133_creation_attributes(self, target, bosh):
        c = bosh(wait=5, hold=1)
        r = c.create()
        assert r.get("sid")
        assert int(r.get("wait")) <= 5
        assert r.get("hold") == "1" and r.get("requests") == "2"
        assert r.get("ver") == "1.6"
        for a in ("polling", "inactivity", "maxpause"):
            assert r.get(a) is not None, (a, r.raw)
        later = c.request("<presence xmlns='jabber:client'/>", check=False)
        for a in ("sid", "wait", "hold", "requests", "ver", "polling", "inactivity",
                  "maxpause", "accept", "charsets"):
            assert later.get(a) is None, (a, later.raw)

    def test_134_no_to_improper_addressing(self, target, bosh):
        c = bosh(wait=5)
        r = c.raw("<body xmlns='http://jabber.org/protocol/httpbind' rid='1001' wait='5' "
                  "hold='1' ver='1.6'/>")
        assert r.status == 200 and r.is_terminate, r.raw
        assert r.condition == "improper-addressing", r.raw


class TestLogSecrets:

    def test_129_no_rid_or_sid_in_the_log(self, target, bosh):
        """Security (docs/security.md): with the SID, RIDs are a session's credentials. A session
        that goes through a replay, a held re-send and an out-of-window RID, with the module
        logging at debug, leaves neither its SID nor any RID it used in Apache's error log."""
        mark = target.apache.log_mark()
        c, _ = started(bosh)
        c.request("")
        last = c.rid
        assert c.request("", rid=last, check=False).status == 200        # replay (§14.3)
        r = c.request("", rid=last + 50, check=False, slot=False)          # out of the window
        assert r.is_terminate and r.condition == "item-not-found", r.raw
        time.sleep(0.5)
        logs = "\n".join(target.apache.error_log_lines(since=mark))
        assert "XB02002" in logs and "XB05034" in logs, logs[-2000:]      # the lines were written
        assert c.sid not in logs
        for rid in range(c.initial_rid, last + 51):
            assert str(rid) not in logs, "rid %d in the log" % rid
