#!/usr/bin/env bash
# Sets up .venv with the project and everything it needs, from nothing.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# -c constraints.txt pins torch to the CPU wheel this machine carries
# (see constraints.txt); the extras bring the Japanese and Chinese
# segmenters and the test tools.
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[ja,zh,dev]"
