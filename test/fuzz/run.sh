#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time, one at a time (one process, in the
# foreground: -jobs would move the output to ./fuzz-N.log), on the
# checked-in seeds (test/fuzz/corpus/<t>, read only) plus a scratch corpus that grows between
# runs (build/fuzz/corpus/<t>). Fails when any target crashes, leaks, trips a sanitizer or an
# invariant. Prints a summary table (target, seconds, execs, corpus, result).
# Usage: test/fuzz/run.sh SECONDS TARGET...      (from the top of the tree, after make fuzz-build)
set -uo pipefail

# All in a function, read whole before it runs: editing this file during a long run must not
# change what the running copy does.
main() {
secs=${1:?seconds}
shift
top=$(pwd)
out=build/fuzz
mkdir -p "$out/logs" "$out/artifacts"
status=0
summary=()

for t in "$@"; do
  bin="$out/fuzz_$t"
  [ -x "$bin" ] || { echo "missing $bin (make fuzz-build)"; status=1; continue; }
  mkdir -p "$out/corpus/$t"
  opts=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$out/artifacts/$t-")
  case "$t" in
    bosh_body|xml_element|xmpp_login) opts+=(-dict=test/fuzz/xml.dict -max_len=8192) ;;
    xmpp_framer|xmpp_conn) opts+=(-dict=test/fuzz/xml.dict -max_len=16384) ;;
    jwt) opts+=(-dict=test/fuzz/jwt.dict -max_len=4096) ;;
    sasl) opts+=(-dict=test/fuzz/sasl.dict -max_len=2048) ;;
    jid) opts+=(-max_len=4096) ;;
    ipc_reader|config) opts+=(-max_len=4096) ;;
  esac
  log="$out/logs/$t.log"
  echo "== fuzz_$t for ${secs}s (log: $log)"
  start=$(date +%s)
  "$bin" "${opts[@]}" "$out/corpus/$t" "test/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(ls "$out/corpus/$t" | wc -l)
  seeds=$(ls "test/fuzz/corpus/$t" 2>/dev/null | wc -l)
  if [ $rc -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc)"
    status=1
    grep -E 'ERROR: |runtime error|fuzz invariant failed|Test unit written' "$log" | head -5
  fi
  summary+=("$(printf '%-12s %6ss %12s execs %6s corpus (+%s seeds)  %s' "$t" "$took" \
              "${execs:-?}" "$corpus" "$seeds" "$result")")
done

echo
echo "target        time        execs        corpus               result"
printf '%s\n' "${summary[@]}"
cd "$top"
return $status
}

main "$@"
exit $?
