// sample: one token per row of logits [B, V] with temperature, top-k, top-p and min-p, without sorting the
// vocabulary; returns ids and log-probs under log_softmax(logits / T) before filtering (raw logits for
// greedy rows): the semantics of the CPU backend's sampler (cpp/cpu/sampling.cpp).
//
// One block of kSampleThreads (512) threads per row. Every question the sampler asks ("the k-th most likely token", "the
// shortest prefix of the order reaching this mass", "the token where the running mass exceeds u * kept")
// is answered by a radix select over the bit patterns of p_j (sampling_select.h has the derivation and the
// decision logic, shared with a host reference that the CPU-only tests check against sample_row()):
//   1. max of z/T; p_j = exp(z_j/T - max) is recomputed on the fly in every pass (the row stays in L2 and
//      nothing of size V is written); total mass in fp64 (for the log-prob) and in 42-bit fixed point;
//   2. each select is 4 passes, one per 8-bit digit of the key: threads add counts and fixed-point masses
//      of the candidates into 256-bin shared histograms, then warp 0 scans the bins (a lane per 8 bins, a
//      shuffle scan across lanes) to pick the digit; the last level also records the smallest id per bin.
//      Mass selects skip the light tail that provably cannot hold the answer (skip_key), which keeps
//      most of a large vocabulary out of the contended shared-memory atomics;
//   3. the draw: u = rng_uniform(seed, step) (rng.h, the CPU's counter-based stream), one more select for
//      the crossing key, and the tie rank -> token id (a block prefix search only when several tokens share
//      that exact probability and the draw is not on the first of them).
// Decisions use integer sums only (order-independent atomics) and float reductions use a fixed tree: the
// same seed and logits give the same token on every run and in every batch.
// Passes over the row: 6 without filters; +4 for top-k, +4 for top-p, +1 for min-p.
#include <cfloat>
#include <climits>

#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"
#include "variant_stats.h"
#include "sampling_select.h"

namespace hayate::gpu {

namespace {

constexpr int NT = kSampleThreads;
constexpr int NW = kSampleWarps;
using ull = unsigned long long;

struct SampleShared {
  uint32_t hcnt[256];
  ull hmass[256];
  int hmin[256];
  float fscratch[NW];
  double dscratch[NW];
  ull uscratch[NW];
  long long lscratch[NW];
  ull warp_w[NW];
  int sel_bin;
  ull sel_above_cnt, sel_above_mass;
  int sel_warp;
  ull sel_base;
  long long found;
};

__device__ __forceinline__ long long block_max_ll(long long v, long long* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  long long r = lane < NW ? scratch[lane] : -1;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) r = max(r, __shfl_xor_sync(0xffffffffu, r, o));
  return r;
}

__device__ __forceinline__ ull warp_inclusive_scan(ull x) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const ull y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  return x;
}

// Warp 0 picks the bin of one radix level (same rule as select_bin_seq): lane l owns bins 255-8l ..
// 248-8l; a scan over the lanes finds the one holding the first non-empty bin whose running weight
// reaches `rem` (or, failing that, the lowest non-empty bin) and that lane walks its 8 bins.
__device__ void warp_select_bin(SampleShared& sh, bool mass_mode, ull rem) {
  const int lane = threadIdx.x % 32;
  ull lane_val = 0, lane_cnt = 0, lane_mass = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int bin = 255 - 8 * lane - i;
    const ull c = sh.hcnt[bin], m = sh.hmass[bin];
    lane_cnt += c;
    lane_mass += m;
    lane_val += mass_mode ? m : c;
  }
  const ull ex_val = warp_inclusive_scan(lane_val) - lane_val;
  const ull ex_cnt = warp_inclusive_scan(lane_cnt) - lane_cnt;
  const ull ex_mass = warp_inclusive_scan(lane_mass) - lane_mass;
  const unsigned cross = __ballot_sync(0xffffffffu, lane_cnt > 0 && ex_val + lane_val >= rem);
  const unsigned nonempty = __ballot_sync(0xffffffffu, lane_cnt > 0);
  const bool fallback = cross == 0;
  const int sel = cross ? __ffs(cross) - 1 : (nonempty ? 31 - __clz(nonempty) : 0);
  if (lane != sel) return;
  ull run_val = ex_val, run_cnt = ex_cnt, run_mass = ex_mass;
  int chosen = -1, low = -1;
  ull a_cnt = 0, a_mass = 0, low_cnt = 0, low_mass = 0;
  for (int i = 0; i < 8; ++i) {
    const int bin = 255 - 8 * lane - i;
    const ull c = sh.hcnt[bin], m = sh.hmass[bin], v = mass_mode ? m : c;
    if (c > 0) {
      if (!fallback && run_val + v >= rem) {
        chosen = bin;
        a_cnt = run_cnt;
        a_mass = run_mass;
        break;
      }
      low = bin;
      low_cnt = run_cnt;
      low_mass = run_mass;
    }
    run_val += v;
    run_cnt += c;
    run_mass += m;
  }
  if (chosen < 0) {
    chosen = low < 0 ? 0 : low;
    a_cnt = low_cnt;
    a_mass = low_mass;
  }
  sh.sel_bin = chosen;
  sh.sel_above_cnt = a_cnt;
  sh.sel_above_mass = a_mass;
}

// Radix select over the keys of p (the device twin of ref::Selector::select): mass_mode finds the largest
// key whose mass at or above reaches `target`, else the target-th largest key by count.
template <class ProbFn>
__device__ RadixResult block_radix_select(int64_t V, bool mass_mode, ull target, uint32_t min_key, ProbFn prob,
                                          SampleShared& sh) {
  RadixResult res;
  uint32_t prefix = 0, mask = 0;
  ull rem = target;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += NT) {
      sh.hcnt[i] = 0;
      sh.hmass[i] = 0;
      sh.hmin[i] = INT_MAX;
    }
    __syncthreads();
    for (int64_t j = threadIdx.x; j < V; j += NT) {
      const float pj = prob(j);
      const uint32_t k = prob_key(pj);
      if ((k & mask) == prefix && k >= min_key) {
        const int bin = (k >> shift) & 255;
        atomicAdd(&sh.hcnt[bin], 1u);
        atomicAdd(&sh.hmass[bin], static_cast<ull>(prob_mass_fx(pj)));
        if (shift == 0) atomicMin(&sh.hmin[bin], static_cast<int>(j));  // the first id of each exact key
      }
    }
    __syncthreads();
    if (threadIdx.x < 32) warp_select_bin(sh, mass_mode, rem);
    __syncthreads();
    const int bin = sh.sel_bin;
    res.cnt_gt += sh.sel_above_cnt;
    res.mass_gt += sh.sel_above_mass;
    const ull above = mass_mode ? sh.sel_above_mass : sh.sel_above_cnt;
    rem = rem > above ? rem - above : 0;
    prefix |= static_cast<uint32_t>(bin) << shift;
    mask |= 0xffu << shift;
    res.ties = sh.hcnt[bin];
    if (shift == 0) res.first_id = sh.hmin[bin];
    __syncthreads();  // everyone has read this level before the next one clears the histograms
  }
  res.key = prefix;
  return res;
}

// Smallest j with sum_{i <= j} weight(i) > target, or -1. Warp w owns ids [w*span, (w+1)*span).
template <class WeightFn>
__device__ long long block_find_prefix(int64_t V, int64_t span, ull target, WeightFn weight, SampleShared& sh) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t lo = min(V, static_cast<int64_t>(warp) * span), hi = min(V, lo + span);
  ull s = 0;
  for (int64_t j = lo + lane; j < hi; j += 32) s += weight(j);
  s = warp_sum_u64(s);
  if (lane == 0) sh.warp_w[warp] = s;
  if (threadIdx.x == 0) sh.found = -1;
  __syncthreads();
  if (threadIdx.x == 0) {
    ull acc = 0;
    int sel = -1;
    for (int w = 0; w < NW; ++w) {
      if (acc + sh.warp_w[w] > target) {
        sel = w;
        break;
      }
      acc += sh.warp_w[w];
    }
    sh.sel_warp = sel;
    sh.sel_base = acc;
  }
  __syncthreads();
  if (sh.sel_warp == warp) {
    ull run = sh.sel_base;
    for (int64_t j0 = lo; j0 < hi; j0 += 32) {
      const int64_t j = j0 + lane;
      const ull incl = warp_inclusive_scan(j < hi ? weight(j) : 0ull);
      const unsigned hit = __ballot_sync(0xffffffffu, run + incl > target);
      if (hit) {
        if (lane == __ffs(hit) - 1) sh.found = j;
        break;
      }
      run += __shfl_sync(0xffffffffu, incl, 31);
    }
  }
  __syncthreads();
  return sh.found;
}

// The selector sampler_choose() runs against on the GPU: block-wide passes over the row.
template <class T>
struct BlockSelector {
  const T* z;
  int64_t V;
  float inv_t, mx;
  bool mx_inf;
  SampleShared* sh;

  __device__ float prob(int64_t j) const { return prob_from_scaled(to_float(z[j]) * inv_t, mx, mx_inf); }
  __device__ RadixResult select(bool mass_mode, ull target, uint32_t min_key) {
    return block_radix_select(V, mass_mode, target, min_key, [this](int64_t j) { return prob(j); }, *sh);
  }
  __device__ int64_t count_at_least(uint32_t key, uint64_t* mass) {
    ull n = 0, m = 0;
    for (int64_t j = threadIdx.x; j < V; j += NT) {
      const float pj = prob(j);
      if (prob_key(pj) >= key) {
        ++n;
        m += prob_mass_fx(pj);
      }
    }
    n = block_sum_u64(n, sh->uscratch);
    *mass = block_sum_u64(m, sh->uscratch);
    return static_cast<int64_t>(n);
  }
};

// Greedy: the first maximal logit (NaN never wins unless all are NaN), log-prob under the raw logits.
template <class T>
__device__ void greedy_row(const T* z, int64_t V, SampleShared& sh, int32_t* out_id, float* out_lp) {
  float best = -INFINITY;
  long long bi = -1;
  for (int64_t j = threadIdx.x; j < V; j += NT) {
    const float v = to_float(z[j]);
    if (!isnan(v) && (bi < 0 || v > best)) {
      best = v;
      bi = j;
    }
  }
  const float gbest = block_max(bi < 0 ? -INFINITY : best, sh.fscratch);
  // smallest index holding the maximum: the max over -index of the holders
  const long long neg = block_max_ll(bi >= 0 && best == gbest ? -bi : LLONG_MIN, sh.lscratch);
  const long long arg = neg == LLONG_MIN ? V - 1 : -neg;  // all NaN: the last token, as the CPU
  const float zmax = to_float(z[arg]);
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += NT) s += prob_from_scaled(to_float(z[j]), zmax, false);
  const double total = block_sum_d(s, sh.dscratch);
  if (threadIdx.x == 0) {
    *out_id = static_cast<int32_t>(arg);
    *out_lp = isinf(zmax) ? (zmax > 0 ? 0.0f : -INFINITY) : static_cast<float>(-log(total));
  }
}

template <class T>
__global__ void __launch_bounds__(NT, 1) sample_kernel(const T* logits, int64_t V, int64_t span,
                                                     const DeviceSamplingRow* rows, int32_t* out_ids, float* out_lp) {
  __shared__ SampleShared sh;
  const int64_t b = blockIdx.x;
  const T* z = logits + b * V;
  const DeviceSamplingRow row = rows[b];
  if (!(row.temperature > 0.0f)) return greedy_row(z, V, sh, out_ids + b, out_lp + b);

  const float inv_t = 1.0f / row.temperature;
  float mx_local = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += NT) mx_local = fmaxf(mx_local, to_float(z[j]) * inv_t);  // NaN ignored
  const float mx = block_max(mx_local, sh.fscratch);
  if (!(mx > -INFINITY)) return greedy_row(z, V, sh, out_ids + b, out_lp + b);
  BlockSelector<T> sel{z, V, inv_t, mx, isinf(mx) != 0, &sh};

  float t_local = 0.0f;
  ull tfx_local = 0;
  for (int64_t j = threadIdx.x; j < V; j += NT) {
    const float pj = sel.prob(j);
    t_local += pj;
    tfx_local += prob_mass_fx(pj);
  }
  const double total = block_sum_d(t_local, sh.dscratch);
  const ull total_fx = block_sum_u64(tfx_local, sh.uscratch);

  const Draw d = sampler_choose(sel, row.top_k, row.top_p, row.min_p, row.seed, row.step, V, total_fx);
  int64_t chosen = d.at.first_id;
  if (d.rank > 1) {  // several tokens share the crossing probability: the rank-th of them in id order
    const uint32_t key = d.at.key;
    const long long j = block_find_prefix(V, span, d.rank - 1, [&](int64_t i) { return prob_key(sel.prob(i)) == key ? 1ull : 0ull; }, sh);
    chosen = j < 0 ? d.at.first_id : j;
  }
  if (threadIdx.x == 0) {
    out_ids[b] = static_cast<int32_t>(chosen);
    const double log_p = sel.mx_inf ? 0.0 : static_cast<double>(to_float(z[chosen]) * inv_t) - mx;
    out_lp[b] = static_cast<float>(log_p - log(total));
  }
}

}  // namespace

void sample(const Ctx& c, Tensor logits, const DeviceSamplingRow* rows, int32_t* ids, float* logprobs) {
  check_sample(logits);
  const int64_t B = logits.rows(), V = logits.cols();
  if (B == 0) return;
  const int64_t span = sample_warp_span(V);
  count_kernel_variant(logits.dtype == DType::F32 ? kVarSampleF32 : kVarSampleBF16);
  if (logits.dtype == DType::F32) {
    sample_kernel<float><<<static_cast<unsigned>(B), NT, 0, c.stream>>>(logits.as<const float>(), V, span, rows, ids, logprobs);
  } else {
    sample_kernel<bf16><<<static_cast<unsigned>(B), NT, 0, c.stream>>>(logits.as<const bf16>(), V, span, rows, ids, logprobs);
  }
  HAYATE_CUDA_CHECK_LAUNCH("sample");
}

}  // namespace hayate::gpu
