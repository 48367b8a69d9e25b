// LoRA adapters (PEFT semantics): a frozen projection y = x W^T + b gains scale * (x A^T) B^T with
// A [r, in] and B [out, r] trainable, scale = alpha / r (alpha / sqrt(r) with rsLoRA). A starts as PEFT's
// kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), and B at zero, so a fresh adapter leaves
// the model unchanged. Parameters, gradients and optimizer moments live on the backend in param_dtype().
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend.h"
#include "model_config.h"
#include "unset_option.h"

namespace hayate {

// The projections an adapter can target, named as in Hugging Face checkpoints (PEFT target_modules).
enum class LoraTarget : int { Q = 0, K, V, O, Gate, Up, Down };
constexpr int kNumLoraTargets = 7;
const char* lora_target_name(LoraTarget t);  // "q_proj", "k_proj", ..., "down_proj"
// Throws kInvalidArgument listing the valid names.
LoraTarget parse_lora_target(const std::string& name);
// [out, in] of the projection in a model of this config.
std::pair<int64_t, int64_t> lora_target_shape(const ModelConfig& cfg, LoraTarget t);

struct LoraModuleRef {
  int layer = 0;
  LoraTarget target = LoraTarget::Q;
};

// rank and alpha have no defaults: LoraSet rejects an unset one (rank 0, alpha kUnset).
struct LoraConfig {
  int rank = 0;                        // r >= 1
  double alpha = kUnset;               // scale numerator
  bool rslora = false;                 // scale alpha / sqrt(r) instead of alpha / r
  std::vector<LoraModuleRef> modules;  // which (layer, projection) pairs carry an adapter
  uint64_t seed = 0;                   // initialisation of A (per module: independent of the others)

  double scale() const;
};

struct LoraAdapter {
  LoraModuleRef ref;
  int64_t in = 0, out = 0;
  Buffer a, b;            // [r, in], [out, r]
  Buffer grad_a, grad_b;  // same shapes; allocated by allocate_grads()
};

class LoraSet {
 public:
  // Validates the config (rank >= 1, alpha finite, modules in range and distinct, at least one) and
  // allocates initialised adapters. Throws kInvalidArgument.
  LoraSet(Backend& be, const ModelConfig& cfg, LoraConfig config);

  const LoraConfig& config() const { return cfg_; }
  float scale() const { return scale_; }
  int rank() const { return cfg_.rank; }
  std::vector<LoraAdapter>& adapters() { return adapters_; }
  const std::vector<LoraAdapter>& adapters() const { return adapters_; }
  // The adapter of a projection, or nullptr when it has none.
  const LoraAdapter* find(int layer, LoraTarget t) const;
  LoraAdapter* find(int layer, LoraTarget t);
  size_t parameter_count() const;

  void allocate_grads();  // idempotent; zeroed
  bool has_grads() const { return grads_; }
  void zero_grads();

 private:
  Backend& be_;
  LoraConfig cfg_;
  float scale_ = 1.0f;
  std::vector<LoraAdapter> adapters_;
  std::vector<int> index_;  // layer * kNumLoraTargets + target -> adapter index or -1
  bool grads_ = false;
};

}  // namespace hayate
