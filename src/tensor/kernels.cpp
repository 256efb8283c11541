#include "tensor/kernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace huginn::kern {

void dot4(const float* x, const float* w0, const float* w1, const float* w2, const float* w3, size_t n, float* y);

namespace {
int g_threads = 0;
}

void set_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}
int threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

// Below this many rows the product is memory-bound and sgemm's packing of W
// costs more than it saves: one pass over W per call,
// all T rows of x against each block of four weight rows.
constexpr int kGemvMaxRows = 8;  // measured: GEMV beats sgemm (packing) below ~8 rows at d=512

void matmul_ld(const float* x, int ldx, const float* W, int ldw, float* y, int ldy, int T, int K, int N,
               bool accumulate) {
  if (T <= 0 || N <= 0) return;
  if (T >= kGemvMaxRows) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0f, x, ldx, W, ldw, accumulate ? 1.0f : 0.0f,
                y, ldy);
    return;
  }
  const int nblocks = (N + 3) / 4;
#pragma omp parallel for schedule(static) if ((int64_t)N * K > 32768)
  for (int b = 0; b < nblocks; ++b) {
    const int n0 = b * 4;
    for (int t = 0; t < T; ++t) {
      const float* xt = x + (size_t)t * ldx;
      float* yt = y + (size_t)t * ldy;
      float r[4];
      if (n0 + 4 <= N) {
        dot4(xt, W + (size_t)n0 * ldw, W + (size_t)(n0 + 1) * ldw, W + (size_t)(n0 + 2) * ldw,
             W + (size_t)(n0 + 3) * ldw, (size_t)K, r);
        for (int i = 0; i < 4; ++i) yt[n0 + i] = accumulate ? yt[n0 + i] + r[i] : r[i];
      } else {
        for (int n = n0; n < N; ++n) {
          float v = dot(xt, W + (size_t)n * ldw, (size_t)K);
          yt[n] = accumulate ? yt[n] + v : v;
        }
      }
    }
  }
}

void matmul(const float* x, const float* W, float* y, int T, int K, int N, bool accumulate) {
  matmul_ld(x, K, W, K, y, N, T, K, N, accumulate);
}

void rmsnorm(const float* x, const float* w, float* y, int T, int d, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)T * d > 65536)
  for (int t = 0; t < T; ++t) {
    const float* xt = x + (size_t)t * d;
    float* yt = y + (size_t)t * d;
    double ss = 0;
    for (int i = 0; i < d; ++i) ss += (double)xt[i] * xt[i];
    const float r = 1.0f / std::sqrt((float)(ss / d) + eps);
    for (int i = 0; i < d; ++i) yt[i] = (xt[i] * r) * w[i];
  }
}

void rope(float* x, int T, int n_heads, int head_dim, int row_stride, const int* pos, const float* cos_tab,
          const float* sin_tab) {
  const int half = head_dim / 2;
  for (int t = 0; t < T; ++t) {
    const float* c = cos_tab + (size_t)pos[t] * half;
    const float* s = sin_tab + (size_t)pos[t] * half;
    float* xt = x + (size_t)t * row_stride;
    for (int h = 0; h < n_heads; ++h) {
      float* xh = xt + h * head_dim;
      for (int i = 0; i < half; ++i) {
        const float a = xh[2 * i], b = xh[2 * i + 1];
        xh[2 * i] = a * c[i] - b * s[i];
        xh[2 * i + 1] = b * c[i] + a * s[i];
      }
    }
  }
}

void swiglu(const float* h, float* out, int T, int I) {
#pragma omp parallel for schedule(static) if ((int64_t)T * I > 65536)
  for (int t = 0; t < T; ++t) {
    const float* g = h + (size_t)t * 2 * I;
    const float* u = g + I;
    float* o = out + (size_t)t * I;
    for (int i = 0; i < I; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

void softmax(float* x, int n) {
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = std::max(m, x[i]);
  float s = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  const float inv = 1.0f / s;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void attention(const float* q, int ldq, const float* const* keys, const float* const* vals, int Tq, int Lk,
               int n_heads, int head_dim, int causal_offset, float* out, float* scratch) {
  const float scale = 1.0f / std::sqrt((float)head_dim);
  const int d = n_heads * head_dim;
  const int work = Tq * n_heads;
#pragma omp parallel for schedule(dynamic, 1) if ((int64_t)work * Lk * head_dim > 16384)
  for (int w = 0; w < work; ++w) {
    const int i = w / n_heads, h = w % n_heads;
    float* sc = scratch + (size_t)omp_get_thread_num() * Lk;
    const float* qi = q + (size_t)i * ldq + h * head_dim;
    const int nk = causal_offset < 0 ? Lk : std::min(Lk, i + causal_offset + 1);
    for (int j = 0; j < nk; ++j) sc[j] = dot(qi, keys[j] + h * head_dim, head_dim) * scale;
    softmax(sc, nk);
    float* o = out + (size_t)i * d + h * head_dim;
    std::memset(o, 0, sizeof(float) * head_dim);
    for (int j = 0; j < nk; ++j) axpy(sc[j], vals[j] + h * head_dim, o, head_dim);
  }
}

}  // namespace huginn::kern
