"""Sanitizer reports of an instrumented module (./configure --enable-sanitizers).

With env XB_SANITIZER_DIR set (scripts/apache2-sanitized writes ASan/UBSan reports there, one
file per process that reported anything), the suite fails when a report file appears, whatever
the tests themselves saw: a report in the daemon or in a child that the tests happened not to
notice is still a bug. Each new file is attributed to the test that was running (or had just
finished) when it was first seen, and listed with its first lines at the end of the run.

gcc's runtimes write UBSan reports to stderr, not to UBSAN_OPTIONS' log_path, when ASan is
loaded too: libubsan's start-up calls __sanitizer_set_report_path, which resolves to libasan's
copy (loaded first), so the path set is ASan's (an ASan report then lands in ubsan.<exe>.<pid>)
and libubsan's own stays stderr. For apache2, its children and the daemon, stderr is the error
log: the run also fails on sanitizer lines in any error log under the suite's work directory
(and xbtest.apache counts them as unexpected log lines after each test).
"""
import os
import re

_STATE = {"dir": None, "before": set(), "seen": {}, "workdir": None}

# report lines of ASan / UBSan / LSan, wherever they were written
SANITIZER_LINE_RE = re.compile(r"runtime error: |ERROR: (?:Address|Leak|UndefinedBehavior)"
                               r"Sanitizer|SUMMARY: (?:Address|Leak|UndefinedBehavior)Sanitizer")

FIRST_LINES = 8


def report_dir():
    return os.environ.get("XB_SANITIZER_DIR") or None


def session_start(workdir):
    d = report_dir()
    if not d:
        return
    _STATE["workdir"] = workdir
    os.makedirs(d, exist_ok=True)
    # the children and the daemon run as User: they must be able to create files here
    os.chmod(d, 0o1777)
    _STATE["dir"] = d
    _STATE["before"] = set(os.listdir(d))


def note(nodeid):
    """Attributes report files that appeared since the last call to `nodeid`."""
    d = _STATE["dir"]
    if not d:
        return
    for name in sorted(os.listdir(d)):
        if name not in _STATE["before"] and name not in _STATE["seen"]:
            _STATE["seen"][name] = nodeid


def reports():
    """[(path, test nodeid, first lines)] of every report file that appeared in this run."""
    note("(after the last test)")
    out = []
    for name, nodeid in sorted(_STATE["seen"].items()):
        path = os.path.join(_STATE["dir"], name)
        try:
            with open(path, "rb") as f:
                lines = f.read(16384).decode(errors="replace").splitlines()
        except OSError as e:
            lines = ["(cannot read: %s)" % e]
        lines = [l for l in lines if l.strip()][:FIRST_LINES]
        out.append((path, nodeid, lines))
    return out


def error_log_reports():
    """[(path, first sanitizer lines)] of the error logs under the suite's work directory."""
    out = []
    if not _STATE["workdir"]:
        return out
    for root, _dirs, files in os.walk(_STATE["workdir"]):
        for name in files:
            if not name.startswith("error.log"):
                continue
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    text = f.read().decode(errors="replace")
            except OSError:
                continue
            hits = [l for l in text.splitlines() if SANITIZER_LINE_RE.search(l)]
            if hits:
                out.append((path, hits[:FIRST_LINES]))
    return sorted(out)


def summary_lines():
    found = reports()
    in_logs = error_log_reports()
    out = []
    for path, lines in in_logs:
        out.append("  sanitizer lines in %s:" % path)
        out.extend("      " + l for l in lines)
    if not found:
        return out
    out.append("%d sanitizer report file(s) in %s:" % (len(found), _STATE["dir"]))
    for path, nodeid, lines in found:
        out.append("  %s  (seen after %s)" % (os.path.basename(path), nodeid))
        out.extend("      " + l for l in lines)
    return out
