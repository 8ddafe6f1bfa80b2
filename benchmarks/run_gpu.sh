#!/usr/bin/env bash
# The accelerator rows of BENCHMARKS.md in one run on one NVIDIA GPU, most important first, each
# step capped so that a slow compile or an out-of-memory in one still leaves the others:
#   1. the UniRes train step at SD-2.1 size (issue 5's MFU target), XLA attention, with the
#      bare-gradient baseline;
#   2. the SD-1.5 UNet forward in bf16, XLA attention and cuDNN flash attention;
#   3. the same train step with cuDNN attention (no baseline);
#   4. the GPU-only tests;
#   5. `unires demo` (the embedded default model) with the time left.
# Usage: bash benchmarks/run_gpu.sh [LOG_DIR] [SECONDS]   (default /tmp/unires_gpu, 540)
# Every step's output goes to LOG_DIR/<step>.log as well as to the terminal (8 files in all).
set -u
LOG_DIR=${1:-/tmp/unires_gpu}
BUDGET=${2:-540}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
DEADLINE=$((SECONDS + BUDGET))

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
  timeout "$limit" "$@" 2>&1 | tee "$LOG_DIR/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start))s"
  return "$rc"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv |
  tee "$LOG_DIR/gpu.log"
python3 -c "import jax, flax, optax; print('jax', jax.__version__, jax.devices(), 'flax', \
flax.__version__, 'optax', optax.__version__)" 2>&1 | tee -a "$LOG_DIR/gpu.log"

step train_sd21_xla 230 python3 benchmarks/train_step.py --task unires_sd21 --dtype bfloat16 \
  --batch 8 --size 512 --steps 5 --remat off --attention dot_product
step unet_sd15_xla 70 python3 benchmarks/unet_vs_diffusers.py --gpu-sd15 --batch 16 \
  --repeats 10 --attention dot_product
step unet_sd15_cudnn 70 python3 benchmarks/unet_vs_diffusers.py --gpu-sd15 --batch 16 \
  --repeats 10 --attention cudnn
step train_sd21_cudnn 150 python3 benchmarks/train_step.py --task unires_sd21 --dtype bfloat16 \
  --batch 8 --size 512 --steps 5 --remat off --attention cudnn --skip_bare
step gpu_tests 60 env JAX_PLATFORMS=cuda python3 -m pytest -q -p no:cacheprovider \
  tests/models/test_unet.py -k cudnn -rs
# The demo writes dozens of images: only its report is kept beside the logs.
step demo 600 python3 -m unires_jax.cli.main demo --output /tmp/unires_gpu_demo
cp /tmp/unires_gpu_demo/report.json "$LOG_DIR/demo_report.json" 2>/dev/null
echo "== done, $((DEADLINE - SECONDS))s of the budget left"
