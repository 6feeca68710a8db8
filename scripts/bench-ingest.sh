#!/usr/bin/env bash
# End-to-end ingest benchmark: logcrunch vs DuckDB and chDB (PyPI) on the same input (parse every
# field, write zstd Parquet), same thread count, medians, MB/s, lines/s, peak RSS, ratios and the
# Parquet files per date partition, on four corpora:
#   generated   `generate --profile shop`: two dozen routes, a dozen user agents (nginx_timed);
#   realistic   `generate --profile realistic` over 30 days, calibrated on ../shared/realdata (the
#               calibration is printed first);
#   real        the real combined lines of ../shared/realdata repeated, timestamps rising over 30 days;
#   real-own    the same lines with their own dates: many servers and years cycling through the file.
# The real corpora need REALDATA (default ../shared/realdata beside the repository); without it they
# are skipped. On each corpus logcrunch also runs with threat tagging and statistics off
# (`logcrunch_bare`), for what the two cost together. Then the cost of threat tagging alone
# (tagging off vs paranoia 1 and 2, on generated traffic with 0.2% attacks and on the realistic
# corpus when it was made), and the peak RSS of logcrunch on an input of
# 4 GB or more.
#
#   scripts/bench-ingest.sh              # 2,000,000 lines, 2 threads, 5 runs, plus the 4 GB RSS run
#   LINES=500000 RUNS=3 BIG=0 scripts/bench-ingest.sh
#
# Environment: LINES, THREADS (default: cores), RUNS, CORPORA (default: generated realistic real
# real-own), REALDATA, BIG (1: run the >=4 GB memory test),
# BIG_LINES, WORK (scratch directory), CARGO_TARGET_DIR, VENV (Python venv for the peers),
# BASELINE_BIN (another logcrunch binary, e.g. the parent commit's, timed in the same rounds) and
# BASELINE_ARGS (its global options, e.g. --patterns with the patterns file of its commit).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-2000000}
RUNS=${RUNS:-5}
BIG=${BIG:-1}
BIG_LINES=${BIG_LINES:-21000000}
source scripts/bench-env.sh
venv_with duckdb chdb
"$VENV/bin/python" -c 'import duckdb, chdb; print("peers: duckdb", duckdb.__version__, "/ chdb", chdb.__version__)'

REALDATA=${REALDATA:-$(cd .. && pwd)/shared/realdata}
CORPORA=${CORPORA:-generated realistic real real-own}
for corpus in $CORPORA; do
  format=nginx_timed
  case $corpus in
    generated) input=$LOG ;;
    realistic)
      input="$WORK/realistic-$LINES.log"
      if [ -d "$REALDATA" ]; then
        echo "calibration of the realistic profile against $REALDATA:"
        python3 scripts/calibrate.py "$BIN" "$REALDATA" "$LINES"
      fi
      [ -s "$input" ] || "$BIN" generate --profile realistic --format nginx_timed --lines "$LINES" \
        --seed 1 --rps "$(python3 -c "print($LINES / (30 * 86400))")" -o "$input" ;;
    real|real-own)
      if [ ! -d "$REALDATA" ]; then echo "no $REALDATA: corpus $corpus skipped"; continue; fi
      mode=$([ "$corpus" = real ] && echo rising || echo own)
      input="$WORK/real-$mode-$LINES.log"
      [ -s "$input" ] || python3 scripts/real_corpus.py "$REALDATA" "$LINES" "$mode" "$input"
      format=combined ;;
    *) echo "unknown corpus $corpus" >&2; exit 2 ;;
  esac
  echo
  echo "== corpus $corpus =="
  "$VENV/bin/python" scripts/bench_ingest.py "$BIN" "$input" "$LINES" "$THREADS" "$RUNS" "$WORK/out" "$format"
done

echo
echo "threat tagging: the same traffic with 0.2% attacks, tagging off vs on"
ATTACKLOG="$WORK/nginx_timed-$LINES-attacks.log"
if [ ! -s "$ATTACKLOG" ]; then
  "$BIN" generate --format nginx_timed --lines "$LINES" --seed 1 --attack-rate 0.002 -o "$ATTACKLOG"
fi
python3 scripts/bench_tagging.py "$BIN" "$ATTACKLOG" "$LINES" "$THREADS" "$RUNS" "$WORK/tagging"
REALISTIC="$WORK/realistic-$LINES.log"
if [ -s "$REALISTIC" ]; then
  echo
  echo "threat tagging on the real-cardinality corpus (realistic), tagging off vs on"
  python3 scripts/bench_tagging.py "$BIN" "$REALISTIC" "$LINES" "$THREADS" "$RUNS" "$WORK/tagging"
fi

if [ "$BIG" = 1 ]; then
  BIGLOG="$WORK/nginx_timed-$BIG_LINES.log"
  if [ ! -s "$BIGLOG" ]; then
    "$BIN" generate --format nginx_timed --lines "$BIG_LINES" --seed 2 -o "$BIGLOG"
  fi
  rm -rf "$WORK/big-ds"
  /usr/bin/time -f '%e s elapsed, %M KiB peak RSS' -o "$WORK/big.time" \
    "$BIN" ingest --format nginx_timed --threads "$THREADS" --dataset "$WORK/big-ds" "$BIGLOG" > "$WORK/big.out"
  echo
  echo "memory: $(du -h --apparent-size "$BIGLOG" | cut -f1) input ($BIG_LINES lines):"
  sed 's/^/  /' "$WORK/big.out"
  echo "  $(cat "$WORK/big.time")"
  rm -rf "$WORK/big-ds"
fi
