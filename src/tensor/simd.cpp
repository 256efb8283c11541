// SIMD inner loops, compiled once per instruction set by Highway and chosen at
// run time, so one binary is fast on AVX2 and AVX-512 machines alike.
//
// The weight-reading loops are templates over the stored weight type (F32,
// BF16, F16): a BF16/F16 element is widened to float32 in the register and
// then goes through exactly the same multiply-adds in the same order, so a
// product over BF16 weights equals, bit for bit, the product over the same
// weights converted to F32 (tested).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/simd.cpp"
#include <hwy/cache_control.h>
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// per target, after highway.h
#include <hwy/contrib/math/math-inl.h>  // NOLINT

#ifndef HUGINN_SIMD_SCALAR_ONCE
#define HUGINN_SIMD_SCALAR_ONCE
#include "huginn/safetensors.h"  // the scalar conversions
namespace huginn::simd_scalar {
// Weight element types, and their exact scalar widening for loop tails.
struct BF16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};
inline float widen(float x) { return x; }
inline float widen(BF16 x) { return bf16_to_f32(x.bits); }
inline float widen(F16 x) { return f16_to_f32(x.bits); }
}  // namespace huginn::simd_scalar
#endif

HWY_BEFORE_NAMESPACE();
namespace huginn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using simd_scalar::BF16;
using simd_scalar::F16;
using simd_scalar::widen;
using DF = hn::ScalableTag<float>;
// Room for one vector of floats on any target (AVX-512: 16; SVE up to 2048 bits: 64).
constexpr size_t kMaxLanes = 64;

HWY_INLINE hn::Vec<DF> LoadW(DF d, const float* HWY_RESTRICT p) { return hn::LoadU(d, p); }
HWY_INLINE hn::Vec<DF> LoadW(DF d, const BF16* HWY_RESTRICT p) {
  const hn::Rebind<uint16_t, DF> d16;
  const hn::RebindToUnsigned<DF> d32;
  const auto v = hn::PromoteTo(d32, hn::LoadU(d16, reinterpret_cast<const uint16_t*>(p)));
  return hn::BitCast(d, hn::ShiftLeft<16>(v));
}
HWY_INLINE hn::Vec<DF> LoadW(DF d, const F16* HWY_RESTRICT p) {
  const hn::Rebind<hwy::float16_t, DF> d16;
  return hn::PromoteTo(d, hn::LoadU(d16, reinterpret_cast<const hwy::float16_t*>(p)));
}

// a · b with b in weight type W; four accumulators, added into one vector
// whose lanes DotT then sums.
template <class W>
hn::Vec<DF> DotVecT(const float* HWY_RESTRICT a, const W* HWY_RESTRICT b, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), LoadW(d, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, a + i + N), LoadW(d, b + i + N), s1);
    s2 = hn::MulAdd(hn::LoadU(d, a + i + 2 * N), LoadW(d, b + i + 2 * N), s2);
    s3 = hn::MulAdd(hn::LoadU(d, a + i + 3 * N), LoadW(d, b + i + 3 * N), s3);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(d, a + i), LoadW(d, b + i), s0);
  if (i < n) {  // the tail as one zero-padded vector: the same operations for every weight type
    alignas(64) float ab[kMaxLanes] = {}, bb[kMaxLanes] = {};
    for (size_t j = 0; i + j < n; ++j) {
      ab[j] = a[i + j];
      bb[j] = widen(b[i + j]);
    }
    s0 = hn::MulAdd(hn::Load(d, ab), hn::Load(d, bb), s0);
  }
  return hn::Add(hn::Add(s0, s1), hn::Add(s2, s3));
}
template <class W>
float DotT(const float* HWY_RESTRICT a, const W* HWY_RESTRICT b, size_t n) {
  const DF d;
  return hn::GetLane(hn::SumOfLanes(d, DotVecT(a, b, n)));
}

// y[0..3] = rows w0..w3 · x: reads x once for four rows (the GEMV inner loop).
template <class W>
void Dot4T(const float* HWY_RESTRICT x, const W* HWY_RESTRICT w0, const W* HWY_RESTRICT w1, const W* HWY_RESTRICT w2,
           const W* HWY_RESTRICT w3, size_t n, float* HWY_RESTRICT y) {
  const DF d;
  const size_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto xv = hn::LoadU(d, x + i);
    s0 = hn::MulAdd(LoadW(d, w0 + i), xv, s0);
    s1 = hn::MulAdd(LoadW(d, w1 + i), xv, s1);
    s2 = hn::MulAdd(LoadW(d, w2 + i), xv, s2);
    s3 = hn::MulAdd(LoadW(d, w3 + i), xv, s3);
  }
  if (i < n) {  // the tail as one zero-padded vector (see DotT)
    alignas(64) float xb[kMaxLanes] = {}, b0[kMaxLanes] = {}, b1[kMaxLanes] = {}, b2[kMaxLanes] = {},
                      b3[kMaxLanes] = {};
    for (size_t j = 0; i + j < n; ++j) {
      xb[j] = x[i + j];
      b0[j] = widen(w0[i + j]);
      b1[j] = widen(w1[i + j]);
      b2[j] = widen(w2[i + j]);
      b3[j] = widen(w3[i + j]);
    }
    const auto xv = hn::Load(d, xb);
    s0 = hn::MulAdd(hn::Load(d, b0), xv, s0);
    s1 = hn::MulAdd(hn::Load(d, b1), xv, s1);
    s2 = hn::MulAdd(hn::Load(d, b2), xv, s2);
    s3 = hn::MulAdd(hn::Load(d, b3), xv, s3);
  }
  y[0] = hn::GetLane(hn::SumOfLanes(d, s0));
  y[1] = hn::GetLane(hn::SumOfLanes(d, s1));
  y[2] = hn::GetLane(hn::SumOfLanes(d, s2));
  y[3] = hn::GetLane(hn::SumOfLanes(d, s3));
}

// Multi-row GEMV: y[t * ldy + j] (+)= w_j · x_t for t < T and the four weight
// rows j < 4. The four weight rows are read from memory once and stay in L1
// while blocks of up to kRows activation rows pass over them; every (x_t, w_j)
// sum is built exactly as Dot4T builds it for x_t alone (one accumulator, the
// same vector steps in the same order, the same zero-padded tail, the same
// final reduction), so each output row is bit-identical to the single-row call.
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr int kRows = 2;  // 16 vector registers: 8 accumulators + 4 weight vectors + x
#else
constexpr int kRows = 4;  // 32 vector registers: 16 accumulators + 4 weight vectors + x
#endif
// Stretches of the weight rows (elements; a multiple of every vector length)
// when several blocks of activation rows pass over them, and the activation
// rows whose partial sums are kept across stretches at once (more go in groups).
constexpr size_t kStretch = 512;
constexpr size_t kStretchRows = 32;
constexpr size_t kFixedLanes = HWY_MAX_BYTES / sizeof(float);

// Into L2 rather than L1 (x86: prefetcht1): with activation rows sharing the
// core, prefetches into L1 could keep too few lines in flight to stream the
// weights at the memory's rate; L2 tracks many more.
// measured (bench_quant -t 2 --types F32, 8192x512, 8 rows): 1000 us per call
// with prefetcht0 one block ahead, 630-680 us with prefetcht1 16 rows ahead.
template <class T>
HWY_INLINE void PrefetchL2(const T* p) {
  __builtin_prefetch(p, /*rw=*/0, /*locality=*/2);
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// The 16 lane sums of v[0..15] in one vector, lane 4k + e = the sum of
// v[4e + k], each added up in exactly the order SumOfLanes adds one vector
// (GCC's _mm512_reduce_add_ps: t_i = l_i + l_i+8, m_i = t_i + t_i+4, then
// (m_0 + m_2) + (m_1 + m_3)), so the bits are the same; the shuffles are
// shared by all 16 (45 instructions instead of 16 x 8).
// measured (bench_quant -t 1 --types F32 --rows 8 --span-mb 1, 5 alternations):
// 1536x512 91-96 -> 101-103 GFLOP/s, 3072x512 82-88 -> 90-94; at K = 1536,
// where the reductions are a third as frequent, no change (85-91).
HWY_INLINE hn::Vec<DF> SumsOf16(const hn::Vec<DF>* v) {
  __m512 w[8], u[4], z[2];
  for (int q = 0; q < 8; ++q) {  // t: [v2q's t_0..7 | v2q+1's t_0..7]
    const __m512 a = v[2 * q].raw, b = v[2 * q + 1].raw;
    w[q] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  }
  for (int p = 0; p < 4; ++p)  // m: block k = v[4p + k]'s m_0..3
    u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * p], w[2 * p + 1], 0x88),
                         _mm512_shuffle_f32x4(w[2 * p], w[2 * p + 1], 0xDD));
  for (int q = 0; q < 2; ++q)  // block k = (m_0 + m_2, m_1 + m_3) of v[8q + k], then of v[8q + 4 + k]
    z[q] =
        _mm512_add_ps(_mm512_shuffle_ps(u[2 * q], u[2 * q + 1], 0x44), _mm512_shuffle_ps(u[2 * q], u[2 * q + 1], 0xEE));
  return hn::Vec<DF>{_mm512_add_ps(_mm512_shuffle_ps(z[0], z[1], 0x88), _mm512_shuffle_ps(z[0], z[1], 0xDD))};
}
#endif

#if !HWY_HAVE_SCALABLE
// kR (1..4) activation rows x_0.. (ldx apart) against four weight rows; wt:
// the weight rows' tails widened and zero-padded (4 x kMaxLanes floats).
// kPf: prefetch four rows (ldw apart) from `next` into L2 meanwhile.
// [i0, i1): the stretch of the rows this call covers (i0 and, short of n, i1
// multiples of the vector length). acc: null when the call covers the whole
// rows; else the kR x 4 partial sums, one vector each, carried from the
// previous stretch (when i0 > 0) and to the next (when i1 < n): each lane
// still adds its products in the same order, so the bits are those of one
// pass over the rows.
template <int kR, bool kPf, class W>
HWY_INLINE void Dot4RowsBlock(const float* HWY_RESTRICT x, size_t ldx, const W* HWY_RESTRICT w0, size_t ldw, size_t n,
                              size_t i0, size_t i1, const float* HWY_RESTRICT wt, float* HWY_RESTRICT acc,
                              float* HWY_RESTRICT y, size_t ldy, bool accumulate, const W* next) {
  const W* HWY_RESTRICT w1 = w0 + ldw;
  const W* HWY_RESTRICT w2 = w0 + 2 * ldw;
  const W* HWY_RESTRICT w3 = w0 + 3 * ldw;
  const DF d;
  const size_t N = hn::Lanes(d);
  const float* HWY_RESTRICT x0 = x;
  const float* HWY_RESTRICT x1 = x + (kR > 1 ? ldx : 0);
  const float* HWY_RESTRICT x2 = x + (kR > 2 ? 2 * ldx : 0);
  const float* HWY_RESTRICT x3 = x + (kR > 3 ? 3 * ldx : 0);
  auto s00 = hn::Zero(d), s01 = hn::Zero(d), s02 = hn::Zero(d), s03 = hn::Zero(d);
  auto s10 = hn::Zero(d), s11 = hn::Zero(d), s12 = hn::Zero(d), s13 = hn::Zero(d);
  auto s20 = hn::Zero(d), s21 = hn::Zero(d), s22 = hn::Zero(d), s23 = hn::Zero(d);
  auto s30 = hn::Zero(d), s31 = hn::Zero(d), s32 = hn::Zero(d), s33 = hn::Zero(d);
#define HUGINN_ACC(r, j) acc + (4 * (r) + (j)) * N
  if (acc && i0 > 0) {
    s00 = hn::Load(d, HUGINN_ACC(0, 0)), s01 = hn::Load(d, HUGINN_ACC(0, 1));
    s02 = hn::Load(d, HUGINN_ACC(0, 2)), s03 = hn::Load(d, HUGINN_ACC(0, 3));
    if constexpr (kR > 1) {
      s10 = hn::Load(d, HUGINN_ACC(1, 0)), s11 = hn::Load(d, HUGINN_ACC(1, 1));
      s12 = hn::Load(d, HUGINN_ACC(1, 2)), s13 = hn::Load(d, HUGINN_ACC(1, 3));
    }
    if constexpr (kR > 2) {
      s20 = hn::Load(d, HUGINN_ACC(2, 0)), s21 = hn::Load(d, HUGINN_ACC(2, 1));
      s22 = hn::Load(d, HUGINN_ACC(2, 2)), s23 = hn::Load(d, HUGINN_ACC(2, 3));
    }
    if constexpr (kR > 3) {
      s30 = hn::Load(d, HUGINN_ACC(3, 0)), s31 = hn::Load(d, HUGINN_ACC(3, 1));
      s32 = hn::Load(d, HUGINN_ACC(3, 2)), s33 = hn::Load(d, HUGINN_ACC(3, 3));
    }
  }
#define HUGINN_ROW4(r, xv)                 \
  do {                                     \
    const auto xr = (xv);                  \
    s##r##0 = hn::MulAdd(v0, xr, s##r##0); \
    s##r##1 = hn::MulAdd(v1, xr, s##r##1); \
    s##r##2 = hn::MulAdd(v2, xr, s##r##2); \
    s##r##3 = hn::MulAdd(v3, xr, s##r##3); \
  } while (0)
  size_t i = i0;
  for (; i + N <= i1; i += N) {
    if constexpr (kPf) {
      PrefetchL2(next + i);
      PrefetchL2(next + ldw + i);
      PrefetchL2(next + 2 * ldw + i);
      PrefetchL2(next + 3 * ldw + i);
    }
    const auto v0 = LoadW(d, w0 + i), v1 = LoadW(d, w1 + i), v2 = LoadW(d, w2 + i), v3 = LoadW(d, w3 + i);
    HUGINN_ROW4(0, hn::LoadU(d, x0 + i));
    if constexpr (kR > 1) HUGINN_ROW4(1, hn::LoadU(d, x1 + i));
    if constexpr (kR > 2) HUGINN_ROW4(2, hn::LoadU(d, x2 + i));
    if constexpr (kR > 3) HUGINN_ROW4(3, hn::LoadU(d, x3 + i));
  }
  if (i1 < n) {  // more stretches follow: keep the partial sums
    hn::Store(s00, d, HUGINN_ACC(0, 0)), hn::Store(s01, d, HUGINN_ACC(0, 1));
    hn::Store(s02, d, HUGINN_ACC(0, 2)), hn::Store(s03, d, HUGINN_ACC(0, 3));
    if constexpr (kR > 1) {
      hn::Store(s10, d, HUGINN_ACC(1, 0)), hn::Store(s11, d, HUGINN_ACC(1, 1));
      hn::Store(s12, d, HUGINN_ACC(1, 2)), hn::Store(s13, d, HUGINN_ACC(1, 3));
    }
    if constexpr (kR > 2) {
      hn::Store(s20, d, HUGINN_ACC(2, 0)), hn::Store(s21, d, HUGINN_ACC(2, 1));
      hn::Store(s22, d, HUGINN_ACC(2, 2)), hn::Store(s23, d, HUGINN_ACC(2, 3));
    }
    if constexpr (kR > 3) {
      hn::Store(s30, d, HUGINN_ACC(3, 0)), hn::Store(s31, d, HUGINN_ACC(3, 1));
      hn::Store(s32, d, HUGINN_ACC(3, 2)), hn::Store(s33, d, HUGINN_ACC(3, 3));
    }
    return;
  }
#undef HUGINN_ACC
  if (i < n) {  // the tail as one zero-padded vector (see Dot4T)
    const auto v0 = hn::Load(d, wt), v1 = hn::Load(d, wt + kMaxLanes), v2 = hn::Load(d, wt + 2 * kMaxLanes),
               v3 = hn::Load(d, wt + 3 * kMaxLanes);
    alignas(64) float xb[4][kMaxLanes] = {};
    for (size_t j = 0; i + j < n; ++j) {
      xb[0][j] = x0[i + j];
      if (kR > 1) xb[1][j] = x1[i + j];
      if (kR > 2) xb[2][j] = x2[i + j];
      if (kR > 3) xb[3][j] = x3[i + j];
    }
    HUGINN_ROW4(0, hn::Load(d, xb[0]));
    if constexpr (kR > 1) HUGINN_ROW4(1, hn::Load(d, xb[1]));
    if constexpr (kR > 2) HUGINN_ROW4(2, hn::Load(d, xb[2]));
    if constexpr (kR > 3) HUGINN_ROW4(3, hn::Load(d, xb[3]));
  }
#undef HUGINN_ROW4
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if constexpr (kR > 1) {  // all sums of the block at once, each as SumOfLanes builds it (see SumsOf16)
    const auto z = hn::Zero(d);
    const hn::Vec<DF> v[16] = {
        s00, s10, kR > 2 ? s20 : z, kR > 3 ? s30 : z, s01, s11, kR > 2 ? s21 : z, kR > 3 ? s31 : z,
        s02, s12, kR > 2 ? s22 : z, kR > 3 ? s32 : z, s03, s13, kR > 2 ? s23 : z, kR > 3 ? s33 : z};
    alignas(64) float sums[16];
    hn::Store(SumsOf16(v), d, sums);
    for (int r = 0; r < kR; ++r)
      for (int j = 0; j < 4; ++j) {
        float& o = y[r * ldy + j];
        o = accumulate ? o + sums[4 * r + j] : sums[4 * r + j];
      }
    return;
  }
#endif
  auto put = [&](size_t r, size_t j, hn::Vec<DF> s) {
    const float v = hn::GetLane(hn::SumOfLanes(d, s));
    float& o = y[r * ldy + j];
    o = accumulate ? o + v : v;
  };
  put(0, 0, s00), put(0, 1, s01), put(0, 2, s02), put(0, 3, s03);
  if constexpr (kR > 1) put(1, 0, s10), put(1, 1, s11), put(1, 2, s12), put(1, 3, s13);
  if constexpr (kR > 2) put(2, 0, s20), put(2, 1, s21), put(2, 2, s22), put(2, 3, s23);
  if constexpr (kR > 3) put(3, 0, s30), put(3, 1, s31), put(3, 2, s32), put(3, 3, s33);
}
#endif

template <class W>
void Dot4RowsT(const float* HWY_RESTRICT x, size_t ldx, size_t T, const W* HWY_RESTRICT w0, size_t ldw, size_t n,
               float* HWY_RESTRICT y, size_t ldy, bool accumulate, size_t prefetch_rows) {
#if HWY_HAVE_SCALABLE
  (void)prefetch_rows;
  for (size_t t = 0; t < T; ++t) {
    float r[4];
    Dot4T(x + t * ldx, w0, w0 + ldw, w0 + 2 * ldw, w0 + 3 * ldw, n, r);
    for (size_t j = 0; j < 4; ++j) y[t * ldy + j] = accumulate ? y[t * ldy + j] + r[j] : r[j];
  }
#else
  const DF d;
  const size_t N = hn::Lanes(d);
  // Read only for a tail, but always zeroed (four vector stores, nothing
  // beside the rows' stream): GCC cannot see that the reads need a tail and
  // warned that they might see it uninitialised.
  alignas(64) float wt[4 * kMaxLanes];
  for (size_t r = 0; r < 4; ++r) std::fill_n(wt + r * kMaxLanes, N, 0.f);
  for (size_t i = n / N * N, j = 0; i < n; ++i, ++j)
    for (size_t r = 0; r < 4; ++r) wt[r * kMaxLanes + j] = widen(w0[r * ldw + i]);
  // Every block of activation rows prefetches the rows `prefetch_rows` ahead
  // (a block after the first re-requests lines already in flight, which is
  // cheap, and keeps memory streaming while the weights are in L1 and the core
  // computes). Prefetches never fault: past the matrix's end they only fetch
  // unused lines.
  //
  // F32 weights with more activation rows than one block: long rows are taken
  // in stretches of kStretch elements, so that the four rows' stretch stays in
  // L1 while every block of activation rows passes over it, instead of being
  // pushed out by the activations and read again from L2 per block. The blocks
  // keep their partial sums between stretches (acc): the bits do not change.
  // measured (bench_quant -t 2 --types F32 --rows 8, 512x1536): 92 -> 164
  // GFLOP/s with the weights in cache, 139 -> 115 us per call streamed from
  // memory (the one-row call: 112 us); 5280x5280 3.6-3.8 ms against 4.2-4.4;
  // stretches of 256 or 768 were slower than 512. Not for BF16/F16: at 8 rows
  // they already run near the cores' multiply-add rate (half the bytes per
  // weight), and stretches measured 0-8% slower.
  const size_t stretch = std::is_same_v<W, float> && T > (size_t)kRows && n > kStretch ? kStretch : n;
  alignas(64) float acc[kStretchRows * 4 * kFixedLanes];
  size_t t = 0, i0 = 0, i1 = n;
  float* a = nullptr;
  auto block = [&](auto rows, auto pf) {
    Dot4RowsBlock<decltype(rows)::value, decltype(pf)::value>(x + t * ldx, ldx, w0, ldw, n, i0, i1, wt, a, y + t * ldy,
                                                              ldy, accumulate, w0 + prefetch_rows * ldw);
    t += decltype(rows)::value;
    if (a) a += decltype(rows)::value * 4 * N;
  };
  using P = std::true_type;
  using NP = std::false_type;
  using R = std::integral_constant<int, kRows>;
  const bool pf = prefetch_rows > 0;
  for (size_t g = 0; g < T; g += kStretchRows) {  // groups of rows that share one acc
    const size_t end = std::min(T, g + kStretchRows);
    i0 = 0;
    do {  // at least once: K = 0 still writes its zero sums
      i1 = n - i0 > stretch ? i0 + stretch : n;
      t = g;
      a = stretch < n ? acc : nullptr;
      while (t + kRows <= end) pf ? block(R(), P()) : block(R(), NP());
      const size_t rest = end - t;
      if (rest == 3) pf ? block(std::integral_constant<int, 3>(), P()) : block(std::integral_constant<int, 3>(), NP());
      if (rest == 2) pf ? block(std::integral_constant<int, 2>(), P()) : block(std::integral_constant<int, 2>(), NP());
      if (rest == 1) pf ? block(std::integral_constant<int, 1>(), P()) : block(std::integral_constant<int, 1>(), NP());
      i0 = i1;
    } while (i0 < n);
  }
#endif
}

// y[i] += a * w[i] (w in weight type W).
template <class W>
void AxpyT(float a, const W* HWY_RESTRICT x, float* HWY_RESTRICT y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto av = hn::Set(d, a);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(av, LoadW(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  if (i < n) {  // the tail as one zero-padded vector (see DotT)
    alignas(64) float xb[kMaxLanes] = {}, yb[kMaxLanes] = {};
    const size_t m = n - i;
    for (size_t j = 0; j < m; ++j) {
      xb[j] = widen(x[i + j]);
      yb[j] = y[i + j];
    }
    hn::Store(hn::MulAdd(av, hn::Load(d, xb), hn::Load(d, yb)), d, yb);
    for (size_t j = 0; j < m; ++j) y[i + j] = yb[j];
  }
}

// out[i] = w[i] * scale (widening copy, e.g. an embedding row).
template <class W>
void WidenScaleT(const W* HWY_RESTRICT w, float scale, float* HWY_RESTRICT out, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const auto sv = hn::Set(d, scale);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(LoadW(d, w + i), sv), d, out + i);
  for (; i < n; ++i) out[i] = widen(w[i]) * scale;
}

float DotF32(const float* a, const void* b, size_t n) { return DotT(a, static_cast<const float*>(b), n); }
float DotBF16(const float* a, const void* b, size_t n) { return DotT(a, static_cast<const BF16*>(b), n); }
float DotF16(const float* a, const void* b, size_t n) { return DotT(a, static_cast<const F16*>(b), n); }
void Dot4F32(const float* x, const void* w0, const void* w1, const void* w2, const void* w3, size_t n, float* y) {
  using P = const float*;
  Dot4T(x, P(w0), P(w1), P(w2), P(w3), n, y);
}
void Dot4BF16(const float* x, const void* w0, const void* w1, const void* w2, const void* w3, size_t n, float* y) {
  using P = const BF16*;
  Dot4T(x, P(w0), P(w1), P(w2), P(w3), n, y);
}
void Dot4F16(const float* x, const void* w0, const void* w1, const void* w2, const void* w3, size_t n, float* y) {
  using P = const F16*;
  Dot4T(x, P(w0), P(w1), P(w2), P(w3), n, y);
}
void Dot4RowsF32(const float* x, size_t ldx, size_t T, const void* w, size_t ldw, size_t n, float* y, size_t ldy,
                 bool acc, size_t pf) {
  Dot4RowsT(x, ldx, T, static_cast<const float*>(w), ldw, n, y, ldy, acc, pf);
}
void Dot4RowsBF16(const float* x, size_t ldx, size_t T, const void* w, size_t ldw, size_t n, float* y, size_t ldy,
                  bool acc, size_t pf) {
  Dot4RowsT(x, ldx, T, static_cast<const BF16*>(w), ldw, n, y, ldy, acc, pf);
}
void Dot4RowsF16(const float* x, size_t ldx, size_t T, const void* w, size_t ldw, size_t n, float* y, size_t ldy,
                 bool acc, size_t pf) {
  Dot4RowsT(x, ldx, T, static_cast<const F16*>(w), ldw, n, y, ldy, acc, pf);
}
void AxpyF32(float a, const void* x, float* y, size_t n) { AxpyT(a, static_cast<const float*>(x), y, n); }
void AxpyBF16(float a, const void* x, float* y, size_t n) { AxpyT(a, static_cast<const BF16*>(x), y, n); }
void AxpyF16(float a, const void* x, float* y, size_t n) { AxpyT(a, static_cast<const F16*>(x), y, n); }
// exp(x) on the vector (Highway's polynomial, within 4 ulps of libm: tested), NaN
// kept as NaN and large x as +inf, as std::exp gives them.
HWY_INLINE hn::Vec<DF> ExpV(DF d, hn::Vec<DF> x) {
  const auto e = hn::Exp(d, hn::Min(x, hn::Set(d, 100.0f)));  // exp(100) overflows to +inf
  return hn::IfThenElse(hn::IsNaN(x), x, e);
}
// f(vector) over n floats, the tail as one zero-padded vector.
template <class F>
HWY_INLINE void MapRows(const float* a, const float* b, float* out, size_t n,  // may alias
                        F f) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f(d, hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, out + i);
  if (i < n) {
    alignas(64) float ab[kMaxLanes] = {}, bb[kMaxLanes] = {};
    std::copy(a + i, a + n, ab);
    std::copy(b + i, b + n, bb);
    hn::Store(f(d, hn::Load(d, ab), hn::Load(d, bb)), d, ab);
    std::copy(ab, ab + (n - i), out + i);
  }
}
// out = g / (1 + exp(-g)) * u
void SwigluF32(const float* g, const float* u, float* out, size_t n) {
  MapRows(g, u, out, n, [](DF d, hn::Vec<DF> gv, hn::Vec<DF> uv) HWY_ATTR {
    return hn::Mul(hn::Div(gv, hn::Add(hn::Set(d, 1.0f), ExpV(d, hn::Neg(gv)))), uv);
  });
}
// x = exp(x - m)
void ExpShiftF32(float* x, float m, size_t n) {
  MapRows(x, x, x, n, [m](DF d, hn::Vec<DF> xv, hn::Vec<DF>) HWY_ATTR { return ExpV(d, hn::Sub(xv, hn::Set(d, m))); });
}
template <class W>
void DotsT(const float* a, const W* const* rows, size_t off, size_t nrows, size_t n, float scale, float* out) {
  size_t j = 0;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  // 16 rows at a time, their lane sums together (SumsOf16: the same bits as DotT's)
  const DF d;
  for (; j + 16 <= nrows; j += 16) {
    hn::Vec<DF> v[16];
    for (size_t r = 0; r < 16; ++r) v[4 * (r % 4) + r / 4] = DotVecT(a, rows[j + r] + off, n);  // lane r = row r
    hn::StoreU(hn::Mul(SumsOf16(v), hn::Set(d, scale)), d, out + j);
  }
#endif
  for (; j < nrows; ++j) out[j] = DotT(a, rows[j] + off, n) * scale;
}
// y stays in registers, four vectors at a time, while every row is added (per
// element the same FMAs in the same order as AxpyT row after row, without a
// store and reload of y per row).
template <class W>
void AxpysT(const float* a, const W* const* rows, size_t off, size_t nrows, float* y, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    auto y0 = hn::LoadU(d, y + i), y1 = hn::LoadU(d, y + i + N), y2 = hn::LoadU(d, y + i + 2 * N),
         y3 = hn::LoadU(d, y + i + 3 * N);
    for (size_t j = 0; j < nrows; ++j) {
      const auto av = hn::Set(d, a[j]);
      const W* x = rows[j] + off + i;
      y0 = hn::MulAdd(av, LoadW(d, x), y0);
      y1 = hn::MulAdd(av, LoadW(d, x + N), y1);
      y2 = hn::MulAdd(av, LoadW(d, x + 2 * N), y2);
      y3 = hn::MulAdd(av, LoadW(d, x + 3 * N), y3);
    }
    hn::StoreU(y0, d, y + i), hn::StoreU(y1, d, y + i + N), hn::StoreU(y2, d, y + i + 2 * N);
    hn::StoreU(y3, d, y + i + 3 * N);
  }
  for (; i + N <= n; i += N) {
    auto y0 = hn::LoadU(d, y + i);
    for (size_t j = 0; j < nrows; ++j) y0 = hn::MulAdd(hn::Set(d, a[j]), LoadW(d, rows[j] + off + i), y0);
    hn::StoreU(y0, d, y + i);
  }
  if (i < n)  // the tail, AxpyT's zero-padded vector per row
    for (size_t j = 0; j < nrows; ++j) AxpyT(a[j], rows[j] + off + i, y + i, n - i);
}

// y[q] += a[q][j] * rows[j] for j < nrows[q], q < 4, each y[q] with exactly
// AxpysT's operations in its order (rows one after another), each row's
// vectors loaded once for every query that takes it.
template <class W>
void Axpys4T(const float* const* a, const W* const* rows, size_t off, const size_t* nrows, float* const* y, size_t n) {
#if HWY_HAVE_SCALABLE
  for (int q = 0; q < 4; ++q) AxpysT(a[q], rows, off, nrows[q], y[q], n);
#else
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t common = std::min(std::min(nrows[0], nrows[1]), std::min(nrows[2], nrows[3]));
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    hn::Vec<DF> yv[4][4];
    for (int q = 0; q < 4; ++q)
      for (int c = 0; c < 4; ++c) yv[q][c] = hn::LoadU(d, y[q] + i + c * N);
    for (size_t j = 0; j < common; ++j) {
      const W* x = rows[j] + off + i;
      const auto x0 = LoadW(d, x), x1 = LoadW(d, x + N), x2 = LoadW(d, x + 2 * N), x3 = LoadW(d, x + 3 * N);
      for (int q = 0; q < 4; ++q) {
        const auto av = hn::Set(d, a[q][j]);
        yv[q][0] = hn::MulAdd(av, x0, yv[q][0]);
        yv[q][1] = hn::MulAdd(av, x1, yv[q][1]);
        yv[q][2] = hn::MulAdd(av, x2, yv[q][2]);
        yv[q][3] = hn::MulAdd(av, x3, yv[q][3]);
      }
    }
    for (int q = 0; q < 4; ++q) {
      for (size_t j = common; j < nrows[q]; ++j) {  // the rows only this query takes, still in order
        const auto av = hn::Set(d, a[q][j]);
        const W* x = rows[j] + off + i;
        for (int c = 0; c < 4; ++c) yv[q][c] = hn::MulAdd(av, LoadW(d, x + c * N), yv[q][c]);
      }
      for (int c = 0; c < 4; ++c) hn::StoreU(yv[q][c], d, y[q] + i + c * N);
    }
  }
  for (; i + N <= n; i += N) {
    hn::Vec<DF> yv[4];
    for (int q = 0; q < 4; ++q) yv[q] = hn::LoadU(d, y[q] + i);
    for (size_t j = 0; j < common; ++j) {
      const auto x0 = LoadW(d, rows[j] + off + i);
      for (int q = 0; q < 4; ++q) yv[q] = hn::MulAdd(hn::Set(d, a[q][j]), x0, yv[q]);
    }
    for (int q = 0; q < 4; ++q) {
      for (size_t j = common; j < nrows[q]; ++j)
        yv[q] = hn::MulAdd(hn::Set(d, a[q][j]), LoadW(d, rows[j] + off + i), yv[q]);
      hn::StoreU(yv[q], d, y[q] + i);
    }
  }
  if (i < n)  // AxpysT's tail, per query
    for (int q = 0; q < 4; ++q)
      for (size_t j = 0; j < nrows[q]; ++j) AxpyT(a[q][j], rows[j] + off + i, y[q] + i, n - i);
#endif
}
void Axpys4F32(const float* const* a, const float* const* rows, size_t off, const size_t* nrows, float* const* y,
               size_t n) {
  Axpys4T(a, rows, off, nrows, y, n);
}
void Axpys4F16(const float* const* a, const uint16_t* const* rows, size_t off, const size_t* nrows, float* const* y,
               size_t n) {
  Axpys4T(a, reinterpret_cast<const F16* const*>(rows), off, nrows, y, n);
}
void DotsF32(const float* a, const float* const* rows, size_t off, size_t nrows, size_t n, float scale, float* out) {
  DotsT(a, rows, off, nrows, n, scale, out);
}
void AxpysF32(const float* a, const float* const* rows, size_t off, size_t nrows, float* y, size_t n) {
  AxpysT(a, rows, off, nrows, y, n);
}
void DotsF16(const float* a, const uint16_t* const* rows, size_t off, size_t nrows, size_t n, float scale, float* out) {
  DotsT(a, reinterpret_cast<const F16* const*>(rows), off, nrows, n, scale, out);
}
void AxpysF16(const float* a, const uint16_t* const* rows, size_t off, size_t nrows, float* y, size_t n) {
  AxpysT(a, reinterpret_cast<const F16* const*>(rows), off, nrows, y, n);
}
// out = x rounded to f16 (the tail as one zero-padded vector: one rounding for every element)
void ToF16(const float* HWY_RESTRICT x, uint16_t* HWY_RESTRICT out, size_t n) {
  const DF d;
  const hn::Rebind<hwy::float16_t, DF> d16;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::DemoteTo(d16, hn::LoadU(d, x + i)), d16, reinterpret_cast<hwy::float16_t*>(out + i));
  if (i < n) {
    alignas(64) float xb[kMaxLanes] = {};
    alignas(64) hwy::float16_t ob[kMaxLanes];
    std::copy(x + i, x + n, xb);
    hn::Store(hn::DemoteTo(d16, hn::Load(d, xb)), d16, ob);
    std::copy_n(reinterpret_cast<const uint16_t*>(ob), n - i, out + i);
  }
}
void WidenF32(const void* w, float s, float* o, size_t n) { WidenScaleT(static_cast<const float*>(w), s, o, n); }
void WidenBF16(const void* w, float s, float* o, size_t n) { WidenScaleT(static_cast<const BF16*>(w), s, o, n); }
void WidenF16(const void* w, float s, float* o, size_t n) { WidenScaleT(static_cast<const F16*>(w), s, o, n); }

}  // namespace HWY_NAMESPACE
}  // namespace huginn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "tensor/simd.h"
// The chosen target's function. The target is chosen once, before the first
// pointer is taken: a pointer taken earlier would be Highway's target-choosing
// stub, which is correct but runs CPUID on every call (a trap to the
// hypervisor in a VM: microseconds per call, measured as 80% of a GEMV's time).
namespace huginn::kern {
namespace {
bool choose_target() {
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  return true;
}
}  // namespace
}  // namespace huginn::kern
#define HUGINN_SIMD_PTR(f)                                    \
  ([] {                                                       \
    static const bool chosen = huginn::kern::choose_target(); \
    (void)chosen;                                             \
    return &HWY_DYNAMIC_DISPATCH(f);                          \
  }())
namespace huginn::kern {
HWY_EXPORT(DotF32);
HWY_EXPORT(DotBF16);
HWY_EXPORT(DotF16);
HWY_EXPORT(Dot4F32);
HWY_EXPORT(Dot4BF16);
HWY_EXPORT(Dot4F16);
HWY_EXPORT(Dot4RowsF32);
HWY_EXPORT(Dot4RowsBF16);
HWY_EXPORT(Dot4RowsF16);
HWY_EXPORT(AxpyF32);
HWY_EXPORT(AxpyBF16);
HWY_EXPORT(AxpyF16);
HWY_EXPORT(SwigluF32);
HWY_EXPORT(ExpShiftF32);
HWY_EXPORT(DotsF32);
HWY_EXPORT(AxpysF32);
HWY_EXPORT(DotsF16);
HWY_EXPORT(AxpysF16);
HWY_EXPORT(Axpys4F32);
HWY_EXPORT(Axpys4F16);
HWY_EXPORT(ToF16);
HWY_EXPORT(WidenF32);
HWY_EXPORT(WidenBF16);
HWY_EXPORT(WidenF16);

float dot(const float* a, const float* b, size_t n) { return HWY_DYNAMIC_DISPATCH(DotF32)(a, b, n); }
void axpy(float a, const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(AxpyF32)(a, x, y, n); }
void swiglu_row(const float* g, const float* u, float* out, size_t n) { HWY_DYNAMIC_DISPATCH(SwigluF32)(g, u, out, n); }
void exp_shift(float* x, float m, size_t n) { HWY_DYNAMIC_DISPATCH(ExpShiftF32)(x, m, n); }
void dots(const float* a, const float* const* rows, size_t off, size_t nrows, size_t n, float scale, float* out) {
  HWY_DYNAMIC_DISPATCH(DotsF32)(a, rows, off, nrows, n, scale, out);
}
void axpys(const float* a, const float* const* rows, size_t off, size_t nrows, float* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(AxpysF32)(a, rows, off, nrows, y, n);
}
void dots(const float* a, const uint16_t* const* rows, size_t off, size_t nrows, size_t n, float scale, float* out) {
  HWY_DYNAMIC_DISPATCH(DotsF16)(a, rows, off, nrows, n, scale, out);
}
void axpys(const float* a, const uint16_t* const* rows, size_t off, size_t nrows, float* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(AxpysF16)(a, rows, off, nrows, y, n);
}
void to_f16(const float* x, uint16_t* out, size_t n) { HWY_DYNAMIC_DISPATCH(ToF16)(x, out, n); }
void axpys4(const float* const* a, const float* const* rows, size_t off, const size_t* nrows, float* const* y,
            size_t n) {
  HWY_DYNAMIC_DISPATCH(Axpys4F32)(a, rows, off, nrows, y, n);
}
void axpys4(const float* const* a, const uint16_t* const* rows, size_t off, const size_t* nrows, float* const* y,
            size_t n) {
  HWY_DYNAMIC_DISPATCH(Axpys4F16)(a, rows, off, nrows, y, n);
}

namespace simd {
DotFn dot_fn(DType t) {
  switch (t) {
    case DType::BF16:
      return HUGINN_SIMD_PTR(DotBF16);
    case DType::F16:
      return HUGINN_SIMD_PTR(DotF16);
    default:
      return HUGINN_SIMD_PTR(DotF32);
  }
}
Dot4Fn dot4_fn(DType t) {
  switch (t) {
    case DType::BF16:
      return HUGINN_SIMD_PTR(Dot4BF16);
    case DType::F16:
      return HUGINN_SIMD_PTR(Dot4F16);
    default:
      return HUGINN_SIMD_PTR(Dot4F32);
  }
}
Dot4RowsFn dot4_rows_fn(DType t) {
  switch (t) {
    case DType::BF16:
      return HUGINN_SIMD_PTR(Dot4RowsBF16);
    case DType::F16:
      return HUGINN_SIMD_PTR(Dot4RowsF16);
    default:
      return HUGINN_SIMD_PTR(Dot4RowsF32);
  }
}
AxpyFn axpy_fn(DType t) {
  switch (t) {
    case DType::BF16:
      return HUGINN_SIMD_PTR(AxpyBF16);
    case DType::F16:
      return HUGINN_SIMD_PTR(AxpyF16);
    default:
      return HUGINN_SIMD_PTR(AxpyF32);
  }
}
WidenFn widen_fn(DType t) {
  switch (t) {
    case DType::BF16:
      return HUGINN_SIMD_PTR(WidenBF16);
    case DType::F16:
      return HUGINN_SIMD_PTR(WidenF16);
    default:
      return HUGINN_SIMD_PTR(WidenF32);
  }
}
}  // namespace simd
}  // namespace huginn::kern
#endif
