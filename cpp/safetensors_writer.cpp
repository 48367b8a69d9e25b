// Safetensors writer: builds the JSON header exactly as JSON.stringify would (so files written before the
// format moved from TypeScript to C++ stay byte-identical), streams tensor bytes through a temporary file
// and renames it into place.
#include "safetensors_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>

#include "errors.h"
#include "rng.h"
#include "tensor.h"

namespace hayate {

namespace {

// The safetensors layout is little-endian, and tensor bytes are copied from memory as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

// JSON.stringify's string form: short escapes for \b \f \n \r \t, \u00xx for the other control characters.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// errno as "No space left on device (ENOSPC)": the symbolic name lets callers (and people) match the cause.
std::string errno_text(int err) {
  static const struct {
    int code;
    const char* name;
  } kNames[] = {{ENOSPC, "ENOSPC"}, {ENOENT, "ENOENT"},   {EACCES, "EACCES"}, {EPERM, "EPERM"},
                {EROFS, "EROFS"},   {EDQUOT, "EDQUOT"},   {EISDIR, "EISDIR"}, {ENOTDIR, "ENOTDIR"},
                {EIO, "EIO"},       {EMFILE, "EMFILE"},   {ENFILE, "ENFILE"}, {EFBIG, "EFBIG"},
                {EXDEV, "EXDEV"},   {ENAMETOOLONG, "ENAMETOOLONG"}};
  std::string text = std::strerror(err);
  for (const auto& n : kNames)
    if (n.code == err) return text + " (" + n.name + ")";
  return text + " (errno " + std::to_string(err) + ")";
}

[[noreturn]] void fail_io(const std::string& path, int err) { fail(ErrorCode::kIo, "cannot write " + path + ": " + errno_text(err)); }

// A hidden sibling of `path`, unique per process and call, so concurrent writers never share one.
std::string temp_path_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  const uint64_t salt = splitmix64(static_cast<uint64_t>(::getpid()) ^
                                   static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                                   (counter.fetch_add(1) << 40));
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(salt));
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return dir + "." + base + ".tmp-" + std::to_string(::getpid()) + "-" + suffix;
}

int create_temp(const std::string& path, const std::string& tmp) {
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) fail_io(path, errno);
  return fd;
}

void write_all(int fd, const void* data, uint64_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t got = ::write(fd, p, n > (1u << 30) ? (1u << 30) : static_cast<size_t>(n));
    if (got < 0) {
      if (errno == EINTR) continue;
      fail_io(path, errno);
    }
    p += got;
    n -= static_cast<uint64_t>(got);
  }
}

// fsync, close and rename; on failure the temporary file is removed and kIo thrown.
void finish_temp(int fd, const std::string& tmp, const std::string& path) {
  int err = 0;
  if (::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    fail_io(path, err);
  }
}

// The header bytes: 8-byte little-endian length, then the JSON padded with spaces to a multiple of 8 so
// tensor data starts aligned.
std::string build_header(const std::vector<SafetensorsTensorHeader>& tensors, const std::vector<uint64_t>& sizes,
                         const SafetensorsMetadata& metadata) {
  std::string json = "{";
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i)
      json += (i ? "," : "") + json_string(metadata[i].first) + ":" + json_string(metadata[i].second);
    json += "}";
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsTensorHeader& t = tensors[i];
    json += (json.size() > 1 ? "," : "") + json_string(t.name) + ":{\"dtype\":" + json_string(t.dtype_name) +
            ",\"shape\":" + safetensors_shape_json(t.shape) + ",\"data_offsets\":[" + std::to_string(offset) + "," +
            std::to_string(offset + sizes[i]) + "]}";
    offset += sizes[i];
  }
  json += "}";
  while (json.size() % 8 != 0) json += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(static_cast<uint64_t>(json.size()) >> (8 * i));
  return out + json;
}

}  // namespace

size_t safetensors_dtype_bytes(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "BF16" || d == "F16" || d == "I16" || d == "U16") return 2;
  if (d == "BOOL" || d == "U8" || d == "I8" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

std::string safetensors_shape_json(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<uint64_t> check_safetensors_tensors(const std::vector<SafetensorsTensorHeader>& tensors) {
  std::set<std::string> names;
  std::vector<uint64_t> sizes;
  sizes.reserve(tensors.size());
  for (const SafetensorsTensorHeader& t : tensors) {
    const std::string what = "tensor " + t.name + ": ";
    uint64_t bytes = safetensors_dtype_bytes(t.dtype_name);
    HAYATE_CHECK(bytes > 0, ErrorCode::kInvalidArgument, what + "unknown dtype '" + t.dtype_name + "'");
    for (int64_t d : t.shape) {
      HAYATE_CHECK(d >= 0, ErrorCode::kInvalidArgument, what + "invalid shape " + safetensors_shape_json(t.shape));
      HAYATE_CHECK(d == 0 || bytes <= static_cast<uint64_t>(INT64_MAX) / static_cast<uint64_t>(d),
                   ErrorCode::kInvalidArgument, what + "shape " + safetensors_shape_json(t.shape) + " is too large");
      bytes *= static_cast<uint64_t>(d);
    }
    HAYATE_CHECK(t.name != "__metadata__", ErrorCode::kInvalidArgument, "tensor name __metadata__ is reserved for metadata");
    HAYATE_CHECK(names.insert(t.name).second, ErrorCode::kInvalidArgument, "duplicate tensor name " + t.name);
    sizes.push_back(bytes);
  }
  return sizes;
}

// --- SafetensorsWriter -----------------------------------------------------------------------------

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<SafetensorsTensorHeader> tensors,
                                     const SafetensorsMetadata& metadata)
    : path_(path) {
  std::set<std::string> keys;
  for (const auto& kv : metadata)
    HAYATE_CHECK(keys.insert(kv.first).second, ErrorCode::kInvalidArgument, "duplicate metadata key " + kv.first);
  const std::vector<uint64_t> sizes = check_safetensors_tensors(tensors);
  const std::string header = build_header(tensors, sizes, metadata);
  for (size_t i = 0; i < tensors.size(); ++i) {
    Entry e;
    e.element_bytes = safetensors_dtype_bytes(tensors[i].dtype_name);
    e.bytes = sizes[i];
    e.header = std::move(tensors[i]);
    tensors_.push_back(std::move(e));
  }

  tmp_path_ = temp_path_for(path_);
  fd_ = create_temp(path_, tmp_path_);
  try {
    write_all(fd_, header.data(), header.size(), path_);
  } catch (...) {
    abort();
    throw;
  }
}

SafetensorsWriter::~SafetensorsWriter() { abort(); }

void SafetensorsWriter::abort() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_path_.c_str());
  fd_ = -1;
}

void SafetensorsWriter::check_open(const char* what) const {
  HAYATE_CHECK(!committed_ && fd_ >= 0, ErrorCode::kInvalidArgument,
               std::string("safetensors writer for ") + path_ + ": " + what + " after commit or abort");
  HAYATE_CHECK(current_ < tensors_.size(), ErrorCode::kInvalidArgument,
               std::string("safetensors writer for ") + path_ + ": " + what + " after the last tensor");
}

void SafetensorsWriter::write_raw(const void* data, uint64_t n) {
  try {
    write_all(fd_, data, n, path_);
  } catch (...) {
    abort();  // a failed write leaves a file that must not be committed
    throw;
  }
}

void SafetensorsWriter::write_bytes(const void* data, uint64_t n) {
  check_open("write_bytes");
  const Entry& e = tensors_[current_];
  HAYATE_CHECK(n <= e.bytes - written_, ErrorCode::kInvalidArgument,
               "tensor " + e.header.name + ": more bytes than its shape " + safetensors_shape_json(e.header.shape) + " holds");
  write_raw(data, n);
  written_ += n;
}

void SafetensorsWriter::write_f32(const float* values, size_t n) {
  check_open("write_f32");
  const Entry& e = tensors_[current_];
  const std::string& dt = e.header.dtype_name;
  HAYATE_CHECK(dt == "F32" || dt == "BF16" || dt == "F16", ErrorCode::kInvalidArgument,
               "tensor " + e.header.name + ": cannot write dtype " + dt + " (use F32, BF16 or F16)");
  const uint64_t room = (e.bytes - written_) / e.element_bytes;
  HAYATE_CHECK(n <= room, ErrorCode::kInvalidArgument,
               "tensor " + e.header.name + ": more values than its shape " + safetensors_shape_json(e.header.shape) + " holds");
  if (dt == "F32") {
    write_raw(values, static_cast<uint64_t>(n) * 4);
  } else {
    // Convert in bounded blocks so a huge chunk needs no second buffer of its size.
    const size_t block = 1 << 16;
    scratch_.resize(n < block ? n : block);
    const bool bf16 = dt == "BF16";
    for (size_t done = 0; done < n;) {
      const size_t m = n - done < block ? n - done : block;
      for (size_t i = 0; i < m; ++i) scratch_[i] = bf16 ? f32_to_bf16(values[done + i]) : f32_to_f16(values[done + i]);
      write_raw(scratch_.data(), static_cast<uint64_t>(m) * 2);
      done += m;
    }
  }
  written_ += static_cast<uint64_t>(n) * e.element_bytes;
}

void SafetensorsWriter::end_tensor() {
  check_open("end_tensor");
  const Entry& e = tensors_[current_];
  HAYATE_CHECK(written_ == e.bytes, ErrorCode::kInvalidArgument,
               "tensor " + e.header.name + ": " + std::to_string(written_ / e.element_bytes) + " values for shape " +
                   safetensors_shape_json(e.header.shape));
  ++current_;
  written_ = 0;
}

void SafetensorsWriter::commit() {
  HAYATE_CHECK(!committed_ && fd_ >= 0, ErrorCode::kInvalidArgument,
               "safetensors writer for " + path_ + ": commit after commit or abort");
  HAYATE_CHECK(current_ == tensors_.size(), ErrorCode::kInvalidArgument,
               "tensor " + tensors_[current_].header.name + " was not written completely");
  const int fd = fd_;
  fd_ = -1;  // finish_temp closes it (and removes the temporary file on failure)
  finish_temp(fd, tmp_path_, path_);
  committed_ = true;
}

// --- whole files -----------------------------------------------------------------------------------

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const SafetensorsMetadata& metadata) {
  std::vector<SafetensorsTensorHeader> headers;
  for (const SafetensorsEntry& e : entries) headers.push_back({e.name, e.dtype_name, e.shape});
  const std::vector<uint64_t> sizes = check_safetensors_tensors(headers);
  for (size_t i = 0; i < entries.size(); ++i)
    HAYATE_CHECK(sizes[i] == entries[i].bytes, ErrorCode::kInvalidArgument,
                 "tensor " + entries[i].name + ": byte size does not match its shape");
  SafetensorsWriter w(path, std::move(headers), metadata);
  for (const SafetensorsEntry& e : entries) {
    if (e.data) {
      w.write_bytes(e.data, e.bytes);
    } else {
      std::vector<uint8_t> bytes = e.produce();
      HAYATE_CHECK(bytes.size() == e.bytes, ErrorCode::kInternal, "safetensors: " + e.name + " produced the wrong size");
      w.write_bytes(bytes.data(), bytes.size());
    }
    w.end_tensor();
  }
  w.commit();
}

void write_safetensors_index(const std::string& path, uint64_t total_size,
                             const std::vector<std::pair<std::string, std::string>>& weight_map) {
  // JSON.stringify(index, null, 2) + "\n", which is how these files have always been written.
  std::string text = "{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(total_size) + "\n  },\n  \"weight_map\": ";
  if (weight_map.empty()) {
    text += "{}";
  } else {
    text += "{\n";
    for (size_t i = 0; i < weight_map.size(); ++i)
      text += "    " + json_string(weight_map[i].first) + ": " + json_string(weight_map[i].second) +
              (i + 1 < weight_map.size() ? ",\n" : "\n");
    text += "  }";
  }
  text += "\n}\n";
  const std::string tmp = temp_path_for(path);
  const int fd = create_temp(path, tmp);
  try {
    write_all(fd, text.data(), text.size(), path);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  finish_temp(fd, tmp, path);
}

}  // namespace hayate
