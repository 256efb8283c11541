#include "huginn/exit_criteria.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "huginn/common.h"
#include "tensor/kernels.h"
#include "huginn/sampling.h"

namespace huginn {

namespace {
struct Named {
  ExitKind k;
  const char* name;
};
const Named kNames[] = {{ExitKind::None, "none"},
                        {ExitKind::KL, "kl"},
                        {ExitKind::MinpKL, "minp-kl"},
                        {ExitKind::EntropyDiff, "entropy-diff"},
                        {ExitKind::LatentDiff, "latent-diff"},
                        {ExitKind::Cosine, "cosine"},
                        {ExitKind::ArgmaxStability, "argmax-stability"},
                        {ExitKind::Gate, "gate"},
                        {ExitKind::Custom, "custom"}};

float sigmoid_f32(float g) { return 1.0f / (1.0f + std::exp(-g)); }

}  // namespace

void gate_exit_distribution(const float* gate_logits, int T, float* pdf, float* cdf) {
  float rem = 1.f;
  double acc = 0;
  for (int t = 0; t < T; ++t) {
    if (t < T - 1) {
      const float lam = sigmoid_f32(gate_logits[t]);
      pdf[t] = lam * rem;
      rem = rem * (1.0f - lam);
    } else {
      pdf[t] = rem;
    }
    acc += (double)pdf[t];
    if (cdf) cdf[t] = (float)acc;
  }
}

int gate_exit_step(const float* cdf, int T, double threshold) {
  const float thr = (float)threshold;
  for (int t = 0; t < T; ++t)
    if (cdf[t] >= thr) return t;
  return T - 1;
}

double relative_change(const float* cur, const float* prev, int d) { return kern::relative_change(cur, prev, d); }

const char* ExitCriterion::name(ExitKind k) {
  for (auto& n : kNames)
    if (n.k == k) return n.name;
  return "?";
}

double ExitCriterion::default_threshold(ExitKind k) {
  switch (k) {
    case ExitKind::KL: return 5e-4;
    case ExitKind::MinpKL: return 1e-6;
    case ExitKind::EntropyDiff: return 1e-3;
    case ExitKind::LatentDiff: return 0.03;
    case ExitKind::Cosine: return 1e-3;
    case ExitKind::ArgmaxStability: return 5;
    case ExitKind::Gate: return 1.0;  // Ouro's early_exit_threshold
    case ExitKind::None: return 1.0;
    case ExitKind::Custom: return 0.0;
  }
  return 0;
}

ExitCriterion ExitCriterion::parse(const std::string& s) {
  ExitCriterion c;
  const size_t colon = s.find(':');
  const std::string name = s.substr(0, colon);
  bool found = false;
  for (auto& n : kNames)
    if (name == n.name && n.k != ExitKind::Custom) {
      c.kind = n.k;
      found = true;
    }
  if (!found)
    fail("unknown exit criterion '", name,
         "' (use none, kl, minp-kl, entropy-diff, latent-diff, cosine, argmax-stability or gate (models with a "
         "learned exit gate), optionally with :THRESHOLD, e.g. kl:5e-4)");
  c.threshold = default_threshold(c.kind);
  if (colon != std::string::npos) {
    const std::string num = s.substr(colon + 1);
    if (c.kind == ExitKind::None) fail("exit criterion '", s, "': none (fixed depth) takes no threshold");
    double v = 0;
    if (!parse_double(num, v))
      fail("exit criterion '", s, "': threshold '", num, "' is not a number");
    if (v < 0) fail("exit criterion '", s, "': the threshold must be >= 0");
    if (c.kind == ExitKind::ArgmaxStability && v != std::floor(v))
      fail("exit criterion '", s, "': argmax-stability needs a whole number of checks");
    if (c.kind == ExitKind::Gate && !(v > 0 && v <= 1))
      fail("exit criterion '", s, "': the gate's threshold is a cumulative probability in (0, 1]");
    c.threshold = v;
  }
  return c;
}

ExitCriterion ExitCriterion::custom(ExitRule rule, bool needs_logits) {
  if (!rule) fail("custom exit criterion: no rule given");
  ExitCriterion c;
  c.kind = ExitKind::Custom;
  c.rule = std::move(rule);
  c.rule_needs_logits = needs_logits;
  return c;
}

bool ExitCriterion::needs_logits() const {
  if (kind == ExitKind::Custom) return rule_needs_logits;
  return kind == ExitKind::KL || kind == ExitKind::MinpKL || kind == ExitKind::EntropyDiff ||
         kind == ExitKind::ArgmaxStability;
}

std::string ExitCriterion::str() const { return huginn::str(name(kind), ":", threshold); }

ExitTracker::ExitTracker(const ExitCriterion& c, int vocab, int width) : c_(c), V_(vocab), d_(width) {
  if (c.needs_logits()) {
    prev_logp_.resize(vocab);
    logp_.resize(vocab);
  }
}

void ExitTracker::reset(const float* s0, int T) {
  iterations_ = 0;
  prev_entropy_ = 100.0;
  prev_argmax_ = -1;
  stable_ = 0;
  gate_rem_ = 1.f;
  gate_cdf_ = 0.f;
  gate_acc_ = 0;
  if (c_.kind == ExitKind::KL || c_.kind == ExitKind::MinpKL)
    std::fill(prev_logp_.begin(), prev_logp_.end(), std::log(1.0f / (float)V_));
  if (c_.needs_states()) before_iteration(s0, T);
}

void ExitTracker::before_iteration(const float* s, int T) {
  ++iterations_;
  if (!c_.needs_states()) return;
  const size_t n = (size_t)T * d_;
  if (prev_state_.size() < n) prev_state_.resize(n);
  std::memcpy(prev_state_.data(), s, sizeof(float) * n);
}

void ExitTracker::observe_gate(float g) {
  const float lam = sigmoid_f32(g);
  gate_acc_ += (double)(lam * gate_rem_);
  gate_rem_ = gate_rem_ * (1.0f - lam);
  gate_cdf_ = (float)gate_acc_;
}

double ExitTracker::value(const float* logits, const float* s, int T) {
  switch (c_.kind) {
    case ExitKind::None: return 0.0;
    case ExitKind::Gate: return gate_cdf_;
    case ExitKind::Custom: {
      ExitContext ctx;
      ctx.steps = iterations_;
      ctx.state = s;
      ctx.T = T;
      ctx.d = d_;
      ctx.logits = c_.rule_needs_logits ? logits : nullptr;
      ctx.vocab = V_;
      return c_.rule(ctx) ? 1.0 : 0.0;
    }
    case ExitKind::KL:
    case ExitKind::MinpKL: {
      float* lp = logp_.data();
      if (c_.kind == ExitKind::KL) {
        kern::log_softmax(logits, lp, V_);
      } else {
        // softmax, then probabilities below 0.1 * max become 1/V, renormalised
        kern::log_softmax(logits, lp, V_);
        float mx = 0.f;
        for (int i = 0; i < V_; ++i) {
          lp[i] = std::exp(lp[i]);
          mx = std::max(mx, lp[i]);
        }
        double sum = 0;
        for (int i = 0; i < V_; ++i) {
          if (lp[i] < 0.1f * mx) lp[i] = 1.0f / (float)V_;
          sum += lp[i];
        }
        for (int i = 0; i < V_; ++i) lp[i] = std::log((float)(lp[i] / sum));
      }
      double kl = 0;
      for (int i = 0; i < V_; ++i) {
        const double pp = prev_logp_[i];
        kl += std::exp(pp) * (pp - (double)lp[i]);
      }
      prev_logp_.swap(logp_);
      return kl;
    }
    case ExitKind::EntropyDiff: {
      float* lp = logp_.data();
      kern::log_softmax(logits, lp, V_);
      double h = 0;
      for (int i = 0; i < V_; ++i) {
        const double p = std::exp((double)lp[i]);
        h -= p * std::log(p + 1e-10);
      }
      const double v = std::fabs(h - prev_entropy_);
      prev_entropy_ = h;
      return v;
    }
    case ExitKind::ArgmaxStability: {
      const int a = argmax(logits, V_);
      stable_ = a == prev_argmax_ ? stable_ + 1 : 0;
      prev_argmax_ = a;
      return stable_;
    }
    case ExitKind::LatentDiff:
    case ExitKind::Cosine: {
      double acc = 0;
      for (int t = 0; t < T; ++t) {
        const float* a = s + (size_t)t * d_;
        const float* b = prev_state_.data() + (size_t)t * d_;
        if (c_.kind == ExitKind::LatentDiff) {
          acc += relative_change(a, b, d_);
        } else {
          double na = 0, nb = 0, ab = 0;
          for (int i = 0; i < d_; ++i) {
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
            ab += (double)a[i] * b[i];
          }
          acc += ab / (std::sqrt(na) * std::sqrt(nb));  // NaN from a zero state: never exits
        }
      }
      acc /= T;
      return c_.kind == ExitKind::LatentDiff ? acc : 1.0 - acc;
    }
  }
  return 0;
}

bool ExitTracker::exits(double v) const {
  switch (c_.kind) {
    case ExitKind::None: return false;
    case ExitKind::ArgmaxStability: return v >= c_.threshold;
    case ExitKind::Gate: return (float)v >= (float)c_.threshold;
    case ExitKind::Custom: return v != 0.0;
    default: return v < c_.threshold;  // NaN never exits
  }
}

}  // namespace huginn
