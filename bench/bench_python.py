#!/usr/bin/env python3
"""Python generation against the CLI on the standard configuration
(shared/notes/benchmarking.md: d=512, 8 heads, I=1536, vocab 8192, 2/4/2
layers, context 1024, random weights; prompt of 128 tokens, 16 generated,
greedy, r = 1, 4, 32, 2 threads), measured in the same run.

Both sides time the same thing: one generate() call from the prompt to the
16th token (prefill + decode, the CLI's `summary: ... tokens/s`), the model
already loaded; runs alternate CLI / Python and the best of --reps is kept.

    PYTHONPATH=build/python OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/bench_python.py [--reps 3] [--depths 1,4,32]
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

import huginn

HERE = os.path.dirname(os.path.abspath(__file__))
STANDARD = {"n_embd": 512, "n_heads": 8, "intermediate_size": 1536, "vocab_size": 8192, "block_size": 1024,
            "n_layers_in_prelude": 2, "n_layers_in_recurrent_block": 4, "n_layers_in_coda": 2,
            "mean_recurrence": 32}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bin", "huginn"))
    ap.add_argument("--model", help="a model directory (default: the standard configuration, random weights)")
    ap.add_argument("--depths", default="1,4,32")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=16)
    args = ap.parse_args()

    tmp = None
    model = args.model
    if not model:
        tmp = tempfile.TemporaryDirectory(prefix="huginn-bench-py-")
        cfg = os.path.join(tmp.name, "config.json")
        with open(cfg, "w") as f:
            json.dump(STANDARD, f)
        model = os.path.join(tmp.name, "model")
        subprocess.run([args.bin, "init", "--config", cfg, "--seed", "1", "--out", model], check=True,
                       capture_output=True)
    huginn.set_threads(args.threads)
    m = huginn.Model(model)
    rng = random.Random(1)
    ids = [rng.randrange(m.config.vocab_size) for _ in range(args.prompt)]
    ids_s = ",".join(map(str, ids))
    print(f"model: {model if args.model else 'standard d=512 (random weights)'}; prompt {args.prompt} tokens, "
          f"{args.tokens} generated, greedy, {args.threads} threads, best of {args.reps}")
    print(f"{'r':>4} {'CLI tok/s':>10} {'Python tok/s':>13} {'Python/CLI':>11}")
    for r in map(int, args.depths.split(",")):
        cli_best = py_best = 0.0
        for _ in range(args.reps):
            p = subprocess.run([args.bin, "-t", str(args.threads), "generate", "-m", model, "--ids", ids_s,
                                "--steps", str(r), "-n", str(args.tokens), "--no-default-stops", "-q"],
                               capture_output=True, text=True, check=True)
            mt = re.search(r"summary: (\d+) tokens, ([0-9.]+) tokens/s", p.stderr)
            assert mt and int(mt.group(1)) == args.tokens, p.stderr
            cli_best = max(cli_best, float(mt.group(2)))
            t0 = time.perf_counter()
            g = m.generate(ids, steps=r, max_tokens=args.tokens, default_stops=False)
            dt = time.perf_counter() - t0
            assert len(g.tokens) == args.tokens
            py_best = max(py_best, args.tokens / dt)
        print(f"{r:4d} {cli_best:10.2f} {py_best:13.2f} {py_best / cli_best:11.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
