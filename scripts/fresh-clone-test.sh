#!/usr/bin/env bash
# Clones this repository's HEAD into an empty directory, with nothing beside it (no ../shared), and
# runs the test command of its README there, as a new user would: the tests over the full
# real-data corpus skip (LOGCRUNCH_REALDATA is unset), everything else must pass. The build cache is
# shared (CARGO_TARGET_DIR), so only the workspace's own crates are compiled again.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcrunch-target}"
unset LOGCRUNCH_REALDATA LOGCRUNCH_CHROMIUM
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
git clone -q --no-local . "$scratch/logcrunch"
cd "$scratch/logcrunch"
if [ -e ../shared ] || [ -n "$(ls -A ..| grep -v '^logcrunch$')" ]; then
  echo "fresh-clone-test: $scratch is not empty besides the clone" >&2
  exit 1
fi
command=$(sed -n '/^```sh$/,/^```$/p' README.md | grep -m1 '^cargo fmt')
echo "fresh clone at $scratch/logcrunch ($(git log -1 --format=%h)); running: $command"
eval "$command"
