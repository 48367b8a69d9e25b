// The dispatched CPU kernels for AVX-512 (x86-64-v4: AVX512F/BW/CD/DQ/VL on top of AVX2 + FMA); compiled
// with -march=x86-64-v4 in a portable build (see kernels.h), empty otherwise.
#if defined(HAYATE_CPU_DISPATCH) && (defined(__x86_64__) || defined(_M_X64))
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) || !defined(__AVX512VL__)
#error "cpp/cpu/isa/avx512.cpp must be compiled with -march=x86-64-v4 (CMakeLists.txt, binding.gyp)"
#endif
#define HAYATE_ISA_KERNELS kAvx512Kernels
#define HAYATE_ISA_ID "avx512"
#include "cpu/isa/kernels.inc"
#endif
