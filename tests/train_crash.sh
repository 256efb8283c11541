#!/bin/bash
# Crash safety of training checkpoints (registered by tests/crash.cmake):
#   train_crash.sh HUGINN WORKDIR [TRIALS]
# A straight run of N steps saving after every step is the reference. Then,
# TRIALS times, the same run is killed with SIGKILL at a random moment (most
# of its time is spent saving), and `--resume` must continue from the last
# complete checkpoint to exactly the reference's losses, weights and optimizer
# state; with no complete checkpoint yet, --resume must fail with one clean
# error line.
set -euo pipefail
bin=$1 work=$2 trials=${3:-24}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
cat > model.json <<'JSON'
{"n_embd": 16, "n_heads": 2, "intermediate_size": 32, "vocab_size": 16, "block_size": 32,
 "n_layers_in_prelude": 1, "n_layers_in_recurrent_block": 1, "n_layers_in_coda": 1,
 "mean_recurrence": 2, "mean_backprop_depth": 1}
JSON
steps=40
common=(--model-config model.json --data synthetic:reverse,len=3 --steps $steps --batch 4 --seq-len 16
        --eval-every 0 --eval-batches 1 --log-every 1 --seed 5 --warmup 2 --save-every 1)
losses() { python3 -c "
import json,sys
for l in open(sys.argv[1]):
    j=json.loads(l)
    if 'loss' in j: print(j['step'], repr(j['loss']))
" "$1"; }
t0=$(date +%s%N)
"$bin" -t 1 train "${common[@]}" --out ref >/dev/null
t1=$(date +%s%N)
run_ms=$(( (t1 - t0) / 1000000 ))
echo "reference run: $steps steps, one save per step, ${run_ms} ms"
resumed=0 fresh=0 done_before=0
for i in $(seq 1 "$trials"); do
  ck=ck$i
  # A random moment within the run. Wall-clock delays alone do not land
  # mid-run on every machine (a fast one finishes 40 steps before most of
  # them), so the kill is tied to progress: wait until the checkpoint on disk
  # reaches a random target step, then kill after a random sub-step delay
  # (most of a step is spent saving, so this lands inside saves too). Target 0
  # kills within the first milliseconds, usually before any checkpoint.
  read -r target delay < <(python3 -c "import random; random.seed($i); \
t = 0 if $i % 6 == 1 else random.randint(1, $steps - 10); print(t, f'{random.uniform(0, 0.012):.4f}')")
  "$bin" -t 1 train "${common[@]}" --out $ck >/dev/null 2>&1 &
  pid=$!
  while [ "$target" -gt 0 ] && kill -0 $pid 2>/dev/null; do
    st=$(cat $ck/trainer_state.json 2>/dev/null || true)
    [[ $st =~ \"step\":\ *([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge "$target" ] && break
    sleep 0.001
  done
  sleep "$delay"
  kill -KILL $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  if [ ! -e $ck/trainer_state.json ]; then
    # Killed before the first checkpoint was complete: resume refuses, cleanly.
    set +e
    err=$("$bin" -t 1 train --resume $ck 2>&1 >/dev/null); rc=$?
    set -e
    [ $rc = 1 ] || { echo "trial $i: resume without a checkpoint exited $rc"; exit 1; }
    [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && [[ $err == error:* ]] || { echo "trial $i: not one error line: $err"; exit 1; }
    fresh=$((fresh + 1))
    continue
  fi
  at=$(python3 -c "import json; print(json.load(open('$ck/trainer_state.json'))['step'])")
  if [ "$at" = $steps ]; then done_before=$((done_before + 1)); else resumed=$((resumed + 1)); fi
  "$bin" -t 1 train --resume $ck >/dev/null
  cmp ref/model.safetensors $ck/model.safetensors || { echo "trial $i (killed at step $at): weights differ"; exit 1; }
  cmp ref/optimizer.safetensors $ck/optimizer.safetensors || { echo "trial $i (killed at step $at): optimizer differs"; exit 1; }
  diff <(losses ref/metrics.jsonl) <(losses $ck/metrics.jsonl) >/dev/null ||
    { echo "trial $i (killed at step $at): losses differ"; exit 1; }
  echo "trial $i: killed ${delay}s after step $target was on disk, last complete checkpoint at step $at, resumed bit-exactly"
done
echo "$trials trials: $resumed resumed mid-run, $fresh killed before the first checkpoint, $done_before after the last"
[ $resumed -ge $((trials / 2)) ] || { echo "too few kills landed mid-run"; exit 1; }
echo "checkpoints are crash-safe"
