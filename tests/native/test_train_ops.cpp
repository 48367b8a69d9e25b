// Every training op's backward against central finite differences of its own forward (CPU backend in
// f64), and the f32 kernels against the f64 results (train_check.h).
#include <cmath>
#include <cstring>

#include "check.h"
#include "train_check.h"

using namespace hayate;
using namespace hayate_test;

namespace {

std::vector<float> rope_table(int64_t max_pos, int64_t hd) {
  std::vector<float> cs(static_cast<size_t>(max_pos * hd));
  for (int64_t p = 0; p < max_pos; ++p)
    for (int64_t i = 0; i < hd / 2; ++i) {
      double ang = p * std::pow(10000.0, -2.0 * i / hd);
      cs[p * hd + i] = static_cast<float>(std::cos(ang));
      cs[p * hd + hd / 2 + i] = static_cast<float>(std::sin(ang));
    }
  return cs;
}

}  // namespace

TEST(lora_linear_backward_vs_finite_differences) {
  const int64_t M = 7, K = 13, N = 11, r = 3;
  const float scale = 1.7f;
  const Vec w = randv(N * K, 1), bias = randv(N, 2);
  OpCheck c;
  c.name = "lora_linear";
  c.inputs = {randv(M * K, 3), randv(r * K, 4), randv(N * r, 5)};  // x, a, b
  c.diff = {0, 1, 2};
  c.fwd = [&](Backend& be, const Vecs& in) {
    Buffer x = dev(be, in[0], {M, K}), a = dev(be, in[1], {r, K}), b = dev(be, in[2], {N, r});
    Buffer W = dev(be, w, {N, K}), B = dev(be, bias, {N}), out(be, be.param_dtype(), {M, N}), xa(be, be.param_dtype(), {M, r});
    be.lora_linear(out, xa, x, W, B, a, b, scale);
    return Vecs{host(be, out), host(be, xa)};
  };
  c.bwd = [&](Backend& be, const Vecs& in, const Vecs& d) {
    Buffer x = dev(be, in[0], {M, K}), a = dev(be, in[1], {r, K}), b = dev(be, in[2], {N, r}), W = dev(be, w, {N, K});
    Buffer xa(be, be.param_dtype(), {M, r}), out(be, be.param_dtype(), {M, N});
    be.lora_linear(out, xa, x, W, Tensor{}, a, b, scale);
    Buffer dout = dev(be, d[0], {M, N}), dx(be, be.param_dtype(), {M, K});
    Buffer da = dev(be, Vec(r * K, 0.0), {r, K}), db = dev(be, Vec(N * r, 0.0), {N, r});
    be.lora_linear_backward(dx, da, db, dout, x, xa, W, a, b, scale, false);
    return Vecs{host(be, dx), host(be, da), host(be, db)};
  };
  run_op_check(c);

  // xa = x a^T, and the accumulation contract: da/db always add, dx adds only when asked
  CpuBackend be(2, "auto", "f64");
  Buffer x = dev(be, c.inputs[0], {M, K}), a = dev(be, c.inputs[1], {r, K}), b = dev(be, c.inputs[2], {N, r}), W = dev(be, w, {N, K});
  Buffer xa(be, DType::F64, {M, r}), out(be, DType::F64, {M, N});
  be.lora_linear(out, xa, x, W, Tensor{}, a, b, scale);
  Vec xah = host(be, xa);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < r; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += c.inputs[0][i * K + k] * c.inputs[1][j * K + k];
      CHECK_NEAR(xah[i * r + j], s, 1e-12);
    }
  Buffer dout = dev(be, randv(M * N, 9), {M, N}), dx = dev(be, Vec(M * K, 0.0), {M, K});
  Buffer da = dev(be, Vec(r * K, 0.0), {r, K}), db = dev(be, Vec(N * r, 0.0), {N, r});
  be.lora_linear_backward(dx, da, db, dout, x, xa, W, a, b, scale, false);
  Vec dx1 = host(be, dx), da1 = host(be, da), db1 = host(be, db);
  be.lora_linear_backward(dx, da, db, dout, x, xa, W, a, b, scale, true);
  Vec dx2 = host(be, dx), da2 = host(be, da), db2 = host(be, db);
  for (size_t i = 0; i < dx1.size(); ++i) CHECK_NEAR(dx2[i], 2 * dx1[i], 1e-12);
  for (size_t i = 0; i < da1.size(); ++i) CHECK_NEAR(da2[i], 2 * da1[i], 1e-12);
  for (size_t i = 0; i < db1.size(); ++i) CHECK_NEAR(db2[i], 2 * db1[i], 1e-12);
  // bad shapes are reported, not UB
  Buffer wrong(be, DType::F64, {r + 1, K});
  CHECK_THROWS_CODE(be.lora_linear(out, xa, x, W, Tensor{}, wrong, b, scale), ErrorCode::kInvalidArgument);
  Buffer f32(be, DType::F32, {M, N});
  CHECK_THROWS_CODE(be.lora_linear(f32, xa, x, W, Tensor{}, a, b, scale), ErrorCode::kInvalidArgument);
}

TEST(linear_backward_without_lora_vs_finite_differences) {
  const int64_t M = 5, K = 9, N = 6;
  const Vec w = randv(N * K, 11);
  OpCheck c;
  c.name = "linear backward";
  c.inputs = {randv(M * K, 12)};
  c.diff = {0};
  c.fwd = [&](Backend& be, const Vecs& in) {
    Buffer x = dev(be, in[0], {M, K}), W = dev(be, w, {N, K}), out(be, be.param_dtype(), {M, N});
    be.linear(out, x, W, Tensor{});
    return Vecs{host(be, out)};
  };
  c.bwd = [&](Backend& be, const Vecs& in, const Vecs& d) {
    Buffer x = dev(be, in[0], {M, K}), W = dev(be, w, {N, K}), dout = dev(be, d[0], {M, N}), dx(be, be.param_dtype(), {M, K});
    be.lora_linear_backward(dx, {}, {}, dout, x, {}, W, {}, {}, 0.0f, false);
    return Vecs{host(be, dx)};
  };
  run_op_check(c);
}

namespace {

// Attention over sequences of lengths `lens` with Hq query and Hkv key/value heads of width hd.
void attention_check(std::vector<int> lens, int64_t Hq, int64_t Hkv, int64_t hd, uint32_t seed) {
  std::vector<int32_t> cu{0};
  for (int L : lens) cu.push_back(cu.back() + L);
  const int64_t n = cu.back();
  VarlenMeta meta;
  meta.num_q_heads = static_cast<int>(Hq);
  meta.num_kv_heads = static_cast<int>(Hkv);
  meta.head_dim = static_cast<int>(hd);
  meta.scale = 0.37f;
  meta.max_seqlen = *std::max_element(lens.begin(), lens.end());
  OpCheck c;
  c.name = "attention Hq=" + std::to_string(Hq) + " Hkv=" + std::to_string(Hkv);
  c.inputs = {randv(n * Hq * hd, seed), randv(n * Hkv * hd, seed + 1), randv(n * Hkv * hd, seed + 2)};
  c.diff = {0, 1, 2};
  auto forward = [&](Backend& be, const Vecs& in, Buffer& q, Buffer& k, Buffer& v, Buffer& out, Buffer& lse, Buffer& cub) {
    q = dev(be, in[0], {n, Hq * hd});
    k = dev(be, in[1], {n, Hkv * hd});
    v = dev(be, in[2], {n, Hkv * hd});
    out = Buffer(be, be.param_dtype(), {n, Hq * hd});
    lse = Buffer(be, be.param_dtype(), {n, Hq});
    cub = dev_i32(be, cu);
    VarlenMeta m = meta;
    m.cu_seqlens = cub;
    be.attention_forward(out, lse, q, k, v, m);
    return m;
  };
  c.fwd = [&](Backend& be, const Vecs& in) {
    Buffer q, k, v, out, lse, cub;
    forward(be, in, q, k, v, out, lse, cub);
    return Vecs{host(be, out), host(be, lse)};
  };
  c.bwd = [&](Backend& be, const Vecs& in, const Vecs& d) {
    Buffer q, k, v, out, lse, cub;
    VarlenMeta m = forward(be, in, q, k, v, out, lse, cub);
    Buffer dout = dev(be, d[0], {n, Hq * hd}), dq(be, be.param_dtype(), {n, Hq * hd});
    Buffer dk(be, be.param_dtype(), {n, Hkv * hd}), dv(be, be.param_dtype(), {n, Hkv * hd});
    be.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, m);
    return Vecs{host(be, dq), host(be, dk), host(be, dv)};
  };
  run_op_check(c);

  // forward against a naive softmax attention (causal within each sequence), and lse
  CpuBackend be(1, "auto", "f64");
  Vecs got = c.fwd(be, c.inputs);
  const Vec &q = c.inputs[0], &k = c.inputs[1], &v = c.inputs[2];
  for (size_t s = 0; s + 1 < cu.size(); ++s)
    for (int64_t i = cu[s]; i < cu[s + 1]; ++i)
      for (int64_t h = 0; h < Hq; ++h) {
        const int64_t kvh = h / (Hq / Hkv);
        std::vector<double> sc;
        double mx = -1e300;
        for (int64_t j = cu[s]; j <= i; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < hd; ++e) dot += q[(i * Hq + h) * hd + e] * k[(j * Hkv + kvh) * hd + e];
          sc.push_back(dot * meta.scale);
          mx = std::max(mx, sc.back());
        }
        double sum = 0;
        for (double x : sc) sum += std::exp(x - mx);
        CHECK_NEAR(got[1][i * Hq + h], mx + std::log(sum), 1e-12);
        for (int64_t e = 0; e < hd; ++e) {
          double o = 0;
          for (int64_t j = cu[s]; j <= i; ++j) o += std::exp(sc[j - cu[s]] - mx) / sum * v[(j * Hkv + kvh) * hd + e];
          CHECK_NEAR(got[0][(i * Hq + h) * hd + e], o, 1e-12);
        }
      }
}

}  // namespace

TEST(attention_backward_vs_finite_differences_gqa_varlen) { attention_check({5, 1, 8}, 4, 2, 6, 21); }
TEST(attention_backward_vs_finite_differences_mha) { attention_check({3, 6}, 2, 2, 8, 31); }

TEST(attention_rejects_bad_cu_seqlens) {
  CpuBackend be(1, "auto", "f64");
  Buffer q = dev(be, randv(6 * 4, 1), {6, 4}), k = dev(be, randv(6 * 4, 2), {6, 4}), v = dev(be, randv(6 * 4, 3), {6, 4});
  Buffer out(be, DType::F64, {6, 4}), lse(be, DType::F64, {6, 1});
  Buffer cu = dev_i32(be, {0, 4, 3});  // decreasing, and does not end at 6
  VarlenMeta m;
  m.cu_seqlens = cu;
  m.num_q_heads = 1;
  m.num_kv_heads = 1;
  m.head_dim = 4;
  CHECK_THROWS_CODE(be.attention_forward(out, lse, q, k, v, m), ErrorCode::kInvalidArgument);
}

TEST(rmsnorm_backward_vs_finite_differences) {
  const int64_t rows = 5, D = 9;
  const float eps = 1e-5f;
  const Vec w = randv(D, 41);
  OpCheck c;
  c.name = "rmsnorm";
  c.inputs = {randv(rows * D, 42)};
  c.diff = {0};
  c.fwd = [&](Backend& be, const Vecs& in) {
    Buffer x = dev(be, in[0], {rows, D}), W = dev(be, w, {D}), out(be, be.param_dtype(), {rows, D});
    be.rmsnorm(out, x, W, eps);
    return Vecs{host(be, out)};
  };
  c.bwd = [&](Backend& be, const Vecs& in, const Vecs& d) {
    Buffer x = dev(be, in[0], {rows, D}), W = dev(be, w, {D}), dout = dev(be, d[0], {rows, D});
    be.rmsnorm_backward(dout, dout, x, W, eps, false);  // in place (dx aliases dout)
    return Vecs{host(be, dout)};
  };
  run_op_check(c);

  CpuBackend be(1, "auto", "f64");  // accumulate adds onto dx
  Buffer x = dev(be, c.inputs[0], {rows, D}), W = dev(be, w, {D}), dout = dev(be, randv(rows * D, 43), {rows, D});
  Buffer dx(be, DType::F64, {rows, D});
  be.rmsnorm_backward(dx, dout, x, W, eps, false);
  Vec once = host(be, dx);
  be.rmsnorm_backward(dx, dout, x, W, eps, true);
  Vec twice = host(be, dx);
  for (size_t i = 0; i < once.size(); ++i) CHECK_NEAR(twice[i], 2 * once[i], 1e-12);
}

TEST(rope_backward_vs_finite_differences) {
  const int64_t n = 4, H = 3, hd = 8, max_pos = 16;
  std::vector<float> cs = rope_table(max_pos, hd);
  std::vector<int32_t> pos{0, 5, 15, 5};
  OpCheck c;
  c.name = "rope";
  c.inputs = {randv(n * H * hd, 51)};
  c.diff = {0};
  c.f32_tol = 1e-6;
  auto run = [&](Backend& be, const Vec& data, bool inverse) {
    Buffer x = dev(be, data, {n, H * hd}), p = dev_i32(be, pos), t(be, DType::F32, {max_pos, hd});
    be.copy_from_host(t.t().data, cs.data(), cs.size() * 4);
    if (inverse) be.rope_backward(x, p, t, hd);
    else be.rope(x, p, t, hd);
    return host(be, x);
  };
  c.fwd = [&](Backend& be, const Vecs& in) { return Vecs{run(be, in[0], false)}; };
  c.bwd = [&](Backend& be, const Vecs&, const Vecs& d) { return Vecs{run(be, d[0], true)}; };
  run_op_check(c);
}

TEST(swiglu_backward_vs_finite_differences) {
  const int64_t n = 23;
  OpCheck c;
  c.name = "swiglu";
  c.inputs = {randv(n, 61, 2.0), randv(n, 62)};
  c.diff = {0, 1};
  c.fwd = [&](Backend& be, const Vecs& in) {
    Buffer g = dev(be, in[0], {n}), u = dev(be, in[1], {n}), out(be, be.param_dtype(), {n});
    be.swiglu(out, g, u);
    return Vecs{host(be, out)};
  };
  c.bwd = [&](Backend& be, const Vecs& in, const Vecs& d) {
    Buffer g = dev(be, in[0], {n}), u = dev(be, in[1], {n}), dout = dev(be, d[0], {n});
    be.swiglu_backward(g, u, dout, g, u);  // in place over gate and up, as the training graph does
    return Vecs{host(be, g), host(be, u)};
  };
  run_op_check(c);
}

TEST(logprob_forward_backward_vs_finite_differences) {
  const int64_t m = 6, D = 8, V = 37;
  const float inv_t = 1.0f / 0.7f;
  const Vec head = randv(V * D, 71);
  const std::vector<int32_t> targets{0, 36, 5, 5, 17, 2};
  OpCheck c;
  c.name = "logprob";
  c.inputs = {randv(m * D, 72)};
  c.diff = {0};
  auto forward = [&](Backend& be, const Vec& hid, Buffer& h, Buffer& W, Buffer& t, Buffer& lp, Buffer& lse, Buffer& ent) {
    h = dev(be, hid, {m, D});
    W = dev(be, head, {V, D});
    t = dev_i32(be, targets);
    lp = Buffer(be, be.param_dtype(), {m});
    lse = Buffer(be, be.param_dtype(), {m});
    ent = Buffer(be, be.param_dtype(), {m});
    be.logprob_forward(lp, lse, ent, h, W, t, inv_t);
  };
  c.fwd = [&](Backend& be, const Vecs& in) {
    Buffer h, W, t, lp, lse, ent;
    forward(be, in[0], h, W, t, lp, lse, ent);
    return Vecs{host(be, lp), host(be, lse), host(be, ent)};
  };
  c.bwd = [&](Backend& be, const Vecs& in, const Vecs& d) {
    Buffer h, W, t, lp, lse, ent;
    forward(be, in[0], h, W, t, lp, lse, ent);
    Buffer dlp = dev(be, d[0], {m}), dh(be, be.param_dtype(), {m, D});
    be.logprob_backward(dh, dlp, h, W, t, lse, inv_t);
    return Vecs{host(be, dh)};
  };
  run_op_check(c);

  // values against a naive log-softmax
  CpuBackend be(1, "auto", "f64");
  Vecs got = c.fwd(be, c.inputs);
  for (int64_t i = 0; i < m; ++i) {
    std::vector<double> z(V);
    double mx = -1e300;
    for (int64_t j = 0; j < V; ++j) {
      double s = 0;
      for (int64_t e = 0; e < D; ++e) s += c.inputs[0][i * D + e] * head[j * D + e];
      z[j] = s * inv_t;
      mx = std::max(mx, z[j]);
    }
    double sum = 0;
    for (double x : z) sum += std::exp(x - mx);
    const double lse = mx + std::log(sum);
    double ent = 0;
    for (double x : z) ent -= std::exp(x - lse) * (x - lse);
    CHECK_NEAR(got[0][i], z[targets[i]] - lse, 1e-12);
    CHECK_NEAR(got[1][i], lse, 1e-12);
    CHECK_NEAR(got[2][i], ent, 1e-12);
  }
  Buffer h = dev(be, c.inputs[0], {m, D}), W = dev(be, head, {V, D}), bad = dev_i32(be, {0, 1, 2, 3, 4, 37});
  Buffer lp(be, DType::F64, {m}), lse(be, DType::F64, {m});
  CHECK_THROWS_CODE(be.logprob_forward(lp, lse, Tensor{}, h, W, bad, 1.0f), ErrorCode::kInvalidArgument);
}

TEST(scatter_add_rows_adds_into_rows) {
  CpuBackend be(1, "auto", "f64");
  Vec base = randv(5 * 3, 81), src = randv(2 * 3, 82);
  Buffer out = dev(be, base, {5, 3}), s = dev(be, src, {2, 3}), ids = dev_i32(be, {4, 1});
  be.scatter_add_rows(out, s, ids);
  Vec got = host(be, out);
  for (int j = 0; j < 3; ++j) {
    CHECK_NEAR(got[4 * 3 + j], base[4 * 3 + j] + src[j], 1e-15);
    CHECK_NEAR(got[1 * 3 + j], base[1 * 3 + j] + src[3 + j], 1e-15);
    CHECK_NEAR(got[0 * 3 + j], base[0 * 3 + j], 0);
  }
  Buffer bad = dev_i32(be, {5, 0});
  CHECK_THROWS_CODE(be.scatter_add_rows(out, s, bad), ErrorCode::kInvalidArgument);
}

TEST(adamw_step_matches_pytorch_formula) {
  for (const char* precision : {"f64", "f32"}) {
    CpuBackend be(2, "auto", precision);
    const int64_t n = 7;
    Vec p = randv(n, 91), m(n, 0.0), v(n, 0.0);
    Buffer P = dev(be, p, {n}), M = dev(be, m, {n}), Vb = dev(be, v, {n});
    AdamWParams hp;
    hp.lr = 0.01;
    hp.beta1 = 0.8;
    hp.beta2 = 0.95;
    hp.eps = 1e-6;
    hp.weight_decay = 0.1;
    hp.grad_scale = 0.5;
    for (int t = 1; t <= 3; ++t) {
      Vec g = randv(n, 92 + t);
      Buffer G = dev(be, g, {n});
      hp.step = t;
      be.adamw_step(P, G, M, Vb, hp);
      for (int64_t i = 0; i < n; ++i) {  // torch.optim.AdamW: decay, then the bias-corrected Adam update
        const double gi = g[i] * hp.grad_scale;
        m[i] = hp.beta1 * m[i] + (1 - hp.beta1) * gi;
        v[i] = hp.beta2 * v[i] + (1 - hp.beta2) * gi * gi;
        p[i] *= 1 - hp.lr * hp.weight_decay;
        const double denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(hp.beta2, t)) + hp.eps;
        p[i] -= hp.lr / (1 - std::pow(hp.beta1, t)) * m[i] / denom;
      }
    }
    Vec got = host(be, P);
    const double tol = std::string(precision) == "f64" ? 1e-12 : 1e-6;
    for (int64_t i = 0; i < n; ++i) CHECK_NEAR(got[i], p[i], tol);
  }
}

// The trainer's optimizer call: adamw_step_multi over several tensors equals adamw_step on each, bit for bit
// (the CPU backend uses the Backend default, a loop over adamw_step), over three steps.
TEST(adamw_step_multi_equals_per_tensor_adamw_step) {
  for (const char* precision : {"f64", "f32"}) {
    CpuBackend be(2, "auto", precision);
    const std::vector<int64_t> sizes{7, 1, 130, 64};
    std::vector<Buffer> p1, m1, v1, p2, m2, v2, g;
    std::vector<AdamWTensorRef> refs;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const int64_t n = sizes[i];
      Vec p = randv(n, 300 + uint32_t(i)), zero(static_cast<size_t>(n), 0.0);
      p1.push_back(dev(be, p, {n}));
      p2.push_back(dev(be, p, {n}));
      for (auto* vec : {&m1, &v1, &m2, &v2}) vec->push_back(dev(be, zero, {n}));
      g.push_back(dev(be, zero, {n}));
    }
    for (size_t i = 0; i < sizes.size(); ++i) refs.push_back({p1[i], g[i], m1[i], v1[i]});
    AdamWParams hp;
    hp.lr = 0.01;
    hp.beta1 = 0.9;
    hp.beta2 = 0.999;
    hp.eps = 1e-8;
    hp.weight_decay = 0.1;
    hp.grad_scale = 0.5;
    for (int t = 1; t <= 3; ++t) {
      for (size_t i = 0; i < sizes.size(); ++i) g[i] = dev(be, randv(sizes[i], 400 + 10 * uint32_t(t) + uint32_t(i)), {sizes[i]});
      for (size_t i = 0; i < sizes.size(); ++i) refs[i].grad = g[i];
      hp.step = t;
      be.adamw_step_multi(refs, hp);
      for (size_t i = 0; i < sizes.size(); ++i) be.adamw_step(p2[i], g[i], m2[i], v2[i], hp);
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      CHECK(host(be, p1[i]) == host(be, p2[i]));
      CHECK(host(be, m1[i]) == host(be, m2[i]));
      CHECK(host(be, v1[i]) == host(be, v2[i]));
    }
    hp.step = 0;  // validated as adamw_step does
    CHECK_THROWS_CODE(be.adamw_step_multi(refs, hp), ErrorCode::kInvalidArgument);
  }
}

TEST(sum_squares_and_non_finite_values) {
  CpuBackend be(2, "auto", "f32");
  Vec x = randv(100003, 101);
  Buffer b = dev(be, x, {100003});
  double want = 0;
  for (double v : x) want += static_cast<float>(v) * static_cast<double>(static_cast<float>(v));
  CHECK_NEAR(be.sum_squares(b), want, 1e-9 * want);
  x[5] = std::nan("");
  Buffer c = dev(be, x, {100003});
  CHECK(std::isnan(be.sum_squares(c)));
}
