// huginn/decode_spec.h: the decode spec's parsers and checks.
#include "huginn/decode_spec.h"

#include <cmath>

#include "huginn/common.h"
#include "huginn/config.h"
#include "huginn/kv_cache.h"
#include "model/arch.h"

namespace huginn {

std::vector<int> default_stop_tokens() { return huginn_architecture().default_stop_tokens({}); }

std::vector<int> default_stop_tokens(const ModelConfig& c) { return architecture_named(c.arch).default_stop_tokens(c); }

ExitCriterion DecodeSpec::parse_exit(const std::string& s) { return ExitCriterion::parse(s); }

std::string DecodeSpec::parse_cache(const std::string& s) {
  CacheStrategy::parse(s);  // throws for a bad name
  return s;
}

ContinuousFrom DecodeSpec::parse_continuous_from(const std::string& s) {
  if (s == "raw") return ContinuousFrom::Raw;
  if (s == "latent") return ContinuousFrom::Latent;
  fail("continuous-from '", s, "': use raw (the final state) or latent (ln_f of it)");
}

std::string DecodeSpec::exit_str() const { return exit.kind == ExitKind::None ? std::string("none") : exit.str(); }

void DecodeSpec::validate(const ModelConfig& c) const {
  if (max_new_tokens < 0) fail("max tokens must be >= 0, got ", max_new_tokens);
  if (steps < 0) fail("steps must be >= 0, got ", steps);
  if (min_steps < 0) fail("min steps must be >= 0, got ", min_steps);
  if (check_every < 1) fail("check-every must be >= 1, got ", check_every);
  if (exit.kind != ExitKind::None && !(exit.threshold >= 0 && std::isfinite(exit.threshold)))
    fail("exit ", ExitCriterion::name(exit.kind), ": the threshold must be a number >= 0, got ", exit.threshold);
  if (!(init_scale >= 0.f)) fail("init scale must be >= 0, got ", init_scale);
  for (auto& s : stop_strings)
    if (s.empty()) fail("empty stop string");
  sampling.validate();
  CacheStrategy::parse(cache);
  (void)c;
}

}  // namespace huginn
