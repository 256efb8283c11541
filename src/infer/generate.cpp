#include "huginn/generate.h"

#include "huginn/common.h"

namespace huginn {

int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

std::vector<int> generate_fixed_greedy(const Model& m, const std::vector<int>& prompt, const FixedDepthOptions& o,
                                       std::vector<float>* step_logits) {
  const ModelConfig& c = m.config();
  if (prompt.empty()) fail("generate: empty prompt");
  const int total = (int)prompt.size() + o.max_new_tokens;
  if (total > c.block_size)
    fail("prompt of ", prompt.size(), " tokens plus ", o.max_new_tokens, " new tokens exceeds the context of ",
         c.block_size);
  KVCache cache(c.n_prelude, c.n_core, c.n_coda, c.n_embd, total, CacheStrategy::parse(o.cache));
  Workspace ws;
  Model::ForwardResult r;
  std::vector<int> out;
  std::vector<float> start((size_t)c.n_embd);
  if (step_logits) step_logits->clear();
  m.forward(prompt.data(), (int)prompt.size(), o.steps, r, ws, &cache, nullptr, 0.f, 0, 1);
  for (int i = 0; i < o.max_new_tokens; ++i) {
    if (step_logits) step_logits->insert(step_logits->end(), r.logits.begin(), r.logits.end());
    const int tok = argmax(r.logits.data(), c.vocab_size);
    out.push_back(tok);
    if (i + 1 == o.max_new_tokens) break;
    const float* init = nullptr;
    if (o.continuous) {
      const size_t last = r.latents.size() - c.n_embd;
      std::copy(r.latents.begin() + last, r.latents.end(), start.begin());
      init = start.data();
    }
    m.forward(&tok, 1, o.steps, r, ws, &cache, init, 0.f, 0, 1);
  }
  return out;
}

}  // namespace huginn
