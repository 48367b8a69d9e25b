// Token sampling (CpuBackend::sample), the reference for every other backend's sampler. Per row:
//   temperature <= 0: greedy, the first maximal logit; its log-prob under log_softmax(raw logits).
//   otherwise p = softmax(logits / T), and the reported log-prob is log p[id] before any filtering. Each
//   filter keeps a prefix of the tokens in descending-probability order (ties: lower id first):
//     top_k: the k most likely;
//     top_p: of what top_k kept (renormalised), the shortest prefix whose mass reaches top_p (>= 1 token);
//     min_p: the tokens with p >= min_p * p_max.
//   The kept prefix is renormalised and the token drawn by inverse CDF over it, in that order, with
//   u = rng_uniform(seed, step): a pure function of the logits, the row's parameters, seed and step.
// The order is never materialised for the whole vocabulary: a histogram of p over buckets of its float
// bits (monotone in p) answers "where does the running mass cross x", and only the one bucket that
// holds the answer is sorted.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/vec_math.h"
#include "rng.h"

namespace hayate {

namespace {

// Descending-order prefix queries over probabilities p[0, V) in [0, 1]. For p >= 0 the float bit
// pattern is monotone in p, so its top bits (kShift) give buckets in probability order: 7 mantissa bits
// per bucket, so one bucket spans less than 1% relative change of p.
class ProbOrder {
 public:
  void build(const float* p, int64_t V) {
    p_ = p;
    V_ = V;
    count_.assign(kBuckets, 0);
    mass_.assign(kBuckets, 0.0);
    for (int64_t j = 0; j < V; ++j) {
      const uint32_t b = key(p[j]);
      ++count_[b];
      mass_[b] += p[j];
    }
    keys_.clear();
    for (int b = kBuckets - 1; b >= 0; --b)
      if (count_[b]) keys_.push_back(b);
    for (auto& m : members_) m.first = -1;  // invalidate the cache, keep its memory
  }

  // Mass of the first n tokens of the order.
  double prefix_mass(int64_t n) {
    double m = 0;
    int64_t before = 0;
    for (int b : keys_) {
      if (before + count_[b] <= n) {
        m += mass_[b];
        before += count_[b];
        if (before == n) break;
        continue;
      }
      for (int32_t j : members(b)) {
        if (before == n) break;
        m += p_[j];
        ++before;
      }
      break;
    }
    return m;
  }

  // Length of the shortest prefix whose mass reaches goal (cap when none of the first cap tokens does).
  int64_t prefix_reaching(double goal, int64_t cap) {
    double m = 0;
    int64_t len = 0;
    for (int b : keys_) {
      if (len >= cap) break;
      if (len + count_[b] <= cap && m + mass_[b] < goal) {  // the whole bucket stays below the goal
        m += mass_[b];
        len += count_[b];
        continue;
      }
      for (int32_t j : members(b)) {  // the goal or the cap falls inside this bucket
        if (len == cap) return cap;
        m += p_[j];
        ++len;
        if (m >= goal) return len;
      }
    }
    return std::min(len, cap);
  }

  // The token at which the running mass of the order first exceeds target, among the first cap tokens;
  // the last possible one when rounding leaves target unreached. Never a token with p = 0.
  int32_t token_exceeding(double target, int64_t cap) {
    double m = 0;
    int64_t len = 0;
    int32_t last = -1;     // last token walked one by one with p > 0
    int last_bucket = -1;  // last bucket skipped whole whose tokens all have p > 0
    for (int b : keys_) {
      if (len >= cap) break;
      if (len + count_[b] <= cap && m + mass_[b] <= target) {
        m += mass_[b];
        len += count_[b];
        if (b > 0) last_bucket = b;
        continue;
      }
      for (int32_t j : members(b)) {
        if (len == cap || p_[j] <= 0.0f) break;
        last = j;
        m += p_[j];
        ++len;
        if (m > target) return j;
      }
    }
    if (last >= 0) return last;
    return last_bucket >= 0 ? members(last_bucket).back() : first();
  }

  int32_t first() { return members(keys_.front()).front(); }

 private:
  static constexpr int kShift = 16;
  static constexpr int kBuckets = (0x3F800000 >> kShift) + 1;  // keys of [0, 1.0f]
  static uint32_t key(float p) {
    uint32_t bits;
    std::memcpy(&bits, &p, sizeof bits);
    return bits >> kShift;
  }

  // The tokens of bucket b in order (p descending, then id): collected and sorted once per row. A
  // reference stays valid until the next call.
  const std::vector<int32_t>& members(int b) {
    std::pair<int, std::vector<int32_t>>* slot = nullptr;
    for (auto& m : members_) {
      if (m.first == b) return m.second;
      if (m.first == -1 && !slot) slot = &m;
    }
    if (!slot) slot = &members_.emplace_back(-1, std::vector<int32_t>{});
    slot->first = b;
    std::vector<int32_t>& v = slot->second;
    v.clear();
    for (int64_t j = 0; j < V_; ++j)
      if (key(p_[j]) == static_cast<uint32_t>(b)) v.push_back(static_cast<int32_t>(j));
    const float* p = p_;
    std::stable_sort(v.begin(), v.end(), [p](int32_t a, int32_t c) { return p[a] > p[c]; });  // ties: ids ascending
    return v;
  }

  const float* p_ = nullptr;
  int64_t V_ = 0;
  std::vector<int32_t> count_;
  std::vector<double> mass_;
  std::vector<int> keys_;  // non-empty buckets, most likely first
  std::vector<std::pair<int, std::vector<int32_t>>> members_;
};

// Per-thread scratch reused across rows (vocabulary-sized).
struct SampleScratch {
  std::vector<float> p;
  ProbOrder order;
};

void sample_greedy(const float* logits, int64_t V, int32_t* out_id, float* out_logprob) {
  int64_t best = 0;
  while (best + 1 < V && std::isnan(logits[best])) ++best;  // NaN never wins unless all are NaN
  for (int64_t j = best + 1; j < V; ++j)
    if (logits[j] > logits[best]) best = j;
  *out_id = static_cast<int32_t>(best);
  if (std::isinf(logits[best])) {  // -inf everywhere, or +inf: no finite normaliser to subtract
    *out_logprob = logits[best] > 0 ? 0.0f : -std::numeric_limits<float>::infinity();
    return;
  }
  *out_logprob = static_cast<float>(-std::log(cpu::exp_sum(logits, V, 1.0f, logits[best])));
}

void sample_one(const float* logits, int64_t V, const SamplingRow& row, SampleScratch& s, int32_t* out_id,
                float* out_logprob) {
  if (!(row.temperature > 0.0f)) return sample_greedy(logits, V, out_id, out_logprob);
  const float inv_t = 1.0f / row.temperature;
  const float mx = cpu::max_scaled(logits, V, inv_t);
  if (!(mx > -std::numeric_limits<float>::infinity())) return sample_greedy(logits, V, out_id, out_logprob);

  // p_j = exp(z_j - max z), z = logits / T: unnormalised, the most likely token has p = 1.
  s.p.resize(static_cast<size_t>(V));
  float* p = s.p.data();
  double total;
  if (std::isinf(mx)) {  // +inf logits share all the mass
    total = 0;
    for (int64_t j = 0; j < V; ++j) total += (p[j] = logits[j] * inv_t == mx ? 1.0f : 0.0f);
  } else {
    total = cpu::exp_sum(logits, V, inv_t, mx, p);
  }
  ProbOrder& order = s.order;
  order.build(p, V);

  // Each filter keeps a prefix of the order; the kept prefix is the shortest of them.
  const int64_t n_k = row.top_k > 0 && row.top_k < V ? row.top_k : V;
  int64_t kept = n_k;
  if (row.top_p < 1.0f) {  // of the top-k mass
    const double mass_k = n_k == V ? total : order.prefix_mass(n_k);
    kept = order.prefix_reaching(static_cast<double>(row.top_p) * mass_k, n_k);
  }
  if (row.min_p > 0.0f) {  // p >= min_p * p_max with p_max = 1
    int64_t n_m = 0;
    for (int64_t j = 0; j < V; ++j) n_m += p[j] >= row.min_p;
    kept = std::min(kept, n_m);
  }
  kept = std::max<int64_t>(kept, 1);
  const double kept_mass = kept == V ? total : order.prefix_mass(kept);

  // Inverse CDF over the kept prefix, in descending-probability order.
  const double target = static_cast<double>(rng_uniform(row.seed, row.step)) * kept_mass;
  const int32_t chosen = order.token_exceeding(target, kept);
  *out_id = chosen;
  // log p[chosen] - log sum p, with log p = z - max z exactly (no underflow) unless max z = +inf
  const double log_p = std::isinf(mx) ? 0.0 : static_cast<double>(logits[chosen] * inv_t) - mx;
  *out_logprob = static_cast<float>(log_p - std::log(total));
}

}  // namespace

void sample_row(const float* logits, int64_t V, const SamplingRow& row, int32_t* id, float* logprob) {
  HAYATE_CHECK(V > 0, ErrorCode::kInvalidArgument, "sample: empty vocabulary");
  SampleScratch s;
  sample_one(logits, V, row, s, id, logprob);
}

void CpuBackend::sample(Tensor logits, const SamplingRow* rows, int32_t* out_ids, float* out_logprobs) {
  checks::check_sample(dtypes_, logits);
  const int64_t B = logits.rows(), V = logits.cols();
  checks::need("sample", B == 0 || (rows && out_ids && out_logprobs), "rows, out_ids and out_logprobs must not be null");
  pool_->parallel_for(B, [&](int64_t b, int64_t e) {
    SampleScratch s;
    std::vector<float> row_f32;
    for (int64_t i = b; i < e; ++i) {
      const float* z;
      if (logits.dtype == DType::F64) {  // f64 mode: sampling works on f32 logits
        row_f32.resize(static_cast<size_t>(V));
        for (int64_t j = 0; j < V; ++j) row_f32[j] = static_cast<float>(logits.as<double>()[i * V + j]);
        z = row_f32.data();
      } else {
        z = logits.as<float>() + i * V;
      }
      sample_one(z, V, rows[i], s, out_ids + i, out_logprobs + i);
    }
  }, 1);
}

}  // namespace hayate
