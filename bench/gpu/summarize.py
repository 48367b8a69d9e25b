#!/usr/bin/env python3
"""Writes summary.md for a bench/gpu/validate.sh output directory (standard library only).

usage: bench/gpu/summarize.py OUT_DIR

Reads what validate.sh left there: steps.tsv (every step's exit code and seconds), machine.txt,
nvidia-smi-query.csv, op_check-<family>.out/.err, train-qwen3-0.6b-cuda.json, kernels-cuda.json,
torch-baselines.json, native_tests.out. Writes OUT_DIR/summary.md: the device, each step's result,
pass/fail per op-check family, the training and kernel figures next to PyTorch's on the same device (rows
matched on op and case; the LoRA training step on its sequence length), and the list of raw files.
"""
import csv
import json
import os
import re
import sys


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def load_json(path):
    """(document, problem): the parsed JSON, or None and why not."""
    if not os.path.exists(path):
        return None, "not written"
    text = read(path)
    if not text.strip():
        return None, "empty"
    try:
        return json.loads(text), None
    except ValueError as e:
        return None, f"not valid JSON ({e}); the process probably died mid-output"


def fmt(v, digits=3):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        if v != v:  # NaN
            return "NaN"
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 1:
            return f"{v:.{digits}g}" if a < 100 else f"{v:.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def step_result(rc):
    if rc == "dry-run":
        return "not run (dry run)"
    if rc == "skipped":
        return "SKIPPED (time budget spent)"
    try:
        code = int(rc)
    except ValueError:
        return rc
    if code == 0:
        return "pass"
    if code == 124:
        return "TIMED OUT"
    if code == 137:
        return "KILLED (timed out, ignored SIGTERM)"
    if code > 128:
        return f"CRASHED (signal {code - 128})"
    return f"FAIL (exit {code})"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    steps = []
    with open(os.path.join(d, "steps.tsv"), encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            steps.append(row)
    machine = dict(
        line.split(": ", 1) for line in read(os.path.join(d, "machine.txt")).splitlines() if ": " in line)
    dry = machine.get("dry_run") == "1"

    train, train_err = load_json(os.path.join(d, "train-qwen3-0.6b-cuda.json"))
    kernels, kernels_err = load_json(os.path.join(d, "kernels-cuda.json"))
    torch_doc, torch_err = load_json(os.path.join(d, "torch-baselines.json"))

    device = None
    q = read(os.path.join(d, "nvidia-smi-query.csv")).strip().splitlines()
    if len(q) >= 2 and "," in q[1]:
        device = q[1].split(",")[0].strip()
    if not device and kernels and kernels.get("results"):
        device = kernels["results"][0].get("device")
    if not device and torch_doc and torch_doc.get("device"):
        device = torch_doc["device"]
    if not device:
        device = "none (dry run)" if dry else "unknown (nvidia-smi failed)"

    md = [f"# GPU validation: {device}", ""]
    if dry:
        md += ["**Dry run**: built with nvcc, no GPU step ran. The commands below are what a real run executes.", ""]
    md += [f"- date: {machine.get('date', '?')}, commit `{machine.get('commit', '?')}`",
           f"- host: {machine.get('host', '?')} ({machine.get('cores', '?')} cores)",
           f"- nvcc: {machine.get('nvcc', '?')}; cmake {machine.get('cmake', '?')}"]
    if q and len(q) >= 2:
        md.append(f"- nvidia-smi: `{q[1].strip()}` ({q[0].strip()})")
    total = sum(int(s["seconds"]) for s in steps if s["seconds"].isdigit())
    md += [f"- steps took {total} s in all", ""]

    # ---- steps ----
    md += ["## Steps (most important first)", ""]
    md += table(["step", "result", "seconds", "command"],
                [[s["name"], step_result(s["rc"]), s["seconds"], f"`{s['command']}`"] for s in steps])
    md.append("")

    # ---- op checks ----
    md += ["## Op checks (CUDA vs CPU), one process per family", ""]
    rows, variants = [], []
    for s in steps:
        if s["kind"] != "op_check":
            continue
        fam = s["name"].split("-", 1)[1]
        out = read(os.path.join(d, s["name"] + ".out"))
        err = read(os.path.join(d, s["name"] + ".err"))
        m = re.search(r"(\d+) passed, (\d+) failed", out)
        counts = f"{m.group(1)} passed, {m.group(2)} failed" if m else "–"
        fails = re.findall(r"^\[ FAIL \] (\S+)", err, re.M)
        if s["rc"] not in ("0", "dry-run", "skipped") and not fails:
            last = re.findall(r"^\[ RUN  \] (\S+)", err, re.M)
            if last:
                fails = [last[-1] + " (running when it stopped)"]
        rows.append([fam, step_result(s["rc"]), counts, ", ".join(fails[:8]) + (" …" if len(fails) > 8 else ""), s["seconds"]])
        # what the op checks print about kernel variants (tests/native/test_cuda_vs_cpu.cpp): the per-family
        # list of variants with launch counts, each case's "variants ran", and any expected one that did not run
        for line in (out + "\n" + err).splitlines():
            if line.startswith("[") or not line.strip():
                continue
            if (line.startswith("kernel variants that ran") or re.search(r"\d+ launches\s*$", line)
                    or "variants ran" in line or "did not run" in line):
                variants.append(line.rstrip())
    md += table(["family", "result", "tests", "failing", "seconds"], rows) if rows else ["(no op-check step)"]
    md.append("")
    if variants:
        md += ["Kernel variants the op checks report:", "", "```"] + variants[:200] + ["```", ""]

    # ---- torch index ----
    torch_rows = {}
    if torch_doc and isinstance(torch_doc.get("results"), list):
        for r in torch_doc["results"]:
            torch_rows[(r.get("op"), r.get("case"))] = r
    used_torch = set()

    # ---- training ----
    md += ["## Training (qwen3-0.6b shape, LoRA r=32 on every projection, GRPO loss)", ""]
    if train is None:
        md += [f"No training figures: {train_err}.", ""]
    else:
        rows = []
        for r in train.get("runs", []):
            key = ("lora_train", f"seq_len={r.get('seq_len')}")
            t = torch_rows.get(key) if not r.get("recompute") else None
            if t:
                used_torch.add(key)
            ratio = r.get("tokens_per_s") / t["tokens_per_s"] if t and t.get("tokens_per_s") and r.get("tokens_per_s") else None
            rows.append([r.get("seq_len"), fmt(r.get("recompute")), fmt(r.get("tokens_per_s")), fmt(r.get("backend_peak_mb")),
                         fmt(r.get("device_used_mb")), fmt(t.get("tokens_per_s")) if t else "–",
                         fmt(t.get("peak_allocated_mb")) if t else "–", fmt(t.get("peak_reserved_mb")) if t else "–",
                         fmt(ratio)])
        md += ["Forward + backward, tokens/s (higher is better). hayate peak: its tensors (backend accounting) and "
               "the device's used memory after the run (cudaMemGetInfo); PyTorch: max_memory_allocated / reserved.", ""]
        md += table(["tokens", "recompute", "hayate tok/s", "hayate peak MB", "device used MB", "torch+PEFT tok/s",
                     "torch alloc MB", "torch reserved MB", "hayate / torch"], rows)
        md.append("")
        g = train.get("grpo_step")
        if g:
            md += [f"One GRPO step: {g.get('prompts')} prompts x {g.get('generations')} completions of "
                   f"{g.get('max_new_tokens')} tokens (prompt {g.get('prompt_len')} tokens), {fmt(g.get('seconds'))} s:", ""]
            prow = []
            for name in ("generation", "prefill", "decode", "logprob_pass", "forward_backward", "optimizer"):
                p = g.get(name, {})
                prow.append([name, fmt(p.get("seconds")), fmt(p.get("tokens_per_s")), fmt(p.get("backend_peak_mb")),
                             fmt(p.get("device_used_mb"))])
            md += table(["phase", "seconds", "tokens/s", "backend peak MB", "device used MB"], prow)
            lp = g.get("logprob_pass", {})
            if "sampler_vs_trainer_logprob_max_abs_diff" in lp:
                md += ["", f"Sampler vs trainer log-probs: mean |diff| {fmt(lp.get('sampler_vs_trainer_logprob_mean_abs_diff'))}, "
                           f"max {fmt(lp.get('sampler_vs_trainer_logprob_max_abs_diff'))}."]
            md.append("")

    # ---- kernels ----
    md += ["## Kernels (each verified against its unfused baseline before timing)", ""]
    if kernels is None:
        md += [f"No kernel figures: {kernels_err}.", ""]
    else:
        rows, failed = [], []
        for r in kernels.get("results", []):
            key = (r.get("op"), r.get("case"))
            t = torch_rows.get(key)
            if t:
                used_torch.add(key)
            chk = r.get("check") or {}
            verdict = "–" if not chk else ("pass" if chk.get("pass") else "**FAIL**")
            if chk and not chk.get("pass"):
                failed.append(f"{r.get('op')} / {r.get('case')}")
            if r.get("error"):
                verdict = "**ERROR** " + str(r["error"])[:80]
                failed.append(f"{r.get('op')} / {r.get('case')}")
            rows.append([r.get("op"), r.get("case"), fmt(r.get("median_ms")), f"{fmt(r.get('value'))} {r.get('metric', '')}",
                         fmt(r.get("speedup")), fmt(r.get("speedup_vs_baseline2")) if "speedup_vs_baseline2" in r else "–",
                         f"{verdict} ({fmt(chk.get('max_rel_err'), 2)})" if chk else verdict,
                         fmt(t.get("median_ms")) if t else "–", fmt(t.get("value")) if t else "–",
                         fmt(t["median_ms"] / r["median_ms"]) if t and t.get("median_ms") and r.get("median_ms") else "–"])
        md += ["speedup: vs the unfused baseline kernel; vs 2nd: vs cuBLAS (linear) or the per-tensor calls (adamw); "
               "check: max error relative to the reference's largest magnitude; hayate / torch: torch ms / hayate ms "
               "(above 1: hayate is faster).", ""]
        md += table(["op", "case", "hayate ms", "hayate", "speedup", "vs 2nd", "check (rel err)", "torch ms", "torch",
                     "hayate / torch"], rows)
        md.append("")
        if failed:
            md += ["Failed verification: " + "; ".join(failed), ""]
    if torch_doc is None:
        md += [f"PyTorch baselines: {torch_err}.", ""]
    elif torch_doc.get("error"):
        md += [f"PyTorch baselines: {torch_doc['error']}.", ""]
    else:
        extra = [r for k, r in torch_rows.items() if k not in used_torch]
        if extra:
            md += [f"PyTorch figures with no hayate counterpart (torch {torch_doc.get('torch')}, CUDA {torch_doc.get('cuda')}):", ""]
            md += table(["op", "case", "impl", "ms", "value"],
                        [[r.get("op"), r.get("case"), r.get("impl") or ("ERROR: " + str(r.get("error", ""))[:100]), fmt(r.get("median_ms")),
                          f"{fmt(r.get('value'))} {r.get('metric', '')}"] for r in extra])
            md.append("")

    # ---- CPU tests ----
    nt = read(os.path.join(d, "native_tests.out"))
    m = re.search(r"(\d+) passed, (\d+) failed", nt)
    if m:
        md += [f"Native tests without a GPU: {m.group(1)} passed, {m.group(2)} failed.", ""]

    md += ["## Files", ""]
    for name in sorted(os.listdir(d)):
        if name != "summary.md":
            md.append(f"- `{name}`")
    md.append("")
    with open(os.path.join(d, "summary.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
