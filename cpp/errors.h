// Engine errors: every failure the engine can detect on bad input is thrown as hayate::Error with a
// stable code, so the addon can turn it into a typed JS error instead of crashing the process.
#pragma once
#include <stdexcept>
#include <string>

namespace hayate {

enum class ErrorCode {
  kInvalidArgument,   // bad option / shape / value passed by the caller
  kNotFound,          // missing file or directory
  kIo,                // read/write/mmap failure
  kBadConfig,         // config.json malformed or inconsistent
  kUnsupportedArch,   // architecture we do not implement
  kBadSafetensors,    // safetensors header/body invalid
  kBadTensor,         // tensor missing, wrong dtype or shape
  kContextOverflow,   // prompt longer than the context / KV cache
  kOutOfMemory,       // allocation failed
  kCancelled,         // cancelled by the caller
  kBackend,           // backend unavailable or failed (e.g. CUDA requested without a device)
  kInternal,          // a bug: an invariant did not hold
};

const char* error_code_name(ErrorCode code);  // "EINVAL"-style stable names, see errors.cpp

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

#define HAYATE_CHECK(cond, code, msg)          \
  do {                                         \
    if (!(cond)) ::hayate::fail((code), (msg)); \
  } while (0)

}  // namespace hayate
