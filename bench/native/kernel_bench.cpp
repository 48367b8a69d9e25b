// Kernel benchmark: see kernel_bench.h. The CPU cases live here (the CPU backend vs scalar loops written
// below); the CUDA cases in cuda/cuda_bench.cu (kernels and their baselines must be compiled by nvcc).
#include "kernel_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <vector>

#include "../../cuda/cuda_bench.h"  // the op list, result record and LoRA/AdamW cases: plain C++, no CUDA
#include "../../cuda/plan.h"        // parse_attention_bench_shape: plain C++, no CUDA
#include "backend.h"
#include "rng.h"

using namespace hayate;

namespace {

using Result = gpu::KernelBenchResult;

Result mk(const std::string& op, const std::string& label, const std::string& shape, const std::string& metric, double work) {
  Result r;
  r.op = op;
  r.label = label;
  r.shape = shape;
  r.metric = metric;
  r.work = work;
  return r;
}

std::string esc(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    o += ch;
  }
  return o;
}

std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

// metric value from work per call and ms per call
double rate(const std::string& metric, double work, double ms) {
  if (ms <= 0) return 0;
  return metric == "TFLOP/s" ? work / (ms * 1e-3) / 1e12 : work / (ms * 1e-3) / 1e9;
}

std::string to_json(const std::vector<Result>& rs, const std::string& backend, const std::string& device,
                    double peak_gbs) {
  std::ostringstream js;
  js << "[";
  for (size_t i = 0; i < rs.size(); ++i) {
    const Result& r = rs[i];
    const double v = rate(r.metric, r.work, r.ms);
    const double bv = rate(r.metric, r.baseline_work > 0 ? r.baseline_work : r.work, r.baseline_ms);
    js << (i ? ",\n" : "\n") << "  {\"op\": \"" << esc(r.op) << "\", \"case\": \"" << esc(r.label) << "\", \"shape\": \""
       << esc(r.shape) << "\", \"backend\": \"" << backend << "\", \"device\": \"" << esc(device)
       << "\", \"impl\": \"hayate\", \"median_ms\": " << num(r.ms) << ", \"metric\": \"" << r.metric
       << "\", \"value\": " << num(v);
    if (r.metric == "GB/s" && peak_gbs > 0) js << ", \"peak_fraction\": " << num(v / peak_gbs);
    js << ", \"baseline\": \"" << esc(r.baseline) << "\", \"baseline_median_ms\": " << num(r.baseline_ms)
       << ", \"baseline_value\": " << num(bv) << ", \"speedup\": " << num(r.ms > 0 ? r.baseline_ms / r.ms : 0);
    if (r.baseline_is_base_gemm) js << ", \"vs_base_gemm\": " << num(r.baseline_ms > 0 ? r.ms / r.baseline_ms : 0);
    if (!r.baseline2.empty())
      js << ", \"baseline2\": \"" << esc(r.baseline2) << "\", \"baseline2_median_ms\": " << num(r.baseline2_ms)
         << ", \"baseline2_value\": " << num(rate(r.metric, r.work, r.baseline2_ms))
         << ", \"speedup_vs_baseline2\": " << num(r.ms > 0 ? r.baseline2_ms / r.ms : 0);
    js << "}";
  }
  js << (rs.empty() ? "]" : "\n]");
  return js.str();
}

// ---- CPU: the CPU backend vs scalar reference loops -----------------------------------------------------

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

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t v : d) s += (s.size() > 1 ? "," : "") + std::to_string(v);
  return s + "]";
}

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

std::vector<Result> cpu_bench(const std::vector<std::string>& ops, int repeats, const std::vector<std::string>& shapes,
                              std::string* device) {
  BackendOptions bo;
  bo.kind = "cpu";
  std::unique_ptr<Backend> be = make_backend(bo);
  *device = be->description();
  auto wanted = [&](const char* op) { return ops.empty() || std::find(ops.begin(), ops.end(), op) != ops.end(); };
  std::vector<Result> res;
  const std::string scalar = "scalar reference loop";

  if (wanted("linear")) {
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
        Result r = mk("linear", std::string(pj.name) + " M=" + std::to_string(M), dims({M, pj.K}) + "x" + dims({pj.N, pj.K}) + "^T",
                 "TFLOP/s", 2.0 * M * pj.N * pj.K);
        r.ms = median_ms(repeats, [&] { be->linear(T2(out, M, pj.N), T2(x, M, pj.K), T2(w, pj.N, pj.K), {}); });
        r.baseline = scalar;
        r.baseline_ms = median_ms(1, [&] {
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < pj.N; ++n) {
              float acc = 0;
              for (int64_t k = 0; k < pj.K; ++k) acc += x[m * pj.K + k] * w[n * pj.K + k];
              out[m * pj.N + n] = acc;
            }
        });
        res.push_back(r);
      }
    }
  }
  if (wanted("lora_linear") || wanted("lora_linear_backward")) {
    const int64_t rank = gpu::kLoraBenchRank;
    const float s = gpu::kLoraBenchScale;
    for (const gpu::LoraBenchCase& lc : gpu::lora_bench_cases()) {
      const int64_t M = lc.M, N = lc.N, K = lc.K;
      auto x = randv(M * K, 1), w = randv(N * K, 2, 0.02f), a = randv(rank * K, 24, 0.02f), b = randv(N * rank, 25, 0.02f);
      auto dout = randv(M * N, 26);
      std::vector<float> out(M * N), xa(M * rank), dx(M * K), da(rank * K), db(N * rank);
      // the LoRA op and its bare base GEMM, timed in turns
      auto time_vs_base = [&](bool backward, const std::function<void()>& lora, const std::function<void()>& base) {
        Result r = gpu::lora_bench_result(lc, backward);
        const std::vector<double> t = medians_ms(repeats, {lora, base});
        r.ms = t[0];
        r.baseline_ms = t[1];
        res.push_back(r);
      };
      if (wanted("lora_linear"))
        time_vs_base(
            false,
            [&] { be->lora_linear(T2(out, M, N), T2(xa, M, rank), T2(x, M, K), T2(w, N, K), {}, T2(a, rank, K), T2(b, N, rank), s); },
            [&] { be->linear(T2(out, M, N), T2(x, M, K), T2(w, N, K), {}); });
      if (wanted("lora_linear_backward"))
        time_vs_base(
            true,
            [&] {
              be->lora_linear_backward(T2(dx, M, K), T2(da, rank, K), T2(db, N, rank), T2(dout, M, N), T2(x, M, K),
                                       T2(xa, M, rank), T2(w, N, K), T2(a, rank, K), T2(b, N, rank), s, false);
            },
            [&] { be->lora_linear_backward(T2(dx, M, K), {}, {}, T2(dout, M, N), {}, {}, T2(w, N, K), {}, {}, s, false); });
    }
  }
  if (wanted("embedding")) {
    const int64_t V = 32000, D = 1024, n = 512;
    auto table = randv(V * D, 3);
    std::vector<float> out(n * D);
    std::vector<int32_t> ids(n);
    for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919) % V);
    Result r = mk("embedding", "gather 512 rows", dims({V, D}), "GB/s", 2.0 * n * D * 4);
    r.ms = median_ms(repeats, [&] { be->embedding(T2(out, n, D), T2(table, V, D), I1(ids)); });
    r.baseline = scalar;
    r.baseline_ms = median_ms(repeats, [&] {
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < D; ++j) out[i * D + j] = table[ids[i] * D + j];
    });
    res.push_back(r);
  }
  if (wanted("rmsnorm")) {
    const int64_t rows = 512, D = 1024;
    auto x = randv(rows * D, 4), w = randv(D, 5);
    std::vector<float> out(rows * D);
    Result r = mk("rmsnorm", "hidden 512 rows", dims({rows, D}), "GB/s", 2.0 * rows * D * 4);
    r.ms = median_ms(repeats, [&] { be->rmsnorm(T2(out, rows, D), T2(x, rows, D), T1(w), 1e-6f); });
    r.baseline = scalar;
    r.baseline_ms = median_ms(repeats, [&] {
      for (int64_t i = 0; i < rows; ++i) {
        double ss = 0;
        for (int64_t j = 0; j < D; ++j) ss += double(x[i * D + j]) * x[i * D + j];
        const float inv = static_cast<float>(1.0 / std::sqrt(ss / D + 1e-6));
        for (int64_t j = 0; j < D; ++j) out[i * D + j] = x[i * D + j] * inv * w[j];
      }
    });
    res.push_back(r);
  }
  if (wanted("add") || wanted("swiglu")) {
    const int64_t n = 512 * 3072;
    auto a = randv(n, 6), b = randv(n, 7);
    std::vector<float> out(n);
    if (wanted("add")) {
      Result r = mk("add", "512 x 3072", dims({n}), "GB/s", 3.0 * n * 4);
      r.ms = median_ms(repeats, [&] { be->add(T1(out), T1(a), T1(b)); });
      r.baseline = scalar;
      r.baseline_ms = median_ms(repeats, [&] {
        for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
      });
      res.push_back(r);
    }
    if (wanted("swiglu")) {
      Result r = mk("swiglu", "512 x 3072", dims({n}), "GB/s", 3.0 * n * 4);
      r.ms = median_ms(repeats, [&] { be->swiglu(T1(out), T1(a), T1(b)); });
      r.baseline = scalar;
      r.baseline_ms = median_ms(repeats, [&] {
        for (int64_t i = 0; i < n; ++i) out[i] = a[i] / (1.0f + std::exp(-a[i])) * b[i];
      });
      res.push_back(r);
    }
  }
  if (wanted("rope")) {
    const int64_t n = 512, H = 16, hd = 128, max_pos = 1024;
    auto x = randv(n * H * hd, 8), cs = randv(max_pos * hd, 9, 0.5f);
    std::vector<int32_t> pos(n);
    std::iota(pos.begin(), pos.end(), 0);
    Result r = mk("rope", "q of 512 tokens", dims({n, H * hd}), "GB/s", 2.0 * n * H * hd * 4);
    r.ms = median_ms(repeats, [&] { be->rope(T2(x, n, H * hd), I1(pos), T2(cs, max_pos, hd), static_cast<int>(hd)); });
    r.baseline = scalar;
    r.baseline_ms = median_ms(repeats, [&] {
      for (int64_t i = 0; i < n; ++i)
        for (int64_t h = 0; h < H; ++h) {
          float* v = &x[(i * H + h) * hd];
          const float* c = &cs[pos[i] * hd];
          for (int64_t j = 0; j < hd / 2; ++j) {
            const float a = v[j], b = v[j + hd / 2];
            v[j] = a * c[j] - b * c[hd / 2 + j];
            v[j + hd / 2] = b * c[j] + a * c[hd / 2 + j];
          }
        }
    });
    res.push_back(r);
  }
  if (wanted("kv_store")) {
    const int64_t n = 512, W = 1024, rows = 2048;
    auto k = randv(n * W, 10), v = randv(n * W, 11);
    std::vector<float> kc(rows * W), vc(rows * W);
    std::vector<int32_t> slots(n);
    for (int64_t i = 0; i < n; ++i) slots[i] = static_cast<int32_t>((i * 3) % rows);
    Result r = mk("kv_store", "512 tokens", dims({n, W}), "GB/s", 4.0 * n * W * 4);
    r.ms = median_ms(repeats, [&] { be->kv_store(T2(kc, rows, W), T2(vc, rows, W), T2(k, n, W), T2(v, n, W), I1(slots)); });
    r.baseline = scalar;
    r.baseline_ms = median_ms(repeats, [&] {
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < W; ++j) {
          kc[slots[i] * W + j] = k[i * W + j];
          vc[slots[i] * W + j] = v[i * W + j];
        }
    });
    res.push_back(r);
  }
  if (wanted("paged_attention")) {
    const int hq = 16, hkv = 8, hd = 128, bs = 16;
    struct Case {
      const char* label;
      int seqs, ctx;
      bool prefill;
    };
    for (const Case& cs : {Case{"decode B=8 ctx=512", 8, 512, false}, Case{"prefill 1 x 256", 1, 256, true}}) {
      gpu::PagedAttentionBenchLayout L = gpu::paged_attention_bench_layout(cs.seqs, cs.ctx, cs.prefill, bs, hq, hd);
      const int max_blocks = L.max_blocks;
      const int64_t rows = L.cache_rows, kvw = int64_t(hkv) * hd, qw = int64_t(hq) * hd;
      std::vector<int32_t>&tables = L.tables, &seq = L.seq, &pos = L.pos;
      const double flops = L.flops, kv = L.kv_positions;
      const int64_t n = static_cast<int64_t>(seq.size());
      auto q = randv(n * qw, 12), kc = randv(rows * kvw, 13), vc = randv(rows * kvw, 14);
      std::vector<float> out(n * qw);
      AttentionMeta m;
      m.block_tables = Tensor(tables.data(), DType::I32, {cs.seqs, max_blocks});
      m.token_seq = I1(seq);
      m.token_pos = I1(pos);
      m.block_size = bs;
      m.num_q_heads = hq;
      m.num_kv_heads = hkv;
      m.head_dim = hd;
      m.scale = 1.0f / std::sqrt(static_cast<float>(hd));
      Result r = mk("paged_attention", cs.label, "q " + dims({n, qw}), cs.prefill ? "TFLOP/s" : "GB/s",
               cs.prefill ? flops : kv * kvw * 2 * 4);
      r.ms = median_ms(repeats, [&] { be->paged_attention(T2(out, n, qw), T2(q, n, qw), T2(kc, rows, kvw), T2(vc, rows, kvw), m); });
      r.baseline = scalar;
      r.baseline_ms = median_ms(1, [&] {
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
      });
      res.push_back(r);
    }
  }
  if (wanted("attention_forward") || wanted("attention_backward")) {
    const std::vector<std::string> list = shapes.empty() ? std::vector<std::string>{"2x256"} : shapes;
    for (const std::string& sh : list) {
      const gpu::AttentionBenchShape a = gpu::parse_attention_bench_shape(sh);
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
      const std::string shape = "q " + dims({n, qw}) + ", " + std::to_string(S) + " seqs x " + std::to_string(L) +
                                ", kv heads " + std::to_string(hkv) + ", head_dim " + std::to_string(hd);
      auto qp = [&](int64_t row, int64_t h) { return row * qw + h * hd; };
      auto kp = [&](int64_t row, int64_t h) { return row * kw + (h / group) * hd; };
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
      be->attention_forward(T2(out, n, qw), T2(lse, n, hq), T2(q, n, qw), T2(k, n, kw), T2(v, n, kw), m);
      if (wanted("attention_forward")) {
        Result r = mk("attention_forward", sh, shape, "TFLOP/s", fwd_flops);
        r.ms = median_ms(repeats, [&] {
          be->attention_forward(T2(out, n, qw), T2(lse, n, hq), T2(q, n, qw), T2(k, n, kw), T2(v, n, kw), m);
        });
        r.baseline = scalar;
        r.baseline_ms = median_ms(1, scalar_forward);
        res.push_back(r);
        be->attention_forward(T2(out, n, qw), T2(lse, n, hq), T2(q, n, qw), T2(k, n, kw), T2(v, n, kw), m);
      }
      if (wanted("attention_backward")) {
        Result r = mk("attention_backward", sh, shape, "TFLOP/s", 2.5 * fwd_flops);
        r.ms = median_ms(repeats, [&] {
          be->attention_backward(T2(dq, n, qw), T2(dk, n, kw), T2(dv, n, kw), T2(dout, n, qw), T2(q, n, qw), T2(k, n, kw),
                                 T2(v, n, kw), T2(out, n, qw), T2(lse, n, hq), m);
        });
        r.baseline = scalar;
        r.baseline_ms = median_ms(1, [&] {  // per (row, head): P from lse, D, then every gradient term
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
        });
        res.push_back(r);
      }
    }
  }
  if (wanted("log_softmax_gather")) {
    const int64_t n = 8, V = 151936;
    auto z = randv(n * V, 15, 3.0f);
    std::vector<float> out(n);
    std::vector<int32_t> t(n);
    for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919) % V);
    Result r = mk("log_softmax_gather", "8 rows", dims({n, V}), "GB/s", 4.0 * n * V);
    r.ms = median_ms(repeats, [&] { be->log_softmax_gather(T1(out), T2(z, n, V), I1(t), 1.0f); });
    r.baseline = scalar;
    r.baseline_ms = median_ms(repeats, [&] {
      for (int64_t i = 0; i < n; ++i) {
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < V; ++j) mx = std::max(mx, z[i * V + j]);
        double s = 0;
        for (int64_t j = 0; j < V; ++j) s += std::exp(z[i * V + j] - mx);
        out[i] = static_cast<float>(z[i * V + t[i]] - mx - std::log(s));
      }
    });
    res.push_back(r);
  }
  if (wanted("sample")) {
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
      Result r = mk("sample", top_p < 1 ? "T=1, top_p=0.9" : "T=1, no filter", dims({B, V}), "GB/s", 4.0 * B * V);
      r.ms = median_ms(repeats, [&] { be->sample(T2(z, B, V), rows.data(), ids.data(), lps.data()); });
      r.baseline = "scalar sampler with a full sort of the vocabulary";
      r.baseline_ms = median_ms(1, [&] {
        for (int64_t i = 0; i < B; ++i) ids[i] = scalar_sample(&z[i * V], V, rows[i]);
      });
      res.push_back(r);
    }
  }
  if (wanted("adamw")) {
    const std::vector<int64_t> sizes = gpu::recipe_lora_tensor_sizes();
    const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
    auto param = randv(total, 30, 0.02f), grad = randv(total, 31, 1e-3f);
    std::vector<float> m(total), v(total);
    AdamWParams p;
    p.weight_decay = 0.01;
    const double bc1 = 1.0 - std::pow(p.beta1, double(p.step)), bc2 = 1.0 - std::pow(p.beta2, double(p.step));
    auto one_call = [&] { be->adamw_step(T1(param), T1(grad), T1(m), T1(v), p); };
    auto scalar_per_tensor = [&] {
      gpu::for_each_arena_slice(sizes, [&](int64_t off, int64_t n) {
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
      gpu::for_each_arena_slice(sizes, [&](int64_t off, int64_t n) {
        auto part = [&](std::vector<float>& x) { return T1(x).slice_rows(off, n); };
        be->adamw_step(part(param), part(grad), part(m), part(v), p);
      });
    };
    Result r = gpu::adamw_bench_result(sizes, "scalar loop per tensor");
    const std::vector<double> t = medians_ms(repeats, {one_call, scalar_per_tensor, call_per_tensor});  // in turns
    r.ms = t[0];
    r.baseline_ms = t[1];
    r.baseline2_ms = t[2];
    res.push_back(r);
  }
  return res;
}

}  // namespace

std::string run_kernel_bench_json(const std::string& backend, const std::vector<std::string>& ops, int repeats,
                                  const std::vector<std::string>& shapes) {
  gpu::check_kernel_bench_ops(ops);
  for (const std::string& s : shapes) gpu::parse_attention_bench_shape(s);  // malformed: kInvalidArgument up front
  if (backend == "cpu") {
    std::string device;
    const std::vector<Result> rs = cpu_bench(ops, repeats, shapes, &device);
    return to_json(rs, "cpu", device, 0.0);
  }
  if (backend == "cuda") {
#ifdef HAYATE_WITH_CUDA
    gpu::KernelBenchDevice dev;
    const std::vector<Result> rs = gpu::cuda_kernel_bench(ops, repeats, &dev, shapes);
    return to_json(rs, "cuda", dev.name + " (sm_" + std::to_string(dev.cc) + ", " + std::to_string(dev.sms) + " SMs)", dev.peak_gbs);
#else
    fail(ErrorCode::kBackend, "this build of hayate has no CUDA backend (nvcc was not found at build time); use backend 'cpu'");
#endif
  }
  fail(ErrorCode::kInvalidArgument, "unknown backend '" + backend + "' for the kernel benchmark (cpu, cuda)");
}
