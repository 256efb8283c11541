// SIMD inner loops, compiled once per instruction set by Highway and chosen at
// run time, so one binary is fast on AVX2 and AVX-512 machines alike.
#include <cstddef>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace huginn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

float DotImpl(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, a + i + N), hn::LoadU(d, b + i + N), s1);
    s2 = hn::MulAdd(hn::LoadU(d, a + i + 2 * N), hn::LoadU(d, b + i + 2 * N), s2);
    s3 = hn::MulAdd(hn::LoadU(d, a + i + 3 * N), hn::LoadU(d, b + i + 3 * N), s3);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
  s0 = hn::Add(hn::Add(s0, s1), hn::Add(s2, s3));
  float r = hn::GetLane(hn::SumOfLanes(d, s0));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

// y[0..3] = rows w0..w3 · x: reads x once for four rows (the GEMV inner loop).
void Dot4Impl(const float* HWY_RESTRICT x, const float* HWY_RESTRICT w0, const float* HWY_RESTRICT w1,
              const float* HWY_RESTRICT w2, const float* HWY_RESTRICT w3, size_t n, float* HWY_RESTRICT y) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto xv = hn::LoadU(d, x + i);
    s0 = hn::MulAdd(hn::LoadU(d, w0 + i), xv, s0);
    s1 = hn::MulAdd(hn::LoadU(d, w1 + i), xv, s1);
    s2 = hn::MulAdd(hn::LoadU(d, w2 + i), xv, s2);
    s3 = hn::MulAdd(hn::LoadU(d, w3 + i), xv, s3);
  }
  float r0 = hn::GetLane(hn::SumOfLanes(d, s0)), r1 = hn::GetLane(hn::SumOfLanes(d, s1));
  float r2 = hn::GetLane(hn::SumOfLanes(d, s2)), r3 = hn::GetLane(hn::SumOfLanes(d, s3));
  for (; i < n; ++i) {
    r0 += w0[i] * x[i];
    r1 += w1[i] * x[i];
    r2 += w2[i] * x[i];
    r3 += w3[i] * x[i];
  }
  y[0] = r0;
  y[1] = r1;
  y[2] = r2;
  y[3] = r3;
}

void AxpyImpl(float a, const float* HWY_RESTRICT x, float* HWY_RESTRICT y, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  const auto av = hn::Set(d, a);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(av, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace HWY_NAMESPACE
}  // namespace huginn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace huginn::kern {
HWY_EXPORT(DotImpl);
HWY_EXPORT(Dot4Impl);
HWY_EXPORT(AxpyImpl);
float dot(const float* a, const float* b, size_t n) { return HWY_DYNAMIC_DISPATCH(DotImpl)(a, b, n); }
void dot4(const float* x, const float* w0, const float* w1, const float* w2, const float* w3, size_t n, float* y) {
  HWY_DYNAMIC_DISPATCH(Dot4Impl)(x, w0, w1, w2, w3, n, y);
}
void axpy(float a, const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(AxpyImpl)(a, x, y, n); }
}  // namespace huginn::kern
#endif
