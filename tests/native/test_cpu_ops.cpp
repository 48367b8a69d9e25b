// CPU backend inference ops against naive double-precision references written here, over odd shapes;
// the thread pool; batch invariance of the built-in GEMM; sampling semantics; argument checking.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "host_tensors.h"
#include "cpu/cpu_backend.h"
#include "rng.h"
#include "thread_pool.h"

using namespace hayate;
using hayate_test::I;
using hayate_test::randn;
using hayate_test::T;

namespace {

// max |got - want| / max |want|
double max_rel(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return diff / scale;
}

std::vector<std::string> gemm_impls() {
  std::vector<std::string> v{"builtin", "auto"};
  if (blas_compiled()) v.push_back("blas");
  return v;
}

bool bit_equal(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

}  // namespace

// ---- thread pool ----------------------------------------------------------------------------------

TEST(thread_pool_covers_every_index_once) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    CHECK(pool.size() == threads);
    for (int64_t n : {1, 2, 3, 7, 64, 1000, 4097}) {
      for (int64_t min_per : {1, 3, 100}) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, [&](int64_t b, int64_t e) {
          CHECK(0 <= b && b < e && e <= n);
          for (int64_t i = b; i < e; ++i) hits[i]++;
        }, min_per);
        for (auto& h : hits) CHECK(h.load() == 1);
      }
    }
    pool.parallel_for(0, [&](int64_t, int64_t) { CHECK(false); });
  }
}

TEST(thread_pool_static_chunks_and_many_calls) {
  ThreadPool pool(3);
  // the split is a pure function of n and the pool size
  std::vector<std::pair<int64_t, int64_t>> first, again;
  std::mutex mu;
  auto record = [&](std::vector<std::pair<int64_t, int64_t>>& out) {
    pool.parallel_for(10, [&](int64_t b, int64_t e) {
      std::lock_guard<std::mutex> lock(mu);
      out.emplace_back(b, e);
    });
    std::sort(out.begin(), out.end());
  };
  record(first);
  record(again);
  CHECK(first == again);
  CHECK(first.size() == 3);
  // back-to-back small jobs (the decode pattern) all complete
  std::atomic<int64_t> sum{0};
  for (int i = 0; i < 20000; ++i) pool.parallel_for(4, [&](int64_t b, int64_t e) { sum += e - b; });
  CHECK(sum.load() == 80000);
}

TEST(thread_pool_rethrows_worker_exceptions) {
  ThreadPool pool(2);
  bool caught = false;
  try {
    pool.parallel_for(100, [&](int64_t b, int64_t) {
      if (b > 0) throw std::runtime_error("boom");  // thrown on a worker
    });
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "boom";
  }
  CHECK(caught);
  std::atomic<int> n{0};
  pool.parallel_for(100, [&](int64_t b, int64_t e) { n += static_cast<int>(e - b); });  // still usable
  CHECK(n.load() == 100);
}

TEST(thread_pool_dynamic_covers_every_index_once) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 3, 7, 64, 1000, 4097}) {
      for (int64_t grain : {1, 3, 100}) {
        std::vector<std::atomic<int>> hits(n);
        std::atomic<bool> short_chunk{false};
        pool.parallel_for_dynamic(n, [&](int64_t b, int64_t e) {
          CHECK(0 <= b && b < e && e <= n);
          if (e - b < grain && e != n) short_chunk = true;  // only the last chunk may be shorter than grain
          for (int64_t i = b; i < e; ++i) hits[i]++;
        }, grain);
        for (auto& h : hits) CHECK(h.load() == 1);
        CHECK(!short_chunk.load());
      }
    }
    // alternating with static jobs, back to back (the decode pattern): each sees its own range
    std::atomic<int64_t> sum{0};
    for (int i = 0; i < 5000; ++i) {
      pool.parallel_for_dynamic(9, [&](int64_t b, int64_t e) { sum += e - b; });
      pool.parallel_for(4, [&](int64_t b, int64_t e) { sum += e - b; });
    }
    CHECK(sum.load() == 5000 * 13);
  }
}

TEST(thread_pool_dynamic_rethrows_and_stays_usable) {
  ThreadPool pool(2);
  bool caught = false;
  try {
    pool.parallel_for_dynamic(1000, [&](int64_t b, int64_t) {
      if (b > 500) throw std::runtime_error("late chunk");
    });
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "late chunk";
  }
  CHECK(caught);
  std::atomic<int> n{0};
  pool.parallel_for_dynamic(100, [&](int64_t b, int64_t e) { n += static_cast<int>(e - b); }, 7);
  CHECK(n.load() == 100);
}

// ---- GEMM -----------------------------------------------------------------------------------------

TEST(gemm_all_transposes_vs_naive) {
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 1, 1},   {1, 17, 64},  {3, 17, 5},   {17, 3, 65},
                                                      {37, 65, 127}, {64, 33, 200}, {65, 127, 17}, {1, 64, 1000}};
  for (const std::string& impl : gemm_impls()) {
    CpuBackend be(2, impl);
    for (auto [M, N, K] : shapes) {
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (auto [alpha, beta] : std::vector<std::pair<float, float>>{{1.0f, 0.0f}, {0.5f, 0.25f}, {-2.0f, 1.0f}}) {
            auto a = randn(M * K, 1), b = randn(K * N, 2), c = randn(M * N, 3);
            std::vector<double> want(M * N);
            for (int64_t i = 0; i < M; ++i)
              for (int64_t j = 0; j < N; ++j) {
                double s = 0;
                for (int64_t k = 0; k < K; ++k)
                  s += double(ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
                want[i * N + j] = alpha * s + (beta == 0.0f ? 0.0 : beta * double(c[i * N + j]));
              }
            if (beta == 0.0f) std::fill(c.begin(), c.end(), std::numeric_limits<float>::quiet_NaN());  // never read
            Tensor ta_t = ta ? T(a, {K, M}) : T(a, {M, K});
            Tensor tb_t = tb ? T(b, {N, K}) : T(b, {K, N});
            be.gemm(T(c, {M, N}), ta_t, tb_t, ta, tb, alpha, beta);
            CHECK(max_rel(c, want) < 2e-6 * std::sqrt(double(K)) + 1e-6);
          }
    }
  }
}

TEST(linear_with_and_without_bias_vs_naive) {
  for (const std::string& impl : gemm_impls()) {
    CpuBackend be(2, impl);
    for (int64_t M : {1, 3, 17, 64, 65}) {
      for (int64_t N : {1, 5, 17, 127}) {
        for (int64_t K : {1, 15, 16, 17, 127, 1000}) {
          auto x = randn(M * K, 4), w = randn(N * K, 5), b = randn(N, 6);
          for (bool with_bias : {false, true}) {
            std::vector<float> out(M * N, std::numeric_limits<float>::quiet_NaN());
            be.linear(T(out, {M, N}), T(x, {M, K}), T(w, {N, K}), with_bias ? T(b, {N}) : Tensor{});
            std::vector<double> want(M * N);
            for (int64_t i = 0; i < M; ++i)
              for (int64_t j = 0; j < N; ++j) {
                double s = with_bias ? b[j] : 0.0;
                for (int64_t k = 0; k < K; ++k) s += double(x[i * K + k]) * w[j * K + k];
                want[i * N + j] = s;
              }
            CHECK(max_rel(out, want) < 1e-5);
          }
        }
      }
    }
  }
}

// The property the built-in kernel is written for: row i of a batched product is bit-identical to the
// product of row i alone, in any batch, with any thread count.
TEST(builtin_linear_is_batch_invariant) {
  for (int64_t K : {1000, 1027, 16, 5}) {
    const int64_t M = 37, N = 71;
    auto x = randn(M * K, 7), w = randn(N * K, 8), b = randn(N, 9);
    CpuBackend be2(2, "builtin"), be1(1, "builtin"), be3(3, "builtin");
    std::vector<float> all(M * N), all1(M * N), all3(M * N), one(N);
    be2.linear(T(all, {M, N}), T(x, {M, K}), T(w, {N, K}), T(b, {N}));
    be1.linear(T(all1, {M, N}), T(x, {M, K}), T(w, {N, K}), T(b, {N}));
    be3.linear(T(all3, {M, N}), T(x, {M, K}), T(w, {N, K}), T(b, {N}));
    CHECK(bit_equal(all.data(), all1.data(), all.size()));
    CHECK(bit_equal(all.data(), all3.data(), all.size()));
    for (int64_t i = 0; i < M; ++i) {
      std::vector<float> xi(x.begin() + i * K, x.begin() + (i + 1) * K);
      be2.linear(T(one, {1, N}), T(xi, {1, K}), T(w, {N, K}), T(b, {N}));
      CHECK(bit_equal(one.data(), all.data() + i * N, N));
    }
    // rows in another order and another batch size (each row lands in another tile position)
    const int64_t M2 = 11;
    std::vector<float> x2(M2 * K), out2(M2 * N);
    std::vector<int64_t> pick(M2);
    for (int64_t r = 0; r < M2; ++r) {
      pick[r] = (r * 7 + 3) % M;
      std::copy(x.begin() + pick[r] * K, x.begin() + (pick[r] + 1) * K, x2.begin() + r * K);
    }
    be3.linear(T(out2, {M2, N}), T(x2, {M2, K}), T(w, {N, K}), T(b, {N}));
    for (int64_t r = 0; r < M2; ++r) CHECK(bit_equal(out2.data() + r * N, all.data() + pick[r] * N, N));
  }
}

// ---- elementwise ops ---------------------------------------------------------------------------------

TEST(elementwise_and_norm_ops_vs_naive) {
  CpuBackend be(2, "builtin");
  for (int64_t rows : {1, 7, 300}) {
    for (int64_t D : {1, 33, 1024}) {
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
      auto xa = x;  // in place
      be.rmsnorm(T(xa, {rows, D}), T(xa, {rows, D}), T(w, {D}), 1e-6f);
      CHECK(bit_equal(xa.data(), out.data(), out.size()));

      be.swiglu(T(out, {rows, D}), T(x, {rows, D}), T(y, {rows, D}));
      for (size_t i = 0; i < want.size(); ++i) want[i] = x[i] / (1 + std::exp(-double(x[i]))) * y[i];
      CHECK(max_rel(out, want) < 1e-6);

      be.add(T(out, {rows, D}), T(x, {rows, D}), T(y, {rows, D}));
      for (size_t i = 0; i < want.size(); ++i) want[i] = double(x[i]) + y[i];
      CHECK(max_rel(out, want) < 1e-7);
    }
  }
  const int64_t rows = 7, D = 33;
  auto x = randn(rows * D, 12);
  std::vector<int32_t> ids{3, 0, 6, 3};
  std::vector<float> emb(4 * D);
  be.embedding(T(emb, {4, D}), T(x, {rows, D}), I(ids, {4}));
  for (int i = 0; i < 4; ++i) CHECK(bit_equal(&emb[i * D], &x[ids[i] * D], D));
}

TEST(rope_vs_naive) {
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

TEST(kv_store_writes_slots) {
  CpuBackend be(2, "builtin");
  const int64_t rows = 10, W = 6;
  std::vector<float> kc(rows * W, 0.0f), vc(rows * W, 0.0f);
  auto k = randn(3 * W, 13), v = randn(3 * W, 14);
  std::vector<int32_t> slots{7, 0, 9};
  be.kv_store(T(kc, {rows, W}), T(vc, {rows, W}), T(k, {3, W}), T(v, {3, W}), I(slots, {3}));
  for (int i = 0; i < 3; ++i) {
    CHECK(bit_equal(&kc[slots[i] * W], &k[i * W], W));
    CHECK(bit_equal(&vc[slots[i] * W], &v[i * W], W));
  }
  CHECK(kc[W] == 0.0f && vc[W] == 0.0f);  // untouched rows stay
  std::vector<int32_t> bad{7, 10, 0};
  CHECK_THROWS_CODE(be.kv_store(T(kc, {rows, W}), T(vc, {rows, W}), T(k, {3, W}), T(v, {3, W}), I(bad, {3})),
                    ErrorCode::kInvalidArgument);
}

// ---- paged attention ---------------------------------------------------------------------------------

// Dense causal attention over contiguous K/V of each sequence vs paged attention through scrambled blocks.
TEST(paged_attention_vs_dense_gqa_and_mha) {
  // thread counts and token counts that split the KV heads into spans of every size (kv_heads_per_item)
  for (auto [threads, decode_only] : std::vector<std::pair<int, bool>>{{1, false}, {2, false}, {2, true}, {3, true}}) {
    CpuBackend be(threads, "builtin");
    for (auto [Hq, Hkv, hd, bs] : std::vector<std::array<int, 4>>{{4, 2, 16, 4}, {3, 3, 16, 4}, {8, 1, 20, 3}, {16, 8, 128, 16}}) {
      const int num_seqs = 3, max_blocks = 8;
      const std::vector<int> lens{(2 * bs + 1), 1, std::min(5 * bs + 2, max_blocks * bs)};
      // scrambled, disjoint physical blocks per sequence
      std::vector<int32_t> perm(num_seqs * max_blocks);
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), std::mt19937(hd + bs));
      std::vector<int32_t> tables = perm;
      const int num_blocks = num_seqs * max_blocks;
      std::vector<float> kc(num_blocks * bs * Hkv * hd, 0.0f), vc(kc.size(), 0.0f);
      std::vector<std::vector<float>> K(num_seqs), Vv(num_seqs);
      std::vector<int32_t> seq, pos;
      std::vector<float> q;
      for (int s = 0; s < num_seqs; ++s) {
        K[s] = randn(lens[s] * Hkv * hd, 20 + s);
        Vv[s] = randn(lens[s] * Hkv * hd, 30 + s);
        auto Q = randn(lens[s] * Hq * hd, 40 + s);
        for (int p = 0; p < lens[s]; ++p) {
          int row = tables[s * max_blocks + p / bs] * bs + p % bs;
          std::memcpy(&kc[row * Hkv * hd], &K[s][p * Hkv * hd], Hkv * hd * 4);
          std::memcpy(&vc[row * Hkv * hd], &Vv[s][p * Hkv * hd], Hkv * hd * 4);
        }
        // prefill-like for sequence 0 (every position) unless decode_only, decode-like (last position only) for the others
        for (int p = s == 0 && !decode_only ? 0 : lens[s] - 1; p < lens[s]; ++p) {
          seq.push_back(s);
          pos.push_back(p);
          q.insert(q.end(), Q.begin() + p * Hq * hd, Q.begin() + (p + 1) * Hq * hd);
        }
      }
      const int64_t n = seq.size(), rows = num_blocks * bs;
      std::vector<float> out(n * Hq * hd);
      AttentionMeta m;
      m.block_tables = I(tables, {num_seqs, max_blocks});
      m.token_seq = I(seq, {n});
      m.token_pos = I(pos, {n});
      m.block_size = bs;
      m.num_q_heads = Hq;
      m.num_kv_heads = Hkv;
      m.head_dim = hd;
      m.scale = 1.0f / std::sqrt(float(hd));
      be.paged_attention(T(out, {n, Hq * hd}), T(q, {n, Hq * hd}), T(kc, {rows, Hkv * hd}), T(vc, {rows, Hkv * hd}), m);
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
            sc[j] = d * m.scale;
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

      // bad metadata is an error, not a read out of bounds
      AttentionMeta bad = m;
      std::vector<int32_t> bad_tables = tables;
      bad_tables[0] = num_blocks;  // one past the cache
      bad.block_tables = I(bad_tables, {num_seqs, max_blocks});
      CHECK_THROWS_CODE(be.paged_attention(T(out, {n, Hq * hd}), T(q, {n, Hq * hd}), T(kc, {rows, Hkv * hd}),
                                           T(vc, {rows, Hkv * hd}), bad),
                        ErrorCode::kInvalidArgument);
      std::vector<int32_t> bad_pos = pos;
      bad_pos[0] = max_blocks * bs;  // beyond the block table
      bad = m;
      bad.token_pos = I(bad_pos, {n});
      CHECK_THROWS_CODE(be.paged_attention(T(out, {n, Hq * hd}), T(q, {n, Hq * hd}), T(kc, {rows, Hkv * hd}),
                                           T(vc, {rows, Hkv * hd}), bad),
                        ErrorCode::kInvalidArgument);
      if (Hq > 1 && Hq != Hkv) {
        bad = m;
        bad.num_kv_heads = Hq - 1;  // q heads not a multiple of kv heads
        CHECK_THROWS_CODE(be.paged_attention(T(out, {n, Hq * hd}), T(q, {n, Hq * hd}), T(kc, {rows, Hkv * hd}),
                                             T(vc, {rows, Hkv * hd}), bad),
                          ErrorCode::kInvalidArgument);
      }
    }
  }
}

// ---- log-softmax ---------------------------------------------------------------------------------

TEST(log_softmax_gather_vs_naive_and_stable) {
  CpuBackend be(2, "builtin");
  for (float offset : {0.0f, 1e4f, -1e4f}) {
    const int64_t n = 5, V = 1001;
    auto logits = randn(n * V, 50, 3.0f);
    for (auto& z : logits) z += offset;  // exp would overflow without max-subtraction
    std::vector<int32_t> tg{0, 500, 1000, 7, 999};
    for (float inv_t : {1.0f, 0.5f}) {
      std::vector<float> out(n);
      be.log_softmax_gather(T(out, {n}), T(logits, {n, V}), I(tg, {n}), inv_t);
      for (int64_t i = 0; i < n; ++i) {
        double mx = -1e300, s = 0;
        for (int64_t j = 0; j < V; ++j) mx = std::max(mx, double(inv_t) * logits[i * V + j]);
        for (int64_t j = 0; j < V; ++j) s += std::exp(double(inv_t) * logits[i * V + j] - mx);
        CHECK(std::isfinite(out[i]));
        CHECK_NEAR(out[i], double(inv_t) * logits[i * V + tg[i]] - mx - std::log(s), 2e-3);
      }
    }
  }
  std::vector<float> logits(6), out(2);
  std::vector<int32_t> bad{0, 3};
  CHECK_THROWS_CODE(be.log_softmax_gather(T(out, {2}), T(logits, {2, 3}), I(bad, {2}), 1.0f), ErrorCode::kInvalidArgument);
}

// ---- sampling ------------------------------------------------------------------------------------

namespace {

// Reference sampler written from the contract: full sort, filters, inverse CDF in descending order.
struct RefSample {
  int32_t id;
  double logprob;
};
RefSample ref_sample(const std::vector<float>& logits, const SamplingRow& r) {
  const int64_t V = logits.size();
  std::vector<double> z(V), p(V);
  double mx = -1e300;
  for (int64_t j = 0; j < V; ++j) mx = std::max(mx, z[j] = double(logits[j] * (1.0f / r.temperature)));
  double total = 0;
  for (int64_t j = 0; j < V; ++j) total += (p[j] = std::exp(z[j] - mx));
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  int64_t L = r.top_k > 0 && r.top_k < V ? r.top_k : V;
  double mass_k = 0;
  for (int64_t i = 0; i < L; ++i) mass_k += p[order[i]];
  if (r.top_p < 1.0f) {
    double cum = 0;
    int64_t len = 0;
    while (len < L) {
      cum += p[order[len++]];
      if (cum >= r.top_p * mass_k) break;
    }
    L = len;
  }
  if (r.min_p > 0.0f) {
    int64_t len = 0;
    while (len < L && p[order[len]] >= r.min_p * p[order[0]]) ++len;
    L = std::max<int64_t>(len, 1);
  }
  double kept = 0;
  for (int64_t i = 0; i < L; ++i) kept += p[order[i]];
  const double target = rng_uniform(r.seed, r.step) * kept;
  double cum = 0;
  int32_t id = order[L - 1];
  for (int64_t i = 0; i < L; ++i) {
    cum += p[order[i]];
    if (cum > target) {
      id = order[i];
      break;
    }
  }
  return {id, z[id] - mx - std::log(total)};
}

}  // namespace

TEST(sampling_greedy_and_degenerate_filters_pick_argmax) {
  const int64_t V = 50;
  auto logits = randn(V, 60, 2.0f);
  int64_t argmax = std::max_element(logits.begin(), logits.end()) - logits.begin();
  int32_t id;
  float lp;
  SamplingRow greedy;
  greedy.temperature = 0;
  sample_row(logits.data(), V, greedy, &id, &lp);
  CHECK(id == argmax);
  double mx = logits[argmax], s = 0;
  for (float z : logits) s += std::exp(double(z) - mx);
  CHECK_NEAR(lp, -std::log(s), 1e-5);  // log_softmax of the raw logits
  // ties go to the lowest index
  std::vector<float> tied{1.0f, 3.0f, 2.0f, 3.0f};
  sample_row(tied.data(), 4, greedy, &id, &lp);
  CHECK(id == 1);
  for (auto filter : {0, 1, 2}) {  // top_k = 1, tiny top_p, min_p = 1 all reduce to the argmax
    SamplingRow r;
    r.seed = 5;
    if (filter == 0) r.top_k = 1;
    if (filter == 1) r.top_p = 1e-6f;
    if (filter == 2) r.min_p = 1.0f;
    for (uint64_t step = 0; step < 50; ++step) {
      r.step = step;
      sample_row(logits.data(), V, r, &id, &lp);
      CHECK(id == argmax);
    }
  }
}

TEST(sampling_matches_reference_semantics) {
  const int64_t V = 300;
  auto logits = randn(V, 61, 2.5f);
  logits[17] = logits[18] = logits[19];  // ties: lower id comes first in the order
  std::vector<SamplingRow> configs(6);
  configs[0].temperature = 1.0f;
  configs[1].temperature = 0.7f, configs[1].top_k = 20;
  configs[2].temperature = 1.3f, configs[2].top_p = 0.8f;
  configs[3].temperature = 1.0f, configs[3].min_p = 0.05f;
  configs[4].temperature = 0.9f, configs[4].top_k = 40, configs[4].top_p = 0.9f, configs[4].min_p = 0.02f;
  configs[5].temperature = 2.0f, configs[5].top_k = V + 5;  // k >= V disables top-k
  int mismatches = 0;
  for (size_t c = 0; c < configs.size(); ++c) {
    SamplingRow r = configs[c];
    r.seed = 1000 + c;
    for (uint64_t step = 0; step < 500; ++step) {
      r.step = step;
      int32_t id;
      float lp;
      sample_row(logits.data(), V, r, &id, &lp);
      const RefSample want = ref_sample(logits, r);
      if (id != want.id) ++mismatches;  // only a draw within rounding of a CDF boundary may differ
      CHECK_NEAR(lp, want.id == id ? want.logprob : lp, 1e-4);
      // the reported log-prob is that of the chosen token before filtering
      double mx = -1e300, total = 0;
      for (float z : logits) mx = std::max(mx, double(z * (1.0f / r.temperature)));
      for (float z : logits) total += std::exp(double(z * (1.0f / r.temperature)) - mx);
      CHECK_NEAR(lp, double(logits[id] * (1.0f / r.temperature)) - mx - std::log(total), 1e-4);
      // same seed and step, same token
      int32_t again;
      float lp2;
      sample_row(logits.data(), V, r, &again, &lp2);
      CHECK(again == id && lp2 == lp);
    }
  }
  CHECK(mismatches <= 2);
}

TEST(sampling_empirical_frequencies_follow_filtered_distribution) {
  const int64_t V = 60;
  auto logits = randn(V, 62, 1.5f);
  std::vector<SamplingRow> configs(4);
  configs[0].temperature = 1.5f, configs[0].top_k = 5;
  configs[1].temperature = 1.0f, configs[1].top_p = 0.6f;
  configs[2].temperature = 1.0f, configs[2].min_p = 0.2f;
  configs[3].temperature = 0.8f;
  for (size_t c = 0; c < configs.size(); ++c) {
    SamplingRow r = configs[c];
    r.seed = 77 + c;
    // the filtered, renormalised distribution from the reference's kept set
    std::vector<double> p(V);
    double mx = -1e300, kept_mass = 0;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, double(logits[j]) / r.temperature);
    for (int64_t j = 0; j < V; ++j) p[j] = std::exp(double(logits[j]) / r.temperature - mx);
    std::vector<int32_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
    int64_t L = V;
    if (r.top_k > 0) L = r.top_k;
    if (r.top_p < 1.0f) {
      double total = 0, cum = 0;
      for (int64_t i = 0; i < L; ++i) total += p[order[i]];
      int64_t len = 0;
      while (len < L && (cum += p[order[len++]]) < r.top_p * total) {
      }
      L = len;
    }
    if (r.min_p > 0.0f) {
      int64_t len = 0;
      while (len < L && p[order[len]] >= r.min_p) ++len;
      L = len;
    }
    for (int64_t i = 0; i < L; ++i) kept_mass += p[order[i]];
    std::map<int32_t, int> counts;
    const int draws = 20000;
    for (int s = 0; s < draws; ++s) {
      r.step = s;
      int32_t id;
      float lp;
      sample_row(logits.data(), V, r, &id, &lp);
      counts[id]++;
    }
    CHECK(static_cast<int64_t>(counts.size()) <= L);
    for (int64_t i = 0; i < L; ++i) {
      const double want = p[order[i]] / kept_mass;
      CHECK_NEAR(counts[order[i]] / double(draws), want, 4 * std::sqrt(want * (1 - want) / draws) + 1e-3);
    }
  }
}

TEST(sample_batches_rows_independently) {
  CpuBackend be(2, "builtin");
  const int64_t B = 9, V = 151;
  auto logits = randn(B * V, 63, 2.0f);
  std::vector<SamplingRow> rows(B);
  for (int64_t i = 0; i < B; ++i) {
    rows[i].temperature = i % 3 == 0 ? 0.0f : 0.5f + 0.25f * i;
    rows[i].top_k = i % 2 ? 10 : 0;
    rows[i].top_p = i % 4 == 1 ? 0.9f : 1.0f;
    rows[i].seed = derive_seed(42, i);
    rows[i].step = 100 + i;
  }
  std::vector<int32_t> ids(B);
  std::vector<float> lps(B);
  be.sample(T(logits, {B, V}), rows.data(), ids.data(), lps.data());
  for (int64_t i = 0; i < B; ++i) {
    int32_t id;
    float lp;
    sample_row(logits.data() + i * V, V, rows[i], &id, &lp);
    CHECK(id == ids[i] && lp == lps[i]);
  }
  std::vector<float> empty;
  CHECK_THROWS_CODE(be.sample(Tensor(nullptr, DType::F32, {2, 0}), rows.data(), ids.data(), lps.data()),
                    ErrorCode::kInvalidArgument);
}

TEST(sampling_large_vocabulary_edge_cases) {
  // a flat distribution over a large vocabulary walks deep into the order (chunked selection)
  const int64_t V = 151936;
  std::vector<float> flat(V, 0.25f);
  SamplingRow r;
  r.seed = 9;
  for (uint64_t step = 0; step < 20; ++step) {
    r.step = step;
    int32_t id;
    float lp;
    sample_row(flat.data(), V, r, &id, &lp);
    // equal probabilities: descending order is id order, so the draw lands on floor(u * V)
    CHECK(id == std::min<int64_t>(V - 1, static_cast<int64_t>(double(rng_uniform(r.seed, r.step)) * V)));
    CHECK_NEAR(lp, -std::log(double(V)), 1e-4);
  }
  // -inf logits are never drawn
  std::vector<float> masked(100, -std::numeric_limits<float>::infinity());
  masked[42] = 1.0f;
  masked[7] = 0.5f;
  for (uint64_t step = 0; step < 50; ++step) {
    r.step = step;
    int32_t id;
    float lp;
    sample_row(masked.data(), 100, r, &id, &lp);
    CHECK(id == 42 || id == 7);
    CHECK(std::isfinite(lp));
  }
}

// ---- memory and argument checks ---------------------------------------------------------------------

TEST(buffers_are_aligned_and_tracked) {
  CpuBackend be(1, "builtin");
  {
    Buffer a(be, DType::F32, {3, 5}), b(be, DType::I32, {1});
    CHECK(reinterpret_cast<uintptr_t>(a.t().data) % 64 == 0);
    CHECK(reinterpret_cast<uintptr_t>(b.t().data) % 64 == 0);
    CHECK(be.bytes_in_use() == 15 * 4 + 4);
  }
  CHECK(be.bytes_in_use() == 0);
  CHECK(be.weight_dtype() == DType::F32 && be.activation_dtype() == DType::F32);
}

TEST(bad_shapes_and_dtypes_throw) {
  CpuBackend be(1, "builtin");
  std::vector<float> a(12), b(12), c(12);
  std::vector<int32_t> ids{0, 1, 7};
  CHECK_THROWS_CODE(be.linear(T(c, {3, 4}), T(a, {3, 4}), T(b, {4, 3}), Tensor{}), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.linear(T(c, {3, 4}), T(a, {3, 4}), T(b, {4, 4}), T(b, {3})), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.gemm(T(c, {3, 4}), T(a, {3, 4}), T(b, {3, 4}), false, false, 1, 0), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.embedding(T(c, {3, 4}), T(a, {3, 4}), I(ids, {3})), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.add(T(c, {3, 4}), T(a, {3, 4}), T(b, {2, 4})), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.rmsnorm(T(c, {3, 4}), Tensor(ids.data(), DType::I32, {3}), T(b, {4}), 1e-6f), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.swiglu(T(c, {3, 4}), T(a, {3, 4}), T(b, {4, 2})), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(be.linear(T(c, {3, 4}), Tensor(a.data(), DType::BF16, {3, 4}), T(b, {4, 4}), Tensor{}),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(CpuBackend(1, "fastest"), ErrorCode::kInvalidArgument);
  BackendOptions opt;
  opt.kind = "tpu";
  CHECK_THROWS_CODE(make_backend(opt), ErrorCode::kInvalidArgument);
  if (!cuda_compiled()) {
    opt.kind = "cuda";
    CHECK_THROWS_CODE(make_backend(opt), ErrorCode::kBackend);
    CHECK(cuda_device_count() == 0);
  }
  if (!blas_compiled()) CHECK_THROWS_CODE(CpuBackend(1, "blas"), ErrorCode::kBackend);
  CHECK(blas_compiled() == !blas_name().empty());
}
