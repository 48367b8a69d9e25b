#include "generator.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>

#include "rng.h"

namespace hayate {

namespace {

int ceil_div(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

// A request whose prompt is being prefilled (chunk by chunk) into its own blocks.
struct Prefill {
  int request = 0;
  std::vector<int> blocks;
  int done = 0;    // prompt tokens already in the cache
  int budget = 0;  // blocks it may still allocate (reserved at admission)
};

// One sample being decoded. `length` tokens are in the cache; `pending` is the last sampled token, fed
// at position `length` in the next step. Interactive: a parked sequence waits for its turn answer; a
// continuing one first puts `feed` (the pending token, then the appended ones) into the cache, chunk by
// chunk, and samples from the last of them.
struct Sequence {
  GenerationOutput out;
  std::vector<int> blocks;
  int length = 0;
  int32_t pending = 0;
  uint64_t seed = 0;
  int budget = 0;
  std::string bytes;  // bytes generated in the current turn, for stop strings
  bool done = false;
  bool parked = false;
  std::vector<int32_t> feed;
  size_t fed = 0;
  size_t turn_start = 0;  // index in out.tokens where the current turn began
};

// Worst-case KV blocks of a request, given how its blocks are shared (see Generator::generate).
struct BlockPlan {
  int prompt_full = 0;   // full prompt blocks shared by every sample
  bool partial = false;  // a partially filled last prompt block (copied per sample but the first)
  int own = 0;           // blocks each sample may own: its copy of the partial block + new ones
  int total(int n) const { return prompt_full + n * own; }
};

BlockPlan plan_blocks(int prompt_len, int max_new, int context, int bs) {
  BlockPlan p;
  p.prompt_full = prompt_len / bs;
  p.partial = prompt_len % bs != 0;
  int64_t max_len = std::min<int64_t>(static_cast<int64_t>(prompt_len) + max_new - 1, context);
  max_len = std::max<int64_t>(max_len, prompt_len);
  p.own = ceil_div(max_len, bs) - p.prompt_full;
  return p;
}

// Every request checked (kInvalidArgument / kContextOverflow) and its worst-case KV blocks planned.
struct RequestPlans {
  std::vector<BlockPlan> plans;
  int64_t all_blocks = 0;  // every request at once
  int64_t largest = 0;     // the largest single request
  int total_sequences = 0;
};

RequestPlans plan_requests(const Model& model, const std::vector<std::string>& token_bytes,
                           const std::vector<GenerationRequest>& requests, int bs) {
  const ModelConfig& cfg = model.config();
  const int context = cfg.max_position_embeddings;
  RequestPlans rp;
  for (size_t r = 0; r < requests.size(); ++r) {
    const GenerationRequest& q = requests[r];
    std::string where = "request " + std::to_string(r);
    HAYATE_CHECK(!q.prompt.empty(), ErrorCode::kInvalidArgument, where + ": empty prompt");
    HAYATE_CHECK(q.n >= 1, ErrorCode::kInvalidArgument, where + ": n must be >= 1");
    HAYATE_CHECK(q.max_new_tokens >= 1, ErrorCode::kInvalidArgument, where + ": max_new_tokens must be >= 1");
    HAYATE_CHECK(q.max_turns >= 0, ErrorCode::kInvalidArgument, where + ": max_turns must be >= 0");
    HAYATE_CHECK(static_cast<int64_t>(q.prompt.size()) <= context, ErrorCode::kContextOverflow,
                 where + ": prompt of " + std::to_string(q.prompt.size()) + " tokens is longer than the model's context of " +
                     std::to_string(context) + " tokens");
    model.check_tokens(q.prompt, where.c_str());
    if (!q.stop_strings.empty()) {
      HAYATE_CHECK(static_cast<int64_t>(token_bytes.size()) >= cfg.vocab_size, ErrorCode::kInvalidArgument,
                   where + ": stop strings need the tokenizer's token bytes");
      for (const std::string& s : q.stop_strings)
        HAYATE_CHECK(!s.empty(), ErrorCode::kInvalidArgument, where + ": empty stop string");
    }
    rp.plans.push_back(plan_blocks(static_cast<int>(q.prompt.size()), q.max_new_tokens, context, bs));
    int64_t need = rp.plans.back().total(q.n);
    rp.all_blocks += need;
    rp.largest = std::max(rp.largest, need);
    rp.total_sequences += q.n;
  }
  return rp;
}

// KV-cache blocks: kv_cache_tokens when given, otherwise enough for every request at once capped by
// kv_cache_bytes; never fewer than the largest request needs.
int64_t cache_capacity(Backend& be, const ModelConfig& cfg, const GenerationOptions& opt, const RequestPlans& rp) {
  const int bs = opt.block_size;
  size_t block_bytes = KvCache::block_bytes(be, cfg, bs);
  int64_t capacity = opt.kv_cache_tokens > 0 ? ceil_div(opt.kv_cache_tokens, bs)
                                             : std::min<int64_t>(rp.all_blocks, std::max<int64_t>(1, opt.kv_cache_bytes / block_bytes));
  capacity = std::max<int64_t>(capacity, opt.kv_cache_tokens > 0 ? 1 : rp.largest);
  HAYATE_CHECK(rp.largest <= capacity, ErrorCode::kContextOverflow,
               "generate: one request needs " + std::to_string(rp.largest * bs) + " KV-cache tokens (prompt + n x max_new_tokens) but the cache holds " +
                   std::to_string(capacity * bs) + "; raise kvCacheTokens or lower n / max_new_tokens");
  return capacity;
}

// One step: its forward batch (one decode token per running sequence, then prefill chunks) and, after
// forward(), the logits of its output rows: the decode rows first, then the last row of each prompt that
// completes in this step.
// Interactive: the rows right after the decode rows are the last fed token of each continuation that
// completes in this step.
struct Step {
  ForwardBatch batch;
  std::vector<const std::vector<int>*> tables;      // block table of each sequence in the batch
  std::vector<Sequence*> decode_rows;
  std::vector<Sequence*> feed_rows;                 // continuations whose fed tokens complete in this step
  std::vector<std::pair<size_t, int>> completing;  // (prefill index, output row in `batch.output_rows`)
  int64_t prefill_tokens = 0;   // prompt tokens
  int64_t appended_tokens = 0;  // appended (turn-answer) tokens
  Buffer hidden, logits;
};

// The scheduler state of one generate() call and the phases of a step, in order: admit, build_batch,
// forward, sample_decode_rows, fork_completed_prompts, retire.
class GenerationRun {
 public:
  GenerationRun(Model& model, const std::vector<std::string>& token_bytes, const std::vector<GenerationRequest>& requests,
                const GenerationOptions& opt, RequestPlans plans, int64_t cache_blocks, TurnChannel* turns)
      : model_(model), be_(model.backend()), token_bytes_(token_bytes), requests_(requests), opt_(opt),
        bs_(opt.block_size), context_(model.config().max_position_embeddings), max_batch_(std::max(opt.max_batch, 1)),
        plans_(std::move(plans.plans)), total_sequences_(plans.total_sequences),
        cache_(be_, model.config(), static_cast<int>(cache_blocks), bs_), turns_(turns) {
    for (size_t r = 0; r < requests.size(); ++r) {
      waiting_.push_back(static_cast<int>(r));
      if (requests[r].interactive) by_id_.emplace_back(static_cast<size_t>(requests[r].n), nullptr);
      else by_id_.emplace_back();
    }
  }

  bool done() const { return finished_ >= total_sequences_; }

  // Something to run: a prompt to prefill or a sequence that is not waiting for a turn answer.
  bool has_work() const {
    if (!prefills_.empty()) return true;
    return std::any_of(running_.begin(), running_.end(), [](const auto& s) { return !s->parked && !s->done; });
  }

  // Interactive: applies the turn answers received so far; answered sequences continue or finish.
  void apply_answers() {
    if (!turns_ || parked_ == 0) return;
    for (TurnChannel::Answer& a : turns_->take()) {
      Sequence* s = by_id_[a.request][a.sample];
      HAYATE_CHECK(s && s->parked, ErrorCode::kInternal, "generate: a turn answer for a sequence that is not waiting");
      continue_or_finish(*s, a);
    }
    running_.erase(std::remove_if(running_.begin(), running_.end(), [](auto& s) { return s->done; }), running_.end());
  }

  // Admits waiting requests in order while their worst-case blocks and batch slots are available.
  void admit() {
    int active = static_cast<int>(running_.size());
    for (const Prefill& p : prefills_) active += requests_[p.request].n;
    while (!waiting_.empty()) {
      int r = waiting_.front();
      int64_t need = plans_[r].total(requests_[r].n);
      bool slots_ok = active == 0 || active + requests_[r].n <= max_batch_;
      if (!slots_ok || cache_.free_blocks() - reserved_ < need) break;
      waiting_.pop_front();
      Prefill p;
      p.request = r;
      p.budget = ceil_div(static_cast<int64_t>(requests_[r].prompt.size()), bs_);
      reserved_ += need;  // the prompt's blocks now, the samples' share at fork time
      prefills_.push_back(std::move(p));
      active += requests_[r].n;
    }
    HAYATE_CHECK(!prefills_.empty() || !running_.empty(), ErrorCode::kInternal, "generate: scheduler stalled");
  }

  // One decode token per running sequence, then the tokens of continuing sequences and prefill chunks
  // (together up to prefill_chunk tokens).
  Step build_batch() {
    Step st;
    ForwardBatch& b = st.batch;
    for (auto& sp : running_) {
      Sequence& s = *sp;
      if (s.parked || !s.feed.empty()) continue;
      if (s.length % bs_ == 0 && static_cast<int>(s.blocks.size()) * bs_ <= s.length) s.blocks.push_back(allocate(s.budget));
      int row = static_cast<int>(b.tokens.size());
      b.tokens.push_back(s.pending);
      b.positions.push_back(s.length);
      b.seq_index.push_back(static_cast<int32_t>(st.tables.size()));
      b.slots.push_back(s.blocks[s.length / bs_] * bs_ + s.length % bs_);
      b.output_rows.push_back(row);
      st.tables.push_back(&s.blocks);
      st.decode_rows.push_back(&s);
    }
    int chunk_left = opt_.prefill_chunk;
    for (auto& sp : running_) {  // continuations: the pending token and the appended ones
      Sequence& s = *sp;
      if (s.parked || s.feed.empty() || chunk_left == 0) continue;
      int take = std::min<int>(chunk_left, static_cast<int>(s.feed.size() - s.fed));
      int seq_row = static_cast<int32_t>(st.tables.size());
      for (int i = 0; i < take; ++i) {
        int pos = s.length + i;
        if (pos / bs_ >= static_cast<int>(s.blocks.size())) s.blocks.push_back(allocate(s.budget));
        b.tokens.push_back(s.feed[s.fed + i]);
        b.positions.push_back(pos);
        b.seq_index.push_back(seq_row);
        b.slots.push_back(s.blocks[pos / bs_] * bs_ + pos % bs_);
      }
      st.tables.push_back(&s.blocks);
      st.appended_tokens += take - (s.fed == 0 ? 1 : 0);  // feed[0] is the pending sampled token
      s.fed += take;
      s.length += take;
      chunk_left -= take;
      if (s.fed == s.feed.size()) {
        s.feed.clear();
        s.fed = 0;
        b.output_rows.push_back(static_cast<int32_t>(b.tokens.size()) - 1);
        st.feed_rows.push_back(&s);
      }
    }
    for (size_t pi = 0; pi < prefills_.size() && chunk_left > 0; ++pi) {
      Prefill& p = prefills_[pi];
      const std::vector<int32_t>& prompt = requests_[p.request].prompt;
      int take = std::min<int>(chunk_left, static_cast<int>(prompt.size()) - p.done);
      int seq_row = static_cast<int32_t>(st.tables.size());
      for (int t = p.done; t < p.done + take; ++t) {
        if (t % bs_ == 0) p.blocks.push_back(allocate(p.budget));
        b.tokens.push_back(prompt[t]);
        b.positions.push_back(t);
        b.seq_index.push_back(seq_row);
        b.slots.push_back(p.blocks[t / bs_] * bs_ + t % bs_);
      }
      st.tables.push_back(&p.blocks);
      p.done += take;
      chunk_left -= take;
      st.prefill_tokens += take;
      if (p.done == static_cast<int>(prompt.size())) {
        st.completing.emplace_back(pi, static_cast<int>(b.output_rows.size()));
        b.output_rows.push_back(static_cast<int32_t>(b.tokens.size()) - 1);
      }
    }
    b.num_seqs = static_cast<int>(st.tables.size());
    b.max_blocks = 1;
    for (const auto* t : st.tables) b.max_blocks = std::max(b.max_blocks, static_cast<int>(t->size()));
    b.block_tables.assign(static_cast<size_t>(b.num_seqs) * b.max_blocks, 0);
    for (size_t i = 0; i < st.tables.size(); ++i)
      std::copy(st.tables[i]->begin(), st.tables[i]->end(), b.block_tables.begin() + i * b.max_blocks);
    return st;
  }

  // The model over the batch, then the logits of its output rows.
  void forward(Step& st) {
    st.hidden = model_.forward_hidden(st.batch, cache_);
    const int64_t rows = static_cast<int64_t>(st.batch.output_rows.size());
    if (rows > 0) {
      st.logits = Buffer(be_, DType::F32, {rows, model_.config().vocab_size});
      model_.logits(st.logits, st.hidden);
    }
  }

  // Samples every decode row, and the last row of each completed continuation, in one call.
  void sample_decode_rows(Step& st) {
    const size_t D = st.decode_rows.size(), rows = D + st.feed_rows.size();
    if (rows == 0) return;
    std::vector<Sequence*> seqs(st.decode_rows);
    seqs.insert(seqs.end(), st.feed_rows.begin(), st.feed_rows.end());
    std::vector<SamplingRow> srows;
    for (Sequence* s : seqs) {
      SamplingRow sr = requests_[s->out.request].sampling;
      sr.seed = s->seed;
      sr.step = s->out.tokens.size();
      srows.push_back(sr);
    }
    std::vector<int32_t> ids(rows);
    std::vector<float> lps(rows);
    be_.sample(st.logits.t().slice_rows(0, static_cast<int64_t>(rows)), srows.data(), ids.data(), lps.data());
    for (size_t i = 0; i < rows; ++i) {
      if (i < D) seqs[i]->length += 1;  // a continuation's length already counts its fed tokens
      accept(*seqs[i], ids[i], lps[i]);
    }
  }

  // Forks each prompt completed in this step into its n samples, which share the prompt's full blocks, and
  // samples their first tokens.
  void fork_completed_prompts(Step& st) {
    for (auto [pi, out_row] : st.completing) {
      Prefill& p = prefills_[pi];
      const GenerationRequest& q = requests_[p.request];
      const BlockPlan& plan = plans_[p.request];
      const int P = static_cast<int>(q.prompt.size());
      reserved_ -= p.budget;  // unused prompt budget (none in practice) goes back
      for (int i = 0; i < q.n; ++i) {
        auto s = std::make_unique<Sequence>();
        s->out.request = p.request;
        s->out.sample = i;
        s->length = P;
        s->seed = derive_seed(q.seed, static_cast<uint64_t>(i));
        if (q.interactive) by_id_[p.request][i] = s.get();
        // Admission reserved prompt_full + n*own blocks; the prompt used prompt_full (+1 partial), so
        // the samples' budgets are own each, less the partial block the first sample takes over.
        s->budget = plan.own;
        s->blocks.assign(p.blocks.begin(), p.blocks.begin() + plan.prompt_full);
        for (int blk : s->blocks) cache_.retain(blk);
        if (plan.partial) {
          if (i == 0) {  // the first sample takes over the partial block; it counts against its budget
            cache_.retain(p.blocks.back());
            s->blocks.push_back(p.blocks.back());
            --s->budget;
          } else {
            int copy = allocate(s->budget);
            cache_.copy_rows(copy, p.blocks.back(), P % bs_);
            s->blocks.push_back(copy);
          }
        }
        SamplingRow sr = q.sampling;
        sr.seed = s->seed;
        sr.step = 0;
        int32_t id;
        float lp;
        be_.sample(st.logits.t().slice_rows(out_row, 1), &sr, &id, &lp);
        Sequence& ref = *s;
        running_.push_back(std::move(s));
        accept(ref, id, lp);
      }
      for (int blk : p.blocks) cache_.release(blk);  // the samples hold their own references now
      p.blocks.clear();
    }
  }

  // Drops the prefills completed in this step and the finished sequences.
  void retire(const Step& st) {
    std::vector<Prefill> still;
    for (size_t pi = 0; pi < prefills_.size(); ++pi) {
      bool done = std::any_of(st.completing.begin(), st.completing.end(), [&](auto& c) { return c.first == pi; });
      if (!done) still.push_back(std::move(prefills_[pi]));
    }
    prefills_ = std::move(still);
    running_.erase(std::remove_if(running_.begin(), running_.end(), [](auto& s) { return s->done; }), running_.end());
  }

  GenerationProgress progress() const {
    GenerationProgress pr;
    pr.generated_tokens = generated_;
    pr.finished_sequences = finished_;
    pr.total_sequences = total_sequences_;
    pr.running_sequences = static_cast<int>(running_.size()) - parked_;
    pr.waiting_sequences = parked_;
    return pr;
  }
  int64_t generated_tokens() const { return generated_; }
  int turn_events() const { return turn_events_; }

  // The outputs in (request, sample) order.
  std::vector<GenerationOutput> take_results() {
    std::sort(results_.begin(), results_.end(), [](const GenerationOutput& a, const GenerationOutput& b) {
      return a.request != b.request ? a.request < b.request : a.sample < b.sample;
    });
    return std::move(results_);
  }

 private:
  int allocate(int& budget) {
    HAYATE_CHECK(budget > 0, ErrorCode::kInternal, "generate: block budget exceeded");
    --budget;
    --reserved_;
    return cache_.allocate();
  }

  void finish(Sequence& s) {
    if (!by_id_[s.out.request].empty()) by_id_[s.out.request][s.out.sample] = nullptr;
    s.done = true;
    for (int b : s.blocks) cache_.release(b);
    s.blocks.clear();
    reserved_ -= s.budget;
    s.budget = 0;
    ++finished_;
    results_.push_back(std::move(s.out));
  }

  // Appends a sampled token and decides whether the sequence is finished (or, interactive, parked).
  void accept(Sequence& s, int32_t token, float logprob) {
    const GenerationRequest& q = requests_[s.out.request];
    s.out.tokens.push_back(token);
    s.out.logprobs.push_back(logprob);
    if (q.interactive) s.out.token_mask.push_back(1);
    ++generated_;
    if (std::find(q.stop_token_ids.begin(), q.stop_token_ids.end(), token) != q.stop_token_ids.end()) {
      s.out.finish = FinishReason::Stop;
      return end_turn(s, token);
    }
    if (!q.stop_strings.empty()) {
      size_t old = s.bytes.size();
      s.bytes += token_bytes_[token];
      for (size_t i = 0; i < q.stop_strings.size(); ++i) {
        const std::string& stop = q.stop_strings[i];
        size_t from = old >= stop.size() - 1 ? old - (stop.size() - 1) : 0;
        size_t at = s.bytes.find(stop, from);
        if (at != std::string::npos) {
          s.out.finish = FinishReason::Stop;
          s.out.stop_string = static_cast<int>(i);
          s.out.stop_string_offset = static_cast<int64_t>(at);
          return end_turn(s, token);
        }
      }
    }
    if (static_cast<int>(s.out.tokens.size()) >= q.max_new_tokens || s.length + 1 > context_) {
      s.out.finish = FinishReason::Length;
      return finish(s);
    }
    s.pending = token;
  }

  // A stop ended the current turn: an interactive sequence with room for another turn is parked and its turn
  // event sent; any other finishes.
  void end_turn(Sequence& s, int32_t token) {
    const GenerationRequest& q = requests_[s.out.request];
    const int len = static_cast<int>(s.out.tokens.size());
    const int P = static_cast<int>(q.prompt.size());
    bool room = len < q.max_new_tokens && static_cast<int64_t>(P) + len <= context_;
    if (!q.interactive || !room || (q.max_turns > 0 && s.out.turns >= q.max_turns)) return finish(s);
    s.pending = token;
    s.parked = true;
    ++parked_;
    ++turn_events_;
    TurnEvent ev;
    ev.request = s.out.request;
    ev.sample = s.out.sample;
    ev.turn = s.out.turns - 1;
    ev.tokens.assign(s.out.tokens.begin() + s.turn_start, s.out.tokens.end());
    ev.logprobs.assign(s.out.logprobs.begin() + s.turn_start, s.out.logprobs.end());
    ev.stop_string = s.out.stop_string;
    ev.stop_string_offset = s.out.stop_string_offset;
    ev.completion_tokens = len;
    ev.remaining_tokens = q.max_new_tokens - len;
    ev.max_append_tokens = max_append(s);
    turns_->expect(ev.request, ev.sample);
    turns_->emit(std::move(ev));
  }

  // Appended tokens that leave room for the model to generate after them: one more token within
  // max_new_tokens, and every fed position inside the context.
  int max_append(const Sequence& s) const {
    const GenerationRequest& q = requests_[s.out.request];
    const int64_t len = static_cast<int64_t>(s.out.tokens.size());
    return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(q.max_new_tokens - 1 - len, context_ - static_cast<int64_t>(q.prompt.size()) - len)));
  }

  // The answer to a parked sequence's turn: end, or append its tokens (logprob 0, mask 0) and queue them with
  // the pending token for the cache. Appended tokens beyond max_append are cut to the remaining budget and the
  // sequence finishes (Length) without generating again.
  void continue_or_finish(Sequence& s, TurnChannel::Answer& a) {
    const GenerationRequest& q = requests_[s.out.request];
    s.parked = false;
    --parked_;
    if (a.end) return finish(s);
    const int len = static_cast<int>(s.out.tokens.size());
    const int k = static_cast<int>(a.tokens.size());
    s.out.stop_string = -1;
    s.out.stop_string_offset = -1;
    s.out.finish = FinishReason::Length;
    const bool fits = k <= max_append(s);
    const int keep = fits ? k : std::min(k, q.max_new_tokens - len);
    s.out.tokens.insert(s.out.tokens.end(), a.tokens.begin(), a.tokens.begin() + keep);
    s.out.logprobs.insert(s.out.logprobs.end(), keep, 0.0f);
    s.out.token_mask.insert(s.out.token_mask.end(), keep, 0);
    if (!fits) return finish(s);
    s.feed.clear();
    s.feed.push_back(s.pending);
    s.feed.insert(s.feed.end(), a.tokens.begin(), a.tokens.end());
    s.fed = 0;
    s.turn_start = s.out.tokens.size();
    s.bytes.clear();
    s.out.turns += 1;
  }

  Model& model_;
  Backend& be_;
  const std::vector<std::string>& token_bytes_;
  const std::vector<GenerationRequest>& requests_;
  const GenerationOptions& opt_;
  const int bs_, context_, max_batch_;
  std::vector<BlockPlan> plans_;
  const int total_sequences_;
  KvCache cache_;
  std::deque<int> waiting_;
  std::vector<Prefill> prefills_;
  std::vector<std::unique_ptr<Sequence>> running_;
  int64_t reserved_ = 0;  // blocks promised to admitted work but not yet allocated
  int finished_ = 0;
  int64_t generated_ = 0;
  std::vector<GenerationOutput> results_;
  TurnChannel* turns_;
  std::vector<std::vector<Sequence*>> by_id_;  // interactive requests: [request][sample] -> live sequence
  int parked_ = 0;
  int turn_events_ = 0;
};

// Step timings: a step with prefill tokens (prompt or appended) counts as prefill, any other as decode.
void record_step(GenerationStats& stats, const Step& st, double seconds) {
  ++stats.steps;
  stats.prompt_tokens += st.prefill_tokens;
  stats.appended_tokens += st.appended_tokens;
  stats.forwarded_tokens += static_cast<int64_t>(st.batch.tokens.size());
  if (st.prefill_tokens > 0 || st.appended_tokens > 0) {
    stats.prefill_seconds += seconds;
  } else {
    stats.decode_seconds += seconds;
    stats.decode_step_tokens += static_cast<int64_t>(st.decode_rows.size() + st.feed_rows.size());
  }
}

}  // namespace

Generator::Generator(Model& model, std::vector<std::string> token_bytes)
    : model_(model), token_bytes_(std::move(token_bytes)) {}

std::vector<GenerationOutput> Generator::generate(const std::vector<GenerationRequest>& requests,
                                                  const GenerationOptions& opt,
                                                  const std::function<void(const GenerationProgress&)>& progress,
                                                  const std::atomic<bool>* cancel, GenerationStats* stats,
                                                  TurnChannel* turns) {
  HAYATE_CHECK(opt.block_size > 0 && opt.max_batch > 0 && opt.prefill_chunk > 0, ErrorCode::kInvalidArgument,
               "generate: block_size, max_batch and prefill_chunk must be positive");
  RequestPlans plans = plan_requests(model_, token_bytes_, requests, opt.block_size);
  for (size_t r = 0; r < requests.size(); ++r)
    HAYATE_CHECK(!requests[r].interactive || turns, ErrorCode::kInvalidArgument,
                 "request " + std::to_string(r) + ": interactive generation needs a turn channel (onTurn)");
  if (requests.empty()) return {};
  const int64_t capacity = cache_capacity(model_.backend(), model_.config(), opt, plans);
  struct Closer {  // the channel serves this call only; later answers are errors
    TurnChannel* c;
    ~Closer() { if (c) c->close(); }
  } closer{nullptr};
  if (turns) {
    turns->open(requests, model_.config().vocab_size);
    closer.c = turns;
  }
  GenerationRun run(model_, token_bytes_, requests, opt, std::move(plans), capacity, turns);
  if (stats) stats->kv_cache_blocks = capacity;

  while (!run.done()) {
    if (cancel && cancel->load()) fail(ErrorCode::kCancelled, "generation cancelled");
    run.apply_answers();
    if (run.done()) break;
    run.admit();
    if (!run.has_work()) {  // every live sequence waits for a turn answer
      HAYATE_CHECK(turns != nullptr, ErrorCode::kInternal, "generate: scheduler stalled");
      const auto w0 = std::chrono::steady_clock::now();
      turns->wait(cancel);
      if (stats) stats->wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    Step step = run.build_batch();
    run.forward(step);
    run.sample_decode_rows(step);
    run.fork_completed_prompts(step);
    run.retire(step);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (stats) record_step(*stats, step, secs);
    if (progress) progress(run.progress());
  }
  if (stats) {
    stats->generated_tokens = run.generated_tokens();
    stats->turn_events = run.turn_events();
  }
  return run.take_results();
}

// ---- TurnChannel -------------------------------------------------------------------------------

void TurnChannel::open(const std::vector<GenerationRequest>& requests, int64_t vocab_size) {
  std::lock_guard<std::mutex> lock(mutex_);
  HAYATE_CHECK(!open_, ErrorCode::kInvalidArgument, "turn channel: already serving a generate call");
  open_ = true;
  vocab_ = vocab_size;
  waiting_.clear();
  for (const GenerationRequest& q : requests) waiting_.emplace_back(q.interactive ? static_cast<size_t>(q.n) : 0, uint8_t(0));
  answers_.clear();
}

void TurnChannel::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  open_ = false;
  waiting_.clear();
  answers_.clear();
  cv_.notify_all();
}

void TurnChannel::expect(int request, int sample) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (abandoned_) {
    Answer a;
    a.request = request;
    a.sample = sample;
    a.end = true;
    answers_.push_back(std::move(a));
    return;
  }
  waiting_.at(request).at(sample) = 1;
}

void TurnChannel::abandon() {
  std::lock_guard<std::mutex> lock(mutex_);
  abandoned_ = true;
  for (size_t r = 0; r < waiting_.size(); ++r)
    for (size_t i = 0; i < waiting_[r].size(); ++i)
      if (waiting_[r][i]) {
        waiting_[r][i] = 0;
        Answer a;
        a.request = static_cast<int>(r);
        a.sample = static_cast<int>(i);
        a.end = true;
        answers_.push_back(std::move(a));
      }
  cv_.notify_all();
}

void TurnChannel::provide(int request, int sample, const std::vector<int32_t>* tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  HAYATE_CHECK(open_, ErrorCode::kInvalidArgument, "turn answer: the generate call is over (finished, failed or cancelled)");
  const std::string who = "turn answer for request " + std::to_string(request) + ", sample " + std::to_string(sample);
  HAYATE_CHECK(request >= 0 && request < static_cast<int>(waiting_.size()), ErrorCode::kInvalidArgument,
               who + ": no such request (" + std::to_string(waiting_.size()) + " requests)");
  const auto& w = waiting_[request];
  HAYATE_CHECK(!w.empty(), ErrorCode::kInvalidArgument, who + ": the request is not interactive");
  HAYATE_CHECK(sample >= 0 && sample < static_cast<int>(w.size()), ErrorCode::kInvalidArgument,
               who + ": no such sample (n = " + std::to_string(w.size()) + ")");
  HAYATE_CHECK(w[sample], ErrorCode::kInvalidArgument, who + ": the sequence is not waiting for an answer (no turn event, or already answered)");
  Answer a;
  a.request = request;
  a.sample = sample;
  a.end = tokens == nullptr;
  if (tokens) {
    for (size_t i = 0; i < tokens->size(); ++i)
      HAYATE_CHECK((*tokens)[i] >= 0 && (*tokens)[i] < vocab_, ErrorCode::kInvalidArgument,
                   who + ": token " + std::to_string(i) + " (id " + std::to_string((*tokens)[i]) + ") is outside the vocabulary (size " + std::to_string(vocab_) + ")");
    a.tokens = *tokens;
  }
  waiting_[request][sample] = 0;
  answers_.push_back(std::move(a));
  cv_.notify_all();
}

std::vector<TurnChannel::Answer> TurnChannel::take() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Answer> out(std::make_move_iterator(answers_.begin()), std::make_move_iterator(answers_.end()));
  answers_.clear();
  return out;
}

void TurnChannel::wait(const std::atomic<bool>* cancel, std::chrono::milliseconds poll) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (answers_.empty() && open_ && !(cancel && cancel->load())) cv_.wait_for(lock, poll);
}

}  // namespace hayate
