// The CUDA backend against the CPU backend (needs a CUDA device): every op on the same random inputs, over
// several shapes with odd sizes, plus generation on a tiny model and one GRPO step (LoRA gradients).
// Without a device every test returns at once and cuda_backend_availability prints one visible SKIPPED
// line. Inputs are rounded to bf16 first (the CUDA backend stores bf16), so differences measure the
// kernels' arithmetic, not input quantisation. Tolerances are stated per op and dtype next to each check:
// max |cuda - cpu| / max |cpu| unless said otherwise. The host-side logic of cuda/ (plans, tiling, checks)
// is checked on every machine in test_cuda_host_logic.cpp.
//
// Tests are named cuda_op/<family>/<case>. The GEMM-bearing cases of cuda/op_check_cases.h reach every
// GEMM kernel variant the planner can choose for the qwen3-0.6b workload (the host test checks that list
// without a GPU); GEMMs are planned as on a 132-SM H100 / H200 whatever the device, each case checks that
// the variants predicted for it ran, and cuda_op/<family>/~variants prints the variants that ran.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../../cuda/plan.h"
#include "backend.h"
#include "check.h"
#include "cpu/cpu_backend.h"
#include "cpu/vec_math.h"
#include "generator.h"
#include "lora.h"
#include "loss.h"
#include "model.h"
#include "rng.h"
#include "trainer.h"
#include "train_options.h"
#ifdef HAYATE_WITH_CUDA
#include "../../cuda/variant_stats.h"
#include "cuda_backend.h"
#endif
#include "../../cuda/op_check_cases.h"

using namespace hayate;
namespace g = hayate::gpu;

namespace {

float bf16r(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// Normal values rounded to bf16 (exactly representable in every dtype the backends use).
std::vector<float> rnd(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = bf16r(d(rng) * scale);
  return v;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(double(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return diff / scale;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

bool cuda_present() { return cuda_device_count() > 0; }

// ---- helpers for the device tests (only called with a device) ----------------------------------------

Buffer put(Backend& be, DType dt, std::vector<int64_t> shape, const std::vector<float>& host) {
  Buffer b = shape.size() == 1 ? Buffer(be, dt, {shape[0]})
             : shape.size() == 2 ? Buffer(be, dt, {shape[0], shape[1]})
                                 : Buffer(be, dt, {shape[0], shape[1], shape[2]});
  if (!host.empty()) be.upload(b, host.data(), DType::F32);
  return b;
}
Buffer put_i32(Backend& be, const std::vector<int32_t>& v) {
  Buffer b(be, DType::I32, {static_cast<int64_t>(std::max<size_t>(v.size(), 1))});
  if (!v.empty()) be.copy_from_host(b.t().data, v.data(), v.size() * 4);
  return b;
}
Buffer put_i32_2d(Backend& be, const std::vector<int32_t>& v, int64_t r, int64_t c) {
  Buffer b(be, DType::I32, {r, c});
  be.copy_from_host(b.t().data, v.data(), v.size() * 4);
  return b;
}
std::vector<float> get(Backend& be, Tensor t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  be.download_f32(v.data(), t);
  return v;
}
std::vector<uint8_t> raw(Backend& be, Tensor t) {
  std::vector<uint8_t> v(t.nbytes());
  be.copy_to_host(v.data(), t.data, v.size());
  return v;
}

struct Backends {
  std::unique_ptr<Backend> cpu, gpu;
};
Backends make_pair_of_backends(int cpu_threads = 2) {
  BackendOptions c;
  c.kind = "cpu";
  c.threads = cpu_threads;
  c.gemm = "builtin";
  BackendOptions g;
  g.kind = "cuda";
#ifdef HAYATE_WITH_CUDA
  // plan GEMMs as on an H100 / H200, whatever the device: the variants each check reaches are the ones
  // op_check_cases.h predicts (and the host coverage test lists)
  g::set_gemm_plan_sms_override(g::kOpCheckPlanSms);
#endif
  return {make_backend(c), make_backend(g)};
}

const char* dn(DType t) { return dtype_name(t); }

}  // namespace

// The op checks are named cuda_op/<family>/<case> (families: gemm, lora, logprob, attention,
// paged_attention, sampling, elementwise, adamw, model) so the GPU validation runs one process per family
// (`hayate_native_tests cuda_op/gemm/`): a device fault in one family cannot poison the others.
#define CUDA_OP_TEST(ident, name)                                                      \
  static void ident();                                                                 \
  static ::hayate_test::Registrar HT_CAT(registrar_, ident)(name, ident);              \
  static void ident()

// The visible skip: without a device, the checks below return at once and this says so.
TEST(cuda_backend_availability) {
  if (cuda_present()) {
    std::printf("CUDA device present: running the CUDA op checks\n");
    return;
  }
  std::printf("SKIPPED: CUDA op checks (no CUDA device)\n");
  BackendOptions o;
  o.kind = "cuda";
  CHECK_THROWS_CODE(make_backend(o), ErrorCode::kBackend);
#ifdef HAYATE_WITH_CUDA
  CHECK(cuda_backend_device_count() == 0);
  CHECK_THROWS_CODE(make_cuda_backend(o), ErrorCode::kBackend);
#endif
}

CUDA_OP_TEST(gemm_linear_and_transposes, "cuda_op/gemm/linear_and_transposes") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  // bf16 inputs are exact, products are exact in fp32, only the summation order differs from the CPU:
  // F32 outputs within 2e-5 of the largest |value| (K <= 1024 here); BF16 outputs add one rounding (2^-8).
  auto tol = [](DType out) { return out == DType::F32 ? 2e-5 : 8e-3; };
  for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {3, 17, 5}, {37, 65, 127}, {8, 1024, 1024},
                                                             {64, 1000, 1024}, {300, 200, 520}, {129, 96, 40}, {2, 33, 1000}}) {
    for (DType dt : {DType::BF16, DType::F32}) {
      for (DType od : {DType::BF16, DType::F32}) {
        auto x = rnd(M * K, 1), w = rnd(N * K, 2, 0.05f), b = rnd(N, 3);
        Buffer cx = put(*cpu, DType::F32, {M, K}, x), cw = put(*cpu, DType::F32, {N, K}, w), cb = put(*cpu, DType::F32, {N}, b);
        Buffer co = put(*cpu, DType::F32, {M, N}, {});
        cpu->linear(co, cx, cw, cb);
        Buffer gx = put(*gpu, dt, {M, K}, x), gw = put(*gpu, dt, {N, K}, w), gb = put(*gpu, dt, {N}, b);
        Buffer go = put(*gpu, od, {M, N}, {});
        gpu->linear(go, gx, gw, gb);
        const double e = rel_err(get(*gpu, go), get(*cpu, co));
        if (!(e <= tol(od)))
          std::fprintf(stderr, "  linear M=%lld N=%lld K=%lld in %s out %s: rel err %.3g\n", (long long)M, (long long)N,
                       (long long)K, dn(dt), dn(od), e);
        CHECK(e <= tol(od));
      }
    }
    // gemm: every transpose, alpha/beta, generic path (transposed operands)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (DType od : {DType::BF16, DType::F32}) {
          auto a = rnd(M * K, 4), b = rnd(K * N, 5, 0.05f), c0 = rnd(M * N, 6);
          std::vector<int64_t> as = ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K};
          std::vector<int64_t> bs = tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
          Buffer ca = put(*cpu, DType::F32, as, a), cbb = put(*cpu, DType::F32, bs, b), cc = put(*cpu, DType::F32, {M, N}, c0);
          cpu->gemm(cc, ca, cbb, ta, tb, 0.5f, 0.25f);
          Buffer ga = put(*gpu, DType::BF16, as, a), gbb = put(*gpu, DType::BF16, bs, b), gc = put(*gpu, od, {M, N}, c0);
          gpu->gemm(gc, ga, gbb, ta, tb, 0.5f, 0.25f);
          const double e = rel_err(get(*gpu, gc), get(*cpu, cc));
          if (!(e <= tol(od)))
            std::fprintf(stderr, "  gemm M=%lld N=%lld K=%lld ta=%d tb=%d out %s: rel err %.3g\n", (long long)M,
                         (long long)N, (long long)K, ta, tb, dn(od), e);
          CHECK(e <= tol(od));
        }
  }
#ifdef HAYATE_WITH_CUDA
  if (CudaBackend::cublas_compiled()) {  // the comparison path gives the same answers
    auto* cb = static_cast<CudaBackend*>(gpu.get());
    const int64_t M = 37, N = 300, K = 256;
    auto x = rnd(M * K, 7), w = rnd(N * K, 8, 0.05f);
    Buffer gx = put(*gpu, DType::BF16, {M, K}, x), gw = put(*gpu, DType::BF16, {N, K}, w);
    Buffer o1 = put(*gpu, DType::F32, {M, N}, {}), o2 = put(*gpu, DType::F32, {M, N}, {});
    gpu->linear(o1, gx, gw, {});
    cb->set_gemm_backend(g::GemmBackend::Cublas);
    gpu->linear(o2, gx, gw, {});
    cb->set_gemm_backend(g::GemmBackend::Hayate);
    CHECK(rel_err(get(*gpu, o2), get(*gpu, o1)) < 2e-5);
  }
#endif
}

// The contract's batch invariance: row i of linear() is bit-identical whatever the batch (the K-chunked
// summation order does not depend on M, nor on whether the chunks ran split across blocks).
CUDA_OP_TEST(gemm_linear_batch_invariant, "cuda_op/gemm/linear_batch_invariant") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  for (int64_t K : {1024, 999, 3072}) {
    const int64_t M = 300, N = 1000;
    auto x = rnd(M * K, 9), w = rnd(N * K, 10, 0.05f);
    Buffer gx = put(*gpu, DType::BF16, {M, K}, x), gw = put(*gpu, DType::BF16, {N, K}, w);
    Buffer all = put(*gpu, DType::F32, {M, N}, {});
    gpu->linear(all, gx, gw, {});
    const std::vector<uint8_t> ref = raw(*gpu, all);
    for (int64_t m : {1, 5, 33, 64, 200}) {
      for (int64_t r0 : {int64_t(0), M - m}) {
        Buffer part = put(*gpu, DType::F32, {m, N}, {});
        gpu->linear(part, gx.t().slice_rows(r0, m), gw, {});
        const std::vector<uint8_t> got = raw(*gpu, part);
        CHECK(std::memcmp(got.data(), ref.data() + r0 * N * 4, got.size()) == 0);
      }
    }
  }
}

// lora_linear: one fused GEMM, out = [x | xa] [W | scale B]^T + bias. Shapes cover odd M, N, K, r (generic
// loader tails, rank padding), decode M (split-K, where the extra chunk is its own block), K % 8 != 0
// (generic path) and f32 activations (generic path with bf16 packed extras).
CUDA_OP_TEST(lora_forward_vs_cpu, "cuda_op/lora/forward_vs_cpu") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  for (auto [M, N, K, r] : std::vector<std::array<int64_t, 4>>{{5, 64, 96, 8},
                                                               {64, 1024, 1024, 32},
                                                               {3, 17, 33, 3},
                                                               {1, 1024, 1024, 64},
                                                               {37, 65, 127, 5},
                                                               {300, 200, 520, 16},
                                                               {257, 384, 1024, 32}}) {
    for (DType dt : {DType::BF16, DType::F32}) {
      auto x = rnd(M * K, 11), w = rnd(N * K, 12, 0.05f), b = rnd(N, 13), A = rnd(r * K, 14, 0.1f), B = rnd(N * r, 15, 0.1f);
      const float scale = 2.0f;
      Buffer co = put(*cpu, DType::F32, {M, N}, {}), cxa = put(*cpu, DType::F32, {M, r}, {});
      cpu->lora_linear(co, cxa, put(*cpu, DType::F32, {M, K}, x), put(*cpu, DType::F32, {N, K}, w),
                       put(*cpu, DType::F32, {N}, b), put(*cpu, DType::F32, {r, K}, A), put(*cpu, DType::F32, {N, r}, B), scale);
      Buffer go = put(*gpu, dt, {M, N}, {}), gxa = put(*gpu, dt, {M, r}, {});
      gpu->lora_linear(go, gxa, put(*gpu, dt, {M, K}, x), put(*gpu, dt, {N, K}, w), put(*gpu, dt, {N}, b),
                       put(*gpu, DType::F32, {r, K}, A), put(*gpu, DType::F32, {N, r}, B), scale);
      // x A^T and scale B enter the tensor cores as bf16 (as every GEMM operand): 2e-2 with bf16 outputs,
      // 1e-2 with f32 outputs (no output rounding); xa: 1e-2
      CHECK(rel_err(get(*gpu, go), get(*cpu, co)) < (dt == DType::BF16 ? 2e-2 : 1e-2));
      CHECK(rel_err(get(*gpu, gxa), get(*cpu, cxa)) < 1e-2);
      // xa absent (inference): the same out, bit for bit
      Buffer go2 = put(*gpu, dt, {M, N}, {});
      gpu->lora_linear(go2, {}, put(*gpu, dt, {M, K}, x), put(*gpu, dt, {N, K}, w), put(*gpu, dt, {N}, b),
                       put(*gpu, DType::F32, {r, K}, A), put(*gpu, DType::F32, {N, r}, B), scale);
      CHECK(raw(*gpu, go2) == raw(*gpu, go));
    }
  }
}

// The fused GEMM keeps linear()'s batch invariance: the extra (LoRA) chunk is folded after K's chunks in
// the same order whether the chunks run in one block (large M) or split across blocks (small M).
CUDA_OP_TEST(lora_forward_batch_invariant, "cuda_op/lora/forward_batch_invariant") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  (void)cpu;
  for (auto [K, r] : std::vector<std::array<int64_t, 2>>{{1024, 32}, {999, 5}}) {
    const int64_t M = 300, N = 1000;
    auto x = rnd(M * K, 16), w = rnd(N * K, 17, 0.05f), A = rnd(r * K, 18, 0.1f), B = rnd(N * r, 19, 0.1f);
    Buffer gx = put(*gpu, DType::BF16, {M, K}, x), gw = put(*gpu, DType::BF16, {N, K}, w);
    Buffer ga = put(*gpu, DType::F32, {r, K}, A), gb = put(*gpu, DType::F32, {N, r}, B);
    Buffer all = put(*gpu, DType::F32, {M, N}, {});
    gpu->lora_linear(all, {}, gx, gw, {}, ga, gb, 2.0f);
    const std::vector<uint8_t> ref = raw(*gpu, all);
    for (int64_t m : {1, 5, 33, 200}) {
      for (int64_t r0 : {int64_t(0), M - m}) {
        Buffer part = put(*gpu, DType::F32, {m, N}, {});
        gpu->lora_linear(part, {}, gx.t().slice_rows(r0, m), gw, {}, ga, gb, 2.0f);
        const std::vector<uint8_t> got = raw(*gpu, part);
        CHECK(std::memcmp(got.data(), ref.data() + r0 * N * 4, got.size()) == 0);
      }
    }
  }
}

CUDA_OP_TEST(elementwise_rows, "cuda_op/elementwise/rows_and_elementwise") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  // tolerances: F32 1e-5 (same fp32 formula), BF16 outputs 8e-3 (one bf16 rounding)
  auto tol = [](DType t) { return t == DType::F32 ? 1e-5 : 8e-3; };
  for (DType dt : {DType::BF16, DType::F32}) {
    for (int64_t rows : {1, 7, 300}) {
      for (int64_t D : {1, 33, 128, 1023, 1024}) {
        auto x = rnd(rows * D, 20), y = rnd(rows * D, 21), w = rnd(D, 22);
        Buffer cx = put(*cpu, DType::F32, {rows, D}, x), cy = put(*cpu, DType::F32, {rows, D}, y),
               cw = put(*cpu, DType::F32, {D}, w), co = put(*cpu, DType::F32, {rows, D}, {});
        Buffer gx = put(*gpu, dt, {rows, D}, x), gy = put(*gpu, dt, {rows, D}, y), gw = put(*gpu, DType::BF16, {D}, w),
               go = put(*gpu, dt, {rows, D}, {});
        cpu->rmsnorm(co, cx, cw, 1e-6f);
        gpu->rmsnorm(go, gx, gw, 1e-6f);
        CHECK(rel_err(get(*gpu, go), get(*cpu, co)) < tol(dt));
        gpu->rmsnorm(gx, gx, gw, 1e-6f);  // in place
        CHECK(raw(*gpu, gx) == raw(*gpu, go));
        gpu->upload(gx, x.data(), DType::F32);
        cpu->add(co, cx, cy);
        gpu->add(go, gx, gy);
        CHECK(rel_err(get(*gpu, go), get(*cpu, co)) < tol(dt));
        cpu->swiglu(co, cx, cy);
        gpu->swiglu(go, gx, gy);
        CHECK(rel_err(get(*gpu, go), get(*cpu, co)) < tol(dt));
        gpu->swiglu(gx, gx, gy);  // out aliases gate
        CHECK(raw(*gpu, gx) == raw(*gpu, go));
      }
    }
    // embedding: exact copies (and conversion to another dtype)
    const int64_t V = 50, D = 33, n = 9;
    auto table = rnd(V * D, 23);
    std::vector<int32_t> ids{3, 0, 49, 3, 7, 7, 12, 1, 48};
    Buffer gt = put(*gpu, dt, {V, D}, table), gid = put_i32(*gpu, ids);
    for (DType od : {dt, DType::F32}) {
      Buffer go = put(*gpu, od, {n, D}, {});
      gpu->embedding(go, gt, gid);
      const std::vector<float> got = get(*gpu, go);
      bool same = true;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < D; ++j) same = same && got[i * D + j] == table[ids[i] * D + j];
      CHECK(same);
    }
    std::vector<int32_t> bad{3, 50};
    Buffer gbad = put_i32(*gpu, bad), go2 = put(*gpu, dt, {2, D}, {});
    CHECK_THROWS_CODE((gpu->embedding(go2, gt, gbad), gpu->synchronize()), ErrorCode::kInvalidArgument);
    gpu->synchronize();  // the error word was cleared by the throw
  }
}

CUDA_OP_TEST(elementwise_rope_kv_store, "cuda_op/elementwise/rope_and_kv_store") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  for (DType dt : {DType::BF16, DType::F32}) {
    for (int hd : {64, 128, 18}) {
      const int64_t n = 13, H = 3, max_pos = 700;
      std::vector<float> cs(max_pos * hd);
      for (int64_t p = 0; p < max_pos; ++p)
        for (int i = 0; i < hd / 2; ++i) {
          const double ang = p * std::pow(10000.0, -2.0 * i / hd);
          cs[p * hd + i] = static_cast<float>(std::cos(ang));
          cs[p * hd + hd / 2 + i] = static_cast<float>(std::sin(ang));
        }
      std::vector<int32_t> pos(n);
      for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>((i * 97 + 5) % max_pos);
      auto x = rnd(n * H * hd, 30);
      Buffer cx = put(*cpu, DType::F32, {n, H * hd}, x), gx = put(*gpu, dt, {n, H * hd}, x);
      Buffer ccs = put(*cpu, DType::F32, {max_pos, hd}, cs), gcs = put(*gpu, DType::F32, {max_pos, hd}, cs);
      Buffer cp = put_i32(*cpu, pos), gp = put_i32(*gpu, pos);
      cpu->rope(cx, cp, ccs, hd);
      gpu->rope(gx, gp, gcs, hd);
      CHECK(rel_err(get(*gpu, gx), get(*cpu, cx)) < (dt == DType::F32 ? 1e-5 : 8e-3));
      gpu->rope_backward(gx, gp, gcs, hd);  // the inverse rotation restores x
      CHECK(max_abs_diff(get(*gpu, gx), x) < (dt == DType::F32 ? 1e-5 : 4e-2));
    }
    // kv_store: exact row copies into scattered slots
    const int64_t rows = 64, W = 8 * 128, n = 5;
    auto k = rnd(n * W, 31), v = rnd(n * W, 32);
    std::vector<int32_t> slots{63, 0, 17, 18, 40};
    Buffer kc = put(*gpu, dt, {rows, W}, std::vector<float>(rows * W, 0.0f)), vc = put(*gpu, dt, {rows, W}, std::vector<float>(rows * W, 0.0f));
    Buffer gk = put(*gpu, dt, {n, W}, k), gv = put(*gpu, dt, {n, W}, v), gs = put_i32(*gpu, slots);
    gpu->kv_store(kc, vc, gk, gv, gs);
    const std::vector<float> hk = get(*gpu, kc), hv = get(*gpu, vc);
    bool same = true;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < W; ++j)
        same = same && hk[slots[i] * W + j] == k[i * W + j] && hv[slots[i] * W + j] == v[i * W + j];
    CHECK(same && hk[W] == 0.0f);
    std::vector<int32_t> bad{0, 64, 1, 2, 3};
    Buffer gbad = put_i32(*gpu, bad);
    CHECK_THROWS_CODE((gpu->kv_store(kc, vc, gk, gv, gbad), gpu->synchronize()), ErrorCode::kInvalidArgument);
  }
}

namespace {

// A paged-attention scenario: sequences with random scrambled block tables, a random cache, and query rows
// (seq, pos). Runs the op on a backend in dtype dt and returns the output.
struct AttnCase {
  int hq, hkv, hd, bs;
  std::vector<int> lens;                      // context length of each sequence
  std::vector<std::pair<int, int>> queries;   // (sequence, position)
};

std::vector<float> run_attention(Backend& be, DType dt, const AttnCase& c, uint32_t seed) {
  const int num_seqs = static_cast<int>(c.lens.size());
  int max_blocks = 1;
  for (int L : c.lens) max_blocks = std::max(max_blocks, (L + c.bs - 1) / c.bs);
  const int num_blocks = num_seqs * max_blocks + 3;
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
  std::vector<int32_t> tables(perm.begin(), perm.begin() + num_seqs * max_blocks);
  const int64_t rows = int64_t(num_blocks) * c.bs, kvw = int64_t(c.hkv) * c.hd, qw = int64_t(c.hq) * c.hd;
  auto kc = rnd(rows * kvw, seed + 1), vc = rnd(rows * kvw, seed + 2);
  const int64_t n = static_cast<int64_t>(c.queries.size());
  auto q = rnd(n * qw, seed + 3);
  std::vector<int32_t> seq, pos;
  for (auto [s, p] : c.queries) {
    seq.push_back(s);
    pos.push_back(p);
  }
  Buffer bq = put(be, dt, {n, qw}, q), bk = put(be, dt, {rows, kvw}, kc), bv = put(be, dt, {rows, kvw}, vc);
  Buffer bo = put(be, dt, {n, qw}, {});
  Buffer bt = put_i32_2d(be, tables, num_seqs, max_blocks), bs = put_i32(be, seq), bp = put_i32(be, pos);
  AttentionMeta m;
  m.block_tables = bt;
  m.token_seq = bs.t().slice_rows(0, n);
  m.token_pos = bp.t().slice_rows(0, n);
  m.block_size = c.bs;
  m.num_q_heads = c.hq;
  m.num_kv_heads = c.hkv;
  m.head_dim = c.hd;
  m.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
  be.paged_attention(bo, bq, bk, bv, m);
  return get(be, bo);
}

}  // namespace

CUDA_OP_TEST(paged_attention_vs_cpu, "cuda_op/paged_attention/vs_cpu") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  std::vector<AttnCase> cases;
  // decode (one query per sequence) with contexts across partitions: split-K + combine
  cases.push_back({16, 8, 128, 16, {1, 17, 600, 1100, 2048}, {{0, 0}, {1, 16}, {2, 599}, {3, 1099}, {4, 2047}}});
  // prefill chunks (prefill layout: rows of a sequence share tiles) mixed with a decode row
  {
    AttnCase c{16, 8, 128, 16, {41, 700, 90}, {}};
    for (int p = 0; p < 41; ++p) c.queries.push_back({0, p});
    for (int p = 500; p < 700; p += 3) c.queries.push_back({1, p});
    c.queries.push_back({2, 89});
    cases.push_back(c);
  }
  cases.push_back({8, 1, 64, 16, {33, 520}, {{0, 32}, {1, 519}, {1, 100}}});        // MQA, head_dim 64
  cases.push_back({20, 1, 64, 8, {70, 30}, {{0, 69}, {1, 29}}});                     // group of 20: two head chunks
  cases.push_back({4, 4, 256, 16, {300, 5}, {{0, 299}, {1, 4}, {0, 150}}});          // head_dim 256
  cases.push_back({6, 2, 80, 16, {45}, {{0, 44}, {0, 43}, {0, 10}, {0, 0}}});        // head_dim 80
  cases.push_back({4, 2, 34, 5, {23, 11}, {{0, 22}, {1, 10}}});                      // head_dim 34: scalar loads
  {
    AttnCase c{16, 8, 128, 16, {1500}, {}};  // a long prefill: prefill layout with in-block partition folds
    for (int p = 0; p < 1500; p += 7) c.queries.push_back({0, p});
    cases.push_back(c);
  }
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const std::vector<float> want = run_attention(*cpu, DType::F32, cases[ci], 100 + ci);
    for (DType dt : {DType::BF16, DType::F32}) {
      const std::vector<float> got = run_attention(*gpu, dt, cases[ci], 100 + ci);
      // outputs are convex combinations of N(0,1) values: absolute tolerances, F32 2e-5, BF16 1.6e-2
      const double e = max_abs_diff(got, want);
      if (!(e < (dt == DType::F32 ? 2e-5 : 1.6e-2)))
        std::fprintf(stderr, "  attention case %zu %s: max abs diff %.3g\n", ci, dn(dt), e);
      CHECK(e < (dt == DType::F32 ? 2e-5 : 1.6e-2));
    }
  }
}

// A row's attention output is bit-identical in the decode layout (split across blocks + combine) and in
// the prefill layout (one block folding partitions): batching never changes it.
CUDA_OP_TEST(paged_attention_batch_invariant, "cuda_op/paged_attention/batch_invariant") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  AttnCase alone{16, 8, 128, 16, {1300}, {{0, 1299}}};
  AttnCase batch = alone;
  for (int p = 0; p < 40; ++p) batch.queries.push_back({0, 1000 + p});  // n >> num_seqs: prefill layout
  const std::vector<float> a = run_attention(*gpu, DType::BF16, alone, 7);
  const std::vector<float> b = run_attention(*gpu, DType::BF16, batch, 7);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

CUDA_OP_TEST(logprob_log_softmax_gather, "cuda_op/logprob/log_softmax_gather") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  for (int64_t V : {1, 7, 8192, 8193, 151936}) {
    for (int64_t n : {1, 5, 64}) {
      if (V * n > 151936 * 8 && n > 5) continue;
      auto z = rnd(n * V, 40, 3.0f);
      std::vector<int32_t> t(n);
      for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919) % V);
      for (float inv_t : {1.0f, 1.0f / 0.7f}) {
        Buffer co = put(*cpu, DType::F32, {n}, {}), go = put(*gpu, DType::F32, {n}, {});
        cpu->log_softmax_gather(co, put(*cpu, DType::F32, {n, V}, z), put_i32(*cpu, t).t().slice_rows(0, n), inv_t);
        for (DType dt : {DType::F32, DType::BF16}) {
          gpu->log_softmax_gather(go, put(*gpu, dt, {n, V}, z), put_i32(*gpu, t).t().slice_rows(0, n), inv_t);
          // log-probs of magnitude up to ~20: absolute 2e-4 (fp32 sums of up to 150k terms)
          CHECK(max_abs_diff(get(*gpu, go), get(*cpu, co)) < 2e-4);
        }
      }
    }
  }
}

CUDA_OP_TEST(sampling_vs_cpu, "cuda_op/sampling/vs_cpu") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  std::mt19937 rng(3);
  for (int64_t V : {1, 37, 1000, 151936}) {
    const int64_t B = 48;
    auto z = rnd(B * V, 50, 3.0f);
    std::vector<SamplingRow> rows(B);
    for (int64_t i = 0; i < B; ++i) {
      SamplingRow& r = rows[i];
      r.seed = rng();
      r.step = i;
      const float temps[] = {0.0f, 1.0f, 0.7f, 1.3f};
      r.temperature = temps[i % 4];
      const int ks[] = {0, 0, 1, 20, 100, 0};
      r.top_k = ks[(i / 4) % 6];
      const float ps[] = {1.0f, 0.9f, 0.95f, 0.5f, 1.0f, 0.3f, 1.0f};
      r.top_p = ps[(i / 2) % 7];
      r.min_p = (i % 5 == 0) ? 0.05f : 0.0f;
    }
    Buffer gz = put(*gpu, DType::F32, {B, V}, z);
    std::vector<int32_t> ids(B), ids2(B), cids(B);
    std::vector<float> lps(B), lps2(B), clps(B);
    gpu->sample(gz, rows.data(), ids.data(), lps.data());
    gpu->sample(gz, rows.data(), ids2.data(), lps2.data());
    CHECK(ids == ids2);  // same seeds: same tokens, bit for bit
    CHECK(std::memcmp(lps.data(), lps2.data(), B * 4) == 0);
    for (int64_t i = 0; i < B; ++i) sample_row(z.data() + i * V, V, rows[i], &cids[i], &clps[i]);
    int same = 0;
    for (int64_t i = 0; i < B; ++i) {
      if (ids[i] == cids[i]) {
        ++same;
        CHECK_NEAR(lps[i], clps[i], 2e-4);
      }
      if (rows[i].temperature <= 0.0f) CHECK(ids[i] == cids[i]);  // greedy = argmax
    }
    // expf differs from the host's by an ulp, so a draw within ~1e-7 of a CDF boundary may differ: rare
    CHECK(same >= B - 1);
    // top-k = 1 is greedy
    std::vector<SamplingRow> k1 = rows;
    for (auto& r : k1) {
      r.temperature = 1.0f;
      r.top_k = 1;
      r.top_p = 1.0f;
      r.min_p = 0.0f;
    }
    std::vector<SamplingRow> greedy = rows;
    for (auto& r : greedy) r.temperature = 0.0f;
    gpu->sample(gz, k1.data(), ids.data(), lps.data());
    gpu->sample(gz, greedy.data(), ids2.data(), lps2.data());
    CHECK(ids == ids2);
  }
  // distribution: one small row sampled with 4000 seeds matches softmax(z / T)
  const int64_t V = 6, B = 4000;
  const std::vector<float> base{1.0f, 0.0f, 2.0f, -1.0f, 0.5f, 1.5f};
  std::vector<float> z;
  for (int64_t i = 0; i < B; ++i) z.insert(z.end(), base.begin(), base.end());
  std::vector<SamplingRow> rows(B);
  for (int64_t i = 0; i < B; ++i) {
    rows[i].seed = derive_seed(99, i);
    rows[i].temperature = 0.8f;
  }
  std::vector<int32_t> ids(B);
  std::vector<float> lps(B);
  gpu->sample(put(*gpu, DType::F32, {B, V}, z), rows.data(), ids.data(), lps.data());
  std::vector<double> p(V), freq(V, 0.0);
  double s = 0;
  for (int64_t j = 0; j < V; ++j) s += p[j] = std::exp(base[j] / 0.8);
  for (int32_t id : ids) freq[id] += 1.0 / B;
  for (int64_t j = 0; j < V; ++j) CHECK_NEAR(freq[j], p[j] / s, 0.03);
}

// A tiny Qwen3 shape with head_dim 64, so the CUDA model runs the fused attention kernels.
static ModelConfig tiny_qwen3_hd64() {
  ModelConfig c;
  c.arch = Arch::Qwen3;
  c.architecture = "Qwen3ForCausalLM";
  c.qk_norm = true;
  c.tie_word_embeddings = true;
  c.vocab_size = 512;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 1024;
  c.rope_theta = 10000;
  return c;
}

// A tiny random Qwen3 model on CUDA vs CPU: logits agree to bf16 accuracy, and greedy generation on CUDA
// picks tokens the CPU model also ranks first (up to the logit tolerance). The CUDA tokens equal the argmax
// of CUDA's own full-sequence logits exactly: prefill and decode compute identical rows (batch invariance).
CUDA_OP_TEST(model_tiny_generation, "cuda_op/model/tiny_generation") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  ModelConfig c = tiny_qwen3_hd64();
  auto mc = Model::random(*cpu, c, 21, 0.1f);
  auto mg = Model::random(*gpu, c, 21, 0.1f);
  std::vector<int32_t> prompt;
  for (int t = 0; t < 12; ++t) prompt.push_back((t * 37 + 5) % c.vocab_size);
  const std::vector<float> lc = mc->sequence_logits(prompt), lg = mg->sequence_logits(prompt);
  const double e = rel_err(lg, lc);
  std::printf("tiny model logits: cuda vs cpu rel err %.3g\n", e);
  CHECK(e < 5e-2);  // bf16 weights and activations vs f32 everywhere

  Generator gen(*mg, {});
  GenerationRequest req;
  req.prompt = prompt;
  req.max_new_tokens = 24;
  req.sampling.temperature = 0.0f;
  const std::vector<GenerationOutput> out = gen.generate({req}, GenerationOptions{});
  CHECK(out.size() == 1 && out[0].tokens.size() == 24);
  std::vector<int32_t> full = prompt;
  full.insert(full.end(), out[0].tokens.begin(), out[0].tokens.end());
  const std::vector<float> fg = mg->sequence_logits(full), fc = mc->sequence_logits(full);
  const int64_t V = c.vocab_size, P = static_cast<int64_t>(prompt.size());
  double lmax = 0;
  for (float v : fc) lmax = std::max(lmax, std::fabs(double(v)));
  for (size_t t = 0; t < out[0].tokens.size(); ++t) {
    const float* rg = &fg[(P - 1 + t) * V];
    const float* rc = &fc[(P - 1 + t) * V];
    const int32_t tok = out[0].tokens[t];
    CHECK(std::max_element(rg, rg + V) - rg == tok);                   // CUDA: exact (batch invariance)
    CHECK(*std::max_element(rc, rc + V) - rc[tok] <= 5e-2 * lmax + 1e-6);  // CPU: a near-argmax
  }
}

// Training ops that exist on CUDA so far, vs the CPU backend. Activations bf16 where the model stores them
// bf16 (tolerances: one bf16 rounding, ~1e-2 relative; GEMM-based gradients round their fp32 operands to
// bf16 on the way into the tensor cores, 2e-2), parameters/moments fp32 (1e-5 relative or better).
CUDA_OP_TEST(elementwise_training_rows, "cuda_op/elementwise/training_rows") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  // rmsnorm_backward (overwrite, accumulate, in place on dout)
  for (DType dt : {DType::F32, DType::BF16}) {
    for (int64_t D : {33, 1024}) {
      const int64_t rows = 7;
      auto x = rnd(rows * D, 60), g = rnd(rows * D, 61), w = rnd(D, 62), d0 = rnd(rows * D, 63);
      for (bool acc : {false, true}) {
        Buffer cdx = put(*cpu, DType::F32, {rows, D}, d0), gdx = put(*gpu, dt, {rows, D}, d0);
        cpu->rmsnorm_backward(cdx, put(*cpu, DType::F32, {rows, D}, g), put(*cpu, DType::F32, {rows, D}, x),
                              put(*cpu, DType::F32, {D}, w), 1e-6f, acc);
        gpu->rmsnorm_backward(gdx, put(*gpu, dt, {rows, D}, g), put(*gpu, dt, {rows, D}, x), put(*gpu, DType::BF16, {D}, w),
                              1e-6f, acc);
        CHECK(rel_err(get(*gpu, gdx), get(*cpu, cdx)) < (dt == DType::F32 ? 1e-5 : 1e-2));
      }
      Buffer gg = put(*gpu, dt, {rows, D}, g), cg = put(*cpu, DType::F32, {rows, D}, g);
      cpu->rmsnorm_backward(cg, cg, put(*cpu, DType::F32, {rows, D}, x), put(*cpu, DType::F32, {D}, w), 1e-6f, false);
      gpu->rmsnorm_backward(gg, gg, put(*gpu, dt, {rows, D}, x), put(*gpu, DType::BF16, {D}, w), 1e-6f, false);
      CHECK(rel_err(get(*gpu, gg), get(*cpu, cg)) < (dt == DType::F32 ? 1e-5 : 1e-2));
    }
    // swiglu_backward with outputs aliasing the inputs, as the training graph calls it
    const int64_t n = 1001;
    auto ga = rnd(n, 64), up = rnd(n, 65), dout = rnd(n, 66);
    Buffer cga = put(*cpu, DType::F32, {n}, ga), cup = put(*cpu, DType::F32, {n}, up);
    Buffer gga = put(*gpu, dt, {n}, ga), gup = put(*gpu, dt, {n}, up);
    cpu->swiglu_backward(cga, cup, put(*cpu, DType::F32, {n}, dout), cga, cup);
    gpu->swiglu_backward(gga, gup, put(*gpu, dt, {n}, dout), gga, gup);
    CHECK(rel_err(get(*gpu, gga), get(*cpu, cga)) < (dt == DType::F32 ? 1e-5 : 1e-2));
    CHECK(rel_err(get(*gpu, gup), get(*cpu, cup)) < (dt == DType::F32 ? 1e-5 : 1e-2));
    // scatter_add_rows
    const int64_t R = 10, D = 33;
    auto base = rnd(R * D, 67), src = rnd(3 * D, 68);
    std::vector<int32_t> ids{7, 0, 9};
    Buffer co = put(*cpu, DType::F32, {R, D}, base), go = put(*gpu, dt, {R, D}, base);
    cpu->scatter_add_rows(co, put(*cpu, DType::F32, {3, D}, src), put_i32(*cpu, ids));
    gpu->scatter_add_rows(go, put(*gpu, dt, {3, D}, src), put_i32(*gpu, ids));
    CHECK(rel_err(get(*gpu, go), get(*cpu, co)) < (dt == DType::F32 ? 1e-6 : 1e-2));
  }
}

CUDA_OP_TEST(adamw_step_and_sum_squares, "cuda_op/adamw/step_and_sum_squares") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  // adamw_step and sum_squares (fp32 parameters and moments)
  {
    const int64_t n = 1000;
    auto p = rnd(n, 70), g = rnd(n, 71), m = rnd(n, 72, 0.1f), v = rnd(n, 73, 0.1f);
    for (auto& x : v) x = std::fabs(x);
    AdamWParams ap;
    ap.lr = 1e-3;
    ap.beta1 = 0.9;
    ap.beta2 = 0.999;
    ap.eps = 1e-8;
    ap.weight_decay = 0.01;
    ap.grad_scale = 0.5;
    ap.step = 3;
    Buffer cp = put(*cpu, DType::F32, {n}, p), cm = put(*cpu, DType::F32, {n}, m), cv = put(*cpu, DType::F32, {n}, v);
    Buffer gp = put(*gpu, DType::F32, {n}, p), gm = put(*gpu, DType::F32, {n}, m), gv = put(*gpu, DType::F32, {n}, v);
    cpu->adamw_step(cp, put(*cpu, DType::F32, {n}, g), cm, cv, ap);
    gpu->adamw_step(gp, put(*gpu, DType::F32, {n}, g), gm, gv, ap);
    CHECK(rel_err(get(*gpu, gp), get(*cpu, cp)) < 1e-6);
    CHECK(rel_err(get(*gpu, gm), get(*cpu, cm)) < 1e-6);
    CHECK(rel_err(get(*gpu, gv), get(*cpu, cv)) < 1e-6);
    auto big = rnd(100003, 74);
    const double want = cpu->sum_squares(put(*cpu, DType::F32, {100003}, big));
    CHECK_NEAR(gpu->sum_squares(put(*gpu, DType::F32, {100003}, big)), want, 1e-9 * want);
    std::vector<float> bad{1.0f, std::numeric_limits<float>::infinity()};
    CHECK(!std::isfinite(gpu->sum_squares(put(*gpu, DType::F32, {2}, bad))));
  }
  // sum_squares_many: every tensor's sum with one wait, each equal to sum_squares of that tensor (the
  // same kernels) and to the CPU's within 1e-9 relative
  {
    std::vector<Buffer> gb, cb;
    std::vector<Tensor> gt, ct;
    for (int64_t n : {int64_t(1), int64_t(1000), int64_t(100003), int64_t(3)}) {
      const auto v = rnd(size_t(n), 75 + uint32_t(n % 97));
      gb.push_back(put(*gpu, DType::F32, {n}, v));
      cb.push_back(put(*cpu, DType::F32, {n}, v));
      gt.push_back(gb.back());
      ct.push_back(cb.back());
    }
    const std::vector<double> gs = gpu->sum_squares_many(gt), cs = cpu->sum_squares_many(ct);
    CHECK(gs.size() == gt.size() && cs.size() == ct.size());
    for (size_t i = 0; i < gs.size() && i < cs.size(); ++i) {
      CHECK(gs[i] == gpu->sum_squares(gt[i]));
      CHECK(cs[i] == cpu->sum_squares(ct[i]));
      CHECK_NEAR(gs[i], cs[i], 1e-9 * cs[i]);
    }
    CHECK(gpu->sum_squares_many({}).empty());
  }
}

CUDA_OP_TEST(adamw_multi, "cuda_op/adamw/multi_tensor") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  // adamw_step_multi: one launch over several tensors (odd sizes, a 1-element one, some spanning several
  // chunks) vs the CPU's adamw_step per tensor (1e-6, as adamw_step), and bit-identical to the CUDA
  // adamw_step per tensor (the same per-element function). Two steps: the second reuses the cached table;
  // then a different tensor list (re-upload).
  {
    const std::vector<int64_t> sizes{1000, 1, 3, g::kAdamWChunk + 17, 2 * g::kAdamWChunk, 12345};
    AdamWParams ap;
    ap.lr = 1e-3;
    ap.beta1 = 0.9;
    ap.beta2 = 0.999;
    ap.eps = 1e-8;
    ap.weight_decay = 0.01;
    ap.grad_scale = 0.7;
    struct Set {
      std::vector<Buffer> p, g, m, v;
      std::vector<AdamWTensorRef> refs;
    };
    auto make_set = [&](Backend& be) {
      Set st;
      for (size_t i = 0; i < sizes.size(); ++i) {
        const int64_t n = sizes[i];
        auto vv = rnd(size_t(n), 203 + 4 * uint32_t(i), 0.1f);
        for (auto& e : vv) e = std::fabs(e);
        st.p.push_back(put(be, DType::F32, {n}, rnd(size_t(n), 200 + 4 * uint32_t(i))));
        st.g.push_back(put(be, DType::F32, {n}, rnd(size_t(n), 201 + 4 * uint32_t(i))));
        st.m.push_back(put(be, DType::F32, {n}, rnd(size_t(n), 202 + 4 * uint32_t(i), 0.1f)));
        st.v.push_back(put(be, DType::F32, {n}, vv));
        st.refs.push_back({st.p.back(), st.g.back(), st.m.back(), st.v.back()});
      }
      return st;
    };
    Set cs = make_set(*cpu), gs = make_set(*gpu), gs1 = make_set(*gpu);
    for (int64_t step = 1; step <= 2; ++step) {
      ap.step = step;
      for (const AdamWTensorRef& t : cs.refs) cpu->adamw_step(t.param, t.grad, t.m, t.v, ap);
      gpu->adamw_step_multi(gs.refs, ap);
      for (const AdamWTensorRef& t : gs1.refs) gpu->adamw_step(t.param, t.grad, t.m, t.v, ap);
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      for (auto [c, gg, g1] : {std::array<const std::vector<Buffer>*, 3>{&cs.p, &gs.p, &gs1.p},
                               std::array<const std::vector<Buffer>*, 3>{&cs.m, &gs.m, &gs1.m},
                               std::array<const std::vector<Buffer>*, 3>{&cs.v, &gs.v, &gs1.v}}) {
        CHECK(rel_err(get(*gpu, (*gg)[i]), get(*cpu, (*c)[i])) < 1e-6);
        CHECK(raw(*gpu, (*gg)[i]) == raw(*gpu, (*g1)[i]));
      }
    }
    // a different list (a subset, reversed): the table is re-uploaded
    std::vector<AdamWTensorRef> sub{gs.refs[5], gs.refs[0]}, sub1{gs1.refs[5], gs1.refs[0]};
    ap.step = 3;
    gpu->adamw_step_multi(sub, ap);
    for (const AdamWTensorRef& t : sub1) gpu->adamw_step(t.param, t.grad, t.m, t.v, ap);
    for (size_t i : {size_t(0), size_t(5)}) CHECK(raw(*gpu, gs.p[i]) == raw(*gpu, gs1.p[i]));
    // validation at the boundary
    std::vector<AdamWTensorRef> badl{{gs.p[0], gs.g[2], gs.m[0], gs.v[0]}};
    CHECK_THROWS_CODE(gpu->adamw_step_multi(badl, ap), ErrorCode::kInvalidArgument);
    ap.step = 0;
    CHECK_THROWS_CODE(gpu->adamw_step_multi(gs.refs, ap), ErrorCode::kInvalidArgument);
  }
}

CUDA_OP_TEST(lora_backward_vs_cpu, "cuda_op/lora/backward_vs_cpu") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  // lora_linear_backward: dx (overwrite and accumulate), dA, dB accumulate
  // dx = [dout | t] [W ; A] is one fused GEMM (t = scale dout B, r extra reduction columns); shapes with odd
  // M, N, K, r, and f32 activations; tolerances 2e-2 (bf16 operands on the tensor cores).
  for (auto [M, N, K, r] : std::vector<std::array<int64_t, 4>>{{37, 65, 96, 8}, {64, 1024, 1024, 32}, {3, 17, 33, 3},
                                                               {130, 257, 200, 16}, {1, 300, 1000, 64}}) {
   for (DType dt : {DType::BF16, DType::F32}) {
    auto dout = rnd(M * N, 80), x = rnd(M * K, 81), w = rnd(N * K, 82, 0.05f), A = rnd(r * K, 83, 0.1f),
         B = rnd(N * r, 84, 0.1f), dA0 = rnd(r * K, 85, 0.1f), dB0 = rnd(N * r, 86, 0.1f), dx0 = rnd(M * K, 87);
    std::vector<float> xa(M * r);  // x A^T of the forward (bf16-rounded, as the CUDA forward stores it)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < r; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += double(x[i * K + k]) * A[j * K + k];
        xa[i * r + j] = bf16r(static_cast<float>(s));
      }
    for (bool acc : {false, true}) {
      Buffer cdx = put(*cpu, DType::F32, {M, K}, dx0), cda = put(*cpu, DType::F32, {r, K}, dA0), cdb = put(*cpu, DType::F32, {N, r}, dB0);
      Buffer gdx = put(*gpu, dt, {M, K}, dx0), gda = put(*gpu, DType::F32, {r, K}, dA0), gdb = put(*gpu, DType::F32, {N, r}, dB0);
      cpu->lora_linear_backward(cdx, cda, cdb, put(*cpu, DType::F32, {M, N}, dout), put(*cpu, DType::F32, {M, K}, x),
                                put(*cpu, DType::F32, {M, r}, xa), put(*cpu, DType::F32, {N, K}, w),
                                put(*cpu, DType::F32, {r, K}, A), put(*cpu, DType::F32, {N, r}, B), 2.0f, acc);
      gpu->lora_linear_backward(gdx, gda, gdb, put(*gpu, dt, {M, N}, dout), put(*gpu, dt, {M, K}, x),
                                put(*gpu, dt, {M, r}, xa), put(*gpu, dt, {N, K}, w),
                                put(*gpu, DType::F32, {r, K}, A), put(*gpu, DType::F32, {N, r}, B), 2.0f, acc);
      CHECK(rel_err(get(*gpu, gdx), get(*cpu, cdx)) < 2e-2);
      CHECK(rel_err(get(*gpu, gda), get(*cpu, cda)) < 2e-2);
      CHECK(rel_err(get(*gpu, gdb), get(*cpu, cdb)) < 2e-2);
    }
    // dx absent: only the adapter gradients (no fused dx launch)
    Buffer cda = put(*cpu, DType::F32, {r, K}, dA0), cdb = put(*cpu, DType::F32, {N, r}, dB0);
    Buffer gda = put(*gpu, DType::F32, {r, K}, dA0), gdb = put(*gpu, DType::F32, {N, r}, dB0);
    cpu->lora_linear_backward({}, cda, cdb, put(*cpu, DType::F32, {M, N}, dout), put(*cpu, DType::F32, {M, K}, x),
                              put(*cpu, DType::F32, {M, r}, xa), put(*cpu, DType::F32, {N, K}, w),
                              put(*cpu, DType::F32, {r, K}, A), put(*cpu, DType::F32, {N, r}, B), 2.0f, false);
    gpu->lora_linear_backward({}, gda, gdb, put(*gpu, dt, {M, N}, dout), put(*gpu, dt, {M, K}, x), put(*gpu, dt, {M, r}, xa),
                              put(*gpu, dt, {N, K}, w), put(*gpu, DType::F32, {r, K}, A), put(*gpu, DType::F32, {N, r}, B),
                              2.0f, false);
    CHECK(rel_err(get(*gpu, gda), get(*cpu, cda)) < 2e-2);
    CHECK(rel_err(get(*gpu, gdb), get(*cpu, cdb)) < 2e-2);
   }
  }
}

CUDA_OP_TEST(logprob_small_chunk, "cuda_op/logprob/small_chunk") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  // logprob_forward / logprob_backward over one chunk
  {
    const int64_t m = 5, D = 64, V = 1000;
    auto h = rnd(m * D, 90), lm = rnd(V * D, 91, 0.3f), dlp = rnd(m, 92);
    std::vector<int32_t> t{3, 999, 0, 512, 77};
    const float inv_t = 1.0f / 0.7f;
    Buffer clp = put(*cpu, DType::F32, {m}, {}), clse = put(*cpu, DType::F32, {m}, {}), cent = put(*cpu, DType::F32, {m}, {});
    Buffer glp = put(*gpu, DType::F32, {m}, {}), glse = put(*gpu, DType::F32, {m}, {}), gent = put(*gpu, DType::F32, {m}, {});
    Buffer ch = put(*cpu, DType::F32, {m, D}, h), clm = put(*cpu, DType::F32, {V, D}, lm), ct = put_i32(*cpu, t);
    Buffer gh = put(*gpu, DType::BF16, {m, D}, h), glm = put(*gpu, DType::BF16, {V, D}, lm), gt = put_i32(*gpu, t);
    cpu->logprob_forward(clp, clse, cent, ch, clm, ct, inv_t);
    gpu->logprob_forward(glp, glse, gent, gh, glm, gt, inv_t);
    CHECK(max_abs_diff(get(*gpu, glp), get(*cpu, clp)) < 1e-4);
    CHECK(max_abs_diff(get(*gpu, glse), get(*cpu, clse)) < 1e-4);
    CHECK(max_abs_diff(get(*gpu, gent), get(*cpu, cent)) < 1e-4);
    Buffer cdh = put(*cpu, DType::F32, {m, D}, {}), gdh = put(*gpu, DType::BF16, {m, D}, {});
    cpu->logprob_backward(cdh, put(*cpu, DType::F32, {m}, dlp), ch, clm, ct, clse, inv_t);
    gpu->logprob_backward(gdh, put(*gpu, DType::F32, {m}, dlp), gh, glm, gt, glse, inv_t);
    CHECK(rel_err(get(*gpu, gdh), get(*cpu, cdh)) < 2e-2);
  }
}

// ---- fused varlen attention: CUDA vs CPU ------------------------------------------------------------------

namespace {

struct VarlenCase {
  std::vector<int> lens;
  int hq, hkv, hd;
};

struct VarlenResult {
  std::vector<float> out, lse, dq, dk, dv;
};

// attention_forward then attention_backward (from the backend's own out / lse, as training runs them) on the
// same random inputs; q/k/v/dout bf16-exact, so both backends start from identical values.
VarlenResult run_varlen_attention(Backend& be, DType dt, const VarlenCase& c, uint32_t seed) {
  std::vector<int32_t> cu{0};
  int max_len = 0;
  for (int L : c.lens) {
    cu.push_back(cu.back() + L);
    max_len = std::max(max_len, L);
  }
  const int64_t n = cu.back(), qw = int64_t(c.hq) * c.hd, kw = int64_t(c.hkv) * c.hd;
  auto q = rnd(n * qw, seed), k = rnd(n * kw, seed + 1), v = rnd(n * kw, seed + 2), dout = rnd(n * qw, seed + 3);
  Buffer bq = put(be, dt, {n, qw}, q), bk = put(be, dt, {n, kw}, k), bv = put(be, dt, {n, kw}, v);
  Buffer bdo = put(be, dt, {n, qw}, dout), bo = put(be, dt, {n, qw}, {});
  Buffer blse = put(be, be.param_dtype(), {n, c.hq}, {});
  Buffer bdq = put(be, dt, {n, qw}, {}), bdk = put(be, dt, {n, kw}, {}), bdv = put(be, dt, {n, kw}, {});
  Buffer bcu = put_i32(be, cu);
  VarlenMeta m;
  m.cu_seqlens = bcu.t().slice_rows(0, static_cast<int64_t>(cu.size()));
  m.max_seqlen = max_len;
  m.num_q_heads = c.hq;
  m.num_kv_heads = c.hkv;
  m.head_dim = c.hd;
  m.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
  be.attention_forward(bo, blse, bq, bk, bv, m);
  be.attention_backward(bdq, bdk, bdv, bdo, bq, bk, bv, bo, blse, m);
  return {get(be, bo), get(be, blse), get(be, bdq), get(be, bdk), get(be, bdv)};
}

}  // namespace

// Tolerances (inputs bf16-exact; the CUDA kernels read bf16 operands on the tensor cores and round P / dS
// to bf16 for the second product of each pair, accumulating in fp32):
//   out:          max |diff| <= 1e-2 (F32 storage), 2e-2 (BF16 storage: plus one output rounding);
//                 outputs are convex combinations of N(0,1) values, so absolute error is the right scale
//   lse:          max |diff| <= 2e-3 (fp32 scores of exact bf16 products; exp2/log2 approximations)
//   dq, dk, dv:   max |diff| / max |cpu| <= 3e-2 (F32), 5e-2 (BF16)
CUDA_OP_TEST(attention_forward_backward, "cuda_op/attention/forward_backward_vs_cpu") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  const std::vector<VarlenCase> cases = {
      {{1, 7, 33, 100}, 4, 2, 64},    // GQA, odd lengths, hd 64
      {{100, 1, 7}, 2, 2, 128},       // MHA, hd 128
      {{33, 130}, 8, 1, 128},         // MQA, several query and key tiles
      {{7, 70, 1}, 4, 4, 64},         // MHA, hd 64
      {{0, 5, 0, 64, 65}, 4, 2, 64},  // empty sequences, tile-boundary lengths
      {{300}, 2, 1, 128},             // one long sequence: many tiles, GQA sums over 2 heads
      {{45, 1}, 4, 2, 80},            // head_dim 80: padded to the 128 bucket
      {{9, 20}, 2, 1, 34},            // head_dim 34: element loads, padded to 64
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const VarlenCase& c = cases[ci];
    const VarlenResult want = run_varlen_attention(*cpu, DType::F32, c, 300 + 10 * static_cast<uint32_t>(ci));
    for (DType dt : {DType::BF16, DType::F32}) {
      const VarlenResult got = run_varlen_attention(*gpu, dt, c, 300 + 10 * static_cast<uint32_t>(ci));
      const bool f32 = dt == DType::F32;
      const double e_out = max_abs_diff(got.out, want.out), e_lse = max_abs_diff(got.lse, want.lse);
      const double e_dq = rel_err(got.dq, want.dq), e_dk = rel_err(got.dk, want.dk), e_dv = rel_err(got.dv, want.dv);
      std::printf("  attention case %zu (hq %d hkv %d hd %d) %s: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e\n", ci, c.hq,
                  c.hkv, c.hd, dn(dt), e_out, e_lse, e_dq, e_dk, e_dv);
      CHECK(e_out <= (f32 ? 1e-2 : 2e-2));
      CHECK(e_lse <= 2e-3);
      const double tg = f32 ? 3e-2 : 5e-2;
      CHECK(e_dq <= tg && e_dk <= tg && e_dv <= tg);
    }
  }
}

// The backward is deterministic (no float atomics), and bad metadata is reported.
CUDA_OP_TEST(attention_deterministic, "cuda_op/attention/deterministic_and_bad_input") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  const VarlenCase c{{37, 200, 3}, 8, 2, 128};
  const VarlenResult a = run_varlen_attention(*gpu, DType::BF16, c, 77), b = run_varlen_attention(*gpu, DType::BF16, c, 77);
  CHECK(std::memcmp(a.dq.data(), b.dq.data(), a.dq.size() * 4) == 0);
  CHECK(std::memcmp(a.dk.data(), b.dk.data(), a.dk.size() * 4) == 0);
  CHECK(std::memcmp(a.dv.data(), b.dv.data(), a.dv.size() * 4) == 0);
  // cu_seqlens values live on the device: checked by a kernel, reported at the next sync
  const int64_t n = 8, w = 2 * 64;
  Buffer q = put(*gpu, DType::BF16, {n, w}, rnd(n * w, 1)), o = put(*gpu, DType::BF16, {n, w}, {});
  Buffer lse = put(*gpu, DType::F32, {n, 2}, {});
  VarlenMeta m;
  m.num_q_heads = 2;
  m.num_kv_heads = 2;
  m.head_dim = 64;
  m.scale = 0.125f;
  for (const std::vector<int32_t>& cu : {std::vector<int32_t>{0, 5, 3, 8}, std::vector<int32_t>{0, 5, 7},
                                         std::vector<int32_t>{1, 8}}) {
    Buffer bcu = put_i32(*gpu, cu);
    m.cu_seqlens = bcu.t().slice_rows(0, static_cast<int64_t>(cu.size()));
    m.max_seqlen = 8;
    CHECK_THROWS_CODE((gpu->attention_forward(o, lse, q, q, q, m), gpu->synchronize()), ErrorCode::kInvalidArgument);
  }
  std::vector<int32_t> cu{0, 5, 8};
  Buffer bcu = put_i32(*gpu, cu);
  m.cu_seqlens = bcu.t().slice_rows(0, 3);
  m.max_seqlen = 4;  // understated: the 5-token sequence is longer
  CHECK_THROWS_CODE((gpu->attention_forward(o, lse, q, q, q, m), gpu->synchronize()), ErrorCode::kInvalidArgument);
  m.max_seqlen = 5;
  gpu->attention_forward(o, lse, q, q, q, m);
  gpu->synchronize();
  m.head_dim = 256;  // above the kernels' limit: a clear error at the call
  m.num_q_heads = m.num_kv_heads = 1;
  Buffer q256 = put(*gpu, DType::BF16, {n, 256}, rnd(n * 256, 2)), o256 = put(*gpu, DType::BF16, {n, 256}, {});
  Buffer lse1 = put(*gpu, DType::F32, {n, 1}, {});
  CHECK_THROWS_CODE(gpu->attention_forward(o256, lse1, q256, q256, q256, m), ErrorCode::kInvalidArgument);
}

// One GRPO step of a tiny random Qwen3 model (head_dim 64: the fused attention kernels) on CUDA vs CPU:
// the same weights, adapters, batch and loss; the loss, every LoRA gradient and the gradient norm agree to
// bf16 accuracy (the CUDA model keeps weights and activations in bf16, the CPU one in f32). Tolerances:
// loss 2e-2 relative; each adapter's gradients 1e-1 relative (max |diff| / max |cpu|), all gradients
// together 5e-2; gradient norm 3e-2 relative; the AdamW step is applied on both.
CUDA_OP_TEST(model_grpo_step, "cuda_op/model/grpo_step") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  ModelConfig c = tiny_qwen3_hd64();
  c.rms_norm_eps = 1e-6;
  LoraConfig lc;
  lc.rank = 8;
  lc.alpha = 16;
  lc.seed = 3;
  for (int l = 0; l < c.num_layers; ++l)
    for (int t = 0; t < kNumLoraTargets; ++t) lc.modules.push_back({l, static_cast<LoraTarget>(t)});
  TrainBatch batch;
  std::mt19937 rng(9);
  const int prompts[] = {5, 1, 12, 7}, completions[] = {9, 32, 88, 0};  // lengths 14, 33, 100, 7
  for (int s = 0; s < 4; ++s) {
    for (int i = 0; i < prompts[s] + completions[s]; ++i) batch.packed.tokens.push_back(static_cast<int32_t>(rng() % c.vocab_size));
    batch.packed.seq_lens.push_back(prompts[s] + completions[s]);
    batch.packed.prompt_lens.push_back(prompts[s]);
  }
  batch.advantages = {1.2, -0.7, 0.4, -0.9};
  const LossOptions lo = hayate_test::loss_options(LossType::Grpo, 0.04);  // beta > 0: the reference pass (LoRA off) runs too
  struct Run {
    double loss = 0, norm = 0;
    std::vector<std::vector<float>> grads;
    bool applied = false;
  };
  auto run = [&](Backend& be) {
    auto model = Model::random(be, c, 21, 0.1f);
    LoraSet& lora = model->attach_lora(lc);
    uint32_t seed = 500;
    for (LoraAdapter& a : lora.adapters()) {  // B = 0 at init (PEFT): random B makes every gradient non-zero
      const std::vector<float> b = rnd(static_cast<size_t>(a.b.t().numel()), seed++, 0.1f);
      be.upload(a.b, b.data(), DType::F32);
    }
    TrainerOptions to = hayate_test::trainer_options(1e-3);
    to.logits_chunk = 64;
    Trainer tr(*model, to);
    tr.zero_grad();
    Run r;
    const ForwardBackwardResult fb = tr.forward_backward(batch, lo, 1.0);
    CHECK(fb.finite);
    r.loss = fb.loss.loss;
    for (LoraAdapter& a : lora.adapters()) {
      r.grads.push_back(get(be, a.grad_a));
      r.grads.push_back(get(be, a.grad_b));
    }
    const StepResult st = tr.step();
    r.norm = st.grad_norm;
    r.applied = st.applied;
    return r;
  };
  const Run rc = run(*cpu), rg = run(*gpu);
  std::vector<float> all_c, all_g;
  double worst = 0;
  for (size_t i = 0; i < rc.grads.size(); ++i) {
    worst = std::max(worst, rel_err(rg.grads[i], rc.grads[i]));
    all_c.insert(all_c.end(), rc.grads[i].begin(), rc.grads[i].end());
    all_g.insert(all_g.end(), rg.grads[i].begin(), rg.grads[i].end());
  }
  const double overall = rel_err(all_g, all_c);
  std::printf("GRPO step cuda vs cpu: loss %.6g vs %.6g, grad norm %.6g vs %.6g, LoRA grads rel err %.3g (worst tensor %.3g)\n",
              rg.loss, rc.loss, rg.norm, rc.norm, overall, worst);
  CHECK(std::fabs(rg.loss - rc.loss) <= 2e-2 * std::max(1e-3, std::fabs(rc.loss)));
  CHECK(overall < 5e-2);
  CHECK(worst < 1e-1);
  CHECK(std::fabs(rg.norm - rc.norm) <= 3e-2 * rc.norm);
  CHECK(rc.applied && rg.applied);
}

// ---- every GEMM kernel variant: the cases of op_check_cases.h ---------------------------------------------
// Each case runs its op (linear, gemm, lora_linear forward / backward, logprob forward / backward) on bf16
// and f32 inputs against the CPU backend, then checks that the kernel variants the planner predicts for it
// (gemm_case_variants, the list the host coverage test checks against the qwen3-0.6b workload) are the
// ones that ran, and prints them. Tolerances as in the tests above: linear / gemm f32 out 2e-5 relative to
// max |value|; lora forward 1e-2; lora backward and logprob dhidden 2e-2 (gradients pass bf16 operands);
// log-probs, lse, entropy 2e-4 absolute (fp32 logits of bf16-exact products, |z| ~ 1).

namespace {

// Uniform values (variance 1 x scale^2) rounded to bf16: fast enough for a 151,936 x 1024 lm head.
std::vector<float> rnd_fast(size_t n, uint32_t seed, float scale = 1.0f) {
  std::vector<float> v(n);
  uint64_t x = 0x9E3779B97F4A7C15ull ^ (uint64_t(seed) << 32 | seed);
  for (auto& e : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const float u = static_cast<float>((x >> 40) & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f;  // [-1, 1)
    e = bf16r(u * 1.7320508f * scale);
  }
  return v;
}

#ifdef HAYATE_WITH_CUDA
std::map<std::string, int64_t> variant_snapshot() {
  std::map<std::string, int64_t> m;
  for (auto& [name, n] : g::kernel_variant_counts()) m[name] = n;
  return m;
}
std::set<std::string> variants_since(const std::map<std::string, int64_t>& before) {
  std::set<std::string> out;
  for (auto& [name, n] : variant_snapshot()) {
    auto it = before.find(name);
    if (n > (it == before.end() ? 0 : it->second)) out.insert(name);
  }
  return out;
}
#endif

void run_gemm_case(const g::GemmCase& c) {
  if (!cuda_present()) return;
  using O = g::GemmCaseOp;
  const bool huge = c.N > 100000;  // the real vocabulary: the CPU reference uses every core
  auto [cpu, gpu] = make_pair_of_backends(huge ? std::max(2u, std::thread::hardware_concurrency()) : 2);
  const int64_t M = c.M, N = c.N, K = c.K, r = c.r;
  for (DType dt : {DType::BF16, DType::F32}) {
    if (huge && dt == DType::F32) continue;  // f32 inputs take the generic loader, checked at V = 1000
#ifdef HAYATE_WITH_CUDA
    const auto before = variant_snapshot();
#endif
    std::vector<std::pair<const char*, double>> errs;  // (what, error) and its tolerance below
    bool ok = true;
    auto expect = [&](const char* what, double e, double tol) {
      errs.push_back({what, e});
      if (!(e <= tol)) {
        std::fprintf(stderr, "  %s %s: %s error %.3g > %.3g\n", c.name, dn(dt), what, e, tol);
        ok = false;
      }
    };
    switch (c.op) {
      case O::Linear: {
        auto x = rnd(M * K, 1), w = rnd(N * K, 2, 0.05f), b = rnd(N, 3);
        Buffer co = put(*cpu, DType::F32, {M, N}, {}), go = put(*gpu, DType::F32, {M, N}, {});
        cpu->linear(co, put(*cpu, DType::F32, {M, K}, x), put(*cpu, DType::F32, {N, K}, w), put(*cpu, DType::F32, {N}, b));
        gpu->linear(go, put(*gpu, dt, {M, K}, x), put(*gpu, dt, {N, K}, w), put(*gpu, dt, {N}, b));
        expect("out", rel_err(get(*gpu, go), get(*cpu, co)), 2e-5);
        break;
      }
      case O::Gemm: {
        auto a = rnd(M * K, 4), b = rnd(K * N, 5, 0.05f), c0 = rnd(M * N, 6);
        std::vector<int64_t> as = c.trans_a ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K};
        std::vector<int64_t> bs = c.trans_b ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
        Buffer cc = put(*cpu, DType::F32, {M, N}, c0), gc = put(*gpu, DType::F32, {M, N}, c0);
        cpu->gemm(cc, put(*cpu, DType::F32, as, a), put(*cpu, DType::F32, bs, b), c.trans_a, c.trans_b, 0.5f, 0.25f);
        gpu->gemm(gc, put(*gpu, dt, as, a), put(*gpu, dt, bs, b), c.trans_a, c.trans_b, 0.5f, 0.25f);
        expect("out", rel_err(get(*gpu, gc), get(*cpu, cc)), 2e-5);
        break;
      }
      case O::LoraForward: {
        auto x = rnd(M * K, 11), w = rnd(N * K, 12, 0.05f), A = rnd(r * K, 14, 0.1f), B = rnd(N * r, 15, 0.1f);
        Buffer co = put(*cpu, DType::F32, {M, N}, {}), cxa = put(*cpu, DType::F32, {M, r}, {});
        Buffer go = put(*gpu, DType::F32, {M, N}, {}), gxa = put(*gpu, dt, {M, r}, {});
        cpu->lora_linear(co, cxa, put(*cpu, DType::F32, {M, K}, x), put(*cpu, DType::F32, {N, K}, w), {},
                         put(*cpu, DType::F32, {r, K}, A), put(*cpu, DType::F32, {N, r}, B), 2.0f);
        gpu->lora_linear(go, gxa, put(*gpu, dt, {M, K}, x), put(*gpu, dt, {N, K}, w), {}, put(*gpu, DType::F32, {r, K}, A),
                         put(*gpu, DType::F32, {N, r}, B), 2.0f);
        expect("out", rel_err(get(*gpu, go), get(*cpu, co)), 1e-2);
        expect("xa", rel_err(get(*gpu, gxa), get(*cpu, cxa)), 1e-2);
        break;
      }
      case O::LoraBackward: {
        auto dout = rnd(M * N, 80), x = rnd(M * K, 81), w = rnd(N * K, 82, 0.05f), A = rnd(r * K, 83, 0.1f),
             B = rnd(N * r, 84, 0.1f), dA0 = rnd(r * K, 85, 0.1f), dB0 = rnd(N * r, 86, 0.1f), dx0 = rnd(M * K, 87);
        std::vector<float> xa(size_t(M * r));  // x A^T (bf16-rounded, as the CUDA forward stores it)
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < r; ++j) {
            double sum = 0;
            for (int64_t k = 0; k < K; ++k) sum += double(x[i * K + k]) * A[j * K + k];
            xa[i * r + j] = bf16r(static_cast<float>(sum));
          }
        Buffer cdx = put(*cpu, DType::F32, {M, K}, dx0), cda = put(*cpu, DType::F32, {r, K}, dA0), cdb = put(*cpu, DType::F32, {N, r}, dB0);
        Buffer gdx = put(*gpu, dt, {M, K}, dx0), gda = put(*gpu, DType::F32, {r, K}, dA0), gdb = put(*gpu, DType::F32, {N, r}, dB0);
        cpu->lora_linear_backward(cdx, cda, cdb, put(*cpu, DType::F32, {M, N}, dout), put(*cpu, DType::F32, {M, K}, x),
                                  put(*cpu, DType::F32, {M, r}, xa), put(*cpu, DType::F32, {N, K}, w),
                                  put(*cpu, DType::F32, {r, K}, A), put(*cpu, DType::F32, {N, r}, B), 2.0f, true);
        gpu->lora_linear_backward(gdx, gda, gdb, put(*gpu, dt, {M, N}, dout), put(*gpu, dt, {M, K}, x),
                                  put(*gpu, dt, {M, r}, xa), put(*gpu, dt, {N, K}, w), put(*gpu, DType::F32, {r, K}, A),
                                  put(*gpu, DType::F32, {N, r}, B), 2.0f, true);
        expect("dx", rel_err(get(*gpu, gdx), get(*cpu, cdx)), 2e-2);
        expect("dA", rel_err(get(*gpu, gda), get(*cpu, cda)), 2e-2);
        expect("dB", rel_err(get(*gpu, gdb), get(*cpu, cdb)), 2e-2);
        break;
      }
      case O::LogprobForward:
      case O::LogprobBackward: {
        const int64_t m = M, V = N, D = K;
        auto h = rnd_fast(size_t(m * D), 90), lm = rnd_fast(size_t(V * D), 91, 1.0f / std::sqrt(float(D)));
        auto dlp = rnd(size_t(m), 92);
        std::vector<int32_t> t(static_cast<size_t>(m));
        for (int64_t i = 0; i < m; ++i) t[size_t(i)] = static_cast<int32_t>((i * 7919 + 13) % V);
        t[0] = static_cast<int32_t>(V - 1);
        const float inv_t = 1.0f / 0.7f;
        Buffer clp = put(*cpu, DType::F32, {m}, {}), clse = put(*cpu, DType::F32, {m}, {}), cent = put(*cpu, DType::F32, {m}, {});
        Buffer glp = put(*gpu, DType::F32, {m}, {}), glse = put(*gpu, DType::F32, {m}, {}), gent = put(*gpu, DType::F32, {m}, {});
        Buffer ch = put(*cpu, DType::F32, {m, D}, h), clm = put(*cpu, DType::F32, {V, D}, lm), ct = put_i32(*cpu, t);
        Buffer gh = put(*gpu, dt, {m, D}, h), glm = put(*gpu, dt, {V, D}, lm), gt = put_i32(*gpu, t);
        cpu->logprob_forward(clp, clse, cent, ch, clm, ct, inv_t);
        gpu->logprob_forward(glp, glse, gent, gh, glm, gt, inv_t);
        expect("logprob", max_abs_diff(get(*gpu, glp), get(*cpu, clp)), 2e-4);
        expect("lse", max_abs_diff(get(*gpu, glse), get(*cpu, clse)), 2e-4);
        expect("entropy", max_abs_diff(get(*gpu, gent), get(*cpu, cent)), 2e-4);
        if (c.op == O::LogprobBackward) {
          Buffer cdh = put(*cpu, DType::F32, {m, D}, {}), gdh = put(*gpu, dt, {m, D}, {});
          cpu->logprob_backward(cdh, put(*cpu, DType::F32, {m}, dlp), ch, clm, ct, clse, inv_t);
          gpu->logprob_backward(gdh, put(*gpu, DType::F32, {m}, dlp), gh, glm, gt, glse, inv_t);
          expect("dhidden", rel_err(get(*gpu, gdh), get(*cpu, cdh)), 2e-2);
        }
        break;
      }
    }
    CHECK(ok);
    std::printf("  %s %s:", c.name, dn(dt));
    for (auto& [what, e] : errs) std::printf(" %s %.2e", what, e);
    std::printf("\n");
#ifdef HAYATE_WITH_CUDA
    const std::set<std::string> ran = variants_since(before);
    std::printf("    variants ran:");
    for (const std::string& v : ran) std::printf(" %s", v.c_str());
    std::printf("\n");
    for (const std::string& v : g::gemm_case_variants(c, dt == DType::BF16)) {
      if (!ran.count(v)) std::fprintf(stderr, "  %s %s: predicted variant %s did not run\n", c.name, dn(dt), v.c_str());
      CHECK(ran.count(v) == 1);
    }
#endif
  }
}

// One test per case: cuda_op/gemm/<case> (linear, gemm), cuda_op/lora/<case>, cuda_op/logprob/<case>.
const bool g_gemm_cases_registered = [] {
  static std::deque<std::string> names;  // stable storage for the registry's const char*
  for (const g::GemmCase& c : g::gemm_op_check_cases()) {
    const char* family = c.op == g::GemmCaseOp::Linear || c.op == g::GemmCaseOp::Gemm        ? "gemm"
                         : c.op == g::GemmCaseOp::LoraForward || c.op == g::GemmCaseOp::LoraBackward ? "lora"
                                                                                                     : "logprob";
    names.push_back(std::string("cuda_op/") + family + "/" + c.name);
    hayate_test::registry().push_back({names.back().c_str(), [c] { run_gemm_case(c); }});
  }
  return true;
}();

}  // namespace

// Attention at the head dims of the fast paths (64, 128) with GQA ratios 1, 2, 4, 8 and ragged varlen tails
// (lengths off the 64-row tiles, a 1-token sequence), bf16 and f32; tolerances as forward_backward_vs_cpu.
CUDA_OP_TEST(attention_gqa_head_dims, "cuda_op/attention/gqa_ratios_head_dims") {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  uint32_t seed = 700;
  for (int hd : {64, 128}) {
    for (auto [hq, hkv] : std::vector<std::array<int, 2>>{{4, 4}, {4, 2}, {8, 2}, {8, 1}}) {
      const VarlenCase c{{1, 63, 130, 65, 7}, hq, hkv, hd};
      const VarlenResult want = run_varlen_attention(*cpu, DType::F32, c, seed);
      for (DType dt : {DType::BF16, DType::F32}) {
        const VarlenResult got = run_varlen_attention(*gpu, dt, c, seed);
        const bool f32 = dt == DType::F32;
        const double e_out = max_abs_diff(got.out, want.out), e_lse = max_abs_diff(got.lse, want.lse);
        const double e_dq = rel_err(got.dq, want.dq), e_dk = rel_err(got.dk, want.dk), e_dv = rel_err(got.dv, want.dv);
        std::printf("  attention hd %d gqa %d (hq %d hkv %d) %s: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e\n", hd,
                    hq / hkv, hq, hkv, dn(dt), e_out, e_lse, e_dq, e_dk, e_dv);
        CHECK(e_out <= (f32 ? 1e-2 : 2e-2));
        CHECK(e_lse <= 2e-3);
        const double tg = f32 ? 3e-2 : 5e-2;
        CHECK(e_dq <= tg && e_dk <= tg && e_dv <= tg);
      }
      seed += 10;
    }
  }
}

// The kernel variants that ran in this process, printed at the end of each family (run a family alone,
// `hayate_native_tests cuda_op/<family>/`, and this lists that family's variants).
#define CUDA_OP_VARIANTS(ident, family, instrumented)                                                    \
  CUDA_OP_TEST(ident, "cuda_op/" family "/~variants") {                                                \
    if (!cuda_present()) return;                                                                       \
    print_variants(family, instrumented);                                                              \
  }

namespace {
// instrumented: the family's kernels have counters (elementwise and AdamW kernels have a single variant
// each and none), so running it alone leaves some.
[[maybe_unused]] void print_variants(const char* family, bool instrumented) {
#ifdef HAYATE_WITH_CUDA
  const auto counts = g::kernel_variant_counts();
  std::printf("kernel variants that ran (family %s, this process): %zu\n", family, counts.size());
  for (auto& [name, n] : counts) std::printf("  %-40s %lld launches\n", name.c_str(), static_cast<long long>(n));
  if (instrumented) CHECK(!counts.empty());
  // the qwen3-0.6b workload's variants of this family (op_check_cases.h) all ran
  const std::string fam = family;
  std::set<std::string> ran;
  for (auto& [name, n] : counts) ran.insert(name);
  auto of_family = [&](const std::string& v) {
    if (fam == "logprob") return v.rfind("logprob/", 0) == 0 || v.rfind("log_softmax_gather/", 0) == 0;
    return v.rfind(fam + "/", 0) == 0;
  };
  for (const std::string& v : g::qwen3_06b_other_variants()) {
    if (!of_family(v)) continue;
    if (!ran.count(v)) std::fprintf(stderr, "  qwen3-0.6b variant %s did not run in family %s\n", v.c_str(), family);
    CHECK(ran.count(v) == 1);
  }
#else
  (void)family;
  (void)instrumented;
#endif
}
}  // namespace

CUDA_OP_VARIANTS(variants_gemm, "gemm", true)
CUDA_OP_VARIANTS(variants_lora, "lora", true)
CUDA_OP_VARIANTS(variants_logprob, "logprob", true)
CUDA_OP_VARIANTS(variants_attention, "attention", true)
CUDA_OP_VARIANTS(variants_paged_attention, "paged_attention", true)
CUDA_OP_VARIANTS(variants_sampling, "sampling", true)
CUDA_OP_VARIANTS(variants_elementwise, "elementwise", false)
CUDA_OP_VARIANTS(variants_adamw, "adamw", false)
CUDA_OP_VARIANTS(variants_model, "model", true)
