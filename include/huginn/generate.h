// Token generation over the model's forward pieces.
#pragma once
#include <string>
#include <vector>

#include "huginn/kv_cache.h"
#include "huginn/model.h"

namespace huginn {

// Index of the largest value (ties to the lowest index, as torch.argmax).
int argmax(const float* x, int n);

struct FixedDepthOptions {
  int steps = 32;
  int max_new_tokens = 16;
  bool continuous = false;  // start each token from ln_f(previous final state)
  std::string cache = "full";
};

// Greedy decoding at a fixed depth with a KV cache (the reference's
// generate_minimal): the prompt is prefilled in one forward, then one forward
// per token. If step_logits is given, row i holds the logits that chose token i.
std::vector<int> generate_fixed_greedy(const Model& m, const std::vector<int>& prompt, const FixedDepthOptions& o,
                                       std::vector<float>* step_logits = nullptr);

}  // namespace huginn
