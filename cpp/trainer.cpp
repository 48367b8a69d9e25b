#include "trainer.h"

#include <chrono>
#include <algorithm>
#include <cmath>
#include <limits>

namespace hayate {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void check_optimizer(const OptimizerOptions& o) {
  require_set(o.lr, "optimizer lr");
  require_set(o.beta1, "optimizer beta1");
  require_set(o.beta2, "optimizer beta2");
  require_set(o.eps, "optimizer eps");
  require_set(o.weight_decay, "optimizer weight_decay");
  require_set(o.max_grad_norm, "optimizer max_grad_norm");
  auto ok = [](double v) { return std::isfinite(v); };
  HAYATE_CHECK(ok(o.lr) && o.lr >= 0, ErrorCode::kInvalidArgument, "learning rate must be >= 0");
  HAYATE_CHECK(ok(o.beta1) && o.beta1 >= 0 && o.beta1 < 1 && ok(o.beta2) && o.beta2 >= 0 && o.beta2 < 1,
               ErrorCode::kInvalidArgument, "AdamW betas must be in [0, 1)");
  HAYATE_CHECK(ok(o.eps) && o.eps > 0, ErrorCode::kInvalidArgument, "AdamW eps must be > 0");
  HAYATE_CHECK(ok(o.weight_decay) && o.weight_decay >= 0, ErrorCode::kInvalidArgument, "weight decay must be >= 0");
  HAYATE_CHECK(ok(o.max_grad_norm) && o.max_grad_norm >= 0, ErrorCode::kInvalidArgument, "max grad norm must be >= 0");
}

}  // namespace

Trainer::Trainer(Model& model, const TrainerOptions& options) : model_(model), lora_(model.lora()), options_(options) {
  HAYATE_CHECK(lora_ != nullptr, ErrorCode::kInvalidArgument, "training needs LoRA adapters: attach them to the model first");
  check_optimizer(options.optimizer);
  HAYATE_CHECK(options.logits_chunk >= 1, ErrorCode::kInvalidArgument, "logits chunk must be >= 1");
  Backend& be = model.backend();
  lora_->allocate_grads();
  for (const LoraAdapter& a : lora_->adapters()) {
    Moments m;
    for (Buffer* buf : {&m.m_a, &m.v_a}) *buf = Buffer(be, be.param_dtype(), {a.a.t().shape[0], a.a.t().shape[1]});
    for (Buffer* buf : {&m.m_b, &m.v_b}) *buf = Buffer(be, be.param_dtype(), {a.b.t().shape[0], a.b.t().shape[1]});
    for (Buffer* buf : {&m.m_a, &m.v_a, &m.m_b, &m.v_b}) be.fill_zero(*buf);
    moments_.push_back(std::move(m));
  }
}

LoraSet& Trainer::lora() {
  HAYATE_CHECK(model_.lora() == lora_, ErrorCode::kInvalidArgument,
               "the model's LoRA adapters were replaced or removed after this trainer was created; create a new trainer");
  return *lora_;
}

void Trainer::set_optimizer_options(const OptimizerOptions& o) {
  check_optimizer(o);
  options_.optimizer = o;
}

void Trainer::set_step_count(int64_t step, int64_t skipped) {
  HAYATE_CHECK(step >= 0 && skipped >= 0, ErrorCode::kInvalidArgument, "step counts must be >= 0");
  step_ = step;
  skipped_ = skipped;
}

std::vector<double> Trainer::logprobs(const PackedBatch& batch, bool use_lora, double temperature,
                                      std::vector<double>* entropy, const std::atomic<bool>* cancel) {
  lora();
  TrainGraphOptions go{options_.recompute, options_.logits_chunk, static_cast<float>(temperature)};
  TrainGraph g(model_, batch, go);
  return g.forward(use_lora, false, entropy, cancel);
}

ForwardBackwardResult Trainer::forward_backward(const TrainBatch& batch, const LossOptions& loss, double temperature,
                                                bool want_entropy, const std::atomic<bool>* cancel) {
  lora();
  const auto t0 = std::chrono::steady_clock::now();
  HAYATE_CHECK(std::isfinite(temperature) && temperature > 0, ErrorCode::kInvalidArgument, "temperature must be > 0");
  TrainGraphOptions go{options_.recompute, options_.logits_chunk, static_cast<float>(temperature)};
  TrainGraph g(model_, batch.packed, go);  // validates the packed batch
  // Validate the loss inputs before any compute (shapes, NaN/Inf, options).
  LossInputs in;
  for (int s = 0; s < batch.packed.num_seqs(); ++s) in.completion_lens.push_back(batch.packed.completion_len(s));
  in.logprobs.assign(static_cast<size_t>(g.completion_tokens()), 0.0);
  in.advantages = batch.advantages;
  in.old_logprobs = batch.old_logprobs;
  in.ref_logprobs = batch.ref_logprobs;
  in.sampling_logprobs = batch.sampling_logprobs;
  in.mask = batch.completion_mask;
  validate_loss_options(loss);
  const bool grpo = loss.type != LossType::Sft;
  const bool need_ref = grpo && loss.beta != 0 && batch.ref_logprobs.empty();
  const bool need_entropy = want_entropy || (grpo && loss.top_entropy_quantile < 1);
  if (need_ref) in.ref_logprobs.assign(in.logprobs.size(), 0.0);
  if (need_entropy) in.entropies.assign(in.logprobs.size(), 0.0);
  compute_loss(loss, in);

  ForwardBackwardResult r;
  r.tokens = g.tokens();
  if (need_ref) {
    const auto tr = std::chrono::steady_clock::now();
    in.ref_logprobs = g.forward(false, false, nullptr, cancel);
    r.reference_seconds = seconds_since(tr);
  }
  in.logprobs = g.forward(true, true, need_entropy ? &in.entropies : nullptr, cancel);
  LossResult lr = compute_loss(loss, in);
  bool finite = std::isfinite(lr.loss);
  for (double d : lr.dlogprobs) finite = finite && std::isfinite(d);
  if (!finite) {
    poisoned_ = true;
    poison_reason_ = "non-finite loss (" + std::to_string(lr.loss) + ") in a forward_backward since the last zero_grad";
  } else {
    try {
      g.backward(lr.dlogprobs, cancel);
    } catch (...) {
      poisoned_ = true;  // some gradients may already be accumulated
      poison_reason_ = "a forward_backward failed or was cancelled during its backward pass";
      throw;
    }
  }
  for (double e : in.entropies) r.entropy_mean += e;
  if (!in.entropies.empty()) r.entropy_mean /= static_cast<double>(in.entropies.size());
  lr.dlogprobs.clear();
  r.logprobs = std::move(in.logprobs);
  r.loss = std::move(lr);
  r.finite = finite;
  r.seconds = seconds_since(t0);
  return r;
}

double Trainer::grad_norm() {
  Backend& be = model_.backend();
  std::vector<Tensor> grads;
  for (const LoraAdapter& a : lora().adapters()) {
    grads.push_back(a.grad_a);
    grads.push_back(a.grad_b);
  }
  const std::vector<double> ssq = be.sum_squares_many(grads);  // one wait for all tensors
  double total = 0;
  for (size_t i = 0; i + 1 < ssq.size(); i += 2) total += ssq[i] + ssq[i + 1];  // the per-adapter order as before
  return std::sqrt(total);
}

void Trainer::sum_gradients(const std::function<void(double* data, size_t n)>& all_reduce) {
  Backend& be = model_.backend();
  std::vector<Tensor> grads;
  size_t total = 0;
  for (const LoraAdapter& a : lora().adapters()) {
    for (const Buffer* g : {&a.grad_a, &a.grad_b}) {
      grads.push_back(g->t());
      total += static_cast<size_t>(g->t().numel());
    }
  }
  std::vector<double> host(total);
  size_t off = 0;
  for (const Tensor& g : grads) {
    be.download_f64(host.data() + off, g);
    off += static_cast<size_t>(g.numel());
  }
  if (poisoned_) std::fill(host.begin(), host.end(), std::numeric_limits<double>::quiet_NaN());
  all_reduce(host.data(), host.size());
  off = 0;
  for (const Tensor& g : grads) {
    be.upload(g, host.data() + off, DType::F64);
    off += static_cast<size_t>(g.numel());
  }
  // A NaN from any rank makes the summed norm non-finite: step() skips on every rank alike.
}

StepResult Trainer::step(double lr_override) {
  LoraSet& lora = this->lora();
  Backend& be = model_.backend();
  const OptimizerOptions& o = options_.optimizer;
  StepResult r;
  r.lr = lr_override >= 0 ? lr_override : o.lr;
  HAYATE_CHECK(std::isfinite(r.lr), ErrorCode::kInvalidArgument, "learning rate must be a finite number >= 0");
  r.step = step_ + 1;
  r.grad_norm = grad_norm();
  if (poisoned_ || !std::isfinite(r.grad_norm)) {
    r.applied = false;
    r.skipped_reason = poisoned_ ? poison_reason_ : "non-finite gradient norm (" + std::to_string(r.grad_norm) + ")";
    ++skipped_;
    zero_grad();  // a poisoned accumulation is discarded, never applied later
    return r;
  }
  if (o.max_grad_norm > 0 && r.grad_norm > o.max_grad_norm) r.grad_scale = o.max_grad_norm / (r.grad_norm + 1e-6);
  ++step_;
  AdamWParams p;
  p.lr = r.lr;
  p.beta1 = o.beta1;
  p.beta2 = o.beta2;
  p.eps = o.eps;
  p.weight_decay = o.weight_decay;
  p.grad_scale = r.grad_scale;
  p.step = step_;
  // All LoRA tensors in one call (one launch on CUDA); the same per-element update as adamw_step.
  std::vector<AdamWTensorRef> refs;
  refs.reserve(2 * lora.adapters().size());
  for (size_t i = 0; i < lora.adapters().size(); ++i) {
    LoraAdapter& a = lora.adapters()[i];
    Moments& m = moments_[i];
    refs.push_back({a.a, a.grad_a, m.m_a, m.v_a});
    refs.push_back({a.b, a.grad_b, m.m_b, m.v_b});
  }
  be.adamw_step_multi(refs, p);
  r.applied = true;
  return r;
}

void Trainer::zero_grad() {
  lora().zero_grads();
  poisoned_ = false;
  poison_reason_.clear();
}

}  // namespace hayate
