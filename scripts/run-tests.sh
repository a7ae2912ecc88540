#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what is missing, builds the module with
# warnings as errors, runs the C unit tests, then the integration suite (real apache2 under the
# prefork, worker and event MPMs + real Prosody) and the Converse.js end-to-end test (headless
# Chromium), and the XEP-0124/0206 conformance items against the module (event MPM), all on
# 127.0.0.1 in temp dirs.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

scripts/install-deps.sh

autoreconf -fi >/dev/null
./configure -q --enable-werror
make -s clean
make -s
make -s unit

cd test
/usr/bin/python3 -m pytest -q -p no:cacheprovider integration e2e conformance "$@"
echo "suite time: $(( $(date +%s) - start )) s"
