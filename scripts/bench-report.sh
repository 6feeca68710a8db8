#!/usr/bin/env bash
# Report benchmark: `logcrunch report all` over an ingested dataset of >= 20 million rows, against
# DuckDB running the same SQL directly over the raw log (regexp_extract) and GoAccess producing
# its JSON report from the raw log. Prints times and ratios.
#
#   scripts/bench-report.sh                  # 21,000,000 lines (4.4 GB), 3 logcrunch runs
#   LINES=2000000 scripts/bench-report.sh    # quicker
#
# Needs the goaccess package (installed with apt-get when missing) and a Python venv with duckdb.
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-21000000}
THREADS=${THREADS:-$(nproc)}
RUNS=${RUNS:-3}
WORK=${WORK:-${TMPDIR:-/tmp}/logcrunch-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/logcrunch-target}
VENV=${VENV:-$HOME/.cache/logcrunch-bench-venv}

cargo build --release -q -p logcrunch
BIN="$CARGO_TARGET_DIR/release/logcrunch"
command -v goaccess >/dev/null || apt-get install -y -q goaccess >/dev/null
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import duckdb' 2>/dev/null || "$VENV/bin/pip" install -q duckdb
echo "peers: $(goaccess --version | head -1), duckdb $("$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)')"

mkdir -p "$WORK"
LOG="$WORK/nginx_timed-$LINES.log"
[ -s "$LOG" ] || "$BIN" generate --format nginx_timed --lines "$LINES" --seed 2 -o "$LOG"
DS="$WORK/report-ds-$LINES"
if [ ! -s "$DS/manifest.json" ]; then
  echo "ingesting $LOG (once; the report then never reads the raw log):"
  "$BIN" ingest --format nginx_timed --threads "$THREADS" --dataset "$DS" "$LOG" | sed 's/^/  /'
fi
"$VENV/bin/python" scripts/bench_report.py "$BIN" "$LOG" "$DS" "$THREADS" "$RUNS" "$WORK/report-out"
