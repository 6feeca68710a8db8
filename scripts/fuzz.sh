#!/usr/bin/env bash
# Runs the cargo-fuzz targets of engine/fuzz (line parsers, splitter vs regex, directive compiler,
# format inference, security normaliser and tagger, config/signatures and patterns loaders,
# `detect --series` CSV reader, manifest loader), each for SECONDS (default 600), JOBS at a time, seeded from testdata/
# and, when LOGCRUNCH_REALDATA points at it, the real-data corpus. Prints the executions, the
# corpus size and the crashes of each target; exits 1 when any target crashed, hung or ran out of
# memory (the reproducers stay in $FUZZ_DIR/artifacts/TARGET/; replay one with
# `cargo +nightly fuzz run --fuzz-dir engine/fuzz TARGET FILE`).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). The fuzz build leaves
# DuckDB out (the targets use the library without its `duckdb` feature), so it takes minutes.
# Environment: JOBS (default: cores), FUZZ_DIR (corpora, artifacts, logs; default
# ~/.cache/logcrunch-fuzz), FUZZ_TARGET_DIR (build; default ~/.cache/logcrunch-fuzz-target),
# SANITIZER (address or none; default none: twice the executions, and the code is safe Rust).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-600}
shift || true
JOBS=${JOBS:-$(nproc)}
FUZZ_DIR=${FUZZ_DIR:-$HOME/.cache/logcrunch-fuzz}
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/logcrunch-fuzz-target}
SANITIZER=${SANITIZER:-none}
CARGO_FUZZ=(cargo +nightly fuzz)

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <("${CARGO_FUZZ[@]}" list --fuzz-dir engine/fuzz)
fi

echo "== building the fuzz targets (sanitizer: $SANITIZER)"
"${CARGO_FUZZ[@]}" build --fuzz-dir engine/fuzz --target-dir "$FUZZ_TARGET_DIR" --sanitizer "$SANITIZER"

echo "== seeds"
rm -rf "$FUZZ_DIR/seeds"
manifest=""
bin=${CARGO_TARGET_DIR:-$HOME/.cache/logcrunch-target}/release/logcrunch
if [ -x "$bin" ]; then
  scratch=$(mktemp -d)
  "$bin" ingest --dataset "$scratch/ds" testdata/sample >/dev/null 2>&1 && manifest="$scratch/ds/manifest.json"
fi
python3 scripts/fuzz_seeds.py "$FUZZ_DIR/seeds" "${LOGCRUNCH_REALDATA:-}" "$manifest"
[ -n "$manifest" ] && rm -rf "$(dirname "$(dirname "$manifest")")"

run_one() {
  local t=$1
  mkdir -p "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/artifacts/$t" "$FUZZ_DIR/seeds/$t"
  touch "$FUZZ_DIR/$t.started"
  "${CARGO_FUZZ[@]}" run --fuzz-dir engine/fuzz --target-dir "$FUZZ_TARGET_DIR" \
    --sanitizer "$SANITIZER" "$t" "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$FUZZ_DIR/artifacts/$t/" \
    > "$FUZZ_DIR/$t.log" 2>&1 || true
}

echo "== fuzzing ${#targets[@]} targets, ${SECONDS_EACH} s each, $JOBS at a time"
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

failed=0
printf '%-12s %14s %10s %8s %s\n' target executions exec/s corpus crashes
for t in "${targets[@]}"; do
  log="$FUZZ_DIR/$t.log"
  execs=$(awk '/stat::number_of_executed_units:/ {n = $2} END {print n}' "$log")
  speed=$(awk '/stat::average_exec_per_sec:/ {n = $2} END {print n}' "$log")
  corpus=$(find "$FUZZ_DIR/corpus/$t" -type f | wc -l)
  crashes=$(find "$FUZZ_DIR/artifacts/$t" -type f -newer "$FUZZ_DIR/$t.started" | wc -l)
  printf '%-12s %14s %10s %8s %s\n' "$t" "${execs:-?}" "${speed:-?}" "$corpus" "$crashes"
  if [ "$crashes" -gt 0 ] || grep -q 'ERROR: libFuzzer\|panicked at' "$log"; then
    failed=1
    grep -m3 'panicked at\|ERROR: libFuzzer\|SUMMARY' "$log" | sed 's/^/    /'
  fi
done
exit "$failed"
