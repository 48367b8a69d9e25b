// CudaBackend: owns the device, its stream, device memory (cudaMalloc + a size-class cache, never managed
// memory), a scratch workspace for ops that need temporaries (GEMM split partials, attention partials,
// log-softmax chunk pairs), pinned staging for sampling, and the device error word. Every CudaBackend
// method is defined here: each Backend op validates its arguments, allocates the device scratch its
// launcher needs (lora_linear, logprob), and enqueues the launchers of its own file (kernels.h); nothing
// here does math.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"

namespace hayate {

namespace {

// An empty kernel whose attributes tell which virtual architecture this build's device code targets.
__global__ void arch_probe_kernel() {}

std::string error_bits_message(int bits) {
  std::string m = "invalid index values in CUDA ops enqueued since the last sync:";
  if (bits & gpu::kErrEmbeddingId) m += " embedding: an id is outside the table;";
  if (bits & gpu::kErrRopePosition) m += " rope: a position is outside the cos/sin table;";
  if (bits & gpu::kErrKvSlot) m += " kv_store: a slot is outside the cache;";
  if (bits & gpu::kErrAttentionMeta)
    m += " paged_attention: a token's sequence, position or block id is outside the block tables or cache;";
  if (bits & gpu::kErrTarget) m += " log_softmax_gather/logprob: a target is outside the vocabulary;";
  if (bits & gpu::kErrScatterId) m += " scatter_add_rows: a row id is outside the output;";
  if (bits & gpu::kErrVarlenMeta)
    m += " attention_forward/attention_backward: cu_seqlens must start at 0, be non-decreasing and end at the "
         "number of rows, and no sequence may be longer than max_seqlen;";
  m.pop_back();
  return m + " (the affected rows were zeroed or skipped)";
}

}  // namespace

struct CudaBackend::Impl : gpu::Workspace {
  int device = 0;
  cudaStream_t stream = nullptr;
  cudaDeviceProp props{};
  int* err_dev = nullptr;
  int* err_host = nullptr;  // pinned
  // caching allocator
  std::unordered_map<size_t, std::vector<void*>> free_blocks;
  std::unordered_map<void*, size_t> live;
  // scratch workspace
  void* ws_ptr = nullptr;
  size_t ws_cap = 0;
  // sampling staging (pinned host + device)
  void* pinned = nullptr;
  size_t pinned_cap = 0;
  void* sample_dev = nullptr;
  size_t sample_dev_cap = 0;
  // adamw_step_multi's device table ([entries | chunks]) and the host copy it was uploaded from
  std::vector<unsigned char> adamw_table_host;
  void* adamw_table_dev = nullptr;
  size_t adamw_table_cap = 0;
  void* cublas = nullptr;
  gpu::GemmBackend gemm_backend = gpu::GemmBackend::Hayate;  // linear() and gemm()
  bool debug_sync = false;

  ~Impl() override {
    if (stream) cudaStreamSynchronize(stream);
    for (auto& [cls, v] : free_blocks)
      for (void* p : v) cudaFree(p);
    for (auto& [p, cls] : live) cudaFree(p);
    if (ws_ptr) cudaFree(ws_ptr);
    if (sample_dev) cudaFree(sample_dev);
    if (adamw_table_dev) cudaFree(adamw_table_dev);
    if (pinned) cudaFreeHost(pinned);
    if (err_dev) cudaFree(err_dev);
    if (err_host) cudaFreeHost(err_host);
    gpu::cublas_destroy(cublas);
    if (stream) cudaStreamDestroy(stream);
    (void)cudaGetLastError();
  }

  void activate() const { HAYATE_CUDA_CHECK(cudaSetDevice(device)); }

  gpu::Ctx ctx() {
    gpu::Ctx c;
    c.stream = stream;
    c.err = err_dev;
    c.num_sms = props.multiProcessorCount;
    c.smem_optin = props.sharedMemPerBlockOptin;
    c.ws = this;
    c.cublas = gemm_backend == gpu::GemmBackend::Cublas ? cublas : nullptr;
    return c;
  }

  // Frees every cached block (after the stream is idle: they may still be in use by queued kernels).
  void trim() {
    cudaStreamSynchronize(stream);
    for (auto& [cls, v] : free_blocks)
      for (void* p : v) cudaFree(p);
    free_blocks.clear();
  }

  // cudaMalloc, retrying once after trimming the cache; nullptr when the device is out of memory.
  void* device_malloc(size_t bytes) {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      trim();
      e = cudaMalloc(&p, bytes);
    }
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      return nullptr;
    }
    HAYATE_CUDA_CHECK(e);
    return p;
  }

  void* get(size_t bytes) override {
    if (bytes <= ws_cap) return ws_ptr;
    if (ws_ptr) {  // queued kernels may still read the old scratch
      HAYATE_CUDA_CHECK(cudaStreamSynchronize(stream));
      HAYATE_CUDA_CHECK(cudaFree(ws_ptr));
      ws_ptr = nullptr;
      ws_cap = 0;
    }
    const size_t cap = gpu::alloc_size_class(bytes);
    ws_ptr = device_malloc(cap);
    HAYATE_CHECK(ws_ptr, ErrorCode::kOutOfMemory,
                 "out of memory on backend 'cuda': could not allocate " + std::to_string(cap) +
                     " bytes of scratch; use a smaller batch, context or model");
    ws_cap = cap;
    return ws_ptr;
  }

  void check_errors() {
    HAYATE_CUDA_CHECK(cudaMemcpyAsync(err_host, err_dev, sizeof(int), cudaMemcpyDeviceToHost, stream));
    HAYATE_CUDA_CHECK(cudaStreamSynchronize(stream));
    const int bits = *err_host;
    if (bits != 0) {
      *err_host = 0;
      HAYATE_CUDA_CHECK(cudaMemsetAsync(err_dev, 0, sizeof(int), stream));
      fail(ErrorCode::kInvalidArgument, error_bits_message(bits));
    }
  }
};

int cuda_backend_device_count() {
  try {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  } catch (...) {
    return 0;
  }
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    fail(ErrorCode::kBackend, std::string("backend 'cuda' requested but no usable CUDA device was found (") +
                                  (e != cudaSuccess ? cudaGetErrorString(e) : "no devices") +
                                  "); use backend 'cpu'");
  }
  HAYATE_CHECK(options.device >= 0 && options.device < n, ErrorCode::kBackend,
               "CUDA device " + std::to_string(options.device) + " does not exist (" + std::to_string(n) +
                   " device(s) found)");
  return std::make_unique<CudaBackend>(options);
}

CudaBackend::CudaBackend(const BackendOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.device = options.device;
  HAYATE_CUDA_CHECK(cudaSetDevice(m.device));
  HAYATE_CUDA_CHECK(cudaGetDeviceProperties(&m.props, m.device));
  HAYATE_CHECK(m.props.major >= 8, ErrorCode::kBackend,
               std::string("CUDA device ") + m.props.name + " has compute capability " + std::to_string(m.props.major) +
                   "." + std::to_string(m.props.minor) + "; the cuda backend needs 8.0 or newer (bf16 tensor cores)");
  // The kernels need sm_80 features (cp.async, bf16 mma); a build for an older virtual architecture
  // compiles them to traps. Refuse it here with the fix rather than fail inside the first GEMM.
  cudaFuncAttributes fa{};
  HAYATE_CUDA_CHECK(cudaFuncGetAttributes(&fa, arch_probe_kernel));
  HAYATE_CHECK(fa.ptxVersion >= 80, ErrorCode::kBackend,
               "this build's CUDA kernels target compute_" + std::to_string(fa.ptxVersion) +
                   ", below the compute_80 they need; reconfigure with -DCMAKE_CUDA_ARCHITECTURES=\"80;90a\" "
                   "(or HAYATE_CUDA_ARCHS) and rebuild");
  HAYATE_CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
  HAYATE_CUDA_CHECK(cudaMalloc(&m.err_dev, sizeof(int)));
  HAYATE_CUDA_CHECK(cudaMallocHost(&m.err_host, sizeof(int)));
  *m.err_host = 0;
  HAYATE_CUDA_CHECK(cudaMemsetAsync(m.err_dev, 0, sizeof(int), m.stream));
  if (options.gemm == "cublas" || options.gemm == "blas") {
    set_gemm_backend(gpu::GemmBackend::Cublas);
  } else if (options.gemm != "auto" && options.gemm != "builtin" && options.gemm != "hayate") {
    fail(ErrorCode::kInvalidArgument, "unknown gemm implementation '" + options.gemm + "' for cuda (auto, hayate, cublas)");
  }
  const char* dbg = std::getenv("HAYATE_CUDA_SYNC");
  m.debug_sync = dbg && *dbg && std::strcmp(dbg, "0") != 0;
  check_errors();  // the stream and error word work (and nothing failed asynchronously so far)
}

CudaBackend::~CudaBackend() = default;

std::string CudaBackend::description() const {
  const cudaDeviceProp& p = impl_->props;
  char mem[32];
  std::snprintf(mem, sizeof(mem), "%.1f GiB", p.totalGlobalMem / 1073741824.0);
  std::string g = impl_->gemm_backend == gpu::GemmBackend::Cublas ? "cuBLAS (fp32 compute)"
                                                                  : "hayate mma.sync bf16/fp32 (batch-invariant)";
  return "cuda: " + std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs, " + mem + "), bf16 weights/activations, gemm " + g;
}

bool CudaBackend::cublas_compiled() { return gpu::cublas_available(); }

void CudaBackend::set_gemm_backend(gpu::GemmBackend impl) {
  if (impl == gpu::GemmBackend::Cublas) {
    HAYATE_CHECK(gpu::cublas_available(), ErrorCode::kBackend,
                 "gemm 'cublas' requested but this build has no cuBLAS (the toolkit's cuBLAS was not found)");
    impl_->activate();
    if (!impl_->cublas) impl_->cublas = gpu::cublas_create();
  }
  impl_->gemm_backend = impl;
}
gpu::GemmBackend CudaBackend::gemm_backend() const { return impl_->gemm_backend; }
int CudaBackend::device() const { return impl_->device; }
int CudaBackend::sm_count() const { return impl_->props.multiProcessorCount; }
std::string CudaBackend::device_name() const { return impl_->props.name; }
int CudaBackend::compute_capability() const { return impl_->props.major * 10 + impl_->props.minor; }
void* CudaBackend::stream_handle() const { return impl_->stream; }

double CudaBackend::peak_memory_bandwidth_gbs() const {
  int clk_khz = 0;
  if (cudaDeviceGetAttribute(&clk_khz, cudaDevAttrMemoryClockRate, impl_->device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0.0;
  }
  return 2.0 * clk_khz * 1e3 * (impl_->props.memoryBusWidth / 8.0) / 1e9;  // double data rate
}

void CudaBackend::check_errors() {
  impl_->activate();
  impl_->check_errors();
}

gpu::Ctx CudaBackend::op_ctx() {
  impl_->activate();
  return impl_->ctx();
}

void CudaBackend::after_op(const char* op) {
  if (!impl_->debug_sync) return;
  try {
    impl_->check_errors();
  } catch (const Error& e) {
    fail(e.code(), std::string(op) + ": " + e.what());
  }
}

// ---- memory ----------------------------------------------------------------------------------------

void* CudaBackend::raw_alloc(size_t bytes) {
  Impl& m = *impl_;
  m.activate();
  const size_t cls = gpu::alloc_size_class(bytes);
  auto it = m.free_blocks.find(cls);
  void* p = nullptr;
  if (it != m.free_blocks.end() && !it->second.empty()) {
    p = it->second.back();  // stream order makes reuse safe: later work is queued after earlier readers
    it->second.pop_back();
  } else {
    p = m.device_malloc(cls);
    if (!p) return nullptr;
  }
  m.live[p] = cls;
  return p;
}

void CudaBackend::raw_free(void* p) {
  Impl& m = *impl_;
  auto it = m.live.find(p);
  if (it == m.live.end()) return;
  m.free_blocks[it->second].push_back(p);
  m.live.erase(it);
}

void CudaBackend::copy_from_host(void* dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  impl_->activate();
  // From pageable memory this returns once the source is staged, so the caller may reuse it at once.
  HAYATE_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, impl_->stream));
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  impl_->activate();
  if (bytes > 0) HAYATE_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, impl_->stream));
  impl_->check_errors();  // waits for the copy
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  impl_->activate();
  HAYATE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, impl_->stream));
}

void CudaBackend::synchronize() {
  impl_->activate();
  impl_->check_errors();
}

void CudaBackend::fill_zero(Tensor t) {
  if (t.nbytes() == 0) return;
  impl_->activate();
  HAYATE_CUDA_CHECK(cudaMemsetAsync(t.data, 0, t.nbytes(), impl_->stream));
}

// ---- ops ---------------------------------------------------------------------------------------------

namespace {
// linear() is gemm() with w transposed and a bias: one operand fill for both.
gpu::GemmOperands gemm_operands(Tensor out, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta,
                                Tensor bias) {
  gpu::GemmOperands g;
  g.out = out;
  g.a = a;
  g.b = b;
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.alpha = alpha;
  g.beta = beta;
  g.bias = bias;
  return g;
}
}  // namespace

void CudaBackend::gemm(Tensor out, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta) {
  const gpu::GemmDims d = gpu::check_gemm(out, a, b, trans_a, trans_b);
  const gpu::Ctx c = op_ctx();
  gpu::gemm(c, gemm_operands(out, a, b, trans_a, trans_b, alpha, beta, {}), d, impl_->gemm_backend);
  after_op("gemm");
}

void CudaBackend::linear(Tensor out, Tensor x, Tensor w, Tensor bias) {
  const gpu::GemmDims d = gpu::check_linear("linear", out, x, w, bias);
  const gpu::Ctx c = op_ctx();
  gpu::gemm(c, gemm_operands(out, x, w, false, true, 1.0f, 0.0f, bias), d, impl_->gemm_backend);
  after_op("linear");
}

void CudaBackend::embedding(Tensor out, Tensor table, Tensor ids) {
  impl_->activate();
  gpu::embedding(impl_->ctx(), out, table, ids);
  after_op("embedding");
}

void CudaBackend::rmsnorm(Tensor out, Tensor x, Tensor weight, float eps) {
  impl_->activate();
  gpu::rmsnorm(impl_->ctx(), out, x, weight, eps);
  after_op("rmsnorm");
}

void CudaBackend::add(Tensor out, Tensor a, Tensor b) {
  impl_->activate();
  gpu::add(impl_->ctx(), out, a, b);
  after_op("add");
}

void CudaBackend::rope(Tensor x, Tensor positions, Tensor cos_sin, int head_dim) {
  impl_->activate();
  gpu::rope(impl_->ctx(), x, positions, cos_sin, head_dim, false);
  after_op("rope");
}

void CudaBackend::rope_backward(Tensor dx, Tensor positions, Tensor cos_sin, int head_dim) {
  impl_->activate();
  gpu::rope(impl_->ctx(), dx, positions, cos_sin, head_dim, true);
  after_op("rope_backward");
}

void CudaBackend::rmsnorm_backward(Tensor dx, Tensor dout, Tensor x, Tensor weight, float eps, bool accumulate) {
  gpu::rmsnorm_backward(op_ctx(), dx, dout, x, weight, eps, accumulate);
  after_op("rmsnorm_backward");
}

void CudaBackend::swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up) {
  gpu::swiglu_backward(op_ctx(), dgate, dup, dout, gate, up);
  after_op("swiglu_backward");
}

void CudaBackend::scatter_add_rows(Tensor out, Tensor src, Tensor ids) {
  gpu::scatter_add_rows(op_ctx(), out, src, ids);
  after_op("scatter_add_rows");
}

void CudaBackend::attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const VarlenMeta& meta) {
  gpu::attention_forward(op_ctx(), out, lse, q, k, v, meta);
  after_op("attention_forward");
}

void CudaBackend::attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                     Tensor out, Tensor lse, const VarlenMeta& meta) {
  gpu::attention_backward(op_ctx(), dq, dk, dv, dout, q, k, v, out, lse, meta);
  after_op("attention_backward");
}

void CudaBackend::lora_linear(Tensor out, Tensor xa, Tensor x, Tensor w, Tensor bias, Tensor a, Tensor b, float scale) {
  const char* op = "lora_linear";
  if (a.empty() && b.empty()) {  // no adapter: the base projection
    linear(out, x, w, bias);
    return;
  }
  const checks::LoraDims ld = gpu::check_lora_linear(out, xa, x, w, bias, a, b);
  const gpu::GemmDims d = ld.d;
  const int64_t r = ld.r;
  if (d.M == 0 || d.N == 0) return;
  const gpu::Ctx c = op_ctx();
  const int64_t r8 = gpu::lora_packed_rank(r);
  Buffer a16(*this, DType::BF16, {r, d.K}), xa32(*this, DType::F32, {d.M, r});
  Buffer xa16(*this, DType::BF16, {d.M, r8}), sb16(*this, DType::BF16, {d.N, r8});
  gpu::lora_linear(c, d, out, xa, x, w, bias, a, b, scale, {a16, xa32, xa16, sb16});
  after_op(op);
}

void CudaBackend::lora_linear_backward(Tensor dx, Tensor da, Tensor db, Tensor dout, Tensor x, Tensor xa, Tensor w,
                                       Tensor a, Tensor b, float scale, bool accumulate_dx) {
  const char* op = "lora_linear_backward";
  const checks::LoraDims ld = gpu::check_lora_linear_backward(dx, da, db, dout, x, xa, w, a, b);
  const int64_t M = ld.d.M, r = ld.r;
  const bool lora = !a.empty();
  if (M == 0) return;
  const gpu::Ctx c = op_ctx();
  const int64_t r8 = gpu::lora_packed_rank(r), N = ld.d.N, K = ld.d.K;
  Buffer b16 = lora ? Buffer(*this, DType::BF16, {N, r8}) : Buffer();
  Buffer a16 = lora && !dx.empty() ? Buffer(*this, DType::BF16, {r8, K}) : Buffer();
  Buffer t16 = lora ? Buffer(*this, DType::BF16, {M, r8}) : Buffer();
  Buffer xa16 = lora ? Buffer(*this, DType::BF16, {M, r8}) : Buffer();
  gpu::lora_linear_backward(c, dx, da, db, dout, x, xa, w, a, b, scale, accumulate_dx, {b16, a16, t16, xa16});
  after_op(op);
}

void CudaBackend::logprob_forward(Tensor logprobs, Tensor lse, Tensor entropy, Tensor hidden, Tensor lm_head,
                                  Tensor targets, float inv_temperature) {
  const char* op = "logprob_forward";
  gpu::check_logprob_forward(logprobs, lse, entropy, hidden, lm_head, targets);
  const int64_t m = hidden.rows(), V = lm_head.rows();
  if (m == 0) return;
  const gpu::Ctx c = op_ctx();
  Buffer z(*this, DType::F32, {m, V});  // the chunk's logits: the caller bounds m
  gpu::logprob_forward(c, z, logprobs, lse, entropy, hidden, lm_head, targets, inv_temperature);
  after_op(op);
}

void CudaBackend::logprob_backward(Tensor dhidden, Tensor dlogprobs, Tensor hidden, Tensor lm_head, Tensor targets,
                                   Tensor lse, float inv_temperature) {
  const char* op = "logprob_backward";
  gpu::check_logprob_backward(dhidden, dlogprobs, hidden, lm_head, targets, lse);
  const int64_t m = hidden.rows(), V = lm_head.rows();
  if (m == 0) return;
  const gpu::Ctx c = op_ctx();
  Buffer z(*this, DType::F32, {m, V}), dz16(*this, DType::BF16, {m, V});
  gpu::logprob_backward(c, z, dz16, dhidden, dlogprobs, hidden, lm_head, targets, lse, inv_temperature);
  after_op(op);
}

void CudaBackend::adamw_step(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWParams& p) {
  gpu::adamw_step(op_ctx(), param, grad, m, v, p);
  after_op("adamw_step");
}

void CudaBackend::adamw_step_multi(const std::vector<AdamWTensorRef>& tensors, const AdamWParams& p) {
  impl_->activate();
  Impl& m = *impl_;
  const std::vector<gpu::AdamWMultiEntry> entries = gpu::adamw_multi_entries(tensors, p);  // validates
  std::vector<int64_t> numels;
  numels.reserve(entries.size());
  for (const auto& e : entries) numels.push_back(e.numel);
  const std::vector<gpu::AdamWChunk> chunks = gpu::plan_adamw_chunks(numels);
  if (chunks.empty()) return;
  // [entries | chunks], chunks 16-byte aligned. The trainer passes the same tensors every step, so the
  // table is uploaded once and reused while its bytes are unchanged.
  const size_t ebytes = gpu::round_up(static_cast<int64_t>(entries.size() * sizeof(gpu::AdamWMultiEntry)), 16);
  const size_t bytes = ebytes + chunks.size() * sizeof(gpu::AdamWChunk);
  std::vector<unsigned char> table(bytes, 0);
  std::memcpy(table.data(), entries.data(), entries.size() * sizeof(gpu::AdamWMultiEntry));
  std::memcpy(table.data() + ebytes, chunks.data(), chunks.size() * sizeof(gpu::AdamWChunk));
  if (table != m.adamw_table_host) {
    if (bytes > m.adamw_table_cap) {
      if (m.adamw_table_dev) {  // queued launches may still read the old table
        HAYATE_CUDA_CHECK(cudaStreamSynchronize(m.stream));
        HAYATE_CUDA_CHECK(cudaFree(m.adamw_table_dev));
        m.adamw_table_dev = nullptr;
        m.adamw_table_cap = 0;
      }
      const size_t cap = gpu::alloc_size_class(bytes);
      m.adamw_table_dev = m.device_malloc(cap);
      HAYATE_CHECK(m.adamw_table_dev, ErrorCode::kOutOfMemory,
                   "out of memory on backend 'cuda': could not allocate the AdamW tensor table");
      m.adamw_table_cap = cap;
    }
    m.adamw_table_host = std::move(table);
    // From pageable memory: returns once staged, and stream order puts it before the launch below (and
    // after any earlier launch that read the previous table).
    HAYATE_CUDA_CHECK(cudaMemcpyAsync(m.adamw_table_dev, m.adamw_table_host.data(), bytes, cudaMemcpyHostToDevice,
                                      m.stream));
  }
  const auto* dev = static_cast<const unsigned char*>(m.adamw_table_dev);
  gpu::adamw_step_multi(m.ctx(), reinterpret_cast<const gpu::AdamWMultiEntry*>(dev),
                        reinterpret_cast<const gpu::AdamWChunk*>(dev + ebytes), static_cast<int64_t>(chunks.size()), p);
  after_op("adamw_step_multi");
}

double CudaBackend::sum_squares(Tensor x) {
  const gpu::Ctx c = op_ctx();
  Buffer result(*this, DType::F64, {1});
  gpu::sum_squares(c, x, result.t().as<double>());
  double host = 0.0;
  copy_to_host(&host, result.t().data, sizeof(double));  // waits; reports pending index errors
  return host;
}

std::vector<double> CudaBackend::sum_squares_many(const std::vector<Tensor>& xs) {
  std::vector<double> host(xs.size(), 0.0);
  if (xs.empty()) return host;
  for (const Tensor& x : xs) gpu::check_sum_squares(x);
  const gpu::Ctx c = op_ctx();
  Buffer result(*this, DType::F64, {static_cast<int64_t>(xs.size())});
  for (size_t i = 0; i < xs.size(); ++i) gpu::sum_squares(c, xs[i], result.t().as<double>() + i);  // stream-ordered
  copy_to_host(host.data(), result.t().data, xs.size() * sizeof(double));  // the one wait
  return host;
}

void CudaBackend::swiglu(Tensor out, Tensor gate, Tensor up) {
  impl_->activate();
  gpu::swiglu(impl_->ctx(), out, gate, up);
  after_op("swiglu");
}

void CudaBackend::kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots) {
  impl_->activate();
  gpu::kv_store(impl_->ctx(), k_cache, v_cache, k, v, slots);
  after_op("kv_store");
}

void CudaBackend::paged_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const AttentionMeta& meta) {
  impl_->activate();
  gpu::paged_attention(impl_->ctx(), out, q, k_cache, v_cache, meta);
  after_op("paged_attention");
}

void CudaBackend::log_softmax_gather(Tensor out, Tensor logits, Tensor targets, float inv_temperature) {
  impl_->activate();
  gpu::log_softmax_gather(impl_->ctx(), out, logits, targets, inv_temperature);
  after_op("log_softmax_gather");
}

void CudaBackend::sample(Tensor logits, const SamplingRow* rows, int32_t* out_ids, float* out_logprobs) {
  gpu::check_sample(logits);
  const int64_t B = logits.rows();
  if (B == 0) return;
  Impl& m = *impl_;
  m.activate();
  // Staging: [rows | ids | logprobs], pinned on the host and mirrored on the device.
  const size_t rows_bytes = static_cast<size_t>(B) * sizeof(gpu::DeviceSamplingRow);
  const size_t out_bytes = static_cast<size_t>(B) * (sizeof(int32_t) + sizeof(float));
  const size_t need = rows_bytes + out_bytes;
  if (m.pinned_cap < need) {
    HAYATE_CUDA_CHECK(cudaStreamSynchronize(m.stream));
    if (m.pinned) HAYATE_CUDA_CHECK(cudaFreeHost(m.pinned));
    m.pinned = nullptr;
    m.pinned_cap = 0;
    HAYATE_CUDA_CHECK(cudaMallocHost(&m.pinned, gpu::alloc_size_class(need)));
    m.pinned_cap = gpu::alloc_size_class(need);
  }
  if (m.sample_dev_cap < need) {
    HAYATE_CUDA_CHECK(cudaStreamSynchronize(m.stream));
    if (m.sample_dev) HAYATE_CUDA_CHECK(cudaFree(m.sample_dev));
    m.sample_dev = m.device_malloc(gpu::alloc_size_class(need));
    m.sample_dev_cap = m.sample_dev ? gpu::alloc_size_class(need) : 0;
    HAYATE_CHECK(m.sample_dev, ErrorCode::kOutOfMemory, "out of memory on backend 'cuda' while sampling");
  }
  auto* hrows = static_cast<gpu::DeviceSamplingRow*>(m.pinned);
  for (int64_t i = 0; i < B; ++i) {
    hrows[i].temperature = rows[i].temperature;
    hrows[i].top_k = rows[i].top_k;
    hrows[i].top_p = rows[i].top_p;
    hrows[i].min_p = rows[i].min_p;
    hrows[i].seed = rows[i].seed;
    hrows[i].step = rows[i].step;
  }
  char* dbase = static_cast<char*>(m.sample_dev);
  auto* drows = reinterpret_cast<gpu::DeviceSamplingRow*>(dbase);
  auto* dids = reinterpret_cast<int32_t*>(dbase + rows_bytes);
  auto* dlps = reinterpret_cast<float*>(dbase + rows_bytes + B * sizeof(int32_t));
  HAYATE_CUDA_CHECK(cudaMemcpyAsync(drows, hrows, rows_bytes, cudaMemcpyHostToDevice, m.stream));
  gpu::sample(m.ctx(), logits, drows, dids, dlps);
  char* hout = static_cast<char*>(m.pinned) + rows_bytes;
  HAYATE_CUDA_CHECK(cudaMemcpyAsync(hout, dids, out_bytes, cudaMemcpyDeviceToHost, m.stream));
  m.check_errors();  // waits for the results
  std::memcpy(out_ids, hout, B * sizeof(int32_t));
  std::memcpy(out_logprobs, hout + B * sizeof(int32_t), B * sizeof(float));
}

}  // namespace hayate
