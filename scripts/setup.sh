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
# The offline sample corpora (LibreOffice help in ja/fi/zh/en from Debian's
# packages) go into ~/.cache/encoder-recipes; a machine without apt gets a
# message saying how to point a recipe at its own files instead.
if [ "${ENCODER_RECIPES_SKIP_DATA:-0}" != "1" ]; then
  .venv/bin/encoder-recipes data samples || echo "setup: sample corpora unavailable (see the message above); training on them will not work here" >&2
fi
