#include "js_convert.h"

#include <cmath>

namespace hayate::js {

Napi::Error make_error(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

void throw_error(Napi::Env env, const char* code, const std::string& message) { throw make_error(env, code, message); }

namespace {
[[noreturn]] void type_error(Napi::Env env, const std::string& what, const char* expected) {
  Napi::TypeError e = Napi::TypeError::New(env, what + " must be " + expected);
  e.Set("code", Napi::String::New(env, "ERR_INVALID_ARGUMENT"));
  throw e;
}
}  // namespace

std::string get_string(const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) type_error(v.Env(), what, "a string");
  return v.As<Napi::String>().Utf8Value();
}

double get_number(const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) type_error(v.Env(), what, "a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) type_error(v.Env(), what, "a finite number");
  return d;
}

int64_t get_int(const Napi::Value& v, const std::string& what, int64_t min, int64_t max) {
  double d = get_number(v, what);
  if (d != std::floor(d) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    std::string range = "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    type_error(v.Env(), what, range.c_str());
  }
  return static_cast<int64_t>(d);
}

bool get_bool(const Napi::Value& v, const std::string& what) {
  if (!v.IsBoolean()) type_error(v.Env(), what, "a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::vector<int32_t> get_int32_list(const Napi::Value& v, const std::string& what) {
  std::vector<int32_t> out;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    out.assign(a.Data(), a.Data() + a.ElementLength());
    return out;
  }
  if (!v.IsArray()) type_error(v.Env(), what, "an Int32Array or an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i)
    out.push_back(static_cast<int32_t>(get_int(a.Get(i), what + "[" + std::to_string(i) + "]", INT32_MIN, INT32_MAX)));
  return out;
}

std::vector<double> get_float_list(const Napi::Value& v, const std::string& what) {
  if (v.IsTypedArray()) {
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    if (t.TypedArrayType() == napi_float64_array) {
      Napi::Float64Array a = v.As<Napi::Float64Array>();
      return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
    }
    if (t.TypedArrayType() == napi_float32_array) {
      Napi::Float32Array a = v.As<Napi::Float32Array>();
      return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
    }
  }
  if (!v.IsArray()) type_error(v.Env(), what, "a Float64Array, a Float32Array or an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber()) type_error(v.Env(), what + "[" + std::to_string(i) + "]", "a number");
    out[i] = x.As<Napi::Number>().DoubleValue();
  }
  return out;
}

std::vector<double> opt_float_list(const Napi::Object& o, const char* key, const std::string& ctx) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  return get_float_list(v, ctx + "." + key);
}

bool opt_bool(const Napi::Object& o, const char* key, bool fallback, const std::string& ctx) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return get_bool(v, ctx + "." + key);
}

double opt_number(const Napi::Object& o, const char* key, double fallback, const std::string& ctx) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return get_number(v, ctx + "." + key);
}

int64_t opt_int(const Napi::Object& o, const char* key, int64_t fallback, int64_t min, int64_t max, const std::string& ctx) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return get_int(v, ctx + "." + key, min, max);
}

std::string opt_string(const Napi::Object& o, const char* key, const std::string& fallback, const std::string& ctx) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  return get_string(v, ctx + "." + key);
}

Napi::Int32Array to_int32_array(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

Napi::Float32Array to_float32_array(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

Napi::Float32Array to_float32_array(Napi::Env env, const std::vector<double>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Data()[i] = static_cast<float>(v[i]);
  return a;
}

Napi::Float64Array to_float64_array(Napi::Env env, const std::vector<double>& v) {
  Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

}  // namespace hayate::js
