// The training forward and the inference forward are one definition: the
// same inputs through GradEngine (training schedule: batched sgemm attention,
// one product over all rows, activations kept) and through Model::forward
// (inference schedule, sequence by sequence) give the same logits and final
// states, at depths 0, 1, 4 and 9, from zero and random initial states.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/model.h"
#include "huginn/train.h"
#include "test_util.h"

using namespace huginn;

namespace {
void expect_close(const float* got, const float* want, size_t n, double tol, const std::string& what) {
  double mx = 0, worst = 0;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, (double)std::fabs(want[i]));
  for (size_t i = 0; i < n; ++i) worst = std::max(worst, (double)std::fabs(got[i] - want[i]));
  EXPECT_LE(worst, tol * std::max(mx, 1.0)) << what << ": max |diff| " << worst << " (max |value| " << mx << ")";
}
}  // namespace

TEST(OneForward, TrainingAndInferenceForwardsAgree) {
  const ModelConfig c = test::tiny_config();
  const std::vector<float> params = init_params(c, 11);
  auto model = Model::from_flat(c, params.data());
  const int B = 3, T = 12, d = c.n_embd, V = c.vocab_size;
  std::mt19937 rng(5);
  std::vector<int> ids(B * T), labels(B * T);
  for (auto& x : ids) x = (int)(rng() % V);
  for (auto& x : labels) x = (int)(rng() % V);
  const uint64_t seeds[B] = {101, 202, 303};
  GradEngine engine(c, B, T, 4);
  for (float init_scale : {0.f, 1.f})
    for (int steps : {0, 1, 4, 9}) {
      const std::string what = str("depth ", steps, ", init_scale ", init_scale);
      engine.loss(params.data(), ids.data(), labels.data(), B, steps, nullptr, init_scale, seeds);
      for (int b = 0; b < B; ++b) {
        Workspace ws;
        Model::ForwardResult out;
        model->forward(ids.data() + b * T, T, steps, out, ws, nullptr, nullptr, init_scale, seeds[b], T);
        expect_close(engine.logits() + (size_t)b * T * V, out.logits.data(), (size_t)T * V, 1e-5,
                     what + " logits, sequence " + std::to_string(b));
        expect_close(engine.final_state() + (size_t)b * T * d, out.state.data(), (size_t)T * d, 1e-5,
                     what + " final state, sequence " + std::to_string(b));
      }
    }
}

// The training forward under forward_backward (activations kept for the
// backward) computes the same loss as the no-grad one.
TEST(OneForward, GradedAndNoGradForwardsGiveTheSameLoss) {
  const ModelConfig c = test::tiny_config();
  std::vector<float> params = init_params(c, 12), grads(params.size());
  const int B = 2, T = 10, V = c.vocab_size;
  std::mt19937 rng(6);
  std::vector<int> ids(B * T), labels(B * T);
  for (auto& x : ids) x = (int)(rng() % V);
  for (auto& x : labels) x = (int)(rng() % V);
  GradEngine engine(c, B, T, 3);
  for (RecurrenceSplit split : {RecurrenceSplit{0, 3}, RecurrenceSplit{2, 2}, RecurrenceSplit{5, 0}}) {
    const double no_grad = engine.loss(params.data(), ids.data(), labels.data(), B, split.total()).loss_sum;
    const double graded =
        engine.forward_backward(params.data(), grads.data(), ids.data(), labels.data(), B, split, 1.f).loss_sum;
    EXPECT_EQ(no_grad, graded) << split.no_grad << "+" << split.grad;
  }
}
