#!/usr/bin/env python3
"""Timings for scripts/bench-stats.sh.

record BIN LOG THREADS RUNS WORK
    Ingests LOG with histogram recording off and on (configs WORK/stats-off.yaml and
    WORK/stats-on.yaml), interleaved, and prints the medians of wall and CPU time and the overhead,
    both as the ratio of the medians and as the median of each pair of runs.
detect BIN DATASET THREADS RUNS WORK
    Times `logcrunch detect` (every metric, route group and the default method, nothing stored)
    against DuckDB computing the same per-minute series from the dataset's Parquet logs, and
    prints both with their ratio.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time


def timed(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def record(binary, log, threads, runs, work):
    size = os.path.getsize(log)
    results = {"off": [], "on": []}
    for _ in range(runs):
        for mode in ("off", "on"):
            ds = os.path.join(work, f"stats-record-{mode}")
            shutil.rmtree(ds, ignore_errors=True)
            cmd = [binary, "--config", os.path.join(work, f"stats-{mode}.yaml"), "ingest",
                   "--format", "nginx_timed", "--threads", str(threads), "--dataset", ds, log]
            results[mode].append(timed(cmd))
            shutil.rmtree(ds, ignore_errors=True)
    med = {m: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v),
               statistics.median(r[2] for r in v)) for m, v in results.items()}
    print(f"histogram recording, ingest of {size / 1e6:.0f} MB, {threads} threads, median of {runs}:")
    for mode in ("off", "on"):
        wall, cpu, rss = med[mode]
        print(f"  stats {mode:3}  {wall:6.2f} s wall  {cpu:6.2f} s CPU  {size / wall / 1e6:6.1f} MB/s  "
              f"{rss / 2**20:6.0f} MiB peak")
    print(f"  recording adds {100 * (med['on'][0] / med['off'][0] - 1):+.1f}% wall, "
          f"{100 * (med['on'][1] / med['off'][1] - 1):+.1f}% CPU")
    # Each "on" run against the "off" run just before it: the machine's speed drifts between
    # runs, and pairs cancel most of the drift that the ratio of medians keeps.
    for i, what in ((0, "wall"), (1, "CPU")):
        pairs = [on[i] / off[i] - 1 for off, on in zip(results["off"], results["on"])]
        q = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else pairs * 3
        print(f"  paired runs: recording adds {100 * statistics.median(pairs):+.1f}% {what} "
              f"(quartiles {100 * q[0]:+.1f}% .. {100 * q[2]:+.1f}%)")


PEER_SQL = """
WITH groups AS (SELECT unnest(?::VARCHAR[]) AS route),
rows AS (
  SELECT time_bucket(INTERVAL 1 minute, ts) AS minute,
         CASE WHEN route IN (SELECT route FROM groups) THEN route ELSE 'other' END AS grp,
         status, response_time_us
  FROM read_parquet(?, hive_partitioning = true)
)
SELECT minute, coalesce(grp, '*') AS route, count(*) AS requests,
       count(*) FILTER (status BETWEEN 400 AND 499) AS c4xx,
       count(*) FILTER (status BETWEEN 500 AND 599) AS c5xx,
       quantile_disc(response_time_us, [0.5, 0.95, 0.99]) AS q
FROM rows GROUP BY GROUPING SETS ((minute, grp), (minute))
"""


PEER_SCRIPT = """
import duckdb, json, sys
sql, groups, logs, threads, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
con = duckdb.connect()
con.execute(f"SET threads={threads}")
n = con.execute(f"SELECT count(*) FROM ({sql})", [groups, logs]).fetchone()[0]
open(out, "w").write(str(n))
"""


def detect(binary, dataset, threads, runs, work):
    groups = json.load(open(os.path.join(dataset, "manifest.json")))["route_groups"]
    logs = os.path.join(dataset, "logs", "**", "*.parquet")
    count_file = os.path.join(work, "stats-peer-rows.txt")
    cmd = [binary, "detect", "--dataset", dataset, "--no-store", "--format", "json"]
    # Alone first; then interleaved with DuckDB, where each run follows a process that just freed
    # ~1.4 GB, which the kernel makes the next process pay for in system time.
    alone = [timed(cmd) for _ in range(runs)]
    ours, peer = [], []
    for _ in range(runs):
        ours.append(timed([binary, "detect", "--dataset", dataset, "--no-store", "--format", "json"]))
        peer.append(timed([sys.executable, "-c", PEER_SCRIPT, PEER_SQL, json.dumps(groups), logs,
                           str(threads), count_file]))
    n = int(open(count_file).read())
    events = json.loads(subprocess.run(
        [binary, "detect", "--dataset", dataset, "--no-store", "--format", "json"],
        check=True, capture_output=True).stdout)
    med = lambda rs, i: statistics.median(r[i] for r in rs)
    print(f"detect over {dataset}: {len(groups)} route groups + other + *, {n:,} per-minute rows, "
          f"median of {runs}:")
    print(f"  logcrunch detect (every metric, scored, {len(events)} events)  {med(alone, 0):6.2f} s  "
          f"{med(alone, 2) / 2**20:5.0f} MiB peak  (alone)")
    print(f"  logcrunch detect, each run right after a DuckDB run       {med(ours, 0):6.2f} s  "
          f"({med(ours, 1):.2f} s CPU)")
    print(f"  duckdb: the same series from the Parquet logs (no scoring)    {med(peer, 0):6.2f} s  "
          f"{med(peer, 2) / 2**20:5.0f} MiB peak")
    print(f"  ratio: duckdb / logcrunch = {med(peer, 0) / med(alone, 0):.1f}x alone, "
          f"{med(peer, 0) / med(ours, 0):.1f}x interleaved")


if __name__ == "__main__":
    mode, binary, path, threads, runs, work = sys.argv[1:7]
    (record if mode == "record" else detect)(binary, path, int(threads), int(runs), work)
