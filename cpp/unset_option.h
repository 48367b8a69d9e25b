// Option fields a caller must set. The engine has no defaults for training hyperparameters (the TS library
// defines them once, in ts/training-defaults.ts, and passes every one): such a field starts as kUnset, a
// NaN, and the code that reads it rejects it through require_set, naming the field, rather than silently
// using some value.
#pragma once
#include <cmath>
#include <limits>
#include <string>

#include "errors.h"

namespace hayate {

inline constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();

// Throws kInvalidArgument "<field> is not set" when v is still kUnset (or any NaN).
inline void require_set(double v, const char* field) {
  HAYATE_CHECK(!std::isnan(v), ErrorCode::kInvalidArgument,
               std::string(field) + " is not set (or NaN): the engine has no default for it");
}

}  // namespace hayate
