// The decision logic of the CUDA sampler (cuda/sampling.cu), written once as a template over a "selector"
// (block-wide passes on the GPU, sequential loops on the host), so that a host reference of exactly the
// GPU algorithm is tested on the CPU against the CPU backend's sample_row().
//
// Semantics (the CPU backend, cpp/cpu/sampling.cpp): with p_j = exp(z_j / T - max) (p_max = 1), order the
// vocabulary by (p descending, id ascending). top-k keeps the first k; top-p the shortest prefix whose
// mass reaches top_p times the top-k mass; min-p the tokens with p >= min_p; the kept prefix is the
// shortest of these (at least one token), and the token is drawn by inverse CDF along the order:
// u = rng_uniform(seed, step), the first token whose running mass exceeds u * kept mass.
//
// Every one of those questions is "where in the order does a running count or mass cross a value", and
// the order never needs to be materialised: with key_j = the bit pattern of p_j (monotone for p >= 0) a
// radix select over the keys (4 levels of 8-bit digits, 256-bin histograms of counts and masses) finds
// the key at which the crossing happens, how much lies strictly above it, and how many tokens tie on it;
// ties are ordered by id. So the sampler does a fixed number of passes over the row instead of a sort.
//
// Probability mass is summed in 42-bit fixed point (p * 2^42, truncated) in 64-bit integers: integer sums
// do not depend on summation order, so the GPU's shared-memory atomics are deterministic (same seed and
// logits, same token) and the kernel and this reference agree exactly given the same p_j. Against the
// CPU's fp64 sums the only differences are draws within ~1e-12 of a boundary.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "backend.h"
#include "rng.h"

namespace hayate::gpu {

constexpr int kMassBits = 42;  // V * 2^42 < 2^64 for V < 2^22

HAYATE_HD uint64_t prob_mass_fx(float p) { return static_cast<uint64_t>(p * 4398046511104.0f); }  // p * 2^42
HAYATE_HD uint32_t prob_key(float p) {
  uint32_t u;
  memcpy(&u, &p, 4);
  return u;
}
HAYATE_HD float key_prob(uint32_t k) {
  float f;
  memcpy(&f, &k, 4);
  return f;
}
HAYATE_HD uint64_t key_mass(uint32_t k) { return prob_mass_fx(key_prob(k)); }

// p_j from the scaled logit x = z_j / T and the row max mx, as the CPU computes it: exp(x - mx), zero
// below float's exp range (and for NaN); with +inf logits, mass 1 for each +inf and 0 elsewhere.
HAYATE_HD float prob_from_scaled(float x, float mx, bool mx_inf) {
  if (mx_inf) return x == mx ? 1.0f : 0.0f;
  const float d = x - mx;
  return d >= -87.3f ? expf(d) : 0.0f;
}

struct BinChoice {
  int bin = 0;
  uint64_t above_cnt = 0;  // tokens in bins above the chosen one
  uint64_t above_val = 0;  // their weight (count or mass)
};

// One radix level: scanning bins from 255 down, the first non-empty bin where the running weight reaches
// `rem`; the lowest non-empty bin when none does (asking for more than there is keeps everything).
HAYATE_HD BinChoice select_bin_seq(const uint32_t* cnt, const uint64_t* val, uint64_t rem) {
  BinChoice c;
  uint64_t run = 0, run_cnt = 0;
  int lowest = -1;
  uint64_t lowest_run = 0, lowest_cnt = 0;
  for (int b = 255; b >= 0; --b) {
    if (cnt[b] > 0) {
      if (run + val[b] >= rem) {
        c.bin = b;
        c.above_val = run;
        c.above_cnt = run_cnt;
        return c;
      }
      lowest = b;
      lowest_run = run;
      lowest_cnt = run_cnt;
    }
    run += val[b];
    run_cnt += cnt[b];
  }
  c.bin = lowest < 0 ? 0 : lowest;
  c.above_val = lowest_run;
  c.above_cnt = lowest_cnt;
  return c;
}

// Ties on the crossing key (each worth `unit`) needed so that mass_gt + r * unit >= target: at least one
// (a prefix is never empty), at most all of them.
HAYATE_HD uint64_t ties_needed(uint64_t target, uint64_t mass_gt, uint64_t unit, uint64_t ties) {
  uint64_t r;
  if (target <= mass_gt) {
    r = 1;
  } else if (unit == 0) {
    r = ties;
  } else {
    r = (target - mass_gt + unit - 1) / unit;
  }
  if (r < 1) r = 1;
  if (r > ties) r = ties;
  return r;
}

// mass >= top_p * base  <=>  mass_fx >= ceil(top_p * base_fx)
HAYATE_HD uint64_t top_p_target(float top_p, uint64_t base) {
  if (top_p <= 0.0f) return 0;
  return static_cast<uint64_t>(ceil(static_cast<double>(top_p) * static_cast<double>(base)));
}
// the first token whose running mass exceeds u * mass: running mass >= floor(u * mass_fx) + 1
HAYATE_HD uint64_t draw_target(float u, uint64_t mass) {
  return static_cast<uint64_t>(floor(static_cast<double>(u) * static_cast<double>(mass))) + 1;
}

// Tail cut for a mass select: tokens with key < skip_key(slack, V) hold at most `slack` mass in total (each
// has p below slack / V), so a select whose target leaves `slack` of the candidates' mass unclaimed never
// needs them: ignoring them changes nothing in the result (see sampler_choose) and spares the histogram
// atomics of the long, light tail of a 150k vocabulary (where most tokens land in a few exponent bins).
HAYATE_HD uint32_t skip_key(uint64_t slack, int64_t V) {
  if (slack == 0 || V <= 0) return 0;
  const double p = static_cast<double>(slack) / static_cast<double>(V) / 4398046511104.0 * (1.0 - 1e-6);
  return prob_key(static_cast<float>(p));  // the margin covers the rounding of the double -> float cast
}

struct RadixResult {
  uint32_t key = 0;      // the crossing key
  uint64_t cnt_gt = 0;   // tokens with a larger key (strictly before it in the order)
  uint64_t mass_gt = 0;  // their fixed-point mass
  uint64_t ties = 0;     // tokens with this key
  int64_t first_id = 0;  // the smallest id among them (the first of the ties in the order)
};

// The token drawn: the rank-th (1-based) of the tokens with key `key`, in id order.
struct Draw {
  RadixResult at;
  uint64_t rank = 1;
};

// The sampler's decisions for one row with temperature > 0, given a selector S providing
//   RadixResult select(bool mass_mode, uint64_t target, uint32_t min_key):
//       mass_mode: the largest key whose mass at or above it reaches `target`;
//       else: the target-th largest key (counting tokens);
//       tokens with key < min_key may be ignored (the caller guarantees the answer lies above them);
//   int64_t count_at_least(uint32_t key, uint64_t* mass): tokens (and their mass) with key >= key.
// Uniform across a CUDA block: every thread computes the same values.
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <class S>
HAYATE_HD Draw sampler_choose(S& s, int32_t top_k, float top_p, float min_p, uint64_t seed, uint64_t step, int64_t V,
                              uint64_t total_mass) {
  const int64_t n_k = top_k > 0 && top_k < V ? top_k : V;
  int64_t kept = n_k;
  uint64_t kept_mass = total_mass;
  if (n_k < V) {  // the first k tokens
    const RadixResult rk = s.select(false, static_cast<uint64_t>(n_k), 0);
    kept_mass = rk.mass_gt + (static_cast<uint64_t>(n_k) - rk.cnt_gt) * key_mass(rk.key);
  }
  if (top_p < 1.0f) {  // the shortest prefix reaching top_p of the top-k mass
    const uint64_t goal = top_p_target(top_p, kept_mass);
    // all tokens hold total_mass >= kept_mass >= goal; the tail below skip_key holds < total - goal
    const RadixResult rp = s.select(true, goal, skip_key(total_mass > goal ? total_mass - goal : 0, V));
    const uint64_t r = ties_needed(goal, rp.mass_gt, key_mass(rp.key), rp.ties);
    const int64_t len = static_cast<int64_t>(rp.cnt_gt + r);
    if (len < kept) {
      kept = len;
      kept_mass = rp.mass_gt + r * key_mass(rp.key);
    }
  }
  if (min_p > 0.0f) {  // p >= min_p * p_max, p_max = 1
    uint64_t mass_m = 0;
    const int64_t n_m = s.count_at_least(prob_key(min_p), &mass_m);
    if (n_m < kept) {
      kept = n_m;
      kept_mass = mass_m;
    }
  }
  if (kept < 1) kept_mass = prob_mass_fx(1.0f);  // at least the most likely token (p = 1)
  Draw d;
  const uint64_t target = draw_target(rng_uniform(seed, step), kept_mass);
  // the kept prefix holds kept_mass >= target; ignoring tail tokens (< kept_mass - target in total) still
  // leaves at least `target` at or above the crossing, so the crossing and its statistics are unchanged
  d.at = s.select(true, target, skip_key(kept_mass - target, V));
  d.rank = ties_needed(target, d.at.mass_gt, key_mass(d.at.key), d.at.ties);
  return d;
}

// ---- sequential host reference of the GPU algorithm ------------------------------------------------------

namespace ref {

struct Selector {
  const std::vector<float>& p;

  RadixResult select(bool mass_mode, uint64_t target, uint32_t min_key) const {
    RadixResult r;
    uint32_t prefix = 0, mask = 0;
    uint64_t rem = target;
    for (int shift = 24; shift >= 0; shift -= 8) {
      uint32_t cnt[256] = {};
      uint64_t mass[256] = {}, val[256];
      for (float pj : p) {
        const uint32_t k = prob_key(pj);
        if ((k & mask) != prefix || k < min_key) continue;
        const int bin = (k >> shift) & 255;
        ++cnt[bin];
        mass[bin] += prob_mass_fx(pj);
      }
      for (int b = 0; b < 256; ++b) val[b] = mass_mode ? mass[b] : cnt[b];
      const BinChoice c = select_bin_seq(cnt, val, rem);
      uint64_t above_mass = 0;
      for (int b = 255; b > c.bin; --b) above_mass += mass[b];
      r.cnt_gt += c.above_cnt;
      r.mass_gt += above_mass;
      rem = rem > c.above_val ? rem - c.above_val : 0;
      prefix |= static_cast<uint32_t>(c.bin) << shift;
      mask |= 0xffu << shift;
      r.ties = cnt[c.bin];
    }
    r.key = prefix;
    for (size_t j = 0; j < p.size(); ++j)
      if (prob_key(p[j]) == r.key) {
        r.first_id = static_cast<int64_t>(j);
        break;
      }
    return r;
  }

  int64_t count_at_least(uint32_t key, uint64_t* mass) const {
    int64_t n = 0;
    uint64_t m = 0;
    for (float pj : p)
      if (prob_key(pj) >= key) {
        ++n;
        m += prob_mass_fx(pj);
      }
    *mass = m;
    return n;
  }
};

// The rank-th (1-based) token with this key, in id order.
inline int64_t nth_with_key(const std::vector<float>& p, uint32_t key, uint64_t rank) {
  uint64_t seen = 0;
  for (size_t j = 0; j < p.size(); ++j)
    if (prob_key(p[j]) == key && ++seen == rank) return static_cast<int64_t>(j);
  return 0;
}

}  // namespace ref

// Greedy (temperature <= 0): the first maximal logit (NaN never wins unless every logit is NaN), and its
// log-prob under log_softmax of the raw logits.
inline void reference_greedy(const float* z, int64_t V, int32_t* out_id, float* out_lp) {
  int64_t best = 0;
  while (best + 1 < V && std::isnan(z[best])) ++best;
  for (int64_t j = best + 1; j < V; ++j)
    if (z[j] > z[best]) best = j;
  *out_id = static_cast<int32_t>(best);
  if (std::isinf(z[best])) {
    *out_lp = z[best] > 0 ? 0.0f : -std::numeric_limits<float>::infinity();
    return;
  }
  double s = 0;
  for (int64_t j = 0; j < V; ++j) s += prob_from_scaled(z[j], z[best], false);
  *out_lp = static_cast<float>(-std::log(s));
}

// The GPU sampler's algorithm given p (computed by the caller, p_max = 1), their fp64 sum and the max
// scaled logit; the host twin of sample_kernel after its first two passes.
inline void reference_sample_probs(const float* z, const std::vector<float>& p, double total, float mx,
                                   const SamplingRow& row, int32_t* out_id, float* out_lp) {
  const int64_t V = static_cast<int64_t>(p.size());
  uint64_t total_fx = 0;
  for (float pj : p) total_fx += prob_mass_fx(pj);
  ref::Selector s{p};
  const Draw d = sampler_choose(s, row.top_k, row.top_p, row.min_p, row.seed, row.step, V, total_fx);
  const int64_t chosen = d.rank == 1 ? d.at.first_id : ref::nth_with_key(p, d.at.key, d.rank);
  *out_id = static_cast<int32_t>(chosen);
  const float inv_t = 1.0f / row.temperature;
  const double log_p = std::isinf(mx) ? 0.0 : static_cast<double>(z[chosen] * inv_t) - mx;
  *out_lp = static_cast<float>(log_p - std::log(total));
}

// The whole row on the host, with p from expf (the kernel's arithmetic up to the last bit of expf).
inline void reference_sample_row(const float* z, int64_t V, const SamplingRow& row, int32_t* out_id, float* out_lp) {
  if (!(row.temperature > 0.0f)) return reference_greedy(z, V, out_id, out_lp);
  const float inv_t = 1.0f / row.temperature;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < V; ++j) mx = std::max(mx, z[j] * inv_t);  // NaN ignored
  if (!(mx > -std::numeric_limits<float>::infinity())) return reference_greedy(z, V, out_id, out_lp);
  std::vector<float> p(static_cast<size_t>(V));
  double total = 0;
  for (int64_t j = 0; j < V; ++j) total += p[j] = prob_from_scaled(z[j] * inv_t, mx, std::isinf(mx));
  reference_sample_probs(z, p, total, mx, row, out_id, out_lp);
}

}  // namespace hayate::gpu
