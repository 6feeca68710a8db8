#!/usr/bin/env bash
# Archive benchmark (issue 8): storage and time on a generated ~1 GB log.
#  - sizes: the raw log, its zstd archive, the dataset's Parquet after ingest, and after compaction;
#  - raw archive (compress + read back + verify) against the zstd CLI at the same level and
#    threads, and gzip -6 (what logrotate does);
#  - compaction (read, sort by time, rewrite, verify) against DuckDB rewriting the same files
#    sorted by time at the same zstd level;
#  - the answers of a few queries before and after compaction (they must be identical).
#
#   scripts/bench-archive.sh                 # 5,000,000 lines (~1.06 GB)
#   LINES=1000000 scripts/bench-archive.sh
#
# Environment: LINES, THREADS (default: cores), LEVEL (raw zstd level, default 12), CLEVEL
# (compaction level, default 9), RUNS (default 3), WORK, CARGO_TARGET_DIR, VENV (Python venv
# with duckdb for the peer).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-5000000}
LEVEL=${LEVEL:-12}
CLEVEL=${CLEVEL:-9}
RUNS=${RUNS:-3}
source scripts/bench-env.sh
venv_with duckdb
command -v zstd >/dev/null || { echo "the zstd CLI is needed for the peer run" >&2; exit 2; }

"$VENV/bin/python" scripts/bench_archive.py "$BIN" "$LOG" "$THREADS" "$LEVEL" "$CLEVEL" "$RUNS" "$WORK"
