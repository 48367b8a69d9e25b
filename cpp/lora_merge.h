// Merging LoRA adapters into the base weights: W' = W + scale * B A for every adapted projection, written
// as a full safetensors file next to which the caller puts the base model's config and tokenizer files.
#pragma once
#include <string>

#include "model.h"

namespace hayate {

// Reads every tensor of the base model directory `base_dir` (the one `model` was loaded from) and writes
// them to `out_file`, each adapted projection weight merged in its own dtype; other tensors are copied
// byte for byte. Throws kInvalidArgument when the model has no adapters, kBadTensor when a weight's shape
// does not match, kIo on write errors.
void write_merged_weights(Model& model, const std::string& base_dir, const std::string& out_file);

}  // namespace hayate
