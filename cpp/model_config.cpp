// config.json -> ModelConfig with the defaults of transformers' LlamaConfig / Qwen2Config / Qwen3Config.
// Every field is type-checked so a malformed file names the field instead of loading a wrong model.
#include "model_config.h"

#include <sys/stat.h>

#include <climits>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "errors.h"
#include "json.h"

namespace hayate {

namespace {

const char* kSupported = "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM";
constexpr double kPi = 3.14159265358979323846;

// Short rendering of a JSON value for messages ("got ...").
std::string describe(const JsonValue& v) {
  switch (v.kind()) {
    case JsonValue::Kind::Null: return "null";
    case JsonValue::Kind::Bool: return v.as_bool() ? "true" : "false";
    case JsonValue::Kind::Number: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", v.as_number());
      return buf;
    }
    case JsonValue::Kind::String: {
      const std::string& s = v.as_string();
      return "\"" + (s.size() > 40 ? s.substr(0, 40) + "..." : s) + "\"";
    }
    case JsonValue::Kind::Array: return "an array";
    case JsonValue::Kind::Object: return "an object";
  }
  return "?";
}

// Field access for one JSON object of one file; messages name the field and the file.
class Fields {
 public:
  Fields(const JsonValue& obj, const std::string& path, std::string prefix = "")
      : obj_(obj), path_(path), prefix_(std::move(prefix)) {}

  [[noreturn]] void bad(const std::string& msg) const { fail(ErrorCode::kBadConfig, path_ + ": " + msg); }
  [[noreturn]] void bad_field(const std::string& key, const char* expected, const JsonValue& got) const {
    bad("field '" + prefix_ + key + "' must be " + expected + ", got " + describe(got));
  }

  // Present and not null (transformers treats an explicit null like an absent value).
  const JsonValue* opt(const std::string& key) const {
    const JsonValue* v = obj_.find(key);
    return v && !v->is_null() ? v : nullptr;
  }

  static bool is_int(const JsonValue& v, double lo, double hi) {
    if (!v.is_number()) return false;
    double d = v.as_number();
    return std::trunc(d) == d && d >= lo && d <= hi;
  }

  int positive_int(const std::string& key) const {
    const JsonValue* v = opt(key);
    if (!v) bad("missing required field '" + prefix_ + key + "'");
    return positive_int(key, 0);
  }
  int positive_int(const std::string& key, int fallback) const {
    const JsonValue* v = opt(key);
    if (!v) return fallback;
    if (!is_int(*v, 1, INT_MAX)) bad_field(key, "a positive integer", *v);
    return static_cast<int>(v->as_number());
  }
  double positive_number(const std::string& key, double fallback) const {
    const JsonValue* v = opt(key);
    if (!v) return fallback;
    if (!v->is_number() || !(v->as_number() > 0)) bad_field(key, "a positive number", *v);
    return v->as_number();
  }
  double required_positive_number(const std::string& key) const {
    if (!opt(key)) bad("missing required field '" + prefix_ + key + "'");
    return positive_number(key, 0);
  }
  bool boolean(const std::string& key, bool fallback) const {
    const JsonValue* v = opt(key);
    if (!v) return fallback;
    if (!v->is_bool()) bad_field(key, "true or false", *v);
    return v->as_bool();
  }
  // A string, or "" when absent.
  std::string string(const std::string& key) const {
    const JsonValue* v = opt(key);
    if (!v) return "";
    if (!v->is_string()) bad_field(key, "a string", *v);
    return v->as_string();
  }
  // eos_token_id: an int or a list of ints.
  std::vector<int> token_ids(const std::string& key) const {
    std::vector<int> ids;
    const JsonValue* v = opt(key);
    if (!v) return ids;
    if (is_int(*v, 0, INT_MAX)) {
      ids.push_back(static_cast<int>(v->as_number()));
    } else if (v->is_array()) {
      for (const JsonValue& e : v->as_array()) {
        if (!is_int(e, 0, INT_MAX)) bad_field(key, "a token id or a list of token ids", e);
        ids.push_back(static_cast<int>(e.as_number()));
      }
    } else {
      bad_field(key, "a token id or a list of token ids", *v);
    }
    return ids;
  }

 private:
  const JsonValue& obj_;
  const std::string& path_;
  std::string prefix_;
};

Arch arch_from_class(const std::string& name, const std::string& path) {
  if (name == "LlamaForCausalLM") return Arch::Llama;
  if (name == "Qwen2ForCausalLM") return Arch::Qwen2;
  if (name == "Qwen3ForCausalLM") return Arch::Qwen3;
  fail(ErrorCode::kUnsupportedArch,
       path + ": architecture '" + name + "' is not supported (supported: " + kSupported + ")");
}

// architectures[0], or model_type when "architectures" is absent (some hand-written configs).
void read_arch(const Fields& f, const std::string& path, ModelConfig& c) {
  const JsonValue* archs = f.opt("architectures");
  if (archs && !archs->is_array()) f.bad_field("architectures", "a list of class names", *archs);
  if (archs && !archs->as_array().empty()) {
    const JsonValue& first = archs->as_array()[0];
    if (!first.is_string()) f.bad_field("architectures", "a list of class names", first);
    c.architecture = first.as_string();
    c.arch = arch_from_class(c.architecture, path);
    return;
  }
  const JsonValue* mt = f.opt("model_type");
  if (!mt) f.bad("no 'architectures' or 'model_type' field; is this a Hugging Face model config?");
  if (!mt->is_string()) f.bad_field("model_type", "a string", *mt);
  const std::string& t = mt->as_string();
  if (t == "llama") c.architecture = "LlamaForCausalLM";
  else if (t == "qwen2") c.architecture = "Qwen2ForCausalLM";
  else if (t == "qwen3") c.architecture = "Qwen3ForCausalLM";
  else
    fail(ErrorCode::kUnsupportedArch,
         path + ": model_type '" + t + "' is not supported (supported: " + kSupported + ")");
  c.arch = arch_from_class(c.architecture, path);
}

// rope_scaling (or transformers v5's rope_parameters): "llama3", "linear", "default"/none.
RopeScaling read_rope_scaling(const JsonValue& rs, const Fields& f, const std::string& key, const std::string& path) {
  if (!rs.is_object()) f.bad_field(key, "an object or null", rs);
  Fields r(rs, path, key + ".");
  std::string type = r.string("rope_type");
  if (type.empty()) type = r.string("type");  // legacy spelling
  RopeScaling s;
  if (type.empty() || type == "default") return s;  // no scaling
  if (type == "linear") {
    s.type = type;
    s.factor = r.required_positive_number("factor");
  } else if (type == "llama3") {
    s.type = type;
    s.factor = r.required_positive_number("factor");
    s.low_freq_factor = r.required_positive_number("low_freq_factor");
    s.high_freq_factor = r.required_positive_number("high_freq_factor");
    s.original_max_position_embeddings = r.positive_int("original_max_position_embeddings");
    if (!(s.high_freq_factor > s.low_freq_factor))
      f.bad(key + ": high_freq_factor must be greater than low_freq_factor");
  } else {
    f.bad("rope_scaling type '" + type + "' not supported (supported: llama3, linear, default)");
  }
  return s;
}

bool is_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kIo, path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(ErrorCode::kIo, path + ": read failed");
  return ss.str();
}

}  // namespace

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::Qwen2: return "qwen2";
    case Arch::Qwen3: return "qwen3";
  }
  return "?";
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& path) {
  JsonValue root = parse_json(json_text, path, ErrorCode::kBadConfig);
  if (!root.is_object()) fail(ErrorCode::kBadConfig, path + ": config is not a JSON object");
  Fields f(root, path);
  ModelConfig c;
  read_arch(f, path, c);
  const bool llama = c.arch == Arch::Llama;

  // Activation and sliding window change the math; refuse rather than compute something else.
  std::string act = f.string("hidden_act");
  if (!act.empty() && act != "silu") f.bad("hidden_act '" + act + "' not supported (only silu)");
  if (!llama && f.boolean("use_sliding_window", false)) f.bad("use_sliding_window: true is not supported");

  c.vocab_size = f.positive_int("vocab_size");
  c.hidden_size = f.positive_int("hidden_size");
  c.intermediate_size = f.positive_int("intermediate_size");
  c.num_layers = f.positive_int("num_hidden_layers");
  c.num_heads = f.positive_int("num_attention_heads");
  c.num_kv_heads = f.positive_int("num_key_value_heads", c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0)
    f.bad("num_attention_heads (" + std::to_string(c.num_heads) + ") is not a multiple of num_key_value_heads (" +
          std::to_string(c.num_kv_heads) + ")");
  if (f.opt("head_dim")) {
    c.head_dim = f.positive_int("head_dim", 0);
  } else if (c.arch == Arch::Qwen3) {
    c.head_dim = 128;  // Qwen3Config's default, independent of hidden_size
  } else {
    if (c.hidden_size % c.num_heads != 0)
      f.bad("hidden_size (" + std::to_string(c.hidden_size) + ") is not a multiple of num_attention_heads (" +
            std::to_string(c.num_heads) + ") and there is no head_dim");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0) f.bad("head_dim " + std::to_string(c.head_dim) + " is odd; rotary embeddings need it even");

  c.max_position_embeddings = f.positive_int("max_position_embeddings", llama ? 2048 : 32768);
  c.rms_norm_eps = f.positive_number("rms_norm_eps", 1e-6);

  const JsonValue* params = f.opt("rope_parameters");  // transformers v5 moves rope_theta here
  if (params && !params->is_object()) f.bad_field("rope_parameters", "an object or null", *params);
  double theta = 10000.0;
  if (params) theta = Fields(*params, path, "rope_parameters.").positive_number("rope_theta", theta);
  c.rope_theta = f.positive_number("rope_theta", theta);
  if (const JsonValue* rs = f.opt("rope_scaling"))
    c.rope_scaling = read_rope_scaling(*rs, f, "rope_scaling", path);
  else if (params)
    c.rope_scaling = read_rope_scaling(*params, f, "rope_parameters", path);

  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.attention_bias = c.arch == Arch::Qwen2 ? true : f.boolean("attention_bias", false);
  c.mlp_bias = llama ? f.boolean("mlp_bias", false) : false;
  c.qk_norm = c.arch == Arch::Qwen3;

  c.eos_token_ids = f.token_ids("eos_token_id");
  if (const JsonValue* bos = f.opt("bos_token_id")) {
    if (!Fields::is_int(*bos, 0, INT_MAX)) f.bad_field("bos_token_id", "a token id or null", *bos);
    c.bos_token_id = static_cast<int>(bos->as_number());
  }
  c.torch_dtype = f.string("torch_dtype");
  if (c.torch_dtype.empty()) {
    const JsonValue* d = f.opt("dtype");  // newer transformers' spelling; informational only
    if (d && d->is_string()) c.torch_dtype = d->as_string();
  }
  return c;
}

ModelConfig load_model_config(const std::string& dir) {
  const char* hint = " (expected a Hugging Face model directory with config.json)";
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    fail(ErrorCode::kNotFound, dir + ": model directory not found" + hint);
  const std::string base = dir.back() == '/' ? dir : dir + "/";
  const std::string config_path = base + "config.json";
  if (!is_file(config_path)) fail(ErrorCode::kNotFound, config_path + ": not found" + hint);
  ModelConfig c = parse_model_config(read_text(config_path), config_path);

  // generation_config.json is optional and advisory: merge its eos ids when it parses, ignore it otherwise.
  const std::string gen_path = base + "generation_config.json";
  if (is_file(gen_path)) {
    try {
      JsonValue gen = parse_json(read_text(gen_path), gen_path, ErrorCode::kBadConfig);
      if (gen.is_object()) {
        for (int id : Fields(gen, gen_path).token_ids("eos_token_id")) {
          bool seen = false;
          for (int e : c.eos_token_ids) seen = seen || e == id;
          if (!seen) c.eos_token_ids.push_back(id);
        }
      }
    } catch (const Error&) {
    }
  }
  return c;
}

std::vector<double> rope_inv_freq(const ModelConfig& cfg) {
  const int half = cfg.head_dim / 2;
  std::vector<double> inv(half);
  for (int i = 0; i < half; ++i) inv[i] = 1.0 / std::pow(cfg.rope_theta, 2.0 * i / cfg.head_dim);

  const RopeScaling& s = cfg.rope_scaling;
  if (s.type == "linear") {
    for (double& f : inv) f /= s.factor;
  } else if (s.type == "llama3") {
    // transformers' _compute_llama3_parameters: long wavelengths are slowed by `factor`, short ones kept,
    // the band in between interpolated.
    const double orig = s.original_max_position_embeddings;
    const double low_freq_wavelen = orig / s.low_freq_factor;
    const double high_freq_wavelen = orig / s.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2.0 * kPi / f;
      if (wavelen > low_freq_wavelen) {
        f = f / s.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return inv;
}

}  // namespace hayate
