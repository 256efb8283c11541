// ggml block formats: type table, dequantization (bit for bit ggml's), and
// quantization (byte for byte ggml's reference for the 32-element types; an
// error-minimising search for the K types). Layouts: quant.h.
#include "huginn/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "huginn/common.h"
#include "huginn/safetensors.h"  // f16/bf16 conversions (round to nearest even, as ggml)

namespace huginn::quant {
namespace {

constexpr TypeInfo kTypes[] = {
    {Type::F32, "F32", 1, 4},       {Type::F16, "F16", 1, 2},        {Type::Q4_0, "Q4_0", 32, 18},
    {Type::Q4_1, "Q4_1", 32, 20},   {Type::Q5_0, "Q5_0", 32, 22},    {Type::Q8_0, "Q8_0", 32, 34},
    {Type::Q4_K, "Q4_K", 256, 144}, {Type::Q5_K, "Q5_K", 256, 176},  {Type::Q6_K, "Q6_K", 256, 210},
    {Type::BF16, "BF16", 1, 2},
};

inline float half(const uint8_t* p) { return f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
inline void put_half(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  p[0] = (uint8_t)h;
  p[1] = (uint8_t)(h >> 8);
}
// The f16 a value is stored as, read back: the scale the dequantizer will see.
inline float as_half(float v) { return f16_to_f32(f32_to_f16(v)); }

// Round half to even without a libm call (the baseline x86-64 build has no
// rounding instruction): adding 1.5*2^23 leaves the rounded integer in the low
// mantissa bits. Exact for |v| < 2^22; larger values are clamped first (every
// caller clamps the result to a small range anyway).
inline int nearest(float v) {
  v = std::clamp(v, -4194303.0f, 4194303.0f);
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Sub-block j's 6-bit scale and min of a Q4_K/Q5_K block (12 packed bytes):
// j < 4 in the low 6 bits of bytes j and j+4; j >= 4 as nibbles of byte j+4
// with the top two bits in the spare high bits of bytes j-4 and j.
inline void scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}
void pack_scale_min_k4(const int* sc, const int* m, uint8_t* q) {
  for (int j = 0; j < 4; ++j) {
    q[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
    q[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
    q[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4);
  }
}

// --- dequantization: one block ----------------------------------------------

void deq_q4_0(const uint8_t* b, float* y) {
  const float d = half(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = (float)((b[2 + j] & 0xF) - 8) * d;
    y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
  }
}
void deq_q4_1(const uint8_t* b, float* y) {
  const float d = half(b), m = half(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = (float)(b[4 + j] & 0xF) * d + m;
    y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
  }
}
void deq_q5_0(const uint8_t* b, float* y) {
  const float d = half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  for (int j = 0; j < 16; ++j) {
    const int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
    y[j] = (float)(((b[6 + j] & 0xF) | h0 << 4) - 16) * d;
    y[j + 16] = (float)(((b[6 + j] >> 4) | h1 << 4) - 16) * d;
  }
}
void deq_q8_0(const uint8_t* b, float* y) {
  const float d = half(b);
  for (int j = 0; j < 32; ++j) y[j] = (float)(int8_t)b[2 + j] * d;
}
// Q4_K and Q5_K (qh == nullptr for Q4_K): 4 chunks of 64, each two sub-blocks
// sharing 32 bytes of qs (low nibble: first sub-block, high: second).
void deq_qk_asym(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = half(b), dmin = half(b + 2);
  const uint8_t* sc8 = b + 4;
  for (int c = 0; c < 4; ++c) {
    int sc, m;
    scale_min_k4(2 * c, sc8, &sc, &m);
    const float d1 = d * (float)sc, m1 = dmin * (float)m;
    scale_min_k4(2 * c + 1, sc8, &sc, &m);
    const float d2 = d * (float)sc, m2 = dmin * (float)m;
    const uint8_t* q = qs + 32 * c;
    for (int l = 0; l < 32; ++l) {
      const int hi = qh ? ((qh[l] >> (2 * c)) & 1) << 4 : 0;
      y[64 * c + l] = d1 * (float)((q[l] & 0xF) + hi) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      const int hi = qh ? ((qh[l] >> (2 * c + 1)) & 1) << 4 : 0;
      y[64 * c + 32 + l] = d2 * (float)((q[l] >> 4) + hi) - m2;
    }
  }
}
// Q6_K: element e of a 128-half: low nibble from ql, two high bits from qh, its
// 8-bit scale is scales[e/16].
inline int q6_at(const uint8_t* ql, const uint8_t* qh, int e) {
  const int k = e / 32, l = e % 32;  // k: which quarter of the half
  const int lo = k & 1 ? ql[l + 32] : ql[l];
  const int nib = k >= 2 ? lo >> 4 : lo & 0xF;
  return (nib | ((qh[l] >> (2 * k)) & 3) << 4) - 32;
}
void deq_q6_k(const uint8_t* b, float* y) {
  const float d = half(b + 208);
  const int8_t* sc = (const int8_t*)(b + 192);
  for (int h = 0; h < 2; ++h)
    for (int e = 0; e < 128; ++e)
      y[128 * h + e] = d * (float)sc[8 * h + e / 16] * (float)q6_at(b + 64 * h, b + 128 + 32 * h, e);
}

// --- quantization of the 32-element types: ggml's reference formulas ---------

// Value with the largest magnitude, sign kept (first one on ties, as ggml).
inline float signed_absmax(const float* x, int n) {
  float amax = 0, mx = 0;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      mx = x[j];
    }
  return mx;
}
// The float-to-int8 truncation ggml's formulas rely on (values are in range).
inline int trunc8(float v) { return (int)(int8_t)(int)v; }

void q_q4_0(const float* x, uint8_t* b) {
  const float d = signed_absmax(x, 32) / -8;
  const float id = d ? 1.0f / d : 0.0f;  // from the float scale, not the stored half
  put_half(b, d);
  for (int j = 0; j < 16; ++j) {
    const int a = std::min(15, trunc8(x[j] * id + 8.5f)), c = std::min(15, trunc8(x[j + 16] * id + 8.5f));
    b[2 + j] = (uint8_t)(a | c << 4);
  }
}
void q_q4_1(const float* x, uint8_t* b) {
  float lo = x[0], hi = x[0];
  for (int j = 1; j < 32; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
  const float d = (hi - lo) / 15;
  const float id = d ? 1.0f / d : 0.0f;
  put_half(b, d);
  put_half(b + 2, lo);
  for (int j = 0; j < 16; ++j) {
    const int a = std::min(15, trunc8((x[j] - lo) * id + 0.5f)), c = std::min(15, trunc8((x[j + 16] - lo) * id + 0.5f));
    b[4 + j] = (uint8_t)(a | c << 4);
  }
}
void q_q5_0(const float* x, uint8_t* b) {
  const float d = signed_absmax(x, 32) / -16;
  const float id = d ? 1.0f / d : 0.0f;
  put_half(b, d);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int a = std::min(31, trunc8(x[j] * id + 16.5f)), c = std::min(31, trunc8(x[j + 16] * id + 16.5f));
    b[6 + j] = (uint8_t)((a & 0xF) | (c & 0xF) << 4);
    qh |= (uint32_t)(a >> 4 & 1) << j | (uint32_t)(c >> 4 & 1) << (j + 16);
  }
  std::memcpy(b + 2, &qh, 4);
}
void q_q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d ? 1.0f / d : 0.0f;
  put_half(b, d);
  for (int j = 0; j < 32; ++j) b[2 + j] = (uint8_t)(int8_t)std::roundf(x[j] * id);
}

// --- quantization of the K types: search ------------------------------------
// Each sub-block first gets its best float (scale, min) over a sweep of
// candidate grid spacings, each refit by least squares; then the sub-block
// scales are quantized against the f16 super-block scales, and each sub-block
// tries its neighbouring integer scales (and mins), scored with the exact
// dequantized values. Minimises plain squared error.

// Best w = s*q - m (q in 0..nmax, m >= 0) for n values; returns s, m.
void fit_asym(const float* x, int n, int nmax, float* s_out, float* m_out) {
  float lo = 0, hi = x[0];  // m >= 0: the grid always reaches down to at most 0
  for (int i = 0; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  *s_out = 0;
  *m_out = -lo;
  if (hi <= lo) return;
  double best = INFINITY;
  for (int k = -10; k <= 10; ++k) {
    const float iscale = ((float)nmax + 0.1f * (float)k) / (hi - lo);
    double sl = 0, sll = 0, sx = 0, sxl = 0;
    int q[32];
    for (int i = 0; i < n; ++i) {
      q[i] = std::clamp(nearest((x[i] - lo) * iscale), 0, nmax);
      sl += q[i], sll += (double)q[i] * q[i], sx += x[i], sxl += (double)x[i] * q[i];
    }
    // least squares x ~ s*q + b, with b <= 0 (b = -m)
    const double det = n * sll - sl * sl;
    double s, b;
    if (det > 0) {
      s = (n * sxl - sl * sx) / det;
      b = (sll * sx - sl * sxl) / det;
    } else {
      s = 0, b = sx / n;
    }
    if (b > 0) b = 0, s = sll > 0 ? sxl / sll : 0;
    if (s < 0) continue;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = s * q[i] + b - x[i];
      err += e * e;
    }
    if (err < best) best = err, *s_out = (float)s, *m_out = (float)-b;
  }
}

// Sub-block quants and integer scale/min for stored super-block scales d,
// dmin: each sub-block tries the integer scales and mins within `reach` of the
// rounded float fit, scored with the exact dequantized values. Returns the
// block's squared error.
double encode_asym(const float* x, const float* s, const float* m, float d, float dmin, int nmax, int reach, int* sc,
                   int* mi, uint8_t* q) {
  double total = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    const int sc0 = d > 0 ? std::clamp(nearest(s[j] / d), 0, 63) : 0;
    const int m0 = dmin > 0 ? std::clamp(nearest(m[j] / dmin), 0, 63) : 0;
    double best = INFINITY;
    for (int a = std::max(0, sc0 - reach); a <= std::min(63, sc0 + reach); ++a)
      for (int c = std::max(0, m0 - reach); c <= std::min(63, m0 + reach); ++c) {
        const float d1 = d * (float)a, m1 = dmin * (float)c;  // exactly as dequantized
        const float id = d1 > 0 ? 1.0f / d1 : 0.0f;
        double err = 0;
        uint8_t qq[32];
        for (int i = 0; i < 32; ++i) {
          const int v = std::clamp(nearest((xs[i] + m1) * id), 0, nmax);
          qq[i] = (uint8_t)v;
          const double e = (double)(d1 * (float)v - m1) - xs[i];
          err += e * e;
        }
        if (err < best) {
          best = err, sc[j] = a, mi[j] = c;
          std::memcpy(q + 32 * j, qq, 32);
        }
      }
    total += best;
  }
  return total;
}

// Q4_K (nmax 15) and Q5_K (nmax 31): 8 sub-blocks of 32. The super-block
// scales are tried with a few divisors (largest sub-block scale on 63, 62, ...):
// their f16 rounding differs, and one often fits much better (constant rows).
void q_qk_asym(const float* x, uint8_t* b, int nmax) {
  float s[8], m[8], smax = 0, mmax = 0;
  for (int j = 0; j < 8; ++j) {
    fit_asym(x + 32 * j, 32, nmax, &s[j], &m[j]);
    smax = std::max(smax, s[j]), mmax = std::max(mmax, m[j]);
  }
  int sc[8], mi[8], bsc[8], bmi[8];
  uint8_t q[256], bq[256];
  float bd = 0, bdmin = 0;
  double best = INFINITY;
  for (int div = 63; div >= 56; --div) {
    const float d = as_half(smax / (float)div), dmin = as_half(mmax / (float)div);
    const double err = encode_asym(x, s, m, d, dmin, nmax, 0, sc, mi, q);
    if (err < best) best = err, bd = d, bdmin = dmin;
  }
  encode_asym(x, s, m, bd, bdmin, nmax, 1, bsc, bmi, bq);
  put_half(b, bd);
  put_half(b + 2, bdmin);
  pack_scale_min_k4(bsc, bmi, b + 4);
  uint8_t* qs = b + (nmax == 15 ? 16 : 48);
  if (nmax == 31) std::memset(b + 16, 0, 32);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      const int lo = bq[64 * c + l], hi = bq[64 * c + 32 + l];
      qs[32 * c + l] = (uint8_t)((lo & 0xF) | (hi & 0xF) << 4);
      if (nmax == 31) b[16 + l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
    }
}

// Best signed scale s for w = s*q, q in -32..31, over 16 values.
float fit_sym6(const float* x) {
  const float mx = signed_absmax(x, 16);
  if (mx == 0) return 0;
  float best_s = 0;
  double best = INFINITY;
  for (int k = -10; k <= 10; ++k) {
    // both orientations: the extreme value on -32 or on +31
    for (float top : {-32.0f, 31.0f}) {
      const float iscale = (top + (top < 0 ? -0.1f : 0.1f) * (float)k) / mx;
      double sxl = 0, sll = 0;
      for (int i = 0; i < 16; ++i) {
        const int q = std::clamp(nearest(x[i] * iscale), -32, 31);
        sxl += (double)x[i] * q, sll += (double)q * q;
      }
      if (sll == 0) continue;
      const double err = -sxl * sxl / sll;  // sum x^2 - (x.q)^2/(q.q), constant dropped
      if (err < best) best = err, best_s = (float)(sxl / sll);
    }
  }
  return best_s;
}

// Q6_K's sub-block scales for a stored d (as encode_asym). Returns the error.
double encode_q6(const float* x, const float* s, float d, int reach, int8_t* sc, int* q) {
  double total = 0;
  for (int j = 0; j < 16; ++j) {
    const float* xs = x + 16 * j;
    const int s0 = d != 0 ? std::clamp(nearest(s[j] / d), -128, 127) : 0;
    double best = INFINITY;
    for (int a = std::max(-128, s0 - reach); a <= std::min(127, s0 + reach); ++a) {
      const float ds = d * (float)a;
      const float id = ds != 0 ? 1.0f / ds : 0.0f;
      double err = 0;
      int qq[16];
      for (int i = 0; i < 16; ++i) {
        const int v = std::clamp(nearest(xs[i] * id), -32, 31);
        qq[i] = v;
        const double e = (double)(ds * (float)v) - xs[i];
        err += e * e;
      }
      if (err < best) {
        best = err, sc[j] = (int8_t)a;
        std::memcpy(q + 16 * j, qq, sizeof qq);
      }
    }
    total += best;
  }
  return total;
}

void q_q6_k(const float* x, uint8_t* b) {
  float s[16], smax = 0;
  for (int j = 0; j < 16; ++j) {
    s[j] = fit_sym6(x + 16 * j);
    if (std::fabs(s[j]) > std::fabs(smax)) smax = s[j];
  }
  int8_t* sc = (int8_t*)(b + 192);
  int q[256];
  float bd = 0;
  double best = INFINITY;
  for (int div = 128; div >= 120; --div) {  // as for Q4_K: a few f16 roundings of d
    const float d = as_half(smax / -(float)div);
    const double err = encode_q6(x, s, d, 0, sc, q);
    if (err < best) best = err, bd = d;
  }
  encode_q6(x, s, bd, 1, sc, q);
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  std::memset(b, 0, 192);
  for (int h = 0; h < 2; ++h)
    for (int e = 0; e < 128; ++e) {
      const int v = q[128 * h + e] + 32, k = e / 32, l = e % 32;
      ql[64 * h + l + (k & 1 ? 32 : 0)] |= (uint8_t)(k >= 2 ? (v & 0xF) << 4 : v & 0xF);
      qh[32 * h + l] |= (uint8_t)((v >> 4) << (2 * k));
    }
  put_half(b + 208, bd);
}

}  // namespace

const TypeInfo* find_type(uint32_t id) {
  for (const TypeInfo& t : kTypes)
    if ((uint32_t)t.type == id) return &t;
  return nullptr;
}
const TypeInfo* find_type(const std::string& name) {
  for (const TypeInfo& t : kTypes)
    if (name == t.name) return &t;
  return nullptr;
}
const TypeInfo& info(Type t) {
  const TypeInfo* i = find_type((uint32_t)t);
  if (!i) fail("quant: unsupported type id ", (uint32_t)t);
  return *i;
}
size_t row_bytes(Type t, int64_t n) {
  const TypeInfo& i = info(t);
  if (n < 0 || n % i.block_elems) fail("quant: a ", i.name, " row of ", n, " elements is not a whole number of ", i.block_elems, "-element blocks");
  return (size_t)(n / i.block_elems) * (size_t)i.block_bytes;
}

void dequantize_row(Type t, const void* src, float* y, int64_t n) {
  const uint8_t* b = (const uint8_t*)src;
  const TypeInfo& ti = info(t);
  row_bytes(t, n);  // checks n
  const int64_t nb = n / ti.block_elems;
  switch (t) {
    case Type::F32: std::memcpy(y, b, (size_t)n * 4); return;
    case Type::F16:
      for (int64_t i = 0; i < n; ++i) y[i] = half(b + 2 * i);
      return;
    case Type::BF16:
      for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
      return;
    default: break;
  }
  for (int64_t k = 0; k < nb; ++k, b += ti.block_bytes, y += ti.block_elems) switch (t) {
      case Type::Q4_0: deq_q4_0(b, y); break;
      case Type::Q4_1: deq_q4_1(b, y); break;
      case Type::Q5_0: deq_q5_0(b, y); break;
      case Type::Q8_0: deq_q8_0(b, y); break;
      case Type::Q4_K: deq_qk_asym(b, nullptr, b + 16, y); break;
      case Type::Q5_K: deq_qk_asym(b, b + 16, b + 48, y); break;
      case Type::Q6_K: deq_q6_k(b, y); break;
      default: fail("quant: dequantize: unhandled type ", ti.name);
    }
}

void quantize_row(Type t, const float* x, void* dst, int64_t n) {
  uint8_t* b = (uint8_t*)dst;
  const TypeInfo& ti = info(t);
  row_bytes(t, n);
  const int64_t nb = n / ti.block_elems;
  switch (t) {
    case Type::F32: std::memcpy(b, x, (size_t)n * 4); return;
    case Type::F16:
    case Type::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = t == Type::F16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
        b[2 * i] = (uint8_t)h, b[2 * i + 1] = (uint8_t)(h >> 8);
      }
      return;
    default: break;
  }
  // block scales come from the values: an inf or NaN has no block encoding
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) fail("quant: cannot quantize ", x[i], " (element ", i, ") to ", ti.name);
  for (int64_t k = 0; k < nb; ++k, b += ti.block_bytes, x += ti.block_elems) switch (t) {
      case Type::Q4_0: q_q4_0(x, b); break;
      case Type::Q4_1: q_q4_1(x, b); break;
      case Type::Q5_0: q_q5_0(x, b); break;
      case Type::Q8_0: q_q8_0(x, b); break;
      case Type::Q4_K: q_qk_asym(x, b, 15); break;
      case Type::Q5_K: q_qk_asym(x, b, 31); break;
      case Type::Q6_K: q_q6_k(x, b); break;
      default: fail("quant: quantize: unhandled type ", ti.name);
    }
}

void quantize_rows(Type t, const float* x, void* dst, int64_t rows, int64_t n) {
  const size_t rb = row_bytes(t, n);
  if (rows < 0) fail("quant: negative row count");
  // checked here, so no error has to leave the parallel loop
  if (info(t).block_elems > 1)
    for (int64_t i = 0; i < rows * n; ++i)
      if (!std::isfinite(x[i])) fail("quant: cannot quantize ", x[i], " (row ", i / n, ", element ", i % n, ") to ", name(t));
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, x + r * n, (uint8_t*)dst + r * rb, n);
}

}  // namespace huginn::quant
