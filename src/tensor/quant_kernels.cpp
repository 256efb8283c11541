// Matrix-vector kernels over ggml block formats (interface: quant.h), compiled
// once per instruction set by Highway and chosen at run time.
//
// Block types: x is quantized to int8 per 32-element block (scale amax/127, the
// idea of ggml's Q8 activations; 32-element blocks for the K types too, finer
// than ggml's Q8_K). Each weight block is unpacked in registers to 32 bytes
// (unsigned quants 0..63 for the 4/5/6-bit types, signed for Q8_0) and dotted
// with x's int8 block by a widening multiply-add (VNNI vpdpbusd where the CPU
// has it, else pmaddubsw + pmaddwd), giving 8 exact int32 partial sums:
//   sum_i w_i x_i = sum_blocks dx * (A * (sum(q*qx) - off*sum(qx)) + mm * sum(qx))
// The constant offset (8 for Q4_0, 16 for Q5_0, 32 for Q6_K per 16 elements)
// enters the integer sum exactly (x's side precomputes -off*sum(qx) per block);
// the float minimum of Q4_1/Q4_K/Q5_K (mm) is a scalar per block. The only
// error is x's rounding (and float accumulation). A weight row's blocks are
// unpacked once per tile of up to 4 x rows; every (weight row, x row) pair runs
// the same sequence of operations whatever the tile, so a row's result does not
// depend on the batch or the thread count.
// F32/F16/BF16 rows are widened to float with Highway and dotted in float (ggml
// rounds x to F16/BF16 there; we keep it in float).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "huginn/common.h"
#include "huginn/quant.h"
#include "huginn/safetensors.h"
#include "tensor/balanced_for.h"
#include "tensor/team.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/quant_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#ifndef HUGINN_QUANT_KERNELS_ONCE
#define HUGINN_QUANT_KERNELS_ONCE
namespace huginn::quant::detail {
// x rows quantized to int8 in 32-element blocks, plus what the weight type's
// offsets need from each block.
struct QX {
  std::vector<int8_t> q;    // rows * K, in -127..127
  std::vector<float> d;     // rows * K/32 scales
  std::vector<int32_t> xo;  // rows * K/32 * 8: integer offset lanes (-off * sums of q), zero elsewhere
  std::vector<float> xm;    // rows * K/32: d * sum(q), for the weights' float minimums
};
// f16 -> f32 of a stored half (f16_to_f32: integer operations only, so exact
// whatever MXCSR's flush-to-zero/denormals-are-zero bits, which training sets
// process-wide).
inline float h2f(const uint8_t* p) { return f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
inline int k4_scale(int j, const uint8_t* q) { return j < 4 ? q[j] & 63 : (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); }
inline int k4_min(int j, const uint8_t* q) { return j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
// The integer offset per element of a type (its quants are stored unsigned).
inline int quant_offset(Type t) { return t == Type::Q4_0 ? 8 : t == Type::Q5_0 ? 16 : t == Type::Q6_K ? 32 : 0; }
inline bool has_mins(Type t) { return t == Type::Q4_1 || t == Type::Q4_K || t == Type::Q5_K; }
// The L1 data cache of this CPU (sysconf; 32 KB where it does not say).
inline size_t l1d_bytes() {
  static const size_t bytes = [] {
    const long v = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    return v >= 4096 ? (size_t)v : (size_t)32768;
  }();
  return bytes;
}
}  // namespace huginn::quant::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace huginn::quant {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using detail::QX;

// On x86 the 32-element block types' kernel (PairTile) reads x's blocks in
// pairs, their halves interleaved (see QuantizeXImpl); elsewhere x is in order.
constexpr bool kPairedX = HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL;

// x (rows x K) into 32-blocks: d = amax/127, q = round(x/d) (ties to even).
// Vectors of up to 8 floats; the same float operations as the scalar
// definition, so the same bytes on every target.
void QuantizeXImpl(Type t, const float* HWY_RESTRICT x, int rows, int K, QX* out) {
  const size_t nb = (size_t)rows * (K / 32);
  const int off = detail::quant_offset(t);
  out->q.resize((size_t)rows * K);
  out->d.resize(nb);
  out->xo.assign(off ? 8 * nb : 0, 0);
  out->xm.resize(detail::has_mins(t) ? nb : 0);
  const hn::CappedTag<float, 8> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> d8;
  const int L = (int)hn::Lanes(df);
  for (size_t b = 0; b < nb; ++b) {
    const float* xb = x + 32 * b;
    auto vmax = hn::Zero(df), nonfinite = hn::Zero(df);
    for (int i = 0; i < 32; i += L) {
      const auto v = hn::LoadU(df, xb + i);
      vmax = hn::Max(vmax, hn::Abs(v));
      nonfinite = hn::Add(nonfinite, hn::Mul(v, hn::Zero(df)));  // NaN once an element is inf/NaN
    }
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    // an inf/NaN in x makes the block's scale NaN, so it reaches y as NaN
    // (as a float product would) instead of as a garbage integer
    const bool finite = !std::isnan(hn::GetLane(hn::SumOfLanes(df, nonfinite)));
    const float d = finite ? amax / 127 : NAN, id = d > 0 ? 1.0f / d : 0.0f;
    int8_t* q = out->q.data() + 32 * b;
    auto s0 = hn::Zero(di), s1 = hn::Zero(di);
    for (int i = 0; i < 32; i += L) {
      const auto qi = hn::NearestInt(hn::Mul(hn::LoadU(df, xb + i), hn::Set(df, id)));
      hn::StoreU(hn::DemoteTo(d8, qi), d8, q + i);
      if (i < 16)
        s0 = hn::Add(s0, qi);
      else
        s1 = hn::Add(s1, qi);
    }
    // (a non-finite block's integers are meaningless: NaN * 0 converts to INT_MIN; its sums are kept at 0 so the
    // offset products below cannot overflow, and the NaN scale carries the block)
    const int32_t s[2] = {finite ? hn::GetLane(hn::SumOfLanes(di, s0)) : 0,
                          finite ? hn::GetLane(hn::SumOfLanes(di, s1)) : 0};
    out->d[b] = d;
    // lane 0 covers elements 0..3, lane 4 elements 16..19 of the 8 partial sums
    if (t == Type::Q6_K) {
      out->xo[8 * b] = -off * s[0];
      out->xo[8 * b + 4] = -off * s[1];
    } else if (off) {
      out->xo[8 * b] = -off * (s[0] + s[1]);
    }
    if (!out->xm.empty()) out->xm[b] = d * (float)(s[0] + s[1]);
    if (kPairedX && (t == Type::Q4_0 || t == Type::Q4_1 || t == Type::Q5_0) && b % (size_t)(K / 32) % 2 == 1) {
      // the pair (b-1, b) as PairTile reads it: bytes [b-1: 0..15, b: 0..15, b-1: 16..31, b: 16..31],
      // block b's offset in lane 4 of the pair's first 8
      int8_t tmp[16];
      std::memcpy(tmp, q - 16, 16);
      std::memcpy(q - 16, q, 16);
      std::memcpy(q, tmp, 16);
      if (off) out->xo[8 * (b - 1) + 4] = out->xo[8 * b], out->xo[8 * b] = 0;
    }
  }
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

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define HUGINN_QK_X86 1
// ---- x86: 256-bit integer dot products --------------------------------------
// 8 int32 partial sums (lane k: bytes 4k..4k+3) of u8 q times s8 x, added to acc.
template <bool kVnni>
HWY_INLINE __m256i DotU8S8(__m256i acc, __m256i q, __m256i x) {
  if constexpr (kVnni) {
    // AVX512-VNNI (EVEX, 256-bit): the target attribute of this code lacks it,
    // so the instruction is spelled out; used only when the CPU has it.
    asm("%{evex%} vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(q), "v"(x));
    return acc;
  } else {
    // |q*x pair sums| <= 2*128*127 < 2^15: pmaddubsw never saturates here
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), _mm256_set1_epi16(1)));
  }
}
HWY_INLINE float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// f16 -> f32 with F16C (exact for every value). vmovd, not vpinsrw: no merge
// into a previous register, so no dependency chain from block to block.
HWY_INLINE float F16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)h)));
}
HWY_INLINE __m256i Load16Nibbles(const uint8_t* p) {  // 16 bytes: low nibbles to bytes 0..15, high to 16..31
  const __m128i v = _mm_loadu_si128((const __m128i*)p);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}
// 32 bits to bytes: byte j = 0x10 where bit j of h is set.
template <bool kAvx512>
HWY_INLINE __m256i BitsTo16(uint32_t h) {
  if constexpr (kAvx512) {
    return _mm256_maskz_mov_epi8((__mmask32)h, _mm256_set1_epi8(0x10));
  } else {
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);
    const __m256i bit = _mm256_set1_epi64x((int64_t)0x8040201008040201ULL);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit), _mm256_set1_epi8(0x10));
  }
}

// One weight type's blocks: per super-block (the block itself for the 32-element
// types) the float scales A (one __m256 per 32 elements: lanes 0-3 scale
// elements 0..15, lanes 4-7 16..31) and minimums mm, then per 32-element unit
// its 32 quants in a register.
template <Type T>
struct Blocks {
  static constexpr bool kSuper = T == Type::Q4_K || T == Type::Q5_K || T == Type::Q6_K;
  static constexpr int kUnits = kSuper ? 8 : 1;  // 32-element units per (super-)block
  static constexpr int kBytes = T == Type::Q8_0   ? 34
                                : T == Type::Q4_0 ? 18
                                : T == Type::Q4_1 ? 20
                                : T == Type::Q5_0 ? 22
                                : T == Type::Q4_K ? 144
                                : T == Type::Q5_K ? 176
                                                  : 210;
  static constexpr bool kSigned = T == Type::Q8_0;
  static constexpr bool kOffsets = T == Type::Q4_0 || T == Type::Q5_0 || T == Type::Q6_K;
  static constexpr bool kMins = T == Type::Q4_1 || T == Type::Q4_K || T == Type::Q5_K;
  HWY_INLINE static void Scales(const uint8_t* b, __m256* A, float* mm) {
    if constexpr (T == Type::Q8_0 || T == Type::Q4_0 || T == Type::Q5_0) {
      A[0] = _mm256_set1_ps(F16(b));
    } else if constexpr (T == Type::Q4_1) {
      A[0] = _mm256_set1_ps(F16(b));
      mm[0] = F16(b + 2);
    } else if constexpr (T == Type::Q4_K || T == Type::Q5_K) {
      const float d = F16(b), dmin = F16(b + 2);
      for (int j = 0; j < 8; ++j) {
        A[j] = _mm256_set1_ps(d * (float)detail::k4_scale(j, b + 4));
        mm[j] = -(dmin * (float)detail::k4_min(j, b + 4));
      }
    } else {  // Q6_K: 16 scales of 16 elements
      const float d = F16(b + 208);
      const int8_t* sc = (const int8_t*)(b + 192);
      for (int j = 0; j < 8; ++j)
        A[j] = _mm256_set_m128(_mm_set1_ps(d * (float)sc[2 * j + 1]), _mm_set1_ps(d * (float)sc[2 * j]));
    }
  }
  template <bool kAvx512>
  HWY_INLINE static __m256i Quants(const uint8_t* b, int u) {
    if constexpr (T == Type::Q8_0) {
      return _mm256_loadu_si256((const __m256i*)(b + 2));
    } else if constexpr (T == Type::Q4_0) {
      return Load16Nibbles(b + 2);
    } else if constexpr (T == Type::Q4_1) {
      return Load16Nibbles(b + 4);
    } else if constexpr (T == Type::Q5_0) {
      uint32_t qh;
      std::memcpy(&qh, b + 2, 4);
      return _mm256_or_si256(Load16Nibbles(b + 6), BitsTo16<kAvx512>(qh));
    } else if constexpr (T == Type::Q4_K || T == Type::Q5_K) {
      // unit u: bytes qs[32*(u/2) ..] low nibbles (u even) or high nibbles (u odd)
      const uint8_t* qs = b + (T == Type::Q5_K ? 48 : 16) + 32 * (u >> 1);
      __m256i v = _mm256_loadu_si256((const __m256i*)qs);
      if (u & 1) v = _mm256_srli_epi16(v, 4);
      v = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
      if constexpr (T == Type::Q5_K) {  // fifth bit: bit u of qh[l]
        const __m256i qh = _mm256_loadu_si256((const __m256i*)(b + 16));
        const __m256i h =
            u <= 4 ? _mm256_sll_epi16(qh, _mm_cvtsi32_si128(4 - u)) : _mm256_srl_epi16(qh, _mm_cvtsi32_si128(u - 4));
        v = _mm256_or_si256(v, _mm256_and_si256(h, _mm256_set1_epi8(0x10)));
      }
      return v;
    } else {  // Q6_K: unit u = 4*half + k; ql nibble (k>>1), bits 2k..2k+1 of qh[l]
      const int half = u >> 2, k = u & 3;
      __m256i v = _mm256_loadu_si256((const __m256i*)(b + 64 * half + 32 * (k & 1)));
      if (k >> 1) v = _mm256_srli_epi16(v, 4);
      v = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
      const __m256i qh = _mm256_loadu_si256((const __m256i*)(b + 128 + 32 * half));
      const __m256i h = k <= 2 ? _mm256_sll_epi16(qh, _mm_cvtsi32_si128(4 - 2 * k)) : _mm256_srli_epi16(qh, 2);
      return _mm256_or_si256(v, _mm256_and_si256(h, _mm256_set1_epi8(0x30)));
    }
  }
};

// x's rows r..r+XR-1 for a tile: int8 quants, block scales, and the offset
// lanes and scaled sums where the weight type uses them.
template <Type T, int XR>
struct XRows {
  const int8_t* q[XR];
  const float* d[XR];
  const int32_t* o[XR];
  const float* m[XR];
  XRows(const QX& qx, int r, int K) {
    const size_t nb = K / 32;
    for (int j = 0; j < XR; ++j) {
      q[j] = qx.q.data() + (size_t)(r + j) * K;
      d[j] = qx.d.data() + (r + j) * nb;
      o[j] = Blocks<T>::kOffsets ? qx.xo.data() + (r + j) * nb * 8 : nullptr;
      m[j] = Blocks<T>::kMins ? qx.xm.data() + (r + j) * nb : nullptr;
    }
  }
};

// y[r*N + n] for NR weight rows from n and XR x rows from r. Each pair's
// accumulation is the same sequence of operations for any NR and XR.
template <Type T, bool kVnni, bool kAvx512, int NR, int XR>
void Tile(const uint8_t* HWY_RESTRICT W, size_t rb, int K, const QX& qx, int r, int n, int N, float* HWY_RESTRICT y) {
  using B = Blocks<T>;
  const int nb = K / 32, nsb = nb / B::kUnits;
  const uint8_t* row[NR];
  for (int i = 0; i < NR; ++i) row[i] = W + (size_t)(n + i) * rb;
  const XRows<T, XR> xr(qx, r, K);
  // Two accumulators per pair, for even and odd blocks: one chain of FMAs
  // would wait on its latency every block.
  __m256 acc[2][NR][XR];
  float offs[2][NR][XR];
  for (int e = 0; e < 2; ++e)
    for (int i = 0; i < NR; ++i)
      for (int j = 0; j < XR; ++j) acc[e][i][j] = _mm256_setzero_ps(), offs[e][i][j] = 0.0f;
  __m256 A[NR][B::kUnits];
  float mm[NR][B::kUnits];
  // unit u of super-block sb into accumulator e
  auto unit = [&](int sb, int u, int e) HWY_ATTR {
    const int ub = sb * B::kUnits + u;  // x's block
    __m256i q[NR];
    for (int i = 0; i < NR; ++i) q[i] = B::template Quants<kAvx512>(row[i] + (size_t)sb * B::kBytes, u);
    for (int j = 0; j < XR; ++j) {
      const __m256i xv = _mm256_loadu_si256((const __m256i*)(xr.q[j] + 32 * ub));
      const __m256 dx = _mm256_set1_ps(xr.d[j][ub]);
      for (int i = 0; i < NR; ++i) {
        __m256i s = B::kOffsets ? _mm256_loadu_si256((const __m256i*)(xr.o[j] + 8 * ub)) : _mm256_setzero_si256();
        if constexpr (B::kSigned)
          s = DotU8S8<kVnni>(s, _mm256_sign_epi8(q[i], q[i]), _mm256_sign_epi8(xv, q[i]));
        else
          s = DotU8S8<kVnni>(s, q[i], xv);
        acc[e][i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(A[i][u], dx), acc[e][i][j]);
        if constexpr (B::kMins) offs[e][i][j] = std::fma(mm[i][u], xr.m[j][ub], offs[e][i][j]);
      }
    }
  };
  auto scales = [&](int sb) HWY_ATTR {
    for (int i = 0; i < NR; ++i) B::Scales(row[i] + (size_t)sb * B::kBytes, A[i], mm[i]);
  };
  if constexpr (B::kUnits == 1) {
    int sb = 0;
    for (; sb + 2 <= nsb; sb += 2) {
      scales(sb);
      unit(sb, 0, 0);
      scales(sb + 1);
      unit(sb + 1, 0, 1);
    }
    if (sb < nsb) scales(sb), unit(sb, 0, 0);
  } else {
    for (int sb = 0; sb < nsb; ++sb) {
      scales(sb);
      for (int u = 0; u < B::kUnits; u += 2) unit(sb, u, 0), unit(sb, u + 1, 1);
    }
  }
  for (int i = 0; i < NR; ++i)
    for (int j = 0; j < XR; ++j)
      y[(size_t)(r + j) * N + n + i] =
          HSum(_mm256_add_ps(acc[0][i][j], acc[1][i][j])) + (offs[0][i][j] + offs[1][i][j]);
}

// A K-type super-block's scales as vectors. Q4_K/Q5_K: lane u of A is
// d * scale_u, and mm[u] = -(dmin * min_u) (Tile's values, unpacked with
// vector operations instead of one unit at a time); Q6_K: lane g of A and
// of A2 is d * scale_g and d * scale_{g+8} (its 16 groups of 16).
template <Type T>
HWY_INLINE void SuperScales(const uint8_t* b, __m256* A, __m256* A2, float* mm) {
  if constexpr (T == Type::Q6_K) {
    const __m128i sc = _mm_loadu_si128((const __m128i*)(b + 192));
    const __m256 d = _mm256_set1_ps(F16(b + 208));
    *A = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)));
    *A2 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))));
  } else {
    uint32_t u[3];
    std::memcpy(u, b + 4, 12);
    const uint32_t sc_lo = u[0] & 0x3F3F3F3F, mn_lo = u[1] & 0x3F3F3F3F;
    const uint32_t sc_hi = (u[2] & 0x0F0F0F0F) | ((u[0] >> 6) & 0x03030303) << 4;
    const uint32_t mn_hi = ((u[2] >> 4) & 0x0F0F0F0F) | ((u[1] >> 6) & 0x03030303) << 4;
    auto bytes8 = [](uint32_t lo, uint32_t hi) HWY_ATTR {
      return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((int64_t)(lo | (uint64_t)hi << 32))));
    };
    *A = _mm256_mul_ps(_mm256_set1_ps(F16(b)), bytes8(sc_lo, sc_hi));
    const __m256 m = _mm256_mul_ps(_mm256_set1_ps(F16(b + 2)), bytes8(mn_lo, mn_hi));
    _mm256_storeu_ps(mm, _mm256_xor_ps(m, _mm256_set1_ps(-0.0f)));  // the negation is exact
  }
}

// Two 32-element units per step, in 256-bit vectors, for every block type but
// Q8_0: the arithmetic of Tile (each lane's integer sums, scale products and
// FMAs, in the same order: bit-identical results) with fewer instructions.
// - 32-element types: the 16 bytes of nibbles of two blocks in one register;
//   its low nibbles (elements 0-15 of both) and high nibbles (16-31) are
//   dotted with x's halves, which QuantizeXImpl stores interleaved to match;
//   the two blocks' scales are converted together.
// - K types: the super-block's scales (and minimums) are unpacked with vector
//   operations once, and multiplied by x's scales once per x row.
template <Type T, bool kVnni, bool kAvx512, int XR>
void PairTile(const uint8_t* HWY_RESTRICT W, size_t rb, int K, const QX& qx, int r, int n0, int n1, int N,
              float* HWY_RESTRICT y) {
  using B = Blocks<T>;
  const int nb = K / 32;
  const XRows<T, XR> xr(qx, r, K);
  for (int n = n0; n < n1; ++n) {  // weight rows
    const uint8_t* row = W + (size_t)n * rb;
    __m256 acc[2][XR];  // Tile's accumulators (even and odd units); during the 32-element pairs, low and high halves
    float offs[2][XR];
#pragma GCC unroll 4
    for (int j = 0; j < XR; ++j) acc[0][j] = acc[1][j] = _mm256_setzero_ps(), offs[0][j] = offs[1][j] = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    if constexpr (!B::kSuper) {
      constexpr int qoff = T == Type::Q4_0 ? 2 : T == Type::Q4_1 ? 4 : 6;  // the nibbles' offset in a block
      const __m256i lanes01 = _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0);
      int ub = 0;
      for (; ub + 2 <= nb; ub += 2) {
        const uint8_t* b0 = row + (size_t)ub * B::kBytes;
        const uint8_t* b1 = b0 + B::kBytes;
        const __m256i v = _mm256_loadu2_m128i((const __m128i*)(b1 + qoff), (const __m128i*)(b0 + qoff));
        __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if constexpr (T == Type::Q5_0) {  // fifth bits: qh bit j is element j's
          uint32_t h0, h1;
          std::memcpy(&h0, b0 + 2, 4);
          std::memcpy(&h1, b1 + 2, 4);
          lo = _mm256_or_si256(lo, BitsTo16<kAvx512>((h0 & 0xFFFF) | h1 << 16));
          hi = _mm256_or_si256(hi, BitsTo16<kAvx512>(h0 >> 16 | (h1 & 0xFFFF0000u)));
        }
        // d0, d1 (and m0, m1): four halves converted at once (exact)
        auto half = [](const uint8_t* p) -> uint64_t {
          uint16_t v;
          std::memcpy(&v, p, 2);
          return v;
        };
        uint64_t hw = half(b0) | half(b1) << 16;
        if constexpr (B::kMins) hw |= half(b0 + 2) << 32 | half(b1 + 2) << 48;
        const __m128 dm = _mm_cvtph_ps(_mm_cvtsi64_si128((int64_t)hw));
        alignas(16) float mm[4];
        if constexpr (B::kMins) _mm_store_ps(mm, dm);
#pragma GCC unroll 4
        for (int j = 0; j < XR; ++j) {
          double d2;  // the two scales, through memcpy: they are only 4-byte aligned (one movsd all the same)
          std::memcpy(&d2, xr.d[j] + ub, sizeof d2);
          const __m128 dd = _mm_mul_ps(dm, _mm_castpd_ps(_mm_set_sd(d2)));
          const __m256 sc = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dd), lanes01);
          // lanes 0-3 of the sums: block ub, 4-7: block ub+1 (its offset in lane 4, see QuantizeXImpl)
          __m256i s0 = B::kOffsets ? _mm256_loadu_si256((const __m256i*)(xr.o[j] + 8 * ub)) : _mm256_setzero_si256();
          s0 = DotU8S8<kVnni>(s0, lo, _mm256_loadu_si256((const __m256i*)(xr.q[j] + 32 * ub)));
          const __m256i s1 =
              DotU8S8<kVnni>(_mm256_setzero_si256(), hi, _mm256_loadu_si256((const __m256i*)(xr.q[j] + 32 * ub + 32)));
          acc[0][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), sc, acc[0][j]);
          acc[1][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), sc, acc[1][j]);
          if constexpr (B::kMins) {
            offs[0][j] = std::fma(mm[2], xr.m[j][ub], offs[0][j]);
            offs[1][j] = std::fma(mm[3], xr.m[j][ub + 1], offs[1][j]);
          }
        }
      }
      // halves back to Tile's even-block and odd-block accumulators
#pragma GCC unroll 4
      for (int j = 0; j < XR; ++j) {
        const __m256 even = _mm256_permute2f128_ps(acc[0][j], acc[1][j], 0x20);
        acc[1][j] = _mm256_permute2f128_ps(acc[0][j], acc[1][j], 0x31);
        acc[0][j] = even;
      }
      if (ub < nb) {  // an odd last block (x in order): Tile's step, into the even accumulator
        const uint8_t* b = row + (size_t)ub * B::kBytes;
        __m256 A[1];
        float mm[1] = {0.0f};
        B::Scales(b, A, mm);
        const __m256i q = B::template Quants<kAvx512>(b, 0);
#pragma GCC unroll 4
        for (int j = 0; j < XR; ++j) {
          __m256i s = B::kOffsets ? _mm256_loadu_si256((const __m256i*)(xr.o[j] + 8 * ub)) : _mm256_setzero_si256();
          s = DotU8S8<kVnni>(s, q, _mm256_loadu_si256((const __m256i*)(xr.q[j] + 32 * ub)));
          acc[0][j] =
              _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(A[0], _mm256_set1_ps(xr.d[j][ub])), acc[0][j]);
          if constexpr (B::kMins) offs[0][j] = std::fma(mm[0], xr.m[j][ub], offs[0][j]);
        }
      }
    } else {
      for (int sb = 0; sb < nb / 8; ++sb) {
        const uint8_t* b = row + (size_t)sb * B::kBytes;
        const int u0 = 8 * sb;  // x's first block
        __m256 A, A2;
        alignas(32) float mm[8];
        SuperScales<T>(b, &A, &A2, mm);
        // per x row: the scales times x's block scales (Q6_K: group g has unit g/2's)
        __m256 S[XR], S2[XR];
#pragma GCC unroll 4
        for (int j = 0; j < XR; ++j) {
          const __m256 dx = _mm256_loadu_ps(xr.d[j] + u0);
          if constexpr (T == Type::Q6_K) {
            S[j] = _mm256_mul_ps(A, _mm256_permutevar8x32_ps(dx, _mm256_set_epi32(3, 3, 2, 2, 1, 1, 0, 0)));
            S2[j] = _mm256_mul_ps(A2, _mm256_permutevar8x32_ps(dx, _mm256_set_epi32(7, 7, 6, 6, 5, 5, 4, 4)));
          } else {
            S[j] = _mm256_mul_ps(A, dx);
          }
        }
        auto unit = [&](auto uc) HWY_ATTR {
          constexpr int u = decltype(uc)::value, e = u & 1;
          const __m256i q = B::template Quants<kAvx512>(b, u);
          // lanes: unit u's scale (Q6_K: its two groups', four lanes each)
          constexpr int g = 2 * (u & 3);
          const __m256i idx =
              T == Type::Q6_K ? _mm256_set_epi32(g + 1, g + 1, g + 1, g + 1, g, g, g, g) : _mm256_set1_epi32(u);
#pragma GCC unroll 4
          for (int j = 0; j < XR; ++j) {
            const __m256 sc = _mm256_permutevar8x32_ps(T == Type::Q6_K && u >= 4 ? S2[j] : S[j], idx);
            __m256i s =
                B::kOffsets ? _mm256_loadu_si256((const __m256i*)(xr.o[j] + 8 * (u0 + u))) : _mm256_setzero_si256();
            s = DotU8S8<kVnni>(s, q, _mm256_loadu_si256((const __m256i*)(xr.q[j] + 32 * (u0 + u))));
            acc[e][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc[e][j]);
            if constexpr (B::kMins) offs[e][j] = std::fma(mm[u], xr.m[j][u0 + u], offs[e][j]);
          }
        };
        unit(std::integral_constant<int, 0>()), unit(std::integral_constant<int, 1>());
        unit(std::integral_constant<int, 2>()), unit(std::integral_constant<int, 3>());
        unit(std::integral_constant<int, 4>()), unit(std::integral_constant<int, 5>());
        unit(std::integral_constant<int, 6>()), unit(std::integral_constant<int, 7>());
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < XR; ++j)
      y[(size_t)(r + j) * N + n] = HSum(_mm256_add_ps(acc[0][j], acc[1][j])) + (offs[0][j] + offs[1][j]);
  }
}

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// ---- AVX-512 with VNNI: the K types' units two at a time in 512 bits --------
// PairTile's arithmetic for the K types (lanes 0-7 of a vector: the even
// unit's 8 partial sums, lanes 8-15 the odd unit's; each lane the same integer
// sums, scale products and FMAs in the same order: bit-identical results) in
// half the instructions: a 32-byte run of quants holds both units of a pair
// (low and high nibbles), so one broadcast load, one vpdpbusd, one convert and
// one FMA serve two units. Q4_K and Q6_K only: for the 32-element types and
// Q5_K, PairTile measured faster (bench_quant -t 1, 8192x512 from the L3: Q4_K
// 172 vs 182 us, Q6_K 167 vs 178, Q5_K 220 vs 198).
HWY_INLINE __m512i DotU8S8x64(__m512i acc, __m512i q, __m512i x) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(q), "v"(x));  // the target attribute lacks VNNI: spelled out
  return acc;
}

template <Type T, int XR>
void Tile512(const uint8_t* HWY_RESTRICT W, size_t rb, int K, const QX& qx, int r, int n0, int n1, int N,
             float* HWY_RESTRICT y) {
  static_assert(T == Type::Q4_K || T == Type::Q6_K, "the other types use PairTile");
  using B = Blocks<T>;
  const int nb = K / 32;
  const XRows<T, XR> xr(qx, r, K);
  for (int n = n0; n < n1; ++n) {  // weight rows
    const uint8_t* row = W + (size_t)n * rb;
    __m512 acc[XR];
    float offs[2][XR];
#pragma GCC unroll 4
    for (int j = 0; j < XR; ++j) acc[j] = _mm512_setzero_ps(), offs[0][j] = offs[1][j] = 0.0f;
    // units ub, ub+1 (quants q) with per-lane scales: sc(j) is [A_ub*dx_ub x8, A_ub+1*dx_ub+1 x8] for x row j
    auto pair = [&](int ub, __m512i q, auto sc, const float* mm) HWY_ATTR {
#pragma GCC unroll 4
      for (int j = 0; j < XR; ++j) {
        __m512i s = B::kOffsets ? _mm512_loadu_si512(xr.o[j] + 8 * ub) : _mm512_setzero_si512();
        s = DotU8S8x64(s, q, _mm512_loadu_si512(xr.q[j] + 32 * ub));
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc(j), acc[j]);
        if constexpr (B::kMins) {
          offs[0][j] = std::fma(mm[0], xr.m[j][ub], offs[0][j]);
          offs[1][j] = std::fma(mm[1], xr.m[j][ub + 1], offs[1][j]);
        }
      }
    };
    {  // the super-blocks
      const int nsb = nb / 8;
      for (int sb = 0; sb < nsb; ++sb) {
        const uint8_t* b = row + (size_t)sb * B::kBytes;
        // the scales (Q6_K: 16, one per group of 16) and minimums
        __m256 A8, A2;
        alignas(32) float mm[8];
        SuperScales<T>(b, &A8, &A2, mm);
        const __m512 A =
            T == Type::Q6_K ? _mm512_insertf32x8(_mm512_castps256_ps512(A8), A2, 1) : _mm512_castps256_ps512(A8);
        // per x row: the scales times x's block scales (Q6_K: dx of unit g/2 for group g)
        __m512 S[XR];
#pragma GCC unroll 4
        for (int j = 0; j < XR; ++j) {
          const __m256 dx = _mm256_loadu_ps(xr.d[j] + 8 * sb);
          if constexpr (T == Type::Q6_K)
            S[j] =
                _mm512_mul_ps(A, _mm512_permutexvar_ps(_mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0),
                                                       _mm512_castps256_ps512(dx)));
          else
            S[j] = _mm512_castps256_ps512(_mm256_mul_ps(_mm512_castps512_ps256(A), dx));
        }
        auto units = [&](auto uc) HWY_ATTR {
          constexpr int u = decltype(uc)::value;  // even
          __m512i q;
          if constexpr (T == Type::Q6_K) {
            constexpr int half = u >> 2, k = u & 3;  // k is 0 or 2
            q = _mm512_loadu_si512(b + 64 * half);
            if constexpr (k == 2) q = _mm512_srli_epi16(q, 4);
            q = _mm512_and_si512(q, _mm512_set1_epi8(0x0F));
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(b + 128 + 32 * half)));
            // unit k: bits 2k..2k+1 of qh to bits 4-5 (Tile: << 4-2k, or >> 2 for k=3)
            // words of the first 32 bytes shifted by a, of the last 32 by b
            auto by = [](int a, int b) HWY_ATTR {
              return _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16((short)a), _mm512_set1_epi16((short)b));
            };
            const __m512i h = k == 0 ? _mm512_sllv_epi16(qh, by(4, 2)) : _mm512_srlv_epi16(qh, by(0, 2));
            q = _mm512_ternarylogic_epi32(q, h, _mm512_set1_epi8(0x30), 0xF8);  // q | (h & 0x30)
          } else {
            const uint8_t* qs = b + 16 + 32 * (u >> 1);
            q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)qs));
            q = _mm512_and_si512(_mm512_mask_srli_epi16(q, (__mmask32)0xFFFF0000u, q, 4), _mm512_set1_epi8(0x0F));
          }
          // lanes of S: unit u's scale for the first 8, unit u+1's for the rest (Q6_K: two groups each)
          const __m512i idx =
              T == Type::Q6_K
                  ? _mm512_set_epi32(2 * u + 3, 2 * u + 3, 2 * u + 3, 2 * u + 3, 2 * u + 2, 2 * u + 2, 2 * u + 2,
                                     2 * u + 2, 2 * u + 1, 2 * u + 1, 2 * u + 1, 2 * u + 1, 2 * u, 2 * u, 2 * u, 2 * u)
                  : _mm512_set_epi32(u + 1, u + 1, u + 1, u + 1, u + 1, u + 1, u + 1, u + 1, u, u, u, u, u, u, u, u);
          pair(
              8 * sb + u, q, [&](int j) HWY_ATTR { return _mm512_permutexvar_ps(idx, S[j]); }, mm + u);
        };
        units(std::integral_constant<int, 0>());
        units(std::integral_constant<int, 2>());
        units(std::integral_constant<int, 4>());
        units(std::integral_constant<int, 6>());
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < XR; ++j) {
      const __m256 s = _mm256_add_ps(_mm512_castps512_ps256(acc[j]), _mm512_extractf32x8_ps(acc[j], 1));
      y[(size_t)(r + j) * N + n] = HSum(s) + (offs[0][j] + offs[1][j]);
    }
  }
}
#define HUGINN_QK_AVX512 1
#endif

// One weight row at a time, its blocks dotted with up to 4 x rows while in
// registers. (Tiles of 2-8 weight rows, each x block loaded once for all, were
// measured 1.5-4x slower on the standard config's shapes (K <= 1536): the
// interleaved row streams defeat the hardware prefetcher; one row at a time is
// one sequential stream. Only x rows longer than L1 holds gain from them.)
template <Type T, bool kVnni, bool kAvx512>
void RangeT(const uint8_t* W, size_t rb, int N, int K, const QX& qx, int rows, float* y, int n0, int n1) {
#ifdef HUGINN_QK_AVX512
  if constexpr (kVnni && kAvx512 && (T == Type::Q4_K || T == Type::Q6_K)) {
    if (rows == 1) return Tile512<T, 1>(W, rb, K, qx, 0, n0, n1, N, y);
    if (rows == 4) return Tile512<T, 4>(W, rb, K, qx, 0, n0, n1, N, y);
    for (int n = n0; n < n1; ++n) {
      int r = 0;
      for (; r + 4 <= rows; r += 4) Tile512<T, 4>(W, rb, K, qx, r, n, n + 1, N, y);
      for (; r < rows; ++r) Tile512<T, 1>(W, rb, K, qx, r, n, n + 1, N, y);
    }
    return;
  }
#endif
  if constexpr (T != Type::Q8_0) {
    // one x row (decode) or one tile of four: the weight rows loop inside the kernel
    if (rows == 1) return PairTile<T, kVnni, kAvx512, 1>(W, rb, K, qx, 0, n0, n1, N, y);
    if (rows == 4) return PairTile<T, kVnni, kAvx512, 4>(W, rb, K, qx, 0, n0, n1, N, y);
    for (int n = n0; n < n1; ++n) {
      int r = 0;
      for (; r + 4 <= rows; r += 4) PairTile<T, kVnni, kAvx512, 4>(W, rb, K, qx, r, n, n + 1, N, y);
      for (; r < rows; ++r) PairTile<T, kVnni, kAvx512, 1>(W, rb, K, qx, r, n, n + 1, N, y);
    }
    return;
  }
  // One x row longer than the L1 data cache holds beside a weight row (Q8_0 at
  // Huginn-0125's K = 17920: 17.5 + 18.6 KB against 32 KB) is evicted by the
  // streaming weights and refetched for every row: tiles of 8 weight rows read
  // it once per 8 (bench_quant -t 1, 5280x17920: 11-12 -> 21 GB/s; at K <=
  // 12288 the 8-row tile is slower, at K = 512 three times slower).
  if (rows == 1 && (size_t)K + rb > detail::l1d_bytes()) {
    int n = n0;
    for (; n + 8 <= n1; n += 8) Tile<T, kVnni, kAvx512, 8, 1>(W, rb, K, qx, 0, n, N, y);
    for (; n < n1; ++n) Tile<T, kVnni, kAvx512, 1, 1>(W, rb, K, qx, 0, n, N, y);
    return;
  }
  for (int n = n0; n < n1; ++n) {
    int r = 0;
    for (; r + 4 <= rows; r += 4) Tile<T, kVnni, kAvx512, 1, 4>(W, rb, K, qx, r, n, N, y);
    for (; r < rows; ++r) Tile<T, kVnni, kAvx512, 1, 1>(W, rb, K, qx, r, n, N, y);
  }
}

template <bool kVnni, bool kAvx512>
void BlockRange(Type t, const uint8_t* W, size_t rb, int N, int K, const QX& qx, int rows, float* y, int n0, int n1) {
  switch (t) {
    case Type::Q8_0:
      return RangeT<Type::Q8_0, kVnni, kAvx512>(W, rb, N, K, qx, rows, y, n0, n1);
    case Type::Q4_0:
      return RangeT<Type::Q4_0, kVnni, kAvx512>(W, rb, N, K, qx, rows, y, n0, n1);
    case Type::Q4_1:
      return RangeT<Type::Q4_1, kVnni, kAvx512>(W, rb, N, K, qx, rows, y, n0, n1);
    case Type::Q5_0:
      return RangeT<Type::Q5_0, kVnni, kAvx512>(W, rb, N, K, qx, rows, y, n0, n1);
    case Type::Q4_K:
      return RangeT<Type::Q4_K, kVnni, kAvx512>(W, rb, N, K, qx, rows, y, n0, n1);
    case Type::Q5_K:
      return RangeT<Type::Q5_K, kVnni, kAvx512>(W, rb, N, K, qx, rows, y, n0, n1);
    case Type::Q6_K:
      return RangeT<Type::Q6_K, kVnni, kAvx512>(W, rb, N, K, qx, rows, y, n0, n1);
    default:
      return;
  }
}
#endif

#ifndef HUGINN_QK_X86
// ---- other targets: the same arithmetic in plain loops ----------------------
// One weight row unpacked: quants q[K] as stored (unsigned except Q8_0),
// scales a[K/16], minimums mm[K/32] (w = a*(q - off) + mm).
void UnpackRow(Type t, const uint8_t* HWY_RESTRICT b, int K, int16_t* HWY_RESTRICT q, float* HWY_RESTRICT a,
               float* HWY_RESTRICT mm) {
  using detail::h2f;
  const int units = K / 32;
  switch (t) {
    case Type::Q8_0:
    case Type::Q4_0:
    case Type::Q4_1:
    case Type::Q5_0: {
      const int bb = (int)info(t).block_bytes;
      for (int u = 0; u < units; ++u, b += bb, q += 32) {
        a[2 * u] = a[2 * u + 1] = h2f(b);
        mm[u] = t == Type::Q4_1 ? h2f(b + 2) : 0.0f;
        if (t == Type::Q8_0) {
          for (int j = 0; j < 32; ++j) q[j] = (int8_t)b[2 + j];
          continue;
        }
        const uint8_t* qs = b + (t == Type::Q4_0 ? 2 : t == Type::Q4_1 ? 4 : 6);
        uint32_t qh = 0;
        if (t == Type::Q5_0) std::memcpy(&qh, b + 2, 4);
        for (int j = 0; j < 16; ++j) {
          q[j] = (int16_t)((qs[j] & 0xF) | ((qh >> j) & 1) << 4);
          q[j + 16] = (int16_t)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
        }
      }
      return;
    }
    case Type::Q4_K:
    case Type::Q5_K: {
      const bool five = t == Type::Q5_K;
      for (int sb = 0; sb < K / 256; ++sb, b += five ? 176 : 144) {
        const float d = h2f(b), dmin = h2f(b + 2);
        for (int j = 0; j < 8; ++j) {
          const int u = sb * 8 + j;
          a[2 * u] = a[2 * u + 1] = d * (float)detail::k4_scale(j, b + 4);
          mm[u] = -(dmin * (float)detail::k4_min(j, b + 4));
        }
        int16_t* dst = q + 256 * sb;
        const uint8_t* qs = b + (five ? 48 : 16);
        for (int c = 0; c < 4; ++c)
          for (int l = 0; l < 32; ++l) {
            dst[64 * c + l] = (int16_t)(qs[32 * c + l] & 0xF);
            dst[64 * c + 32 + l] = (int16_t)(qs[32 * c + l] >> 4);
            if (five) {
              dst[64 * c + l] |= (int16_t)(((b[16 + l] >> (2 * c)) & 1) << 4);
              dst[64 * c + 32 + l] |= (int16_t)(((b[16 + l] >> (2 * c + 1)) & 1) << 4);
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
        for (int u = 0; u < 8; ++u) mm[8 * sb + u] = 0;
        for (int h = 0; h < 2; ++h) {
          const uint8_t* ql = b + 64 * h;
          const uint8_t* qh = b + 128 + 32 * h;
          int16_t* dst = q + 256 * sb + 128 * h;
          for (int l = 0; l < 32; ++l) {
            dst[l] = (int16_t)((ql[l] & 0xF) | (qh[l] & 3) << 4);
            dst[l + 32] = (int16_t)((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4);
            dst[l + 64] = (int16_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
            dst[l + 96] = (int16_t)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
          }
        }
      }
      return;
    default:
      return;
  }
}
#endif

// y[r][n] for n in [n0, n1).
void GemvRangeImpl(Type t, const uint8_t* W, size_t rb, int N, int K, const float* x, const QX* qx, int rows, float* y,
                   int n0, int n1, bool vnni) {
  const bool block = t != Type::F32 && t != Type::F16 && t != Type::BF16;
  if (block) {
#ifdef HUGINN_QK_X86
    constexpr bool kAvx512 = HWY_TARGET != HWY_AVX2;
    if constexpr (kAvx512) {
      if (vnni) return BlockRange<true, true>(t, W, rb, N, K, *qx, rows, y, n0, n1);
    }
    (void)vnni;
    BlockRange<false, kAvx512>(t, W, rb, N, K, *qx, rows, y, n0, n1);
#else
    thread_local std::vector<float> abuf, mbuf;
    thread_local std::vector<int16_t> qbuf;
    qbuf.resize(K), abuf.resize(K / 16), mbuf.resize(K / 32);
    const int nb = K / 32;
    for (int n = n0; n < n1; ++n) {
      UnpackRow(t, W + (size_t)n * rb, K, qbuf.data(), abuf.data(), mbuf.data());
      for (int r = 0; r < rows; ++r) {
        const int8_t* xq = qx->q.data() + (size_t)r * K;
        float acc = 0, offs = 0;
        for (int u = 0; u < nb; ++u) {
          int32_t s[2] = {0, 0};
          for (int i = 0; i < 32; ++i) s[i / 16] += qbuf[32 * u + i] * xq[32 * u + i];
          if (!qx->xo.empty()) s[0] += qx->xo[(size_t)(r * nb + u) * 8], s[1] += qx->xo[(size_t)(r * nb + u) * 8 + 4];
          const float dx = qx->d[(size_t)r * nb + u];
          acc += (float)s[0] * (abuf[2 * u] * dx) + (float)s[1] * (abuf[2 * u + 1] * dx);
          if (!qx->xm.empty()) offs += mbuf[u] * qx->xm[(size_t)r * nb + u];
        }
        y[(size_t)r * N + n] = acc + offs;
      }
    }
#endif
    return;
  }
  thread_local std::vector<float> fbuf;
  if (t != Type::F32) fbuf.resize(K);
  for (int n = n0; n < n1; ++n) {
    const uint8_t* row = W + (size_t)n * rb;
    const float* w = (const float*)row;
    if (t != Type::F32) {
      WidenRow(t, row, K, fbuf.data());
      w = fbuf.data();
    }
    for (int r = 0; r < rows; ++r) y[(size_t)r * N + n] = DotF(w, x + (size_t)r * K, K);
  }
}
#undef HUGINN_QK_X86
#undef HUGINN_QK_AVX512

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
  if (rb < row_bytes(t, K))
    fail("quant::gemv: row stride ", rb, " < ", row_bytes(t, K), " bytes of a ", name(t), " row of ", K);
}
bool is_block(Type t) { return t != Type::F32 && t != Type::F16 && t != Type::BF16; }
// AVX512-VNNI (vpdpbusd on 256-bit vectors), used by the AVX-512 kernels; the
// integer sums are exact either way, so results do not depend on it.
bool has_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}
}  // namespace

void gemv(Type t, const void* W, size_t rb, int N, int K, const float* x, int rows, float* y) {
  check_args(t, rb, N, K, rows);
  static const bool vnni = has_vnni();
  constexpr int kPass = 64;  // x rows per pass over the weights: their int16 copy (64 x K x 2 bytes) stays in L2
  for (int r0 = 0; r0 < rows; r0 += kPass) {
    const int rr = std::min(kPass, rows - r0);
    // reused: no allocation per call once grown (decode loops). Named through a
    // pointer: inside the parallel loop `qx` would be each worker's own copy.
    thread_local detail::QX qx_buf;
    const detail::QX* qx = &qx_buf;
    if (is_block(t)) HWY_DYNAMIC_DISPATCH(QuantizeXImpl)(t, x + (size_t)r0 * K, rr, K, &qx_buf);
    // chunks of 16 output rows: enough work per chunk, and y's cache lines
    // split cleanly; each thread streams its own share, about 32 KB of weights
    // per claim, and takes from another's when it runs out (balanced_for.h)
    const int chunks = (N + 15) / 16;
    kern::balanced_for(chunks, kern::items_per_claim(16 * rb), N >= 64, [&](int c0, int c1) {
      HWY_DYNAMIC_DISPATCH(GemvRangeImpl)
      (t, (const uint8_t*)W, rb, N, K, x + (size_t)r0 * K, qx, rr, y + (size_t)r0 * N, 16 * c0, std::min(N, 16 * c1),
       vnni);
    });
  }
}

void dequantize_rows(Type t, const void* W, size_t rb, int row0, int nrows, int K, float* out) {
  check_args(t, rb, nrows, K, 1);
  if (row0 < 0) fail("quant::dequantize_rows: negative first row");
  kern::parallel_for(nrows, nrows >= 16, [&](int64_t r) {
    dequantize_row(t, (const uint8_t*)W + (size_t)(row0 + r) * rb, out + (size_t)r * K, K);
  });
}

void gemm(Type t, const void* W, size_t rb, int N, int K, const float* X, int M, float* Y) {
  check_args(t, rb, N, K, M);
  if (!M || !N) return;
  constexpr int kPanel = 256;  // weight rows per panel: 256 x K floats stay within L2 for K <= 1536
  // One panel per thread at a time, each dequantized and multiplied by that
  // thread: single-threaded sgemm (inside a parallel region OpenBLAS is), and
  // no barrier between dequantizing and multiplying. A panel's bits do not
  // depend on the thread.
  const int npanels = (N + kPanel - 1) / kPanel;
  kern::parallel_region(true, [&](int me, int nth) {
    thread_local std::vector<float> panel;
    panel.resize((size_t)std::min(N, kPanel) * K);
    for (int p = npanels * me / nth; p < npanels * (me + 1) / nth; ++p) {
      const int n0 = p * kPanel, nn = std::min(kPanel, N - n0);
      dequantize_rows(t, W, rb, n0, nn, K, panel.data());  // serial here: inside a parallel region
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nn, K, 1.0f, X, K, panel.data(), K, 0.0f, Y + n0, N);
    }
  });
}

}  // namespace huginn::quant
#endif
