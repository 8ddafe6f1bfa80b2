#!/usr/bin/env bash
# Train on a Cloud TPU v5 VM / pod slice: create or reuse the slice, ship the code, install
# jax[tpu] and the package on every worker, launch `unires train` on all workers, stream logs.
#
#   ./run_tpu.sh --name unires-v5e --zone us-west4-a --type v5e-32 \
#       --ckpt-dir gs://BUCKET/unires/ckpt -- \
#       --config=configs/unires_sd21.py --workdir=/tmp/unires --config.train.steps=200000
#
#   ./run_tpu.sh --dry-run ...   prints every command instead of running it.
#
# Everything after `--` goes to `unires train` unchanged. On a multi-host slice the checkpoint
# directory must be shared by all workers (a gs:// path, via --ckpt-dir); metrics and logs are
# written by worker 0 into --workdir on its local disk (copy them with `gcloud ... scp`).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: run_tpu.sh [--dry-run] --name NAME --zone ZONE --type TYPE [options] -- TRAIN_FLAGS...

  --name NAME          TPU VM name (reused when it exists, created otherwise)
  --zone ZONE          e.g. us-west4-a (v5e), us-east5-a (v5p)
  --type TYPE          v5e-N / v5litepod-N or v5p-N, e.g. v5e-32 (8 hosts x 4 chips)
  --project PROJECT    gcloud project (default: gcloud's configured project)
  --version VERSION    TPU software version (default: v2-alpha-tpuv5-lite for v5e,
                       v2-alpha-tpuv5 for v5p)
  --spot               create a Spot (preemptible) slice; training resumes after restarts
  --code copy|git      copy the local checkout (default) or clone/pull --repo on each worker
  --repo URL           git URL for --code git
  --branch BRANCH      git branch for --code git (default: main)
  --ckpt-dir DIR       shared checkpoint directory (gs://...) passed as
                       --config.checkpoint.directory
  --detach             launch and return without streaming worker 0's log
  --dry-run            print the commands, run nothing
EOF
}

DRY_RUN=0
NAME=""
ZONE=""
TYPE=""
PROJECT=""
VERSION=""
SPOT=0
CODE="copy"
REPO_URL=""
BRANCH="main"
CKPT_DIR=""
DETACH=0
TRAIN_FLAGS=()

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --name) NAME="$2"; shift ;;
    --zone) ZONE="$2"; shift ;;
    --type) TYPE="$2"; shift ;;
    --project) PROJECT="$2"; shift ;;
    --version) VERSION="$2"; shift ;;
    --spot) SPOT=1 ;;
    --code) CODE="$2"; shift ;;
    --repo) REPO_URL="$2"; shift ;;
    --branch) BRANCH="$2"; shift ;;
    --ckpt-dir) CKPT_DIR="$2"; shift ;;
    --detach) DETACH=1 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; TRAIN_FLAGS=("$@"); break ;;
    *) echo "run_tpu.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

die() { echo "run_tpu.sh: error: $*" >&2; exit 2; }
[ -n "$NAME" ] || die "--name is required"
[ -n "$ZONE" ] || die "--zone is required"
[ -n "$TYPE" ] || die "--type is required (e.g. v5e-32)"
[ ${#TRAIN_FLAGS[@]} -gt 0 ] || die "give the unires train flags after -- (--config=... --workdir=...)"
case "$CODE" in
  copy) ;;
  git) [ -n "$REPO_URL" ] || die "--code git needs --repo URL" ;;
  *) die "--code must be copy or git" ;;
esac

# Accelerator type and default software version per TPU generation.
case "$TYPE" in
  v5e-*|v5litepod-*)
    ACCELERATOR="v5litepod-${TYPE#*-}"
    VERSION="${VERSION:-v2-alpha-tpuv5-lite}"
    ;;
  v5p-*)
    ACCELERATOR="$TYPE"
    VERSION="${VERSION:-v2-alpha-tpuv5}"
    ;;
  *) die "--type $TYPE: use v5e-N (v5litepod-N) or v5p-N" ;;
esac

GCLOUD=(gcloud compute tpus tpu-vm)
WHERE=(--zone="$ZONE")
[ -n "$PROJECT" ] && WHERE+=(--project="$PROJECT")
# Remote paths are relative to the login directory, where every ssh command starts.
REMOTE_DIR=unires-jax
VENV=unires-venv
LOG=unires-train.log
FORMAT='value(state)'

# Runs a command, or prints it with --dry-run (arguments with special characters single-quoted,
# so the printed line can be pasted into a shell).
run() {
  if [ "$DRY_RUN" = 1 ]; then
    local arg line="+"
    for arg in "$@"; do
      if [[ "$arg" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
        line+=" $arg"
      else
        line+=" ${arg@Q}"
      fi
    done
    printf '%s\n' "$line"
  else
    "$@"
  fi
}

# Runs a shell command line on every worker of the slice.
on_all_workers() {
  run "${GCLOUD[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all --command="$1"
}

# 1. Create the slice unless it exists.
if [ "$DRY_RUN" = 1 ]; then
  echo "# reuse $NAME if this succeeds, otherwise create it:"
  run "${GCLOUD[@]}" describe "$NAME" "${WHERE[@]}" --format="$FORMAT"
  CREATE=1
elif "${GCLOUD[@]}" describe "$NAME" "${WHERE[@]}" --format="$FORMAT" >/dev/null 2>&1; then
  echo "run_tpu.sh: reusing TPU VM $NAME"
  CREATE=0
else
  CREATE=1
fi
if [ "$CREATE" = 1 ]; then
  CREATE_ARGS=(--accelerator-type="$ACCELERATOR" --version="$VERSION")
  [ "$SPOT" = 1 ] && CREATE_ARGS+=(--spot)
  run "${GCLOUD[@]}" create "$NAME" "${WHERE[@]}" "${CREATE_ARGS[@]}"
fi

# 2. Code on every worker.
if [ "$CODE" = copy ]; then
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  ARCHIVE="${TMPDIR:-/tmp}/unires-jax-code.tar.gz"
  run tar -C "$ROOT" --exclude=.git --exclude=.venv --exclude=__pycache__ \
    --exclude=workdir --exclude=outputs -czf "$ARCHIVE" .
  run "${GCLOUD[@]}" scp "$ARCHIVE" "$NAME:unires-jax-code.tar.gz" "${WHERE[@]}" --worker=all
  on_all_workers "mkdir -p $REMOTE_DIR && tar -xzf unires-jax-code.tar.gz -C $REMOTE_DIR"
else
  printf -v GIT_URL '%q' "$REPO_URL"
  printf -v GIT_BRANCH '%q' "$BRANCH"
  on_all_workers "if [ -d $REMOTE_DIR/.git ]; then git -C $REMOTE_DIR fetch origin $GIT_BRANCH && git -C $REMOTE_DIR checkout -B $GIT_BRANCH FETCH_HEAD; else git clone --branch $GIT_BRANCH $GIT_URL $REMOTE_DIR; fi"
fi

# 3. jax[tpu] and the package (the `tpu` extra pins jax[tpu] to the tested version).
EXTRA_PIP=""
case "$CKPT_DIR" in gs://*) EXTRA_PIP=" gcsfs" ;; esac
on_all_workers "python3 -m venv $VENV && . $VENV/bin/activate && pip install -q -U pip && pip install -q -e './${REMOTE_DIR}[tpu]'$EXTRA_PIP"

# 4. Launch on all workers; JAX finds the other hosts itself (--distributed=auto).
LAUNCH_FLAGS=(--distributed=auto "${TRAIN_FLAGS[@]}")
[ -n "$CKPT_DIR" ] && LAUNCH_FLAGS+=(--config.checkpoint.directory="$CKPT_DIR")
printf -v TRAIN_ARGS ' %q' "${LAUNCH_FLAGS[@]}"
on_all_workers "cd $REMOTE_DIR && . ../$VENV/bin/activate && nohup unires train$TRAIN_ARGS > ../$LOG 2>&1 < /dev/null &"

# 5. Stream worker 0's log (process 0 writes the metrics); Ctrl-C stops streaming, not training.
if [ "$DETACH" = 0 ]; then
  run "${GCLOUD[@]}" ssh "$NAME" "${WHERE[@]}" --worker=0 --command="tail -n +1 -F $LOG"
fi
