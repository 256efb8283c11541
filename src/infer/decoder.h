// The one decode loop every generation mode runs: a *pass* embeds its inputs
// (token ids or soft embedding rows), runs the prelude, iterates the core
// block under a depth policy (fixed, or until an exit criterion fires), and
// produces next-token logits, reading and writing the pass's KV cache under
// the cache strategy. Drivers (sequential, speculative, diffusion) decide what
// each pass gets as input and start state. Everything is preallocated: a pass
// does not allocate.
#pragma once
#include <memory>
#include <vector>

#include "huginn/exit_criteria.h"
#include "huginn/kv_cache.h"
#include "huginn/model.h"

namespace huginn::infer {

struct DepthPolicy {
  int max_steps = 32;
  ExitCriterion exit;  // kind None: fixed depth
  int min_steps = 0;
  int check_every = 1;
  bool checks = true;  // false: no criterion checks in this pass (fixed depth)
};

struct PassInput {
  const int* ids = nullptr;       // T token ids, or
  const float* embeds = nullptr;  // T rows of scaled input embeddings (before the prelude)
  int T = 1;
  const float* start = nullptr;   // T rows of start state; null: the model's initial state
  int logit_rows = 1;             // logits for the last rows (checks always use the last row)
};

struct PassResult {
  int steps = 0;
  bool exited = false;
};

class Decoder {
 public:
  // capacity: positions the cache can hold; max_rows: the largest T of a pass.
  Decoder(const Model& m, int capacity, const CacheStrategy& cs, int max_rows, const ExitCriterion& exit,
          float init_scale = 0.f, uint64_t seed = 0);

  PassResult run(const PassInput& in, const DepthPolicy& p, std::vector<ExitCheck>* checks = nullptr);

  const Model& model() const { return m_; }
  KVCache& cache() { return cache_; }
  Workspace& workspace() { return ws_; }
  // Raw final state of row t of the last pass; logits row r of the last pass's logit rows.
  const float* state(int t) const { return s_.data() + (size_t)t * d_; }
  float* state_mut(int t) { return s_.data() + (size_t)t * d_; }
  const float* logits(int r = 0) const { return logits_.data() + (size_t)r * V_; }
  int max_rows() const { return rows_; }

 private:
  const Model& m_;
  int d_, V_, rows_;
  KVCache cache_;
  Workspace ws_;
  ExitTracker tracker_;
  float init_scale_;
  uint64_t seed_, passes_ = 0;
  std::vector<float> e_, s_, logits_;
};

}  // namespace huginn::infer
