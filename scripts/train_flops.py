#!/usr/bin/env python3
"""Training compute of a huginn.cpp run, from its metrics.jsonl and config.json.

   python3 scripts/train_flops.py MODEL_DIR [SEQ_LEN]

Counts, per optimizer step, the same FLOP model as `huginn eval` (matrix
products of every layer and of the recurrence's adapter, causal attention,
the head) for the forward pass at the step's sampled depth (no_grad + grad
iterations) and twice the forward FLOPs of the part that is backpropagated
(prelude, coda, the graded iterations, the head), summed over the tokens of the
step (a sequence of SEQ_LEN tokens at a time). Prints one JSON object: steps,
tokens, mean iterations, training FLOPs, and the wall time (sum of step_seconds).
"""
import json, sys, os

d_ = sys.argv[1]
T = int(sys.argv[2]) if len(sys.argv) > 2 else 0
c = json.load(open(os.path.join(d_, "config.json")))
d, I, V = c["n_embd"], c["intermediate_size"], c["vocab_size"]
P, K, C = c["n_layers_in_prelude"], c["n_layers_in_recurrent_block"], c["n_layers_in_coda"]
mm = 2 * (d * 3 * d + d * d + d * 2 * I + I * d)


def seq_fwd(layers, iters, T):
    # one sequence of T tokens: `layers` layer applications, `iters` adapter applications, head on every position
    return layers * (T * mm + 4 * d * T * (T + 1) / 2) + iters * T * 2 * (2 * d * d) + 2 * V * d * T


flops = tokens = steps = secs = iters = 0
for line in open(os.path.join(d_, "metrics.jsonl")):
    j = json.loads(line)
    if "no_grad" not in j or "tokens" not in j:
        continue
    ng, g, tok = j["no_grad"], j["grad"], j["tokens"]
    nseq = tok / T
    fwd = seq_fwd(P + C + K * (ng + g), ng + g, T)
    bwd = 2 * seq_fwd(P + C + K * g, g, T)
    flops += nseq * (fwd + bwd)
    tokens += tok
    steps += 1
    secs += j.get("step_seconds", 0)
    iters += ng + g
print(json.dumps({"model": d_, "steps": steps, "tokens": tokens, "mean_iterations": iters / max(steps, 1),
                  "train_flops": flops, "train_pflops": flops / 1e15, "wall_s_sum_of_steps": secs}))
