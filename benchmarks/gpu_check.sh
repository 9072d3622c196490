#!/usr/bin/env bash
# One-shot GPU check: the CUDA tests and the GPU figures never measured, in at most ~8 minutes,
# into one Markdown report.
#
#   bash benchmarks/gpu_check.sh [REPORT.md]        (default: gpu_check.md, or $OUT/gpu_check.md)
#
# Runs, each under its own time limit (a step that overruns is cut and marked so):
#   1. the CUDA tests (pytest -k cuda: codec encode/decode, device-side targets, Predictor);
#   2. training throughput (benchmarks/train_throughput.py, 1024 synthetic images generated first)
#      at 192x256, batch 64: fp32, AMP bf16,
#      AMP fp16, channels_last + bf16, torch.compile + bf16, and targets rendered in the loader
#      (train.device_targets=false) against on the device;
#   3. benchmarks/losses.py --quick and benchmarks/codec.py --quick on CUDA;
#   4. benchmarks/inference.py on CUDA (eager, bf16 channels_last, torch.compile, onnxruntime).
# Without CUDA it says so and exits 0. PYTHON picks the interpreter (default: python3).
# Needs omegaconf, pycocotools and albumentations besides PyTorch; where they are missing
# (the lent H200 image lacks them) put their wheels in .whl/ and this script installs them into
# /tmp/site first. Here, with network (Python 3.12 on the H200 image; versions as pyproject allows):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl omegaconf antlr4-python3-runtime==4.9.3 pycocotools albumentations albucore \
#     stringzilla simsimd pydantic pydantic-core annotated-types typing-inspection
# then run it with `carry: [".whl"]`. A step that fails shows its log tail in the report.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
REPORT=${1:-${OUT:+$OUT/}gpu_check.md}
BUDGET=${GPU_CHECK_BUDGET_S:-470}  # seconds for all steps together
START=$(date +%s)

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device visible to $PY (torch missing or no GPU); nothing to measure, exiting 0."
    exit 0
fi
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1

left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# step TITLE LIMIT_S COMMAND...: run it, append its output to the report under TITLE.
step() {
    local title=$1 limit=$2; shift 2
    local remaining; remaining=$(left)
    { echo; echo "## $title"; echo; } >> "$REPORT"
    if [ "$remaining" -lt 20 ]; then
        echo "skipped: the ${BUDGET} s budget is spent" >> "$REPORT"; return
    fi
    [ "$limit" -gt "$remaining" ] && limit=$remaining
    echo "gpu_check: $title (at most ${limit} s)"
    local t0=$(date +%s) log; log=$(mktemp)
    timeout --kill-after=5 "$limit" "$@" > "$log" 2>&1
    local rc=$?
    { echo '`'"$*"'`'; echo
      if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "**cut at ${limit} s**"; echo; fi
      [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 137 ] && { echo "**exit status $rc**"; echo; }
      # Markdown tables and headings as they are; other lines (progress, warnings) in a block.
      grep -E '^(\||#|device:|Machine:)' "$log" || true
      echo; echo '<details><summary>log tail</summary>'; echo; echo '```'; tail -n 25 "$log"; echo '```'
      echo '</details>'; echo "($(( $(date +%s) - t0 )) s)"; } >> "$REPORT"
    rm -f "$log"
}

{
    echo "# GPU check"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo
    echo '```'
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -n 3
    "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"
    "$PY" -c "import omegaconf, pycocotools, albumentations, cv2; print('omegaconf, pycocotools, albumentations, cv2: ok')" 2>&1 | tail -n 1
    echo "CPU cores: $(nproc)"
    echo '```'
} > "$REPORT"

SYNTH=/tmp/kpdet_gpu_synthetic
DATA="data.synthetic.root=$SYNTH data.synthetic.num_train=1024 data.synthetic.num_val=32
      data.train.ann_file=$SYNTH/train.json data.train.img_dir=$SYNTH/images
      data.val.ann_file=$SYNTH/val.json data.val.img_dir=$SYNTH/images"
# 1024 images at batch 64: 16 batches an epoch, enough for the 12 timed steps of one epoch.
TRAIN="benchmarks/train_throughput.py --config configs/synthetic/focal.yaml --iters 12 device=cuda
       model.input_size=[192,256] train.batch_size=64 data.num_workers=8 $DATA"

step "Synthetic data for the training figures" 60 "$PY" -c "from kpdet.data.synthetic import generate_synthetic as g; \
import os; print(g('$SYNTH', num_train=1024, num_val=32, seed=0, workers=os.cpu_count()))"
step "CUDA tests" 90 "$PY" -m pytest -q -x -k cuda tests/codecs/test_gaussian.py tests/engine/test_targets.py \
    tests/test_inference.py
# shellcheck disable=SC2086
step "Training throughput: fp32, targets on the device" 60 "$PY" $TRAIN train.device_targets=true
# shellcheck disable=SC2086
step "Training throughput: fp32, targets in the loader" 45 "$PY" $TRAIN train.device_targets=false
# shellcheck disable=SC2086
step "Training throughput: AMP bf16" 45 "$PY" $TRAIN train.amp=bf16
# shellcheck disable=SC2086
step "Training throughput: AMP fp16" 45 "$PY" $TRAIN train.amp=fp16
# shellcheck disable=SC2086
step "Training throughput: AMP bf16 + channels_last" 45 "$PY" $TRAIN train.amp=bf16 train.channels_last=true
# shellcheck disable=SC2086
step "Training throughput: AMP bf16 + channels_last + torch.compile" 90 "$PY" $TRAIN train.amp=bf16 \
    train.channels_last=true train.compile=true
step "Loss benchmark (CUDA)" 40 "$PY" benchmarks/losses.py --device cuda --quick
step "Codec benchmark (CUDA)" 30 "$PY" benchmarks/codec.py --device cuda --quick
step "Inference latency and throughput (CUDA)" 90 "$PY" benchmarks/inference.py --device cuda --reps 20

echo >> "$REPORT"
echo "Total $(( $(date +%s) - START )) s." >> "$REPORT"
echo "gpu_check: report in $REPORT"
