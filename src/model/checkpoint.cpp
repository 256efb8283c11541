#include "huginn/checkpoint.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "huginn/atomic_file.h"
#include "huginn/common.h"
#include "huginn/stream_write.h"

namespace huginn {
namespace fs = std::filesystem;

namespace {
void trunc_normal(float* p, size_t n, float std, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  for (size_t i = 0; i < n; ++i) {
    float z;
    do z = nd(rng);
    while (std::fabs(z) > 3.f);
    p[i] = z * std;
  }
}
}  // namespace

namespace {
// One tensor of the initialisation, drawing from rng in layout order.
void init_tensor(const ModelConfig& c, const ParamSpec& p, std::mt19937_64& rng, float* w) {
  const float std_in = std::sqrt(2.0f / (5.0f * c.n_embd));
  const float std_out = std_in / std::sqrt(2.0f * c.effective_layers());
  if (p.name.ends_with("norm_1.weight") || p.name.ends_with("norm_2.weight") || p.name.ends_with("norm_3.weight") ||
      p.name.ends_with("norm_4.weight") || p.name == "transformer.ln_f.weight" ||
      p.name.ends_with("layernorm.weight") || p.name.ends_with("layernorm_2.weight") ||
      p.name == "model.norm.weight") {  // Ouro's norms
    std::fill(w, w + p.numel, 1.0f);
  } else if (p.name == "model.early_exit_gate.bias") {
    std::fill(w, w + p.numel, 0.0f);
  } else if (p.name.ends_with("o_proj.weight") || p.name.ends_with("down_proj.weight")) {
    trunc_normal(w, p.numel, std_out, rng);
  } else if (p.name.ends_with("qk_bias")) {
    std::fill(w, w + p.numel, 0.0f);
  } else if (p.name.ends_with("attn.proj.weight") || p.name.ends_with("mlp.proj.weight")) {
    trunc_normal(w, p.numel, std_out, rng);
  } else if (p.name.ends_with("mlp.fc.weight")) {
    const size_t half = p.numel / 2;  // rows 0..I-1 gate, I..2I-1 up
    trunc_normal(w, half, std_in, rng);
    trunc_normal(w + half, p.numel - half, std_out, rng);
  } else {
    trunc_normal(w, p.numel, std_in, rng);
  }
}

void write_config(const std::string& dir, const ModelConfig& c) {
  write_file_atomic((fs::path(dir) / "config.json").string(), config_to_json(c).dump(2) + "\n");
}

void make_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create directory: ", ec.message());
}
}  // namespace

std::vector<float> init_params(const ModelConfig& c, uint64_t seed) {
  auto layout = param_layout(c);
  std::vector<float> flat(param_count(layout), 0.f);
  std::mt19937_64 rng(seed);
  for (auto& p : layout) init_tensor(c, p, rng, flat.data() + p.offset);
  return flat;
}

void save_random_checkpoint(const std::string& dir, const ModelConfig& c, uint64_t seed, DType dtype) {
  make_dir(dir);
  auto rng = std::make_shared<std::mt19937_64>(seed);
  std::vector<StreamedTensor> ts;
  for (auto& p : param_layout(c))
    ts.push_back({p.name, p.shape, dtype, [&c, p, rng](float* w) { init_tensor(c, p, *rng, w); }});
  write_safetensors_streamed((fs::path(dir) / "model.safetensors").string(), ts, {{"format", "pt"}});
  write_config(dir, c);
}

void save_checkpoint(const std::string& dir, const ModelConfig& c, const float* flat, DType dtype) {
  make_dir(dir);
  std::vector<TensorToWrite> ts;
  for (auto& p : param_layout(c)) ts.push_back({p.name, p.shape, flat + p.offset, dtype});
  write_safetensors((fs::path(dir) / "model.safetensors").string(), ts, {{"format", "pt"}});
  write_config(dir, c);
}

}  // namespace huginn
