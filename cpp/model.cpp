#include "model.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "decoder_layer.h"
#include "safetensors.h"

namespace hayate {

namespace {

std::string layer_prefix(int l) { return "model.layers." + std::to_string(l) + "."; }

// A frozen weight's buffer: matrices in `matrix_dtype` (the backend's choice for the checkpoint), vectors
// (norms, biases) in the activation dtype, which the elementwise ops read.
Buffer weight_buffer(Backend& be, DType matrix_dtype, const std::vector<int64_t>& shape) {
  return shape.size() == 1 ? Buffer(be, be.activation_dtype(), {shape[0]}) : Buffer(be, matrix_dtype, {shape[0], shape[1]});
}

// Uploads one checked tensor from the store into a new backend buffer (weight_buffer's dtype).
Buffer load_tensor(Backend& be, DType matrix_dtype, const TensorStore& store, const std::string& name,
                   std::vector<int64_t> shape) {
  const TensorInfo& info = store.get_checked(name, shape);
  Buffer buf = weight_buffer(be, matrix_dtype, shape);
  be.upload(buf, info.data, info.dtype);
  return buf;
}

// Gaussian (or constant when stddev == 0 and mean given) weights for Model::random.
Buffer random_tensor(Backend& be, std::mt19937_64& rng, std::vector<int64_t> shape, float mean, float stddev) {
  Buffer buf = weight_buffer(be, be.matrix_dtype(DType::F32), shape);
  std::vector<float> host(static_cast<size_t>(buf.t().numel()));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : host) v = mean + (stddev > 0 ? stddev * dist(rng) : 0.0f);
  be.upload(buf, host.data(), DType::F32);
  return buf;
}

Buffer upload_i32(Backend& be, const std::vector<int32_t>& v) {
  Buffer buf(be, DType::I32, {static_cast<int64_t>(std::max<size_t>(v.size(), 1))});
  if (!v.empty()) be.copy_from_host(buf.t().data, v.data(), v.size() * 4);
  return buf;
}

}  // namespace

Model::Model(Backend& be, const ModelConfig& cfg) : be_(be), cfg_(cfg), w_(std::make_shared<BaseWeights>()) {
  w_->owner = &be;
}

size_t BaseWeights::bytes() const {
  auto n = [](const Buffer& b) { return b.empty() ? size_t{0} : b.t().nbytes(); };
  size_t total = n(embed) + n(final_norm) + n(rope_cos_sin) + (lm_head ? n(*lm_head) : 0);
  for (const LayerWeights& w : layers) {
    for (const Buffer* b : {&w.input_norm, &w.post_norm, &w.q_norm, &w.k_norm}) total += n(*b);
    for (const Linear* lin : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down}) total += n(lin->weight) + n(lin->bias);
  }
  return total;
}

std::unique_ptr<Model> Model::share(const Model& base, Backend& be) {
  Backend& owner = base.weights_backend();
  HAYATE_CHECK(be.name() == owner.name(), ErrorCode::kInvalidArgument,
               "share: the weights are on backend '" + owner.name() + "'; a model on backend '" + be.name() +
                   "' cannot read them (load a copy instead)");
  // (a CPU backend in f32 reads f32 and bf16 weights alike)
  HAYATE_CHECK(be.weight_dtype() == owner.weight_dtype() && be.activation_dtype() == owner.activation_dtype(),
               ErrorCode::kInvalidArgument,
               "share: the backends differ in weight or activation dtype (e.g. precision f32 vs f64)");
  owner.synchronize();  // the weights' uploads are complete before another stream reads them
  std::unique_ptr<Model> m(new Model(be, base.cfg_));
  m->w_ = base.w_;
  return m;
}

std::unique_ptr<Model> Model::load(Backend& be, const std::string& dir) {
  ModelConfig cfg = load_model_config(dir);
  std::unique_ptr<TensorStore> store = TensorStore::open_dir(dir);
  std::unique_ptr<Model> m(new Model(be, cfg));
  // every matrix in one dtype, chosen from the checkpoint's (bf16 checkpoints stay bf16 on a CPU in "auto")
  const DType mdt = be.matrix_dtype(store->get_checked("model.embed_tokens.weight", {cfg.vocab_size, cfg.hidden_size}).dtype);
  const int64_t D = cfg.hidden_size, F = cfg.intermediate_size, V = cfg.vocab_size, hd = cfg.head_dim;
  const int64_t qd = cfg.num_heads * hd, kvd = cfg.num_kv_heads * hd;
  bool qkv_bias = cfg.attention_bias || cfg.arch == Arch::Qwen2;
  bool o_bias = cfg.attention_bias && cfg.arch != Arch::Qwen2;  // Llama and Qwen3 bias o_proj too

  m->w_->embed = load_tensor(be, mdt, *store, "model.embed_tokens.weight", {V, D});
  m->w_->final_norm = load_tensor(be, mdt, *store, "model.norm.weight", {D});
  // Some checkpoints store lm_head even when tied; the tie flag decides, as in transformers.
  if (!cfg.tie_word_embeddings) {
    m->w_->lm_head = std::make_unique<Buffer>(load_tensor(be, mdt, *store, "lm_head.weight", {V, D}));
  }
  for (int l = 0; l < cfg.num_layers; ++l) {
    std::string p = layer_prefix(l);
    LayerWeights w;
    w.input_norm = load_tensor(be, mdt, *store, p + "input_layernorm.weight", {D});
    w.post_norm = load_tensor(be, mdt, *store, p + "post_attention_layernorm.weight", {D});
    auto linear = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
      Linear lin;
      lin.weight = load_tensor(be, mdt, *store, p + name + ".weight", {out, in});
      if (bias) lin.bias = load_tensor(be, mdt, *store, p + name + ".bias", {out});
      return lin;
    };
    w.q = linear("self_attn.q_proj", qd, D, qkv_bias);
    w.k = linear("self_attn.k_proj", kvd, D, qkv_bias);
    w.v = linear("self_attn.v_proj", kvd, D, qkv_bias);
    w.o = linear("self_attn.o_proj", D, qd, o_bias);
    if (cfg.qk_norm) {
      w.q_norm = load_tensor(be, mdt, *store, p + "self_attn.q_norm.weight", {hd});
      w.k_norm = load_tensor(be, mdt, *store, p + "self_attn.k_norm.weight", {hd});
    }
    w.gate = linear("mlp.gate_proj", F, D, cfg.mlp_bias);
    w.up = linear("mlp.up_proj", F, D, cfg.mlp_bias);
    w.down = linear("mlp.down_proj", D, F, cfg.mlp_bias);
    m->w_->layers.push_back(std::move(w));
  }
  m->init_rope_table();
  return m;
}

std::unique_ptr<Model> Model::random(Backend& be, const ModelConfig& cfg, uint64_t seed, float stddev) {
  std::unique_ptr<Model> m(new Model(be, cfg));
  std::mt19937_64 rng(seed);
  const int64_t D = cfg.hidden_size, F = cfg.intermediate_size, V = cfg.vocab_size, hd = cfg.head_dim;
  const int64_t qd = cfg.num_heads * hd, kvd = cfg.num_kv_heads * hd;
  bool qkv_bias = cfg.attention_bias || cfg.arch == Arch::Qwen2;
  m->w_->embed = random_tensor(be, rng, {V, D}, 0, stddev);
  m->w_->final_norm = random_tensor(be, rng, {D}, 1, 0);
  if (!cfg.tie_word_embeddings) m->w_->lm_head = std::make_unique<Buffer>(random_tensor(be, rng, {V, D}, 0, stddev));
  for (int l = 0; l < cfg.num_layers; ++l) {
    LayerWeights w;
    w.input_norm = random_tensor(be, rng, {D}, 1, 0);
    w.post_norm = random_tensor(be, rng, {D}, 1, 0);
    auto linear = [&](int64_t out, int64_t in, bool bias) {
      Linear lin;
      lin.weight = random_tensor(be, rng, {out, in}, 0, stddev);
      if (bias) lin.bias = random_tensor(be, rng, {out}, 0, stddev);
      return lin;
    };
    w.q = linear(qd, D, qkv_bias);
    w.k = linear(kvd, D, qkv_bias);
    w.v = linear(kvd, D, qkv_bias);
    w.o = linear(D, qd, false);
    if (cfg.qk_norm) {
      w.q_norm = random_tensor(be, rng, {hd}, 1, 0);
      w.k_norm = random_tensor(be, rng, {hd}, 1, 0);
    }
    w.gate = linear(F, D, cfg.mlp_bias);
    w.up = linear(F, D, cfg.mlp_bias);
    w.down = linear(D, F, cfg.mlp_bias);
    m->w_->layers.push_back(std::move(w));
  }
  m->init_rope_table();
  return m;
}

size_t Model::parameter_count() const {
  const BaseWeights& b = *w_;
  size_t n = b.embed.t().numel() + b.final_norm.t().numel() + (b.lm_head ? b.lm_head->t().numel() : 0);
  for (const LayerWeights& w : b.layers) {
    for (const Buffer* b : {&w.input_norm, &w.post_norm, &w.q_norm, &w.k_norm}) n += b->empty() ? 0 : b->t().numel();
    for (const Linear* lin : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down})
      n += lin->weight.t().numel() + (lin->bias.empty() ? 0 : lin->bias.t().numel());
  }
  return n;
}

// cos/sin for every position up to the context length, computed in double and rounded once (kept in
// double on a backend whose activations are: the CPU f64 mode is a double-precision reference).
void Model::init_rope_table() {
  std::vector<double> inv_freq = rope_inv_freq(cfg_);
  const int hd = cfg_.head_dim, half = hd / 2;
  const int rope_rows = w_->rope_rows = std::max(1, cfg_.max_position_embeddings);
  std::vector<double> table(static_cast<size_t>(rope_rows) * hd);
  for (int p = 0; p < rope_rows; ++p) {
    for (int i = 0; i < half; ++i) {
      double angle = static_cast<double>(p) * inv_freq[i];
      table[static_cast<size_t>(p) * hd + i] = std::cos(angle);
      table[static_cast<size_t>(p) * hd + half + i] = std::sin(angle);
    }
  }
  const DType dt = be_.activation_dtype() == DType::F64 ? DType::F64 : DType::F32;
  w_->rope_cos_sin = Buffer(be_, dt, {rope_rows, hd});
  be_.upload(w_->rope_cos_sin, table.data(), DType::F64);
}

void Model::check_tokens(const std::vector<int32_t>& tokens, const char* what) const {
  for (int32_t t : tokens) {
    HAYATE_CHECK(t >= 0 && t < cfg_.vocab_size, ErrorCode::kInvalidArgument,
                 std::string(what) + ": token id " + std::to_string(t) + " is outside the vocabulary (size " +
                     std::to_string(cfg_.vocab_size) + ")");
  }
  HAYATE_CHECK(static_cast<int64_t>(tokens.size()) <= w_->rope_rows, ErrorCode::kContextOverflow,
               std::string(what) + ": " + std::to_string(tokens.size()) + " tokens exceed the model's context of " +
                   std::to_string(w_->rope_rows) + " (max_position_embeddings)");
}

// One layer for a batch of prefill and decode tokens (the shared steps are in decoder_layer.h): attention
// over the paged KV cache, buffers reused in place (h takes the o-projection and the MLP output, SwiGLU
// overwrites gate) since nothing is kept for a backward.
void Model::forward_layer(int l, const ForwardBatch& b, KvCache& cache, Tensor x, Tensor pos, Tensor slots,
                          const AttentionMeta& meta) {
  const LayerWeights& w = w_->layers[l];
  const LayerShape s = LayerShape::of(cfg_);
  const int64_t n = static_cast<int64_t>(b.tokens.size());
  DType act = be_.activation_dtype();
  const LayerProjections project{*this, l, lora_ && lora_enabled_};

  Buffer h(be_, act, {n, s.hidden}), q(be_, act, {n, s.q_width}), k(be_, act, {n, s.kv_width}), v(be_, act, {n, s.kv_width});
  Buffer attn(be_, act, {n, s.q_width});
  attention_inputs(be_, cfg_, w, project, x, {h, q, k, q, k, v}, pos, w_->rope_cos_sin);  // q/k normed in place
  be_.kv_store(cache.k(l), cache.v(l), k, v, slots);
  be_.paged_attention(attn, q, cache.k(l), cache.v(l), meta);
  project(h, attn, LoraTarget::O);
  be_.add(x, x, h);

  Buffer gate(be_, act, {n, s.intermediate}), up(be_, act, {n, s.intermediate});
  mlp_residual(be_, cfg_, w, project, x, {h, gate, up, gate, h});
}

const Linear& Model::projection(int l, LoraTarget t) const {
  const LayerWeights& w = w_->layers[l];
  switch (t) {
    case LoraTarget::Q: return w.q;
    case LoraTarget::K: return w.k;
    case LoraTarget::V: return w.v;
    case LoraTarget::O: return w.o;
    case LoraTarget::Gate: return w.gate;
    case LoraTarget::Up: return w.up;
    case LoraTarget::Down: return w.down;
  }
  fail(ErrorCode::kInternal, "bad projection");
}

void Model::project(Tensor out, Tensor x, int l, LoraTarget t, bool use_lora, Tensor xa) {
  const Linear& lin = projection(l, t);
  const LoraAdapter* ad = use_lora && lora_ ? lora_->find(l, t) : nullptr;
  if (ad) {
    be_.lora_linear(out, xa, x, lin.weight, lin.bias, ad->a, ad->b, lora_->scale());
  } else {
    be_.linear(out, x, lin.weight, lin.bias);
  }
}

LoraSet& Model::attach_lora(const LoraConfig& config) {
  auto fresh = std::make_unique<LoraSet>(be_, cfg_, config);  // a bad config leaves the current adapters
  lora_ = std::move(fresh);
  lora_enabled_ = true;
  return *lora_;
}

Buffer Model::forward_hidden(const ForwardBatch& b, KvCache& cache) {
  const int64_t n = static_cast<int64_t>(b.tokens.size());
  HAYATE_CHECK(n > 0, ErrorCode::kInvalidArgument, "forward: empty batch");
  HAYATE_CHECK(b.positions.size() == b.tokens.size() && b.seq_index.size() == b.tokens.size() &&
                   b.slots.size() == b.tokens.size() &&
                   b.block_tables.size() == static_cast<size_t>(b.num_seqs) * b.max_blocks,
               ErrorCode::kInternal, "forward: inconsistent batch arrays");
  for (int32_t p : b.positions)
    HAYATE_CHECK(p >= 0 && p < w_->rope_rows, ErrorCode::kContextOverflow,
                 "position " + std::to_string(p) + " exceeds the model's context of " + std::to_string(w_->rope_rows));
  for (int32_t t : b.tokens)  // positions are checked above; a batch may hold more tokens than the context
    HAYATE_CHECK(t >= 0 && t < cfg_.vocab_size, ErrorCode::kInvalidArgument,
                 "forward: token id " + std::to_string(t) + " is outside the vocabulary (size " + std::to_string(cfg_.vocab_size) + ")");

  Buffer ids = upload_i32(be_, b.tokens), pos = upload_i32(be_, b.positions), slots = upload_i32(be_, b.slots);
  Buffer seq = upload_i32(be_, b.seq_index);
  Buffer tables(be_, DType::I32, {b.num_seqs, b.max_blocks});
  be_.copy_from_host(tables.t().data, b.block_tables.data(), b.block_tables.size() * 4);
  AttentionMeta meta;
  meta.block_tables = tables;
  meta.token_seq = seq;
  meta.token_pos = pos;
  meta.block_size = cache.block_size();
  meta.num_q_heads = cfg_.num_heads;
  meta.num_kv_heads = cfg_.num_kv_heads;
  meta.head_dim = cfg_.head_dim;
  meta.scale = 1.0f / std::sqrt(static_cast<float>(cfg_.head_dim));

  Buffer x(be_, be_.activation_dtype(), {n, cfg_.hidden_size});
  be_.embedding(x, w_->embed, ids);
  for (int l = 0; l < cfg_.num_layers; ++l) forward_layer(l, b, cache, x, pos, slots, meta);

  const int64_t m = static_cast<int64_t>(b.output_rows.size());
  Buffer out(be_, be_.activation_dtype(), {std::max<int64_t>(m, 1), cfg_.hidden_size});
  if (m > 0) {
    for (int32_t r : b.output_rows)
      HAYATE_CHECK(r >= 0 && r < n, ErrorCode::kInternal, "forward: output row out of range");
    Buffer rows = upload_i32(be_, b.output_rows);
    be_.embedding(out, x, rows);  // gather the wanted rows
    be_.rmsnorm(out, out, w_->final_norm, static_cast<float>(cfg_.rms_norm_eps));
  }
  return out;
}

void Model::logits(Tensor out, Tensor hidden) { be_.linear(out, hidden, lm_head(), Tensor{}); }

namespace {

// A single-sequence batch over positions 0..L-1 using the cache's blocks 0.. in order.
ForwardBatch contiguous_batch(const std::vector<int32_t>& tokens, int block_size, int first_block, int seq_row,
                              ForwardBatch b) {
  const int L = static_cast<int>(tokens.size());
  for (int t = 0; t < L; ++t) {
    b.tokens.push_back(tokens[t]);
    b.positions.push_back(t);
    b.seq_index.push_back(seq_row);
    b.slots.push_back((first_block + t / block_size) * block_size + t % block_size);
  }
  return b;
}

}  // namespace

std::vector<std::vector<float>> Model::sequence_logprobs(const std::vector<std::vector<int32_t>>& seqs,
                                                         float temperature) {
  HAYATE_CHECK(temperature > 0, ErrorCode::kInvalidArgument, "logprobs: temperature must be > 0");
  constexpr int kBlock = 16;
  constexpr int64_t kTokensPerForward = 2048;  // batch short sequences together for GEMM efficiency
  constexpr int64_t kLogitRows = 64;           // full-vocabulary logits held at once
  for (const auto& s : seqs) check_tokens(s, "logprobs");

  // Group sequences into forward passes of at most kTokensPerForward tokens (a longer one goes alone).
  std::vector<std::pair<size_t, size_t>> groups;
  int max_group_blocks = 1;
  for (size_t i = 0; i < seqs.size();) {
    size_t j = i;
    int64_t tokens = 0;
    int blocks = 0;
    while (j < seqs.size() && (j == i || tokens + static_cast<int64_t>(seqs[j].size()) <= kTokensPerForward)) {
      tokens += static_cast<int64_t>(seqs[j].size());
      blocks += static_cast<int>((seqs[j].size() + kBlock - 1) / kBlock);
      ++j;
    }
    groups.emplace_back(i, j);
    max_group_blocks = std::max(max_group_blocks, blocks);
    i = j;
  }

  std::vector<std::vector<float>> result(seqs.size());
  KvCache cache(be_, cfg_, max_group_blocks, kBlock);
  for (auto [gi, gj] : groups) {
    ForwardBatch b;
    std::vector<int32_t> targets;
    int first_block = 0, max_blocks = 1;
    for (size_t s = gi; s < gj; ++s) max_blocks = std::max(max_blocks, static_cast<int>((seqs[s].size() + kBlock - 1) / kBlock));
    b.num_seqs = static_cast<int>(gj - gi);
    b.max_blocks = max_blocks;
    b.block_tables.assign(static_cast<size_t>(b.num_seqs) * max_blocks, 0);
    for (size_t s = gi; s < gj; ++s) {
      const auto& toks = seqs[s];
      int row = static_cast<int>(s - gi);
      int nb = static_cast<int>((toks.size() + kBlock - 1) / kBlock);
      for (int k = 0; k < nb; ++k) b.block_tables[static_cast<size_t>(row) * max_blocks + k] = first_block + k;
      int base = static_cast<int>(b.tokens.size());
      b = contiguous_batch(toks, kBlock, first_block, row, std::move(b));
      for (size_t t = 0; t + 1 < toks.size(); ++t) {
        b.output_rows.push_back(base + static_cast<int>(t));
        targets.push_back(toks[t + 1]);
      }
      first_block += nb;
    }
    if (b.tokens.empty()) continue;
    Buffer hidden = forward_hidden(b, cache);
    const int64_t rows = static_cast<int64_t>(targets.size());
    std::vector<float> lp(static_cast<size_t>(rows));
    Buffer logit_buf(be_, DType::F32, {std::min(rows, kLogitRows) > 0 ? std::min(rows, kLogitRows) : 1, cfg_.vocab_size});
    Buffer out(be_, DType::F32, {std::max<int64_t>(std::min(rows, kLogitRows), 1)});
    for (int64_t r0 = 0; r0 < rows; r0 += kLogitRows) {
      int64_t c = std::min(kLogitRows, rows - r0);
      Tensor lg = logit_buf.t().slice_rows(0, c);
      logits(lg, hidden.t().slice_rows(r0, c));
      std::vector<int32_t> tg(targets.begin() + r0, targets.begin() + r0 + c);
      Buffer tgt = upload_i32(be_, tg);
      Tensor o = out.t().slice_rows(0, c);
      be_.log_softmax_gather(o, lg, tgt.t().slice_rows(0, c), 1.0f / temperature);
      be_.copy_to_host(lp.data() + r0, o.data, static_cast<size_t>(c) * 4);
    }
    size_t off = 0;
    for (size_t s = gi; s < gj; ++s) {
      size_t len = seqs[s].empty() ? 0 : seqs[s].size() - 1;
      result[s].assign(lp.begin() + off, lp.begin() + off + len);
      off += len;
    }
  }
  return result;
}

std::vector<float> Model::sequence_logits(const std::vector<int32_t>& tokens) {
  HAYATE_CHECK(!tokens.empty(), ErrorCode::kInvalidArgument, "logits: empty sequence");
  check_tokens(tokens, "logits");
  constexpr int kBlock = 16;
  int nb = static_cast<int>((tokens.size() + kBlock - 1) / kBlock);
  KvCache cache(be_, cfg_, nb, kBlock);
  ForwardBatch b;
  b.num_seqs = 1;
  b.max_blocks = nb;
  for (int k = 0; k < nb; ++k) b.block_tables.push_back(k);
  b = contiguous_batch(tokens, kBlock, 0, 0, std::move(b));
  for (size_t t = 0; t < tokens.size(); ++t) b.output_rows.push_back(static_cast<int32_t>(t));
  Buffer hidden = forward_hidden(b, cache);
  const int64_t L = static_cast<int64_t>(tokens.size());
  Buffer lg(be_, DType::F32, {L, cfg_.vocab_size});
  logits(lg, hidden);
  std::vector<float> out(static_cast<size_t>(L) * cfg_.vocab_size);
  be_.download_f32(out.data(), lg);
  return out;
}

}  // namespace hayate
