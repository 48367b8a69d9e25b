// Launchers of the CUDA ops, one family per .cu file (embedding.cu, rmsnorm.cu, ...). Each validates
// shapes/dtypes (cuda_op_checks.h), plans its launch (plan.h) and enqueues kernels on the context's stream;
// none synchronises. CudaBackend (cuda_backend.cu) dispatches the Backend ops to these. Backward kernels
// of the training ops go beside their forward ones (rope.cu already has the inverse rotation).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend.h"
#include "cuda_op_checks.h"
#include "gemm_backend.h"
#include "plan.h"

namespace hayate::gpu {

// Device scratch memory owned by the backend, reused by every op (ops are serialised on one stream, so
// one op's scratch is free again when the next op is enqueued). get() may reallocate: never hold a
// pointer across ops.
class Workspace {
 public:
  virtual ~Workspace() = default;
  virtual void* get(size_t bytes) = 0;
};

struct Ctx {
  cudaStream_t stream = nullptr;
  int* err = nullptr;  // device error word (ErrorBit)
  int num_sms = 1;
  size_t smem_optin = 48 * 1024;  // max dynamic shared memory per block
  Workspace* ws = nullptr;
  void* cublas = nullptr;  // cublasHandle_t when the backend uses cuBLAS for GEMMs
};

// ---- gemm.cu ----------------------------------------------------------------------------------------
// out = alpha op(a) op(b) + beta out (+ bias[N]) (+ addend[M,N] f32); a/b/out/bias F32 or BF16 (a and b
// are rounded to bf16 for the tensor cores; accumulation is fp32).
struct GemmOperands {
  Tensor out, a, b;
  bool trans_a = false, trans_b = false;
  float alpha = 1.0f, beta = 0.0f;
  Tensor bias;                   // optional [N]
  const float* addend = nullptr; // optional [M, N] fp32, row stride N
  // Optional second pair concatenated along the reduction (same transposes as a / b):
  //   out = alpha [op(a) | op(a2)] [op(b) ; op(b2)] + ...,  op(a2) [M, K2], op(b2) [K2, N]
  // one launch, fixed chunked summation order (gemm.cu); lora_linear's fused low-rank update.
  Tensor a2, b2;
  // Row strides of a / b in elements (0: their cols()); a view narrower than its storage, e.g. the first
  // r columns of an [M, r8] zero-padded tensor. a2 / b2 are always contiguous.
  int64_t lda = 0, ldb = 0;
  // Batch invariance (plan.h): every forward product keeps it; the backward's gradient products set it
  // false and get one accumulator set and split-K sized to the SM count.
  bool invariant = true;
};
// K2 of the concatenated pair (0 without one); validates a2 / b2 against d.
int64_t gemm_extra_k(const GemmOperands& g, const GemmDims& d);
void gemm(const Ctx& c, const GemmOperands& g, const GemmDims& d, GemmBackend impl);
bool cublas_available();       // built with cuBLAS (HAYATE_WITH_CUBLAS)
void* cublas_create();          // a cublasHandle_t for the current device; throws kBackend without cuBLAS
void cublas_destroy(void* handle);

// ---- elementwise / rows -----------------------------------------------------------------------------
void embedding(const Ctx& c, Tensor out, Tensor table, Tensor ids);
void rmsnorm(const Ctx& c, Tensor out, Tensor x, Tensor weight, float eps);
void add(const Ctx& c, Tensor out, Tensor a, Tensor b);
void swiglu(const Ctx& c, Tensor out, Tensor gate, Tensor up);
// inverse = true applies the inverse rotation (rope_backward).
void rope(const Ctx& c, Tensor x, Tensor positions, Tensor cos_sin, int head_dim, bool inverse);
void kv_store(const Ctx& c, Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots);
void convert(const Ctx& c, Tensor dst, Tensor src);  // elementwise dtype conversion (same numel)

// ---- training ops (backward kernels beside their forward ones) ---------------------------------------
void rmsnorm_backward(const Ctx& c, Tensor dx, Tensor dout, Tensor x, Tensor weight, float eps, bool accumulate);
void swiglu_backward(const Ctx& c, Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up);
void scatter_add_rows(const Ctx& c, Tensor out, Tensor src, Tensor ids);
void adamw_step(const Ctx& c, Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWParams& p);
// Multi-tensor AdamW: one launch over a device table (AdamWMultiEntry per tensor, AdamWChunk per chunk
// from plan_adamw_chunks). adamw_multi_entries validates the tensors (as adamw_step) and builds the
// entries; the caller uploads entries + chunks (device pointers here) and keeps them alive until the
// launch has run.
struct AdamWMultiEntry {
  void* param;
  const void* grad;
  void* m;
  void* v;
  int64_t numel;
  DType tparam, tgrad, tm, tv;
  uint8_t pad_[4] = {};  // no indeterminate padding: the backend compares tables bytewise
};
std::vector<AdamWMultiEntry> adamw_multi_entries(const std::vector<AdamWTensorRef>& tensors, const AdamWParams& p);
void adamw_step_multi(const Ctx& c, const AdamWMultiEntry* entries, const AdamWChunk* chunks, int64_t nchunks,
                      const AdamWParams& p);
// Deterministic fp64 sum of squares into *device_result (one double on the device).
void sum_squares(const Ctx& c, Tensor x, double* device_result);

// ---- ops that need device scratch: the caller validates the arguments (CudaBackend) and allocates it ---
// logprob.cu. z: fp32 scratch [m, V] that receives z = hidden lm_head^T / T; per row: lse, logprob of the
// target, entropy (optional).
void logprob_forward(const Ctx& c, Tensor z, Tensor logprobs, Tensor lse, Tensor entropy, Tensor hidden, Tensor lm_head,
                     Tensor targets, float inv_temperature);
// dhidden = dz lm_head / T with dz = dlogprobs[i] * ([j == t_i] - exp(z - lse_i)) written to dz16 (bf16
// [m, V]: the GEMM rounds its operands to bf16 anyway), then the NN split-K GEMM.
void logprob_backward(const Ctx& c, Tensor z, Tensor dz16, Tensor dhidden, Tensor dlogprobs, Tensor hidden,
                      Tensor lm_head, Tensor targets, Tensor lse, float inv_temperature);
// lora_linear.cu: the fused LoRA projection (Backend::lora_linear with an adapter). Scratch, with
// r8 = lora_packed_rank(r): A in bf16 [r, K], x A^T in fp32 [M, r], and the concatenated GEMM operands
// xa bf16 [M, r8] and scale * B bf16 [N, r8].
struct LoraLinearScratch {
  Tensor a16, xa32, xa16, sb16;
};
void lora_linear(const Ctx& c, const GemmDims& d, Tensor out, Tensor xa, Tensor x, Tensor w, Tensor bias, Tensor a,
                 Tensor b, float scale, const LoraLinearScratch& scratch);
// Backend::lora_linear_backward. Scratch (unused without an adapter: a empty), r8 = lora_packed_rank(r), all
// bf16: B [N, r8], A [r8, K], t = scale dout B [M, r8], xa [M, r8] (zero-padded copies).
struct LoraBackwardScratch {
  Tensor b16, a16, t16, xa16;
};
void lora_linear_backward(const Ctx& c, Tensor dx, Tensor da, Tensor db, Tensor dout, Tensor x, Tensor xa, Tensor w,
                          Tensor a, Tensor b, float scale, bool accumulate_dx, const LoraBackwardScratch& scratch);

// ---- fused varlen attention (attention_forward.cu, attention_backward.cu) ------------------------------
// Causal attention over a packed batch (VarlenMeta), GQA, head_dim <= 128 (64 and 128 without padding);
// q/k/v/out and their gradients F32 or BF16 (bf16 on the tensor cores, fp32 accumulation), lse F32.
void attention_forward(const Ctx& c, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const VarlenMeta& meta);
// Uses Workspace for D = rowsum(dout * out) (fp32 [n, hq]).
void attention_backward(const Ctx& c, Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                        Tensor out, Tensor lse, const VarlenMeta& meta);
// Enqueues the check of cu_seqlens' values (kErrVarlenMeta): starts at 0, non-decreasing, ends at n, every
// length <= max_seqlen. The attention kernels themselves never read rows outside [0, n).
void check_cu_seqlens(const Ctx& c, Tensor cu_seqlens, int64_t n, int max_seqlen);

// ---- attention / vocabulary ops -----------------------------------------------------------------------
void paged_attention(const Ctx& c, Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const AttentionMeta& meta);
void log_softmax_gather(const Ctx& c, Tensor out, Tensor logits, Tensor targets, float inv_temperature);

// Device-side sampling parameters (SamplingRow, packed explicitly).
struct DeviceSamplingRow {
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  unsigned long long seed;
  unsigned long long step;
};
// rows: device array [B]; ids/logprobs: device arrays [B].
void sample(const Ctx& c, Tensor logits, const DeviceSamplingRow* rows, int32_t* ids, float* logprobs);

}  // namespace hayate::gpu
