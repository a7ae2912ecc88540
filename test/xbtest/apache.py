"""A throwaway Apache httpd 2.4 (Debian `apache2` binary) ServerRoot, any MPM, optionally with
mod_xmpp_bridge loaded."""
import os
import pwd
import re
import shlex
import signal
import subprocess
import time
import urllib.request

from .ports import free_port, wait_for_port
from .proc import descendants, kill_pids, pid_alive, pids_matching, tail, track, untrack, \
    wait_pid_gone

APACHE2 = os.environ.get("XB_APACHE2", "/usr/sbin/apache2")
MODULES_DIR = os.environ.get("XB_APACHE_MODULES", "/usr/lib/apache2/modules")
RUN_USER = "www-data"
RUN_GROUP = "www-data"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# access log: remote, child pid, epoch seconds, request line, status, bytes, µs, client tag
ACCESS_FORMAT = r'%h %P %{%s}t \"%r\" %>s %b %D \"%{X-Xbtest-Client}i\"'
_ACCESS_RE = re.compile(r'^(\S+) (\d+) (\d+) "([^"]*)" (\d{3}) (\S+) (\d+) "([^"]*)"$')

# error-log lines that fail a test unless their tag is expected
_LEVEL_BAD = r"(?:emerg|alert|crit|error|warn)"
_XB_LINE_RE = re.compile(r"\[xmpp_bridge:" + _LEVEL_BAD + r"\]")
_ANY_BAD_RE = re.compile(r"\[(?:[\w.]+:)?" + _LEVEL_BAD + r"\]")
_XB_TAG_RE = re.compile(r"\bXB\d{5}\b")
# a child that died of a signal (a crash in the module shows up as this core notice)
_CRASH_RE = re.compile(r"\bAH00052\b|exit signal (?:Segmentation|Aborted|Bus|Illegal|Floating)")
# a sanitizer report written to stderr (instrumented module: test/xbtest/sanitizers.py)
_SANITIZER_RE = re.compile(r"runtime error: |ERROR: (?:Address|Leak|UndefinedBehavior)Sanitizer")

MPM_DEFAULTS = {
    "event": """\
<IfModule mpm_event_module>
    StartServers 2
    ServerLimit 16
    ThreadsPerChild 25
    MaxRequestWorkers 150
    MinSpareThreads 25
    MaxSpareThreads 75
    MaxConnectionsPerChild 0
</IfModule>
""",
    "worker": """\
<IfModule mpm_worker_module>
    StartServers 2
    ServerLimit 16
    ThreadsPerChild 25
    MaxRequestWorkers 150
    MinSpareThreads 25
    MaxSpareThreads 75
    MaxConnectionsPerChild 0
</IfModule>
""",
    "prefork": """\
<IfModule mpm_prefork_module>
    StartServers 5
    MinSpareServers 5
    MaxSpareServers 10
    MaxRequestWorkers 150
    MaxConnectionsPerChild 0
</IfModule>
""",
}


def default_module_path():
    """env XB_MODULE, else <repo>/.libs/mod_xmpp_bridge.so"""
    return os.environ.get("XB_MODULE") or os.path.join(REPO, ".libs", "mod_xmpp_bridge.so")


def _proc_starttime(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


class Apache:
    """An apache2 instance with its own ServerRoot in `workdir`.

    Apache(workdir, mpm='event', module_path=None, extra_conf='', port=None, modules=())
      module_path  None: the module is not loaded; a path: `LoadModule xmpp_bridge_module PATH`
                   (see default_module_path()).
      extra_conf   appended verbatim to httpd.conf (after the defaults, so it can override them).
      modules      extra httpd module names to load, e.g. ('proxy', 'proxy_http').
    start()/stop()/graceful(); .port, .url(path), .error_log_path, .access_log_path,
    error_log_lines(), access_log_entries(), log_mark(), assert_no_unexpected_log(expected_tags).
    """

    def __init__(self, workdir, mpm="event", module_path=None, extra_conf="", port=None,
                 modules=(), loglevel="info"):
        if mpm not in MPM_DEFAULTS:
            raise ValueError("unknown mpm %r" % mpm)
        self.workdir = os.path.abspath(workdir)
        self.root = self.workdir
        self.mpm = mpm
        self.module_path = module_path
        self.extra_conf = extra_conf
        self.modules = tuple(modules)
        self.loglevel = loglevel
        self.port = port or free_port()
        self.conf_path = os.path.join(self.root, "conf", "httpd.conf")
        self.logs_dir = os.path.join(self.root, "logs")
        self.run_dir = os.path.join(self.root, "run")
        self.htdocs = os.path.join(self.root, "htdocs")
        self.pid_path = os.path.join(self.run_dir, "httpd.pid")
        self.error_log_path = os.path.join(self.logs_dir, "error.log")
        self.access_log_path = os.path.join(self.logs_dir, "access.log")
        self._log_mark = 0
        self.pid = None
        self._make_root()

    # ------------------------------------------------------------------ config
    def _make_root(self):
        for d in (self.root, os.path.dirname(self.conf_path), self.logs_dir, self.run_dir,
                  self.htdocs):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        if os.getuid() == 0:
            pw = pwd.getpwnam(RUN_USER)
            os.chown(self.run_dir, pw.pw_uid, pw.pw_gid)
        with open(os.path.join(self.htdocs, "index.html"), "w") as f:
            f.write("<html><body>xbtest</body></html>\n")
        self.write_config()

    def _load(self, name):
        return "LoadModule %s_module %s/mod_%s.so" % (name, MODULES_DIR, name)

    def config_text(self):
        mods = ["mpm_" + self.mpm, "authz_core", "authz_host", "mime", "dir", "alias"]
        for m in self.modules:
            if m not in mods:
                mods.append(m)
        loglevel = self.loglevel
        lines = [
            "# generated by xbtest.apache",
            'ServerRoot "%s"' % self.root,
            "ServerName 127.0.0.1",
            "Listen 127.0.0.1:%d" % self.port,
            'PidFile "%s"' % self.pid_path,
            'DefaultRuntimeDir "%s"' % self.run_dir,
        ]
        lines += [self._load(m) for m in mods]
        if self.module_path:
            lines.append('LoadModule xmpp_bridge_module "%s"' % os.path.abspath(self.module_path))
            loglevel += " xmpp_bridge:debug"
        lines += [
            "User %s" % RUN_USER,
            "Group %s" % RUN_GROUP,
            'ErrorLog "%s"' % self.error_log_path,
            "LogLevel %s" % loglevel,
            'LogFormat "%s" xbtest' % ACCESS_FORMAT,
            'CustomLog "%s" xbtest' % self.access_log_path,
            "Timeout 90",
            "KeepAlive On",
            "KeepAliveTimeout 5",
            "MaxKeepAliveRequests 0",
            "TypesConfig /etc/mime.types",
            "AddType text/javascript .js .mjs",
            'DocumentRoot "%s"' % self.htdocs,
            "DirectoryIndex index.html",
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            '<Directory "%s">' % self.htdocs,
            "    Require all granted",
            "</Directory>",
            "<Location /http-bind>",
            "    Require all granted",
            "</Location>",
            MPM_DEFAULTS[self.mpm],
        ]
        if os.environ.get("XB_THREAD_STACK_SIZE") and self.mpm != "prefork":
            # the whole suite under a small stack (the 10k example's ThreadStackSize is checked
            # this way: docs/dev/perf-plan.md)
            lines.append("ThreadStackSize %d" % int(os.environ["XB_THREAD_STACK_SIZE"]))
        lines += [
            "# ---- extra_conf",
            self.extra_conf,
            "",
        ]
        return "\n".join(lines)

    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())
        os.chmod(self.conf_path, 0o644)

    # ------------------------------------------------------------------ control
    def _ctl(self, action, timeout=30):
        return subprocess.run([APACHE2, "-d", self.root, "-f", self.conf_path, "-k", action],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, cwd=self.root,
                              env=self._env())

    def _env(self):
        env = dict(os.environ)
        env.setdefault("LANG", "C")
        return env

    def configtest(self):
        r = subprocess.run([APACHE2, "-d", self.root, "-f", self.conf_path, "-t"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30,
                           env=self._env())
        return r.returncode, r.stdout.decode(errors="replace")

    def _read_pid(self):
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout=15.0):
        if self.pid and pid_alive(self.pid):
            return
        try:
            os.unlink(self.pid_path)
        except FileNotFoundError:
            pass
        track(self)
        r = self._ctl("start")
        out = r.stdout.decode(errors="replace")
        if r.returncode != 0:
            raise RuntimeError("apache2 -k start failed (%d): %s\n--- error log:\n%s"
                               % (r.returncode, out, tail(self.error_log_path)))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read_pid() is None:
            time.sleep(0.05)
        self.pid = self._read_pid()
        if self.pid is None or not wait_for_port(
                self.port, timeout=max(0.5, deadline - time.monotonic()),
                alive=lambda: pid_alive(self.pid)):
            self.stop()
            raise RuntimeError("apache2 did not come up on port %d: %s\n--- error log:\n%s"
                               % (self.port, out, tail(self.error_log_path)))

    def processes(self):
        """PIDs of this instance: the parent, its descendants and anything whose cmdline names the
        ServerRoot (e.g. a daemon that was re-parented)."""
        pids = set()
        parent = self.pid or self._read_pid()
        if parent and pid_alive(parent):
            pids.add(parent)
            pids.update(descendants(parent))
        pids.update(pids_matching(self.root))
        # only apache2 processes (never a `tail -f` on our log, etc.)
        out = []
        for p in pids:
            try:
                exe = os.readlink("/proc/%d/exe" % p)
            except OSError:
                exe = ""
            if os.path.basename(exe).startswith("apache2") or os.path.basename(exe).startswith("httpd"):
                out.append(p)
        return sorted(out)

    def child_pids(self):
        parent = self.pid or self._read_pid()
        return [p for p in self.processes() if p != parent]

    def stop(self, timeout=5.0):
        """`-k stop`, bounded wait, then SIGKILL of anything left (parent, children, daemon)."""
        snapshot = {p: _proc_starttime(p) for p in self.processes()}
        parent = self.pid or self._read_pid()
        grace = 2.0
        if parent and pid_alive(parent):
            try:
                self._ctl("stop", timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            if not wait_pid_gone(parent, timeout):
                kill_pids([parent], signal.SIGKILL)
                wait_pid_gone(parent, 2.0)
                grace = 0.0      # children of a killed parent are not waited for

        def leftovers():
            left = [p for p, t in snapshot.items() if pid_alive(p) and _proc_starttime(p) == t]
            return left + [p for p in self.processes() if p not in snapshot]

        # what is left of this instance (held long-polls, the daemon): kill by pid
        deadline = time.monotonic() + grace
        left = leftovers()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = leftovers()
        if left:
            kill_pids(left, signal.SIGKILL)
            for p in left:
                wait_pid_gone(p, 2.0)
        self.pid = None
        untrack(self)

    def graceful(self, timeout=15.0):
        """`-k graceful` and wait until the new generation is serving."""
        before = self._count_resumes()
        r = self._ctl("graceful")
        if r.returncode != 0:
            raise RuntimeError("apache2 -k graceful failed: %s" % r.stdout.decode(errors="replace"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._count_resumes() > before:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("apache2 graceful restart did not complete\n" +
                               tail(self.error_log_path))
        if not wait_for_port(self.port, timeout=max(0.5, deadline - time.monotonic())):
            raise RuntimeError("apache2 not listening after graceful")

    def _count_resumes(self):
        return sum(1 for l in self.error_log_lines() if "resuming normal operations" in l)

    # ------------------------------------------------------------------ urls and logs
    def url(self, path="/"):
        if not path.startswith("/"):
            path = "/" + path
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def status(self, path="/xmpp-status"):
        """The module's status page in its `?auto` form as a dict of strings (the location
        must be configured with SetHandler xmpp-bridge-status)."""
        with urllib.request.urlopen(self.url(path + "?auto"), timeout=10) as f:
            lines = f.read().decode().splitlines()
        return {k: v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)}

    def counter(self, name, path="/xmpp-status"):
        """One counter of the status page, 0 when absent."""
        return int(self.status(path).get(name, "0"))

    def error_log_lines(self, since=0):
        try:
            with open(self.error_log_path, "rb") as f:
                f.seek(since)
                data = f.read()
        except OSError:
            return []
        return data.decode(errors="replace").splitlines()

    def error_log_tail(self, n=40):
        return tail(self.error_log_path, n)

    def log_mark(self):
        """Remember the current end of the error log; assert_no_unexpected_log() checks from here."""
        try:
            self._log_mark = os.path.getsize(self.error_log_path)
        except OSError:
            self._log_mark = 0
        return self._log_mark

    def unexpected_log_lines(self, expected_tags=(), since=None):
        expected = set(expected_tags)
        bad = []
        for line in self.error_log_lines(self._log_mark if since is None else since):
            tags = _XB_TAG_RE.findall(line)
            if _XB_LINE_RE.search(line) or (tags and _ANY_BAD_RE.search(line)):
                if not tags or not (set(tags) & expected):
                    bad.append(line)
            elif _CRASH_RE.search(line) and "AH00052" not in expected:
                bad.append(line)
            elif _SANITIZER_RE.search(line):
                bad.append(line)
        return bad

    def assert_no_unexpected_log(self, expected_tags=(), since=None):
        """Fail on any [xmpp_bridge:error|warn] line (or any error/warn line with an XB tag, or a
        child killed by a signal) since log_mark() whose XB tag is not in expected_tags."""
        bad = self.unexpected_log_lines(expected_tags, since)
        assert not bad, "unexpected error log lines:\n" + "\n".join(bad)

    def access_log_entries(self):
        """Parsed access log: dicts with remote, pid, time, request, status, bytes, usec, client."""
        out = []
        try:
            with open(self.access_log_path, "rb") as f:
                data = f.read().decode(errors="replace")
        except OSError:
            return out
        for line in data.splitlines():
            m = _ACCESS_RE.match(line)
            if not m:
                continue
            out.append({"remote": m.group(1), "pid": int(m.group(2)), "time": int(m.group(3)),
                        "request": m.group(4), "status": int(m.group(5)), "bytes": m.group(6),
                        "usec": int(m.group(7)), "client": m.group(8)})
        return out

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
