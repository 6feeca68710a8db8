#!/usr/bin/env python3
"""Prints the calibration of `logcrunch generate --profile realistic` against real access logs.

For every real log under REALDATA (the public Apache log of elastic_examples and the access logs
of wild/) with at least 1,000 lines in the combined/common layout, and for the generated profile
at the same length, it prints cardinalities and mixes measured the same way: distinct paths,
share of requests with a query string, distinct user agents, clients and referers, the share of
the ten most frequent of each, the status-class mix, GET share, median size and days covered.
It then prints how the generated distinct counts grow up to the benchmark's length (real archives
keep growing: new pages, clients and agents every day).
Usage: calibrate.py LOGCRUNCH_BIN REALDATA_DIR [LINES_FOR_GROWTH]
"""
import collections
import os
import re
import subprocess
import sys

from real_corpus import access_logs

LINE = re.compile(
    r'^(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+)[^"]*" (\d{3}) (\S+)'
    r'(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?'
)
COLUMNS = [
    ("lines", "n"), ("paths", "paths"), ("query", "query"), ("agents", "agents"),
    ("ua top10", "agent_top10"), ("clients", "clients"), ("ip top10", "client_top10"),
    ("referers", "referers"), ("ref -", "referer_dash"), ("path top10", "path_top10"),
    ("2xx", "s2"), ("3xx", "s3"), ("4xx", "s4"), ("5xx", "s5"), ("GET", "get"),
    ("size p50", "size_p50"), ("days", "days"),
]


def measure(lines, limit):
    counters = {k: collections.Counter() for k in ("ip", "path", "agent", "referer", "status", "method")}
    queries = n = 0
    days, sizes = set(), []
    for line in lines:
        m = LINE.search(line)
        if not m:
            continue
        ip, _user, ts, method, target, status, size, referer, agent = m.groups()
        path, _, query = target.partition("?")
        for key, value in (("ip", ip), ("path", path), ("agent", agent), ("referer", referer),
                           ("status", status[0]), ("method", method)):
            counters[key][value] += 1
        queries += bool(query)
        days.add(ts[:11])
        if size.isdigit():
            sizes.append(int(size))
        n += 1
        if n >= limit:
            break
    if n == 0:
        return None
    top = lambda c: sum(v for _, v in c.most_common(10)) / n
    share = lambda c, k: c.get(k, 0) / n
    sizes.sort()
    return {
        "n": n, "paths": len(counters["path"]), "query": queries / n,
        "agents": len(counters["agent"]), "agent_top10": top(counters["agent"]),
        "clients": len(counters["ip"]), "client_top10": top(counters["ip"]),
        "referers": len(counters["referer"]), "referer_dash": share(counters["referer"], "-"),
        "path_top10": top(counters["path"]),
        "s2": share(counters["status"], "2"), "s3": share(counters["status"], "3"),
        "s4": share(counters["status"], "4"), "s5": share(counters["status"], "5"),
        "get": share(counters["method"], "GET"), "size_p50": sizes[len(sizes) // 2] if sizes else 0,
        "days": len(days),
    }


def cell(v):
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def table(rows):
    head = ["log"] + [c for c, _ in COLUMNS]
    cells = [[name] + [cell(r[k]) for _, k in COLUMNS] for name, r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *cells)]
    fmt = lambda row: "  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(row, widths)))
    print(fmt(head))
    for row in cells:
        print(fmt(row))


def generated(binary, lines, seed=1):
    out = subprocess.run(
        [binary, "generate", "--profile", "realistic", "--format", "combined", "--lines", str(lines),
         "--seed", str(seed), "--rps", str(lines / (30 * 86400))],
        check=True, capture_output=True, text=True,
    ).stdout
    return out.splitlines()


def main():
    binary, realdata = sys.argv[1], sys.argv[2]
    growth_to = int(sys.argv[3]) if len(sys.argv) > 3 else 2_000_000
    rows = []
    for path in access_logs(realdata):
        with open(path, errors="replace") as f:
            real = measure(f, 10_000)
        if not real or real["n"] < 1000:
            continue
        rows.append((os.path.basename(path)[:28], real))
        rows.append(("  generated, same length", measure(generated(binary, real["n"], seed=len(rows)), real["n"])))
    print("real logs (first 10,000 combined/common lines of each) and the realistic profile at the same length:")
    table(rows)
    print()
    print("growth of the generated profile (30 days at any length):")
    sizes = [n for n in (10_000, 100_000, 1_000_000, growth_to) if n <= growth_to]
    table([(f"{n:,} lines", measure(generated(binary, n), n)) for n in sorted(set(sizes))])


if __name__ == "__main__":
    main()
