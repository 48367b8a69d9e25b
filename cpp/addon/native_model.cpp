#include "native_model.h"

#include "engine_job.h"
#include "generator.h"
#include "js_convert.h"

namespace hayate::js {

namespace {

const char* finish_name(FinishReason r) { return r == FinishReason::Stop ? "stop" : "length"; }

Napi::Function optional_function(const Napi::Value& v, const char* what) {
  if (v.IsUndefined() || v.IsNull()) return Napi::Function();
  if (!v.IsFunction()) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", std::string(what) + " must be a function");
  return v.As<Napi::Function>();
}

// ---- loadModel ---------------------------------------------------------------------------------
class LoadJob : public EngineJob<NoProgress> {
 public:
  LoadJob(Napi::Env env, std::string dir, BackendOptions opts)
      : EngineJob(env, Napi::Function()), dir_(std::move(dir)), opts_(std::move(opts)) {}

 protected:
  void Run(const ExecutionProgress&) override {
    engine_ = std::make_shared<Engine>();
    engine_->options = opts_;
    engine_->backend = make_backend(opts_);
    engine_->model = Model::load(*engine_->backend, dir_);
  }
  Napi::Value Result(Napi::Env env) override { return NativeModel::Wrap(env, engine_); }

 private:
  std::string dir_;
  BackendOptions opts_;
  std::shared_ptr<Engine> engine_;
};

// ---- shareModel --------------------------------------------------------------------------------
// A second engine over the base engine's weights (Model::share): its own backend (CPU: its own thread
// pool; CUDA: the same device, its own stream), no adapters. Runs while no job holds the base engine.
class ShareJob : public EngineJob<NoProgress> {
 public:
  ShareJob(Napi::Env env, std::shared_ptr<Engine> base, BackendOptions opts)
      : EngineJob(env, Napi::Function()), base_(std::move(base)), opts_(std::move(opts)) {}

 protected:
  void Run(const ExecutionProgress&) override {
    base_->run_locked([&] {
      auto e = std::make_shared<Engine>();
      e->options = opts_;
      e->weights_backend = base_->weights_owner();
      e->backend = make_backend(opts_);
      e->model = Model::share(*base_->model, *e->backend);
      engine_ = std::move(e);
    });
  }
  Napi::Value Result(Napi::Env env) override { return NativeModel::Wrap(env, engine_); }

 private:
  std::shared_ptr<Engine> base_;
  BackendOptions opts_;
  std::shared_ptr<Engine> engine_;
};

// ---- generate ----------------------------------------------------------------------------------
// Turn events of interactive requests (generator.h, TurnChannel) reach JS through a thread-safe function:
// onTurn({request, sample, turn, tokens, logprobs, stopString, stopStringOffset, completionTokens,
// remainingTokens, maxAppendTokens, provide}) on the JS thread, while the job keeps decoding other sequences.
// provide(tokens | null), callable once, from any later tick, answers that turn: it only queues the answer in
// the channel (no engine lock). A callback that throws ends that sequence; an event that cannot be delivered
// (the environment is shutting down) ends it too. A turn nobody answers keeps the job waiting until cancelled.
Napi::Value turn_event_to_js(Napi::Env env, const TurnEvent& e, const std::shared_ptr<TurnChannel>& channel) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("request", e.request);
  o.Set("sample", e.sample);
  o.Set("turn", e.turn);
  o.Set("tokens", to_int32_array(env, e.tokens));
  o.Set("logprobs", to_float32_array(env, e.logprobs));
  o.Set("stopString", e.stop_string);
  o.Set("stopStringOffset", static_cast<double>(e.stop_string_offset));
  o.Set("completionTokens", e.completion_tokens);
  o.Set("remainingTokens", e.remaining_tokens);
  o.Set("maxAppendTokens", e.max_append_tokens);
  const int r = e.request, s = e.sample;
  o.Set("provide", Napi::Function::New(
                       env,
                       [channel, r, s](const Napi::CallbackInfo& info) -> Napi::Value {
                         Napi::Env env = info.Env();
                         Napi::Value v = info.Length() > 0 ? info[0] : env.Undefined();
                         if (v.IsUndefined() || v.IsNull()) {
                           guarded(env, [&] { channel->provide(r, s, nullptr); });
                         } else {
                           std::vector<int32_t> tokens = get_int32_list(v, "provide: tokens");
                           guarded(env, [&] { channel->provide(r, s, &tokens); });
                         }
                         return env.Undefined();
                       },
                       "provide"));
  return o;
}

class GenerateJob : public EngineJob<GenerationProgress> {
 public:
  GenerateJob(Napi::Env env, Napi::Function on_progress, std::shared_ptr<Engine> engine,
              std::vector<GenerationRequest> requests, GenerationOptions options,
              std::shared_ptr<std::atomic<bool>> cancel, bool lora, Napi::Function on_turn = Napi::Function())
      : EngineJob(env, on_progress), engine_(std::move(engine)), requests_(std::move(requests)),
        options_(options), cancel_(std::move(cancel)), lora_(lora) {
    if (!on_turn.IsEmpty()) {
      turns_ = std::make_shared<TurnChannel>();
      std::shared_ptr<TurnChannel> channel = turns_;
      // The finalizer runs once the job has released the function and every queued event was delivered, or
      // when the environment shuts down: then no answer can come any more.
      turn_fn_ = Napi::ThreadSafeFunction::New(env, on_turn, "hayate-turn", 0, 1, [channel](Napi::Env) { channel->abandon(); });
    }
  }

 protected:
  void Run(const ExecutionProgress& progress) override {
    struct Release {  // the job's one thread lets go of the turn function however Run ends
      GenerateJob* job;
      ~Release() {
        if (job->turns_) job->turn_fn_.Release();
      }
    } release{this};
    if (turns_) {
      turns_->set_sink([this](TurnEvent&& e) {  // on this thread, during generate (no reference cycle)
        std::shared_ptr<TurnChannel> channel = turns_;
        const int r = e.request, s = e.sample;
        auto* data = new TurnEvent(std::move(e));
        napi_status st = turn_fn_.NonBlockingCall(data, [channel](Napi::Env env, Napi::Function cb, TurnEvent* ev) {
          std::unique_ptr<TurnEvent> owned(ev);
          try {
            Napi::HandleScope scope(env);
            cb.Call({turn_event_to_js(env, *owned, channel)});
          } catch (...) {  // a throwing callback ends its sequence (unless it answered first)
            try {
              channel->provide(owned->request, owned->sample, nullptr);
            } catch (...) {
            }
          }
        });
        if (st != napi_ok) {  // not delivered: nobody will answer
          delete data;
          try {
            channel->provide(r, s, nullptr);
          } catch (...) {
          }
        }
      });
    }
    engine_->run_locked([&] {
      LoraSwitch lora(*engine_->model, lora_);
      Generator gen(*engine_->model, engine_->token_bytes);
      outputs_ = gen.generate(
          requests_, options_, [&](const GenerationProgress& p) { progress.Send(&p, 1); }, cancel_.get(), &stats_,
          turns_.get());
    });
  }
  Napi::Value ProgressToJs(Napi::Env env, const GenerationProgress& p) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("generatedTokens", static_cast<double>(p.generated_tokens));
    o.Set("finishedSequences", p.finished_sequences);
    o.Set("totalSequences", p.total_sequences);
    o.Set("runningSequences", p.running_sequences);
    o.Set("waitingSequences", p.waiting_sequences);
    return o;
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Array outs = Napi::Array::New(env, outputs_.size());
    for (size_t i = 0; i < outputs_.size(); ++i) {
      const GenerationOutput& g = outputs_[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("request", g.request);
      o.Set("sample", g.sample);
      o.Set("tokens", to_int32_array(env, g.tokens));
      o.Set("logprobs", to_float32_array(env, g.logprobs));
      o.Set("finishReason", finish_name(g.finish));
      o.Set("stopString", g.stop_string);
      o.Set("stopStringOffset", static_cast<double>(g.stop_string_offset));
      if (requests_[g.request].interactive) {
        Napi::Uint8Array mask = Napi::Uint8Array::New(env, g.token_mask.size());
        std::copy(g.token_mask.begin(), g.token_mask.end(), mask.Data());
        o.Set("tokenMask", mask);
        o.Set("turns", g.turns);
      }
      outs.Set(i, o);
    }
    Napi::Object st = Napi::Object::New(env);
    st.Set("promptTokens", static_cast<double>(stats_.prompt_tokens));
    st.Set("generatedTokens", static_cast<double>(stats_.generated_tokens));
    st.Set("steps", stats_.steps);
    st.Set("prefillSeconds", stats_.prefill_seconds);
    st.Set("decodeSeconds", stats_.decode_seconds);
    st.Set("decodeStepTokens", static_cast<double>(stats_.decode_step_tokens));
    st.Set("kvCacheBlocks", static_cast<double>(stats_.kv_cache_blocks));
    st.Set("appendedTokens", static_cast<double>(stats_.appended_tokens));
    st.Set("forwardedTokens", static_cast<double>(stats_.forwarded_tokens));
    st.Set("turnEvents", stats_.turn_events);
    st.Set("waitSeconds", stats_.wait_seconds);
    Napi::Object result = Napi::Object::New(env);
    result.Set("outputs", outs);
    result.Set("stats", st);
    return result;
  }

 private:
  std::shared_ptr<Engine> engine_;
  std::vector<GenerationRequest> requests_;
  GenerationOptions options_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::vector<GenerationOutput> outputs_;
  GenerationStats stats_;
  bool lora_;
  std::shared_ptr<TurnChannel> turns_;  // interactive requests only
  Napi::ThreadSafeFunction turn_fn_;
};

// ---- logprobs / logits -------------------------------------------------------------------------
class LogprobsJob : public EngineJob<NoProgress> {
 public:
  LogprobsJob(Napi::Env env, std::shared_ptr<Engine> engine, std::vector<std::vector<int32_t>> seqs, float temperature,
              bool full_logits, bool lora)
      : EngineJob(env, Napi::Function()), engine_(std::move(engine)), seqs_(std::move(seqs)),
        temperature_(temperature), full_logits_(full_logits), lora_(lora) {}

 protected:
  void Run(const ExecutionProgress&) override {
    engine_->run_locked([&] {
      LoraSwitch lora(*engine_->model, lora_);
      if (full_logits_) {
        result_.push_back(engine_->model->sequence_logits(seqs_.at(0)));
      } else {
        result_ = engine_->model->sequence_logprobs(seqs_, temperature_);
      }
    });
  }
  Napi::Value Result(Napi::Env env) override {
    if (full_logits_) return to_float32_array(env, result_[0]);
    Napi::Array out = Napi::Array::New(env, result_.size());
    for (size_t i = 0; i < result_.size(); ++i) out.Set(i, to_float32_array(env, result_[i]));
    return out;
  }

 private:
  std::shared_ptr<Engine> engine_;
  std::vector<std::vector<int32_t>> seqs_;
  float temperature_;
  bool full_logits_;
  bool lora_;
  std::vector<std::vector<float>> result_;
};

GenerationRequest parse_request(const Napi::Value& v, size_t index) {
  std::string ctx = "requests[" + std::to_string(index) + "]";
  if (!v.IsObject()) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", ctx + " must be an object");
  Napi::Object o = v.As<Napi::Object>();
  GenerationRequest r;
  r.prompt = get_int32_list(o.Get("prompt"), ctx + ".prompt");
  r.n = static_cast<int>(opt_int(o, "n", 1, 1, 1 << 16, ctx));
  r.max_new_tokens = static_cast<int>(opt_int(o, "maxNewTokens", 256, 1, 1 << 24, ctx));
  r.seed = static_cast<uint64_t>(opt_int(o, "seed", 0, 0, (int64_t(1) << 53) - 1, ctx));
  r.sampling.temperature = static_cast<float>(opt_number(o, "temperature", 1.0, ctx));
  r.sampling.top_k = static_cast<int32_t>(opt_int(o, "topK", 0, 0, INT32_MAX, ctx));
  r.sampling.top_p = static_cast<float>(opt_number(o, "topP", 1.0, ctx));
  r.sampling.min_p = static_cast<float>(opt_number(o, "minP", 0.0, ctx));
  if (r.sampling.temperature < 0) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", ctx + ".temperature must be >= 0");
  if (!(r.sampling.top_p > 0 && r.sampling.top_p <= 1)) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", ctx + ".topP must be in (0, 1]");
  if (!(r.sampling.min_p >= 0 && r.sampling.min_p <= 1)) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", ctx + ".minP must be in [0, 1]");
  Napi::Value stops = o.Get("stopTokenIds");
  if (!stops.IsUndefined() && !stops.IsNull()) r.stop_token_ids = get_int32_list(stops, ctx + ".stopTokenIds");
  Napi::Value strs = o.Get("stopStrings");
  if (!strs.IsUndefined() && !strs.IsNull()) {
    if (!strs.IsArray()) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", ctx + ".stopStrings must be an array of strings");
    Napi::Array a = strs.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      std::string s = get_string(a.Get(i), ctx + ".stopStrings[" + std::to_string(i) + "]");
      if (s.empty()) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", ctx + ".stopStrings must not contain empty strings");
      r.stop_strings.push_back(std::move(s));
    }
  }
  r.interactive = opt_bool(o, "interactive", false, ctx);
  r.max_turns = static_cast<int>(opt_int(o, "maxTurns", 0, 0, 1 << 24, ctx));
  return r;
}

}  // namespace

// ---- NativeModel -------------------------------------------------------------------------------
Napi::Function NativeModel::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeModel",
                                    {InstanceMethod("info", &NativeModel::Info),
                                     InstanceMethod("setTokenBytes", &NativeModel::SetTokenBytes),
                                     InstanceMethod("generate", &NativeModel::Generate),
                                     InstanceMethod("logprobs", &NativeModel::Logprobs),
                                     InstanceMethod("logits", &NativeModel::Logits),
                                     InstanceMethod("dispose", &NativeModel::Dispose),
                                     InstanceMethod("attachLora", &NativeModel::AttachLora),
                                     InstanceMethod("detachLora", &NativeModel::DetachLora),
                                     InstanceMethod("loraInfo", &NativeModel::LoraInfo),
                                     InstanceMethod("getLoraTensors", &NativeModel::GetLoraTensors),
                                     InstanceMethod("setLoraTensors", &NativeModel::SetLoraTensors),
                                     InstanceMethod("saveMerged", &NativeModel::SaveMerged)});
  env.GetInstanceData<AddonData>()->model = Napi::Persistent(ctor);
  return ctor;
}

NativeModel::NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {}

Napi::Object NativeModel::Wrap(Napi::Env env, std::shared_ptr<Engine> engine) {
  Napi::Object obj = env.GetInstanceData<AddonData>()->model.New({});
  Unwrap(obj)->engine_ = std::move(engine);
  return obj;
}

std::shared_ptr<Engine> NativeModel::engine(Napi::Env env) const {
  if (!engine_) throw_error(env, "ERR_DISPOSED", "model has been disposed");
  return engine_;
}

std::shared_ptr<Engine> engine_of(const Napi::Value& model) {
  Napi::Env env = model.Env();
  if (!model.IsObject() || !model.As<Napi::Object>().InstanceOf(env.GetInstanceData<AddonData>()->model.Value()))
    throw_error(env, "ERR_INVALID_ARGUMENT", "expected a model handle (NativeModel)");
  return Napi::ObjectWrap<NativeModel>::Unwrap(model.As<Napi::Object>())->engine(env);
}

Napi::Value NativeModel::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine(env);
  const ModelConfig& c = e->model->config();
  Napi::Object o = Napi::Object::New(env);
  o.Set("architecture", c.architecture);
  o.Set("vocabSize", c.vocab_size);
  o.Set("hiddenSize", c.hidden_size);
  o.Set("intermediateSize", c.intermediate_size);
  o.Set("numLayers", c.num_layers);
  o.Set("numHeads", c.num_heads);
  o.Set("numKvHeads", c.num_kv_heads);
  o.Set("headDim", c.head_dim);
  o.Set("maxPositionEmbeddings", c.max_position_embeddings);
  o.Set("tieWordEmbeddings", c.tie_word_embeddings);
  o.Set("eosTokenIds", to_int32_array(env, std::vector<int32_t>(c.eos_token_ids.begin(), c.eos_token_ids.end())));
  o.Set("parameters", static_cast<double>(e->model->parameter_count()));
  o.Set("backend", e->backend->name());
  o.Set("backendDescription", e->backend->description());
  o.Set("precision", e->backend->activation_dtype() == DType::F64 ? "f64" : "f32");
  o.Set("weightDtype", e->model->embed().dtype == DType::BF16 ? "bf16" : e->model->embed().dtype == DType::F64 ? "f64" : "f32");
  o.Set("weightBytes", static_cast<double>(e->model->weight_bytes()));
  o.Set("sharedWeights", e->weights_backend != nullptr);
  o.Set("bytesInUse", static_cast<double>(e->backend->bytes_in_use()));
  o.Set("peakBytes", static_cast<double>(e->backend->peak_bytes()));
  return o;
}

Napi::Value NativeModel::SetTokenBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine(env);
  if (!info[0].IsArray()) throw_error(env, "ERR_INVALID_ARGUMENT", "setTokenBytes expects an array of Uint8Array");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<std::string> bytes(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw_error(env, "ERR_INVALID_ARGUMENT", "setTokenBytes: element " + std::to_string(i) + " is not a Uint8Array");
    Napi::Uint8Array u = v.As<Napi::Uint8Array>();
    bytes[i].assign(reinterpret_cast<const char*>(u.Data()), u.ElementLength());
  }
  std::lock_guard<std::mutex> lock(e->mutex);
  e->token_bytes = std::move(bytes);
  return env.Undefined();
}

// generate(requests, options?, onProgress?, cancelToken?, onTurn?) -> Promise<{outputs, stats}>; onTurn is
// required when a request is interactive (see turn_event_to_js).
Napi::Value NativeModel::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine(env);
  if (!info[0].IsArray()) throw_error(env, "ERR_INVALID_ARGUMENT", "generate expects an array of requests");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<GenerationRequest> requests;
  for (uint32_t i = 0; i < arr.Length(); ++i) requests.push_back(parse_request(arr.Get(i), i));
  GenerationOptions opts;
  bool lora = true;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    lora = opt_bool(o, "lora", true, "options");
    opts.max_batch = static_cast<int>(opt_int(o, "maxBatch", opts.max_batch, 1, 1 << 20, "options"));
    opts.prefill_chunk = static_cast<int>(opt_int(o, "prefillChunk", opts.prefill_chunk, 1, 1 << 24, "options"));
    opts.kv_cache_tokens = opt_int(o, "kvCacheTokens", 0, 0, int64_t(1) << 40, "options");
    opts.kv_cache_bytes = opt_int(o, "kvCacheBytes", opts.kv_cache_bytes, 1, int64_t(1) << 50, "options");
  }
  Napi::Function on_progress = optional_function(info.Length() > 2 ? info[2] : env.Undefined(), "onProgress");
  auto cancel = cancel_flag(info.Length() > 3 ? info[3] : env.Undefined());
  Napi::Function on_turn = optional_function(info.Length() > 4 ? info[4] : env.Undefined(), "onTurn");
  bool interactive = false;
  for (size_t i = 0; i < requests.size(); ++i)
    if (requests[i].interactive && on_turn.IsEmpty())
      throw_error(env, "ERR_INVALID_ARGUMENT", "requests[" + std::to_string(i) + "] is interactive: generate needs an onTurn callback");
    else
      interactive = interactive || requests[i].interactive;
  if (!interactive) on_turn = Napi::Function();  // no turn events: no thread-safe function
  auto* job = new GenerateJob(env, on_progress, e, std::move(requests), opts, cancel, lora, on_turn);
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

Napi::Value NativeModel::Logprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine(env);
  if (!info[0].IsArray()) throw_error(env, "ERR_INVALID_ARGUMENT", "logprobs expects an array of token lists");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<std::vector<int32_t>> seqs;
  for (uint32_t i = 0; i < arr.Length(); ++i) seqs.push_back(get_int32_list(arr.Get(i), "sequences[" + std::to_string(i) + "]"));
  double temperature = 1.0;
  bool lora = true;
  if (info.Length() > 1 && info[1].IsObject()) {
    temperature = opt_number(info[1].As<Napi::Object>(), "temperature", 1.0, "options");
    lora = opt_bool(info[1].As<Napi::Object>(), "lora", true, "options");
  }
  if (!(temperature > 0)) throw_error(env, "ERR_INVALID_ARGUMENT", "options.temperature must be > 0");
  auto* job = new LogprobsJob(env, e, std::move(seqs), static_cast<float>(temperature), false, lora);
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

Napi::Value NativeModel::Logits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine(env);
  std::vector<std::vector<int32_t>> seqs{get_int32_list(info[0], "tokens")};
  bool lora = true;
  if (info.Length() > 1 && info[1].IsObject()) lora = opt_bool(info[1].As<Napi::Object>(), "lora", true, "options");
  auto* job = new LogprobsJob(env, e, std::move(seqs), 1.0f, true, lora);
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

Napi::Value NativeModel::Dispose(const Napi::CallbackInfo& info) {
  engine_.reset();  // running jobs hold their own reference and finish first
  return info.Env().Undefined();
}

// ---- CancelToken -------------------------------------------------------------------------------
std::shared_ptr<std::atomic<bool>> cancel_flag(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  if (!v.IsObject()) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", "cancel token must be a CancelToken");
  return Napi::ObjectWrap<CancelToken>::Unwrap(v.As<Napi::Object>())->flag();
}

Napi::Function CancelToken::Init(Napi::Env env) {
  return DefineClass(env, "CancelToken",
                     {InstanceMethod("cancel", &CancelToken::Cancel), InstanceMethod("cancelled", &CancelToken::Cancelled)});
}

CancelToken::CancelToken(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelToken>(info) {}

Napi::Value CancelToken::Cancel(const Napi::CallbackInfo& info) {
  flag_->store(true);
  return info.Env().Undefined();
}

Napi::Value CancelToken::Cancelled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), flag_->load()); }

// ---- loadModel(dir, {backend, threads, device, gemm, precision, weights}) -----------------------
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = get_string(info[0], "dir");
  BackendOptions opts;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    opts.kind = opt_string(o, "backend", "cpu", "options");
    opts.threads = static_cast<int>(opt_int(o, "threads", 0, 0, 4096, "options"));
    opts.device = static_cast<int>(opt_int(o, "device", 0, 0, 1024, "options"));
    opts.gemm = opt_string(o, "gemm", "auto", "options");
    opts.precision = opt_string(o, "precision", "f32", "options");
    opts.weights = opt_string(o, "weights", "auto", "options");
  }
  auto* job = new LoadJob(env, std::move(dir), std::move(opts));
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

// ---- shareModel(model, {threads}) ---------------------------------------------------------------
// A new model handle over the same weights (no copy), on a backend of the same kind, device, GEMM and
// precision as the model's; `threads` (CPU) defaults to the model's.
Napi::Value ShareModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Engine> base = engine_of(info[0]);
  BackendOptions opts = base->options;
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
    if (!info[1].IsObject()) throw_error(env, "ERR_INVALID_ARGUMENT", "shareModel: options must be an object");
    Napi::Object o = info[1].As<Napi::Object>();
    opts.threads = static_cast<int>(opt_int(o, "threads", opts.threads, 0, 4096, "options"));
  }
  auto* job = new ShareJob(env, std::move(base), std::move(opts));
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

}  // namespace hayate::js
