// JSON reader: every value kind, every escape, each class of malformed input, hostile nesting.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "json.h"

using hayate::ErrorCode;
using hayate::JsonValue;

namespace {

JsonValue parse(const std::string& s) { return hayate::parse_json(s, "t.json", ErrorCode::kBadConfig); }

// The error message for `s`, or "" when it parses.
std::string error_of(const std::string& s) {
  try {
    parse(s);
  } catch (const hayate::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(json_scalars) {
  CHECK(parse("null").is_null());
  CHECK(parse("true").as_bool() == true);
  CHECK(parse("false").as_bool() == false);
  CHECK(parse("0").as_int() == 0);
  CHECK(parse("-0").as_number() == 0.0);
  CHECK(parse("123").as_int() == 123);
  CHECK(parse("-42").as_int() == -42);
  CHECK_NEAR(parse("3.25").as_number(), 3.25, 0);
  CHECK_NEAR(parse("-1.5e3").as_number(), -1500.0, 0);
  CHECK_NEAR(parse("1E+2").as_number(), 100.0, 0);
  CHECK_NEAR(parse("2.5e-1").as_number(), 0.25, 0);
  CHECK_NEAR(parse("1e-06").as_number(), 1e-6, 1e-20);
  CHECK(parse("1e-400").as_number() == 0.0);  // underflow is accepted as zero
  CHECK(parse("10000000000").as_int() == 10000000000LL);
  CHECK(parse("\"hi\"").as_string() == "hi");
  CHECK(parse("\"\"").as_string().empty());
  CHECK(parse(" \t\r\n 7 \n").as_int() == 7);  // surrounding whitespace
}

TEST(json_string_escapes) {
  CHECK(parse(R"("\"\\\/\b\f\n\r\t")").as_string() == "\"\\/\b\f\n\r\t");
  CHECK(parse(R"("\u0041\u00e9\u20AC")").as_string() == "A\xC3\xA9\xE2\x82\xAC");
  CHECK(parse(R"("\ud83d\ude00")").as_string() == "\xF0\x9F\x98\x80");  // surrogate pair -> U+1F600
  CHECK(parse(R"("\uDBFF\uDFFF")").as_string() == "\xF4\x8F\xBF\xBF");  // U+10FFFF
  std::string nul = parse(R"("a\u0000b")").as_string();
  CHECK(nul.size() == 3 && nul[1] == '\0');
  // Raw UTF-8 passes through unchanged (2, 3 and 4 byte sequences).
  CHECK(parse("\"\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80\"").as_string() == "\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80");
}

TEST(json_containers) {
  JsonValue v = parse(R"({"b": [1, 2.5, "x", null, true, {}], "a": {"k": []}, "c": -1})");
  CHECK(v.is_object());
  CHECK(v.as_object().size() == 3);
  CHECK((v.keys() == std::vector<std::string>{"b", "a", "c"}));  // file order
  const JsonValue* b = v.find("b");
  CHECK(b && b->is_array() && b->as_array().size() == 6);
  CHECK(b->as_array()[0].as_int() == 1);
  CHECK(b->as_array()[2].as_string() == "x");
  CHECK(b->as_array()[3].is_null());
  CHECK(b->as_array()[5].is_object() && b->as_array()[5].as_object().empty());
  CHECK(v.find("a")->find("k")->as_array().empty());
  CHECK(v.find("missing") == nullptr);
  CHECK(b->find("x") == nullptr);  // find on a non-object
  CHECK(parse("[]").as_array().empty());
  CHECK(parse("{ }").as_object().empty());
}

TEST(json_accessor_errors_use_parse_code) {
  JsonValue v = hayate::parse_json("[1.5, \"s\", 1e19]", "x", ErrorCode::kBadSafetensors);
  const auto& a = v.as_array();
  CHECK_THROWS_CODE(a[0].as_int(), ErrorCode::kBadSafetensors);     // not integral
  CHECK_THROWS_CODE(a[2].as_int(), ErrorCode::kBadSafetensors);     // out of int64 range
  CHECK_THROWS_CODE(a[1].as_number(), ErrorCode::kBadSafetensors);  // kind mismatch
  CHECK_THROWS_CODE(a[0].as_string(), ErrorCode::kBadSafetensors);
  CHECK_THROWS_CODE(v.as_object(), ErrorCode::kBadSafetensors);
  CHECK_THROWS_CODE(a[1].as_bool(), ErrorCode::kBadSafetensors);
  CHECK_THROWS_CODE(a[1].as_array(), ErrorCode::kBadSafetensors);
  CHECK_THROWS_CODE(JsonValue::make_object({{"k", JsonValue()}, {"k", JsonValue()}}), ErrorCode::kInvalidArgument);
}

TEST(json_malformed_inputs) {
  const std::vector<std::string> bad = {
      "", " ", "[", "]", "{", "}", "[1,]", "[,1]", "[1 2]", "[1,,2]", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":}",
      "{a:1}", "{1:1}", "{\"a\":1 \"b\":2}", "{\"a\":1}}", "[1]]", "1 2", "[] x", "nul", "tru", "falsey", "True",
      "NaN", "Infinity", "-Infinity", "'a'", "01", "-01", "1.", ".5", "-", "+1", "1e", "1e+", "1.e3", "0x10",
      "1e400", "-1e400", "\"abc", "\"a\x01\"", "\"tab\there\"", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\",
      "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"", "\"\xff\"", "\"\xc0\xaf\"",
      "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "\"\x80\"", "\xef\xbb\xbf{}", "// c\n1",
      "/* c */ 1", "[1] // c", std::string("[1]\0", 4), std::string("\0", 1), "\x0b 1", "{\"a\":1,\"a\":2}",
  };
  for (const std::string& s : bad) {
    std::string msg = error_of(s);
    if (msg.empty()) std::fprintf(stderr, "    accepted malformed JSON: %s\n", s.c_str());
    CHECK(!msg.empty());
    CHECK_THROWS_CODE(parse(s), ErrorCode::kBadConfig);
  }
}

TEST(json_error_messages_name_source_and_byte) {
  std::string msg = error_of("[1,]");
  CHECK(msg.rfind("t.json: invalid JSON at byte 3: ", 0) == 0);
  msg = error_of("{\"a\":1,\"a\":2}");
  CHECK(msg.find("byte 7") != std::string::npos);
  CHECK(msg.find("duplicate key \"a\"") != std::string::npos);
  msg = error_of("[1] x");
  CHECK(msg.find("byte 4") != std::string::npos);
  msg = error_of("\"a\x01\"");
  CHECK(msg.find("0x01") != std::string::npos);  // binary bytes are shown in hex
}

TEST(json_nesting_limit) {
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  CHECK(!parse(nested(256)).is_null());  // exactly at the limit
  CHECK_THROWS_CODE(parse(nested(257)), ErrorCode::kBadConfig);
  CHECK_THROWS_CODE(parse(std::string(10000, '[')), ErrorCode::kBadConfig);  // must throw, not overflow the stack
  CHECK_THROWS_CODE(parse(nested(100000)), ErrorCode::kBadConfig);
  std::string objects;
  for (int i = 0; i < 10000; ++i) objects += "{\"a\":";
  CHECK_THROWS_CODE(parse(objects), ErrorCode::kBadConfig);
  CHECK(error_of(std::string(10000, '[')).find("nesting deeper than 256") != std::string::npos);
}

TEST(json_fuzz_only_throws_hayate_errors) {
  // Random strings over JSON's alphabet: every input either parses or throws hayate::Error.
  const char alphabet[] = "{}[]:,\"\\ue0123456789.-+Etrunlfas \n\x01\xc3\xa9\xff";
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int parsed = 0, other = 0;
  for (int it = 0; it < 20000; ++it) {
    std::string s(next() % 24, ' ');
    for (char& c : s) c = alphabet[next() % (sizeof(alphabet) - 1)];
    try {
      parse(s);
      ++parsed;
    } catch (const hayate::Error&) {
    } catch (...) {
      ++other;
    }
  }
  CHECK(other == 0);
  CHECK(parsed > 0);
}
