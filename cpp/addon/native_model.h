// NativeModel: the JS handle of a loaded model. It owns the backend, the model and the generator through
// a shared Engine, so a job still running on a worker thread keeps them alive after dispose().
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "backend.h"
#include "generator.h"
#include "model.h"

namespace hayate::js {

struct Engine {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::vector<std::string> token_bytes;
  std::mutex mutex;  // one job at a time per model
};

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Engine> engine);
  explicit NativeModel(const Napi::CallbackInfo& info);

 private:
  std::shared_ptr<Engine> engine(Napi::Env env);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value SetTokenBytes(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value Logprobs(const Napi::CallbackInfo& info);
  Napi::Value Logits(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<Engine> engine_;
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

}  // namespace hayate::js
