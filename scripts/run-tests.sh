#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what is missing, builds the module with
# warnings as errors, runs the C unit tests, every libFuzzer target for XB_FUZZ_SECONDS
# (default 5; 0 skips), then the integration suite (real apache2 under the prefork, worker and
# event MPMs + real Prosody, ejabberd, slapd), the Converse.js end-to-end tests (headless
# Chromium) and the XEP-0124/0206 conformance items against the module, all on 127.0.0.1 in
# temp dirs.
# Alongside (started right after the unit tests, in the background, because both passes spend
# most of their time waiting on timers and sockets, not on the CPU): the sanitizer pass. The
# module, the core and the unit tests built with ASan + UBSan (./configure
# --enable-sanitizers) in a copy of the tree under build/sanitizers/ (so the first pass, `make
# e2e` and anyone running the tests later keep the normal module in .libs/), and the
# integration suite run against that module; any sanitizer report fails it
# (scripts/apache2-sanitized, test/xbtest/sanitizers.py). Its output goes to
# build/sanitizer-pass.log and is summed up at the end. It runs the MPM-dependent modules under
# the event and prefork MPMs (XB_SANITIZER_MPMS="event worker prefork" for all three) and the
# MPM-independent (`protocol`) modules under event (XB_SANITIZER_PROTOCOL_MPMS).
# XB_SKIP_SANITIZERS=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
start=$(date +%s)

scripts/install-deps.sh

autoreconf -fi >/dev/null
./configure -q --enable-werror
make -s clean
make -s -j2
make -s unit
# ---- the sanitizer pass: ASan + UBSan, in the background ------------------------------------
san_start=$(date +%s)
san_tree=$repo/build/sanitizers
san_reports=$repo/build/sanitizer-reports
sanitizer_pass() {
  (cd "$san_tree" && ./configure -q --enable-werror --enable-sanitizers && make -s clean \
      && make -s -j2 && make -s unit >"$san_tree/unit.log" 2>&1) \
      || { tail -40 "$san_tree/unit.log" 2>/dev/null; echo "sanitizer build or unit tests failed"; return 1; }
  echo "sanitizer build + unit tests: $(( $(date +%s) - san_start )) s"
  cd "$repo/test"
  # test_440 installs the tree's own (normal) module and tests that; test_050 checks the test
  # harness's own parts (slapd, ejabberd) without the module, test_495 the benchmark harness:
  # nothing to learn from them here.
  # Threads (event) and processes (prefork): the worker MPM adds no code path of the module's
  # that event does not take.
  XB_MPMS="${XB_SANITIZER_MPMS:-event prefork}" \
  XB_PROTOCOL_MPMS="${XB_SANITIZER_PROTOCOL_MPMS:-event}" \
  XB_MODULE=$san_tree/.libs/mod_xmpp_bridge.so XB_APACHE2=$repo/scripts/apache2-sanitized \
  XB_SANITIZER_DIR=$san_reports \
      /usr/bin/python3 -m pytest -q -p no:cacheprovider integration \
      --ignore=integration/test_440_packaging.py --ignore=integration/test_050_real_parts.py \
      --ignore=integration/test_495_bench_smoke.py \
      "$@" || return 1
  echo "sanitizer pass time: $(( $(date +%s) - san_start )) s (reports: $san_reports, none)"
}

san_pid=
san_log=$repo/build/sanitizer-pass.log
stop_sanitizer_pass() {
  # the first pass failed or this script was interrupted: SIGTERM to the pass's children (make,
  # or pytest, whose conftest turns SIGTERM into an interrupt so every fixture stops what it
  # started, by PID), then wait for it
  if [ -n "$san_pid" ]; then
    pkill -TERM -P "$san_pid" 2>/dev/null || true
    wait "$san_pid" 2>/dev/null || true
  fi
}
if [ "${XB_SKIP_SANITIZERS:-0}" != 1 ]; then
  rm -rf "$san_tree" "$san_reports"
  mkdir -p "$san_tree"
  # the sources as they are now (committed or not), without build outputs; copied before
  # anything else runs in this tree
  (cd "$repo" && tar --exclude=./build --exclude=./.libs --exclude=./.git \
      --exclude=./test/e2e/node_modules --exclude='__pycache__' -cf - .) | tar -C "$san_tree" -xf -
  ( sanitizer_pass "$@" ) >"$san_log" 2>&1 &
  san_pid=$!
  trap stop_sanitizer_pass EXIT
  echo "sanitizer pass started in the background (pid $san_pid, log $san_log)"
fi

# Each libFuzzer target for a short, bounded time on its checked-in seeds (issue 7; `make
# fuzz-long` is the 10-minute-per-target run). XB_FUZZ_SECONDS=0 skips it.
fuzz_secs=${XB_FUZZ_SECONDS:-5}
if [ "$fuzz_secs" != 0 ]; then
  fuzz_start=$(date +%s)
  make -s fuzz FUZZ_SECONDS="$fuzz_secs"
  echo "fuzz time: $(( $(date +%s) - fuzz_start )) s"
fi

cd "$repo/test"
/usr/bin/python3 -m pytest -q -p no:cacheprovider integration e2e conformance "$@"
echo "first pass done: $(( $(date +%s) - start )) s"

if [ -n "$san_pid" ]; then
  san_rc=0
  wait "$san_pid" || san_rc=$?
  san_pid=
  echo "---- sanitizer pass (full output: $san_log) ----"
  grep -E "sanitizer (build|pass)|passed|failed|error|FAILED|ERROR|Sanitizer" "$san_log" | tail -40
  if [ "$san_rc" != 0 ]; then
    tail -80 "$san_log"
    echo "sanitizer pass failed (exit $san_rc)"
    exit 1
  fi
fi
echo "total time: $(( $(date +%s) - start )) s"

