// Safetensors reading: a file is an 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data; offsets are
// relative to the end of the header. Files are memory-mapped; every header field is validated against
// the file size before any tensor is touched, so truncated or hostile files give an error, never a crash.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor.h"

namespace hayate {

struct TensorInfo {
  std::string name;
  std::string dtype_name;        // as in the file: "F32", "BF16", "F16", "I64", ...
  bool dtype_supported = false;  // F32, BF16, F16, I32, F64 map onto DType
  DType dtype = DType::F32;      // valid when dtype_supported
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;       // byte offsets relative to the start of the data section
  uint64_t data_end = 0;
  const void* data = nullptr;    // points into the mapping (set by SafetensorsFile)
  std::string file;              // file the tensor lives in

  int64_t numel() const;
};

// Parses and validates a header. `bytes` is the whole file (or at least the first 8 + N bytes) and
// `file_size` the full file size. Checks: file at least 8 bytes; N <= file_size - 8 and N <= 100 MB;
// valid JSON object; every entry has a known dtype string, a shape of non-negative ints, data_offsets
// [begin, end] with begin <= end, end within the data section, end - begin == numel * dtype size
// (overflow-checked); tensors do not overlap. Throws
// Error(kBadSafetensors, "<path> is not a valid safetensors file: <cause>").
std::vector<TensorInfo> parse_safetensors_header(const uint8_t* bytes, size_t available, uint64_t file_size,
                                                 const std::string& path);

// One memory-mapped .safetensors file.
class SafetensorsFile {
 public:
  // Throws kNotFound (missing), kIo (cannot open/map), kBadSafetensors (invalid).
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  std::map<std::string, std::string> metadata() const { return metadata_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All weights of a model directory: model.safetensors, or the shards listed by
// model.safetensors.index.json ("weight_map": {tensor: file}). Missing files -> kNotFound naming the file.
class TensorStore {
 public:
  static std::unique_ptr<TensorStore> open_dir(const std::string& dir);
  static std::unique_ptr<TensorStore> open_files(const std::vector<std::string>& files);

  bool has(const std::string& name) const;
  // Throws kBadTensor "<dir>: tensor '<name>' not found" when absent.
  const TensorInfo& get(const std::string& name) const;
  // Like get(), also checks dtype is a float type and the shape equals `shape`:
  // kBadTensor "<file>: tensor '<name>' has shape [a, b], expected [c, d]" / "... dtype I64 ...".
  const TensorInfo& get_checked(const std::string& name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;
  // The files in the order they were opened (index order of first appearance, or name order).
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> index_;
};

}  // namespace hayate
