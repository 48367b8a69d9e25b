// Error checking for CUDA runtime calls: every failure becomes a hayate::Error (never an abort), so the
// addon turns it into a typed JS error. Allocation failures are kOutOfMemory, everything else kBackend.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "errors.h"

namespace hayate::gpu {

// Errors after which the CUDA context is unusable (the process must restart to use the GPU again).
inline bool cuda_error_is_sticky(cudaError_t e) {
  return e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure || e == cudaErrorIllegalInstruction ||
         e == cudaErrorMisalignedAddress || e == cudaErrorInvalidAddressSpace || e == cudaErrorInvalidPc ||
         e == cudaErrorHardwareStackError || e == cudaErrorAssert || e == cudaErrorECCUncorrectable;
}

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* what, const char* file, int line) {
  (void)cudaGetLastError();  // clear the (non-sticky) error so later calls are not poisoned by it
  const ErrorCode code = e == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kBackend;
  std::string msg = std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ") in " + what +
                    " at " + file + ":" + std::to_string(line);
  if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction)
    msg += "; this build has no kernels for this GPU (rebuild with HAYATE_CUDA_ARCHS including its architecture)";
  else if (e == cudaErrorMemoryAllocation)
    msg += "; the GPU is out of memory: use a smaller batch, context or model";
  else if (cuda_error_is_sticky(e))
    msg += "; the CUDA context is no longer usable, restart the process";
  throw Error(code, msg);
}

}  // namespace hayate::gpu

#define HAYATE_CUDA_CHECK(expr)                                                                \
  do {                                                                                         \
    const cudaError_t hayate_cuda_err_ = (expr);                                               \
    if (hayate_cuda_err_ != cudaSuccess)                                                       \
      ::hayate::gpu::throw_cuda_error(hayate_cuda_err_, #expr, __FILE__, __LINE__);            \
  } while (0)

// After a <<<...>>> launch: configuration errors (too much shared memory, bad grid) surface here.
#define HAYATE_CUDA_CHECK_LAUNCH(name)                                                         \
  do {                                                                                         \
    const cudaError_t hayate_cuda_err_ = cudaGetLastError();                                   \
    if (hayate_cuda_err_ != cudaSuccess)                                                       \
      ::hayate::gpu::throw_cuda_error(hayate_cuda_err_, "launch of " name, __FILE__, __LINE__); \
  } while (0)
