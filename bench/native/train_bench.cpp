#include "train_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>

#include "backend.h"
#include "generator.h"
#include "model.h"
#include "process_memory.h"
#include "shapes.h"
#include "trainer.h"
#ifdef HAYATE_WITH_CUDA_KERNEL_BENCH
#include "cuda_device_memory.h"
#endif

namespace hayate::bench {

namespace {

constexpr int kRank = 32;       // the reference recipe: LoRA r = 32, alpha = 64, every projection
constexpr double kAlpha = 64;

// cudaMemGetInfo's total - free in MiB (CUDA backend in a build with the CUDA bench library), else -1.
double device_used_mb(Backend& be) {
#ifdef HAYATE_WITH_CUDA_KERNEL_BENCH
  if (be.name() == "cuda") {
    be.synchronize();
    size_t used = 0, total = 0;
    if (cuda_device_memory_used(&used, &total)) return used / 1048576.0;
  }
#else
  (void)be;
#endif
  return -1;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string num(double v, const char* fmt = "%.4f") {
  if (!std::isfinite(v)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
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

TrainerOptions trainer_options(bool recompute) {
  TrainerOptions to;  // the engine has no defaults: AdamW as torch's, no decay, clipping at 1
  to.optimizer.lr = 1e-5;
  to.optimizer.beta1 = 0.9;
  to.optimizer.beta2 = 0.999;
  to.optimizer.eps = 1e-8;
  to.optimizer.weight_decay = 0.0;
  to.optimizer.max_grad_norm = 1.0;
  to.recompute = recompute;
  return to;
}

// GRPO, beta 0 (no reference pass), token-level ratio clipped at 0.2 both ways, every token trained.
// sequences/tokens: the whole step's (0: the batch's own).
LossOptions grpo_loss(double sequences_in_step, double tokens_in_step) {
  LossOptions lo;
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
  lo.sequences_in_step = sequences_in_step;
  lo.tokens_in_step = tokens_in_step;
  lo.max_completion_length = 0;
  return lo;
}

// Forward+backward runs: one JSON object per (sequence length, recompute).
void forward_backward_runs(const TrainBenchOptions& o, const ModelConfig& cfg, Backend& be, Model& model,
                           std::ostringstream& js) {
  const bool small = o.shape == "tiny";
  const int sequences = o.sequences > 0 ? o.sequences : (small ? 8 : 1);
  const int repeats = o.repeats > 0 ? o.repeats : (small ? 5 : 3);
  std::vector<bool> modes;
  if (o.recompute != "on") modes.push_back(false);
  if (o.recompute != "off") modes.push_back(true);
  js << ", \"sequences_per_batch\": " << sequences << ", \"repeats\": " << repeats << ", \"prompt_fraction\": 0.25,\n  \"runs\": [";
  bool first = true;
  std::mt19937 rng(7);
  for (int L : o.seq_lens) {
    TrainBatch batch;
    for (int s = 0; s < sequences; ++s) {
      for (int i = 0; i < L; ++i) batch.packed.tokens.push_back(static_cast<int32_t>(rng() % cfg.vocab_size));
      batch.packed.seq_lens.push_back(L);
      batch.packed.prompt_lens.push_back(std::max(1, L / 4));
      batch.advantages.push_back(s % 2 ? 1.0 : -1.0);
    }
    const int64_t tokens = static_cast<int64_t>(sequences) * L, completion = batch.packed.completion_tokens();
    for (bool recompute : modes) {
      Trainer trainer(model, trainer_options(recompute));
      const LossOptions lo = grpo_loss(0, 0);
      const double temperature = 1.0;
      trainer.forward_backward(batch, lo, temperature);  // warm-up (first-touch of buffers, kernel selection)
      be.synchronize();
      std::vector<double> times;
      be.reset_peak();
      const double resident_mb = be.bytes_in_use() / 1048576.0;  // weights, LoRA, gradients, moments
      for (int r = 0; r < repeats; ++r) {
        const auto s0 = std::chrono::steady_clock::now();
        trainer.forward_backward(batch, lo, temperature);
        be.synchronize();
        times.push_back(seconds_since(s0));
      }
      const double peak_mb = be.peak_bytes() / 1048576.0;
      const auto s0 = std::chrono::steady_clock::now();
      trainer.step();
      be.synchronize();
      const double step_s = seconds_since(s0);
      std::sort(times.begin(), times.end());
      const double sec = times[times.size() / 2], tps = tokens / sec;  // median: timings are noisy on shared machines
      const double flops = train_flops_per_token(cfg, L, static_cast<double>(completion) / tokens);
      js << (first ? "" : ",") << "\n    {\"seq_len\": " << L << ", \"sequences\": " << sequences << ", \"tokens\": " << tokens
         << ", \"completion_tokens\": " << completion << ", \"recompute\": " << (recompute ? "true" : "false")
         << ", \"seconds\": " << num(sec) << ", \"seconds_min\": " << num(times.front())
         << ", \"tokens_per_s\": " << num(tps, "%.1f") << ", \"train_gflop_per_token\": " << num(flops / 1e9)
         << ", \"gflops\": " << num(tps * flops / 1e9, "%.2f") << ", \"optimizer_step_seconds\": " << num(step_s)
         << ", \"resident_mb\": " << num(resident_mb, "%.1f") << ", \"backend_peak_mb\": " << num(peak_mb, "%.1f")
         << ", \"activation_peak_mb\": " << num(peak_mb - resident_mb, "%.1f");
      const double dev = device_used_mb(be);
      if (dev >= 0) js << ", \"device_used_mb\": " << num(dev, "%.1f");
      js << ", \"process_peak_rss_mb\": " << num(peak_rss_mb(), "%.1f") << "}";
      first = false;
      std::fprintf(stderr, "train %s %s L=%d recompute=%d: %.1f tokens/s\n", o.shape.c_str(), be.name().c_str(), L,
                   recompute ? 1 : 0, tps);
    }
  }
  js << (first ? "]" : "\n  ]");
}

// One GRPO step; appends "grpo_step": {...}.
void grpo_step_run(const TrainBenchOptions& o, const ModelConfig& cfg, Backend& be, Model& model, std::ostringstream& js) {
  const int num_seqs = o.prompts * o.generations;
  const double temperature = 1.0;
  std::mt19937 rng(11);
  std::vector<GenerationRequest> reqs(static_cast<size_t>(o.prompts));
  for (int p = 0; p < o.prompts; ++p) {
    for (int t = 0; t < o.prompt_len; ++t) reqs[p].prompt.push_back(static_cast<int32_t>(rng() % cfg.vocab_size));
    reqs[p].n = o.generations;
    reqs[p].max_new_tokens = o.max_new_tokens;
    reqs[p].seed = 100 + p;
    reqs[p].sampling.temperature = static_cast<float>(temperature);  // no stop ids: every completion runs max_new_tokens
  }
  GenerationOptions go;
  go.max_batch = num_seqs;
  go.prefill_chunk = std::max(512, o.prompts * o.prompt_len);  // every prompt in one prefill step
  Trainer trainer(model, trainer_options(false));
  Generator gen(model, {});

  auto phase_mem = [&](std::ostringstream& p) {
    p << ", \"backend_peak_mb\": " << num(be.peak_bytes() / 1048576.0, "%.1f");
    const double dev = device_used_mb(be);
    if (dev >= 0) p << ", \"device_used_mb\": " << num(dev, "%.1f");
  };
  std::ostringstream ph;

  // 1. generation: prefill + decode
  be.synchronize();
  be.reset_peak();
  GenerationStats st;
  auto t0 = std::chrono::steady_clock::now();
  const std::vector<GenerationOutput> outs = gen.generate(reqs, go, {}, nullptr, &st);
  be.synchronize();
  const double gen_s = seconds_since(t0);
  int64_t generated = 0;
  for (const GenerationOutput& g : outs) generated += static_cast<int64_t>(g.tokens.size());
  ph << "\n    \"generation\": {\"seconds\": " << num(gen_s) << ", \"prompt_tokens\": " << st.prompt_tokens
     << ", \"generated_tokens\": " << generated << ", \"steps\": " << st.steps << ", \"tokens_per_s\": "
     << num(gen_s > 0 ? generated / gen_s : 0, "%.1f");
  phase_mem(ph);
  ph << "},\n    \"prefill\": {\"seconds\": " << num(st.prefill_seconds) << ", \"tokens_per_s\": "
     << num(st.prefill_seconds > 0 ? st.prompt_tokens / st.prefill_seconds : 0, "%.1f") << "},\n    \"decode\": {\"seconds\": "
     << num(st.decode_seconds) << ", \"tokens_per_s\": "
     << num(st.decode_seconds > 0 ? st.decode_step_tokens / st.decode_seconds : 0, "%.1f") << ", \"batch\": " << num_seqs
     << "},";

  // the rollouts as a training batch: advantages normalised per group (random rewards), sampler log-probs kept
  TrainBatch all;
  std::vector<double> sampler_lp;
  std::normal_distribution<double> reward(0.0, 1.0);
  for (int p = 0; p < o.prompts; ++p) {
    std::vector<double> r(static_cast<size_t>(o.generations));
    double mean = 0, var = 0;
    for (double& x : r) mean += (x = reward(rng)) / o.generations;
    for (double x : r) var += (x - mean) * (x - mean) / o.generations;
    for (double x : r) all.advantages.push_back((x - mean) / (std::sqrt(var) + 1e-4));
  }
  std::vector<const GenerationOutput*> order;  // request-major, sample-minor: the advantages' order
  for (const GenerationOutput& g : outs) order.push_back(&g);
  std::sort(order.begin(), order.end(), [](const GenerationOutput* a, const GenerationOutput* b) {
    return a->request != b->request ? a->request < b->request : a->sample < b->sample;
  });
  for (const GenerationOutput* gp : order) {
    const GenerationOutput& g = *gp;
    const std::vector<int32_t>& prompt = reqs[static_cast<size_t>(g.request)].prompt;
    all.packed.tokens.insert(all.packed.tokens.end(), prompt.begin(), prompt.end());
    all.packed.tokens.insert(all.packed.tokens.end(), g.tokens.begin(), g.tokens.end());
    all.packed.seq_lens.push_back(static_cast<int32_t>(prompt.size() + g.tokens.size()));
    all.packed.prompt_lens.push_back(static_cast<int32_t>(prompt.size()));
    sampler_lp.insert(sampler_lp.end(), g.logprobs.begin(), g.logprobs.end());
  }
  const int64_t completion = all.packed.completion_tokens();

  // 2. log-prob pass (old log-probs of the ratio)
  be.reset_peak();
  t0 = std::chrono::steady_clock::now();
  all.old_logprobs = trainer.logprobs(all.packed, true, temperature);
  be.synchronize();
  const double lp_s = seconds_since(t0);
  double diff_max = 0, diff_sum = 0;
  for (size_t i = 0; i < sampler_lp.size() && i < all.old_logprobs.size(); ++i) {
    const double d = std::fabs(sampler_lp[i] - all.old_logprobs[i]);
    diff_max = std::max(diff_max, d);
    diff_sum += d;
  }
  ph << "\n    \"logprob_pass\": {\"seconds\": " << num(lp_s) << ", \"tokens\": " << all.packed.tokens.size()
     << ", \"tokens_per_s\": " << num(lp_s > 0 ? all.packed.tokens.size() / lp_s : 0, "%.1f")
     << ", \"sampler_vs_trainer_logprob_mean_abs_diff\": " << num(sampler_lp.empty() ? 0 : diff_sum / sampler_lp.size(), "%.3g")
     << ", \"sampler_vs_trainer_logprob_max_abs_diff\": " << num(diff_max, "%.3g");
  phase_mem(ph);
  ph << "},";

  // 3. forward + backward over the micro-batches
  const int parts = std::max(1, std::min(o.micro_batches, num_seqs));
  const LossOptions lo = grpo_loss(num_seqs, static_cast<double>(completion));
  be.reset_peak();
  t0 = std::chrono::steady_clock::now();
  size_t tok_off = 0, lp_off = 0;
  int seq_off = 0;
  double loss = 0;
  for (int part = 0; part < parts; ++part) {
    const int n = num_seqs / parts + (part < num_seqs % parts ? 1 : 0);
    TrainBatch mb;
    size_t ntok = 0, nlp = 0;
    for (int s = seq_off; s < seq_off + n; ++s) {
      mb.packed.seq_lens.push_back(all.packed.seq_lens[s]);
      mb.packed.prompt_lens.push_back(all.packed.prompt_lens[s]);
      mb.advantages.push_back(all.advantages[s]);
      ntok += static_cast<size_t>(all.packed.seq_lens[s]);
      nlp += static_cast<size_t>(all.packed.completion_len(s));
    }
    mb.packed.tokens.assign(all.packed.tokens.begin() + tok_off, all.packed.tokens.begin() + tok_off + ntok);
    mb.old_logprobs.assign(all.old_logprobs.begin() + lp_off, all.old_logprobs.begin() + lp_off + nlp);
    loss += trainer.forward_backward(mb, lo, temperature).loss.loss;
    seq_off += n;
    tok_off += ntok;
    lp_off += nlp;
  }
  be.synchronize();
  const double fb_s = seconds_since(t0);
  const double flops = train_flops_per_token(cfg, static_cast<double>(all.packed.tokens.size()) / num_seqs,
                                             static_cast<double>(completion) / all.packed.tokens.size());
  ph << "\n    \"forward_backward\": {\"seconds\": " << num(fb_s) << ", \"micro_batches\": " << parts << ", \"tokens\": "
     << all.packed.tokens.size() << ", \"tokens_per_s\": " << num(fb_s > 0 ? all.packed.tokens.size() / fb_s : 0, "%.1f")
     << ", \"gflops\": " << num(fb_s > 0 ? all.packed.tokens.size() * flops / fb_s / 1e9 : 0, "%.2f") << ", \"loss\": " << num(loss, "%.6g");
  phase_mem(ph);
  ph << "},";

  // 4. optimizer
  be.reset_peak();
  t0 = std::chrono::steady_clock::now();
  const StepResult sr = trainer.step();
  be.synchronize();
  const double opt_s = seconds_since(t0);
  ph << "\n    \"optimizer\": {\"seconds\": " << num(opt_s) << ", \"applied\": " << (sr.applied ? "true" : "false")
     << ", \"grad_norm\": " << num(sr.grad_norm, "%.6g") << "}";

  const double total = gen_s + lp_s + fb_s + opt_s;
  js << ",\n  \"grpo_step\": {\"prompts\": " << o.prompts << ", \"generations\": " << o.generations << ", \"sequences\": "
     << num_seqs << ", \"prompt_len\": " << o.prompt_len << ", \"max_new_tokens\": " << o.max_new_tokens
     << ", \"completion_tokens\": " << completion << ", \"seconds\": " << num(total) << "," << ph.str()
     << ",\n    \"process_peak_rss_mb\": " << num(peak_rss_mb(), "%.1f") << "}";
  std::fprintf(stderr, "grpo step %s %s: %d x %d completions of %d tokens: %.2f s (generation %.2f, log-probs %.2f, fwd+bwd %.2f, optimizer %.3f)\n",
               o.shape.c_str(), be.name().c_str(), o.prompts, o.generations, o.max_new_tokens, total, gen_s, lp_s, fb_s, opt_s);
}

}  // namespace

std::string run_train_bench_json(const TrainBenchOptions& o) {
  check_train_bench_options(o);
  const ModelConfig cfg = shape_config(o.shape);
  BackendOptions bo;
  bo.kind = o.backend;
  bo.threads = o.threads;
  if (o.backend == "cpu") bo.weights = o.weights;
  auto be = make_backend(bo);
  const double dev_before = device_used_mb(*be);
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
  be->synchronize();
  const double init_s = seconds_since(t0);

  std::ostringstream js;
  js << "{\n  \"bench\": \"train\", \"shape\": \"" << o.shape << "\", \"backend\": \"" << be->name()
     << "\", \"backend_description\": \"" << be->description() << "\",\n  \"parameters\": " << model->parameter_count()
     << ", \"lora_parameters\": " << lora.parameter_count() << ", \"lora_rank\": " << kRank << ", \"lora_alpha\": " << kAlpha
     << ", \"lora_targets\": \"q,k,v,o,gate,up,down\", \"loss\": \"grpo\", \"weights\": \"" << dtype_name(model->embed().dtype)
     << "\", \"weight_mb\": " << num(model->weight_bytes() / 1048576.0, "%.1f") << ", \"init_seconds\": " << num(init_s);
  if (dev_before >= 0) js << ", \"device_used_mb_before_model\": " << num(dev_before, "%.1f");
  forward_backward_runs(o, cfg, *be, *model, js);
  if (o.grpo_step) grpo_step_run(o, cfg, *be, *model, js);
  js << "\n}";
  return js.str();
}

}  // namespace hayate::bench
