// Self-speculative decoding over the shared decode loop: the same model drafts
// `lookahead` tokens at a shallow depth, then verifies them in one pass at the
// full depth (lower-right causal mask over the cache) and keeps the matching
// prefix plus the verifier's correction (the reference's generate_speculative).
#include <algorithm>
#include <cmath>

#include "huginn/common.h"
#include "huginn/generate.h"
#include "infer/decoder.h"

namespace huginn {

void SpeculativeOptions::validate(const ModelConfig& c) const {
  if (steps < 0) fail("speculative: steps must be >= 0, got ", steps);
  if (draft_steps < 0) fail("speculative: draft steps must be >= 0, got ", draft_steps);
  if (lookahead < 1) fail("speculative: lookahead must be >= 1, got ", lookahead);
  if (!(threshold > 0) || !std::isfinite(threshold)) fail("speculative: threshold must be > 0, got ", threshold);
  if (max_new_tokens < 0) fail("max tokens must be >= 0, got ", max_new_tokens);
  if (lookahead >= c.block_size) fail("speculative: lookahead ", lookahead, " exceeds the context");
  if (exit.kind != ExitKind::None) fail("speculative: the verifier runs at a fixed depth; no exit criterion");
  sampling.validate();
  CacheStrategy::parse(cache);
}

SpeculativeResult generate_speculative(const Model& m, const std::vector<int>& prompt, const SpeculativeOptions& o,
                                       const TokenCallback& cb) {
  const ModelConfig& c = m.config();
  o.validate(c);
  if (prompt.empty()) fail("generate: empty prompt");
  m.check_tokens(prompt.data(), (int)prompt.size(), 0);
  const int P = (int)prompt.size(), L = o.lookahead, V = c.vocab_size;
  const int cap = std::min(c.block_size, P + o.max_new_tokens + L + 1);
  infer::Decoder dec(m, std::max(cap, P), CacheStrategy::parse(o.cache), std::max(P, L), ExitCriterion{},
                     o.init_scale, 0, L);
  Sampler sampler(V, o.sampling);
  infer::DepthPolicy verify, draft;
  verify.max_steps = o.steps;
  draft.max_steps = o.draft_steps;
  SpeculativeResult res;
  std::vector<int> seq;
  seq.reserve(cap + L + 1);
  res.tokens.reserve(o.max_new_tokens + L + 1);
  res.forward_trace.reserve(1 + (size_t)(o.max_new_tokens + 1) * (L + 1));
  seq = prompt;
  auto forward = [&](const int* ids, int T, const infer::DepthPolicy& p, int rows) {
    res.forward_trace.push_back({T, dec.cache().length(), p.max_steps});
    res.core_iterations += T * p.max_steps;
    infer::PassInput in;
    in.ids = ids;
    in.T = T;
    in.logit_rows = rows;
    in.checks = false;
    dec.run(in, p);
  };
  auto is_stop = [&](int t) { return std::find(o.stop_tokens.begin(), o.stop_tokens.end(), t) != o.stop_tokens.end(); };
  auto emit = [&](int t, int steps) {
    res.tokens.push_back(t);
    seq.push_back(t);
    if (cb) cb({0, t, steps, false});
    return is_stop(t);
  };
  res.stop_reason = "max_tokens";
  if (o.max_new_tokens == 0) return res;
  forward(prompt.data(), P, verify, 1);
  if (emit(sampler.sample(dec.logits(0), seq.data(), (int)seq.size()), o.steps)) {
    res.stop_reason = "stop_token";
    res.kv_bytes = dec.cache().bytes_held();
    return res;
  }
  std::vector<int> drafts(L);
  while ((int)res.tokens.size() < o.max_new_tokens) {
    const int cur = (int)seq.size();
    if (cur - 1 + L > cap) {
      res.stop_reason = "context";
      break;
    }
    // draft L tokens at the shallow depth, then forget their cache entries
    for (int j = 0; j < L; ++j) {
      forward(&seq.back(), 1, draft, 1);
      seq.push_back(sampler.sample(dec.logits(0), seq.data(), (int)seq.size()));
    }
    std::copy(seq.begin() + cur, seq.end(), drafts.begin());
    dec.cache().drop_last(L);
    // verify: the last accepted token and L-1 drafts in one pass at full depth
    forward(seq.data() + cur - 1, L, verify, L);
    seq.resize(cur);
    int k = L;
    for (int i = 0; i < L && k == L; ++i) {
      const float* row = dec.logits(i);
      bool ok;
      if (o.threshold >= 1) {
        ok = argmax(row, V) == drafts[i];
      } else {
        // p(draft) >= threshold * max p, i.e. exp(logit(draft) - max logit) >= threshold
        const float mx = row[argmax(row, V)];
        ok = std::exp((double)row[drafts[i]] - mx) >= o.threshold;
      }
      if (!ok) k = i;
    }
    ++res.rounds;
    res.drafted += L;
    res.accepted += k;
    bool stop = false;
    for (int i = 0; i < k && !stop; ++i) stop = emit(drafts[i], o.steps);
    if (k < L && !stop) {
      const int fix = sampler.sample(dec.logits(k), seq.data(), (int)seq.size());
      stop = emit(fix, o.steps);
      dec.cache().drop_last(L - k - 1);
    }
    if (stop) {
      res.stop_reason = "stop_token";
      break;
    }
  }
  res.kv_bytes = dec.cache().bytes_held();
  return res;
}

}  // namespace huginn
