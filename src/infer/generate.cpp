// The sequential driver: one pass per position over the shared decode loop
// (decoder.h), for a batch of sequences that each exit, stop and warm-start on
// their own.
#include "huginn/generate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>

#include "huginn/common.h"
#include "infer/decoder.h"
#include "model/arch.h"
#include "tensor/kernels.h"

namespace huginn {


void GenerateOptions::validate(const ModelConfig& c) const {
  DecodeSpec::validate(c);
  if (!stop_strings.empty() && !token_text) fail("stop strings need the tokenizer (token texts)");
  if (soft_thoughts < 0) fail("soft thoughts: the number of thought positions must be >= 0, got ", soft_thoughts);
  if (soft_top_k < 0) fail("soft thoughts: k must be >= 0 (0 = whole vocabulary), got ", soft_top_k);
  if (!(soft_temperature > 0.f)) fail("soft thoughts: temperature must be > 0, got ", soft_temperature);
  if (continuous && architecture_named(c.arch).state_from_embedding())
    fail("--continuous warm-starts each token from the last state; the ", c.arch,
         " architecture has no input injection (its loop starts from the token's embedding), so the token would be "
         "lost");
  if (soft_thoughts > 0 && c.arch != "huginn_raven")
    fail("soft thoughts build Huginn's scaled embedding; they are not implemented for the ", c.arch, " architecture");
}

namespace {

// Builds sum_i p_i * wte[i] * sqrt(d) over the top-k of softmax(logits / temp), renormalised.
class SoftEmbedder {
 public:
  SoftEmbedder(const Model& m, int k, float temp)
      : m_(m), V_(m.config().vocab_size), d_(m.config().n_embd), k_(k <= 0 || k > V_ ? V_ : k), temp_(temp),
        p_(V_), idx_(V_), acc_(d_) {}
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
        std::partial_sort(idx_.begin(), idx_.begin() + k_, idx_.end(), [&](int a, int b) {
          return p_[a] > p_[b] || (p_[a] == p_[b] && a < b);
        });
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

// One sequence of a batch: its decoder (cache, workspace), sampler and progress.
struct Sequence {
  // capacity: positions the cache holds (-1: what this prompt and generation need).
  Sequence(const Model& m, const std::vector<int>& prompt, const GenerateOptions& o, int index, int capacity = -1)
      : o(o),
        idx(index),
        prompt(prompt),
        cap(capacity >= 0 ? capacity
                          : std::min<int>(m.config().block_size,
                                          (int)prompt.size() + o.soft_thoughts + o.max_new_tokens)),
        dec(m, std::max(cap, (int)prompt.size()), CacheStrategy::parse(o.cache), std::max<int>(1, prompt.size()),
            o.exit, o.init_scale, o.seed),
        sampler(m.config().vocab_size, o.sampling),
        soft(m, o.soft_top_k, o.soft_temperature),
        d(m.config().n_embd),
        V(m.config().vocab_size) {
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
    dec.ensure_rows((int)prompt.size());
    passes = thoughts = 0;
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
  void prepare(infer::Lane& lane) {
    infer::PassInput& in = lane.in;
    in = infer::PassInput{};
    const bool first = passes == 0;
    if (first) {
      in.ids = prompt.data();
      in.T = (int)prompt.size();
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
    last_T = in.T;
  }

  // After the pass: the continuous state, then a thought or a token.
  void consume(const infer::PassResult& r, const TokenCallback& cb) {
    ++passes;
    res.core_iterations += r.steps;
    const Model& m = dec.model();
    if (o.continuous) {
      const float* last = dec.state(last_T - 1);
      if (o.continuous_from == ContinuousFrom::Raw) std::memcpy(cont.data(), last, sizeof(float) * d);
      else m.normalize_state(last, 1, cont.data());
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
  infer::Decoder dec;
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

infer::DepthPolicy policy_of(const GenerateOptions& o) {
  infer::DepthPolicy p;
  p.max_steps = o.steps;
  p.exit = o.exit;
  p.min_steps = o.min_steps;
  p.check_every = o.check_every;
  return p;
}

}  // namespace

std::vector<SequenceResult> generate(const Model& m, const std::vector<std::vector<int>>& prompts,
                                     const GenerateOptions& o, const TokenCallback& cb) {
  o.validate(m.config());
  std::vector<std::unique_ptr<Sequence>> seqs;
  int max_prompt = 1, max_cap = 1;
  for (size_t i = 0; i < prompts.size(); ++i) {
    seqs.push_back(std::make_unique<Sequence>(m, prompts[i], o, (int)i));
    max_prompt = std::max<int>(max_prompt, prompts[i].size());
    max_cap = std::max(max_cap, seqs.back()->dec.cache().capacity());
  }
  const int n = (int)seqs.size();
  infer::BatchRunner runner(m, std::max(max_prompt, n), n, max_cap, n);
  const infer::DepthPolicy p = policy_of(o);
  std::vector<infer::Lane> lanes(n);
  std::vector<Sequence*> in_round;
  in_round.reserve(n);
  // The prompts one at a time (a long prompt is a matrix-matrix pass of its
  // own anyway); then one position per unfinished sequence per round, all in
  // one batched pass, each with its own exit, stops and cache.
  for (auto& s : seqs)
    if (!s->done) {
      s->prepare(lanes[0]);
      runner.run(lanes.data(), 1, p);
      s->consume(lanes[0].result, cb);
    }
  while (true) {
    in_round.clear();
    for (auto& s : seqs)
      if (!s->done) {
        s->prepare(lanes[in_round.size()]);
        in_round.push_back(s.get());
      }
    if (in_round.empty()) break;
    runner.run(lanes.data(), (int)in_round.size(), p);
    for (size_t i = 0; i < in_round.size(); ++i) in_round[i]->consume(lanes[i].result, cb);
  }
  std::vector<SequenceResult> out;
  for (auto& s : seqs) out.push_back(std::move(s->res));
  return out;
}

SequenceResult generate(const Model& m, const std::vector<int>& prompt, const GenerateOptions& o,
                        const TokenCallback& cb) {
  return std::move(generate(m, std::vector<std::vector<int>>{prompt}, o, cb)[0]);
}

struct Session::Impl {
  const Model& m;
  GenerateOptions o;
  std::unique_ptr<Sequence> seq;
};

Session::Session(const Model& m, const GenerateOptions& o) : impl_(new Impl{m, o, nullptr}) { o.validate(m.config()); }
Session::~Session() = default;

SequenceResult Session::turn(const std::vector<int>& tokens, const TokenCallback& cb) {
  Impl& s = *impl_;
  if (!s.seq) {
    if (tokens.empty()) fail("generate: empty turn");
    s.seq = std::make_unique<Sequence>(s.m, tokens, s.o, 0, s.m.config().block_size);
  } else {
    s.seq->restart(tokens);
  }
  Sequence& q = *s.seq;
  infer::BatchRunner runner(s.m, (int)q.prompt.size(), 1, q.dec.cache().capacity(), 1);
  const infer::DepthPolicy p = policy_of(s.o);
  infer::Lane lane;
  while (!q.done) {
    q.prepare(lane);
    runner.run(&lane, 1, p);
    q.consume(lane.result, cb);
  }
  return std::move(q.res);
}

const std::vector<int>& Session::history() const {
  static const std::vector<int> none;
  return impl_->seq ? impl_->seq->context : none;
}

int Session::length() const { return impl_->seq ? impl_->seq->dec.cache().length() : 0; }

void Session::reset() { impl_->seq.reset(); }

std::vector<int> generate_fixed_greedy(const Model& m, const std::vector<int>& prompt, const FixedDepthOptions& f,
                                       std::vector<float>* step_logits) {
  GenerateOptions o;
  o.steps = f.steps;
  o.max_new_tokens = f.max_new_tokens;
  o.continuous = f.continuous;
  o.continuous_from = ContinuousFrom::Latent;
  o.cache = f.cache;
  o.stop_tokens.clear();
  o.record_logits = step_logits != nullptr;
  SequenceResult r = generate(m, prompt, o);
  if (step_logits) *step_logits = std::move(r.step_logits);
  return r.tokens;
}

}  // namespace huginn
