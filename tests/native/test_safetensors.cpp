// Safetensors reader: files written by a tiny writer below, read back through the mmap; every invalid
// header class; sharded directories; and a fuzz loop that must only ever produce hayate::Error. Writer:
// exact header bytes, streaming, bad input, the sharded index, and no temporary file left behind.
#include "safetensors.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "check.h"
#include "rng.h"
#include "safetensors_writer.h"

using hayate::ErrorCode;
using hayate::SafetensorsFile;
using hayate::TensorInfo;
using hayate::TensorStore;

namespace {

using hayate_test::TempDir;

void write_file(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int k = 0; k < 8; ++k) s[k] = static_cast<char>((n >> (8 * k)) & 0xFF);
  return s;
}

// Header length + header + data, as the format lays it out (header padded with spaces to 8 bytes).
std::string raw_file(std::string header, const std::string& data) {
  while (header.size() % 8) header += ' ';
  return le64(header.size()) + header + data;
}

struct Spec {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

template <class T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A valid safetensors file holding `specs` back to back.
std::string st_file(const std::vector<Spec>& specs, const std::string& metadata = "") {
  std::string header = "{", data;
  if (!metadata.empty()) header += "\"__metadata__\":" + metadata;
  for (const Spec& s : specs) {
    if (header.size() > 1) header += ",";
    header += "\"" + s.name + "\":{\"dtype\":\"" + s.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < s.shape.size(); ++i) header += (i ? "," : "") + std::to_string(s.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(data.size()) + "," + std::to_string(data.size() + s.bytes.size()) +
              "]}";
    data += s.bytes;
  }
  return raw_file(header + "}", data);
}

std::vector<TensorInfo> parse_bytes(const std::string& file) {
  return hayate::parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), file.size(), file.size(),
                                          "mem.safetensors");
}

std::string error_of_bytes(const std::string& file) {
  try {
    parse_bytes(file);
  } catch (const hayate::Error& e) {
    return e.what();
  }
  return "";
}

const std::vector<float> kF32 = {0.f, 1.f, 2.f, 3.f, 4.f, -5.5f};

std::vector<Spec> sample_specs() {
  std::vector<uint16_t> bf16, f16;
  for (float f : {1.f, -2.f, 0.5f, 3.f}) {
    bf16.push_back(hayate::f32_to_bf16(f));
    f16.push_back(hayate::f32_to_f16(f));
  }
  return {{"w.f32", "F32", {2, 3}, bytes_of(kF32)},
          {"w.bf16", "BF16", {4}, bytes_of(bf16)},
          {"w.f16", "F16", {2, 2}, bytes_of(f16)},
          {"ids", "I64", {2}, bytes_of(std::vector<int64_t>{7, 9})},
          {"empty", "F32", {0, 3}, ""}};
}

const TensorInfo* find(const std::vector<TensorInfo>& ts, const std::string& name) {
  for (const TensorInfo& t : ts)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace

TEST(safetensors_valid_file_reads_back) {
  TempDir dir;
  write_file(dir.file("m.safetensors"), st_file(sample_specs(), R"({"format":"pt"})"));
  SafetensorsFile f(dir.file("m.safetensors"));
  const auto& ts = f.tensors();
  CHECK(ts.size() == 5);
  CHECK(ts[0].name == "w.f32" && ts[4].name == "empty");  // file order
  CHECK(f.metadata().at("format") == "pt");

  const TensorInfo* a = find(ts, "w.f32");
  CHECK(a && a->dtype_supported && a->dtype == hayate::DType::F32);
  CHECK((a->shape == std::vector<int64_t>{2, 3}) && a->numel() == 6);
  CHECK(a->file == dir.file("m.safetensors"));
  CHECK(std::memcmp(a->data, kF32.data(), 24) == 0);

  const TensorInfo* b = find(ts, "w.bf16");
  CHECK(b && b->dtype == hayate::DType::BF16 && b->data_end - b->data_begin == 8);
  float out[4];
  hayate::convert_to_f32(out, b->data, b->dtype, 4);
  CHECK(out[0] == 1.f && out[1] == -2.f && out[2] == 0.5f && out[3] == 3.f);

  const TensorInfo* c = find(ts, "w.f16");
  CHECK(c && c->dtype == hayate::DType::F16);
  hayate::convert_to_f32(out, c->data, c->dtype, 4);
  CHECK(out[0] == 1.f && out[1] == -2.f && out[2] == 0.5f && out[3] == 3.f);
  CHECK(static_cast<const char*>(c->data) == static_cast<const char*>(b->data) + 8);

  const TensorInfo* ids = find(ts, "ids");
  CHECK(ids && !ids->dtype_supported && ids->dtype_name == "I64");
  int64_t id1;
  std::memcpy(&id1, static_cast<const char*>(ids->data) + 8, 8);
  CHECK(id1 == 9);
  CHECK(find(ts, "empty")->numel() == 0);
}

TEST(safetensors_header_only_buffer) {
  // The addon passes only the first bytes of a file plus its full size: enough to list tensors.
  std::string file = st_file(sample_specs());
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  std::vector<TensorInfo> ts = hayate::parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), 8 + n,
                                                                file.size(), "buf");
  CHECK(ts.size() == 5 && ts[0].data == nullptr);
  CHECK_THROWS_CODE(
      hayate::parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.data()), 8 + n - 1, file.size(), "buf"),
      ErrorCode::kBadSafetensors);
  // A header length within a (claimed) huge file but over the 100 MB cap.
  std::string big = le64(200000000) + "{}";
  try {
    hayate::parse_safetensors_header(reinterpret_cast<const uint8_t*>(big.data()), big.size(), 1ull << 40, "buf");
    CHECK(false);
  } catch (const hayate::Error& e) {
    CHECK(std::string(e.what()).find("100 MB") != std::string::npos);
  }
}

TEST(safetensors_all_dtype_names) {
  const char* names[] = {"BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64",
                         "F8_E4M3", "F8_E5M2"};
  const int sizes[] = {1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8, 1, 1};
  for (int i = 0; i < 15; ++i) {
    std::vector<TensorInfo> ts = parse_bytes(st_file({{"t", names[i], {3}, std::string(3 * sizes[i], 'x')}}));
    CHECK(ts.size() == 1 && ts[0].dtype_name == names[i]);
    // One byte fewer than 3 elements need must be rejected.
    CHECK_THROWS_CODE(parse_bytes(st_file({{"t", names[i], {3}, std::string(3 * sizes[i] - 1, 'x')}})),
                      ErrorCode::kBadSafetensors);
  }
}

TEST(safetensors_bad_files) {
  const std::string data(24, 'd');
  auto header_with = [&](const std::string& entry) { return raw_file("{\"t\":" + entry + "}", data); };
  struct Case {
    const char* what;
    std::string bytes;
    const char* expect;  // a substring of the message
  };
  std::string valid = st_file({{"a", "F32", {2}, std::string(8, 'a')}, {"b", "F32", {2}, std::string(8, 'b')}});
  std::vector<Case> cases = {
      {"empty file", "", "empty"},
      {"shorter than 8 bytes", "abcde", "too short"},
      {"header length 0", le64(0) + "{}", "header length is 0"},
      {"header larger than file", le64(1000) + "{}", "larger than the rest of the file"},
      {"header over 100 MB", le64(200000000) + std::string(8, ' '), nullptr},
      {"truncated body", valid.substr(0, valid.size() - 1), "past the end"},
      {"offsets past end", header_with(R"({"dtype":"F32","shape":[8],"data_offsets":[0,32]})"), "past the end"},
      {"unknown dtype", header_with(R"({"dtype":"F128","shape":[1],"data_offsets":[0,16]})"), "unknown dtype"},
      {"lowercase dtype", header_with(R"({"dtype":"f32","shape":[1],"data_offsets":[0,4]})"), "unknown dtype"},
      {"size mismatch", header_with(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,20]})"), "needs 24 bytes"},
      {"begin > end", header_with(R"({"dtype":"F32","shape":[0],"data_offsets":[8,4]})"), "begin"},
      {"overlap", raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data), "overlap"},
      {"non-object header", raw_file("[1,2]", data), "not a JSON object"},
      {"invalid JSON header", raw_file("{\"t\":", data), "invalid JSON"},
      {"binary header", le64(8) + std::string("\xff\xfe\x00\x01\x02\x03\x04\x05", 8), "invalid JSON"},
      {"entry not object", header_with("[1]"), "not an object"},
      {"missing dtype", header_with(R"({"shape":[1],"data_offsets":[0,4]})"), "dtype"},
      {"missing shape", header_with(R"({"dtype":"F32","data_offsets":[0,4]})"), "shape"},
      {"missing offsets", header_with(R"({"dtype":"F32","shape":[1]})"), "data_offsets"},
      {"negative shape", header_with(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"), "non-negative"},
      {"fractional shape", header_with(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"), "non-negative"},
      {"string shape", header_with(R"({"dtype":"F32","shape":["1"],"data_offsets":[0,4]})"), "not a number"},
      {"three offsets", header_with(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})"), "2 integers"},
      {"negative offset", header_with(R"({"dtype":"F32","shape":[0],"data_offsets":[-4,0]})"), "non-negative"},
      {"huge offset", header_with(R"({"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,1]})"),
       "non-negative"},
      {"shape overflow",
       header_with(R"({"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]})"),
       "too large"},
      {"metadata not object", raw_file(R"({"__metadata__":[1]})", data), "__metadata__"},
      {"metadata value not string", raw_file(R"({"__metadata__":{"a":1}})", data), "not a string"},
      {"duplicate tensor", raw_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                    R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", data), "duplicate"},
  };
  TempDir dir;
  for (const Case& c : cases) {
    std::string msg = error_of_bytes(c.bytes);
    if (msg.empty() || (c.expect && msg.find(c.expect) == std::string::npos))
      std::fprintf(stderr, "    case '%s': got '%s'\n", c.what, msg.c_str());
    CHECK(!msg.empty());
    CHECK(msg.rfind("mem.safetensors", 0) == 0);  // names the file
    if (c.expect) CHECK(msg.find(c.expect) != std::string::npos);
    // The same bytes on disk through the memory-mapped reader.
    write_file(dir.file("bad.safetensors"), c.bytes);
    CHECK_THROWS_CODE(SafetensorsFile(dir.file("bad.safetensors")), ErrorCode::kBadSafetensors);
  }
  CHECK_THROWS_CODE(SafetensorsFile(dir.file("absent.safetensors")), ErrorCode::kNotFound);
  CHECK_THROWS_CODE(SafetensorsFile(dir.path), ErrorCode::kIo);  // a directory
}

TEST(safetensors_store_single_file) {
  TempDir dir;
  write_file(dir.file("model.safetensors"), st_file(sample_specs()));
  write_file(dir.file("other.safetensors"), st_file({{"ignored", "F32", {1}, std::string(4, 'x')}}));
  auto store = TensorStore::open_dir(dir.path);
  CHECK(store->has("w.f32") && !store->has("ignored"));  // model.safetensors wins over other files
  CHECK((store->names() == std::vector<std::string>{"empty", "ids", "w.bf16", "w.f16", "w.f32"}));
  CHECK(std::memcmp(store->get("w.f32").data, kF32.data(), 24) == 0);
  CHECK(store->get_checked("w.f32", {2, 3}).numel() == 6);
  CHECK(store->get_checked("w.bf16", {4}).dtype == hayate::DType::BF16);
  CHECK_THROWS_CODE(store->get("nope"), ErrorCode::kBadTensor);
  CHECK_THROWS_CODE(store->get_checked("w.f32", {3, 2}), ErrorCode::kBadTensor);
  CHECK_THROWS_CODE(store->get_checked("w.f32", {6}), ErrorCode::kBadTensor);
  CHECK_THROWS_CODE(store->get_checked("ids", {2}), ErrorCode::kBadTensor);  // I64 is not a float type
  try {
    store->get_checked("w.f32", {3, 2});
  } catch (const hayate::Error& e) {
    std::string m = e.what();
    CHECK(m.find("model.safetensors: tensor 'w.f32' has shape [2, 3], expected [3, 2]") != std::string::npos);
  }
  try {
    store->get_checked("ids", {2});
  } catch (const hayate::Error& e) {
    CHECK(std::string(e.what()).find("dtype I64") != std::string::npos);
  }
  try {
    store->get("nope");
  } catch (const hayate::Error& e) {
    CHECK(std::string(e.what()) == dir.path + ": tensor 'nope' not found");
  }
}

TEST(safetensors_store_sharded_with_index) {
  TempDir dir;
  write_file(dir.file("model-00001-of-00002.safetensors"), st_file({{"a", "F32", {6}, bytes_of(kF32)}}));
  write_file(dir.file("model-00002-of-00002.safetensors"),
             st_file({{"b", "F32", {2}, bytes_of(std::vector<float>{7.f, 8.f})},
                      {"c", "F32", {1}, bytes_of(std::vector<float>{9.f})}}));
  write_file(dir.file("model.safetensors.index.json"),
             R"({"metadata":{"total_size":36},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
             R"("b":"model-00002-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})");
  auto store = TensorStore::open_dir(dir.path);
  CHECK((store->names() == std::vector<std::string>{"a", "b", "c"}));
  CHECK(store->get("a").file == dir.file("model-00001-of-00002.safetensors"));
  CHECK(store->get("c").file == dir.file("model-00002-of-00002.safetensors"));
  CHECK(static_cast<const float*>(store->get_checked("b", {2}).data)[1] == 8.f);
  CHECK(static_cast<const float*>(store->get_checked("c", {1}).data)[0] == 9.f);
  CHECK(static_cast<const float*>(store->get("a").data)[5] == -5.5f);
}

TEST(safetensors_store_bad_index) {
  TempDir dir;
  write_file(dir.file("s1.safetensors"), st_file({{"a", "F32", {1}, std::string(4, 'x')}}));
  auto index = [&](const std::string& text) { write_file(dir.file("model.safetensors.index.json"), text); };

  index(R"({"weight_map":{"a":"s1.safetensors","b":"missing.safetensors"}})");
  CHECK_THROWS_CODE(TensorStore::open_dir(dir.path), ErrorCode::kNotFound);
  try {
    TensorStore::open_dir(dir.path);
  } catch (const hayate::Error& e) {
    CHECK(std::string(e.what()).find("missing.safetensors") != std::string::npos);
  }
  index(R"({"weight_map":["s1.safetensors"]})");
  CHECK_THROWS_CODE(TensorStore::open_dir(dir.path), ErrorCode::kBadSafetensors);
  index(R"({"weight_map":{"a":1}})");
  CHECK_THROWS_CODE(TensorStore::open_dir(dir.path), ErrorCode::kBadSafetensors);
  index(R"({"metadata":{}})");
  CHECK_THROWS_CODE(TensorStore::open_dir(dir.path), ErrorCode::kBadSafetensors);
  index(R"({"weight_map":{}})");
  CHECK_THROWS_CODE(TensorStore::open_dir(dir.path), ErrorCode::kBadSafetensors);
  index(R"({"weight_map":{"a":"s1.safetensors")");
  CHECK_THROWS_CODE(TensorStore::open_dir(dir.path), ErrorCode::kBadSafetensors);
  index(R"({"weight_map":{"zzz":"s1.safetensors"}})");  // the shard does not hold the tensor
  CHECK_THROWS_CODE(TensorStore::open_dir(dir.path), ErrorCode::kBadSafetensors);
  index(R"({"weight_map":{"a":"s1.safetensors"}})");
  CHECK(TensorStore::open_dir(dir.path)->has("a"));
}

TEST(safetensors_store_directory_fallbacks) {
  CHECK_THROWS_CODE(TensorStore::open_dir("/nonexistent/hayate/model"), ErrorCode::kNotFound);
  TempDir dir;
  try {
    TensorStore::open_dir(dir.path);
    CHECK(false);
  } catch (const hayate::Error& e) {
    CHECK(e.code() == ErrorCode::kNotFound);
    CHECK(std::string(e.what()) == dir.path + ": no model.safetensors or model.safetensors.index.json");
  }
  // No index and no model.safetensors: every *.safetensors, in name order.
  write_file(dir.file("b.safetensors"), st_file({{"y", "F32", {1}, std::string(4, 'y')}}));
  write_file(dir.file("a.safetensors"), st_file({{"x", "F32", {1}, std::string(4, 'x')}}));
  write_file(dir.file("notes.txt"), "not weights");
  auto store = TensorStore::open_dir(dir.path);
  CHECK(store->has("x") && store->has("y"));
  CHECK(*static_cast<const char*>(store->get("y").data) == 'y');
  // The same tensor name in two files is ambiguous.
  write_file(dir.file("c.safetensors"), st_file({{"x", "F32", {1}, std::string(4, 'z')}}));
  CHECK_THROWS_CODE(TensorStore::open_dir(dir.path), ErrorCode::kBadSafetensors);
  // A bad shard is reported as such.
  write_file(dir.file("c.safetensors"), "garbage!");
  CHECK_THROWS_CODE(TensorStore::open_dir(dir.path), ErrorCode::kBadSafetensors);
}

TEST(safetensors_fuzz_only_throws_hayate_errors) {
  const std::string valid = st_file(sample_specs(), R"({"format":"pt"})");
  const char* tokens[] = {"-1", "1e300", "[", "]", "{", "}", "\"F16\"", "\"I64\"", "18446744073709551615", "null",
                          "0", "4294967296", ",", ":", "\"", "\\u0000", "1.5", "\"data_offsets\"", "\"shape\"", "[0,0]"};
  uint64_t counter = 0;
  auto rnd = [&](uint64_t n) { return hayate::splitmix64(++counter) % n; };
  int accepted = 0, rejected = 0, other = 0;
  for (int it = 0; it < 20000; ++it) {
    std::string buf;
    switch (it % 4) {
      case 0: {  // random bytes, sometimes with a plausible header length
        buf.resize(rnd(96));
        for (char& c : buf) c = static_cast<char>(rnd(256));
        if (buf.size() >= 8 && rnd(2)) buf.replace(0, 8, le64(rnd(buf.size())));
        break;
      }
      case 1: {  // byte flips in a valid file
        buf = valid;
        for (uint64_t k = 0, n = 1 + rnd(4); k < n; ++k) buf[rnd(buf.size())] = static_cast<char>(rnd(256));
        break;
      }
      case 2: {  // token splices inside the JSON header
        buf = valid;
        uint64_t n = 0;
        std::memcpy(&n, buf.data(), 8);
        std::string header = buf.substr(8, n);
        size_t at = rnd(header.size()), len = rnd(6);
        header.replace(at, std::min(len, header.size() - at), tokens[rnd(sizeof(tokens) / sizeof(*tokens))]);
        buf = raw_file(header, buf.substr(8 + n));
        break;
      }
      default: {  // truncation or extension, and a wrong header length
        buf = valid.substr(0, rnd(valid.size() + 1));
        if (rnd(2)) buf += std::string(rnd(64), static_cast<char>(rnd(256)));
        if (buf.size() >= 8 && rnd(3) == 0) buf.replace(0, 8, le64(rnd(1 << 12)));
        break;
      }
    }
    // Sometimes claim the file is longer than the buffer (the addon's header-only mode).
    uint64_t file_size = buf.size() + (rnd(4) == 0 ? rnd(64) : 0);
    try {
      auto ts = hayate::parse_safetensors_header(reinterpret_cast<const uint8_t*>(buf.data()), buf.size(), file_size,
                                                 "fuzz");
      for (const TensorInfo& t : ts) CHECK(t.data_begin <= t.data_end && t.data_end <= file_size);
      ++accepted;
    } catch (const hayate::Error& e) {
      if (e.code() != ErrorCode::kBadSafetensors) ++other;
      ++rejected;
    } catch (...) {
      ++other;
    }
  }
  CHECK(other == 0);
  CHECK(accepted > 0 && rejected > 0);
  std::fprintf(stderr, "    fuzz: %d accepted, %d rejected\n", accepted, rejected);
}

// --- writer ----------------------------------------------------------------------------------------

namespace {

std::string read_file(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, got);
    std::fclose(f);
  }
  return out;
}

// Names in a directory other than "." and "..".
std::vector<std::string> dir_entries(const std::string& path) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) out.push_back(e->d_name);
    ::closedir(d);
  }
  return out;
}

}  // namespace

TEST(safetensors_writer_header_bytes_and_round_trip) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  {
    hayate::SafetensorsWriter w(path,
                                {{"a", "F32", {2}}, {"q\"\n\t\x01", "BF16", {2, 2}}, {"h", "F16", {3}}, {"e", "F32", {0, 4}}},
                                {{"step", "3"}, {"format", "pt"}});
    const float a[] = {1.f, -2.5f}, q[] = {1.f, 2.f, 3.f, 1.f + 1.f / 256}, h[] = {0.5f, 65520.f, -0.f};
    w.write_f32(a, 2);
    w.end_tensor();
    w.write_f32(q, 1);  // chunks of any size
    w.write_f32(q + 1, 3);
    w.end_tensor();
    w.write_f32(h, 3);
    w.end_tensor();
    w.end_tensor();  // the empty tensor
    w.commit();
  }
  const std::string file = read_file(path);
  // Metadata first in the given order, keys escaped as JSON.stringify does, padded with spaces to 8 bytes.
  std::string json =
      R"({"__metadata__":{"step":"3","format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("q\"\n\t\u0001":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]},)"
      R"("h":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},"e":{"dtype":"F32","shape":[0,4],"data_offsets":[22,22]}})";
  while (json.size() % 8) json += ' ';
  CHECK(file.size() == 8 + json.size() + 22);
  CHECK(file.substr(0, 8) == le64(json.size()));
  CHECK(file.substr(8, json.size()) == json);
  CHECK((dir_entries(dir.path) == std::vector<std::string>{"w.safetensors"}));  // no temporary file left

  SafetensorsFile f(path);
  CHECK(f.tensors().size() == 4 && f.metadata().at("step") == "3");
  float out[4];
  hayate::convert_to_f32(out, f.tensors()[1].data, hayate::DType::BF16, 4);
  CHECK(out[0] == 1.f && out[3] == 1.f);  // 1 + 2^-8 is a tie: rounds to the even bf16, 1
  hayate::convert_to_f32(out, f.tensors()[2].data, hayate::DType::F16, 3);
  CHECK(out[0] == 0.5f && std::isinf(out[1]) && out[2] == 0.f && std::signbit(out[2]));
}

TEST(safetensors_writer_rejects_bad_input_and_leaves_nothing) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  using hayate::SafetensorsWriter;
  CHECK_THROWS_CODE(SafetensorsWriter(path, {{"a", "F128", {1}}}, {}), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(SafetensorsWriter(path, {{"a", "F32", {-1}}}, {}), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(SafetensorsWriter(path, {{"a", "F32", {1}}, {"a", "F32", {1}}}, {}), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(SafetensorsWriter(path, {{"__metadata__", "F32", {1}}}, {}), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(SafetensorsWriter(path, {{"a", "U8", {int64_t(1) << 40, int64_t(1) << 40}}}, {}),
                    ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(SafetensorsWriter(path, {}, {{"k", "1"}, {"k", "2"}}), ErrorCode::kInvalidArgument);
  CHECK(dir_entries(dir.path).empty());
  {
    SafetensorsWriter w(path, {{"w", "F32", {2, 2}}, {"ids", "I64", {1}}}, {});
    const float v[5] = {};
    try {
      w.write_f32(v, 5);
      CHECK(false);
    } catch (const hayate::Error& e) {
      CHECK(std::string(e.what()) == "tensor w: more values than its shape [2,2] holds");
    }
    w.write_f32(v, 3);
    try {
      w.end_tensor();
      CHECK(false);
    } catch (const hayate::Error& e) {
      CHECK(std::string(e.what()) == "tensor w: 3 values for shape [2,2]");
    }
    w.write_f32(v, 1);
    w.end_tensor();
    CHECK_THROWS_CODE(w.write_f32(v, 1), ErrorCode::kInvalidArgument);  // I64 cannot come from floats
    CHECK_THROWS_CODE(w.commit(), ErrorCode::kInvalidArgument);         // "ids" unfinished
    CHECK(dir_entries(dir.path).size() == 1);                           // the temporary file, until abort
  }
  CHECK(dir_entries(dir.path).empty());  // destroyed unfinished: removed
  // A directory that does not exist: kIo naming the cause.
  try {
    SafetensorsWriter w(dir.file("no/such/dir.safetensors"), {}, {});
    CHECK(false);
  } catch (const hayate::Error& e) {
    CHECK(e.code() == ErrorCode::kIo && std::string(e.what()).find("(ENOENT)") != std::string::npos);
  }
}

TEST(safetensors_write_whole_file_and_index) {
  TempDir dir;
  const std::vector<int64_t> ids = {7, -9};
  hayate::SafetensorsEntry fixed{"ids", "I64", {2}, 16, ids.data(), nullptr};
  hayate::SafetensorsEntry lazy{"b", "U8", {3}, 3, nullptr, [] { return std::vector<uint8_t>{1, 2, 3}; }};
  hayate::write_safetensors(dir.file("m.safetensors"), {fixed, lazy});
  SafetensorsFile f(dir.file("m.safetensors"));
  CHECK(f.metadata().at("format") == "pt");
  int64_t second;
  std::memcpy(&second, static_cast<const char*>(f.tensors()[0].data) + 8, 8);
  CHECK(second == -9 && static_cast<const uint8_t*>(f.tensors()[1].data)[2] == 3);
  hayate::SafetensorsEntry wrong{"w", "F32", {2}, 4, ids.data(), nullptr};
  CHECK_THROWS_CODE(hayate::write_safetensors(dir.file("x.safetensors"), {wrong}), ErrorCode::kInvalidArgument);

  // The index, as JSON.stringify(index, null, 2) + "\n" spells it.
  hayate::write_safetensors_index(dir.file("model.safetensors.index.json"), 19, {{"ids", "m.safetensors"}, {"b", "m.safetensors"}});
  CHECK(read_file(dir.file("model.safetensors.index.json")) ==
        "{\n  \"metadata\": {\n    \"total_size\": 19\n  },\n  \"weight_map\": {\n    \"ids\": \"m.safetensors\",\n"
        "    \"b\": \"m.safetensors\"\n  }\n}\n");
  auto store = TensorStore::open_dir(dir.path);
  CHECK(store->has("ids") && store->has("b") && store->files().size() == 1);
  hayate::write_safetensors_index(dir.file("empty.json"), 0, {});
  CHECK(read_file(dir.file("empty.json")) == "{\n  \"metadata\": {\n    \"total_size\": 0\n  },\n  \"weight_map\": {}\n}\n");
}

TEST(safetensors_f16_nan_keeps_payload) {
  // A NaN stays a quiet NaN with the top payload bits, in f16 as in bf16.
  uint32_t bits = 0xffc12345u;
  float nan;
  std::memcpy(&nan, &bits, 4);
  CHECK(hayate::f32_to_f16(nan) == 0xfe09);
  CHECK(hayate::f32_to_bf16(nan) == 0xffc1);
  CHECK(hayate::f32_to_f16(std::numeric_limits<float>::infinity()) == 0x7c00);
}
