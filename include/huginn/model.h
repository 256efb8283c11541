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

#include "huginn/common.h"
#include "huginn/config.h"
#include "huginn/kv_cache.h"
#include "huginn/safetensors.h"
#include "huginn/weight.h"

namespace huginn {

class Architecture;
namespace gguf {
class File;
}

// One parameter tensor of the model, in the reference's state_dict order.
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // into a flat float buffer holding every parameter
  size_t numel = 0;
};
// Every parameter of the config's architecture (Huginn: not freqs_cis;
// lm_head.weight only when untied), in checkpoint order.
std::vector<ParamSpec> param_layout(const ModelConfig& c);
size_t param_count(const std::vector<ParamSpec>& layout);

// Typed views of the parameters (matrices in their stored type, vectors F32).
// Fields an architecture does not use stay empty.
// Huginn: norm_1 -> wqkv (+qk_bias) -> attn_proj, norm_2 on the residual sum;
// norm_3 -> fc ([gate; up]) -> mlp_proj, norm_4 on the residual sum.
// Ouro: separate wq/wk/wv and w_gate/w_up; norm_1 = input_layernorm,
// norm_2 = input_layernorm_2 (on the attention output, before the residual
// add), norm_3 = post_attention_layernorm, norm_4 = post_attention_layernorm_2
// (on the MLP output); attn_proj = o_proj, mlp_proj = down_proj.
struct BlockWeights {
  Weight norm_1, qk_bias, wqkv, attn_proj, norm_2, fc, mlp_proj, norm_3, norm_4;
  Weight wq, wk, wv, w_gate, w_up;
};
struct ModelWeights {
  Weight wte;
  Weight lm_head;  // == wte when tied
  Weight adapter;  // [d, 2d]: state columns first
  Weight ln_f;
  Weight exit_gate, exit_gate_bias;  // learned exit gate (Ouro): [1, d] and [1]
  std::vector<BlockWeights> prelude, core, coda;
};
// Points a ModelWeights at the parameters of a flat F32 buffer laid out by param_layout.
ModelWeights bind_weights(const ModelConfig& c, const float* flat);

// Activations of one forward call, preallocated and reused (no allocation once
// sized for the largest T and key count seen). They sit on 64-byte lines
// (LineFloats: the GEMV reads its input rows as whole vectors for every block
// of weight rows, and copies rows that are not on lines first).
struct Workspace {
  int cap_tokens = 0, cap_keys = 0;
  LineFloats x, xn, qkv, att, tmp, hid, act, cat;
  std::vector<int> pos;
  // attention over a batch's segments (Model::attention_segments sizes these):
  // cap_keys key/value pointers per segment, cap_keys scores per thread
  std::vector<const void*> keys, vals;  // per key: its entry (F32 or F16, the cache's kv_type)
  LineFloats scores;
  std::vector<int> seg_keys, seg_offset, seg_row0, row_seg;
  std::vector<int> row_groups;  // (first row, rows) per unit of the attention loop
  void ensure(const ModelConfig& c, int tokens, int keys);
};

// What a training forward keeps of one block application for the backward
// pass (llm.c style: buffers owned by the trainer, written by the one forward).
struct BlockActs {
  float *x_in, *qkv, *att, *r1, *x1, *r2, *h, *act;
};
// ... and of the head: the coda blocks, the coda output and its ln_f.
struct HeadActs {
  const BlockActs* coda = nullptr;
  float* xc = nullptr;
  float* xf = nullptr;
};

// A batch of independent sequences in one call: segment i owns the next
// `rows` rows of the activations, at positions pos0.., and attends over its own
// cache (without one: causally over its own rows). Row-wise work (projections,
// MLP, norms) runs on all rows together; each row's result is bitwise the same
// as in a call for its segment alone.
//
// With activation sinks (training), the same definition runs the training
// schedule: segments are B equal sequences without cache, projections are one
// sgemm over all rows and attention is batched sgemm per (sequence, head).
struct Segment {
  int rows = 0;
  int pos0 = 0;
  KVCache* cache = nullptr;
  int logit_rows = 1;  // head_segments: logits for the segment's last rows
};

// Called with intermediate tensors (rows x cols) when set; see the fixtures'
// debug_intermediates names.
using TraceFn = std::function<void(const std::string& name, const float* data, int rows, int cols)>;

// Options of loading a model (Model::load, load_model in loaded_model.h).
struct LoadOptions {
  // false: no weights and no config.json (tokenizer, generation config and
  // stop ids only, e.g. `huginn tokenize -m DIR`); the path may then also be
  // a tokenizer.json file (load_model only).
  bool weights = true;
  // false: leave tokenizer.json unread even when the directory has one.
  bool tokenizer = true;
  // Convert BF16/F16 matrices to F32 at load (more memory; the F32 kernels).
  // Default: matrices are read in their stored type from the memory map.
  bool convert_to_f32 = false;
};

// The model: its architecture (chosen from config.json's model_type), typed
// weights over the memory-mapped checkpoint, and the forward pieces every
// generation mode and the trainer compose: embed -> prelude -> iterations of
// the core -> head. The pieces dispatch to the architecture
// (src/model/arch*.cpp); everything else (decode loop, caches, exits,
// trainer) only sees this interface.
class Model {
 public:
  // Loads config.json and the weights of an HF model directory, or a GGUF file
  // (src/model/gguf_model.h); validates every tensor's presence and shape.
  // Matrices are used in their stored type from the memory map (F32, BF16, F16,
  // ggml block types); vectors (norms, biases) are held as F32.
  static std::unique_ptr<Model> load(const std::string& dir, const LoadOptions& o = {});
  // A model over a flat F32 parameter buffer (param_layout order) that the caller owns.
  static std::unique_ptr<Model> from_flat(const ModelConfig& c, const float* flat);
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  const Architecture& arch() const { return *arch_; }
  const ModelWeights& weights() const { return w_; }
  // Every parameter, in param_layout order.
  const std::vector<Weight>& params() const { return params_; }
  // Re-points the weights at another flat F32 buffer of the same layout (training).
  void rebind_flat(const float* flat);
  const std::string& rope_source() const { return rope_source_; }
  // The GGUF file the model was loaded from (metadata: tokenizer), else null.
  const gguf::File* gguf_file() const { return gguf_.get(); }
  // dtype of each stored tensor, for `huginn info`.
  const std::vector<std::pair<std::string, std::string>>& stored_dtypes() const { return dtypes_; }
  // Bytes of the weights as held in memory (in their held types), and of those
  // the loader converted into memory of its own.
  size_t weight_bytes() const { return weight_bytes_; }
  size_t converted_bytes() const { return converted_bytes_; }

  // Throws a clear error for ids outside the vocabulary or positions beyond the context.
  void check_tokens(const int* ids, int T, int pos0) const;

  // e[T, d]: the input embedding of each token (Huginn: wte[ids] * sqrt(d)).
  void embed(const int* ids, int T, float* e) const;
  // The initial state. Huginn: zeros for init_scale = 0, else the reference's
  // truncated normal (std sqrt(2/(5d)) * init_scale, cut at 3 std, times
  // sqrt(d)). Families whose loop starts from the embedding (Ouro) copy e, the
  // prelude output (required for them).
  void init_state(float* s, int T, float init_scale, uint64_t seed, const float* e = nullptr) const;
  // Whether the state starts from the embedding (init_state needs e).
  bool state_from_embedding() const;
  // The learned exit gate's logits for T rows of state (after an iteration);
  // false when the family has none.
  bool has_exit_gate() const;
  void exit_gate(const float* s, int T, float* out) const;
  // The prelude on e (in place) for several sequences.
  void prelude_segments(float* e, const Segment* seg, int nseg, Workspace& ws, const BlockActs* acts = nullptr,
                        const TraceFn* trace = nullptr) const;
  // One recurrence over several sequences, as iteration `iter` (0-based):
  // Huginn s <- core(adapter([s, e])). acts: one BlockActs per core layer.
  void core_iteration_segments(float* s, const float* e, const Segment* seg, int nseg, int iter, Workspace& ws,
                               const TraceFn* trace = nullptr, const BlockActs* acts = nullptr) const;
  // Logits: each segment's `logit_rows` last rows, concatenated in segment order.
  // latent (optional): the normalised state of every row.
  void head_segments(const float* s, const Segment* seg, int nseg, float* latent, float* logits, Workspace& ws,
                     const TraceFn* trace = nullptr, const HeadActs* acts = nullptr) const;
  // The same for one sequence (optionally with a cache, positions from pos0).
  void prelude(float* e, int T, int pos0, KVCache* cache, Workspace& ws, const TraceFn* trace = nullptr) const;
  void core_iteration(float* s, const float* e, int T, int pos0, KVCache* cache, int iter, Workspace& ws,
                      const TraceFn* trace = nullptr) const;
  void head(const float* s, int T, int pos0, KVCache* cache, float* latent, float* logits, int logit_rows,
            Workspace& ws, const TraceFn* trace = nullptr) const;
  // ln_f of states (the latent the head starts from; continuous thought).
  void normalize_state(const float* s, int T, float* out) const;
  // A new KV cache laid out for this architecture's layer applications.
  KVCache make_cache(int capacity, const CacheStrategy& cs) const;

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

  // ---- building blocks for architectures (src/model/arch_*.cpp) ----
  // y = x · Wᵀ over the rows of all segments, each row computed exactly as in
  // a call for its segment alone; `joint`: one product over all rows (training).
  void matmul_segments(const float* x, const Weight& W, float* y, const Segment* seg, int nseg, bool joint) const;
  // Multi-head attention of every segment: q/k/v rows `ld` apart (positions
  // already rotated), K/V written to and read from the segment's cache under
  // `step`; `joint`: equal cacheless segments, batched sgemm (training).
  void attention_segments(const float* q, float* k, float* v, int ld, const Segment* seg, int nseg, int step,
                          Workspace& ws, float* out, bool joint) const;
  // The same with q rows `ldq` and k/v rows `ldkv` apart (separate projections,
  // grouped-query K/V of config().kv_width() floats).
  void attention_segments(const float* q, int ldq, float* k, float* v, int ldkv, const Segment* seg, int nseg,
                          int step, Workspace& ws, float* out, bool joint) const;
  const float* rope_cos() const { return rope_cos_.data(); }
  const float* rope_sin() const { return rope_sin_.data(); }

 private:
  Model() = default;
  void build_rope(const TensorView* stored);
  static std::unique_ptr<Model> load_gguf(const std::string& path, const LoadOptions& o);  // model_gguf.cpp

  ModelConfig cfg_;
  const Architecture* arch_ = nullptr;
  ModelWeights w_;
  std::vector<Weight> params_;
  TensorStore store_;
  std::shared_ptr<const gguf::File> gguf_;
  std::vector<std::vector<float>> owned_;  // converted weights
  std::vector<float> rope_cos_, rope_sin_;
  std::string rope_source_;
  std::vector<std::pair<std::string, std::string>> dtypes_;
  size_t weight_bytes_ = 0, converted_bytes_ = 0;
};

}  // namespace huginn
