#include "infer/decoder.h"

#include <cstring>

#include "huginn/common.h"

namespace huginn::infer {

Decoder::Decoder(const Model& m, int capacity, const CacheStrategy& cs, int max_rows, const ExitCriterion& exit,
                 float init_scale, uint64_t seed)
    : m_(m),
      d_(m.config().n_embd),
      V_(m.config().vocab_size),
      rows_(max_rows),
      cache_(m.config().n_prelude, m.config().n_core, m.config().n_coda, m.config().n_embd, capacity, cs),
      tracker_(exit, m.config().vocab_size, m.config().n_embd),
      init_scale_(init_scale),
      seed_(seed) {
  if (max_rows <= 0) fail("decoder: at least one row per pass is needed");
  ws_.ensure(m.config(), max_rows, capacity);
  e_.resize((size_t)max_rows * d_);
  s_.resize((size_t)max_rows * d_);
  logits_.resize((size_t)max_rows * V_);
}

PassResult Decoder::run(const PassInput& in, const DepthPolicy& p, std::vector<ExitCheck>* checks) {
  const int T = in.T;
  if (T <= 0 || T > rows_) fail("decoder: a pass of ", T, " positions (at most ", rows_, ")");
  if (p.max_steps < 0) fail("number of iterations must be >= 0, got ", p.max_steps);
  const int pos0 = cache_.length();
  if (in.ids) {
    m_.check_tokens(in.ids, T, pos0);
    m_.embed(in.ids, T, e_.data());
  } else {
    if (pos0 + T > m_.config().block_size)
      fail("sequence of ", pos0 + T, " positions exceeds the model's context of ", m_.config().block_size);
    std::memcpy(e_.data(), in.embeds, sizeof(float) * (size_t)T * d_);
  }
  if (pos0 + T > cache_.capacity())
    fail("KV cache full: ", pos0 + T, " positions exceed its capacity of ", cache_.capacity());
  m_.prelude(e_.data(), T, pos0, &cache_, ws_);
  float* s = s_.data();
  if (in.start) std::memcpy(s, in.start, sizeof(float) * (size_t)T * d_);
  else m_.init_state(s, T, init_scale_, seed_ + passes_);
  ++passes_;

  const bool check = p.checks;
  const bool logit_crit = p.exit.needs_logits();
  if (check) tracker_.reset(s, T);
  PassResult r;
  r.steps = p.max_steps;
  bool have_logits = false;
  const int every = p.check_every > 0 ? p.check_every : 1;
  for (int it = 0; it < p.max_steps; ++it) {
    if (check) tracker_.before_iteration(s, T);
    m_.core_iteration(s, e_.data(), T, pos0, &cache_, it, ws_);
    if (!check || it < p.min_steps || (it - p.min_steps) % every != 0) continue;
    if (logit_crit) {
      m_.head(s, T, pos0, &cache_, nullptr, logits_.data(), 1, ws_);
      have_logits = true;
    }
    const double v = tracker_.value(logits_.data(), s, T);
    const bool ex = tracker_.exits(v);
    if (checks) checks->push_back({it + 1, v, ex});
    if (ex) {
      r.exited = true;
      r.steps = it + 1;
      break;
    }
  }
  // The logits: those of an exiting (or the last) logit check, else the coda
  // on the final state.
  if (!(logit_crit && have_logits && in.logit_rows <= 1))
    m_.head(s, T, pos0, &cache_, nullptr, logits_.data(), in.logit_rows, ws_);
  return r;
}

}  // namespace huginn::infer
