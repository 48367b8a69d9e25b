// A small, strict JSON reader (RFC 8259) for config.json and safetensors headers. Hand-written so the
// engine has no dependencies and the parser can be fuzzed; errors are hayate::Error with the byte offset.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"

namespace hayate {

class JsonValue {
 public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Number; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }

  // Typed accessors throw Error(code given to parse_json, "... <what> ...") on a kind mismatch.
  bool as_bool() const;
  double as_number() const;
  int64_t as_int() const;  // throws when not an integral number within int64 range
  const std::string& as_string() const;
  const std::vector<JsonValue>& as_array() const;
  const std::map<std::string, JsonValue>& as_object() const;

  // Object lookup: nullptr when absent (or when this is not an object).
  const JsonValue* find(const std::string& key) const;
  // Object members in file order (safetensors offsets are checked in any order, but messages use it).
  const std::vector<std::string>& keys() const { return keys_; }

  static JsonValue make_null() { return JsonValue(); }
  static JsonValue make_bool(bool b);
  static JsonValue make_number(double d);
  static JsonValue make_string(std::string s);
  static JsonValue make_array(std::vector<JsonValue> items);
  // Duplicate keys are rejected by the parser.
  static JsonValue make_object(std::vector<std::pair<std::string, JsonValue>> members);

 private:
  friend class JsonParser;  // sets code_ on every value it builds
  Kind kind_ = Kind::Null;
  ErrorCode code_ = ErrorCode::kInvalidArgument;  // the parse_json code, thrown by the typed accessors
  bool b_ = false;
  double num_ = 0;
  std::string str_;
  std::vector<JsonValue> arr_;
  std::map<std::string, JsonValue> obj_;
  std::vector<std::string> keys_;
};

// Parses exactly one JSON value (surrounding whitespace allowed). On error throws Error(code,
// "<source>: invalid JSON at byte N: <reason>"). Nesting deeper than 256 levels is an error (no stack
// overflow on hostile input).
JsonValue parse_json(const char* data, size_t size, const std::string& source, ErrorCode code);
inline JsonValue parse_json(const std::string& text, const std::string& source, ErrorCode code) {
  return parse_json(text.data(), text.size(), source, code);
}

}  // namespace hayate
