// The model a benchmark runs: a checkpoint directory, or (none given) the
// standard configuration of shared/notes/benchmarking.md with random weights,
// so figures are comparable across changes.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/model.h"
#include "huginn/quantize.h"

namespace huginn::bench {

struct BenchModel {
  std::vector<float> flat;  // owns the weights of the standard model
  std::unique_ptr<Model> model;
  std::string name;
};

// dtype (standard config only): the weights as held: F32 in memory, or BF16/F16
// written to a temporary checkpoint and memory-mapped from it, as a user runs them.
inline BenchModel load_bench_model(const std::string& dir, DType dtype = DType::F32) {
  BenchModel b;
  if (!dir.empty()) {
    b.model = Model::load(dir);
    b.name = dir;
    return b;
  }
  nlohmann::json j = {{"n_embd", 512},  {"n_heads", 8},  {"intermediate_size", 1536},
                      {"vocab_size", 8192}, {"block_size", 1024}, {"n_layers_in_prelude", 2},
                      {"n_layers_in_recurrent_block", 4}, {"n_layers_in_coda", 2}, {"mean_recurrence", 32}};
  const ModelConfig c = parse_config(j, "standard");
  b.flat = init_params(c, 1);
  b.name = "std-d512 (random weights)";
  if (dtype == DType::F32) {
    b.model = Model::from_flat(c, b.flat.data());
    return b;
  }
  const std::filesystem::path tmp =
      std::filesystem::temp_directory_path() / str("huginn-bench-", dtype_name(dtype), "-", ::getpid());
  save_checkpoint(tmp.string(), c, b.flat.data(), dtype);
  b.model = Model::load(tmp.string());  // the mapping outlives the removed files
  std::filesystem::remove_all(tmp);
  b.flat.clear();
  return b;
}

// type: f32, bf16, f16 (as above) or a `huginn quantize` mix (q8_0, q4_0,
// q4_k_m, ...): the standard model written F32, quantized to a temporary GGUF
// and memory-mapped from it, as a user runs it.
inline BenchModel load_bench_model(const std::string& dir, const std::string& type) {
  std::string l = type;
  for (auto& ch : l) ch = (char)std::tolower((unsigned char)ch);
  if (l == "f32") return load_bench_model(dir, DType::F32);
  if (l == "bf16") return load_bench_model(dir, DType::BF16);
  if (l == "f16") return load_bench_model(dir, DType::F16);
  if (!is_quantize_mix(l)) fail("unknown weight type '", type, "' (f32, bf16, f16, q8_0, q6_k, q5_0, q4_1, q4_0, q5_k_m, q4_k_m)");
  const std::filesystem::path tmp =
      std::filesystem::temp_directory_path() / str("huginn-bench-", l, "-", ::getpid());
  std::string src = dir;
  if (src.empty()) {
    BenchModel f = load_bench_model("", DType::F32);
    save_checkpoint((tmp / "f32").string(), f.model->config(), f.flat.data(), DType::F32);
    src = (tmp / "f32").string();
  }
  QuantizeOptions qo;
  qo.type = l;
  quantize_model(src, (tmp / "m.gguf").string(), qo);
  BenchModel b;
  b.model = Model::load((tmp / "m.gguf").string());  // the mapping outlives the removed files
  b.name = dir.empty() ? "std-d512 (random weights)" : dir;
  std::filesystem::remove_all(tmp);
  return b;
}

}  // namespace huginn::bench
