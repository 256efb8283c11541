#!/bin/bash
# CLI-level training checks, registered by tests/mpi.cmake.
#   train_cli.sh mpi    HUGINN WORKDIR: mpirun -np 2 matches one process on the same global batch
#   train_cli.sh resume HUGINN WORKDIR: N steps straight == N/2, --resume, N/2 (identical losses and weights,
#                                       also when the resumed half runs on another thread count)
set -euo pipefail
mode=$1 bin=$2 work=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work"
cat > model.json <<'JSON'
{"n_embd": 32, "n_heads": 2, "intermediate_size": 64, "vocab_size": 16, "block_size": 64,
 "n_layers_in_prelude": 1, "n_layers_in_recurrent_block": 2, "n_layers_in_coda": 1,
 "mean_recurrence": 4, "mean_backprop_depth": 2}
JSON
common=(--model-config model.json --data synthetic:reverse,len=3 --steps 6 --batch 8 --seq-len 16
        --eval-every 3 --eval-batches 1 --log-every 1 --seed 3 --warmup 2 --schedule cosine)
losses() { python3 -c "
import json,sys
for l in open(sys.argv[1]):
    j=json.loads(l)
    if 'loss' in j: print(j['step'], repr(j['loss']))
    if 'val_loss' in j: print(j['step'], 'val', ' '.join(repr(v) for k,v in sorted(j['val_loss'].items())))
" "$1"; }
case $mode in
mpi)
  "$bin" -t 1 train "${common[@]}" --out one
  mpirun --allow-run-as-root --oversubscribe -np 2 "$bin" -t 1 train "${common[@]}" --out two
  test -f two/model.safetensors
  test ! -e two.tmp.* 2>/dev/null || true
  python3 - one/metrics.jsonl two/metrics.jsonl <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and len(a) == 8, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    assert x['step'] == y['step']
    if 'loss' in x:
        assert (x['no_grad'], x['grad']) == (y['no_grad'], y['grad'])
        worst = max(worst, abs(x['loss'] - y['loss']))
    else:
        for k in x['val_loss']:
            worst = max(worst, abs(x['val_loss'][k] - y['val_loss'][k]))
print('max |loss(1 rank) - loss(2 ranks)| =', worst)
assert worst < 2e-5, worst
PY
  ;;
resume)
  "$bin" -t 1 train "${common[@]}" --out straight
  "$bin" -t 1 train "${common[@]}" --out split --stop-at 3
  "$bin" -t 2 train --resume split   # another thread count: still bit-exact
  diff <(losses straight/metrics.jsonl) <(losses split/metrics.jsonl)
  cmp straight/model.safetensors split/model.safetensors
  cmp straight/optimizer.safetensors split/optimizer.safetensors
  # A resumed run refuses options that would change it; a fresh run refuses an existing checkpoint.
  if "$bin" train --resume split --lr 1 2>/dev/null; then echo "resume accepted --lr"; exit 1; fi
  if "$bin" train "${common[@]}" --out split 2>/dev/null; then echo "overwrote a checkpoint"; exit 1; fi
  echo "resume is bit-exact"
  ;;
*) echo "unknown mode $mode"; exit 2 ;;
esac
