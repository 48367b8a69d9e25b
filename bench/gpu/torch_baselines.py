#!/usr/bin/env python3
"""PyTorch comparison numbers for `hayate_bench kernels --backend cuda` and `hayate_bench train --backend cuda`
(run on the GPU machine, where PyTorch is installed; no Node, no hayate needed). Prints one JSON document on
stdout; every row carries the "op" and "case" of the hayate row it compares with (bench/gpu/summarize.py
puts them side by side).

Cases (the same shapes as the kernel benchmark):
  attention_forward / attention_backward
      torch.nn.functional.scaled_dot_product_attention(is_causal=True), bf16, GQA by expanding K/V to the
      q heads (repeat_interleave, outside the timed region for the forward; the backward times the
      gradient through SDPA only). Variable-length batches are emulated the simple way: every shape here
      has S sequences of the same length L, so the packed batch is exactly a padded [S, hq, L, hd] batch
      with no padding at all; SDPA picks its fastest backend (flash / cuDNN / efficient) as in training
      code. Reported: median ms, TFLOP/s with the same causal FLOP count as hayate_bench
      (forward 4 * hd * hq * S * L(L+1)/2, backward 2.5x that), and which SDPA backend ran.
  sample
      sort-based top-p sampling: softmax, torch.sort(descending), cumsum, mask past top_p, renormalise,
      torch.multinomial; [64, 151936] fp32 logits, top_p 0.9 and 1.0 (the sort still runs; case names as
      hayate's: "T=1, no filter" and "T=1, top_p=0.9").
  linear
      bare torch.matmul x @ w^T (bf16) on the kernel benchmark's qwen3-0.6b projection shapes.
  logprob
      the lm-head log-prob of training on one chunk of 128 rows at V = 151936, D = 1024 (bf16 hidden and
      lm head, fp32 logits): forward = logits, logsumexp, gathered log-prob and entropy; backward =
      autograd of sum(dlogprobs * logprobs) w.r.t. hidden (from the saved logits: no recomputation).
  lora_train
      transformers + PEFT: Qwen3ForCausalLM with the qwen3-0.6b config and random weights (no download;
      Qwen3Config built here), bf16, LoRA r=32, alpha=64 on q,k,v,o,gate,up,down, one sequence of 512 and
      of 2048 tokens: forward, a GRPO-shaped loss on the log-probs of the last 3/4 of the tokens (as
      hayate_bench train: prompt 1/4), backward. Reported: tokens/s of forward+backward, and
      torch.cuda.max_memory_allocated / max_memory_reserved. sdpa attention.

Shapes: --shapes "8x512,2x2048,16x256:16/8/64" (SxL or SxL:hq/hkv/hd; same syntax as hayate_bench).
Timing: CUDA events, median over --repeats samples after warm-up, each sample long enough (~0.5 ms).
"""
import argparse
import json
import math
import sys
import time

DEFAULT_SHAPES = ["8x512", "2x2048", "16x256:16/8/64"]  # bench/native/attention_bench_shape.h default_attention_bench_shapes()
LINEAR_CASES = [("q_proj", 2048, 1024), ("gate_proj", 3072, 1024), ("down_proj", 1024, 3072), ("lm_head", 151936, 1024)]
LINEAR_M = [1, 64, 512, 2048]


def parse_shape(s):
    dims, _, heads = s.partition(":")
    a, x, b = dims.partition("x")
    if not x or not a.isdigit() or not b.isdigit() or int(a) <= 0 or int(b) <= 0:
        raise ValueError(f"bad attention shape '{s}': expected SxL or SxL:hq/hkv/hd")
    hq, hkv, hd = 16, 8, 128
    if heads:
        parts = heads.split("/")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"bad attention shape '{s}': expected SxL:hq/hkv/hd")
        hq, hkv, hd = map(int, parts)
        if hq % hkv:
            raise ValueError(f"bad attention shape '{s}': hq must be a multiple of hkv")
    return {"seqs": int(a), "seqlen": int(b), "hq": hq, "hkv": hkv, "hd": hd}


def median_ms(torch, fn, repeats):
    fn()
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def sample(inner):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / inner

    once = sample(1)
    inner = int(min(200, max(1, 0.5 / max(once, 1e-4))))
    ts = sorted(sample(inner) for _ in range(max(repeats, 1)))
    return ts[len(ts) // 2]


def sdpa_backend_name(torch, F, q, k, v):
    """Which SDPA implementation PyTorch dispatches to for these inputs (best effort)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except Exception:
        return "auto"
    for name, be in (("flash", "FLASH_ATTENTION"), ("cudnn", "CUDNN_ATTENTION"), ("efficient", "EFFICIENT_ATTENTION")):
        if not hasattr(SDPBackend, be):
            continue
        try:
            with sdpa_kernel(getattr(SDPBackend, be)):
                F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return name
        except Exception:
            continue
    return "math"


def attention_cases(torch, shapes, repeats, results):
    F = torch.nn.functional
    for s in shapes:
        a = parse_shape(s)
        S, L, hq, hkv, hd = a["seqs"], a["seqlen"], a["hq"], a["hkv"], a["hd"]
        g = torch.Generator(device="cuda").manual_seed(0)
        q = torch.randn(S, hq, L, hd, device="cuda", dtype=torch.bfloat16, generator=g)
        k = torch.randn(S, hkv, L, hd, device="cuda", dtype=torch.bfloat16, generator=g)
        v = torch.randn(S, hkv, L, hd, device="cuda", dtype=torch.bfloat16, generator=g)
        dout = torch.randn(S, hq, L, hd, device="cuda", dtype=torch.bfloat16, generator=g)
        ke = k.repeat_interleave(hq // hkv, dim=1).contiguous()
        ve = v.repeat_interleave(hq // hkv, dim=1).contiguous()
        fwd_flops = 4.0 * hd * hq * S * (L * (L + 1) / 2)
        impl = sdpa_backend_name(torch, F, q, ke, ve)
        shape = f"{S} seqs x {L}, q heads {hq}, kv heads {hkv}, head_dim {hd}"
        with torch.no_grad():
            ms = median_ms(torch, lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=True), repeats)
        results.append({"op": "attention_forward", "case": s, "shape": shape, "impl": f"torch sdpa ({impl})",
                        "varlen": "equal lengths: packed == padded [S, hq, L, hd], no padding",
                        "median_ms": ms, "metric": "TFLOP/s", "value": fwd_flops / (ms * 1e-3) / 1e12})
        qg, kg, vg = q.clone().requires_grad_(), ke.clone().requires_grad_(), ve.clone().requires_grad_()
        out = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True)

        def backward():
            torch.autograd.grad(out, (qg, kg, vg), dout, retain_graph=True)

        ms = median_ms(torch, backward, repeats)
        results.append({"op": "attention_backward", "case": s, "shape": shape, "impl": f"torch sdpa ({impl})",
                        "varlen": "equal lengths: packed == padded [S, hq, L, hd], no padding; GQA via expanded K/V",
                        "median_ms": ms, "metric": "TFLOP/s", "value": 2.5 * fwd_flops / (ms * 1e-3) / 1e12})

        def fwd_bwd():
            o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
            torch.autograd.grad(o, (qg, kg, vg), dout)

        ms = median_ms(torch, fwd_bwd, repeats)
        results.append({"op": "attention_forward_backward", "case": s, "shape": shape, "impl": f"torch sdpa ({impl})",
                        "median_ms": ms, "metric": "TFLOP/s", "value": 3.5 * fwd_flops / (ms * 1e-3) / 1e12})
        del q, k, v, ke, ve, dout, qg, kg, vg, out
        torch.cuda.empty_cache()


def sampling_cases(torch, repeats, results):
    B, V = 64, 151936
    g = torch.Generator(device="cuda").manual_seed(1)
    z = torch.randn(B, V, device="cuda", dtype=torch.float32, generator=g) * 3.0
    for top_p, label in ((1.0, "T=1, no filter"), (0.9, "T=1, top_p=0.9")):
        def sample():
            probs = torch.softmax(z, dim=-1)
            sp, si = torch.sort(probs, dim=-1, descending=True)
            cum = torch.cumsum(sp, dim=-1)
            sp = sp.masked_fill(cum - sp > top_p, 0.0)
            choice = torch.multinomial(sp / sp.sum(dim=-1, keepdim=True), 1, generator=g)
            return torch.gather(si, -1, choice).cpu()  # ids to the host, as hayate's sample() returns them

        # host wall time: the sampler ends in a device -> host copy, like the backend's sample()
        sample()
        torch.cuda.synchronize()
        ts = []
        for _ in range(max(repeats, 3)):
            t0 = time.perf_counter()
            sample()
            torch.cuda.synchronize()
            ts.append((time.perf_counter() - t0) * 1e3)
        ts.sort()
        ms = ts[len(ts) // 2]
        results.append({"op": "sample", "case": label, "shape": f"[{B},{V}]",
                        "impl": "torch softmax + sort + cumsum + multinomial (ids to host)", "median_ms": ms,
                        "metric": "GB/s", "value": 4.0 * B * V / (ms * 1e-3) / 1e9})


def linear_cases(torch, repeats, results):
    for name, N, K in LINEAR_CASES:
        w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.02
        for M in LINEAR_M:
            if N > 100000 and M > 64:
                continue
            x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            wt = w.t()
            ms = median_ms(torch, lambda: torch.matmul(x, wt), repeats)
            results.append({"op": "linear", "case": f"{name} M={M}", "shape": f"[{M},{K}]x[{N},{K}]^T",
                            "impl": "torch.matmul (bf16)", "median_ms": ms, "metric": "TFLOP/s",
                            "value": 2.0 * M * N * K / (ms * 1e-3) / 1e12})


def logprob_cases(torch, repeats, results):
    V, D = 151936, 1024
    g = torch.Generator(device="cuda").manual_seed(2)
    lm = (torch.randn(V, D, device="cuda", generator=g) * 0.02).to(torch.bfloat16)
    for m in (128,):
        h = torch.randn(m, D, device="cuda", generator=g).to(torch.bfloat16)
        tg = torch.randint(0, V, (m,), device="cuda", generator=g)
        dlp = torch.randn(m, device="cuda", generator=g)

        def forward(hidden):
            z = (hidden @ lm.t()).float()
            lse = torch.logsumexp(z, dim=-1)
            lp = z.gather(-1, tg[:, None])[:, 0] - lse
            ent = lse - (torch.softmax(z, dim=-1) * z).sum(-1)
            return lp, ent

        with torch.no_grad():
            ms = median_ms(torch, lambda: forward(h), repeats)
        shape = f"hidden [{m},{D}] x lm_head [{V},{D}]^T"
        results.append({"op": "logprob", "case": f"forward m={m}", "shape": shape,
                        "impl": "torch: bf16 matmul, fp32 logits, logsumexp, gather, entropy", "median_ms": ms,
                        "metric": "TFLOP/s", "value": 2.0 * m * V * D / (ms * 1e-3) / 1e12})
        hg = h.clone().requires_grad_()
        lp, _ = forward(hg)
        ms = median_ms(torch, lambda: torch.autograd.grad(lp, hg, dlp, retain_graph=True), repeats)
        results.append({"op": "logprob", "case": f"backward m={m}", "shape": shape,
                        "impl": "torch autograd from the saved fp32 logits (no recomputation)", "median_ms": ms,
                        "metric": "TFLOP/s", "value": 4.0 * m * V * D / (ms * 1e-3) / 1e12})
        del hg, lp
    del lm
    torch.cuda.empty_cache()


def qwen3_06b_config(transformers):
    """The qwen3-0.6b shape of bench/native/shapes.h, built by hand (no download)."""
    return transformers.Qwen3Config(
        vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=False,
        torch_dtype="bfloat16")


def lora_train_cases(torch, repeats, results, seq_lens):
    try:
        import transformers
        import peft
    except ImportError as e:
        results.append({"op": "lora_train", "case": "all", "error": f"transformers/peft not installed ({e})"})
        return
    cfg = qwen3_06b_config(transformers)
    try:
        cfg._attn_implementation = "sdpa"
    except Exception:
        pass
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    lcfg = peft.LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, bias="none",
                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = peft.get_peft_model(model, lcfg)
    for n, p in model.named_parameters():  # B = 0 at init would make the LoRA path trivially cheap; as hayate_bench
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.01)
    model.train()
    g = torch.Generator(device="cuda").manual_seed(3)
    for L in seq_lens:
        ids = torch.randint(0, cfg.vocab_size, (1, L), device="cuda", generator=g)
        p0 = max(1, L // 4)
        adv = 1.0

        def step():
            logits = model(input_ids=ids).logits[:, p0 - 1:-1].float()  # the completion's predictions
            lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, p0:, None])[..., 0]
            loss = -(torch.exp(lp - lp.detach()) * adv).mean()  # GRPO at ratio 1, one sequence
            loss.backward()
            model.zero_grad(set_to_none=True)

        step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        ts = []
        for _ in range(max(3, min(repeats, 10))):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            ts.append(start.elapsed_time(end))
        ts.sort()
        ms = ts[len(ts) // 2]
        results.append({"op": "lora_train", "case": f"seq_len={L}", "shape": f"1 x {L} tokens, qwen3-0.6b config",
                        "impl": f"transformers {transformers.__version__} + peft {peft.__version__}, bf16, sdpa, LoRA r=32 alpha=64 all projections",
                        "median_ms": ms, "metric": "tokens/s", "value": L / (ms * 1e-3), "tokens_per_s": L / (ms * 1e-3),
                        "peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
                        "peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20})
    del model
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default=",".join(DEFAULT_SHAPES),
                    help="attention shapes, comma-separated SxL or SxL:hq/hkv/hd (default: %(default)s)")
    ap.add_argument("--ops", default="attention,sample,linear,logprob,lora_train",
                    help="subset of attention,sample,linear,logprob,lora_train (default: all)")
    ap.add_argument("--seq-lens", default="512,2048", help="lora_train sequence lengths (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    shapes = [x for x in args.shapes.split(",") if x]
    for s in shapes:
        parse_shape(s)
    try:
        import torch
    except ImportError:
        print(json.dumps({"bench": "torch_baselines", "error": "PyTorch is not installed"}))
        return 2
    if not torch.cuda.is_available():
        print(json.dumps({"bench": "torch_baselines", "error": "no CUDA device visible to PyTorch"}))
        return 2
    results = []
    ops = set(args.ops.split(","))
    families = [("attention", lambda: attention_cases(torch, shapes, args.repeats, results)),
                ("sample", lambda: sampling_cases(torch, args.repeats, results)),
                ("linear", lambda: linear_cases(torch, args.repeats, results)),
                ("logprob", lambda: logprob_cases(torch, args.repeats, results)),
                ("lora_train", lambda: lora_train_cases(torch, args.repeats, results,
                                                        [int(x) for x in args.seq_lens.split(",") if x]))]
    for name, run in families:  # one failing family (an API change, out of memory) leaves the others' figures
        if name not in ops:
            continue
        try:
            run()
        except Exception as e:  # noqa: BLE001
            results.append({"op": name, "case": "all", "error": f"{type(e).__name__}: {e}"})
            print(f"torch_baselines: {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            torch.cuda.empty_cache()
    doc = {"bench": "torch_baselines", "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "results": results}
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
