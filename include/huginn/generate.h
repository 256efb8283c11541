// Token generation: one decode loop (src/infer/decoder.h) with pluggable
// policies for the depth (fixed or adaptive exit), the start state (fresh or
// continuous), the KV slot strategy, and the next input (sampled token or a
// soft mixture of embeddings); and the drivers built on it: sequential
// generation (batched, each sequence exiting on its own), self-speculative
// decoding and the parallel diffusion-style sampler.
#pragma once
#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "huginn/exit_criteria.h"
#include "huginn/kv_cache.h"
#include "huginn/model.h"
#include "huginn/sampling.h"

namespace huginn {

// Huginn-0125's stop tokens: <|begin_text|>, <|end_text|>, <|end_turn|>.
std::vector<int> default_stop_tokens();
// The stop tokens of a model's family when its directory names none (Ouro: the config's eos_token_id).
std::vector<int> default_stop_tokens(const ModelConfig& c);

// Where a continuous (warm-started) token takes its start state from.
enum class ContinuousFrom {
  Raw,     // the previous position's raw final state (generate_with_adaptive_compute)
  Latent,  // ln_f of it (generate_minimal's latent_states)
};

struct GenerateOptions {
  int max_new_tokens = 16;
  int steps = 32;  // iterations per token; the maximum when an exit criterion is set
  ExitCriterion exit;
  int min_steps = 0;              // no check before this many iterations
  int check_every = 1;            // check every n iterations (counted from min_steps)
  bool no_exit_in_prefill = false;
  bool continuous = false;        // warm-start each token from the previous token's state
  ContinuousFrom continuous_from = ContinuousFrom::Raw;
  std::string cache = "full";     // CacheStrategy name
  float init_scale = 0.f;         // 0: zero initial state (deterministic)
  SamplingOptions sampling;
  std::vector<int> stop_tokens = default_stop_tokens();
  std::vector<std::string> stop_strings;      // needs token_text
  std::function<std::string(int)> token_text;  // text of one token (stop strings)
  // Soft-distribution thoughts: after the prompt, this many positions are fed
  // sum_i p_i * wte[i] over the top-k (renormalised; k = 0: all) of the
  // previous position's next-token distribution, before answering.
  int soft_thoughts = 0;
  int soft_top_k = 0;
  float soft_temperature = 1.f;
  bool record_checks = false;  // fill SequenceResult::checks
  bool record_logits = false;  // fill SequenceResult::step_logits
  uint64_t seed = 0;           // state initialisation when init_scale > 0
  void validate(const ModelConfig& c) const;
};

struct SequenceResult {
  std::vector<int> tokens;  // generated tokens (the prompt excluded, thoughts excluded)
  std::vector<int> steps;   // iterations that produced each token (index 0: the prompt pass)
  std::vector<int> thought_tokens;  // argmax of each soft thought position's input distribution
  std::vector<int> thought_steps;
  std::vector<std::vector<ExitCheck>> checks;  // per pass, thought passes included
  std::vector<float> step_logits;             // [tokens, V] when record_logits
  std::string stop_reason;                    // max_tokens, stop_token, stop_string, context
  size_t kv_bytes = 0;                        // KV entries held at the end (KVCache::bytes_held)
  int core_iterations = 0;                    // iterations summed over all passes
};

// One event per produced token, in order, as soon as it is chosen.
struct TokenEvent {
  int seq = 0;
  int token = 0;
  int steps = 0;
  bool thought = false;  // a soft thought position (token = its argmax)
};
using TokenCallback = std::function<void(const TokenEvent&)>;

// Generates for every prompt; each sequence has its own cache and exits on its
// own. Results do not depend on the batch composition.
std::vector<SequenceResult> generate(const Model& m, const std::vector<std::vector<int>>& prompts,
                                     const GenerateOptions& o, const TokenCallback& cb = {});
SequenceResult generate(const Model& m, const std::vector<int>& prompt, const GenerateOptions& o,
                        const TokenCallback& cb = {});

// A conversation that keeps its KV cache between turns: each turn feeds only
// its new tokens (after the last generated token), then generates as
// generate() does. The cache can hold the model's whole context.
class Session {
 public:
  Session(const Model& m, const GenerateOptions& o);
  ~Session();
  SequenceResult turn(const std::vector<int>& tokens, const TokenCallback& cb = {});
  // Every token so far: prompts, turns and generated tokens.
  const std::vector<int>& history() const;
  int length() const;  // positions in the cache
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Fixed-depth greedy decoding (the reference's generate_minimal).
struct FixedDepthOptions {
  int steps = 32;
  int max_new_tokens = 16;
  bool continuous = false;  // start each token from ln_f(previous final state)
  std::string cache = "full";
};
std::vector<int> generate_fixed_greedy(const Model& m, const std::vector<int>& prompt, const FixedDepthOptions& o,
                                       std::vector<float>* step_logits = nullptr);

// ---- self-speculative decoding (the reference's generate_speculative) ----
struct SpeculativeOptions {
  int steps = 32;        // verifier depth
  int draft_steps = 4;   // drafter depth
  int lookahead = 8;     // drafted tokens per round
  double threshold = 1;  // >= 1: exact argmax match; else accept if p(draft) >= threshold * max p
  int max_new_tokens = 16;
  std::string cache = "full";
  float init_scale = 0.f;
  SamplingOptions sampling;  // for drafts and the corrected token; verification uses argmax
  std::vector<int> stop_tokens = default_stop_tokens();
  void validate(const ModelConfig& c) const;
};
struct SpeculativeResult {
  std::vector<int> tokens;  // may overshoot max_new_tokens by up to one round, as the reference
  std::vector<std::array<int, 3>> forward_trace;  // [input tokens, first position, iterations] per forward
  int rounds = 0, drafted = 0, accepted = 0;
  int core_iterations = 0;  // token-iterations: sum over forwards of tokens * iterations
  size_t kv_bytes = 0;
  std::string stop_reason;
  double acceptance_rate() const { return drafted ? (double)accepted / drafted : 0.0; }
};
SpeculativeResult generate_speculative(const Model& m, const std::vector<int>& prompt, const SpeculativeOptions& o,
                                       const TokenCallback& cb = {});

// ---- parallel (diffusion-style) sampler (generate_diffusion_style) ----
enum class FreezeStrategy { LatentDiff, Fixed, TokenStability };
struct DiffusionOptions {
  int steps = 32;             // S: recurrences of the prefill; sets the fixed/token-stability thresholds
  int inner_recurrence = 4;   // R: recurrences per pass
  int max_new_tokens = 16;
  FreezeStrategy freeze = FreezeStrategy::LatentDiff;
  double exit_t = 0.03;       // latent-diff threshold
  int max_wavefront = 128;    // 0: unbounded
  float ema_embeds = 0.1f;
  float state_mixing = 0.5f;  // dampened state mixer sigma (noise part is zero at init_scale 0)
  bool full_prefill = true;
  bool continuous = false;    // a new position starts from the last wave state
  std::string cache = "latest-m4-compress-s4";
  int max_passes = 4096;
  SamplingOptions sampling;   // greedy only for now (the fixtures' setting)
  std::vector<int> stop_tokens = default_stop_tokens();
  void validate(const ModelConfig& c) const;
  static FreezeStrategy parse_freeze(const std::string& s);
};
struct DiffusionResult {
  std::vector<int> sequence;  // frozen tokens, prompt included
  std::vector<int> tokens;    // sequence[P:]
  int passes = 0, core_forward_passes = 0, tokens_forward = 0, cache_clears = 0, standing_waves = 0;
  std::vector<int> recurrence_per_position, stable_per_position;  // over the final sequence
  std::vector<std::array<int, 4>> pass_trace;  // [c, L, frozen before, frozen after]
  std::vector<std::vector<int>> pass_new_tokens;
  size_t kv_bytes = 0;
  long core_iterations = 0;  // token-iterations
};
DiffusionResult generate_diffusion(const Model& m, const std::vector<int>& prompt, const DiffusionOptions& o,
                                   const TokenCallback& cb = {});

}  // namespace huginn
