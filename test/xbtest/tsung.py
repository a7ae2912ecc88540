"""Tsung (Debian package `tsung`, 1.7) as an independent BOSH client: runs a scenario to its end,
bounded in time, and reads Tsung's own report (tsung.log) and controller log.

    r = run_tsung(template_path, workdir, {"PORT": 8080, "USERS": 20, ...}, timeout=120)
    r.total("tr_authenticate"), r.errors (the error_* counters), r.crashes, r.log_dir

Self-contained: HOME and the log directory are under `workdir` (Tsung writes ~/.tsung by
default); the Erlang node runs without epmd (-erl_epmd_port, -start_epmd false) and listens for
distribution on loopback only; no web GUI (-n). On a timeout the tsung script and everything it
started are stopped by PID.
"""
import os
import re
import signal
import socket
import subprocess
import time

from .ports import free_port
from .proc import children_of, kill_pids, pid_alive, wait_pid_gone

TSUNG = "/usr/bin/tsung"

_STATS_RE = re.compile(r"^stats: (\S+) (.*)$")


def short_hostname():
    """What the tsung script calls the host (`hostname -s`): the <client host=...> that runs in
    the controller's VM."""
    try:
        out = subprocess.run(["hostname", "-s"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=10).stdout.decode().strip()
        if out:
            return out
    except (OSError, subprocess.SubprocessError):
        pass
    return socket.gethostname().split(".", 1)[0]


class TsungResult:
    """What one run left: .rc, .output (the script's stdout+stderr), .elapsed, .log_dir (None if
    Tsung never got as far), .stats ({name: the run's total}, from the last `stats:` line of
    each name: a counter's running total, a sample's count so far plus this interval's),
    .errors ({error_*: total}), .crashes (ERROR/CRASH REPORT entries of the controller log),
    .timed_out."""

    def __init__(self, rc, output, elapsed, log_dir, timed_out):
        self.rc = rc
        self.output = output
        self.elapsed = elapsed
        self.log_dir = log_dir
        self.timed_out = timed_out
        self.stats = {}
        self.errors = {}
        self.crashes = []
        if log_dir:
            self._read()

    def _read(self):
        path = os.path.join(self.log_dir, "tsung.log")
        try:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            m = _STATS_RE.match(line)
            if not m:
                continue
            name, fields = m.group(1), m.group(2).split()
            try:
                if len(fields) == 2:        # counter: this interval, running total
                    self.stats[name] = float(fields[1])
                else:                       # sample: count mean stddev max min, then the
                    # overall mean and count of the intervals before this one
                    self.stats[name] = float(fields[0]) + float(fields[-1])
            except (ValueError, IndexError):
                continue
            if name.startswith("error_"):
                self.errors[name] = self.stats[name]
        for fn in os.listdir(self.log_dir):
            if fn.startswith("tsung_controller") and fn.endswith(".log"):
                with open(os.path.join(self.log_dir, fn), errors="replace") as f:
                    text = f.read()
                for block in re.split(r"\n(?==[A-Z]+ REPORT====)", text):
                    if block.startswith(("=ERROR REPORT", "=CRASH REPORT")):
                        self.crashes.append(block.strip()[:600])

    def total(self, name):
        return int(self.stats.get(name, 0))

    def summary(self):
        keys = ("users_count", "finish_users_count", "tr_authenticate", "tr_chat",
                "xmpp_msg_latency", "tr_close", "bosh_http_req", "bosh_http_conn")
        return ("tsung rc=%s %.1fs: %s; errors %s; %d error reports"
                % (self.rc, self.elapsed, ", ".join("%s %d" % (k, self.total(k)) for k in keys),
                   self.errors or "none", len(self.crashes)))


def render(template_path, values):
    """The scenario with every @@NAME@@ replaced (all must be given)."""
    with open(template_path) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@@%s@@" % k, str(v))
    left = set(re.findall(r"@@([A-Z]+)@@", re.sub(r"<!--.*?-->", "", text, flags=re.S)))
    if left:
        raise ValueError("no value for %s in %s" % (sorted(left), template_path))
    return text


def _descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in children_of(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def run_tsung(template_path, workdir, values, timeout=120.0):
    """Render the scenario into workdir, run `tsung start` to its end (at most `timeout` s) and
    return a TsungResult."""
    os.makedirs(workdir, exist_ok=True)
    values = dict(values)
    values.setdefault("HOST", short_hostname())
    conf = os.path.join(workdir, "scenario.xml")
    with open(conf, "w") as f:
        f.write(render(template_path, values))
    log_root = os.path.join(workdir, "log")
    env = dict(os.environ)
    env["HOME"] = workdir
    env["ERL_FLAGS"] = ("-erl_epmd_port %d -start_epmd false "
                        "-kernel inet_dist_use_interface {127,0,0,1}" % free_port())
    env.pop("ERL_AFLAGS", None)
    env.pop("ERL_ZFLAGS", None)
    t0 = time.monotonic()
    proc = subprocess.Popen([TSUNG, "-n", "-f", conf, "-l", log_root, "start"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=workdir, env=env)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        pids = _descendants(proc.pid)
        kill_pids(pids, signal.SIGTERM)
        for p in pids:
            wait_pid_gone(p, 5)
        kill_pids([p for p in pids if pid_alive(p)] + [proc.pid], signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
    elapsed = time.monotonic() - t0
    output = out.decode(errors="replace")
    m = re.search(r"Log directory is: (\S+)", output)
    log_dir = m.group(1) if m and os.path.isdir(m.group(1)) else None
    return TsungResult(proc.returncode, output, elapsed, log_dir, timed_out)
