#!/usr/bin/env python3
"""The PyTorch CPU baseline of hayate's CPU benchmarks: the same Qwen3-shaped model (random weights, frozen
base, LoRA r = 32 / alpha = 64 on all seven projections of every layer), written in eager PyTorch, on the
same workloads as `hayate_bench train` and `hayate_bench model`:

  train    forward + backward of the GRPO loss on one packed sequence (25% prompt tokens), lm head over the
           completion only, gradients into the LoRA tensors only (hayate_bench train --seq-lens L)
  prefill  batch B prompts of P tokens in one forward (hayate_bench model --batches B --prompt-len P)
  decode   then G decode steps of the batch with a KV cache, greedy-free sampling at T = 1

Prints one JSON document. `bench/cpu-vs-torch.ts` runs it next to hayate's benchmarks in one run.
usage: torch_cpu.py [--shape tiny|qwen3-0.6b] [--threads N] [--seq-lens 512] [--batches 64]
                    [--prompt-len 32] [--gen-len 16] [--dtype float32|bfloat16] [--repeats 2]
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F

SHAPES = {
    "tiny": dict(vocab=512, hidden=64, inter=128, layers=2, heads=4, kv_heads=2, head_dim=16, theta=10000.0),
    "qwen3-0.6b": dict(vocab=151936, hidden=1024, inter=3072, layers=28, heads=16, kv_heads=8, head_dim=128, theta=1e6),
}
RANK, ALPHA = 32, 64.0


class Lora(torch.nn.Module):
    """y = x W^T + (alpha / r) (x A^T) B^T with W frozen."""

    def __init__(self, inp, out, dtype):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(out, inp, dtype=dtype) * (1.0 / math.sqrt(inp)), requires_grad=False)
        self.a = torch.nn.Parameter(torch.randn(RANK, inp) * 0.01)
        self.b = torch.nn.Parameter(torch.randn(out, RANK) * 0.01)  # nonzero, as hayate's bench sets it

    def forward(self, x):
        base = F.linear(x.to(self.w.dtype), self.w).float()
        return base + (ALPHA / RANK) * F.linear(F.linear(x, self.a), self.b)


def rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, theta):  # x: [..., T, hd], pos: [T]
    hd = x.shape[-1]
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = pos[:, None].float() * inv[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def attention(q, k, v, causal):
    """Softmax attention; SDPA where this PyTorch has it (2.0+), else the eager matmul form."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        T, S = s.shape[-2], s.shape[-1]
        s = s.masked_fill(torch.ones(T, S, dtype=torch.bool).triu(S - T + 1), float("-inf"))
    return torch.softmax(s, -1) @ v


class Layer(torch.nn.Module):
    def __init__(self, s, dtype):
        super().__init__()
        D, H, KV, hd, Fi = s["hidden"], s["heads"], s["kv_heads"], s["head_dim"], s["inter"]
        self.s = s
        self.q, self.k, self.v = Lora(D, H * hd, dtype), Lora(D, KV * hd, dtype), Lora(D, KV * hd, dtype)
        self.o = Lora(H * hd, D, dtype)
        self.gate, self.up, self.down = Lora(D, Fi, dtype), Lora(D, Fi, dtype), Lora(Fi, D, dtype)
        ones = lambda n: torch.nn.Parameter(torch.ones(n), requires_grad=False)
        self.n1, self.n2, self.qn, self.kn = ones(D), ones(D), ones(hd), ones(hd)

    def forward(self, x, pos, cache=None):
        s = self.s
        B, T, _ = x.shape
        H, KV, hd = s["heads"], s["kv_heads"], s["head_dim"]
        h = rms(x, self.n1)
        q = rope(rms(self.q(h).view(B, T, H, hd), self.qn).transpose(1, 2), pos, s["theta"])
        k = rope(rms(self.k(h).view(B, T, KV, hd), self.kn).transpose(1, 2), pos, s["theta"])
        v = self.v(h).view(B, T, KV, hd).transpose(1, 2)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        att = attention(q, k, v, causal=T > 1)
        x = x + self.o(att.transpose(1, 2).reshape(B, T, H * hd))
        h = rms(x, self.n2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self, s, dtype):
        super().__init__()
        self.s = s
        self.emb = torch.nn.Parameter(torch.randn(s["vocab"], s["hidden"], dtype=dtype) * 0.02, requires_grad=False)
        self.layers = torch.nn.ModuleList([Layer(s, dtype) for _ in range(s["layers"])])
        self.norm = torch.nn.Parameter(torch.ones(s["hidden"]), requires_grad=False)

    def hidden(self, ids, pos, caches=None):
        x = self.emb[ids].float()
        for i, layer in enumerate(self.layers):
            x = layer(x, pos, None if caches is None else caches[i])
        return rms(x, self.norm)

    def logits(self, h):
        return F.linear(h.to(self.emb.dtype), self.emb).float()  # tied lm head


def train_step(model, L, repeats):
    prompt = L // 4
    ids = torch.randint(0, model.s["vocab"], (1, L))
    pos = torch.arange(L)
    adv = 0.7
    best = math.inf
    for _ in range(repeats + 1):  # the first is warm-up
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        h = model.hidden(ids, pos)[0, prompt - 1 : L - 1]  # positions that predict the completion
        lp = torch.log_softmax(model.logits(h), -1).gather(-1, ids[0, prompt:, None])[:, 0]
        ratio = torch.exp(lp - lp.detach())
        loss = -(ratio * adv).mean()
        loss.backward()
        best = min(best, time.perf_counter() - t0) if _ > 0 else best
    return {"seq_len": L, "tokens": L, "completion_tokens": L - prompt, "seconds": best, "tokens_per_s": L / best}


@torch.no_grad()
def generate(model, B, P, G):
    ids = torch.randint(0, model.s["vocab"], (B, P))
    caches = [dict() for _ in model.layers]
    t0 = time.perf_counter()
    h = model.hidden(ids, torch.arange(P), caches)[:, -1:]
    nxt = torch.multinomial(torch.softmax(model.logits(h)[:, 0], -1), 1)
    t1 = time.perf_counter()
    for step in range(G - 1):
        h = model.hidden(nxt, torch.tensor([P + step]), caches)
        nxt = torch.multinomial(torch.softmax(model.logits(h)[:, 0], -1), 1)
    t2 = time.perf_counter()
    return {"batch": B, "prompt_tokens": B * P, "prefill_seconds": t1 - t0, "prefill_tokens_per_s": B * P / (t1 - t0),
            "decode_steps": G - 1, "decode_seconds": t2 - t1, "decode_tokens_per_s": B * (G - 1) / (t2 - t1)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="qwen3-0.6b", choices=sorted(SHAPES))
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seq-lens", default="512")
    p.add_argument("--batches", default="64")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--gen-len", type=int, default=16)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    s = SHAPES[a.shape]
    dtype = getattr(torch, a.dtype)
    t0 = time.perf_counter()
    model = Model(s, dtype)
    out = {"bench": "torch_cpu", "torch": torch.__version__, "threads": torch.get_num_threads(), "shape": a.shape,
           "base_dtype": a.dtype, "lora_rank": RANK, "init_seconds": time.perf_counter() - t0,
           "train": [train_step(model, int(L), a.repeats) for L in a.seq_lens.split(",") if L],
           "generate": [generate(model, int(B), a.prompt_len, a.gen_len) for B in a.batches.split(",") if B],
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
