// Host-side planning for the CUDA kernels: launch configurations, GEMM tiling and split decisions,
// paged-attention partitioning, chunking of row reductions, allocator size classes. Plain C++ with no
// CUDA types, so tests/native/test_cuda_host_logic.cpp checks this arithmetic on machines without a GPU.
//
// One rule shapes several plans here: the backend contract promises that batching never changes a
// row's results (linear() is batch-invariant; sampling is reproducible per sequence). So every choice
// that changes a summation order (GEMM K-chunking, attention partitions, log-softmax chunks) depends only
// on the row's own extent (K, its position, V), never on how many rows are in the batch. What may depend
// on the batch is *where* the work runs (tile sizes, split across blocks or not), never its arithmetic.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "errors.h"

namespace hayate::gpu {

// constexpr so that kernels can call them too (nvcc --expt-relaxed-constexpr).
constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
constexpr int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// ---- elementwise / row launches --------------------------------------------------------------------

struct Launch1D {
  int64_t blocks = 1;
  int threads = 256;
};

// Grid-stride launch over `units` independent work units (a unit = one 16-byte vector or one element).
// Past a few waves of blocks, each thread loops instead: the grid stays small for huge tensors.
inline Launch1D plan_elementwise(int64_t units, int num_sms, int threads = 256) {
  const int64_t max_blocks = std::max<int64_t>(1, static_cast<int64_t>(std::max(num_sms, 1)) * 8);
  return {std::max<int64_t>(1, std::min(ceil_div(std::max<int64_t>(units, 1), threads), max_blocks)), threads};
}

// Elements per 16-byte access for a contiguous run of `n` elements of `elem_size` bytes whose pointers
// are all in `ptrs` (nullptrs ignored): the vector width when every pointer is 16-byte aligned, else 1.
inline int vector_width(size_t elem_size, std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p && reinterpret_cast<uintptr_t>(p) % 16 != 0) return 1;
  return elem_size > 0 && 16 % elem_size == 0 ? static_cast<int>(16 / elem_size) : 1;
}

// RMSNorm: one warp per row (rows are at most a few thousand wide: the warp holds the row's sum of squares
// in registers and needs no shared memory), 4 rows per 128-thread block.
struct RowPlan {
  int64_t blocks = 1;
  int threads = 128;
  int rows_per_block = 4;
};
inline RowPlan plan_rows_warp_each(int64_t rows) {
  RowPlan p;
  p.blocks = std::max<int64_t>(1, ceil_div(rows, p.rows_per_block));
  return p;
}

// ---- multi-tensor AdamW ----------------------------------------------------------------------------------
// adamw_step_multi cuts every tensor into chunks of at most kAdamWChunk elements (tensor order, then
// element order); a block takes whole chunks (grid-stride over the chunk list), its threads the elements.
// Elements are independent, so the cut only spreads the work; it never changes a result.
constexpr int64_t kAdamWChunk = 16384;
constexpr int kAdamWThreads = 256;

struct AdamWChunk {
  int32_t tensor;  // index into the tensor table
  int32_t pad_ = 0;
  int64_t begin, len;
};

inline std::vector<AdamWChunk> plan_adamw_chunks(const std::vector<int64_t>& numels, int64_t chunk = kAdamWChunk) {
  std::vector<AdamWChunk> out;
  for (size_t t = 0; t < numels.size(); ++t)
    for (int64_t b = 0; b < numels[t]; b += chunk)
      out.push_back({static_cast<int32_t>(t), 0, b, std::min(chunk, numels[t] - b)});
  return out;
}

inline Launch1D plan_adamw_multi_launch(int64_t nchunks, int num_sms) {
  const int64_t max_blocks = std::max<int64_t>(1, static_cast<int64_t>(std::max(num_sms, 1)) * 8);
  return {std::max<int64_t>(1, std::min(nchunks, max_blocks)), kAdamWThreads};
}

// ---- GEMM ---------------------------------------------------------------------------------------------
// bf16 tensor-core GEMM (mma.sync m16n8k16, fp32 accumulate). The K loop is cut into fixed chunks of
// kGemmChunkK: each chunk is accumulated from zero, and chunk sums are added in order. That order is the
// same whether one block walks every chunk (large M) or each chunk runs in its own block and a reduce
// kernel adds the partials (skinny M: decode batches need the extra blocks to reach memory bandwidth).
// Results are therefore bitwise identical for every M: linear() stays batch-invariant.
constexpr int kGemmBK = 32;       // k-tile held in shared memory (two m16n8k16 steps)
constexpr int kGemmChunkK = 256;  // fixed reduction chunk: part of the numerics, never tuned per call
constexpr int kGemmStages = 3;    // cp.async pipeline depth of the fast path

enum class GemmTile { S16x64, M64x64, L128x128 };

struct GemmTileShape {
  int bm, bn, wm, wn;  // block tile and warp tile
  int threads() const { return (bm / wm) * (bn / wn) * 32; }
};

inline GemmTileShape gemm_tile_shape(GemmTile t) {
  switch (t) {
    case GemmTile::S16x64: return {16, 64, 16, 16};    // 4 warps side by side: decode (M <= 32)
    case GemmTile::M64x64: return {64, 64, 32, 32};    // 2x2 warps
    case GemmTile::L128x128: return {128, 128, 64, 32};  // 2x4 warps: prefill / training
  }
  return {64, 64, 32, 32};
}

inline const char* gemm_tile_name(GemmTile t) {
  switch (t) {
    case GemmTile::S16x64: return "16x64";
    case GemmTile::M64x64: return "64x64";
    case GemmTile::L128x128: return "128x128";
  }
  return "?";
}

// Concatenated reduction (lora_linear): out = [op(a) | op(a2)] [op(b) ; op(b2)] runs K main columns,
// then K2 extra columns, in one K loop over k-tiles 0 .. kt_main + kt_extra. Each region is cut into
// its own fixed chunks (the extra region starts a fresh chunk), so the summation order depends on K and
// K2 only, never on M: the same batch invariance as the plain GEMM. These are shared by the kernel (a
// chunk's tile range in split mode, where to fold) and the host plan; tests check them without a GPU.
constexpr int kGemmTilesPerChunk = kGemmChunkK / kGemmBK;
constexpr int64_t gemm_k_tiles(int64_t K) { return ceil_div(K, kGemmBK); }
constexpr int64_t gemm_region_chunks(int64_t k_tiles) { return ceil_div(k_tiles, kGemmTilesPerChunk); }
// First / one-past-last tile of chunk z (main chunks first, then the extra region's).
constexpr int64_t gemm_chunk_tile_begin(int64_t z, int64_t kt_main) {
  return z < gemm_region_chunks(kt_main) ? z * kGemmTilesPerChunk
                                         : kt_main + (z - gemm_region_chunks(kt_main)) * kGemmTilesPerChunk;
}
constexpr int64_t gemm_chunk_tile_end(int64_t z, int64_t kt_main, int64_t kt_total) {
  return z < gemm_region_chunks(kt_main) ? std::min(z * kGemmTilesPerChunk + kGemmTilesPerChunk, kt_main)
                                         : std::min(gemm_chunk_tile_begin(z, kt_main) + kGemmTilesPerChunk, kt_total);
}
// Whether tile kt is the last of its chunk (the accumulator is folded into the running total there).
constexpr bool gemm_tile_closes_chunk(int64_t kt, int64_t kt_main, int64_t kt_total) {
  return kt < kt_main ? ((kt + 1) % kGemmTilesPerChunk == 0 || kt + 1 == kt_main)
                      : ((kt - kt_main + 1) % kGemmTilesPerChunk == 0 || kt + 1 == kt_total);
}
// Extra-operand width of the fused LoRA forward: rank r padded with zero columns to a multiple of 8 so
// the packed x A^T [M, r8] and scale B [N, r8] (bf16) take the 16-byte cp.async path.
constexpr int64_t lora_packed_rank(int64_t r) { return round_up(r, 8); }

// Operand layouts (row-major storage, out = op(a) op(b)). The fast path stages both operands with
// 16-byte cp.async copies along their contiguous dimension: a K-contiguous operand lands as [rows][BK + 8]
// and is read by ldmatrix; an M- (a) or N-contiguous (b) operand lands as [BK][rows + 8] and is read by
// ldmatrix.trans (frag_a_trans_* / frag_b_trans_* below). Named by (trans_a, trans_b) as in gemm():
//   NT  a [M, K], b [N, K]  linear(), the forward of every projection, the lm-head logits
//   NN  a [M, K], b [K, N]  dx = dout W, t = dout B (LoRA), dhidden = dz lm_head
//   TN  a [K, M], b [K, N]  weight gradients: dA = t^T x, dB = dout^T xa
// TT and anything not bf16 / aligned take the generic path (element loads, converted to bf16, 1 stage).
enum class GemmLayout { Generic, NT, NN, TN };

inline const char* gemm_layout_name(GemmLayout l) {
  switch (l) {
    case GemmLayout::Generic: return "generic";
    case GemmLayout::NT: return "nt";
    case GemmLayout::NN: return "nn";
    case GemmLayout::TN: return "tn";
  }
  return "?";
}

// One operand's eligibility for the 16-byte copies. k_major: contiguous along K (a not transposed, b
// transposed); then K % 8 == 0 (a copy never mixes columns past K into the sum). Otherwise contiguous along
// `extent` (M or N): a copy may cover up to 7 elements past the extent, harmless (they only feed output
// rows / columns that are never stored) as long as they lie inside the row: round_up(extent, 8) <= ld.
inline bool gemm_operand_fast_ok(bool bf16, bool k_major, int64_t K, int64_t extent, int64_t ld, const void* p) {
  if (!bf16 || ld % 8 != 0 || reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return k_major ? K % 8 == 0 : round_up(extent, 8) <= ld;
}

// The fast layout of a product, or Generic. ld* are the storage row strides (elements).
inline GemmLayout gemm_fast_layout(bool a_bf16, bool b_bf16, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                   int64_t lda, int64_t ldb, const void* a, const void* b) {
  if (trans_a && trans_b) return GemmLayout::Generic;
  if (!gemm_operand_fast_ok(a_bf16, !trans_a, K, M, lda, a) || !gemm_operand_fast_ok(b_bf16, trans_b, K, N, ldb, b))
    return GemmLayout::Generic;
  return trans_a ? GemmLayout::TN : trans_b ? GemmLayout::NT : GemmLayout::NN;
}

// linear()'s layout check (a [M, K], b [N, K] contiguous): kept for the callers that only ask this.
inline bool gemm_fast_path_ok(bool a_bf16, bool b_bf16, bool trans_a, bool trans_b, int64_t K, const void* a,
                              const void* b) {
  return !trans_a && trans_b && gemm_operand_fast_ok(a_bf16, true, K, 0, K, a) && gemm_operand_fast_ok(b_bf16, true, K, 0, K, b);
}

constexpr bool gemm_a_k_major(GemmLayout l) { return l != GemmLayout::TN; }
constexpr bool gemm_b_k_major(GemmLayout l) { return l == GemmLayout::NT || l == GemmLayout::Generic; }
// Shared-memory elements of one stage of an operand tile of `rows` (BM or BN) rows.
constexpr int64_t gemm_stage_elems(int rows, bool k_major) {
  return k_major ? int64_t(rows) * (kGemmBK + 8) : int64_t(kGemmBK) * (rows + 8);
}

// Row stride (elements) of one staged operand tile, and the 16-byte copy c of its cp.async load: c in
// [0, rows * kGemmBK / 8) maps to (r, col) of the staging, element offset r * ld + col. K-contiguous:
// r = tile row (m or n), col = k offset; otherwise r = k offset, col = tile row. Shared by the kernel's
// loader and the host test that replays a whole block tile (test_cuda_host_logic.cpp).
constexpr int gemm_stage_ld(int rows, bool k_major) { return k_major ? kGemmBK + 8 : rows + 8; }
struct GemmStageCopy {
  int r, col;
};
constexpr GemmStageCopy gemm_stage_copy(int c, int rows, bool k_major) {
  return k_major ? GemmStageCopy{c / (kGemmBK / 8), (c % (kGemmBK / 8)) * 8} : GemmStageCopy{c / (rows / 8), (c % (rows / 8)) * 8};
}

// Where copy q of a k-tile starting at k0 reads: the element offset in the operand's storage (row stride
// ld) and whether it is in range. r0: the tile's first row (m0 or n0) along `extent` (M or N). Out-of-range
// copies are zero-filled (cp.async src-size 0) and read nothing.
struct GemmCopySrc {
  bool ok;
  int64_t offset;
};
constexpr GemmCopySrc gemm_copy_src(GemmStageCopy q, bool k_major, int64_t r0, int64_t k0, int64_t extent, int64_t K,
                                    int64_t ld) {
  const int64_t g = r0 + (k_major ? q.r : q.col), gk = k0 + (k_major ? q.col : q.r);
  const bool ok = g < extent && gk < K;
  return {ok, ok ? (k_major ? g * ld + gk : gk * ld + g) : 0};
}

// The ldmatrix lane addresses of the transposed (M-contiguous) A operand: the tile is stored [k][m] and
// read with .trans; matrices (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15) = a0..a3.
// Lane t supplies row (k) frag_a_trans_row(t), column (m) frag_a_trans_col(t) of the warp's 16x16 slice.
constexpr int frag_a_trans_row(int lane) { return (lane % 8) + (lane / 16) * 8; }
constexpr int frag_a_trans_col(int lane) { return ((lane / 8) % 2) * 8; }

// Non-invariant products (training gradients; GemmProblem::invariant false) accumulate their whole K range
// in one accumulator set (no chunk fold: half the registers) and, when the tiles cannot fill the GPU, cut
// the k-tiles into `slices` contiguous ranges (split-K: grid.z = slices, fp32 partials added in slice order
// by the reduce kernel). Slice s covers k-tiles [gemm_slice_tile_begin(s), gemm_slice_tile_begin(s + 1)).
// The result is deterministic for a given plan (fixed order), but the plan depends on M and the SM count.
constexpr int kGemmMinTilesPerSlice = 8;  // 256 of K: each split block still runs a real pipeline
constexpr size_t kGemmMaxPartialBytes = size_t(256) << 20;
constexpr int64_t gemm_slice_tile_begin(int64_t s, int64_t slices, int64_t k_tiles) { return k_tiles * s / slices; }

struct GemmPlan {
  GemmTile tile = GemmTile::M64x64;
  GemmTileShape shape{64, 64, 32, 32};
  GemmLayout layout = GemmLayout::Generic;
  int64_t tiles_m = 0, tiles_n = 0;
  int64_t chunks = 0;          // ceil(K / kGemmChunkK) + ceil(K2 / kGemmChunkK)
  bool invariant = true;       // fixed chunked summation order, two accumulator sets (batch-invariant)
  bool split = false;          // grid.z = splits blocks per tile + a reduce kernel
  int64_t splits = 1;          // invariant: one chunk per block (= chunks); otherwise slices of k-tiles
  bool fast = false;           // cp.async 16-byte loads (layout != Generic)
  size_t smem_bytes = 0;
  size_t workspace_bytes = 0;  // fp32 partials when split: [splits][M][N]
  int64_t blocks() const { return tiles_m * tiles_n * (split ? splits : 1); }
};

inline size_t gemm_smem_bytes(const GemmTileShape& s, GemmLayout layout) {
  const bool fast = layout != GemmLayout::Generic;
  const int stages = fast ? kGemmStages : 1;
  return static_cast<size_t>(stages) *
         (gemm_stage_elems(s.bm, gemm_a_k_major(layout)) + gemm_stage_elems(s.bn, gemm_b_k_major(layout))) * 2;
}
inline size_t gemm_smem_bytes(const GemmTileShape& s, bool fast) {
  return gemm_smem_bytes(s, fast ? GemmLayout::NT : GemmLayout::Generic);
}

// A product as the launchers pose it: dims, the extra concatenated width K2, the layout the operands
// allow (gemm_fast_layout), and whether the caller needs batch invariance (every forward product does:
// linear(), lora_linear, the log-prob logits; the gradient products of the backward do not).
struct GemmProblem {
  int64_t M = 0, N = 0, K = 0, K2 = 0;
  GemmLayout layout = GemmLayout::NT;
  bool invariant = true;
};

inline GemmPlan plan_gemm(const GemmProblem& q, int num_sms) {
  const int64_t M = q.M, N = q.N;
  GemmPlan p;
  // The instantiated kernels (gemm.cu): generic and NT fold (batch-invariant), NN and TN use one
  // accumulator set. So an NT product always folds, and an invariant NN / TN product takes the generic
  // loader (which folds).
  p.layout = q.invariant && (q.layout == GemmLayout::NN || q.layout == GemmLayout::TN) ? GemmLayout::Generic : q.layout;
  p.fast = p.layout != GemmLayout::Generic;
  p.invariant = q.invariant || p.layout == GemmLayout::NT || !p.fast;
  p.tile = M <= 32 ? GemmTile::S16x64 : M <= 128 ? GemmTile::M64x64 : GemmTile::L128x128;
  // A large tile that leaves most SMs idle is slower than the medium one.
  if (p.tile == GemmTile::L128x128 && ceil_div(M, 128) * ceil_div(N, 128) < num_sms) p.tile = GemmTile::M64x64;
  p.shape = gemm_tile_shape(p.tile);
  p.tiles_m = ceil_div(M, p.shape.bm);
  p.tiles_n = ceil_div(N, p.shape.bn);
  p.chunks = gemm_region_chunks(gemm_k_tiles(q.K)) + gemm_region_chunks(gemm_k_tiles(q.K2));
  const int64_t tiles = p.tiles_m * p.tiles_n;
  if (p.invariant) {
    // Split across blocks only when the tiles alone cannot fill the GPU and the fp32 partials stay small
    // (skinny, memory-bound products: decode). Splitting never changes the arithmetic (see above).
    const size_t partial_bytes = static_cast<size_t>(M) * N * p.chunks * 4;
    p.split = p.chunks >= 2 && tiles < num_sms && M <= 256 && partial_bytes <= kGemmMaxPartialBytes;
    p.splits = p.split ? p.chunks : 1;
  } else {
    // Enough slices that tiles x slices reaches the SM count, each at least kGemmMinTilesPerSlice k-tiles,
    // partials within the cap.
    const int64_t k_tiles = gemm_k_tiles(q.K) + gemm_k_tiles(q.K2);
    int64_t s = tiles < num_sms ? ceil_div(num_sms, std::max<int64_t>(tiles, 1)) : 1;
    s = std::min(s, k_tiles / kGemmMinTilesPerSlice);
    const size_t per_slice = static_cast<size_t>(M) * N * 4;
    if (per_slice > 0) s = std::min<int64_t>(s, static_cast<int64_t>(kGemmMaxPartialBytes / per_slice));
    p.split = s >= 2;
    p.splits = p.split ? s : 1;
  }
  p.workspace_bytes = p.split ? static_cast<size_t>(M) * N * p.splits * 4 : 0;
  p.smem_bytes = gemm_smem_bytes(p.shape, p.layout);
  return p;
}

// The batch-invariant plan of linear() (NT when fast): K2 = width of the optional concatenated pair.
inline GemmPlan plan_gemm(int64_t M, int64_t N, int64_t K, int num_sms, bool fast, int64_t K2 = 0) {
  return plan_gemm(GemmProblem{M, N, K, K2, fast ? GemmLayout::NT : GemmLayout::Generic, true}, num_sms);
}

// Kernel variants, for the instrumentation counters (kernel_variant_counts) and the coverage test: one
// id per (layout, accumulators, tile, split) of the GEMM, then the other families' variants.
constexpr int kGemmVariantCount = 4 * 2 * 3 * 2;
inline int gemm_variant_id(const GemmPlan& p) {
  return ((static_cast<int>(p.layout) * 2 + (p.invariant ? 0 : 1)) * 3 + static_cast<int>(p.tile)) * 2 + (p.split ? 1 : 0);
}
inline std::string gemm_variant_name(int id) {
  const int split = id % 2, tile = id / 2 % 3, inv = id / 6 % 2, layout = id / 12;
  return std::string("gemm/") + gemm_layout_name(static_cast<GemmLayout>(layout)) + "/" +
         (inv ? "acc1" : "fold") + "/" + gemm_tile_name(static_cast<GemmTile>(tile)) + "/" + (split ? "splitk" : "direct");
}
inline std::string gemm_variant_name(const GemmPlan& p) { return gemm_variant_name(gemm_variant_id(p)); }

// Products of the composite ops, as their launchers (lora_linear.cu, logprob.cu) issue them with bf16,
// 16-byte aligned activations and weights (the model's storage). Shared with the host coverage test.
//   lora_linear forward:   xa = x A16^T [M, r] (K), out = [x | xa16] [W | sB16]^T (K + r8)
//   lora_linear backward:  t = dout sB16 [M, r8] (K = N), dx = [dout | t16] [W ; A16] (N + r8),
//                          dA = t16^T x [r, K] (K = M), dB = dout^T xa16 [N, r] (K = M)
//   logprob:               z = hidden lm_head^T [m, V] (D);  backward: z again, dhidden = dz16 lm_head [m, D] (V)
// (M tokens, N out features, K in features, r rank; LoRA A [r, K], B [N, r].)
inline std::vector<GemmProblem> lora_forward_problems(int64_t M, int64_t N, int64_t K, int64_t r) {
  return {{M, r, K, 0, K % 8 == 0 ? GemmLayout::NT : GemmLayout::Generic, true},
          {M, N, K, lora_packed_rank(r), K % 8 == 0 ? GemmLayout::NT : GemmLayout::Generic, true}};
}
inline std::vector<GemmProblem> lora_backward_problems(int64_t M, int64_t N, int64_t K, int64_t r, bool with_dx) {
  const int64_t r8 = lora_packed_rank(r);
  const GemmLayout nn = N % 8 == 0 && K % 8 == 0 ? GemmLayout::NN : GemmLayout::Generic;
  std::vector<GemmProblem> v;
  if (r == 0) {
    if (with_dx) v.push_back({M, K, N, 0, nn, false});
    return v;
  }
  v.push_back({M, r8, N, 0, N % 8 == 0 ? GemmLayout::NN : GemmLayout::Generic, false});
  if (with_dx) v.push_back({M, K, N, r8, nn, false});
  v.push_back({r, K, M, 0, K % 8 == 0 ? GemmLayout::TN : GemmLayout::Generic, false});
  v.push_back({N, r, M, 0, N % 8 == 0 ? GemmLayout::TN : GemmLayout::Generic, false});
  return v;
}
inline std::vector<GemmProblem> logprob_problems(int64_t m, int64_t V, int64_t D, bool backward) {
  const GemmLayout nt = D % 8 == 0 ? GemmLayout::NT : GemmLayout::Generic;
  if (!backward) return {{m, V, D, 0, nt, true}};
  return {{m, V, D, 0, nt, true}, {m, D, V, 0, V % 8 == 0 && D % 8 == 0 ? GemmLayout::NN : GemmLayout::Generic, false}};
}

// ---- paged attention ----------------------------------------------------------------------------------
// A block owns up to kAttnMaxQ query vectors (query rows x the q heads of one GQA group) and walks the
// KV positions in tiles of kAttnTileK, loading each K/V tile once for all of them. Positions are cut
// into fixed partitions of kAttnPartition: a row's partitions are combined in order with one fold
// function whether they ran in one block (prefill layout) or in separate blocks + a combine kernel
// (decode layout: split-K across the sequence gives long contexts enough parallelism).
constexpr int kAttnThreads = 128;
constexpr int kAttnTileK = 64;
constexpr int kAttnMaxQ = 16;
constexpr int kAttnPartition = 512;  // part of the numerics (fold order), never tuned per call
constexpr int kAttnMaxHeadDim = 256;

constexpr int attention_partitions_for_pos(int64_t pos) { return static_cast<int>(pos / kAttnPartition) + 1; }

inline int attention_hd_bucket(int head_dim) {
  return head_dim <= 64 ? 64 : head_dim <= 128 ? 128 : 256;
}

struct AttentionPlan {
  int hd_bucket = 128;       // HDMAX template instance (64, 128, 256)
  int heads_per_chunk = 1;   // q heads of one kv head handled by a block
  int head_chunks = 1;       // ceil(group / heads_per_chunk)
  int rows_per_block = 1;    // query rows per block: 1 (decode) or kAttnMaxQ / heads_per_chunk (prefill)
  bool split = true;         // decode layout: grid.z = partitions, partials + combine
  int64_t row_blocks = 0;    // grid.x
  int64_t grid_y = 0;        // kv heads x head chunks
  int partitions = 1;        // grid.z in the split layout (upper bound from the block tables)
  size_t smem_bytes = 0;
  size_t workspace_floats = 0;  // split partials: n * hq * partitions * (hd + 2)
};

inline AttentionPlan plan_paged_attention(int64_t n, int64_t num_seqs, int64_t max_blocks, int block_size, int hq,
                                          int hkv, int hd, size_t elem_size) {
  AttentionPlan p;
  HAYATE_CHECK(hd > 0 && hd <= kAttnMaxHeadDim && hd % 2 == 0, ErrorCode::kInvalidArgument,
               "paged_attention: head_dim " + std::to_string(hd) + " is not supported on cuda (even, at most " +
                   std::to_string(kAttnMaxHeadDim) + ")");
  HAYATE_CHECK(hq > 0 && hkv > 0 && hq % hkv == 0, ErrorCode::kInvalidArgument, "paged_attention: bad head configuration");
  const int group = hq / hkv;
  p.hd_bucket = attention_hd_bucket(hd);
  p.heads_per_chunk = std::min(group, kAttnMaxQ);
  p.head_chunks = static_cast<int>(ceil_div(group, p.heads_per_chunk));
  // A batch with about one query token per sequence is decoding: give each row its own blocks and split
  // long contexts. With several tokens per sequence (prefill chunks), rows of one sequence share K/V tiles.
  p.split = n <= 2 * std::max<int64_t>(num_seqs, 1);
  p.rows_per_block = p.split ? 1 : std::max(1, kAttnMaxQ / p.heads_per_chunk);
  p.row_blocks = std::max<int64_t>(1, ceil_div(n, p.rows_per_block));
  p.grid_y = static_cast<int64_t>(hkv) * p.head_chunks;
  const int64_t max_ctx = std::max<int64_t>(1, max_blocks * block_size);
  p.partitions = p.split ? attention_partitions_for_pos(max_ctx - 1) : 1;
  const int hdm = p.hd_bucket;
  const int kstride = hdm + (elem_size == 2 ? 2 : 1);  // padded K rows: conflict-free column reads
  p.smem_bytes = static_cast<size_t>(kAttnMaxQ) * (hdm + kAttnTileK) * 4 +
                 static_cast<size_t>(kAttnTileK) * (kstride + hdm) * elem_size;
  p.workspace_floats = p.split && p.partitions > 1 ? static_cast<size_t>(n) * hq * p.partitions * (hd + 2) : 0;
  return p;
}

// ---- fused varlen attention (training / prefill: attention_forward, attention_backward) -----------------
// FlashAttention-2 style over a packed batch (VarlenMeta): a block owns a tile of 64 query rows (forward,
// dQ pass) or 64 keys (dK/dV pass) of one head of one sequence; 4 warps own 16 rows each, so every MMA
// operand a warp needs is a 16-row slice of a shared tile. Head dims are padded to a bucket of 64 or 128
// (zero columns add nothing to dot products), so every head_dim up to 128 runs the tensor-core kernels;
// 64 and 128 waste nothing. The grid's x index enumerates (sequence, tile) pairs for tiles up to
// max_seqlen, heaviest (last, longest causal row range) tiles of each sequence first; tiles past a
// sequence's end exit at once.
constexpr int kFlashThreads = 128;
constexpr int kFlashBM = 64;   // query rows per block (forward, dQ pass)
constexpr int kFlashBN = 64;   // keys per tile (forward, dQ pass) and per block (dK/dV pass)
constexpr int kFlashMaxHeadDim = 128;

constexpr int flash_hd_bucket(int head_dim) { return head_dim <= 64 ? 64 : 128; }
// Query rows per inner step of the dK/dV pass: 32 at head_dim 128 keeps the dK and dV accumulators plus
// the score tiles within the register file (255 per thread) without spills.
constexpr int flash_bwd_bq(int hd_bucket) { return hd_bucket <= 64 ? 64 : 32; }
constexpr int64_t flash_lds(int hd_bucket) { return hd_bucket + 8; }  // +16 B per row: conflict-free ldmatrix

struct FlashTile {
  int64_t seq = 0, tile = 0;
};
// Block x index -> (sequence, tile): consecutive x walk one sequence's tiles from the last to the first.
constexpr FlashTile flash_tile(int64_t bx, int64_t tiles_per_seq) {
  return FlashTile{bx / tiles_per_seq, tiles_per_seq - 1 - bx % tiles_per_seq};
}
// Keys a causal query tile [m0, m0 + bm) needs: [0, flash_kv_end).
constexpr int64_t flash_kv_end(int64_t m0, int64_t bm, int64_t L) { return m0 + bm < L ? m0 + bm : L; }
// First query tile (of bq rows, aligned) that sees any key of a key tile starting at n0.
constexpr int64_t flash_q_begin(int64_t n0, int64_t bq) { return n0 / bq * bq; }
// Whether the (query tile, key tile) pair has any (i, j) to mask: j > i (causal), or i / j past the
// sequence's end. Tiles without one skip the per-element mask.
constexpr bool flash_tile_needs_mask(int64_t q0, int64_t qn, int64_t k0, int64_t kn, int64_t L) {
  return k0 + kn - 1 > q0 || k0 + kn > L || q0 + qn > L;
}

// Lane patterns of the warp-level tensor-core products (cuda/flash_common.cuh), shared with the host test
// that replays them against the PTX fragment layouts of ldmatrix and mma.m16n8k16 (test_cuda_host_logic.cpp).
// ldmatrix.x4: lane t supplies the address of row t % 8 of 8x8 matrix t / 8.
//   A operand (16 rows x k16 of a [rows][k] tile): matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7),
//   (rows 0-7, k 8-15), (rows 8-15, k 8-15) = registers a0..a3.
constexpr int frag_a_row(int lane) { return lane % 16; }
constexpr int frag_a_col(int lane) { return (lane / 16) * 8; }
//   B operand stored [n][k] (K, Q, V, dO rows), two n8 tiles: (n 0-7, k 0-7), (n 0-7, k 8-15),
//   (n 8-15, k 0-7), (n 8-15, k 8-15) = b0, b1 of tile 2p, b0, b1 of tile 2p + 1.
constexpr int frag_bt_row(int lane) { return (lane % 8) + (lane / 16) * 8; }
constexpr int frag_bt_col(int lane) { return ((lane / 8) % 2) * 8; }
//   B operand stored [k][n], read with .trans: (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15),
//   (k 8-15, n 8-15) = b0, b1 of tile 2p, b0, b1 of tile 2p + 1.
constexpr int frag_b_trans_row(int lane) { return (lane % 8) + ((lane / 8) % 2) * 8; }
constexpr int frag_b_trans_col(int lane) { return (lane / 16) * 8; }
// Accumulator element e (0..3) of n8 tile nt held by a lane: its row in the warp's 16 and its column.
constexpr int frag_c_row(int lane, int e) { return lane / 4 + (e >= 2 ? 8 : 0); }
constexpr int frag_c_col(int lane, int nt, int e) { return nt * 8 + (lane % 4) * 2 + (e & 1); }

struct FlashPlan {
  int hd_bucket = 128;
  int bq = 32;                  // query rows per step of the dK/dV pass
  int max_seqlen = 0;           // the launch extent actually used (meta.max_seqlen, or n when unset)
  int64_t q_tiles = 0;          // per sequence: ceil(max_seqlen / kFlashBM)
  int64_t kv_tiles = 0;         // per sequence: ceil(max_seqlen / kFlashBN)
  int64_t grid_q = 0;           // grid.x of the forward and dQ pass (grid.y = q heads)
  int64_t grid_kv = 0;          // grid.x of the dK/dV pass (grid.y = kv heads)
  size_t smem_fwd = 0, smem_dkv = 0, smem_dq = 0;
  size_t workspace_bytes = 0;   // backward: D = rowsum(dout * out), fp32 [n, hq]
};

inline FlashPlan plan_flash_attention(const char* op, int64_t n, int64_t num_seqs, int max_seqlen, int hq, int hkv,
                                      int hd) {
  HAYATE_CHECK(hq > 0 && hkv > 0 && hq % hkv == 0, ErrorCode::kInvalidArgument,
               std::string(op) + ": bad head configuration (" + std::to_string(hq) + " q heads, " +
                   std::to_string(hkv) + " kv heads)");
  HAYATE_CHECK(hd > 0 && hd <= kFlashMaxHeadDim, ErrorCode::kInvalidArgument,
               std::string(op) + ": head_dim " + std::to_string(hd) +
                   " is not supported by the cuda attention kernels (at most 128; 64 and 128 are the fast paths)");
  FlashPlan p;
  p.hd_bucket = flash_hd_bucket(hd);
  p.bq = flash_bwd_bq(p.hd_bucket);
  // An unset (0) or too large max_seqlen falls back to n: always a valid bound, only a larger grid.
  p.max_seqlen = static_cast<int>(max_seqlen > 0 && max_seqlen < n ? max_seqlen : n);
  p.q_tiles = std::max<int64_t>(1, ceil_div(p.max_seqlen, kFlashBM));
  p.kv_tiles = std::max<int64_t>(1, ceil_div(p.max_seqlen, kFlashBN));
  p.grid_q = p.q_tiles * std::max<int64_t>(num_seqs, 1);
  p.grid_kv = p.kv_tiles * std::max<int64_t>(num_seqs, 1);
  HAYATE_CHECK(p.grid_q < (int64_t(1) << 31), ErrorCode::kInvalidArgument,
               std::string(op) + ": " + std::to_string(num_seqs) + " sequences x " + std::to_string(p.q_tiles) +
                   " tiles exceed the launch grid; set VarlenMeta::max_seqlen to the longest sequence");
  const size_t row_bytes = static_cast<size_t>(flash_lds(p.hd_bucket)) * 2;  // bf16 rows in shared memory
  // Tiles streamed in a loop (K/V of the forward and dQ pass, Q/dO/lse/D of the dK/dV pass) have two
  // stages: the next one loads (cp.async) while the current one is multiplied.
  p.smem_fwd = (kFlashBM + 4 * kFlashBN) * row_bytes;
  p.smem_dkv = (2 * kFlashBN + 4 * p.bq) * row_bytes + 4 * p.bq * sizeof(float);
  p.smem_dq = (2 * kFlashBM + 4 * kFlashBN) * row_bytes;
  p.workspace_bytes = static_cast<size_t>(n) * hq * sizeof(float);
  return p;
}

// ---- log_softmax_gather -------------------------------------------------------------------------------
// Each row of V logits is cut into chunks of kLsgChunk handled by separate blocks (a decode batch has few
// rows but a 150k vocabulary), partial (max, sum) pairs are combined in chunk order by a second kernel.
constexpr int kLsgThreads = 256;
constexpr int kLsgChunk = 8192;
constexpr int64_t log_softmax_chunks(int64_t V) { return V > kLsgChunk ? ceil_div(V, kLsgChunk) : 1; }

// ---- sampling -----------------------------------------------------------------------------------------
// One block per row; 16 warps each own a contiguous id range. 512 threads, not 1024: __launch_bounds__(1024)
// caps a thread at 64 registers and the sampler spilled on sm_90a; at 512 threads (and minBlocks 1, without
// which ptxas still chose 64 registers and spilled on sm_80) it takes ~90-107 registers and spills nothing.
constexpr int kSampleThreads = 512;
constexpr int kSampleWarps = kSampleThreads / 32;
// Contiguous ids per warp in the prefix searches (a multiple of 32 so every step reads whole warps).
constexpr int64_t sample_warp_span(int64_t V) { return round_up(ceil_div(V > 1 ? V : 1, kSampleWarps), 32); }

// ---- allocator ----------------------------------------------------------------------------------------
// The backend caches freed device blocks by size class (cudaFree synchronises the device, and the model
// allocates activations per layer per step). Classes: multiples of 256 B up to 4 KiB, then 4 classes per
// power of two (at most 25% waste).
inline size_t alloc_size_class(size_t bytes) {
  if (bytes <= 4096) return static_cast<size_t>(std::max<int64_t>(256, round_up(static_cast<int64_t>(bytes), 256)));
  size_t p = 1;
  while (p * 2 <= bytes) p *= 2;
  const size_t step = p / 4;
  return (bytes + step - 1) / step * step;
}

}  // namespace hayate::gpu
