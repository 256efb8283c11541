// Model configuration: the HF config.json of a recurrent-depth (Huginn/raven) model.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace huginn {

struct ModelConfig {
  std::string arch = "huginn_raven";  // the family (config.json's model_type), see src/model/arch.h
  std::string name = "huginn";
  int n_embd = 0;             // d
  int n_heads = 0;            // attention heads (kv heads are equal)
  int head_dim = 0;           // n_embd / n_heads, always derived
  int intermediate_size = 0;  // MLP hidden I (fc is [2I, d])
  int vocab_size = 0;         // padded vocabulary
  int block_size = 0;         // maximum context
  int n_prelude = 0, n_core = 0, n_coda = 0;
  int mean_recurrence = 32;
  int mean_backprop_depth = 8;
  float norm_eps = 1e-6f;
  float rope_base = 50000.0f;
  bool tie_embeddings = true;
  bool qk_bias = true;

  // Effective depth used by the init's output-projection scaling.
  int effective_layers() const { return n_prelude + n_coda + n_core * mean_recurrence; }
  // Parameter counts, by part of the model.
  int64_t params_embedding() const;
  int64_t params_block() const;
  int64_t params_adapter() const;
  int64_t params_total() const;
};

// Parses a config.json object of any registered architecture (chosen by its
// model_type / architectures). Accepts the aliases used by published checkpoints
// (n_heads/num_attention_heads, n_embd/hidden_size); rejects unknown keys and
// unsupported architecture choices with a message naming them. `source` names
// the file in error messages.
ModelConfig parse_config(const nlohmann::json& j, const std::string& source);
ModelConfig load_config(const std::string& path);
// Writes every key the reference's config class knows, so that the HF code and
// huginn.cpp both load it.
nlohmann::json config_to_json(const ModelConfig& c);

}  // namespace huginn
