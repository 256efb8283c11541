// Kernels against naive double-precision implementations.
#include <gtest/gtest.h>
#include <omp.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include "huginn/checkpoint.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/quant.h"
#include "huginn/quantize.h"
#include "huginn/safetensors.h"
#include "tensor/balanced_for.h"
#include "tensor/kernels.h"
#include "tensor/team.h"
#include "test_util.h"

using namespace huginn;

namespace {
using test::randv;
void naive_matmul(const float* x, const float* W, double* y, int T, int K, int N) {
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < N; ++n) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += (double)x[t * K + k] * W[n * K + k];
      y[t * N + n] = s;
    }
}
}  // namespace

TEST(Kernels, DotMatchesNaiveForAllTailLengths) {
  for (int n : {0, 1, 3, 7, 8, 15, 16, 31, 33, 64, 100, 1000}) {
    auto a = randv(n, 1), b = randv(n, 2);
    double ref = 0;
    for (int i = 0; i < n; ++i) ref += (double)a[i] * b[i];
    EXPECT_NEAR(kern::dot(a.data(), b.data(), n), ref, 1e-4 * (1 + std::sqrt((double)n))) << n;
  }
}

// The header's promise: dots gives, row for row, dot(a, row) * scale, bit for
// bit (rows are summed 16 at a time on AVX-512, in dot's order).
TEST(Kernels, DotsEqualDotPerRow) {
  for (int n : {7, 16, 64, 100, 128}) {
    const int nrows = 37;
    auto a = randv(n, 3), m = randv((size_t)nrows * (n + 5), 4);
    std::vector<const float*> rows(nrows);
    for (int j = 0; j < nrows; ++j) rows[j] = m.data() + (size_t)(nrows - 1 - j) * (n + 5);  // not in order
    std::vector<float> out(nrows, NAN);
    kern::dots(a.data(), rows.data(), 3, nrows, n, 0.125f, out.data());
    for (int j = 0; j < nrows; ++j) {
      const float ref = kern::dot(a.data(), rows[j] + 3, n) * 0.125f;
      ASSERT_EQ(0, std::memcmp(&out[j], &ref, sizeof(float))) << "n " << n << " row " << j;
    }
  }
}

// An f16 KV cache: to_f16 rounds as the scalar conversion does (nearest,
// ties to even, subnormals and overflow included), and attention over f16
// keys and values gives the bits of attention over the same entries widened
// to f32.
TEST(Kernels, F16EntriesRoundAndAttendAsTheirF32Widening) {
  for (size_t n : {1, 15, 16, 64, 100}) {
    std::vector<float> x = randv(n, 9);
    const float specials[] = {0.f, -0.f, 1e-8f, -3e-6f, 6.1e-5f, 65504.f, 65520.f, -1e6f, 2049.f, 2051.f, 0.33333334f};
    for (size_t i = 0; i < n && i < std::size(specials); ++i) x[i] = specials[i];
    std::vector<uint16_t> h(n);
    kern::to_f16(x.data(), h.data(), n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(h[i], f32_to_f16(x[i])) << "n " << n << " x " << x[i];
  }
  const int hd = 64, nk = 37;
  const auto q = randv(hd, 1), k = randv((size_t)nk * hd, 2), v = randv((size_t)nk * hd, 3);
  std::vector<uint16_t> kh(k.size()), vh(v.size());
  kern::to_f16(k.data(), kh.data(), k.size());
  kern::to_f16(v.data(), vh.data(), v.size());
  std::vector<float> kw(k.size()), vw(v.size());
  for (size_t i = 0; i < k.size(); ++i) kw[i] = f16_to_f32(kh[i]), vw[i] = f16_to_f32(vh[i]);
  std::vector<const void*> k16(nk), v16(nk), k32(nk), v32(nk);
  for (int j = 0; j < nk; ++j) {
    k16[j] = kh.data() + (size_t)j * hd, v16[j] = vh.data() + (size_t)j * hd;
    k32[j] = kw.data() + (size_t)j * hd, v32[j] = vw.data() + (size_t)j * hd;
  }
  std::vector<float> out16(hd), out32(hd), exact(hd), scratch(nk);
  for (int n : {1, 16, nk}) {
    kern::attention_head(q.data(), k16.data(), v16.data(), DType::F16, n, hd, 0, out16.data(), scratch.data());
    kern::attention_head(q.data(), k32.data(), v32.data(), DType::F32, n, hd, 0, out32.data(), scratch.data());
    ASSERT_EQ(0, std::memcmp(out16.data(), out32.data(), sizeof(float) * hd)) << n << " keys";
  }
  // and within f16's rounding of attention over the unrounded entries
  for (int j = 0; j < nk; ++j) k32[j] = k.data() + (size_t)j * hd, v32[j] = v.data() + (size_t)j * hd;
  kern::attention_head(q.data(), k32.data(), v32.data(), DType::F32, nk, hd, 0, exact.data(), scratch.data());
  for (int i = 0; i < hd; ++i) EXPECT_NEAR(out16[i], exact[i], 2e-3f) << i;
  // an entry beyond f16's range is stored as infinite, and the output is not finite
  // (the decoder's logits check then stops the pass with a clear error)
  std::vector<float> big(hd, 0.5f);
  big[3] = 1e6f;
  kern::to_f16(big.data(), vh.data(), hd);  // the first key's value
  EXPECT_EQ(vh[3], 0x7c00);
  kern::attention_head(q.data(), k16.data(), v16.data(), DType::F16, nk, hd, 0, out16.data(), scratch.data());
  bool finite = true;
  for (float x : out16) finite = finite && std::isfinite(x);
  EXPECT_FALSE(finite);
}

// attention_head4's contract: four queries at once (a prompt chunk's rows under
// one head) give, query for query, attention_head's bits for that query and
// its own key count, for F32 and F16 entries, head sizes with and without a
// tail beyond whole vectors, and key counts equal, increasing or mixed.
TEST(Kernels, FourQueriesAttendAsEachAlone) {
  for (int hd : {64, 48, 80, 72, 8, 128}) {
    const int nk_max = 41, off = 5, row = hd + off + 3;  // entries start `off` floats into rows of `row`
    const auto qm = randv((size_t)4 * hd, 11), km = randv((size_t)nk_max * row, 12),
               vm = randv((size_t)nk_max * row, 13);
    std::vector<uint16_t> kh(km.size()), vh(vm.size());
    kern::to_f16(km.data(), kh.data(), km.size());
    kern::to_f16(vm.data(), vh.data(), vm.size());
    std::vector<const void*> k32(nk_max), v32(nk_max), k16(nk_max), v16(nk_max);
    for (int j = 0; j < nk_max; ++j) {  // keys in reverse memory order: pointers, not a stride
      const size_t at = (size_t)(nk_max - 1 - j) * row;
      k32[j] = km.data() + at, v32[j] = vm.data() + at, k16[j] = kh.data() + at, v16[j] = vh.data() + at;
    }
    const std::vector<std::array<int, 4>> counts = {{1, 2, 3, 4},   {38, 39, 40, 41}, {16, 16, 16, 16},
                                                    {5, 1, 41, 17}, {33, 34, 35, 36}, {4, 8, 12, 20}};
    for (DType t : {DType::F32, DType::F16}) {
      const void* const* kp = t == DType::F32 ? k32.data() : k16.data();
      const void* const* vp = t == DType::F32 ? v32.data() : v16.data();
      for (const auto& nk : counts) {
        std::vector<float> out((size_t)4 * hd, NAN), alone(hd), scratch((size_t)4 * (nk_max + 2)), s1(nk_max);
        const float* qs[4];
        float* outs[4];
        for (int i = 0; i < 4; ++i) qs[i] = qm.data() + (size_t)i * hd, outs[i] = out.data() + (size_t)i * hd;
        kern::attention_head4(qs, kp, vp, t, nk.data(), hd, off, outs, scratch.data(), nk_max + 2);
        for (int i = 0; i < 4; ++i) {
          kern::attention_head(qs[i], kp, vp, t, nk[i], hd, off, alone.data(), s1.data());
          ASSERT_EQ(0, std::memcmp(outs[i], alone.data(), sizeof(float) * hd))
              << dtype_name(t) << " hd " << hd << " query " << i << " of nk " << nk[0] << "," << nk[1] << "," << nk[2]
              << "," << nk[3];
        }
      }
    }
  }
}

TEST(Kernels, MatmulGemvAndBlasPathsMatchNaive) {
  // T = 1..7 takes the GEMV path, T >= 8 the BLAS path; odd N exercises the tail rows.
  for (int T : {1, 2, 3, 7, 8, 9}) {
    for (int N : {1, 5, 64, 67}) {
      const int K = 37;
      auto x = randv((size_t)T * K, 3), W = randv((size_t)N * K, 4);
      std::vector<float> y((size_t)T * N, 1.0f);
      std::vector<double> ref((size_t)T * N);
      naive_matmul(x.data(), W.data(), ref.data(), T, K, N);
      kern::matmul(x.data(), W.data(), y.data(), T, K, N);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-4) << "T=" << T << " N=" << N;
      kern::matmul(x.data(), W.data(), y.data(), T, K, N, /*accumulate=*/true);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], 2 * ref[i], 2e-4) << "accumulate T=" << T;
    }
  }
}

TEST(Kernels, RmsNormMatchesFormula) {
  const int T = 3, d = 10;
  auto x = randv(T * d, 5), w = randv(d, 6);
  std::vector<float> y(T * d);
  kern::rmsnorm(x.data(), w.data(), y.data(), T, d, 1e-6f);
  for (int t = 0; t < T; ++t) {
    double ss = 0;
    for (int i = 0; i < d; ++i) ss += (double)x[t * d + i] * x[t * d + i];
    const double r = 1.0 / std::sqrt(ss / d + 1e-6);
    for (int i = 0; i < d; ++i) EXPECT_NEAR(y[t * d + i], x[t * d + i] * r * w[i], 1e-5);
  }
}

// The fused row passes (add_rmsnorm, rmsnorm_add, bias_rope) give the bits of
// the steps they replace, for one row (serial) and many (parallel, also inside
// a stage's team), with the outputs aliasing their inputs as the Huginn and
// Ouro layers use them.
TEST(Kernels, FusedRowPassesEqualTheirSteps) {
  const int d = 96, H = 3, hd = 16, ld = 3 * H * hd, maxpos = 40;
  auto cosv = randv((size_t)maxpos * hd / 2, 31), sinv = randv((size_t)maxpos * hd / 2, 32);
  for (int T : {1, 7, 64})
    for (bool team : {false, true}) {
      auto run = [&](auto&& f) { team ? kern::with_team(f) : f(); };
      // residual add, norm, norm: sum into a's buffer, y over b (as r1 = tmp, x1 = x)
      const auto a0 = randv((size_t)T * d, 33), b0 = randv((size_t)T * d, 34);
      const auto w1 = randv(d, 35), w2 = randv(d, 36);
      std::vector<float> sum_ref(a0.size()), y_ref(a0.size()), y2_ref(a0.size());
      kern::add(a0.data(), b0.data(), sum_ref.data(), a0.size());
      kern::rmsnorm(sum_ref.data(), w1.data(), y_ref.data(), T, d, 1e-6f);
      kern::rmsnorm(y_ref.data(), w2.data(), y2_ref.data(), T, d, 1e-6f);
      std::vector<float> a = a0, b = b0, y2(a0.size());
      run([&] {
        kern::add_rmsnorm(a.data(), b.data(), a.data(), w1.data(), b.data(), w2.data(), y2.data(), T, d, 1e-6f);
      });
      EXPECT_EQ(0, std::memcmp(a.data(), sum_ref.data(), a.size() * 4)) << T << " rows";
      EXPECT_EQ(0, std::memcmp(b.data(), y_ref.data(), b.size() * 4)) << T << " rows";
      EXPECT_EQ(0, std::memcmp(y2.data(), y2_ref.data(), y2.size() * 4)) << T << " rows";
      a = a0, b = b0;
      run([&] { kern::add_rmsnorm(a.data(), b.data(), a.data(), w1.data(), b.data(), nullptr, nullptr, T, d, 1e-6f); });
      EXPECT_EQ(0, std::memcmp(b.data(), y_ref.data(), b.size() * 4)) << T << " rows";

      // the branch's norm, the residual add, the next norm (Ouro's order)
      std::vector<float> r_ref = a0, x_ref = b0, h_ref(a0.size());
      kern::rmsnorm(r_ref.data(), w1.data(), r_ref.data(), T, d, 1e-6f);
      kern::add(x_ref.data(), r_ref.data(), x_ref.data(), x_ref.size());
      kern::rmsnorm(x_ref.data(), w2.data(), h_ref.data(), T, d, 1e-6f);
      std::vector<float> r = a0, xs = b0, h(a0.size());
      run([&] { kern::rmsnorm_add(r.data(), w1.data(), xs.data(), w2.data(), h.data(), T, d, 1e-6f); });
      EXPECT_EQ(0, std::memcmp(r.data(), r_ref.data(), r.size() * 4)) << T << " rows";
      EXPECT_EQ(0, std::memcmp(xs.data(), x_ref.data(), xs.size() * 4)) << T << " rows";
      EXPECT_EQ(0, std::memcmp(h.data(), h_ref.data(), h.size() * 4)) << T << " rows";
      r = a0, xs = b0;
      run([&] { kern::rmsnorm_add(r.data(), w1.data(), xs.data(), nullptr, nullptr, T, d, 1e-6f); });
      EXPECT_EQ(0, std::memcmp(xs.data(), x_ref.data(), xs.size() * 4)) << T << " rows";

      // q and k biases and RoPE over the first 2H heads of fused QKV rows
      const auto x0 = randv((size_t)T * ld, 37), bias = randv(2 * H * hd, 38);
      std::vector<int> pos(T);
      for (int t = 0; t < T; ++t) pos[t] = (t * 7 + 3) % maxpos;
      std::vector<float> ref = x0, x = x0;
      kern::add_bias(ref.data(), T, H * hd, ld, bias.data());
      kern::add_bias(ref.data() + H * hd, T, H * hd, ld, bias.data() + H * hd);
      kern::rope(ref.data(), T, H, hd, ld, pos.data(), cosv.data(), sinv.data());
      kern::rope(ref.data() + H * hd, T, H, hd, ld, pos.data(), cosv.data(), sinv.data());
      run([&] { kern::bias_rope(x.data(), T, 2 * H, hd, ld, bias.data(), pos.data(), cosv.data(), sinv.data()); });
      EXPECT_EQ(0, std::memcmp(x.data(), ref.data(), x.size() * 4)) << T << " rows";
      ref = x0, x = x0;
      kern::rope(ref.data(), T, 2 * H, hd, ld, pos.data(), cosv.data(), sinv.data());
      run([&] { kern::bias_rope(x.data(), T, 2 * H, hd, ld, nullptr, pos.data(), cosv.data(), sinv.data()); });
      EXPECT_EQ(0, std::memcmp(x.data(), ref.data(), x.size() * 4)) << T << " rows";
    }
}

TEST(Kernels, RopeRotatesAdjacentPairs) {
  const int H = 2, hd = 4, half = 2;
  std::vector<float> cosv = {1, 1, 0.6f, 0.8f}, sinv = {0, 0, 0.8f, 0.6f};  // 2 positions
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  int pos = 1;
  kern::rope(x.data(), 1, H, hd, H * hd, &pos, cosv.data(), sinv.data());
  (void)half;
  // pair (1,2) with c=.6 s=.8 -> (1*.6-2*.8, 2*.6+1*.8)
  EXPECT_NEAR(x[0], -1.0f, 1e-6);
  EXPECT_NEAR(x[1], 2.0f, 1e-6);
  EXPECT_NEAR(x[2], 3 * 0.8f - 4 * 0.6f, 1e-6);
  EXPECT_NEAR(x[3], 4 * 0.8f + 3 * 0.6f, 1e-6);
  EXPECT_NEAR(x[4], 5 * 0.6f - 6 * 0.8f, 1e-6);
}

TEST(Kernels, SwigluAndSoftmax) {
  std::vector<float> h = {1.f, -2.f, 3.f, 0.5f};  // T=1, I=2
  std::vector<float> o(2);
  kern::swiglu(h.data(), o.data(), 1, 2);
  EXPECT_NEAR(o[0], 1.0 / (1 + std::exp(-1.0)) * 3.0, 1e-6);
  EXPECT_NEAR(o[1], -2.0 / (1 + std::exp(2.0)) * 0.5, 1e-6);
  std::vector<float> s = {1000.f, 1001.f, 999.f};
  kern::softmax(s.data(), 3);
  double z = std::exp(-1.0) + 1 + std::exp(-2.0);
  EXPECT_NEAR(s[1], 1 / z, 1e-6);
  EXPECT_NEAR(s[0] + s[1] + s[2], 1.0, 1e-6);
}

// The SIMD exp behind swiglu and softmax: within 4 ulps of libm over the whole
// range (vector steps and tails), 0 below the float range, +inf above, NaN kept.
TEST(Kernels, VectorExpAgreesWithLibm) {
  auto ulps = [](float a, float b) {
    int32_t ia, ib;
    std::memcpy(&ia, &a, 4), std::memcpy(&ib, &b, 4);
    return std::abs((int64_t)ia - ib);
  };
  std::vector<float> x;
  for (float v = -110.0f; v < 100.0f; v += 0.0137f) x.push_back(v);
  x.push_back(-INFINITY), x.push_back(INFINITY), x.push_back(NAN), x.push_back(0.0f);
  for (size_t n : {x.size(), x.size() - 5, (size_t)3}) {
    std::vector<float> e(x.begin(), x.begin() + n);
    kern::exp_shift(e.data(), 0.0f, n);
    for (size_t i = 0; i < n; ++i) {
      const float ref = std::exp(x[i]);
      if (std::isnan(ref)) {
        EXPECT_TRUE(std::isnan(e[i])) << x[i];
      } else if (ref < 1e-37f) {  // underflow: 0 or a subnormal either way
        EXPECT_LE(e[i], 1e-37f) << x[i];
      } else {
        EXPECT_LE(ulps(e[i], ref), 4) << x[i] << ": " << e[i] << " vs " << ref;
      }
    }
  }
  // swiglu against its scalar formula, g across the range, u = 1.5
  std::vector<float> h(2 * x.size()), o(x.size());
  for (size_t i = 0; i < x.size(); ++i) h[i] = x[i], h[x.size() + i] = 1.5f;
  kern::swiglu(h.data(), o.data(), 1, (int)x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const float ref = x[i] / (1.0f + std::exp(-x[i])) * 1.5f;
    if (std::isnan(ref))
      EXPECT_TRUE(std::isnan(o[i])) << x[i];
    else if (std::fabs(ref) < 1e-30f)
      EXPECT_LE(std::fabs(o[i]), 1e-30f) << x[i];
    else
      EXPECT_LE(ulps(o[i], ref), 4) << x[i] << ": " << o[i] << " vs " << ref;
  }
}

TEST(Kernels, AttentionMatchesNaiveWithMasks) {
  const int H = 2, hd = 8, d = H * hd, Tq = 3, Lk = 5;
  auto q = randv(Tq * d, 7), k = randv(Lk * d, 8), v = randv(Lk * d, 9);
  std::vector<const float*> kp(Lk), vp(Lk);
  for (int j = 0; j < Lk; ++j) {
    kp[j] = &k[j * d];
    vp[j] = &v[j * d];
  }
  std::vector<float> scratch(kern::threads() * Lk + 8);
  for (int offset : {-1, 0, 2}) {
    std::vector<float> out(Tq * d);
    kern::attention(q.data(), d, kp.data(), vp.data(), Tq, Lk, H, hd, offset, out.data(), scratch.data());
    for (int i = 0; i < Tq; ++i)
      for (int h = 0; h < H; ++h) {
        const int nk = offset < 0 ? Lk : std::min(Lk, i + offset + 1);
        std::vector<double> s(nk);
        double m = -1e300, z = 0;
        for (int j = 0; j < nk; ++j) {
          double dd = 0;
          for (int c = 0; c < hd; ++c) dd += (double)q[i * d + h * hd + c] * k[j * d + h * hd + c];
          s[j] = dd / std::sqrt((double)hd);
          m = std::max(m, s[j]);
        }
        for (auto& x : s) z += (x = std::exp(x - m));
        for (int c = 0; c < hd; ++c) {
          double o = 0;
          for (int j = 0; j < nk; ++j) o += s[j] / z * v[j * d + h * hd + c];
          ASSERT_NEAR(out[i * d + h * hd + c], o, 1e-5) << "offset " << offset;
        }
      }
  }
}

// Typed weights: a BF16/F16 matrix is read in its stored type. GEMV (fewer
// than 8 rows) equals the F32 product over the widened weights bit for bit;
// the sgemm path on widened panels agrees to float rounding. Embedding rows
// and axpy over typed rows widen exactly.
TEST(Kernels, TypedWeightsEqualTheirF32Widening) {
  for (DType dt : {DType::BF16, DType::F16})
    for (auto [N, K] : {std::pair{37, 29}, std::pair{130, 64}, std::pair{9, 515}}) {
      auto w = randv((size_t)N * K, 3), x = randv((size_t)20 * K, 4);
      std::vector<uint16_t> stored(w.size());
      for (size_t i = 0; i < w.size(); ++i) stored[i] = dt == DType::BF16 ? f32_to_bf16(w[i]) : f32_to_f16(w[i]);
      const Weight W{dt, stored.data(), N, K};
      std::vector<float> wide(w.size());
      kern::to_f32(W, wide.data());
      for (size_t i = 0; i < w.size(); ++i)
        ASSERT_EQ(wide[i], dt == DType::BF16 ? bf16_to_f32(stored[i]) : f16_to_f32(stored[i]));
      const Weight W32 = Weight::f32(wide.data(), N, K);
      for (int T : {1, 3, 7, 8, 20}) {
        std::vector<float> a((size_t)T * N), b((size_t)T * N);
        kern::matmul(x.data(), W, a.data(), T);
        kern::matmul(x.data(), W32, b.data(), T);
        if (T < 8) {
          ASSERT_EQ(a, b) << dtype_name(dt) << " T=" << T << " " << N << "x" << K;
        } else {
          for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4 * (1 + std::fabs(b[i]))) << T;
        }
      }
      const int ids[3] = {N - 1, 0, N / 2};
      std::vector<float> rows(3 * (size_t)K), acc(K, 0.f), acc32(K, 0.f);
      kern::gather_rows(W, ids, 3, 2.f, rows.data());
      for (int t = 0; t < 3; ++t)
        for (int k = 0; k < K; ++k) ASSERT_EQ(rows[(size_t)t * K + k], wide[(size_t)ids[t] * K + k] * 2.f);
      kern::axpy_row(0.3f, W, ids[0], acc.data());
      kern::axpy(0.3f, wide.data() + (size_t)ids[0] * K, acc32.data(), K);
      ASSERT_EQ(acc, acc32);
    }
}

// Multi-row GEMV: every row of a T-row product is bit-identical to the same row
// computed alone (T = 1), for every weight type, any T (matmul_rowwise) and the
// GEMV range of matmul, with tails in K (not a multiple of the vector width)
// and in N (not a multiple of four weight rows).
TEST(Kernels, MultiRowGemvRowsEqualSingleRow) {
  const int kMax = 33;
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    // K > 512: rows taken in stretches with the partial sums carried (1541: three and a tail; 1024: two exactly)
    for (auto [N, K] : {std::pair{37, 29}, std::pair{9, 515}, std::pair{64, 512}, std::pair{6, 3}, std::pair{8, 1541},
                        std::pair{5, 1024}}) {
      auto w = randv((size_t)N * K, 11), x = randv((size_t)kMax * K, 12);
      std::vector<uint16_t> stored(w.size());
      for (size_t i = 0; i < w.size(); ++i) stored[i] = dt == DType::BF16 ? f32_to_bf16(w[i]) : f32_to_f16(w[i]);
      const Weight W = dt == DType::F32 ? Weight::f32(w.data(), N, K) : Weight{dt, stored.data(), N, K};
      std::vector<float> one((size_t)kMax * N);
      for (int t = 0; t < kMax; ++t) kern::matmul(x.data() + (size_t)t * K, W, one.data() + (size_t)t * N, 1);
      for (int T = 1; T <= kMax; ++T) {
        std::vector<float> y((size_t)T * N, NAN);
        kern::matmul_rowwise(x.data(), W, y.data(), T);
        ASSERT_EQ(0, std::memcmp(y.data(), one.data(), y.size() * sizeof(float)))
            << dtype_name(dt) << " T=" << T << " " << N << "x" << K;
        if (T <= kern::matmul_rowwise_max_rows(W)) {
          std::vector<float> z((size_t)T * N, NAN), acc((size_t)T * N, 0.5f);
          kern::matmul(x.data(), W, z.data(), T);
          ASSERT_EQ(0, std::memcmp(z.data(), one.data(), z.size() * sizeof(float))) << dtype_name(dt) << " T=" << T;
          kern::matmul(x.data(), W, acc.data(), T, /*accumulate=*/true);
          for (size_t i = 0; i < acc.size(); ++i) ASSERT_EQ(acc[i], 0.5f + one[i]) << "accumulate T=" << T;
        }
      }
    }
}

// The GEMV copies activations that do not start on 64-byte lines (or whose
// rows are not a whole number of lines apart) to an aligned buffer: the result
// does not depend on where x lies or on its row stride.
TEST(Kernels, GemvBitsDoNotDependOnActivationAlignment) {
  const int N = 72, K = 512, T = 8;
  auto w = randv((size_t)N * K, 21), x = randv((size_t)T * K, 22);
  std::vector<float> ref((size_t)T * N);
  kern::matmul(x.data(), w.data(), ref.data(), T, K, N);
  std::vector<float> buf((size_t)T * (K + 3) + 64);
  const uintptr_t base = (reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63);
  for (int ldx : {K, K + 3})
    for (int off = 0; off < 16; ++off) {
      float* xs = reinterpret_cast<float*>(base) + off;
      for (int t = 0; t < T; ++t) std::memcpy(xs + (size_t)t * ldx, x.data() + (size_t)t * K, K * sizeof(float));
      for (int rows : {1, 3, T}) {
        std::vector<float> y((size_t)rows * N, NAN);
        kern::matmul_ld(xs, ldx, w.data(), K, y.data(), N, rows, K, N, false);
        ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)))
            << "offset " << off << " ldx " << ldx << " rows " << rows;
      }
    }
}

// The block-quantized GEMV (quant::gemv, all of a batch's rows in one call)
// gives each row the bits it gets alone.
TEST(Kernels, QuantGemvRowsEqualSingleRow) {
  const int kMax = 33;
  for (quant::Type qt : {quant::Type::Q8_0, quant::Type::Q4_0, quant::Type::Q4_1, quant::Type::Q5_0, quant::Type::Q4_K,
                         quant::Type::Q5_K, quant::Type::Q6_K})
    for (auto [N, K] : {std::pair{37, 256}, std::pair{5, 512}}) {
      auto w = randv((size_t)N * K, 13), x = randv((size_t)kMax * K, 14);
      std::vector<uint8_t> bytes(quant::row_bytes(qt, K) * N);
      quant::quantize_rows(qt, w.data(), bytes.data(), N, K);
      const Weight W = Weight::blocks(qt, bytes.data(), N, K);
      ASSERT_GE(kern::matmul_rowwise_max_rows(W), 32);
      std::vector<float> one((size_t)kMax * N);
      for (int t = 0; t < kMax; ++t) kern::matmul(x.data() + (size_t)t * K, W, one.data() + (size_t)t * N, 1);
      for (int T = 1; T <= kMax; ++T) {
        std::vector<float> y((size_t)T * N, NAN), z((size_t)T * N, NAN);
        kern::matmul_rowwise(x.data(), W, y.data(), T);
        ASSERT_EQ(0, std::memcmp(y.data(), one.data(), y.size() * sizeof(float))) << quant::name(qt) << " T=" << T;
        if (T <= kern::matmul_rowwise_max_rows(W)) {
          kern::matmul(x.data(), W, z.data(), T);
          ASSERT_EQ(0, std::memcmp(z.data(), one.data(), z.size() * sizeof(float))) << quant::name(qt) << " T=" << T;
        }
      }
    }
}

// balanced_for: every item runs exactly once, in ranges within [0, n), for any
// thread count and chunk; a thread that stalls on its first chunk has the back
// of its share taken by the others (the point of the split).
TEST(Kernels, BalancedForRunsEachItemOnceAndRebalances) {
  const int saved = omp_get_max_threads();
  for (int nt : {1, 2, 3, 4, 7})
    for (int n : {0, 1, 5, 64, 1000})
      for (int chunk : {1, 3, 16}) {
        omp_set_num_threads(nt);
        std::vector<std::atomic<int>> runs(n);
        std::atomic<bool> bad_range{false};
        kern::balanced_for(n, chunk, true, [&](int a, int e) {
          if (a < 0 || e > n || a >= e) bad_range = true;
          for (int i = a; i < e; ++i) runs[i]++;
        });
        EXPECT_FALSE(bad_range) << nt << " threads, n=" << n << " chunk " << chunk;
        for (int i = 0; i < n; ++i) ASSERT_EQ(runs[i].load(), 1) << nt << " threads, n=" << n << " chunk " << chunk;
      }
  omp_set_num_threads(2);
  const int n = 400;
  std::vector<int> by(n, -1);
  std::atomic<bool> slept{false};
  std::atomic<int> team{0};
  kern::balanced_for(n, 4, true, [&](int a, int e) {
    const int me = omp_get_thread_num();
    team = omp_get_num_threads();
    if (me == 0 && !slept.exchange(true)) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (int i = a; i < e; ++i) by[i] = me;
  });
  omp_set_num_threads(saved);
  if (team < 2) GTEST_SKIP() << "the runtime gave a team of one thread";
  // Thread 0's share is [0, 200): the other thread finished its own within the
  // 200 ms and took thread 0's back.
  EXPECT_NE(by[199], 0);
  for (int i = 200; i < n; ++i) ASSERT_NE(by[i], 0) << i;
}

// A stage's team (tensor/team.h): every loop inside it runs each item once,
// on the team's threads; a loop inside a loop's item runs on that item's
// thread; thousands of loops in a row (the generation handshake) with the
// workers spinning and with them asleep between loops; an exception from the
// stage or from thread 0's items comes out of with_team, and the next stage
// works.
TEST(Kernels, TeamRunsEveryItemOnceAndPassesErrorsOn) {
  const int saved = omp_get_max_threads();
  for (int64_t spin_us : {0, 2000})
    for (int nt : {1, 2, 3}) {
      kern::detail::set_spin_budget_us(spin_us);
      omp_set_num_threads(nt);
      const int n = 203;
      std::vector<std::atomic<int>> runs(n);
      std::atomic<int> dyn_runs{0}, bal_runs{0}, wrong_nested{0}, bad_thread{0};
      std::atomic<uint32_t> threads_seen{0};
      int team_size = 0;
      kern::with_team([&] {
        team_size = kern::parallel_threads();
        for (int rep = 0; rep < 400; ++rep) {
          kern::parallel_for(n, true, [&](int64_t i) {
            runs[i]++;
            threads_seen |= 1u << omp_get_thread_num();
            if (i % 50 == 0) {
              const int me = omp_get_thread_num();
              kern::parallel_for(8, true, [&](int64_t) { wrong_nested += omp_get_thread_num() != me; });
            }
          });
          kern::parallel_for_dynamic(n, true, [&](int, int thread) {
            dyn_runs++;
            bad_thread += thread < 0 || thread >= team_size;
          });
          kern::balanced_for(n, 4, true, [&](int a, int e) { bal_runs += e - a; });
        }
      });
      EXPECT_EQ(team_size, nt);
      for (int i = 0; i < n; ++i) ASSERT_EQ(runs[i].load(), 400) << nt << " threads, item " << i;
      EXPECT_EQ(dyn_runs.load(), 400 * n);
      EXPECT_EQ(bal_runs.load(), 400 * n);
      EXPECT_EQ(wrong_nested.load(), 0);
      EXPECT_EQ(bad_thread.load(), 0);
      if (nt > 1) {
        EXPECT_EQ(threads_seen.load(), (1u << nt) - 1) << nt << " threads";
      }

      EXPECT_THROW(kern::with_team([&] {
                     kern::parallel_for(n, true, [&](int64_t) {});
                     fail("from the stage");
                   }),
                   Error);
      // Item 0 is thread 0's (contiguous shares): its exception waits for the others' items.
      std::atomic<int> done{0};
      EXPECT_THROW(kern::with_team([&] {
                     kern::parallel_for(n, true, [&](int64_t i) {
                       if (i == 0) fail("from an item");
                       done++;
                     });
                   }),
                   Error);
      EXPECT_GE(done.load(), n - n / nt);
      std::atomic<int> after{0};
      kern::with_team([&] { kern::parallel_for(n, true, [&](int64_t) { after++; }); });
      EXPECT_EQ(after.load(), n);
    }
  kern::detail::set_spin_budget_us(-1);
  omp_set_num_threads(saved);
}

// The GEMVs' results do not depend on the thread count (the split into shares,
// chunks and stolen chunks moves whole blocks of rows between threads only).
TEST(Kernels, GemvBitsDoNotDependOnThreads) {
  const int saved = omp_get_max_threads();
  const int N = 1030, K = 512, T = 5;
  auto w = randv((size_t)N * K, 21), x = randv((size_t)T * K, 22);
  std::vector<uint8_t> q8(quant::row_bytes(quant::Type::Q8_0, K) * N);
  quant::quantize_rows(quant::Type::Q8_0, w.data(), q8.data(), N, K);
  for (const Weight& W : {Weight::f32(w.data(), N, K), Weight::blocks(quant::Type::Q8_0, q8.data(), N, K)})
    for (int rows : {1, T}) {
      std::vector<float> ref;
      for (int nt : {1, 2, 3, 4}) {
        omp_set_num_threads(nt);
        std::vector<float> y((size_t)rows * N, NAN);
        kern::matmul(x.data(), W, y.data(), rows);
        if (ref.empty()) ref = y;
        ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * sizeof(float))) << nt << " threads, rows " << rows;
      }
    }
  omp_set_num_threads(saved);
}

// Batched decode (all sequences' rows in one GEMV per weight) equals each
// sequence decoded alone, for F32, BF16 and Q8_0 weights and batches larger
// than one register block of rows; prompts of 1..20 tokens mix GEMV-sized and
// sgemm-sized prefill segments.
TEST(Kernels, BatchedDecodeEqualsSolo) {
  const ModelConfig c = test::tiny_config(32, 2, 97, 64);
  std::vector<float> flat = init_params(c, 7);
  const auto dir = test::temp_dir("batch-decode");
  std::vector<std::unique_ptr<Model>> models;
  models.push_back(Model::from_flat(c, flat.data()));
  save_checkpoint((dir / "bf16").string(), c, flat.data(), DType::BF16);
  models.push_back(Model::load((dir / "bf16").string()));
  save_checkpoint((dir / "f32").string(), c, flat.data(), DType::F32);
  QuantizeOptions qo;
  qo.type = "q8_0";
  quantize_model((dir / "f32").string(), (dir / "q8.gguf").string(), qo);
  models.push_back(Model::load((dir / "q8.gguf").string()));
  std::mt19937 rng(3);
  for (int nseq : {9, 17}) {
    std::vector<std::vector<int>> prompts(nseq);
    for (int i = 0; i < nseq; ++i) {
      prompts[i].resize(1 + (i * 7) % 20);
      for (int& t : prompts[i]) t = (int)(rng() % c.vocab_size);
    }
    GenerateOptions o;
    o.steps = 4;
    o.max_new_tokens = 5;
    o.stop_tokens.clear();
    for (auto& m : models) {
      auto batch = generate(*m, prompts, o);
      ASSERT_EQ(batch.size(), prompts.size());
      for (int i = 0; i < nseq; ++i) {
        auto one = generate(*m, prompts[i], o);
        EXPECT_EQ(batch[i].tokens, one.tokens) << "batch " << nseq << " seq " << i;
      }
    }
  }
  std::filesystem::remove_all(dir);
}
