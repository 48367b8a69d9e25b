// See cuda_device_memory.h.
#include "cuda_device_memory.h"

#include <cuda_runtime.h>

namespace hayate::bench {

bool cuda_device_memory_used(size_t* used, size_t* total) {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky: clear it so later calls do not see it
    return false;
  }
  *used = total_b - free_b;
  *total = total_b;
  return true;
}

}  // namespace hayate::bench
