#!/usr/bin/env bash
# The evaluation behind the README's and the closing note's tables: fresh test
# problems of the jumps task, inside the trained range (4-24) and beyond it,
# at fixed depths, with the KL exit, and the convergence of the latent state.
#   bash models/huginn-tasks.eval.sh [MODEL_DIR] [OUT_DIR]
# Writes OUT_DIR/{fixed,kl,latent,convergence}.json (each one `huginn eval --json`
# object) and prints them as tables (python3 formats them).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/huginn-tasks}
out=${2:-eval-out}
n=${N:-200}
mkdir -p "$out"
H="build/bin/huginn -t ${THREADS:-2}"
diffs=10,12,16,20,24,32,40,48  # below 10 the test split has fewer than 200 distinct rows
$H eval -q -m "$model" --task jumps --difficulty $diffs --steps 1,2,4,8,16,32,64 --n "$n" --json \
  --plot "$out/accuracy_vs_iterations.svg" > "$out/fixed.json"
$H eval -q -m "$model" --task jumps --difficulty $diffs --steps 64 --exit "kl:${KL:-1e-6}" --n "$n" --json \
  > "$out/kl.json"
$H eval -q -m "$model" --task jumps --difficulty $diffs --steps 64 --exit "latent-diff:${LATENT:-0.01}" --n "$n" \
  --json > "$out/latent.json"
$H eval -q -m "$model" --task jumps --difficulty $diffs --steps 1 --n "$n" --convergence 128 --json \
  > "$out/convergence.json"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
fixed = json.load(open(f"{out}/fixed.json"))
kl = json.load(open(f"{out}/kl.json"))
latent = json.load(open(f"{out}/latent.json"))
conv = json.load(open(f"{out}/convergence.json"))
steps = [r["steps"] for r in fixed["results"]]
print("| n (cells) | " + " | ".join(f"r={s}" for s in steps) +
      " | KL exit: acc (answer r / token r) | latent exit: acc (answer r / token r) | settles at | answer from |")
print("|---" * (len(steps) + 5) + "|")
for f, k, l, c in zip(fixed["by_difficulty"], kl["by_difficulty"], latent["by_difficulty"], conv["convergence"]):
    kr, lr = k["results"][0], l["results"][0]
    cells = [f"{r['accuracy']:.2f}" for r in f["results"]]
    print(f"| {f['difficulty']} | " + " | ".join(cells) +
          f" | {kr['accuracy']:.2f} ({kr['mean_first_token_steps']:.1f} / {kr['mean_steps']:.1f})" +
          f" | {lr['accuracy']:.2f} ({lr['mean_first_token_steps']:.1f} / {lr['mean_steps']:.1f})" +
          f" | {c['mean_settle']:.1f} | {c['mean_answer_settle']:.1f} |")
PY
