"""Not one stanza lost (issue 3): 200 BOSH sessions of real Prosody users, in pairs, exchange
20,000 chat messages through a proxy that aborts 10 % of the HTTP exchanges, some before the
gateway sees the request and some after it has processed it (the answer is thrown away). The
clients behave like Strophe (one request held, at most hold+1 outstanding, a lost answer's
request sent again with the same RID and the same bytes). Every message carries its sender and
a sequence number: each must arrive exactly once, and in order per sender (in RID order, which
is the order the gateway answers in, XEP-0124 §8).

Event MPM only: the point is the gateway's replay cache and RID bookkeeping, not the MPMs (the
other tests cover those), and the run must stay short on a loaded machine.
Env XB_LOSSY_SESSIONS / XB_LOSSY_MESSAGES / XB_LOSSY_RATE / XB_LOSSY_SEED change the load.
"""
import asyncio
import os
import random
import resource
import socket
import struct
import tempfile
import time

import pytest

import conftest
from xbtest.bosh import NS_CLIENT, BoshClient, local_tag, message_body
from xbtest.bosh_async import AsyncBoshSession
from xbtest.lossy_proxy import LossyProxyProcess
from xbtest.prosody import Prosody

pytestmark = [pytest.mark.skipif(conftest.TARGET != "module", reason="the module's replay cache"),
              pytest.mark.slow]

SESSIONS = int(os.environ.get("XB_LOSSY_SESSIONS", "200"))
MESSAGES = int(os.environ.get("XB_LOSSY_MESSAGES", "100"))      # sent by each session
RATE = float(os.environ.get("XB_LOSSY_RATE", "0.10"))
SEED = int(os.environ.get("XB_LOSSY_SEED", "4242"))
DEADLINE = 150.0            # seconds for the whole exchange (logins included)
LOGIN_CONCURRENCY = 25
STALL = 30.0               # no next message from the partner for this long: it is lost

# Held requests occupy a worker thread each: room for every session's two requests.
LOSSY_CONF = """\
<IfModule mpm_event_module>
    ServerLimit 8
    StartServers 8
    ThreadsPerChild 64
    MaxRequestWorkers 512
    MinSpareThreads 64
    MaxSpareThreads 512
</IfModule>
"""


@pytest.fixture(scope="module")
def lossy_stack(workdir, ca):
    """A Prosody of its own (internal_plain: hundreds of accounts written at once) and an
    event-MPM Apache with the module in front of it."""
    users = {"lossy%03d" % i: "pw-%03d-%s" % (i, random.Random(i).getrandbits(32))
             for i in range(SESSIONS)}
    p = Prosody(os.path.join(workdir, "prosody-lossy"), domain=conftest.DOMAIN, ca=ca, bosh=False,
                authentication="internal_plain")
    p.write_plain_accounts(users)
    p.start()
    try:
        a = conftest.make_apache(tempfile.mkdtemp(prefix="lossy-event-", dir=workdir), "event", p,
                                 ca, extra=LOSSY_CONF)
        a.start()
        try:
            yield p, a, users
        finally:
            conftest.stop_checked(a)
    finally:
        p.stop()


def _raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


async def _scenario(port, domain, users, rng):
    names = sorted(users)
    sessions = [AsyncBoshSession("127.0.0.1", port, "/http-bind", domain, wait=20, tag=n)
                for n in names]
    t0 = time.monotonic()
    sem = asyncio.Semaphore(LOGIN_CONCURRENCY)

    async def login(s):
        async with sem:
            await s.create()
            await s.login_plain(s.tag, users[s.tag], timeout=60)

    failures = []
    try:
        async with asyncio.timeout(DEADLINE):
            await asyncio.gather(*(login(s) for s in sessions))
    except Exception as e:  # noqa: BLE001 - reported by the test
        failures.append("login: %r" % (e,))
    t_login = time.monotonic() - t0
    partner = {i: i ^ 1 for i in range(len(sessions))}
    sent = {i: 0 for i in range(len(sessions))}

    def is_msg_from(jid):
        return lambda e: (local_tag(e) == "message" and e.get("from") == jid and
                          message_body(e) is not None)

    async def sender(i):
        s, to = sessions[i], sessions[partner[i]].jid
        r = random.Random(rng.random())
        seq = 0
        while seq < MESSAGES and s.error is None and s.terminated is None:
            for _ in range(min(r.randint(1, 3), MESSAGES - seq)):
                s.queue("<message xmlns='%s' to='%s' type='chat' id='%d-%d'><body>%d:%d</body>"
                        "</message>" % (NS_CLIENT, to, i, seq, i, seq))
                seq += 1
                sent[i] = seq
            await asyncio.sleep(r.uniform(0.0, 0.05))
            while len(s.out) > 10 and s.error is None and s.terminated is None:
                # a client flushes before it types on
                await asyncio.sleep(0.02)

    async def receiver(i):
        s, frm = sessions[i], sessions[partner[i]].jid
        for _ in range(MESSAGES):
            await s.wait_for(is_msg_from(frm), timeout=STALL)

    t1 = time.monotonic()
    if not failures:
        try:
            async with asyncio.timeout(max(1.0, DEADLINE - t_login)):
                res = await asyncio.gather(*(sender(i) for i in range(len(sessions))),
                                           *(receiver(i) for i in range(len(sessions))),
                                           return_exceptions=True)
            failures.extend("exchange: %r" % (e,) for e in res if e is not None)
        except Exception as e:  # noqa: BLE001 - reported by the test
            failures.append("exchange: %r" % (e,))
        # anything still on its way (a duplicate would come now)
        await asyncio.sleep(1.0)
    t_exchange = time.monotonic() - t1
    failures.extend("%s: ended by the gateway during the exchange: %s" % (s.tag, s.terminated)
                    for s in sessions if s.terminated is not None)
    for s in sessions:           # as it was when the exchange ended (for a failure report)
        s.final_state = s.state()
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(s.terminate(timeout=15) for s in sessions),
                                 return_exceptions=True)
    except asyncio.TimeoutError:
        failures.append("terminate: not all sessions ended within 30 s")
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return sessions, partner, sent, t_login, t_exchange, failures


def _tally(sessions, partner, sent):
    """Per receiver, the messages in the order the gateway answered (RID order): totals and the
    first few problems."""
    out = {"sent": 0, "received": 0, "lost": 0, "duplicated": 0, "out_of_order": 0,
           "foreign": 0, "problems": []}
    index = {s.jid: i for i, s in enumerate(sessions)}
    for i, s in enumerate(sessions):
        expect_from = partner[i]
        out["sent"] += sent[expect_from]
        seqs = []
        for rid in sorted(s.answers):
            for el in s.answers[rid]:
                if local_tag(el) != "message" or message_body(el) is None:
                    continue
                try:
                    sender, seq = (int(x) for x in message_body(el).split(":"))
                except ValueError:
                    out["foreign"] += 1
                    continue
                if index.get(el.get("from")) != sender or sender != expect_from:
                    out["foreign"] += 1
                    continue
                seqs.append(seq)
        out["received"] += len(seqs)
        uniq = set(seqs)
        lost = sorted(set(range(sent[expect_from])) - uniq)
        dups = len(seqs) - len(uniq)
        disorder = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
        out["lost"] += len(lost)
        out["duplicated"] += dups
        out["out_of_order"] += disorder
        if (lost or dups or disorder) and len(out["problems"]) < 10:
            out["problems"].append("%s <- %s: lost %s, %d duplicated, %d out of order\n"
                                   "      %s\n      %s"
                                   % (s.tag, sessions[expect_from].tag, lost[:10], dups,
                                      disorder, s.final_state, sessions[expect_from].final_state))
    return out


def test_486_not_one_stanza_lost(lossy_stack, capsys):
    prosody, apache, users = lossy_stack
    _raise_fd_limit(8192)
    rng = random.Random(SEED)
    t0 = time.monotonic()
    with LossyProxyProcess(apache.port, rate=RATE, seed=SEED) as proxy:
        sessions, partner, sent, t_login, t_exchange, failures = asyncio.run(
            _scenario(proxy.port, prosody.domain, users, rng))
        pstats = proxy.stop()
    elapsed = time.monotonic() - t0
    t = _tally(sessions, partner, sent)
    counts = {}
    for s in sessions:
        for k, v in s.counts.items():
            counts[k] = counts.get(k, 0) + v
    errors = ["%s: %r" % (s.tag, s.error) for s in sessions if s.error is not None]
    summary = ("lossy proxy: %d sessions, sent %d, received %d, lost %d, duplicated %d, "
               "out of order %d, foreign %d" % (len(sessions), t["sent"], t["received"],
                                                t["lost"], t["duplicated"], t["out_of_order"],
                                                t["foreign"]))
    summary += (" | proxy: %d exchanges, aborted %d (%s), upstream closed %d, cut after answer "
                "%d, cut by reset %d" % (pstats["exchanges"], pstats["aborted"],
                                         ", ".join("%s %d" % kv
                                                   for kv in sorted(pstats["aborts"].items())),
                                         pstats["upstream_closed"], pstats["cut_after_answer"],
                                         pstats["cut_reset"]))
    summary += (" | client: %d requests, %d re-sends, %d broken, %d timeouts, %d 5xx, "
                "%d recoverable" % (counts["requests"], counts["resends"], counts["broken"],
                                    counts["timeouts"], counts["http_5xx"],
                                    counts["recoverable"]))
    summary += (" | login %.1fs, exchange %.1fs, elapsed %.1fs, seed %d"
                % (t_login, t_exchange, elapsed, SEED))
    with capsys.disabled():
        print("\n" + summary)
        for p in t["problems"]:
            print("  " + p)
    assert not failures and not errors, "%s\n%d failures, first: %s\nsessions failed: %s\n%s" \
        % (summary, len(failures), failures[:10], errors[:5], "\n".join(t["problems"]))
    assert t["sent"] == SESSIONS * MESSAGES
    assert (t["lost"], t["duplicated"], t["out_of_order"], t["foreign"]) == (0, 0, 0, 0), \
        "%s\n%s" % (summary, "\n".join(t["problems"]))
    assert t["received"] == t["sent"], summary
    # the proxy did lose both kinds, in about the share asked for
    for kind, n in pstats["aborts"].items():
        assert n > 0, pstats
    assert pstats["aborted"] >= 0.5 * RATE * pstats["exchanges"], pstats


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_487_a_held_request_whose_client_closes_is_released_at_once(lossy_stack, how):
    """A client that closes its connection during a held request (an orderly close, FIN, as
    much as a reset) is noticed at once: the request stops holding an Apache worker (its
    access-log line is written right away, not at `wait`), and its answer, given later, is kept
    for the re-send (which gets it as a replay)."""
    prosody, apache, users = lossy_stack
    user = sorted(users)[0]
    c = BoshClient(apache.url("/http-bind"), prosody.domain, wait=20)
    peer = BoshClient(apache.url("/http-bind"), prosody.domain, wait=20)
    try:
        c.create()
        c.login(user, users[user], mechanism="PLAIN")
        peer.create()
        peer.login(sorted(users)[1], users[sorted(users)[1]], mechanism="PLAIN")
        peer.start_polling()            # its sends are answered at once
        rid = c.rid + 1
        body = c.build_body("", {"rid": rid, "sid": c.sid}).encode()
        s = socket.create_connection(("127.0.0.1", apache.port), timeout=10)
        s.sendall(b"POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
                  b"X-Xbtest-Client: closer\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(1.0)                 # held by now
        if how == "rst":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        deadline = time.monotonic() + 5
        done = []
        while time.monotonic() < deadline and not done:
            time.sleep(0.2)
            done = [e for e in apache.access_log_entries() if e["client"] == "closer"]
        assert done, "the held request of a client that closed (%s) still holds its worker" % how
        assert done[0]["usec"] < 10 * 1000 * 1000, done
        # a message arrives while nobody is there: the answer waits for the re-send
        peer.send_message(c.jid, "while away")
        time.sleep(1.0)
        r = c.request("", rid=rid, timeout=30)
        assert r.status == 200 and b"while away" in r.raw, r
        assert r.elapsed < 5, r          # a replay, not a new wait
    finally:
        for x in (c, peer):
            try:
                x.terminate(timeout=5)
            except Exception:
                pass
            x.close()
