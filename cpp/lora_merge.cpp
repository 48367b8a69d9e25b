#include "lora_merge.h"

#include <map>

#include "safetensors.h"
#include "safetensors_writer.h"

namespace hayate {

void write_merged_weights(Model& model, const std::string& base_dir, const std::string& out_file) {
  const LoraSet* lora = model.lora();
  HAYATE_CHECK(lora != nullptr, ErrorCode::kInvalidArgument, "merge: the model has no LoRA adapters");
  Backend& be = model.backend();
  std::unique_ptr<TensorStore> store = TensorStore::open_dir(base_dir);
  std::map<std::string, const LoraAdapter*> merged;
  for (const LoraAdapter& a : lora->adapters()) {
    const bool attn = static_cast<int>(a.ref.target) <= static_cast<int>(LoraTarget::O);
    const std::string name = "model.layers." + std::to_string(a.ref.layer) + (attn ? ".self_attn." : ".mlp.") +
                             lora_target_name(a.ref.target) + ".weight";
    store->get_checked(name, {a.out, a.in});  // present, float, right shape
    merged[name] = &a;
  }
  const float scale = lora->scale();
  std::vector<SafetensorsEntry> entries;
  for (const std::string& name : store->names()) {
    const TensorInfo& t = store->get(name);
    SafetensorsEntry e;
    e.name = name;
    e.dtype_name = t.dtype_name;
    e.shape = t.shape;
    e.bytes = t.data_end - t.data_begin;
    auto it = merged.find(name);
    if (it == merged.end()) {
      e.data = t.data;
    } else {
      const LoraAdapter* a = it->second;
      e.produce = [&be, a, &t, scale]() {
        const int64_t n = a->out * a->in;
        Buffer delta(be, be.param_dtype(), {a->out, a->in});
        be.gemm(delta, a->b, a->a, false, false, scale, 0.0f);  // scale * B A
        std::vector<double> w(static_cast<size_t>(n)), d(static_cast<size_t>(n));
        be.download_f64(d.data(), delta);
        convert_float(w.data(), DType::F64, t.data, t.dtype, static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) w[i] += d[i];
        std::vector<uint8_t> bytes(static_cast<size_t>(n) * dtype_size(t.dtype));
        convert_float(bytes.data(), t.dtype, w.data(), DType::F64, static_cast<size_t>(n));
        return bytes;
      };
    }
    entries.push_back(std::move(e));
  }
  write_safetensors(out_file, entries);
}

}  // namespace hayate
