// make_backend and build facts: the one place that knows which backends this build has.
#include "backend.h"
#include "cpu/cpu_backend.h"
#include "cpu/gemm.h"

namespace hayate {

#ifdef HAYATE_WITH_CUDA
// Defined by the CUDA backend (cuda/cuda_backend.h), which is compiled only when nvcc is found.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);
int cuda_backend_device_count();
#endif

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  HAYATE_CHECK(options.threads >= 0, ErrorCode::kInvalidArgument, "threads must be >= 0");
  if (options.kind == "cpu") return std::make_unique<CpuBackend>(options.threads, options.gemm, options.precision, options.weights);
  if (options.kind == "cuda") {
    HAYATE_CHECK(options.precision == "f32", ErrorCode::kInvalidArgument,
                 "precision '" + options.precision + "' is only available on the cpu backend (cuda runs f32/bf16)");
#ifdef HAYATE_WITH_CUDA
    return make_cuda_backend(options);
#else
    fail(ErrorCode::kBackend,
         "this build of hayate has no CUDA backend (nvcc was not found at build time); use backend 'cpu'");
#endif
  }
  fail(ErrorCode::kInvalidArgument, "unknown backend '" + options.kind + "' (cpu, cuda)");
}

bool cuda_compiled() {
#ifdef HAYATE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef HAYATE_WITH_CUDA
  return cuda_backend_device_count();
#else
  return 0;
#endif
}

bool blas_compiled() { return !cpu::blas_library_name().empty(); }
std::string blas_name() { return cpu::blas_library_name(); }

}  // namespace hayate
