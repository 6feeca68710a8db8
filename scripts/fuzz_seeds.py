#!/usr/bin/env python3
"""Seed corpora for the fuzz targets of engine/fuzz, from the project's test data and, when given,
the real-data folder (LOGCRUNCH_REALDATA). Writes one directory of seed files per target.

    scripts/fuzz_seeds.py OUT_DIR [REALDATA_DIR] [MANIFEST_JSON]
"""
import hashlib
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINES_PER_FILE = 20


def yaml_formats(text):
    """Format names of patterns.yaml (two-space keys under `formats:`), in order."""
    return re.findall(r"^  ([A-Za-z0-9_]+):\s*$", text, re.M)


def directives(text):
    """(server, directive) pairs of the patterns.yaml entries written as directives."""
    out = []
    for m in re.finditer(r"^    (nginx|apache): (?:'(.*)'|\|\n((?:      .*\n)+))", text, re.M):
        body = m.group(2) if m.group(2) is not None else m.group(3)
        body = body.replace("''", "'") if m.group(2) is not None else body
        out.append((m.group(1), body))
    return out


def log_files(realdata):
    files = [p for p in (ROOT / "testdata").rglob("*") if p.is_file()
             and not p.name.endswith((".md", ".py", ".expected", ".json", ".jsonl"))
             and p.name not in ("LICENSE", "COPYING")]
    if realdata:
        files += sorted((realdata / "wild").glob("*"))
        files += sorted((realdata / "elastic_examples").glob("*"))
    return [f for f in files if f.is_file()]


def head_lines(path, n=LINES_PER_FILE):
    with open(path, "rb") as f:
        return [line for _, line in zip(range(n), f)]


class Seeds:
    def __init__(self, out):
        self.out = out

    def add(self, target, data):
        if isinstance(data, str):
            data = data.encode()
        d = self.out / target
        d.mkdir(parents=True, exist_ok=True)
        (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main():
    out = pathlib.Path(sys.argv[1])
    realdata = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else None
    manifest = pathlib.Path(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
    seeds = Seeds(out)
    patterns = (ROOT / "config/patterns.yaml").read_text()
    formats = yaml_formats(patterns)
    files = log_files(realdata)

    for f in files:
        lines = head_lines(f)
        chunk = b"".join(lines)
        seeds.add("infer", chunk)
        for name in formats:
            seeds.add("parse_line", name.encode() + b"\n" + chunk)
        for line in lines[:5]:
            seeds.add("splitter", line)

    for server, text in directives(patterns):
        sample = head_lines(ROOT / "testdata/sample/access.log", 1)[0]
        seeds.add("directive", (b"\x00" if server == "nginx" else b"\x01") + text.encode() + b"\x00" + sample)
    # The HAProxy manual's log-formats of `option httplog`, `option tcplog` and `option httplog clf`.
    for text, file in [
        ("%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r",
         "haproxy_http.log"),
        ("%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq", "haproxy_tcp.log"),
        ('%{+Q}o %{-Q}ci - - [%trg] %r %ST %B \\"\\" \\"\\" %cp %ms %ft %b %s %TR %Tw %Tc %Tr %Ta %tsc %ac %fc '
         '%bc %sc %rc %sq %bq %CC %CS %hrl %hsl', "haproxy_clf.log"),
    ]:
        sample = head_lines(ROOT / "testdata/formats" / file, 1)[0]
        body = sample.split(b"]: ", 1)[-1] if sample[:1].isalpha() else sample
        seeds.add("directive", b"\x02" + text.encode() + b"\x00" + body)

    # Tomcat's documented aliases and a Spring Boot pattern; Jetty's NCSA formats and a custom one.
    sample = head_lines(ROOT / "testdata/sample/access.log", 1)[0]
    for server, text in [
        (b"\x03", "combined"),
        (b"\x03", '<Valve pattern="%h %l %u %t &quot;%r&quot; %s %b %D %S %I" />'),
        (b"\x03", "%t %a %r %s (%D microseconds)"),
        (b"\x04", "EXTENDED_NCSA_FORMAT"),
        (b"\x04", '%{client}a %{yyyy-MM-dd HH:mm:ss.SSS|UTC}t "%r" %s %O %{ms}T'),
    ]:
        seeds.add("directive", server + text.encode() + b"\x00" + sample)

    requests = []
    for f in files:
        for line in head_lines(f, 200):
            m = re.search(rb'"[A-Z]+ ([^ "]*)[^"]*" \d+ \S+(?: "([^"]*)" "([^"]*)")?', line)
            if m:
                path, _, query = m.group(1).partition(b"?")
                requests.append(b"\x00".join([path, query, m.group(2) or b"", m.group(3) or b""]))
    if realdata:
        with open(realdata / "payloads/payloads.jsonl") as f:
            for i, line in zip(range(3000), f):
                if i % 10 == 0:
                    payload = json.loads(line).get("payload", "").encode()
                    requests.append(b"/search\x00q=" + payload + b"\x00\x00Mozilla/5.0")
    for r in requests:
        seeds.add("security", r)

    for name in ("config.yaml", "signatures.yaml"):
        seeds.add("config", (ROOT / "config" / name).read_text())
    seeds.add("patterns", patterns)
    for block in re.split(r"\n(?=  [A-Za-z0-9_]+:\s*\n)", patterns.split("\nformats:\n", 1)[1]):
        seeds.add("patterns", "formats:\n" + block + "\n")

    seeds.add("series_csv", "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,2.5\n2024-01-01 00:15:00,3\n")
    seeds.add("series_csv", "1700000000,1\n1700000060,2\n1700000120,-3e5\n")
    if realdata:
        for csv in sorted((realdata / "nab/data").rglob("*.csv"))[:20]:
            seeds.add("series_csv", b"".join(head_lines(csv, 100)))

    if manifest and manifest.is_file():
        seeds.add("manifest", manifest.read_bytes())
    seeds.add("manifest", '{"version":1,"runs":[],"sources":[],"files":[]}')

    for d in sorted(out.iterdir()):
        print(f"  {d.name}: {sum(1 for _ in d.iterdir())} seeds")


if __name__ == "__main__":
    main()
