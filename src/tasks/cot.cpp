// Chain-of-thought decoding with soft thoughts at every reasoning position:
// a small decode loop over the Model's public pass functions (the same calls,
// in the same order, as the engine's decode loop makes for one sequence), so
// that feeding the argmax token's embedding (k = 1) reproduces greedy
// decoding bit for bit.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "huginn/common.h"
#include "huginn/config.h"
#include "huginn/kv_cache.h"
#include "huginn/model.h"
#include "huginn/sampling.h"
#include "huginn/tasks.h"
#include "tensor/kernels.h"

namespace huginn::tasks {

namespace {

// sum_i p_i * wte[i] * sqrt(d) over the top-k of softmax(logits / temp),
// renormalised: the arithmetic of the engine's soft thoughts
// (GenerateOptions::soft_thoughts), so that both give the same inputs.
void soft_embedding(const Model& m, const float* logits, int k, float temp, std::vector<float>& p,
                    std::vector<int>& idx, std::vector<float>& acc, float* out) {
  const int V = m.config().vocab_size, d = m.config().n_embd;
  k = k <= 0 || k > V ? V : k;
  const int top = argmax(logits, V);
  if (k == 1) {
    idx[0] = top;
    p[top] = 1.f;
  } else {
    for (int i = 0; i < V; ++i) p[i] = logits[i] / temp;
    kern::softmax(p.data(), V);
    std::iota(idx.begin(), idx.end(), 0);
    if (k < V)
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                        [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  }
  double z = 0;
  for (int j = 0; j < k; ++j) z += p[idx[j]];
  std::fill(acc.begin(), acc.end(), 0.f);
  for (int j = 0; j < k; ++j) kern::axpy_row((float)(p[idx[j]] / z), m.weights().wte, idx[j], acc.data());
  kern::scale(acc.data(), std::sqrt((float)d), out, d);
}

}  // namespace

DecodeResult decode_soft_chain(const Model& m, const std::vector<int>& prompt, const SoftChainOptions& o) {
  const ModelConfig& c = m.config();
  const int V = c.vocab_size, d = c.n_embd;
  if (prompt.empty()) fail("decode: empty prompt");
  if (o.steps < 1) fail("decode: the number of iterations must be >= 1, got ", o.steps);
  if (o.max_new_tokens < 1) fail("decode: max_new_tokens must be >= 1");
  if (o.soft_top_k < 0) fail("decode: soft thoughts' k must be >= 0 (0 = all tokens), got ", o.soft_top_k);
  if (!(o.soft_temperature > 0.f && std::isfinite(o.soft_temperature)))
    fail("decode: soft thoughts' temperature must be a positive number, got ", o.soft_temperature);
  if (!o.is_thought) fail("decode: soft chains need the set of reasoning tokens");
  const int P = (int)prompt.size();
  if ((int64_t)P + o.max_new_tokens > c.block_size)
    fail("prompt of ", P, " tokens plus ", o.max_new_tokens, " tokens exceeds the context of ", c.block_size);
  m.check_tokens(prompt.data(), P, 0);
  const int cap = P + o.max_new_tokens;
  KVCache cache = m.make_cache(cap, CacheStrategy::parse("full"));
  Workspace ws;
  ws.ensure(c, P, cap);
  std::vector<float> e((size_t)P * d), s((size_t)P * d), logits(V), p(V), acc(d);
  std::vector<int> idx(V);
  DecodeResult res;
  res.prompt_tokens = P;
  // One pass of T positions whose scaled input embeddings are in e: what
  // infer::BatchRunner::run does for one lane at a fixed depth.
  auto pass = [&](int T) {
    const int pos0 = cache.length();
    m.init_state(s.data(), T, 0.f, 0);
    Segment seg{T, pos0, &cache, 1};
    m.prelude_segments(e.data(), &seg, 1, ws);
    for (int it = 0; it < o.steps; ++it) m.core_iteration_segments(s.data(), e.data(), &seg, 1, it, ws);
    Segment head{T, cache.length() - T, &cache, 1};
    m.head_segments(s.data(), &head, 1, nullptr, logits.data(), ws);
    res.token_layers += (int64_t)T * (c.n_prelude + c.n_coda + (int64_t)c.n_core * o.steps);
    res.flops += pass_flops(c, T, pos0, o.steps);
  };
  m.embed(prompt.data(), P, e.data());
  pass(P);
  bool thinking = true;
  for (int produced = 0; produced < o.max_new_tokens; ++produced) {
    const int top = argmax(logits.data(), V);
    // The reasoning goes on while the model's most likely next token is a
    // reasoning token; the first other token starts the answer.
    if (thinking && o.is_thought(top)) {
      res.thought_tokens.push_back(top);
      res.thought_steps.push_back(o.steps);
      if (produced + 1 == o.max_new_tokens) break;
      soft_embedding(m, logits.data(), o.soft_top_k, o.soft_temperature, p, idx, acc, e.data());
      pass(1);
      continue;
    }
    thinking = false;
    res.tokens.push_back(top);
    res.steps_used.push_back(o.steps);
    if (top == kEosId || produced + 1 == o.max_new_tokens) break;
    m.embed(&top, 1, e.data());
    pass(1);
  }
  return res;
}

}  // namespace huginn::tasks
