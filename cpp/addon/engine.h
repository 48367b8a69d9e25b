// Engine: what every JS handle on one loaded model shares (the backend, the model, the tokenizer's token
// bytes) and the mutex that lets one job at a time touch them. NativeModel, NativeTrainer and every job
// hold it through a shared_ptr, so a job still running on a worker thread keeps it alive after dispose().
// A Generator or Trainer is not part of it: jobs build a Generator per call, a NativeTrainer owns its Trainer.
// Two engines can share one copy of the frozen weights (shareModel, native_model.cpp): the second has its
// own backend, model (adapters), mutex and KV caches, so its jobs run at the same time as the first's, and
// it keeps the weights' backend alive (weights_backend) for as long as it lives.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend.h"
#include "errors.h"
#include "model.h"

namespace hayate::js {

struct Engine {
  // The backend that owns the model's weights when they are another engine's (null otherwise). Declared
  // first, so it is released last: after this engine's model, which reads (and may free) the weights.
  std::shared_ptr<Backend> weights_backend;
  std::shared_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  BackendOptions options;  // what `backend` was made from (a sharing engine makes its own from them)
  std::vector<std::string> token_bytes;
  std::mutex mutex;  // one job at a time per model

  // The backend holding the weights' memory, which every engine that shares them keeps alive.
  std::shared_ptr<Backend> weights_owner() const { return weights_backend ? weights_backend : backend; }

  // Runs f() holding the mutex (call it on a worker thread: it waits for the running job), after freeing
  // what was buried; throws kInvalidArgument when the model is gone.
  template <class F>
  void run_locked(F&& f) {
    std::lock_guard<std::mutex> lock(mutex);
    clear_graveyard();
    HAYATE_CHECK(model != nullptr, ErrorCode::kInvalidArgument, "model has been disposed");
    f();
  }

  // Hands over an engine object (e.g. a garbage-collected trainer) released while a job held the mutex:
  // backend memory is not freed concurrently with a running job, so the next run_locked() frees it.
  void bury(std::shared_ptr<void> p) {
    std::lock_guard<std::mutex> lock(graveyard_mutex_);
    graveyard_.push_back(std::move(p));
  }

 private:
  void clear_graveyard() {  // with `mutex` held
    std::vector<std::shared_ptr<void>> dead;
    {
      std::lock_guard<std::mutex> lock(graveyard_mutex_);
      dead.swap(graveyard_);
    }
  }

  std::mutex graveyard_mutex_;
  std::vector<std::shared_ptr<void>> graveyard_;
};

}  // namespace hayate::js
