// CPU backend ops against naive double-precision references written here, over odd shapes.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/cpu_backend.h"
#include "thread_pool.h"

using namespace hayate;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng) * scale;
  return v;
}

Tensor T(std::vector<float>& v, std::initializer_list<int64_t> s) { return Tensor(v.data(), DType::F32, s); }
Tensor I(std::vector<int32_t>& v, std::initializer_list<int64_t> s) { return Tensor(v.data(), DType::I32, s); }

double max_rel(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return diff / scale;
}

std::vector<std::string> gemm_impls() {
  std::vector<std::string> v{"builtin"};
  if (blas_compiled()) v.push_back("blas");
  return v;
}

}  // namespace

TEST(thread_pool_covers_every_index_once) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (auto& h : hits) CHECK(h.load() == 1);
  }
}

TEST(gemm_all_transposes_vs_naive) {
  for (const std::string& impl : gemm_impls()) {
    CpuBackend be(2, impl);
    for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {3, 17, 5}, {37, 65, 127}, {64, 33, 200}}) {
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
          auto a = randn(M * K, 1), b = randn(K * N, 2), c = randn(M * N, 3);
          std::vector<double> want(M * N);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double s = 0;
              for (int64_t k = 0; k < K; ++k) s += double(ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
              want[i * N + j] = 0.5 * s + 0.25 * c[i * N + j];
            }
          Tensor ta_t = ta ? T(a, {K, M}) : T(a, {M, K});
          Tensor tb_t = tb ? T(b, {N, K}) : T(b, {K, N});
          be.gemm(T(c, {M, N}), ta_t, tb_t, ta, tb, 0.5f, 0.25f);
          CHECK(max_rel(c, want) < 1e-5);
        }
    }
  }
}

TEST(linear_with_bias_vs_naive) {
  for (const std::string& impl : gemm_impls()) {
    CpuBackend be(2, impl);
    const int64_t M = 13, N = 29, K = 71;
    auto x = randn(M * K, 4), w = randn(N * K, 5), b = randn(N, 6);
    std::vector<float> out(M * N);
    be.linear(T(out, {M, N}), T(x, {M, K}), T(w, {N, K}), T(b, {N}));
    std::vector<double> want(M * N);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = b[j];
        for (int64_t k = 0; k < K; ++k) s += double(x[i * K + k]) * w[j * K + k];
        want[i * N + j] = s;
      }
    CHECK(max_rel(out, want) < 1e-5);
  }
}

TEST(builtin_linear_is_batch_invariant) {
  CpuBackend be(2, "builtin");
  const int64_t M = 37, N = 70, K = 1000;
  auto x = randn(M * K, 7), w = randn(N * K, 8);
  std::vector<float> all(M * N), one(N);
  be.linear(T(all, {M, N}), T(x, {M, K}), T(w, {N, K}), Tensor{});
  for (int64_t i = 0; i < M; ++i) {
    std::vector<float> xi(x.begin() + i * K, x.begin() + (i + 1) * K);
    be.linear(T(one, {1, N}), T(xi, {1, K}), T(w, {N, K}), Tensor{});
    CHECK(std::memcmp(one.data(), all.data() + i * N, N * sizeof(float)) == 0);
  }
}

TEST(elementwise_and_norm_ops_vs_naive) {
  CpuBackend be(2, "builtin");
  const int64_t rows = 7, D = 33;
  auto x = randn(rows * D, 9), w = randn(D, 10), y = randn(rows * D, 11);
  std::vector<float> out(rows * D);
  be.rmsnorm(T(out, {rows, D}), T(x, {rows, D}), T(w, {D}), 1e-6f);
  std::vector<double> want(rows * D);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < D; ++j) ss += double(x[r * D + j]) * x[r * D + j];
    for (int64_t j = 0; j < D; ++j) want[r * D + j] = x[r * D + j] / std::sqrt(ss / D + 1e-6) * w[j];
  }
  CHECK(max_rel(out, want) < 1e-6);

  be.swiglu(T(out, {rows, D}), T(x, {rows, D}), T(y, {rows, D}));
  for (size_t i = 0; i < want.size(); ++i) want[i] = x[i] / (1 + std::exp(-double(x[i]))) * y[i];
  CHECK(max_rel(out, want) < 1e-6);

  be.add(T(out, {rows, D}), T(x, {rows, D}), T(y, {rows, D}));
  for (size_t i = 0; i < want.size(); ++i) want[i] = double(x[i]) + y[i];
  CHECK(max_rel(out, want) < 1e-7);

  std::vector<int32_t> ids{3, 0, 6, 3};
  std::vector<float> emb(4 * D);
  be.embedding(T(emb, {4, D}), T(x, {rows, D}), I(ids, {4}));
  for (int i = 0; i < 4; ++i) CHECK(std::memcmp(&emb[i * D], &x[ids[i] * D], D * 4) == 0);
}

TEST(rope_vs_naive_and_inverse) {
  CpuBackend be(2, "builtin");
  const int64_t n = 5, H = 3, hd = 8, max_pos = 20;
  auto x = randn(n * H * hd, 12), orig = x;
  std::vector<float> cs(max_pos * hd);
  for (int64_t p = 0; p < max_pos; ++p)
    for (int64_t i = 0; i < hd / 2; ++i) {
      double ang = p * std::pow(10000.0, -2.0 * i / hd);
      cs[p * hd + i] = std::cos(ang);
      cs[p * hd + hd / 2 + i] = std::sin(ang);
    }
  std::vector<int32_t> pos{0, 3, 19, 7, 7};
  be.rope(T(x, {n, H * hd}), I(pos, {n}), T(cs, {max_pos, hd}), hd);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < hd / 2; ++i) {
        const float* o = &orig[(t * H + h) * hd];
        double ang = pos[t] * std::pow(10000.0, -2.0 * i / hd);
        CHECK_NEAR(x[(t * H + h) * hd + i], o[i] * std::cos(ang) - o[i + hd / 2] * std::sin(ang), 1e-5);
        CHECK_NEAR(x[(t * H + h) * hd + i + hd / 2], o[i + hd / 2] * std::cos(ang) + o[i] * std::sin(ang), 1e-5);
      }
  std::vector<int32_t> bad{0, 3, 20, 7, 7};
  CHECK_THROWS_CODE(be.rope(T(x, {n, H * hd}), I(bad, {n}), T(cs, {max_pos, hd}), hd), ErrorCode::kInvalidArgument);
}

// Dense causal attention over contiguous K/V of each sequence vs paged attention through scrambled blocks.
TEST(paged_attention_vs_dense_gqa_and_mha) {
  CpuBackend be(2, "builtin");
  for (auto [Hq, Hkv] : std::vector<std::pair<int, int>>{{4, 2}, {3, 3}, {8, 1}}) {
    const int hd = 16, bs = 4, num_blocks = 16;
    const std::vector<int> lens{9, 1, 14};
    std::vector<int32_t> tables = {5, 2, 11, 0, 0, 7, 0, 0, 1, 15, 3, 9};  // 3 seqs x 4 blocks
    std::vector<float> kc(num_blocks * bs * Hkv * hd), vc(kc.size());
    std::vector<std::vector<float>> K(3), Vv(3), Q(3);
    std::vector<int32_t> seq, pos;
    std::vector<float> q;
    for (int s = 0; s < 3; ++s) {
      K[s] = randn(lens[s] * Hkv * hd, 20 + s);
      Vv[s] = randn(lens[s] * Hkv * hd, 30 + s);
      Q[s] = randn(lens[s] * Hq * hd, 40 + s);
      for (int p = 0; p < lens[s]; ++p) {
        int row = tables[s * 4 + p / bs] * bs + p % bs;
        std::memcpy(&kc[row * Hkv * hd], &K[s][p * Hkv * hd], Hkv * hd * 4);
        std::memcpy(&vc[row * Hkv * hd], &Vv[s][p * Hkv * hd], Hkv * hd * 4);
        seq.push_back(s);
        pos.push_back(p);
        q.insert(q.end(), Q[s].begin() + p * Hq * hd, Q[s].begin() + (p + 1) * Hq * hd);
      }
    }
    const int64_t n = seq.size();
    std::vector<float> out(n * Hq * hd);
    AttentionMeta m;
    m.block_tables = I(tables, {3, 4});
    m.token_seq = I(seq, {n});
    m.token_pos = I(pos, {n});
    m.block_size = bs;
    m.num_q_heads = Hq;
    m.num_kv_heads = Hkv;
    m.head_dim = hd;
    m.scale = 1.0f / std::sqrt(float(hd));
    be.paged_attention(T(out, {n, Hq * hd}), T(q, {n, Hq * hd}), T(kc, {num_blocks * bs, Hkv * hd}),
                       T(vc, {num_blocks * bs, Hkv * hd}), m);
    std::vector<double> want(out.size());
    for (int64_t t = 0; t < n; ++t) {
      int s = seq[t], p = pos[t];
      for (int h = 0; h < Hq; ++h) {
        int kvh = h / (Hq / Hkv);
        std::vector<double> sc(p + 1);
        double mx = -1e300, den = 0;
        for (int j = 0; j <= p; ++j) {
          double d = 0;
          for (int e = 0; e < hd; ++e) d += double(q[(t * Hq + h) * hd + e]) * K[s][(j * Hkv + kvh) * hd + e];
          sc[j] = d / std::sqrt(double(hd));
          mx = std::max(mx, sc[j]);
        }
        for (auto& v : sc) den += (v = std::exp(v - mx));
        for (int e = 0; e < hd; ++e) {
          double acc = 0;
          for (int j = 0; j <= p; ++j) acc += sc[j] / den * Vv[s][(j * Hkv + kvh) * hd + e];
          want[(t * Hq + h) * hd + e] = acc;
        }
      }
    }
    CHECK(max_rel(out, want) < 1e-5);
    // a block id outside the cache is an error, not a read out of bounds
    tables[0] = 99;
    CHECK_THROWS_CODE(be.paged_attention(T(out, {n, Hq * hd}), T(q, {n, Hq * hd}), T(kc, {num_blocks * bs, Hkv * hd}),
                                         T(vc, {num_blocks * bs, Hkv * hd}), m),
                      ErrorCode::kInvalidArgument);
  }
}

TEST(log_softmax_gather_vs_naive) {
  CpuBackend be(2, "builtin");
  const int64_t n = 3, V = 1001;
  auto logits = randn(n * V, 50, 3.0f);
  std::vector<int32_t> tg{0, 500, 1000};
  std::vector<float> out(n);
  be.log_softmax_gather(T(out, {n}), T(logits, {n, V}), I(tg, {n}), 0.5f);
  for (int64_t i = 0; i < n; ++i) {
    double mx = -1e300, s = 0;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, 0.5 * logits[i * V + j]);
    for (int64_t j = 0; j < V; ++j) s += std::exp(0.5 * logits[i * V + j] - mx);
    CHECK_NEAR(out[i], 0.5 * logits[i * V + tg[i]] - mx - std::log(s), 1e-4);
  }
}

TEST(sampling_semantics) {
  const int64_t V = 50;
  auto logits = randn(V, 60, 2.0f);
  int64_t argmax = std::max_element(logits.begin(), logits.end()) - logits.begin();
  int32_t id;
  float lp;
  SamplingRow greedy;
  greedy.temperature = 0;
  sample_row(logits.data(), V, greedy, &id, &lp);
  CHECK(id == argmax);
  for (auto filter : {0, 1, 2}) {  // top_k = 1, tiny top_p, min_p = 1 all reduce to the argmax
    SamplingRow r;
    r.seed = 5;
    if (filter == 0) r.top_k = 1;
    if (filter == 1) r.top_p = 1e-6f;
    if (filter == 2) r.min_p = 1.0f;
    for (uint64_t step = 0; step < 20; ++step) {
      r.step = step;
      sample_row(logits.data(), V, r, &id, &lp);
      CHECK(id == argmax);
    }
  }
  // same seed and step -> same id; empirical frequencies follow softmax(logits / T) restricted to top-k
  SamplingRow r;
  r.temperature = 1.5f;
  r.top_k = 5;
  r.seed = 123;
  std::vector<double> p(V);
  double mx = *std::max_element(logits.begin(), logits.end()) / 1.5, total = 0;
  for (int64_t j = 0; j < V; ++j) total += (p[j] = std::exp(logits[j] / 1.5 - mx));
  std::vector<int64_t> order(V);
  for (int64_t j = 0; j < V; ++j) order[j] = j;
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
  double kept = 0;
  for (int j = 0; j < 5; ++j) kept += p[order[j]];
  std::map<int32_t, int> counts;
  const int draws = 20000;
  for (int s = 0; s < draws; ++s) {
    r.step = s;
    sample_row(logits.data(), V, r, &id, &lp);
    int32_t again;
    float lp2;
    sample_row(logits.data(), V, r, &again, &lp2);
    CHECK(again == id);
    CHECK_NEAR(lp, std::log(p[id] / total), 1e-4);  // log-prob before filtering
    counts[id]++;
  }
  CHECK(counts.size() <= 5);
  for (int j = 0; j < 5; ++j) CHECK_NEAR(counts[order[j]] / double(draws), p[order[j]] / kept, 0.015);
}

TEST(bad_shapes_and_dtypes_throw) {
  CpuBackend be(1, "builtin");
  std::vector<float> a(12), b(12), c(12);
  std::vector<int32_t> ids{0, 1, 7};
  CHECK_THROWS_CODE(be.linear(T(c, {3, 4}), T(a, {3, 4}), T(b, {4, 3}), Tensor{}), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.gemm(T(c, {3, 4}), T(a, {3, 4}), T(b, {3, 4}), false, false, 1, 0), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.embedding(T(c, {3, 4}), T(a, {3, 4}), I(ids, {3})), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.add(T(c, {3, 4}), T(a, {3, 4}), T(b, {2, 4})), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.rmsnorm(T(c, {3, 4}), Tensor(ids.data(), DType::I32, {3}), T(b, {4}), 1e-6f), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(CpuBackend(1, "fastest"), ErrorCode::kInvalidArgument);
}
