#!/usr/bin/env bash
# The latent-vs-token study behind the README's table: the same fresh jumps
# test problems (200 distinct ones per row length, inside the trained range
# 4-24 and beyond it) solved by
#   (a) models/huginn-tasks, thinking in latent space, answer at once (r = 1..32);
#   (b) models/jumps-cot, a 4-layer transformer of the same parameters writing
#       the frog's path out, decoded greedily;
#   (c) the same model fed soft thoughts along the path (top-k mixture of the
#       next-token embeddings, k = 1, 2, 4, all; and all at temperature 2).
#   bash models/jumps-cot.eval.sh [OUT_DIR]        (default eval-cot)
# Writes OUT_DIR/<arm>.json (each one `huginn eval --json` object, one format
# for every arm), prints the tables (`huginn eval --compare`) and draws
# OUT_DIR/accuracy_vs_compute.svg, then prints the training compute of both
# models (scripts/train_flops.py).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-eval-cot}
n=${N:-200}
mkdir -p "$out"
H="build/bin/huginn -t ${THREADS:-2}"
diffs=10,12,16,20,24,32,40,48  # below 10 the test split has fewer than 200 distinct rows
$H eval -q -m models/huginn-tasks --task jumps --difficulty $diffs --steps 1,4,8,32 --n "$n" --json \
  --label "latent" > "$out/latent.json"
$H eval -q -m models/jumps-cot --task jumps-cot --difficulty $diffs --steps 1 --n "$n" --json \
  --label "CoT greedy" > "$out/cot-greedy.json"
for k in 1 2 4 all; do
  $H eval -q -m models/jumps-cot --task jumps-cot --difficulty $diffs --steps 1 --n "$n" --json \
    --soft-thoughts "k=$k" --label "soft k=$k" > "$out/soft-k$k.json"
done
$H eval -q -m models/jumps-cot --task jumps-cot --difficulty $diffs --steps 1 --n "$n" --json \
  --soft-thoughts "k=all,temp=2" --label "soft k=all,T=2" > "$out/soft-kall-t2.json"
files=$(printf "$out/%s.json," latent cot-greedy soft-k1 soft-k2 soft-k4 soft-kall soft-kall-t2)
$H eval --compare "${files%,}" --plot "$out/accuracy_vs_compute.svg"
echo
echo "training compute (scripts/train_flops.py):"
python3 scripts/train_flops.py models/huginn-tasks 32
python3 scripts/train_flops.py models/jumps-cot 128
