// Device memory as the CUDA runtime sees it (cudaMemGetInfo), for the benchmarks' peak-memory figures: the
// CUDA backend's own accounting (Backend::peak_bytes) counts its tensors only, not its caching
// allocator's spare blocks, GEMM/attention scratch or the CUDA context. Plain C++ header: no CUDA types.
#pragma once
#include <cstddef>

namespace hayate::bench {

// total - free of the current device in bytes (every allocation on the device, this process's and others'),
// and its total; false (outputs untouched) when the runtime reports an error, e.g. no device.
bool cuda_device_memory_used(size_t* used, size_t* total);

}  // namespace hayate::bench
