#!/usr/bin/env python3
"""Times logcrunch ingest against DuckDB and chDB on the same nginx_timed log, same thread count.

Each tool parses every field of every line and writes zstd Parquet. Runs are interleaved
(logcrunch, duckdb, chdb, logcrunch, ...) so that machine noise hits all tools alike; the report
gives medians, MB/s, lines/s, peak RSS (ru_maxrss of each run's own process) and ratios.
Usage: bench_ingest.py LOGCRUNCH_BIN LOG_FILE LINES THREADS RUNS WORKDIR [FORMAT]
FORMAT is nginx_timed (the default: combined plus $request_time) or combined (real lines).
After the runs it prints how many Parquet files logcrunch wrote per date partition, and what
threat tagging and per-minute statistics cost: logcrunch against itself with both turned off
(`logcrunch_bare`, run in the same rounds).
With BASELINE_BIN set, another logcrunch build (an earlier commit) runs in the same rounds, so a
change's cost or gain is measured against its parent under the same noise.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

NGINX_TIMED = (
    r'^(\S+) - (\S+) \[([^\]]*)\] "(\S+) ([^"]*) (\S+)" (\d+) (\d+) "([^"]*)" "([^"]*)" (\S+)$'
)
COMBINED = r'^(\S+) \S+ (\S+) \[([^\]]*)\] "(\S+) ([^"]*) (\S+)" (\d+) (\S+) "([^"]*)" "([^"]*)"$'
NAMES = ["client_ip", "user", "ts", "method", "path", "protocol", "status", "bytes", "referer", "user_agent", "request_time"]

DUCKDB_SCRIPT = r'''
import duckdb, sys
src, out, threads = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute(f"SET threads={threads}")
pattern = sys.argv[4]
names = sys.argv[5].split(",")
timed = "request_time" in names
duration = (", CAST(round(CAST(r.request_time AS DOUBLE) * 1e6) AS UBIGINT) AS response_time_us"
            if timed else "")
con.execute(f"""
COPY (
  SELECT r.client_ip, nullif(r.user, '-') AS user,
         strptime(r.ts, '%d/%b/%Y:%H:%M:%S %z') AS ts,
         r.method, r.path, r.protocol,
         CAST(r.status AS USMALLINT) AS status, TRY_CAST(r.bytes AS UBIGINT) AS bytes,
         nullif(r.referer, '-') AS referer, r.user_agent {duration}
  FROM (SELECT regexp_extract(line, '{pattern}', {names}) AS r
        FROM read_csv('{src}', columns={{'line': 'VARCHAR'}}, delim='\t', quote='', escape='',
                      header=false, auto_detect=false))
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
""")
'''

CHDB_SCRIPT = r'''
import chdb, sys
src, out, threads, pattern = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
timed = sys.argv[5] == "nginx_timed"
structure = ("client_ip String, user String, ts String, method String, path String, protocol String, "
             "status UInt16, bytes String, referer String, user_agent String"
             + (", request_time Float64" if timed else ""))
duration = ", toUInt64(round(request_time * 1000000)) AS response_time_us" if timed else ""
chdb.query(f"""
SELECT client_ip, nullIf(user, '-') AS user,
       parseDateTime(ts, '%d/%b/%Y:%H:%i:%s %z') AS ts, method, path, protocol, status,
       toUInt64OrNull(bytes) AS bytes, nullIf(referer, '-') AS referer, user_agent {duration}
FROM file('{src}', 'Regexp', '{structure}')
INTO OUTFILE '{out}' TRUNCATE FORMAT Parquet
SETTINGS format_regexp = '{pattern.replace(chr(92), chr(92) * 2)}', format_regexp_escaping_rule = 'Raw',
         format_regexp_skip_unmatched = 1, max_threads = {threads},
         output_format_parquet_compression_method = 'zstd'
""")
'''


def run(cmd, env=None):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{err}")
    return elapsed, usage.ru_maxrss * 1024, out


def main():
    binary, log, lines, threads, runs, work = sys.argv[1:7]
    fmt = sys.argv[7] if len(sys.argv) > 7 else "nginx_timed"
    lines, runs = int(lines), int(runs)
    size = os.path.getsize(log)
    os.makedirs(work, exist_ok=True)
    py = sys.executable
    pattern, names = (NGINX_TIMED, NAMES) if fmt == "nginx_timed" else (COMBINED, NAMES[:-1])
    tools = {
        "logcrunch": lambda i: [binary, "ingest", "--json", "--format", fmt, "--threads", threads,
                                "--dataset", f"{work}/lc-{i}", log],
        "duckdb": lambda i: [py, "-c", DUCKDB_SCRIPT, log, f"{work}/duckdb-{i}.parquet", threads, pattern, ",".join(names)],
        "chdb": lambda i: [py, "-c", CHDB_SCRIPT, log, f"{work}/chdb-{i}.parquet", threads, pattern, fmt],
    }
    baseline = os.environ.get("BASELINE_BIN")
    if baseline:
        # BASELINE_ARGS: global options for it, e.g. `--patterns FILE` with its own patterns file.
        extra = os.environ.get("BASELINE_ARGS", "").split()
        tools["logcrunch_baseline"] = lambda i: [baseline, *extra, "ingest", "--json", "--format", fmt,
                                                 "--threads", threads, "--dataset", f"{work}/lcb-{i}", log]
    # The same ingest without threat tagging and statistics, for their cost: the configuration the
    # other runs read (config/config.yaml here, else the defaults) with those two turned off.
    bare = f"{work.rstrip('/')}-bare.yaml"
    with open(bare, "w") as f:
        f.write(bare_config())
    tools["logcrunch_bare"] = lambda i: [binary, "ingest", "--json", "--config", bare, "--format", fmt,
                                         "--threads", threads, "--dataset", f"{work}/lcn-{i}", log]
    if threads != "1":
        tools["logcrunch_1thread"] = lambda i: [binary, "ingest", "--json", "--format", fmt, "--threads", "1",
                                                "--dataset", f"{work}/lc1-{i}", log]
    partitions = {}
    times = {t: [] for t in tools}
    rss = {t: 0 for t in tools}
    for i in range(runs):
        for name, cmd in tools.items():
            for stale in (f"{work}/lc-{i}", f"{work}/lc1-{i}", f"{work}/lcb-{i}", f"{work}/lcn-{i}"):
                shutil.rmtree(stale, ignore_errors=True)
            elapsed, peak, out = run(cmd(i))
            times[name].append(elapsed)
            rss[name] = max(rss[name], peak)
            if name == "logcrunch":
                summary = json.loads(out)
                assert summary["rows"] == lines, f"logcrunch wrote {summary['rows']} rows, expected {lines}"
                partitions = files_per_partition(f"{work}/lc-{i}/logs")
            print(f"  run {i + 1}/{runs} {name:18s} {elapsed:7.2f} s  {size / 1e6 / elapsed:7.1f} MB/s  rss {peak / 2**20:6.0f} MiB",
                  flush=True)
        for f in os.listdir(work):
            path = os.path.join(work, f)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
    print()
    print(f"input: {log}: {size / 1e6:.1f} MB, {lines:,} lines; threads {threads}; median of {runs} runs")
    print(f"{'tool':18s} {'median s':>9s} {'MB/s':>8s} {'lines/s':>11s} {'peak RSS':>10s} {'logcrunch is':>14s}")
    base = statistics.median(times["logcrunch"])
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = med / base
        print(f"{name:18s} {med:9.2f} {size / 1e6 / med:8.1f} {lines / med:11,.0f} {rss[name] / 2**20:8.0f} MiB {ratio:13.2f}x")
    cost = base / statistics.median(times["logcrunch_bare"]) - 1
    print(f"threat tagging + per-minute statistics: {cost:+.1%} (logcrunch against logcrunch_bare, "
          f"paired rounds: {statistics.median(a / b - 1 for a, b in zip(times['logcrunch'], times['logcrunch_bare'])):+.1%})")
    counts = sorted(partitions.values())
    print(f"logcrunch Parquet files per date partition: {len(counts)} partitions, "
          f"median {statistics.median(counts):.0f}, max {counts[-1]}")


def bare_config():
    try:
        with open("config/config.yaml") as f:
            text = f.read()
    except FileNotFoundError:
        return "security:\n  paranoia: 0\nstats:\n  enabled: false\n"
    text, tagging = re.subn(r"(?m)^(security:(?:\n(?:  .*|#.*|))*?\n  paranoia:) *\d+", r"\1 0", text)
    text, stats = re.subn(r"(?m)^(stats:(?:\n(?:  .*|#.*|))*?\n  enabled:) *true", r"\1 false", text)
    if tagging != 1 or stats != 1:
        sys.exit("config/config.yaml: cannot find security.paranoia and stats.enabled to turn off")
    return text


def files_per_partition(logs):
    return {d: sum(1 for f in os.listdir(os.path.join(logs, d)) if f.endswith(".parquet"))
            for d in os.listdir(logs) if d.startswith("date=")}


if __name__ == "__main__":
    main()
