#include "native_trainer.h"

#include <array>
#include <limits>

#include "collectives.h"
#include "fn_job.h"
#include "js_convert.h"

namespace hayate::js {

namespace {

// The engine has no defaults for training hyperparameters: a loss or optimizer field missing from JS is a
// clear error naming it (the TS library fills every one from ts/training-defaults.ts).
double required_number(const Napi::Object& o, const char* key, const std::string& ctx) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) throw_error(o.Env(), "ERR_INVALID_ARGUMENT", ctx + "." + key + " is required (the engine has no default for it)");
  return get_number(v, ctx + "." + key);
}

// Every AdamW field, each one required.
OptimizerOptions parse_optimizer(const Napi::Value& v) {
  if (!v.IsObject()) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", "optimizer options are required: {lr, beta1, beta2, eps, weightDecay, maxGradNorm}");
  Napi::Object o = v.As<Napi::Object>();
  const std::string ctx = "optimizer";
  OptimizerOptions opt;
  opt.lr = required_number(o, "lr", ctx);
  opt.beta1 = required_number(o, "beta1", ctx);
  opt.beta2 = required_number(o, "beta2", ctx);
  opt.eps = required_number(o, "eps", ctx);
  opt.weight_decay = required_number(o, "weightDecay", ctx);
  opt.max_grad_norm = required_number(o, "maxGradNorm", ctx);
  return opt;
}

// setOptimizer's partial update: the fields given replace those of `opt`.
OptimizerOptions parse_optimizer_update(const Napi::Object& o, OptimizerOptions opt) {
  const std::string ctx = "optimizer";
  opt.lr = opt_number(o, "lr", opt.lr, ctx);
  opt.beta1 = opt_number(o, "beta1", opt.beta1, ctx);
  opt.beta2 = opt_number(o, "beta2", opt.beta2, ctx);
  opt.eps = opt_number(o, "eps", opt.eps, ctx);
  opt.weight_decay = opt_number(o, "weightDecay", opt.weight_decay, ctx);
  opt.max_grad_norm = opt_number(o, "maxGradNorm", opt.max_grad_norm, ctx);
  return opt;
}

Napi::Object optimizer_to_js(Napi::Env env, const OptimizerOptions& o) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("lr", o.lr);
  r.Set("beta1", o.beta1);
  r.Set("beta2", o.beta2);
  r.Set("eps", o.eps);
  r.Set("weightDecay", o.weight_decay);
  r.Set("maxGradNorm", o.max_grad_norm);
  return r;
}

PackedBatch parse_packed(const Napi::Object& o) {
  PackedBatch b;
  b.tokens = get_int32_list(o.Get("tokens"), "batch.tokens");
  b.seq_lens = get_int32_list(o.Get("seqLens"), "batch.seqLens");
  b.prompt_lens = get_int32_list(o.Get("promptLens"), "batch.promptLens");
  return b;
}

TrainBatch parse_batch(const Napi::Value& v) {
  if (!v.IsObject()) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", "batch must be an object");
  Napi::Object o = v.As<Napi::Object>();
  TrainBatch b;
  b.packed = parse_packed(o);
  b.advantages = opt_float_list(o, "advantages", "batch");
  b.old_logprobs = opt_float_list(o, "oldLogprobs", "batch");
  b.ref_logprobs = opt_float_list(o, "refLogprobs", "batch");
  b.sampling_logprobs = opt_float_list(o, "samplingLogprobs", "batch");
  for (double m : opt_float_list(o, "completionMask", "batch")) {
    if (m != 0 && m != 1) throw_error(o.Env(), "ERR_INVALID_ARGUMENT", "batch.completionMask: every value must be 0 or 1");
    b.completion_mask.push_back(static_cast<uint8_t>(m));
  }
  return b;
}

// A required option naming one of the engine's choices (parse turns the name into the enum or throws).
template <typename Parse>
auto required_choice(const Napi::Object& o, const char* key, const std::string& ctx, Parse parse) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) throw_error(o.Env(), "ERR_INVALID_ARGUMENT", ctx + "." + key + " is required (the engine has no default for it)");
  const std::string name = get_string(v, ctx + "." + key);
  try {
    return parse(name);
  } catch (const Error& e) {
    throw_error(o.Env(), "ERR_INVALID_ARGUMENT", std::string(e.what()));
  }
}

// Every loss field, each one required (step totals and maxCompletionLength: 0 means this batch's;
// correctionMax may be Infinity: no upper bound).
LossOptions parse_loss(const Napi::Value& v) {
  if (!v.IsObject())
    throw_error(v.Env(), "ERR_INVALID_ARGUMENT",
                "loss options are required: {type, epsilonLow, epsilonHigh, beta, importanceSamplingLevel, klEstimator, clipRatioC, "
                "rolloutCorrection, correctionMin, correctionMax, topEntropyQuantile, sequencesInStep, tokensInStep, maxCompletionLength}");
  Napi::Object o = v.As<Napi::Object>();
  const std::string ctx = "loss";
  LossOptions l;
  l.type = required_choice(o, "type", ctx, parse_loss_type);
  l.epsilon_low = required_number(o, "epsilonLow", ctx);
  l.epsilon_high = required_number(o, "epsilonHigh", ctx);
  l.beta = required_number(o, "beta", ctx);
  l.importance_level = required_choice(o, "importanceSamplingLevel", ctx, parse_importance_level);
  l.kl_estimator = required_choice(o, "klEstimator", ctx, parse_kl_estimator);
  l.clip_ratio_c = required_number(o, "clipRatioC", ctx);
  l.rollout_correction = required_choice(o, "rolloutCorrection", ctx, parse_rollout_correction);
  l.correction_min = required_number(o, "correctionMin", ctx);
  Napi::Value cmax = o.Get("correctionMax");
  l.correction_max = cmax.IsNumber() && cmax.As<Napi::Number>().DoubleValue() == std::numeric_limits<double>::infinity()
                         ? std::numeric_limits<double>::infinity()
                         : required_number(o, "correctionMax", ctx);
  l.top_entropy_quantile = required_number(o, "topEntropyQuantile", ctx);
  l.sequences_in_step = required_number(o, "sequencesInStep", ctx);
  l.tokens_in_step = required_number(o, "tokensInStep", ctx);
  l.max_completion_length = required_number(o, "maxCompletionLength", ctx);
  try {
    validate_loss_options(l);  // a bad combination fails here, on the JS thread, before any work is queued
  } catch (const Error& e) {
    throw_error(v.Env(), "ERR_INVALID_ARGUMENT", std::string(e.what()));
  }
  return l;
}

// forwardBackward's forward-pass options: the temperature the log-probs are taken at (required) and
// whether to report the mean entropy.
struct GraphOptions {
  double temperature = kUnset;
  bool entropy = false;
};

GraphOptions parse_graph_options(const Napi::Value& v) {
  if (!v.IsObject()) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", "forwardBackward options are required: {temperature, entropy?}");
  Napi::Object o = v.As<Napi::Object>();
  GraphOptions g;
  g.temperature = required_number(o, "temperature", "options");
  g.entropy = opt_bool(o, "entropy", false, "options");
  return g;
}

}  // namespace

Napi::Function NativeTrainer::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeTrainer",
                                    {InstanceMethod("forwardBackward", &NativeTrainer::ForwardBackward),
                                     InstanceMethod("logprobs", &NativeTrainer::Logprobs),
                                     InstanceMethod("step", &NativeTrainer::Step),
                                     InstanceMethod("zeroGrad", &NativeTrainer::ZeroGrad),
                                     InstanceMethod("gradNorm", &NativeTrainer::GradNorm),
                                     InstanceMethod("allReduceGradients", &NativeTrainer::AllReduceGradients),
                                     InstanceMethod("getState", &NativeTrainer::GetState),
                                     InstanceMethod("setState", &NativeTrainer::SetState),
                                     InstanceMethod("setOptimizer", &NativeTrainer::SetOptimizer),
                                     InstanceMethod("info", &NativeTrainer::Info),
                                     InstanceMethod("dispose", &NativeTrainer::Dispose)});
  env.GetInstanceData<AddonData>()->trainer = Napi::Persistent(ctor);
  return ctor;
}

NativeTrainer::NativeTrainer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTrainer>(info) {}

NativeTrainer::~NativeTrainer() {
  if (!engine_ || !trainer_) return;
  // Free backend memory only while no job runs on the engine; otherwise the next job frees it.
  std::unique_lock<std::mutex> lock(engine_->mutex, std::try_to_lock);
  if (lock.owns_lock()) {
    trainer_.reset();
  } else {
    engine_->bury(std::move(trainer_));
  }
}

Napi::Object NativeTrainer::Wrap(Napi::Env env, std::shared_ptr<Engine> engine, std::shared_ptr<Trainer> trainer) {
  Napi::Object obj = env.GetInstanceData<AddonData>()->trainer.New({});
  NativeTrainer* t = Unwrap(obj);
  t->engine_ = std::move(engine);
  t->trainer_ = std::move(trainer);
  return obj;
}

std::shared_ptr<Trainer> NativeTrainer::trainer(Napi::Env env) const {
  if (!trainer_) throw_error(env, "ERR_DISPOSED", "trainer has been disposed");
  return trainer_;
}

// forwardBackward(batch, loss, {temperature, entropy?}, cancel?) -> Promise<stats>
Napi::Value NativeTrainer::ForwardBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto tr = trainer(env);
  auto batch = std::make_shared<TrainBatch>(parse_batch(info[0]));
  LossOptions loss = parse_loss(info[1]);
  const GraphOptions graph = parse_graph_options(info[2]);
  auto cancel = cancel_flag(info.Length() > 3 ? info[3] : env.Undefined());
  auto res = std::make_shared<ForwardBackwardResult>();
  return FnJob::start(
      env, engine_, [tr, batch, loss, graph, cancel, res] { *res = tr->forward_backward(*batch, loss, graph.temperature, graph.entropy, cancel.get()); },
      [res](Napi::Env env) -> Napi::Value {
        const LossResult& l = res->loss;
        Napi::Object o = Napi::Object::New(env);
        o.Set("loss", l.loss);
        o.Set("finite", res->finite);
        o.Set("tokens", static_cast<double>(res->tokens));
        o.Set("completionTokens", static_cast<double>(l.tokens));
        o.Set("sequences", l.sequences);
        o.Set("kl", l.kl_mean);
        o.Set("clipLow", l.clip_low);
        o.Set("clipHigh", l.clip_high);
        o.Set("clipRegion", l.clip_region);
        o.Set("clipLowMin", l.clip_low_min);
        o.Set("clipHighMax", l.clip_high_max);
        o.Set("clipUnits", static_cast<double>(l.clip_units));
        o.Set("dualClip", l.dual_clip);
        o.Set("cispoClip", l.cispo_clip);
        o.Set("ratioMean", l.ratio_mean);
        o.Set("nll", l.nll_mean);
        o.Set("entropy", res->entropy_mean);
        o.Set("entropyKept", l.entropy_kept);
        if (l.has_sampling) {
          o.Set("samplingLogpDiffMean", l.logp_diff_mean);
          o.Set("samplingLogpDiffMax", l.logp_diff_max);
        }
        if (l.is_units > 0) {
          o.Set("isRatioMin", l.is_min);
          o.Set("isRatioMean", l.is_mean);
          o.Set("isRatioMax", l.is_max);
          o.Set("isUnits", static_cast<double>(l.is_units));
        }
        o.Set("logprobs", to_float64_array(env, res->logprobs));
        o.Set("seconds", res->seconds);
        o.Set("referenceSeconds", res->reference_seconds);
        return o;
      });
}

// logprobs(batch, {lora, temperature, entropy}?, cancel?) -> Promise<{logprobs: Float64Array, entropy?}>
Napi::Value NativeTrainer::Logprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto tr = trainer(env);
  if (!info[0].IsObject()) throw_error(env, "ERR_INVALID_ARGUMENT", "batch must be an object");
  auto batch = std::make_shared<PackedBatch>(parse_packed(info[0].As<Napi::Object>()));
  bool lora = true, entropy = false;
  double temperature = 1.0;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    lora = opt_bool(o, "lora", true, "options");
    entropy = opt_bool(o, "entropy", false, "options");
    temperature = opt_number(o, "temperature", 1.0, "options");
  }
  auto cancel = cancel_flag(info.Length() > 2 ? info[2] : env.Undefined());
  struct Out {
    std::vector<double> lp, ent;
  };
  auto out = std::make_shared<Out>();
  return FnJob::start(
      env, engine_,
      [tr, batch, lora, entropy, temperature, cancel, out] {
        out->lp = tr->logprobs(*batch, lora, temperature, entropy ? &out->ent : nullptr, cancel.get());
      },
      [out, entropy](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("logprobs", to_float64_array(env, out->lp));
        if (entropy) o.Set("entropy", to_float64_array(env, out->ent));
        return o;
      });
}

// step({lr}?) -> Promise<{applied, step, gradNorm, gradScale, lr, skippedReason}>
Napi::Value NativeTrainer::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto tr = trainer(env);
  double lr = -1;
  if (info.Length() > 0 && info[0].IsObject()) {
    lr = opt_number(info[0].As<Napi::Object>(), "lr", -1, "options");
    if (info[0].As<Napi::Object>().Has("lr") && lr < 0) throw_error(env, "ERR_INVALID_ARGUMENT", "options.lr must be >= 0");
  }
  auto res = std::make_shared<StepResult>();
  return FnJob::start(
      env, engine_, [tr, lr, res] { *res = tr->step(lr); },
      [res](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("applied", res->applied);
        o.Set("step", static_cast<double>(res->step));
        o.Set("gradNorm", res->grad_norm);
        o.Set("gradScale", res->grad_scale);
        o.Set("lr", res->lr);
        if (!res->applied) o.Set("skippedReason", res->skipped_reason);
        return o;
      });
}

Napi::Value NativeTrainer::ZeroGrad(const Napi::CallbackInfo& info) {
  auto tr = trainer(info.Env());
  return FnJob::start(info.Env(), engine_, [tr] { tr->zero_grad(); }, nullptr);
}

Napi::Value NativeTrainer::GradNorm(const Napi::CallbackInfo& info) {
  auto tr = trainer(info.Env());
  auto norm = std::make_shared<double>(0);
  return FnJob::start(info.Env(), engine_, [tr, norm] { *norm = tr->grad_norm(); },
                      [norm](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *norm); });
}

// allReduceGradients() -> Promise<void>: sums the accumulated gradients over the ranks of the MPI job
// (the identity in a one-process world). Every rank must call it at the same point of its step.
Napi::Value NativeTrainer::AllReduceGradients(const Napi::CallbackInfo& info) {
  auto tr = trainer(info.Env());
  return FnJob::start(
      info.Env(), engine_, [tr] { tr->sum_gradients([](double* data, size_t n) { collectives::allreduce_sum(data, n); }); }, nullptr);
}

// getState() -> Promise<{step, skippedSteps, moments: [{layer, target, expAvgA, expAvgSqA, expAvgB, expAvgSqB}]}>
Napi::Value NativeTrainer::GetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto tr = trainer(env);
  struct State {
    int64_t step = 0, skipped = 0;
    std::vector<LoraModuleRef> refs;
    std::vector<std::array<std::vector<double>, 4>> m;
  };
  auto st = std::make_shared<State>();
  auto e = engine_;
  return FnJob::start(
      env, engine_,
      [tr, st, e] {
        LoraSet& l = tr->lora();
        st->step = tr->step_count();
        st->skipped = tr->skipped_steps();
        for (size_t i = 0; i < l.adapters().size(); ++i) {
          st->refs.push_back(l.adapters()[i].ref);
          Trainer::Moments& m = tr->moments()[i];
          std::array<std::vector<double>, 4> v;
          const Buffer* bufs[4] = {&m.m_a, &m.v_a, &m.m_b, &m.v_b};
          for (int k = 0; k < 4; ++k) {
            v[k].resize(static_cast<size_t>(bufs[k]->t().numel()));
            e->backend->download_f64(v[k].data(), *bufs[k]);
          }
          st->m.push_back(std::move(v));
        }
      },
      [st](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("step", static_cast<double>(st->step));
        o.Set("skippedSteps", static_cast<double>(st->skipped));
        Napi::Array arr = Napi::Array::New(env, st->refs.size());
        const char* names[4] = {"expAvgA", "expAvgSqA", "expAvgB", "expAvgSqB"};
        for (size_t i = 0; i < st->refs.size(); ++i) {
          Napi::Object m = Napi::Object::New(env);
          m.Set("layer", st->refs[i].layer);
          m.Set("target", lora_target_name(st->refs[i].target));
          for (int k = 0; k < 4; ++k) m.Set(names[k], to_float32_array(env, st->m[i][k]));
          arr.Set(i, m);
        }
        o.Set("moments", arr);
        return o;
      });
}

// setState({step, skippedSteps, moments}) -> Promise<void>; moments must cover every adapter with the right sizes.
Napi::Value NativeTrainer::SetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto tr = trainer(env);
  if (!info[0].IsObject()) throw_error(env, "ERR_INVALID_ARGUMENT", "setState expects a state object");
  Napi::Object o = info[0].As<Napi::Object>();
  struct Item {
    LoraModuleRef ref;
    std::array<std::vector<double>, 4> v;
  };
  auto items = std::make_shared<std::vector<Item>>();
  int64_t step = get_int(o.Get("step"), "state.step", 0, int64_t(1) << 50);
  int64_t skipped = opt_int(o, "skippedSteps", 0, 0, int64_t(1) << 50, "state");
  Napi::Value mv = o.Get("moments");
  if (!mv.IsArray()) throw_error(env, "ERR_INVALID_ARGUMENT", "state.moments must be an array");
  Napi::Array arr = mv.As<Napi::Array>();
  const char* names[4] = {"expAvgA", "expAvgSqA", "expAvgB", "expAvgSqB"};
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string ctx = "state.moments[" + std::to_string(i) + "]";
    if (!arr.Get(i).IsObject()) throw_error(env, "ERR_INVALID_ARGUMENT", ctx + " must be an object");
    Napi::Object m = arr.Get(i).As<Napi::Object>();
    Item it;
    it.ref.layer = static_cast<int>(get_int(m.Get("layer"), ctx + ".layer", 0, 1 << 20));
    try {
      it.ref.target = parse_lora_target(get_string(m.Get("target"), ctx + ".target"));
    } catch (const Error& e) {
      throw_error(env, "ERR_INVALID_ARGUMENT", ctx + ": " + e.what());
    }
    for (int k = 0; k < 4; ++k) it.v[k] = get_float_list(m.Get(names[k]), ctx + "." + names[k]);
    items->push_back(std::move(it));
  }
  auto e = engine_;
  return FnJob::start(
      env, engine_,
      [tr, items, step, skipped, e] {
        LoraSet& l = tr->lora();
        HAYATE_CHECK(items->size() == l.adapters().size(), ErrorCode::kBadTensor,
                     "optimizer state has moments for " + std::to_string(items->size()) + " adapters, the LoRA has " +
                         std::to_string(l.adapters().size()));
        std::vector<size_t> index;
        for (const Item& it : *items) {
          const LoraAdapter* a = l.find(it.ref.layer, it.ref.target);
          const std::string what = "layer " + std::to_string(it.ref.layer) + " " + lora_target_name(it.ref.target);
          HAYATE_CHECK(a != nullptr, ErrorCode::kBadTensor, "optimizer state for " + what + ", which has no adapter");
          const size_t i = static_cast<size_t>(a - l.adapters().data());
          const Trainer::Moments& m = tr->moments()[i];
          const Buffer* bufs[4] = {&m.m_a, &m.v_a, &m.m_b, &m.v_b};
          for (int k = 0; k < 4; ++k)
            HAYATE_CHECK(static_cast<int64_t>(it.v[k].size()) == bufs[k]->t().numel(), ErrorCode::kBadTensor,
                         "optimizer state for " + what + " has the wrong size");
          index.push_back(i);
        }
        for (size_t j = 0; j < items->size(); ++j) {
          Trainer::Moments& m = tr->moments()[index[j]];
          Buffer* bufs[4] = {&m.m_a, &m.v_a, &m.m_b, &m.v_b};
          for (int k = 0; k < 4; ++k) e->backend->upload(*bufs[k], (*items)[j].v[k].data(), DType::F64);
        }
        tr->set_step_count(step, skipped);
      },
      nullptr);
}

Napi::Value NativeTrainer::SetOptimizer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto tr = trainer(env);
  if (!info[0].IsObject()) throw_error(env, "ERR_INVALID_ARGUMENT", "setOptimizer expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  OptimizerOptions parsed = parse_optimizer_update(o, OptimizerOptions{});  // type-check now; merged on the worker
  struct Fields {
    bool lr, b1, b2, eps, wd, mgn;
  } f{o.Has("lr"), o.Has("beta1"), o.Has("beta2"), o.Has("eps"), o.Has("weightDecay"), o.Has("maxGradNorm")};
  return FnJob::start(env, engine_, [tr, parsed, f] {
    OptimizerOptions cur = tr->options().optimizer;
    if (f.lr) cur.lr = parsed.lr;
    if (f.b1) cur.beta1 = parsed.beta1;
    if (f.b2) cur.beta2 = parsed.beta2;
    if (f.eps) cur.eps = parsed.eps;
    if (f.wd) cur.weight_decay = parsed.weight_decay;
    if (f.mgn) cur.max_grad_norm = parsed.max_grad_norm;
    tr->set_optimizer_options(cur);
  }, nullptr);
}

// info() -> {step, skippedSteps, recompute, logitsChunk, optimizer} (counters as of the last finished job)
Napi::Value NativeTrainer::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto tr = trainer(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", static_cast<double>(tr->step_count()));
  o.Set("skippedSteps", static_cast<double>(tr->skipped_steps()));
  o.Set("recompute", tr->options().recompute);
  o.Set("logitsChunk", tr->options().logits_chunk);
  o.Set("optimizer", optimizer_to_js(env, tr->options().optimizer));
  return o;
}

Napi::Value NativeTrainer::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!trainer_) {
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  auto tr = std::move(trainer_);
  auto box = std::make_shared<std::shared_ptr<Trainer>>(std::move(tr));
  return FnJob::start(env, engine_, [box] { box->reset(); }, nullptr);
}

// createTrainer(model, {optimizer, recompute, logitsChunk}) -> Promise<NativeTrainer>; optimizer required
Napi::Value CreateTrainer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine_of(info[0]);
  TrainerOptions opts;
  if (!(info.Length() > 1 && info[1].IsObject())) throw_error(env, "ERR_INVALID_ARGUMENT", "createTrainer needs options: {optimizer, recompute, logitsChunk}");
  {
    Napi::Object o = info[1].As<Napi::Object>();
    opts.optimizer = parse_optimizer(o.Get("optimizer"));
    opts.recompute = opt_bool(o, "recompute", false, "options");
    opts.logits_chunk = static_cast<int>(opt_int(o, "logitsChunk", opts.logits_chunk, 1, 1 << 20, "options"));
  }
  auto created = std::make_shared<std::shared_ptr<Trainer>>();
  return FnJob::start(
      env, e, [e, opts, created] { *created = std::make_shared<Trainer>(*e->model, opts); },
      [e, created](Napi::Env env) -> Napi::Value { return NativeTrainer::Wrap(env, e, *created); });
}

}  // namespace hayate::js
