#include "gen_options.h"

#include <cmath>

#include "commands.h"
#include "huginn/common.h"

namespace huginn::cli {

std::vector<std::pair<std::string, std::string>> split_spec(const std::string& spec, const char* what) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (i <= spec.size()) {
    size_t j = spec.find(',', i);
    if (j == std::string::npos) j = spec.size();
    std::string item = spec.substr(i, j - i);
    i = j + 1;
    if (item.empty()) {
      if (j == spec.size()) break;
      fail(what, " '", spec, "': empty item");
    }
    const size_t eq = item.find('=');
    if (eq == std::string::npos) out.push_back({item, ""});
    else out.push_back({item.substr(0, eq), item.substr(eq + 1)});
  }
  return out;
}

int spec_int(const std::string& v, const std::string& key, const char* what, int lo, int hi) {
  long long x = 0;
  if (!parse_int(v, x)) fail(what, ": ", key, "=", v, " is not a whole number");
  if (x < lo || x > hi) fail(what, ": ", key, " must be in [", lo, ", ", hi, "], got ", x);
  return (int)x;
}

double spec_double(const std::string& v, const std::string& key, const char* what) {
  double x = 0;
  if (!parse_double(v, x)) fail(what, ": ", key, "=", v, " is not a number");
  return x;
}

DecodeSpec GenCliOptions::cli_defaults() {
  DecodeSpec d;
  d.max_new_tokens = 32;
  d.stop_tokens.clear();  // stop_tokens(): the model's, then --stop-token
  return d;
}

void GenCliOptions::add_to(CLI::App& app, bool prompt_options) {
  app.add_option("-m,--model", model, "model directory (config.json, weights)")->required();
  app.add_flag("--convert-f32", convert_f32,
               "convert BF16/F16 weights to F32 at load (default: read in their stored type from the memory map)");
  if (prompt_options) {
    app.add_option("--ids", prompt.ids, "prompt token ids, e.g. 1,2,3 (repeat for a batch of prompts)");
    app.add_option("-p,--prompt", prompt.text, "prompt text (needs the model's tokenizer)");
    app.add_option("--prompt-file", prompt.file, "read the prompt text from a file");
  }
  app.add_option("--steps", steps, "core iterations per token (the maximum with --exit); default: mean_recurrence")
      ->check(CLI::Range(0, 1 << 30));
  app.add_option("--max-steps", max_steps, "the largest depth accepted (a guard against configs asking for millions)")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  app.add_option("--exit", exit,
                 "per-token exit criterion[:threshold]: none, kl, minp-kl, entropy-diff, latent-diff, cosine, "
                 "argmax-stability (e.g. kl:5e-4)");
  app.add_option("--min-steps", spec.min_steps,
                 "iterations never checked: the earliest exit is after min-steps + 1 (the reference's min_steps)")->check(CLI::Range(0, 100000));
  app.add_option("--check-every", spec.check_every, "check the exit criterion every n iterations")
      ->check(CLI::Range(1, 100000));
  app.add_flag("--no-exit-in-prefill", spec.no_exit_in_prefill, "run the prompt at full depth");
  app.add_option("--cache", cache,
                 "KV cache strategy: full, compress-sN, compress-rN, latest-m4, available-m4, always-last-m4, skip, "
                 "or combinations such as latest-m4-compress-s4");
  app.add_flag("--continuous", spec.continuous, "continuous chain of thought: warm-start each token from the last state");
  app.add_option("--continuous-from", continuous_from, "raw (final state) or latent (ln_f of it)")
      ->check(CLI::IsMember({"raw", "latent"}));
  spec_opt = app.add_option("--speculative", speculative,
                            "self-speculative decoding: draft=N,lookahead=L[,threshold=T] (verifier depth: --steps)")
                 ->expected(0, 1);
  par_opt = app.add_option("--parallel", parallel,
                           "parallel (diffusion-style) sampler: inner=R,wave=W,exit=T,freeze=latent-diff|fixed|"
                           "token-stability,ema=A,mix=S,continuous,no-prefill,max-passes=N")
                ->expected(0, 1);
  app.add_option("--soft-thoughts", soft, "N[,k=K][,temp=T]: N soft-distribution thought positions before answering");
  app.add_option("--temperature", spec.sampling.temperature, "sampling temperature (0 = greedy)")
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--top-k", spec.sampling.top_k, "keep the k most likely tokens (0 = off)")->check(CLI::Range(0, 1 << 30));
  app.add_option("--top-p", spec.sampling.top_p, "nucleus sampling mass (1 = off)")->check(CLI::Range(0.0, 1.0));
  app.add_option("--min-p", spec.sampling.min_p, "drop tokens below min-p times the top probability")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--repetition-penalty", spec.sampling.repetition_penalty, "penalise tokens already in the context (1 = off)")
      ->check(CLI::Range(0.01, 100.0));
  add_seed_option(app, spec.sampling.seed,
                  "seed of the sampler and of the random initial state (runs are reproducible)");
  app.add_option("--max-tokens,-n", spec.max_new_tokens, "tokens to generate at most")->check(CLI::Range(0, 1 << 24));
  app.add_option("--stop-token", stop_ids, "stop after this token id (repeatable)");
  app.add_option("--stop", spec.stop_strings, "stop once the output contains this string (needs the tokenizer)");
  app.add_flag("--no-default-stops", no_default_stops, "do not stop on Huginn's <|end_text|>/<|end_turn|> tokens");
  app.add_option("--init-scale", spec.init_scale, "scale of the random initial state (0 = zeros)")
      ->check(CLI::Range(0.0, 100.0));
  app.add_flag("--show-steps", show_steps, "mark every token with the iterations it used: id[steps]");
  app.add_flag("--compare", compare,
               "also run the plain fixed-depth greedy decoder; report the speedup and the token agreement");
  app.add_flag("-q,--quiet", quiet, "print only the summary");
}

std::string GenCliOptions::mode() const {
  const bool sp = spec_opt && spec_opt->count() > 0, pa = par_opt && par_opt->count() > 0;
  if (sp && pa) fail("--speculative and --parallel cannot be combined");
  if (sp || pa) {
    const char* m = sp ? "--speculative" : "--parallel";
    if (exit != "none") fail(m, " does not combine with --exit");
    if (!soft.empty()) fail(m, " does not combine with --soft-thoughts");
    if (sp && spec.continuous) fail("--speculative does not combine with --continuous (the reference cannot run it)");
  }
  return sp ? "speculative" : pa ? "parallel" : "sequential";
}

void GenCliOptions::check_stop_ids(int vocab_size) const {
  for (int id : stop_ids)
    if (id < 0 || id >= vocab_size)
      fail("--stop-token ", id, " is outside the model's vocabulary (0..", vocab_size - 1, ")");
}

std::vector<int> GenCliOptions::stop_tokens() const {
  std::vector<int> s = no_default_stops ? std::vector<int>{} : !model_stops.empty() ? model_stops : default_stop_tokens();
  s.insert(s.end(), stop_ids.begin(), stop_ids.end());
  return s;
}

DecodeSpec GenCliOptions::decode_spec(const ModelConfig& c) const {
  DecodeSpec d = spec;
  d.steps = depth(c);
  try {
    d.exit = DecodeSpec::parse_exit(exit);
  } catch (const Error& e) {
    fail("--exit: ", e.what());
  }
  d.cache = cache.empty() ? "full" : DecodeSpec::parse_cache(cache);
  d.continuous_from = DecodeSpec::parse_continuous_from(continuous_from);
  d.seed = spec.sampling.seed;  // --seed also seeds a random initial state
  d.stop_tokens = stop_tokens();
  d.validate(c);
  return d;
}

GenerateOptions GenCliOptions::generate_options(const ModelConfig& c, std::function<std::string(int)> token_text) const {
  GenerateOptions g;
  static_cast<DecodeSpec&>(g) = decode_spec(c);
  if (!g.stop_strings.empty()) {
    if (!token_text) fail("--stop needs the model's tokenizer; use --stop-token ID");
    g.token_text = std::move(token_text);
  }
  if (!soft.empty()) {
    auto items = split_spec(soft, "--soft-thoughts");
    bool have_n = false;
    for (auto& [k, v] : items) {
      if (v.empty() && !have_n) {
        g.soft_thoughts = spec_int(k, "N", "--soft-thoughts", 0, 1 << 20);
        have_n = true;
      } else if (k == "n") {
        g.soft_thoughts = spec_int(v, k, "--soft-thoughts", 0, 1 << 20);
        have_n = true;
      } else if (k == "k") {
        g.soft_top_k = spec_int(v, k, "--soft-thoughts", 0, 1 << 30);
      } else if (k == "temp") {
        g.soft_temperature = (float)spec_double(v, k, "--soft-thoughts");
      } else {
        fail("--soft-thoughts: unknown item '", k, "' (use N,k=K,temp=T)");
      }
    }
    if (!have_n) fail("--soft-thoughts needs the number of thought positions, e.g. --soft-thoughts 4,k=8");
  }
  g.validate(c);
  return g;
}

SpeculativeOptions GenCliOptions::speculative_options(const ModelConfig& c) const {
  SpeculativeOptions s;
  static_cast<DecodeSpec&>(s) = decode_spec(c);
  s.draft_steps = std::max(1, s.steps / 8);
  for (auto& [k, v] : split_spec(speculative, "--speculative")) {
    if (k == "draft") s.draft_steps = spec_int(v, k, "--speculative", 0, 100000);
    else if (k == "lookahead") s.lookahead = spec_int(v, k, "--speculative", 1, 100000);
    else if (k == "threshold") s.threshold = spec_double(v, k, "--speculative");
    else fail("--speculative: unknown item '", k, "' (use draft=N,lookahead=L,threshold=T)");
  }
  s.validate(c);
  return s;
}

DiffusionOptions GenCliOptions::parallel_options(const ModelConfig& c) const {
  DiffusionOptions d;
  static_cast<DecodeSpec&>(d) = decode_spec(c);
  if (cache.empty()) d.cache = DiffusionOptions().cache;
  for (auto& [k, v] : split_spec(parallel, "--parallel")) {
    if (k == "inner") d.inner_recurrence = spec_int(v, k, "--parallel", 1, 100000);
    else if (k == "wave") d.max_wavefront = spec_int(v, k, "--parallel", 0, 1 << 20);
    else if (k == "exit") d.exit_t = spec_double(v, k, "--parallel");
    else if (k == "freeze") d.freeze = DiffusionOptions::parse_freeze(v);
    else if (k == "ema") d.ema_embeds = (float)spec_double(v, k, "--parallel");
    else if (k == "mix") d.state_mixing = (float)spec_double(v, k, "--parallel");
    else if (k == "max-passes") d.max_passes = spec_int(v, k, "--parallel", 0, 1 << 30);
    else if (k == "continuous" && v.empty()) d.continuous = true;
    else if (k == "no-prefill" && v.empty()) d.full_prefill = false;
    else
      fail("--parallel: unknown item '", k, v.empty() ? "" : "=" + v,
           "' (use inner=R,wave=W,exit=T,freeze=...,ema=A,mix=S,continuous,no-prefill,max-passes=N)");
  }
  d.validate(c);
  return d;
}

}  // namespace huginn::cli
