// Backward kernels against finite differences of double-precision forwards.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "huginn/data.h"
#include "tensor/backward.h"
#include "tensor/kernels.h"
#include "test_util.h"

using namespace huginn;

namespace {
using test::randv;

// Central difference of a double objective in each coordinate of x.
std::vector<double> fd(std::vector<double> x, const std::function<double(const std::vector<double>&)>& f,
                       double h = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double a = f(x);
    x[i] = x0 - h;
    const double b = f(x);
    x[i] = x0;
    g[i] = (a - b) / (2 * h);
  }
  return g;
}
std::vector<double> dbl(const std::vector<float>& v) { return {v.begin(), v.end()}; }

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rtol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double mx = 0;
  for (double w : want) mx = std::max(mx, std::fabs(w));
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], rtol * (mx + 1e-6)) << what << " at " << i;
}
}  // namespace

TEST(Backward, RmsNormMatchesFiniteDifferences) {
  const int T = 3, d = 8;
  const float eps = 1e-6f;
  auto x = randv(T * d, 1), w = randv(d, 2), dy = randv(T * d, 3);
  for (auto& v : w) v += 1.f;
  auto fwd = [&](const std::vector<double>& xx, const std::vector<double>& ww) {
    double s = 0;
    for (int t = 0; t < T; ++t) {
      double ss = 0;
      for (int i = 0; i < d; ++i) ss += xx[t * d + i] * xx[t * d + i];
      const double r = 1.0 / std::sqrt(ss / d + eps);
      for (int i = 0; i < d; ++i) s += dy[t * d + i] * xx[t * d + i] * r * ww[i];
    }
    return s;
  };
  std::vector<float> dx(T * d, 0.f), dw(d, 0.f);
  bwd::rmsnorm_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), T, d, eps, false);
  expect_close(dx, fd(dbl(x), [&](auto& xx) { return fwd(xx, dbl(w)); }), 1e-4, "dx");
  expect_close(dw, fd(dbl(w), [&](auto& ww) { return fwd(dbl(x), ww); }), 1e-4, "dw");
  // accumulate_dx adds.
  std::vector<float> dx2(T * d, 1.f), dw2(d, 0.f);
  bwd::rmsnorm_backward(x.data(), w.data(), dy.data(), dx2.data(), dw2.data(), T, d, eps, true);
  for (int i = 0; i < T * d; ++i) EXPECT_NEAR(dx2[i], dx[i] + 1.f, 1e-6);
}

TEST(Backward, SwigluMatchesFiniteDifferences) {
  const int T = 3, I = 5;
  auto h = randv(T * 2 * I, 4, 2.f), go = randv(T * I, 5);
  auto f = [&](const std::vector<double>& hh) {
    double s = 0;
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < I; ++i) {
        const double g = hh[t * 2 * I + i], u = hh[t * 2 * I + I + i];
        s += go[t * I + i] * g / (1 + std::exp(-g)) * u;
      }
    return s;
  };
  std::vector<float> dh(T * 2 * I);
  bwd::swiglu_backward(h.data(), go.data(), dh.data(), T, I);
  expect_close(dh, fd(dbl(h), f), 1e-5, "dh");
}

TEST(Backward, AttentionMatchesFiniteDifferences) {
  const int T = 5, H = 2, hd = 4, d = H * hd, ld = 3 * d;
  auto qkv = randv(T * ld, 6), dout = randv(T * d, 7);
  auto f = [&](const std::vector<double>& x) {
    const double scale = 1.0 / std::sqrt((double)hd);
    double s = 0;
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < T; ++i) {
        std::vector<double> p(i + 1);
        double m = -1e300, z = 0;
        for (int j = 0; j <= i; ++j) {
          double a = 0;
          for (int c = 0; c < hd; ++c) a += x[i * ld + h * hd + c] * x[j * ld + d + h * hd + c];
          p[j] = a * scale;
          m = std::max(m, p[j]);
        }
        for (int j = 0; j <= i; ++j) z += (p[j] = std::exp(p[j] - m));
        for (int c = 0; c < hd; ++c) {
          double o = 0;
          for (int j = 0; j <= i; ++j) o += p[j] / z * x[j * ld + 2 * d + h * hd + c];
          s += dout[i * d + h * hd + c] * o;
        }
      }
    return s;
  };
  // The forward output the backward needs, from the inference kernel.
  std::vector<const float*> keys(T), vals(T);
  for (int j = 0; j < T; ++j) keys[j] = qkv.data() + j * ld + d, vals[j] = qkv.data() + j * ld + 2 * d;
  std::vector<float> out(T * d), scratch(kern::threads() * T + 16), dqkv(T * ld);
  kern::attention(qkv.data(), ld, keys.data(), vals.data(), T, T, H, hd, 0, out.data(), scratch.data());
  bwd::attention_backward(qkv.data(), qkv.data() + d, qkv.data() + 2 * d, ld, out.data(), dout.data(), dqkv.data(),
                          dqkv.data() + d, dqkv.data() + 2 * d, ld, 1, T, H, hd);
  expect_close(dqkv, fd(dbl(qkv), f), 1e-4, "dqkv");
}

TEST(Backward, CrossEntropyMatchesFiniteDifferencesAndIgnoresLabels) {
  const int T = 4, V = 7;
  auto lg = randv(T * V, 8, 2.f);
  std::vector<int> labels = {3, kIgnoreLabel, 0, 6};
  auto f = [&](const std::vector<double>& x) {
    double s = 0;
    for (int t = 0; t < T; ++t) {
      if (labels[t] == kIgnoreLabel) continue;
      double m = -1e300, z = 0;
      for (int i = 0; i < V; ++i) m = std::max(m, x[t * V + i]);
      for (int i = 0; i < V; ++i) z += std::exp(x[t * V + i] - m);
      s += m + std::log(z) - x[t * V + labels[t]];
    }
    return s / 3;
  };
  int n = 0;
  const double loss_only = bwd::cross_entropy_loss(lg.data(), labels.data(), T, V, kIgnoreLabel, &n);
  std::vector<float> g = lg;
  const double loss = bwd::cross_entropy_backward(g.data(), labels.data(), T, V, 1.f / 3, kIgnoreLabel, &n);
  EXPECT_EQ(n, 3);
  EXPECT_NEAR(loss / 3, f(dbl(lg)), 1e-6);
  EXPECT_EQ(loss, loss_only);
  expect_close(g, fd(dbl(lg), f), 1e-5, "dlogits");
  for (int i = 0; i < V; ++i) EXPECT_EQ(g[V + i], 0.f);
}

TEST(Backward, LinearGradsMatchNaive) {
  const int T = 6, K = 5, N = 7;
  auto x = randv(T * K, 9), W = randv(N * K, 10), dy = randv(T * N, 11);
  std::vector<float> dW(N * K, 0.5f), dx(T * K, 0.f);
  bwd::linear_weight_grad(dy.data(), N, x.data(), K, dW.data(), K, T, K, N);
  bwd::linear_input_grad(dy.data(), N, W.data(), K, dx.data(), K, T, K, N, false);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) {
      double s = 0.5;
      for (int t = 0; t < T; ++t) s += (double)dy[t * N + n] * x[t * K + k];
      EXPECT_NEAR(dW[n * K + k], s, 1e-4);
    }
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) {
      double s = 0;
      for (int n = 0; n < N; ++n) s += (double)dy[t * N + n] * W[n * K + k];
      EXPECT_NEAR(dx[t * K + k], s, 1e-4);
    }
}

TEST(Backward, RopeWithNegatedSinIsTheTranspose) {
  // <rope(x), y> == <x, rope^T(y)>: the backward the engine uses.
  const int T = 4, H = 2, hd = 6, half = hd / 3 * 1;
  (void)half;
  const int hh = hd / 2;
  std::vector<float> cs(T * hh), sn(T * hh), nsn(T * hh);
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < hh; ++i) {
      const double a = t * std::pow(10000.0, -2.0 * i / hd);
      cs[t * hh + i] = (float)std::cos(a), sn[t * hh + i] = (float)std::sin(a), nsn[t * hh + i] = -sn[t * hh + i];
    }
  std::vector<int> pos = {0, 1, 2, 3};
  auto x = randv(T * H * hd, 12), y = randv(T * H * hd, 13);
  auto rx = x, ry = y;
  kern::rope(rx.data(), T, H, hd, H * hd, pos.data(), cs.data(), sn.data());
  kern::rope(ry.data(), T, H, hd, H * hd, pos.data(), cs.data(), nsn.data());
  double a = 0, b = 0;
  for (size_t i = 0; i < x.size(); ++i) a += (double)rx[i] * y[i], b += (double)x[i] * ry[i];
  EXPECT_NEAR(a, b, 1e-4);
}

TEST(Backward, BatchedAttentionForwardMatchesTheInferenceKernel) {
  const int B = 2, T = 7, H = 3, hd = 8, d = H * hd, ld = 3 * d;
  auto qkv = randv(B * T * ld, 14);
  std::vector<float> got(B * T * d), want(B * T * d), scratch(kern::threads() * T + 16);
  bwd::attention_forward(qkv.data(), qkv.data() + d, qkv.data() + 2 * d, ld, got.data(), B, T, H, hd);
  for (int b = 0; b < B; ++b) {
    const float* qb = qkv.data() + b * T * ld;
    std::vector<const float*> keys(T), vals(T);
    for (int j = 0; j < T; ++j) keys[j] = qb + j * ld + d, vals[j] = qb + j * ld + 2 * d;
    kern::attention(qb, ld, keys.data(), vals.data(), T, T, H, hd, 0, want.data() + b * T * d, scratch.data());
  }
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << i;
}
