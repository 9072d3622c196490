"""Loss studies: spec (study files, --losses), run (one run), parallel (backends), collect (rows from
run folders), stats (CI, paired tests), report (results.csv/.md) and plots (PNG).

Entry: `kpdet compare` (tools/compare_losses.py) -> kpdet/engine/compare.py (build_study, run_study).
Every run writes only under its folder work_dir/<dataset>/<loss label>/seed<s> (config.yaml,
last.pt, metrics.json, history.jsonl, run_info.json, predictions.npz); the backends (serial,
processes, submitit) send only unfinished runs, and collect reads the rows back from the
folders whatever ran them."""
