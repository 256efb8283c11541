#!/usr/bin/env bash
# The non-recurrent baseline for models/huginn-tasks: the same 231k parameters
# and layers, the same data, steps and schedule, but always exactly one
# iteration (r fixed at 1, --fixed-split 0,1): an ordinary 4-layer transformer.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/baseline-r1}
build/bin/huginn -t "${THREADS:-2}" train \
  --model-config '{"name":"baseline-r1-d64","n_embd":64,"n_heads":4,"intermediate_size":192,"vocab_size":128,"block_size":64,"n_layers_in_prelude":1,"n_layers_in_recurrent_block":2,"n_layers_in_coda":1,"mean_recurrence":1,"mean_backprop_depth":1}' \
  --data tasks:jumps:4-24,pack,curriculum=128000 --seq-len 32 --batch 32 --steps 12000 --fixed-split 0,1 \
  --lr 3e-3 --warmup 300 --cooldown 3000 --min-lr 3e-4 --log-every 500 --eval-every 2000 --eval-depths 1 \
  --save-every 2000 --seed 1 --out "$out"
