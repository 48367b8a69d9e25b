// CUDA backend checks.
//  - Host-side logic of cuda/ (launch plans, GEMM tiling and split decisions, attention partitioning,
//    the fused varlen attention's tile decomposition and tensor-core fragment layouts (replayed against
//    the PTX ldmatrix / mma semantics), allocator size classes, argument checks, benchmark shapes, and the
//    sampler's threshold algorithm against the CPU backend's sample_row) runs everywhere, GPU or not.
//  - Every op on the CUDA backend vs the CPU backend on the same random inputs, over several shapes with
//    odd sizes, plus generation on a tiny model and one GRPO step (LoRA gradients), runs only when a CUDA
//    device is present; otherwise one test prints a visible SKIPPED line.
//    Inputs are rounded to bf16 first (the CUDA backend stores bf16), so differences measure the kernels'
//    arithmetic, not input quantisation. Tolerances are stated per op and dtype next to each check:
//    max |cuda - cpu| / max |cpu| unless said otherwise.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "../../cuda/op_checks.h"
#include "../../cuda/plan.h"
#include "../../cuda/sampling_select.h"
#include "backend.h"
#include "check.h"
#include "cpu/cpu_backend.h"
#include "cpu/vec_math.h"
#include "generator.h"
#include "lora.h"
#include "loss.h"
#include "model.h"
#include "rng.h"
#include "trainer.h"
#ifdef HAYATE_WITH_CUDA
#include "cuda_backend.h"
#endif

using namespace hayate;
namespace g = hayate::gpu;

namespace {

float bf16r(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// Normal values rounded to bf16 (exactly representable in every dtype the backends use).
std::vector<float> rnd(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = bf16r(d(rng) * scale);
  return v;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(double(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return diff / scale;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

bool cuda_present() { return cuda_device_count() > 0; }

// ---- helpers for the device tests (only called with a device) ----------------------------------------

Buffer put(Backend& be, DType dt, std::vector<int64_t> shape, const std::vector<float>& host) {
  Buffer b = shape.size() == 1 ? Buffer(be, dt, {shape[0]})
             : shape.size() == 2 ? Buffer(be, dt, {shape[0], shape[1]})
                                 : Buffer(be, dt, {shape[0], shape[1], shape[2]});
  if (!host.empty()) be.upload(b, host.data(), DType::F32);
  return b;
}
Buffer put_i32(Backend& be, const std::vector<int32_t>& v) {
  Buffer b(be, DType::I32, {static_cast<int64_t>(std::max<size_t>(v.size(), 1))});
  if (!v.empty()) be.copy_from_host(b.t().data, v.data(), v.size() * 4);
  return b;
}
Buffer put_i32_2d(Backend& be, const std::vector<int32_t>& v, int64_t r, int64_t c) {
  Buffer b(be, DType::I32, {r, c});
  be.copy_from_host(b.t().data, v.data(), v.size() * 4);
  return b;
}
std::vector<float> get(Backend& be, Tensor t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  be.download_f32(v.data(), t);
  return v;
}
std::vector<uint8_t> raw(Backend& be, Tensor t) {
  std::vector<uint8_t> v(t.nbytes());
  be.copy_to_host(v.data(), t.data, v.size());
  return v;
}

struct Backends {
  std::unique_ptr<Backend> cpu, gpu;
};
Backends make_pair_of_backends() {
  BackendOptions c;
  c.kind = "cpu";
  c.threads = 2;
  c.gemm = "builtin";
  BackendOptions g;
  g.kind = "cuda";
  return {make_backend(c), make_backend(g)};
}

const char* dn(DType t) { return dtype_name(t); }

}  // namespace

// =====================================================================================================
// Runs everywhere: the visible skip, and host-side logic.
// =====================================================================================================

TEST(cuda_backend_availability) {
  if (cuda_present()) {
    std::printf("CUDA device present: running the CUDA op checks\n");
    return;
  }
  std::printf("SKIPPED: CUDA op checks (no CUDA device)\n");
  BackendOptions o;
  o.kind = "cuda";
  CHECK_THROWS_CODE(make_backend(o), ErrorCode::kBackend);
#ifdef HAYATE_WITH_CUDA
  CHECK(cuda_backend_device_count() == 0);
  CHECK_THROWS_CODE(make_cuda_backend(o), ErrorCode::kBackend);
#endif
}

TEST(cuda_plan_elementwise_and_vectors) {
  for (int64_t units : std::vector<int64_t>{0, 1, 255, 256, 257, 1 << 20, int64_t(1) << 33}) {
    const g::Launch1D l = g::plan_elementwise(units, 132);
    CHECK(l.blocks >= 1 && l.blocks <= 132 * 8 && l.threads == 256);
    // grid-stride: every unit is covered by some thread
    CHECK(l.blocks * l.threads >= std::min<int64_t>(std::max<int64_t>(units, 1), 132 * 8 * 256));
  }
  alignas(16) static char buf[64];
  CHECK(g::vector_width(2, {buf, buf + 16}) == 8);
  CHECK(g::vector_width(4, {buf, nullptr}) == 4);
  CHECK(g::vector_width(2, {buf, buf + 2}) == 1);
  const g::RowPlan r = g::plan_rows_warp_each(9);
  CHECK(r.blocks * r.rows_per_block >= 9 && r.threads == 32 * r.rows_per_block);
}

TEST(cuda_plan_gemm_tiles_and_split) {
  const int sms = 132;
  for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {3, 17, 5}, {8, 1024, 1024}, {64, 1024, 3072},
                                                             {64, 151936, 1024}, {512, 3072, 1024}, {2048, 1024, 3072},
                                                             {300, 200, 520}, {1, 2048, 0}, {37, 65, 127}}) {
    const g::GemmPlan p = g::plan_gemm(M, N, K, sms, true);
    CHECK(p.tiles_m * p.shape.bm >= M && (p.tiles_m - 1) * p.shape.bm < std::max<int64_t>(M, 1));
    CHECK(p.tiles_n * p.shape.bn >= N && (p.tiles_n - 1) * p.shape.bn < std::max<int64_t>(N, 1));
    // the K chunking is a function of K alone: it defines the summation order of every output element
    CHECK(p.chunks == (K + g::kGemmChunkK - 1) / g::kGemmChunkK);
    CHECK(!p.split || (p.chunks >= 2 && M <= 256 && p.tiles_m * p.tiles_n < sms));
    CHECK(p.workspace_bytes == (p.split ? size_t(M) * N * p.chunks * 4 : 0));
    CHECK(p.shape.threads() % 32 == 0 && p.shape.threads() <= 256);
    CHECK(p.shape.bm % p.shape.wm == 0 && p.shape.bn % p.shape.wn == 0 && p.shape.wn % 16 == 0 && p.shape.wm % 16 == 0);
    CHECK(p.smem_bytes <= 227 * 1024 && p.smem_bytes == g::gemm_smem_bytes(p.shape, true));
  }
  // decode projections get split-K (enough blocks to stream the weights); prefill does not
  CHECK(g::plan_gemm(8, 1024, 1024, sms, true).split);
  CHECK(g::plan_gemm(64, 1024, 3072, sms, true).blocks() >= sms);
  CHECK(!g::plan_gemm(2048, 3072, 1024, sms, true).split);
  CHECK(g::plan_gemm(2048, 3072, 1024, sms, true).tile == g::GemmTile::L128x128);
  CHECK(g::plan_gemm(4, 1024, 1024, sms, true).tile == g::GemmTile::S16x64);
  CHECK(!g::plan_gemm(64, 151936, 1024, sms, true).split);  // the lm head has tiles enough
  // fast path: bf16, K-contiguous operands (linear's layout), K % 8 == 0, aligned
  alignas(16) static char buf[64];
  CHECK(g::gemm_fast_path_ok(true, true, false, true, 1024, buf, buf));
  CHECK(!g::gemm_fast_path_ok(true, true, false, true, 1023, buf, buf));
  CHECK(!g::gemm_fast_path_ok(true, false, false, true, 1024, buf, buf));
  CHECK(!g::gemm_fast_path_ok(true, true, true, true, 1024, buf, buf));
  CHECK(!g::gemm_fast_path_ok(true, true, false, false, 1024, buf, buf));
  CHECK(!g::gemm_fast_path_ok(true, true, false, true, 1024, buf + 2, buf));
  CHECK(g::gemm_smem_bytes(g::gemm_tile_shape(g::GemmTile::L128x128), false) <= 48 * 1024);
}

// The fused LoRA GEMM's concatenated reduction: K main columns, then K2 extra ones, each region cut into
// its own fixed chunks. The kernel takes a chunk's tile range (split mode) and the fold points from these
// functions, so: the chunks must tile [0, kt_main + kt_extra) exactly, in order, never straddling the
// region boundary, and a tile closes a chunk iff it is the last tile of its chunk's range.
TEST(cuda_plan_gemm_concatenated_k) {
  const int sms = 132;
  for (auto [K, K2] : std::vector<std::array<int64_t, 2>>{{1024, 32}, {1024, 8}, {999, 8}, {96, 64}, {33, 8},
                                                          {256, 256}, {257, 264}, {0, 16}, {3072, 0}, {31, 1}}) {
    const int64_t ktm = g::gemm_k_tiles(K), kte = g::gemm_k_tiles(K2), ktt = ktm + kte;
    const int64_t chunks = g::gemm_region_chunks(ktm) + g::gemm_region_chunks(kte);
    CHECK(chunks == (K + g::kGemmChunkK - 1) / g::kGemmChunkK + (K2 + g::kGemmChunkK - 1) / g::kGemmChunkK);
    for (int64_t M : {1, 8, 300, 2048}) {
      const g::GemmPlan p = g::plan_gemm(M, 1000, K, sms, true, K2);
      CHECK(p.chunks == chunks);
      CHECK(p.workspace_bytes == (p.split ? size_t(M) * 1000 * p.chunks * 4 : 0));
    }
    int64_t next = 0;
    std::vector<int> closes(static_cast<size_t>(ktt), 0);
    for (int64_t z = 0; z < chunks; ++z) {
      const int64_t b = g::gemm_chunk_tile_begin(z, ktm), e = g::gemm_chunk_tile_end(z, ktm, ktt);
      CHECK(b == next && e > b && e - b <= g::kGemmTilesPerChunk);
      CHECK(!(b < ktm && e > ktm));  // never straddles the main / extra boundary
      if (b >= ktm) CHECK((b - ktm) % g::kGemmTilesPerChunk == 0);  // extra chunks start fresh
      closes[static_cast<size_t>(e - 1)] = 1;
      next = e;
    }
    CHECK(next == ktt);
    for (int64_t kt = 0; kt < ktt; ++kt) CHECK(g::gemm_tile_closes_chunk(kt, ktm, ktt) == (closes[size_t(kt)] == 1));
  }
  // the main region alone reproduces the plain GEMM's chunking
  CHECK(g::plan_gemm(64, 1024, 1000, sms, true, 0).chunks == g::plan_gemm(64, 1024, 1000, sms, true).chunks);
  // the LoRA forward pads the rank to whole 16-byte rows of bf16 (cp.async path)
  for (int64_t r : {1, 3, 8, 16, 17, 32, 64}) {
    const int64_t r8 = g::lora_packed_rank(r);
    CHECK(r8 >= r && r8 % 8 == 0 && r8 - r < 8);
  }
  alignas(16) static char buf[64];
  CHECK(g::gemm_fast_path_ok(true, true, false, true, g::lora_packed_rank(5), buf, buf));
}

// adamw_step_multi's chunk table: every element of every tensor in exactly one chunk, in tensor order,
// chunks no longer than kAdamWChunk, empty tensors contribute none.
TEST(cuda_plan_adamw_chunks) {
  const std::vector<int64_t> numels{1000, 0, g::kAdamWChunk, g::kAdamWChunk + 1, 3 * g::kAdamWChunk - 7, 1};
  const std::vector<g::AdamWChunk> ch = g::plan_adamw_chunks(numels);
  std::vector<int64_t> covered(numels.size(), 0);
  int32_t last_t = -1;
  int64_t last_end = 0;
  for (const g::AdamWChunk& c : ch) {
    CHECK(c.tensor >= 0 && size_t(c.tensor) < numels.size());
    CHECK(c.len > 0 && c.len <= g::kAdamWChunk);
    if (c.tensor == last_t) {
      CHECK(c.begin == last_end);
    } else {
      CHECK(c.tensor > last_t && c.begin == 0);
    }
    CHECK(c.begin + c.len <= numels[size_t(c.tensor)]);
    covered[size_t(c.tensor)] += c.len;
    last_t = c.tensor;
    last_end = c.begin + c.len;
  }
  for (size_t t = 0; t < numels.size(); ++t) CHECK(covered[t] == numels[t]);
  CHECK(ch.size() == 1 + 1 + 2 + 3 + 1);
  CHECK(g::plan_adamw_chunks({}).empty());
  CHECK(g::plan_adamw_chunks({5, 7}, 4).size() == 4);
  // launch: at most 8 blocks per SM, never more blocks than chunks
  CHECK(g::plan_adamw_multi_launch(3, 132).blocks == 3);
  CHECK(g::plan_adamw_multi_launch(100000, 132).blocks == 132 * 8);
  CHECK(g::plan_adamw_multi_launch(0, 132).blocks == 1);
  CHECK(g::plan_adamw_multi_launch(5, 132).threads == g::kAdamWThreads);
  CHECK(sizeof(g::AdamWChunk) % 8 == 0);
}

TEST(cuda_plan_paged_attention) {
  // decode: one token per sequence -> split layout, partitions from the block-table capacity
  g::AttentionPlan p = g::plan_paged_attention(64, 64, 64, 16, 16, 8, 128, 2);
  CHECK(p.split && p.rows_per_block == 1 && p.partitions == 2 && p.row_blocks == 64 && p.grid_y == 8);
  CHECK(p.heads_per_chunk == 2 && p.head_chunks == 1 && p.hd_bucket == 128);
  CHECK(p.workspace_floats == size_t(64) * 16 * 2 * (128 + 2));
  CHECK(p.smem_bytes <= 48 * 1024);  // bf16, head_dim 128: no opt-in needed
  // short contexts: a single partition, no workspace
  p = g::plan_paged_attention(8, 8, 4, 16, 16, 8, 128, 2);
  CHECK(p.split && p.partitions == 1 && p.workspace_floats == 0);
  // prefill chunk: many tokens per sequence -> rows of a sequence share K/V tiles, no split
  p = g::plan_paged_attention(512, 2, 64, 16, 16, 8, 128, 2);
  CHECK(!p.split && p.rows_per_block == 8 && p.row_blocks == 64 && p.partitions == 1 && p.workspace_floats == 0);
  // MQA with a group of 20: two head chunks (16 + 4)
  p = g::plan_paged_attention(2, 2, 8, 16, 20, 1, 64, 2);
  CHECK(p.heads_per_chunk == 16 && p.head_chunks == 2 && p.rows_per_block == 1 && p.grid_y == 2 && p.hd_bucket == 64);
  // every supported head_dim fits the smallest opt-in limit (A100: 163 KiB), f32 included
  for (int hd : {2, 34, 64, 80, 96, 128, 160, 256})
    for (size_t es : {size_t(2), size_t(4)})
      CHECK(g::plan_paged_attention(4, 4, 4, 16, 8, 8, hd, es).smem_bytes <= 163 * 1024);
  CHECK_THROWS_CODE(g::plan_paged_attention(4, 4, 4, 16, 8, 8, 258, 2), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::plan_paged_attention(4, 4, 4, 16, 8, 8, 63, 2), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::plan_paged_attention(4, 4, 4, 16, 6, 4, 64, 2), ErrorCode::kInvalidArgument);
  // partitions of a position: fixed (numerics), never from the batch
  CHECK(g::attention_partitions_for_pos(0) == 1 && g::attention_partitions_for_pos(511) == 1 &&
        g::attention_partitions_for_pos(512) == 2 && g::attention_partitions_for_pos(4095) == 8);
}

TEST(cuda_plan_reductions_and_allocator) {
  for (int64_t V : {1, 7, 8192, 8193, 151936}) {
    const int64_t c = g::log_softmax_chunks(V);
    CHECK(c * g::kLsgChunk >= V && (c - 1) * g::kLsgChunk < V);
    const int64_t span = g::sample_warp_span(V);
    CHECK(span % 32 == 0 && span * g::kSampleWarps >= V);
  }
  size_t prev = 0;
  for (size_t b : {size_t(1), size_t(255), size_t(256), size_t(257), size_t(4096), size_t(4097), size_t(1) << 20,
                   (size_t(1) << 20) + 1, size_t(3) << 30}) {
    const size_t c = g::alloc_size_class(b);
    CHECK(c >= b && c % 256 == 0 && c >= prev);
    CHECK(b <= 4096 ? c - b < 256 : c <= b + b / 4);
    prev = c;
  }
  CHECK(g::alloc_size_class(5000) == g::alloc_size_class(5100));  // same class: cached blocks get reused
}

TEST(cuda_op_checks_reject_bad_arguments) {
  static float d[1];
  auto t = [](DType dt, std::initializer_list<int64_t> s) { return Tensor(d, dt, s); };
  using g::check_embedding;
  // gemm / linear shapes and dtypes
  CHECK(g::check_gemm(t(DType::F32, {3, 5}), t(DType::BF16, {4, 3}), t(DType::BF16, {5, 4}), true, true).K == 4);
  CHECK_THROWS_CODE(g::check_gemm(t(DType::F32, {3, 5}), t(DType::BF16, {3, 4}), t(DType::BF16, {5, 4}), false, false),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_gemm(t(DType::F64, {3, 5}), t(DType::BF16, {3, 4}), t(DType::BF16, {4, 5}), false, false),
                    ErrorCode::kInvalidArgument);
  const g::GemmDims ld = g::check_linear("linear", t(DType::F32, {2, 3, 7}), t(DType::BF16, {2, 3, 5}),
                                         t(DType::BF16, {7, 5}), t(DType::BF16, {7}));
  CHECK(ld.M == 6 && ld.N == 7 && ld.K == 5);
  CHECK_THROWS_CODE(g::check_linear("linear", t(DType::F32, {6, 7}), t(DType::BF16, {6, 5}), t(DType::BF16, {7, 5}),
                                    t(DType::BF16, {6})),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_linear("linear", t(DType::F32, {6, 7}), t(DType::F16, {6, 5}), t(DType::BF16, {7, 5}), {}),
                    ErrorCode::kInvalidArgument);
  // elementwise
  check_embedding(t(DType::BF16, {4, 8}), t(DType::BF16, {100, 8}), t(DType::I32, {4}));
  CHECK_THROWS_CODE(check_embedding(t(DType::BF16, {4, 8}), t(DType::BF16, {100, 8}), t(DType::F32, {4})),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(check_embedding(t(DType::BF16, {4, 9}), t(DType::BF16, {100, 8}), t(DType::I32, {4})),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_binary("add", t(DType::BF16, {4}), t(DType::F32, {4}), t(DType::F32, {4})),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_rmsnorm(t(DType::BF16, {4, 8}), t(DType::BF16, {4, 8}), t(DType::BF16, {7})),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_rope("rope", t(DType::BF16, {4, 24}), t(DType::I32, {4}), t(DType::BF16, {10, 8}), 8),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_rope("rope", t(DType::BF16, {4, 24}), t(DType::I32, {4}), t(DType::F32, {10, 6}), 6 + 1),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_kv_store(t(DType::BF16, {32, 8}), t(DType::BF16, {32, 8}), t(DType::F32, {2, 8}),
                                      t(DType::F32, {2, 8}), t(DType::I32, {2})),
                    ErrorCode::kInvalidArgument);
  // attention metadata and shapes
  AttentionMeta m;
  m.block_tables = t(DType::I32, {2, 4});
  m.token_seq = t(DType::I32, {3});
  m.token_pos = t(DType::I32, {3});
  m.num_q_heads = 4;
  m.num_kv_heads = 2;
  m.head_dim = 8;
  g::check_paged_attention(t(DType::BF16, {3, 32}), t(DType::BF16, {3, 32}), t(DType::BF16, {64, 16}),
                           t(DType::BF16, {64, 16}), m);
  m.num_kv_heads = 3;
  CHECK_THROWS_CODE(g::check_paged_attention(t(DType::BF16, {3, 32}), t(DType::BF16, {3, 32}), t(DType::BF16, {64, 24}),
                                             t(DType::BF16, {64, 24}), m),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_log_softmax_gather(t(DType::BF16, {3}), t(DType::F32, {3, 10}), t(DType::I32, {3})),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_sample(t(DType::F64, {3, 10})), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_sample(t(DType::F32, {3, 0})), ErrorCode::kInvalidArgument);
}

TEST(cuda_sampler_selection_helpers) {
  uint32_t cnt[256] = {};
  uint64_t val[256] = {};
  cnt[200] = 2, val[200] = 2;
  cnt[100] = 5, val[100] = 5;
  cnt[3] = 1, val[3] = 1;
  g::BinChoice c = g::select_bin_seq(cnt, val, 1);
  CHECK(c.bin == 200 && c.above_cnt == 0);
  c = g::select_bin_seq(cnt, val, 3);
  CHECK(c.bin == 100 && c.above_cnt == 2 && c.above_val == 2);
  c = g::select_bin_seq(cnt, val, 8);
  CHECK(c.bin == 3 && c.above_cnt == 7);
  c = g::select_bin_seq(cnt, val, 100);  // more than there is: the lowest non-empty bin (keep all)
  CHECK(c.bin == 3 && c.above_cnt == 7);
  c = g::select_bin_seq(cnt, val, 0);  // top-p = 0: the first non-empty bin (keep the top token)
  CHECK(c.bin == 200);
  CHECK(g::ties_needed(10, 4, 3, 5) == 2 && g::ties_needed(10, 12, 3, 5) == 1 && g::ties_needed(10, 4, 0, 5) == 5);
  CHECK(g::ties_needed(100, 4, 3, 5) == 5);
  CHECK(g::top_p_target(0.0f, 1000) == 0 && g::top_p_target(0.5f, 1001) == 501);
  CHECK(g::draw_target(0.5f, 1001) == 501 && g::draw_target(0.0f, 7) == 1);
  CHECK(g::prob_mass_fx(1.0f) == (uint64_t(1) << g::kMassBits) && g::prob_mass_fx(0.0f) == 0);
  // keys are monotone in p for p >= 0
  CHECK(g::prob_key(0.25f) < g::prob_key(0.5f) && g::prob_key(0.0f) < g::prob_key(1e-30f));
}

// The GPU sampler's algorithm (radix selects over probability keys, fixed-point masses), run on the host
// with p computed exactly as the CPU backend computes it, against the CPU backend's sample_row: the same
// ids (the CPU sums masses in fp64, the GPU algorithm in fixed point: only a draw within ~1e-12 of a
// boundary could differ, and none does in these rows) and the same log-probs.
TEST(cuda_sampler_algorithm_matches_cpu_sample_row) {
  std::mt19937 rng(5);
  int rows = 0, same = 0, tie_swaps = 0;
  double worst_lp = 0;
  for (int64_t V : {1, 2, 37, 1000, 5000}) {
    for (int dist = 0; dist < 3; ++dist) {
      for (int trial = 0; trial < 12; ++trial) {
        std::vector<float> z(static_cast<size_t>(V));
        std::normal_distribution<float> nd(0.0f, dist == 0 ? 1.0f : 4.0f);
        std::uniform_int_distribution<int> ud(0, 4);
        for (auto& x : z) x = dist == 2 ? static_cast<float>(ud(rng)) : nd(rng);  // dist 2: many exact ties
        SamplingRow r;
        r.seed = rng();
        r.step = trial;
        const float temps[] = {0.0f, 0.7f, 1.0f, 1.5f};
        r.temperature = temps[trial % 4];
        const int ks[] = {0, 1, 5, 50, static_cast<int>(V) - 1, static_cast<int>(V) + 3};
        r.top_k = ks[(trial / 2) % 6];
        const float ps[] = {1.0f, 0.9f, 0.5f, 0.0f, 0.999f};
        r.top_p = ps[trial % 5];
        const float mps[] = {0.0f, 0.0f, 0.05f, 0.5f, 2.0f};
        r.min_p = mps[(trial / 3) % 5];
        for (int rep = 0; rep < 4; ++rep, r.step += 101) {
          int32_t id_cpu = -1, id_ref = -1;
          float lp_cpu = 0, lp_ref = 0;
          sample_row(z.data(), V, r, &id_cpu, &lp_cpu);
          if (r.temperature > 0.0f) {
            const float inv_t = 1.0f / r.temperature;
            const float mx = cpu::max_scaled(z.data(), V, inv_t);
            std::vector<float> p(static_cast<size_t>(V));
            const double total = cpu::exp_sum(z.data(), V, inv_t, mx, p.data());
            g::reference_sample_probs(z.data(), p, total, mx, r, &id_ref, &lp_ref);
          } else {
            g::reference_greedy(z.data(), V, &id_ref, &lp_ref);
          }
          ++rows;
          if (id_cpu == id_ref) {
            ++same;
            worst_lp = std::max(worst_lp, std::fabs(double(lp_cpu) - lp_ref));
          } else if (z[id_cpu] == z[id_ref]) {
            // Equal logits: the engine computes p with its SIMD exp (built with -march=native) where this
            // file's inline copy may take the scalar path, so "ties" can differ by an ulp and swap order.
            ++tie_swaps;
          } else {
            std::fprintf(stderr, "  sampler mismatch V=%lld T=%g k=%d p=%g minp=%g: cpu %d ref %d\n", (long long)V,
                         r.temperature, r.top_k, r.top_p, r.min_p, id_cpu, id_ref);
          }
        }
      }
    }
  }
  std::printf("sampler algorithm vs CPU sample_row: %d/%d rows equal, %d swaps between equal logits, max |dlogprob| %.2e\n",
              same, rows, tie_swaps, worst_lp);
  CHECK(same + tie_swaps == rows);
  CHECK(tie_swaps <= rows / 20);
  CHECK(worst_lp < 1e-5);
}

// The sampler's tail cut (skip_key) never changes a mass select: same key, counts, masses and first id
// with and without it, for any target that leaves the skipped slack unclaimed.
TEST(cuda_sampler_tail_skip_is_exact) {
  std::mt19937 rng(11);
  size_t kept_candidates = 0, all_candidates = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t V = trial % 3 == 0 ? 50000 : 3000;
    std::normal_distribution<float> nd(0.0f, trial % 2 ? 2.0f : 5.0f);
    std::vector<float> p(static_cast<size_t>(V));
    float mx = -1e30f;
    std::vector<float> z(p.size());
    for (auto& x : z) mx = std::max(mx, x = nd(rng));
    uint64_t total = 0;
    for (int64_t j = 0; j < V; ++j) total += g::prob_mass_fx(p[j] = g::prob_from_scaled(z[j], mx, false));
    g::ref::Selector sel{p};
    for (int k = 0; k < 5; ++k) {
      const uint64_t target = g::draw_target(std::uniform_real_distribution<float>(0.0f, 1.0f)(rng), total);
      const uint32_t cut = g::skip_key(total - target, V);
      const g::RadixResult a = sel.select(true, target, 0), b = sel.select(true, target, cut);
      CHECK(a.key == b.key && a.cnt_gt == b.cnt_gt && a.mass_gt == b.mass_gt && a.ties == b.ties && a.first_id == b.first_id);
      for (float x : p) kept_candidates += g::prob_key(x) >= cut;
      all_candidates += p.size();
    }
  }
  std::printf("sampler tail cut: %.1f%% of tokens enter the histograms of a draw\n", 100.0 * kept_candidates / all_candidates);
}

TEST(cuda_sampler_reference_respects_filters) {
  // top-k keeps exactly the k most likely (ties by lower id), top-p the smallest nucleus, min-p the tail cut
  const int64_t V = 50;
  std::vector<float> z(V);
  for (int64_t j = 0; j < V; ++j) z[j] = static_cast<float>((j * 37) % 11) * 0.5f;  // ties in groups
  std::vector<float> p(V);
  float mx = *std::max_element(z.begin(), z.end());
  for (int64_t j = 0; j < V; ++j) p[j] = std::exp(z[j] - mx);
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  for (int k : {1, 3, 7, 20}) {
    std::vector<bool> allowed(V, false);
    for (int i = 0; i < k; ++i) allowed[order[i]] = true;
    for (uint64_t s = 0; s < 200; ++s) {
      SamplingRow r;
      r.top_k = k;
      r.seed = s;
      int32_t id;
      float lp;
      g::reference_sample_row(z.data(), V, r, &id, &lp);
      CHECK(allowed[id]);
    }
  }
  for (uint64_t s = 0; s < 300; ++s) {
    SamplingRow r;
    r.min_p = 0.5f;
    r.seed = s;
    int32_t id;
    float lp;
    g::reference_sample_row(z.data(), V, r, &id, &lp);
    CHECK(p[id] >= 0.5f);
  }
}

TEST(cuda_rng_streams_are_counter_based) {
  // the sampler's draws are a pure function of (seed, step): the GPU evaluates the same rng.h code
  CHECK(rng_uniform(42, 7) == rng_uniform(42, 7));
  CHECK(rng_uniform(42, 7) != rng_uniform(42, 8));
  CHECK(rng_uniform(42, 7) != rng_uniform(43, 7));
  double mean = 0;
  for (uint64_t s = 0; s < 20000; ++s) {
    const float u = rng_uniform(s, s * 3 + 1);
    CHECK(u >= 0.0f && u < 1.0f);
    mean += u;
  }
  CHECK_NEAR(mean / 20000, 0.5, 0.01);
}

// Fused varlen attention (attention_forward / attention_backward): launch plans, the tile decomposition
// (every causal (query, key) pair of every sequence is visited exactly once by each pass), the mask-skip
// predicate, and the argument checks.
TEST(cuda_plan_flash_attention) {
  g::FlashPlan p = g::plan_flash_attention("attention_forward", 1000, 3, 500, 16, 8, 128);
  CHECK(p.hd_bucket == 128 && p.bq == 32 && p.max_seqlen == 500 && p.q_tiles == 8 && p.kv_tiles == 8);
  CHECK(p.grid_q == 24 && p.grid_kv == 24 && p.workspace_bytes == size_t(1000) * 16 * 4);
  // shared memory: [rows][hd + 8] bf16 tiles; within the smallest opt-in limit (A100: 163 KiB)
  // (streamed tiles double-buffered)
  CHECK(p.smem_fwd == size_t(64 + 256) * 136 * 2 && p.smem_dq == size_t(128 + 256) * 136 * 2);
  CHECK(p.smem_dkv == size_t(128 + 128) * 136 * 2 + 4 * 32 * 4);
  for (int hd : {1, 8, 34, 63, 64, 65, 80, 127, 128}) {
    const g::FlashPlan q = g::plan_flash_attention("attention_forward", 64, 1, 64, 4, 2, hd);
    CHECK(q.hd_bucket == (hd <= 64 ? 64 : 128) && q.hd_bucket >= hd);
    CHECK(q.bq == (hd <= 64 ? 64 : 32));
    CHECK(std::max({q.smem_fwd, q.smem_dkv, q.smem_dq}) <= 163 * 1024);
  }
  CHECK(g::plan_flash_attention("x", 100, 2, 0, 4, 2, 64).max_seqlen == 100);    // unset: n
  CHECK(g::plan_flash_attention("x", 100, 2, 4000, 4, 2, 64).max_seqlen == 100); // never past n
  CHECK(g::plan_flash_attention("x", 100, 2, 65, 4, 2, 64).q_tiles == 2);
  CHECK(g::plan_flash_attention("x", 0, 0, 0, 4, 2, 64).grid_q >= 1);
  CHECK_THROWS_CODE(g::plan_flash_attention("x", 100, 2, 50, 4, 2, 129), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::plan_flash_attention("x", 100, 2, 50, 4, 2, 256), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::plan_flash_attention("x", 100, 2, 50, 6, 4, 64), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::plan_flash_attention("x", 100, 2, 50, 4, 0, 64), ErrorCode::kInvalidArgument);
  // a million one-token sequences without max_seqlen: the grid would overflow; with it, one tile each
  CHECK_THROWS_CODE(g::plan_flash_attention("x", 1 << 20, 1 << 20, 0, 4, 2, 64), ErrorCode::kInvalidArgument);
  CHECK(g::plan_flash_attention("x", 1 << 20, 1 << 20, 1, 4, 2, 64).grid_q == (1 << 20));
  // grid x -> (sequence, tile) is a bijection, heaviest tile of each sequence first
  for (int64_t tiles : {1, 3, 8}) {
    std::vector<int> seen(static_cast<size_t>(5 * tiles), 0);
    for (int64_t bx = 0; bx < 5 * tiles; ++bx) {
      const g::FlashTile t = g::flash_tile(bx, tiles);
      CHECK(t.seq >= 0 && t.seq < 5 && t.tile >= 0 && t.tile < tiles);
      ++seen[static_cast<size_t>(t.seq * tiles + t.tile)];
      if (bx % tiles == 0) CHECK(t.tile == tiles - 1);
    }
    for (int c : seen) CHECK(c == 1);
  }
}

TEST(cuda_flash_tiles_cover_every_causal_pair_once) {
  const int BM = g::kFlashBM, BN = g::kFlashBN;
  for (int L : {1, 7, 33, 63, 64, 65, 100, 130, 257}) {
    // forward and dQ pass: query tiles of BM, key tiles [0, flash_kv_end) of BN
    std::vector<int> cnt(static_cast<size_t>(L) * L, 0);
    bool unmasked_ok = true;
    for (int m0 = 0; m0 < L; m0 += BM)
      for (int64_t n0 = 0; n0 < g::flash_kv_end(m0, BM, L); n0 += BN) {
        const bool mask = g::flash_tile_needs_mask(m0, BM, n0, BN, L);
        for (int i = m0; i < m0 + BM; ++i)
          for (int64_t j = n0; j < n0 + BN; ++j) {
            const bool valid = j <= i && i < L && j < L;
            if (!mask && !valid) unmasked_ok = false;  // a skipped mask would have let this pair through
            if (valid) ++cnt[static_cast<size_t>(i) * L + j];
          }
      }
    bool once = true;
    for (int i = 0; i < L; ++i)
      for (int j = 0; j <= i; ++j) once = once && cnt[static_cast<size_t>(i) * L + j] == 1;
    CHECK(once && unmasked_ok);
    // dK/dV pass: key tiles of BN, query tiles of bq from flash_q_begin to L
    for (int bq : {32, 64}) {
      std::fill(cnt.begin(), cnt.end(), 0);
      unmasked_ok = true;
      for (int n0 = 0; n0 < L; n0 += BN)
        for (int64_t m0 = g::flash_q_begin(n0, bq); m0 < L; m0 += bq) {
          CHECK(m0 % bq == 0);
          const bool mask = g::flash_tile_needs_mask(m0, bq, n0, BN, L);
          for (int64_t i = m0; i < m0 + bq; ++i)
            for (int j = n0; j < n0 + BN; ++j) {
              const bool valid = j <= i && i < L && j < L;
              if (!mask && !valid) unmasked_ok = false;
              if (valid) ++cnt[static_cast<size_t>(i) * L + j];
            }
        }
      once = true;
      for (int i = 0; i < L; ++i)
        for (int j = 0; j <= i; ++j) once = once && cnt[static_cast<size_t>(i) * L + j] == 1;
      CHECK(once && unmasked_ok);
    }
  }
  // tiles strictly below the diagonal and inside the sequence skip the mask
  CHECK(!g::flash_tile_needs_mask(128, 64, 0, 64, 1000));
  CHECK(!g::flash_tile_needs_mask(64, 64, 0, 64, 128));
  CHECK(g::flash_tile_needs_mask(64, 64, 64, 64, 1000));   // diagonal
  CHECK(g::flash_tile_needs_mask(64, 64, 0, 64, 100));     // rows past the end
}

namespace {

// A host model of one warp's ldmatrix / mma.m16n8k16 (bf16 -> f32) as the PTX ISA defines their fragments
// (g = lane / 4, c = lane % 4): ldmatrix gives lane t row t / 4, columns 2(t % 4), +1 of each 8x8 matrix
// (.trans: column t / 4, rows 2(t % 4), +1); A regs (g, 2c) (g+8, 2c) (g, 2c+8) (g+8, 2c+8); B regs
// (k 2c, n g) (k 2c+8, n g); C (g, 2c..) (g+8, 2c..). Values are floats (the layout is what is checked).
using Pair = std::array<float, 2>;
struct WarpRegs4 {
  Pair r[32][4];
};

// ldmatrix.x4 over a [rows][lds] tile: lane t points at (row_of(t), col_of(t)), the start of row t % 8
// of matrix t / 8.
template <class RowFn, class ColFn>
WarpRegs4 emu_ldsm_x4(const std::vector<float>& s, int lds, int row0, int col0, RowFn row_of, ColFn col_of, bool trans) {
  WarpRegs4 out{};
  for (int i = 0; i < 4; ++i) {
    float m[8][8];
    for (int r = 0; r < 8; ++r) {
      const int t = 8 * i + r;
      for (int c = 0; c < 8; ++c) m[r][c] = s[static_cast<size_t>(row0 + row_of(t)) * lds + col0 + col_of(t) + c];
    }
    for (int t = 0; t < 32; ++t)
      out.r[t][i] = trans ? Pair{m[2 * (t % 4)][t / 4], m[2 * (t % 4) + 1][t / 4]} : Pair{m[t / 4][2 * (t % 4)], m[t / 4][2 * (t % 4) + 1]};
  }
  return out;
}

// acc[lane][4] += A (16x16 from a[lane][0..3]) * B (16x8 from b0[lane], b1[lane])
void emu_mma(float (*acc)[4], const Pair (*a)[4], const Pair* b0, const Pair* b1) {
  float A[16][16], B[16][8];
  for (int t = 0; t < 32; ++t) {
    const int gg = t / 4, c = t % 4;
    for (int h = 0; h < 2; ++h) {
      A[gg][2 * c + h] = a[t][0][h];
      A[gg + 8][2 * c + h] = a[t][1][h];
      A[gg][2 * c + 8 + h] = a[t][2][h];
      A[gg + 8][2 * c + 8 + h] = a[t][3][h];
      B[2 * c + h][gg] = b0[t][h];
      B[2 * c + 8 + h][gg] = b1[t][h];
    }
  }
  for (int t = 0; t < 32; ++t)
    for (int e = 0; e < 4; ++e) {
      const int r = t / 4 + (e >= 2 ? 8 : 0), col = (t % 4) * 2 + (e & 1);
      double sum = 0;
      for (int k = 0; k < 16; ++k) sum += double(A[r][k]) * B[k][col];
      acc[t][e] += static_cast<float>(sum);
    }
}

}  // namespace

// The index math of flash_common.cuh's mma_rows_rowsT / to_a_frags / mma_regs_rows and of the kernels'
// masks (frag_* in plan.h), replayed with the emulated fragments: S = A B^T and O = S V come out as the
// plain matrix products, element (frag_c_row, frag_c_col) where the kernels expect it.
TEST(cuda_flash_fragment_layouts_compute_the_products) {
  constexpr int K = 32, NT = 4, LDS = K + 8, NO = 16;  // A 16xK, B (8NT)xK, V (8NT)xNO
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> ud(-4, 4);
  std::vector<float> a(16 * LDS), b(8 * NT * LDS), v(8 * NT * (NO + 8));
  for (auto& x : a) x = static_cast<float>(ud(rng));
  for (auto& x : b) x = static_cast<float>(ud(rng));
  for (auto& x : v) x = static_cast<float>(ud(rng));
  // mma_rows_rowsT<K, NT, LDS>
  float s[32][NT][4] = {};
  for (int ks = 0; ks < K; ks += 16) {
    const WarpRegs4 af = emu_ldsm_x4(a, LDS, 0, ks, g::frag_a_row, g::frag_a_col, false);
    for (int np = 0; np < NT / 2; ++np) {
      const WarpRegs4 r = emu_ldsm_x4(b, LDS, np * 16, ks, g::frag_bt_row, g::frag_bt_col, false);
      Pair b0[32], b1[32], b2[32], b3[32];
      float c0[32][4], c1[32][4];
      for (int t = 0; t < 32; ++t) {
        b0[t] = r.r[t][0], b1[t] = r.r[t][1], b2[t] = r.r[t][2], b3[t] = r.r[t][3];
        for (int e = 0; e < 4; ++e) c0[t][e] = s[t][2 * np][e], c1[t][e] = s[t][2 * np + 1][e];
      }
      emu_mma(c0, af.r, b0, b1);
      emu_mma(c1, af.r, b2, b3);
      for (int t = 0; t < 32; ++t)
        for (int e = 0; e < 4; ++e) s[t][2 * np][e] = c0[t][e], s[t][2 * np + 1][e] = c1[t][e];
    }
  }
  bool ok = true;
  for (int t = 0; t < 32; ++t)
    for (int nt = 0; nt < NT; ++nt)
      for (int e = 0; e < 4; ++e) {
        const int i = g::frag_c_row(t, e), j = g::frag_c_col(t, nt, e);
        double want = 0;
        for (int k = 0; k < K; ++k) want += double(a[i * LDS + k]) * b[j * LDS + k];
        ok = ok && s[t][nt][e] == static_cast<float>(want);
      }
  CHECK(ok);
  // to_a_frags + mma_regs_rows<NT / 2, NO / 8, NO + 8>: O = S V with S from the accumulators
  Pair pa[32][NT / 2][4];
  for (int t = 0; t < 32; ++t)
    for (int j = 0; j < NT / 2; ++j) {
      pa[t][j][0] = {s[t][2 * j][0], s[t][2 * j][1]};
      pa[t][j][1] = {s[t][2 * j][2], s[t][2 * j][3]};
      pa[t][j][2] = {s[t][2 * j + 1][0], s[t][2 * j + 1][1]};
      pa[t][j][3] = {s[t][2 * j + 1][2], s[t][2 * j + 1][3]};
    }
  float o[32][NO / 8][4] = {};
  for (int kt = 0; kt < NT / 2; ++kt)
    for (int np = 0; np < NO / 16; ++np) {
      const WarpRegs4 r = emu_ldsm_x4(v, NO + 8, kt * 16, np * 16, g::frag_b_trans_row, g::frag_b_trans_col, true);
      Pair A[32][4], b0[32], b1[32], b2[32], b3[32];
      float c0[32][4], c1[32][4];
      for (int t = 0; t < 32; ++t) {
        for (int q = 0; q < 4; ++q) A[t][q] = pa[t][kt][q];
        b0[t] = r.r[t][0], b1[t] = r.r[t][1], b2[t] = r.r[t][2], b3[t] = r.r[t][3];
        for (int e = 0; e < 4; ++e) c0[t][e] = o[t][2 * np][e], c1[t][e] = o[t][2 * np + 1][e];
      }
      emu_mma(c0, A, b0, b1);
      emu_mma(c1, A, b2, b3);
      for (int t = 0; t < 32; ++t)
        for (int e = 0; e < 4; ++e) o[t][2 * np][e] = c0[t][e], o[t][2 * np + 1][e] = c1[t][e];
    }
  ok = true;
  for (int t = 0; t < 32; ++t)
    for (int nt = 0; nt < NO / 8; ++nt)
      for (int e = 0; e < 4; ++e) {
        const int i = g::frag_c_row(t, e), d = g::frag_c_col(t, nt, e);
        double want = 0;
        for (int j = 0; j < 8 * NT; ++j) {
          double sij = 0;
          for (int k = 0; k < K; ++k) sij += double(a[i * LDS + k]) * b[j * LDS + k];
          want += sij * v[j * (NO + 8) + d];
        }
        ok = ok && o[t][nt][e] == static_cast<float>(want);
      }
  CHECK(ok);
}

TEST(cuda_attention_checks_and_bench_shapes) {
  static float d[1];
  auto t = [](DType dt, std::initializer_list<int64_t> s) { return Tensor(d, dt, s); };
  VarlenMeta m;
  m.cu_seqlens = t(DType::I32, {3});
  m.num_q_heads = 4;
  m.num_kv_heads = 2;
  m.head_dim = 8;
  m.max_seqlen = 5;
  const Tensor q = t(DType::BF16, {9, 32}), kv = t(DType::BF16, {9, 16}), lse = t(DType::F32, {9, 4});
  CHECK(g::check_varlen_attention("attention_forward", {{&q, "q"}, {&q, "out"}}, {{&kv, "k"}, {&kv, "v"}}, lse, m) == 2);
  const Tensor q32 = t(DType::F32, {9, 32}), lse16 = t(DType::BF16, {9, 4}), kv_bad = t(DType::BF16, {9, 24});
  CHECK_THROWS_CODE(g::check_varlen_attention("a", {{&q, "q"}, {&q32, "out"}}, {{&kv, "k"}, {&kv, "v"}}, lse, m),
                    ErrorCode::kInvalidArgument);  // mixed dtypes
  CHECK_THROWS_CODE(g::check_varlen_attention("a", {{&q, "q"}}, {{&kv, "k"}}, lse16, m), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(g::check_varlen_attention("a", {{&q, "q"}}, {{&kv_bad, "k"}}, lse, m), ErrorCode::kInvalidArgument);
  const Tensor lse_short = t(DType::F32, {9, 3});
  CHECK_THROWS_CODE(g::check_varlen_attention("a", {{&q, "q"}}, {{&kv, "k"}}, lse_short, m), ErrorCode::kInvalidArgument);
  VarlenMeta bad = m;
  bad.cu_seqlens = t(DType::F32, {3});
  CHECK_THROWS_CODE(g::check_varlen_attention("a", {{&q, "q"}}, {{&kv, "k"}}, lse, bad), ErrorCode::kInvalidArgument);
  bad = m;
  bad.num_kv_heads = 3;
  CHECK_THROWS_CODE(g::check_varlen_attention("a", {{&q, "q"}}, {{&kv, "k"}}, lse, bad), ErrorCode::kInvalidArgument);
  // kernel benchmark shapes (--shapes)
  g::AttentionBenchShape a = g::parse_attention_bench_shape("8x512");
  CHECK(a.seqs == 8 && a.seqlen == 512 && a.hq == 16 && a.hkv == 8 && a.hd == 128);
  a = g::parse_attention_bench_shape("4x1024:32/8/64");
  CHECK(a.seqs == 4 && a.seqlen == 1024 && a.hq == 32 && a.hkv == 8 && a.hd == 64);
  for (const char* b : {"", "8", "8x", "x512", "0x512", "8x512:16/8", "8x512:6/4/64", "8x512:16/8/64/1", "ax5", "8x-1"})
    CHECK_THROWS_CODE(g::parse_attention_bench_shape(b), ErrorCode::kInvalidArgument);
  for (const std::string& s : g::default_attention_bench_shapes()) g::parse_attention_bench_shape(s);
}

// =====================================================================================================
// Device checks: CUDA vs CPU. Every test returns at once without a device.
// =====================================================================================================

TEST(cuda_gemm_and_linear_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  // bf16 inputs are exact, products are exact in fp32, only the summation order differs from the CPU:
  // F32 outputs within 2e-5 of the largest |value| (K <= 1024 here); BF16 outputs add one rounding (2^-8).
  auto tol = [](DType out) { return out == DType::F32 ? 2e-5 : 8e-3; };
  for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {3, 17, 5}, {37, 65, 127}, {8, 1024, 1024},
                                                             {64, 1000, 1024}, {300, 200, 520}, {129, 96, 40}, {2, 33, 1000}}) {
    for (DType dt : {DType::BF16, DType::F32}) {
      for (DType od : {DType::BF16, DType::F32}) {
        auto x = rnd(M * K, 1), w = rnd(N * K, 2, 0.05f), b = rnd(N, 3);
        Buffer cx = put(*cpu, DType::F32, {M, K}, x), cw = put(*cpu, DType::F32, {N, K}, w), cb = put(*cpu, DType::F32, {N}, b);
        Buffer co = put(*cpu, DType::F32, {M, N}, {});
        cpu->linear(co, cx, cw, cb);
        Buffer gx = put(*gpu, dt, {M, K}, x), gw = put(*gpu, dt, {N, K}, w), gb = put(*gpu, dt, {N}, b);
        Buffer go = put(*gpu, od, {M, N}, {});
        gpu->linear(go, gx, gw, gb);
        const double e = rel_err(get(*gpu, go), get(*cpu, co));
        if (!(e <= tol(od)))
          std::fprintf(stderr, "  linear M=%lld N=%lld K=%lld in %s out %s: rel err %.3g\n", (long long)M, (long long)N,
                       (long long)K, dn(dt), dn(od), e);
        CHECK(e <= tol(od));
      }
    }
    // gemm: every transpose, alpha/beta, generic path (transposed operands)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (DType od : {DType::BF16, DType::F32}) {
          auto a = rnd(M * K, 4), b = rnd(K * N, 5, 0.05f), c0 = rnd(M * N, 6);
          std::vector<int64_t> as = ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K};
          std::vector<int64_t> bs = tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
          Buffer ca = put(*cpu, DType::F32, as, a), cbb = put(*cpu, DType::F32, bs, b), cc = put(*cpu, DType::F32, {M, N}, c0);
          cpu->gemm(cc, ca, cbb, ta, tb, 0.5f, 0.25f);
          Buffer ga = put(*gpu, DType::BF16, as, a), gbb = put(*gpu, DType::BF16, bs, b), gc = put(*gpu, od, {M, N}, c0);
          gpu->gemm(gc, ga, gbb, ta, tb, 0.5f, 0.25f);
          const double e = rel_err(get(*gpu, gc), get(*cpu, cc));
          if (!(e <= tol(od)))
            std::fprintf(stderr, "  gemm M=%lld N=%lld K=%lld ta=%d tb=%d out %s: rel err %.3g\n", (long long)M,
                         (long long)N, (long long)K, ta, tb, dn(od), e);
          CHECK(e <= tol(od));
        }
  }
#ifdef HAYATE_WITH_CUDA
  if (CudaBackend::cublas_compiled()) {  // the comparison path gives the same answers
    auto* cb = static_cast<CudaBackend*>(gpu.get());
    const int64_t M = 37, N = 300, K = 256;
    auto x = rnd(M * K, 7), w = rnd(N * K, 8, 0.05f);
    Buffer gx = put(*gpu, DType::BF16, {M, K}, x), gw = put(*gpu, DType::BF16, {N, K}, w);
    Buffer o1 = put(*gpu, DType::F32, {M, N}, {}), o2 = put(*gpu, DType::F32, {M, N}, {});
    gpu->linear(o1, gx, gw, {});
    cb->set_gemm_impl(CudaBackend::GemmImpl::Cublas);
    gpu->linear(o2, gx, gw, {});
    cb->set_gemm_impl(CudaBackend::GemmImpl::Hayate);
    CHECK(rel_err(get(*gpu, o2), get(*gpu, o1)) < 2e-5);
  }
#endif
}

// The contract's batch invariance: row i of linear() is bit-identical whatever the batch (the K-chunked
// summation order does not depend on M, nor on whether the chunks ran split across blocks).
TEST(cuda_linear_is_batch_invariant) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  for (int64_t K : {1024, 999, 3072}) {
    const int64_t M = 300, N = 1000;
    auto x = rnd(M * K, 9), w = rnd(N * K, 10, 0.05f);
    Buffer gx = put(*gpu, DType::BF16, {M, K}, x), gw = put(*gpu, DType::BF16, {N, K}, w);
    Buffer all = put(*gpu, DType::F32, {M, N}, {});
    gpu->linear(all, gx, gw, {});
    const std::vector<uint8_t> ref = raw(*gpu, all);
    for (int64_t m : {1, 5, 33, 64, 200}) {
      for (int64_t r0 : {int64_t(0), M - m}) {
        Buffer part = put(*gpu, DType::F32, {m, N}, {});
        gpu->linear(part, gx.t().slice_rows(r0, m), gw, {});
        const std::vector<uint8_t> got = raw(*gpu, part);
        CHECK(std::memcmp(got.data(), ref.data() + r0 * N * 4, got.size()) == 0);
      }
    }
  }
}

// lora_linear: one fused GEMM, out = [x | xa] [W | scale B]^T + bias. Shapes cover odd M, N, K, r (generic
// loader tails, rank padding), decode M (split-K, where the extra chunk is its own block), K % 8 != 0
// (generic path) and f32 activations (generic path with bf16 packed extras).
TEST(cuda_lora_linear_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  for (auto [M, N, K, r] : std::vector<std::array<int64_t, 4>>{{5, 64, 96, 8},
                                                               {64, 1024, 1024, 32},
                                                               {3, 17, 33, 3},
                                                               {1, 1024, 1024, 64},
                                                               {37, 65, 127, 5},
                                                               {300, 200, 520, 16},
                                                               {257, 384, 1024, 32}}) {
    for (DType dt : {DType::BF16, DType::F32}) {
      auto x = rnd(M * K, 11), w = rnd(N * K, 12, 0.05f), b = rnd(N, 13), A = rnd(r * K, 14, 0.1f), B = rnd(N * r, 15, 0.1f);
      const float scale = 2.0f;
      Buffer co = put(*cpu, DType::F32, {M, N}, {}), cxa = put(*cpu, DType::F32, {M, r}, {});
      cpu->lora_linear(co, cxa, put(*cpu, DType::F32, {M, K}, x), put(*cpu, DType::F32, {N, K}, w),
                       put(*cpu, DType::F32, {N}, b), put(*cpu, DType::F32, {r, K}, A), put(*cpu, DType::F32, {N, r}, B), scale);
      Buffer go = put(*gpu, dt, {M, N}, {}), gxa = put(*gpu, dt, {M, r}, {});
      gpu->lora_linear(go, gxa, put(*gpu, dt, {M, K}, x), put(*gpu, dt, {N, K}, w), put(*gpu, dt, {N}, b),
                       put(*gpu, DType::F32, {r, K}, A), put(*gpu, DType::F32, {N, r}, B), scale);
      // x A^T and scale B enter the tensor cores as bf16 (as every GEMM operand): 2e-2 with bf16 outputs,
      // 1e-2 with f32 outputs (no output rounding); xa: 1e-2
      CHECK(rel_err(get(*gpu, go), get(*cpu, co)) < (dt == DType::BF16 ? 2e-2 : 1e-2));
      CHECK(rel_err(get(*gpu, gxa), get(*cpu, cxa)) < 1e-2);
      // xa absent (inference): the same out, bit for bit
      Buffer go2 = put(*gpu, dt, {M, N}, {});
      gpu->lora_linear(go2, {}, put(*gpu, dt, {M, K}, x), put(*gpu, dt, {N, K}, w), put(*gpu, dt, {N}, b),
                       put(*gpu, DType::F32, {r, K}, A), put(*gpu, DType::F32, {N, r}, B), scale);
      CHECK(raw(*gpu, go2) == raw(*gpu, go));
    }
  }
}

// The fused GEMM keeps linear()'s batch invariance: the extra (LoRA) chunk is folded after K's chunks in
// the same order whether the chunks run in one block (large M) or split across blocks (small M).
TEST(cuda_lora_linear_is_batch_invariant) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  (void)cpu;
  for (auto [K, r] : std::vector<std::array<int64_t, 2>>{{1024, 32}, {999, 5}}) {
    const int64_t M = 300, N = 1000;
    auto x = rnd(M * K, 16), w = rnd(N * K, 17, 0.05f), A = rnd(r * K, 18, 0.1f), B = rnd(N * r, 19, 0.1f);
    Buffer gx = put(*gpu, DType::BF16, {M, K}, x), gw = put(*gpu, DType::BF16, {N, K}, w);
    Buffer ga = put(*gpu, DType::F32, {r, K}, A), gb = put(*gpu, DType::F32, {N, r}, B);
    Buffer all = put(*gpu, DType::F32, {M, N}, {});
    gpu->lora_linear(all, {}, gx, gw, {}, ga, gb, 2.0f);
    const std::vector<uint8_t> ref = raw(*gpu, all);
    for (int64_t m : {1, 5, 33, 200}) {
      for (int64_t r0 : {int64_t(0), M - m}) {
        Buffer part = put(*gpu, DType::F32, {m, N}, {});
        gpu->lora_linear(part, {}, gx.t().slice_rows(r0, m), gw, {}, ga, gb, 2.0f);
        const std::vector<uint8_t> got = raw(*gpu, part);
        CHECK(std::memcmp(got.data(), ref.data() + r0 * N * 4, got.size()) == 0);
      }
    }
  }
}

TEST(cuda_rows_and_elementwise_ops_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  // tolerances: F32 1e-5 (same fp32 formula), BF16 outputs 8e-3 (one bf16 rounding)
  auto tol = [](DType t) { return t == DType::F32 ? 1e-5 : 8e-3; };
  for (DType dt : {DType::BF16, DType::F32}) {
    for (int64_t rows : {1, 7, 300}) {
      for (int64_t D : {1, 33, 128, 1023, 1024}) {
        auto x = rnd(rows * D, 20), y = rnd(rows * D, 21), w = rnd(D, 22);
        Buffer cx = put(*cpu, DType::F32, {rows, D}, x), cy = put(*cpu, DType::F32, {rows, D}, y),
               cw = put(*cpu, DType::F32, {D}, w), co = put(*cpu, DType::F32, {rows, D}, {});
        Buffer gx = put(*gpu, dt, {rows, D}, x), gy = put(*gpu, dt, {rows, D}, y), gw = put(*gpu, DType::BF16, {D}, w),
               go = put(*gpu, dt, {rows, D}, {});
        cpu->rmsnorm(co, cx, cw, 1e-6f);
        gpu->rmsnorm(go, gx, gw, 1e-6f);
        CHECK(rel_err(get(*gpu, go), get(*cpu, co)) < tol(dt));
        gpu->rmsnorm(gx, gx, gw, 1e-6f);  // in place
        CHECK(raw(*gpu, gx) == raw(*gpu, go));
        gpu->upload(gx, x.data(), DType::F32);
        cpu->add(co, cx, cy);
        gpu->add(go, gx, gy);
        CHECK(rel_err(get(*gpu, go), get(*cpu, co)) < tol(dt));
        cpu->swiglu(co, cx, cy);
        gpu->swiglu(go, gx, gy);
        CHECK(rel_err(get(*gpu, go), get(*cpu, co)) < tol(dt));
        gpu->swiglu(gx, gx, gy);  // out aliases gate
        CHECK(raw(*gpu, gx) == raw(*gpu, go));
      }
    }
    // embedding: exact copies (and conversion to another dtype)
    const int64_t V = 50, D = 33, n = 9;
    auto table = rnd(V * D, 23);
    std::vector<int32_t> ids{3, 0, 49, 3, 7, 7, 12, 1, 48};
    Buffer gt = put(*gpu, dt, {V, D}, table), gid = put_i32(*gpu, ids);
    for (DType od : {dt, DType::F32}) {
      Buffer go = put(*gpu, od, {n, D}, {});
      gpu->embedding(go, gt, gid);
      const std::vector<float> got = get(*gpu, go);
      bool same = true;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < D; ++j) same = same && got[i * D + j] == table[ids[i] * D + j];
      CHECK(same);
    }
    std::vector<int32_t> bad{3, 50};
    Buffer gbad = put_i32(*gpu, bad), go2 = put(*gpu, dt, {2, D}, {});
    CHECK_THROWS_CODE((gpu->embedding(go2, gt, gbad), gpu->synchronize()), ErrorCode::kInvalidArgument);
    gpu->synchronize();  // the error word was cleared by the throw
  }
}

TEST(cuda_rope_and_kv_store_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  for (DType dt : {DType::BF16, DType::F32}) {
    for (int hd : {64, 128, 18}) {
      const int64_t n = 13, H = 3, max_pos = 700;
      std::vector<float> cs(max_pos * hd);
      for (int64_t p = 0; p < max_pos; ++p)
        for (int i = 0; i < hd / 2; ++i) {
          const double ang = p * std::pow(10000.0, -2.0 * i / hd);
          cs[p * hd + i] = static_cast<float>(std::cos(ang));
          cs[p * hd + hd / 2 + i] = static_cast<float>(std::sin(ang));
        }
      std::vector<int32_t> pos(n);
      for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>((i * 97 + 5) % max_pos);
      auto x = rnd(n * H * hd, 30);
      Buffer cx = put(*cpu, DType::F32, {n, H * hd}, x), gx = put(*gpu, dt, {n, H * hd}, x);
      Buffer ccs = put(*cpu, DType::F32, {max_pos, hd}, cs), gcs = put(*gpu, DType::F32, {max_pos, hd}, cs);
      Buffer cp = put_i32(*cpu, pos), gp = put_i32(*gpu, pos);
      cpu->rope(cx, cp, ccs, hd);
      gpu->rope(gx, gp, gcs, hd);
      CHECK(rel_err(get(*gpu, gx), get(*cpu, cx)) < (dt == DType::F32 ? 1e-5 : 8e-3));
      gpu->rope_backward(gx, gp, gcs, hd);  // the inverse rotation restores x
      CHECK(max_abs_diff(get(*gpu, gx), x) < (dt == DType::F32 ? 1e-5 : 4e-2));
    }
    // kv_store: exact row copies into scattered slots
    const int64_t rows = 64, W = 8 * 128, n = 5;
    auto k = rnd(n * W, 31), v = rnd(n * W, 32);
    std::vector<int32_t> slots{63, 0, 17, 18, 40};
    Buffer kc = put(*gpu, dt, {rows, W}, std::vector<float>(rows * W, 0.0f)), vc = put(*gpu, dt, {rows, W}, std::vector<float>(rows * W, 0.0f));
    Buffer gk = put(*gpu, dt, {n, W}, k), gv = put(*gpu, dt, {n, W}, v), gs = put_i32(*gpu, slots);
    gpu->kv_store(kc, vc, gk, gv, gs);
    const std::vector<float> hk = get(*gpu, kc), hv = get(*gpu, vc);
    bool same = true;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < W; ++j)
        same = same && hk[slots[i] * W + j] == k[i * W + j] && hv[slots[i] * W + j] == v[i * W + j];
    CHECK(same && hk[W] == 0.0f);
    std::vector<int32_t> bad{0, 64, 1, 2, 3};
    Buffer gbad = put_i32(*gpu, bad);
    CHECK_THROWS_CODE((gpu->kv_store(kc, vc, gk, gv, gbad), gpu->synchronize()), ErrorCode::kInvalidArgument);
  }
}

namespace {

// A paged-attention scenario: sequences with random scrambled block tables, a random cache, and query rows
// (seq, pos). Runs the op on a backend in dtype dt and returns the output.
struct AttnCase {
  int hq, hkv, hd, bs;
  std::vector<int> lens;                      // context length of each sequence
  std::vector<std::pair<int, int>> queries;   // (sequence, position)
};

std::vector<float> run_attention(Backend& be, DType dt, const AttnCase& c, uint32_t seed) {
  const int num_seqs = static_cast<int>(c.lens.size());
  int max_blocks = 1;
  for (int L : c.lens) max_blocks = std::max(max_blocks, (L + c.bs - 1) / c.bs);
  const int num_blocks = num_seqs * max_blocks + 3;
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
  std::vector<int32_t> tables(perm.begin(), perm.begin() + num_seqs * max_blocks);
  const int64_t rows = int64_t(num_blocks) * c.bs, kvw = int64_t(c.hkv) * c.hd, qw = int64_t(c.hq) * c.hd;
  auto kc = rnd(rows * kvw, seed + 1), vc = rnd(rows * kvw, seed + 2);
  const int64_t n = static_cast<int64_t>(c.queries.size());
  auto q = rnd(n * qw, seed + 3);
  std::vector<int32_t> seq, pos;
  for (auto [s, p] : c.queries) {
    seq.push_back(s);
    pos.push_back(p);
  }
  Buffer bq = put(be, dt, {n, qw}, q), bk = put(be, dt, {rows, kvw}, kc), bv = put(be, dt, {rows, kvw}, vc);
  Buffer bo = put(be, dt, {n, qw}, {});
  Buffer bt = put_i32_2d(be, tables, num_seqs, max_blocks), bs = put_i32(be, seq), bp = put_i32(be, pos);
  AttentionMeta m;
  m.block_tables = bt;
  m.token_seq = bs.t().slice_rows(0, n);
  m.token_pos = bp.t().slice_rows(0, n);
  m.block_size = c.bs;
  m.num_q_heads = c.hq;
  m.num_kv_heads = c.hkv;
  m.head_dim = c.hd;
  m.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
  be.paged_attention(bo, bq, bk, bv, m);
  return get(be, bo);
}

}  // namespace

TEST(cuda_paged_attention_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  std::vector<AttnCase> cases;
  // decode (one query per sequence) with contexts across partitions: split-K + combine
  cases.push_back({16, 8, 128, 16, {1, 17, 600, 1100, 2048}, {{0, 0}, {1, 16}, {2, 599}, {3, 1099}, {4, 2047}}});
  // prefill chunks (prefill layout: rows of a sequence share tiles) mixed with a decode row
  {
    AttnCase c{16, 8, 128, 16, {41, 700, 90}, {}};
    for (int p = 0; p < 41; ++p) c.queries.push_back({0, p});
    for (int p = 500; p < 700; p += 3) c.queries.push_back({1, p});
    c.queries.push_back({2, 89});
    cases.push_back(c);
  }
  cases.push_back({8, 1, 64, 16, {33, 520}, {{0, 32}, {1, 519}, {1, 100}}});        // MQA, head_dim 64
  cases.push_back({20, 1, 64, 8, {70, 30}, {{0, 69}, {1, 29}}});                     // group of 20: two head chunks
  cases.push_back({4, 4, 256, 16, {300, 5}, {{0, 299}, {1, 4}, {0, 150}}});          // head_dim 256
  cases.push_back({6, 2, 80, 16, {45}, {{0, 44}, {0, 43}, {0, 10}, {0, 0}}});        // head_dim 80
  cases.push_back({4, 2, 34, 5, {23, 11}, {{0, 22}, {1, 10}}});                      // head_dim 34: scalar loads
  {
    AttnCase c{16, 8, 128, 16, {1500}, {}};  // a long prefill: prefill layout with in-block partition folds
    for (int p = 0; p < 1500; p += 7) c.queries.push_back({0, p});
    cases.push_back(c);
  }
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const std::vector<float> want = run_attention(*cpu, DType::F32, cases[ci], 100 + ci);
    for (DType dt : {DType::BF16, DType::F32}) {
      const std::vector<float> got = run_attention(*gpu, dt, cases[ci], 100 + ci);
      // outputs are convex combinations of N(0,1) values: absolute tolerances, F32 2e-5, BF16 1.6e-2
      const double e = max_abs_diff(got, want);
      if (!(e < (dt == DType::F32 ? 2e-5 : 1.6e-2)))
        std::fprintf(stderr, "  attention case %zu %s: max abs diff %.3g\n", ci, dn(dt), e);
      CHECK(e < (dt == DType::F32 ? 2e-5 : 1.6e-2));
    }
  }
}

// A row's attention output is bit-identical in the decode layout (split across blocks + combine) and in
// the prefill layout (one block folding partitions): batching never changes it.
TEST(cuda_paged_attention_is_batch_invariant) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  AttnCase alone{16, 8, 128, 16, {1300}, {{0, 1299}}};
  AttnCase batch = alone;
  for (int p = 0; p < 40; ++p) batch.queries.push_back({0, 1000 + p});  // n >> num_seqs: prefill layout
  const std::vector<float> a = run_attention(*gpu, DType::BF16, alone, 7);
  const std::vector<float> b = run_attention(*gpu, DType::BF16, batch, 7);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

TEST(cuda_log_softmax_gather_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  for (int64_t V : {1, 7, 8192, 8193, 151936}) {
    for (int64_t n : {1, 5, 64}) {
      if (V * n > 151936 * 8 && n > 5) continue;
      auto z = rnd(n * V, 40, 3.0f);
      std::vector<int32_t> t(n);
      for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919) % V);
      for (float inv_t : {1.0f, 1.0f / 0.7f}) {
        Buffer co = put(*cpu, DType::F32, {n}, {}), go = put(*gpu, DType::F32, {n}, {});
        cpu->log_softmax_gather(co, put(*cpu, DType::F32, {n, V}, z), put_i32(*cpu, t).t().slice_rows(0, n), inv_t);
        for (DType dt : {DType::F32, DType::BF16}) {
          gpu->log_softmax_gather(go, put(*gpu, dt, {n, V}, z), put_i32(*gpu, t).t().slice_rows(0, n), inv_t);
          // log-probs of magnitude up to ~20: absolute 2e-4 (fp32 sums of up to 150k terms)
          CHECK(max_abs_diff(get(*gpu, go), get(*cpu, co)) < 2e-4);
        }
      }
    }
  }
}

TEST(cuda_sampling_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  std::mt19937 rng(3);
  for (int64_t V : {1, 37, 1000, 151936}) {
    const int64_t B = 48;
    auto z = rnd(B * V, 50, 3.0f);
    std::vector<SamplingRow> rows(B);
    for (int64_t i = 0; i < B; ++i) {
      SamplingRow& r = rows[i];
      r.seed = rng();
      r.step = i;
      const float temps[] = {0.0f, 1.0f, 0.7f, 1.3f};
      r.temperature = temps[i % 4];
      const int ks[] = {0, 0, 1, 20, 100, 0};
      r.top_k = ks[(i / 4) % 6];
      const float ps[] = {1.0f, 0.9f, 0.95f, 0.5f, 1.0f, 0.3f, 1.0f};
      r.top_p = ps[(i / 2) % 7];
      r.min_p = (i % 5 == 0) ? 0.05f : 0.0f;
    }
    Buffer gz = put(*gpu, DType::F32, {B, V}, z);
    std::vector<int32_t> ids(B), ids2(B), cids(B);
    std::vector<float> lps(B), lps2(B), clps(B);
    gpu->sample(gz, rows.data(), ids.data(), lps.data());
    gpu->sample(gz, rows.data(), ids2.data(), lps2.data());
    CHECK(ids == ids2);  // same seeds: same tokens, bit for bit
    CHECK(std::memcmp(lps.data(), lps2.data(), B * 4) == 0);
    for (int64_t i = 0; i < B; ++i) sample_row(z.data() + i * V, V, rows[i], &cids[i], &clps[i]);
    int same = 0;
    for (int64_t i = 0; i < B; ++i) {
      if (ids[i] == cids[i]) {
        ++same;
        CHECK_NEAR(lps[i], clps[i], 2e-4);
      }
      if (rows[i].temperature <= 0.0f) CHECK(ids[i] == cids[i]);  // greedy = argmax
    }
    // expf differs from the host's by an ulp, so a draw within ~1e-7 of a CDF boundary may differ: rare
    CHECK(same >= B - 1);
    // top-k = 1 is greedy
    std::vector<SamplingRow> k1 = rows;
    for (auto& r : k1) {
      r.temperature = 1.0f;
      r.top_k = 1;
      r.top_p = 1.0f;
      r.min_p = 0.0f;
    }
    std::vector<SamplingRow> greedy = rows;
    for (auto& r : greedy) r.temperature = 0.0f;
    gpu->sample(gz, k1.data(), ids.data(), lps.data());
    gpu->sample(gz, greedy.data(), ids2.data(), lps2.data());
    CHECK(ids == ids2);
  }
  // distribution: one small row sampled with 4000 seeds matches softmax(z / T)
  const int64_t V = 6, B = 4000;
  const std::vector<float> base{1.0f, 0.0f, 2.0f, -1.0f, 0.5f, 1.5f};
  std::vector<float> z;
  for (int64_t i = 0; i < B; ++i) z.insert(z.end(), base.begin(), base.end());
  std::vector<SamplingRow> rows(B);
  for (int64_t i = 0; i < B; ++i) {
    rows[i].seed = derive_seed(99, i);
    rows[i].temperature = 0.8f;
  }
  std::vector<int32_t> ids(B);
  std::vector<float> lps(B);
  gpu->sample(put(*gpu, DType::F32, {B, V}, z), rows.data(), ids.data(), lps.data());
  std::vector<double> p(V), freq(V, 0.0);
  double s = 0;
  for (int64_t j = 0; j < V; ++j) s += p[j] = std::exp(base[j] / 0.8);
  for (int32_t id : ids) freq[id] += 1.0 / B;
  for (int64_t j = 0; j < V; ++j) CHECK_NEAR(freq[j], p[j] / s, 0.03);
}

// A tiny Qwen3 shape with head_dim 64, so the CUDA model runs the fused attention kernels.
static ModelConfig tiny_qwen3_hd64() {
  ModelConfig c;
  c.arch = Arch::Qwen3;
  c.architecture = "Qwen3ForCausalLM";
  c.qk_norm = true;
  c.tie_word_embeddings = true;
  c.vocab_size = 512;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 1024;
  c.rope_theta = 10000;
  return c;
}

// A tiny random Qwen3 model on CUDA vs CPU: logits agree to bf16 accuracy, and greedy generation on CUDA
// picks tokens the CPU model also ranks first (up to the logit tolerance). The CUDA tokens equal the argmax
// of CUDA's own full-sequence logits exactly: prefill and decode compute identical rows (batch invariance).
TEST(cuda_tiny_model_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  ModelConfig c = tiny_qwen3_hd64();
  auto mc = Model::random(*cpu, c, 21, 0.1f);
  auto mg = Model::random(*gpu, c, 21, 0.1f);
  std::vector<int32_t> prompt;
  for (int t = 0; t < 12; ++t) prompt.push_back((t * 37 + 5) % c.vocab_size);
  const std::vector<float> lc = mc->sequence_logits(prompt), lg = mg->sequence_logits(prompt);
  const double e = rel_err(lg, lc);
  std::printf("tiny model logits: cuda vs cpu rel err %.3g\n", e);
  CHECK(e < 5e-2);  // bf16 weights and activations vs f32 everywhere

  Generator gen(*mg, {});
  GenerationRequest req;
  req.prompt = prompt;
  req.max_new_tokens = 24;
  req.sampling.temperature = 0.0f;
  const std::vector<GenerationOutput> out = gen.generate({req}, GenerationOptions{});
  CHECK(out.size() == 1 && out[0].tokens.size() == 24);
  std::vector<int32_t> full = prompt;
  full.insert(full.end(), out[0].tokens.begin(), out[0].tokens.end());
  const std::vector<float> fg = mg->sequence_logits(full), fc = mc->sequence_logits(full);
  const int64_t V = c.vocab_size, P = static_cast<int64_t>(prompt.size());
  double lmax = 0;
  for (float v : fc) lmax = std::max(lmax, std::fabs(double(v)));
  for (size_t t = 0; t < out[0].tokens.size(); ++t) {
    const float* rg = &fg[(P - 1 + t) * V];
    const float* rc = &fc[(P - 1 + t) * V];
    const int32_t tok = out[0].tokens[t];
    CHECK(std::max_element(rg, rg + V) - rg == tok);                   // CUDA: exact (batch invariance)
    CHECK(*std::max_element(rc, rc + V) - rc[tok] <= 5e-2 * lmax + 1e-6);  // CPU: a near-argmax
  }
}

// Training ops that exist on CUDA so far, vs the CPU backend. Activations bf16 where the model stores them
// bf16 (tolerances: one bf16 rounding, ~1e-2 relative; GEMM-based gradients round their fp32 operands to
// bf16 on the way into the tensor cores, 2e-2), parameters/moments fp32 (1e-5 relative or better).
TEST(cuda_training_ops_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  // rmsnorm_backward (overwrite, accumulate, in place on dout)
  for (DType dt : {DType::F32, DType::BF16}) {
    for (int64_t D : {33, 1024}) {
      const int64_t rows = 7;
      auto x = rnd(rows * D, 60), g = rnd(rows * D, 61), w = rnd(D, 62), d0 = rnd(rows * D, 63);
      for (bool acc : {false, true}) {
        Buffer cdx = put(*cpu, DType::F32, {rows, D}, d0), gdx = put(*gpu, dt, {rows, D}, d0);
        cpu->rmsnorm_backward(cdx, put(*cpu, DType::F32, {rows, D}, g), put(*cpu, DType::F32, {rows, D}, x),
                              put(*cpu, DType::F32, {D}, w), 1e-6f, acc);
        gpu->rmsnorm_backward(gdx, put(*gpu, dt, {rows, D}, g), put(*gpu, dt, {rows, D}, x), put(*gpu, DType::BF16, {D}, w),
                              1e-6f, acc);
        CHECK(rel_err(get(*gpu, gdx), get(*cpu, cdx)) < (dt == DType::F32 ? 1e-5 : 1e-2));
      }
      Buffer gg = put(*gpu, dt, {rows, D}, g), cg = put(*cpu, DType::F32, {rows, D}, g);
      cpu->rmsnorm_backward(cg, cg, put(*cpu, DType::F32, {rows, D}, x), put(*cpu, DType::F32, {D}, w), 1e-6f, false);
      gpu->rmsnorm_backward(gg, gg, put(*gpu, dt, {rows, D}, x), put(*gpu, DType::BF16, {D}, w), 1e-6f, false);
      CHECK(rel_err(get(*gpu, gg), get(*cpu, cg)) < (dt == DType::F32 ? 1e-5 : 1e-2));
    }
    // swiglu_backward with outputs aliasing the inputs, as the training graph calls it
    const int64_t n = 1001;
    auto ga = rnd(n, 64), up = rnd(n, 65), dout = rnd(n, 66);
    Buffer cga = put(*cpu, DType::F32, {n}, ga), cup = put(*cpu, DType::F32, {n}, up);
    Buffer gga = put(*gpu, dt, {n}, ga), gup = put(*gpu, dt, {n}, up);
    cpu->swiglu_backward(cga, cup, put(*cpu, DType::F32, {n}, dout), cga, cup);
    gpu->swiglu_backward(gga, gup, put(*gpu, dt, {n}, dout), gga, gup);
    CHECK(rel_err(get(*gpu, gga), get(*cpu, cga)) < (dt == DType::F32 ? 1e-5 : 1e-2));
    CHECK(rel_err(get(*gpu, gup), get(*cpu, cup)) < (dt == DType::F32 ? 1e-5 : 1e-2));
    // scatter_add_rows
    const int64_t R = 10, D = 33;
    auto base = rnd(R * D, 67), src = rnd(3 * D, 68);
    std::vector<int32_t> ids{7, 0, 9};
    Buffer co = put(*cpu, DType::F32, {R, D}, base), go = put(*gpu, dt, {R, D}, base);
    cpu->scatter_add_rows(co, put(*cpu, DType::F32, {3, D}, src), put_i32(*cpu, ids));
    gpu->scatter_add_rows(go, put(*gpu, dt, {3, D}, src), put_i32(*gpu, ids));
    CHECK(rel_err(get(*gpu, go), get(*cpu, co)) < (dt == DType::F32 ? 1e-6 : 1e-2));
  }
  // adamw_step and sum_squares (fp32 parameters and moments)
  {
    const int64_t n = 1000;
    auto p = rnd(n, 70), g = rnd(n, 71), m = rnd(n, 72, 0.1f), v = rnd(n, 73, 0.1f);
    for (auto& x : v) x = std::fabs(x);
    AdamWParams ap;
    ap.lr = 1e-3;
    ap.weight_decay = 0.01;
    ap.grad_scale = 0.5;
    ap.step = 3;
    Buffer cp = put(*cpu, DType::F32, {n}, p), cm = put(*cpu, DType::F32, {n}, m), cv = put(*cpu, DType::F32, {n}, v);
    Buffer gp = put(*gpu, DType::F32, {n}, p), gm = put(*gpu, DType::F32, {n}, m), gv = put(*gpu, DType::F32, {n}, v);
    cpu->adamw_step(cp, put(*cpu, DType::F32, {n}, g), cm, cv, ap);
    gpu->adamw_step(gp, put(*gpu, DType::F32, {n}, g), gm, gv, ap);
    CHECK(rel_err(get(*gpu, gp), get(*cpu, cp)) < 1e-6);
    CHECK(rel_err(get(*gpu, gm), get(*cpu, cm)) < 1e-6);
    CHECK(rel_err(get(*gpu, gv), get(*cpu, cv)) < 1e-6);
    auto big = rnd(100003, 74);
    const double want = cpu->sum_squares(put(*cpu, DType::F32, {100003}, big));
    CHECK_NEAR(gpu->sum_squares(put(*gpu, DType::F32, {100003}, big)), want, 1e-9 * want);
    std::vector<float> bad{1.0f, std::numeric_limits<float>::infinity()};
    CHECK(!std::isfinite(gpu->sum_squares(put(*gpu, DType::F32, {2}, bad))));
  }
  // adamw_step_multi: one launch over several tensors (odd sizes, a 1-element one, some spanning several
  // chunks) vs the CPU's adamw_step per tensor (1e-6, as adamw_step), and bit-identical to the CUDA
  // adamw_step per tensor (the same per-element function). Two steps: the second reuses the cached table;
  // then a different tensor list (re-upload).
  {
    const std::vector<int64_t> sizes{1000, 1, 3, g::kAdamWChunk + 17, 2 * g::kAdamWChunk, 12345};
    AdamWParams ap;
    ap.lr = 1e-3;
    ap.weight_decay = 0.01;
    ap.grad_scale = 0.7;
    struct Set {
      std::vector<Buffer> p, g, m, v;
      std::vector<AdamWTensorRef> refs;
    };
    auto make_set = [&](Backend& be) {
      Set st;
      for (size_t i = 0; i < sizes.size(); ++i) {
        const int64_t n = sizes[i];
        auto vv = rnd(size_t(n), 203 + 4 * uint32_t(i), 0.1f);
        for (auto& e : vv) e = std::fabs(e);
        st.p.push_back(put(be, DType::F32, {n}, rnd(size_t(n), 200 + 4 * uint32_t(i))));
        st.g.push_back(put(be, DType::F32, {n}, rnd(size_t(n), 201 + 4 * uint32_t(i))));
        st.m.push_back(put(be, DType::F32, {n}, rnd(size_t(n), 202 + 4 * uint32_t(i), 0.1f)));
        st.v.push_back(put(be, DType::F32, {n}, vv));
        st.refs.push_back({st.p.back(), st.g.back(), st.m.back(), st.v.back()});
      }
      return st;
    };
    Set cs = make_set(*cpu), gs = make_set(*gpu), gs1 = make_set(*gpu);
    for (int64_t step = 1; step <= 2; ++step) {
      ap.step = step;
      for (const AdamWTensorRef& t : cs.refs) cpu->adamw_step(t.param, t.grad, t.m, t.v, ap);
      gpu->adamw_step_multi(gs.refs, ap);
      for (const AdamWTensorRef& t : gs1.refs) gpu->adamw_step(t.param, t.grad, t.m, t.v, ap);
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      for (auto [c, gg, g1] : {std::array<const std::vector<Buffer>*, 3>{&cs.p, &gs.p, &gs1.p},
                               std::array<const std::vector<Buffer>*, 3>{&cs.m, &gs.m, &gs1.m},
                               std::array<const std::vector<Buffer>*, 3>{&cs.v, &gs.v, &gs1.v}}) {
        CHECK(rel_err(get(*gpu, (*gg)[i]), get(*cpu, (*c)[i])) < 1e-6);
        CHECK(raw(*gpu, (*gg)[i]) == raw(*gpu, (*g1)[i]));
      }
    }
    // a different list (a subset, reversed): the table is re-uploaded
    std::vector<AdamWTensorRef> sub{gs.refs[5], gs.refs[0]}, sub1{gs1.refs[5], gs1.refs[0]};
    ap.step = 3;
    gpu->adamw_step_multi(sub, ap);
    for (const AdamWTensorRef& t : sub1) gpu->adamw_step(t.param, t.grad, t.m, t.v, ap);
    for (size_t i : {size_t(0), size_t(5)}) CHECK(raw(*gpu, gs.p[i]) == raw(*gpu, gs1.p[i]));
    // validation at the boundary
    std::vector<AdamWTensorRef> badl{{gs.p[0], gs.g[2], gs.m[0], gs.v[0]}};
    CHECK_THROWS_CODE(gpu->adamw_step_multi(badl, ap), ErrorCode::kInvalidArgument);
    ap.step = 0;
    CHECK_THROWS_CODE(gpu->adamw_step_multi(gs.refs, ap), ErrorCode::kInvalidArgument);
  }
  // lora_linear_backward: dx (overwrite and accumulate), dA, dB accumulate
  // dx = [dout | t] [W ; A] is one fused GEMM (t = scale dout B, r extra reduction columns); shapes with odd
  // M, N, K, r, and f32 activations; tolerances 2e-2 (bf16 operands on the tensor cores).
  for (auto [M, N, K, r] : std::vector<std::array<int64_t, 4>>{{37, 65, 96, 8}, {64, 1024, 1024, 32}, {3, 17, 33, 3},
                                                               {130, 257, 200, 16}, {1, 300, 1000, 64}}) {
   for (DType dt : {DType::BF16, DType::F32}) {
    auto dout = rnd(M * N, 80), x = rnd(M * K, 81), w = rnd(N * K, 82, 0.05f), A = rnd(r * K, 83, 0.1f),
         B = rnd(N * r, 84, 0.1f), dA0 = rnd(r * K, 85, 0.1f), dB0 = rnd(N * r, 86, 0.1f), dx0 = rnd(M * K, 87);
    std::vector<float> xa(M * r);  // x A^T of the forward (bf16-rounded, as the CUDA forward stores it)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < r; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += double(x[i * K + k]) * A[j * K + k];
        xa[i * r + j] = bf16r(static_cast<float>(s));
      }
    for (bool acc : {false, true}) {
      Buffer cdx = put(*cpu, DType::F32, {M, K}, dx0), cda = put(*cpu, DType::F32, {r, K}, dA0), cdb = put(*cpu, DType::F32, {N, r}, dB0);
      Buffer gdx = put(*gpu, dt, {M, K}, dx0), gda = put(*gpu, DType::F32, {r, K}, dA0), gdb = put(*gpu, DType::F32, {N, r}, dB0);
      cpu->lora_linear_backward(cdx, cda, cdb, put(*cpu, DType::F32, {M, N}, dout), put(*cpu, DType::F32, {M, K}, x),
                                put(*cpu, DType::F32, {M, r}, xa), put(*cpu, DType::F32, {N, K}, w),
                                put(*cpu, DType::F32, {r, K}, A), put(*cpu, DType::F32, {N, r}, B), 2.0f, acc);
      gpu->lora_linear_backward(gdx, gda, gdb, put(*gpu, dt, {M, N}, dout), put(*gpu, dt, {M, K}, x),
                                put(*gpu, dt, {M, r}, xa), put(*gpu, dt, {N, K}, w),
                                put(*gpu, DType::F32, {r, K}, A), put(*gpu, DType::F32, {N, r}, B), 2.0f, acc);
      CHECK(rel_err(get(*gpu, gdx), get(*cpu, cdx)) < 2e-2);
      CHECK(rel_err(get(*gpu, gda), get(*cpu, cda)) < 2e-2);
      CHECK(rel_err(get(*gpu, gdb), get(*cpu, cdb)) < 2e-2);
    }
    // dx absent: only the adapter gradients (no fused dx launch)
    Buffer cda = put(*cpu, DType::F32, {r, K}, dA0), cdb = put(*cpu, DType::F32, {N, r}, dB0);
    Buffer gda = put(*gpu, DType::F32, {r, K}, dA0), gdb = put(*gpu, DType::F32, {N, r}, dB0);
    cpu->lora_linear_backward({}, cda, cdb, put(*cpu, DType::F32, {M, N}, dout), put(*cpu, DType::F32, {M, K}, x),
                              put(*cpu, DType::F32, {M, r}, xa), put(*cpu, DType::F32, {N, K}, w),
                              put(*cpu, DType::F32, {r, K}, A), put(*cpu, DType::F32, {N, r}, B), 2.0f, false);
    gpu->lora_linear_backward({}, gda, gdb, put(*gpu, dt, {M, N}, dout), put(*gpu, dt, {M, K}, x), put(*gpu, dt, {M, r}, xa),
                              put(*gpu, dt, {N, K}, w), put(*gpu, DType::F32, {r, K}, A), put(*gpu, DType::F32, {N, r}, B),
                              2.0f, false);
    CHECK(rel_err(get(*gpu, gda), get(*cpu, cda)) < 2e-2);
    CHECK(rel_err(get(*gpu, gdb), get(*cpu, cdb)) < 2e-2);
   }
  }
  // logprob_forward / logprob_backward over one chunk
  {
    const int64_t m = 5, D = 64, V = 1000;
    auto h = rnd(m * D, 90), lm = rnd(V * D, 91, 0.3f), dlp = rnd(m, 92);
    std::vector<int32_t> t{3, 999, 0, 512, 77};
    const float inv_t = 1.0f / 0.7f;
    Buffer clp = put(*cpu, DType::F32, {m}, {}), clse = put(*cpu, DType::F32, {m}, {}), cent = put(*cpu, DType::F32, {m}, {});
    Buffer glp = put(*gpu, DType::F32, {m}, {}), glse = put(*gpu, DType::F32, {m}, {}), gent = put(*gpu, DType::F32, {m}, {});
    Buffer ch = put(*cpu, DType::F32, {m, D}, h), clm = put(*cpu, DType::F32, {V, D}, lm), ct = put_i32(*cpu, t);
    Buffer gh = put(*gpu, DType::BF16, {m, D}, h), glm = put(*gpu, DType::BF16, {V, D}, lm), gt = put_i32(*gpu, t);
    cpu->logprob_forward(clp, clse, cent, ch, clm, ct, inv_t);
    gpu->logprob_forward(glp, glse, gent, gh, glm, gt, inv_t);
    CHECK(max_abs_diff(get(*gpu, glp), get(*cpu, clp)) < 1e-4);
    CHECK(max_abs_diff(get(*gpu, glse), get(*cpu, clse)) < 1e-4);
    CHECK(max_abs_diff(get(*gpu, gent), get(*cpu, cent)) < 1e-4);
    Buffer cdh = put(*cpu, DType::F32, {m, D}, {}), gdh = put(*gpu, DType::BF16, {m, D}, {});
    cpu->logprob_backward(cdh, put(*cpu, DType::F32, {m}, dlp), ch, clm, ct, clse, inv_t);
    gpu->logprob_backward(gdh, put(*gpu, DType::F32, {m}, dlp), gh, glm, gt, glse, inv_t);
    CHECK(rel_err(get(*gpu, gdh), get(*cpu, cdh)) < 2e-2);
  }
}

// ---- fused varlen attention: CUDA vs CPU ------------------------------------------------------------------

namespace {

struct VarlenCase {
  std::vector<int> lens;
  int hq, hkv, hd;
};

struct VarlenResult {
  std::vector<float> out, lse, dq, dk, dv;
};

// attention_forward then attention_backward (from the backend's own out / lse, as training runs them) on the
// same random inputs; q/k/v/dout bf16-exact, so both backends start from identical values.
VarlenResult run_varlen_attention(Backend& be, DType dt, const VarlenCase& c, uint32_t seed) {
  std::vector<int32_t> cu{0};
  int max_len = 0;
  for (int L : c.lens) {
    cu.push_back(cu.back() + L);
    max_len = std::max(max_len, L);
  }
  const int64_t n = cu.back(), qw = int64_t(c.hq) * c.hd, kw = int64_t(c.hkv) * c.hd;
  auto q = rnd(n * qw, seed), k = rnd(n * kw, seed + 1), v = rnd(n * kw, seed + 2), dout = rnd(n * qw, seed + 3);
  Buffer bq = put(be, dt, {n, qw}, q), bk = put(be, dt, {n, kw}, k), bv = put(be, dt, {n, kw}, v);
  Buffer bdo = put(be, dt, {n, qw}, dout), bo = put(be, dt, {n, qw}, {});
  Buffer blse = put(be, be.param_dtype(), {n, c.hq}, {});
  Buffer bdq = put(be, dt, {n, qw}, {}), bdk = put(be, dt, {n, kw}, {}), bdv = put(be, dt, {n, kw}, {});
  Buffer bcu = put_i32(be, cu);
  VarlenMeta m;
  m.cu_seqlens = bcu.t().slice_rows(0, static_cast<int64_t>(cu.size()));
  m.max_seqlen = max_len;
  m.num_q_heads = c.hq;
  m.num_kv_heads = c.hkv;
  m.head_dim = c.hd;
  m.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
  be.attention_forward(bo, blse, bq, bk, bv, m);
  be.attention_backward(bdq, bdk, bdv, bdo, bq, bk, bv, bo, blse, m);
  return {get(be, bo), get(be, blse), get(be, bdq), get(be, bdk), get(be, bdv)};
}

}  // namespace

// Tolerances (inputs bf16-exact; the CUDA kernels read bf16 operands on the tensor cores and round P / dS
// to bf16 for the second product of each pair, accumulating in fp32):
//   out:          max |diff| <= 1e-2 (F32 storage), 2e-2 (BF16 storage: plus one output rounding);
//                 outputs are convex combinations of N(0,1) values, so absolute error is the right scale
//   lse:          max |diff| <= 2e-3 (fp32 scores of exact bf16 products; exp2/log2 approximations)
//   dq, dk, dv:   max |diff| / max |cpu| <= 3e-2 (F32), 5e-2 (BF16)
TEST(cuda_attention_forward_backward_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  const std::vector<VarlenCase> cases = {
      {{1, 7, 33, 100}, 4, 2, 64},    // GQA, odd lengths, hd 64
      {{100, 1, 7}, 2, 2, 128},       // MHA, hd 128
      {{33, 130}, 8, 1, 128},         // MQA, several query and key tiles
      {{7, 70, 1}, 4, 4, 64},         // MHA, hd 64
      {{0, 5, 0, 64, 65}, 4, 2, 64},  // empty sequences, tile-boundary lengths
      {{300}, 2, 1, 128},             // one long sequence: many tiles, GQA sums over 2 heads
      {{45, 1}, 4, 2, 80},            // head_dim 80: padded to the 128 bucket
      {{9, 20}, 2, 1, 34},            // head_dim 34: element loads, padded to 64
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const VarlenCase& c = cases[ci];
    const VarlenResult want = run_varlen_attention(*cpu, DType::F32, c, 300 + 10 * static_cast<uint32_t>(ci));
    for (DType dt : {DType::BF16, DType::F32}) {
      const VarlenResult got = run_varlen_attention(*gpu, dt, c, 300 + 10 * static_cast<uint32_t>(ci));
      const bool f32 = dt == DType::F32;
      const double e_out = max_abs_diff(got.out, want.out), e_lse = max_abs_diff(got.lse, want.lse);
      const double e_dq = rel_err(got.dq, want.dq), e_dk = rel_err(got.dk, want.dk), e_dv = rel_err(got.dv, want.dv);
      std::printf("  attention case %zu (hq %d hkv %d hd %d) %s: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e\n", ci, c.hq,
                  c.hkv, c.hd, dn(dt), e_out, e_lse, e_dq, e_dk, e_dv);
      CHECK(e_out <= (f32 ? 1e-2 : 2e-2));
      CHECK(e_lse <= 2e-3);
      const double tg = f32 ? 3e-2 : 5e-2;
      CHECK(e_dq <= tg && e_dk <= tg && e_dv <= tg);
    }
  }
}

// The backward is deterministic (no float atomics), and bad metadata is reported.
TEST(cuda_attention_deterministic_and_rejects_bad_input) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  const VarlenCase c{{37, 200, 3}, 8, 2, 128};
  const VarlenResult a = run_varlen_attention(*gpu, DType::BF16, c, 77), b = run_varlen_attention(*gpu, DType::BF16, c, 77);
  CHECK(std::memcmp(a.dq.data(), b.dq.data(), a.dq.size() * 4) == 0);
  CHECK(std::memcmp(a.dk.data(), b.dk.data(), a.dk.size() * 4) == 0);
  CHECK(std::memcmp(a.dv.data(), b.dv.data(), a.dv.size() * 4) == 0);
  // cu_seqlens values live on the device: checked by a kernel, reported at the next sync
  const int64_t n = 8, w = 2 * 64;
  Buffer q = put(*gpu, DType::BF16, {n, w}, rnd(n * w, 1)), o = put(*gpu, DType::BF16, {n, w}, {});
  Buffer lse = put(*gpu, DType::F32, {n, 2}, {});
  VarlenMeta m;
  m.num_q_heads = 2;
  m.num_kv_heads = 2;
  m.head_dim = 64;
  m.scale = 0.125f;
  for (const std::vector<int32_t>& cu : {std::vector<int32_t>{0, 5, 3, 8}, std::vector<int32_t>{0, 5, 7},
                                         std::vector<int32_t>{1, 8}}) {
    Buffer bcu = put_i32(*gpu, cu);
    m.cu_seqlens = bcu.t().slice_rows(0, static_cast<int64_t>(cu.size()));
    m.max_seqlen = 8;
    CHECK_THROWS_CODE((gpu->attention_forward(o, lse, q, q, q, m), gpu->synchronize()), ErrorCode::kInvalidArgument);
  }
  std::vector<int32_t> cu{0, 5, 8};
  Buffer bcu = put_i32(*gpu, cu);
  m.cu_seqlens = bcu.t().slice_rows(0, 3);
  m.max_seqlen = 4;  // understated: the 5-token sequence is longer
  CHECK_THROWS_CODE((gpu->attention_forward(o, lse, q, q, q, m), gpu->synchronize()), ErrorCode::kInvalidArgument);
  m.max_seqlen = 5;
  gpu->attention_forward(o, lse, q, q, q, m);
  gpu->synchronize();
  m.head_dim = 256;  // above the kernels' limit: a clear error at the call
  m.num_q_heads = m.num_kv_heads = 1;
  Buffer q256 = put(*gpu, DType::BF16, {n, 256}, rnd(n * 256, 2)), o256 = put(*gpu, DType::BF16, {n, 256}, {});
  Buffer lse1 = put(*gpu, DType::F32, {n, 1}, {});
  CHECK_THROWS_CODE(gpu->attention_forward(o256, lse1, q256, q256, q256, m), ErrorCode::kInvalidArgument);
}

// One GRPO step of a tiny random Qwen3 model (head_dim 64: the fused attention kernels) on CUDA vs CPU:
// the same weights, adapters, batch and loss; the loss, every LoRA gradient and the gradient norm agree to
// bf16 accuracy (the CUDA model keeps weights and activations in bf16, the CPU one in f32). Tolerances:
// loss 2e-2 relative; each adapter's gradients 1e-1 relative (max |diff| / max |cpu|), all gradients
// together 5e-2; gradient norm 3e-2 relative; the AdamW step is applied on both.
TEST(cuda_grpo_step_vs_cpu) {
  if (!cuda_present()) return;
  auto [cpu, gpu] = make_pair_of_backends();
  ModelConfig c = tiny_qwen3_hd64();
  c.rms_norm_eps = 1e-6;
  LoraConfig lc;
  lc.rank = 8;
  lc.alpha = 16;
  lc.seed = 3;
  for (int l = 0; l < c.num_layers; ++l)
    for (int t = 0; t < kNumLoraTargets; ++t) lc.modules.push_back({l, static_cast<LoraTarget>(t)});
  TrainBatch batch;
  std::mt19937 rng(9);
  const int prompts[] = {5, 1, 12, 7}, completions[] = {9, 32, 88, 0};  // lengths 14, 33, 100, 7
  for (int s = 0; s < 4; ++s) {
    for (int i = 0; i < prompts[s] + completions[s]; ++i) batch.packed.tokens.push_back(static_cast<int32_t>(rng() % c.vocab_size));
    batch.packed.seq_lens.push_back(prompts[s] + completions[s]);
    batch.packed.prompt_lens.push_back(prompts[s]);
  }
  batch.advantages = {1.2, -0.7, 0.4, -0.9};
  LossOptions lo;
  lo.beta = 0.04;  // the reference pass (LoRA off) runs too
  struct Run {
    double loss = 0, norm = 0;
    std::vector<std::vector<float>> grads;
    bool applied = false;
  };
  auto run = [&](Backend& be) {
    auto model = Model::random(be, c, 21, 0.1f);
    LoraSet& lora = model->attach_lora(lc);
    uint32_t seed = 500;
    for (LoraAdapter& a : lora.adapters()) {  // B = 0 at init (PEFT): random B makes every gradient non-zero
      const std::vector<float> b = rnd(static_cast<size_t>(a.b.t().numel()), seed++, 0.1f);
      be.upload(a.b, b.data(), DType::F32);
    }
    TrainerOptions to;
    to.optimizer.lr = 1e-3;
    to.logits_chunk = 64;
    Trainer tr(*model, to);
    tr.zero_grad();
    Run r;
    const ForwardBackwardResult fb = tr.forward_backward(batch, lo);
    CHECK(fb.finite);
    r.loss = fb.loss.loss;
    for (LoraAdapter& a : lora.adapters()) {
      r.grads.push_back(get(be, a.grad_a));
      r.grads.push_back(get(be, a.grad_b));
    }
    const StepResult st = tr.step();
    r.norm = st.grad_norm;
    r.applied = st.applied;
    return r;
  };
  const Run rc = run(*cpu), rg = run(*gpu);
  std::vector<float> all_c, all_g;
  double worst = 0;
  for (size_t i = 0; i < rc.grads.size(); ++i) {
    worst = std::max(worst, rel_err(rg.grads[i], rc.grads[i]));
    all_c.insert(all_c.end(), rc.grads[i].begin(), rc.grads[i].end());
    all_g.insert(all_g.end(), rg.grads[i].begin(), rg.grads[i].end());
  }
  const double overall = rel_err(all_g, all_c);
  std::printf("GRPO step cuda vs cpu: loss %.6g vs %.6g, grad norm %.6g vs %.6g, LoRA grads rel err %.3g (worst tensor %.3g)\n",
              rg.loss, rc.loss, rg.norm, rc.norm, overall, worst);
  CHECK(std::fabs(rg.loss - rc.loss) <= 2e-2 * std::max(1e-3, std::fabs(rc.loss)));
  CHECK(overall < 5e-2);
  CHECK(worst < 1e-1);
  CHECK(std::fabs(rg.norm - rc.norm) <= 3e-2 * rc.norm);
  CHECK(rc.applied && rg.applied);
}
