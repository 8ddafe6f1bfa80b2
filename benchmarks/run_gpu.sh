#!/usr/bin/env bash
# The accelerator rows of BENCHMARKS.md in one run on one NVIDIA GPU, most important first, each
# step capped so that a slow compile or an out-of-memory in one still leaves the others:
#   1. the UniRes train step at SD-2.1 size, 512 px, bf16, cuDNN attention (issue 5's MFU
#      target);
#   2. the SD-1.5 UNet forward in bf16 with cuDNN attention, against diffusers on the same GPU;
#   3. the GPU-only tests;
#   4. the same two with XLA's attention (the train step with the bare-gradient baseline);
#   5. `unires demo` (the embedded default model) with the time left.
# Seen on an H200 (session 16): building and compiling an SD-size UNet takes 70-80 s for the
# forward alone, the train step longer; the caps below leave room for that.
# Usage: bash benchmarks/run_gpu.sh [LOG_DIR] [SECONDS]   (default /tmp/unires_gpu, 540)
# Every step's output goes to LOG_DIR/<step>.log as well as to the terminal (8 files in all).
# The lent GPU machines' image has jax 0.11.2 but lacks grain and ml-collections and may hold a
# flax that does not fit: `bash benchmarks/gpu_wheels.sh .whl` here fetches the wheels; with
# .whl carried, this script installs them first (offline) and puts them ahead of the image's:
#   bash benchmarks/run_gpu.sh $OUT 540
set -u
LOG_DIR=${1:-/tmp/unires_gpu}
BUDGET=${2:-540}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
DEADLINE=$((SECONDS + BUDGET))

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/unires_site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/unires_site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi

step() {  # step NAME MAX_SECONDS COMMAND...: runs it for at most MAX_SECONDS and the time left
  local name=$1 limit=$2 left=$((DEADLINE - SECONDS))
  shift 2
  ((left < limit)) && limit=$left
  if ((limit < 20)); then
    echo "== $name: skipped, ${left}s left"
    return 1
  fi
  echo "== $name (${limit}s): $*"
  local start=$SECONDS
  # XLA's rematerialisation warnings repeat for every allocation: one line each is enough.
  timeout "$limit" "$@" 2>&1 |
    awk '(!/hlo_rematerialization|bfc_allocator/ || !seen[$4]++) { print; fflush() }' |
    tee "$LOG_DIR/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start))s"
  return "$rc"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv |
  tee "$LOG_DIR/gpu.log"
python3 -c "import jax, flax, optax; print('jax', jax.__version__, jax.devices(), 'flax', \
flax.__version__, 'optax', optax.__version__)" 2>&1 | tee -a "$LOG_DIR/gpu.log"

step train_sd21_cudnn 240 python3 benchmarks/train_step.py --task unires_sd21 --dtype bfloat16 \
  --batch 8 --size 512 --steps 5 --remat off --attention cudnn --skip_bare
step unet_sd15_cudnn 120 python3 benchmarks/unet_vs_diffusers.py --gpu-sd15 --batch 16 \
  --repeats 10 --attention cudnn
step gpu_tests 40 env JAX_PLATFORMS=cuda python3 -m pytest -q -p no:cacheprovider \
  tests/models/test_unet.py -k cudnn -rs
step train_sd21_xla 240 python3 benchmarks/train_step.py --task unires_sd21 --dtype bfloat16 \
  --batch 8 --size 512 --steps 5 --remat off --attention dot_product
step unet_sd15_xla 100 python3 benchmarks/unet_vs_diffusers.py --gpu-sd15 --batch 16 \
  --repeats 10 --attention dot_product
# The demo writes dozens of images: only its report is kept beside the logs.
step demo 600 python3 -m unires_jax.cli.main demo --output /tmp/unires_gpu_demo
cp /tmp/unires_gpu_demo/report.json "$LOG_DIR/demo_report.json" 2>/dev/null
echo "== done, $((DEADLINE - SECONDS))s of the budget left"
