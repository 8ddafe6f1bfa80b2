#!/usr/bin/env bash
# Fetches the wheels that benchmarks/run_gpu.sh needs on a GPU machine with no package index
# (Python 3.12, x86-64 Linux, jax 0.11.2 preinstalled) into DIR (default .whl; keep it ignored).
# flax 0.12.8, our CPU pin, does not import with jax 0.11 (jax.experimental.hijax changed);
# 0.12.12 does: with jax 0.11.2 on CPU, tests/models (less the torch-oracle ones),
# tests/train/test_unires_task.py, test_train_loop.py and test_train_equivalence.py pass (56).
set -euo pipefail
DIR=${1:-.whl}
mkdir -p "$DIR"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
  manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d "$DIR" \
  flax==0.12.12 optax==0.2.8 orbax-checkpoint==0.12.8 ml-collections==1.1.0 grain==0.2.18 \
  array-record==0.8.6 portpicker==1.6.0 diffusers==0.42.1 importlib-metadata
ls "$DIR"
