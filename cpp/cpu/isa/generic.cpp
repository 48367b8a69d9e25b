// The dispatched CPU kernels at the build's baseline instruction set (x86-64-v2 for the prebuilt addon: the
// scalar GEMM micro-kernel, expf rows), the fallback for CPUs without AVX2 + FMA; on other architectures
// the only set. Compiled in a portable build (see kernels.h), empty otherwise.
#if defined(HAYATE_CPU_DISPATCH)
#define HAYATE_ISA_KERNELS kGenericKernels
#define HAYATE_ISA_ID "generic"
#include "cpu/isa/kernels.inc"
#endif
