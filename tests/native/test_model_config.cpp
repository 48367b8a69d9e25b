// config.json parsing with transformers' defaults: real Llama 3.2 / Qwen2.5 / Qwen3 configs, rope scaling
// checked against an independent recomputation, and each kind of bad config.
#include "model_config.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "check.h"
#include "errors.h"

using hayate::Arch;
using hayate::ErrorCode;
using hayate::ModelConfig;
using hayate::parse_model_config;

namespace {

const char* kQwen3_0_6B = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
  "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28,
  "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936
})";

const char* kQwen2_5_0_5B = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
  "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
  "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
  "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
  "use_mrope": false, "use_sliding_window": false, "vocab_size": 151936
})";

const char* kLlama3_2_1B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
  "vocab_size": 128256
})";

// A small config as field -> raw JSON text, so each bad case changes one field.
using Fields = std::map<std::string, std::string>;

Fields small_llama() {
  return {{"architectures", "[\"LlamaForCausalLM\"]"}, {"vocab_size", "100"}, {"hidden_size", "64"},
          {"intermediate_size", "128"}, {"num_hidden_layers", "2"}, {"num_attention_heads", "4"}};
}

std::string to_json(const Fields& f) {
  std::string s = "{";
  for (const auto& kv : f) s += (s.size() > 1 ? "," : "") + ("\"" + kv.first + "\":" + kv.second);
  return s + "}";
}

Fields with(Fields f, const std::string& key, const std::string& value) {
  f[key] = value;
  return f;
}

Fields without(Fields f, const std::string& key) {
  f.erase(key);
  return f;
}

ModelConfig parse(const Fields& f) { return parse_model_config(to_json(f), "dir/config.json"); }

std::string error_of(const std::string& json) {
  try {
    parse_model_config(json, "dir/config.json");
  } catch (const hayate::Error& e) {
    return e.what();
  }
  return "";
}

using hayate_test::TempDir;

// Reference for the llama3 rule, written the way transformers' tensor code reads: compute the
// "low frequencies divided" vector first, then pick the smoothed value for the medium band.
std::vector<double> llama3_reference(double theta, int head_dim, double factor, double low, double high, double orig) {
  std::vector<double> out;
  for (int i = 0; i < head_dim; i += 2) {
    double inv = std::exp(-std::log(theta) * i / head_dim);
    double wavelen = 2 * 3.14159265358979323846 / inv;
    double inv_llama = wavelen > orig / low ? inv / factor : inv;
    double smooth = (orig / wavelen - low) / (high - low);
    double smoothed = (1 - smooth) * inv_llama / factor + smooth * inv_llama;
    bool medium = !(wavelen < orig / high) && !(wavelen > orig / low);
    out.push_back(medium ? smoothed : inv_llama);
  }
  return out;
}

}  // namespace

TEST(config_qwen3_0_6b) {
  ModelConfig c = parse_model_config(kQwen3_0_6B, "Qwen3-0.6B/config.json");
  CHECK(c.arch == Arch::Qwen3 && c.architecture == "Qwen3ForCausalLM");
  CHECK(std::string(hayate::arch_name(c.arch)) == "qwen3");
  CHECK(c.vocab_size == 151936 && c.hidden_size == 1024 && c.intermediate_size == 3072);
  CHECK(c.num_layers == 28 && c.num_heads == 16 && c.num_kv_heads == 8 && c.head_dim == 128);
  CHECK(c.max_position_embeddings == 40960);
  CHECK_NEAR(c.rope_theta, 1000000.0, 0);
  CHECK_NEAR(c.rms_norm_eps, 1e-6, 1e-18);
  CHECK(c.tie_word_embeddings && c.qk_norm && !c.attention_bias && !c.mlp_bias);
  CHECK(c.rope_scaling.type.empty());
  CHECK((c.eos_token_ids == std::vector<int>{151645}) && c.bos_token_id == 151643);
  CHECK(c.torch_dtype == "bfloat16");
  std::vector<double> inv = hayate::rope_inv_freq(c);
  CHECK(inv.size() == 64);
  CHECK_NEAR(inv[0], 1.0, 0);
  CHECK_NEAR(inv[32], std::pow(1e6, -0.5), 1e-15);
}

TEST(config_qwen2_5_0_5b) {
  ModelConfig c = parse_model_config(kQwen2_5_0_5B, "config.json");
  CHECK(c.arch == Arch::Qwen2);
  CHECK(c.hidden_size == 896 && c.num_heads == 14 && c.num_kv_heads == 2);
  CHECK(c.head_dim == 64);  // no head_dim: hidden_size / num_attention_heads
  CHECK(c.attention_bias && !c.qk_norm && !c.mlp_bias);  // Qwen2 always has q/k/v bias
  CHECK(c.tie_word_embeddings && c.max_position_embeddings == 32768);
  CHECK((c.eos_token_ids == std::vector<int>{151643}));
}

TEST(config_llama3_2_rope_scaling) {
  ModelConfig c = parse_model_config(kLlama3_2_1B, "config.json");
  CHECK(c.arch == Arch::Llama && c.head_dim == 64 && c.num_kv_heads == 8);
  CHECK(c.max_position_embeddings == 131072);
  CHECK_NEAR(c.rms_norm_eps, 1e-5, 1e-18);
  CHECK((c.eos_token_ids == std::vector<int>{128001, 128008, 128009}));
  CHECK(c.rope_scaling.type == "llama3");
  CHECK(c.rope_scaling.factor == 32.0 && c.rope_scaling.low_freq_factor == 1.0);
  CHECK(c.rope_scaling.high_freq_factor == 4.0 && c.rope_scaling.original_max_position_embeddings == 8192);

  std::vector<double> inv = hayate::rope_inv_freq(c);
  std::vector<double> ref = llama3_reference(500000.0, 64, 32.0, 1.0, 4.0, 8192.0);
  CHECK(inv.size() == 32 && ref.size() == 32);
  int kept = 0, divided = 0, smoothed = 0;
  for (size_t i = 0; i < inv.size() && i < ref.size(); ++i) {
    CHECK_NEAR(inv[i], ref[i], 1e-12 * ref[i]);
    double plain = std::pow(500000.0, -2.0 * i / 64);
    if (std::fabs(inv[i] - plain) <= 1e-12 * plain) ++kept;
    else if (std::fabs(inv[i] - plain / 32) <= 1e-12 * plain) ++divided;
    else ++smoothed;
  }
  CHECK(kept > 0 && divided > 0 && smoothed > 0);  // all three bands are exercised
  CHECK_NEAR(inv[0], 1.0, 0);
  CHECK_NEAR(inv[31], std::pow(500000.0, -62.0 / 64) / 32, 1e-20);
}

TEST(config_defaults) {
  ModelConfig c = parse(small_llama());
  CHECK(c.num_kv_heads == 4 && c.head_dim == 16);
  CHECK(c.max_position_embeddings == 2048);
  CHECK_NEAR(c.rms_norm_eps, 1e-6, 0);
  CHECK_NEAR(c.rope_theta, 10000.0, 0);
  CHECK(!c.tie_word_embeddings && !c.attention_bias && !c.mlp_bias && !c.qk_norm);
  CHECK(c.eos_token_ids.empty() && c.bos_token_id == -1 && c.torch_dtype.empty());
  CHECK(c.rope_scaling.type.empty());
  std::vector<double> inv = hayate::rope_inv_freq(c);
  CHECK(inv.size() == 8);
  for (int i = 0; i < 8; ++i) CHECK_NEAR(inv[i], 1.0 / std::pow(10000.0, 2.0 * i / 16), 1e-15);

  // Explicit nulls behave like absent fields.
  c = parse(with(with(with(small_llama(), "num_key_value_heads", "null"), "bos_token_id", "null"), "head_dim", "null"));
  CHECK(c.num_kv_heads == 4 && c.head_dim == 16 && c.bos_token_id == -1);

  Fields qwen3 = with(small_llama(), "architectures", "[\"Qwen3ForCausalLM\"]");
  c = parse(qwen3);
  CHECK(c.head_dim == 128);  // Qwen3Config's own default, not hidden_size / heads
  CHECK(c.max_position_embeddings == 32768 && c.qk_norm);
  CHECK(parse(with(qwen3, "attention_bias", "true")).attention_bias);
  c = parse(with(small_llama(), "architectures", "[\"Qwen2ForCausalLM\"]"));
  CHECK(c.head_dim == 16 && c.attention_bias && c.max_position_embeddings == 32768);

  c = parse(with(with(small_llama(), "attention_bias", "true"), "mlp_bias", "true"));
  CHECK(c.attention_bias && c.mlp_bias);
}

TEST(config_model_type_fallback) {
  Fields f = without(small_llama(), "architectures");
  CHECK(parse(with(f, "model_type", "\"qwen2\"")).arch == Arch::Qwen2);
  CHECK(parse(with(f, "model_type", "\"qwen3\"")).architecture == "Qwen3ForCausalLM");
  CHECK(parse(with(f, "model_type", "\"llama\"")).arch == Arch::Llama);
  CHECK(parse(with(with(f, "model_type", "\"qwen3\""), "architectures", "[]")).arch == Arch::Qwen3);
  CHECK_THROWS_CODE(parse(f), ErrorCode::kBadConfig);  // neither field
  CHECK_THROWS_CODE(parse(with(f, "model_type", "\"mistral\"")), ErrorCode::kUnsupportedArch);
  CHECK_THROWS_CODE(parse(with(f, "model_type", "3")), ErrorCode::kBadConfig);
}

TEST(config_rope_scaling_variants) {
  ModelConfig c = parse(with(small_llama(), "rope_scaling", R"({"type": "linear", "factor": 4.0})"));
  CHECK(c.rope_scaling.type == "linear" && c.rope_scaling.factor == 4.0);
  std::vector<double> inv = hayate::rope_inv_freq(c);
  for (int i = 0; i < 8; ++i) CHECK_NEAR(inv[i], 1.0 / std::pow(10000.0, 2.0 * i / 16) / 4.0, 1e-15);

  c = parse(with(small_llama(), "rope_scaling", R"({"rope_type": "default"})"));
  CHECK(c.rope_scaling.type.empty());
  CHECK_NEAR(hayate::rope_inv_freq(c)[1], 1.0 / std::pow(10000.0, 2.0 / 16), 1e-15);

  // transformers v5 keeps rope_theta and the scaling in rope_parameters.
  c = parse(with(small_llama(), "rope_parameters", R"({"rope_type": "default", "rope_theta": 250000.0})"));
  CHECK(c.rope_theta == 250000.0 && c.rope_scaling.type.empty());
}

TEST(config_bad_values) {
  struct Case {
    const char* what;
    Fields fields;
    ErrorCode code;
    const char* expect;  // a substring of the message
  };
  const Fields base = small_llama();
  std::vector<Case> cases = {
      {"unsupported arch", with(base, "architectures", "[\"MistralForCausalLM\"]"), ErrorCode::kUnsupportedArch,
       "'MistralForCausalLM' is not supported (supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"},
      {"architectures not a list", with(base, "architectures", "\"LlamaForCausalLM\""), ErrorCode::kBadConfig,
       "architectures"},
      {"architectures[0] not a string", with(base, "architectures", "[1]"), ErrorCode::kBadConfig, "architectures"},
      {"missing vocab_size", without(base, "vocab_size"), ErrorCode::kBadConfig, "missing required field 'vocab_size'"},
      {"null hidden_size", with(base, "hidden_size", "null"), ErrorCode::kBadConfig, "hidden_size"},
      {"zero hidden_size", with(base, "hidden_size", "0"), ErrorCode::kBadConfig, "'hidden_size' must be a positive"},
      {"negative layers", with(base, "num_hidden_layers", "-2"), ErrorCode::kBadConfig, "num_hidden_layers"},
      {"fractional heads", with(base, "num_attention_heads", "4.5"), ErrorCode::kBadConfig, "num_attention_heads"},
      {"string size", with(base, "intermediate_size", "\"128\""), ErrorCode::kBadConfig, "got \"128\""},
      {"huge size", with(base, "vocab_size", "1e12"), ErrorCode::kBadConfig, "vocab_size"},
      {"kv heads not dividing", with(base, "num_key_value_heads", "3"), ErrorCode::kBadConfig,
       "not a multiple of num_key_value_heads"},
      {"hidden not divisible", with(base, "num_attention_heads", "6"), ErrorCode::kBadConfig, "no head_dim"},
      {"odd head_dim", with(base, "head_dim", "15"), ErrorCode::kBadConfig, "odd"},
      {"yarn scaling", with(base, "rope_scaling", R"({"rope_type":"yarn","factor":4.0})"), ErrorCode::kBadConfig,
       "rope_scaling type 'yarn' not supported"},
      {"dynamic scaling (legacy key)", with(base, "rope_scaling", R"({"type":"dynamic","factor":2.0})"),
       ErrorCode::kBadConfig, "'dynamic' not supported"},
      {"llama3 without factor",
       with(base, "rope_scaling",
            R"({"rope_type":"llama3","low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192})"),
       ErrorCode::kBadConfig, "rope_scaling.factor"},
      {"llama3 low >= high",
       with(base, "rope_scaling",
            R"({"rope_type":"llama3","factor":8,"low_freq_factor":4,"high_freq_factor":4,"original_max_position_embeddings":8192})"),
       ErrorCode::kBadConfig, "high_freq_factor"},
      {"linear without factor", with(base, "rope_scaling", R"({"rope_type":"linear"})"), ErrorCode::kBadConfig,
       "factor"},
      {"rope_scaling not object", with(base, "rope_scaling", "4"), ErrorCode::kBadConfig, "rope_scaling"},
      {"rope_type not string", with(base, "rope_scaling", R"({"rope_type":1})"), ErrorCode::kBadConfig,
       "rope_scaling.rope_type"},
      {"rope_theta string", with(base, "rope_theta", "\"1e4\""), ErrorCode::kBadConfig, "rope_theta"},
      {"negative eps", with(base, "rms_norm_eps", "-1e-6"), ErrorCode::kBadConfig, "rms_norm_eps"},
      {"tie as string", with(base, "tie_word_embeddings", "\"yes\""), ErrorCode::kBadConfig, "tie_word_embeddings"},
      {"attention_bias as int", with(base, "attention_bias", "1"), ErrorCode::kBadConfig, "attention_bias"},
      {"eos string", with(base, "eos_token_id", "\"</s>\""), ErrorCode::kBadConfig, "eos_token_id"},
      {"eos list with string", with(base, "eos_token_id", "[1, \"x\"]"), ErrorCode::kBadConfig, "eos_token_id"},
      {"negative eos", with(base, "eos_token_id", "-1"), ErrorCode::kBadConfig, "eos_token_id"},
      {"bos list", with(base, "bos_token_id", "[1]"), ErrorCode::kBadConfig, "bos_token_id"},
      {"torch_dtype number", with(base, "torch_dtype", "16"), ErrorCode::kBadConfig, "torch_dtype"},
      {"gelu", with(base, "hidden_act", "\"gelu\""), ErrorCode::kBadConfig, "hidden_act"},
      {"sliding window", with(with(base, "architectures", "[\"Qwen2ForCausalLM\"]"), "use_sliding_window", "true"),
       ErrorCode::kBadConfig, "use_sliding_window"},
  };
  for (const Case& c : cases) {
    std::string json = to_json(c.fields);
    std::string msg = error_of(json);
    if (msg.find(c.expect) == std::string::npos)
      std::fprintf(stderr, "    case '%s': got '%s'\n", c.what, msg.c_str());
    CHECK(msg.rfind("dir/config.json: ", 0) == 0);  // names the file
    CHECK(msg.find(c.expect) != std::string::npos);
    CHECK_THROWS_CODE(parse_model_config(json, "dir/config.json"), c.code);
  }
  CHECK_THROWS_CODE(parse_model_config("{\"vocab_size\": ", "c.json"), ErrorCode::kBadConfig);
  CHECK_THROWS_CODE(parse_model_config("[1]", "c.json"), ErrorCode::kBadConfig);
  CHECK_THROWS_CODE(parse_model_config("", "c.json"), ErrorCode::kBadConfig);
}

TEST(config_load_from_directory) {
  CHECK_THROWS_CODE(hayate::load_model_config("/nonexistent/hayate/model"), ErrorCode::kNotFound);
  TempDir dir;
  try {
    hayate::load_model_config(dir.path);
    CHECK(false);
  } catch (const hayate::Error& e) {
    std::string m = e.what();
    CHECK(e.code() == ErrorCode::kNotFound);
    CHECK(m.find(dir.path + "/config.json") != std::string::npos);
    CHECK(m.find("expected a Hugging Face model directory with config.json") != std::string::npos);
  }
  dir.write("config.json", kQwen3_0_6B);
  CHECK((hayate::load_model_config(dir.path).eos_token_ids == std::vector<int>{151645}));
  // Qwen3-0.6B's generation_config.json: its eos list is merged after config.json's, without duplicates.
  dir.write("generation_config.json",
            R"({"bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643], "pad_token_id": 151643,)"
            R"( "temperature": 0.6, "top_k": 20, "top_p": 0.95, "transformers_version": "4.51.0"})");
  ModelConfig c = hayate::load_model_config(dir.path + "/");
  CHECK((c.eos_token_ids == std::vector<int>{151645, 151643}));
  CHECK(c.hidden_size == 1024);
  dir.write("generation_config.json", R"({"eos_token_id": 7})");
  CHECK((hayate::load_model_config(dir.path).eos_token_ids == std::vector<int>{151645, 7}));
  // A broken generation_config.json is advisory and ignored.
  dir.write("generation_config.json", "{not json");
  CHECK((hayate::load_model_config(dir.path).eos_token_ids == std::vector<int>{151645}));
  // A broken config.json is an error naming it.
  dir.write("config.json", "{\"architectures\": [\"LlamaForCausalLM\"],}");
  CHECK_THROWS_CODE(hayate::load_model_config(dir.path), ErrorCode::kBadConfig);
}
