#include "tensor/backward.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/team.h"

namespace huginn::bwd {

namespace {
// Scratch reused across calls (large per-call allocations would be mmap'ed and
// page-faulted in again every time). Owned by the calling thread.
float* scratch_floats(size_t n) {
  static thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}
double* scratch_doubles(size_t n) {
  static thread_local std::vector<double> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}
}  // namespace

void linear_weight_grad(const float* dy, int ldy, const float* x, int ldx, float* dW, int lddw, int T, int K, int N) {
  if (T <= 0 || N <= 0 || K <= 0) return;
  // Blocks of output rows (of dW), never of the summed T: see tensor/gemm.h.
  kern::gemm_fixed_blocks(true, false, N, K, T, 1.0f, dy, ldy, x, ldx, 1.0f, dW, lddw);
}

void linear_input_grad(const float* dy, int ldy, const float* W, int ldw, float* dx, int lddx, int T, int K, int N,
                       bool accumulate) {
  if (T <= 0 || K <= 0) return;
  kern::gemm_fixed_blocks(false, false, T, K, N, 1.0f, dy, ldy, W, ldw, accumulate ? 1.0f : 0.0f, dx, lddx);
}

void rmsnorm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, int T, int d, float eps,
                      bool accumulate_dx) {
  // dw partial sums per fixed chunk of rows, added in chunk order: the result
  // does not depend on the number of threads.
  constexpr int kChunk = 32;
  const int nchunks = (T + kChunk - 1) / kChunk;
  double* part = scratch_doubles((size_t)nchunks * d);
  std::fill(part, part + (size_t)nchunks * d, 0.0);
#pragma omp parallel for schedule(static) if ((int64_t)T * d > 32768)
  for (int c = 0; c < nchunks; ++c) {
    double* pw = part + (size_t)c * d;
    for (int t = c * kChunk; t < std::min(T, (c + 1) * kChunk); ++t) {
      const float* xt = x + (size_t)t * d;
      const float* gt = dy + (size_t)t * d;
      float* ot = dx + (size_t)t * d;
      const float r = kern::inv_rms(xt, d, eps);  // the forward kernel's r
      double dot = 0;  // sum_i dy_i w_i x_i
      for (int i = 0; i < d; ++i) {
        dot += (double)gt[i] * w[i] * xt[i];
        pw[i] += (double)gt[i] * xt[i] * r;
      }
      const float cc = (float)(dot * (double)r * r * r / d);
      if (accumulate_dx)
        for (int i = 0; i < d; ++i) ot[i] += gt[i] * w[i] * r - xt[i] * cc;
      else
        for (int i = 0; i < d; ++i) ot[i] = gt[i] * w[i] * r - xt[i] * cc;
    }
  }
  for (int i = 0; i < d; ++i) {
    double s = 0;
    for (int c = 0; c < nchunks; ++c) s += part[(size_t)c * d + i];
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

void attention_forward(const float* q, const float* k, const float* v, int ld, float* out, int B, int T, int n_heads,
                       int head_dim) {
  const int d = n_heads * head_dim;
  const float scale = 1.0f / std::sqrt((float)head_dim);
  const int nt = std::max(kern::threads(), kern::parallel_threads());
  const size_t TT = (size_t)T * T;
  float* scratch = scratch_floats((size_t)nt * TT);
  const int work = B * n_heads;
  // Run inside the forward stage's team (tensor/team.h) or a region of its own.
  kern::parallel_for_dynamic(work, work > 1 && (int64_t)T * T * d > 16384, [&](int w, int thread) {
    const int b = w / n_heads, h = w % n_heads;
    float* P = scratch + (size_t)thread * TT;
    const size_t r0 = (size_t)b * T;
    const int c0 = h * head_dim;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, head_dim, scale, q + r0 * ld + c0, ld, k + r0 * ld + c0,
                ld, 0.f, P, T);
    for (int i = 0; i < T; ++i) {
      float* row = P + (size_t)i * T;
      kern::softmax(row, i + 1);
      std::memset(row + i + 1, 0, sizeof(float) * (T - i - 1));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, head_dim, T, 1.f, P, T, v + r0 * ld + c0, ld, 0.f,
                out + r0 * d + c0, d);
  });
}

void attention_backward(const float* q, const float* k, const float* v, int ld, const float* out, const float* dout,
                        float* dq, float* dk, float* dv, int ldd, int B, int T, int n_heads, int head_dim) {
  const int d = n_heads * head_dim;
  const float scale = 1.0f / std::sqrt((float)head_dim);
  const int nt = kern::threads();
  const size_t TT = (size_t)T * T;
  float* scratch = scratch_floats((size_t)nt * 2 * TT);
  const int work = B * n_heads;
  // One (sequence, head) per task; the products are small sgemm calls (BLAS
  // runs single-threaded inside the parallel region).
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (work > 1 && (int64_t)T * T * d > 16384)
  for (int w = 0; w < work; ++w) {
    const int b = w / n_heads, h = w % n_heads;
    float* P = scratch + (size_t)omp_get_thread_num() * 2 * TT;
    float* dP = P + TT;
    const size_t r0 = (size_t)b * T;
    const int c0 = h * head_dim;
    const float* Q = q + r0 * ld + c0;
    const float* K = k + r0 * ld + c0;
    const float* Vv = v + r0 * ld + c0;
    const float* O = out + r0 * d + c0;
    const float* dO = dout + r0 * d + c0;
    // P = softmax(Q Kᵀ * scale) under the causal mask, recomputed.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, head_dim, scale, Q, ld, K, ld, 0.f, P, T);
    for (int i = 0; i < T; ++i) {
      float* row = P + (size_t)i * T;
      kern::softmax(row, i + 1);
      std::memset(row + i + 1, 0, sizeof(float) * (T - i - 1));
    }
    // dP = dO Vᵀ; dS = P * (dP - rowsum(dO * O)) * scale.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, head_dim, 1.f, dO, d, Vv, ld, 0.f, dP, T);
    for (int i = 0; i < T; ++i) {
      const float Di = kern::dot(dO + (size_t)i * d, O + (size_t)i * d, head_dim);
      float* pr = P + (size_t)i * T;
      float* dr = dP + (size_t)i * T;
      for (int j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - Di) * scale;
      std::memset(dr + i + 1, 0, sizeof(float) * (T - i - 1));
    }
    float* dQ = dq + r0 * ldd + c0;
    float* dK = dk + r0 * ldd + c0;
    float* dV = dv + r0 * ldd + c0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, head_dim, T, 1.f, dP, T, K, ld, 0.f, dQ, ldd);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, head_dim, T, 1.f, dP, T, Q, ld, 0.f, dK, ldd);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, head_dim, T, 1.f, P, T, dO, d, 0.f, dV, ldd);
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
