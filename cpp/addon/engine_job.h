// EngineJob: an AsyncProgressWorker that runs engine work on the libuv thread pool (never on the JS
// thread), turns hayate::Error into a rejected Promise whose error carries the engine's code, reports
// progress to an optional JS callback and can be cancelled through a shared flag.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "errors.h"
#include "js_convert.h"

namespace hayate::js {

struct NoProgress {};  // the Progress of a job that reports none

template <class Progress>
class EngineJob : public Napi::AsyncProgressWorker<Progress> {
 public:
  using Base = Napi::AsyncProgressWorker<Progress>;

  EngineJob(Napi::Env env, Napi::Function on_progress)
      : Base(env, "hayate"), deferred_(Napi::Promise::Deferred::New(env)) {
    if (!on_progress.IsEmpty()) progress_cb_ = Napi::Persistent(on_progress);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  // Subclasses do their work in Run() (worker thread) and build the JS result in Result() (JS thread).
  virtual void Run(const typename Base::ExecutionProgress& progress) = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;

  void Execute(const typename Base::ExecutionProgress& progress) override {
    try {
      Run(progress);
    } catch (const hayate::Error& e) {
      code_ = error_code_name(e.code());
      this->SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "ERR_OUT_OF_MEMORY";
      this->SetError("out of memory: use a smaller batch, context or model");
    } catch (const std::exception& e) {
      code_ = "ERR_INTERNAL";
      this->SetError(std::string("internal error: ") + e.what());
    }
  }
  void OnOK() override {
    Napi::HandleScope scope(this->Env());
    try {
      deferred_.Resolve(Result(this->Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(this->Env());
    Napi::Error err = make_error(this->Env(), code_.c_str(), e.Message());
    deferred_.Reject(err.Value());
  }
  void OnProgress(const Progress* data, size_t count) override {
    if (progress_cb_.IsEmpty() || count == 0) return;
    Napi::HandleScope scope(this->Env());
    try {
      progress_cb_.Call({ProgressToJs(this->Env(), data[count - 1])});
    } catch (const Napi::Error&) {
      // a throwing progress callback must not take the job down; the error is dropped
    }
  }
  virtual Napi::Value ProgressToJs(Napi::Env env, const Progress& p) { return env.Undefined(); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference progress_cb_;
  std::string code_ = "ERR_INTERNAL";
};

}  // namespace hayate::js
