#!/usr/bin/env bash
# Soak of `logcrunch watch`: a writer appends combined-format lines to a log at a steady rate
# (rotating it with rename+create every ROTATE_S seconds) while `watch` follows it; the resident
# memory of the watch process is sampled every SAMPLE_S seconds. At the end: lines written, rows
# in the dataset (they must be equal), Parquet files in the manifest, RSS at the start, the end
# and its maximum, the CPU time watch used, and the median cycle time early and late.
#   scripts/soak-watch.sh [DURATION_S=600] [LINES_PER_S=2000] [INTERVAL=2s]
# SOAK_EVENTS=FILE keeps watch's --json events (one per cycle) for a closer look.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-600}; rate=${2:-2000}; interval=${3:-2s}
rotate_s=${ROTATE_S:-120}; sample_s=${SAMPLE_S:-30}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcrunch-target}"
cargo build --release -q --bin logcrunch
bin="$CARGO_TARGET_DIR/release/logcrunch"
work=$(mktemp -d)
trap 'kill $writer $watcher 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/logs"
printf 'logs:\n  source_dir: logs\n  format: combined\nstorage:\n  dataset: ds\nlogging:\n  file: app/logcrunch.log\n' > "$work/cfg.yaml"
cd "$work"
python3 - "$duration" "$rate" "$rotate_s" > written.txt <<'PY' &
import os, sys, time
duration, rate, rotate_s = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
start = time.time(); seq = 0; rotated = start; k = 0
f = open("logs/access.log", "a")
while time.time() - start < duration:
    t = time.time()
    for _ in range(rate // 10):
        f.write('10.%d.%d.%d - - [%s] "GET /item/%d?q=%d HTTP/1.1" %d %d "-" "soak/1.0"\n' % (
            seq // 65536 % 256, seq // 256 % 256, seq % 256,
            time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t)),
            seq % 500, seq, 200 if seq % 50 else 500, seq))
        seq += 1
    f.flush()
    if t - rotated >= rotate_s:
        f.close(); k += 1
        os.rename("logs/access.log", "logs/access.log.%d" % k)
        f = open("logs/access.log", "a"); rotated = t
    time.sleep(max(0.0, 0.1 - (time.time() - t)))
f.close()
print(seq)
PY
writer=$!
"$bin" --config cfg.yaml watch --interval "$interval" --json > events.jsonl 2> watch.err &
watcher=$!
rss() { awk '/VmRSS/ {print $2}' "/proc/$watcher/status" 2>/dev/null || echo 0; }
sleep 5
first=$(rss); max=$first
echo "t=5s rss=${first} KiB"
elapsed=5
while kill -0 "$writer" 2>/dev/null; do
  sleep "$sample_s"; elapsed=$((elapsed + sample_s))
  now=$(rss); [ "$now" -gt "$max" ] && max=$now
  echo "t=${elapsed}s rss=${now} KiB"
done
written=$(cat written.txt)
# Catch up: wait until the dataset holds every line (or two minutes).
for _ in $(seq 120); do
  rows=$("$bin" query --dataset ds --format csv "SELECT count(*) FROM logs" | tail -1)
  [ "$rows" -ge "$written" ] && break
  sleep 1
done
last=$(rss)
ticks=$(awk '{print $14 + $15}' "/proc/$watcher/stat" 2>/dev/null || echo 0)
cpu=$(python3 -c "import os; print(round($ticks / os.sysconf('SC_CLK_TCK'), 1))")
kill -TERM "$watcher"; wait "$watcher" && code=0 || code=$?
files=$(python3 -c "import json; print(len(json.load(open('ds/manifest.json'))['files']))")
echo "duration ${duration}s at ${rate} lines/s, interval ${interval}, rotation every ${rotate_s}s"
echo "lines written: ${written}; rows in the dataset: ${rows}; cycles: $(wc -l < events.jsonl); Parquet files: ${files}"
echo "watch RSS: start ${first} KiB, end ${last} KiB, max ${max} KiB; exit code ${code}"
echo "watch CPU time: ${cpu} s over ${duration} s of writing"
# A cycle's cost must not grow with the time watch has run: median cycle time of the first and
# the last tenth of the cycles that had rows.
python3 - <<'PY'
import json, statistics
c = [e["cycle_s"] for e in map(json.loads, open("events.jsonl")) if e.get("rows") and "cycle_s" in e]
k = max(1, len(c) // 10)
if c:
    print("cycle time median: first tenth %.3f s, last tenth %.3f s (%d cycles with rows)"
          % (statistics.median(c[:k]), statistics.median(c[-k:]), len(c)))
    print("cycle time median by tenth: " + " ".join("%.2f" % statistics.median(c[i:i + k])
                                                    for i in range(0, len(c), k)))
PY
[ -n "${SOAK_EVENTS:-}" ] && cp events.jsonl "$SOAK_EVENTS"
[ "$rows" -eq "$written" ] && [ "$code" -eq 0 ]
