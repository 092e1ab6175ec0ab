#!/usr/bin/env bash
# Fuzz campaigns for xmig (issue 12): builds the fuzz driver, instruments Xmig.dll with SharpFuzz and runs AFL++.
#
#   fuzz/run.sh TARGET SECONDS     one campaign (TARGET: legacy libxc libxl xl v2 convert restore diff)
#   fuzz/run.sh all SECONDS        every target in turn, SECONDS each
#   fuzz/run.sh corpus [TARGET]    rebuild fuzz/Corpora/<target>/ from seeds and test data with afl-cmin
#   fuzz/run.sh replay [TARGET]    run corpora and saved crashes through the targets without AFL
#
# Needs the .NET SDK and AFL++ (Debian: apt-get install afl++); no network once NuGet packages are restored.
# Campaigns run under `nice -n 19`. A crash or hang is copied to fuzz/Crashes/<target>/, where the replay test
# (tests/Xmig.Tests/Fuzz) keeps it as a regression input. Work files live in $XMIG_FUZZ_WORK (fuzz/.work).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
WORK="${XMIG_FUZZ_WORK:-$HERE/.work}"  # not under /tmp: afl-cmin refuses it
BIN="$WORK/bin"      # instrumented: only runs under afl (SharpFuzz's trace map is set up by Fuzzer.Run)
PLAIN="$WORK/plain"  # the same build, not instrumented: seeds and replay
TARGETS=(legacy libxc libxl xl v2 convert restore diff)
# Memory beyond this is a finding: the GC throws OutOfMemoryException, which escapes as a crash.
HEAP_LIMIT="${XMIG_FUZZ_HEAP_LIMIT:-0x20000000}"
# A single input running longer than this (ms) is a hang.
TIMEOUT_MS="${XMIG_FUZZ_TIMEOUT_MS:-1000}"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export AFL_SKIP_BIN_CHECK=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_AUTORESUME=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export DOTNET_GCHeapHardLimit="$HEAP_LIMIT" DOTNET_TieredPGO=0

die() { echo "fuzz/run.sh: $*" >&2; exit 2; }

dicts() {
  case "$1" in
    legacy|convert) echo "-x $HERE/dict/legacy.dict -x $HERE/dict/xl.dict" ;;
    libxc) echo "-x $HERE/dict/libxc.dict" ;;
    libxl) echo "-x $HERE/dict/libxl.dict -x $HERE/dict/libxc.dict" ;;
    xl) echo "-x $HERE/dict/xl.dict" ;;
    v2) echo "-x $HERE/dict/libxc.dict -x $HERE/dict/libxl.dict -x $HERE/dict/xl.dict" ;;
    restore|diff) echo "-x $HERE/dict/libxc.dict -x $HERE/dict/libxl.dict -x $HERE/dict/legacy.dict" ;;
  esac
}

build() {
  command -v afl-fuzz >/dev/null || die "afl-fuzz not found (apt-get install afl++)"
  local stamp="$BIN/.instrumented"
  if [[ -f "$stamp" ]] && [[ -z "$(find "$ROOT/src/Xmig" "$HERE/Xmig.Fuzz" -name '*.cs' -newer "$stamp" -print -quit)" ]]; then
    return
  fi
  echo "== build and instrument"
  rm -rf "$BIN" "$PLAIN"
  (cd "$ROOT" && nice -n 19 dotnet build fuzz/Xmig.Fuzz -c Release -o "$PLAIN" --nologo -v q) >&2
  cp -r "$PLAIN" "$BIN"
  (cd "$ROOT" && dotnet tool restore >/dev/null && dotnet tool run sharpfuzz "$BIN/Xmig.dll") >&2
  touch "$stamp"
}

DOTNET="$(command -v dotnet)"
driver() { echo "$DOTNET" "$BIN/Xmig.Fuzz.dll"; }
plain() { echo dotnet "$PLAIN/Xmig.Fuzz.dll"; }

has_mode() { [[ "$1" == legacy || "$1" == convert || "$1" == restore ]]; }

# Raw seeds for a target: saves of every kind from the driver, small test data, the heads of the large vectors.
raw_seeds() {
  local target="$1" out="$2" raw="$WORK/seeds"
  if [[ ! -f "$raw/.done" ]]; then
    rm -rf "$raw"
    $(plain) seeds "$raw" >/dev/null
    mkdir -p "$raw/heads"
    for f in "$ROOT"/tests/Xmig.Tests/TestData/vectors/*.bin; do head -c 12288 "$f" > "$raw/heads/$(basename "$f")"; done
    touch "$raw/.done"
  fi
  local -a pick=()
  local td="$ROOT/tests/Xmig.Tests/TestData/malformed"
  case "$target" in
    legacy|convert) pick=("$raw"/*legacy*.bin "$raw"/heads/legacy-*[0-9].bin "$raw"/heads/*-xl.bin) ;;
    libxc) pick=("$raw"/*libxc*.bin "$td"/libxc-*.bin "$raw"/heads/*xen-libxc.bin) ;;
    libxl) pick=("$raw"/*libxl*.bin "$td"/libxl-*.bin "$raw"/heads/*xen-libxl.bin) ;;
    xl) pick=("$raw"/*-xl-*.bin "$raw"/sample-xl-*.bin "$td"/xl-*.bin "$raw"/heads/*xl*.bin) ;;
    v2|diff) pick=("$raw"/*lib*.bin "$raw"/*-xl-*.bin "$raw"/sample-*.bin "$td"/*.bin) ;;
    restore) pick=("$raw"/*.bin "$td"/*.bin) ;;
  esac
  if [[ "$target" == diff ]]; then pick+=("$raw"/*legacy*.bin); fi
  mkdir -p "$out"
  for f in "${pick[@]}"; do
    [[ -f "$f" ]] || continue
    if has_mode "$target"; then
      for m in 00 01 02; do { printf "\\x$m"; cat "$f"; } > "$out/m$m-$(basename "$f")"; done
      if [[ "$target" == legacy ]]; then { printf "\\x22"; cat "$f"; } > "$out/m22-$(basename "$f")"; fi
    else
      cp "$f" "$out/"
    fi
  done
}

corpus() {
  local target="$1" tmp="$WORK/cmin-$1"
  rm -rf "$tmp" && raw_seeds "$target" "$tmp"
  rm -rf "$HERE/Corpora/$target"
  echo "== afl-cmin $target ($(ls "$tmp" | wc -l) seeds)"
  nice -n 19 afl-cmin -i "$tmp" -o "$HERE/Corpora/$target" -t 5000 -m none -- $(driver) fuzz "$target" >"$WORK/cmin-$target.log" 2>&1 \
    || { tail -20 "$WORK/cmin-$target.log"; die "afl-cmin failed for $target"; }
  echo "   kept $(ls "$HERE/Corpora/$target" | wc -l) files, $(du -sh "$HERE/Corpora/$target" | cut -f1)"
}

stat() { grep -E "^$2 " "$1" | sed 's/.*: //'; }

campaign() {
  local target="$1" seconds="$2" out="$WORK/out/$1"
  [[ -d "$HERE/Corpora/$target" ]] || corpus "$target"
  mkdir -p "$out"
  echo "== fuzz $target for ${seconds}s"
  local stats="$out/default/fuzzer_stats" try
  local scratch; scratch="$(mktemp -d "$([[ -d /dev/shm ]] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/xmig-fuzz-$target.XXXXXX")"
  export XMIG_FUZZ_SCRATCH="$scratch"
  # A dry run on a loaded machine sometimes sees no coverage from the first input (JIT under load); try again once.
  for try in 1 2; do
    # shellcheck disable=SC2046
    nice -n 19 timeout --signal=INT "$((seconds + 60))" afl-fuzz -V "$seconds" -i "$HERE/Corpora/$target" -o "$out" \
      -t "$TIMEOUT_MS" -m none $(dicts "$target") -- $(driver) fuzz "$target" >"$WORK/afl-$target.log" 2>&1 || true
    [[ -f "$stats" ]] && break
  done
  rm -rf "$scratch"
  [[ -f "$stats" ]] || { tail -30 "$WORK/afl-$target.log"; die "afl-fuzz did not start for $target"; }
  mkdir -p "$HERE/Crashes/$target"
  local found=0
  for f in "$out"/default/crashes/id:* "$out"/default/hangs/id:*; do
    [[ -f "$f" ]] || continue
    local name; name="$(basename "$(dirname "$f")")-$(sha1sum "$f" | cut -c1-12)"
    [[ -f "$HERE/Crashes/$target/$name" ]] || { cp "$f" "$HERE/Crashes/$target/$name"; found=$((found + 1)); }
  done
  rmdir "$HERE/Crashes/$target" 2>/dev/null || true
  printf '%-8s executions %s  exec/s %s  paths %s  crashes %s  hangs %s  new inputs saved %s  run time %ss\n' "$target" \
    "$(stat "$stats" execs_done)" "$(stat "$stats" execs_per_sec)" "$(stat "$stats" corpus_count)" \
    "$(stat "$stats" saved_crashes)" "$(stat "$stats" saved_hangs)" "$found" "$(stat "$stats" run_time)"
}

replay() {
  local rc=0
  for t in "$@"; do
    for d in "$HERE/Corpora/$t" "$HERE/Crashes/$t"; do
      [[ -d "$d" ]] || continue
      $(plain) replay "$t" "$d" 2>/dev/null | grep -v '^Accepted\|^Rejected\|^Unsupported' || rc=0
      $(plain) replay "$t" "$d" >/dev/null 2>&1 || rc=1
    done
  done
  return $rc
}

[[ $# -ge 1 ]] || die "usage: fuzz/run.sh TARGET|all SECONDS | corpus [TARGET] | replay [TARGET]"
build
case "$1" in
  corpus) shift; for t in "${@:-${TARGETS[@]}}"; do corpus "$t"; done ;;
  replay) shift; replay "${@:-${TARGETS[@]}}" ;;
  all) [[ $# -eq 2 ]] || die "usage: fuzz/run.sh all SECONDS"; for t in "${TARGETS[@]}"; do campaign "$t" "$2"; done ;;
  *) [[ $# -eq 2 && " ${TARGETS[*]} " == *" $1 "* ]] || die "usage: fuzz/run.sh TARGET SECONDS (TARGET: ${TARGETS[*]})"; campaign "$1" "$2" ;;
esac
