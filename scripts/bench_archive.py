#!/usr/bin/env python3
"""Measurements for scripts/bench-archive.sh.

bench_archive.py BIN LOG THREADS LEVEL CLEVEL RUNS WORK

Per run: a fresh dataset from LOG, then `logcrunch archive` (raw archive and compaction, every
partition old), timed per pass from its JSON summary; the zstd CLI and gzip on the same log, and
DuckDB rewriting the ingested Parquet sorted by time (in a child process). Prints sizes with ratios against the raw log
and medians of the times with ratios against the peers, and checks that queries answer the same
before and after compaction.
"""
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, **kw)
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(map(str, cmd))}\n{proc.stderr.decode()}")
    return proc.stdout


def timed(cmd):
    """Wall time, stdout and peak RSS (bytes) of `cmd`."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit(f"command failed: {' '.join(map(str, cmd))}\n{err.read().decode()}")
    return wall, out, usage.ru_maxrss * 1024


def tree_bytes(root, pattern="**/*.parquet"):
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(root, pattern), recursive=True))


ANSWERS = [
    "SELECT count(*), count(DISTINCT (source, \"offset\")), sum(response_time_us), min(ts), max(ts), "
    "bit_xor(hash(ts, client_ip, path, status, bytes, user_agent, \"offset\")) FROM logs",
    "SELECT date, status // 100, count(*), quantile_cont(response_time_us, 0.99) FROM logs "
    "GROUP BY ALL ORDER BY ALL",
    "SELECT route, count(*), avg(response_time_us) FROM logs GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 20",
    "SELECT count(*), sum(requests), bit_xor(hash(minute, route, hist)) FROM stats",
]


def answers(binary, ds):
    return [run([binary, "query", "--dataset", ds, "--format", "csv", q]) for q in ANSWERS]


def duckdb_peer(threads, clevel, out, files):
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    start = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM read_parquet({json.loads(files)!r}) ORDER BY ts, \"offset\") TO "
                f"'{out}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {clevel}, "
                f"ROW_GROUP_SIZE 262144)")
    print(time.perf_counter() - start)


def main():
    if sys.argv[1] == "duckdb-peer":
        duckdb_peer(*sys.argv[2:6])
        return
    binary, log, threads, level, clevel, runs, work = sys.argv[1:8]
    threads, level, clevel, runs = int(threads), int(level), int(clevel), int(runs)
    size = os.path.getsize(log)
    cfg = os.path.join(work, "archive-bench.yaml")
    with open(cfg, "w") as f:
        f.write(f"archive:\n  min_idle: 0s\n  zstd_level: {level}\n  threads: {threads}\n"
                f"  compact_after_days: 1\n  compact_zstd_level: {clevel}\n")
    t = {k: [] for k in ("raw", "compact", "zstd", "gzip", "duckdb", "rss")}
    sizes = {}
    same = True
    for i in range(runs):
        ds = os.path.join(work, "archive-ds")
        shutil.rmtree(ds, ignore_errors=True)
        run([binary, "ingest", "--format", "nginx_timed", "--threads", str(threads), "--dataset", ds,
             "-q", log])
        sizes["parquet"] = tree_bytes(ds)
        sizes["parquet_logs"] = tree_bytes(ds, "logs/**/*.parquet")
        files_before = len(glob.glob(os.path.join(ds, "**/*.parquet"), recursive=True))
        before = answers(binary, ds) if i == 0 else None

        # Peer for compaction: DuckDB rewrites the same logs files sorted by time (in a process of
        # its own, so that its memory is not counted in the next child's peak RSS after fork).
        peer_out = os.path.join(work, "duckdb-compact.parquet")
        files = glob.glob(os.path.join(ds, "logs/**/*.parquet"), recursive=True)
        _, out, _ = timed([sys.executable, __file__, "duckdb-peer", str(threads), str(clevel), peer_out,
                           json.dumps(files)])
        t["duckdb"].append(float(out))
        sizes["duckdb_sorted_logs"] = os.path.getsize(peer_out)
        os.remove(peer_out)

        _, out, rss = timed([binary, "--config", cfg, "archive", "--dataset", ds, "--as-of",
                             "2099-01-01", "--json"])
        t["rss"].append(rss)
        s = json.loads(out)
        t["raw"].append(s["seconds"]["raw"])
        t["compact"].append(s["seconds"]["compaction"])
        sizes["archived_raw"] = s["raw"]["bytes_after"]
        sizes["compacted"] = tree_bytes(ds)
        sizes["compacted_logs"] = tree_bytes(ds, "logs/**/*.parquet")
        files_after = len(glob.glob(os.path.join(ds, "logs/**/*.parquet"), recursive=True)) + \
            len(glob.glob(os.path.join(ds, "stats/**/*.parquet"), recursive=True)) + \
            len(glob.glob(os.path.join(ds, "errors/**/*.parquet"), recursive=True))
        if before is not None:
            same = answers(binary, ds) == before

        peer = os.path.join(work, "peer.zst")
        wall, _, _ = timed(["zstd", "-q", "-f", f"-{level}", f"-T{threads}", log, "-o", peer])
        t["zstd"].append(wall)
        sizes["zstd_cli"] = os.path.getsize(peer)
        os.remove(peer)
        start = time.perf_counter()
        with open(os.path.join(work, "peer.gz"), "wb") as f:
            subprocess.run(["gzip", "-6", "-c", log], stdout=f, check=True)
        t["gzip"].append(time.perf_counter() - start)
        sizes["gzip"] = os.path.getsize(os.path.join(work, "peer.gz"))
        os.remove(os.path.join(work, "peer.gz"))
        shutil.rmtree(ds, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in t.items()}
    print(f"storage, {size / 1e9:.2f} GB log ({os.path.basename(log)}), zstd level {level} "
          f"(compaction {clevel}), {threads} threads:")
    rows = [
        ("raw log", size),
        ("gzip -6 (peer)", sizes["gzip"]),
        (f"zstd -{level} -T{threads} CLI (peer)", sizes["zstd_cli"]),
        ("archived raw (logcrunch)", sizes["archived_raw"]),
        ("Parquet after ingest (logs+stats)", sizes["parquet"]),
        ("  of which logs", sizes["parquet_logs"]),
        ("compacted Parquet (logs+stats)", sizes["compacted"]),
        ("  of which logs", sizes["compacted_logs"]),
        ("DuckDB sorted rewrite of logs (peer)", sizes["duckdb_sorted_logs"]),
    ]
    for name, b in rows:
        print(f"  {name:38} {b / 2**20:9.1f} MiB  {size / b:6.1f}x")
    print(f"  files: {files_before} after ingest, {files_after} after compaction")
    print(f"time, median of {runs}:")
    print(f"  raw archive (compress+verify) {med['raw']:6.2f} s  {size / med['raw'] / 1e6:6.1f} MB/s  "
          f"zstd CLI {med['zstd']:6.2f} s ({med['raw'] / med['zstd']:.2f}x)  "
          f"gzip -6 {med['gzip']:6.2f} s ({med['raw'] / med['gzip']:.2f}x)")
    print(f"  compaction (+verify)          {med['compact']:6.2f} s  "
          f"DuckDB sorted rewrite of logs {med['duckdb']:6.2f} s ({med['compact'] / med['duckdb']:.2f}x)")
    print(f"  peak RSS of logcrunch archive: {med['rss'] / 2**20:.0f} MiB")
    print(f"  query answers identical after compaction: {same}")
    if not same:
        sys.exit(1)


main()
