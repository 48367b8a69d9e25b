#include "variant_stats.h"

#include <atomic>

namespace hayate::gpu {

namespace {
std::atomic<int64_t> g_counts[kKernelVariantCount];
std::atomic<int> g_plan_sms{0};
}  // namespace

void count_kernel_variant(int id) {
  if (id >= 0 && id < kKernelVariantCount) g_counts[id].fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::pair<std::string, int64_t>> kernel_variant_counts() {
  std::vector<std::pair<std::string, int64_t>> out;
  for (int i = 0; i < kKernelVariantCount; ++i) {
    const int64_t n = g_counts[i].load(std::memory_order_relaxed);
    if (n > 0) out.emplace_back(kernel_variant_name(i), n);
  }
  return out;
}

void reset_kernel_variant_counts() {
  for (auto& c : g_counts) c.store(0, std::memory_order_relaxed);
}

void set_gemm_plan_sms_override(int num_sms) { g_plan_sms.store(num_sms > 0 ? num_sms : 0); }
int gemm_plan_sms(int device_sms) {
  const int o = g_plan_sms.load(std::memory_order_relaxed);
  return o > 0 ? o : device_sms;
}

}  // namespace hayate::gpu
