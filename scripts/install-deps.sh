#!/usr/bin/env bash
# Installs what building, testing and the demo need on a fresh Debian (bookworm) machine.
# Idempotent: packages already present are skipped by apt; npm packages go under test/e2e/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

DEB_PKGS=(
  build-essential autoconf automake pkg-config
  apache2 apache2-dev libapr1-dev libaprutil1-dev
  libexpat1-dev libssl-dev libldap-dev libcmocka-dev
  openssl ca-certificates curl
  prosody lua-sec lua-ldap
  slapd ldap-utils ejabberd
  python3 python3-pytest valgrind
  chromium
  tsung
)

missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  # Keep package postinst scripts from starting system services on the default ports:
  # the tests and the demo start their own instances on loopback in temp dirs.
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
    $sudo_cmd chmod 755 "$policy"
    added_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ "$added_policy" -eq 0 ] || $sudo_cmd rm -f "$policy"
  # Installing may still have started services on systems without policy-rc.d support.
  # Not `service ejabberd stop`: its init script runs `ejabberdctl status` via `su ejabberd`,
  # which itself starts epmd on port 4369 (and writes the system Erlang cookie).
  for svc in apache2 prosody slapd; do
    $sudo_cmd service "$svc" stop >/dev/null 2>&1 || true
  done
  # A system ejabberd node (and its epmd) started by the postinst runs as the ejabberd user:
  # stop those by PID. The tests' own nodes run as the invoking user without epmd.
  for pid in $(ps -eo pid=,user=,comm= | awk '$2=="ejabberd" && $3 ~ /^(beam|epmd|erl_child_setup|inet_gethost|heart)/ {print $1}'); do
    $sudo_cmd kill "$pid" 2>/dev/null || true
  done
fi

# Node.js ships npm (Debian's own npm package conflicts with other Node.js builds): add it only when
# no node is present at all.
if ! command -v npm >/dev/null 2>&1; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm
fi

# Converse.js and the browser driver for the end-to-end test and the demo.
if [ ! -d "$here/test/e2e/node_modules/converse.js" ] || [ ! -d "$here/test/e2e/node_modules/playwright-core" ]; then
  (cd "$here/test/e2e" && npm install --no-audit --no-fund --silent)
fi
