"""Bounded process control by PID."""
import os
import signal
import time


def pid_alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie counts as dead
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        if st.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except OSError:
        return False
    return True


def wait_pid_gone(pid, timeout) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def stop_popen(proc, term_timeout=5.0):
    """SIGTERM a subprocess.Popen by its pid, wait up to term_timeout, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=term_timeout)
    except Exception:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except Exception:
            pass


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def pids_matching(fragment, exclude=()):
    """PIDs whose /proc/PID/cmdline contains `fragment` (a path such as a ServerRoot)."""
    out = []
    me = os.getpid()
    frag = fragment.encode() if isinstance(fragment, str) else fragment
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        if pid == me or pid in exclude:
            continue
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if frag in cmd:
            out.append(pid)
    return out


def _parents():
    """{ppid: [pid, ...]} for every process (from /proc/PID/stat)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        kids.setdefault(int(st.rsplit(")", 1)[1].split()[1]), []).append(int(d))
    return kids


def children_of(ppid):
    """Direct children of ppid (from /proc/PID/stat)."""
    return _parents().get(ppid, [])


def descendants(pid):
    """Children, grandchildren... of pid, from one read of /proc."""
    kids = _parents()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            if c not in out:  # /proc is not read atomically: a reused PID must not loop
                out.append(c)
                todo.append(c)
    return out


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    lines = data.decode(errors="replace").splitlines()
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------------- safety net
import atexit as _atexit

_running = set()


def track(instance):
    """Remember a started server object (with .stop()); stopped at interpreter exit if the
    caller did not (a crashed demo script must not leave servers behind)."""
    _running.add(instance)


def untrack(instance):
    _running.discard(instance)


class Server:
    """A test server used as a context manager: started on entry, stopped on exit."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


class PopenServer(Server):
    """A server run as one subprocess (self.proc) that logs to self.log_path, stopped by its PID
    (SIGTERM, then SIGKILL)."""

    log_tail_lines = 60

    def stop(self, timeout=5.0):
        stop_popen(self.proc, term_timeout=timeout)
        untrack(self)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def log_tail(self, n=None):
        return tail(self.log_path, n or self.log_tail_lines)


@_atexit.register
def _stop_all():
    for inst in list(_running):
        try:
            inst.stop()
        except Exception:
            pass
