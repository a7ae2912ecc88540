#!/usr/bin/env bash
# One command from a fresh clone to a running demo of mod_xmpp_bridge:
#
#   scripts/demo.sh          install dependencies (scripts/install-deps.sh), build the module
#                            (autoreconf -fi && ./configure && make), then run scripts/demo.py:
#                            Prosody (example.test) with the project's token provider
#                            (contrib/prosody/mod_auth_xmpp_bridge.lua) + Apache (event MPM) with
#                            the module on 127.0.0.1:8080 or the first free port above: a site
#                            behind HTTP Basic login (users alice and bob) whose page /chat/ is
#                            Converse.js logged in by prebind, without any XMPP password typed.
#                            The password-login page stays at /. Prints the URLs and the
#                            logins; runs until Ctrl-C.
#   scripts/demo.sh stop     stops a running demo by the PIDs in its state file
#
# Env: XB_TARGET=prosody  the page alone, /http-bind proxied to Prosody's own BOSH (no module
#                         build, no site login, no prebind)
#      XB_DEMO_STATE=FILE state file (default /tmp/mod_xmpp_bridge-demo.json; mode 0600, holds
#                         the demo logins for test/e2e/check_demo.py)
#      XB_DEMO_SKIP_DEPS=1 / XB_DEMO_SKIP_BUILD=1  skip those steps
# Extra arguments go to demo.py (--port N, --target module|prosody).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
state=${XB_DEMO_STATE:-/tmp/mod_xmpp_bridge-demo.json}
py=/usr/bin/python3

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# wait up to $2 seconds for pid $1 to end
wait_gone() {
  local pid=$1 n=$(( $2 * 10 ))
  while [ "$n" -gt 0 ] && alive "$pid"; do sleep 0.1; n=$(( n - 1 )); done
  ! alive "$pid"
}

stop_demo() {
  if [ ! -f "$state" ]; then
    echo "no demo state file ($state): nothing to stop"
    return 0
  fi
  # the recorded PIDs: demo.py, the Apache parent, Prosody
  read -r demo_pid apache_pid prosody_pid apache_root apache_conf workdir < <(
    "$py" -c 'import json,sys; s=json.load(open(sys.argv[1]))
print(s.get("pid") or "", s.get("apache_pid") or "", s.get("prosody_pid") or "",
      s.get("apache_root") or "-", s.get("apache_conf") or "-", s.get("workdir") or "-")' "$state")
  if alive "$demo_pid"; then
    echo "stopping demo (pid $demo_pid) ..."
    kill -TERM "$demo_pid"
    if wait_gone "$demo_pid" 30; then
      echo "stopped."
      rm -f "$state"
      return 0
    fi
    echo "demo.py did not stop in 30 s: killing it and what it started"
    kill -KILL "$demo_pid" 2>/dev/null || true
  fi
  if alive "$apache_pid"; then
    kids=$(ps -o pid= --ppid "$apache_pid" || true)
    if [ -f "$apache_conf" ]; then
      timeout 15 /usr/sbin/apache2 -d "$apache_root" -f "$apache_conf" -k stop >/dev/null 2>&1 || true
    else
      kill -TERM "$apache_pid" 2>/dev/null || true
    fi
    wait_gone "$apache_pid" 10 || kill -KILL "$apache_pid" 2>/dev/null || true
    for k in $kids; do alive "$k" && kill -KILL "$k" 2>/dev/null || true; done
  fi
  if alive "$prosody_pid"; then
    kill -TERM "$prosody_pid" 2>/dev/null || true
    wait_gone "$prosody_pid" 10 || kill -KILL "$prosody_pid" 2>/dev/null || true
  fi
  case "$workdir" in
    /tmp/mod_xmpp_bridge-demo-*) [ -d "$workdir" ] && rm -rf "$workdir" ;;
  esac
  rm -f "$state"
  echo "stopped."
}

case "${1:-start}" in
  stop)
    stop_demo
    exit 0
    ;;
  start)
    [ $# -gt 0 ] && shift
    ;;
  -*)
    ;;
  *)
    echo "usage: $0 [start [--port N] [--target module|prosody] | stop]" >&2
    exit 2
    ;;
esac

target=${XB_TARGET:-module}
for a in "$@"; do
  case "$a" in --target=*) target=${a#--target=} ;; esac
done
prev=""
for a in "$@"; do
  [ "$prev" = "--target" ] && target=$a
  prev=$a
done

if [ "${XB_DEMO_SKIP_DEPS:-0}" != 1 ]; then
  echo "== installing dependencies (scripts/install-deps.sh)"
  bash "$here/scripts/install-deps.sh"
fi

if [ "$target" = module ] && [ "${XB_DEMO_SKIP_BUILD:-0}" != 1 ]; then
  echo "== building the module (autoreconf -fi && ./configure && make)"
  (cd "$here" && autoreconf -fi && ./configure && make)
fi

echo "== starting the demo"
exec "$py" "$here/scripts/demo.py" --target "$target" "$@"
