#!/usr/bin/env bash
# Reproduces models/jumps-cot: the token-reasoning arm of the latent-vs-token
# study (README, "Latent vs token reasoning"). A non-recurrent transformer with
# exactly the layers and parameters of models/huginn-tasks (d=64, 4 heads,
# 1 prelude / 2 core / 1 coda layers, r fixed at 1: an ordinary 4-layer
# transformer, 231k parameters) trained on jumps-cot: the same training
# problems as the recurrent model (jumps rows of 4-24 cells, the same split
# and stream) answered by writing the frog's path out cell by cell, then y/n.
# block_size 128 (not 64) only so that rows up to 62 cells fit with their
# written path; it adds no parameters (RoPE).
#   bash models/jumps-cot.recipe.sh [OUT_DIR]       (default runs/jumps-cot)
# The recurrent model's schedule: 12,000 steps of 1,024 tokens (here 8
# sequences of 128 tokens, several problems packed per sequence, instead of
# 32 of 32: the written path makes a problem up to 52 tokens long), the same
# learning rate, warmup, cooldown and curriculum over the first 4,000 steps
# (32,000 sequences): the same 12.3M training tokens. ~20 minutes on 2 shared
# cores; its FLOPs: python3 scripts/train_flops.py models/jumps-cot 128.
# One process; deterministic (the losses do not depend on THREADS). The
# shipped checkpoint is this exact run (model.safetensors sha256 924d02a3...);
# a full rerun of this script (THREADS=1, at commit aaeca17, after the
# one-forward refactor; 36 min on 2 cores shared with other jobs) wrote the
# same model.safetensors, sha256 924d02a37433facc3a2cebcaf8585183ea2b93ccfc26b4d33b7e4db3be177d74.
# OMP_WAIT_POLICY=PASSIVE: on a machine shared with other jobs, spinning
# OpenMP threads made a step 30x slower; it changes no result.
# Resume an interrupted run with: build/bin/huginn train --resume OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/jumps-cot}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
build/bin/huginn -t "${THREADS:-2}" train \
  --model-config '{"name":"jumps-cot-d64","n_embd":64,"n_heads":4,"intermediate_size":192,"vocab_size":128,"block_size":128,"n_layers_in_prelude":1,"n_layers_in_recurrent_block":2,"n_layers_in_coda":1,"mean_recurrence":1,"mean_backprop_depth":1}' \
  --data tasks:jumps-cot:4-24,pack,curriculum=32000 --seq-len 128 --batch 8 --steps 12000 --fixed-split 0,1 \
  --lr 3e-3 --warmup 300 --cooldown 3000 --min-lr 3e-4 --log-every 500 --eval-every 2000 --eval-depths 1 \
  --save-every 2000 --seed 1 --out "$out"
# Ship: the model files only (not the optimizer state).
echo "to ship: cp $out/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,generation_config.json,tasks.json,loss.svg,metrics.jsonl} models/jumps-cot/"
