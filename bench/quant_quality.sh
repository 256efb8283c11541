#!/usr/bin/env bash
# Accuracy of the shipped task model (models/huginn-tasks) held in each weight
# type (`huginn quantize`), at fixed depths and with the KL and latent exits:
# `huginn eval --json` on fresh test problems of the jumps task. Prints one
# Markdown table (accuracy over all difficulties; exits: accuracy (mean
# iterations per token)).
#   bash bench/quant_quality.sh [OUT_DIR]      (N=100 TYPES="f32 q8_0 ..." DIFFS=10,16,24,32,48)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-quant-quality}
n=${N:-100}
types=${TYPES:-"f32 bf16 f16 q8_0 q6_k q5_0 q4_1 q4_0 q5_k_m q4_k_m"}
diffs=${DIFFS:-10,16,24,32,48}
steps=${STEPS:-1,2,4,8,16,32,64}
H="build/bin/huginn -t ${THREADS:-2}"
mkdir -p "$out"
for t in $types; do
  m="$out/huginn-tasks-$t.gguf"
  $H quantize models/huginn-tasks "$m" --type "$t" --quiet > /dev/null
  $H eval -q -m "$m" --task jumps --difficulty $diffs --steps $steps --n "$n" --json > "$out/$t.fixed.json"
  $H eval -q -m "$m" --task jumps --difficulty $diffs --steps 64 --exit kl:1e-6 --n "$n" --json > "$out/$t.kl.json"
  $H eval -q -m "$m" --task jumps --difficulty $diffs --steps 64 --exit latent-diff:0.01 --n "$n" --json > "$out/$t.latent.json"
done
python3 - "$out" $types <<'PY'
import json, sys, os
out, types = sys.argv[1], sys.argv[2:]
first = json.load(open(f"{out}/{types[0]}.fixed.json"))
steps = [r["steps"] for r in first["results"]]
print("| type | file | " + " | ".join(f"r={s}" for s in steps) + " | KL exit | latent exit |")
print("|---" * (len(steps) + 4) + "|")
for t in types:
    f = json.load(open(f"{out}/{t}.fixed.json"))
    k = json.load(open(f"{out}/{t}.kl.json"))["results"][0]
    l = json.load(open(f"{out}/{t}.latent.json"))["results"][0]
    size = os.path.getsize(f"{out}/huginn-tasks-{t}.gguf") / 1024
    cells = [f"{r['accuracy']:.3f}" for r in f["results"]]
    print(f"| {t} | {size:.0f} KiB | " + " | ".join(cells) +
          f" | {k['accuracy']:.3f} ({k['mean_steps']:.1f}) | {l['accuracy']:.3f} ({l['mean_steps']:.1f}) |")
PY
