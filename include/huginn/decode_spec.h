// How to decode, in one type: the depth (iterations per token), the exit
// criterion, when it is checked, the KV cache strategy, warm starts, the
// initial state, sampling and stops. The CLI (generate, chat), the server's
// requests and task evaluation all fill one DecodeSpec through the same
// parsers; the engine reads it (GenerateOptions is a DecodeSpec plus the
// engine's extras).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "huginn/exit_criteria.h"
#include "huginn/sampling.h"

namespace huginn {

struct ModelConfig;

// Huginn-0125's stop tokens: <|begin_text|>, <|end_text|>, <|end_turn|>.
std::vector<int> default_stop_tokens();
// The stop ids of a model family, for a model whose directory names none
// (no generation_config.json eos ids, no tokenizer with chat tokens): what
// LoadedModel falls back to. Huginn-0125's ids for the one family today.
std::vector<int> default_stop_tokens(const ModelConfig& c);

// Where a continuous (warm-started) token takes its start state from.
enum class ContinuousFrom {
  Raw,     // the previous position's raw final state (generate_with_adaptive_compute)
  Latent,  // ln_f of it (generate_minimal's latent_states)
};

struct DecodeSpec {
  int max_new_tokens = 16;
  int steps = 32;                 // iterations per token; the maximum when an exit criterion is set
  ExitCriterion exit;             // kind None: fixed depth
  // The reference's min_steps (generate_with_adaptive_compute): the first
  // min_steps iterations of a pass are never checked, so a token exits after
  // min_steps + 1 iterations at the earliest (0: checks from the first).
  int min_steps = 0;
  int check_every = 1;            // check every n iterations (counted from min_steps)
  bool no_exit_in_prefill = false;
  bool continuous = false;        // warm-start each token from the previous token's state
  ContinuousFrom continuous_from = ContinuousFrom::Raw;
  std::string cache = "full";     // CacheStrategy name
  float init_scale = 0.f;         // 0: zero initial state (deterministic)
  uint64_t seed = 0;              // state initialisation when init_scale > 0
  SamplingOptions sampling;
  std::vector<int> stop_tokens = default_stop_tokens();  // front ends set the model's (LoadedModel::stop_ids)
  std::vector<std::string> stop_strings;

  // The one parser of the textual values, shared by every front end; errors
  // are huginn::Error naming the value.
  //   exit: "none", "kl", "kl:5e-4", "latent-diff:0.03", ... (ExitCriterion::parse)
  static ExitCriterion parse_exit(const std::string& s);
  //   cache: "full", "latest-m4", "latest-m4-compress-s4", ... (the name, checked)
  static std::string parse_cache(const std::string& s);
  //   continuous_from: "raw" or "latent"
  static ContinuousFrom parse_continuous_from(const std::string& s);
  // The exit as text: "none" or "kl:0.0005".
  std::string exit_str() const;

  // Throws huginn::Error with a one-line message for any value out of range.
  void validate(const ModelConfig& c) const;
};

}  // namespace huginn
