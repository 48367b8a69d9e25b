// LoRA projection (PEFT semantics, W frozen, A [r, K], B [N, r] in param dtype fp32):
//   forward  out = x W^T (+ bias) + scale (x A^T) B^T,  xa = x A^T returned for the backward
//   backward t = scale dout B;  dx (+)= dout W + t A;  dA += t^T x;  dB += scale dout^T xa
// composed from the GEMM (gemm.cu): the low-rank products are tiny (r = 8..64), and the fp32 low-rank
// terms enter the base GEMM's epilogue as an addend, so out / dx are rounded to their dtype once.
// TODO(perf): fuse x A^T into the base GEMM's main loop (x read once) and give the transposed backward
// products a fast path; today they take the GEMM's generic loader.
#include "cuda_backend.h"
#include "cuda_check.h"
#include "kernels.h"

namespace hayate {

namespace {

Tensor as2d(Tensor t) { return t.ndim == 2 ? t : t.view({t.rows(), t.cols()}); }

// out = alpha op(a) op(b) + beta out (+ addend), with the shape checks of gemm().
void run_gemm(const gpu::Ctx& c, Tensor out, Tensor a, Tensor b, bool ta, bool tb, float alpha, float beta,
              const float* addend = nullptr) {
  gpu::GemmOperands g;
  g.out = as2d(out);
  g.a = as2d(a);
  g.b = as2d(b);
  g.trans_a = ta;
  g.trans_b = tb;
  g.alpha = alpha;
  g.beta = beta;
  g.addend = addend;
  gpu::gemm(c, g, gpu::check_gemm(g.out, g.a, g.b, ta, tb), gpu::GemmBackend::Hayate);
}

}  // namespace

void CudaBackend::lora_linear(Tensor out, Tensor xa, Tensor x, Tensor w, Tensor bias, Tensor a, Tensor b, float scale) {
  const char* op = "lora_linear";
  const gpu::GemmDims d = gpu::check_linear(op, out, x, w, bias);
  if (a.empty() && b.empty()) {
    linear(out, x, w, bias);
    return;
  }
  gpu::need_float(op, a, "a");
  gpu::need_float(op, b, "b");
  gpu::need(op, a.ndim == 2 && b.ndim == 2 && a.shape[1] == d.K && b.shape[0] == d.N && b.shape[1] == a.shape[0],
            "adapter shapes do not match: a " + a.shape_str() + ", b " + b.shape_str() + " for x " + x.shape_str() +
                ", w " + w.shape_str());
  const int64_t r = a.shape[0];
  if (!xa.empty()) {
    gpu::need_float(op, xa, "xa");
    gpu::need(op, xa.rows() == d.M && xa.cols() == r, "xa " + xa.shape_str() + " does not match [" +
                                                          std::to_string(d.M) + ", " + std::to_string(r) + "]");
  }
  const gpu::Ctx c = op_ctx();
  Buffer t(*this, DType::F32, {d.M, r});
  Buffer lo(*this, DType::F32, {d.M, d.N});
  run_gemm(c, t, x, a, false, true, 1.0f, 0.0f);           // t = x A^T
  if (!xa.empty()) gpu::convert(c, xa, t);
  run_gemm(c, lo, t, b, false, true, scale, 0.0f);         // lo = scale t B^T
  gpu::GemmOperands g;                                       // out = x W^T + bias + lo
  g.out = as2d(out);
  g.a = as2d(x);
  g.b = w;
  g.trans_b = true;
  g.bias = bias;
  g.addend = lo.t().as<const float>();
  gpu::gemm(c, g, d, gpu::GemmBackend::Hayate);
  after_op(op);
}

void CudaBackend::lora_linear_backward(Tensor dx, Tensor da, Tensor db, Tensor dout, Tensor x, Tensor xa, Tensor w,
                                       Tensor a, Tensor b, float scale, bool accumulate_dx) {
  const char* op = "lora_linear_backward";
  gpu::need_float(op, dout, "dout");
  gpu::need_float(op, w, "w");
  gpu::need(op, w.ndim == 2, "weight must be 2-D, got " + w.shape_str());
  const int64_t M = dout.rows(), N = dout.cols(), K = w.shape[1];
  gpu::need(op, w.shape[0] == N, "dout " + dout.shape_str() + " does not match w " + w.shape_str());
  if (!dx.empty()) {
    gpu::need_float(op, dx, "dx");
    gpu::need(op, dx.rows() == M && dx.cols() == K, "dx " + dx.shape_str() + " must be [" + std::to_string(M) + ", " +
                                                        std::to_string(K) + "]");
  }
  const bool lora = !a.empty();
  int64_t r = 0;
  if (lora) {
    for (auto [t, what] : {std::pair<const Tensor*, const char*>{&a, "a"}, {&b, "b"}, {&da, "da"}, {&db, "db"}, {&x, "x"}, {&xa, "xa"}})
      gpu::need_float(op, *t, what);
    r = a.rows();
    gpu::need(op, a.ndim == 2 && a.cols() == K && b.ndim == 2 && b.rows() == N && b.cols() == r &&
                      da.numel() == a.numel() && db.numel() == b.numel() && x.rows() == M && x.cols() == K &&
                      xa.rows() == M && xa.cols() == r,
              "LoRA shapes do not match: dout " + dout.shape_str() + ", x " + x.shape_str() + ", xa " + xa.shape_str() +
                  ", a " + a.shape_str() + ", b " + b.shape_str());
  }
  if (M == 0) return;
  const gpu::Ctx c = op_ctx();
  const float beta_dx = accumulate_dx ? 1.0f : 0.0f;
  if (!lora) {
    if (!dx.empty()) run_gemm(c, dx, dout, w, false, false, 1.0f, beta_dx);  // dx (+)= dout W
    after_op(op);
    return;
  }
  Buffer t(*this, DType::F32, {M, r});
  run_gemm(c, t, dout, b, false, false, scale, 0.0f);  // t = scale dout B
  if (!dx.empty()) {
    Buffer ta(*this, DType::F32, {M, K});
    run_gemm(c, ta, t, a, false, false, 1.0f, 0.0f);                                  // t A
    run_gemm(c, dx, dout, w, false, false, 1.0f, beta_dx, ta.t().as<const float>());  // dx (+)= dout W + t A
  }
  run_gemm(c, da, t, x, true, false, 1.0f, 1.0f);       // dA += t^T x
  run_gemm(c, db, dout, xa, true, false, scale, 1.0f);  // dB += scale dout^T xa
  after_op(op);
}

}  // namespace hayate
