#!/usr/bin/python3
"""PyTorch baseline for bench_train: the same recurrent-depth model (sandwich
blocks, RMSNorm in float32, fused Wqkv + qk_bias before interleaved RoPE,
SwiGLU, adapter over [state, embedding], tied head, ln_f used twice) and the
same step (n no-grad iterations, k with gradient, cross-entropy, AdamW with the
reference's parameter groups), timed per optimizer step.

Configured fairly (the same conditions as bench_train): the script
re-executes itself with OPENBLAS_NUM_THREADS=1, OMP_WAIT_POLICY=PASSIVE and the
glibc malloc thresholds, and calls torch.set_num_threads(threads).

    /usr/bin/python3 bench/torch_train.py --config all --batch 8 --seq 128 --split 4,4 --steps 3 -t 2
"""
import argparse
import math
import os
import sys
import time

FAIR_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "68719476736",
}
if any(os.environ.get(k) != v for k, v in FAIR_ENV.items()):
    env = dict(os.environ, **FAIR_ENV)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def rms(x, w, eps=1e-6):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)) * w


class Block(torch.nn.Module):
    def __init__(self, d, H, I):
        super().__init__()
        self.d, self.H, self.hd, self.I = d, H, d // H, I
        p = torch.nn.Parameter
        self.norm_1 = p(torch.ones(d))
        self.qk_bias = p(torch.zeros(2, 1, H, d // H))
        self.Wqkv = p(torch.randn(3 * d, d) * 0.02)
        self.proj = p(torch.randn(d, d) * 0.02)
        self.norm_2 = p(torch.ones(d))
        self.fc = p(torch.randn(2 * I, d) * 0.02)
        self.mproj = p(torch.randn(d, I) * 0.02)
        self.norm_3 = p(torch.ones(d))
        self.norm_4 = p(torch.ones(d))

    def forward(self, x, cos, sin, mask):
        B, T, d = x.shape
        H, hd = self.H, self.hd
        qkv = F.linear(rms(x, self.norm_1), self.Wqkv)
        q, k, v = qkv.split(d, dim=-1)
        q = q.view(B, T, H, hd) + self.qk_bias[0]
        k = k.view(B, T, H, hd) + self.qk_bias[1]
        v = v.view(B, T, H, hd)

        def rope(t):  # adjacent pairs (2i, 2i+1)
            a, b = t[..., 0::2], t[..., 1::2]
            return torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2)

        q, k = rope(q).transpose(1, 2), rope(k).transpose(1, 2)
        v = v.transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, d)
        x = rms(F.linear(a, self.proj) + x, self.norm_2)
        h = F.linear(rms(x, self.norm_3), self.fc)
        g, u = h.split(self.I, dim=-1)
        return rms(F.linear(F.silu(g) * u, self.mproj) + x, self.norm_4)


class Model(torch.nn.Module):
    def __init__(self, d, H, I, V, P=2, R=4, C=2):
        super().__init__()
        self.d = d
        self.wte = torch.nn.Parameter(torch.randn(V, d) * 0.02)
        self.prelude = torch.nn.ModuleList(Block(d, H, I) for _ in range(P))
        self.adapter = torch.nn.Parameter(torch.randn(d, 2 * d) * 0.02)
        self.core = torch.nn.ModuleList(Block(d, H, I) for _ in range(R))
        self.coda = torch.nn.ModuleList(Block(d, H, I) for _ in range(C))
        self.ln_f = torch.nn.Parameter(torch.ones(d))

    def forward(self, ids, labels, n, k, cos, sin, mask):
        e = F.embedding(ids, self.wte) * math.sqrt(self.d)
        for b in self.prelude:
            e = b(e, cos, sin, mask)
        s = torch.randn_like(e) * math.sqrt(2 / (5 * self.d)) * math.sqrt(self.d)

        def it(s):
            s = F.linear(torch.cat([s, e], -1), self.adapter)
            for b in self.core:
                s = b(s, cos, sin, mask)
            return s

        with torch.no_grad():
            for _ in range(n):
                s = it(s)
        s = s.detach()
        for _ in range(k):
            s = it(s)
        x = rms(s, self.ln_f)
        for b in self.coda:
            x = b(x, cos, sin, mask)
        logits = F.linear(rms(x, self.ln_f), self.wte)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="all")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--split", default="4,4")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("-t", "--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    n, k = (int(x) for x in a.split.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for d in (256, 512):
        if a.config not in ("all", f"d{d}"):
            continue
        H, I, V, T, B = d // 64, 3 * d, 8192, a.seq, a.batch
        m = Model(d, H, I, V)
        decay = [p for nme, p in m.named_parameters() if p.dim() >= 2 and "qk_bias" not in nme]
        no_decay = [p for nme, p in m.named_parameters() if not (p.dim() >= 2 and "qk_bias" not in nme)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
        hd = d // H
        inv = 1.0 / (50000.0 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.arange(T).float()[:, None] * inv[None, :]
        cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
        mask = torch.full((T, T), float("-inf")).triu(1)
        ids = torch.randint(0, V, (B, T))
        labels = torch.randint(0, V, (B, T))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = m(ids, labels, n, k, cos, sin, mask)
            loss.backward()
            opt.step()
            return loss.item()

        step()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            loss = step()
        sec = (time.perf_counter() - t0) / a.steps
        cpu = (time.process_time() - c0) / a.steps
        nparam = sum(p.numel() for p in m.parameters())
        print(f"d={d} params={nparam / 1e6:.1f}M batch={B}x{T} split={n}+{k}: {sec:.3f} s/step, "
              f"{B * T / sec:.0f} tokens/s, {cpu:.3f} CPU s/step, loss {loss:.3f}", flush=True)


if __name__ == "__main__":
    main()
