#!/usr/bin/env bash
# What `make fuzz` needs and the normal build does not: clang and its libFuzzer/sanitizer
# runtime (Debian: clang + libclang-rt-dev, which pulls libclang-rt-<N>-dev matching the
# default clang). Installs them only when a trivial libFuzzer program does not build.
# Usage: scripts/install-fuzz-deps.sh [clang-command]
set -euo pipefail
cc=${1:-clang}

probe() {
  local dir rc
  dir=$(mktemp -d)
  printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$dir/p.c"
  rc=0
  "$cc" -fsanitize=fuzzer,address,undefined "$dir/p.c" -o "$dir/p" >/dev/null 2>&1 || rc=1
  rm -rf "$dir"
  return $rc
}

command -v "$cc" >/dev/null 2>&1 && probe && exit 0

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
pkgs=(clang libclang-rt-dev)
# A versioned clang (clang-15...) needs its own runtime package.
case "$cc" in
  clang-[0-9]*) pkgs=("$cc" "libclang-rt-${cc#clang-}-dev") ;;
esac
echo "installing ${pkgs[*]} for the fuzz targets"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
probe || { echo "$cc still cannot build a libFuzzer target" >&2; exit 1; }
