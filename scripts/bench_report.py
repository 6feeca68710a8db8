#!/usr/bin/env python3
"""Times `logcrunch report all` on an ingested dataset against (a) DuckDB running the same SQL
statements directly over the raw log (a `logs` view that parses it with regexp_extract) and
(b) GoAccess producing its JSON report from the raw log, and against one grouped scan of the same
dataset with an exact quantile (the unit of the report target). Same machine, same run; prints
medians.
Usage: bench_report.py LOGCRUNCH_BIN LOG DATASET THREADS RUNS WORKDIR
"""
import os
import statistics
import subprocess
import sys
import time

PATTERN = r'^(\S+) - (\S+) \[([^\]]*)\] "(\S+) ([^"]*) (\S+)" (\d+) (\d+) "([^"]*)" "([^"]*)" (\S+)$'
NAMES = ["client_ip", "user", "ts", "method", "target", "protocol", "status", "bytes", "referer", "user_agent", "request_time"]

RAW_VIEW = r"""
CREATE VIEW logs AS
SELECT ts, r.client_ip, NULL::VARCHAR AS ident, nullif(r.user, '-') AS user, r.method,
       split_part(r.target, '?', 1) AS path,
       CASE WHEN position('?' IN r.target) > 0 THEN substr(r.target, position('?' IN r.target) + 1) END AS query,
       r.protocol,
       regexp_replace(regexp_replace(split_part(r.target, '?', 1), '/[0-9]+(\.[A-Za-z0-9]+)?(/|$)', '/{id}\1\2', 'g'),
                      '/[0-9a-fA-F-]{16,}(/|$)', '/{id}\1', 'g') AS route,
       CAST(r.status AS USMALLINT) AS status, CAST(r.bytes AS UBIGINT) AS bytes,
       nullif(r.referer, '-') AS referer, nullif(r.user_agent, '-') AS user_agent,
       NULL::VARCHAR AS vhost, NULL::VARCHAR AS x_forwarded_for,
       CAST(round(CAST(r.request_time AS DOUBLE) * 1e6) AS UBIGINT) AS response_time_us,
       NULL::UBIGINT AS upstream_response_time_us, 0::UINTEGER AS threats, '{src}' AS source,
       0::UBIGINT AS "offset", CAST(ts AS DATE) AS date
FROM (SELECT r, CAST(strptime(r.ts, '%d/%b/%Y:%H:%M:%S %z') AS TIMESTAMP) AS ts
      FROM (SELECT regexp_extract(line, '{pattern}', {names}) AS r
            FROM read_csv('{src}', columns={{'line': 'VARCHAR'}}, delim='\t', quote='', escape='',
                          header=false, auto_detect=false)));
CREATE TABLE errors (ts TIMESTAMP, level VARCHAR, module VARCHAR, pid VARCHAR, tid VARCHAR,
                     client VARCHAR, message VARCHAR, source VARCHAR, "offset" UBIGINT, date DATE);
CREATE TABLE anomalies (start TIMESTAMP, "end" TIMESTAMP, metric VARCHAR, route VARCHAR, method VARCHAR,
                        expected DOUBLE, observed DOUBLE, score DOUBLE, severity VARCHAR, buckets INTEGER,
                        detected_run VARCHAR);
"""

# The unit of the report target: one scan of the dataset grouped by route, with an exact quantile.
GROUPED_SCAN = "SELECT route, count(*) AS requests, quantile_cont(response_time_us, 0.95) AS p95 FROM logs GROUP BY route"

DUCKDB_SCRIPT = r'''
import duckdb, sys, time
view, stmts_file, threads = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute(f"SET threads={threads}")
con.execute(open(view).read())
for stmt in open(stmts_file).read().split(";\n\n"):
    if stmt.strip():
        con.execute(stmt).fetchall()
'''


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main():
    binary, log, dataset, threads, runs, work = sys.argv[1:7]
    runs = int(runs)
    os.makedirs(work, exist_ok=True)
    rows = subprocess.run([binary, "query", "--dataset", dataset, "--format", "csv", "SELECT count(*) FROM logs"],
                          check=True, capture_output=True, text=True).stdout.split()[1]
    stmts = subprocess.run([binary, "report", "all", "--dataset", dataset, "--sql"],
                           check=True, capture_output=True, text=True).stdout
    stmts_file = os.path.join(work, "report.sql")
    open(stmts_file, "w").write(stmts)
    view_file = os.path.join(work, "raw_view.sql")
    open(view_file, "w").write(RAW_VIEW.replace("{src}", log).replace("{pattern}", PATTERN.replace("'", "''"))
                               .replace("{names}", str(NAMES)).replace("{{", "{").replace("}}", "}"))
    n_stmts = stmts.count(";\n\n")
    print(f"dataset: {rows} rows; report all = {n_stmts} SQL statements; log {os.path.getsize(log) / 1e9:.2f} GB")

    # Interleaved: report all, then one grouped scan with an exact quantile over the same dataset.
    lc, scan = [], []
    for _ in range(runs):
        lc.append(timed([binary, "report", "all", "--dataset", dataset, "--format", "json",
                         "-o", os.path.join(work, "lc.json")]))
        scan.append(timed([binary, "query", "--dataset", dataset, "--format", "csv", GROUPED_SCAN]))
    print(f"  logcrunch report all: {', '.join(f'{t:.2f}' for t in lc)} s", flush=True)
    print(f"  logcrunch one grouped scan: {', '.join(f'{t:.2f}' for t in scan)} s", flush=True)
    print(f"  report all / one grouped scan with an exact quantile: "
          f"{statistics.median(lc) / statistics.median(scan):.2f}x (target: at most 3x)", flush=True)
    duck = [timed([sys.executable, "-c", DUCKDB_SCRIPT, view_file, stmts_file, threads])]
    print(f"  duckdb, same SQL over the raw log: {duck[0]:.1f} s", flush=True)
    ga = [timed(["goaccess", log, "--log-format=%h %^[%d:%t %^] \"%r\" %s %b \"%R\" \"%u\" %T",
                 "--date-format=%d/%b/%Y", "--time-format=%T", "-o", os.path.join(work, "goaccess.json")])]
    print(f"  goaccess JSON report from the raw log: {ga[0]:.1f} s", flush=True)

    base = statistics.median(lc)
    print()
    print(f"{'tool':40s} {'median s':>9s} {'vs logcrunch':>13s}")
    for name, ts in [("logcrunch report all (Parquet)", lc), ("logcrunch one grouped scan", scan),
                     ("duckdb same SQL over raw log", duck),
                     ("goaccess from raw log", ga)]:
        med = statistics.median(ts)
        print(f"{name:40s} {med:9.2f} {med / base:12.1f}x")


if __name__ == "__main__":
    main()
