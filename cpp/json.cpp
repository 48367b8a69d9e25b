// Strict RFC 8259 reader. Recursive descent with an explicit depth limit, so hostile input (deep nesting,
// truncation, invalid UTF-8) yields an Error with a byte offset rather than a crash or a wrong value.
#include "json.h"

#include <cerrno>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace hayate {

namespace {

constexpr int kMaxDepth = 256;

const char* kind_name(JsonValue::Kind k) {
  switch (k) {
    case JsonValue::Kind::Null: return "null";
    case JsonValue::Kind::Bool: return "boolean";
    case JsonValue::Kind::Number: return "number";
    case JsonValue::Kind::String: return "string";
    case JsonValue::Kind::Array: return "array";
    case JsonValue::Kind::Object: return "object";
  }
  return "?";
}

// "'x'" for printable ASCII, "byte 0xNN" otherwise, so messages never contain raw binary.
std::string describe_byte(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  const char* hex = "0123456789abcdef";
  return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

class JsonParser {
 public:
  JsonParser(const char* data, size_t size, const std::string& source, ErrorCode code)
      : p_(reinterpret_cast<const unsigned char*>(data)), n_(size), source_(source), code_(code) {}

  JsonValue parse_document() {
    skip_ws();
    JsonValue v = parse_value(0);
    skip_ws();
    if (i_ != n_) error(i_, "unexpected " + describe_byte(p_[i_]) + " after the JSON value");
    return v;
  }

 private:
  const unsigned char* p_;
  size_t n_;
  size_t i_ = 0;
  const std::string& source_;
  ErrorCode code_;

  [[noreturn]] void error(size_t at, const std::string& reason) const {
    fail(code_, source_ + ": invalid JSON at byte " + std::to_string(at) + ": " + reason);
  }
  [[noreturn]] void unexpected(const char* expected) const {
    if (i_ >= n_) error(i_, std::string("unexpected end of input, expected ") + expected);
    error(i_, "unexpected " + describe_byte(p_[i_]) + ", expected " + expected);
  }

  JsonValue tag(JsonValue v) const {
    v.code_ = code_;
    return v;
  }

  void skip_ws() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) ++i_;
  }

  bool at(char c) const { return i_ < n_ && p_[i_] == static_cast<unsigned char>(c); }

  JsonValue parse_value(int depth) {
    if (i_ >= n_) unexpected("a value");
    switch (p_[i_]) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return tag(JsonValue::make_string(parse_string()));
      case 't': literal("true"); return tag(JsonValue::make_bool(true));
      case 'f': literal("false"); return tag(JsonValue::make_bool(false));
      case 'n': literal("null"); return tag(JsonValue::make_null());
      default:
        if (p_[i_] == '-' || (p_[i_] >= '0' && p_[i_] <= '9')) return parse_number();
        unexpected("a value");
    }
  }

  void literal(const char* word) {
    size_t start = i_;
    for (const char* w = word; *w; ++w, ++i_) {
      if (i_ >= n_ || p_[i_] != static_cast<unsigned char>(*w)) error(start, std::string("invalid literal, expected ") + word);
    }
  }

  void check_depth(int depth) const {
    if (depth > kMaxDepth) error(i_, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
  }

  JsonValue parse_array(int depth) {
    check_depth(depth);
    ++i_;  // '['
    std::vector<JsonValue> items;
    skip_ws();
    if (at(']')) {
      ++i_;
      return tag(JsonValue::make_array(std::move(items)));
    }
    for (;;) {
      skip_ws();
      items.push_back(parse_value(depth));
      skip_ws();
      if (at(',')) { ++i_; continue; }
      if (at(']')) { ++i_; break; }
      unexpected("',' or ']'");
    }
    return tag(JsonValue::make_array(std::move(items)));
  }

  JsonValue parse_object(int depth) {
    check_depth(depth);
    ++i_;  // '{'
    std::vector<std::pair<std::string, JsonValue>> members;
    std::set<std::string> seen;
    skip_ws();
    if (at('}')) {
      ++i_;
      return tag(JsonValue::make_object(std::move(members)));
    }
    for (;;) {
      skip_ws();
      if (!at('"')) unexpected("a string key");
      size_t key_at = i_;
      std::string key = parse_string();
      if (!seen.insert(key).second) error(key_at, "duplicate key \"" + key + "\"");
      skip_ws();
      if (!at(':')) unexpected("':'");
      ++i_;
      skip_ws();
      JsonValue v = parse_value(depth);
      members.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (at(',')) { ++i_; continue; }
      if (at('}')) { ++i_; break; }
      unexpected("',' or '}'");
    }
    return tag(JsonValue::make_object(std::move(members)));
  }

  uint32_t hex4() {
    if (n_ - i_ < 4) error(i_, "truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k, ++i_) {
      unsigned char c = p_[i_];
      uint32_t d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else error(i_, "invalid hex digit " + describe_byte(c) + " in \\u escape");
      v = v * 16 + d;
    }
    return v;
  }

  // Length of the valid UTF-8 sequence starting at i_ (RFC 3629: no overlongs, no surrogates,
  // nothing above U+10FFFF), or 0 when invalid.
  size_t utf8_length() const {
    unsigned char c = p_[i_];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else return 0;
    if (n_ - i_ < len) return 0;
    if (p_[i_ + 1] < lo || p_[i_ + 1] > hi) return 0;
    for (size_t k = 2; k < len; ++k)
      if (p_[i_ + k] < 0x80 || p_[i_ + k] > 0xBF) return 0;
    return len;
  }

  std::string parse_string() {
    ++i_;  // opening quote
    std::string out;
    for (;;) {
      // Copy the run of plain ASCII in one go.
      size_t run = i_;
      while (run < n_ && p_[run] >= 0x20 && p_[run] < 0x80 && p_[run] != '"' && p_[run] != '\\') ++run;
      out.append(reinterpret_cast<const char*>(p_ + i_), run - i_);
      i_ = run;
      if (i_ >= n_) error(i_, "unterminated string");
      unsigned char c = p_[i_];
      if (c == '"') {
        ++i_;
        return out;
      }
      if (c < 0x20) error(i_, "unescaped control character " + describe_byte(c) + " in string");
      if (c >= 0x80) {
        size_t len = utf8_length();
        if (len == 0) error(i_, "invalid UTF-8 in string");
        out.append(reinterpret_cast<const char*>(p_ + i_), len);
        i_ += len;
        continue;
      }
      // Backslash escape.
      size_t esc_at = i_++;
      if (i_ >= n_) error(i_, "unterminated string");
      switch (p_[i_++]) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) error(esc_at, "unpaired low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (n_ - i_ < 2 || p_[i_] != '\\' || p_[i_ + 1] != 'u')
              error(esc_at, "high surrogate not followed by a \\u low surrogate");
            i_ += 2;
            uint32_t low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) error(esc_at, "high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: error(esc_at, "invalid escape \\" + std::string(1, static_cast<char>(p_[i_ - 1])));
      }
    }
  }

  JsonValue parse_number() {
    size_t start = i_;
    auto digits = [&] {
      size_t d = i_;
      while (i_ < n_ && p_[i_] >= '0' && p_[i_] <= '9') ++i_;
      return i_ - d;
    };
    if (at('-')) ++i_;
    if (at('0')) {
      ++i_;  // no leading zeros: "01" leaves '1' as trailing garbage
    } else if (digits() == 0) {
      error(start, "invalid number (expected a digit)");
    }
    if (at('.')) {
      ++i_;
      if (digits() == 0) error(i_, "invalid number (expected a digit after '.')");
    }
    if (at('e') || at('E')) {
      ++i_;
      if (at('+') || at('-')) ++i_;
      if (digits() == 0) error(i_, "invalid number (expected a digit in the exponent)");
    }
    // strtod reads the decimal point of the current C locale; the addon may run in a process that
    // set one, so translate '.' to it.
    std::string text(reinterpret_cast<const char*>(p_ + start), i_ - start);
    char point = *std::localeconv()->decimal_point;
    if (point != '.')
      for (char& ch : text)
        if (ch == '.') ch = point;
    errno = 0;
    char* end = nullptr;
    double d = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) error(start, "invalid number");
    // Overflow is an error (no infinities in JSON); underflow to zero or a denormal is accepted.
    if (errno == ERANGE && std::isinf(d)) error(start, "number out of range");
    return tag(JsonValue::make_number(d));
  }
};

// --- JsonValue -------------------------------------------------------------------------------------

namespace {
[[noreturn]] void kind_error(ErrorCode code, JsonValue::Kind actual, const char* expected) {
  fail(code, std::string("JSON value is ") + kind_name(actual) + ", expected " + expected);
}
}  // namespace

bool JsonValue::as_bool() const {
  if (kind_ != Kind::Bool) kind_error(code_, kind_, "a boolean");
  return b_;
}

double JsonValue::as_number() const {
  if (kind_ != Kind::Number) kind_error(code_, kind_, "a number");
  return num_;
}

int64_t JsonValue::as_int() const {
  if (kind_ != Kind::Number) kind_error(code_, kind_, "an integer");
  // 2^63 is exactly representable; every double in [-2^63, 2^63) converts without overflow.
  constexpr double kLimit = 9223372036854775808.0;
  if (!(std::trunc(num_) == num_ && num_ >= -kLimit && num_ < kLimit)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", num_);
    fail(code_, std::string("JSON number ") + buf + " is not an integer in the 64-bit range");
  }
  return static_cast<int64_t>(num_);
}

const std::string& JsonValue::as_string() const {
  if (kind_ != Kind::String) kind_error(code_, kind_, "a string");
  return str_;
}

const std::vector<JsonValue>& JsonValue::as_array() const {
  if (kind_ != Kind::Array) kind_error(code_, kind_, "an array");
  return arr_;
}

const std::map<std::string, JsonValue>& JsonValue::as_object() const {
  if (kind_ != Kind::Object) kind_error(code_, kind_, "an object");
  return obj_;
}

const JsonValue* JsonValue::find(const std::string& key) const {
  if (kind_ != Kind::Object) return nullptr;
  auto it = obj_.find(key);
  return it == obj_.end() ? nullptr : &it->second;
}

JsonValue JsonValue::make_bool(bool b) {
  JsonValue v;
  v.kind_ = Kind::Bool;
  v.b_ = b;
  return v;
}

JsonValue JsonValue::make_number(double d) {
  JsonValue v;
  v.kind_ = Kind::Number;
  v.num_ = d;
  return v;
}

JsonValue JsonValue::make_string(std::string s) {
  JsonValue v;
  v.kind_ = Kind::String;
  v.str_ = std::move(s);
  return v;
}

JsonValue JsonValue::make_array(std::vector<JsonValue> items) {
  JsonValue v;
  v.kind_ = Kind::Array;
  v.arr_ = std::move(items);
  return v;
}

JsonValue JsonValue::make_object(std::vector<std::pair<std::string, JsonValue>> members) {
  JsonValue v;
  v.kind_ = Kind::Object;
  v.keys_.reserve(members.size());
  for (auto& m : members) {
    HAYATE_CHECK(!v.obj_.count(m.first), ErrorCode::kInvalidArgument, "duplicate JSON object key \"" + m.first + "\"");
    v.keys_.push_back(m.first);
    v.obj_.emplace(std::move(m.first), std::move(m.second));
  }
  return v;
}

JsonValue parse_json(const char* data, size_t size, const std::string& source, ErrorCode code) {
  return JsonParser(data, size, source, code).parse_document();
}

}  // namespace hayate
