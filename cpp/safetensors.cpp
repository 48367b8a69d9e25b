// Safetensors reader: validates the whole header against the file size before any pointer into the
// mapping is formed, then exposes tensors as pointers into a read-only mmap (no copies at load time).
#include "safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "json.h"

namespace hayate {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

struct DTypeEntry {
  const char* name;
  size_t size;
  bool supported;
  DType dtype;
};

// Every dtype string the safetensors format defines; F32, BF16, F16, I32 and F64 map onto our DType.
const DTypeEntry kDTypes[] = {
    {"F32", 4, true, DType::F32},    {"BF16", 2, true, DType::BF16},   {"F16", 2, true, DType::F16},
    {"I32", 4, true, DType::I32},    {"BOOL", 1, false, DType::F32},   {"U8", 1, false, DType::F32},
    {"I8", 1, false, DType::F32},    {"I16", 2, false, DType::F32},    {"U16", 2, false, DType::F32},
    {"U32", 4, false, DType::F32},   {"F64", 8, true, DType::F64},    {"I64", 8, false, DType::F32},
    {"U64", 8, false, DType::F32},   {"F8_E4M3", 1, false, DType::F32}, {"F8_E5M2", 1, false, DType::F32},
};

const DTypeEntry* find_dtype(const std::string& name) {
  for (const DTypeEntry& e : kDTypes)
    if (name == e.name) return &e;
  return nullptr;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool dir_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

struct ParsedHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + N
};

// Every header problem is reported the same way: the file, that it is not valid, and the cause.
[[noreturn]] void bad_file(const std::string& path, const std::string& cause) {
  fail(ErrorCode::kBadSafetensors, path + " is not a valid safetensors file: " + cause);
}

// Reads a non-negative integer from a JSON value; `what` names it in the message.
uint64_t get_uint(const JsonValue& v, const std::string& path, const std::string& what) {
  if (!v.is_number()) bad_file(path, what + " is not a number");
  double d = v.as_number();
  if (!(d >= 0 && d < 9223372036854775808.0 && d == static_cast<double>(static_cast<int64_t>(d))))
    bad_file(path, what + " must be a non-negative integer");
  return static_cast<uint64_t>(d);
}

TensorInfo parse_entry(const std::string& name, const JsonValue& entry, uint64_t data_size, const std::string& path) {
  const std::string where = "tensor '" + name + "'";
  auto bad = [&](const std::string& cause) { bad_file(path, where + ": " + cause); };
  if (!entry.is_object()) bad("entry is not an object");
  TensorInfo t;
  t.name = name;
  t.file = path;

  const JsonValue* dtype = entry.find("dtype");
  if (!dtype || !dtype->is_string()) bad("missing or non-string \"dtype\"");
  t.dtype_name = dtype->as_string();
  const DTypeEntry* dt = find_dtype(t.dtype_name);
  if (!dt) bad("unknown dtype \"" + t.dtype_name + "\"");
  t.dtype_supported = dt->supported;
  t.dtype = dt->dtype;

  const JsonValue* shape = entry.find("shape");
  if (!shape || !shape->is_array()) bad("missing or non-array \"shape\"");
  // numel * element size; every partial product must fit in int64 so TensorInfo::numel() cannot overflow.
  uint64_t nbytes = dt->size;
  bool overflow = false;
  for (const JsonValue& d : shape->as_array()) {
    uint64_t extent = get_uint(d, path, where + " shape entry");
    t.shape.push_back(static_cast<int64_t>(extent));
    if (extent != 0 && nbytes > static_cast<uint64_t>(INT64_MAX) / extent) overflow = true;
    nbytes *= extent;
  }
  if (overflow) bad("shape " + shape_str(t.shape) + " is too large");

  const JsonValue* offsets = entry.find("data_offsets");
  if (!offsets || !offsets->is_array() || offsets->as_array().size() != 2)
    bad("\"data_offsets\" must be an array of 2 integers");
  t.data_begin = get_uint(offsets->as_array()[0], path, where + " data_offsets[0]");
  t.data_end = get_uint(offsets->as_array()[1], path, where + " data_offsets[1]");
  if (t.data_begin > t.data_end)
    bad("data_offsets begin " + std::to_string(t.data_begin) + " > end " + std::to_string(t.data_end));
  if (t.data_end > data_size)
    bad("data_offsets end " + std::to_string(t.data_end) + " is past the end of the data section (" +
        std::to_string(data_size) + " bytes; file truncated?)");
  if (t.data_end - t.data_begin != nbytes)
    bad(t.dtype_name + " " + shape_str(t.shape) + " needs " + std::to_string(nbytes) + " bytes but data_offsets span " +
        std::to_string(t.data_end - t.data_begin));
  return t;
}

ParsedHeader parse_header(const uint8_t* bytes, size_t available, uint64_t file_size, const std::string& path) {
  auto bad = [&](const std::string& cause) { bad_file(path, cause); };
  if (file_size == 0) bad("file is empty");
  if (file_size < 8) bad("file is " + std::to_string(file_size) + " bytes, too short for the 8-byte header length");
  if (available < 8) bad("only " + std::to_string(available) + " bytes available, need the 8-byte header length");
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | bytes[k];  // little-endian u64
  if (n == 0) bad("header length is 0");
  if (n > file_size - 8)
    bad("header length " + std::to_string(n) + " is larger than the rest of the file (" +
        std::to_string(file_size - 8) + " bytes; truncated?)");
  if (n > kMaxHeaderBytes) bad("header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (available - 8 < n)
    bad("only " + std::to_string(available) + " bytes available, the header needs " + std::to_string(8 + n));

  JsonValue root;
  try {
    root = parse_json(reinterpret_cast<const char*>(bytes + 8), static_cast<size_t>(n), "header",
                      ErrorCode::kBadSafetensors);
  } catch (const Error& e) {
    bad(e.what());  // "header: invalid JSON at byte N: ..."
  }
  if (!root.is_object()) bad("header is not a JSON object");

  ParsedHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = file_size - h.data_start;
  for (const std::string& key : root.keys()) {
    const JsonValue& v = *root.find(key);
    if (key == "__metadata__") {
      if (!v.is_object()) bad("\"__metadata__\" is not an object");
      for (const auto& kv : v.as_object()) {
        if (!kv.second.is_string()) bad("\"__metadata__\" value of \"" + kv.first + "\" is not a string");
        h.metadata[kv.first] = kv.second.as_string();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(key, v, data_size, path));
  }

  // Overlap check on the byte ranges sorted by start; empty tensors occupy no bytes.
  std::vector<const TensorInfo*> order;
  for (const TensorInfo& t : h.tensors)
    if (t.data_end > t.data_begin) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->data_begin < b->data_begin; });
  for (size_t k = 1; k < order.size(); ++k) {
    if (order[k]->data_begin < order[k - 1]->data_end)
      bad("tensors '" + order[k - 1]->name + "' and '" + order[k]->name + "' overlap");
  }
  return h;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<TensorInfo> parse_safetensors_header(const uint8_t* bytes, size_t available, uint64_t file_size,
                                                 const std::string& path) {
  return parse_header(bytes, available, file_size, path).tensors;
}

// --- SafetensorsFile -------------------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) fail(ErrorCode::kNotFound, path + ": file not found");
    fail(ErrorCode::kIo, path + ": cannot open: " + std::strerror(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorCode::kIo, path + ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    parse_header(nullptr, 0, 0, path);  // throws the "file is empty" error
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (m == MAP_FAILED) fail(ErrorCode::kIo, path + ": cannot mmap: " + std::strerror(err));
  map_ = m;
  try {
    ParsedHeader h = parse_header(static_cast<const uint8_t*>(map_), size_, size_, path);
    const uint8_t* data = static_cast<const uint8_t*>(map_) + h.data_start;
    for (TensorInfo& t : h.tensors) t.data = data + t.data_begin;
    tensors_ = std::move(h.tensors);
    metadata_ = std::move(h.metadata);
  } catch (...) {
    ::munmap(map_, size_);  // the destructor does not run for a throwing constructor
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

// --- TensorStore -----------------------------------------------------------------------------------

std::unique_ptr<TensorStore> TensorStore::open_files(const std::vector<std::string>& files) {
  HAYATE_CHECK(!files.empty(), ErrorCode::kInvalidArgument, "TensorStore::open_files: no files given");
  auto store = std::unique_ptr<TensorStore>(new TensorStore());
  const std::string& first = files.front();
  size_t slash = first.rfind('/');
  store->dir_ = slash == std::string::npos ? "." : first.substr(0, slash);
  for (const std::string& f : files) {
    store->files_.push_back(std::make_unique<SafetensorsFile>(f));
    for (const TensorInfo& t : store->files_.back()->tensors()) {
      auto ins = store->index_.emplace(t.name, &t);
      if (!ins.second)
        fail(ErrorCode::kBadSafetensors,
             f + ": tensor '" + t.name + "' is also in " + ins.first->second->file + " (duplicate tensor name)");
    }
  }
  return store;
}

std::unique_ptr<TensorStore> TensorStore::open_dir(const std::string& dir) {
  if (!dir_exists(dir)) fail(ErrorCode::kNotFound, dir + ": model directory not found");
  std::unique_ptr<TensorStore> store;

  const std::string index_path = join(dir, "model.safetensors.index.json");
  if (file_exists(index_path)) {
    std::string text;
    {
      int fd = ::open(index_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail(ErrorCode::kIo, index_path + ": cannot open: " + std::strerror(errno));
      char buf[65536];
      ssize_t got;
      while ((got = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(got));
      int err = errno;
      ::close(fd);
      if (got < 0) fail(ErrorCode::kIo, index_path + ": read failed: " + std::strerror(err));
    }
    JsonValue index = parse_json(text, index_path, ErrorCode::kBadSafetensors);
    const JsonValue* map = index.find("weight_map");
    if (!map || !map->is_object())
      fail(ErrorCode::kBadSafetensors, index_path + ": \"weight_map\" missing or not an object");
    std::vector<std::string> shards;  // in order of first appearance
    for (const std::string& tensor : map->keys()) {
      const JsonValue& file = *map->find(tensor);
      if (!file.is_string())
        fail(ErrorCode::kBadSafetensors, index_path + ": weight_map entry for '" + tensor + "' is not a string");
      std::string shard = join(dir, file.as_string());
      if (std::find(shards.begin(), shards.end(), shard) == shards.end()) {
        if (!file_exists(shard))
          fail(ErrorCode::kNotFound, shard + ": shard listed in " + index_path + " not found");
        shards.push_back(shard);
      }
    }
    if (shards.empty()) fail(ErrorCode::kBadSafetensors, index_path + ": \"weight_map\" is empty");
    store = open_files(shards);
    // The index must agree with the shards, otherwise it is stale or corrupt.
    for (const std::string& tensor : map->keys()) {
      std::string shard = join(dir, map->find(tensor)->as_string());
      auto it = store->index_.find(tensor);
      if (it == store->index_.end() || it->second->file != shard)
        fail(ErrorCode::kBadSafetensors,
             index_path + ": weight_map puts tensor '" + tensor + "' in " + shard + ", which does not contain it");
    }
  } else if (file_exists(join(dir, "model.safetensors"))) {
    store = open_files({join(dir, "model.safetensors")});
  } else {
    std::vector<std::string> found;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        const std::string ext = ".safetensors";
        if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0 &&
            file_exists(join(dir, name)))
          found.push_back(join(dir, name));
      }
      ::closedir(d);
    }
    if (found.empty()) fail(ErrorCode::kNotFound, dir + ": no model.safetensors or model.safetensors.index.json");
    std::sort(found.begin(), found.end());
    store = open_files(found);
  }
  store->dir_ = dir;
  return store;
}

bool TensorStore::has(const std::string& name) const { return index_.count(name) != 0; }

const TensorInfo& TensorStore::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(ErrorCode::kBadTensor, dir_ + ": tensor '" + name + "' not found");
  return *it->second;
}

const TensorInfo& TensorStore::get_checked(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorInfo& t = get(name);
  bool is_float = t.dtype_supported && hayate::is_float(t.dtype);
  if (!is_float)
    fail(ErrorCode::kBadTensor,
         t.file + ": tensor '" + name + "' has dtype " + t.dtype_name + ", expected F32, BF16, F16 or F64");
  if (t.shape != shape)
    fail(ErrorCode::kBadTensor,
         t.file + ": tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected " + shape_str(shape));
  return t;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& kv : index_) out.push_back(kv.first);
  return out;
}

}  // namespace hayate
