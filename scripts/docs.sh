#!/usr/bin/env bash
# Builds the docs site (docs/, mkdocs.yml) into site/ with warnings as errors:
# installs keras_mtl's docs extra (MkDocs, mkdocstrings, Material) into .venv,
# then runs `mkdocs build --strict`. Arguments go to mkdocs build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  bash scripts/setup.sh
fi
.venv/bin/python -m pip install -q -e ".[docs]"
export NO_MKDOCS_2_WARNING=1
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
.venv/bin/python -m mkdocs build --strict --site-dir site "$@"
