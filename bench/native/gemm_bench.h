// GEMM benchmark: the engine's linear() (through the CPU backend, with each GEMM implementation) vs the
// BLAS called directly, on the projection shapes of the qwen3-0.6b model.
#pragma once
#include <string>

std::string run_gemm_bench_json(int threads, int repeats);
