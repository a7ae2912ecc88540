#!/usr/bin/python3
"""mod_xmpp_bridge demo: Prosody (example.test, users alice and bob in each other's rosters) and
Apache (event MPM) on 127.0.0.1:8080 (or the first free port above) serving Converse.js, with
/http-bind handled by mod_xmpp_bridge. Runs until Ctrl-C (or `scripts/demo.sh stop`), then stops
everything it started.

  /usr/bin/python3 scripts/demo.py [--target module|prosody] [--port N] [--state FILE]

--target prosody (or env XB_TARGET=prosody) proxies /http-bind to Prosody's own BOSH instead of
the module (to check the page without the module). Env XB_MODULE overrides the module path
(default .libs/mod_xmpp_bridge.so); XB_KEEP=1 keeps the work directory after stopping.
"""
import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "test"))
sys.path.insert(0, os.path.join(REPO, "test", "e2e"))

import xbe2e  # noqa: E402
from xbtest.apache import default_module_path  # noqa: E402
from xbtest.ca import TestCA  # noqa: E402
from xbtest.prosody import Prosody  # noqa: E402

DOMAIN = "example.test"
DEFAULT_STATE = os.environ.get("XB_DEMO_STATE", "/tmp/mod_xmpp_bridge-demo.json")


def first_free_port(start=8080, count=100):
    for port in range(start, start + count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port in %d..%d on 127.0.0.1" % (start, start + count - 1))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default=(os.environ.get("XB_TARGET") or "module").lower(),
                    choices=["module", "prosody", "proxy"])
    ap.add_argument("--port", type=int, default=0, help="default: first free from 8080")
    ap.add_argument("--state", default=DEFAULT_STATE, help="state file (PIDs, workdir)")
    args = ap.parse_args()

    problem = xbe2e.node_modules_problem()
    if problem:
        raise SystemExit(problem)
    if args.target == "module" and not os.path.exists(default_module_path()):
        raise SystemExit("the module is not built: %s (run `autoreconf -fi && ./configure && make`,"
                         " or use XB_TARGET=prosody to try the page against Prosody's BOSH)"
                         % default_module_path())
    if os.path.exists(args.state):
        try:
            with open(args.state) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = {}
        if old.get("pid") and pid_alive(old["pid"]):
            raise SystemExit("a demo is already running (pid %s, %s): `scripts/demo.sh stop` first"
                             % (old["pid"], old.get("url")))

    port = args.port or first_free_port()
    workdir = tempfile.mkdtemp(prefix="mod_xmpp_bridge-demo-")
    os.chmod(workdir, 0o755)
    users = {"alice": "alice-" + secrets.token_hex(3), "bob": "bob-" + secrets.token_hex(3)}

    prosody = apache = None
    stopping = {"flag": False}

    def stop_all(*_):
        if stopping["flag"]:
            return
        stopping["flag"] = True
        print("\nstopping ...", flush=True)
        for what, obj in (("apache", apache), ("prosody", prosody)):
            if obj is not None:
                try:
                    obj.stop()
                except Exception as e:  # noqa: BLE001 - report and go on stopping
                    print("  %s stop: %s" % (what, e), flush=True)
        try:
            with open(args.state) as f:
                if json.load(f).get("pid") == os.getpid():
                    os.unlink(args.state)
        except (OSError, ValueError):
            pass
        if os.environ.get("XB_KEEP") == "1":
            print("kept %s" % workdir, flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        print("stopped.", flush=True)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        ca = TestCA(os.path.join(workdir, "ca"))
        prosody = Prosody(os.path.join(workdir, "prosody"), domain=DOMAIN, users=users, ca=ca,
                          bosh=True, bosh_max_wait=60)
        prosody.start()
        xbe2e.befriend(prosody.bosh_url, DOMAIN, ("alice", users["alice"]), ("bob", users["bob"]))
        apache = xbe2e.make_site_apache(os.path.join(workdir, "apache-event"), args.target,
                                        prosody, ca, port=port, max_wait=60)
        apache.start()
        url = apache.url("/")
        state = {"pid": os.getpid(), "workdir": workdir, "url": url, "port": port,
                 "target": args.target, "apache_pid": apache.pid,
                 "apache_root": apache.root, "apache_conf": apache.conf_path,
                 "prosody_pid": prosody.pid, "started": time.time()}
        with open(args.state, "w") as f:
            json.dump(state, f, indent=2)
        print("""
mod_xmpp_bridge demo is running ({target}).

  Open   {url}
  Log in as   alice@{d}  password {pa}
         or   bob@{d}    password {pb}
  (use two tabs or windows, one per user; alice and bob are in each other's rosters)

  Direct links that log in at once:
    {url}?jid=alice@{d}&password={pa}
    {url}?jid=bob@{d}&password={pb}

  /http-bind      {bosh}
  Apache log      {alog}
  Prosody log     {plog}
  State file      {state} (workdir {wd})

Ctrl-C (or `scripts/demo.sh stop`) stops it.
""".format(target="/http-bind = mod_xmpp_bridge" if args.target == "module"
                   else "/http-bind proxied to Prosody's own BOSH at %s" % prosody.bosh_url,
                   url=url, d=DOMAIN, pa=users["alice"], pb=users["bob"],
                   bosh=apache.url("/http-bind"), alog=apache.error_log_path,
                   plog=prosody.log_path, state=args.state, wd=workdir), flush=True)
        while True:
            time.sleep(1)
            if prosody.proc.poll() is not None:
                print("prosody exited (%s); see %s" % (prosody.proc.returncode, prosody.log_path))
                return 1
            if apache.pid and not pid_alive(apache.pid):
                print("apache exited; see %s" % apache.error_log_path)
                return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
