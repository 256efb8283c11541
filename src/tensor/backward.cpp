#include "tensor/backward.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/kernels.h"

namespace huginn::bwd {

void linear_weight_grad(const float* dy, int ldy, const float* x, int ldx, float* dW, int lddw, int T, int K, int N) {
  if (T <= 0 || N <= 0 || K <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, T, 1.0f, dy, ldy, x, ldx, 1.0f, dW, lddw);
}

void linear_input_grad(const float* dy, int ldy, const float* W, int ldw, float* dx, int lddx, int T, int K, int N,
                       bool accumulate) {
  if (T <= 0 || K <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, K, N, 1.0f, dy, ldy, W, ldw, accumulate ? 1.0f : 0.0f,
              dx, lddx);
}

void rmsnorm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, int T, int d, float eps,
                      bool accumulate_dx) {
  const int nt = (int64_t)T * d > 32768 ? kern::threads() : 1;
  std::vector<double> part((size_t)nt * d, 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    double* pw = part.data() + (size_t)tid * d;
#pragma omp for schedule(static)
    for (int t = 0; t < T; ++t) {
      const float* xt = x + (size_t)t * d;
      const float* gt = dy + (size_t)t * d;
      float* ot = dx + (size_t)t * d;
      double ss = 0;
      for (int i = 0; i < d; ++i) ss += (double)xt[i] * xt[i];
      // The same r as the forward kernel computes.
      const float r = 1.0f / std::sqrt((float)(ss / d) + eps);
      double dot = 0;  // sum_i dy_i w_i x_i
      for (int i = 0; i < d; ++i) {
        dot += (double)gt[i] * w[i] * xt[i];
        pw[i] += (double)gt[i] * xt[i] * r;
      }
      const float c = (float)(dot * (double)r * r * r / d);
      if (accumulate_dx)
        for (int i = 0; i < d; ++i) ot[i] += gt[i] * w[i] * r - xt[i] * c;
      else
        for (int i = 0; i < d; ++i) ot[i] = gt[i] * w[i] * r - xt[i] * c;
    }
  }
  for (int i = 0; i < d; ++i) {
    double s = 0;
    for (int p = 0; p < nt; ++p) s += part[(size_t)p * d + i];
    dw[i] += (float)s;
  }
}

void swiglu_backward(const float* h, const float* dout, float* dh, int T, int I) {
#pragma omp parallel for schedule(static) if ((int64_t)T * I > 65536)
  for (int t = 0; t < T; ++t) {
    const float* g = h + (size_t)t * 2 * I;
    const float* u = g + I;
    const float* go = dout + (size_t)t * I;
    float* dg = dh + (size_t)t * 2 * I;
    float* du = dg + I;
    for (int i = 0; i < I; ++i) {
      const float sg = 1.0f / (1.0f + std::exp(-g[i]));
      const float silu = g[i] * sg;
      du[i] = go[i] * silu;
      dg[i] = go[i] * u[i] * (sg * (1.0f + g[i] * (1.0f - sg)));
    }
  }
}

void attention_backward(const float* q, const float* k, const float* v, int ld, const float* out, const float* dout,
                        float* dq, float* dk, float* dv, int ldd, int T, int n_heads, int head_dim) {
  const int d = n_heads * head_dim;
  const float scale = 1.0f / std::sqrt((float)head_dim);
  const int nt = kern::threads();
  std::vector<float> scratch((size_t)nt * 2 * T);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if ((int64_t)T * T * d > 16384)
  for (int h = 0; h < n_heads; ++h) {
    float* p = scratch.data() + (size_t)omp_get_thread_num() * 2 * T;
    float* ds = p + T;
    const int c0 = h * head_dim;
    for (int j = 0; j < T; ++j) {
      std::memset(dk + (size_t)j * ldd + c0, 0, sizeof(float) * head_dim);
      std::memset(dv + (size_t)j * ldd + c0, 0, sizeof(float) * head_dim);
    }
    for (int i = 0; i < T; ++i) {
      const float* qi = q + (size_t)i * ld + c0;
      const float* doi = dout + (size_t)i * d + c0;
      const int nk = i + 1;
      for (int j = 0; j < nk; ++j) p[j] = kern::dot(qi, k + (size_t)j * ld + c0, head_dim) * scale;
      kern::softmax(p, nk);
      const float Di = kern::dot(doi, out + (size_t)i * d + c0, head_dim);
      for (int j = 0; j < nk; ++j) {
        const float dp = kern::dot(doi, v + (size_t)j * ld + c0, head_dim);
        ds[j] = p[j] * (dp - Di) * scale;
        kern::axpy(p[j], doi, dv + (size_t)j * ldd + c0, head_dim);
      }
      float* dqi = dq + (size_t)i * ldd + c0;
      std::memset(dqi, 0, sizeof(float) * head_dim);
      for (int j = 0; j < nk; ++j) {
        kern::axpy(ds[j], k + (size_t)j * ld + c0, dqi, head_dim);
        kern::axpy(ds[j], qi, dk + (size_t)j * ldd + c0, head_dim);
      }
    }
  }
}

namespace {
template <bool kGrad>
double ce_impl(float* logits, const int* labels, int T, int V, float scale, int ignore_label, int* n_valid) {
  std::vector<double> row_loss(T, 0.0);
  int valid = 0;
  for (int t = 0; t < T; ++t)
    if (labels[t] != ignore_label) ++valid;
#pragma omp parallel for schedule(static) if ((int64_t)T * V > 65536)
  for (int t = 0; t < T; ++t) {
    float* x = logits + (size_t)t * V;
    const int y = labels[t];
    if (y == ignore_label) {
      if constexpr (kGrad) std::memset(x, 0, sizeof(float) * V);
      continue;
    }
    float m = -INFINITY;
    for (int i = 0; i < V; ++i) m = std::max(m, x[i]);
    double s = 0;
    for (int i = 0; i < V; ++i) s += std::exp((double)(x[i] - m));
    const double lse = (double)m + std::log(s);
    row_loss[t] = lse - (double)x[y];
    if constexpr (kGrad) {
      const float inv = (float)(1.0 / s);
      for (int i = 0; i < V; ++i) x[i] = std::exp(x[i] - m) * inv * scale;
      x[y] -= scale;
    }
  }
  double sum = 0;
  for (int t = 0; t < T; ++t) sum += row_loss[t];
  if (n_valid) *n_valid = valid;
  return sum;
}
}  // namespace

double cross_entropy_backward(float* logits, const int* labels, int T, int V, float scale, int ignore_label,
                              int* n_valid) {
  return ce_impl<true>(logits, labels, T, V, scale, ignore_label, n_valid);
}
double cross_entropy_loss(const float* logits, const int* labels, int T, int V, int ignore_label, int* n_valid) {
  return ce_impl<false>(const_cast<float*>(logits), labels, T, V, 1.0f, ignore_label, n_valid);
}

}  // namespace huginn::bwd
