"""Helpers for bench/run: servers tuned for measuring (built on test/xbtest), fast bulk user
provisioning, /proc sampling (CPU, PSS) and the load generator driver.

Nothing here listens anywhere but 127.0.0.1; every process started is stopped by PID.
"""
import hashlib
import hmac
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from xml.sax.saxutils import quoteattr

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(REPO, "test"))

from xbtest import stack  # noqa: E402
from xbtest.apache import Apache  # noqa: E402
from xbtest.ca import TestCA  # noqa: E402,F401
from xbtest.ejabberd import Ejabberd  # noqa: E402
from xbtest.proc import descendants, pid_alive, wait_pid_gone, kill_pids  # noqa: E402,F401
from xbtest.prosody import Prosody  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SCRAM_ITERATIONS = 4096     # ejabberd 23.01's default; Prosody's accounts are written with it too


# ---------------------------------------------------------------------- servers
class BenchProsody(Prosody):
    """xbtest's Prosody with logging at `warn` (the suite logs at debug, which would dominate the
    CPU profile under load) and accounts written directly into its file store."""

    def _write_config(self):
        super()._write_config()
        with open(self.config_path) as f:
            text = f.read()
        text = text.replace('levels = { min = "debug" }', 'levels = { min = "warn" }')
        with open(self.config_path, "w") as f:
            f.write(text)

    def write_accounts(self, n, user_fmt, pass_fmt, iterations=SCRAM_ITERATIONS):
        """user_fmt % i / pass_fmt % i for i < n, as Prosody's internal_hashed store keeps them
        (SCRAM-SHA-1 stored_key/server_key, hex): what `prosodyctl register` writes, without
        starting a Lua VM per user (1,000 users: ~1 s instead of minutes)."""
        host_dir = os.path.join(self.data_path, self.domain.replace(".", "%2e"))
        acc_dir = os.path.join(host_dir, "accounts")
        os.makedirs(acc_dir, exist_ok=True)
        uid = gid = None
        if os.getuid() == 0:
            pw = pwd.getpwnam("prosody")
            uid, gid = pw.pw_uid, pw.pw_gid
        for d in (host_dir, acc_dir):
            os.chmod(d, 0o750)
            if uid is not None:
                os.chown(d, uid, gid)
        for i in range(n):
            user, password = user_fmt % i, pass_fmt % i
            salt = str(uuid.uuid4())
            salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt.encode(), iterations)
            client_key = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
            stored_key = hashlib.sha1(client_key).hexdigest()
            server_key = hmac.new(salted, b"Server Key", hashlib.sha1).hexdigest()
            path = os.path.join(acc_dir, user.lower() + ".dat")
            with open(path, "w") as f:
                f.write('return {\n\t["stored_key"] = "%s";\n\t["salt"] = "%s";\n'
                        '\t["iteration_count"] = %d;\n\t["server_key"] = "%s";\n};\n'
                        % (stored_key, salt, iterations, server_key))
            os.chmod(path, 0o640)
            if uid is not None:
                os.chown(path, uid, gid)


class BenchApache(Apache):
    """xbtest's Apache without the per-request access log (the XMPP servers keep none either)."""

    def config_text(self):
        return "\n".join(l for l in super().config_text().split("\n")
                         if not l.startswith("CustomLog "))


def event_mpm_conf(clients, threads_per_child=None, server_limit=None, max_workers=None,
                   thread_stack=None, start_servers=None, max_mem_free=None, mpm="event"):
    """Event MPM sizing for N held long-polls: one thread per held request (XmppBridge holds a
    request in its handler thread), plus the second request of a client while it sends, plus
    spare threads. thread_stack / max_mem_free: ThreadStackSize (bytes) and MaxMemFree (kB),
    None or 0 for Apache's defaults (8 MiB, 2048 kB); bench/run passes the README's 256 kB and
    32 kB. mpm="worker": the same for the worker MPM, where a keep-alive connection between
    requests also holds a thread (two per client)."""
    tpc = threads_per_child or (64 if clients <= 200 else 200)
    need = int(clients * (2.25 if mpm == "worker" else 1.25)) + 2 * tpc
    limit = server_limit or max(2, -(-need // tpc))
    mrw = max_workers or limit * tpc
    start = start_servers or 2
    lines = [
        "<IfModule mpm_%s_module>" % mpm,
        "    StartServers %d" % start,
        "    ServerLimit %d" % limit,
        "    ThreadLimit %d" % max(64, tpc),
        "    ThreadsPerChild %d" % tpc,
        "    MaxRequestWorkers %d" % mrw,
        "    MinSpareThreads %d" % min(tpc, mrw - 1),
        "    MaxSpareThreads %d" % mrw,
        "    MaxConnectionsPerChild 0",
    ] + (["    AsyncRequestWorkerFactor 4"] if mpm == "event" else []) + [
        "</IfModule>",
    ]
    if thread_stack:
        lines.append("ThreadStackSize %d" % thread_stack)
    if max_mem_free:
        lines.append("MaxMemFree %d" % max_mem_free)
    return "\n".join(lines), {"ThreadsPerChild": tpc, "ServerLimit": limit,
                              "MaxRequestWorkers": mrw, "ThreadStackSize": thread_stack or
                              "default (8 MiB virtual)",
                              "MaxMemFree": max_mem_free or "default (2048 kB)"}


def write_piefxis(path, domain, n, user_fmt, pass_fmt):
    """XEP-0227 file with n users for `ejabberdctl import_piefxis` (one ctl call for all)."""
    with open(path, "w") as f:
        f.write("<?xml version='1.0' encoding='UTF-8'?>\n"
                "<server-data xmlns='urn:xmpp:pie:0'>\n<host jid=%s>\n" % quoteattr(domain))
        for i in range(n):
            f.write("<user name=%s password=%s/>\n" % (quoteattr(user_fmt % i),
                                                       quoteattr(pass_fmt % i)))
        f.write("</host>\n</server-data>\n")
    os.chmod(path, 0o644)


# ---------------------------------------------------------------------- /proc sampling
def _stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17 (1-based)
    return [int(x) for x in fields[11:15]]


def cpu_seconds(pids, with_children_of=()):
    """utime+stime of `pids` (live ones), plus cutime+cstime of those in `with_children_of`
    (a parent's account of children it reaped: Apache children that exited during the run)."""
    tot = 0
    for p in pids:
        try:
            ut, st, cut, cst = _stat(p)
        except (OSError, IndexError, ValueError):
            continue
        tot += ut + st
        if p in with_children_of:
            tot += cut + cst
    return tot / CLK_TCK


def pss_kb(pids):
    """Sums over pids of (Pss, Pss_Anon + Pss_Shmem) in kB. PSS splits shared pages between the
    processes sharing them; its file part moves when unrelated processes map the same libraries
    (other servers on this machine), so memory per session uses the anonymous + shmem part."""
    tot = anon = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        tot += int(line.split()[1])
                    elif line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                        anon += int(line.split()[1])
        except OSError:
            continue
    return tot, anon


def rss_kb(pids):
    tot = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        tot += int(line.split()[1])
                        break
        except OSError:
            continue
    return tot


def threads(pids):
    tot = 0
    for p in pids:
        try:
            tot += len(os.listdir("/proc/%d/task" % p))
        except OSError:
            continue
    return tot


class Path:
    """The processes of one peer's path, by part: {name: (pids_fn, parents_fn)}. pids_fn is
    re-evaluated at every sample (Apache children come and go); parents_fn names the processes
    whose reaped children count (cutime+cstime: Apache children that exited during the run)."""

    def __init__(self, parts):  # noqa: D107
        self.parts = parts

    def sample(self):
        out = {"t": time.monotonic(), "cpu": 0.0, "pss_kb": 0, "anon_kb": 0, "rss_kb": 0,
               "nproc": 0,
               "threads": 0, "parts": {}}
        for name, (pids_fn, parents_fn) in self.parts.items():
            pids = [p for p in pids_fn() if p]
            par = set(parents_fn())
            pids = sorted(set(pids) | par)
            pss, anon = pss_kb(pids)
            d = {"cpu": cpu_seconds(pids, par), "pss_kb": pss, "anon_kb": anon,
                 "rss_kb": rss_kb(pids), "nproc": len(pids), "threads": threads(pids)}
            out["parts"][name] = d
            for k in ("cpu", "pss_kb", "anon_kb", "rss_kb", "nproc", "threads"):
                out[k] += d[k]
        return out


def bridge_daemon_pids(apache):
    """The bridge daemon: the child of the Apache parent that has a TCP connection open to the
    XMPP server... found cheaply as the parent's single-threaded child (event/worker children
    run ThreadsPerChild + 2 threads)."""
    parent = apache.pid
    if not parent:
        return []
    out = []
    for c in apache.processes():
        if c == parent:
            continue
        try:
            with open("/proc/%d/stat" % c) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and int(fields[17]) == 1:
            out.append(c)
    return out


# ---------------------------------------------------------------------- load generator
def build_loadgen():
    r = subprocess.run(["make", "-s", "-C", BENCH, "loadgen"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("building bench/loadgen failed:\n" + r.stdout.decode(errors="replace"))
    return os.path.join(BENCH, "loadgen")


class LoadRun:
    """Runs bench/loadgen, reads its MARK/STEP/RESULT lines live and samples the path's processes
    at every MARK. on_mark(name, kv) is called after the sample (for profiling hooks)."""

    def __init__(self, loadgen, args, path, wall_limit, log_path, on_mark=None):
        self.cmd = [loadgen] + args
        self.path = path
        self.wall_limit = wall_limit
        self.log_path = log_path
        self.on_mark = on_mark
        self.marks = []       # (name, kv, sample, loadgen cpu)
        self.steps = []
        self.result = None
        self.rc = None

    def run(self):
        err = open(self.log_path, "wb")
        t0 = time.monotonic()
        proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL)
        killer = threading.Timer(self.wall_limit, lambda: _kill(proc))
        killer.daemon = True
        killer.start()
        try:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").strip()
                if line.startswith("MARK "):
                    parts = line.split()
                    name = parts[1]
                    kv = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
                    s = self.path.sample()
                    self.marks.append((name, kv, s))
                    if self.on_mark:
                        try:
                            self.on_mark(name, kv)
                        except Exception as e:   # noqa: BLE001 - profiling is best effort
                            sys.stderr.write("on_mark %s: %r\n" % (name, e))
                elif line.startswith("STEP "):
                    st = json.loads(line[5:])
                    self.steps.append(st)
                    sys.stderr.write("    step %2d %7.0f msg/s: p50 %s ms p99 %s ms recv %d/%d "
                                     "dups %d clients lost %d %s\n" % (
                                         st["i"], st["rate"], _f(st["p50_ms"]), _f(st["p99_ms"]),
                                         st["received"], st["generated"], st["dups"],
                                         st.get("clients_failed", 0),
                                         "ok" if st["pass"] else "FAIL"))
                elif line.startswith("RESULT "):
                    self.result = json.loads(line[7:])
            self.rc = proc.wait(timeout=30)
        finally:
            killer.cancel()
            if proc.poll() is None:
                _kill(proc)
            err.close()
        self.elapsed = time.monotonic() - t0
        return self

    def mark(self, name, i=None):
        for n, kv, s in self.marks:
            if n == name and (i is None or kv.get("i") == str(i)):
                return s, kv
        return None, None


def _kill(proc):
    try:
        proc.send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass


def _f(v):
    return "inf" if v is None else "%.1f" % v
