// The benchmarks' host-side logic that needs no backend: the kernel benchmark's `--shapes` syntax for its
// attention cases (bench/native/attention_bench_shape.h; bench/gpu/torch_baselines.py parses the same
// syntax), the training benchmark's options, and the output check every kernel case runs before timing.
#include <cmath>
#include <string>
#include <vector>

#include "../../bench/native/attention_bench_shape.h"
#include "../../bench/native/kernel_bench_cases.h"
#include "../../bench/native/train_bench_options.h"
#include "check.h"

using namespace hayate;
using namespace hayate::bench;

TEST(kernel_bench_attention_shapes) {
  AttentionBenchShape a = parse_attention_bench_shape("8x512");
  CHECK(a.seqs == 8 && a.seqlen == 512 && a.hq == 16 && a.hkv == 8 && a.hd == 128);
  a = parse_attention_bench_shape("4x1024:32/8/64");
  CHECK(a.seqs == 4 && a.seqlen == 1024 && a.hq == 32 && a.hkv == 8 && a.hd == 64);
  for (const char* b : {"", "8", "8x", "x512", "0x512", "8x512:16/8", "8x512:6/4/64", "8x512:16/8/64/1", "ax5", "8x-1"})
    CHECK_THROWS_CODE(parse_attention_bench_shape(b), ErrorCode::kInvalidArgument);
  for (const std::string& s : default_attention_bench_shapes()) parse_attention_bench_shape(s);
}

// `hayate_bench train` options (bench/native/train_bench_options.h): defaults per backend and the checks.
TEST(train_bench_options) {
  TrainBenchOptions o = default_train_bench_options("qwen3-0.6b", "cuda");
  CHECK(o.seq_lens == std::vector<int>({512, 2048}) && o.grpo_step);
  CHECK(o.prompts == 8 && o.generations == 8 && o.max_new_tokens == 512);
  check_train_bench_options(o);
  o = default_train_bench_options("qwen3-0.6b", "cpu");
  CHECK(o.seq_lens == std::vector<int>({128, 512}) && !o.grpo_step);
  check_train_bench_options(o);
  o = default_train_bench_options("tiny", "cpu");
  CHECK(o.seq_lens == std::vector<int>({64, 256}) && !o.grpo_step);

  auto bad = [](void (*edit)(TrainBenchOptions&)) {
    TrainBenchOptions b = default_train_bench_options("tiny", "cpu");
    b.grpo_step = true;
    edit(b);
    CHECK_THROWS_CODE(check_train_bench_options(b), ErrorCode::kInvalidArgument);
  };
  bad([](TrainBenchOptions& b) { b.backend = "tpu"; });
  bad([](TrainBenchOptions& b) { b.shape = "llama-70b"; });
  bad([](TrainBenchOptions& b) { b.recompute = "sometimes"; });
  bad([](TrainBenchOptions& b) { b.seq_lens = {1}; });
  bad([](TrainBenchOptions& b) { b.seq_lens = {513}; });  // past tiny's 512 positions
  bad([](TrainBenchOptions& b) { b.prompts = 0; });
  bad([](TrainBenchOptions& b) { b.generations = 0; });
  bad([](TrainBenchOptions& b) { b.micro_batches = 0; });
  bad([](TrainBenchOptions& b) { b.max_new_tokens = 0; });
  bad([](TrainBenchOptions& b) { b.prompt_len = 300, b.max_new_tokens = 300; });
  bad([](TrainBenchOptions& b) { b.seq_lens.clear(), b.grpo_step = false; });  // nothing to run
  TrainBenchOptions smoke = default_train_bench_options("tiny", "cpu");
  smoke.seq_lens.clear();
  smoke.grpo_step = true;
  smoke.prompts = smoke.generations = 2;
  smoke.prompt_len = smoke.max_new_tokens = 4;
  check_train_bench_options(smoke);  // the CPU smoke run's configuration is valid
}

// The kernel benchmark's output check (kernel_bench_cases.h): error relative to the reference's scale,
// NaN/Inf detection, the worst of several outputs, and the sampler's set-membership check.
TEST(kernel_bench_output_check) {
  const std::vector<float> ref = {1.0f, -10.0f, 2.0f, 0.0f};
  KernelBenchCheck c;
  kernel_bench_compare(c, "out", ref.data(), ref.data(), ref.size(), 1e-6, "itself");
  CHECK(c.done && c.pass && c.max_abs_err == 0 && c.max_rel_err == 0 && c.compared == 4 && c.ref_max_abs == 10);

  std::vector<float> got = ref;
  got[2] += 0.05f;  // 0.05 on a scale of 10: 5e-3
  kernel_bench_compare(c, "second", got.data(), ref.data(), got.size(), 1e-2, "ref");
  CHECK(c.pass && c.compared == 8);
  CHECK_NEAR(c.max_rel_err, 5e-3, 1e-6);
  CHECK_NEAR(c.max_abs_err, 0.05, 1e-6);
  CHECK(c.note.find("second") != std::string::npos);  // the worst output is named
  kernel_bench_compare(c, "third", got.data(), ref.data(), got.size(), 1e-3, "ref");  // the same error, a tighter tolerance
  CHECK(!c.pass);

  KernelBenchCheck n;
  got = ref;
  got[0] = NAN;
  kernel_bench_compare(n, "nan", got.data(), ref.data(), got.size(), 1.0, "ref");
  CHECK(!n.pass && std::isinf(n.max_rel_err));

  // sampling: row 0 has one token with nearly all the mass; rows 1 and 2 are uniform
  const int64_t V = 4;
  const std::vector<float> z = {10.0f, 0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  std::vector<SamplingRow> rows(3);
  rows[0].top_p = 0.5f;
  rows[1].top_k = 2;
  const float lp_uniform = std::log(0.25f);
  const double lse0 = 10.0 + std::log(1.0 + 3.0 * std::exp(-10.0));
  const std::vector<int32_t> ids = {0, 3, 2};
  const std::vector<float> lps = {static_cast<float>(10.0 - lse0), lp_uniform, lp_uniform};
  KernelBenchCheck s;
  kernel_bench_check_samples(s, z.data(), 3, V, rows.data(), ids.data(), lps.data(), 1e-5);
  CHECK(s.pass && s.compared == 3);
  const std::vector<int32_t> outside = {1, 3, 2};  // token 1 of row 0 is outside its top-p set
  KernelBenchCheck s2;
  kernel_bench_check_samples(s2, z.data(), 3, V, rows.data(), outside.data(), lps.data(), 1.0);
  CHECK(!s2.pass && s2.note.find("1 of 3 ids") != std::string::npos);
  std::vector<float> wrong_lp = lps;
  wrong_lp[1] = -0.5f;  // a log-prob that does not match the logits
  KernelBenchCheck s3;
  kernel_bench_check_samples(s3, z.data(), 3, V, rows.data(), ids.data(), wrong_lp.data(), 1e-3);
  CHECK(!s3.pass);
}
