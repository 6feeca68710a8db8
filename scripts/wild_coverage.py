#!/usr/bin/env python3
"""Reads every file of a folder of real logs with `logcrunch ingest --format auto`, one dataset per
file, and prints per file the format detected and the share of its non-blank lines that were read
(not quarantined as bad: a line that continues a multi-line error entry, or a W3C header, is read
without being a row of its own): the format-coverage figure of the README. With a manifest.jsonl beside the files (the shared
`realdata/wild/` layout), each file's kind (access or error) is shown and totals are given per kind.

    scripts/wild_coverage.py [LOGCRUNCH_BIN] [FOLDER]

Defaults: the release binary under CARGO_TARGET_DIR (or ~/.cache/logcrunch-target) and
$LOGCRUNCH_REALDATA/wild. Exit 1 when an access log is read below 90% or an error log below 100%.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/logcrunch-target"))
    binary = sys.argv[1] if len(sys.argv) > 1 else f"{target}/release/logcrunch"
    folder = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else
                          os.path.join(os.environ.get("LOGCRUNCH_REALDATA", "../shared/realdata"), "wild"))
    files_dir = folder / "files" if (folder / "files").is_dir() else folder
    kinds = {}
    manifest = folder / "manifest.jsonl"
    if manifest.is_file():
        for line in manifest.read_text().splitlines():
            rec = json.loads(line)
            kinds[rec.get("file") or rec.get("name")] = rec.get("kind", "?")
    failing = 0
    totals = {}
    print(f"{'file':58s} {'kind':6s} {'format':24s} {'lines':>7s} {'rows':>7s} {'bad':>7s} {'read':>7s}")
    for path in sorted(p for p in files_dir.iterdir() if p.is_file()):
        kind = kinds.get(path.name, "?")
        lines = sum(1 for raw in path.read_bytes().split(b"\n") if raw.strip())
        with tempfile.TemporaryDirectory() as scratch:
            proc = subprocess.run([binary, "ingest", "--json", "--dataset", f"{scratch}/ds", str(path)],
                                  capture_output=True, text=True)
            if proc.stdout.strip():
                summary = json.loads(proc.stdout)
                src = summary["sources"][0]
                fmt, rows, bad = src["format"], src["rows"], src["bad_lines"]
            else:
                fmt, rows, bad = "(refused)", 0, lines
        rate = 1 - bad / lines if lines else 1.0
        need = 1.0 if kind == "error" else 0.9
        mark = "" if rate >= need else "  <-- below target"
        failing += rate < need
        t = totals.setdefault(kind, [0, 0, 0])
        t[0] += 1
        t[1] += rate >= need
        print(f"{path.name[:58]:58s} {kind:6s} {fmt[:24]:24s} {lines:7d} {rows:7d} {bad:7d} {rate:7.1%}{mark}")
    for kind, (n, ok, _) in sorted(totals.items()):
        print(f"{kind}: {ok} of {n} files read at target ({'100%' if kind == 'error' else '>= 90%'} of their lines)")
    sys.exit(1 if failing else 0)


if __name__ == "__main__":
    main()
