// The machine's limits, measured: f32 FMA and bf16 dot-product throughput per core and on all cores, and
// memory read bandwidth, so every other figure can be given as a fraction of what the hardware can do.
#pragma once
#include <string>

std::string run_peak_bench_json(int threads, int buffer_mb, bool memory_only = false);
