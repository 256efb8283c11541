// Matrix-vector kernels over ggml block formats (interface: quant.h), compiled
// once per instruction set by Highway and chosen at run time.
//
// Block types: x is quantized to int8 per 32-element block (scale amax/127, the
// idea of ggml's Q8 activations), then each weight row is unpacked once into
// int8 quants + one float scale per 16 elements + one float offset per 32, and
// dotted with every x row in integers:
//   sum_i w_i x_i = sum_blocks dx * (a_lo*sum_lo(q*qx) + a_hi*sum_hi(q*qx) - m*sum(qx))
// which is exact for the quantized x: the only error is x's rounding.
// F32/F16/BF16 rows are widened to float with Highway and dotted in float.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "huginn/common.h"
#include "huginn/safetensors.h"
#include "tensor/quant.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/quant_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#ifndef HUGINN_QUANT_KERNELS_ONCE
#define HUGINN_QUANT_KERNELS_ONCE
namespace huginn::quant::detail {
// x rows quantized to int8 in 32-element blocks.
struct QX {
  std::vector<int8_t> q;   // rows * K
  std::vector<float> d;    // rows * K/32 scales
  std::vector<int32_t> s;  // rows * K/32 sums of q (for the weights' offsets)
};
inline float h2f(const uint8_t* p) { return f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
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
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float d = amax / 127, id = d > 0 ? 1.0f / d : 0.0f;
    int8_t* q = out->q.data() + 32 * b;
    int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      q[i] = (int8_t)std::nearbyint(xb[i] * id);
      sum += q[i];
    }
    out->d[b] = d;
    out->s[b] = sum;
  }
}

// One weight row into int8 quants q[K], scales a[K/16] (per 16 elements) and
// offsets m[K/32]: w_i = a[i/16]*q_i - m[i/32]. Same float scales as the
// dequantizer, so the unpacked row is exactly ggml's weights.
void UnpackRow(Type t, const uint8_t* HWY_RESTRICT b, int K, int8_t* HWY_RESTRICT q, float* HWY_RESTRICT a,
               float* HWY_RESTRICT m) {
  using detail::h2f;
  switch (t) {
    case Type::Q4_0:
    case Type::Q4_1:
    case Type::Q5_0:
    case Type::Q8_0: {
      const int bb = (int)info(t).block_bytes;
      for (int u = 0; u < K / 32; ++u, b += bb, q += 32) {
        const float d = h2f(b);
        a[2 * u] = a[2 * u + 1] = d;
        m[u] = t == Type::Q4_1 ? -h2f(b + 2) : 0.0f;
        if (t == Type::Q8_0) {
          std::memcpy(q, b + 2, 32);
          continue;
        }
        const uint8_t* qs = b + (t == Type::Q4_0 ? 2 : t == Type::Q4_1 ? 4 : 6);
        uint32_t qh = 0;
        if (t == Type::Q5_0) std::memcpy(&qh, b + 2, 4);
        const int off = t == Type::Q4_0 ? 8 : t == Type::Q5_0 ? 16 : 0;
        for (int j = 0; j < 16; ++j) {
          q[j] = (int8_t)(((qs[j] & 0xF) | ((qh >> j) & 1) << 4) - off);
          q[j + 16] = (int8_t)(((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - off);
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
        const uint8_t* qh = b + 16;
        const uint8_t* qs = b + (five ? 48 : 16);
        for (int j = 0; j < 8; ++j) {
          const int u = sb * 8 + j;
          a[2 * u] = a[2 * u + 1] = d * (float)detail::k4_scale(j, sc);
          m[u] = dmin * (float)detail::k4_min(j, sc);
          const uint8_t* src = qs + 32 * (j / 2);
          const int shift = (j & 1) * 4;
          int8_t* dst = q + 32 * u;
          for (int l = 0; l < 32; ++l)
            dst[l] = (int8_t)(((src[l] >> shift) & 0xF) | (five ? ((qh[l] >> j) & 1) << 4 : 0));
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
          int8_t* dst = q + 256 * sb + 128 * h;
          for (int l = 0; l < 32; ++l) {
            dst[l] = (int8_t)(((ql[l] & 0xF) | (qh[l] & 3) << 4) - 32);
            dst[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32);
            dst[l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
            dst[l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
          }
        }
      }
      return;
    default: return;
  }
}

// Unpacked weight row · one quantized x row. The fixed 16-element integer
// loops vectorize (widening multiply-add) on every target.
float DotQ(const int8_t* HWY_RESTRICT q, const float* HWY_RESTRICT a, const float* HWY_RESTRICT m,
           const int8_t* HWY_RESTRICT xq, const float* HWY_RESTRICT xd, const int32_t* HWY_RESTRICT xs, int K) {
  float acc = 0;
  for (int u = 0; u < K / 32; ++u) {
    const int8_t* w = q + 32 * u;
    const int8_t* v = xq + 32 * u;
    int32_t s0 = 0, s1 = 0;
    for (int i = 0; i < 16; ++i) s0 += (int32_t)w[i] * v[i];
    for (int i = 16; i < 32; ++i) s1 += (int32_t)w[i] * v[i];
    acc += xd[u] * (a[2 * u] * (float)s0 + a[2 * u + 1] * (float)s1 - m[u] * (float)xs[u]);
  }
  return acc;
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
  thread_local std::vector<int8_t> qbuf;
  if (block) {
    qbuf.resize(K), abuf.resize(K / 16), mbuf.resize(K / 32);
  } else if (t != Type::F32) {
    fbuf.resize(K);
  }
  const int nb = K / 32;
  for (int n = n0; n < n1; ++n) {
    const uint8_t* row = W + (size_t)n * rb;
    if (block) {
      UnpackRow(t, row, K, qbuf.data(), abuf.data(), mbuf.data());
      for (int r = 0; r < rows; ++r)
        y[(size_t)r * N + n] = DotQ(qbuf.data(), abuf.data(), mbuf.data(), qx->q.data() + (size_t)r * K,
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
  constexpr int kPass = 64;  // x rows per pass over the weights: their int8 copy stays in cache
  for (int r0 = 0; r0 < rows; r0 += kPass) {
    const int rr = std::min(kPass, rows - r0);
    detail::QX qx;
    if (is_block(t)) HWY_DYNAMIC_DISPATCH(QuantizeXImpl)(x + (size_t)r0 * K, rr, K, &qx);
    // chunks of 16 output rows: enough work per chunk, and y's cache lines split cleanly
    const int chunks = (N + 15) / 16;
#pragma omp parallel for schedule(static) if (N >= 64)
    for (int c = 0; c < chunks; ++c)
      HWY_DYNAMIC_DISPATCH(GemvRangeImpl)(t, (const uint8_t*)W, rb, N, K, x + (size_t)r0 * K, &qx, rr,
                                           y + (size_t)r0 * N, 16 * c, std::min(N, 16 * c + 16));
  }
}

void dequantize_rows(Type t, const void* W, size_t rb, int row0, int nrows, int K, float* out) {
  check_args(t, rb, nrows, K, 1);
#pragma omp parallel for schedule(static) if (nrows >= 16)
  for (int r = 0; r < nrows; ++r)
    dequantize_row(t, (const uint8_t*)W + (size_t)(row0 + r) * rb, out + (size_t)r * K, K);
}

void gemm(Type t, const void* W, size_t rb, int N, int K, const float* X, int M, float* Y) {
  check_args(t, rb, N, K, M);
  if (!M || !N) return;
  constexpr int kPanel = 256;  // weight rows per panel: 256 x K floats stay within L2 for K <= 1536
  std::vector<float> panel((size_t)std::min(N, kPanel) * K);
  for (int n0 = 0; n0 < N; n0 += kPanel) {
    const int nn = std::min(kPanel, N - n0);
    dequantize_rows(t, W, rb, n0, nn, K, panel.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nn, K, 1.0f, X, K, panel.data(), K, 0.0f, Y + n0, N);
  }
}

}  // namespace huginn::quant
#endif
