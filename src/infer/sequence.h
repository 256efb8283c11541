// One sequence of the sequential driver (generate(), Session, the serving
// scheduler): its decoder (cache, exit state), sampler, stops and progress.
// prepare() sets up the lane of its next pass, consume() takes the pass's
// result (a token, a soft thought, or nothing for a prompt chunk).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "huginn/common.h"
#include "huginn/generate.h"
#include "infer/decoder.h"
#include "model/arch.h"
#include "tensor/kernels.h"

namespace huginn::infer {

// Builds sum_i p_i * wte[i] * sqrt(d) over the top-k of softmax(logits / temp), renormalised.
class SoftEmbedder {
 public:
  SoftEmbedder(const Model& m, int k, float temp)
      : m_(m),
        V_(m.config().vocab_size),
        d_(m.config().n_embd),
        k_(k <= 0 || k > V_ ? V_ : k),
        temp_(temp),
        p_(V_),
        idx_(V_),
        acc_(d_) {}
  // Writes the embedding row; returns the argmax token.
  int build(const float* logits, float* out) {
    const int top = argmax(logits, V_);
    int n = k_;
    if (k_ == 1) {
      idx_[0] = top;
      p_[top] = 1.f;
    } else {
      for (int i = 0; i < V_; ++i) p_[i] = logits[i] / temp_;  // a division, as the reference
      kern::softmax(p_.data(), V_);
      std::iota(idx_.begin(), idx_.end(), 0);
      if (k_ < V_)
        std::partial_sort(idx_.begin(), idx_.begin() + k_, idx_.end(),
                          [&](int a, int b) { return p_[a] > p_[b] || (p_[a] == p_[b] && a < b); });
    }
    double z = 0;
    for (int j = 0; j < n; ++j) z += p_[idx_[j]];
    std::fill(acc_.begin(), acc_.end(), 0.f);
    for (int j = 0; j < n; ++j) kern::axpy_row((float)(p_[idx_[j]] / z), m_.weights().wte, idx_[j], acc_.data());
    const float scale = std::sqrt((float)d_);
    kern::scale(acc_.data(), scale, out, d_);
    return top;
  }

 private:
  const Model& m_;
  int V_, d_, k_;
  float temp_;
  std::vector<float> p_;
  std::vector<int> idx_;
  std::vector<float> acc_;
};

inline DepthPolicy policy_of(const GenerateOptions& o) {
  DepthPolicy p;
  p.max_steps = o.steps;
  p.exit = o.exit;
  p.min_steps = o.min_steps;
  p.check_every = o.check_every;
  return p;
}

// One sequence of a batch: its decoder (cache, workspace), sampler and progress.
struct Sequence {
  // capacity: positions the cache holds (-1: what this prompt and generation
  // need). chunk > 0: the prompt is fed in passes of at most `chunk`
  // positions (each a full prompt pass of its rows; the last one's logits
  // give the first token).
  Sequence(const Model& m, const std::vector<int>& prompt, const GenerateOptions& o, int index, int capacity = -1,
           int chunk = 0)
      : o(o),
        idx(index),
        prompt(prompt),
        cap(capacity >= 0
                ? capacity
                : std::min<int>(m.config().block_size, (int)prompt.size() + o.soft_thoughts + o.max_new_tokens)),
        chunk(chunk),
        dec(m, std::max(cap, (int)prompt.size()), CacheStrategy::parse(o.cache),
            std::max<int>(1, chunk > 0 ? std::min<int>(chunk, prompt.size()) : prompt.size()), o.exit, o.init_scale,
            o.seed),
        sampler(m.config().vocab_size, o.sampling),
        soft(m, o.soft_top_k, o.soft_temperature),
        d(m.config().n_embd),
        V(m.config().vocab_size) {
    policy = policy_of(o);
    if (prompt.empty()) fail("generate: empty prompt (sequence ", index, ")");
    m.check_tokens(prompt.data(), (int)prompt.size(), 0);
    context.reserve(prompt.size() + o.max_new_tokens + 1);
    context = prompt;
    cont.resize(d);
    soft_in.resize(d);
    if (o.record_logits) res.step_logits.reserve((size_t)o.max_new_tokens * V);
    res.tokens.reserve(o.max_new_tokens);
    res.steps.reserve(o.max_new_tokens);
    if (o.max_new_tokens == 0) finish("max_tokens");
  }

  // A further turn on the same cache: the last generated token (not yet fed)
  // and `input` form the next prompt pass.
  void restart(const std::vector<int>& input) {
    if (input.empty()) fail("generate: empty turn");
    prompt.clear();
    if (pending) prompt.push_back(last_token);
    prompt.insert(prompt.end(), input.begin(), input.end());
    dec.model().check_tokens(input.data(), (int)input.size(), 0);
    context.insert(context.end(), input.begin(), input.end());
    dec.ensure_rows(chunk > 0 ? std::min<int>(chunk, prompt.size()) : (int)prompt.size());
    passes = thoughts = fed = 0;
    next_soft = done = pending = false;
    text.clear();
    res = SequenceResult{};
    res.tokens.reserve(o.max_new_tokens);
    res.steps.reserve(o.max_new_tokens);
    if (o.max_new_tokens == 0) finish("max_tokens");
  }

  void finish(const char* why) {
    done = true;
    res.stop_reason = why;
    res.kv_bytes = dec.cache().bytes_held();
  }

  // The input of the next pass.
  void prepare(Lane& lane) {
    PassInput& in = lane.in;
    in = PassInput{};
    const bool first = fed < (int)prompt.size();  // a prompt pass
    if (first) {
      in.ids = prompt.data() + fed;
      in.T = (int)prompt.size() - fed;
      if (chunk > 0) in.T = std::min(in.T, chunk);
    } else if (next_soft) {
      in.embeds = soft_in.data();
    } else {
      in.ids = &last_token;
    }
    pending = false;
    if (o.continuous && !first) in.start = cont.data();
    in.checks = !(first && o.no_exit_in_prefill);
    lane.dec = &dec;
    lane.checks = o.record_checks ? &res.checks.emplace_back() : nullptr;
    lane.policy = policy;
    last_T = in.T;
  }

  // Positions of the prompt still to feed.
  int prompt_left() const { return (int)prompt.size() - fed; }

  // After the pass: the continuous state, then a thought or a token.
  void consume(const PassResult& r, const TokenCallback& cb) {
    ++passes;
    res.core_iterations += r.steps;
    if (fed < (int)prompt.size()) {
      fed += last_T;
      if (fed < (int)prompt.size()) return;  // a prompt chunk: no token yet
    }
    const Model& m = dec.model();
    if (o.continuous) {
      const float* last = dec.state(last_T - 1);
      if (o.continuous_from == ContinuousFrom::Raw)
        std::memcpy(cont.data(), last, sizeof(float) * d);
      else
        m.normalize_state(last, 1, cont.data());
    }
    const float* logits = dec.logits(0);
    const int position = dec.cache().length();  // of the next input
    if (thoughts < o.soft_thoughts) {
      const int top = soft.build(logits, soft_in.data());
      next_soft = true;
      ++thoughts;
      res.thought_tokens.push_back(top);
      res.thought_steps.push_back(r.steps);
      if (cb) cb({idx, top, r.steps, true});
      if (position + 1 > cap) finish("context");
      return;
    }
    next_soft = false;
    if (o.record_logits) res.step_logits.insert(res.step_logits.end(), logits, logits + V);
    const int tok = sampler.sample(logits, context.data(), (int)context.size());
    last_token = tok;
    pending = true;
    context.push_back(tok);
    res.tokens.push_back(tok);
    res.steps.push_back(r.steps);
    if (cb) cb({idx, tok, r.steps, false});
    if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), tok) != o.stop_tokens.end()) return finish("stop_token");
    if (!o.stop_strings.empty()) {
      const std::string piece = o.token_text(tok);
      text += piece;
      for (auto& ss : o.stop_strings) {
        const size_t from = text.size() > piece.size() + ss.size() ? text.size() - piece.size() - ss.size() : 0;
        if (text.find(ss, from) != std::string::npos) return finish("stop_string");
      }
    }
    if ((int)res.tokens.size() >= o.max_new_tokens) return finish("max_tokens");
    if (position + 1 > cap) return finish("context");
  }

  const GenerateOptions& o;
  int idx;
  std::vector<int> prompt;
  int cap;
  int chunk;    // prompt positions per pass (0: the whole prompt in one)
  int fed = 0;  // prompt positions fed so far
  Decoder dec;
  DepthPolicy policy;
  Sampler sampler;
  SoftEmbedder soft;
  int d, V;
  std::vector<int> context;
  std::vector<float> cont, soft_in;
  std::string text;
  int passes = 0, thoughts = 0, last_token = 0, last_T = 1;
  bool next_soft = false, done = false, pending = false;  // pending: last_token not fed yet
  SequenceResult res;
};

}  // namespace huginn::infer
