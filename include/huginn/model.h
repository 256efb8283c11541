// The recurrent-depth model: weights (memory-mapped where possible) and the
// forward pass, exposed as the pieces every generation mode and the trainer
// compose: embed -> prelude -> iterations of the core -> head (ln_f, coda,
// ln_f, lm_head).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "huginn/config.h"
#include "huginn/kv_cache.h"
#include "huginn/safetensors.h"

namespace huginn {

// One parameter tensor of the model, in the reference's state_dict order.
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // into a flat float buffer holding every parameter
  size_t numel = 0;
};
// Every parameter (not freqs_cis; lm_head.weight only when untied).
std::vector<ParamSpec> param_layout(const ModelConfig& c);
size_t param_count(const std::vector<ParamSpec>& layout);

struct BlockWeights {
  const float *norm_1 = nullptr, *qk_bias = nullptr, *wqkv = nullptr, *attn_proj = nullptr, *norm_2 = nullptr,
              *fc = nullptr, *mlp_proj = nullptr, *norm_3 = nullptr, *norm_4 = nullptr;
};
struct ModelWeights {
  const float* wte = nullptr;
  const float* lm_head = nullptr;  // == wte when tied
  const float* adapter = nullptr;  // [d, 2d]: state columns first
  const float* ln_f = nullptr;
  std::vector<BlockWeights> prelude, core, coda;
};
// Points a ModelWeights at the parameters of a flat buffer laid out by param_layout.
ModelWeights bind_weights(const ModelConfig& c, const float* flat);

// Activations of one forward call, preallocated and reused (no allocation once
// sized for the largest T and key count seen).
struct Workspace {
  int cap_tokens = 0, cap_keys = 0;
  std::vector<float> x, xn, qkv, att, tmp, hid, act, cat, scores;
  std::vector<const float*> keys, vals;
  std::vector<int> pos;
  void ensure(const ModelConfig& c, int tokens, int keys);
};

// A batch of independent sequences in one call: segment i owns the next
// `rows` rows of the activations, at positions pos0.., and attends over its own
// cache (without one: causally over its own rows). Row-wise work (projections,
// MLP, norms) runs on all rows together; each row's result is bitwise the same
// as in a call for its segment alone.
struct Segment {
  int rows = 0;
  int pos0 = 0;
  KVCache* cache = nullptr;
  int logit_rows = 1;  // head_segments: logits for the segment's last rows
};

// Called with intermediate tensors (rows x cols) when set; see the fixtures'
// debug_intermediates names.
using TraceFn = std::function<void(const std::string& name, const float* data, int rows, int cols)>;

class Model {
 public:
  // Loads config.json and the weights of an HF model directory; validates every
  // tensor's presence and shape. F32 weights are used in place from the
  // memory map; BF16/F16 are converted to float32 once.
  static std::unique_ptr<Model> load(const std::string& dir);
  // A model over a flat parameter buffer (param_layout order) that the caller owns.
  static std::unique_ptr<Model> from_flat(const ModelConfig& c, const float* flat);

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  const std::string& rope_source() const { return rope_source_; }
  // dtype of each stored tensor, for `huginn info`.
  const std::vector<std::pair<std::string, std::string>>& stored_dtypes() const { return dtypes_; }

  // Throws a clear error for ids outside the vocabulary or positions beyond the context.
  void check_tokens(const int* ids, int T, int pos0) const;

  // e[T, d] = wte[ids] * sqrt(d)
  void embed(const int* ids, int T, float* e) const;
  // One sandwich block in place on x[T, d]; writes/reads K/V under `step` when a cache is given.
  void block(const BlockWeights& b, float* x, int T, int pos0, KVCache* cache, int step, Workspace& ws) const;
  // The same over several sequences (see Segment).
  void block_segments(const BlockWeights& b, float* x, const Segment* seg, int nseg, int step, Workspace& ws) const;
  void prelude_segments(float* e, const Segment* seg, int nseg, Workspace& ws) const;
  void core_iteration_segments(float* s, const float* e, const Segment* seg, int nseg, int iter, Workspace& ws,
                               const TraceFn* trace = nullptr) const;
  // Logits: each segment's `logit_rows` last rows, concatenated in segment order.
  void head_segments(const float* s, const Segment* seg, int nseg, float* latent, float* logits, Workspace& ws,
                     const TraceFn* trace = nullptr) const;
  // Prelude blocks on e (in place), steps 0..P-1.
  void prelude(float* e, int T, int pos0, KVCache* cache, Workspace& ws, const TraceFn* trace = nullptr) const;
  // One recurrence, s <- core(adapter([s, e])), as iteration `iter` (0-based).
  void core_iteration(float* s, const float* e, int T, int pos0, KVCache* cache, int iter, Workspace& ws,
                      const TraceFn* trace = nullptr) const;
  // From the raw state s[T, d]: latent = ln_f(s) (optional out), coda blocks,
  // ln_f, and lm_head for the last `logit_rows` rows into logits[logit_rows, V].
  void head(const float* s, int T, int pos0, KVCache* cache, float* latent, float* logits, int logit_rows,
            Workspace& ws, const TraceFn* trace = nullptr) const;
  // The initial state: zeros for init_scale = 0, else the reference's truncated
  // normal (std sqrt(2/(5d)) * init_scale, cut at 3 std, times sqrt(d)).
  void init_state(float* s, int T, float init_scale, uint64_t seed) const;

  struct ForwardResult {
    std::vector<float> logits;   // [logit_rows, V]
    std::vector<float> latents;  // [T, d], ln_f of the final state
    std::vector<float> state;    // [T, d], raw final state
  };
  // A whole forward: embed, prelude, `steps` iterations from input_states (or
  // init_state), head. With a cache, positions start at cache->length().
  void forward(const int* ids, int T, int steps, ForwardResult& out, Workspace& ws, KVCache* cache = nullptr,
               const float* input_states = nullptr, float init_scale = 0.f, uint64_t seed = 0,
               int logit_rows = -1, const TraceFn* trace = nullptr) const;

 private:
  Model() = default;
  void build_rope(const TensorView* stored);
  // y = x · Wᵀ over the rows of all segments, each row computed exactly as in
  // a call for its segment alone.
  void matmul_segments(const float* x, const float* W, float* y, const Segment* seg, int nseg, int K, int N) const;

  ModelConfig cfg_;
  ModelWeights w_;
  TensorStore store_;
  std::vector<std::vector<float>> owned_;  // converted weights
  std::vector<float> rope_cos_, rope_sin_;
  std::string rope_source_;
  std::vector<std::pair<std::string, std::string>> dtypes_;
};

}  // namespace huginn
