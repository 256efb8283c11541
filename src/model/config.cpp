#include "huginn/config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "huginn/common.h"
#include "huginn/json.h"

namespace huginn {
using json = nlohmann::json;

namespace {

// Keys that published Huginn/raven configs and Hugging Face add and that do not
// change the computation (or that we check separately below).
const std::set<std::string>& ignored_keys() {
  static const std::set<std::string> k = {
      "architectures", "auto_map", "torch_dtype", "transformers_version", "model_type", "_name_or_path",
      "name", "padding_multiple", "padded_vocab_size", "bias", "architecture_class_name",
      "block_class_name", "norm_class_name", "mlp_class_name", "nonlin_name", "init_strategy",
      "init_orthogonal", "state_init", "injection_type", "sampling_scheme", "activation_checkpoint_impl",
      "n_layers", "num_hidden_layers", "num_key_value_heads", "head_dim", "init_values",
      "effective_expected_depth", "test_time_noise", "test_time_noise_type", "bos_token_id",
      "eos_token_id", "pad_token_id", "use_cache", "tie_word_embeddings", "return_dict",
      "output_hidden_states", "output_attentions", "torchscript", "use_return_dict",
      "attn_impl", "center_attention_scores", "mup_model_scaling_factor", "local_window",
      "n_head", "num_attention_heads", "n_heads", "hidden_size", "n_embd", "intermediate_size",
      "vocab_size", "block_size", "n_layers_in_prelude", "n_layers_in_recurrent_block",
      "n_layers_in_coda", "mean_recurrence", "mean_backprop_depth", "norm_eps", "rope_base",
      "tie_embeddings", "qk_bias", "max_position_embeddings", "rope_theta", "rms_norm_eps"};
  return k;
}

int get_int(const json& j, const char* key, const std::string& src, bool required, int def = 0) {
  if (!j.contains(key)) {
    if (required) fail(src, ": missing required key '", key, "'");
    return def;
  }
  const json& v = j.at(key);
  if (!v.is_number() || (v.is_number_float() && v.get<double>() != std::floor(v.get<double>())))
    fail(src, ": key '", key, "' must be an integer, got ", json_brief(v));
  int64_t i;
  if (!json_int(v, 0, 1 << 30, &i)) fail(src, ": key '", key, "' out of range: ", json_brief(v));
  return (int)i;
}

double get_num(const json& j, const char* key, const std::string& src, double def) {
  if (!j.contains(key) || j.at(key).is_null()) return def;
  if (!j.at(key).is_number()) fail(src, ": key '", key, "' must be a number, got ", json_brief(j.at(key)));
  return j.at(key).get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& src, bool def) {
  if (!j.contains(key)) return def;
  if (!j.at(key).is_boolean()) fail(src, ": key '", key, "' must be true or false, got ", json_brief(j.at(key)));
  return j.at(key).get<bool>();
}

void expect_string(const json& j, const char* key, const char* want, const std::string& src) {
  if (!j.contains(key)) return;
  if (!j.at(key).is_string() || j.at(key).get<std::string>() != want)
    fail(src, ": unsupported ", key, " ", json_brief(j.at(key)), " (huginn.cpp implements ", want, ")");
}

}  // namespace

void check_config_bounds(const ModelConfig& c, const std::string& src) {
  // Each size within what any published model of this family uses, with a
  // wide margin, so that no product below can overflow and nothing sized from
  // the config is allocated before it is checked against the weights present.
  auto at_most = [&](const char* key, int64_t v, int64_t max) {
    if (v > max) fail(src, ": ", key, " ", v, " is larger than the supported maximum ", max);
  };
  at_most("n_embd", c.n_embd, kMaxEmbd);
  at_most("intermediate_size", c.intermediate_size, kMaxIntermediate);
  at_most("vocab_size", c.vocab_size, kMaxVocab);
  at_most("block_size", c.block_size, kMaxBlockSize);
  at_most("n_layers_in_prelude", c.n_prelude, kMaxLayersPerPart);
  at_most("n_layers_in_recurrent_block", c.n_core, kMaxLayersPerPart);
  at_most("n_layers_in_coda", c.n_coda, kMaxLayersPerPart);
  at_most("mean_recurrence", c.mean_recurrence, kMaxRecurrence);
  at_most("mean_backprop_depth", c.mean_backprop_depth, kMaxRecurrence);
  // The parameter count in 128 bits: it must fit in memory as float32.
  using i128 = __int128;
  const i128 d = c.n_embd, I = c.intermediate_size, V = c.vocab_size;
  const i128 block = 4 * d + (c.qk_bias ? 2 * d : 0) + 3 * d * d + d * d + 2 * I * d + d * I;
  const i128 total = V * d * (c.tie_embeddings ? 1 : 2) + block * (c.n_prelude + c.n_core + c.n_coda) + d * 2 * d + d;
  if (total > kMaxParams)
    fail(src, ": the config describes ", (double)total, " parameters, more than the supported ", (double)kMaxParams);
}

int64_t ModelConfig::params_embedding() const { return (int64_t)vocab_size * n_embd; }
int64_t ModelConfig::params_block() const {
  int64_t d = n_embd, I = intermediate_size;
  return 4 * d + (qk_bias ? 2 * d : 0) + 3 * d * d + d * d + 2 * I * d + d * I;
}
int64_t ModelConfig::params_adapter() const { return (int64_t)n_embd * 2 * n_embd; }
int64_t ModelConfig::params_total() const {
  return params_embedding() * (tie_embeddings ? 1 : 2) + params_block() * (n_prelude + n_core + n_coda) +
         params_adapter() + n_embd;
}

ModelConfig parse_huginn_config(const json& j, const std::string& src) {
  if (!j.is_object()) fail(src, ": config must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!ignored_keys().count(it.key()))
      fail(src, ": unknown config key '", printable(it.key()), "' (not part of the recurrent-depth model config)");

  ModelConfig c;
  if (j.contains("name") && j["name"].is_string()) c.name = j["name"].get<std::string>();
  // A key or its alias; the key wins when both are there, as in the reference
  // (its config class takes the head count from n_heads: see the fixtures README).
  auto aliased = [&](const char* key, const char* alias) -> int64_t {
    if (!j.contains(key) && !j.contains(alias)) fail(src, ": missing required key '", key, "' (or '", alias, "')");
    return j.contains(key) ? get_int(j, key, src, true) : get_int(j, alias, src, true);
  };
  c.n_embd = aliased("n_embd", "hidden_size");
  c.n_heads = aliased("n_heads", "num_attention_heads");
  if (c.n_heads <= 0) fail(src, ": n_heads must be positive, got ", c.n_heads);
  if (j.contains("num_key_value_heads") && get_int(j, "num_key_value_heads", src, true) != c.n_heads)
    fail(src, ": num_key_value_heads != n_heads (grouped-query attention) is not supported");
  c.intermediate_size = get_int(j, "intermediate_size", src, true);
  c.vocab_size = j.contains("padded_vocab_size") && !j.contains("vocab_size")
                     ? get_int(j, "padded_vocab_size", src, true)
                     : get_int(j, "vocab_size", src, true);
  c.block_size = get_int(j, "block_size", src, false, 4096);
  c.n_prelude = get_int(j, "n_layers_in_prelude", src, true);
  c.n_core = get_int(j, "n_layers_in_recurrent_block", src, true);
  c.n_coda = get_int(j, "n_layers_in_coda", src, true);
  c.mean_recurrence = get_int(j, "mean_recurrence", src, false, 32);
  c.mean_backprop_depth = get_int(j, "mean_backprop_depth", src, false, 8);
  c.norm_eps = (float)get_num(j, "norm_eps", src, 1e-6);
  c.rope_base = (float)get_num(j, "rope_base", src, 50000.0);
  c.tie_embeddings = get_bool(j, "tie_embeddings", src, true);
  c.qk_bias = get_bool(j, "qk_bias", src, true);
  if (get_bool(j, "bias", src, false)) fail(src, ": linear biases (bias: true) are not supported");
  expect_string(j, "block_class_name", "SandwichBlock", src);
  expect_string(j, "norm_class_name", "RMSNorm_llama", src);
  expect_string(j, "mlp_class_name", "GatedMLP", src);
  expect_string(j, "nonlin_name", "SiLU", src);
  expect_string(j, "injection_type", "linear", src);

  if (c.n_embd <= 0) fail(src, ": n_embd must be positive");
  if (c.n_heads <= 0 || c.n_embd % c.n_heads != 0)
    fail(src, ": n_embd (", c.n_embd, ") must be a positive multiple of n_heads (", c.n_heads, ")");
  c.head_dim = c.n_embd / c.n_heads;
  if (c.head_dim % 2 != 0) fail(src, ": head_dim (", c.head_dim, ") must be even for rotary embeddings");
  if (c.intermediate_size <= 0) fail(src, ": intermediate_size must be positive");
  if (c.vocab_size <= 0) fail(src, ": vocab_size must be positive");
  if (c.block_size <= 0) fail(src, ": block_size must be positive");
  if (c.n_core <= 0) fail(src, ": n_layers_in_recurrent_block must be positive");
  if (!(c.norm_eps > 0)) fail(src, ": norm_eps must be positive");
  if (!(c.rope_base > 1)) fail(src, ": rope_base must be > 1");
  check_config_bounds(c, src);
  return c;
}

ModelConfig load_config(const std::string& path) {
  return parse_config(parse_json_file(path, kJsonMaxDepth, 1 << 20), path);
}

json huginn_config_to_json(const ModelConfig& c) {
  json j;
  j["name"] = c.name;
  j["architectures"] = {"RavenForCausalLM"};
  j["model_type"] = "huginn_raven";
  j["torch_dtype"] = "float32";
  j["block_size"] = c.block_size;
  j["vocab_size"] = c.vocab_size;
  j["padding_multiple"] = 4096;
  j["tie_embeddings"] = c.tie_embeddings;
  j["n_embd"] = c.n_embd;
  j["n_heads"] = c.n_heads;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["bias"] = false;
  j["architecture_class_name"] = "RecurrentGPT";
  j["block_class_name"] = "SandwichBlock";
  j["norm_class_name"] = "RMSNorm_llama";
  j["norm_eps"] = c.norm_eps;
  j["mlp_class_name"] = "GatedMLP";
  j["nonlin_name"] = "SiLU";
  j["init_strategy"] = "takase";
  j["init_orthogonal"] = false;
  j["state_init"] = "like-init";
  j["injection_type"] = "linear";
  j["n_layers_in_prelude"] = c.n_prelude;
  j["n_layers_in_recurrent_block"] = c.n_core;
  j["n_layers_in_coda"] = c.n_coda;
  j["n_layers"] = c.n_prelude + c.n_core + c.n_coda;
  j["mean_recurrence"] = c.mean_recurrence;
  j["mean_backprop_depth"] = c.mean_backprop_depth;
  j["sampling_scheme"] = "poisson-lognormal-filling";
  j["qk_bias"] = c.qk_bias;
  j["rope_base"] = c.rope_base;
  return j;
}

}  // namespace huginn
