#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what is missing, builds the module with
# warnings as errors, runs the C unit tests, then the integration suite (real apache2 under the
# prefork, worker and event MPMs + real Prosody) and the Converse.js end-to-end test (headless
# Chromium), and the XEP-0124/0206 conformance items against the module (event MPM), all on
# 127.0.0.1 in temp dirs. Then a second pass: the module, the core and the
# unit tests built with ASan + UBSan (./configure --enable-sanitizers) in a copy of the tree
# under build/sanitizers/ (so the first pass, `make e2e` and anyone running the tests later
# keep the normal module in .libs/), and the integration suite run against that module; any
# sanitizer report fails it (scripts/apache2-sanitized, test/xbtest/sanitizers.py).
# XB_SKIP_SANITIZERS=1 skips the second pass; it runs under the event and prefork MPMs
# (XB_SANITIZER_MPMS="event worker prefork" for all three). Before the integration suite,
# every libFuzzer target runs for XB_FUZZ_SECONDS (default 8; 0 skips).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
start=$(date +%s)

scripts/install-deps.sh

autoreconf -fi >/dev/null
./configure -q --enable-werror
make -s clean
make -s
make -s unit
# Each libFuzzer target for a short, bounded time on its checked-in seeds (issue 7; `make
# fuzz-long` is the 10-minute-per-target run). XB_FUZZ_SECONDS=0 skips it.
fuzz_secs=${XB_FUZZ_SECONDS:-8}
if [ "$fuzz_secs" != 0 ]; then
  fuzz_start=$(date +%s)
  make -s fuzz FUZZ_SECONDS="$fuzz_secs"
  echo "fuzz time: $(( $(date +%s) - fuzz_start )) s"
fi

cd test
/usr/bin/python3 -m pytest -q -p no:cacheprovider integration e2e conformance "$@"
echo "suite time: $(( $(date +%s) - start )) s"

[ "${XB_SKIP_SANITIZERS:-0}" = 1 ] && exit 0

# ---- second pass: ASan + UBSan -------------------------------------------------------------
san_start=$(date +%s)
san_tree=$repo/build/sanitizers
san_reports=$repo/build/sanitizer-reports
rm -rf "$san_tree" "$san_reports"
mkdir -p "$san_tree"
# the sources as they are now (committed or not), without build outputs
(cd "$repo" && tar --exclude=./build --exclude=./.libs --exclude=./.git \
    --exclude=./test/e2e/node_modules --exclude='__pycache__' -cf - .) | tar -C "$san_tree" -xf -
(cd "$san_tree" && ./configure -q --enable-werror --enable-sanitizers && make -s clean \
    && make -s -j2 && make -s unit >"$san_tree/unit.log" 2>&1) \
    || { tail -40 "$san_tree/unit.log" 2>/dev/null; echo "sanitizer build or unit tests failed"; exit 1; }
echo "sanitizer build + unit tests: $(( $(date +%s) - san_start )) s"
# test_440 installs the tree's own (normal) module and tests that: nothing to learn here.
cd "$repo/test"
# Threads (event) and processes (prefork): the worker MPM adds no code path of the module's
# that event does not take, and leaving it out keeps the whole command well under 20 minutes.
XB_MPMS="${XB_SANITIZER_MPMS:-event prefork}" \
XB_MODULE=$san_tree/.libs/mod_xmpp_bridge.so XB_APACHE2=$repo/scripts/apache2-sanitized \
XB_SANITIZER_DIR=$san_reports \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider integration \
    --ignore=integration/test_440_packaging.py "$@"
echo "sanitizer pass time: $(( $(date +%s) - san_start )) s (reports: $san_reports, none)"
echo "total time: $(( $(date +%s) - start )) s"
