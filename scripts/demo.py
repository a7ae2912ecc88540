#!/usr/bin/python3
"""mod_xmpp_bridge demo: a small "intranet" on 127.0.0.1:8080 (or the first free port above)
behind HTTP Basic site login, whose chat page logs its users in to XMPP by prebind: no XMPP
password is typed. Prosody (example.test) checks the short-lived tokens the module's daemon
mints with contrib/prosody/mod_auth_xmpp_bridge.lua; Apache (event MPM) runs the module at
/http-bind (BOSH) and /prebind (behind the site login). Runs until Ctrl-C (or
`scripts/demo.sh stop`), then stops everything it started.

  /usr/bin/python3 scripts/demo.py [--target module|prosody] [--port N] [--state FILE]

Pages (every one behind the site login; users alice and bob, in each other's rosters):
  /chat/   Converse.js logged in by prebind (authentication 'prebind', prebind_url '/prebind')
  /        the same Converse.js with its ordinary login form (type the XMPP password printed)
  /logout  (POST) ends the user's prebound XMPP sessions, when the module has xmpp-logout

--target prosody (or env XB_TARGET=prosody) is the old check of the page without the module:
/http-bind proxied to Prosody's own BOSH, password login only, no site login, no prebind.
Env XB_MODULE overrides the module path (default .libs/mod_xmpp_bridge.so; the demo runs a copy,
so rebuilding does not disturb it); XB_KEEP=1 keeps the work directory after stopping.
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


def write_state(path, state):
    """The state file: PIDs for `demo.sh stop`, and the demo logins for test/e2e/check_demo.py
    (mode 0600)."""
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2)
    os.replace(path + ".tmp", path)


def start_prebind(workdir, port, site_users, xmpp_users):
    """Prosody with the token provider + Apache with the module, the whole site behind HTTP
    Basic; alice and bob in each other's rosters. Returns the started PrebindSite."""
    ca = TestCA(os.path.join(workdir, "ca"))
    module = os.path.join(workdir, "mod_xmpp_bridge.so")
    shutil.copy2(default_module_path(), module)
    os.chmod(module, 0o755)
    site = xbe2e.PrebindSite(os.path.join(workdir, "site"), "prosody", ca, module, site_users,
                             xmpp_users=xmpp_users, port=port, site_wide=True, max_wait=60,
                             domain=DOMAIN)
    site.start()
    try:
        a, b = site.prebound_client("alice"), site.prebound_client("bob")
        try:
            a.start_polling()
            b.start_polling()
            xbe2e.befriend_clients(a, b)
        finally:
            for c in (a, b):
                try:
                    c.terminate(timeout=5)
                finally:
                    c.close()
    except Exception:
        site.stop()
        raise
    return site


def start_password_only(workdir, port, target, xmpp_users):
    """The old demo: the password-login page, /http-bind proxied to Prosody's BOSH."""
    ca = TestCA(os.path.join(workdir, "ca"))
    prosody = Prosody(os.path.join(workdir, "prosody"), domain=DOMAIN, users=xmpp_users, ca=ca,
                      bosh=True, bosh_max_wait=60)
    prosody.start()
    try:
        xbe2e.befriend(prosody.bosh_url, DOMAIN, ("alice", xmpp_users["alice"]),
                       ("bob", xmpp_users["bob"]))
        apache = xbe2e.make_site_apache(os.path.join(workdir, "apache-event"), target,
                                        prosody, ca, port=port, max_wait=60)
        apache.start()
    except Exception:
        prosody.stop()
        raise
    return prosody, apache


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
    # the site logins (HTTP Basic) and, for the password page only, XMPP passwords
    site_users = {"alice": "alice-site-" + secrets.token_hex(3),
                  "bob": "bob-site-" + secrets.token_hex(3)}
    xmpp_users = {"alice": "alice-xmpp-" + secrets.token_hex(3),
                  "bob": "bob-xmpp-" + secrets.token_hex(3)}

    site = prosody = apache = None
    stopping = {"flag": False}

    def stop_all(*_):
        if stopping["flag"]:
            return
        stopping["flag"] = True
        print("\nstopping ...", flush=True)
        parts = [("site", site)] if site is not None else [("apache", apache), ("prosody", prosody)]
        for what, obj in parts:
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
        if args.target == "module":
            site = start_prebind(workdir, port, site_users, xmpp_users)
            prosody, apache = site.xmpp, site.apache
        else:
            prosody, apache = start_password_only(workdir, port, args.target, xmpp_users)
        url = apache.url("/")
        state = {"pid": os.getpid(), "workdir": workdir, "url": url, "port": port,
                 "target": args.target, "apache_pid": apache.pid,
                 "apache_root": apache.root, "apache_conf": apache.conf_path,
                 "prosody_pid": prosody.pid, "started": time.time(), "domain": DOMAIN,
                 "xmpp_users": xmpp_users}
        if site is not None:
            state.update({"chat_url": apache.url("/chat/"), "site_users": site_users,
                          "logout": site.logout, "require_site_user": site.require_site_user})
        write_state(args.state, state)
        if site is not None:
            print("""
mod_xmpp_bridge demo is running: an "intranet" behind HTTP Basic site login, whose chat
page logs its users in to XMPP by prebind. Nobody types an XMPP password there.

  Open        {chat}
  Site login  alice / {sa}
         or   bob   / {sb}
  (one browser per user, or a private window for the second: the browser remembers a Basic
  login per site; alice and bob are in each other's rosters)

  How: the page's Converse.js asks /prebind (behind the site login) for a session; the
  module's daemon logs in to Prosody as that user with a 60-second signed token that Prosody
  checks (contrib/prosody/mod_auth_xmpp_bridge.lua) and hands {{jid, sid, rid}} to the page,
  which attaches at /http-bind{rsu}.

  The ordinary password login is still at {url} (same site login first), with the
  XMPP passwords  alice@{d} {pa}   bob@{d} {pb}
{logout}
  Apache log  {alog}
  Prosody log {plog}
  State file  {state} (workdir {wd})

Ctrl-C (or `scripts/demo.sh stop`) stops it.
""".format(chat=apache.url("/chat/"), url=url, sa=site_users["alice"], sb=site_users["bob"],
           d=DOMAIN, pa=xmpp_users["alice"], pb=xmpp_users["bob"],
           rsu=(" (XmppBridgeRequireSiteUser On: a session works only with the site login "
                "that made it)" if site.require_site_user else ""),
           logout=("  Site logout: POST %s ends the user's prebound XMPP sessions.\n"
                   % apache.url("/logout") if site.logout else ""),
           alog=apache.error_log_path, plog=prosody.log_path, state=args.state, wd=workdir),
                  flush=True)
        else:
            print("""
mod_xmpp_bridge demo is running (/http-bind proxied to Prosody's own BOSH at {bosh}; no
module, so no site login and no prebind: `--target module` for those).

  Open   {url}
  Log in as   alice@{d}  password {pa}
         or   bob@{d}    password {pb}

  Apache log      {alog}
  Prosody log     {plog}
  State file      {state} (workdir {wd})

Ctrl-C (or `scripts/demo.sh stop`) stops it.
""".format(bosh=prosody.bosh_url, url=url, d=DOMAIN, pa=xmpp_users["alice"],
           pb=xmpp_users["bob"], alog=apache.error_log_path, plog=prosody.log_path,
           state=args.state, wd=workdir), flush=True)
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
