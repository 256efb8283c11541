// Matrix-vector kernels over ggml block formats (interface: quant.h), compiled
// once per instruction set by Highway and chosen at run time.
//
// Block types: x is quantized to 8 bits per 32-element block (scale amax/127,
// the idea of ggml's Q8 activations; 32-element blocks for the K types too,
// finer than ggml's Q8_K), then each weight row is unpacked once into small
// integers (held as int16 so the products need no widening) + one float scale
// per 16 elements + one float offset per 32, and dotted with every x row:
//   sum_i w_i x_i = sum_blocks dx * (a_lo*sum_lo(q*qx) + a_hi*sum_hi(q*qx) - m*sum(qx))
// with the integer sums exact: the only error is x's rounding (and float
// accumulation). F32/F16/BF16 rows are widened to float with Highway and dotted
// in float (ggml rounds x to F16/BF16 there; we keep it in float).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "huginn/common.h"
#include "huginn/safetensors.h"
#include "huginn/quant.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/quant_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#ifndef HUGINN_QUANT_KERNELS_ONCE
#define HUGINN_QUANT_KERNELS_ONCE
namespace huginn::quant::detail {
// x rows quantized to int8 in 32-element blocks.
struct QX {
  std::vector<int16_t> q;  // rows * K, in -127..127 (int16: multiplied without widening)
  std::vector<float> d;    // rows * K/32 scales
  std::vector<int32_t> s;  // rows * K/32 sums of q (for the weights' offsets)
};
// f16 -> f32 inline, once per block: the magnitude bits placed in a float and
// scaled by 2^112 (exact for normals, subnormals and zero); inf/NaN the slow way.
inline float h2f(const uint8_t* p) {
  const uint16_t h = (uint16_t)(p[0] | p[1] << 8);
  if ((h & 0x7c00) == 0x7c00) return f16_to_f32(h);
  // sign in place, not by a branch: Q4_0/Q5_0 scales have random signs
  const uint32_t bits = (uint32_t)(h & 0x8000) << 16 | (uint32_t)(h & 0x7fff) << 13;
  float f;
  std::memcpy(&f, &bits, 4);
  return f * 0x1p112f;
}
inline int k4_scale(int j, const uint8_t* q) { return j < 4 ? q[j] & 63 : (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); }
inline int k4_min(int j, const uint8_t* q) { return j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}  // namespace huginn::quant::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace huginn::quant {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using detail::QX;

// x (rows x K) into 32-blocks: d = amax/127, q = round(x/d) (ties to even).
// Plain loops: this is O(rows*K) beside the GEMV's O(N*K).
void QuantizeXImpl(const float* HWY_RESTRICT x, int rows, int K, QX* out) {
  const size_t nb = (size_t)rows * (K / 32);
  out->q.resize((size_t)rows * K);
  out->d.resize(nb);
  out->s.resize(nb);
  for (size_t b = 0; b < nb; ++b) {
    const float* xb = x + 32 * b;
    float amax = 0;
    bool finite = true;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i])), finite &= std::isfinite(xb[i]);
    // an inf/NaN in x makes the block's scale NaN, so it reaches y as NaN
    // (as a float product would) instead of as a garbage integer
    const float d = finite ? amax / 127 : NAN, id = d > 0 ? 1.0f / d : 0.0f;
    int16_t* q = out->q.data() + 32 * b;
    int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      q[i] = (int16_t)std::nearbyint(xb[i] * id);
      sum += q[i];
    }
    out->d[b] = d;
    out->s[b] = sum;
  }
}

// One weight row into quants q[K] (int16, so the dot needs no widening),
// scales a[K/16] (per 16 elements) and offsets m[K/32]: w_i = a[i/16]*q_i -
// m[i/32]. Same float scales as the dequantizer, so the unpacked row is exactly
// ggml's weights. One plain loop per type, so each vectorizes on its own.
void UnpackRow(Type t, const uint8_t* HWY_RESTRICT b, int K, int16_t* HWY_RESTRICT q, float* HWY_RESTRICT a,
               float* HWY_RESTRICT m) {
  using detail::h2f;
  const int units = K / 32;
  switch (t) {
    case Type::Q8_0:
      for (int u = 0; u < units; ++u, b += 34, q += 32) {
        a[2 * u] = a[2 * u + 1] = h2f(b);
        m[u] = 0;
        for (int j = 0; j < 32; ++j) q[j] = (int8_t)b[2 + j];
      }
      return;
    case Type::Q4_0:
    case Type::Q4_1:
    case Type::Q5_0: {
      // nibbles split with vector ops; Q5_0's fifth bits: qh's bit j selected
      // per lane by a one-hot mask
      const hn::CappedTag<int16_t, 16> d16;  // 16 lanes (8 on SSE4: two steps)
      const hn::Rebind<uint8_t, decltype(d16)> d8;
      const hn::Rebind<uint16_t, decltype(d16)> du16;
      const int L = (int)hn::Lanes(d16);
      alignas(64) static constexpr uint16_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
      const int bb = (int)info(t).block_bytes, qoff = t == Type::Q4_0 ? 2 : t == Type::Q4_1 ? 4 : 6;
      const auto off = hn::Set(d16, (int16_t)(t == Type::Q4_0 ? 8 : t == Type::Q5_0 ? 16 : 0));
      const auto nib = hn::Set(du16, 0x0F);
      for (int u = 0; u < units; ++u, b += bb, q += 32) {
        a[2 * u] = a[2 * u + 1] = h2f(b);
        m[u] = t == Type::Q4_1 ? -h2f(b + 2) : 0.0f;
        uint32_t qh = 0;
        if (t == Type::Q5_0) std::memcpy(&qh, b + 2, 4);
        for (int j = 0; j < 16; j += L) {
          // widen the bytes first: 16-bit shifts are native, 8-bit ones are not
          const auto v = hn::PromoteTo(du16, hn::LoadU(d8, b + qoff + j));
          auto lo = hn::BitCast(d16, hn::And(v, nib));
          auto hi = hn::BitCast(d16, hn::ShiftRight<4>(v));
          if (t == Type::Q5_0) {
            const auto bits = hn::LoadU(du16, kBit + j), one = hn::Set(du16, 1);
            const auto h0 = hn::Min(hn::And(hn::Set(du16, (uint16_t)qh), bits), one);
            const auto h1 = hn::Min(hn::And(hn::Set(du16, (uint16_t)(qh >> 16)), bits), one);
            lo = hn::Or(lo, hn::BitCast(d16, hn::ShiftLeft<4>(h0)));
            hi = hn::Or(hi, hn::BitCast(d16, hn::ShiftLeft<4>(h1)));
          }
          hn::StoreU(hn::Sub(lo, off), d16, q + j);
          hn::StoreU(hn::Sub(hi, off), d16, q + 16 + j);
        }
      }
      return;
    }
    case Type::Q4_K:
    case Type::Q5_K: {
      const bool five = t == Type::Q5_K;
      for (int sb = 0; sb < K / 256; ++sb, b += five ? 176 : 144) {
        const float d = h2f(b), dmin = h2f(b + 2);
        const uint8_t* sc = b + 4;
        for (int j = 0; j < 8; ++j) {
          const int u = sb * 8 + j;
          a[2 * u] = a[2 * u + 1] = d * (float)detail::k4_scale(j, sc);
          m[u] = dmin * (float)detail::k4_min(j, sc);
        }
        int16_t* dst = q + 256 * sb;
        if (five) {
          const uint8_t* qh = b + 16;
          const uint8_t* qs = b + 48;
          for (int c = 0; c < 4; ++c)
            for (int l = 0; l < 32; ++l) {
              dst[64 * c + l] = (int16_t)((qs[32 * c + l] & 0xF) | ((qh[l] >> (2 * c)) & 1) << 4);
              dst[64 * c + 32 + l] = (int16_t)((qs[32 * c + l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4);
            }
        } else {
          const uint8_t* qs = b + 16;
          for (int c = 0; c < 4; ++c)
            for (int l = 0; l < 32; ++l) {
              dst[64 * c + l] = (int16_t)(qs[32 * c + l] & 0xF);
              dst[64 * c + 32 + l] = (int16_t)(qs[32 * c + l] >> 4);
            }
        }
      }
      return;
    }
    case Type::Q6_K:
      for (int sb = 0; sb < K / 256; ++sb, b += 210) {
        const float d = h2f(b + 208);
        const int8_t* sc = (const int8_t*)(b + 192);
        for (int g = 0; g < 16; ++g) a[16 * sb + g] = d * (float)sc[g];
        for (int u = 0; u < 8; ++u) m[8 * sb + u] = 0;
        for (int h = 0; h < 2; ++h) {
          const uint8_t* ql = b + 64 * h;
          const uint8_t* qh = b + 128 + 32 * h;
          int16_t* dst = q + 256 * sb + 128 * h;
          for (int l = 0; l < 32; ++l) {
            dst[l] = (int16_t)(((ql[l] & 0xF) | (qh[l] & 3) << 4) - 32);
            dst[l + 32] = (int16_t)(((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32);
            dst[l + 64] = (int16_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
            dst[l + 96] = (int16_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
          }
        }
      }
      return;
    default: return;
  }
}

// Unpacked weight row · one quantized x row: int16 products summed pairwise
// into int32 (pmaddwd on x86), converted to float once per scale group and
// accumulated with the group's scale times x's block scale; the offsets' term
// m * dx * sum(qx) is a scalar per 32 elements. G is the scale group: 32 (one
// scale per block, a single vector on AVX-512) or 16 (Q6_K).
template <int G, bool kOffsets>
float DotQ(const int16_t* HWY_RESTRICT q, const float* HWY_RESTRICT a, const float* HWY_RESTRICT m,
           const int16_t* HWY_RESTRICT xq, const float* HWY_RESTRICT xd, const int32_t* HWY_RESTRICT xs, int K) {
  const hn::CappedTag<int16_t, G> d16;
  const hn::Repartition<int32_t, decltype(d16)> d32;
  const hn::Rebind<float, decltype(d32)> df;
  const int L = (int)hn::Lanes(d16);
  auto acc = hn::Zero(df);
  for (int g = 0; g < K / G; ++g) {
    auto s0 = hn::Zero(d32), s1 = hn::Zero(d32);
    for (int i = G * g; i < G * g + G; i += L)
      s0 = hn::ReorderWidenMulAccumulate(d32, hn::LoadU(d16, q + i), hn::LoadU(d16, xq + i), s0, s1);
    const float scale = a[G / 16 * g] * xd[G * g / 32];
    acc = hn::MulAdd(hn::ConvertTo(df, hn::RearrangeToOddPlusEven(s0, s1)), hn::Set(df, scale), acc);
  }
  float offs = 0;
  if (kOffsets)
    for (int u = 0; u < K / 32; ++u) offs += m[u] * xd[u] * (float)xs[u];
  return hn::GetLane(hn::SumOfLanes(df, acc)) - offs;
}

// Float row w (K) · x row.
float DotF(const float* HWY_RESTRICT w, const float* HWY_RESTRICT x, int K) {
  const hn::ScalableTag<float> d;
  const int N = (int)hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  int i = 0;
  for (; i + 2 * N <= K; i += 2 * N) {
    s0 = hn::MulAdd(hn::LoadU(d, w + i), hn::LoadU(d, x + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, w + i + N), hn::LoadU(d, x + i + N), s1);
  }
  for (; i + N <= K; i += N) s0 = hn::MulAdd(hn::LoadU(d, w + i), hn::LoadU(d, x + i), s0);
  float r = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
  for (; i < K; ++i) r += w[i] * x[i];
  return r;
}

// F16/BF16 row to floats (Highway's widening, F16C where the target has it).
void WidenRow(Type t, const uint8_t* HWY_RESTRICT src, int K, float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> d;
  const int N = (int)hn::Lanes(d);
  int i = 0;
  if (t == Type::F16) {
    const hn::Rebind<hwy::float16_t, decltype(d)> dh;
    for (; i + N <= K; i += N) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, (const hwy::float16_t*)src + i)), d, out + i);
    for (; i < K; ++i) out[i] = detail::h2f(src + 2 * i);
  } else {
    const hn::Rebind<hwy::bfloat16_t, decltype(d)> dh;
    for (; i + N <= K; i += N) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, (const hwy::bfloat16_t*)src + i)), d, out + i);
    for (; i < K; ++i) out[i] = bf16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
  }
}

// y[r][n] for n in [n0, n1): each weight row is unpacked once and used for all rows.
void GemvRangeImpl(Type t, const uint8_t* W, size_t rb, int N, int K, const float* x, const QX* qx, int rows,
                   float* y, int n0, int n1) {
  const bool block = t != Type::F32 && t != Type::F16 && t != Type::BF16;
  thread_local std::vector<float> fbuf, abuf, mbuf;
  thread_local std::vector<int16_t> qbuf;
  if (block) {
    qbuf.resize(K), abuf.resize(K / 16), mbuf.resize(K / 32);
  } else if (t != Type::F32) {
    fbuf.resize(K);
  }
  const int nb = K / 32;
  const bool offsets = t == Type::Q4_1 || t == Type::Q4_K || t == Type::Q5_K;
  const auto dot = t == Type::Q6_K ? &DotQ<16, false> : offsets ? &DotQ<32, true> : &DotQ<32, false>;
  for (int n = n0; n < n1; ++n) {
    const uint8_t* row = W + (size_t)n * rb;
    if (block) {
      UnpackRow(t, row, K, qbuf.data(), abuf.data(), mbuf.data());
      for (int r = 0; r < rows; ++r)
        y[(size_t)r * N + n] = dot(qbuf.data(), abuf.data(), mbuf.data(), qx->q.data() + (size_t)r * K,
                                    qx->d.data() + (size_t)r * nb, qx->s.data() + (size_t)r * nb, K);
    } else {
      const float* w = (const float*)row;
      if (t != Type::F32) {
        WidenRow(t, row, K, fbuf.data());
        w = fbuf.data();
      }
      for (int r = 0; r < rows; ++r) y[(size_t)r * N + n] = DotF(w, x + (size_t)r * K, K);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace huginn::quant
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cblas.h>
namespace huginn::quant {
HWY_EXPORT(QuantizeXImpl);
HWY_EXPORT(GemvRangeImpl);

namespace {
void check_args(Type t, size_t rb, int N, int K, int rows) {
  if (N < 0 || K < 0 || rows < 0) fail("quant::gemv: negative size");
  if (rb < row_bytes(t, K)) fail("quant::gemv: row stride ", rb, " < ", row_bytes(t, K), " bytes of a ", name(t), " row of ", K);
}
bool is_block(Type t) { return t != Type::F32 && t != Type::F16 && t != Type::BF16; }
}  // namespace

void gemv(Type t, const void* W, size_t rb, int N, int K, const float* x, int rows, float* y) {
  check_args(t, rb, N, K, rows);
  constexpr int kPass = 64;  // x rows per pass over the weights: their int16 copy (64 x K x 2 bytes) stays in L2
  for (int r0 = 0; r0 < rows; r0 += kPass) {
    const int rr = std::min(kPass, rows - r0);
    // reused: no allocation per call once grown (decode loops). Named through a
    // pointer: inside the parallel loop `qx` would be each worker's own copy.
    thread_local detail::QX qx_buf;
    const detail::QX* qx = &qx_buf;
    if (is_block(t)) HWY_DYNAMIC_DISPATCH(QuantizeXImpl)(x + (size_t)r0 * K, rr, K, &qx_buf);
    // chunks of 16 output rows: enough work per chunk, and y's cache lines split cleanly
    const int chunks = (N + 15) / 16;
#pragma omp parallel for schedule(static) if (N >= 64)
    for (int c = 0; c < chunks; ++c)
      HWY_DYNAMIC_DISPATCH(GemvRangeImpl)(t, (const uint8_t*)W, rb, N, K, x + (size_t)r0 * K, qx, rr,
                                           y + (size_t)r0 * N, 16 * c, std::min(N, 16 * c + 16));
  }
}

void dequantize_rows(Type t, const void* W, size_t rb, int row0, int nrows, int K, float* out) {
  check_args(t, rb, nrows, K, 1);
  if (row0 < 0) fail("quant::dequantize_rows: negative first row");
#pragma omp parallel for schedule(static) if (nrows >= 16)
  for (int r = 0; r < nrows; ++r)
    dequantize_row(t, (const uint8_t*)W + (size_t)(row0 + r) * rb, out + (size_t)r * K, K);
}

void gemm(Type t, const void* W, size_t rb, int N, int K, const float* X, int M, float* Y) {
  check_args(t, rb, N, K, M);
  if (!M || !N) return;
  constexpr int kPanel = 256;  // weight rows per panel: 256 x K floats stay within L2 for K <= 1536
  thread_local std::vector<float> panel;
  panel.resize((size_t)std::min(N, kPanel) * K);
  for (int n0 = 0; n0 < N; n0 += kPanel) {
    const int nn = std::min(kPanel, N - n0);
    dequantize_rows(t, W, rb, n0, nn, K, panel.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nn, K, 1.0f, X, K, panel.data(), K, 0.0f, Y + n0, N);
  }
}

}  // namespace huginn::quant
#endif
