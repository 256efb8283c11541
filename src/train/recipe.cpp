// The training recipe: recurrence sampling, learning-rate schedule, AdamW.
#include <cmath>
#include <random>

#include "huginn/common.h"
#include "huginn/train.h"
#include "tensor/kernels.h"

namespace huginn {

namespace {
uint64_t splitmix(uint64_t x) { return splitmix64(x); }
}  // namespace

RecurrenceSplit sample_recurrence(int mean_recurrence, int backprop_depth, uint64_t seed, uint64_t step) {
  if (mean_recurrence < 1) fail("mean recurrence must be >= 1, got ", mean_recurrence);
  if (backprop_depth < 1) fail("backprop depth must be >= 1, got ", backprop_depth);
  std::mt19937_64 rng(splitmix(splitmix(seed ^ 0x5EC0u) + step));
  const double mu = std::log((double)mean_recurrence) - 0.125;
  std::lognormal_distribution<double> lnd(mu, 0.5);
  const double rate = lnd(rng);
  std::poisson_distribution<int> pd(rate);
  const int p = pd(rng) + 1;
  RecurrenceSplit s;
  s.no_grad = std::max(p - backprop_depth, 0);
  s.grad = std::min(p, backprop_depth);
  return s;
}

float LRSchedule::at(int step) const {
  if (warmup > 0 && step < warmup) return lr * (float)(step + 1) / (float)warmup;
  const int total = std::max(total_steps, 1);
  if (kind == "cosine") {
    const int span = std::max(total - warmup, 1);
    const double f = std::min(1.0, (double)(step - warmup) / span);
    return (float)(min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * f)));
  }
  if (kind != "constant") fail("unknown learning-rate schedule '", kind, "' (constant or cosine)");
  const int cool_start = total - cooldown;
  if (cooldown > 0 && step >= cool_start) {
    const double f = (double)(step - cool_start + 1) / cooldown;
    return (float)(lr + (min_lr - lr) * std::min(1.0, f));
  }
  return lr;
}

AdamW::AdamW(const ModelConfig& c, AdamWConfig cfg) : layout_(param_layout(c)), cfg_(cfg) {
  for (auto& p : layout_) decay_.push_back(decay_for(p.name));
  m_.assign(param_count(layout_), 0.f);
  v_.assign(m_.size(), 0.f);
}

float AdamW::decay_for(const std::string& name) const {
  // The reference's no_weight_decay_for_bias_and_norm_params: norms and biases
  // (every 1-D tensor, and qk_bias) are not decayed.
  const bool no_decay = name.ends_with("qk_bias") || name.ends_with("bias") || name.find("norm") != std::string::npos ||
                        name.find("ln_f") != std::string::npos;
  return no_decay ? 0.f : cfg_.weight_decay;
}

void AdamW::update(float* p, const float* g, float lr) {
  ++t_;
  const double bc1 = 1.0 - std::pow((double)cfg_.beta1, (double)t_);
  const double bc2 = 1.0 - std::pow((double)cfg_.beta2, (double)t_);
  const float step_size = (float)((double)lr / bc1);
  const float bc2_sqrt = (float)std::sqrt(bc2);
  const float b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps;
  const float omb1 = (float)(1.0 - (double)b1), omb2 = (float)(1.0 - (double)b2);
  for (size_t k = 0; k < layout_.size(); ++k) {
    const size_t off = layout_[k].offset, n = layout_[k].numel;
    const float keep = (float)(1.0 - (double)lr * decay_[k]);
    float* pp = p + off;
    const float* gg = g + off;
    float* mm = m_.data() + off;
    float* vv = v_.data() + off;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; ++i) {
      if (decay_[k] != 0.f) pp[i] *= keep;
      mm[i] = mm[i] * b1 + gg[i] * omb1;
      vv[i] = vv[i] * b2 + (gg[i] * gg[i]) * omb2;
      const float denom = std::sqrt(vv[i]) / bc2_sqrt + eps;
      pp[i] -= step_size * (mm[i] / denom);
    }
  }
}

double grad_norm(const float* g, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += (double)g[i] * g[i];
  return std::sqrt(s);
}

}  // namespace huginn

namespace huginn {
std::vector<float> flatten_weights(const Model& m) {
  const auto layout = param_layout(m.config());
  const std::vector<Weight>& params = m.params();
  if (params.size() != layout.size()) fail("flatten_weights: layout mismatch");
  std::vector<float> flat(param_count(layout));
  for (size_t i = 0; i < layout.size(); ++i) kern::to_f32(params[i], flat.data() + layout[i].offset);
  return flat;
}
}  // namespace huginn
