# Sourced by scripts/run and scripts/test: make .venv from the project's own files, once per change.
# scripts/run needs the runtime dependencies only (`-e .`); scripts/test also the test extras (`-e ".[test]"`).
# Each install has its own marker, so either script can run first, and a pyproject.toml change reinstalls.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"

# ensure_venv <pip target> <marker>...: install <pip target> unless every marker is newer than pyproject.toml,
# then touch the markers (an install of ".[test]" also brings everything "." needs, so it marks both).
ensure_venv() {
  local target="$1" marker stale=0
  shift
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  for marker in "$@"; do
    if [ ! -f ".venv/.installed-$marker" ] || [ pyproject.toml -nt ".venv/.installed-$marker" ]; then
      stale=1
    fi
  done
  if [ "$stale" = 1 ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
    for marker in "$@"; do
      touch ".venv/.installed-$marker"
    done
  fi
}
