#!/usr/bin/env bash
# Reproduces models/huginn-tasks: a 231k-parameter recurrent-depth model
# (d=64, 4 heads, 1 prelude / 2 core / 1 coda layers) trained with the paper's
# recipe (Poisson-lognormal depth, mean 8, backprop through the last 4
# iterations) on the jumps task (rows of 4-24 cells), several instances packed
# per sequence, with a curriculum that widens the row lengths over the first
# 128,000 sequences (4,000 steps).
#   bash models/huginn-tasks.recipe.sh [OUT_DIR]       (default runs/huginn-tasks)
# ~25 minutes on 2 cores; the shipped model is this exact run (one process; the
# losses do not depend on THREADS): a full rerun (THREADS=1, at commit aaeca17,
# after the one-forward refactor; 71 min on 2 cores shared with other jobs)
# wrote the same model.safetensors, sha256
# 75b803e0013144ff5768d71522153dfaa761ddf863a25bb4ce85d5803f506b26. RANKS=2 trains data-parallel with one MPI
# rank per core instead, 1.9x faster for a model this small, with the same
# recipe but sums taken in another order (last-digit differences).
# Resume an interrupted run with: build/bin/huginn train --resume OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/huginn-tasks}
run=(build/bin/huginn -t "${THREADS:-2}")
if [ "${RANKS:-1}" -gt 1 ]; then
  run=(mpirun -np "$RANKS" $([ "$(id -u)" = 0 ] && echo --allow-run-as-root) build/bin/huginn -t 1)
fi
"${run[@]}" train \
  --model-config '{"name":"huginn-tasks-d64","n_embd":64,"n_heads":4,"intermediate_size":192,"vocab_size":128,"block_size":64,"n_layers_in_prelude":1,"n_layers_in_recurrent_block":2,"n_layers_in_coda":1,"mean_recurrence":8,"mean_backprop_depth":4}' \
  --data tasks:jumps:4-24,pack,curriculum=128000 --seq-len 32 --batch 32 --steps 12000 \
  --lr 3e-3 --warmup 300 --cooldown 3000 --min-lr 3e-4 --log-every 200 --eval-every 1000 --eval-depths 1,4,8,16 \
  --save-every 1000 --seed 1 --out "$out"
# Ship: the model files only (not the optimizer state).
echo "to ship: cp $out/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,generation_config.json,tasks.json,loss.svg,metrics.jsonl} models/huginn-tasks/"
