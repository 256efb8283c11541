// ggml block formats and their kernels (src/tensor/quant.h). Exactness against
// ggml's own output is checked by the quant fixture (golden.quant); here: the
// kernels against dequantize + a double-precision dot product.
#include <gtest/gtest.h>
#include <hwy/targets.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "huginn/common.h"
#include "huginn/quant.h"
#include "test_util.h"

namespace huginn {
namespace {
using quant::Type;

const Type kAll[] = {Type::F32, Type::F16, Type::BF16, Type::Q4_0, Type::Q4_1, Type::Q5_0,
                     Type::Q8_0, Type::Q4_K, Type::Q5_K, Type::Q6_K};
bool is_block(Type t) { return t != Type::F32 && t != Type::F16 && t != Type::BF16; }

struct Mat {
  Type t;
  int N, K;
  size_t rb;
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // the weights the kernels must use, N x K
};

// Random weights of every flavour the fixture has (normal, an outlier, zeros).
Mat make(Type t, int N, int K, uint32_t seed) {
  Mat m{t, N, K, quant::row_bytes(t, K), {}, {}};
  std::vector<float> w = test::randv((size_t)N * K, seed, 0.05f);
  if (N > 2) {
    w[(size_t)K + 3] = 4.0f;                                     // outlier in row 1
    std::fill(w.begin() + 2 * K, w.begin() + 3 * K, 0.0f);       // row 2 all zero
  }
  m.bytes.resize(m.rb * N);
  m.deq.resize((size_t)N * K);
  for (int n = 0; n < N; ++n) {
    quant::quantize_row(t, w.data() + (size_t)n * K, m.bytes.data() + n * m.rb, K);
    quant::dequantize_row(t, m.bytes.data() + n * m.rb, m.deq.data() + (size_t)n * K, K);
  }
  return m;
}

int k_for(Type t, int mult) { return quant::info(t).block_elems == 256 ? 256 * mult : is_block(t) ? 32 * (2 * mult + 1) : 31 + 32 * mult; }

// Checks y (rows x N) against the dequantized weights: the block types may be
// off by the activation's rounding, at most sum_i |w_i| * amax(x's block)/254;
// every type by float rounding, a few ulps of sum |w_i x_i|.
void expect_close(const Mat& m, const float* x, int rows, const float* y) {
  for (int r = 0; r < rows; ++r)
    for (int n = 0; n < m.N; ++n) {
      const float* w = m.deq.data() + (size_t)n * m.K;
      const float* xr = x + (size_t)r * m.K;
      double ref = 0, mag = 0, qbound = 0;
      for (int i = 0; i < m.K; ++i) ref += (double)w[i] * xr[i], mag += std::fabs((double)w[i] * xr[i]);
      if (is_block(m.t))
        for (int b = 0; b < m.K / 32; ++b) {
          double amax = 0, wsum = 0;
          for (int i = 32 * b; i < 32 * b + 32; ++i) amax = std::max(amax, (double)std::fabs(xr[i])), wsum += std::fabs(w[i]);
          qbound += wsum * amax / 254;
        }
      const double tol = qbound * 1.0001 + 2e-6 * mag + 1e-30;
      ASSERT_LE(std::fabs(y[(size_t)r * m.N + n] - ref), tol)
          << quant::name(m.t) << " N=" << m.N << " K=" << m.K << " row " << r << " out " << n << " ref " << ref;
    }
}

TEST(Quant, TypeTable) {
  EXPECT_EQ(quant::find_type(12)->block_bytes, 144);
  EXPECT_EQ(quant::find_type("Q6_K")->block_bytes, 210);
  EXPECT_EQ(quant::find_type(15), nullptr);  // Q8_K: an activation format, never stored
  EXPECT_EQ(quant::find_type(99), nullptr);
  EXPECT_EQ(quant::row_bytes(Type::Q4_0, 64), 36u);
  EXPECT_EQ(quant::row_bytes(Type::BF16, 7), 14u);
  EXPECT_THROW(quant::row_bytes(Type::Q4_K, 300), Error);
  EXPECT_THROW(quant::row_bytes(Type::Q8_0, 33), Error);
}

// Round trip error per type on normal data, relative to the data's RMS: a
// broken bit layout shows up as an error of order 1.
TEST(Quant, RoundTripError) {
  const std::pair<Type, double> limits[] = {{Type::F32, 0},        {Type::F16, 1e-3},   {Type::BF16, 4e-3},
                                            {Type::Q8_0, 0.01},    {Type::Q5_0, 0.06},  {Type::Q4_0, 0.12},
                                            {Type::Q4_1, 0.11},    {Type::Q6_K, 0.025}, {Type::Q5_K, 0.04},
                                            {Type::Q4_K, 0.08}};
  const int K = 1024;
  const std::vector<float> x = test::randv(K, 7);
  for (auto [t, lim] : limits) {
    std::vector<uint8_t> b(quant::row_bytes(t, K));
    std::vector<float> y(K);
    quant::quantize_row(t, x.data(), b.data(), K);
    quant::dequantize_row(t, b.data(), y.data(), K);
    double e = 0, s = 0;
    for (int i = 0; i < K; ++i) e += (y[i] - x[i]) * (y[i] - x[i]), s += x[i] * x[i];
    EXPECT_LE(std::sqrt(e / s), lim) << quant::name(t);
  }
}

TEST(Quant, GemvMatchesDequantizedProduct) {
  for (Type t : kAll)
    for (int N : {1, 7, 67})
      for (int mult : {1, 2}) {
        const int K = k_for(t, mult);
        Mat m = make(t, N, K, 100 + N + mult);
        for (int rows : {1, 3, 33}) {
          std::vector<float> x = test::randv((size_t)rows * K, 5 + rows);
          if (rows > 1) std::fill(x.begin() + K, x.begin() + 2 * K, 0.0f);  // an all-zero row
          std::vector<float> y((size_t)rows * N, NAN);
          quant::gemv(t, m.bytes.data(), m.rb, N, K, x.data(), rows, y.data());
          expect_close(m, x.data(), rows, y.data());
        }
      }
}

// The multi-row variant computes each row exactly as the one-row call does, in
// passes of at most 64 rows; the result does not depend on the thread count.
TEST(Quant, GemvRowsAndThreadsBitIdentical) {
  for (Type t : kAll) {
    const int N = 131, K = k_for(t, 2), rows = 70;
    Mat m = make(t, N, K, 3);
    std::vector<float> x = test::randv((size_t)rows * K, 9);
    std::vector<float> all((size_t)rows * N), one(N), one_thread((size_t)rows * N);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(4);
    quant::gemv(t, m.bytes.data(), m.rb, N, K, x.data(), rows, all.data());
    for (int r : {0, 1, 64, 69}) {
      quant::gemv(t, m.bytes.data(), m.rb, N, K, x.data() + (size_t)r * K, 1, one.data());
      EXPECT_EQ(std::memcmp(one.data(), all.data() + (size_t)r * N, N * 4), 0) << quant::name(t) << " row " << r;
    }
    std::vector<float> four((size_t)4 * N);  // one tile of four rows (its own path in the kernels)
    quant::gemv(t, m.bytes.data(), m.rb, N, K, x.data(), 4, four.data());
    EXPECT_EQ(std::memcmp(four.data(), all.data(), four.size() * 4), 0) << quant::name(t) << " four rows";
    omp_set_num_threads(1);
    quant::gemv(t, m.bytes.data(), m.rb, N, K, x.data(), rows, one_thread.data());
    omp_set_num_threads(threads);
    EXPECT_EQ(std::memcmp(all.data(), one_thread.data(), all.size() * 4), 0) << quant::name(t);
    expect_close(m, x.data(), rows, all.data());
  }
}

TEST(Quant, DequantizeRowsAndGemm) {
  for (Type t : kAll) {
    const int N = 300, K = k_for(t, 1), M = 5;  // N > one 256-row panel
    Mat m = make(t, N, K, 11);
    std::vector<float> panel((size_t)20 * K);
    quant::dequantize_rows(t, m.bytes.data(), m.rb, 280, 20, K, panel.data());
    EXPECT_EQ(std::memcmp(panel.data(), m.deq.data() + (size_t)280 * K, panel.size() * 4), 0) << quant::name(t);
    std::vector<float> X = test::randv((size_t)M * K, 12), Y((size_t)M * N);
    quant::gemm(t, m.bytes.data(), m.rb, N, K, X.data(), M, Y.data());
    for (int r = 0; r < M; ++r)
      for (int n = 0; n < N; ++n) {
        double ref = 0, mag = 0;
        for (int i = 0; i < K; ++i) {
          const double p = (double)m.deq[(size_t)n * K + i] * X[(size_t)r * K + i];
          ref += p, mag += std::fabs(p);
        }
        ASSERT_NEAR(Y[(size_t)r * N + n], ref, 1e-5 * mag + 1e-30) << quant::name(t) << " " << r << "," << n;
      }
  }
}

// The x86 block kernels (AVX2's 256-bit tiles, AVX-512's two-units-per-vector
// tiles) do the same arithmetic in the same order: a quantized model gives
// the same bits on every x86 machine. Odd block counts (a pair's tail), one
// and four x rows (both tile heights), every block type. (F32/F16/BF16 rows
// are dotted in the target's vector width, so their sums are ordered per target.)
TEST(Quant, X86TargetsGiveTheSameBits) {
  std::vector<int64_t> targets;
  for (int64_t t : hwy::SupportedAndGeneratedTargets())
    if (t == HWY_AVX2 || t == HWY_AVX3 || t == HWY_AVX3_DL) targets.push_back(t);
  if (targets.size() < 2) GTEST_SKIP() << "fewer than two x86 SIMD targets on this machine";
  for (Type t : kAll)
    for (int mult : {1, 2}) {
      if (!is_block(t)) continue;
      const int N = 37, K = k_for(t, mult), rows = 5;
      Mat m = make(t, N, K, 40 + mult);
      std::vector<float> x = test::randv((size_t)rows * K, 41);
      std::vector<std::vector<float>> y;
      for (int64_t target : targets) {
        hwy::SetSupportedTargetsForTest(target);
        y.emplace_back((size_t)rows * N);
        quant::gemv(t, m.bytes.data(), m.rb, N, K, x.data(), rows, y.back().data());
        std::vector<float> one(N);
        quant::gemv(t, m.bytes.data(), m.rb, N, K, x.data() + K, 1, one.data());
        EXPECT_EQ(std::memcmp(one.data(), y.back().data() + N, 4 * N), 0)
            << quant::name(t) << " " << hwy::TargetName(target);
      }
      hwy::SetSupportedTargetsForTest(0);
      for (size_t i = 1; i < y.size(); ++i)
        EXPECT_EQ(std::memcmp(y[0].data(), y[i].data(), 4 * y[0].size()), 0)
            << quant::name(t) << " K=" << K << ": " << hwy::TargetName(targets[0]) << " vs "
            << hwy::TargetName(targets[i]);
    }
}

// A decode row longer than L1 holds beside a weight row goes through tiles of
// 8 weight rows (Q8_0 at Huginn-0125's K = 17920): each output equals the one
// of the row-by-row path (two x rows), tails of the 8 included.
TEST(Quant, LongRowsTiledEqualRowByRow) {
  const int N = 21, K = 17920;
  Mat m = make(Type::Q8_0, N, K, 77);
  std::vector<float> x = test::randv((size_t)2 * K, 78), one(N), two((size_t)2 * N);
  quant::gemv(Type::Q8_0, m.bytes.data(), m.rb, N, K, x.data(), 1, one.data());
  quant::gemv(Type::Q8_0, m.bytes.data(), m.rb, N, K, x.data(), 2, two.data());
  EXPECT_EQ(std::memcmp(one.data(), two.data(), 4 * N), 0);
  expect_close(m, x.data(), 1, one.data());
}

// Every finite f16 block scale (normal, subnormal, zero, both signs) reaches
// the kernel as the dequantizer reads it.
TEST(Quant, GemvEveryHalfScale) {
  Mat m{Type::Q8_0, 0, 32, 34, {}, {}};
  for (uint32_t h = 0; h < 65536; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;  // inf/NaN
    uint8_t b[34] = {(uint8_t)h, (uint8_t)(h >> 8)};
    for (int j = 0; j < 32; ++j) b[2 + j] = (uint8_t)(int8_t)(j * 7 - 100);
    m.bytes.insert(m.bytes.end(), b, b + 34);
    ++m.N;
  }
  m.deq.resize((size_t)m.N * 32);
  for (int n = 0; n < m.N; ++n) quant::dequantize_row(Type::Q8_0, m.bytes.data() + 34 * n, m.deq.data() + 32 * n, 32);
  std::vector<float> x = test::randv(32, 4), y(m.N);
  quant::gemv(Type::Q8_0, m.bytes.data(), 34, m.N, 32, x.data(), 1, y.data());
  expect_close(m, x.data(), 1, y.data());
}

// Every finite F16 weight (rows of 31: vector steps and the scalar tail) gives
// the same product with MXCSR's flush-to-zero and denormals-are-zero bits set
// on every thread, as training sets them process-wide: F16's subnormals are
// normal floats, and the conversion must not pass through a float subnormal.
TEST(Quant, F16WeightsIgnoreFlushToZero) {
#if defined(__x86_64__) || defined(__i386__)
  constexpr int K = 31;
  std::vector<uint16_t> h;
  for (uint32_t v = 0; v < 65536; ++v)
    if ((v & 0x7c00) != 0x7c00) h.push_back((uint16_t)v);
  const int N = (int)(h.size() / K);
  std::vector<float> x = test::randv(K, 9), plain(N), flushed(N);
  quant::gemv(Type::F16, h.data(), 2 * K, N, K, x.data(), 1, plain.data());
  const unsigned saved = _mm_getcsr();
  auto set = [](unsigned csr) {
    _mm_setcsr(csr);
#pragma omp parallel
    _mm_setcsr(csr);
  };
  set(saved | 0x8040);
  quant::gemv(Type::F16, h.data(), 2 * K, N, K, x.data(), 1, flushed.data());
  set(saved);
  int differ = 0;
  for (int n = 0; n < N; ++n) differ += std::memcmp(&plain[n], &flushed[n], 4) != 0;
  EXPECT_EQ(differ, 0) << "of " << N << " rows";
#else
  GTEST_SKIP() << "x86 only (MXCSR)";
#endif
}

// Non-finite activations come out as NaN, as in float; non-finite weights
// cannot be block-quantized (their scale would be inf/NaN) and are refused.
TEST(Quant, NonFinite) {
  for (Type t : kAll) {
    const int K = k_for(t, 1), N = 3;
    Mat m = make(t, N, K, 1);
    std::vector<float> x = test::randv((size_t)2 * K, 2), y((size_t)2 * N);
    x[5] = NAN;
    x[K + 7] = INFINITY;
    quant::gemv(t, m.bytes.data(), m.rb, N, K, x.data(), 2, y.data());
    for (int n = 0; n < N; ++n) {
      if (n == 2) continue;  // the all-zero row: 0 * NaN is NaN in float, also fine either way
      EXPECT_TRUE(std::isnan(y[n])) << quant::name(t);
      EXPECT_FALSE(std::isfinite(y[N + n])) << quant::name(t);
    }
    std::vector<uint8_t> b(quant::row_bytes(t, K));
    std::vector<float> w = test::randv(K, 3);
    w[K - 1] = -INFINITY;
    if (is_block(t)) {
      EXPECT_THROW(quant::quantize_row(t, w.data(), b.data(), K), Error) << quant::name(t);
    }
  }
}

TEST(Quant, QuantizeRowsInParallelEqualsRowByRow) {
  for (Type t : kAll) {
    const int K = k_for(t, 1), N = 37;
    Mat m = make(t, N, K, 21);  // row by row
    std::vector<float> w = test::randv((size_t)N * K, 21, 0.05f);
    w[(size_t)K + 3] = 4.0f;
    std::fill(w.begin() + 2 * K, w.begin() + 3 * K, 0.0f);
    std::vector<uint8_t> b(m.bytes.size());
    quant::quantize_rows(t, w.data(), b.data(), N, K);
    EXPECT_EQ(b, m.bytes) << quant::name(t);
    w[(size_t)5 * K + 1] = NAN;
    if (is_block(t)) {
      EXPECT_THROW(quant::quantize_rows(t, w.data(), b.data(), N, K), Error);
    }
  }
}

TEST(Quant, BadArguments) {
  std::vector<uint8_t> w(1000);
  std::vector<float> x(256), y(4);
  EXPECT_THROW(quant::gemv(Type::Q4_K, w.data(), 144, 4, 200, x.data(), 1, y.data()), Error);  // K not 256-multiple
  EXPECT_THROW(quant::gemv(Type::Q4_0, w.data(), 10, 4, 64, x.data(), 1, y.data()), Error);    // stride < row
}

}  // namespace
}  // namespace huginn
