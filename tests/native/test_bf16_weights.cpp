// Frozen bf16 weights on the CPU backend: the bf16-weight products (gemm.h) against a double reference over
// odd shapes, their batch invariance, the widened kernel against the f32 kernel bit for bit, the ops that
// read weights (embedding, lora_linear_backward, the lm-head log-prob pair), whole-model logits against the
// f32 computation with the same (rounded) weights, and how the weights' dtype is chosen.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "host_tensors.h"
#include "cpu/cpu_backend.h"
#include "cpu/gemm.h"
#include "cpu/gemm_kernel.h"
#include "model.h"
#include "tiny_config.h"

using namespace hayate;
using hayate_test::I;
using hayate_test::randn;
using hayate_test::T;

namespace {

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = f32_to_bf16(v[i]);
  return r;
}
std::vector<float> widen(const std::vector<uint16_t>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_to_f32(v[i]);
  return r;
}
Tensor B(std::vector<uint16_t>& v, std::initializer_list<int64_t> s) { return Tensor(v.data(), DType::BF16, s); }

// With AVX512_BF16 the activations are rounded to bf16 before the product; otherwise they are used as they are.
bool dot_kernels() { return cpu::bf16_kernel_name().find("dot") != std::string::npos; }
double act(float v) { return dot_kernels() ? bf16_to_f32(f32_to_bf16(v)) : v; }

}  // namespace

// out = alpha x w^T + beta out + bias and out = alpha x w + beta out against double sums of the same rounded
// inputs: what is left is f32 accumulation, bounded relative to sum |terms|.
TEST(bf16_weight_products_vs_reference) {
  ThreadPool pool(2);
  struct Shape {
    int64_t M, N, K;
  };
  for (Shape s : {Shape{1, 7, 5}, Shape{3, 33, 65}, Shape{7, 70, 1031}, Shape{13, 129, 1}, Shape{6, 64, 1100},
                  Shape{9, 5, 2}, Shape{17, 130, 33}}) {
    const int64_t M = s.M, N = s.N, K = s.K;
    auto x = randn(M * K, 1), bias = randn(N, 2), o0 = randn(M * N, 3);
    auto wb = to_bf16(randn(N * K, 4));
    std::vector<float> out = o0;
    cpu::gemm_nt_bf16w(pool, M, N, K, 0.5f, x.data(), K, wb.data(), K, 2.0f, out.data(), N, bias.data());
    double worst = 0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double sum = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double t = act(x[i * K + k]) * bf16_to_f32(wb[j * K + k]);
          sum += t;
          mag += std::fabs(t);
        }
        const double want = 0.5 * sum + 2.0 * o0[i * N + j] + bias[j];
        worst = std::max(worst, std::fabs(out[i * N + j] - want) / (1e-3 + 0.5 * mag + 2.0 * std::fabs(o0[i * N + j]) + std::fabs(bias[j])));
      }
    CHECK(worst < 1e-6);
    // w [N, K] read through its transpose: out2 [M, K] = alpha y [M, N] w + beta out2
    auto y = randn(M * N, 5), p0 = randn(M * K, 6);
    std::vector<float> out2 = p0;
    cpu::gemm_nn_bf16w(pool, cpu::GemmImpl::Auto, M, K, N, 0.5f, y.data(), wb.data(), 2.0f, out2.data());
    worst = 0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < K; ++k) {
        double sum = 0, mag = 0;
        for (int64_t j = 0; j < N; ++j) {
          const double t = act(y[i * N + j]) * bf16_to_f32(wb[j * K + k]);
          sum += t;
          mag += std::fabs(t);
        }
        const double want = 0.5 * sum + 2.0 * p0[i * K + k];
        worst = std::max(worst, std::fabs(out2[i * K + k] - want) / (1e-3 + 0.5 * mag + 2.0 * std::fabs(p0[i * K + k])));
      }
    CHECK(worst < 1e-6);
  }
}

// Both bf16 products keep the batch-invariance property: a row's result is bit-identical alone, in any
// batch, in any position, with any thread count.
TEST(bf16_weight_products_are_batch_invariant) {
  for (int64_t K : {1100, 515, 32, 3}) for (int64_t M : {37, 36}) {  // 36: a last panel of one row
    const int64_t N = 71;
    auto x = randn(M * K, 7), b = randn(N, 9);
    auto wb = to_bf16(randn(N * K, 8));
    CpuBackend be2(2, "builtin"), be1(1, "builtin"), be3(3, "builtin");
    std::vector<float> all(M * N), all1(M * N), all3(M * N), one(N);
    be2.linear(T(all, {M, N}), T(x, {M, K}), B(wb, {N, K}), T(b, {N}));
    be1.linear(T(all1, {M, N}), T(x, {M, K}), B(wb, {N, K}), T(b, {N}));
    be3.linear(T(all3, {M, N}), T(x, {M, K}), B(wb, {N, K}), T(b, {N}));
    CHECK(std::memcmp(all.data(), all1.data(), all.size() * 4) == 0);
    CHECK(std::memcmp(all.data(), all3.data(), all.size() * 4) == 0);
    for (int64_t i = 0; i < M; i += 5) {
      std::vector<float> xi(x.begin() + i * K, x.begin() + (i + 1) * K);
      be2.linear(T(one, {1, N}), T(xi, {1, K}), B(wb, {N, K}), T(b, {N}));
      CHECK(std::memcmp(one.data(), all.data() + i * N, N * 4) == 0);
    }
    // through the transpose: dx rows alone and batched
    auto dy = randn(M * N, 10);
    std::vector<float> dx(M * K), dx1(K), dx3(M * K);
    ThreadPool p2(2), p3(3);
    cpu::gemm_nn_bf16w(p2, cpu::GemmImpl::Builtin, M, K, N, 1.0f, dy.data(), wb.data(), 0.0f, dx.data());
    cpu::gemm_nn_bf16w(p3, cpu::GemmImpl::Builtin, M, K, N, 1.0f, dy.data(), wb.data(), 0.0f, dx3.data());
    CHECK(std::memcmp(dx.data(), dx3.data(), dx.size() * 4) == 0);
    for (int64_t i = 0; i < M; i += 6) {
      cpu::gemm_nn_bf16w(p2, cpu::GemmImpl::Builtin, 1, K, N, 1.0f, dy.data() + i * N, wb.data(), 0.0f, dx1.data());
      CHECK(std::memcmp(dx1.data(), dx.data() + i * K, K * 4) == 0);
    }
  }
}

// Without AVX512_BF16, bf16 weights are widened in registers: the f32 kernel's recipe on the rounded weights,
// bit for bit (this build's own instruction set; the portable build's sets are run by the package test).
TEST(bf16_widened_kernel_equals_f32_kernel_bitwise) {
  ThreadPool pool(2);
  for (int64_t K : {1031, 64, 7}) {
    const int64_t M = 23, N = 45;
    auto x = randn(M * K, 11), b = randn(N, 12);
    auto wb = to_bf16(randn(N * K, 13));
    auto wf = widen(wb);
    std::vector<float> o1(M * N), o2(M * N);
    cpu::gemm_kernel::gemm_builtin_widen_bf16(pool, M, N, K, 0.75f, x.data(), K, wb.data(), K, 0.0f, o1.data(), N, b.data());
    cpu::gemm_kernel::gemm_builtin(pool, M, N, K, 0.75f, x.data(), K, 1, wf.data(), K, 0.0f, o2.data(), N, b.data());
    CHECK(std::memcmp(o1.data(), o2.data(), o1.size() * 4) == 0);
  }
}

// The ops that read frozen weights accept BF16 ones and give the f32 result of the same rounded weights
// (within the activation rounding of the dot kernels).
TEST(ops_read_bf16_weights) {
  CpuBackend be(2, "auto");
  const double tol = dot_kernels() ? 2e-2 : 1e-5;  // relative to the largest |value|
  auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i]))), m = std::max(m, double(std::fabs(b[i])));
    return d / m;
  };
  // embedding: rows widened exactly
  const int64_t V = 50, D = 40;
  auto tb = to_bf16(randn(V * D, 20));
  auto tf = widen(tb);
  std::vector<int32_t> ids{3, 0, 49, 3};
  std::vector<float> e1(4 * D), e2(4 * D);
  be.embedding(T(e1, {4, D}), B(tb, {V, D}), I(ids, {4}));
  be.embedding(T(e2, {4, D}), T(tf, {V, D}), I(ids, {4}));
  CHECK(e1 == e2);
  // lora_linear_backward: dx through the bf16 weight, dA and dB as in f32
  const int64_t M = 9, N = 33, K = 40, r = 4;
  auto wb = to_bf16(randn(N * K, 21, 0.2f));
  auto wf = widen(wb);
  auto x = randn(M * K, 22), a = randn(r * K, 23, 0.1f), bb = randn(N * r, 24, 0.1f), dout = randn(M * N, 25);
  std::vector<float> xa(M * r), out1(M * N), out2(M * N);
  be.lora_linear(T(out1, {M, N}), T(xa, {M, r}), T(x, {M, K}), B(wb, {N, K}), Tensor{}, T(a, {r, K}), T(bb, {N, r}), 2.0f);
  be.lora_linear(T(out2, {M, N}), T(xa, {M, r}), T(x, {M, K}), T(wf, {N, K}), Tensor{}, T(a, {r, K}), T(bb, {N, r}), 2.0f);
  CHECK(rel(out1, out2) < tol);
  std::vector<float> dx1(M * K, 1.0f), dx2(M * K, 1.0f), da1(r * K), da2(r * K), db1(N * r), db2(N * r);
  be.lora_linear_backward(T(dx1, {M, K}), T(da1, {r, K}), T(db1, {N, r}), T(dout, {M, N}), T(x, {M, K}), T(xa, {M, r}),
                          B(wb, {N, K}), T(a, {r, K}), T(bb, {N, r}), 2.0f, true);
  be.lora_linear_backward(T(dx2, {M, K}), T(da2, {r, K}), T(db2, {N, r}), T(dout, {M, N}), T(x, {M, K}), T(xa, {M, r}),
                          T(wf, {N, K}), T(a, {r, K}), T(bb, {N, r}), 2.0f, true);
  CHECK(rel(dx1, dx2) < tol);
  CHECK(da1 == da2);
  CHECK(db1 == db2);
  // the lm-head log-prob pair
  const int64_t m = 6, Vh = 300;
  auto hb = to_bf16(randn(Vh * K, 26, 0.3f));
  auto hf = widen(hb);
  auto hidden = randn(m * K, 27);
  std::vector<int32_t> tg{0, 5, 299, 7, 7, 100};
  std::vector<float> lp1(m), lp2(m), lse1(m), lse2(m), ent1(m), ent2(m);
  be.logprob_forward(T(lp1, {m}), T(lse1, {m}), T(ent1, {m}), T(hidden, {m, K}), B(hb, {Vh, K}), I(tg, {m}), 0.8f);
  be.logprob_forward(T(lp2, {m}), T(lse2, {m}), T(ent2, {m}), T(hidden, {m, K}), T(hf, {Vh, K}), I(tg, {m}), 0.8f);
  CHECK(rel(lp1, lp2) < tol);
  CHECK(rel(ent1, ent2) < tol);
  auto dl = randn(m, 28);
  std::vector<float> dh1(m * K), dh2(m * K);
  be.logprob_backward(T(dh1, {m, K}), T(dl, {m}), T(hidden, {m, K}), B(hb, {Vh, K}), I(tg, {m}), T(lse1, {m}), 0.8f);
  be.logprob_backward(T(dh2, {m, K}), T(dl, {m}), T(hidden, {m, K}), T(hf, {Vh, K}), I(tg, {m}), T(lse2, {m}), 0.8f);
  CHECK(rel(dh1, dh2) < tol);
  // a BF16 weight where the op needs a float activation is still an argument error
  CHECK_THROWS_CODE(be.linear(T(out1, {M, N}), B(wb, {N, K}), B(wb, {N, K}), Tensor{}), ErrorCode::kInvalidArgument);
}

// A bf16-weight model's logits against the f32 model with the same weights rounded to bf16. The documented
// tolerance (docs/architecture.md): with the dot kernels (activations rounded to bf16 at every product)
// max |Δ logit| <= 0.03 * max |logit| and |Δ log p| of the greedy token below 0.05; widened, 1e-4.
TEST(bf16_weight_model_logits_match_f32) {
  for (Arch arch : {Arch::Qwen3, Arch::Llama}) {
    ModelConfig c = hayate_test::tiny_config(arch, 97, 64);
    c.hidden_size = 64;
    c.intermediate_size = 96;
    CpuBackend b16(2, "builtin", "f32", "bf16"), b32(2, "builtin", "f32", "f32");
    auto m16 = Model::random(b16, c, 5, 0.1f);
    auto m32 = Model::random(b32, c, 5, 0.1f);
    CHECK(m16->embed().dtype == DType::BF16);
    CHECK(m32->embed().dtype == DType::F32);
    CHECK(m16->layer(0).input_norm.t().dtype == DType::F32);
    CHECK(m16->weight_bytes() < m32->weight_bytes() * 6 / 10);
    // round the f32 model's matrices to bf16 in place: the same weights, expanded
    auto round = [](Tensor t) {
      float* p = t.as<float>();
      for (int64_t i = 0; i < t.numel(); ++i) p[i] = bf16_to_f32(f32_to_bf16(p[i]));
    };
    round(m32->embed());
    if (!c.tie_word_embeddings) round(m32->lm_head());
    for (int l = 0; l < c.num_layers; ++l)
      for (LoraTarget t : {LoraTarget::Q, LoraTarget::K, LoraTarget::V, LoraTarget::O, LoraTarget::Gate, LoraTarget::Up,
                           LoraTarget::Down})
        round(m32->projection(l, t).weight);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 40; ++i) tokens.push_back((i * 37 + 11) % c.vocab_size);
    const std::vector<float> l16 = m16->sequence_logits(tokens), l32 = m32->sequence_logits(tokens);
    double dmax = 0, scale = 0, dlogp = 0;
    for (size_t row = 0; row < tokens.size(); ++row) {
      const float* a = l16.data() + row * c.vocab_size;
      const float* b = l32.data() + row * c.vocab_size;
      double lse_a = 0, lse_b = 0, ma = -1e30, mb = -1e30;
      int arg = 0;
      for (int j = 0; j < c.vocab_size; ++j) {
        dmax = std::max(dmax, double(std::fabs(a[j] - b[j])));
        scale = std::max(scale, double(std::fabs(b[j])));
        ma = std::max(ma, double(a[j]));
        if (b[j] > mb) mb = b[j], arg = j;
      }
      for (int j = 0; j < c.vocab_size; ++j) lse_a += std::exp(a[j] - ma), lse_b += std::exp(b[j] - mb);
      dlogp = std::max(dlogp, std::fabs((a[arg] - ma - std::log(lse_a)) - (b[arg] - mb - std::log(lse_b))));
    }
    std::printf("    %s: max |d logit| %.3g of max |logit| %.3g, max |d log p(greedy)| %.3g (%s)\n",
                c.architecture.c_str(), dmax, scale, dlogp, cpu::bf16_kernel_name().c_str());
    CHECK(dmax <= (dot_kernels() ? 0.03 : 1e-4) * scale);
    CHECK(dlogp < (dot_kernels() ? 0.05 : 1e-4));
  }
}

TEST(weight_dtype_choice) {
  CpuBackend autob(1, "auto"), b16(1, "auto", "f32", "bf16"), f32(1, "auto", "f32", "f32"), f64(1, "auto", "f64");
  CHECK(autob.matrix_dtype(DType::BF16) == DType::BF16);
  CHECK(autob.matrix_dtype(DType::F32) == DType::F32);
  CHECK(autob.matrix_dtype(DType::F16) == DType::F32);
  CHECK(b16.matrix_dtype(DType::F32) == DType::BF16);
  CHECK(f32.matrix_dtype(DType::BF16) == DType::F32);
  CHECK(f64.matrix_dtype(DType::BF16) == DType::F64);
  CHECK_THROWS_CODE(CpuBackend(1, "auto", "f64", "bf16"), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(CpuBackend(1, "auto", "f32", "f16"), ErrorCode::kInvalidArgument);
  CHECK(autob.description().find("bf16 weights") != std::string::npos);
}
