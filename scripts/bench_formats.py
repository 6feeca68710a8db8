#!/usr/bin/env python3
"""Ingest speed of each built-in format, against combined in the same run.

For every sample file of `testdata/formats` (the documented lines of each format) and a combined
sample, writes an input of about SIZE_MB by repeating the sample's lines (a W3C file keeps its
header once), then times `logcrunch ingest --format NAME --threads THREADS` on it, interleaved
round by round, and prints the median MB/s of each format and its ratio to combined. Every format
is timed the same way (repeated lines: few distinct values), so the ratios compare the formats'
parsing, not the data; lines/s is given too, as formats with short lines read fewer MB per line.

    scripts/bench_formats.py [LOGCRUNCH_BIN] [SIZE_MB] [RUNS] [THREADS]

Defaults: the release binary under CARGO_TARGET_DIR (or ~/.cache/logcrunch-target), 100 MB, 5
runs, 2 threads. Scratch files go to $WORK (default /tmp/logcrunch-bench/formats). ONLY=a.log,b.log
times those samples (and combined) alone.
"""
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
# Sample file -> the format it is read with (headers: as auto-detection names them).
SAMPLES = {
    "haproxy_http.log": "haproxy_http+syslog",
    "haproxy_tcp.log": "haproxy_tcp+syslog",
    "haproxy_clf.log": "haproxy_clf",
    "aws_elb.log": "aws_elb",
    "aws_s3.log": "aws_s3",
    "alb.log": "aws_alb",
    "cloudfront.log": "w3c",
    "iis.log": "w3c",
    "squid.log": "squid",
    "lighttpd.log": "lighttpd",
    "npm_proxy.log": "npm_proxy",
    "npm_standard.log": "npm_standard",
    "morgan.log": "morgan_default",
    "morgan_tiny.log": "morgan_tiny+stamp0",
    "morgan_dev.log": "morgan_dev+stamp0",
    "morgan_short.log": "morgan_short+syslog",
    "uwsgi.log": "uwsgi",
    "gunicorn.log": "combined+stamp2",
    "log4js.log": "log4js+stamp3",
    "traefik.log": "traefik",
    "traefik.json.log": "traefik_json",
    "caddy.log": "caddy",
    "nginx_json.log": "nginx_json",
    "upstream.log": "nginx_upstream",
    "python_http.log": "python_http",
    # No built-in format reads it: `auto` infers one from its lines.
    "chi.log": "auto",
}
COMBINED = (
    '203.0.113.9 - - [01/Mar/2024:00:00:01 +0000] "GET /products/42?ref=home HTTP/1.1" 200 5123 '
    '"https://shop.example.com/" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"\n'
    '198.51.100.7 - alice [01/Mar/2024:00:00:02 +0000] "POST /api/cart HTTP/1.1" 201 87 "-" '
    '"curl/8.4.0"\n'
    '192.0.2.44 - - [01/Mar/2024:00:00:03 +0000] "GET /static/app.js HTTP/2.0" 304 0 '
    '"https://shop.example.com/products/42" "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"\n'
)


def build(sample_text, path, size):
    lines = sample_text.splitlines(keepends=True)
    header = [l for l in lines if l.startswith("#")]
    body = "".join(l for l in lines if not l.startswith("#") and l.strip())
    with open(path, "w") as f:
        f.write("".join(header))
        block = body * max(1, (1 << 20) // len(body))
        written = 0
        while written < size:
            f.write(block)
            written += len(block)


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/logcrunch-target"))
    binary = sys.argv[1] if len(sys.argv) > 1 else f"{target}/release/logcrunch"
    size = int(float(sys.argv[2] if len(sys.argv) > 2 else 100) * 1e6)
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    threads = sys.argv[4] if len(sys.argv) > 4 else "2"
    work = pathlib.Path(os.environ.get("WORK", "/tmp/logcrunch-bench")) / "formats"
    work.mkdir(parents=True, exist_ok=True)
    inputs = {"combined": (work / "combined.log", COMBINED)}
    only = [f for f in os.environ.get("ONLY", "").split(",") if f]
    for file, fmt in SAMPLES.items():
        if only and file not in only:
            continue
        inputs[f"{fmt} ({file})"] = (work / file, (REPO / "testdata/formats" / file).read_text())
    for name, (path, text) in inputs.items():
        if not path.exists() or path.stat().st_size < size:
            build(text, path, size)
    times = {name: [] for name in inputs}
    rows = {}
    for r in range(runs):
        for name, (path, _) in inputs.items():
            fmt = name.split(" ")[0]
            ds = work / "ds"
            shutil.rmtree(ds, ignore_errors=True)
            start = time.perf_counter()
            proc = subprocess.run([binary, "ingest", "--json", "--format", fmt, "--threads", threads,
                                   "--dataset", str(ds), str(path)], capture_output=True, text=True, cwd=work)
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                sys.exit(f"{fmt} on {path} failed: {proc.stderr}")
            summary = json.loads(proc.stdout)
            if summary["bad_lines"]:
                sys.exit(f"{fmt} on {path}: {summary['bad_lines']} bad lines")
            times[name].append(elapsed)
            rows[name] = summary["rows"]
        print(f"  round {r + 1}/{runs} done", file=sys.stderr, flush=True)
    shutil.rmtree(work / "ds", ignore_errors=True)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    mb = {name: inputs[name][0].stat().st_size / 1e6 / med[name] for name in times}
    lines = {name: rows[name] / med[name] for name in times}
    print(f"inputs of about {size / 1e6:.0f} MB (repeated documented lines), {threads} threads, median of {runs}")
    print(f"{'format (sample)':44s} {'MB/s':>7s} {'vs combined':>12s} {'lines/s':>10s} {'vs combined':>12s}")
    for name in times:
        print(f"{name:44s} {mb[name]:7.1f} {mb[name] / mb['combined']:11.2f}x "
              f"{lines[name]:10,.0f} {lines[name] / lines['combined']:11.2f}x")


if __name__ == "__main__":
    main()
