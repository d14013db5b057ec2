#!/usr/bin/env bash
# Offline end-to-end tests: the entry point of `make e2e`.
#
#   1. the venv at .venv with aws-sam-cli (created / completed if missing)
#   2. tests/e2e/docker.sh up       Docker engine (installs docker.io, starts dockerd if needed)
#   3. tests/e2e/images.sh build    stand-in Lambda python3.11 + moto images (cached by content hash)
#   4. pytest tests/e2e -m e2e      (fixtures start moto on the prescaler-e2e network, run sam)
#   5. tests/e2e/docker.sh down     always (trap): labelled containers/networks, our dockerd
#
# Exit code: pytest's, except that "no tests collected" (5) is a failure too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export SAM_CLI_TELEMETRY=0
export E2E_REQUIRED=1
START=$SECONDS
step() { printf '\n[e2e] %s (t=%ss)\n' "$*" "$((SECONDS - START))" >&2; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  step "docker.sh down"
  bash tests/e2e/docker.sh down || echo "[e2e] docker.sh down failed" >&2
  step "done, exit $rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "python venv"
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
fi
if [[ ! -x .venv/bin/sam ]]; then
  .venv/bin/pip install -q --disable-pip-version-check 'aws-sam-cli>=1.120'
fi
.venv/bin/sam --version >&2

step "docker.sh up"
bash tests/e2e/docker.sh up

step "images.sh build"
bash tests/e2e/images.sh build >&2

step "pytest -m e2e"
rc=0
E2E_SKIP_IMAGE_BUILD=1 .venv/bin/python -m pytest tests/e2e -m e2e -p no:cacheprovider "$@" || rc=$?
if [[ $rc -eq 5 ]]; then
  echo "[e2e] pytest collected no e2e tests: that is a failure" >&2
  rc=1
fi
exit "$rc"
