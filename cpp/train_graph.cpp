#include "train_graph.h"

#include <algorithm>
#include <cmath>

#include "decoder_layer.h"

namespace hayate {

namespace {

Buffer upload_i32(Backend& be, const std::vector<int32_t>& v) {
  Buffer buf(be, DType::I32, {static_cast<int64_t>(std::max<size_t>(v.size(), 1))});
  if (!v.empty()) be.copy_from_host(buf.t().data, v.data(), v.size() * 4);
  return buf;
}

void poll(const std::atomic<bool>* cancel) {
  if (cancel && cancel->load()) fail(ErrorCode::kCancelled, "training step cancelled");
}

// A fresh buffer holding a copy of t.
Buffer clone(Backend& be, Tensor t) {
  Buffer b(be, t.dtype, {t.rows(), t.cols()});
  be.copy(b.t().data, t.data, t.nbytes());
  return b;
}

}  // namespace

int64_t PackedBatch::completion_tokens() const {
  int64_t m = 0;
  for (int s = 0; s < num_seqs(); ++s) m += completion_len(s);
  return m;
}

// What one layer's backward needs (the forward's intermediates).
struct TrainGraph::LayerActs {
  Buffer h1, q_pre, k_pre, q, k, v, attn, lse, x_mid, h2, gate, up, act;
  Buffer xa[kNumLoraTargets];  // x A^T of each adapted projection
};

TrainGraph::TrainGraph(Model& model, const PackedBatch& b, const TrainGraphOptions& opt)
    : model_(model), be_(model.backend()), opt_(opt) {
  const ModelConfig& c = model.config();
  HAYATE_CHECK(b.num_seqs() > 0, ErrorCode::kInvalidArgument, "training batch: no sequences");
  HAYATE_CHECK(b.prompt_lens.size() == b.seq_lens.size(), ErrorCode::kInvalidArgument,
               "training batch: " + std::to_string(b.prompt_lens.size()) + " prompt lengths for " +
                   std::to_string(b.seq_lens.size()) + " sequences");
  HAYATE_CHECK(opt.logits_chunk >= 1, ErrorCode::kInvalidArgument, "logits chunk must be >= 1");
  HAYATE_CHECK(opt.temperature > 0 && std::isfinite(opt.temperature), ErrorCode::kInvalidArgument,
               "temperature must be a positive number");
  int64_t total = 0;
  for (int s = 0; s < b.num_seqs(); ++s) {
    const std::string where = "training batch: sequence " + std::to_string(s);
    HAYATE_CHECK(b.prompt_lens[s] >= 1, ErrorCode::kInvalidArgument, where + ": the prompt must have at least one token");
    HAYATE_CHECK(b.seq_lens[s] >= b.prompt_lens[s], ErrorCode::kInvalidArgument,
                 where + ": length " + std::to_string(b.seq_lens[s]) + " is shorter than its prompt (" +
                     std::to_string(b.prompt_lens[s]) + ")");
    HAYATE_CHECK(b.seq_lens[s] <= model.context_length(), ErrorCode::kContextOverflow,
                 where + ": " + std::to_string(b.seq_lens[s]) + " tokens exceed the model's context of " +
                     std::to_string(model.context_length()));
    total += b.seq_lens[s];
  }
  HAYATE_CHECK(total == static_cast<int64_t>(b.tokens.size()), ErrorCode::kInvalidArgument,
               "training batch: sequence lengths add up to " + std::to_string(total) + " but " +
                   std::to_string(b.tokens.size()) + " tokens were given");
  for (int32_t t : b.tokens)
    HAYATE_CHECK(t >= 0 && t < c.vocab_size, ErrorCode::kInvalidArgument,
                 "training batch: token id " + std::to_string(t) + " is outside the vocabulary (size " +
                     std::to_string(c.vocab_size) + ")");

  std::vector<int32_t> pos, cu{0}, rows, targets;
  int max_len = 0, off = 0;
  for (int s = 0; s < b.num_seqs(); ++s) {
    const int L = b.seq_lens[s];
    for (int p = 0; p < L; ++p) pos.push_back(p);
    for (int p = b.prompt_lens[s] - 1; p + 1 < L; ++p) {  // row p predicts token p + 1
      rows.push_back(off + p);
      targets.push_back(b.tokens[off + p + 1]);
    }
    off += L;
    cu.push_back(off);
    max_len = std::max(max_len, L);
  }
  n_ = total;
  m_ = static_cast<int64_t>(rows.size());
  ids_ = upload_i32(be_, b.tokens);
  pos_ = upload_i32(be_, pos);
  cu_ = upload_i32(be_, cu);
  rows_ = upload_i32(be_, rows);
  targets_ = upload_i32(be_, targets);
  meta_.cu_seqlens = cu_.t().slice_rows(0, static_cast<int64_t>(cu.size()));
  meta_.max_seqlen = max_len;
  meta_.num_q_heads = c.num_heads;
  meta_.num_kv_heads = c.num_kv_heads;
  meta_.head_dim = c.head_dim;
  meta_.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
}

TrainGraph::~TrainGraph() = default;

// One layer over the packed batch (the shared steps are in decoder_layer.h): varlen attention, and every
// intermediate the backward needs in its own buffer.
void TrainGraph::layer_forward(int l, Tensor x, LayerActs& a, bool use_lora) {
  const ModelConfig& c = model_.config();
  const LayerWeights& w = model_.layer(l);
  const LayerShape s = LayerShape::of(c);
  const int64_t n = n_;
  const DType act = be_.activation_dtype();
  LoraSet* lora = use_lora ? model_.lora() : nullptr;
  for (int t = 0; t < kNumLoraTargets; ++t) {
    const LoraAdapter* ad = lora ? lora->find(l, static_cast<LoraTarget>(t)) : nullptr;
    if (ad) a.xa[t] = Buffer(be_, act, {n, lora->rank()});
  }
  const LayerProjections project{model_, l, use_lora, a.xa};

  a.h1 = Buffer(be_, act, {n, s.hidden});
  a.q = Buffer(be_, act, {n, s.q_width});
  a.k = Buffer(be_, act, {n, s.kv_width});
  a.v = Buffer(be_, act, {n, s.kv_width});
  if (c.qk_norm) {  // the backward of Qwen3's q/k norm needs the values before it
    a.q_pre = Buffer(be_, act, {n, s.q_width});
    a.k_pre = Buffer(be_, act, {n, s.kv_width});
  }
  const Tensor q_pre = c.qk_norm ? a.q_pre.t() : a.q.t(), k_pre = c.qk_norm ? a.k_pre.t() : a.k.t();
  attention_inputs(be_, c, w, project, x, {a.h1, q_pre, k_pre, a.q, a.k, a.v}, pos_.t().slice_rows(0, n),
                   model_.rope_table());
  a.attn = Buffer(be_, act, {n, s.q_width});
  a.lse = Buffer(be_, be_.param_dtype(), {n, c.num_heads});
  be_.attention_forward(a.attn, a.lse, a.q, a.k, a.v, meta_);
  {
    Buffer o(be_, act, {n, s.hidden});
    project(o, a.attn, LoraTarget::O);
    be_.add(x, x, o);
  }
  a.x_mid = clone(be_, x);
  a.h2 = Buffer(be_, act, {n, s.hidden});
  a.gate = Buffer(be_, act, {n, s.intermediate});
  a.up = Buffer(be_, act, {n, s.intermediate});
  a.act = Buffer(be_, act, {n, s.intermediate});
  Buffer d(be_, act, {n, s.hidden});
  mlp_residual(be_, c, w, project, x, {a.h2, a.gate, a.up, a.act, d});
}

void TrainGraph::layer_backward(int l, Tensor dres, LayerActs& a, bool need_dx) {
  const ModelConfig& c = model_.config();
  const LayerWeights& w = model_.layer(l);
  const LayerShape s = LayerShape::of(c);
  const int64_t n = n_, D = s.hidden, F = s.intermediate, hd = s.head_dim, qd = s.q_width, kvd = s.kv_width;
  const float eps = s.eps;
  const DType act = be_.activation_dtype();
  LoraSet& lora = *model_.lora();
  // dx (+)= d/dx of projection t given dout; LoRA gradients accumulate when t is adapted
  auto project_back = [&](Tensor dx, Tensor dout, Tensor in, LoraTarget t, bool accumulate) {
    const Linear& lin = model_.projection(l, t);
    LoraAdapter* ad = lora.find(l, t);
    if (ad) {
      be_.lora_linear_backward(dx, ad->grad_a, ad->grad_b, dout, in, a.xa[static_cast<int>(t)], lin.weight, ad->a, ad->b,
                               lora.scale(), accumulate);
    } else if (!dx.empty()) {
      be_.lora_linear_backward(dx, {}, {}, dout, in, {}, lin.weight, {}, {}, 0.0f, accumulate);
    }
  };

  // MLP block: x_out = x_mid + down(swiglu(gate(h2), up(h2))), h2 = norm(x_mid)
  {
    Buffer dact(be_, act, {n, F});
    project_back(dact, dres, a.act, LoraTarget::Down, false);
    a.act.release();
    be_.swiglu_backward(a.gate, a.up, dact, a.gate, a.up);  // gate/up now hold their gradients
    Buffer dh2(be_, act, {n, D});
    project_back(dh2, a.gate, a.h2, LoraTarget::Gate, false);
    project_back(dh2, a.up, a.h2, LoraTarget::Up, true);
    be_.rmsnorm_backward(dres, dh2, a.x_mid, w.post_norm, eps, true);
  }
  // attention block: x_mid = x_in + o(attention(rope(norm_qk(q(h1))), ...)), h1 = norm(x_in)
  Buffer dq(be_, act, {n, qd}), dk(be_, act, {n, kvd}), dv(be_, act, {n, kvd});
  {
    Buffer dattn(be_, act, {n, qd});
    project_back(dattn, dres, a.attn, LoraTarget::O, false);
    be_.attention_backward(dq, dk, dv, dattn, a.q, a.k, a.v, a.attn, a.lse, meta_);
  }
  be_.rope_backward(dq, pos_.t().slice_rows(0, n), model_.rope_table(), static_cast<int>(hd));
  be_.rope_backward(dk, pos_.t().slice_rows(0, n), model_.rope_table(), static_cast<int>(hd));
  if (c.qk_norm) {
    Tensor dqh = dq.t().view({n * c.num_heads, hd}), dkh = dk.t().view({n * c.num_kv_heads, hd});
    be_.rmsnorm_backward(dqh, dqh, a.q_pre.t().view({n * c.num_heads, hd}), w.q_norm, eps, false);
    be_.rmsnorm_backward(dkh, dkh, a.k_pre.t().view({n * c.num_kv_heads, hd}), w.k_norm, eps, false);
  }
  if (!need_dx) {  // the first layer's input is the frozen embedding: only the LoRA gradients matter
    project_back({}, dq, a.h1, LoraTarget::Q, false);
    project_back({}, dk, a.h1, LoraTarget::K, false);
    project_back({}, dv, a.h1, LoraTarget::V, false);
    return;
  }
  Buffer dh1(be_, act, {n, D});
  project_back(dh1, dq, a.h1, LoraTarget::Q, false);
  project_back(dh1, dk, a.h1, LoraTarget::K, true);
  project_back(dh1, dv, a.h1, LoraTarget::V, true);
  be_.rmsnorm_backward(dres, dh1, x_in_[l], w.input_norm, eps, true);
}

std::vector<double> TrainGraph::forward(bool use_lora, bool save, std::vector<double>* entropy,
                                        const std::atomic<bool>* cancel) {
  const ModelConfig& c = model_.config();
  HAYATE_CHECK(!save || (use_lora && model_.lora()), ErrorCode::kInvalidArgument,
               "training needs LoRA adapters attached to the model (attach_lora)");
  const int64_t D = c.hidden_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  saved_ = false;
  x_in_.clear();
  acts_.clear();
  Buffer x(be_, be_.activation_dtype(), {n_, D});
  be_.embedding(x, model_.embed(), ids_.t().slice_rows(0, n_));
  for (int l = 0; l < c.num_layers; ++l) {
    poll(cancel);
    if (save) x_in_.push_back(clone(be_, x));
    auto a = std::make_unique<LayerActs>();
    layer_forward(l, x, *a, use_lora);
    if (save && !opt_.recompute) acts_.push_back(std::move(a));
  }
  poll(cancel);

  std::vector<double> lp(static_cast<size_t>(m_));
  if (entropy) entropy->assign(static_cast<size_t>(m_), 0.0);
  if (m_ == 0) {
    saved_ = save;
    return lp;
  }
  const DType pd = be_.param_dtype();
  Buffer xg(be_, be_.activation_dtype(), {m_, D}), hf(be_, be_.activation_dtype(), {m_, D});
  be_.embedding(xg, x, rows_.t().slice_rows(0, m_));  // gather the rows that predict completion tokens
  x.release();
  be_.rmsnorm(hf, xg, model_.final_norm(), eps);
  Buffer lpb(be_, pd, {m_}), lse(be_, pd, {m_}), ent;
  if (entropy) ent = Buffer(be_, pd, {m_});
  const float inv_t = 1.0f / opt_.temperature;
  for (int64_t r0 = 0; r0 < m_; r0 += opt_.logits_chunk) {
    const int64_t cnt = std::min<int64_t>(opt_.logits_chunk, m_ - r0);
    be_.logprob_forward(lpb.t().slice_rows(r0, cnt), lse.t().slice_rows(r0, cnt),
                        entropy ? ent.t().slice_rows(r0, cnt) : Tensor{}, hf.t().slice_rows(r0, cnt), model_.lm_head(),
                        targets_.t().slice_rows(r0, cnt), inv_t);
  }
  be_.download_f64(lp.data(), lpb);
  if (entropy) be_.download_f64(entropy->data(), ent);
  if (save) {
    xg_ = std::move(xg);
    hf_ = std::move(hf);
    lse_ = std::move(lse);
    saved_ = true;
  }
  return lp;
}

void TrainGraph::backward(const std::vector<double>& dlogprobs, const std::atomic<bool>* cancel) {
  const ModelConfig& c = model_.config();
  HAYATE_CHECK(saved_, ErrorCode::kInternal, "TrainGraph::backward without a saved forward");
  HAYATE_CHECK(static_cast<int64_t>(dlogprobs.size()) == m_, ErrorCode::kInternal, "backward: wrong gradient length");
  saved_ = false;
  LoraSet& lora = *model_.lora();
  lora.allocate_grads();
  const int64_t D = c.hidden_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const DType act = be_.activation_dtype();

  Buffer dres(be_, act, {n_, D});
  be_.fill_zero(dres);
  if (m_ > 0) {
    Buffer dlp(be_, be_.param_dtype(), {m_});
    be_.upload(dlp, dlogprobs.data(), DType::F64);
    Buffer dh(be_, act, {m_, D});
    const float inv_t = 1.0f / opt_.temperature;
    for (int64_t r0 = 0; r0 < m_; r0 += opt_.logits_chunk) {
      const int64_t cnt = std::min<int64_t>(opt_.logits_chunk, m_ - r0);
      be_.logprob_backward(dh.t().slice_rows(r0, cnt), dlp.t().slice_rows(r0, cnt), hf_.t().slice_rows(r0, cnt),
                           model_.lm_head(), targets_.t().slice_rows(r0, cnt), lse_.t().slice_rows(r0, cnt), inv_t);
    }
    be_.rmsnorm_backward(dh, dh, xg_, model_.final_norm(), eps, false);
    be_.scatter_add_rows(dres, dh, rows_.t().slice_rows(0, m_));
  }
  hf_.release();
  xg_.release();
  lse_.release();

  for (int l = c.num_layers - 1; l >= 0; --l) {
    poll(cancel);
    std::unique_ptr<LayerActs> a;
    if (opt_.recompute) {
      a = std::make_unique<LayerActs>();
      Buffer x = clone(be_, x_in_[l]);
      layer_forward(l, x, *a, true);
    } else {
      a = std::move(acts_[l]);
    }
    layer_backward(l, dres, *a, l > 0);
    a.reset();
    x_in_[l].release();
  }
  acts_.clear();
  x_in_.clear();
}

}  // namespace hayate
