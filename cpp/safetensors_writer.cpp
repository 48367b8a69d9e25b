#include "safetensors_writer.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <set>

#include "errors.h"

namespace hayate {

namespace {

size_t dtype_bytes(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "BF16" || d == "F16" || d == "I16" || d == "U16") return 2;
  if (d == "BOOL" || d == "U8" || d == "I8" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      header += (first ? "" : ",") + json_string(k) + ":" + json_string(v);
      first = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const SafetensorsEntry& e : entries) {
    const size_t es = dtype_bytes(e.dtype_name);
    HAYATE_CHECK(es > 0, ErrorCode::kInvalidArgument, "safetensors: unknown dtype '" + e.dtype_name + "' for " + e.name);
    HAYATE_CHECK(names.insert(e.name).second, ErrorCode::kInvalidArgument, "safetensors: duplicate tensor name " + e.name);
    uint64_t numel = 1;
    std::string shape;
    for (int64_t d : e.shape) {
      HAYATE_CHECK(d >= 0, ErrorCode::kInvalidArgument, "safetensors: negative dimension in " + e.name);
      numel *= static_cast<uint64_t>(d);
      shape += (shape.empty() ? "" : ",") + std::to_string(d);
    }
    HAYATE_CHECK(numel * es == e.bytes, ErrorCode::kInvalidArgument, "safetensors: byte size of " + e.name + " does not match its shape");
    header += (header.size() > 1 ? "," : "") + json_string(e.name) + ":{\"dtype\":" + json_string(e.dtype_name) +
              ",\"shape\":[" + shape + "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + e.bytes) + "]}";
    offset += e.bytes;
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';  // tensor data starts 8-byte aligned

  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  HAYATE_CHECK(f != nullptr, ErrorCode::kIo, "cannot write " + path + ": " + std::strerror(errno));
  bool ok = true;
  try {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
    ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(header.data(), 1, header.size(), f) == header.size();
    for (const SafetensorsEntry& e : entries) {
      if (!ok) break;
      if (e.data) {
        ok = std::fwrite(e.data, 1, e.bytes, f) == e.bytes;
      } else {
        std::vector<uint8_t> bytes = e.produce();
        HAYATE_CHECK(bytes.size() == e.bytes, ErrorCode::kInternal, "safetensors: " + e.name + " produced the wrong size");
        ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
      }
    }
    ok = std::fflush(f) == 0 && ok;
    ok = ::fsync(::fileno(f)) == 0 && ok;
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    fail(ErrorCode::kIo, "cannot write " + path + ": " + why);
  }
}

}  // namespace hayate
