// NativeModel's LoRA methods: attach fresh adapters, read and write their tensors (for PEFT files, which
// ts/adapter.ts handles), detach, and write a merged full-weight safetensors file.
#include "fn_job.h"
#include "js_convert.h"
#include "lora_merge.h"
#include "native_model.h"

namespace hayate::js {

namespace {

LoraModuleRef parse_module(const Napi::Value& v, const std::string& ctx) {
  if (!v.IsObject()) throw_error(v.Env(), "ERR_INVALID_ARGUMENT", ctx + " must be an object {layer, target}");
  Napi::Object o = v.As<Napi::Object>();
  LoraModuleRef m;
  m.layer = static_cast<int>(get_int(o.Get("layer"), ctx + ".layer", 0, 1 << 20));
  std::string target = get_string(o.Get("target"), ctx + ".target");
  try {
    m.target = parse_lora_target(target);
  } catch (const Error& e) {
    throw_error(v.Env(), "ERR_INVALID_ARGUMENT", ctx + ": " + e.what());
  }
  return m;
}

Napi::Object module_to_js(Napi::Env env, const LoraAdapter& a) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("layer", a.ref.layer);
  o.Set("target", lora_target_name(a.ref.target));
  o.Set("in", static_cast<double>(a.in));
  o.Set("out", static_cast<double>(a.out));
  return o;
}

}  // namespace

// attachLora({rank, alpha, rslora?, seed?, modules: [{layer, target}]}) -> Promise<void>
Napi::Value NativeModel::AttachLora(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine(env);
  if (!info[0].IsObject()) throw_error(env, "ERR_INVALID_ARGUMENT", "attachLora expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  LoraConfig cfg;
  // rank is validated by the engine (rank <= 0 is a typed error, not a conversion failure)
  cfg.rank = static_cast<int>(get_int(o.Get("rank"), "lora.rank", INT32_MIN, INT32_MAX));
  cfg.alpha = get_number(o.Get("alpha"), "lora.alpha");
  cfg.rslora = opt_bool(o, "rslora", false, "lora");
  cfg.seed = static_cast<uint64_t>(opt_int(o, "seed", 0, 0, (int64_t(1) << 53) - 1, "lora"));
  Napi::Value mods = o.Get("modules");
  if (!mods.IsArray()) throw_error(env, "ERR_INVALID_ARGUMENT", "lora.modules must be an array of {layer, target}");
  Napi::Array arr = mods.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) cfg.modules.push_back(parse_module(arr.Get(i), "lora.modules[" + std::to_string(i) + "]"));
  return FnJob::start(env, e, [e, cfg] { e->model->attach_lora(cfg); }, nullptr);
}

Napi::Value NativeModel::DetachLora(const Napi::CallbackInfo& info) {
  auto e = engine(info.Env());
  return FnJob::start(info.Env(), e, [e] { e->model->detach_lora(); }, nullptr);
}

// loraInfo() -> null | {rank, alpha, rslora, scale, parameters, modules: [{layer, target, in, out}]}
Napi::Value NativeModel::LoraInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine(env);
  std::lock_guard<std::mutex> lock(e->mutex);
  const LoraSet* l = e->model->lora();
  if (!l) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", l->rank());
  o.Set("alpha", l->config().alpha);
  o.Set("rslora", l->config().rslora);
  o.Set("scale", static_cast<double>(l->scale()));
  o.Set("parameters", static_cast<double>(l->parameter_count()));
  Napi::Array mods = Napi::Array::New(env, l->adapters().size());
  for (size_t i = 0; i < l->adapters().size(); ++i) mods.Set(i, module_to_js(env, l->adapters()[i]));
  o.Set("modules", mods);
  return o;
}

// getLoraTensors() -> Promise<[{layer, target, in, out, a: Float32Array [r*in], b: Float32Array [out*r]}]>
Napi::Value NativeModel::GetLoraTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine(env);
  struct State {
    std::vector<const LoraAdapter*> refs;
    std::vector<std::vector<double>> a, b;
  };
  auto st = std::make_shared<State>();
  return FnJob::start(
      env, e,
      [e, st] {
        LoraSet* l = e->model->lora();
        HAYATE_CHECK(l != nullptr, ErrorCode::kInvalidArgument, "the model has no LoRA adapters");
        Backend& be = *e->backend;
        for (const LoraAdapter& a : l->adapters()) {
          st->refs.push_back(&a);
          st->a.emplace_back(static_cast<size_t>(a.a.t().numel()));
          st->b.emplace_back(static_cast<size_t>(a.b.t().numel()));
          be.download_f64(st->a.back().data(), a.a);
          be.download_f64(st->b.back().data(), a.b);
        }
      },
      [st](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, st->refs.size());
        for (size_t i = 0; i < st->refs.size(); ++i) {
          Napi::Object o = module_to_js(env, *st->refs[i]);
          o.Set("a", to_float32_array(env, st->a[i]));
          o.Set("b", to_float32_array(env, st->b[i]));
          out.Set(i, o);
        }
        return out;
      });
}

// setLoraTensors([{layer, target, a, b}]) -> Promise<void>: every listed adapter must exist and each
// array must have exactly its size (ERR_BAD_TENSOR naming the module otherwise).
Napi::Value NativeModel::SetLoraTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine(env);
  if (!info[0].IsArray()) throw_error(env, "ERR_INVALID_ARGUMENT", "setLoraTensors expects an array of {layer, target, a, b}");
  struct Item {
    LoraModuleRef ref;
    std::vector<double> a, b;
  };
  auto items = std::make_shared<std::vector<Item>>();
  Napi::Array arr = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    std::string ctx = "tensors[" + std::to_string(i) + "]";
    Item it;
    it.ref = parse_module(arr.Get(i), ctx);
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    it.a = get_float_list(o.Get("a"), ctx + ".a");
    it.b = get_float_list(o.Get("b"), ctx + ".b");
    items->push_back(std::move(it));
  }
  return FnJob::start(
      env, e,
      [e, items] {
        LoraSet* l = e->model->lora();
        HAYATE_CHECK(l != nullptr, ErrorCode::kInvalidArgument, "the model has no LoRA adapters");
        // validate everything before writing anything
        std::vector<LoraAdapter*> dst;
        for (const Item& it : *items) {
          const std::string what = "layer " + std::to_string(it.ref.layer) + " " + lora_target_name(it.ref.target);
          LoraAdapter* a = l->find(it.ref.layer, it.ref.target);
          HAYATE_CHECK(a != nullptr, ErrorCode::kBadTensor, "the attached LoRA has no adapter on " + what);
          HAYATE_CHECK(static_cast<int64_t>(it.a.size()) == a->a.t().numel() && static_cast<int64_t>(it.b.size()) == a->b.t().numel(),
                       ErrorCode::kBadTensor,
                       "LoRA tensors of " + what + " have " + std::to_string(it.a.size()) + " / " + std::to_string(it.b.size()) +
                           " values, expected A " + a->a.t().shape_str() + " and B " + a->b.t().shape_str());
          dst.push_back(a);
        }
        for (size_t i = 0; i < dst.size(); ++i) {
          e->backend->upload(dst[i]->a, (*items)[i].a.data(), DType::F64);
          e->backend->upload(dst[i]->b, (*items)[i].b.data(), DType::F64);
        }
      },
      nullptr);
}

// saveMerged(baseDir, outFile) -> Promise<void>
Napi::Value NativeModel::SaveMerged(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto e = engine(env);
  std::string base = get_string(info[0], "baseDir"), out = get_string(info[1], "outFile");
  return FnJob::start(env, e, [e, base, out] { write_merged_weights(*e->model, base, out); }, nullptr);
}

}  // namespace hayate::js
