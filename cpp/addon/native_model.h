// NativeModel: the JS handle of a loaded model. It holds the model's Engine (engine.h: backend, model, token
// bytes, job mutex) through a shared_ptr, so a job still running on a worker thread keeps the engine alive
// after dispose(); each generate job builds its own Generator on it. Also here: the per-environment
// constructors, the LoRA switch of a job and the CancelToken class.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

#include "engine.h"
#include "model.h"

namespace hayate::js {

// Per-environment constructors (the addon may be loaded in several worker threads).
struct AddonData {
  Napi::FunctionReference model;
  Napi::FunctionReference trainer;
};

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Engine> engine);
  explicit NativeModel(const Napi::CallbackInfo& info);

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value SetTokenBytes(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value Logprobs(const Napi::CallbackInfo& info);
  Napi::Value Logits(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  // LoRA adapters on the model (native_lora.cpp)
  Napi::Value AttachLora(const Napi::CallbackInfo& info);
  Napi::Value DetachLora(const Napi::CallbackInfo& info);
  Napi::Value LoraInfo(const Napi::CallbackInfo& info);
  Napi::Value GetLoraTensors(const Napi::CallbackInfo& info);
  Napi::Value SetLoraTensors(const Napi::CallbackInfo& info);
  Napi::Value SaveMerged(const Napi::CallbackInfo& info);

 public:
  std::shared_ptr<Engine> engine(Napi::Env env) const;

 private:
  std::shared_ptr<Engine> engine_;
};

// Sets the model's LoRA switch for the lifetime of a job (generation and scoring can run LoRA off).
class LoraSwitch {
 public:
  LoraSwitch(Model& m, bool on) : m_(m), was_(m.lora_enabled()) { m.set_lora_enabled(on); }
  ~LoraSwitch() { m_.set_lora_enabled(was_); }

 private:
  Model& m_;
  bool was_;
};

// A flag JS can raise to cancel a running job (AbortSignal -> cancel()).
class CancelToken : public Napi::ObjectWrap<CancelToken> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit CancelToken(const Napi::CallbackInfo& info);
  std::shared_ptr<std::atomic<bool>> flag() const { return flag_; }

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Cancelled(const Napi::CallbackInfo& info);
  std::shared_ptr<std::atomic<bool>> flag_ = std::make_shared<std::atomic<bool>>(false);
};

Napi::Value LoadModel(const Napi::CallbackInfo& info);
// shareModel(model, {threads}) -> Promise<NativeModel>: a second handle over the model's weights (shared,
// not copied) with its own backend, adapters and job lock, so its jobs run concurrently with the model's.
Napi::Value ShareModel(const Napi::CallbackInfo& info);
// The engine of a NativeModel passed from JS (throws a JS error for anything else or a disposed model).
std::shared_ptr<Engine> engine_of(const Napi::Value& model);
// The flag of a CancelToken argument; null for undefined/null.
std::shared_ptr<std::atomic<bool>> cancel_flag(const Napi::Value& v);

}  // namespace hayate::js
