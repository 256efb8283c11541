// The generation options shared by `huginn generate` and `huginn chat`: CLI11
// registration, parsing of the compound values (--speculative, --parallel,
// --soft-thoughts) and conversion to the library's option structs.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "huginn/check.h"
#include "huginn/config.h"
#include "huginn/decode_spec.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "prompt.h"

namespace huginn::cli {

// "a=1,b=x,flag" -> pairs (a flag has an empty value).
std::vector<std::pair<std::string, std::string>> split_spec(const std::string& spec, const char* what);
int spec_int(const std::string& v, const std::string& key, const char* what, int lo, int hi);
double spec_double(const std::string& v, const std::string& key, const char* what);

struct GenCliOptions {
  std::string model;
  bool convert_f32 = false;
  int max_steps = kDefaultMaxRecurrence;  // --max-steps: the recurrence cap  // --convert-f32: BF16/F16 weights converted to F32 at load
  LoadOptions load_options() const { return LoadOptions{.convert_to_f32 = convert_f32}; }
  PromptOptions prompt;
  // What the options set directly; the textual ones below go through the
  // spec's parsers in decode_spec().
  DecodeSpec spec = cli_defaults();
  int steps = -1;  // default: the model's mean_recurrence
  std::string exit = "none";
  std::string cache;  // empty: the mode's default (full; latest-m4-compress-s4 for --parallel)
  std::string continuous_from = "raw";
  std::string speculative, parallel, soft;
  CLI::Option *spec_opt = nullptr, *par_opt = nullptr;
  std::vector<int> stop_ids;
  bool no_default_stops = false;
  std::vector<int> model_stops;  // the model's stop ids (LoadedModel::stop_ids)
  bool show_steps = false, compare = false, quiet = false;

  static DecodeSpec cli_defaults();
  // prompt_options: generate takes --ids/-p/--prompt-file; chat reads stdin.
  void add_to(CLI::App& app, bool prompt_options);
  std::string mode() const;  // sequential, speculative or parallel
  // The depth asked for (--steps, else the model's mean_recurrence), within the recurrence cap.
  int depth(const ModelConfig& c) const {
    check_recurrence(steps >= 0 ? steps : c.mean_recurrence,
                     steps >= 0 ? "--steps" : "the model's mean_recurrence (default depth; set --steps)", max_steps);
    return steps >= 0 ? steps : c.mean_recurrence;
  }
  std::vector<int> stop_tokens() const;
  void check_stop_ids(int vocab_size) const;  // --stop-token ids within the vocabulary
  // The parsed, checked spec of this command line for a model.
  DecodeSpec decode_spec(const ModelConfig& c) const;
  GenerateOptions generate_options(const ModelConfig& c, std::function<std::string(int)> token_text) const;
  SpeculativeOptions speculative_options(const ModelConfig& c) const;
  DiffusionOptions parallel_options(const ModelConfig& c) const;
};

}  // namespace huginn::cli
