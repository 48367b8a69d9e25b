// The CUDA cases of the kernel benchmark (see cuda_kernel_bench.h): one function per op family on
// qwen3-0.6b shapes, run from a table in kernel_bench_ops() order. Each times the backend's op and its
// baseline (baseline_kernels.cuh) with CUDA events on the backend's stream; the LoRA projections are timed
// against the backend's own bare base GEMM on the same shape (the target: within 10% of it).
#include "cuda_kernel_bench.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cub/cub.cuh>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attention_bench_shape.h"
#include "baseline_kernels.cuh"
#include "cuda_backend.h"
#include "cuda_check.h"
#include "rng.h"

namespace hayate::bench {

namespace {

constexpr DType B16 = DType::BF16;
// Check tolerances, relative to the reference's largest magnitude: bf16 outputs (8 mantissa bits, each side
// rounds once), and fp32 outputs of fp32 arithmetic that differs only in summation order.
constexpr double kBf16Tol = 2e-2, kF32Tol = 1e-3;

// An output the check compares: its name and the device tensor the op and its reference both write.
using Out = std::pair<const char*, Tensor>;

// ---- timing --------------------------------------------------------------------------------------------

struct Timer {
  cudaStream_t s;
  int repeats;
  // Median per call over `repeats` samples after warm-up; each sample runs enough calls for ~0.5 ms.
  double median_ms(const std::function<void()>& fn) {
    fn();
    fn();
    HAYATE_CUDA_CHECK(cudaStreamSynchronize(s));
    cudaEvent_t a, b;
    HAYATE_CUDA_CHECK(cudaEventCreate(&a));
    HAYATE_CUDA_CHECK(cudaEventCreate(&b));
    auto sample = [&](int inner) {
      HAYATE_CUDA_CHECK(cudaEventRecord(a, s));
      for (int i = 0; i < inner; ++i) fn();
      HAYATE_CUDA_CHECK(cudaEventRecord(b, s));
      HAYATE_CUDA_CHECK(cudaEventSynchronize(b));
      float ms = 0;
      HAYATE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
      return static_cast<double>(ms) / inner;
    };
    const double once = sample(1);
    const int inner = static_cast<int>(std::min(200.0, std::max(1.0, 0.5 / std::max(once, 1e-4))));
    std::vector<double> t;
    for (int r = 0; r < std::max(repeats, 1); ++r) t.push_back(sample(inner));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
  // Host wall time (ops that synchronise internally, e.g. sample()).
  double median_wall_ms(const std::function<void()>& fn) {
    fn();
    HAYATE_CUDA_CHECK(cudaStreamSynchronize(s));
    std::vector<double> t;
    for (int r = 0; r < std::max(repeats, 3); ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      HAYATE_CUDA_CHECK(cudaStreamSynchronize(s));
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
};

unsigned blocks_for(int64_t n, int threads = 256) { return static_cast<unsigned>(gpu::ceil_div(std::max<int64_t>(n, 1), threads)); }

// What every case needs: the backend, the launch context of the baselines, the timer, and the records.
struct CudaBench {
  CudaBackend& be;
  gpu::Ctx c;
  Timer timer;
  int repeats;
  const std::vector<std::string>& ops;
  const std::vector<std::string>& shapes;  // the attention cases' (empty: the defaults)
  std::vector<KernelBenchResult> res;

  bool wanted(const char* op) const { return kernel_bench_wanted(ops, op); }
  std::vector<float> host(const Tensor& t) {  // waits for the stream
    std::vector<float> v(static_cast<size_t>(t.numel()));
    be.download_f32(v.data(), t);
    return v;
  }
  // The check: `op` once, its outputs downloaded, then `ref` once on the same inputs; each output compared.
  void verify(KernelBenchResult& r, const std::function<void()>& op, const std::function<void()>& ref,
              const std::vector<Out>& outs, double tol, const std::string& against) {
    op();
    std::vector<std::vector<float>> got;
    for (const Out& o : outs) got.push_back(host(o.second));
    ref();
    HAYATE_CUDA_CHECK(cudaGetLastError());  // a baseline launch that failed
    for (size_t i = 0; i < outs.size(); ++i) {
      const std::vector<float> want = host(outs[i].second);
      kernel_bench_compare(r.check, outs[i].first, got[i].data(), want.data(), want.size(), tol, against);
    }
  }
  Buffer rand_buf(DType dt, std::initializer_list<int64_t> shape, uint64_t seed, float scale) {
    Buffer b(be, dt, shape);
    fill_random(c, b, seed, scale);
    return b;
  }
  // The common case: the backend's op checked against its baseline on `outs`, then each timed with CUDA
  // events; returns the record as stored (a case may add a second baseline).
  KernelBenchResult& time_vs_baseline(KernelBenchResult r, const std::function<void()>& op, const std::string& baseline,
                                      const std::function<void()>& baseline_op, const std::vector<Out>& outs,
                                      double tol = kBf16Tol) {
    verify(r, op, baseline_op, outs, tol, baseline);
    r.ms = timer.median_ms(op);
    r.baseline = baseline;
    r.baseline_ms = timer.median_ms(baseline_op);
    res.push_back(r);
    return res.back();
  }
};

const char* const kThreadPerElement = "naive kernel (thread per element)";

// ---- the cases (qwen3-0.6b: hidden 1024, intermediate 3072, 16 q heads / 8 kv heads of 128, vocabulary 151936)

void bench_linear(CudaBench& b) {
  struct Proj {
    const char* name;
    int64_t N, K;
  };
  const Proj projs[] = {{"q_proj", 2048, 1024}, {"gate_proj", 3072, 1024}, {"down_proj", 1024, 3072},
                        {"lm_head", 151936, 1024}};
  const gpu::Ctx& c = b.c;
  for (const Proj& pj : projs) {
    Buffer w = b.rand_buf(B16, {pj.N, pj.K}, 2, 0.02f);
    for (int64_t M : {1, 64, 512, 2048}) {
      if (pj.N > 100000 && M > 64) continue;
      Buffer x = b.rand_buf(B16, {M, pj.K}, 1, 1.0f), out(b.be, B16, {M, pj.N});
      KernelBenchResult& r = b.time_vs_baseline(
          kernel_bench_result("linear", std::string(pj.name) + " M=" + std::to_string(M),
                              bench_dims({M, pj.K}) + "x" + bench_dims({pj.N, pj.K}) + "^T", "TFLOP/s", 2.0 * M * pj.N * pj.K),
          [&] { b.be.linear(out, x, w, {}); }, "naive kernel (thread per output)",
          [&] {
            naive_linear_kernel<<<blocks_for(M * pj.N), 256, 0, c.stream>>>(x.t().as<const bf16>(), w.t().as<const bf16>(),
                                                                            out.t().as<bf16>(), M, pj.N, pj.K);
          },
          {{"out", out}});
      if (CudaBackend::cublas_compiled()) {
        b.be.set_gemm_backend(gpu::GemmBackend::Cublas);
        r.baseline2 = "cuBLAS cublasGemmEx";
        r.baseline2_ms = b.timer.median_ms([&] { b.be.linear(out, x, w, {}); });
        b.be.set_gemm_backend(gpu::GemmBackend::Hayate);
      }
    }
  }
}

void bench_lora_linear(CudaBench& b) {
  const int64_t rank = kLoraBenchRank;
  const DType P = b.be.param_dtype();
  CudaBackend& be = b.be;
  for (const LoraBenchCase& lc : lora_bench_cases()) {
    const int64_t M = lc.M, N = lc.N, K = lc.K;
    Buffer x = b.rand_buf(B16, {M, K}, 1, 1.0f), w = b.rand_buf(B16, {N, K}, 2, 0.02f), dout = b.rand_buf(B16, {M, N}, 26, 1.0f);
    Buffer a = b.rand_buf(P, {rank, K}, 24, 0.02f), bb = b.rand_buf(P, {N, rank}, 25, 0.02f);
    Buffer da = b.rand_buf(P, {rank, K}, 27, 0.0f), db = b.rand_buf(P, {N, rank}, 28, 0.0f);
    Buffer out(be, B16, {M, N}), xa(be, B16, {M, rank}), dx(be, B16, {M, K}), t(be, DType::F32, {M, rank});
    const float s = kLoraBenchScale;
    const char* const against = "unfused: the backend's own GEMMs (linear / gemm), one product at a time";
    be.linear(xa, x, a, {});  // the forward's xa, for the backward's db
    if (b.wanted("lora_linear")) {
      KernelBenchResult r = lora_bench_result(lc, false);
      b.verify(
          r, [&] { be.lora_linear(out, xa, x, w, {}, a, bb, s); },
          [&] {  // out = x w^T + s (x a^T) b^T
            be.linear(out, x, w, {});
            be.linear(xa, x, a, {});
            be.gemm(out, xa, bb, false, true, s, 1.0f);
          },
          {{"out", out}, {"xa", xa}}, kBf16Tol, against);
      r.ms = b.timer.median_ms([&] { be.lora_linear(out, xa, x, w, {}, a, bb, kLoraBenchScale); });
      r.baseline_ms = b.timer.median_ms([&] { be.linear(out, x, w, {}); });
      b.res.push_back(r);
    }
    if (b.wanted("lora_linear_backward")) {
      KernelBenchResult r = lora_bench_result(lc, true);
      b.verify(
          r,
          [&] {  // da, db accumulate: zeroed first
            be.fill_zero(da);
            be.fill_zero(db);
            be.lora_linear_backward(dx, da, db, dout, x, xa, w, a, bb, s, false);
          },
          [&] {  // t = s dout b; dx = dout w + t a; da = t^T x; db = s dout^T xa
            be.gemm(dx, dout, w, false, false, 1.0f, 0.0f);
            be.gemm(t, dout, bb, false, false, s, 0.0f);
            be.gemm(dx, t, a, false, false, 1.0f, 1.0f);
            be.gemm(da, t, x, true, false, 1.0f, 0.0f);
            be.gemm(db, dout, xa, true, false, s, 0.0f);
          },
          {{"dx", dx}, {"da", da}, {"db", db}}, kBf16Tol, against);
      r.ms = b.timer.median_ms([&] { be.lora_linear_backward(dx, da, db, dout, x, xa, w, a, bb, kLoraBenchScale, false); });
      r.baseline_ms = b.timer.median_ms([&] { be.lora_linear_backward(dx, {}, {}, dout, {}, {}, w, {}, {}, kLoraBenchScale, false); });
      b.res.push_back(r);
    }
  }
}

void bench_embedding(CudaBench& b) {
  const int64_t V = 151936, D = 1024, n = 2048;
  Buffer table = b.rand_buf(B16, {V, D}, 3, 1.0f), out(b.be, B16, {n, D});
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919) % V);
  Buffer gid(b.be, DType::I32, {n});
  b.be.copy_from_host(gid.t().data, ids.data(), n * 4);
  b.time_vs_baseline(
      kernel_bench_result("embedding", "gather 2048 rows", bench_dims({V, D}) + "[ids " + std::to_string(n) + "]", "GB/s",
                          2.0 * n * D * 2),
      [&] { b.be.embedding(out, table, gid); }, kThreadPerElement,
      [&] {
        naive_gather_kernel<<<blocks_for(n * D), 256, 0, b.c.stream>>>(table.t().as<const bf16>(), gid.t().as<const int32_t>(),
                                                                       out.t().as<bf16>(), n, D);
      },
      {{"out", out}});
}

void bench_rmsnorm(CudaBench& b) {
  struct RCase {
    int64_t rows, D;
    const char* label;
  };
  for (const RCase& rc : {RCase{2048, 1024, "hidden 2048 rows"}, RCase{64, 1024, "hidden 64 rows"},
                          RCase{2048 * 16, 128, "q heads (qk-norm) 2048 tokens"}}) {
    const int64_t rows = rc.rows, D = rc.D;
    Buffer x = b.rand_buf(B16, {rows, D}, 4, 1.0f), w = b.rand_buf(B16, {D}, 5, 1.0f), out(b.be, B16, {rows, D});
    b.time_vs_baseline(
        kernel_bench_result("rmsnorm", rc.label, bench_dims({rows, D}), "GB/s", 2.0 * rows * D * 2 + D * 2),
        [&] { b.be.rmsnorm(out, x, w, 1e-6f); }, "naive kernel (thread per row)",
        [&] {
          naive_rmsnorm_kernel<<<blocks_for(rows), 256, 0, b.c.stream>>>(x.t().as<const bf16>(), w.t().as<const bf16>(),
                                                                         out.t().as<bf16>(), rows, D, 1e-6f);
        },
        {{"out", out}});
  }
}

// add and swiglu: the same buffers, one record each.
void bench_add_swiglu(CudaBench& b) {
  const int64_t n = 2048 * 3072;
  Buffer x = b.rand_buf(B16, {n}, 6, 1.0f), y = b.rand_buf(B16, {n}, 7, 1.0f), out(b.be, B16, {n});
  const char* const scalar = "naive kernel (scalar, thread per element)";
  if (b.wanted("add"))
    b.time_vs_baseline(kernel_bench_result("add", "2048 x 3072", bench_dims({n}), "GB/s", 3.0 * n * 2),
                       [&] { b.be.add(out, x, y); }, scalar, [&] {
                         naive_add_kernel<<<blocks_for(n), 256, 0, b.c.stream>>>(x.t().as<const bf16>(), y.t().as<const bf16>(),
                                                                                 out.t().as<bf16>(), n);
                       },
                       {{"out", out}});
  if (b.wanted("swiglu"))
    b.time_vs_baseline(kernel_bench_result("swiglu", "2048 x 3072", bench_dims({n}), "GB/s", 3.0 * n * 2),
                       [&] { b.be.swiglu(out, x, y); }, scalar, [&] {
                         naive_swiglu_kernel<<<blocks_for(n), 256, 0, b.c.stream>>>(
                             x.t().as<const bf16>(), y.t().as<const bf16>(), out.t().as<bf16>(), n);
                       },
                       {{"out", out}});
}

void bench_rope(CudaBench& b) {
  const int64_t n = 2048, H = 16, hd = 128, max_pos = 4096;
  Buffer x = b.rand_buf(B16, {n, H * hd}, 8, 1.0f), cs = b.rand_buf(DType::F32, {max_pos, hd}, 9, 0.5f);
  std::vector<int32_t> pos(n);
  for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(i);
  Buffer gp(b.be, DType::I32, {n});
  b.be.copy_from_host(gp.t().data, pos.data(), n * 4);
  Buffer x0(b.be, B16, {n, H * hd});  // in place: each side of the check starts from these values
  b.be.copy(x0.t().data, x.t().data, x.t().nbytes());
  auto op = [&] { b.be.rope(x, gp, cs, static_cast<int>(hd)); };
  auto naive = [&] {
    naive_rope_kernel<<<blocks_for(n * H), 256, 0, b.c.stream>>>(x.t().as<bf16>(), gp.t().as<const int32_t>(),
                                                                 cs.t().as<const float>(), n, static_cast<int>(H),
                                                                 static_cast<int>(hd));
  };
  auto restore = [&] { b.be.copy(x.t().data, x0.t().data, x.t().nbytes()); };
  KernelBenchResult r =
      kernel_bench_result("rope", "q of 2048 tokens", bench_dims({n, H * hd}), "GB/s", 2.0 * n * H * hd * 2 + 4.0 * n * hd);
  r.baseline = "naive kernel (thread per head)";
  b.verify(r, [&] { restore(), op(); }, [&] { restore(), naive(); }, {{"x (in place)", x}}, kBf16Tol, r.baseline);
  r.ms = b.timer.median_ms(op);
  r.baseline_ms = b.timer.median_ms(naive);
  b.res.push_back(r);
}

void bench_kv_store(CudaBench& b) {
  const int64_t n = 2048, W = 1024, rows = 4096;
  Buffer k = b.rand_buf(B16, {n, W}, 10, 1.0f), v = b.rand_buf(B16, {n, W}, 11, 1.0f);
  Buffer kc(b.be, B16, {rows, W}), vc(b.be, B16, {rows, W});
  b.be.fill_zero(kc);
  b.be.fill_zero(vc);
  std::vector<int32_t> slots(n);
  for (int64_t i = 0; i < n; ++i) slots[i] = static_cast<int32_t>((i * 3) % rows);
  Buffer gs(b.be, DType::I32, {n});
  b.be.copy_from_host(gs.t().data, slots.data(), n * 4);
  b.time_vs_baseline(kernel_bench_result("kv_store", "2048 tokens", bench_dims({n, W}), "GB/s", 4.0 * n * W * 2),
                     [&] { b.be.kv_store(kc, vc, k, v, gs); }, kThreadPerElement, [&] {
                       naive_kv_store_kernel<<<blocks_for(n * W), 256, 0, b.c.stream>>>(
                           kc.t().as<bf16>(), vc.t().as<bf16>(), k.t().as<const bf16>(), v.t().as<const bf16>(),
                           gs.t().as<const int32_t>(), n, W);
                     },
                     {{"k_cache", kc}, {"v_cache", vc}});
}

void bench_paged_attention(CudaBench& b) {
  const int hq = kPagedBenchQHeads, hkv = kPagedBenchKvHeads, hd = kPagedBenchHeadDim, bs = kPagedBenchBlockSize;
  CudaBackend& be = b.be;
  for (const PagedAttentionBenchCase& cs : paged_attention_bench_cases("cuda")) {
    const PagedAttentionBenchLayout L = paged_attention_bench_layout(cs);
    const int64_t n = static_cast<int64_t>(L.seq.size());
    Buffer q = b.rand_buf(B16, {n, int64_t(hq) * hd}, 12, 1.0f), out(be, B16, {n, int64_t(hq) * hd});
    Buffer kc = b.rand_buf(B16, {L.cache_rows, int64_t(hkv) * hd}, 13, 1.0f);
    Buffer vc = b.rand_buf(B16, {L.cache_rows, int64_t(hkv) * hd}, 14, 1.0f);
    Buffer gt(be, DType::I32, {cs.seqs, L.max_blocks}), gseq(be, DType::I32, {n}), gpos(be, DType::I32, {n});
    be.copy_from_host(gt.t().data, L.tables.data(), L.tables.size() * 4);
    be.copy_from_host(gseq.t().data, L.seq.data(), n * 4);
    be.copy_from_host(gpos.t().data, L.pos.data(), n * 4);
    const AttentionMeta m = paged_attention_bench_meta(gt, gseq, gpos);
    // prefill: causal FLOPs; decode: K and V once per sequence, q, out
    const double work = cs.prefill ? L.flops : L.kv_positions * hkv * hd * 2 * 2 + 2.0 * n * hq * hd * 2;
    b.time_vs_baseline(
        kernel_bench_result("paged_attention", cs.label,
                            "q " + bench_dims({n, int64_t(hq) * hd}) + ", kv heads " + std::to_string(hkv) + ", head_dim " +
                                std::to_string(hd),
                            cs.prefill ? "TFLOP/s" : "GB/s", work),
        [&] { be.paged_attention(out, q, kc, vc, m); }, "naive kernel (thread per query head, serial online softmax)",
        [&] {
          naive_attention_kernel<<<blocks_for(n * hq, 128), 128, 0, b.c.stream>>>(
              q.t().as<const bf16>(), kc.t().as<const bf16>(), vc.t().as<const bf16>(), out.t().as<bf16>(),
              gt.t().as<const int32_t>(), gseq.t().as<const int32_t>(), gpos.t().as<const int32_t>(), n, L.max_blocks, bs,
              hq, hkv, hd, m.scale);
        },
        {{"out", out}});
  }
}

// attention_forward and attention_backward on the same inputs, per `--shapes` entry.
void bench_attention(CudaBench& b) {
  CudaBackend& be = b.be;
  const gpu::Ctx& c = b.c;
  const std::vector<std::string> list = b.shapes.empty() ? default_attention_bench_shapes() : b.shapes;
  Timer slow{c.stream, std::min(b.repeats, 3)};  // the unfused baselines take up to seconds per call at L = 2048
  for (const std::string& sh : list) {
    const AttentionBenchShape a = parse_attention_bench_shape(sh);
    const int64_t n = int64_t(a.seqs) * a.seqlen, qw = int64_t(a.hq) * a.hd, kw = int64_t(a.hkv) * a.hd;
    Buffer q = b.rand_buf(B16, {n, qw}, 20, 1.0f), k = b.rand_buf(B16, {n, kw}, 21, 1.0f), v = b.rand_buf(B16, {n, kw}, 22, 1.0f);
    Buffer dout = b.rand_buf(B16, {n, qw}, 23, 1.0f), out(be, B16, {n, qw}), lse(be, DType::F32, {n, a.hq});
    Buffer dq(be, B16, {n, qw}), dk(be, B16, {n, kw}), dv(be, B16, {n, kw});
    std::vector<int32_t> cu;
    for (int s = 0; s <= a.seqs; ++s) cu.push_back(s * a.seqlen);
    Buffer gcu(be, DType::I32, {a.seqs + 1});
    be.copy_from_host(gcu.t().data, cu.data(), cu.size() * 4);
    VarlenMeta m;
    m.cu_seqlens = gcu;
    m.max_seqlen = a.seqlen;
    m.num_q_heads = a.hq;
    m.num_kv_heads = a.hkv;
    m.head_dim = a.hd;
    m.scale = 1.0f / std::sqrt(static_cast<float>(a.hd));
    NaiveAttn na{a.seqs, a.seqlen, a.hq, a.hkv, a.hd, m.scale};
    const int64_t scores = int64_t(a.seqs) * a.hq * a.seqlen * a.seqlen;
    // causal FLOPs: 2 products of 2 FLOPs per (i, j <= i) pair and head dim; the backward has 5 products
    const double fwd_flops = 4.0 * a.hd * a.hq * a.seqs * (double(a.seqlen) * (a.seqlen + 1) / 2);
    const std::string shape = "q " + bench_dims({n, qw}) + ", " + std::to_string(a.seqs) + " seqs x " +
                              std::to_string(a.seqlen) + ", kv heads " + std::to_string(a.hkv) + ", head_dim " +
                              std::to_string(a.hd);
    Buffer P(be, DType::F32, {scores}), dS, D;
    be.attention_forward(out, lse, q, k, v, m);
    if (b.wanted("attention_forward")) {
      KernelBenchResult r = kernel_bench_result("attention_forward", sh, shape, "TFLOP/s", fwd_flops);
      auto fused = [&] { be.attention_forward(out, lse, q, k, v, m); };
      auto unfused = [&] {
        naive_attn_scores_kernel<<<blocks_for(scores), 256, 0, c.stream>>>(na, q.t().as<const bf16>(), k.t().as<const bf16>(), P.t().as<float>());
        naive_attn_softmax_kernel<<<blocks_for(int64_t(a.seqs) * a.hq * a.seqlen, 128), 128, 0, c.stream>>>(na, P.t().as<float>(), lse.t().as<float>());
        naive_attn_pv_kernel<<<blocks_for(n * qw), 256, 0, c.stream>>>(na, P.t().as<const float>(), v.t().as<const bf16>(), out.t().as<bf16>());
      };
      r.baseline = "unfused: scores kernel + softmax kernel + PV kernel, fp32 [S,hq,L,L] scores in memory";
      b.verify(r, fused, unfused, {{"out", out}, {"lse", lse}}, kBf16Tol, r.baseline);
      r.ms = b.timer.median_ms(fused);
      r.baseline_ms = slow.median_ms(unfused);
      b.res.push_back(r);
      be.attention_forward(out, lse, q, k, v, m);  // the fused op's lse/out for the backward below
    }
    if (b.wanted("attention_backward")) {
      dS = Buffer(be, DType::F32, {scores});
      D = Buffer(be, DType::F32, {n * a.hq});
      KernelBenchResult r = kernel_bench_result("attention_backward", sh, shape, "TFLOP/s", 2.5 * fwd_flops);
      auto fused = [&] { be.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, m); };
      r.baseline = "unfused: P and dS kernels (fp32 [S,hq,L,L] in memory) + one kernel per gradient";
      auto unfused = [&] {
        naive_attn_probs_kernel<<<blocks_for(scores), 256, 0, c.stream>>>(na, q.t().as<const bf16>(), k.t().as<const bf16>(),
                                                                        lse.t().as<const float>(), P.t().as<float>());
        naive_attn_delta_kernel<<<blocks_for(n * a.hq), 256, 0, c.stream>>>(na, dout.t().as<const bf16>(), out.t().as<const bf16>(), D.t().as<float>());
        naive_attn_ds_kernel<<<blocks_for(scores), 256, 0, c.stream>>>(na, P.t().as<const float>(), dout.t().as<const bf16>(),
                                                                     v.t().as<const bf16>(), D.t().as<const float>(), dS.t().as<float>());
        naive_attn_dkv_kernel<<<blocks_for(n * kw), 256, 0, c.stream>>>(na, P.t().as<const float>(), dout.t().as<const bf16>(), dv.t().as<bf16>(), 1.0f);
        naive_attn_dkv_kernel<<<blocks_for(n * kw), 256, 0, c.stream>>>(na, dS.t().as<const float>(), q.t().as<const bf16>(), dk.t().as<bf16>(), m.scale);
        naive_attn_dq_kernel<<<blocks_for(n * qw), 256, 0, c.stream>>>(na, dS.t().as<const float>(), k.t().as<const bf16>(), dq.t().as<bf16>());
      };
      b.verify(r, fused, unfused, {{"dq", dq}, {"dk", dk}, {"dv", dv}}, kBf16Tol, r.baseline);  // both from the fused forward's out, lse
      r.ms = b.timer.median_ms(fused);
      r.baseline_ms = slow.median_ms(unfused);
      b.res.push_back(r);
    }
  }
}

void bench_log_softmax_gather(CudaBench& b) {
  const int64_t n = 64, V = 151936;
  Buffer z = b.rand_buf(DType::F32, {n, V}, 15, 3.0f), out(b.be, DType::F32, {n});
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919) % V);
  Buffer gt(b.be, DType::I32, {n});
  b.be.copy_from_host(gt.t().data, t.data(), n * 4);
  b.time_vs_baseline(kernel_bench_result("log_softmax_gather", "64 rows", bench_dims({n, V}), "GB/s", 4.0 * n * V),
                     [&] { b.be.log_softmax_gather(out, z, gt, 1.0f); }, "naive kernel (thread per row)", [&] {
                       naive_lsg_kernel<<<blocks_for(n, 64), 64, 0, b.c.stream>>>(
                           z.t().as<const float>(), gt.t().as<const int32_t>(), out.t().as<float>(), n, V);
                     },
                     {{"out", out}}, kF32Tol);
}

// The chunked lm-head log-prob of training (see logprob_bench_result) against the unfused path: linear()
// into fp32 logits, a row kernel for lse / log-prob / entropy; backward: the dz kernel, then gemm().
void bench_logprob(CudaBench& b) {
  CudaBackend& be = b.be;
  const gpu::Ctx& c = b.c;
  const int64_t V = kLogprobBenchVocab, D = kLogprobBenchHidden;
  const float inv_t = 1.0f;
  Buffer lm = b.rand_buf(B16, {V, D}, 40, 0.02f);
  for (int64_t m : logprob_bench_rows("cuda")) {
    Buffer hidden = b.rand_buf(B16, {m, D}, 41, 1.0f), dlp = b.rand_buf(DType::F32, {m}, 42, 1.0f);
    Buffer lp(be, DType::F32, {m}), lse(be, DType::F32, {m}), ent(be, DType::F32, {m}), dh(be, B16, {m, D});
    Buffer z(be, DType::F32, {m, V});
    std::vector<int32_t> tg(m);
    for (int64_t i = 0; i < m; ++i) tg[i] = static_cast<int32_t>((i * 7919 + 13) % V);
    Buffer gt(be, DType::I32, {m});
    be.copy_from_host(gt.t().data, tg.data(), m * 4);
    auto fused_forward = [&] { be.logprob_forward(lp, lse, ent, hidden, lm, gt, inv_t); };
    auto unfused_forward = [&] {
      be.linear(z, hidden, lm, {});
      naive_logprob_rows_kernel<<<static_cast<unsigned>(m), kRowThreads, 0, c.stream>>>(
          z.t().as<const float>(), gt.t().as<const int32_t>(), V, inv_t, lp.t().as<float>(), lse.t().as<float>(),
          ent.t().as<float>());
    };
    auto fused_backward = [&] { be.logprob_backward(dh, dlp, hidden, lm, gt, lse, inv_t); };
    auto unfused_backward = [&] {
      be.linear(z, hidden, lm, {});
      naive_logprob_dz_kernel<<<blocks_for(m * V), 256, 0, c.stream>>>(z.t().as<float>(), gt.t().as<const int32_t>(),
                                                                       dlp.t().as<const float>(), lse.t().as<const float>(),
                                                                       m, V, inv_t);
      be.gemm(dh, z, lm, false, false, inv_t, 0.0f);
    };
    if (!b.wanted("logprob")) continue;
    KernelBenchResult r = logprob_bench_result(m, false);
    b.verify(r, fused_forward, unfused_forward, {{"logprobs", lp}, {"lse", lse}, {"entropy", ent}}, kF32Tol, r.baseline);
    r.ms = b.timer.median_ms(fused_forward);
    r.baseline_ms = b.timer.median_ms(unfused_forward);
    b.res.push_back(r);
    fused_forward();  // the backward's lse
    KernelBenchResult rb = logprob_bench_result(m, true);
    b.verify(rb, fused_backward, unfused_backward, {{"dhidden", dh}}, 3e-2, rb.baseline);  // dz may be bf16 inside the op
    rb.ms = b.timer.median_ms(fused_backward);
    rb.baseline_ms = b.timer.median_ms(unfused_backward);
    b.res.push_back(rb);
  }
}

// sample() synchronises (ids to the host), so both sides are timed by host wall clock.
void bench_sample(CudaBench& b) {
  const int64_t B = 64, V = 151936;
  CudaBackend& be = b.be;
  const gpu::Ctx& c = b.c;
  Buffer z = b.rand_buf(DType::F32, {B, V}, 16, 3.0f);
  const std::vector<float> hz = b.host(z);  // the host check of the draws
  Buffer probs(be, DType::F32, {B, V}), probs2(be, DType::F32, {B, V});
  Buffer ids(be, DType::I32, {B, V}), ids2(be, DType::I32, {B, V}), out_ids(be, DType::I32, {B});
  std::vector<int> offsets(B + 1);
  for (int64_t i = 0; i <= B; ++i) offsets[i] = static_cast<int>(i * V);
  Buffer goff(be, DType::I32, {B + 1}), grows(be, DType::I32, {int64_t(B * sizeof(gpu::DeviceSamplingRow) / 4)});
  be.copy_from_host(goff.t().data, offsets.data(), (B + 1) * 4);
  size_t temp_bytes = 0;
  HAYATE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      nullptr, temp_bytes, probs.t().as<const float>(), probs2.t().as<float>(), ids.t().as<const int32_t>(),
      ids2.t().as<int32_t>(), static_cast<int>(B * V), static_cast<int>(B), goff.t().as<const int>(),
      goff.t().as<const int>() + 1, 0, 32, c.stream));
  Buffer temp(be, DType::I32, {static_cast<int64_t>(temp_bytes / 4 + 1)});
  struct SCase {
    const char* label;
    float top_p;
    int top_k;
  };
  for (const SCase& sc : {SCase{"T=1, no filter", 1.0f, 0}, SCase{"T=1, top_p=0.9", 0.9f, 0},
                          SCase{"T=1, top_k=50", 1.0f, 50}, SCase{"T=1, top_k=50, top_p=0.9", 0.9f, 50}}) {
    std::vector<SamplingRow> rows(B);
    std::vector<gpu::DeviceSamplingRow> drows(B);
    for (int64_t i = 0; i < B; ++i) {
      rows[i].seed = derive_seed(1, i);
      rows[i].step = 3;
      rows[i].top_p = sc.top_p;
      rows[i].top_k = sc.top_k;
      drows[i] = {1.0f, sc.top_k, sc.top_p, 0.0f, rows[i].seed, rows[i].step};
    }
    be.copy_from_host(grows.t().data, drows.data(), B * sizeof(gpu::DeviceSamplingRow));
    std::vector<int32_t> hid(B);
    std::vector<float> hlp(B);
    KernelBenchResult r = kernel_bench_result("sample", sc.label, bench_dims({B, V}), "GB/s", 4.0 * B * V);
    be.sample(z, rows.data(), hid.data(), hlp.data());
    kernel_bench_check_samples(r.check, hz.data(), B, V, rows.data(), hid.data(), hlp.data(), kF32Tol);
    r.ms = b.timer.median_wall_ms([&] { be.sample(z, rows.data(), hid.data(), hlp.data()); });
    r.baseline = "sort-based top-p: softmax + CUB segmented radix sort + block scans (ids to host)";
    r.baseline_ms = b.timer.median_wall_ms([&] {
      softmax_rows_kernel<<<static_cast<unsigned>(B), kSortThreads, 0, c.stream>>>(z.t().as<const float>(), V, 1.0f,
                                                                                 probs.t().as<float>(), ids.t().as<int32_t>());
      size_t tb = temp_bytes;
      HAYATE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
          temp.t().data, tb, probs.t().as<const float>(), probs2.t().as<float>(), ids.t().as<const int32_t>(),
          ids2.t().as<int32_t>(), static_cast<int>(B * V), static_cast<int>(B), goff.t().as<const int>(),
          goff.t().as<const int>() + 1, 0, 32, c.stream));
      sorted_topp_draw_kernel<<<static_cast<unsigned>(B), kSortThreads, 0, c.stream>>>(
          probs2.t().as<const float>(), ids2.t().as<const int32_t>(), V, sc.top_p,
          reinterpret_cast<const gpu::DeviceSamplingRow*>(grows.t().data), out_ids.t().as<int32_t>());
      HAYATE_CUDA_CHECK(cudaMemcpyAsync(hid.data(), out_ids.t().data, B * 4, cudaMemcpyDeviceToHost, c.stream));
    });
    b.res.push_back(r);
  }
}

void bench_adamw(CudaBench& b) {
  // Every LoRA tensor and its moments in its own allocation, as the trainer holds them.
  const std::vector<int64_t> sizes = recipe_lora_tensor_sizes();
  const DType P = DType::F32;  // param_dtype(), as the naive kernel reads it
  CudaBackend& be = b.be;
  std::vector<Buffer> params, grads, ms, vs;
  std::vector<AdamWTensorRef> refs;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t n = sizes[i];
    const uint64_t s0 = 1000 + 4 * i;
    params.push_back(b.rand_buf(P, {n}, s0, 0.02f));
    grads.push_back(b.rand_buf(P, {n}, s0 + 1, 1e-3f));
    ms.push_back(b.rand_buf(P, {n}, s0 + 2, 0.0f));
    vs.push_back(b.rand_buf(P, {n}, s0 + 3, 0.0f));
    refs.push_back({params.back(), grads.back(), ms.back(), vs.back()});
  }
  AdamWParams p;  // no defaults: every hyperparameter set
  p.lr = 1e-5;
  p.beta1 = 0.9;
  p.beta2 = 0.999;
  p.eps = 1e-8;
  p.weight_decay = 0.01;
  const float bc1 = static_cast<float>(1.0 - std::pow(p.beta1, double(p.step)));
  const float bc2 = static_cast<float>(1.0 - std::pow(p.beta2, double(p.step)));
  KernelBenchResult r = adamw_bench_result(sizes, "naive kernel per tensor (fp32, thread per element)",
                                           "fp32, " + std::to_string(sizes.size()) + " separate tensors, one launch");
  auto naive = [&] {
    for (size_t i = 0; i < sizes.size(); ++i) {
      const int64_t n = sizes[i];
      naive_adamw_kernel<<<blocks_for(n), 256, 0, b.c.stream>>>(
          params[i].t().as<float>(), grads[i].t().as<const float>(), ms[i].t().as<float>(), vs[i].t().as<float>(), n,
          static_cast<float>(p.lr), static_cast<float>(p.beta1), static_cast<float>(p.beta2), static_cast<float>(p.eps),
          static_cast<float>(p.weight_decay), bc1, bc2);
    }
  };
  {  // one update each from the same state: param, m, v saved on the device and restored around each side
    std::vector<Buffer> saved;
    for (size_t i = 0; i < sizes.size(); ++i)
      for (const Buffer* t : {&params[i], &ms[i], &vs[i]}) {
        saved.emplace_back(be, DType::F32, std::initializer_list<int64_t>{sizes[i]});
        be.copy(saved.back().t().data, t->t().data, t->t().nbytes());
      }
    auto restore = [&] {
      size_t k = 0;
      for (size_t i = 0; i < sizes.size(); ++i)
        for (const Buffer* t : {&params[i], &ms[i], &vs[i]}) {
          be.copy(t->t().data, saved[k].t().data, t->t().nbytes());
          ++k;
        }
    };
    auto all = [&](std::vector<Buffer>& bufs) {  // every tensor of a kind back to back on the host
      std::vector<float> h;
      for (const Buffer& x : bufs) {
        const std::vector<float> part = b.host(x);
        h.insert(h.end(), part.begin(), part.end());
      }
      return h;
    };
    restore();
    be.adamw_step_multi(refs, p);
    const std::vector<float> gp = all(params), gm = all(ms), gv = all(vs);
    restore();
    naive();
    HAYATE_CUDA_CHECK(cudaGetLastError());
    const std::vector<float> rp = all(params), rm = all(ms), rv = all(vs);
    restore();
    kernel_bench_compare(r.check, "param", gp.data(), rp.data(), gp.size(), 1e-5, r.baseline);
    kernel_bench_compare(r.check, "m", gm.data(), rm.data(), gm.size(), 1e-5, r.baseline);
    kernel_bench_compare(r.check, "v", gv.data(), rv.data(), gv.size(), 1e-5, r.baseline);
  }
  r.ms = b.timer.median_ms([&] { be.adamw_step_multi(refs, p); });
  r.baseline_ms = b.timer.median_ms(naive);
  r.baseline2_ms = b.timer.median_ms([&] {
    for (const AdamWTensorRef& t : refs) be.adamw_step(t.param, t.grad, t.m, t.v, p);
  });
  b.res.push_back(r);
}

// The case table: one function per family of kernel_bench_families(), in its order.
const std::vector<void (*)(CudaBench&)>& op_families() {
  static const std::vector<void (*)(CudaBench&)> runs = {
      bench_linear, bench_lora_linear, bench_embedding, bench_rmsnorm, bench_add_swiglu, bench_rope, bench_kv_store,
      bench_paged_attention, bench_attention, bench_log_softmax_gather, bench_logprob, bench_sample, bench_adamw};
  return runs;
}

}  // namespace

std::vector<KernelBenchResult> cuda_kernel_bench(const std::vector<std::string>& ops, int repeats,
                                                 KernelBenchDevice* device, const std::vector<std::string>& shapes) {
  check_kernel_bench_ops(ops);
  BackendOptions bo;
  bo.kind = "cuda";
  std::unique_ptr<Backend> owner = make_cuda_backend(bo);
  CudaBackend& be = static_cast<CudaBackend&>(*owner);
  if (device) {
    device->name = be.device_name();
    device->peak_gbs = be.peak_memory_bandwidth_gbs();
    device->sms = be.sm_count();
    device->cc = be.compute_capability();
  }
  gpu::Ctx c;
  c.stream = static_cast<cudaStream_t>(be.stream_handle());
  c.num_sms = be.sm_count();
  CudaBench bench{be, c, Timer{c.stream, repeats}, repeats, ops, shapes, {}};
  run_kernel_bench_families(op_families(), ops, bench);
  be.synchronize();
  return std::move(bench.res);
}

}  // namespace hayate::bench
