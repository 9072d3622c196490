#!/usr/bin/env bash
# Release check (`make release-check`): install the built wheel as a user would, in a new venv in an
# empty folder outside the repository, with the newest dependencies pip resolves (no lock: this is
# what a user gets), then train, test, infer and export there. Usage: release_check.sh PYTHON WHEEL TORCH...
set -euo pipefail
python="$1"; wheel="$(realpath "$2")"; shift 2
base="$(mktemp -d "${TMPDIR:-/tmp}/kpdet-release.XXXXXX")"
trap 'rm -rf "$base"' EXIT
"$python" -m venv "$base/venv"
pip="$base/venv/bin/python -m pip install -q"
$pip "$@"                       # torch as README says (exact pins), then the wheel with its extras
$pip "$wheel[export]"
cd "$base" && mkdir empty && cd empty
kpdet=("$base/venv/bin/kpdet")
"${kpdet[@]}" --help > /dev/null
tiny=(train.epochs=1 train.max_iters_per_epoch=4 train.batch_size=4 data.synthetic.num_train=16
      data.synthetic.num_val=8 data.num_workers=0 eval.vis_images=0 work_dir=run)
"${kpdet[@]}" train synthetic/focal "${tiny[@]}"
"${kpdet[@]}" test run/config.yaml run/last.pt --out metrics.json
image="$(ls data/synthetic/images/val | head -n 1)"
"${kpdet[@]}" infer run/config.yaml run/last.pt "data/synthetic/images/val/$image" --out pred
"${kpdet[@]}" export run/last.pt --out model.onnx
"$base/venv/bin/python" -m pip freeze | grep -E '^(torch|numpy|kpdet|opencv-python-headless)=='
echo "release check passed: $(basename "$wheel") installed, trained, tested, inferred and exported in $PWD"
