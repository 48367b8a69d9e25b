// The Backend contract (docs/architecture.md "The backend contract"): every numeric operation the model
// needs is an op here. Model code is written once against this interface; the CPU backend is the
// reference and every other backend (CUDA) is checked op by op against it.
//
// Conventions
// - Tensors are row-major views into memory owned by this backend (see Buffer). An absent optional
//   tensor is Tensor{} (data == nullptr).
// - "Rows" are all dimensions but the last; ops that work per row use Tensor::rows()/cols().
// - Outputs may alias inputs only where an op says so.
// - Ops validate shapes and dtypes, every backend against the same checks (op_checks.h), and throw
//   hayate::Error(kInvalidArgument/kInternal) on mismatch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"
#include "tensor.h"
#include "unset_option.h"

namespace hayate {

// Where each query token of a paged-attention call reads its keys/values from.
struct AttentionMeta {
  Tensor block_tables;  // I32 [num_seqs, max_blocks_per_seq]: physical block ids of each sequence
  Tensor token_seq;     // I32 [n]: the block_tables row of each query token
  Tensor token_pos;     // I32 [n]: position of each query token; it attends to positions 0..pos (causal)
  int block_size = 16;  // tokens per KV block; cache row of (seq, pos) = table[pos / bs] * bs + pos % bs
  int num_q_heads = 0;
  int num_kv_heads = 0;  // GQA: q head h reads kv head h / (num_q_heads / num_kv_heads)
  int head_dim = 0;
  float scale = 1.0f;    // softmax scale, usually 1/sqrt(head_dim)
};

// A packed batch of variable-length sequences for the training attention ops: sequence s occupies rows
// cu_seqlens[s] .. cu_seqlens[s+1]-1 of q/k/v (no padding), and row i attends causally to the rows of its
// own sequence up to and including itself.
struct VarlenMeta {
  Tensor cu_seqlens;     // I32 [num_seqs + 1], cu_seqlens[0] = 0, non-decreasing, last = n
  int max_seqlen = 0;    // longest sequence (for launch sizing)
  int num_q_heads = 0;
  int num_kv_heads = 0;  // GQA as in AttentionMeta
  int head_dim = 0;
  float scale = 1.0f;    // softmax scale
};

// Hyper-parameters of one AdamW update (see Backend::adamw_step). The five hyperparameters have no
// defaults: the Trainer fills them from its validated OptimizerOptions, and other callers must set each one
// (an unset one is kUnset, a NaN, and turns the update into NaN).
struct AdamWParams {
  double lr = kUnset;
  double beta1 = kUnset;
  double beta2 = kUnset;
  double eps = kUnset;
  double weight_decay = kUnset;
  double grad_scale = 1.0;  // the gradient used is grad * grad_scale (global-norm clipping)
  int64_t step = 1;         // 1-based number of this update (bias correction)
};

// One tensor of a multi-tensor AdamW update (see Backend::adamw_step_multi): param/grad/m/v as for
// adamw_step (param dtype, same numel).
struct AdamWTensorRef {
  Tensor param, grad, m, v;
};

// Per-row sampling parameters. temperature <= 0 means greedy (argmax). top_k <= 0, top_p >= 1 and
// min_p <= 0 disable the respective filter. The uniform draw for a row is rng_uniform(seed, step)
// (rng.h), so a sequence's tokens depend only on its own seed and position, never on the batch.
struct SamplingRow {
  float temperature = 1.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  uint64_t seed = 0;
  uint64_t step = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;          // "cpu", "cuda"
  virtual std::string description() const = 0;   // human-readable: threads, BLAS, device name
  // Dtypes the model should use for stored weights and for activations on this backend.
  virtual DType weight_dtype() const = 0;
  virtual DType activation_dtype() const = 0;
  // The dtype frozen weight matrices (projections, embedding, lm head) are kept in, for a checkpoint whose
  // tensors are `checkpoint` (F32 for random weights). Vectors (norms, biases) use activation_dtype().
  virtual DType matrix_dtype(DType checkpoint) const { return weight_dtype(); }

  // ---- memory -------------------------------------------------------------------------------
  void* alloc_bytes(size_t bytes);  // throws kOutOfMemory; tracks bytes_in_use / peak_bytes
  void free_bytes(void* p, size_t bytes);
  size_t bytes_in_use() const { return in_use_; }
  size_t peak_bytes() const { return peak_; }
  void reset_peak() { peak_ = in_use_; }

  virtual void copy_from_host(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // within this backend
  virtual void synchronize() {}
  // Upload n host elements of any float dtype into dst, converting to dst.dtype.
  void upload(Tensor dst, const void* host, DType host_dtype);
  // Download a tensor as f32 / f64 into host memory (dst must hold src.numel() values).
  void download_f32(float* host_dst, Tensor src);
  void download_f64(double* host_dst, Tensor src);
  virtual void fill_zero(Tensor t) = 0;

  // ---- ops ----------------------------------------------------------------------------------
  // out[M,N] = alpha * op(a)[M,K] · op(b)[K,N] + beta * out. op(a) = a^T when trans_a (a stored [K,M]),
  // op(b) = b^T when trans_b (b stored [N,K]).
  virtual void gemm(Tensor out, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta) = 0;
  // Projection as in torch.nn.Linear: out[M,N] = x[M,K] · w[N,K]^T (+ bias[N]).
  // Each output row depends only on its input row (batch-invariant): batching never changes results.
  virtual void linear(Tensor out, Tensor x, Tensor w, Tensor bias) = 0;
  // out[i,:] = table[ids[i],:]; ids I32 [n]; also used to gather rows of any [rows, cols] tensor.
  virtual void embedding(Tensor out, Tensor table, Tensor ids) = 0;
  // out = x / sqrt(mean(x^2) + eps) * weight, per row of length cols (weight has cols elements).
  // out may alias x.
  virtual void rmsnorm(Tensor out, Tensor x, Tensor weight, float eps) = 0;
  // out = a + b elementwise (same shapes); out may alias a or b.
  virtual void add(Tensor out, Tensor a, Tensor b) = 0;
  // In-place rotary embedding, Hugging Face "rotate_half" layout, on x [n, heads * head_dim]:
  // for i < head_dim/2: (x_i, x_{i+half}) <- (x_i c - x_{i+half} s, x_{i+half} c + x_i s), where
  // c = cos_sin[pos, i], s = cos_sin[pos, half + i]; cos_sin F32 [max_pos, head_dim] (F64 in the CPU
  // backend's f64 mode); positions I32 [n].
  virtual void rope(Tensor x, Tensor positions, Tensor cos_sin, int head_dim) = 0;
  // out = silu(gate) * up elementwise; out may alias gate.
  virtual void swiglu(Tensor out, Tensor gate, Tensor up) = 0;
  // Write k, v [n, kv_heads*head_dim] into cache rows slots[i] of k_cache, v_cache [rows, kv_heads*head_dim].
  virtual void kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots) = 0;
  // out, q [n, num_q_heads*head_dim]: causal softmax attention of each query token over its sequence's
  // cached keys/values at positions 0..token_pos (see AttentionMeta).
  virtual void paged_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const AttentionMeta& meta) = 0;
  // out[i] = log_softmax(logits[i,:] * inv_temperature)[targets[i]]; logits [n, V], targets I32 [n],
  // out F32 [n].
  virtual void log_softmax_gather(Tensor out, Tensor logits, Tensor targets, float inv_temperature) = 0;
  // Sample one token per row of logits [B, V] with rows[B]; writes ids and the log-prob of each chosen
  // token under log_softmax(logits / temperature) (raw logits for greedy rows), before any filtering,
  // into host arrays of length B.
  virtual void sample(Tensor logits, const SamplingRow* rows, int32_t* out_ids, float* out_logprobs) = 0;

  // ---- training ops -------------------------------------------------------------------------
  // Training is LoRA-only: base weights are frozen inputs, gradients flow into the LoRA matrices. Dtypes:
  // x, out and activation gradients use activation_dtype(), frozen weights weight_dtype(); LoRA matrices
  // A/B, their gradients, optimizer moments and per-token scalars (lse, log-probs, entropy, d log-probs)
  // use param_dtype(). Gradient outputs are overwritten unless an op says it accumulates. The default
  // implementations throw kBackend ("<op> is not implemented on backend <name>"), so a backend that only
  // generates still builds.
  //
  // F32 everywhere but the CPU backend's precision "f64" mode, where every float tensor is F64 (except the
  // logits of linear/log_softmax_gather/sample on the generation path, which may stay F32).
  virtual DType param_dtype() const { return DType::F32; }

  // LoRA projection (PEFT semantics, W frozen, A [r,K], B [N,r]):
  //   out[M,N] = x[M,K] w[N,K]^T (+ bias[N]) + scale * (x a^T) b^T
  // xa [M,r] (activation dtype) receives x a^T, which lora_linear_backward needs; it may be absent
  // (inference). a and b are in param_dtype().
  virtual void lora_linear(Tensor out, Tensor xa, Tensor x, Tensor w, Tensor bias, Tensor a, Tensor b, float scale);
  // Backward of lora_linear given dout [M,N] (w, bias frozen). With t = scale * dout b  [M,r]:
  //   dx[M,K] = dout w + t a        (accumulated into dx when accumulate_dx; dx may be absent: skipped)
  //   da[r,K] += t^T x              (always accumulates: gradient accumulation over micro-batches)
  //   db[N,r] += scale * dout^T xa  (always accumulates)
  // With a, b, da, db, xa absent it is the backward of plain linear(): dx (+)= dout w.
  virtual void lora_linear_backward(Tensor dx, Tensor da, Tensor db, Tensor dout, Tensor x, Tensor xa, Tensor w,
                                    Tensor a, Tensor b, float scale, bool accumulate_dx);
  // Causal attention over a packed batch (see VarlenMeta): q, out [n, Hq*hd], k, v [n, Hkv*hd];
  // out_i = sum_j softmax_j(scale * q_i.k_j) v_j over j in i's sequence, j <= i. lse [n, Hq]
  // (param dtype) receives log sum_j exp(scale * q_i.k_j) per row and head, for the backward.
  virtual void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const VarlenMeta& meta);
  // Its backward: dq [n, Hq*hd], dk, dv [n, Hkv*hd] (overwritten; dk/dv sum over the q heads of their
  // GQA group) from dout, given the forward's q, k, v, out and lse. With P = exp(scale q.k - lse):
  //   dv_j = sum_i P_ij dout_i;  dS_ij = P_ij (dout_i.v_j - dout_i.out_i);
  //   dq_i = scale sum_j dS_ij k_j;  dk_j = scale sum_i dS_ij q_i.
  virtual void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                  Tensor out, Tensor lse, const VarlenMeta& meta);
  // Backward of rmsnorm w.r.t. x (weight frozen), per row of length D, with r = sqrt(mean(x^2) + eps),
  // g = dout * weight, xhat = x / r:   dx = (g - xhat * mean(g * xhat)) / r.
  // Accumulated into dx when accumulate; otherwise dx may alias dout.
  virtual void rmsnorm_backward(Tensor dx, Tensor dout, Tensor x, Tensor weight, float eps, bool accumulate);
  // Backward of rope, in place on dx (same layout/arguments as rope): the inverse rotation
  //   (g_i, g_{i+half}) <- (g_i c + g_{i+half} s, g_{i+half} c - g_i s).
  virtual void rope_backward(Tensor dx, Tensor positions, Tensor cos_sin, int head_dim);
  // Backward of swiglu, elementwise, s = sigmoid(gate):
  //   dgate = dout * up * s * (1 + gate * (1 - s)),  dup = dout * gate * s.
  // Outputs may alias inputs (dgate = gate or dout, dup = up).
  virtual void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up);
  // out[ids[i], :] += src[i, :]; ids I32 [n], distinct (the adjoint of the row gather embedding()).
  virtual void scatter_add_rows(Tensor out, Tensor src, Tensor ids);
  // Fused lm head + log-softmax + gather over one chunk of m rows; the [m, V] logits are never returned
  // (a backend may hold them for the chunk only). z = hidden[m,D] lm_head[V,D]^T * inv_temperature:
  //   lse[i] = logsumexp_j z[i,j];  logprobs[i] = z[i, targets[i]] - lse[i];
  //   entropy[i] = lse[i] - sum_j softmax(z[i])_j z[i,j]   (entropy may be absent).
  // logprobs, lse, entropy [m] in param dtype; targets I32 [m].
  virtual void logprob_forward(Tensor logprobs, Tensor lse, Tensor entropy, Tensor hidden, Tensor lm_head,
                               Tensor targets, float inv_temperature);
  // Its backward w.r.t. hidden (lm_head frozen), recomputing z; lse from the forward:
  //   dz[i,j] = dlogprobs[i] * ([j == targets[i]] - exp(z[i,j] - lse[i]));  dhidden = inv_temperature * dz lm_head.
  // dhidden [m, D] is overwritten.
  virtual void logprob_backward(Tensor dhidden, Tensor dlogprobs, Tensor hidden, Tensor lm_head, Tensor targets,
                                Tensor lse, float inv_temperature);
  // One AdamW update (PyTorch semantics: decoupled weight decay, bias correction), elementwise over
  // param/grad/m/v (param dtype, same shapes), with g = grad * p.grad_scale, t = p.step:
  //   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
  //   param -= lr * (weight_decay * param + (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)).
  virtual void adamw_step(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWParams& p);
  // The same update over every tensor of `tensors` with one set of hyper-parameters (the optimizer step
  // over all LoRA tensors). Each element's result is exactly adamw_step's; the default loops over
  // adamw_step in order (the CPU backend uses it), CUDA does one launch over a device-side table.
  virtual void adamw_step_multi(const std::vector<AdamWTensorRef>& tensors, const AdamWParams& p);
  // Sum of squares of all elements, accumulated in double, returned to the host (waits for the backend);
  // NaN/Inf propagate, which is how non-finite gradients are detected.
  virtual double sum_squares(Tensor x);
  // sum_squares of each tensor (result i for xs[i]), waiting for the backend at most once: the gradient
  // norm of an optimizer step reads every adapter tensor's sum in one go. The default calls sum_squares
  // per tensor (the CPU backend: the same values); CUDA enqueues every reduction and copies once.
  virtual std::vector<double> sum_squares_many(const std::vector<Tensor>& xs) {
    std::vector<double> out;
    out.reserve(xs.size());
    for (const Tensor& x : xs) out.push_back(sum_squares(x));
    return out;
  }

 protected:
  virtual void* raw_alloc(size_t bytes) = 0;  // nullptr on failure
  virtual void raw_free(void* p) = 0;

 private:
  size_t in_use_ = 0;
  size_t peak_ = 0;
};

// Owns one allocation of a backend; move-only. Converts to the Tensor view it owns.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& be, DType dtype, std::initializer_list<int64_t> shape);
  ~Buffer() { release(); }
  Buffer(Buffer&& o) noexcept : be_(o.be_), t_(o.t_), bytes_(o.bytes_) { o.be_ = nullptr; o.t_ = Tensor{}; }
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  const Tensor& t() const { return t_; }
  operator Tensor() const { return t_; }  // NOLINT: a Buffer is used wherever its view is
  bool empty() const { return t_.data == nullptr; }
  void release();

 private:
  Backend* be_ = nullptr;
  Tensor t_;
  size_t bytes_ = 0;
};

struct BackendOptions {
  std::string kind = "cpu";  // "cpu" or "cuda"
  int threads = 0;           // CPU: 0 = one per hardware thread
  int device = 0;            // CUDA device ordinal
  std::string gemm = "auto"; // CPU: "auto" (BLAS when built with one), "blas", "builtin"
  std::string precision = "f32";  // CPU: "f32", or "f64" (every float tensor in double: gradient checks)
  std::string weights = "auto";   // CPU, precision f32: frozen weight matrices in "bf16", "f32", or "auto"
                                  // (bf16 when the checkpoint is bf16)
};

// Creates a backend; throws kBackend when the kind is unknown, not compiled in, or has no device.
std::unique_ptr<Backend> make_backend(const BackendOptions& options);
bool cuda_compiled();        // built with the CUDA backend
int cuda_device_count();     // 0 without CUDA or without a usable device
bool blas_compiled();        // CPU GEMM can use a BLAS
std::string blas_name();     // e.g. "OpenBLAS", "" when none

}  // namespace hayate
