#!/usr/bin/env bash
# Trains the embedded default UniRes model and installs it into the package
# (unires_jax/assets/default_model), exactly as shipped. About 82 minutes on an idle 2-core CPU
# (configs/unires_default.py has the measurements). With a GPU or TPU (jax's default backend is
# not "cpu") it runs the config's longer "accelerator" schedule instead.
#
# The training photos are files of installed packages (see unires_jax/data/real_photos.py):
# the script installs Debian's mate-backgrounds when it can (root and apt-get); nothing is
# downloaded while training. Without it, training goes on with the photos that are installed
# (with a warning), and the result is not the shipped model.
#
#   bash scripts/train_default_model.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
workdir=${1:-/tmp/unires_default_model}
dst=unires_jax/assets/default_model
staging="$workdir/export"

photos=/usr/share/backgrounds/mate/nature
if [ ! -d "$photos" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing mate-backgrounds (training photos) with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y mate-backgrounds || { apt-get update && apt-get install -y mate-backgrounds; } ||
      echo "warning: apt-get could not install mate-backgrounds; training without its photos" >&2
  else
    echo "warning: $photos is missing. Install the training photos with" \
      "'sudo apt-get install mate-backgrounds' (Debian/Ubuntu) and rerun for the shipped model;" \
      "training goes on with the photos that are installed." >&2
  fi
fi

config=configs/unires_default.py
backend=$(python -c 'import jax; print(jax.default_backend())')
if [ "$backend" != cpu ]; then
  config="$config:accelerator"
fi
echo "Training on $backend with --config=$config"

rm -rf "$staging"
unires train --config="$config" --workdir="$workdir" --export="$staging"
rm -rf "$dst"
mv "$staging" "$dst"
du -sh "$dst"
