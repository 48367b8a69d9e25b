// The `--shapes` syntax of the kernel benchmark's attention_forward / attention_backward cases: "SxL"
// (S sequences of L tokens, qwen3-0.6b heads: 16 q / 8 kv of head_dim 128) or "SxL:hq/hkv/hd".
// bench/gpu/torch_baselines.py parses the same syntax and defaults to the same CUDA shapes.
#pragma once
#include <string>
#include <vector>

#include "errors.h"

namespace hayate::bench {

struct AttentionBenchShape {
  int seqs = 0, seqlen = 0, hq = 16, hkv = 8, hd = 128;
};

// Throws kInvalidArgument for a malformed shape (the message shows the syntax).
inline AttentionBenchShape parse_attention_bench_shape(const std::string& s) {
  AttentionBenchShape a;
  auto bad = [&]() {
    fail(ErrorCode::kInvalidArgument,
         "bad attention shape '" + s + "': expected SxL or SxL:hq/hkv/hd (e.g. 8x512 or 4x1024:32/8/64)");
  };
  auto parse_int = [&](const std::string& t) {
    if (t.empty() || t.size() > 7 || t.find_first_not_of("0123456789") != std::string::npos) bad();
    const int v = std::stoi(t);
    if (v <= 0) bad();
    return v;
  };
  const size_t colon = s.find(':');
  const std::string dims = s.substr(0, colon);
  const size_t x = dims.find('x');
  if (x == std::string::npos) bad();
  a.seqs = parse_int(dims.substr(0, x));
  a.seqlen = parse_int(dims.substr(x + 1));
  if (colon != std::string::npos) {
    const std::string heads = s.substr(colon + 1);
    const size_t c1 = heads.find('/'), c2 = c1 == std::string::npos ? c1 : heads.find('/', c1 + 1);
    if (c2 == std::string::npos) bad();
    a.hq = parse_int(heads.substr(0, c1));
    a.hkv = parse_int(heads.substr(c1 + 1, c2 - c1 - 1));
    a.hd = parse_int(heads.substr(c2 + 1));
    if (a.hq % a.hkv != 0) bad();
  }
  return a;
}

// The shapes when `--shapes` is not given. CUDA: training-sized batches up to L = 2048, and head_dim 64;
// CPU: one small batch, so that the scalar baseline finishes in seconds.
inline std::vector<std::string> default_attention_bench_shapes() { return {"8x512", "2x2048", "16x256:16/8/64"}; }
inline std::vector<std::string> default_cpu_attention_bench_shapes() { return {"2x256"}; }

}  // namespace hayate::bench
