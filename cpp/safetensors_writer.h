// Safetensors writing (the format of safetensors.h). Tensors are streamed: each entry either points at its
// bytes or produces them when its turn comes, so a merged model is written without holding every tensor in
// memory. The file is written under a temporary name and renamed into place: a reader sees the whole file
// or none of it.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace hayate {

struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;  // safetensors spelling: "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t bytes = 0;                            // must equal numel * dtype size
  const void* data = nullptr;                    // the bytes, or
  std::function<std::vector<uint8_t>()> produce; // called once, in order, when data is null
};

// Throws kIo (cannot write), kInvalidArgument (size mismatch, duplicate names, unknown dtype).
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace hayate
