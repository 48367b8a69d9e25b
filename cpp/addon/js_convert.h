// Checked conversions between JS values and engine types. Every failure throws a JS TypeError/RangeError
// naming the argument, so bad input from JS never reaches the engine unchecked.
#pragma once
#include <napi.h>

#include <new>
#include <string>
#include <vector>

#include "errors.h"

namespace hayate::js {

// Throws a JS Error carrying `code` (e.g. "ERR_INVALID_ARGUMENT") so the TS layer can map it to a typed error.
[[noreturn]] void throw_error(Napi::Env env, const char* code, const std::string& message);
Napi::Error make_error(Napi::Env env, const char* code, const std::string& message);

std::string get_string(const Napi::Value& v, const std::string& what);
double get_number(const Napi::Value& v, const std::string& what);
int64_t get_int(const Napi::Value& v, const std::string& what, int64_t min, int64_t max);
bool get_bool(const Napi::Value& v, const std::string& what);
// Int32Array or array of integers.
std::vector<int32_t> get_int32_list(const Napi::Value& v, const std::string& what);
// Float64Array, Float32Array or array of numbers (values are not checked: the engine validates them).
std::vector<double> get_float_list(const Napi::Value& v, const std::string& what);
// Like get_float_list, but undefined/null give an empty list.
std::vector<double> opt_float_list(const Napi::Object& o, const char* key, const std::string& ctx);
bool opt_bool(const Napi::Object& o, const char* key, bool fallback, const std::string& ctx);

// Optional object fields: return `fallback` when the field is undefined or null.
double opt_number(const Napi::Object& o, const char* key, double fallback, const std::string& ctx);
int64_t opt_int(const Napi::Object& o, const char* key, int64_t fallback, int64_t min, int64_t max, const std::string& ctx);
std::string opt_string(const Napi::Object& o, const char* key, const std::string& fallback, const std::string& ctx);

Napi::Int32Array to_int32_array(Napi::Env env, const std::vector<int32_t>& v);
Napi::Float32Array to_float32_array(Napi::Env env, const std::vector<float>& v);
Napi::Float32Array to_float32_array(Napi::Env env, const std::vector<double>& v);
Napi::Float64Array to_float64_array(Napi::Env env, const std::vector<double>& v);

// Runs synchronous engine code on the JS thread, turning engine errors into JS errors that carry the
// engine's code (and std::bad_alloc into ERR_OUT_OF_MEMORY).
template <class F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const hayate::Error& e) {
    throw make_error(env, error_code_name(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    throw make_error(env, "ERR_OUT_OF_MEMORY", "out of memory");
  } catch (const std::exception& e) {
    throw make_error(env, "ERR_INTERNAL", std::string("internal error: ") + e.what());
  }
}

}  // namespace hayate::js
