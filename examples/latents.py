#!/usr/bin/env python3
"""Watch the shipped model think: trace one hard `jumps` problem, project the
latent trajectory of the last prompt position on its first two principal
components, and show how far each iteration's state is from the final one.

    source scripts/python-env.sh; python3 examples/latents.py [--steps 48] [--out latents.png]

Plots with matplotlib when it is installed (Debian: python3-matplotlib), else
prints the numbers."""
import argparse
import os
import sys

import numpy as np

import huginn

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.path.join(HERE, "..", "models", "huginn-tasks"))
    ap.add_argument("--prompt", default="323122331233133323333122222223333122=", help="a jumps row (36 cells)")
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--out", default="latents.png", help="the plot (with matplotlib)")
    args = ap.parse_args()

    m = huginn.Model(args.model)
    ids = m.tokenizer.encode(args.prompt)
    t = m.trace(ids, steps=args.steps)
    states = t.states[:, -1, :]  # [iterations, d]: the last prompt position (it predicts the answer)

    # PCA of the trajectory (centred, SVD).
    centred = states - states.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    pcs = centred @ vt[:2].T
    explained = sv[:2] ** 2 / np.sum(sv**2)
    dist = np.linalg.norm(states - states[-1], axis=1) / np.linalg.norm(states[-1])
    probs = np.exp(t.logits[:, 0, :] - t.logits[:, 0, :].max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    answer = probs.argmax(axis=1)
    a = t.analyze()

    print(f"{args.prompt} ({len(ids)} tokens), {args.steps} iterations: {a['summary']}")
    print(f"PCA: the first two components hold {100 * explained[0]:.0f}% and {100 * explained[1]:.0f}% of the variance")
    print(f"{'iter':>4} {'PC1':>9} {'PC2':>9} {'dist to final':>14} {'kl':>10}  answer")
    for k in range(args.steps):
        tok = m.tokenizer.decode([int(answer[k])])
        print(f"{k + 1:4d} {pcs[k, 0]:9.3f} {pcs[k, 1]:9.3f} {dist[k]:14.3e} {t.exit_values['kl'][k]:10.2e}  "
              f"{tok} {probs[k, answer[k]]:.3f}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: apt-get install python3-matplotlib for the plot)")
        return 0
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax1.plot(pcs[:, 0], pcs[:, 1], "-o", ms=3, lw=1)
    ax1.plot(pcs[0, 0], pcs[0, 1], "o", color="#2f855a", ms=8, label="first")
    ax1.plot(pcs[-1, 0], pcs[-1, 1], "o", color="#c53030", ms=8, label="last")
    for k in range(0, args.steps, max(1, args.steps // 12)):
        ax1.annotate(str(k + 1), (pcs[k, 0], pcs[k, 1]), fontsize=7)
    ax1.set_xlabel(f"PC1 ({100 * explained[0]:.0f}%)")
    ax1.set_ylabel(f"PC2 ({100 * explained[1]:.0f}%)")
    ax1.set_title("latent trajectory, last prompt position")
    ax1.legend()
    ax2.semilogy(np.arange(1, args.steps), dist[:-1])  # (the last state is the final one: distance 0)
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("||s_k - s_final|| / ||s_final||")
    ax2.set_title(a["behaviour"])
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
