#!/usr/bin/env bash
# One-shot GPU check: the CUDA tests and the GPU figures never measured, in at most ~8 minutes,
# into one Markdown report.
#
#   bash benchmarks/gpu_check.sh [REPORT.md]        (default: benchmarks/gpu_check.md, copied to $OUT)
#   GPU_CHECK_PART=bottom_up bash benchmarks/gpu_check.sh   (issue 24's studies instead; see the end)
#
# Runs, each under its own time limit (a step that overruns is cut and marked so), most wanted first:
#   1. the CUDA tests (pytest -k cuda: codec encode/decode, device-side targets, Predictor, the
#      device augmentation's CUDA-vs-CPU parity);
#   2. training throughput (benchmarks/train_throughput.py, 1024 synthetic images generated first)
#      at 192x256, batch 64, fp32 and AMP bf16: model-bound against the four data paths
#      (data.cache none|ram x data.augment_on loader|device), ratios from the same run;
#   3. the same on openfield (160x160, batch 8 as its config), fp32 and bf16, when its data is there
#      (OPENFIELD=dir, default ../shared/data/dlc_openfield);
#   4. where one openfield run's time goes (benchmarks/run_profile.py, 234 steps), old path and new;
#   5. the openfield focal-vs-MSE study (3 seeds x 2 losses x 1,040 steps) with the new data path,
#      its wall time and results.md's per-run table (img/s, GPU utilisation);
#   (order of execution: 1, 2 fp32, 5, 4 new, 2 bf16, 3 fp32, 4 old, 3 bf16: what matters most
#   first, since the GPU_CHECK_BUDGET_S budget (default 470 s) cuts the rest)
#   6. with GPU_CHECK_ALL=1, also the loss, codec and inference benchmarks (measured on an H200 before).
# GPU_CHECK_PART=bottom_up runs issue 24's focal-vs-MSE studies instead, 3 seeds each, 6 runs side
# by side (budget default 540 s): points, multi-instance pose, its top-down reference, the whole
# frame on openfield; each study's tables go into the report, its results.md into $OUT.
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
REPORT=${1:-benchmarks/gpu_check.md}  # copied into $OUT too when set (the lent machine's way back)
PART=${GPU_CHECK_PART:-throughput}  # throughput (issue 23) or bottom_up (issue 24)
[ "$PART" = bottom_up ] && REPORT=${1:-benchmarks/gpu_bottom_up.md}
BUDGET=${GPU_CHECK_BUDGET_S:-$([ "$PART" = bottom_up ] && echo 540 || echo 470)}  # all steps together
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

OPENFIELD=${OPENFIELD:-../shared/data/dlc_openfield}
OF="data.train.ann_file=$OPENFIELD/train.json data.train.img_dir=$OPENFIELD/images
    data.val.ann_file=$OPENFIELD/test.json data.val.img_dir=$OPENFIELD/images"

# Issue 24: the four studies of configs/studies, their data generated once first (not by 6 runs at
# once), runs under /tmp, 2 loader workers per run (bottom-up samples are augmented on the loader).
bottom_up_studies() {
    local root=/tmp/kpdet_gpu_bottom_up
    step "Point and pose sets (the configs' own, in the repo's data/)" 120 "$PY" -c "import os; \
from kpdet.data.synthetic import ensure_synthetic; from kpdet.data.points_synthetic import generate_points; \
print(ensure_synthetic('data/synthetic_points', generate_points, num_train=2000, num_val=200, seed=0)); \
print(ensure_synthetic('data/synthetic', num_train=2000, num_val=200, seed=0, workers=os.cpu_count()))"
    local name
    for name in points_focal_vs_mse bottom_up_synthetic_focal_vs_mse synthetic_top_down_10_epochs \
                openfield_whole_frame; do
        local data=""; [ "$name" = openfield_whole_frame ] && data=$OF
        # shellcheck disable=SC2086
        step "Study $name (6 runs side by side)" 300 "$PY" tools/compare_losses.py \
            "configs/studies/$name.yaml" --workers 6 "work_dir=$root/$name" device=cuda data.num_workers=2 $data
        [ -n "${OUT:-}" ] && [ -f "$root/$name/results.md" ] && cp "$root/$name/results.md" "$OUT/$name.md"
    done
}
if [ "$PART" = bottom_up ]; then
    bottom_up_studies
    echo >> "$REPORT"; echo "Total $(( $(date +%s) - START )) s." >> "$REPORT"
    [ -n "${OUT:-}" ] && cp "$REPORT" "$OUT/" 2>/dev/null
    echo "gpu_check: report in $REPORT"; exit 0
fi

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
    tests/test_inference.py tests/data/test_device_augment.py
# shellcheck disable=SC2086
step "Training throughput, synthetic 192x256: fp32, the four data paths" 75 "$PY" $TRAIN

PROFILE="benchmarks/run_profile.py --config configs/openfield/focal.yaml device=cuda train.epochs=18
         train.val_every_steps=26 $OF"
HAVE_OF=0; [ -f "$OPENFIELD/train.json" ] && HAVE_OF=1
[ $HAVE_OF = 0 ] && echo "gpu_check: no openfield data at $OPENFIELD (set OPENFIELD=dir); its steps are left out" \
    | tee -a "$REPORT"
if [ $HAVE_OF = 1 ]; then
    # shellcheck disable=SC2086
    step "Openfield focal vs MSE study, 6 runs x 1,040 steps on one GPU (cache + device)" 200 "$PY" \
        tools/compare_losses.py configs/studies/openfield_focal_vs_mse.yaml --workers 6 \
        work_dir=/tmp/kpdet_gpu_study device=cuda data.cache=ram data.augment_on=device $OF
    # shellcheck disable=SC2086
    step "One openfield run alone, 234 steps: where the time goes (cache + device)" 50 "$PY" $PROFILE \
        data.cache=ram data.augment_on=device
fi
# shellcheck disable=SC2086
step "Training throughput, synthetic 192x256: AMP bf16, the four data paths" 60 "$PY" $TRAIN train.amp=bf16
if [ $HAVE_OF = 1 ]; then
    # shellcheck disable=SC2086
    step "Training throughput, openfield 160x160 batch 8: fp32, the four data paths" 50 "$PY" \
        benchmarks/train_throughput.py --config configs/openfield/focal.yaml --iters 12 device=cuda $OF
    # shellcheck disable=SC2086
    step "One openfield run alone, 234 steps: where the time goes (old data path)" 60 "$PY" $PROFILE
    # shellcheck disable=SC2086
    step "Training throughput, openfield 160x160 batch 8: AMP bf16, the four data paths" 50 "$PY" \
        benchmarks/train_throughput.py --config configs/openfield/focal.yaml --iters 12 device=cuda \
        train.amp=bf16 $OF
fi
if [ "${GPU_CHECK_ALL:-0}" = 1 ]; then
    step "Loss benchmark (CUDA)" 40 "$PY" benchmarks/losses.py --device cuda --quick
    step "Codec benchmark (CUDA)" 30 "$PY" benchmarks/codec.py --device cuda --quick
    step "Inference latency and throughput (CUDA)" 90 "$PY" benchmarks/inference.py --device cuda --reps 20
fi

echo >> "$REPORT"
echo "Total $(( $(date +%s) - START )) s." >> "$REPORT"
[ -n "${OUT:-}" ] && cp "$REPORT" "$OUT/" 2>/dev/null
echo "gpu_check: report in $REPORT"
