// The dispatched CPU kernels for AVX2 + FMA (x86-64-v3); compiled with -march=x86-64-v3 in a portable
// build (see kernels.h), empty otherwise.
#if defined(HAYATE_CPU_DISPATCH) && (defined(__x86_64__) || defined(_M_X64))
#if !defined(__AVX2__) || !defined(__FMA__) || defined(__AVX512F__)
#error "cpp/cpu/isa/avx2.cpp must be compiled with -march=x86-64-v3 (CMakeLists.txt, binding.gyp)"
#endif
#define HAYATE_ISA_KERNELS kAvx2Kernels
#define HAYATE_ISA_ID "avx2"
#include "cpu/isa/kernels.inc"
#endif
