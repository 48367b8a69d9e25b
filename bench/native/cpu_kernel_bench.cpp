// The CPU cases of the kernel benchmark (see cpu_kernel_bench.h): one function per op family, run from a
// table in kernel_bench_ops() order, each timing the CPU backend's op against a scalar loop written here.
#include "cpu_kernel_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "attention_bench_shape.h"
#include "backend.h"
#include "rng.h"

namespace hayate::bench {

namespace {

// Median per call of each function, timed in turns (fn0, fn1, ..., fn0, fn1, ...) so that all of them see the
// same machine load (what ratios such as LoRA / base GEMM need on a shared CPU): one warm-up call each, then
// max(repeats, enough rounds for ~0.2 s) rounds, capped at 50.
std::vector<double> medians_ms(int repeats, const std::vector<std::function<void()>>& fns) {
  auto ms_of = [](const std::function<void()>& fn) {
    const auto s = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count();
  };
  double round = 0;
  for (const auto& fn : fns) round += ms_of(fn);
  const int runs = std::max(std::max(repeats, 1), std::min(50, static_cast<int>(200.0 / std::max(round, 1e-3))));
  std::vector<std::vector<double>> t(fns.size());
  for (int r = 0; r < runs; ++r)
    for (size_t i = 0; i < fns.size(); ++i) t[i].push_back(ms_of(fns[i]));
  std::vector<double> med;
  for (auto& ti : t) {
    std::sort(ti.begin(), ti.end());
    med.push_back(ti[ti.size() / 2]);
  }
  return med;
}

double median_ms(int repeats, const std::function<void()>& fn) { return medians_ms(repeats, {fn})[0]; }

std::vector<float> randv(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng) * scale;
  return v;
}

Tensor T2(std::vector<float>& v, int64_t r, int64_t c) { return Tensor(v.data(), DType::F32, {r, c}); }
Tensor T1(std::vector<float>& v) { return Tensor(v.data(), DType::F32, {static_cast<int64_t>(v.size())}); }
Tensor I1(std::vector<int32_t>& v) { return Tensor(v.data(), DType::I32, {static_cast<int64_t>(v.size())}); }

const char* const kScalar = "scalar reference loop";
constexpr double kTol = 1e-4;  // f32 against f32 (or double) loops: only the summation order differs

// An output the check compares: its name and the host vector the op and its reference both write.
using Out = std::pair<const char*, std::vector<float>*>;

// What every case needs: the backend, the repeats, the selection and the records.
struct CpuBench {
  Backend& be;
  int repeats;
  const std::vector<std::string>& ops;
  const std::vector<std::string>& shapes;  // the attention cases' (empty: the defaults)
  std::vector<KernelBenchResult> res;

  bool wanted(const char* op) const { return kernel_bench_wanted(ops, op); }
  // The check: `op` once, its outputs kept, then `ref` once on the same inputs; each output compared.
  static void verify(KernelBenchResult& r, const std::function<void()>& op, const std::function<void()>& ref,
                     const std::vector<Out>& outs, double tol, const std::string& against) {
    op();
    std::vector<std::vector<float>> got;
    for (const Out& o : outs) got.push_back(*o.second);
    ref();
    for (size_t i = 0; i < outs.size(); ++i)
      kernel_bench_compare(r.check, outs[i].first, got[i].data(), outs[i].second->data(), got[i].size(), tol, against);
  }
  // The common case: the backend's op checked against its scalar loop on `outs`, then both timed (the scalar
  // loop over `baseline_repeats`: 1 for the slow ones).
  void time_vs_scalar(KernelBenchResult r, const std::function<void()>& op, const std::function<void()>& scalar,
                      int baseline_repeats, const std::vector<Out>& outs, const std::string& baseline = kScalar) {
    verify(r, op, scalar, outs, kTol, baseline);
    r.ms = median_ms(repeats, op);
    r.baseline = baseline;
    r.baseline_ms = median_ms(baseline_repeats, scalar);
    res.push_back(r);
  }
};

// A scalar sampler: softmax, a full sort of the vocabulary, top-k/top-p/min-p prefix, inverse CDF.
int32_t scalar_sample(const float* z, int64_t V, const SamplingRow& r) {
  const float inv_t = 1.0f / r.temperature;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < V; ++j) mx = std::max(mx, z[j] * inv_t);
  std::vector<std::pair<float, int32_t>> p(static_cast<size_t>(V));
  for (int64_t j = 0; j < V; ++j) p[j] = {std::exp(z[j] * inv_t - mx), static_cast<int32_t>(j)};
  std::sort(p.begin(), p.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  int64_t kept = r.top_k > 0 && r.top_k < V ? r.top_k : V;
  double mass = 0;
  for (int64_t i = 0; i < kept; ++i) mass += p[i].first;
  if (r.top_p < 1.0f) {
    double m = 0;
    for (int64_t i = 0; i < kept; ++i)
      if ((m += p[i].first) >= r.top_p * mass) {
        kept = i + 1;
        mass = m;
        break;
      }
  }
  const double target = rng_uniform(r.seed, r.step) * mass;
  double m = 0;
  for (int64_t i = 0; i < kept; ++i)
    if ((m += p[i].first) > target) return p[i].second;
  return p[kept - 1].second;
}

// ---- the cases ----------------------------------------------------------------------------------------

void bench_linear(CpuBench& b) {
  struct Proj {
    const char* name;
    int64_t N, K;
  };
  for (const Proj& pj : {Proj{"q_proj", 2048, 1024}, Proj{"down_proj", 1024, 3072}, Proj{"lm_head", 151936, 1024}}) {
    auto w = randv(pj.N * pj.K, 2, 0.02f);
    for (int64_t M : {1, 64}) {
      if (pj.N > 100000 && M > 1) continue;
      auto x = randv(M * pj.K, 1);
      std::vector<float> out(M * pj.N);
      b.time_vs_scalar(
          kernel_bench_result("linear", std::string(pj.name) + " M=" + std::to_string(M),
                              bench_dims({M, pj.K}) + "x" + bench_dims({pj.N, pj.K}) + "^T", "TFLOP/s", 2.0 * M * pj.N * pj.K),
          [&] { b.be.linear(T2(out, M, pj.N), T2(x, M, pj.K), T2(w, pj.N, pj.K), {}); },
          [&] {
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = 0; n < pj.N; ++n) {
                float acc = 0;
                for (int64_t k = 0; k < pj.K; ++k) acc += x[m * pj.K + k] * w[n * pj.K + k];
                out[m * pj.N + n] = acc;
              }
          },
          1, {{"out", &out}});
    }
  }
}

void bench_lora_linear(CpuBench& b) {
  const int64_t rank = kLoraBenchRank;
  const float s = kLoraBenchScale;
  Backend& be = b.be;
  for (const LoraBenchCase& lc : lora_bench_cases()) {
    const int64_t M = lc.M, N = lc.N, K = lc.K;
    auto x = randv(M * K, 1), w = randv(N * K, 2, 0.02f), a = randv(rank * K, 24, 0.02f), bb = randv(N * rank, 25, 0.02f);
    auto dout = randv(M * N, 26);
    std::vector<float> out(M * N), xa(M * rank), dx(M * K), da(rank * K), db(N * rank), t(M * rank);
    // the unfused path, from the backend's own GEMMs: out = x w^T + s (x a^T) b^T
    auto unfused_forward = [&] {
      be.linear(T2(out, M, N), T2(x, M, K), T2(w, N, K), {});
      be.linear(T2(xa, M, rank), T2(x, M, K), T2(a, rank, K), {});
      be.gemm(T2(out, M, N), T2(xa, M, rank), T2(bb, N, rank), false, true, s, 1.0f);
    };
    // t = s dout b; dx = dout w + t a; da = t^T x; db = s dout^T xa (the op accumulates da, db: zeroed first)
    auto unfused_backward = [&] {
      be.gemm(T2(dx, M, K), T2(dout, M, N), T2(w, N, K), false, false, 1.0f, 0.0f);
      be.gemm(T2(t, M, rank), T2(dout, M, N), T2(bb, N, rank), false, false, s, 0.0f);
      be.gemm(T2(dx, M, K), T2(t, M, rank), T2(a, rank, K), false, false, 1.0f, 1.0f);
      be.gemm(T2(da, rank, K), T2(t, M, rank), T2(x, M, K), true, false, 1.0f, 0.0f);
      be.gemm(T2(db, N, rank), T2(dout, M, N), T2(xa, M, rank), true, false, s, 0.0f);
    };
    const char* const against = "unfused: the backend's own GEMMs (linear / gemm), one product at a time";
    be.linear(T2(xa, M, rank), T2(x, M, K), T2(a, rank, K), {});  // the forward's xa, for the backward's db
    // the LoRA op and its bare base GEMM, timed in turns
    auto time_vs_base = [&](bool backward, const std::function<void()>& lora, const std::function<void()>& base) {
      KernelBenchResult r = lora_bench_result(lc, backward);
      if (backward) {
        CpuBench::verify(
            r, [&] { std::fill(da.begin(), da.end(), 0.0f), std::fill(db.begin(), db.end(), 0.0f), lora(); }, unfused_backward,
            {{"dx", &dx}, {"da", &da}, {"db", &db}}, kTol, against);
      } else {
        CpuBench::verify(r, lora, unfused_forward, {{"out", &out}, {"xa", &xa}}, kTol, against);
      }
      const std::vector<double> times = medians_ms(b.repeats, {lora, base});
      r.ms = times[0];
      r.baseline_ms = times[1];
      b.res.push_back(r);
    };
    if (b.wanted("lora_linear"))
      time_vs_base(
          false,
          [&] { be.lora_linear(T2(out, M, N), T2(xa, M, rank), T2(x, M, K), T2(w, N, K), {}, T2(a, rank, K), T2(bb, N, rank), s); },
          [&] { be.linear(T2(out, M, N), T2(x, M, K), T2(w, N, K), {}); });
    if (b.wanted("lora_linear_backward"))
      time_vs_base(
          true,
          [&] {
            be.lora_linear_backward(T2(dx, M, K), T2(da, rank, K), T2(db, N, rank), T2(dout, M, N), T2(x, M, K),
                                    T2(xa, M, rank), T2(w, N, K), T2(a, rank, K), T2(bb, N, rank), s, false);
          },
          [&] { be.lora_linear_backward(T2(dx, M, K), {}, {}, T2(dout, M, N), {}, {}, T2(w, N, K), {}, {}, s, false); });
  }
}

void bench_embedding(CpuBench& b) {
  const int64_t V = 32000, D = 1024, n = 512;
  auto table = randv(V * D, 3);
  std::vector<float> out(n * D);
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919) % V);
  b.time_vs_scalar(
      kernel_bench_result("embedding", "gather 512 rows", bench_dims({V, D}), "GB/s", 2.0 * n * D * 4),
      [&] { b.be.embedding(T2(out, n, D), T2(table, V, D), I1(ids)); },
      [&] {
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < D; ++j) out[i * D + j] = table[ids[i] * D + j];
      },
      b.repeats, {{"out", &out}});
}

void bench_rmsnorm(CpuBench& b) {
  const int64_t rows = 512, D = 1024;
  auto x = randv(rows * D, 4), w = randv(D, 5);
  std::vector<float> out(rows * D);
  b.time_vs_scalar(
      kernel_bench_result("rmsnorm", "hidden 512 rows", bench_dims({rows, D}), "GB/s", 2.0 * rows * D * 4),
      [&] { b.be.rmsnorm(T2(out, rows, D), T2(x, rows, D), T1(w), 1e-6f); },
      [&] {
        for (int64_t i = 0; i < rows; ++i) {
          double ss = 0;
          for (int64_t j = 0; j < D; ++j) ss += double(x[i * D + j]) * x[i * D + j];
          const float inv = static_cast<float>(1.0 / std::sqrt(ss / D + 1e-6));
          for (int64_t j = 0; j < D; ++j) out[i * D + j] = x[i * D + j] * inv * w[j];
        }
      },
      b.repeats, {{"out", &out}});
}

// add and swiglu: the same buffers, one record each.
void bench_add_swiglu(CpuBench& b) {
  const int64_t n = 512 * 3072;
  auto x = randv(n, 6), y = randv(n, 7);
  std::vector<float> out(n);
  if (b.wanted("add"))
    b.time_vs_scalar(
        kernel_bench_result("add", "512 x 3072", bench_dims({n}), "GB/s", 3.0 * n * 4), [&] { b.be.add(T1(out), T1(x), T1(y)); },
        [&] {
          for (int64_t i = 0; i < n; ++i) out[i] = x[i] + y[i];
        },
        b.repeats, {{"out", &out}});
  if (b.wanted("swiglu"))
    b.time_vs_scalar(
        kernel_bench_result("swiglu", "512 x 3072", bench_dims({n}), "GB/s", 3.0 * n * 4),
        [&] { b.be.swiglu(T1(out), T1(x), T1(y)); },
        [&] {
          for (int64_t i = 0; i < n; ++i) out[i] = x[i] / (1.0f + std::exp(-x[i])) * y[i];
        },
        b.repeats, {{"out", &out}});
}

void bench_rope(CpuBench& b) {
  const int64_t n = 512, H = 16, hd = 128, max_pos = 1024;
  auto x = randv(n * H * hd, 8), cs = randv(max_pos * hd, 9, 0.5f);
  std::vector<int32_t> pos(n);
  std::iota(pos.begin(), pos.end(), 0);
  const std::vector<float> x0 = x;  // in place: each side of the check starts from these values
  auto op = [&] { b.be.rope(T2(x, n, H * hd), I1(pos), T2(cs, max_pos, hd), static_cast<int>(hd)); };
  auto scalar = [&] {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < H; ++h) {
        float* v = &x[(i * H + h) * hd];
        const float* c = &cs[pos[i] * hd];
        for (int64_t j = 0; j < hd / 2; ++j) {
          const float p = v[j], q = v[j + hd / 2];
          v[j] = p * c[j] - q * c[hd / 2 + j];
          v[j + hd / 2] = q * c[j] + p * c[hd / 2 + j];
        }
      }
  };
  KernelBenchResult r = kernel_bench_result("rope", "q of 512 tokens", bench_dims({n, H * hd}), "GB/s", 2.0 * n * H * hd * 4);
  CpuBench::verify(r, [&] { x = x0, op(); }, [&] { x = x0, scalar(); }, {{"x (in place)", &x}}, kTol, kScalar);
  r.ms = median_ms(b.repeats, op);
  r.baseline = kScalar;
  r.baseline_ms = median_ms(b.repeats, scalar);
  b.res.push_back(r);
}

void bench_kv_store(CpuBench& b) {
  const int64_t n = 512, W = 1024, rows = 2048;
  auto k = randv(n * W, 10), v = randv(n * W, 11);
  std::vector<float> kc(rows * W), vc(rows * W);
  std::vector<int32_t> slots(n);
  for (int64_t i = 0; i < n; ++i) slots[i] = static_cast<int32_t>((i * 3) % rows);
  b.time_vs_scalar(
      kernel_bench_result("kv_store", "512 tokens", bench_dims({n, W}), "GB/s", 4.0 * n * W * 4),
      [&] { b.be.kv_store(T2(kc, rows, W), T2(vc, rows, W), T2(k, n, W), T2(v, n, W), I1(slots)); },
      [&] {
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < W; ++j) {
            kc[slots[i] * W + j] = k[i * W + j];
            vc[slots[i] * W + j] = v[i * W + j];
          }
      },
      b.repeats, {{"k_cache", &kc}, {"v_cache", &vc}});
}

void bench_paged_attention(CpuBench& b) {
  const int hq = kPagedBenchQHeads, hkv = kPagedBenchKvHeads, hd = kPagedBenchHeadDim, bs = kPagedBenchBlockSize;
  for (const PagedAttentionBenchCase& cs : paged_attention_bench_cases("cpu")) {
    PagedAttentionBenchLayout L = paged_attention_bench_layout(cs);
    const int max_blocks = L.max_blocks;
    const int64_t rows = L.cache_rows, kvw = int64_t(hkv) * hd, qw = int64_t(hq) * hd;
    std::vector<int32_t>&tables = L.tables, &seq = L.seq, &pos = L.pos;
    const int64_t n = static_cast<int64_t>(seq.size());
    auto q = randv(n * qw, 12), kc = randv(rows * kvw, 13), vc = randv(rows * kvw, 14);
    std::vector<float> out(n * qw);
    const AttentionMeta m = paged_attention_bench_meta(Tensor(tables.data(), DType::I32, {cs.seqs, max_blocks}), I1(seq), I1(pos));
    // prefill: causal FLOPs; decode: K and V once per sequence
    b.time_vs_scalar(
        kernel_bench_result("paged_attention", cs.label, "q " + bench_dims({n, qw}), cs.prefill ? "TFLOP/s" : "GB/s",
                            cs.prefill ? L.flops : L.kv_positions * kvw * 2 * 4),
        [&] { b.be.paged_attention(T2(out, n, qw), T2(q, n, qw), T2(kc, rows, kvw), T2(vc, rows, kvw), m); },
        [&] {
          std::vector<float> sc, acc(hd);
          for (int64_t i = 0; i < n; ++i)
            for (int h = 0; h < hq; ++h) {
              const int kvh = h / (hq / hkv);
              sc.assign(pos[i] + 1, 0.0f);
              float mx = -std::numeric_limits<float>::infinity();
              for (int p = 0; p <= pos[i]; ++p) {
                const int64_t row = int64_t(tables[seq[i] * max_blocks + p / bs]) * bs + p % bs;
                float s = 0;
                for (int d = 0; d < hd; ++d) s += q[i * qw + h * hd + d] * kc[row * kvw + kvh * hd + d];
                sc[p] = s * m.scale;
                mx = std::max(mx, sc[p]);
              }
              float l = 0;
              std::fill(acc.begin(), acc.end(), 0.0f);
              for (int p = 0; p <= pos[i]; ++p) {
                const int64_t row = int64_t(tables[seq[i] * max_blocks + p / bs]) * bs + p % bs;
                const float e = std::exp(sc[p] - mx);
                l += e;
                for (int d = 0; d < hd; ++d) acc[d] += e * vc[row * kvw + kvh * hd + d];
              }
              for (int d = 0; d < hd; ++d) out[i * qw + h * hd + d] = acc[d] / l;
            }
        },
        1, {{"out", &out}});
  }
}

// attention_forward and attention_backward on the same inputs, per `--shapes` entry.
void bench_attention(CpuBench& b) {
  Backend& be = b.be;
  const std::vector<std::string> list = b.shapes.empty() ? default_cpu_attention_bench_shapes() : b.shapes;
  for (const std::string& sh : list) {
    const AttentionBenchShape a = parse_attention_bench_shape(sh);
    const int64_t S = a.seqs, L = a.seqlen, n = S * L, hq = a.hq, hkv = a.hkv, hd = a.hd, group = hq / hkv;
    const int64_t qw = hq * hd, kw = hkv * hd;
    auto q = randv(n * qw, 20), k = randv(n * kw, 21), v = randv(n * kw, 22), dout = randv(n * qw, 23);
    std::vector<float> out(n * qw), lse(n * hq), dq(n * qw), dk(n * kw), dv(n * kw);
    std::vector<int32_t> cu;
    for (int64_t s = 0; s <= S; ++s) cu.push_back(static_cast<int32_t>(s * L));
    VarlenMeta m;
    m.cu_seqlens = I1(cu);
    m.max_seqlen = static_cast<int>(L);
    m.num_q_heads = static_cast<int>(hq);
    m.num_kv_heads = static_cast<int>(hkv);
    m.head_dim = static_cast<int>(hd);
    m.scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const double fwd_flops = 4.0 * hd * hq * S * (double(L) * (L + 1) / 2);
    const std::string shape = "q " + bench_dims({n, qw}) + ", " + std::to_string(S) + " seqs x " + std::to_string(L) +
                              ", kv heads " + std::to_string(hkv) + ", head_dim " + std::to_string(hd);
    auto qp = [&](int64_t row, int64_t h) { return row * qw + h * hd; };
    auto kp = [&](int64_t row, int64_t h) { return row * kw + (h / group) * hd; };
    auto forward = [&] {
      be.attention_forward(T2(out, n, qw), T2(lse, n, hq), T2(q, n, qw), T2(k, n, kw), T2(v, n, kw), m);
    };
    // scalar reference: per (row, head) scores over the row's causal prefix, softmax, P V
    auto scalar_forward = [&] {
      std::vector<float> sc(L);
      for (int64_t s = 0; s < S; ++s)
        for (int64_t h = 0; h < hq; ++h)
          for (int64_t i = 0; i < L; ++i) {
            const int64_t r = s * L + i;
            float mx = -std::numeric_limits<float>::infinity();
            for (int64_t j = 0; j <= i; ++j) {
              float d = 0;
              for (int64_t e = 0; e < hd; ++e) d += q[qp(r, h) + e] * k[kp(s * L + j, h) + e];
              mx = std::max(mx, sc[j] = d * m.scale);
            }
            double sum = 0;
            for (int64_t j = 0; j <= i; ++j) sum += sc[j] = std::exp(sc[j] - mx);
            for (int64_t e = 0; e < hd; ++e) out[qp(r, h) + e] = 0;
            for (int64_t j = 0; j <= i; ++j)
              for (int64_t e = 0; e < hd; ++e) out[qp(r, h) + e] += static_cast<float>(sc[j] / sum) * v[kp(s * L + j, h) + e];
            lse[r * hq + h] = static_cast<float>(mx + std::log(sum));
          }
    };
    forward();
    if (b.wanted("attention_forward")) {
      b.time_vs_scalar(kernel_bench_result("attention_forward", sh, shape, "TFLOP/s", fwd_flops), forward, scalar_forward, 1,
                       {{"out", &out}, {"lse", &lse}});
      forward();  // the backend's lse/out for the backward below
    }
    if (b.wanted("attention_backward")) {
      b.time_vs_scalar(
          kernel_bench_result("attention_backward", sh, shape, "TFLOP/s", 2.5 * fwd_flops),
          [&] {
            be.attention_backward(T2(dq, n, qw), T2(dk, n, kw), T2(dv, n, kw), T2(dout, n, qw), T2(q, n, qw), T2(k, n, kw),
                                  T2(v, n, kw), T2(out, n, qw), T2(lse, n, hq), m);
          },
          [&] {  // per (row, head): P from lse, D, then every gradient term
            std::fill(dq.begin(), dq.end(), 0.0f);
            std::fill(dk.begin(), dk.end(), 0.0f);
            std::fill(dv.begin(), dv.end(), 0.0f);
            for (int64_t s = 0; s < S; ++s)
              for (int64_t h = 0; h < hq; ++h)
                for (int64_t i = 0; i < L; ++i) {
                  const int64_t r = s * L + i;
                  float D = 0;
                  for (int64_t e = 0; e < hd; ++e) D += dout[qp(r, h) + e] * out[qp(r, h) + e];
                  for (int64_t j = 0; j <= i; ++j) {
                    const int64_t c = s * L + j;
                    float sdot = 0, pdot = 0;
                    for (int64_t e = 0; e < hd; ++e) {
                      sdot += q[qp(r, h) + e] * k[kp(c, h) + e];
                      pdot += dout[qp(r, h) + e] * v[kp(c, h) + e];
                    }
                    const float p = std::exp(sdot * m.scale - lse[r * hq + h]), ds = p * (pdot - D) * m.scale;
                    for (int64_t e = 0; e < hd; ++e) {
                      dv[kp(c, h) + e] += p * dout[qp(r, h) + e];
                      dq[qp(r, h) + e] += ds * k[kp(c, h) + e];
                      dk[kp(c, h) + e] += ds * q[qp(r, h) + e];
                    }
                  }
                }
          },
          1, {{"dq", &dq}, {"dk", &dk}, {"dv", &dv}});
    }
  }
}

void bench_log_softmax_gather(CpuBench& b) {
  const int64_t n = 8, V = 151936;
  auto z = randv(n * V, 15, 3.0f);
  std::vector<float> out(n);
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919) % V);
  b.time_vs_scalar(
      kernel_bench_result("log_softmax_gather", "8 rows", bench_dims({n, V}), "GB/s", 4.0 * n * V),
      [&] { b.be.log_softmax_gather(T1(out), T2(z, n, V), I1(t), 1.0f); },
      [&] {
        for (int64_t i = 0; i < n; ++i) {
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < V; ++j) mx = std::max(mx, z[i * V + j]);
          double s = 0;
          for (int64_t j = 0; j < V; ++j) s += std::exp(z[i * V + j] - mx);
          out[i] = static_cast<float>(z[i * V + t[i]] - mx - std::log(s));
        }
      },
      b.repeats, {{"out", &out}});
}

// The chunked lm-head log-prob (logprob_forward / logprob_backward) against the unfused path: the
// backend's linear() for the full logits, scalar row loops for lse / log-prob / entropy and dz, gemm() for
// dhidden = dz lm_head.
void bench_logprob(CpuBench& b) {
  Backend& be = b.be;
  const int64_t V = kLogprobBenchVocab, D = kLogprobBenchHidden;
  auto lm = randv(V * D, 40, 0.02f);
  for (int64_t m : logprob_bench_rows("cpu")) {
    auto hidden = randv(m * D, 41), dlp = randv(m, 42);
    std::vector<int32_t> tg(m);
    for (int64_t i = 0; i < m; ++i) tg[i] = static_cast<int32_t>((i * 7919 + 13) % V);
    std::vector<float> lp(m), lse(m), ent(m), dh(m * D), z(m * V);
    const float inv_t = 1.0f;
    auto fused_forward = [&] { be.logprob_forward(T1(lp), T1(lse), T1(ent), T2(hidden, m, D), T2(lm, V, D), I1(tg), inv_t); };
    auto rows_pass = [&] {  // lse, log-prob, entropy of each row of the logits in z
      for (int64_t i = 0; i < m; ++i) {
        const float* zr = &z[i * V];
        double mx = -INFINITY;
        for (int64_t j = 0; j < V; ++j) mx = std::max(mx, double(zr[j]) * inv_t);
        double sum = 0, wsum = 0;
        for (int64_t j = 0; j < V; ++j) {
          const double e = std::exp(zr[j] * inv_t - mx);
          sum += e;
          wsum += e * zr[j] * inv_t;
        }
        lse[i] = static_cast<float>(mx + std::log(sum));
        lp[i] = static_cast<float>(zr[tg[i]] * inv_t - lse[i]);
        ent[i] = static_cast<float>(lse[i] - wsum / sum);
      }
    };
    auto unfused_forward = [&] {
      be.linear(T2(z, m, V), T2(hidden, m, D), T2(lm, V, D), {});
      rows_pass();
    };
    if (b.wanted("logprob")) {
      KernelBenchResult r = logprob_bench_result(m, false);
      CpuBench::verify(r, fused_forward, unfused_forward, {{"logprobs", &lp}, {"lse", &lse}, {"entropy", &ent}}, kTol, r.baseline);
      const std::vector<double> t = medians_ms(b.repeats, {fused_forward, unfused_forward});
      r.ms = t[0];
      r.baseline_ms = t[1];
      b.res.push_back(r);

      fused_forward();  // the backward's lse
      KernelBenchResult rb = logprob_bench_result(m, true);
      auto fused_backward = [&] { be.logprob_backward(T2(dh, m, D), T1(dlp), T2(hidden, m, D), T2(lm, V, D), I1(tg), T1(lse), inv_t); };
      auto unfused_backward = [&] {
        be.linear(T2(z, m, V), T2(hidden, m, D), T2(lm, V, D), {});
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < V; ++j)
            z[i * V + j] = dlp[i] * ((j == tg[i] ? 1.0f : 0.0f) - std::exp(z[i * V + j] * inv_t - lse[i]));
        be.gemm(T2(dh, m, D), T2(z, m, V), T2(lm, V, D), false, false, inv_t, 0.0f);
      };
      CpuBench::verify(rb, fused_backward, unfused_backward, {{"dhidden", &dh}}, kTol, rb.baseline);
      const std::vector<double> tb = medians_ms(b.repeats, {fused_backward, unfused_backward});
      rb.ms = tb[0];
      rb.baseline_ms = tb[1];
      b.res.push_back(rb);
    }
  }
}

void bench_sample(CpuBench& b) {
  const int64_t B = 8, V = 151936;
  auto z = randv(B * V, 16, 3.0f);
  for (float top_p : {1.0f, 0.9f}) {
    std::vector<SamplingRow> rows(B);
    for (int64_t i = 0; i < B; ++i) {
      rows[i].seed = derive_seed(1, i);
      rows[i].step = 3;
      rows[i].top_p = top_p;
    }
    std::vector<int32_t> ids(B);
    std::vector<float> lps(B);
    KernelBenchResult r =
        kernel_bench_result("sample", top_p < 1 ? "T=1, top_p=0.9" : "T=1, no filter", bench_dims({B, V}), "GB/s", 4.0 * B * V);
    b.be.sample(T2(z, B, V), rows.data(), ids.data(), lps.data());
    kernel_bench_check_samples(r.check, z.data(), B, V, rows.data(), ids.data(), lps.data(), kTol);
    r.ms = median_ms(b.repeats, [&] { b.be.sample(T2(z, B, V), rows.data(), ids.data(), lps.data()); });
    r.baseline = "scalar sampler with a full sort of the vocabulary";
    r.baseline_ms = median_ms(1, [&] {
      for (int64_t i = 0; i < B; ++i) ids[i] = scalar_sample(&z[i * V], V, rows[i]);
    });
    b.res.push_back(r);
  }
}

void bench_adamw(CpuBench& b) {
  Backend& be = b.be;
  const std::vector<int64_t> sizes = recipe_lora_tensor_sizes();
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  auto param = randv(total, 30, 0.02f), grad = randv(total, 31, 1e-3f);
  std::vector<float> m(total), v(total);
  AdamWParams p;  // no defaults: every hyperparameter set
  p.lr = 1e-5;
  p.beta1 = 0.9;
  p.beta2 = 0.999;
  p.eps = 1e-8;
  p.weight_decay = 0.01;
  const double bc1 = 1.0 - std::pow(p.beta1, double(p.step)), bc2 = 1.0 - std::pow(p.beta2, double(p.step));
  auto one_call = [&] { be.adamw_step(T1(param), T1(grad), T1(m), T1(v), p); };
  auto scalar_per_tensor = [&] {
    for_each_arena_slice(sizes, [&](int64_t off, int64_t n) {
      for (int64_t i = off; i < off + n; ++i) {
        const double g = grad[i] * p.grad_scale;
        const double mi = p.beta1 * m[i] + (1 - p.beta1) * g, vi = p.beta2 * v[i] + (1 - p.beta2) * g * g;
        m[i] = static_cast<float>(mi);
        v[i] = static_cast<float>(vi);
        param[i] = static_cast<float>(param[i] - p.lr * (p.weight_decay * param[i] + (mi / bc1) / (std::sqrt(vi / bc2) + p.eps)));
      }
    });
  };
  auto call_per_tensor = [&] {
    for_each_arena_slice(sizes, [&](int64_t off, int64_t n) {
      auto part = [&](std::vector<float>& x) { return T1(x).slice_rows(off, n); };
      be.adamw_step(part(param), part(grad), part(m), part(v), p);
    });
  };
  KernelBenchResult r = adamw_bench_result(sizes, "scalar loop per tensor");
  {  // one update each from the same state: the one-call op against the scalar loop
    const std::vector<float> p0 = param, m0 = m, v0 = v;
    CpuBench::verify(
        r, [&] { param = p0, m = m0, v = v0, one_call(); }, [&] { param = p0, m = m0, v = v0, scalar_per_tensor(); },
        {{"param", &param}, {"m", &m}, {"v", &v}}, kTol, "scalar loop per tensor (double arithmetic)");
    param = p0, m = m0, v = v0;
  }
  const std::vector<double> t = medians_ms(b.repeats, {one_call, scalar_per_tensor, call_per_tensor});  // in turns
  r.ms = t[0];
  r.baseline_ms = t[1];
  r.baseline2_ms = t[2];
  b.res.push_back(r);
}

// The case table: one function per family of kernel_bench_families(), in its order.
const std::vector<void (*)(CpuBench&)>& op_families() {
  static const std::vector<void (*)(CpuBench&)> runs = {
      bench_linear, bench_lora_linear, bench_embedding, bench_rmsnorm, bench_add_swiglu, bench_rope, bench_kv_store,
      bench_paged_attention, bench_attention, bench_log_softmax_gather, bench_logprob, bench_sample, bench_adamw};
  return runs;
}

}  // namespace

std::vector<KernelBenchResult> cpu_kernel_bench(const std::vector<std::string>& ops, int repeats,
                                                const std::vector<std::string>& shapes, std::string* device) {
  BackendOptions bo;
  bo.kind = "cpu";
  std::unique_ptr<Backend> be = make_backend(bo);
  *device = be->description();
  CpuBench bench{*be, repeats, ops, shapes, {}};
  run_kernel_bench_families(op_families(), ops, bench);
  return std::move(bench.res);
}

}  // namespace hayate::bench
