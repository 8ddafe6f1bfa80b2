#!/usr/bin/env bash
# Trains the embedded default UniRes model and installs it into the package
# (unires_jax/assets/default_model), exactly as shipped. About 90 minutes on 2 CPU cores; with a
# GPU the same command runs there (add e.g. --config.train.steps=20000 for a longer schedule).
#
#   bash scripts/train_default_model.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
workdir=${1:-/tmp/unires_default_model}
dst=unires_jax/assets/default_model
staging="$workdir/export"
rm -rf "$staging"
unires train --config=configs/unires_default.py --workdir="$workdir" --export="$staging"
rm -rf "$dst"
mv "$staging" "$dst"
du -sh "$dst"
