// The kernel benchmark's `--shapes` syntax for its attention cases (bench/native/attention_bench_shape.h;
// bench/gpu/torch_baselines.py parses the same syntax): what parses, what is rejected, and the defaults.
#include <string>

#include "../../bench/native/attention_bench_shape.h"
#include "check.h"

using namespace hayate;
using namespace hayate::bench;

TEST(kernel_bench_attention_shapes) {
  AttentionBenchShape a = parse_attention_bench_shape("8x512");
  CHECK(a.seqs == 8 && a.seqlen == 512 && a.hq == 16 && a.hkv == 8 && a.hd == 128);
  a = parse_attention_bench_shape("4x1024:32/8/64");
  CHECK(a.seqs == 4 && a.seqlen == 1024 && a.hq == 32 && a.hkv == 8 && a.hd == 64);
  for (const char* b : {"", "8", "8x", "x512", "0x512", "8x512:16/8", "8x512:6/4/64", "8x512:16/8/64/1", "ax5", "8x-1"})
    CHECK_THROWS_CODE(parse_attention_bench_shape(b), ErrorCode::kInvalidArgument);
  for (const std::string& s : default_attention_bench_shapes()) parse_attention_bench_shape(s);
}
