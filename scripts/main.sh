#!/usr/bin/env bash
# README command 1: install, then train on census-income, log to TensorBoard,
# export to saved_models/census/<version>/ and verify the export as TF Serving loads it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
.venv/bin/keras-mtl train examples/census.yaml "$@"
