#!/usr/bin/env bash
# Statistics benchmark (issue 6):
#  1. the cost of histogram recording: the same ingest with `stats.enabled` false and true,
#     interleaved runs, medians of wall and CPU time and their ratio;
#  2. `logcrunch detect` over 30 days of per-minute data for 50 route groups (rps 5, 13 million
#     lines), against DuckDB computing the same per-minute series (counts, 4xx/5xx, p50/p95/p99
#     per route group and for all routes) from the dataset's Parquet logs.
#
#   scripts/bench-stats.sh                       # 2,000,000 lines for 1., 9 runs, and 2.
#   LINES=500000 RUNS=3 DETECT=0 scripts/bench-stats.sh
#
# Environment: LINES, THREADS (default: cores), RUNS, DETECT (0: skip 2.), DAYS, RPS, WORK,
# CARGO_TARGET_DIR, VENV (Python venv with duckdb for the peer).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-2000000}
RUNS=${RUNS:-9}
DETECT=${DETECT:-1}
DAYS=${DAYS:-30}
RPS=${RPS:-5}
source scripts/bench-env.sh
printf 'stats:\n  enabled: false\n' > "$WORK/stats-off.yaml"
printf 'stats:\n  enabled: true\n' > "$WORK/stats-on.yaml"
python3 scripts/bench_stats.py record "$BIN" "$LOG" "$THREADS" "$RUNS" "$WORK"

if [ "$DETECT" = 1 ]; then
  venv_with duckdb
  MONTH_LINES=$((DAYS * 86400 * RPS))
  MONTH="$WORK/nginx_timed-${DAYS}d.log"
  [ -s "$MONTH" ] || "$BIN" generate --format nginx_timed --lines "$MONTH_LINES" --rps "$RPS" --seed 3 -o "$MONTH"
  DS="$WORK/stats-ds-${DAYS}d"
  if [ ! -s "$DS/manifest.json" ]; then
    rm -rf "$DS"
    "$BIN" --config "$WORK/stats-on.yaml" ingest --format nginx_timed --threads "$THREADS" --dataset "$DS" "$MONTH" >/dev/null
  fi
  "$VENV/bin/python" scripts/bench_stats.py detect "$BIN" "$DS" "$THREADS" 3 "$WORK"
fi
