#!/usr/bin/env bash
# `make conformance`: the BOSH conformance suite (test/conformance/) against each target in turn
# (XB_TARGET=module: Apache event MPM + this module in front of Prosody; prosody: Prosody's own
# mod_bosh; ejabberd: ejabberd's own mod_bosh), one JUnit XML per target under build/conformance/,
# then the table item x target -> pass / FAIL / n/a, printed and written to docs/conformance.md.
# CONFORMANCE_TARGETS="module prosody" picks targets; extra arguments go to pytest.
# Exit status: 0 when every target ran (failed items are results, not errors), 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
out=build/conformance
mkdir -p "$out"
targets=${CONFORMANCE_TARGETS:-module prosody ejabberd}
declare -A column=([module]=mod_xmpp_bridge [prosody]=Prosody [ejabberd]=ejabberd [proxy]=proxy)
runs=()
status=0
for t in $targets; do
    rm -f "$out/$t.xml"
    start=$(date +%s)
    (cd test && XB_TARGET=$t timeout 900 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
        conformance --junitxml="../$out/$t.xml" "$@") > "$out/$t.log" 2>&1
    echo "== $t: $(grep -E '(passed|failed|error)' "$out/$t.log" | tail -1) ($(( $(date +%s) - start )) s; log $out/$t.log)"
    if [ ! -s "$out/$t.xml" ]; then
        echo "   no results for $t: see $out/$t.log"
        status=1
    fi
    runs+=("${column[$t]:-$t}=$out/$t.xml")
done
/usr/bin/python3 scripts/conformance_table.py --out docs/conformance.md \
    --command "make conformance${CONFORMANCE_TARGETS:+ CONFORMANCE_TARGETS=\"$targets\"}" \
    --appendix test/conformance/outside_suite.md \
    --note "The mod_xmpp_bridge column is the module built from $(git rev-parse --abbrev-ref HEAD 2>/dev/null) $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src include mod_xmpp_bridge.c 2>/dev/null || echo ' plus uncommitted changes'). Versions: Prosody $(dpkg-query -W -f='${Version}' prosody 2>/dev/null), ejabberd $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null), Apache $(dpkg-query -W -f='${Version}' apache2 2>/dev/null) (event MPM)." \
    "${runs[@]}"
echo "table written to docs/conformance.md"
exit $status
