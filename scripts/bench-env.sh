# Set-up shared by the benchmark scripts (sourced after they set LINES): the scratch directory,
# the release build, the generated nginx_timed log of $LINES lines, and the peers' Python venv.
#
# Environment: THREADS (default: cores), WORK (scratch directory), CARGO_TARGET_DIR, VENV (Python
# venv for the peers).

THREADS=${THREADS:-$(nproc)}
WORK=${WORK:-${TMPDIR:-/tmp}/logcrunch-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/logcrunch-target}
VENV=${VENV:-$HOME/.cache/logcrunch-bench-venv}

cargo build --release -q -p logcrunch
BIN="$CARGO_TARGET_DIR/release/logcrunch"
mkdir -p "$WORK"
LOG="$WORK/nginx_timed-$LINES.log"
[ -s "$LOG" ] || "$BIN" generate --format nginx_timed --lines "$LINES" --seed 1 -o "$LOG"

# venv_with MODULE...: makes the venv if needed and installs the modules it cannot import.
venv_with() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  local imports
  imports=$(IFS=,; echo "$*")
  "$VENV/bin/python" -c "import $imports" 2>/dev/null || "$VENV/bin/pip" install -q "$@"
}
