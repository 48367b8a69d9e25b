#include "train_bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>

#include "backend.h"
#include "model.h"
#include "shapes.h"
#include "trainer.h"

using namespace hayate;
using namespace hayate::bench;

namespace {

constexpr int kRank = 32;       // the reference recipe: LoRA r = 32, alpha = 64, every projection
constexpr double kAlpha = 64;

double peak_rss_mb() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

// FLOPs of one training token (forward + backward into LoRA only; base weights frozen, so the backward
// computes input gradients but no weight gradients) at sequence length L, with `completion` of the tokens
// scored by the lm head. Recomputation's extra forward is not counted: this is the useful work.
double train_flops_per_token(const ModelConfig& c, double L, double completion) {
  const double P = layer_matmul_params(c);
  const double attn_fwd = 4.0 * c.num_heads * c.head_dim * (L / 2);  // QK^T and PV at mean context L/2
  const double D = c.hidden_size, F = c.intermediate_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  const double lora_dims = (D + qd) + 2 * (D + kvd) + (qd + D) + 3 * (D + F);  // sum over projections of in + out
  const double per_layer = 2 * P + attn_fwd           // forward
                           + 2 * P + 2.5 * attn_fwd   // backward: dx of every projection; attention (recomputed P, dV, dP, dQ, dK)
                           + 6.0 * kRank * lora_dims; // LoRA: xa, xa B^T; t = dout B, t A, dA, dB
  return c.num_layers * per_layer + completion * 6.0 * D * c.vocab_size;  // lm head: forward, recompute, dhidden
}

}  // namespace

std::string run_train_bench_json(const std::string& shape, const std::vector<int>& seq_lens, int threads) {
  const ModelConfig cfg = shape_config(shape);
  BackendOptions bo;
  bo.threads = threads;
  auto be = make_backend(bo);
  auto t0 = std::chrono::steady_clock::now();
  auto model = Model::random(*be, cfg, 1234);
  LoraConfig lc;
  lc.rank = kRank;
  lc.alpha = kAlpha;
  lc.seed = 1;
  for (int l = 0; l < cfg.num_layers; ++l)
    for (int t = 0; t < kNumLoraTargets; ++t) lc.modules.push_back({l, static_cast<LoraTarget>(t)});
  LoraSet& lora = model->attach_lora(lc);
  {  // B = 0 at init would make the LoRA path trivially cheap for nothing; give it values
    std::mt19937 rng(3);
    std::normal_distribution<float> d(0.0f, 0.01f);
    for (LoraAdapter& a : lora.adapters()) {
      std::vector<float> b(static_cast<size_t>(a.b.t().numel()));
      for (float& v : b) v = d(rng);
      be->upload(a.b, b.data(), DType::F32);
    }
  }
  const double init_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool small = shape == "tiny";
  const int sequences = small ? 8 : 1, repeats = small ? 5 : 3;

  std::ostringstream js;
  js << "{\n  \"bench\": \"train\", \"shape\": \"" << shape << "\", \"backend\": \"" << be->name()
     << "\", \"backend_description\": \"" << be->description() << "\",\n  \"parameters\": " << model->parameter_count()
     << ", \"lora_parameters\": " << lora.parameter_count() << ", \"lora_rank\": " << kRank << ", \"lora_alpha\": " << kAlpha
     << ", \"lora_targets\": \"q,k,v,o,gate,up,down\", \"loss\": \"grpo\", \"init_seconds\": " << init_s
     << ", \"sequences_per_batch\": " << sequences << ", \"prompt_fraction\": 0.25,\n  \"runs\": [";
  bool first = true;
  std::mt19937 rng(7);
  for (int L : seq_lens) {
    TrainBatch batch;
    for (int s = 0; s < sequences; ++s) {
      for (int i = 0; i < L; ++i) batch.packed.tokens.push_back(static_cast<int32_t>(rng() % cfg.vocab_size));
      batch.packed.seq_lens.push_back(L);
      batch.packed.prompt_lens.push_back(std::max(1, L / 4));
      batch.advantages.push_back(s % 2 ? 1.0 : -1.0);
    }
    const int64_t tokens = static_cast<int64_t>(sequences) * L, completion = batch.packed.completion_tokens();
    for (bool recompute : {false, true}) {
      TrainerOptions to;  // the engine has no defaults: AdamW as torch's, no decay, clipping at 1
      to.optimizer.lr = 1e-5;
      to.optimizer.beta1 = 0.9;
      to.optimizer.beta2 = 0.999;
      to.optimizer.eps = 1e-8;
      to.optimizer.weight_decay = 0.0;
      to.optimizer.max_grad_norm = 1.0;
      to.recompute = recompute;
      Trainer trainer(*model, to);
      LossOptions lo;  // grpo, beta 0: no reference pass; step totals 0: the batch's own
      lo.type = LossType::Grpo;
      lo.epsilon_low = 0.2;
      lo.epsilon_high = 0.2;
      lo.beta = 0.0;
      lo.importance_level = ImportanceLevel::Token;
      lo.kl_estimator = KlEstimator::K3;
      lo.clip_ratio_c = 0;  // no dual-clip
      lo.rollout_correction = RolloutCorrection::None;
      lo.correction_min = 0;
      lo.correction_max = 3;
      lo.top_entropy_quantile = 1;  // every token
      lo.sequences_in_step = 0;
      lo.tokens_in_step = 0;
      lo.max_completion_length = 0;
      const double temperature = 1.0;
      trainer.forward_backward(batch, lo, temperature);  // warm-up (first-touch of buffers)
      std::vector<double> times;
      be->reset_peak();
      const double resident_mb = be->bytes_in_use() / 1048576.0;  // weights, LoRA, gradients, moments
      for (int r = 0; r < repeats; ++r) times.push_back(trainer.forward_backward(batch, lo, temperature).seconds);
      const double peak_mb = be->peak_bytes() / 1048576.0;
      auto s0 = std::chrono::steady_clock::now();
      trainer.step();
      const double step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
      std::sort(times.begin(), times.end());
      const double sec = times[times.size() / 2], tps = tokens / sec;  // median: this VM's timings are noisy
      const double flops = train_flops_per_token(cfg, L, static_cast<double>(completion) / tokens);
      char buf[768];
      std::snprintf(buf, sizeof buf,
                    "%s\n    {\"seq_len\": %d, \"tokens\": %lld, \"completion_tokens\": %lld, \"recompute\": %s, "
                    "\"seconds\": %.4f, \"seconds_min\": %.4f, \"tokens_per_s\": %.1f, \"train_gflop_per_token\": %.4f, \"gflops\": %.2f, "
                    "\"optimizer_step_seconds\": %.4f, \"resident_mb\": %.1f, \"backend_peak_mb\": %.1f, "
                    "\"activation_peak_mb\": %.1f, \"process_peak_rss_mb\": %.1f}",
                    first ? "" : ",", L, static_cast<long long>(tokens), static_cast<long long>(completion),
                    recompute ? "true" : "false", sec, times.front(), tps, flops / 1e9, tps * flops / 1e9, step_s, resident_mb, peak_mb, peak_mb - resident_mb, peak_rss_mb());
      js << buf;
      first = false;
      std::fprintf(stderr, "train %s L=%d recompute=%d: %.1f tokens/s\n", shape.c_str(), L, recompute ? 1 : 0, tps);
    }
  }
  js << "\n  ]\n}";
  return js.str();
}
