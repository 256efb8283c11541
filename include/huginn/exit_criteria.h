// Per-token adaptive depth: when to stop iterating the core block. The
// criteria and their defaults follow the reference's
// generate_with_adaptive_compute (see the fixtures README for the table).
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace huginn {

enum class ExitKind { None, KL, MinpKL, EntropyDiff, LatentDiff, Cosine, ArgmaxStability, Gate, Custom };

// What a custom exit rule sees at a check: the iterations done in this pass,
// the state of the pass's rows [T, d] (raw, after the iteration) and, when the
// rule asks for them, the last row's next-token logits [vocab] (else null).
struct ExitContext {
  int steps = 0;
  const float* state = nullptr;
  int T = 0, d = 0;
  const float* logits = nullptr;
  int vocab = 0;
};
// A rule written by the caller (e.g. in Python): true stops the pass.
using ExitRule = std::function<bool(const ExitContext&)>;

struct ExitCriterion {
  ExitKind kind = ExitKind::None;
  double threshold = 0;
  // kind Custom: the rule, and whether it reads the logits (then every check
  // runs the coda and the head, as the logit criteria do).
  ExitRule rule{};
  bool rule_needs_logits = true;
  static ExitCriterion custom(ExitRule rule, bool needs_logits = true);
  // "none", "kl", "kl:5e-4", "minp-kl", "entropy-diff:1e-3", "latent-diff",
  // "cosine", "argmax-stability:5"; a missing threshold takes the reference's
  // default. Throws huginn::Error for anything else (a custom rule is made
  // with custom(), not parsed).
  static ExitCriterion parse(const std::string& s);
  static double default_threshold(ExitKind k);
  static const char* name(ExitKind k);
  // Whether a check needs the next-token logits (runs the coda).
  bool needs_logits() const;
  bool needs_states() const { return kind == ExitKind::LatentDiff || kind == ExitKind::Cosine; }
  // Whether a check needs the model's learned exit gate (gate:THRESHOLD, Ouro).
  bool needs_gate() const { return kind == ExitKind::Gate; }
  std::string str() const;
};

// The learned exit gate's distribution over T loops (Ouro, as its
// OuroForCausalLM.forward): lambda = sigmoid(gate[t]) and p[t] = lambda * rem,
// rem *= 1 - lambda for t < T-1, p[T-1] = rem (float32, in this order); cdf is
// the cumulative sum accumulated in float64 and rounded to float32 per step
// (torch's CPU cumsum, which decides the threshold-1.0 edge cases).
void gate_exit_distribution(const float* gate_logits, int T, float* pdf, float* cdf);
// The exit step: the first t with cdf[t] >= float32(threshold), else T-1.
int gate_exit_step(const float* cdf, int T, double threshold);

// ||cur - prev|| / ||cur|| of one d-vector (the latent-diff measure; NaN for a zero cur).
double relative_change(const float* cur, const float* prev, int d);

// One criterion check: iterations done, the value, whether it exited.
struct ExitCheck {
  int steps = 0;
  double value = 0;
  bool exited = false;
};

// The running state of a criterion over the iterations of one pass.
class ExitTracker {
 public:
  ExitTracker(const ExitCriterion& c, int vocab, int width);
  // Start of a pass whose initial state is s0[T, d].
  void reset(const float* s0, int T);
  // Before an iteration: remembers the state (latent criteria only).
  void before_iteration(const float* s, int T);
  // A check. Logit criteria read `logits` (the last position's row); latent
  // criteria compare `s` with the state before the iteration. Returns the value.
  double value(const float* logits, const float* s, int T);
  // The gate criterion: the gate logit of the last row after each iteration
  // (every iteration, checked or not); value() is then the cumulative exit
  // probability so far.
  void observe_gate(float gate_logit);
  bool exits(double v) const;

 private:
  ExitCriterion c_;
  int V_, d_;
  std::vector<float> prev_logp_, logp_, prev_state_;
  double prev_entropy_ = 100.0;
  int prev_argmax_ = -1, stable_ = 0;
  float gate_rem_ = 1.f, gate_cdf_ = 0.f;
  double gate_acc_ = 0;
  int iterations_ = 0;  // iterations of this pass so far (custom rules see it)
};

}  // namespace huginn
