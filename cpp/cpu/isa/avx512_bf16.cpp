// The dispatched CPU kernels for AVX-512 with AVX512_BF16 (x86-64-v4 + vdpbf16ps: Cooper Lake, Sapphire
// Rapids, Zen 4 and later): the AVX-512 set plus bf16 dot-product GEMMs for bf16 weights. Compiled with
// -march=x86-64-v4 -mavx512bf16 in a portable build (see kernels.h), empty otherwise.
#if defined(HAYATE_CPU_DISPATCH) && (defined(__x86_64__) || defined(_M_X64))
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || !defined(__AVX512BF16__)
#error "cpp/cpu/isa/avx512_bf16.cpp must be compiled with -march=x86-64-v4 -mavx512bf16 (CMakeLists.txt, binding.gyp)"
#endif
#define HAYATE_ISA_KERNELS kAvx512Bf16Kernels
#define HAYATE_ISA_ID "avx512bf16"
#include "cpu/isa/kernels.inc"
#endif
