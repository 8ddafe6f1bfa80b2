#!/usr/bin/env bash
# Trains the embedded default UniRes model and installs it into the package
# (unires_jax/assets/default_model), exactly as shipped. About 55 minutes on an idle 2-core CPU; with a
# GPU the same command runs there (edit c.train.steps in the config for a longer schedule).
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
