#include "errors.h"

namespace hayate {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "ERR_INVALID_ARGUMENT";
    case ErrorCode::kNotFound: return "ERR_NOT_FOUND";
    case ErrorCode::kIo: return "ERR_IO";
    case ErrorCode::kBadConfig: return "ERR_BAD_CONFIG";
    case ErrorCode::kUnsupportedArch: return "ERR_UNSUPPORTED_ARCH";
    case ErrorCode::kBadSafetensors: return "ERR_BAD_SAFETENSORS";
    case ErrorCode::kBadTensor: return "ERR_BAD_TENSOR";
    case ErrorCode::kContextOverflow: return "ERR_CONTEXT_OVERFLOW";
    case ErrorCode::kOutOfMemory: return "ERR_OUT_OF_MEMORY";
    case ErrorCode::kCancelled: return "ERR_CANCELLED";
    case ErrorCode::kBackend: return "ERR_BACKEND";
    case ErrorCode::kInternal: return "ERR_INTERNAL";
  }
  return "ERR_INTERNAL";
}

}  // namespace hayate
