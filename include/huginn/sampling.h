// Choosing the next token from logits: greedy, or seeded sampling with
// temperature, top-k, top-p, min-p and a repetition penalty. The filters are
// applied in the reference's order (temperature, softmax, top-k, top-p, min-p,
// renormalise); the repetition penalty (HF style) comes first, on the logits.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace huginn {

struct SamplingOptions {
  float temperature = 0.f;         // 0: greedy (argmax, ties to the lowest id)
  int top_k = 0;                   // 0: off
  float top_p = 1.f;               // 1: off
  float min_p = 0.f;               // 0: off
  float repetition_penalty = 1.f;  // 1: off; > 1 discourages tokens already in the context
  uint64_t seed = 0;
  bool greedy() const { return temperature <= 0.f; }
  // Throws huginn::Error naming the bad value.
  void validate() const;
};

// Index of the largest value (ties to the lowest index, as torch.argmax).
int argmax(const float* x, int n);

class Sampler {
 public:
  Sampler(int vocab, const SamplingOptions& o);
  // Picks a token from logits[vocab]; `context` is what the repetition penalty
  // looks at. The logits are not modified. No allocation.
  int sample(const float* logits, const int* context = nullptr, int n_context = 0);
  // The probabilities the last sample() drew from (after every filter).
  const std::vector<float>& last_probs() const { return probs_; }
  const SamplingOptions& options() const { return o_; }

 private:
  int V_;
  SamplingOptions o_;
  std::mt19937_64 rng_;
  std::vector<float> probs_;
  std::vector<int> idx_;
  std::vector<unsigned char> seen_;
};

}  // namespace huginn
