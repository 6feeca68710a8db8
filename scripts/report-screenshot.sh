#!/usr/bin/env bash
# Regenerates testdata/report/screenshot.png, the picture of the HTML report in the README: the
# report of the bundled sample log (testdata/sample: ingested, run through detect) as headless
# Chromium draws it, light theme, 1280 px wide. Needs Debian's chromium (or LOGCRUNCH_CHROMIUM).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcrunch-target}"
browser="${LOGCRUNCH_CHROMIUM:-$(command -v chromium || true)}"
[ -n "$browser" ] || { echo "report-screenshot: no chromium; apt-get install chromium" >&2; exit 2; }
cargo build --release -q --bin logcrunch
bin="$CARGO_TARGET_DIR/release/logcrunch"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
cp "$repo/testdata/sample/access.log" "$repo/testdata/sample/error.log" .
"$bin" -q ingest --dataset sample access.log error.log >/dev/null
"$bin" -q detect --dataset sample >/dev/null
"$bin" -q report all --dataset sample --format html -o report.html
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$scratch/profile" --hide-scrollbars --window-size=1280,1900 \
  --screenshot="$repo/testdata/report/screenshot.png" "file://$scratch/report.html" 2>/dev/null
echo "wrote testdata/report/screenshot.png ($(stat -c %s "$repo/testdata/report/screenshot.png") bytes)"
