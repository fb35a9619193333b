#!/usr/bin/env bash
# fuzz/run.sh [SECONDS]: build the harnesses (fuzz/build.sh) and run each
# for SECONDS (default 60) from a copy of its seed corpus (fuzz/corpus/NAME;
# what the run adds stays in fuzz/build/corpus, the committed seeds do not
# grow).  A crash, leak, sanitizer report or timeout fails the run; the
# input that caused it is kept in fuzz/artifacts/.  Called by ./run.sh fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "fuzz/run.sh: SECONDS must be a number, not $secs" >&2; exit 2; }
out=fuzz/build
bash fuzz/build.sh "$out"
mkdir -p fuzz/artifacts
status=0
for harness in fuzz/fuzz_*.c; do
  name=$(basename "${harness%.c}")
  bin=$out/$name
  seeds=fuzz/corpus/${name#fuzz_}
  work=$out/corpus/${name#fuzz_}
  mkdir -p "$work"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null || true
  log=$out/$name.log
  echo "fuzz/run.sh: $name for ${secs} s (log $log)" >&2
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a
  # runaway allocation is a finding, not a dead machine
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix=fuzz/artifacts/"$name"- -dict=fuzz/http.dict "$work" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz/run.sh: $name ok: ${execs:-?} executions, corpus $(ls "$work" | wc -l) inputs" >&2
  else
    status=1
    echo "fuzz/run.sh: $name FAILED (input kept in fuzz/artifacts/):" >&2
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -20 >&2 || tail -n 30 "$log" >&2
  fi
done
exit $status
