#!/usr/bin/env bash
# Sets up, builds, and runs the main job. Until the shipped reasoning model
# exists, that is: create a model with `huginn init`, inspect it, and check the
# engine against the reference fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
H=build/bin/huginn
out=build/demo-model
$H init --config '{"n_embd":512,"n_heads":8,"intermediate_size":1536,"vocab_size":8192,"block_size":1024,"n_layers_in_prelude":2,"n_layers_in_recurrent_block":4,"n_layers_in_coda":2,"mean_recurrence":32}' --seed 1 --out "$out"
$H info "$out" --ctx 1024
echo
$H forward -m "$out" --ids 1,2,3,4,5,6,7,8 --steps 32
echo
echo "== parity with the reference implementation (tests/data/golden) =="
$H golden tests/data/golden/tiny_f32
$H golden tests/data/golden/tiny_bf16_sharded
