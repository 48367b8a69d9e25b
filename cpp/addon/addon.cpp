// Module entry: exports loadModel, CancelToken, buildInfo and safetensors inspection (used by tests to
// fuzz the native header parser through the same code path the loader uses).
#include <napi.h>

#include <thread>

#include "backend.h"
#include "js_convert.h"
#include "native_model.h"
#include "native_trainer.h"
#include "safetensors.h"

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

Napi::Value TensorsToJs(Napi::Env env, const std::vector<TensorInfo>& tensors) {
  Napi::Array arr = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", t.name);
    o.Set("dtype", t.dtype_name);
    Napi::Array shape = Napi::Array::New(env, t.shape.size());
    for (size_t d = 0; d < t.shape.size(); ++d) shape.Set(d, static_cast<double>(t.shape[d]));
    o.Set("shape", shape);
    o.Set("dataBegin", static_cast<double>(t.data_begin));
    o.Set("dataEnd", static_cast<double>(t.data_end));
    arr.Set(i, o);
  }
  return arr;
}

// Runs engine code synchronously, converting engine errors into coded JS errors.
template <class F>
Napi::Value Guard(Napi::Env env, F&& f) {
  try {
    return f();
  } catch (const hayate::Error& e) {
    throw make_error(env, error_code_name(e.code()), e.what());
  }
}

// parseSafetensorsHeader(bytes: Uint8Array, fileSize?: number) -> tensor list (throws on invalid input)
Napi::Value ParseSafetensorsHeader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_error(env, "ERR_INVALID_ARGUMENT", "parseSafetensorsHeader expects a Uint8Array");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  uint64_t size = bytes.ElementLength();
  if (info.Length() > 1 && !info[1].IsUndefined()) size = static_cast<uint64_t>(get_int(info[1], "fileSize", 0, int64_t(1) << 52));
  return Guard(env, [&] { return TensorsToJs(env, parse_safetensors_header(bytes.Data(), bytes.ElementLength(), size, "<buffer>")); });
}

// inspectSafetensors(path) -> tensor list of a file, through the memory-mapped reader.
Napi::Value InspectSafetensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = get_string(info[0], "path");
  return Guard(env, [&] {
    SafetensorsFile f(path);
    return TensorsToJs(env, f.tensors());
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<AddonData>(new AddonData());
  exports.Set("NativeModel", NativeModel::Init(env));
  exports.Set("NativeTrainer", NativeTrainer::Init(env));
  exports.Set("createTrainer", Napi::Function::New(env, CreateTrainer, "createTrainer"));
  exports.Set("CancelToken", CancelToken::Init(env));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  exports.Set("parseSafetensorsHeader", Napi::Function::New(env, ParseSafetensorsHeader, "parseSafetensorsHeader"));
  exports.Set("inspectSafetensors", Napi::Function::New(env, InspectSafetensors, "inspectSafetensors"));
  return exports;
}

}  // namespace
}  // namespace hayate::js

static Napi::Object InitHayate(Napi::Env env, Napi::Object exports) { return hayate::js::Init(env, exports); }
NODE_API_MODULE(hayate, InitHayate)
