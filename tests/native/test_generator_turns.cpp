// Multi-turn (interactive) generation (cpp/generator.h, TurnChannel): a sequence that stops is parked with its
// KV cache, its turn event answered with tokens to append (prefilled in place) or an end. Checked on a tiny
// random model with greedy decoding and scripted answers:
//   - a continued sequence equals a fresh run whose prompt already holds everything before the turn (tokens
//     and logprobs), and its model tokens' logprobs equal the full-sequence scoring;
//   - only appended tokens are prefilled on continuation; the n samples share one prompt prefill;
//   - sampled runs are deterministic whatever the batch size and the timing of the answers (tokens exactly,
//     logprobs to 1e-5: rows batched differently differ in the last bits, as plain requests do);
//   - max_turns, the max_new_tokens budget over generated + appended tokens (cut and finish), end answers;
//   - cancel while every sequence waits; bad answers are rejected without touching the run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "check.h"
#include "cpu/cpu_backend.h"
#include "generator.h"
#include "model.h"
#include "tiny_config.h"

using namespace hayate;

namespace {

ModelConfig turns_config() { return hayate_test::tiny_config(Arch::Qwen3, 64, 256); }

struct Fixture {
  CpuBackend be{2, "builtin", "f32"};  // batch-invariant GEMM
  ModelConfig cfg = turns_config();
  std::unique_ptr<Model> model = Model::random(be, cfg, 21, 0.5f);
};

std::vector<int32_t> prompt_of(int len, uint32_t seed, int vocab) {
  std::vector<int32_t> p;
  uint32_t s = seed * 2654435761u + 1;
  for (int i = 0; i < len; ++i) {
    s = s * 1664525u + 1013904223u;
    p.push_back(static_cast<int32_t>((s >> 8) % static_cast<uint32_t>(vocab)));
  }
  return p;
}

GenerationRequest greedy(std::vector<int32_t> prompt, int max_new, std::vector<int32_t> stops) {
  GenerationRequest q;
  q.prompt = std::move(prompt);
  q.max_new_tokens = max_new;
  q.sampling.temperature = 0;
  q.stop_token_ids = std::move(stops);
  return q;
}

// A stop id that greedy decoding of `prompt` emits early (so turns end at known tokens).
int32_t early_token(Model& m, const std::vector<int32_t>& prompt, int at) {
  Generator gen(m, {});
  auto out = gen.generate({greedy(prompt, at + 1, {})}, GenerationOptions{});
  return out[0].tokens.at(at);
}

std::vector<int32_t> appended(int turn, int sample, int len) {
  std::vector<int32_t> a;
  for (int i = 0; i < len; ++i) a.push_back(static_cast<int32_t>((7 * turn + 3 * sample + 5 * i + 1) % 60));
  return a;
}

// Answers every event from inside the sink with appended(turn, sample, len), until `max_answers` per
// sequence (then an end); records the events.
struct Script {
  TurnChannel channel;
  std::vector<TurnEvent> events;
  int len = 5;
  int answers_per_sequence = 1 << 30;
  Script() {
    channel.set_sink([this](TurnEvent&& e) {
      events.push_back(e);
      if (e.turn < answers_per_sequence) {
        std::vector<int32_t> a = appended(e.turn, e.sample, len);
        channel.provide(e.request, e.sample, &a);
      } else {
        channel.provide(e.request, e.sample, nullptr);
      }
    });
  }
};

int64_t sum_appended(const std::vector<GenerationOutput>& outs) {
  int64_t n = 0;
  for (const auto& o : outs)
    for (uint8_t m : o.token_mask) n += m == 0;
  return n;
}

}  // namespace

// (a) Every turn of a continued sequence equals a fresh non-interactive run whose prompt is everything
// before that turn (same tokens, logprobs to 1e-5), and the logprobs of the model's tokens equal scoring the
// whole sequence at once.
TEST(turns_continue_equals_fresh_prompt) {
  Fixture f;
  const std::vector<int32_t> prompt = prompt_of(13, 1, f.cfg.vocab_size);
  const int32_t stop = early_token(*f.model, prompt, 4);
  Script sc;
  GenerationRequest q = greedy(prompt, 200, {stop});
  q.interactive = true;
  q.max_turns = 4;
  Generator gen(*f.model, {});
  GenerationStats st;
  auto outs = gen.generate({q}, GenerationOptions{}, {}, nullptr, &st, &sc.channel);
  CHECK(outs.size() == 1);
  const GenerationOutput& o = outs[0];
  CHECK(o.turns >= 2);
  CHECK(static_cast<int>(sc.events.size()) == o.turns - 1);
  CHECK(o.token_mask.size() == o.tokens.size() && o.logprobs.size() == o.tokens.size());
  // turn starts: 0 and after each appended run
  std::vector<size_t> starts{0};
  for (size_t i = 1; i < o.tokens.size(); ++i)
    if (o.token_mask[i] == 1 && o.token_mask[i - 1] == 0) starts.push_back(i);
  CHECK(static_cast<int>(starts.size()) == o.turns);
  for (size_t t = 0; t < starts.size(); ++t) {
    std::vector<int32_t> pre = prompt;
    pre.insert(pre.end(), o.tokens.begin(), o.tokens.begin() + starts[t]);
    size_t end = t + 1 < starts.size() ? starts[t + 1] : o.tokens.size();
    while (end > starts[t] && o.token_mask[end - 1] == 0) --end;  // the turn's model tokens
    Generator fresh(*f.model, {});
    auto ref = fresh.generate({greedy(pre, static_cast<int>(end - starts[t]), {stop})}, GenerationOptions{});
    CHECK(ref[0].tokens == std::vector<int32_t>(o.tokens.begin() + starts[t], o.tokens.begin() + end));
    for (size_t i = 0; i < ref[0].logprobs.size() && starts[t] + i < o.logprobs.size(); ++i)
      CHECK_NEAR(ref[0].logprobs[i], o.logprobs[starts[t] + i], 1e-5);
    if (t + 1 < starts.size()) CHECK(sc.events[t].tokens == ref[0].tokens);
  }
  // whole-sequence scoring (log_softmax of raw logits = greedy's logprobs)
  std::vector<int32_t> full = prompt;
  full.insert(full.end(), o.tokens.begin(), o.tokens.end());
  auto lp = f.model->sequence_logprobs({full}, 1.0f)[0];
  for (size_t i = 0; i < o.tokens.size(); ++i) {
    if (o.token_mask[i]) CHECK_NEAR(lp[prompt.size() - 1 + i], o.logprobs[i], 1e-5);
    else CHECK(o.logprobs[i] == 0.0f);
  }
}

// (b) Continuing prefills only the appended tokens: prompt once, appended tokens once, every sampled token
// fed back once (the last of each sequence never).
TEST(turns_prefill_only_appended_tokens) {
  Fixture f;
  const std::vector<int32_t> prompt = prompt_of(21, 2, f.cfg.vocab_size);
  const int32_t stop = early_token(*f.model, prompt, 3);
  Script sc;
  sc.len = 9;
  GenerationRequest q = greedy(prompt, 80, {stop});
  q.interactive = true;
  q.max_turns = 3;
  Generator gen(*f.model, {});
  GenerationStats st;
  GenerationOptions opt;
  opt.prefill_chunk = 4;  // appended tokens prefilled over several steps
  auto outs = gen.generate({q}, opt, {}, nullptr, &st, &sc.channel);
  const int64_t app = sum_appended(outs);
  CHECK(app > 0);
  CHECK(st.prompt_tokens == 21);
  CHECK(st.appended_tokens == app);
  CHECK(st.turn_events == static_cast<int>(sc.events.size()));
  CHECK(st.forwarded_tokens == st.prompt_tokens + st.appended_tokens + st.generated_tokens - 1);
  CHECK(st.generated_tokens == static_cast<int64_t>(outs[0].tokens.size()) - app);
}

// (c) n samples of one prompt share its prefill across turns; sampled runs do not depend on the batch size,
// the prefill chunk, nor on when (and from which thread) the answers arrive.
TEST(turns_samples_share_prefill_and_are_deterministic) {
  Fixture f;
  const std::vector<int32_t> prompt = prompt_of(19, 3, f.cfg.vocab_size);
  auto request = [&] {
    GenerationRequest q;
    q.prompt = prompt;
    q.n = 5;
    q.seed = 77;
    q.max_new_tokens = 48;
    q.sampling.temperature = 1.0f;
    for (int32_t t = 0; t < f.cfg.vocab_size; t += 6) q.stop_token_ids.push_back(t);  // ~1 in 6 tokens stops
    q.interactive = true;
    q.max_turns = 3;
    return q;
  };
  GenerationRequest other = request();
  other.prompt = prompt_of(7, 4, f.cfg.vocab_size);
  other.n = 3;
  other.seed = 5;

  Script sc;
  Generator gen(*f.model, {});
  GenerationStats st;
  auto a = gen.generate({request(), other}, GenerationOptions{}, {}, nullptr, &st, &sc.channel);
  CHECK(a.size() == 8);
  CHECK(st.prompt_tokens == 19 + 7);  // each prompt once for its n samples
  CHECK(st.appended_tokens == sum_appended(a));
  CHECK(st.forwarded_tokens == st.prompt_tokens + st.appended_tokens + st.generated_tokens - 8);
  int with_turns = 0;
  for (const auto& o : a) with_turns += o.turns > 1;
  CHECK(with_turns >= 4);

  // Same run, small batches and chunks, answers from another thread after a delay, in reverse order.
  TurnChannel ch;
  std::mutex m;
  std::condition_variable cv;
  std::deque<TurnEvent> inbox;
  std::atomic<bool> stop_answering{false};
  ch.set_sink([&](TurnEvent&& e) {
    std::lock_guard<std::mutex> l(m);
    inbox.push_back(std::move(e));
    cv.notify_one();
  });
  std::thread answerer([&] {
    while (!stop_answering) {
      std::deque<TurnEvent> batch;
      {
        std::unique_lock<std::mutex> l(m);
        cv.wait_for(l, std::chrono::milliseconds(5), [&] { return !inbox.empty(); });
        batch.swap(inbox);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
        std::vector<int32_t> tok = appended(it->turn, it->sample, 5);
        ch.provide(it->request, it->sample, &tok);
      }
    }
  });
  GenerationOptions small;
  small.max_batch = 3;
  small.prefill_chunk = 3;
  GenerationStats st2;
  auto b = gen.generate({request(), other}, small, {}, nullptr, &st2, &ch);
  stop_answering = true;
  answerer.join();
  CHECK(b.size() == a.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    CHECK(a[i].tokens == b[i].tokens);
    CHECK(a[i].logprobs.size() == b[i].logprobs.size());
    for (size_t t = 0; t < a[i].logprobs.size() && t < b[i].logprobs.size(); ++t)
      CHECK_NEAR(a[i].logprobs[t], b[i].logprobs[t], 1e-5);  // rows batched differently: last-bit differences
    CHECK(a[i].token_mask == b[i].token_mask);
    CHECK(a[i].turns == b[i].turns);
  }
}

// (d) max_turns, the budget over generated + appended tokens, answers that end a sequence, event fields.
TEST(turns_max_turns_and_budget) {
  Fixture f;
  const std::vector<int32_t> prompt = prompt_of(10, 5, f.cfg.vocab_size);
  const int32_t stop = early_token(*f.model, prompt, 2);
  // max_turns = 2: one event, the second stop finishes (Stop) without one.
  {
    Script sc;
    GenerationRequest q = greedy(prompt, 100, {stop});
    q.interactive = true;
    q.max_turns = 2;
    Generator gen(*f.model, {});
    auto o = gen.generate({q}, GenerationOptions{}, {}, nullptr, nullptr, &sc.channel)[0];
    CHECK(sc.events.size() == 1);
    CHECK(o.turns == 2);
    if (o.finish == FinishReason::Stop) CHECK(o.tokens.back() == stop);
    const TurnEvent& e = sc.events.at(0);
    CHECK(e.turn == 0 && e.stop_string == -1 && e.tokens.back() == stop);
    CHECK(e.completion_tokens == static_cast<int>(e.tokens.size()));
    CHECK(e.remaining_tokens == 100 - e.completion_tokens);
    CHECK(e.max_append_tokens == 100 - 1 - e.completion_tokens);
  }
  // An end answer finishes with the turn's stop.
  {
    Script sc;
    sc.answers_per_sequence = 0;
    GenerationRequest q = greedy(prompt, 100, {stop});
    q.interactive = true;
    Generator gen(*f.model, {});
    GenerationStats st;
    auto o = gen.generate({q}, GenerationOptions{}, {}, nullptr, &st, &sc.channel)[0];
    CHECK(sc.events.size() == 1 && o.turns == 1 && o.finish == FinishReason::Stop);
    CHECK(o.tokens == sc.events[0].tokens);
    CHECK(st.appended_tokens == 0);
    CHECK(st.forwarded_tokens == 10 + static_cast<int64_t>(o.tokens.size()) - 1);
  }
  // An answer longer than max_append_tokens is cut to the remaining budget and the sequence finishes
  // (Length) without generating again; one of exactly max_append_tokens lets the model generate one token.
  for (int extra : {0, 1, 7}) {
    TurnChannel ch;
    std::vector<TurnEvent> events;
    ch.set_sink([&](TurnEvent&& e) {
      events.push_back(e);
      std::vector<int32_t> a = appended(0, 0, e.max_append_tokens + extra);
      ch.provide(e.request, e.sample, &a);
    });
    GenerationRequest q = greedy(prompt, 30, {stop});
    q.interactive = true;
    Generator gen(*f.model, {});
    GenerationStats st;
    auto o = gen.generate({q}, GenerationOptions{}, {}, nullptr, &st, &ch)[0];
    CHECK(events.size() == 1);
    if (extra > 0) CHECK(o.finish == FinishReason::Length);  // (extra 0: the one generated token may be a stop)
    CHECK(o.tokens.size() == 30u);  // the whole budget: generated + appended
    CHECK(o.token_mask.back() == (extra == 0 ? 1 : 0));
    CHECK(o.turns == (extra == 0 ? 2 : 1));
    int64_t app = sum_appended({o});
    CHECK(app == (extra == 0 ? events[0].max_append_tokens : events[0].remaining_tokens));
    CHECK(st.appended_tokens == (extra == 0 ? app : 0));  // cut answers are not prefilled
  }
  // A stop at the last budget token finishes (Stop) without an event.
  {
    Script sc;
    Generator plain(*f.model, {});
    auto free_run = plain.generate({greedy(prompt, 3, {})}, GenerationOptions{})[0];
    const int first = static_cast<int>(std::find(free_run.tokens.begin(), free_run.tokens.end(), stop) - free_run.tokens.begin());
    GenerationRequest q = greedy(prompt, first + 1, {stop});
    q.interactive = true;
    Generator gen(*f.model, {});
    auto o = gen.generate({q}, GenerationOptions{}, {}, nullptr, nullptr, &sc.channel)[0];
    CHECK(static_cast<int>(o.tokens.size()) == first + 1 && o.tokens.back() == stop && o.finish == FinishReason::Stop);
    CHECK(sc.events.empty());
  }
  // The context bounds appends too (max_position_embeddings 256).
  {
    TurnChannel ch;
    std::vector<TurnEvent> events;
    ch.set_sink([&](TurnEvent&& e) {
      events.push_back(e);
      ch.provide(e.request, e.sample, nullptr);
    });
    std::vector<int32_t> long_prompt = prompt_of(250, 6, f.cfg.vocab_size);
    GenerationRequest q = greedy(long_prompt, 100, {});
    for (int32_t t = 0; t < f.cfg.vocab_size; ++t) q.stop_token_ids.push_back(t);  // every token stops
    q.interactive = true;
    Generator gen(*f.model, {});
    gen.generate({q}, GenerationOptions{}, {}, nullptr, nullptr, &ch);
    CHECK(events.size() == 1);
    if (!events.empty()) CHECK(events[0].max_append_tokens == 256 - 250 - 1);
  }
}

// Stop strings end turns too; each turn matches on its own generated bytes only.
TEST(turns_stop_strings) {
  Fixture f;
  std::vector<std::string> bytes;
  for (int i = 0; i < f.cfg.vocab_size; ++i) bytes.push_back(std::string(1, static_cast<char>('a' + i % 26)) + static_cast<char>('A' + i / 26));
  const std::vector<int32_t> prompt = prompt_of(9, 7, f.cfg.vocab_size);
  Generator plain(*f.model, bytes);
  auto free_run = plain.generate({greedy(prompt, 8, {})}, GenerationOptions{})[0];
  // a stop string spanning tokens 2 and 3 of the free run
  std::string stop_s = bytes[free_run.tokens[2]].substr(1) + bytes[free_run.tokens[3]].substr(0, 1);
  TurnChannel ch;
  std::vector<TurnEvent> events;
  ch.set_sink([&](TurnEvent&& e) {
    events.push_back(e);
    if (events.size() < 3) {
      std::vector<int32_t> a = e.tokens;  // append the turn's own tokens: the stop string is in them again
      ch.provide(e.request, e.sample, &a);
    } else {
      ch.provide(e.request, e.sample, nullptr);
    }
  });
  GenerationRequest q = greedy(prompt, 60, {});
  q.stop_strings = {"zzz-never", stop_s};
  q.interactive = true;
  Generator gen(*f.model, bytes);
  auto o = gen.generate({q}, GenerationOptions{}, {}, nullptr, nullptr, &ch)[0];
  CHECK(!events.empty());
  if (events.empty()) return;
  std::string all;
  for (int32_t t : free_run.tokens) all += bytes[t];
  const size_t at = all.find(stop_s);  // <= 3: its first match in the free run
  CHECK(events[0].stop_string == 1);
  CHECK(events[0].tokens.size() == (at + stop_s.size() + 1) / 2);  // two bytes per token
  CHECK(events[0].stop_string_offset == static_cast<int64_t>(at));
  CHECK(std::equal(events[0].tokens.begin(), events[0].tokens.end(), free_run.tokens.begin()));
  for (const TurnEvent& e : events) {
    std::string turn_bytes;
    for (int32_t t : e.tokens) turn_bytes += bytes[t];
    CHECK(e.stop_string == 1 && turn_bytes.find(stop_s) == static_cast<size_t>(e.stop_string_offset));
    CHECK(turn_bytes.find(stop_s) + stop_s.size() > turn_bytes.size() - 2);  // the match ends in the last token
  }
  if (o.finish == FinishReason::Stop) CHECK(o.stop_string == 1);
}

// (e) Cancel while every sequence waits for an answer: generate() throws kCancelled; later answers are errors.
TEST(turns_cancel_while_waiting) {
  Fixture f;
  const std::vector<int32_t> prompt = prompt_of(8, 8, f.cfg.vocab_size);
  const int32_t stop = early_token(*f.model, prompt, 1);
  TurnChannel ch;
  std::atomic<int> events{0};
  ch.set_sink([&](TurnEvent&&) { ++events; });  // never answers
  GenerationRequest q = greedy(prompt, 40, {stop});
  q.interactive = true;
  q.n = 3;
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    while (events.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancel = true;
  });
  Generator gen(*f.model, {});
  GenerationStats st;
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_CODE(gen.generate({q}, GenerationOptions{}, {}, &cancel, &st, &ch), ErrorCode::kCancelled);
  canceller.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(secs < 5);
  CHECK(events.load() == 3);
  CHECK(st.wait_seconds >= 0.04);  // blocked on the channel from the third event until the cancel
  std::vector<int32_t> a{1, 2};
  CHECK_THROWS_CODE(ch.provide(0, 0, &a), ErrorCode::kInvalidArgument);
  // the channel serves the next call
  int ended = 0;
  ch.set_sink([&](TurnEvent&& e) {
    ch.provide(e.request, e.sample, nullptr);
    ++ended;
  });
  auto outs = gen.generate({q}, GenerationOptions{}, {}, nullptr, nullptr, &ch);
  CHECK(outs.size() == 3 && ended == 3);
}

// Bad answers are rejected (kInvalidArgument) and change nothing; a request without a channel is an error.
TEST(turns_bad_answers) {
  Fixture f;
  const std::vector<int32_t> prompt = prompt_of(8, 9, f.cfg.vocab_size);
  const int32_t stop = early_token(*f.model, prompt, 1);
  TurnChannel ch;
  int rejected = 0;
  ch.set_sink([&](TurnEvent&& e) {
    std::vector<int32_t> bad_tok{1, f.cfg.vocab_size};
    std::vector<int32_t> neg{-1};
    std::vector<int32_t> ok{3, 4};
    for (auto fn : std::vector<std::function<void()>>{
             [&] { ch.provide(e.request, e.sample, &bad_tok); },
             [&] { ch.provide(e.request, e.sample, &neg); },
             [&] { ch.provide(e.request + 5, e.sample, &ok); },
             [&] { ch.provide(-1, 0, &ok); },
             [&] { ch.provide(e.request, 9, &ok); },
             [&] { ch.provide(1, 0, &ok); },  // request 1 is not interactive
         }) {
      try {
        fn();
      } catch (const Error& err) {
        rejected += err.code() == ErrorCode::kInvalidArgument;
      }
    }
    ch.provide(e.request, e.sample, e.turn == 0 ? &ok : nullptr);
    try {
      ch.provide(e.request, e.sample, &ok);  // a second answer
    } catch (const Error& err) {
      rejected += err.code() == ErrorCode::kInvalidArgument;
    }
  });
  GenerationRequest q = greedy(prompt, 40, {stop});
  q.interactive = true;
  q.max_turns = 2;
  GenerationRequest plain = greedy(prompt, 10, {});
  Generator gen(*f.model, {});
  auto outs = gen.generate({q, plain}, GenerationOptions{}, {}, nullptr, nullptr, &ch);
  CHECK(rejected == 7);
  CHECK(outs[0].turns == 2 && outs[0].token_mask.size() == outs[0].tokens.size());
  CHECK(outs[1].token_mask.empty() && outs[1].turns == 1);
  // the plain request is unchanged by the interactive one next to it
  auto alone = gen.generate({plain}, GenerationOptions{});
  CHECK(alone[0].tokens == outs[1].tokens);
  for (size_t t = 0; t < alone[0].logprobs.size() && t < outs[1].logprobs.size(); ++t)
    CHECK_NEAR(alone[0].logprobs[t], outs[1].logprobs[t], 1e-5);
  // interactive without a channel
  CHECK_THROWS_CODE(gen.generate({q}, GenerationOptions{}), ErrorCode::kInvalidArgument);
  GenerationRequest neg_turns = q;
  neg_turns.max_turns = -1;
  CHECK_THROWS_CODE(gen.generate({neg_turns}, GenerationOptions{}, {}, nullptr, nullptr, &ch), ErrorCode::kInvalidArgument);
  // no run open
  std::vector<int32_t> ok{1};
  CHECK_THROWS_CODE(ch.provide(0, 0, &ok), ErrorCode::kInvalidArgument);
}

// KV blocks stay within the admission plan: a cache that holds exactly one request's worst case completes
// many interactive requests (continuous batching frees blocks of finished ones), as in the roomy cache.
TEST(turns_tight_kv_cache) {
  Fixture f;
  std::vector<GenerationRequest> reqs;
  for (int r = 0; r < 4; ++r) {
    GenerationRequest q;
    q.prompt = prompt_of(11 + r, 10 + r, f.cfg.vocab_size);
    q.n = 2;
    q.seed = 3 + r;
    q.max_new_tokens = 40;
    for (int32_t t = 1; t < f.cfg.vocab_size; t += 5) q.stop_token_ids.push_back(t);
    q.interactive = true;
    reqs.push_back(q);
  }
  Script a, b;
  a.len = b.len = 6;
  a.answers_per_sequence = b.answers_per_sequence = 3;
  Generator gen(*f.model, {});
  auto roomy = gen.generate(reqs, GenerationOptions{}, {}, nullptr, nullptr, &a.channel);
  GenerationOptions tight;
  tight.block_size = 4;
  tight.kv_cache_tokens = 4 * (14 / 4 + 2 * ((14 + 40 - 1 + 3) / 4 - 14 / 4));  // the largest request alone
  GenerationStats st;
  auto small = gen.generate(reqs, tight, {}, nullptr, &st, &b.channel);
  CHECK(roomy.size() == small.size());
  for (size_t i = 0; i < roomy.size() && i < small.size(); ++i) {
    CHECK(roomy[i].tokens == small[i].tokens);
    CHECK(roomy[i].token_mask == small[i].token_mask);
  }
}

// abandon(): the consumer of turn events is gone; waiting sequences, and later ones, end (Stop).
TEST(turns_abandoned_channel_ends_sequences) {
  Fixture f;
  const std::vector<int32_t> prompt = prompt_of(8, 11, f.cfg.vocab_size);
  const int32_t stop = early_token(*f.model, prompt, 1);
  TurnChannel ch;
  std::atomic<int> events{0};
  ch.set_sink([&](TurnEvent&&) { ++events; });  // never answers
  GenerationRequest q = greedy(prompt, 40, {stop});
  q.interactive = true;
  q.n = 2;
  std::thread gone([&] {
    while (events.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ch.abandon();
  });
  Generator gen(*f.model, {});
  auto outs = gen.generate({q}, GenerationOptions{}, {}, nullptr, nullptr, &ch);
  gone.join();
  CHECK(outs.size() == 2);
  for (const auto& o : outs) CHECK(o.finish == FinishReason::Stop && o.turns == 1 && o.tokens.back() == stop);
  // later runs on the abandoned channel end at their first stop, without waiting
  auto again = gen.generate({q}, GenerationOptions{}, {}, nullptr, nullptr, &ch);
  CHECK(again.size() == 2 && again[0].tokens == outs[0].tokens);
}
