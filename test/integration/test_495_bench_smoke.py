"""The benchmark harness itself (issue 6's bench/run and bench/table) still works end to end:
a tiny run of the module path and the direct-c2s reference (10 clients, one 20 msg/s step)
logs everyone in, delivers every message exactly once, writes its table and JSON, leaves no
process behind, and bench/table renders that JSON. Only counts are checked, never timings: the
figures of a run this small on a busy machine mean nothing.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

import conftest

pytestmark = pytest.mark.skipif(conftest.TARGET != "module", reason="bench/run's module path")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENTS = 10


def processes_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def bench_result(workdir):
    d = tempfile.mkdtemp(prefix="bench-smoke-", dir=workdir)
    out = os.path.join(d, "smoke.md")
    cmd = [sys.executable, os.path.join(REPO, "bench", "run"), "--clients", str(CLIENTS),
           "--peers", "module,c2s", "--steps", "20", "--step-secs", "2", "--drain-secs", "3",
           "--idle-secs", "1", "--login-rate", "20", "--fixed-rates", "20", "--cpu-rate", "20",
           "--max-minutes", "4", "--module", conftest.module_snapshot(), "--out", out]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    with open(os.path.splitext(out)[0] + ".json") as f:
        data = json.load(f)
    return p, out, data


def test_495_bench_run_counts(bench_result):
    p, out, data = bench_result
    assert p.returncode == 0, p.stderr[-2000:]
    for peer in ("module", "c2s"):
        r = data["runs"][peer][0]
        why = "%s: %s" % (peer, {k: r.get(k) for k in ("login_ok", "generated", "received",
                                                        "lost", "dups", "client_failures")})
        assert r["login_ok"] == CLIENTS, why
        assert r["generated"] > 0 and r["received"] == r["generated"], why
        assert r["lost"] == 0 and r["dups"] == 0 and r["client_failures"] == 0, why
        assert r["mem_per_session_kb"] is not None, why
    with open(out) as f:
        table = f.read()
    assert "| logins ok (of %d) | %d | %d |" % (CLIENTS, CLIENTS, CLIENTS) in table, table[:1500]


def test_496_bench_run_leaves_nothing(bench_result):
    p = bench_result[0]
    m = re.search(r"workdir (\S+);", p.stderr)
    assert m, p.stderr[-1000:]
    work = m.group(1)
    assert not processes_mentioning(work), "processes of %s still running" % work
    assert not os.path.exists(work)


def test_497_bench_table_renders(bench_result, workdir):
    out, data = bench_result[1], bench_result[2]
    table = os.path.join(os.path.dirname(out), "table.md")
    subprocess.run([sys.executable, os.path.join(REPO, "bench", "table"), "--from",
                    os.path.splitext(out)[0] + ".json", "--out", table], check=True,
                   timeout=60)
    with open(table) as f:
        text = f.read()
    rows = [l for l in text.splitlines() if l.startswith("| %d |" % CLIENTS)]
    assert len(rows) == 2, text
    assert "this module (event MPM)" in rows[0] and "direct c2s" in rows[1], text
    assert "max msg/s module / direct c2s" in text, text
