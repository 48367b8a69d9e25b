// Module entry: exports loadModel, shareModel, createTrainer, CancelToken, buildInfo, the safetensors functions
// (native_safetensors.cpp) and the collectives object (native_collectives.cpp).
#include <napi.h>

#include <thread>

#include "backend.h"
#include "js_convert.h"
#include "native_collectives.h"
#include "native_model.h"
#include "native_safetensors.h"
#include "native_trainer.h"

namespace hayate::js {
namespace {

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cudaCompiled", cuda_compiled());
  o.Set("cudaDevices", cuda_device_count());
  o.Set("blas", blas_name());
  o.Set("hardwareThreads", static_cast<double>(std::thread::hardware_concurrency()));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<AddonData>(new AddonData());
  exports.Set("NativeModel", NativeModel::Init(env));
  exports.Set("NativeTrainer", NativeTrainer::Init(env));
  exports.Set("createTrainer", Napi::Function::New(env, CreateTrainer, "createTrainer"));
  exports.Set("CancelToken", CancelToken::Init(env));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
  exports.Set("shareModel", Napi::Function::New(env, ShareModel, "shareModel"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  register_safetensors(env, exports);
  register_collectives(env, exports);
  return exports;
}

}  // namespace
}  // namespace hayate::js

static Napi::Object InitHayate(Napi::Env env, Napi::Object exports) { return hayate::js::Init(env, exports); }
NODE_API_MODULE(hayate, InitHayate)
