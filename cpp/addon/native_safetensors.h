// Safetensors for JavaScript: the addon functions through which ts/safetensors.ts reads and writes the
// format with the engine's own reader and writer (cpp/safetensors*.h), so the format has one owner.
#pragma once
#include <napi.h>

namespace hayate::js {

// Adds readSafetensors, readSafetensorsDir, readSafetensorsHeader, SafetensorsWriter,
// writeSafetensorsIndex, the float16/bfloat16 conversions, parseSafetensorsHeader and inspectSafetensors.
void register_safetensors(Napi::Env env, Napi::Object exports);

}  // namespace hayate::js
