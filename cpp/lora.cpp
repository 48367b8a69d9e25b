#include "lora.h"

#include <cmath>

#include "rng.h"

namespace hayate {

namespace {
const char* const kTargetNames[kNumLoraTargets] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
}

const char* lora_target_name(LoraTarget t) { return kTargetNames[static_cast<int>(t)]; }

LoraTarget parse_lora_target(const std::string& name) {
  for (int i = 0; i < kNumLoraTargets; ++i)
    if (name == kTargetNames[i]) return static_cast<LoraTarget>(i);
  fail(ErrorCode::kInvalidArgument, "unknown LoRA target module '" + name +
                                        "' (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
}

std::pair<int64_t, int64_t> lora_target_shape(const ModelConfig& c, LoraTarget t) {
  const int64_t D = c.hidden_size, F = c.intermediate_size, qd = int64_t(c.num_heads) * c.head_dim,
                kvd = int64_t(c.num_kv_heads) * c.head_dim;
  switch (t) {
    case LoraTarget::Q: return {qd, D};
    case LoraTarget::K:
    case LoraTarget::V: return {kvd, D};
    case LoraTarget::O: return {D, qd};
    case LoraTarget::Gate:
    case LoraTarget::Up: return {F, D};
    case LoraTarget::Down: return {D, F};
  }
  return {0, 0};
}

double LoraConfig::scale() const { return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / rank; }

LoraSet::LoraSet(Backend& be, const ModelConfig& mc, LoraConfig config) : be_(be), cfg_(std::move(config)) {
  HAYATE_CHECK(cfg_.rank >= 1, ErrorCode::kInvalidArgument, "LoRA rank must be >= 1, got " + std::to_string(cfg_.rank));
  HAYATE_CHECK(std::isfinite(cfg_.alpha), ErrorCode::kInvalidArgument, "LoRA alpha must be a finite number");
  HAYATE_CHECK(!cfg_.modules.empty(), ErrorCode::kInvalidArgument, "LoRA needs at least one target module");
  scale_ = static_cast<float>(cfg_.scale());
  index_.assign(static_cast<size_t>(mc.num_layers) * kNumLoraTargets, -1);
  for (const LoraModuleRef& m : cfg_.modules) {
    HAYATE_CHECK(m.layer >= 0 && m.layer < mc.num_layers, ErrorCode::kInvalidArgument,
                 "LoRA module on layer " + std::to_string(m.layer) + ", but the model has " + std::to_string(mc.num_layers) + " layers");
    int& slot = index_[static_cast<size_t>(m.layer) * kNumLoraTargets + static_cast<int>(m.target)];
    HAYATE_CHECK(slot < 0, ErrorCode::kInvalidArgument,
                 std::string("LoRA module listed twice: layer ") + std::to_string(m.layer) + " " + lora_target_name(m.target));
    slot = static_cast<int>(adapters_.size());
    auto [out, in] = lora_target_shape(mc, m.target);
    LoraAdapter a;
    a.ref = m;
    a.in = in;
    a.out = out;
    a.a = Buffer(be, be.param_dtype(), {cfg_.rank, in});
    a.b = Buffer(be, be.param_dtype(), {out, cfg_.rank});
    // kaiming_uniform_(a=sqrt(5)) on [r, in]: bound = gain * sqrt(3 / fan_in) with gain^2 = 2 / (1 + 5)
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    const uint64_t seed = derive_seed(cfg_.seed, static_cast<uint64_t>(m.layer) * kNumLoraTargets + static_cast<int>(m.target));
    std::vector<double> host(static_cast<size_t>(cfg_.rank * in));
    for (size_t i = 0; i < host.size(); ++i) host[i] = (2.0 * rng_uniform(seed, i) - 1.0) * bound;
    be.upload(a.a, host.data(), DType::F64);
    be.fill_zero(a.b);
    adapters_.push_back(std::move(a));
  }
}

const LoraAdapter* LoraSet::find(int layer, LoraTarget t) const {
  size_t i = static_cast<size_t>(layer) * kNumLoraTargets + static_cast<int>(t);
  return i < index_.size() && index_[i] >= 0 ? &adapters_[index_[i]] : nullptr;
}

LoraAdapter* LoraSet::find(int layer, LoraTarget t) {
  return const_cast<LoraAdapter*>(static_cast<const LoraSet*>(this)->find(layer, t));
}

size_t LoraSet::parameter_count() const {
  size_t n = 0;
  for (const LoraAdapter& a : adapters_) n += static_cast<size_t>(a.a.t().numel() + a.b.t().numel());
  return n;
}

void LoraSet::allocate_grads() {
  if (grads_) return;
  for (LoraAdapter& a : adapters_) {
    a.grad_a = Buffer(be_, be_.param_dtype(), {a.a.t().shape[0], a.a.t().shape[1]});
    a.grad_b = Buffer(be_, be_.param_dtype(), {a.b.t().shape[0], a.b.t().shape[1]});
  }
  grads_ = true;
  zero_grads();
}

void LoraSet::zero_grads() {
  if (!grads_) return;
  for (LoraAdapter& a : adapters_) {
    be_.fill_zero(a.grad_a);
    be_.fill_zero(a.grad_b);
  }
}

}  // namespace hayate
