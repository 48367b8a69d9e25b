// The training graph end to end on tiny random models: the gradient of each loss w.r.t. every LoRA tensor
// against finite differences (CPU f64), the closed form of the policy-gradient term, recomputation and
// chunking leaving gradients unchanged, agreement with the inference path, and the Trainer's handling of
// non-finite values and bad input.
#include <cmath>
#include <random>

#include "check.h"
#include "loss.h"
#include "model.h"
#include "train_check.h"
#include "train_options.h"
#include "trainer.h"
#include "tiny_config.h"

using namespace hayate;
using namespace hayate_test;

namespace {


LoraConfig all_targets(const ModelConfig& c, int rank, double alpha, bool rslora = false) {
  LoraConfig l;
  l.rank = rank;
  l.alpha = alpha;
  l.rslora = rslora;
  l.seed = 5;
  for (int layer = 0; layer < c.num_layers; ++layer)
    for (int t = 0; t < kNumLoraTargets; ++t) l.modules.push_back({layer, static_cast<LoraTarget>(t)});
  return l;
}

// Model::random's norm weights are all ones; noisy ones make each norm's weight matter.
std::unique_ptr<Model> random_model(Backend& be, const ModelConfig& cfg, uint64_t seed) {
  auto m = Model::random(be, cfg, seed, 0.3f);
  uint32_t s = static_cast<uint32_t>(seed) * 1000;
  auto noisy = [&](Tensor t) {
    if (t.empty()) return;
    Vec v = randv(static_cast<size_t>(t.numel()), s++, 0.3);
    for (double& x : v) x += 1.0;
    be.upload(t, v.data(), DType::F64);
  };
  for (int l = 0; l < cfg.num_layers; ++l) {
    const LayerWeights& w = m->layer(l);
    for (const Buffer* b : {&w.input_norm, &w.post_norm, &w.q_norm, &w.k_norm}) noisy(b->t());
  }
  noisy(m->final_norm());
  return m;
}

// B starts at zero (PEFT); random B makes every gradient non-trivial.
void randomize_b(Backend& be, LoraSet& lora, uint32_t seed) {
  for (LoraAdapter& a : lora.adapters()) {
    Vec b = randv(static_cast<size_t>(a.b.t().numel()), seed++, 0.3);
    be.upload(a.b, b.data(), DType::F64);
  }
}

TrainBatch make_batch(int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  TrainBatch b;
  const int prompts[] = {3, 1, 4}, completions[] = {5, 3, 0};  // the last has no completion tokens
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < prompts[s] + completions[s]; ++i) b.packed.tokens.push_back(static_cast<int32_t>(rng() % vocab));
    b.packed.seq_lens.push_back(prompts[s] + completions[s]);
    b.packed.prompt_lens.push_back(prompts[s]);
  }
  b.advantages = {0.8, -1.3, 0.5};
  return b;
}

Vec download(Backend& be, Tensor t) { return host(be, t); }

// The loss as a function of the LoRA parameters: forward only.
double loss_value(Trainer& tr, const TrainBatch& b, const LossOptions& o, double temperature) {
  LossInputs in;
  for (int s = 0; s < b.packed.num_seqs(); ++s) in.completion_lens.push_back(b.packed.completion_len(s));
  in.logprobs = tr.logprobs(b.packed, true, temperature, o.top_entropy_quantile < 1 ? &in.entropies : nullptr);
  in.advantages = b.advantages;
  in.old_logprobs = b.old_logprobs;
  in.ref_logprobs = b.ref_logprobs;
  in.sampling_logprobs = b.sampling_logprobs;
  return compute_loss(o, in).loss;
}

// Checks d loss / d (every LoRA tensor) against central differences at a few elements of each.
// `rollout_old`: old log-probs near the current ones (some ratios clip); otherwise none (ratio 1, as on-policy).
void check_lora_gradients(Arch arch, LossOptions o, double temperature, bool rslora, const std::string& what, bool rollout_old = true) {
  CpuBackend be(2, "auto", "f64");
  ModelConfig cfg = tiny_config(arch);
  auto model = random_model(be, cfg, 11);
  LoraSet& lora = model->attach_lora(all_targets(cfg, 3, 5.0, rslora));
  randomize_b(be, lora, 100);
  TrainerOptions to = trainer_options(1e-5);
  to.logits_chunk = 3;
  Trainer tr(*model, to);
  TrainBatch b = make_batch(cfg.vocab_size, 3);
  // rollout log-probs near the current ones, so some tokens clip and some do not
  Vec lp = tr.logprobs(b.packed, true, temperature);
  b.old_logprobs = lp;
  Vec noise = randv(lp.size(), 9, 0.25);
  for (size_t i = 0; i < lp.size(); ++i) b.old_logprobs[i] += noise[i];
  // the sampler's log-probs: a further perturbation, so IS weights vary
  b.sampling_logprobs = b.old_logprobs;
  Vec noise2 = randv(lp.size(), 19, 0.3);
  for (size_t i = 0; i < lp.size(); ++i) b.sampling_logprobs[i] += noise2[i];
  if (!rollout_old) b.old_logprobs.clear();
  if (o.beta != 0) b.ref_logprobs = tr.logprobs(b.packed, false, temperature);

  ForwardBackwardResult r = tr.forward_backward(b, o, temperature);
  CHECK(r.finite);
  CHECK_NEAR(r.loss.loss, loss_value(tr, b, o, temperature), 1e-12);
  std::mt19937 rng(1);
  double worst = 0;
  for (LoraAdapter& a : lora.adapters()) {
    for (int which = 0; which < 2; ++which) {
      Tensor p = which == 0 ? a.a.t() : a.b.t();
      Vec g = download(be, which == 0 ? a.grad_a.t() : a.grad_b.t());
      double scale = 1e-300;
      for (double v : g) scale = std::max(scale, std::fabs(v));
      for (int k = 0; k < 3; ++k) {
        const size_t i = rng() % g.size();
        double* x = p.as<double>() + i;  // CPU memory: poke the parameter in place
        const double old = *x, h = 1e-6;
        *x = old + h;
        const double lp1 = loss_value(tr, b, o, temperature);
        *x = old - h;
        const double lm1 = loss_value(tr, b, o, temperature);
        *x = old;
        worst = std::max(worst, std::fabs((lp1 - lm1) / (2 * h) - g[i]) / scale);
      }
    }
  }
  if (!(worst < 1e-6)) report(__FILE__, __LINE__, what + ": LoRA gradients vs finite differences, rel err " + std::to_string(worst));
}

}  // namespace

TEST(grpo_lora_gradients_vs_finite_differences_qwen3) {
  LossOptions o = loss_options(LossType::Grpo, 0.04);
  o.epsilon_low = 0.2;
  o.epsilon_high = 0.28;
  check_lora_gradients(Arch::Qwen3, o, 1.0, false, "qwen3 grpo beta=0.04");
  o.beta = 0;
  check_lora_gradients(Arch::Qwen3, o, 0.7, true, "qwen3 grpo temperature 0.7 rslora");
}

TEST(grpo_lora_gradients_vs_finite_differences_llama) {
  LossOptions o = loss_options(LossType::Grpo, 0.1);
  check_lora_gradients(Arch::Llama, o, 1.0, false, "llama grpo beta=0.1");
}

TEST(loss_aggregations_gradients_vs_finite_differences) {
  for (LossType t : {LossType::Bnpo, LossType::Dapo, LossType::DrGrpo, LossType::Sft}) {
    LossOptions o = loss_options(t, t == LossType::Sft ? 0 : 0.02);
    o.max_completion_length = t == LossType::DrGrpo ? 8 : 0;
    check_lora_gradients(Arch::Qwen2, o, 1.0, false, std::string("qwen2 ") + loss_type_name(t));
  }
}

TEST(gspo_cispo_dual_clip_kl_correction_entropy_mask_lora_gradients_vs_finite_differences) {
  LossOptions o = loss_options(LossType::Grpo, 0.05);
  o.importance_level = ImportanceLevel::Sequence;  // GSPO
  o.kl_estimator = KlEstimator::K2;
  check_lora_gradients(Arch::Qwen3, o, 1.0, false, "qwen3 gspo k2");
  o = loss_options(LossType::Dapo, 0.05);
  o.clip_ratio_c = 1.5;  // dual-clip
  o.kl_estimator = KlEstimator::K1;
  o.rollout_correction = RolloutCorrection::TokenTruncate;
  o.correction_max = 1.5;
  check_lora_gradients(Arch::Llama, o, 0.8, false, "llama dapo dual-clip k1 token_truncate");
  o = loss_options(LossType::DrGrpo, 0.02);
  o.rollout_correction = RolloutCorrection::SequenceMask;
  o.correction_max = 2.0;
  o.top_entropy_quantile = 0.5;
  check_lora_gradients(Arch::Qwen2, o, 1.0, false, "qwen2 dr_grpo sequence_mask top-entropy 0.5");
  // cispo: without rollout log-probs its capped ratio is 1 (detached), so the loss is a plain function of
  // the parameters and finite differences apply
  o = loss_options(LossType::Cispo, 0.05);
  o.epsilon_high = 0.9;  // caps even ratio 1
  o.importance_level = ImportanceLevel::Sequence;
  check_lora_gradients(Arch::Qwen3, o, 1.0, false, "qwen3 cispo sequence", /*rollout_old=*/false);
}

TEST(multi_turn_masked_gradient_equals_the_hand_masked_loss) {
  // A completion holding tool-result tokens (mask 0) between model turns: the LoRA gradient of the masked
  // loss equals, by central finite differences, the gradient of the loss computed by hand over the
  // model's tokens only (the tool tokens still condition the later ones through attention).
  CpuBackend be(2, "auto", "f64");
  ModelConfig cfg = tiny_config(Arch::Qwen3);
  auto model = random_model(be, cfg, 14);
  LoraSet& lora = model->attach_lora(all_targets(cfg, 2, 4.0));
  randomize_b(be, lora, 400);
  Trainer tr(*model, trainer_options(1e-5));
  TrainBatch b = make_batch(cfg.vocab_size, 6);
  const int64_t T = b.packed.completion_tokens();
  b.completion_mask.assign(static_cast<size_t>(T), 1);
  b.completion_mask[1] = b.completion_mask[2] = 0;  // completion 0: model, tool, tool, model, model
  b.completion_mask[6] = 0;                          // completion 1: model, model, tool... (3 tokens)
  b.old_logprobs = tr.logprobs(b.packed, true, 1.0);
  Vec noise = randv(b.old_logprobs.size(), 23, 0.2);
  for (size_t i = 0; i < noise.size(); ++i) b.old_logprobs[i] += noise[i];
  LossOptions o = loss_options(LossType::Grpo, 0.03);
  b.ref_logprobs = tr.logprobs(b.packed, false, 1.0);
  tr.zero_grad();
  ForwardBackwardResult r = tr.forward_backward(b, o, 1.0);
  CHECK(r.finite);
  // by hand: the loss over the model's tokens only, as if the tool tokens were not completion tokens
  auto hand = [&]() {
    Vec lp = tr.logprobs(b.packed, true, 1.0);
    LossInputs in;
    in.advantages = b.advantages;
    for (int s = 0, t = 0; s < b.packed.num_seqs(); ++s) {
      int n = 0;
      for (int k = 0; k < b.packed.completion_len(s); ++k, ++t) {
        if (!b.completion_mask[t]) continue;
        ++n;
        in.logprobs.push_back(lp[t]);
        in.old_logprobs.push_back(b.old_logprobs[t]);
        in.ref_logprobs.push_back(b.ref_logprobs[t]);
      }
      in.completion_lens.push_back(n);
    }
    return compute_loss(o, in).loss;
  };
  CHECK_NEAR(r.loss.loss, hand(), 1e-12);
  std::mt19937 rng(3);
  double worst = 0;
  for (LoraAdapter& a : lora.adapters()) {
    for (int which = 0; which < 2; ++which) {
      Tensor p = which == 0 ? a.a.t() : a.b.t();
      Vec g = download(be, which == 0 ? a.grad_a.t() : a.grad_b.t());
      double scale = 1e-300;
      for (double v : g) scale = std::max(scale, std::fabs(v));
      const size_t i = rng() % g.size();
      double* x = p.as<double>() + i;
      const double old = *x, h = 1e-6;
      *x = old + h;
      const double fp = hand();
      *x = old - h;
      const double fm = hand();
      *x = old;
      worst = std::max(worst, std::fabs((fp - fm) / (2 * h) - g[i]) / scale);
    }
  }
  if (!(worst < 1e-6)) report(__FILE__, __LINE__, "masked multi-turn gradient vs hand-masked finite differences, rel err " + std::to_string(worst));
}

TEST(policy_gradient_closed_form_with_equal_old_logprobs) {
  // old = current and beta = 0: every ratio is 1, so the GRPO loss is -mean(A) and its gradient is
  // -(1/S) sum_i A_i / |o_i| sum_t grad log p_it.
  CpuBackend be(2, "auto", "f64");
  ModelConfig cfg = tiny_config(Arch::Qwen3);
  auto model = random_model(be, cfg, 12);
  LoraSet& lora = model->attach_lora(all_targets(cfg, 2, 4.0));
  randomize_b(be, lora, 200);
  Trainer tr(*model, trainer_options(1e-5));
  TrainBatch b = make_batch(cfg.vocab_size, 4);
  b.old_logprobs = tr.logprobs(b.packed, true, 1.0);
  LossOptions o = loss_options(LossType::Grpo);  // beta 0
  ForwardBackwardResult r = tr.forward_backward(b, o, 1.0);
  const int S = b.packed.num_seqs();
  double mean_a = 0;  // sequences without completion tokens contribute nothing
  for (int s = 0; s < S; ++s) mean_a += b.packed.completion_len(s) > 0 ? b.advantages[s] : 0.0;
  CHECK_NEAR(r.loss.loss, -mean_a / S, 1e-12);
  CHECK_NEAR(r.loss.ratio_mean, 1.0, 1e-12);
  CHECK_NEAR(r.loss.clip_region, 0.0, 0);
  auto pg = [&]() {  // the closed form as a function of the parameters
    Vec lp = tr.logprobs(b.packed, true, 1.0);
    double f = 0;
    size_t t = 0;
    for (int s = 0; s < S; ++s) {
      const int len = b.packed.completion_len(s);
      for (int k = 0; k < len; ++k, ++t) f -= b.advantages[s] / (static_cast<double>(S) * len) * lp[t];
    }
    return f;
  };
  double worst = 0;
  for (LoraAdapter& a : lora.adapters()) {
    Vec g = download(be, a.grad_b);
    double scale = 1e-300;
    for (double v : g) scale = std::max(scale, std::fabs(v));
    double* x = a.b.t().as<double>() + 1;
    const double old = *x, h = 1e-6;
    *x = old + h;
    const double fp = pg();
    *x = old - h;
    const double fm = pg();
    *x = old;
    worst = std::max(worst, std::fabs((fp - fm) / (2 * h) - g[1]) / scale);
  }
  CHECK(worst < 1e-6);
}

TEST(recompute_and_chunking_leave_gradients_unchanged) {
  CpuBackend be(2, "auto", "f64");
  ModelConfig cfg = tiny_config(Arch::Qwen3);
  auto model = random_model(be, cfg, 13);
  LoraSet& lora = model->attach_lora(all_targets(cfg, 4, 8.0));
  randomize_b(be, lora, 300);
  TrainBatch b = make_batch(cfg.vocab_size, 5);
  LossOptions o = loss_options(LossType::Grpo, 0.05);
  std::vector<Vec> grads[2];
  for (int run = 0; run < 2; ++run) {
    TrainerOptions to = trainer_options(1e-5);
    to.recompute = run == 1;
    to.logits_chunk = run == 1 ? 1 : 1000;
    Trainer tr(*model, to);
    tr.zero_grad();
    tr.forward_backward(b, o, 1.0);
    for (LoraAdapter& a : lora.adapters()) {
      grads[run].push_back(download(be, a.grad_a));
      grads[run].push_back(download(be, a.grad_b));
    }
  }
  for (size_t i = 0; i < grads[0].size(); ++i) CHECK(rel_err(grads[1][i], grads[0][i]) < 1e-12);
}

TEST(gradient_accumulation_equals_the_full_batch) {
  // Two micro-batches with the step's totals give the same loss sum and gradients as one batch.
  CpuBackend be(2, "auto", "f64");
  ModelConfig cfg = tiny_config(Arch::Llama);
  auto model = random_model(be, cfg, 14);
  LoraSet& lora = model->attach_lora(all_targets(cfg, 2, 2.0));
  randomize_b(be, lora, 400);
  Trainer tr(*model, trainer_options(1e-5));
  TrainBatch full = make_batch(cfg.vocab_size, 6);
  for (LossType t : {LossType::Grpo, LossType::Bnpo, LossType::DrGrpo, LossType::Sft}) {
    LossOptions o = loss_options(t);
    o.max_completion_length = 6;
    tr.zero_grad();
    double whole = tr.forward_backward(full, o, 1.0).loss.loss;
    std::vector<Vec> g_full;
    for (LoraAdapter& a : lora.adapters()) g_full.push_back(download(be, a.grad_a));
    // split: sequence 0 | sequences 1, 2
    TrainBatch m1, m2;
    const int l0 = full.packed.seq_lens[0];
    m1.packed.tokens.assign(full.packed.tokens.begin(), full.packed.tokens.begin() + l0);
    m1.packed.seq_lens = {l0};
    m1.packed.prompt_lens = {full.packed.prompt_lens[0]};
    m1.advantages = {full.advantages[0]};
    m2.packed.tokens.assign(full.packed.tokens.begin() + l0, full.packed.tokens.end());
    m2.packed.seq_lens = {full.packed.seq_lens[1], full.packed.seq_lens[2]};
    m2.packed.prompt_lens = {full.packed.prompt_lens[1], full.packed.prompt_lens[2]};
    m2.advantages = {full.advantages[1], full.advantages[2]};
    o.sequences_in_step = full.packed.num_seqs();
    o.tokens_in_step = static_cast<double>(full.packed.completion_tokens());
    tr.zero_grad();
    double parts = tr.forward_backward(m1, o, 1.0).loss.loss + tr.forward_backward(m2, o, 1.0).loss.loss;
    CHECK_NEAR(parts, whole, 1e-12);
    size_t i = 0;
    for (LoraAdapter& a : lora.adapters()) CHECK(rel_err(download(be, a.grad_a), g_full[i++]) < 1e-10);
  }
}

TEST(training_logprobs_match_the_inference_path_with_lora) {
  CpuBackend be(2, "auto", "f32");
  ModelConfig cfg = tiny_config(Arch::Qwen3);
  auto model = random_model(be, cfg, 15);
  LoraSet& lora = model->attach_lora(all_targets(cfg, 4, 8.0));
  randomize_b(be, lora, 500);
  Trainer tr(*model, trainer_options(1e-5));
  TrainBatch b = make_batch(cfg.vocab_size, 7);
  for (bool use_lora : {true, false}) {
    Vec lp = tr.logprobs(b.packed, use_lora, 1.0);
    model->set_lora_enabled(use_lora);
    std::vector<std::vector<int32_t>> seqs;
    int off = 0;
    for (int s = 0; s < b.packed.num_seqs(); ++s) {
      seqs.emplace_back(b.packed.tokens.begin() + off, b.packed.tokens.begin() + off + b.packed.seq_lens[s]);
      off += b.packed.seq_lens[s];
    }
    auto ref = model->sequence_logprobs(seqs);
    size_t t = 0;
    for (int s = 0; s < b.packed.num_seqs(); ++s)
      for (int p = b.packed.prompt_lens[s] - 1; p + 1 < b.packed.seq_lens[s]; ++p) CHECK_NEAR(lp[t++], ref[s][p], 2e-5);
    model->set_lora_enabled(true);
  }
  // LoRA changes the outputs (B != 0), and a fresh adapter (B = 0) does not
  Vec on = tr.logprobs(b.packed, true, 1.0), off_lp = tr.logprobs(b.packed, false, 1.0);
  CHECK(rel_err(on, off_lp) > 1e-3);
}

TEST(adamw_step_clips_and_skips_non_finite_updates) {
  CpuBackend be(2, "auto", "f32");
  ModelConfig cfg = tiny_config(Arch::Qwen3);
  auto model = random_model(be, cfg, 16);
  LoraSet& lora = model->attach_lora(all_targets(cfg, 2, 4.0));
  TrainerOptions to = trainer_options(1e-3);
  to.optimizer.max_grad_norm = 1e-4;  // forces clipping
  Trainer tr(*model, to);
  TrainBatch b = make_batch(cfg.vocab_size, 8);
  LossOptions o = loss_options(LossType::Sft);
  tr.forward_backward(b, o, 1.0);
  StepResult s1 = tr.step();
  CHECK(s1.applied && s1.step == 1 && s1.grad_norm > 1e-4);
  CHECK_NEAR(s1.grad_scale * s1.grad_norm, 1e-4, 1e-8);
  CHECK(tr.step_count() == 1);

  // NaN in a parameter: the loss is NaN, no gradient is accumulated, the step is skipped, nothing applied
  tr.zero_grad();
  Vec a0 = download(be, lora.adapters()[3].a);
  Vec bad = download(be, lora.adapters()[0].b);
  bad[0] = std::nan("");
  be.upload(lora.adapters()[0].b, bad.data(), DType::F64);
  ForwardBackwardResult r = tr.forward_backward(b, o, 1.0);
  CHECK(!r.finite);
  StepResult s2 = tr.step();
  CHECK(!s2.applied && s2.step == 2 && !s2.skipped_reason.empty());
  CHECK(tr.step_count() == 1 && tr.skipped_steps() == 1);
  CHECK(rel_err(download(be, lora.adapters()[3].a), a0) == 0);

  // Inf in a gradient: skipped too, and the gradients are discarded
  bad[0] = 0.1;
  be.upload(lora.adapters()[0].b, bad.data(), DType::F64);
  tr.forward_backward(b, o, 1.0);
  Vec g = download(be, lora.adapters()[1].grad_a);
  g[2] = INFINITY;
  be.upload(lora.adapters()[1].grad_a, g.data(), DType::F64);
  StepResult s3 = tr.step();
  CHECK(!s3.applied && s3.skipped_reason.find("gradient norm") != std::string::npos);
  CHECK(tr.grad_norm() == 0);
  CHECK(rel_err(download(be, lora.adapters()[3].a), a0) == 0);
}

TEST(training_bad_input_is_reported) {
  CpuBackend be(1, "auto", "f32");
  ModelConfig cfg = tiny_config(Arch::Qwen3);
  auto model = random_model(be, cfg, 17);
  CHECK_THROWS_CODE(Trainer(*model, trainer_options(1e-5)), ErrorCode::kInvalidArgument);  // no LoRA attached
  LoraConfig bad = all_targets(cfg, 0, 1.0);
  CHECK_THROWS_CODE(model->attach_lora(bad), ErrorCode::kInvalidArgument);  // rank 0
  bad = all_targets(cfg, 2, 1.0);
  bad.modules.push_back({0, LoraTarget::Q});
  CHECK_THROWS_CODE(model->attach_lora(bad), ErrorCode::kInvalidArgument);  // duplicate
  bad = all_targets(cfg, 2, 1.0);
  bad.modules.push_back({2, LoraTarget::Q});
  CHECK_THROWS_CODE(model->attach_lora(bad), ErrorCode::kInvalidArgument);  // no layer 2
  CHECK_THROWS_CODE(parse_lora_target("lm_head"), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(parse_loss_type("ppo"), ErrorCode::kInvalidArgument);

  model->attach_lora(all_targets(cfg, 2, 4.0));
  Trainer tr(*model, trainer_options(1e-5));
  LossOptions o = loss_options(LossType::Grpo);
  TrainBatch b = make_batch(cfg.vocab_size, 9);
  TrainBatch t = b;
  t.advantages[1] = std::nan("");
  CHECK_THROWS_CODE(tr.forward_backward(t, o, 1.0), ErrorCode::kInvalidArgument);
  t = b;
  t.advantages.pop_back();
  CHECK_THROWS_CODE(tr.forward_backward(t, o, 1.0), ErrorCode::kInvalidArgument);
  t = b;
  t.old_logprobs = {0.0};
  CHECK_THROWS_CODE(tr.forward_backward(t, o, 1.0), ErrorCode::kInvalidArgument);
  t = b;
  t.packed.tokens[0] = cfg.vocab_size;
  CHECK_THROWS_CODE(tr.forward_backward(t, o, 1.0), ErrorCode::kInvalidArgument);
  t = b;
  t.packed.prompt_lens[0] = 0;
  CHECK_THROWS_CODE(tr.forward_backward(t, o, 1.0), ErrorCode::kInvalidArgument);
  t = b;
  t.packed.seq_lens[0] += 1;
  CHECK_THROWS_CODE(tr.forward_backward(t, o, 1.0), ErrorCode::kInvalidArgument);
  t = b;
  t.packed.tokens.assign(70, 1);
  t.packed.seq_lens = {70};
  t.packed.prompt_lens = {1};
  t.advantages = {1.0};
  CHECK_THROWS_CODE(tr.forward_backward(t, o, 1.0), ErrorCode::kContextOverflow);
  o.epsilon_low = 1.5;
  CHECK_THROWS_CODE(tr.forward_backward(b, o, 1.0), ErrorCode::kInvalidArgument);
  CHECK(tr.grad_norm() == 0);  // nothing was accumulated by the rejected calls
  // a replaced adapter set invalidates the trainer
  model->attach_lora(all_targets(cfg, 2, 4.0));
  CHECK_THROWS_CODE(tr.step(), ErrorCode::kInvalidArgument);
}

// The engine has no defaults for training hyperparameters: an option left unset is an error naming it.
TEST(unset_training_options_are_rejected_by_name) {
  CpuBackend be(1, "auto", "f32");
  ModelConfig cfg = tiny_config(Arch::Qwen3);
  auto model = random_model(be, cfg, 19);
  auto message_of = [](auto&& call) -> std::string {
    try {
      call();
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kInvalidArgument);
      return e.what();
    }
    return "(no error)";
  };
  LoraConfig lora = all_targets(cfg, 2, 4.0);
  lora.alpha = kUnset;
  CHECK(message_of([&] { model->attach_lora(lora); }).find("alpha") != std::string::npos);
  lora = all_targets(cfg, 2, 4.0);
  lora.rank = LoraConfig{}.rank;
  CHECK(message_of([&] { model->attach_lora(lora); }).find("rank") != std::string::npos);

  model->attach_lora(all_targets(cfg, 2, 4.0));
  TrainerOptions to = trainer_options(1e-5);
  to.optimizer.beta2 = kUnset;
  CHECK(message_of([&] { Trainer t(*model, to); }).find("beta2 is not set") != std::string::npos);
  CHECK(message_of([&] { Trainer t(*model, TrainerOptions{}); }).find("lr is not set") != std::string::npos);

  Trainer tr(*model, trainer_options(1e-5));
  const TrainBatch b = make_batch(cfg.vocab_size, 10);
  CHECK(message_of([&] { tr.forward_backward(b, LossOptions{}, 1.0); }).find("loss type is not set") != std::string::npos);
  LossOptions o = loss_options(LossType::Grpo);
  o.epsilon_high = kUnset;
  CHECK(message_of([&] { tr.forward_backward(b, o, 1.0); }).find("epsilon_high is not set") != std::string::npos);
  o = loss_options(LossType::Sft);
  o.tokens_in_step = kUnset;
  CHECK(message_of([&] { tr.forward_backward(b, o, 1.0); }).find("tokens_in_step is not set") != std::string::npos);
  o = loss_options(LossType::Sft);
  o.epsilon_low = kUnset;  // SFT reads no clip range
  CHECK(message_of([&] { tr.forward_backward(b, o, 1.0); }) == "(no error)");
  CHECK(tr.grad_norm() > 0);
}

TEST(lora_init_follows_peft) {
  CpuBackend be(1, "auto", "f64");
  ModelConfig cfg = tiny_config(Arch::Qwen3);
  auto model = random_model(be, cfg, 18);
  LoraSet& l = model->attach_lora(all_targets(cfg, 4, 8.0));
  CHECK_NEAR(l.scale(), 2.0, 0);
  for (LoraAdapter& a : l.adapters()) {
    Vec av = download(be, a.a), bv = download(be, a.b);
    const double bound = 1.0 / std::sqrt(static_cast<double>(a.in));
    double mx = 0;
    for (double v : av) mx = std::max(mx, std::fabs(v));
    CHECK(mx <= bound && mx > 0.5 * bound);
    for (double v : bv) CHECK(v == 0);
  }
  LoraConfig rs = all_targets(cfg, 4, 8.0, true);
  CHECK_NEAR(model->attach_lora(rs).scale(), 4.0, 0);
  // seeded: same seed, same A
  Vec a1 = download(be, model->attach_lora(all_targets(cfg, 4, 8.0)).adapters()[5].a);
  Vec a2 = download(be, model->attach_lora(all_targets(cfg, 4, 8.0)).adapters()[5].a);
  CHECK(rel_err(a1, a2) == 0);
}
