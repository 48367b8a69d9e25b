// NativeTrainer: the JS handle of a Trainer (cpp/trainer.h) on a model's engine. Every method that touches
// the engine runs as a job on the libuv pool under the engine's mutex, so training steps, generation and
// scoring on one model run one at a time, never on the JS thread.
#pragma once
#include <napi.h>

#include <memory>

#include "native_model.h"
#include "trainer.h"

namespace hayate::js {

class NativeTrainer : public Napi::ObjectWrap<NativeTrainer> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Engine> engine, std::shared_ptr<Trainer> trainer);
  explicit NativeTrainer(const Napi::CallbackInfo& info);
  ~NativeTrainer() override;

 private:
  std::shared_ptr<Trainer> trainer(Napi::Env env) const;
  Napi::Value ForwardBackward(const Napi::CallbackInfo& info);
  Napi::Value Logprobs(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info);
  Napi::Value GradNorm(const Napi::CallbackInfo& info);
  Napi::Value AllReduceGradients(const Napi::CallbackInfo& info);
  Napi::Value GetState(const Napi::CallbackInfo& info);
  Napi::Value SetState(const Napi::CallbackInfo& info);
  Napi::Value SetOptimizer(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<Engine> engine_;    // declared first: outlives the trainer
  std::shared_ptr<Trainer> trainer_;
};

// createTrainer(model, options) -> Promise<NativeTrainer>
Napi::Value CreateTrainer(const Napi::CallbackInfo& info);

}  // namespace hayate::js
