// The model a benchmark runs: a checkpoint directory, or (none given) the
// standard configuration of shared/notes/benchmarking.md with random weights,
// so figures are comparable across changes.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "huginn/checkpoint.h"
#include "huginn/model.h"

namespace huginn::bench {

struct BenchModel {
  std::vector<float> flat;  // owns the weights of the standard model
  std::unique_ptr<Model> model;
  std::string name;
};

inline BenchModel load_bench_model(const std::string& dir) {
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
  b.model = Model::from_flat(c, b.flat.data());
  b.name = "std-d512 (random weights)";
  return b;
}

}  // namespace huginn::bench
