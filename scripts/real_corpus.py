#!/usr/bin/env python3
"""Builds a benchmark corpus from the real access-log lines of ../shared/realdata.

Every line of the public Apache log (elastic_examples) and of the access logs in wild/ that is in
the combined layout (a method, target and protocol in the request; no escaped quotes, so that the
peers' regular expression reads exactly the lines logcrunch reads) is taken, and the set is
repeated, in order, up to LINES lines. Two corpora come out of it:
  rising: timestamps rewritten to rise steadily over DAYS days (one old log replayed as new);
  own:    each line keeps its own date, so the dates of many servers and years cycle through the
          file as the repetitions go round (many old logs ingested in one run).
Usage: real_corpus.py REALDATA_DIR LINES rising|own OUT [DAYS]
"""
import glob
import os
import re
import sys
import time

COMBINED = re.compile(
    r'^\S+ \S+ \S+ \[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "\S+ [^"\s]+ HTTP/[\d.]+" \d{3} (?:\d+|-) "[^"\\]*" "[^"\\]*"$'
)


def access_logs(realdata):
    """The real access logs: the public Apache log of elastic_examples and those of wild/."""
    files = [os.path.join(realdata, "elastic_examples", "apache_logs")]
    return files + sorted(f for f in glob.glob(os.path.join(realdata, "wild", "files", "*")) if "error" not in f)


def real_lines(realdata):
    out = []
    for path in access_logs(realdata):
        with open(path, "rb") as f:
            for raw in f:
                line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                m = COMBINED.match(line)
                if m:
                    out.append((line, m.start(1), m.end(1)))
    return out


def main():
    realdata, lines, mode, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    days = int(sys.argv[5]) if len(sys.argv) > 5 else 30
    source = real_lines(realdata)
    start = 1_704_067_200  # 2024-01-01
    step = days * 86_400 / lines
    with open(out_path, "w") as out:
        for i in range(lines):
            line, a, b = source[i % len(source)]
            if mode == "rising":
                stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(start + int(i * step)))
                line = line[:a] + stamp + line[b:]
            out.write(line + "\n")
    dates = {l[a:a + 11] for l, a, _ in source}
    print(f"{out_path}: {lines:,} lines from {len(source):,} real lines"
          f" ({'rising over %d days' % days if mode == 'rising' else '%d dates cycling' % len(dates)})")


if __name__ == "__main__":
    main()
