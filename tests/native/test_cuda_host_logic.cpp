// Host-side logic of the CUDA backend, checked on every machine, GPU or not (no device needed): launch
// plans, GEMM tiling and split decisions, attention partitioning, the fused varlen attention's tile
// decomposition and tensor-core fragment layouts (replayed against the PTX ldmatrix / mma semantics),
// allocator size classes, argument checks, and the sampler's threshold algorithm against the CPU
// backend's sample_row. The kernels themselves are checked against the CPU backend in test_cuda_vs_cpu.cpp.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../../cuda/cuda_op_checks.h"
#include "../../cuda/op_check_cases.h"
#include "../../cuda/plan.h"
#include "../../cuda/sampling_select.h"
#include "backend.h"
#include "check.h"
#include "cpu/cpu_backend.h"
#include "cpu/vec_math.h"
#include "rng.h"

using namespace hayate;
namespace g = hayate::gpu;

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

// ---- GEMM layouts, split-K slices and the coverage of the qwen3-0.6b products ---------------------------

// Which operands take the 16-byte copies: K-contiguous ones need K % 8 == 0; M/N-contiguous ones need their
// copies (up to 7 elements past the extent) inside the row; bf16 and 16-byte aligned always; TT is generic.
TEST(cuda_plan_gemm_fast_layouts) {
  alignas(16) static char buf[64];
  using L = g::GemmLayout;
  // (a_bf16, b_bf16, trans_a, trans_b, M, N, K, lda, ldb)
  CHECK(g::gemm_fast_layout(true, true, false, true, 7, 9, 64, 64, 64, buf, buf) == L::NT);
  CHECK(g::gemm_fast_layout(true, true, false, false, 7, 1024, 64, 64, 1024, buf, buf) == L::NN);
  CHECK(g::gemm_fast_layout(true, true, true, false, 1024, 512, 33, 1024, 512, buf, buf) == L::TN);  // K free
  CHECK(g::gemm_fast_layout(true, true, true, true, 16, 16, 16, 16, 16, buf, buf) == L::Generic);
  CHECK(g::gemm_fast_layout(false, true, false, false, 8, 8, 8, 8, 8, buf, buf) == L::Generic);
  CHECK(g::gemm_fast_layout(true, true, false, false, 8, 1000, 60, 60, 1000, buf, buf) == L::Generic);  // K % 8
  CHECK(g::gemm_fast_layout(true, true, false, false, 8, 1001, 64, 64, 1001, buf, buf) == L::Generic);  // N row
  // a view of the first 5 of 8 columns (t / xa of the LoRA backward): copies stay inside the row
  CHECK(g::gemm_fast_layout(true, true, true, false, 5, 1024, 300, 8, 1024, buf, buf) == L::TN);
  CHECK(g::gemm_fast_layout(true, true, false, false, 300, 5, 1024, 1024, 8, buf, buf) == L::NN);
  CHECK(g::gemm_fast_layout(true, true, true, false, 5, 1024, 300, 5, 1024, buf, buf) == L::Generic);
  CHECK(g::gemm_fast_layout(true, true, false, false, 8, 8, 8, 8, 8, buf + 2, buf) == L::Generic);
  // planning: NT always folds (batch-invariant), an invariant NN / TN request runs the generic loader,
  // NN / TN gradients get one accumulator set
  const g::GemmPlan nt = g::plan_gemm(g::GemmProblem{64, 1024, 1024, 0, L::NT, false}, 132);
  CHECK(nt.invariant && nt.layout == L::NT);
  const g::GemmPlan nn_inv = g::plan_gemm(g::GemmProblem{64, 1024, 1024, 0, L::NN, true}, 132);
  CHECK(nn_inv.invariant && nn_inv.layout == L::Generic && !nn_inv.fast);
  const g::GemmPlan tn = g::plan_gemm(g::GemmProblem{16, 1024, 2048, 0, L::TN, false}, 132);
  CHECK(!tn.invariant && tn.fast && tn.layout == L::TN);
  // shared memory of each staging: [rows][BK + 8] K-contiguous, [BK][rows + 8] otherwise, 3 stages
  for (g::GemmTile t : {g::GemmTile::S16x64, g::GemmTile::M64x64, g::GemmTile::L128x128}) {
    const g::GemmTileShape sh = g::gemm_tile_shape(t);
    CHECK(g::gemm_smem_bytes(sh, L::TN) == size_t(3) * 2 * (32 * (sh.bm + 8) + 32 * (sh.bn + 8)));
    CHECK(g::gemm_smem_bytes(sh, L::NN) == size_t(3) * 2 * (sh.bm * 40 + 32 * (sh.bn + 8)));
    CHECK(g::gemm_smem_bytes(sh, L::NT) == g::gemm_smem_bytes(sh, true));
    CHECK(g::gemm_smem_bytes(sh, L::TN) <= 227 * 1024);
    // ldmatrix rows of a [BK][rows + 8] staging are an odd number of 16-byte units apart: conflict-free
    CHECK((g::gemm_stage_ld(sh.bm, false) * 2 / 16) % 2 == 1 && (g::gemm_stage_ld(sh.bn, false) * 2 / 16) % 2 == 1);
  }
}

// Single-accumulator plans cut the k-tiles into contiguous slices (grid.z), read back in slice order by the
// reduce kernel: every tile in exactly one slice, in order, none empty, each >= kGemmMinTilesPerSlice
// tiles; enough slices that tiles x slices reaches the SM count when K allows; partials within the cap.
TEST(cuda_plan_gemm_split_k_slices) {
  for (int sms : {108, 132}) {
    for (auto [M, N, K, K2] : std::vector<std::array<int64_t, 4>>{{128, 1024, 151936, 0}, {20, 1024, 151936, 0},
                                                                  {16, 1024, 2048, 0}, {2048, 16, 3072, 0},
                                                                  {512, 1024, 3072, 16}, {2048, 3072, 1024, 64},
                                                                  {37, 65, 127, 5}, {64, 64, 300, 0}, {1, 1, 1, 0}}) {
      const g::GemmPlan p = g::plan_gemm(g::GemmProblem{M, N, K, K2, g::GemmLayout::NN, false}, sms);
      const int64_t kt = g::gemm_k_tiles(K) + g::gemm_k_tiles(K2), tiles = p.tiles_m * p.tiles_n;
      CHECK(!p.invariant);
      CHECK(p.split == (p.splits >= 2));
      CHECK(p.workspace_bytes == (p.split ? size_t(M) * N * p.splits * 4 : 0) && p.workspace_bytes <= g::kGemmMaxPartialBytes);
      if (tiles >= sms) CHECK(!p.split);
      if (tiles < sms && kt >= g::kGemmMinTilesPerSlice * g::ceil_div(sms, tiles)) CHECK(p.blocks() >= sms);
      int64_t next = 0;
      for (int64_t s = 0; s < p.splits; ++s) {
        const int64_t b = g::gemm_slice_tile_begin(s, p.splits, kt), e = g::gemm_slice_tile_begin(s + 1, p.splits, kt);
        CHECK(b == next && e > b);
        if (p.split) CHECK(e - b >= g::kGemmMinTilesPerSlice);
        next = e;
      }
      CHECK(next == kt);
    }
  }
}

namespace {

// One block tile of gemm_kernel replayed on the host for an operand layout: the cp.async copies
// (gemm_stage_copy: global element -> staging offset) fill a staging buffer, then every warp's fragments
// are read with the kernel's ldmatrix addresses (frag_* of plan.h, .trans for M/N-contiguous stagings) and
// multiplied with the emulated mma. Returns whether every warp's accumulators equal the plain product of
// the tile (values are small integers: exact), and that each staging element was written exactly once.
bool replay_gemm_block_tile(int BM, int BN, int WM, int WN, bool a_k, bool b_k) {
  constexpr int BK = g::kGemmBK;
  std::mt19937 rng(static_cast<uint32_t>(BM * 7 + BN + (a_k ? 1 : 0) + (b_k ? 2 : 0)));
  std::uniform_int_distribution<int> ud(-3, 3);
  std::vector<float> A(size_t(BM) * BK), B(size_t(BK) * BN);  // logical A[m][k], B[k][n]
  for (auto& x : A) x = static_cast<float>(ud(rng));
  for (auto& x : B) x = static_cast<float>(ud(rng));
  // global storage of each operand in its layout (a [M][K] or [K][M]; b [N][K] or [K][N])
  auto a_at = [&](int m, int k) { return A[size_t(m) * BK + k]; };
  auto b_at = [&](int k, int n) { return B[size_t(k) * BN + n]; };
  const int lda_s = g::gemm_stage_ld(BM, a_k), ldb_s = g::gemm_stage_ld(BN, b_k);
  std::vector<float> as(size_t(g::gemm_stage_elems(BM, a_k)), NAN), bs(size_t(g::gemm_stage_elems(BN, b_k)), NAN);
  std::vector<int> wa(as.size(), 0), wb(bs.size(), 0);
  bool ok = true;
  for (int c = 0; c < BM * (BK / 8); ++c) {
    const g::GemmStageCopy q = g::gemm_stage_copy(c, BM, a_k);
    const int m = a_k ? q.r : q.col, k = a_k ? q.col : q.r;
    ok = ok && (size_t(q.r) * lda_s + q.col) * 2 % 16 == 0;  // 16-byte aligned destination
    for (int e = 0; e < 8; ++e) {  // 8 consecutive elements along the contiguous dimension
      const size_t off = size_t(q.r) * lda_s + q.col + e;
      as[off] = a_k ? a_at(m, k + e) : a_at(m + e, k);
      ++wa[off];
    }
  }
  for (int c = 0; c < BN * (BK / 8); ++c) {
    const g::GemmStageCopy q = g::gemm_stage_copy(c, BN, b_k);
    const int n = b_k ? q.r : q.col, k = b_k ? q.col : q.r;
    ok = ok && (size_t(q.r) * ldb_s + q.col) * 2 % 16 == 0;
    for (int e = 0; e < 8; ++e) {
      const size_t off = size_t(q.r) * ldb_s + q.col + e;
      bs[off] = b_k ? b_at(k + e, n) : b_at(k, n + e);
      ++wb[off];
    }
  }
  // every element of the logical tile staged once (padding columns never written)
  int wrote_a = 0, wrote_b = 0;
  for (int x : wa) ok = ok && x <= 1, wrote_a += x;
  for (int x : wb) ok = ok && x <= 1, wrote_b += x;
  ok = ok && wrote_a == BM * BK && wrote_b == BN * BK;
  const int MT = WM / 16, NT = WN / 8, warps_n = BN / WN;
  for (int warp = 0; warp < (BM / WM) * warps_n; ++warp) {
    const int wm = warp / warps_n, wn = warp % warps_n;
    std::vector<std::array<std::array<float, 4>, 32>> acc(size_t(MT * NT));
    for (auto& a : acc)
      for (auto& l : a) l = {0, 0, 0, 0};
    for (int ks = 0; ks < BK; ks += 16) {
      std::vector<WarpRegs4> af;
      for (int mt = 0; mt < MT; ++mt) {
        const int mr = wm * WM + mt * 16;
        af.push_back(a_k ? emu_ldsm_x4(as, lda_s, mr, ks, g::frag_a_row, g::frag_a_col, false)
                         : emu_ldsm_x4(as, lda_s, ks, mr, g::frag_a_trans_row, g::frag_a_trans_col, true));
      }
      for (int np = 0; np < NT / 2; ++np) {
        const int nr = wn * WN + np * 16;
        const WarpRegs4 r = b_k ? emu_ldsm_x4(bs, ldb_s, nr, ks, g::frag_bt_row, g::frag_bt_col, false)
                                : emu_ldsm_x4(bs, ldb_s, ks, nr, g::frag_b_trans_row, g::frag_b_trans_col, true);
        for (int mt = 0; mt < MT; ++mt)
          for (int h = 0; h < 2; ++h) {
            Pair b0[32], b1[32];
            float c[32][4];
            for (int t = 0; t < 32; ++t) {
              b0[t] = r.r[t][2 * h];
              b1[t] = r.r[t][2 * h + 1];
              for (int e = 0; e < 4; ++e) c[t][e] = acc[size_t(mt * NT + 2 * np + h)][t][e];
            }
            emu_mma(c, af[size_t(mt)].r, b0, b1);
            for (int t = 0; t < 32; ++t)
              for (int e = 0; e < 4; ++e) acc[size_t(mt * NT + 2 * np + h)][t][e] = c[t][e];
          }
      }
    }
    for (int mt = 0; mt < MT; ++mt)
      for (int nt = 0; nt < NT; ++nt)
        for (int t = 0; t < 32; ++t)
          for (int e = 0; e < 4; ++e) {
            const int m = wm * WM + mt * 16 + g::frag_c_row(t, e), n = wn * WN + g::frag_c_col(t, nt, e);
            double want = 0;
            for (int k = 0; k < BK; ++k) want += double(a_at(m, k)) * b_at(k, n);
            ok = ok && acc[size_t(mt * NT + nt)][t][e] == static_cast<float>(want);
          }
  }
  return ok;
}

}  // namespace

// The GEMM kernel's index math for every layout and tile: staging copies and (transposed) fragment loads.
TEST(cuda_gemm_block_tile_replay_every_layout) {
  for (g::GemmTile t : {g::GemmTile::S16x64, g::GemmTile::M64x64, g::GemmTile::L128x128}) {
    const g::GemmTileShape sh = g::gemm_tile_shape(t);
    for (g::GemmLayout l : {g::GemmLayout::NT, g::GemmLayout::NN, g::GemmLayout::TN}) {
      const bool ok = replay_gemm_block_tile(sh.bm, sh.bn, sh.wm, sh.wn, g::gemm_a_k_major(l), g::gemm_b_k_major(l));
      if (!ok) std::fprintf(stderr, "  block tile %s layout %s: wrong\n", g::gemm_tile_name(t), g::gemm_layout_name(l));
      CHECK(ok);
    }
  }
}

namespace {

// One operand as gemm_kernel sees it: storage with row stride ld (rows x ld elements), K-contiguous or not.
// Elements outside the logical [extent x K] (the row padding up to ld) hold NaN: the test fails if one
// reaches a stored output.
struct EmuOperand {
  std::vector<float> data;
  int64_t ld = 0;
  bool k_major = true;
  int64_t extent = 0, K = 0;  // logical rows (M or N) and reduction length
  float at(int64_t i, int64_t k) const { return data[size_t(k_major ? i * ld + k : k * ld + i)]; }
};

EmuOperand make_emu_operand(int64_t extent, int64_t K, int64_t ld, bool k_major, uint32_t seed) {
  EmuOperand o;
  o.ld = ld;
  o.k_major = k_major;
  o.extent = extent;
  o.K = K;
  const int64_t rows = k_major ? extent : K, cols = k_major ? K : extent;
  o.data.assign(size_t(rows * ld), NAN);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> ud(-3, 3);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) o.data[size_t(r * ld + c)] = static_cast<float>(ud(rng));
  return o;
}

// gemm_kernel (fast path) and gemm_reduce_kernel for a whole product, on the host, with the kernel's own
// index functions: k-tile ranges (gemm_chunk_tile_* / gemm_slice_tile_begin), the concatenated pair switch
// at kt_main, the cp.async copies (gemm_stage_copy, gemm_copy_src: every in-range copy must lie inside
// its operand's storage and be 16-byte aligned), ldmatrix(.trans) fragments and the accumulator stores.
// Returns out [M, N] (NaN where an output was never written).
std::vector<float> emulate_fast_gemm(const g::GemmPlan& plan, int64_t M, int64_t N, const EmuOperand& a,
                                     const EmuOperand& b, const EmuOperand* a2, const EmuOperand* b2, bool* reads_ok) {
  constexpr int BK = g::kGemmBK;
  const int BM = plan.shape.bm, BN = plan.shape.bn, WM = plan.shape.wm, WN = plan.shape.wn;
  const bool a_k = a.k_major, b_k = b.k_major;
  const int64_t kt_main = g::gemm_k_tiles(a.K), k_tiles = kt_main + (a2 ? g::gemm_k_tiles(a2->K) : 0);
  const int lda_s = g::gemm_stage_ld(BM, a_k), ldb_s = g::gemm_stage_ld(BN, b_k);
  const int MT = WM / 16, NT = WN / 8, warps_n = BN / WN, warps = (BM / WM) * warps_n;
  const int64_t zs = plan.split ? plan.splits : 1;
  std::vector<float> partial(size_t(zs * M * N), NAN), out(size_t(M * N), NAN);
  for (int64_t z = 0; z < zs; ++z)
    for (int64_t by = 0; by < plan.tiles_m; ++by)
      for (int64_t bx = 0; bx < plan.tiles_n; ++bx) {
        const int64_t m0 = by * BM, n0 = bx * BN;
        int64_t kb = 0, ke = k_tiles;
        if (plan.split) {
          if (plan.invariant) {
            kb = g::gemm_chunk_tile_begin(z, kt_main);
            ke = g::gemm_chunk_tile_end(z, kt_main, k_tiles);
          } else {
            kb = g::gemm_slice_tile_begin(z, plan.splits, k_tiles);
            ke = g::gemm_slice_tile_begin(z + 1, plan.splits, k_tiles);
          }
        }
        std::vector<std::array<float, 4>> acc(size_t(warps * MT * NT * 32), {0, 0, 0, 0});
        for (int64_t kt = kb; kt < ke; ++kt) {
          const bool second = kt >= kt_main;
          const EmuOperand& sa = second ? *a2 : a;
          const EmuOperand& sb = second ? *b2 : b;
          const int64_t k0 = (second ? kt - kt_main : kt) * BK;
          std::vector<float> as(size_t(g::gemm_stage_elems(BM, a_k)), 0.0f), bs(size_t(g::gemm_stage_elems(BN, b_k)), 0.0f);
          auto stage = [&](std::vector<float>& st, int rows, int ld_s, const EmuOperand& o, int64_t r0, int64_t extent) {
            for (int c = 0; c < rows * (BK / 8); ++c) {
              const g::GemmStageCopy q = g::gemm_stage_copy(c, rows, o.k_major);
              const g::GemmCopySrc src = g::gemm_copy_src(q, o.k_major, r0, k0, extent, o.K, o.ld);
              for (int e = 0; e < 8; ++e) st[size_t(q.r * ld_s + q.col + e)] = 0.0f;  // src-size 0: zero fill
              if (!src.ok) continue;
              if (src.offset % 8 != 0 || src.offset + 8 > int64_t(o.data.size())) {
                *reads_ok = false;
                continue;
              }
              for (int e = 0; e < 8; ++e) st[size_t(q.r * ld_s + q.col + e)] = o.data[size_t(src.offset + e)];
            }
          };
          stage(as, BM, lda_s, sa, m0, M);
          stage(bs, BN, ldb_s, sb, n0, N);
          for (int w = 0; w < warps; ++w) {
            const int wm = w / warps_n, wn = w % warps_n;
            for (int ks = 0; ks < BK; ks += 16) {
              std::vector<WarpRegs4> af;
              for (int mt = 0; mt < MT; ++mt) {
                const int mr = wm * WM + mt * 16;
                af.push_back(a_k ? emu_ldsm_x4(as, lda_s, mr, ks, g::frag_a_row, g::frag_a_col, false)
                                 : emu_ldsm_x4(as, lda_s, ks, mr, g::frag_a_trans_row, g::frag_a_trans_col, true));
              }
              for (int np = 0; np < NT / 2; ++np) {
                const int nr = wn * WN + np * 16;
                const WarpRegs4 r = b_k ? emu_ldsm_x4(bs, ldb_s, nr, ks, g::frag_bt_row, g::frag_bt_col, false)
                                        : emu_ldsm_x4(bs, ldb_s, ks, nr, g::frag_b_trans_row, g::frag_b_trans_col, true);
                for (int mt = 0; mt < MT; ++mt)
                  for (int h = 0; h < 2; ++h) {
                    Pair b0[32], b1[32];
                    float c4[32][4];
                    const size_t base = size_t(((w * MT + mt) * NT + 2 * np + h) * 32);
                    for (int t = 0; t < 32; ++t) {
                      b0[t] = r.r[t][2 * h];
                      b1[t] = r.r[t][2 * h + 1];
                      for (int e = 0; e < 4; ++e) c4[t][e] = acc[base + size_t(t)][size_t(e)];
                    }
                    emu_mma(c4, af[size_t(mt)].r, b0, b1);
                    for (int t = 0; t < 32; ++t)
                      for (int e = 0; e < 4; ++e) acc[base + size_t(t)][size_t(e)] = c4[t][e];
                  }
              }
            }
          }
        }
        for (int w = 0; w < warps; ++w) {
          const int wm = w / warps_n, wn = w % warps_n;
          for (int mt = 0; mt < MT; ++mt)
            for (int nt = 0; nt < NT; ++nt)
              for (int t = 0; t < 32; ++t)
                for (int e = 0; e < 4; ++e) {
                  const int64_t m = m0 + wm * WM + mt * 16 + g::frag_c_row(t, e), n = n0 + wn * WN + g::frag_c_col(t, nt, e);
                  if (m >= M || n >= N) continue;
                  const float v = acc[size_t(((w * MT + mt) * NT + nt) * 32 + t)][size_t(e)];
                  if (plan.split)
                    partial[size_t((z * M + m) * N + n)] = v;
                  else
                    out[size_t(m * N + n)] = v;
                }
        }
      }
  if (plan.split)
    for (int64_t i = 0; i < M * N; ++i) {
      float t = 0.0f;
      for (int64_t z = 0; z < zs; ++z) t += partial[size_t(z * M * N + i)];
      out[size_t(i)] = t;
    }
  return out;
}

}  // namespace

// Whole products through the emulated fast kernel, every layout (NT with the LoRA forward's concatenated
// pair, NN with the backward's, TN over narrow [M, r] views of padded [M, r8] storage), every tile shape,
// direct and split (chunks or slices), odd M / N / K: the result is the plain product exactly (small
// integers), no NaN from the storage padding reaches an output, and every copy stays inside its operand.
TEST(cuda_gemm_fast_path_emulated_products) {
  struct Case {
    g::GemmLayout layout;
    int64_t M, N, K, K2, pad_a, pad_b;  // pad: extra row stride past the logical row (M/N-contiguous operands)
  };
  const std::vector<Case> cases = {
      {g::GemmLayout::NT, 70, 45, 72, 16, 0, 0},    // linear / LoRA forward: [x | xa] [W | sB]^T
      {g::GemmLayout::NT, 20, 130, 264, 0, 8, 0},   // K-contiguous rows with a padded stride
      {g::GemmLayout::NN, 70, 45, 72, 16, 0, 3},    // dx = [dout | t] [W ; A]; B rows padded
      {g::GemmLayout::NN, 33, 130, 264, 0, 0, 6},   // dhidden-like: K a few chunks
      {g::GemmLayout::TN, 5, 130, 75, 0, 3, 0},     // dA = t^T x, t an [M, 5] view of [M, 8]
      {g::GemmLayout::TN, 130, 13, 300, 0, 6, 3},   // dB = dout^T xa, xa an [M, 13] view of [M, 16]
  };
  bool all = true;
  for (const Case& c : cases) {
    const bool a_k = g::gemm_a_k_major(c.layout), b_k = g::gemm_b_k_major(c.layout);
    // stride: K-contiguous rows hold K (+pad); M/N-contiguous rows the extent rounded up to 8 (+pad)
    auto ld_of = [](bool k_major, int64_t extent, int64_t K, int64_t pad) {
      return (k_major ? K : g::round_up(extent, 8)) + (pad + 7) / 8 * 8;
    };
    const EmuOperand a = make_emu_operand(c.M, c.K, ld_of(a_k, c.M, c.K, c.pad_a), a_k, 11);
    const EmuOperand b = make_emu_operand(c.N, c.K, ld_of(b_k, c.N, c.K, c.pad_b), b_k, 12);
    EmuOperand a2, b2;
    if (c.K2 > 0) {
      a2 = make_emu_operand(c.M, c.K2, ld_of(a_k, c.M, c.K2, 0), a_k, 13);
      b2 = make_emu_operand(c.N, c.K2, ld_of(b_k, c.N, c.K2, 0), b_k, 14);
    }
    // the layout gemm() would choose for this storage
    alignas(16) static char buf[16];
    CHECK(g::gemm_fast_layout(true, true, !a_k, b_k, c.M, c.N, c.K, a.ld, b.ld, buf, buf) == c.layout);
    std::vector<double> want(size_t(c.M * c.N), 0.0);
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = 0; n < c.N; ++n) {
        double sum = 0;
        for (int64_t k = 0; k < c.K; ++k) sum += double(a.at(m, k)) * b.at(n, k);
        for (int64_t k = 0; k < c.K2; ++k) sum += double(a2.at(m, k)) * b2.at(n, k);
        want[size_t(m * c.N + n)] = sum;
      }
    const bool invariant = c.layout == g::GemmLayout::NT;
    for (g::GemmTile t : {g::GemmTile::S16x64, g::GemmTile::M64x64, g::GemmTile::L128x128}) {
      for (int64_t splits : {int64_t(1), int64_t(3)}) {
        // the planner's plan, then forced to this tile and split (what only the shape would pick otherwise)
        g::GemmPlan p = g::plan_gemm(g::GemmProblem{c.M, c.N, c.K, c.K2, c.layout, invariant}, 132);
        p.tile = t;
        p.shape = g::gemm_tile_shape(t);
        p.tiles_m = g::ceil_div(c.M, p.shape.bm);
        p.tiles_n = g::ceil_div(c.N, p.shape.bn);
        p.split = splits > 1;
        p.splits = p.split ? (p.invariant ? p.chunks : splits) : 1;
        if (p.split && p.invariant && p.chunks < 2) continue;
        bool reads_ok = true;
        const std::vector<float> got = emulate_fast_gemm(p, c.M, c.N, a, b, c.K2 ? &a2 : nullptr, c.K2 ? &b2 : nullptr, &reads_ok);
        bool same = reads_ok;
        for (size_t i = 0; i < got.size(); ++i) same = same && got[i] == static_cast<float>(want[i]);
        if (!same)
          std::fprintf(stderr, "  emulated %s M=%lld N=%lld K=%lld K2=%lld tile %s splits %lld: wrong%s\n",
                       g::gemm_layout_name(c.layout), (long long)c.M, (long long)c.N, (long long)c.K, (long long)c.K2,
                       g::gemm_tile_name(t), (long long)p.splits, reads_ok ? "" : " (read outside an operand)");
        all = all && same;
      }
    }
  }
  CHECK(all);
}

// The kernel variants the planner chooses for the qwen3-0.6b workload (decode batch 64, prefill and
// training at 512 / 2048 tokens, LoRA forward + backward of all 7 projections, lm head and log-prob chunks),
// printed, and each one reached by some op check (op_check_cases.h, planned at the same SM count).
TEST(cuda_op_checks_cover_qwen3_06b_variants) {
  std::set<std::string> need, have;
  for (const g::GemmCase& c : g::qwen3_06b_gemm_cases())
    for (const std::string& v : g::gemm_case_variants(c, true)) need.insert(v);
  for (const g::GemmCase& c : g::gemm_op_check_cases())
    for (bool bf16 : {true, false})
      for (const std::string& v : g::gemm_case_variants(c, bf16)) have.insert(v);
  std::printf("qwen3-0.6b GEMM variants at %d SMs (%zu), covered by the op checks:\n", g::kOpCheckPlanSms, need.size());
  for (const std::string& v : need) {
    std::printf("  %s %s\n", v.c_str(), have.count(v) ? "covered" : "NOT COVERED");
    CHECK(have.count(v) == 1);
  }
  std::printf("op-check GEMM variants beyond the workload's:");
  for (const std::string& v : have)
    if (!need.count(v)) std::printf(" %s", v.c_str());
  std::printf("\n");
  // the other families' variants of the workload (each family's op checks assert on the device that they ran)
  const std::set<std::string> other = g::qwen3_06b_other_variants();
  std::printf("qwen3-0.6b other kernel variants (%zu):", other.size());
  for (const std::string& v : other) std::printf(" %s", v.c_str());
  std::printf("\n");
  CHECK(other.count("attention/forward/hd128") && other.count("attention/backward/hd128"));
  CHECK(other.count("paged_attention/split/hd128") && other.count("paged_attention/rows/hd128"));
  CHECK(other.size() == 8);
  // the generic loader and every fast layout / tile / split mode the planner has are reached by some check
  CHECK(have.count("gemm/generic/fold/128x128/direct") && have.count("gemm/generic/fold/16x64/splitk"));
  CHECK(have.count("gemm/nt/fold/128x128/direct") && have.count("gemm/nn/acc1/128x128/direct"));
}

// The qwen3-0.6b training step: no backward (gradient) product on the generic path, each one with a single
// accumulator set; the lm-head backward (dhidden = dz [128 x 151,936] lm_head) uses at least as many CTAs as
// an H100 has SMs.
TEST(cuda_plan_qwen3_06b_training_backward) {
  const int sms = 132;
  int products = 0;
  for (const g::GemmCase& c : g::qwen3_06b_gemm_cases()) {
    if (c.op == g::GemmCaseOp::LoraBackward) {
      for (const g::GemmProblem& q : g::gemm_case_problems(c, true)) {
        const g::GemmPlan p = g::plan_gemm(q, sms);
        ++products;
        if (p.layout == g::GemmLayout::Generic || p.invariant)
          std::fprintf(stderr, "  %s M=%lld N=%lld K=%lld: %s\n", c.name, (long long)q.M, (long long)q.N, (long long)q.K,
                       g::gemm_variant_name(p).c_str());
        CHECK(p.fast && p.layout != g::GemmLayout::Generic && !p.invariant);
      }
    }
  }
  CHECK(products == 7 * 2 * 2 * 4);  // 7 projections x ranks {16, 64} x {512, 2048} tokens x (t, dx, dA, dB)
  for (int64_t m : {128, 20}) {
    const std::vector<g::GemmProblem> lp = g::logprob_problems(m, 151936, 1024, true);
    const g::GemmPlan dh = g::plan_gemm(lp.back(), sms);  // dhidden = dz lm_head
    std::printf("lm-head backward m=%lld: %s, %lld CTAs, %zu B of partials\n", (long long)m,
                g::gemm_variant_name(dh).c_str(), (long long)dh.blocks(), dh.workspace_bytes);
    CHECK(dh.layout == g::GemmLayout::NN && !dh.invariant);
    CHECK(dh.blocks() >= 132);
  }
  // the logits forward keeps batch invariance (the GRPO ratio compares log-probs of different batchings)
  CHECK(g::plan_gemm(g::logprob_problems(128, 151936, 1024, false)[0], sms).invariant);
}

// Backend::sum_squares_many (the gradient norm's one-wait read, overridden by CUDA): on the CPU backend the
// default returns exactly sum_squares of each tensor, so the clipped gradient stays bit-identical.
TEST(backend_sum_squares_many_is_sum_squares_per_tensor) {
  CpuBackend be(2, "auto", "f32");
  std::vector<Buffer> bufs;
  std::vector<Tensor> ts;
  for (int64_t n : {int64_t(1), int64_t(16385), int64_t(100003), int64_t(7)}) {
    std::mt19937 rng(static_cast<uint32_t>(n));
    std::normal_distribution<float> d;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(rng);
    bufs.emplace_back(be, DType::F32, std::initializer_list<int64_t>{n});
    be.upload(bufs.back(), v.data(), DType::F32);
    ts.push_back(bufs.back());
  }
  const std::vector<double> many = be.sum_squares_many(ts);
  CHECK(many.size() == ts.size());
  for (size_t i = 0; i < ts.size() && i < many.size(); ++i) CHECK(many[i] == be.sum_squares(ts[i]));
  CHECK(be.sum_squares_many({}).empty());
}

TEST(cuda_attention_checks) {
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
}
