// ModelConfig: the architecture hyper-parameters read from a Hugging Face config.json, validated, with
// Hugging Face defaults applied (transformers' LlamaConfig / Qwen2Config / Qwen3Config semantics).
#pragma once
#include <string>
#include <vector>

namespace hayate {

enum class Arch { Llama, Qwen2, Qwen3 };

struct RopeScaling {
  std::string type;                // "" (none), "llama3", "linear", "default"
  double factor = 1.0;
  double low_freq_factor = 1.0;    // llama3
  double high_freq_factor = 4.0;   // llama3
  int original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string architecture;        // e.g. "Qwen3ForCausalLM"
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;              // num_hidden_layers
  int num_heads = 0;               // num_attention_heads
  int num_kv_heads = 0;            // num_key_value_heads (defaults to num_heads)
  int head_dim = 0;                // config head_dim, else hidden_size / num_heads
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;     // q/k/v (and o for Llama) bias; always q/k/v for Qwen2
  bool mlp_bias = false;           // Llama only
  bool qk_norm = false;            // Qwen3: RMSNorm over head_dim on q and k before RoPE
  std::vector<int> eos_token_ids;  // config.json eos_token_id (int or list), may be empty
  int bos_token_id = -1;
  std::string torch_dtype;         // informational
};

// Parse and validate config.json text; `path` is used in messages. Throws Error(kBadConfig) for
// malformed or inconsistent values (non-positive sizes, heads not dividing, ...), and
// Error(kUnsupportedArch) naming the architecture and listing the supported ones.
ModelConfig parse_model_config(const std::string& json_text, const std::string& path);

// Reads <dir>/config.json (kNotFound when missing) and merges eos ids from generation_config.json when
// present.
ModelConfig load_model_config(const std::string& dir);

// Rotary inverse frequencies (head_dim/2 values), with rope scaling applied as transformers does
// (_compute_llama3_parameters for "llama3", division by factor for "linear").
std::vector<double> rope_inv_freq(const ModelConfig& cfg);

const char* arch_name(Arch a);

}  // namespace hayate
