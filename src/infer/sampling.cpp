#include "huginn/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "huginn/common.h"
#include "tensor/kernels.h"

namespace huginn {

int argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

void SamplingOptions::validate() const {
  if (!(temperature >= 0.f) || !std::isfinite(temperature))
    fail("temperature must be >= 0 (0 = greedy), got ", temperature);
  if (top_k < 0) fail("top-k must be >= 0 (0 = off), got ", top_k);
  if (!(top_p > 0.f && top_p <= 1.f)) fail("top-p must be in (0, 1], got ", top_p);
  if (!(min_p >= 0.f && min_p <= 1.f)) fail("min-p must be in [0, 1], got ", min_p);
  if (!(repetition_penalty > 0.f) || !std::isfinite(repetition_penalty))
    fail("repetition penalty must be > 0 (1 = off), got ", repetition_penalty);
}

Sampler::Sampler(int vocab, const SamplingOptions& o) : V_(vocab), o_(o), rng_(o.seed), probs_(vocab), idx_(vocab), seen_(vocab, 0) {
  o_.validate();
}

int Sampler::sample(const float* logits, const int* context, int n_context) {
  float* p = probs_.data();
  std::copy(logits, logits + V_, p);
  if (o_.repetition_penalty != 1.f && context) {
    // HF's rule, once per distinct token of the context
    for (int i = 0; i < n_context; ++i) {
      const int t = context[i];
      if (t < 0 || t >= V_ || seen_[t]) continue;
      seen_[t] = 1;
      p[t] = p[t] > 0 ? p[t] / o_.repetition_penalty : p[t] * o_.repetition_penalty;
    }
    for (int i = 0; i < n_context; ++i)
      if (context[i] >= 0 && context[i] < V_) seen_[context[i]] = 0;
  }
  if (o_.greedy()) return argmax(p, V_);
  // temperature, softmax
  const float inv_t = 1.f / o_.temperature;
  kern::scale(p, inv_t, p, V_);
  kern::softmax(p, V_);
  // top-k: drop probabilities below the k-th largest (ties kept, as the reference)
  if (o_.top_k > 0 && o_.top_k < V_) {
    std::iota(idx_.begin(), idx_.end(), 0);
    std::nth_element(idx_.begin(), idx_.begin() + (o_.top_k - 1), idx_.end(),
                     [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    const float kth = p[idx_[o_.top_k - 1]];
    for (int i = 0; i < V_; ++i)
      if (p[i] < kth) p[i] = 0.f;
  }
  // top-p: keep the smallest prefix (by descending probability) whose mass reaches p
  if (o_.top_p < 1.f) {
    std::iota(idx_.begin(), idx_.end(), 0);
    std::sort(idx_.begin(), idx_.end(), [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    double cum = 0;
    for (int r = 0; r < V_; ++r) {
      cum += p[idx_[r]];  // the reference drops every rank whose inclusive mass exceeds p, but the first
      if (r > 0 && cum > o_.top_p) p[idx_[r]] = 0.f;
    }
  }
  if (o_.min_p > 0.f) {
    float m = 0.f;
    for (int i = 0; i < V_; ++i) m = std::max(m, p[i]);
    const float thr = o_.min_p * m;
    for (int i = 0; i < V_; ++i)
      if (p[i] < thr) p[i] = 0.f;
  }
  double sum = 0;
  for (int i = 0; i < V_; ++i) sum += p[i];
  if (!(sum > 0)) return argmax(logits, V_);
  std::uniform_real_distribution<double> u(0.0, sum);
  const double r = u(rng_);
  double acc = 0;
  int last = 0;
  for (int i = 0; i < V_; ++i) {
    if (p[i] <= 0.f) continue;
    acc += p[i];
    last = i;
    if (r < acc) return i;
  }
  return last;
}

}  // namespace huginn
