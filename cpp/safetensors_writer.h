// Safetensors writing (the format of safetensors.h), for the engine (LoRA merge) and, through the addon,
// for everything the TypeScript layer writes (random models, adapters, optimizer state). Tensors are
// streamed: the header is written first, then each tensor's bytes in order, so a large model is written
// without holding it in memory. The header is byte for byte what JavaScript's JSON.stringify gives for the
// same object (metadata first, keys in the given order), padded with spaces to 8 bytes. Files are written
// under a temporary name and renamed into place: a reader sees the whole file or none of it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace hayate {

// Metadata entries ("__metadata__" in the header), written in this order.
using SafetensorsMetadata = std::vector<std::pair<std::string, std::string>>;

// What the header says about one tensor; its data offsets follow from the order and sizes.
struct SafetensorsTensorHeader {
  std::string name;
  std::string dtype_name;  // safetensors spelling: "F32", "BF16", ...
  std::vector<int64_t> shape;
};

// Bytes per element of a safetensors dtype name; 0 for a name the format does not define.
size_t safetensors_dtype_bytes(const std::string& dtype_name);

// "[2,3]": a shape as the header (and JSON.stringify) spells it; error messages use the same form.
std::string safetensors_shape_json(const std::vector<int64_t>& shape);

// Validates tensor headers as the writer does (known dtype, non-negative dimensions, size within int64,
// unique names, none called "__metadata__"; kInvalidArgument otherwise) and returns each one's byte size.
std::vector<uint64_t> check_safetensors_tensors(const std::vector<SafetensorsTensorHeader>& tensors);

// Writes one file tensor by tensor: construct (validates every header and writes it), then for each tensor
// in order write_bytes()/write_f32() until it is complete and end_tensor(); then commit(). Destroying the
// writer before commit() removes the temporary file.
class SafetensorsWriter {
 public:
  // Throws kInvalidArgument (unknown dtype, negative dimension, size overflow, duplicate or reserved name,
  // duplicate metadata key) before any file is created; kIo when the temporary file cannot be created.
  SafetensorsWriter(const std::string& path, std::vector<SafetensorsTensorHeader> tensors,
                    const SafetensorsMetadata& metadata);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The tensor being written: its index, or tensor_count() once every tensor is ended.
  size_t current_tensor() const { return current_; }
  size_t tensor_count() const { return tensors_.size(); }

  // Appends bytes already in the current tensor's dtype. kInvalidArgument past the tensor's size.
  void write_bytes(const void* data, uint64_t n);
  // Appends float32 values, converted to the current tensor's dtype (F32, BF16 or F16; round to nearest
  // even). kInvalidArgument for another dtype or more values than the shape holds.
  void write_f32(const float* values, size_t n);
  // Checks the current tensor is complete (kInvalidArgument "tensor <name>: <n> values for shape [..]").
  void end_tensor();
  // Flushes to disk and renames into place; kInvalidArgument when a tensor is unfinished, kIo on failure.
  void commit();
  // Closes and removes the temporary file; nothing happens after commit() or a previous abort().
  void abort() noexcept;

 private:
  struct Entry {
    SafetensorsTensorHeader header;
    size_t element_bytes = 0;
    uint64_t bytes = 0;
  };
  void check_open(const char* what) const;
  void write_raw(const void* data, uint64_t n);

  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  bool committed_ = false;
  std::vector<Entry> tensors_;
  size_t current_ = 0;
  uint64_t written_ = 0;  // bytes of the current tensor so far
  std::vector<uint16_t> scratch_;
};

struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;  // safetensors spelling: "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t bytes = 0;                            // must equal numel * dtype size
  const void* data = nullptr;                    // the bytes, or
  std::function<std::vector<uint8_t>()> produce; // called once, in order, when data is null
};

// Writes a whole file from ready (or on-demand) bytes. Throws kIo (cannot write), kInvalidArgument (size
// mismatch, duplicate names, unknown dtype).
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const SafetensorsMetadata& metadata = {{"format", "pt"}});

// Writes a sharded model's model.safetensors.index.json ({"metadata": {"total_size"}, "weight_map":
// {tensor: file}}, indented by 2 as transformers' save_pretrained does) atomically.
void write_safetensors_index(const std::string& path, uint64_t total_size,
                             const std::vector<std::pair<std::string, std::string>>& weight_map);

}  // namespace hayate
