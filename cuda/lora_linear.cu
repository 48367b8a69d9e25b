// LoRA projection (PEFT semantics, W frozen, A [r, K], B [N, r] in param dtype fp32):
//   forward  out = x W^T (+ bias) + scale (x A^T) B^T,  xa = x A^T returned for the backward
//   backward t = scale dout B;  dx (+)= dout W + t A;  dA += t^T x;  dB += scale dout^T xa
//
// Fusion (the project GEMM's concatenated-K operand pair, gemm.cu): the low-rank update is r extra
// reduction columns of the base GEMM, so out / dx come from ONE tensor-core GEMM launch with one
// rounding and no [M, N] (or [M, K]) fp32 intermediate:
//   forward   out = [x | xa] [W | scale B]^T (+ bias)  — xa and scale*B packed to bf16 [*, r8] (r padded
//             with zero columns to a multiple of 8) so the extra k-tiles take the same cp.async path;
//   backward  dx (+)= [dout | t] [W ; A]              — t = scale dout B and A packed to bf16 ([M, r8],
//             [r8, K]), so dx runs the NN cp.async path (ldmatrix.trans on W and A).
// What is read how often: the fused GEMM streams x (dout) exactly as bare linear does (once per N tile,
// as any tiled GEMM); xa = x A^T needs one more pass over x in a skinny GEMM (N = r fits one N tile, so
// x is read once there) because a CTA cannot use another CTA's x A^T without a grid-wide barrier, and
// recomputing x A^T in every N tile would cost r/BN of the base MMAs per tile. The extra traffic is
// ~M*K*2 bytes + the small operands, against the base GEMM's M*K*tiles_n + N*K*tiles_m reads, and the
// extra MMAs are r/K of the base's: that is the budget for "within 10% of bare linear".
// dA = t^T x and dB = scale dout^T xa are small GEMMs (rank r outputs) accumulated into the gradients: TN
// layout (both operands read along their contiguous rows with ldmatrix.trans), the reduction over tokens
// cut into split-K slices so the skinny outputs still fill the GPU. t and xa are used as [M, r] views of
// their zero-padded [M, r8] bf16 copies (row stride r8). The backward's products are not batch-invariant
// (the contract asks it of the forward only): one accumulator set each.
// Numerics: the extra columns are their own fixed chunk after K's chunks (plan.h), so results stay
// batch-invariant; xa and scale*B enter the tensor cores as bf16 (as every GEMM operand does).
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"

namespace hayate::gpu {

namespace {

Tensor as2d(Tensor t) { return t.ndim == 2 ? t : t.view({t.rows(), t.cols()}); }

// out = alpha op(a) op(b) + beta out (+ addend), with the shape checks of gemm(). lda / ldb: row strides
// of views narrower than their storage (0: contiguous); invariant: see GemmOperands.
void run_gemm(const Ctx& c, Tensor out, Tensor a, Tensor b, bool ta, bool tb, float alpha, float beta,
              bool invariant = true, int64_t lda = 0, int64_t ldb = 0) {
  GemmOperands g;
  g.out = as2d(out);
  g.a = as2d(a);
  g.b = as2d(b);
  g.trans_a = ta;
  g.trans_b = tb;
  g.alpha = alpha;
  g.beta = beta;
  g.lda = lda;
  g.ldb = ldb;
  g.invariant = invariant;
  gemm(c, g, check_gemm(g.out, g.a, g.b, ta, tb), GemmBackend::Hayate);
}

// dst bf16 [R8, C8] = scale * src [R, C] (F32 or BF16), rows R..R8-1 and columns C..C8-1 zero.
__global__ void lora_pack_kernel(bf16* dst, const void* src, DType ts, int64_t R, int64_t C, int64_t R8, int64_t C8,
                                 float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < R8 * C8;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / C8, col = i % C8;
    const float v = row < R && col < C ? __fmul_rn(scale, load_as_float(src, ts, row * C + col)) : 0.0f;
    dst[i] = __float2bfloat16_rn(v);
  }
}

void lora_pack_bf16(const Ctx& c, Tensor dst, Tensor src, float scale) {
  const int64_t R = src.rows(), C = src.cols(), R8 = dst.rows(), C8 = dst.cols();
  if (R8 * C8 == 0) return;
  const Launch1D l = plan_elementwise(R8 * C8, c.num_sms);
  lora_pack_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(dst.as<bf16>(), src.data, src.dtype, R, C,
                                                                               R8, C8, scale);
  HAYATE_CUDA_CHECK_LAUNCH("lora_linear pack");
}

}  // namespace

void lora_linear(const Ctx& c, const GemmDims& d, Tensor out, Tensor xa, Tensor x, Tensor w, Tensor bias, Tensor a,
                 Tensor b, float scale, const LoraLinearScratch& s) {
  // xa = x A^T (fp32 [M, r]); A goes to bf16 first so a bf16 x takes the GEMM's cp.async path.
  convert(c, s.a16, a);
  run_gemm(c, s.xa32, x, s.a16, false, true, 1.0f, 0.0f);
  if (!xa.empty()) convert(c, xa, s.xa32);
  // The concatenated operands, bf16 and zero-padded to r8 columns: [xa] [M, r8] and [scale B] [N, r8].
  lora_pack_bf16(c, s.xa16, s.xa32, 1.0f);
  lora_pack_bf16(c, s.sb16, b, scale);
  GemmOperands g;  // out = [x | xa] [W | scale B]^T + bias: one launch
  g.out = as2d(out);
  g.a = as2d(x);
  g.b = w;
  g.trans_b = true;
  g.bias = bias;
  g.a2 = s.xa16;
  g.b2 = s.sb16;
  gemm(c, g, d, GemmBackend::Hayate);
}

void lora_linear_backward(const Ctx& c, Tensor dx, Tensor da, Tensor db, Tensor dout, Tensor x, Tensor xa, Tensor w,
                          Tensor a, Tensor b, float scale, bool accumulate_dx, const LoraBackwardScratch& s) {
  // Every product here is a gradient: no batch invariance (one accumulator set, split-K to fill the GPU),
  // and every operand bf16 with 16-byte rows so each takes a cp.async layout (plan.h, lora_backward_problems).
  const float beta_dx = accumulate_dx ? 1.0f : 0.0f;
  const bool inv = false;
  if (a.empty()) {
    if (!dx.empty()) run_gemm(c, dx, dout, w, false, false, 1.0f, beta_dx, inv);  // dx (+)= dout W  (NN)
    return;
  }
  const int64_t M = dout.rows(), r = a.rows();
  lora_pack_bf16(c, s.b16, b, 1.0f);  // B [N, r] -> bf16 [N, r8]
  // t = scale dout B, bf16 [M, r8] (columns r.. are zeros): NN
  run_gemm(c, s.t16, dout, s.b16, false, false, scale, 0.0f, inv);
  if (!dx.empty()) {  // dx (+)= [dout | t] [W ; A]: one launch, the r8 columns of t after dout's N (NN)
    lora_pack_bf16(c, s.a16, a, 1.0f);  // A [r, K] -> bf16 [r8, K] (rows r.. zero)
    GemmOperands g;
    g.out = as2d(dx);
    g.a = as2d(dout);
    g.b = w;
    g.beta = beta_dx;
    g.a2 = s.t16;
    g.b2 = s.a16;
    g.invariant = inv;
    gemm(c, g, check_gemm(g.out, g.a, g.b, false, false), GemmBackend::Hayate);
  }
  // The first r columns of the padded [M, r8] tensors, as [M, r] views with row stride r8.
  const int64_t r8 = s.t16.cols();
  const Tensor t_view(s.t16.data, DType::BF16, {M, r});
  run_gemm(c, da, t_view, x, true, false, 1.0f, 1.0f, inv, r8);  // dA += t^T x  (TN)
  lora_pack_bf16(c, s.xa16, xa, 1.0f);                            // xa [M, r] -> bf16 [M, r8]
  const Tensor xa_view(s.xa16.data, DType::BF16, {M, r});
  run_gemm(c, db, dout, xa_view, true, false, scale, 1.0f, inv, 0, r8);  // dB += scale dout^T xa  (TN)
}

}  // namespace hayate::gpu
