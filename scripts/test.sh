#!/usr/bin/env bash
# README command 2: install, then run the tests. With no arguments it runs the
# fast tier (a few minutes); `bash scripts/test.sh -m slow` runs the slow tier
# (subprocesses, CLI end to end, multi-worker, crash/resume, XLA, long fits),
# `bash scripts/test.sh -m ""` both. Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
.venv/bin/python -m pytest "$@"
