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
#include "infer/sequence.h"
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
using infer::Sequence;

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
  std::vector<infer::Lane> lanes(n);
  std::vector<Sequence*> in_round;
  in_round.reserve(n);
  // The prompts one at a time (a long prompt is a matrix-matrix pass of its
  // own anyway); then one position per unfinished sequence per round, all in
  // one batched pass, each with its own exit, stops and cache.
  for (auto& s : seqs)
    if (!s->done) {
      s->prepare(lanes[0]);
      runner.run(lanes.data(), 1);
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
    runner.run(lanes.data(), (int)in_round.size());
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
  infer::Lane lane;
  while (!q.done) {
    q.prepare(lane);
    runner.run(&lane, 1);
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
