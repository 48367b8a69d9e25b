// hayate_bench: native benchmarks that need no Node (so they also run on GPU machines without it).
//   hayate_bench gemm  [--threads N] [--repeats R]
//   hayate_bench peak  [--threads N] [--buffer-mb 512] [--memory-only]   (f32 FMA / bf16 dot peak, memory read bandwidth)
//   hayate_bench model --shape tiny|qwen3-0.6b [--backend cpu] [--batches 1,8,64] [--prompt-len P]
//                      [--gen-len G] [--threads N] [--gemm auto|builtin|blas] [--weights f32|bf16]
//   hayate_bench train --shape tiny|qwen3-0.6b [--backend cpu|cuda] [--seq-lens 128,512] [--threads N]
//                      [--sequences S] [--repeats R] [--recompute off|on|both]
//                      [--grpo-step on|off] [--prompts 8] [--generations 8] [--prompt-len 128]
//                      [--max-new-tokens 512] [--micro-batches 1] [--weights f32|bf16]
//       (defaults: --seq-lens 64,256 for tiny, 512,2048 on cuda, 128,512 on cpu; --grpo-step on for cuda)
//   hayate_bench kernels [--backend cuda|cpu] [--ops linear,rmsnorm,...] [--repeats R]
//                        [--shapes 8x512,16x256:16/8/64]   (attention: sequences x length[:hq/hkv/hd])
// Prints one JSON document on stdout; bench/run.ts adds machine/date/commit and stores it.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "backend.h"
#include "gemm_bench.h"
#include "kernel_bench.h"
#include "generator.h"
#include "model.h"
#include "model_config.h"
#include "peak_bench.h"
#include "process_memory.h"
#include "shapes.h"
#include "train_bench.h"

using namespace hayate;
using namespace hayate::bench;

namespace {

bool has_flag(int argc, char** argv, const char* name) {
  for (int i = 2; i < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return true;
  return false;
}

std::string arg(int argc, char** argv, const char* name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

// A whole-string integer, or an error that names the flag (std::stoi alone would report just "stoi").
int to_int(const std::string& text, const char* what) {
  size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) fail(ErrorCode::kInvalidArgument, std::string(what) + ": '" + text + "' is not an integer");
  return v;
}

int int_arg(int argc, char** argv, const char* name, const std::string& fallback) {
  return to_int(arg(argc, argv, name, fallback), name);
}

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<int> int_list(const std::string& s, const char* what) {
  std::vector<int> out;
  for (const std::string& item : split_csv(s)) out.push_back(to_int(item, what));
  return out;
}

int bench_model(int argc, char** argv) {
  std::string shape = arg(argc, argv, "--shape", "tiny");
  BackendOptions bo;
  bo.kind = arg(argc, argv, "--backend", "cpu");
  bo.threads = int_arg(argc, argv, "--threads", "0");
  bo.gemm = arg(argc, argv, "--gemm", "auto");
  bo.weights = arg(argc, argv, "--weights", "f32");  // random weights: "auto" would be f32 too
  std::vector<int> batches = int_list(arg(argc, argv, "--batches", "1,8,64"), "--batches");
  int prompt_len = int_arg(argc, argv, "--prompt-len", "32");
  int gen_len = int_arg(argc, argv, "--gen-len", "16");

  ModelConfig cfg = shape_config(shape);
  auto be = make_backend(bo);
  auto t0 = std::chrono::steady_clock::now();
  auto model = Model::random(*be, cfg, 1234);
  double init_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Generator gen(*model, {});

  std::printf("{\n  \"bench\": \"model\", \"shape\": \"%s\", \"backend\": \"%s\", \"backend_description\": \"%s\",\n",
              shape.c_str(), be->name().c_str(), be->description().c_str());
  std::printf("  \"weights\": \"%s\", \"weight_mb\": %.1f, \"rss_after_init_mb\": %.1f,\n",
              dtype_name(model->embed().dtype), model->weight_bytes() / 1048576.0, current_rss_mb());
  std::printf("  \"parameters\": %zu, \"init_seconds\": %.3f, \"prompt_len\": %d, \"gen_len\": %d,\n  \"runs\": [\n",
              model->parameter_count(), init_s, prompt_len, gen_len);
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    int B = batches[bi];
    std::vector<GenerationRequest> reqs(B);
    for (int r = 0; r < B; ++r) {
      for (int t = 0; t < prompt_len; ++t) reqs[r].prompt.push_back((r * 7919 + t * 104729) % cfg.vocab_size);
      reqs[r].max_new_tokens = gen_len;
      reqs[r].seed = r;
      reqs[r].sampling.temperature = 1.0f;  // no stop ids: every sequence runs gen_len tokens
    }
    GenerationOptions go;
    go.max_batch = B;
    go.prefill_chunk = B * prompt_len;  // prefill all prompts in one step, then pure decode steps
    be->reset_peak();
    GenerationStats st;
    auto s0 = std::chrono::steady_clock::now();
    gen.generate(reqs, go, {}, nullptr, &st);
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
    double prefill_tps = st.prefill_seconds > 0 ? st.prompt_tokens / st.prefill_seconds : 0;
    double decode_tps = st.decode_seconds > 0 ? st.decode_step_tokens / st.decode_seconds : 0;
    double ctx = prompt_len + gen_len / 2.0;
    double decode_gflops = decode_tps * flops_per_token(cfg, ctx, true) / 1e9;
    double prefill_gflops = prefill_tps * flops_per_token(cfg, prompt_len / 2.0, false) / 1e9;
    std::printf(
        "    {\"batch\": %d, \"prompt_tokens\": %lld, \"generated_tokens\": %lld, \"wall_seconds\": %.3f, "
        "\"prefill_seconds\": %.3f, \"prefill_tokens_per_s\": %.1f, \"prefill_gflops\": %.2f, "
        "\"decode_seconds\": %.3f, \"decode_tokens_per_s\": %.2f, \"decode_gflops\": %.2f, "
        "\"backend_peak_mb\": %.1f, \"process_peak_rss_mb\": %.1f}%s\n",
        B, static_cast<long long>(st.prompt_tokens), static_cast<long long>(st.generated_tokens), wall,
        st.prefill_seconds, prefill_tps, prefill_gflops, st.decode_seconds, decode_tps, decode_gflops,
        be->peak_bytes() / 1048576.0, peak_rss_mb(), bi + 1 < batches.size() ? "," : "");
    std::fflush(stdout);
  }
  std::printf("  ]\n}\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: hayate_bench gemm|peak|model|train|kernels [options]\n");
    return 2;
  }
  try {
    std::string cmd = argv[1];
    if (cmd == "gemm") {
      int threads = int_arg(argc, argv, "--threads", "0");
      int repeats = int_arg(argc, argv, "--repeats", "5");
      std::printf("{\"bench\": \"gemm\", \"results\": %s}\n", run_gemm_bench_json(threads, repeats).c_str());
      return 0;
    }
    if (cmd == "peak") {
      std::printf("%s\n", run_peak_bench_json(int_arg(argc, argv, "--threads", "0"), int_arg(argc, argv, "--buffer-mb", "512"),
                                                 has_flag(argc, argv, "--memory-only")).c_str());
      return 0;
    }
    if (cmd == "model") return bench_model(argc, argv);
    if (cmd == "train") {
      TrainBenchOptions o = default_train_bench_options(arg(argc, argv, "--shape", "tiny"), arg(argc, argv, "--backend", "cpu"));
      std::string lens;
      for (int L : o.seq_lens) lens += (lens.empty() ? "" : ",") + std::to_string(L);
      lens = arg(argc, argv, "--seq-lens", lens);
      o.seq_lens = lens == "none" ? std::vector<int>{} : int_list(lens, "--seq-lens");
      o.threads = int_arg(argc, argv, "--threads", "0");
      o.sequences = int_arg(argc, argv, "--sequences", "0");
      o.repeats = int_arg(argc, argv, "--repeats", "0");
      o.recompute = arg(argc, argv, "--recompute", o.recompute);
      const std::string step = arg(argc, argv, "--grpo-step", o.grpo_step ? "on" : "off");
      if (step != "on" && step != "off") fail(ErrorCode::kInvalidArgument, "--grpo-step must be on or off, got '" + step + "'");
      o.grpo_step = step == "on";
      o.prompts = int_arg(argc, argv, "--prompts", std::to_string(o.prompts));
      o.generations = int_arg(argc, argv, "--generations", std::to_string(o.generations));
      o.prompt_len = int_arg(argc, argv, "--prompt-len", std::to_string(o.prompt_len));
      o.max_new_tokens = int_arg(argc, argv, "--max-new-tokens", std::to_string(o.max_new_tokens));
      o.micro_batches = int_arg(argc, argv, "--micro-batches", std::to_string(o.micro_batches));
      o.weights = arg(argc, argv, "--weights", o.weights);
      std::printf("%s\n", run_train_bench_json(o).c_str());
      return 0;
    }
    if (cmd == "kernels") {
      std::string backend = arg(argc, argv, "--backend", "cuda");
      std::vector<std::string> ops = split_csv(arg(argc, argv, "--ops", ""));
      int repeats = int_arg(argc, argv, "--repeats", "20");
      std::vector<std::string> shapes = split_csv(arg(argc, argv, "--shapes", ""));
      bool passed = true;
      const std::string results = run_kernel_bench_json(backend, ops, repeats, shapes, &passed);
      std::printf("{\"bench\": \"kernels\", \"backend\": \"%s\", \"all_checks_passed\": %s, \"results\": %s}\n",
                  backend.c_str(), passed ? "true" : "false", results.c_str());
      if (!passed) std::fprintf(stderr, "hayate_bench: some kernel outputs failed their check (see \"check\" / \"error\")\n");
      return passed ? 0 : 1;
    }
    std::fprintf(stderr, "unknown benchmark '%s'\n", cmd.c_str());
    return 2;
  } catch (const Error& e) {  // exit 2 for bad arguments (unknown op or shape, a non-integer flag), as usage errors
    std::fprintf(stderr, "hayate_bench: %s\n", e.what());
    return e.code() == ErrorCode::kInvalidArgument ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hayate_bench: %s\n", e.what());
    return 1;
  }
}
