// Model::share: a second model over the same frozen weights on its own backend (docs/architecture.md,
// "Rollouts overlapping updates"). It computes exactly what the original computes, allocates no weights
// of its own, keeps its own adapters, runs at the same time as the original on another thread, and
// outlives the original as long as the weights' backend lives.
#include <memory>
#include <thread>

#include "check.h"
#include "cpu/cpu_backend.h"
#include "generator.h"
#include "model.h"
#include "tiny_config.h"

using namespace hayate;
using namespace hayate_test;

namespace {

ModelConfig share_config() {
  ModelConfig c = tiny_config(Arch::Qwen3, 48, 64);
  c.tie_word_embeddings = false;  // the lm head is its own tensor, shared too
  return c;
}

std::vector<GenerationOutput> sample(Model& m, uint64_t seed) {
  std::vector<GenerationRequest> reqs(3);
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].prompt = {1, 2, static_cast<int32_t>(3 + i), 4};
    reqs[i].n = 2;
    reqs[i].seed = seed + i;
    reqs[i].max_new_tokens = 12;
  }
  Generator gen(m, {});
  return gen.generate(reqs, GenerationOptions{});
}

bool same_outputs(const std::vector<GenerationOutput>& a, const std::vector<GenerationOutput>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].tokens != b[i].tokens || a[i].logprobs != b[i].logprobs) return false;
  return true;
}

LoraConfig one_adapter(double alpha) {
  LoraConfig lc;
  lc.rank = 2;
  lc.alpha = alpha;
  lc.modules = {{0, LoraTarget::Q}, {1, LoraTarget::Down}};
  lc.seed = 3;
  return lc;
}

// B starts at zero; a non-zero B makes the adapter change the model's outputs.
void perturb_b(Model& m) {
  for (LoraAdapter& ad : m.lora()->adapters()) {
    std::vector<float> host(static_cast<size_t>(ad.b.t().numel()), 0.25f);
    m.backend().upload(ad.b, host.data(), DType::F32);
  }
}

}  // namespace

TEST(shared_model_computes_what_the_original_computes_without_copying_weights) {
  CpuBackend be_a(2, "builtin"), be_b(1, "builtin");
  auto a = Model::random(be_a, share_config(), 11);
  const size_t weights_in_a = be_a.bytes_in_use();
  auto b = Model::share(*a, be_b);
  CHECK(be_b.bytes_in_use() == 0);  // nothing copied onto the second backend
  CHECK(be_a.bytes_in_use() == weights_in_a);
  CHECK(b->shares_weights_with(*a));
  CHECK(&b->weights_backend() == &be_a);
  CHECK(&b->backend() == &be_b);
  CHECK(b->weight_bytes() == a->weight_bytes());
  CHECK(a->weight_bytes() == weights_in_a);
  CHECK(b->parameter_count() == a->parameter_count());
  CHECK(b->lora() == nullptr);
  std::vector<int32_t> toks{5, 7, 9, 11, 2, 3};
  CHECK(a->sequence_logits(toks) == b->sequence_logits(toks));  // bit for bit, on another thread count
  CHECK(same_outputs(sample(*a, 4), sample(*b, 4)));
  // a model shared from the shared one points at the same weights and their owner
  CpuBackend be_c(1, "builtin");
  auto c = Model::share(*b, be_c);
  CHECK(c->shares_weights_with(*a));
  CHECK(&c->weights_backend() == &be_a);
  CHECK(c->sequence_logits(toks) == a->sequence_logits(toks));
}

TEST(shared_model_has_its_own_adapters) {
  CpuBackend be_a(1, "builtin"), be_b(1, "builtin");
  auto a = Model::random(be_a, share_config(), 12);
  auto b = Model::share(*a, be_b);
  std::vector<int32_t> toks{3, 4, 5, 6};
  const std::vector<float> base = a->sequence_logits(toks);
  b->attach_lora(one_adapter(4.0));
  perturb_b(*b);
  CHECK(a->lora() == nullptr);
  CHECK(be_b.bytes_in_use() > 0);  // the adapters live on the second backend
  CHECK(b->sequence_logits(toks) != base);
  CHECK(a->sequence_logits(toks) == base);
  // the same adapters on the original give the same numbers
  a->attach_lora(one_adapter(4.0));
  perturb_b(*a);
  CHECK(a->sequence_logits(toks) == b->sequence_logits(toks));
  b->set_lora_enabled(false);
  CHECK(b->sequence_logits(toks) == base);
}

TEST(shared_model_runs_concurrently_with_the_original) {
  CpuBackend be_a(1, "builtin"), be_b(1, "builtin");
  auto a = Model::random(be_a, share_config(), 13);
  auto b = Model::share(*a, be_b);
  b->attach_lora(one_adapter(2.0));
  perturb_b(*b);
  const auto want_a = sample(*a, 20), want_b = sample(*b, 30);
  for (int round = 0; round < 5; ++round) {
    std::vector<GenerationOutput> got_a, got_b;
    std::thread ta([&] { got_a = sample(*a, 20); });
    std::thread tb([&] { got_b = sample(*b, 30); });
    ta.join();
    tb.join();
    CHECK(same_outputs(got_a, want_a));
    CHECK(same_outputs(got_b, want_b));
  }
}

TEST(shared_model_outlives_the_original) {
  CpuBackend be_a(1, "builtin");
  std::vector<int32_t> toks{1, 2, 3};
  std::unique_ptr<CpuBackend> be_b = std::make_unique<CpuBackend>(1, "builtin");
  auto a = Model::random(be_a, share_config(), 14);
  const std::vector<float> want = a->sequence_logits(toks);
  const size_t weights = be_a.bytes_in_use();
  auto b = Model::share(*a, *be_b);
  a.reset();  // the weights stay: b holds them
  CHECK(be_a.bytes_in_use() == weights);
  CHECK(b->sequence_logits(toks) == want);
  b.reset();  // the last holder frees them on their own backend
  CHECK(be_a.bytes_in_use() == 0);
}

TEST(share_rejects_a_backend_that_cannot_read_the_weights) {
  CpuBackend be_a(1, "builtin"), be_f64(1, "builtin", "f64");
  auto a = Model::random(be_a, share_config(), 15);
  CHECK_THROWS_CODE(Model::share(*a, be_f64), ErrorCode::kInvalidArgument);
}
