// The one decode loop every generation mode runs. A *pass* embeds its inputs
// (token ids or soft embedding rows), runs the prelude, iterates the core
// block under a depth policy (fixed, or until an exit criterion fires) and
// produces next-token logits, reading and writing its KV cache under the cache
// strategy. Drivers (sequential, speculative, diffusion) decide what each pass
// gets as input and start state.
//
// A pass can run for several sequences at once (BatchRunner): each sequence
// (a Decoder: its cache, exit state and results) is one segment of the batch;
// the weights are read once per iteration for all of them, each exits on its
// own and leaves the batch, and every row is computed bitwise as it would be
// alone. Everything is preallocated: a pass does not allocate.
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
};

struct PassInput {
  const int* ids = nullptr;       // T token ids, or
  const float* embeds = nullptr;  // T rows of scaled input embeddings (before the prelude)
  int T = 1;
  const float* start = nullptr;  // T rows of start state; null: the model's initial state
  int logit_rows = 1;            // logits for the last rows (checks always use the last row)
  bool checks = true;            // false: no criterion checks in this pass (full depth)
};

struct PassResult {
  int steps = 0;
  bool exited = false;
};

class BatchRunner;

// One sequence: its KV cache, exit-criterion state and the results of its
// last pass.
class Decoder {
 public:
  // capacity: positions the cache can hold; max_rows: the largest T of a pass;
  // max_logit_rows: the largest logit_rows.
  Decoder(const Model& m, int capacity, const CacheStrategy& cs, int max_rows, const ExitCriterion& exit,
          float init_scale = 0.f, uint64_t seed = 0, int max_logit_rows = 1);
  ~Decoder();

  // One pass of this sequence alone.
  PassResult run(const PassInput& in, const DepthPolicy& p, std::vector<ExitCheck>* checks = nullptr);

  const Model& model() const { return m_; }
  KVCache& cache() { return cache_; }
  Workspace& workspace();
  // Raw final state of row t of the last pass; logits row r of its logit rows.
  const float* state(int t) const { return s_.data() + (size_t)t * d_; }
  const float* logits(int r = 0) const { return logits_.data() + (size_t)r * V_; }
  int max_rows() const { return rows_; }
  // Room for passes of `rows` positions (allocates when it grows).
  void ensure_rows(int rows);

 private:
  friend class BatchRunner;
  const Model& m_;
  int d_, V_, rows_, logit_rows_;
  KVCache cache_;
  ExitTracker tracker_;
  float init_scale_;
  uint64_t seed_, passes_ = 0;
  std::vector<float> s_, logits_;
  std::unique_ptr<BatchRunner> solo_;  // for run()
};

// One sequence's part in a batched pass: its input and its own depth policy
// (iterations, exit checks): lanes of one pass may differ in both.
struct Lane {
  Decoder* dec = nullptr;
  PassInput in;
  DepthPolicy policy;                        // the exit criterion itself lives in the decoder's tracker
  std::vector<ExitCheck>* checks = nullptr;  // the criterion checks, if wanted
  PassResult result;
};

class BatchRunner {
 public:
  // Room for passes of up to max_rows rows in all, max_lanes sequences, caches
  // of up to `capacity` positions and max_logit_rows logit rows in all.
  BatchRunner(const Model& m, int max_rows, int max_lanes, int capacity, int max_logit_rows);
  // One pass for every lane, each under its own lane.policy; each lane's
  // decoder then holds its state and logits. A lane leaves the batch when it
  // exits or reaches its own max_steps.
  void run(Lane* lanes, int n);
  // The same, every lane under policy p.
  void run(Lane* lanes, int n, const DepthPolicy& p);
  Workspace& workspace() { return ws_; }

 private:
  // Copies the rows of `lanes` (indices into active_) to contiguous scratch and
  // runs the head for them (coda cache entries included); logits go to lg_.
  // depth: the iterations the logits come from (-1: each lane's result.steps).
  void head_for(const std::vector<int>& sub, Lane* lanes, bool final_rows, int depth = -1);

  const Model& m_;
  int d_, V_, max_rows_, max_lanes_, max_logit_rows_;
  Workspace ws_;
  std::vector<float> e_, s_, g_, lg_;
  std::vector<Segment> seg_, sub_seg_;
  std::vector<int> active_, row0_, sub_, logit_sub_, exited_, done_, have_logits_;
};

}  // namespace huginn::infer
