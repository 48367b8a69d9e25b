// Safetensors for JavaScript: thin, checked conversions between JS values and the engine's safetensors
// reader (cpp/safetensors.h) and writer (cpp/safetensors_writer.h). All calls are synchronous, as the
// TypeScript API they serve is; tensor values cross the boundary as typed arrays (decoded straight from
// the memory-mapped file into the JS buffer when reading, written from the Float32Array's own memory).
#include "native_safetensors.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <new>

#include "js_convert.h"
#include "safetensors.h"
#include "safetensors_writer.h"
#include "tensor.h"

namespace hayate::js {

namespace {

Napi::Array shape_to_js(Napi::Env env, const std::vector<int64_t>& shape) {
  Napi::Array a = Napi::Array::New(env, shape.size());
  for (size_t d = 0; d < shape.size(); ++d) a.Set(d, static_cast<double>(shape[d]));
  return a;
}

// --- reading ---------------------------------------------------------------------------------------

// The typed array a dtype is read into: floats widen (exactly) to Float64Array, integers keep their type.
struct JsDtype {
  const char* name;
  napi_typedarray_type array;
  size_t out_bytes;  // bytes per element in the JS array
};
const JsDtype kJsDtypes[] = {
    {"F64", napi_float64_array, 8}, {"F32", napi_float64_array, 8},     {"BF16", napi_float64_array, 8},
    {"F16", napi_float64_array, 8}, {"I8", napi_int8_array, 1},         {"U8", napi_uint8_array, 1},
    {"BOOL", napi_uint8_array, 1},  {"I16", napi_int16_array, 2},       {"U16", napi_uint16_array, 2},
    {"I32", napi_int32_array, 4},   {"U32", napi_uint32_array, 4},      {"I64", napi_bigint64_array, 8},
    {"U64", napi_biguint64_array, 8},
};

const JsDtype* js_dtype(const std::string& name) {
  for (const JsDtype& d : kJsDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

// Every tensor's dtype must have a JS form (the 8-bit float dtypes do not); checked before any values are
// copied, so an unreadable file costs no allocation.
void check_readable(const std::vector<TensorInfo>& tensors) {
  for (const TensorInfo& t : tensors)
    if (!js_dtype(t.dtype_name))
      fail(ErrorCode::kBadSafetensors, t.file + ": tensor '" + t.name + "' has dtype " + t.dtype_name +
                                           ", which cannot be read into JavaScript (supported: F64, F32, F16, BF16 "
                                           "and the integer dtypes)");
}

template <class T>
T load(const uint8_t* p, size_t i) {
  T v;
  std::memcpy(&v, p + i * sizeof(T), sizeof(T));  // file offsets need not be aligned
  return v;
}

// One copy: from the mapping into a fresh ArrayBuffer, converting floats to double on the way.
Napi::Value values_to_js(Napi::Env env, const TensorInfo& t) {
  const JsDtype& d = *js_dtype(t.dtype_name);
  const size_t n = static_cast<size_t>(t.numel());
  const uint8_t* src = static_cast<const uint8_t*>(t.data);
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, n * d.out_bytes);
  void* dst = buf.Data();
  if (d.array == napi_float64_array && t.dtype_name != "F64") {
    double* out = static_cast<double*>(dst);
    if (t.dtype_name == "F32")
      for (size_t i = 0; i < n; ++i) out[i] = load<float>(src, i);
    else if (t.dtype_name == "BF16")
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load<uint16_t>(src, i));
    else
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load<uint16_t>(src, i));
  } else if (n > 0) {
    std::memcpy(dst, src, n * d.out_bytes);
  }
  napi_value array;
  NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, d.array, n, buf, 0, &array), Napi::Value());
  return Napi::Value(env, array);
}

// [{name, dtype, shape, data}] in file order.
Napi::Array tensors_with_values(Napi::Env env, const std::vector<const TensorInfo*>& tensors) {
  Napi::Array arr = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = *tensors[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", t.name);
    o.Set("dtype", t.dtype_name);
    o.Set("shape", shape_to_js(env, t.shape));
    o.Set("data", values_to_js(env, t));
    arr.Set(i, o);
  }
  return arr;
}

std::vector<const TensorInfo*> pointers(const std::vector<TensorInfo>& tensors) {
  std::vector<const TensorInfo*> out;
  for (const TensorInfo& t : tensors) out.push_back(&t);
  return out;
}

// readSafetensors(path) -> [{name, dtype, shape, data}]
Napi::Value ReadSafetensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = get_string(info[0], "path");
  return guarded(env, [&]() -> Napi::Value {
    SafetensorsFile file(path);
    check_readable(file.tensors());
    return tensors_with_values(env, pointers(file.tensors()));
  });
}

// readSafetensorsDir(dir) -> [{name, dtype, shape, data}]: the files the engine would load, in its order.
Napi::Value ReadSafetensorsDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string dir = get_string(info[0], "dir");
  return guarded(env, [&]() -> Napi::Value {
    std::unique_ptr<TensorStore> store = TensorStore::open_dir(dir);
    std::vector<const TensorInfo*> all;
    for (const auto& file : store->files()) {
      check_readable(file->tensors());
      for (const TensorInfo* t : pointers(file->tensors())) all.push_back(t);
    }
    return tensors_with_values(env, all);
  });
}

// readSafetensorsHeader(path) -> {tensors: [{name, dtype, shape}], metadata: {key: value}}
Napi::Value ReadSafetensorsHeader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = get_string(info[0], "path");
  return guarded(env, [&]() -> Napi::Value {
    SafetensorsFile file(path);
    check_readable(file.tensors());
    Napi::Array tensors = Napi::Array::New(env, file.tensors().size());
    for (size_t i = 0; i < file.tensors().size(); ++i) {
      const TensorInfo& t = file.tensors()[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", t.name);
      o.Set("dtype", t.dtype_name);
      o.Set("shape", shape_to_js(env, t.shape));
      tensors.Set(i, o);
    }
    Napi::Object metadata = Napi::Object::New(env);
    for (const auto& kv : file.metadata())  // own data properties, so even "__proto__" is a plain key
      metadata.DefineProperty(Napi::PropertyDescriptor::Value(kv.first, Napi::String::New(env, kv.second), napi_default_jsproperty));
    Napi::Object out = Napi::Object::New(env);
    out.Set("tensors", tensors);
    out.Set("metadata", metadata);
    return out;
  });
}

// The header-list form used by parseSafetensorsHeader and inspectSafetensors (tests fuzz the parser with it).
Napi::Value tensor_list_to_js(Napi::Env env, const std::vector<TensorInfo>& tensors) {
  Napi::Array arr = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", t.name);
    o.Set("dtype", t.dtype_name);
    o.Set("shape", shape_to_js(env, t.shape));
    o.Set("dataBegin", static_cast<double>(t.data_begin));
    o.Set("dataEnd", static_cast<double>(t.data_end));
    arr.Set(i, o);
  }
  return arr;
}

// parseSafetensorsHeader(bytes: Uint8Array, fileSize?: number) -> tensor list (throws on invalid input)
Napi::Value ParseSafetensorsHeader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_error(env, "ERR_INVALID_ARGUMENT", "parseSafetensorsHeader expects a Uint8Array");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  uint64_t size = bytes.ElementLength();
  if (info.Length() > 1 && !info[1].IsUndefined()) size = static_cast<uint64_t>(get_int(info[1], "fileSize", 0, int64_t(1) << 52));
  return guarded(env, [&] {
    return tensor_list_to_js(env, parse_safetensors_header(bytes.Data(), bytes.ElementLength(), size, "<buffer>"));
  });
}

// inspectSafetensors(path) -> tensor list of a file, through the memory-mapped reader.
Napi::Value InspectSafetensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = get_string(info[0], "path");
  return guarded(env, [&] {
    SafetensorsFile f(path);
    return tensor_list_to_js(env, f.tensors());
  });
}

// --- writing ---------------------------------------------------------------------------------------

std::string json_of(Napi::Env env, const Napi::Value& v) {
  Napi::Function stringify = env.Global().Get("JSON").As<Napi::Object>().Get("stringify").As<Napi::Function>();
  Napi::Value s = stringify.Call({v});
  return s.IsString() ? s.As<Napi::String>().Utf8Value() : "undefined";
}

// Largest dimension accepted from JS: every integer up to here is exact in a double.
constexpr double kMaxDim = 9007199254740991.0;

// [{name, dtype, shape, length?}]: what JS writes from float32 values, checked in the order (and with the
// messages) of the earlier TypeScript writer: dtype, shape, then the value count of a ready array.
std::vector<SafetensorsTensorHeader> write_tensors_from_js(Napi::Env env, const Napi::Value& v) {
  if (!v.IsArray()) throw_error(env, "ERR_INVALID_ARGUMENT", "tensors must be an array of {name, dtype, shape}");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<SafetensorsTensorHeader> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const std::string ctx = "tensors[" + std::to_string(i) + "]";
    Napi::Value item = arr.Get(i);
    if (!item.IsObject()) throw_error(env, "ERR_INVALID_ARGUMENT", ctx + " must be an object {name, dtype, shape}");
    Napi::Object o = item.As<Napi::Object>();
    SafetensorsTensorHeader t;
    t.name = get_string(o.Get("name"), ctx + ".name");
    Napi::Value dtype = o.Get("dtype");
    const std::string dt = dtype.IsString() ? dtype.As<Napi::String>().Utf8Value() : dtype.ToString().Utf8Value();
    if (!dtype.IsString() || (dt != "F32" && dt != "BF16" && dt != "F16"))
      throw_error(env, "ERR_INVALID_ARGUMENT", "tensor " + t.name + ": cannot write dtype " + dt + " (use F32, BF16 or F16)");
    t.dtype_name = dt;
    Napi::Value shape = o.Get("shape");
    bool valid = shape.IsArray();
    double numel = 1;
    if (valid) {
      Napi::Array s = shape.As<Napi::Array>();
      for (uint32_t k = 0; k < s.Length() && valid; ++k) {
        Napi::Value d = s.Get(k);
        const double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
        valid = x >= 0 && x <= kMaxDim && x == std::floor(x);
        t.shape.push_back(static_cast<int64_t>(valid ? x : 0));
        numel *= x;
      }
    }
    if (!valid) throw_error(env, "ERR_INVALID_ARGUMENT", "tensor " + t.name + ": invalid shape " + json_of(env, shape));
    Napi::Value length = o.Get("length");
    if (!length.IsUndefined()) {
      const double n = get_number(length, ctx + ".length");
      if (n != numel)
        throw_error(env, "ERR_INVALID_ARGUMENT",
                    "tensor " + t.name + ": " + length.ToString().Utf8Value() + " values for shape " + json_of(env, shape));
    }
    out.push_back(std::move(t));
  }
  return out;
}

// Own enumerable string keys in JS property order (the order JSON.stringify writes them).
std::vector<std::pair<std::string, std::string>> string_record_from_js(Napi::Env env, const Napi::Value& v,
                                                                       const std::string& what) {
  std::vector<std::pair<std::string, std::string>> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsObject() || v.IsArray()) throw_error(env, "ERR_INVALID_ARGUMENT", what + " must be an object of strings");
  napi_value keys_value;
  NAPI_THROW_IF_FAILED(env,
                       napi_get_all_property_names(env, v, napi_key_own_only,
                                                   static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
                                                   napi_key_numbers_to_strings, &keys_value),
                       out);
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys(env, keys_value);
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value value = o.Get(key);
    if (value.IsUndefined()) continue;  // as JSON.stringify leaves it out
    if (!value.IsString()) throw_error(env, "ERR_INVALID_ARGUMENT", what + " value of '" + key + "' must be a string");
    out.emplace_back(key, value.As<Napi::String>().Utf8Value());
  }
  return out;
}

// checkSafetensorsTensors(tensors) -> byte sizes; the writer's checks, without writing (sharded writes
// validate every tensor before the first shard).
Napi::Value CheckSafetensorsTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<SafetensorsTensorHeader> tensors = write_tensors_from_js(env, info[0]);
  return guarded(env, [&]() -> Napi::Value {
    std::vector<uint64_t> sizes = check_safetensors_tensors(tensors);
    Napi::Array out = Napi::Array::New(env, sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) out.Set(i, static_cast<double>(sizes[i]));
    return out;
  });
}

// new SafetensorsWriter(path, tensors, metadata?): header checked and written; then writeValues(Float32Array)
// and endTensor() per tensor, commit() (or abort()). Garbage collection of an unfinished writer removes its
// temporary file.
class NativeSafetensorsWriter : public Napi::ObjectWrap<NativeSafetensorsWriter> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "SafetensorsWriter",
                       {InstanceMethod("writeValues", &NativeSafetensorsWriter::WriteValues),
                        InstanceMethod("endTensor", &NativeSafetensorsWriter::EndTensor),
                        InstanceMethod("commit", &NativeSafetensorsWriter::Commit),
                        InstanceMethod("abort", &NativeSafetensorsWriter::Abort)});
  }

  explicit NativeSafetensorsWriter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeSafetensorsWriter>(info) {
    Napi::Env env = info.Env();
    const std::string path = get_string(info[0], "path");
    std::vector<SafetensorsTensorHeader> tensors = write_tensors_from_js(env, info[1]);
    SafetensorsMetadata metadata = string_record_from_js(env, info[2], "metadata");
    guarded(env, [&] { writer_ = std::make_unique<SafetensorsWriter>(path, std::move(tensors), metadata); });
  }

 private:
  Napi::Value WriteValues(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw_error(env, "ERR_INVALID_ARGUMENT", "tensor values must be a Float32Array");
    Napi::Float32Array values = info[0].As<Napi::Float32Array>();
    guarded(env, [&] { writer_->write_f32(values.Data(), values.ElementLength()); });
    return env.Undefined();
  }
  Napi::Value EndTensor(const Napi::CallbackInfo& info) {
    guarded(info.Env(), [&] { writer_->end_tensor(); });
    return info.Env().Undefined();
  }
  Napi::Value Commit(const Napi::CallbackInfo& info) {
    guarded(info.Env(), [&] { writer_->commit(); });
    return info.Env().Undefined();
  }
  Napi::Value Abort(const Napi::CallbackInfo& info) {
    if (writer_) writer_->abort();
    return info.Env().Undefined();
  }

  std::unique_ptr<SafetensorsWriter> writer_;  // set whenever the constructor returned
};

// writeSafetensorsIndex(path, totalSize, weightMap: {tensor: file})
Napi::Value WriteSafetensorsIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = get_string(info[0], "path");
  const uint64_t total = static_cast<uint64_t>(get_int(info[1], "totalSize", 0, (int64_t(1) << 53) - 1));
  const auto weight_map = string_record_from_js(env, info[2], "weightMap");
  guarded(env, [&] { write_safetensors_index(path, total, weight_map); });
  return env.Undefined();
}

// --- float16 / bfloat16 -----------------------------------------------------------------------------

double number_arg(const Napi::CallbackInfo& info, const char* what) {
  if (!info[0].IsNumber()) throw_error(info.Env(), "ERR_INVALID_ARGUMENT", std::string(what) + " must be a number");
  return info[0].As<Napi::Number>().DoubleValue();
}

// The 16 bits of a value given as a JS number (ToInt32, then the low 16 bits, as `h & 0xffff` would).
uint16_t bits_arg(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) throw_error(info.Env(), "ERR_INVALID_ARGUMENT", "bits must be a number");
  return static_cast<uint16_t>(info[0].As<Napi::Number>().Int32Value() & 0xffff);
}

// A double rounded to float32 as Math.fround does (IEEE round to nearest even, overflow to infinity).
float to_f32(double x) { return static_cast<float>(x); }

Napi::Value F32ToBf16Bits(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), f32_to_bf16(to_f32(number_arg(info, "value"))));
}
Napi::Value F32ToF16Bits(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), f32_to_f16(to_f32(number_arg(info, "value"))));
}
Napi::Value Bf16BitsToF32(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), bf16_to_f32(bits_arg(info))); }
Napi::Value F16BitsToF32(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), f16_to_f32(bits_arg(info))); }

}  // namespace

void register_safetensors(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Value (*f)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, f, name));
  };
  fn("readSafetensors", ReadSafetensors);
  fn("readSafetensorsDir", ReadSafetensorsDir);
  fn("readSafetensorsHeader", ReadSafetensorsHeader);
  fn("parseSafetensorsHeader", ParseSafetensorsHeader);
  fn("inspectSafetensors", InspectSafetensors);
  fn("checkSafetensorsTensors", CheckSafetensorsTensors);
  fn("writeSafetensorsIndex", WriteSafetensorsIndex);
  fn("f32ToBf16Bits", F32ToBf16Bits);
  fn("f32ToF16Bits", F32ToF16Bits);
  fn("bf16BitsToF32", Bf16BitsToF32);
  fn("f16BitsToF32", F16BitsToF32);
  exports.Set("SafetensorsWriter", NativeSafetensorsWriter::Init(env));
}

}  // namespace hayate::js
