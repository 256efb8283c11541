// Model configuration: the HF config.json of a recurrent-depth (Huginn/raven) model.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace huginn {

struct ModelConfig {
  std::string arch = "huginn_raven";  // the family (config.json's model_type), see src/model/arch.h
  std::string name = "huginn";
  int n_embd = 0;             // d
  int n_heads = 0;            // attention heads
  int n_kv_heads = 0;         // key/value heads (grouped-query attention when < n_heads); 0: n_heads
  int head_dim = 0;           // Huginn: n_embd / n_heads, always derived; Ouro: config head_dim
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
  // Half-split (Llama/NeoX: x[i] with x[i + hd/2]) instead of interleaved-pair RoPE.
  bool rope_half_split = false;
  // Families with a learned exit gate (Ouro): the default exit threshold
  // (early_exit_threshold; negative: none) and a fixed exit step (-1: none).
  double exit_threshold = -1;
  int exit_step = -1;
  // Stop tokens the config names (eos_token_id); empty: the family's default.
  std::vector<int> eos_token_ids;

  int kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  // Floats per position of K (and of V).
  int kv_width() const { return kv_heads() * head_dim; }

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

// Upper bounds on a config's sizes (parse_config enforces them): every product
// of them fits in 64 bits, and the parameter count fits in memory as float32.
constexpr int64_t kMaxEmbd = 1 << 16;
constexpr int64_t kMaxIntermediate = 1 << 20;
constexpr int64_t kMaxVocab = 1 << 24;
constexpr int64_t kMaxBlockSize = 1 << 20;
constexpr int64_t kMaxLayersPerPart = 1024;
constexpr int64_t kMaxRecurrence = 1 << 16;
constexpr int64_t kMaxParams = int64_t(1) << 37;  // 128 Gi parameters (512 GiB as float32)
// Throws huginn::Error naming `source` when a size is beyond those bounds.
void check_config_bounds(const ModelConfig& c, const std::string& source);
// Writes every key the reference's config class knows, so that the HF code and
// huginn.cpp both load it.
nlohmann::json config_to_json(const ModelConfig& c);

}  // namespace huginn
