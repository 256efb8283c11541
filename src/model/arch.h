// The architecture seam. A family of recurrent-depth models is one
// Architecture: it is chosen from config.json (`model_type`, then
// `architectures`) and owns its config keys, its tensor names and shapes,
// the forward pieces (embedding, initial state and injection, prelude, one
// iteration, head), the layer applications the KV cache stores per token,
// its stop tokens and chat format. Adding a family is adding a file
// (src/model/arch_<name>.cpp) that defines one and registers it below; the
// decode loop, caches, exit criteria and trainer do not change.
#pragma once
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "huginn/model.h"

namespace huginn {

// Which layer applications write the KV cache per token: prelude layers
// (steps 0..P-1), R core layers per iteration (P + t*R + l) and coda layers
// (-1-j); see KVCache.
struct KVLayout {
  int prelude = 0, core = 0, coda = 0;
  int width = 0;     // floats per position of K (and of V): kv heads x head_dim
  int head_dim = 0;  // floats per head
};

class Architecture {
 public:
  virtual ~Architecture() = default;
  // config.json's model_type for this family (e.g. "huginn_raven").
  virtual const char* name() const = 0;
  // Whether a config.json object belongs to this family.
  virtual bool matches(const nlohmann::json& config) const = 0;
  virtual ModelConfig parse_config(const nlohmann::json& j, const std::string& source) const = 0;
  virtual nlohmann::json config_to_json(const ModelConfig& c) const = 0;

  // Tensors, in checkpoint order, and the typed views bound to them.
  virtual std::vector<ParamSpec> param_layout(const ModelConfig& c) const = 0;
  virtual ModelWeights bind(const ModelConfig& c, const std::function<Weight(const ParamSpec&)>& get) const = 0;
  // Extra tensors a checkpoint may hold besides the parameters (e.g. a stored
  // RoPE table): names the loader accepts and the architecture reads itself.
  virtual std::vector<std::string> optional_tensors() const { return {}; }

  // The forward pieces (see Model's methods of the same names).
  virtual void embed(const Model& m, const int* ids, int T, float* e) const = 0;
  // e: the prelude output (the loop's input; Ouro starts from it).
  virtual void init_state(const Model& m, const float* e, float* s, int T, float init_scale, uint64_t seed) const = 0;
  virtual bool state_from_embedding() const { return false; }
  virtual void prelude(const Model& m, float* e, const Segment* seg, int nseg, Workspace& ws, const BlockActs* acts,
                       const TraceFn* trace) const = 0;
  virtual void iteration(const Model& m, float* s, const float* e, const Segment* seg, int nseg, int iter,
                         Workspace& ws, const TraceFn* trace, const BlockActs* acts) const = 0;
  virtual void head(const Model& m, const float* s, const Segment* seg, int nseg, float* latent, float* logits,
                    Workspace& ws, const TraceFn* trace, const HeadActs* acts) const = 0;
  virtual void normalize_state(const Model& m, const float* s, int T, float* out) const = 0;
  // A learned exit gate (Ouro): one logit per row of the state after an
  // iteration. Families without one return false.
  virtual bool has_exit_gate() const { return false; }
  virtual void exit_gate(const Model& m, const float* s, int T, float* out) const {}

  virtual KVLayout kv_layout(const ModelConfig& c) const = 0;
  // Tokens that end a generation when the model directory says nothing else.
  virtual std::vector<int> default_stop_tokens(const ModelConfig& c) const = 0;
  // Name of the chat format the family's chat models use (src/text/chat).
  virtual const char* chat_format() const = 0;
};

// The architecture of a config.json object; throws naming model_type for an
// unknown family.
const Architecture& architecture_for(const nlohmann::json& config, const std::string& source);
// By name (ModelConfig::arch).
const Architecture& architecture_named(const std::string& name);
// Every registered family (for `huginn info`, errors and docs).
std::vector<const Architecture*> architectures();

// Families (one file each).
const Architecture& huginn_architecture();
const Architecture& ouro_architecture();
// Huginn's config.json keys (src/model/config.cpp).
ModelConfig parse_huginn_config(const nlohmann::json& j, const std::string& source);
nlohmann::json huginn_config_to_json(const ModelConfig& c);

}  // namespace huginn
