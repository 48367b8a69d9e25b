// FnJob: an EngineJob built from two functions, for the many small engine calls that need no progress:
// `run` on the worker thread while holding the engine's mutex, `result` on the JS thread to build the
// resolved value from what `run` left behind (both usually capture a shared state struct).
#pragma once
#include <functional>
#include <memory>

#include "engine.h"
#include "engine_job.h"

namespace hayate::js {

class FnJob : public EngineJob<NoProgress> {
 public:
  FnJob(Napi::Env env, std::shared_ptr<Engine> engine, std::function<void()> run,
        std::function<Napi::Value(Napi::Env)> result)
      : EngineJob(env, Napi::Function()), engine_(std::move(engine)), run_(std::move(run)), result_(std::move(result)) {}

  // Queues the job and returns its promise.
  static Napi::Promise start(Napi::Env env, std::shared_ptr<Engine> engine, std::function<void()> run,
                             std::function<Napi::Value(Napi::Env)> result) {
    auto* job = new FnJob(env, std::move(engine), std::move(run), std::move(result));
    Napi::Promise p = job->promise();
    job->Queue();
    return p;
  }

 protected:
  void Run(const ExecutionProgress&) override { engine_->run_locked(run_); }
  Napi::Value Result(Napi::Env env) override { return result_ ? result_(env) : env.Undefined(); }

 private:
  std::shared_ptr<Engine> engine_;
  std::function<void()> run_;
  std::function<Napi::Value(Napi::Env)> result_;
};

}  // namespace hayate::js
