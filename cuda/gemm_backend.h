// Which GEMM implementation the CUDA backend's linear() and gemm() run: the project's batch-invariant
// tensor-core kernel, or cuBLAS (when compiled in; the comparison path of tests and benchmarks). One enum
// for both layers: CudaBackend::set_gemm_backend() selects it, gpu::gemm() (kernels.h) takes it. Plain C++.
#pragma once

namespace hayate::gpu {

enum class GemmBackend { Hayate, Cublas };

}  // namespace hayate::gpu
