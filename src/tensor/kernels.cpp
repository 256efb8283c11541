#include "tensor/kernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "huginn/common.h"
#include "huginn/quant.h"
#include "tensor/balanced_for.h"
#include "tensor/gemm.h"
#include "tensor/simd.h"
#include "tensor/team.h"

namespace huginn::kern {

namespace {
int g_threads = 0;

// Whether a per-row kernel over T rows of n elements shares the rows out
// among the threads: from two rows of a few thousand elements. Run on one
// thread, a batch of decodes' norms, RoPE and SwiGLU left the other threads
// waiting between the GEMVs (each row is computed the same on any thread).
bool rows_in_parallel(int T, int n) { return T > 1 && (int64_t)T * n >= 4096; }
}  // namespace

void set_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}
int threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

// Below this many rows the product is memory-bound and sgemm's packing of W
// costs more than it saves: GEMV, one pass over W for all T rows.
// measured (bench_forward -t 2 --prompt 8,16,24,31,48 --depths 8, standard config):
// the multi-row GEMV beats sgemm (its packing) up to 31 rows: prefill tokens/s
// F32 201 -> 299 (8 rows), 402 -> 497 (31); BF16 356 -> 595, 414 -> 648; at 48, equal.
constexpr int kGemvMaxRows = 32;

namespace {
// How far ahead of the rows being computed the GEMV prefetches weights: about
// this many bytes, in whole blocks of four rows.
// measured (bench_quant -t 2 --types F32 --rows 1,4,8): 16-32 KB ahead is
// best at K = 512 and 1536; one block ahead (the old distance) streams 1.3-1.6x
// slower at 8 rows.
constexpr size_t kPrefetchBytes = 32 << 10;

// x with rows starting on 64-byte boundaries: the kernels load x's vectors
// again for every block of weight rows, and a 64-byte load that straddles two
// cache lines costs two. Copied when it is not so already (T x K floats, small
// beside the N x K weights the call reads).
// measured (8192x512 F32, 8 rows, 2 threads): 1050 us per call with x 16 bytes
// off a line, 710 us aligned.
const float* aligned_rows(const float* x, int& ldx, int T, int K) {
  const bool aligned = reinterpret_cast<uintptr_t>(x) % 64 == 0 && (T == 1 || (size_t)ldx * sizeof(float) % 64 == 0);
  if (aligned) return x;
  const int ld = (K + 15) / 16 * 16;
  thread_local LineFloats buf;
  if (buf.size() < (size_t)T * ld) buf.resize((size_t)T * ld);
  float* a = buf.data();
  for (int t = 0; t < T; ++t) std::memcpy(a + (size_t)t * ld, x + (size_t)t * ldx, (size_t)K * sizeof(float));
  ldx = ld;
  return a;
}

// y[T, N] = x[T, K] · W[N, K]ᵀ over rows of W `ldw` elements apart, in the
// weight's stored type: one pass over W, every row of x against each block of
// four weight rows while it sits in L1 (simd::Dot4RowsFn). Every row of y is
// computed exactly as it would be alone (T = 1), for any T.
void gemv(const float* x, int ldx, const void* W, DType wt, size_t ldw, float* y, int ldy, int T, int K, int N,
          bool accumulate) {
  const simd::Dot4RowsFn dot4 = simd::dot4_rows_fn(wt);
  const simd::DotFn dot1 = simd::dot_fn(wt);
  const size_t es = dtype_size(wt);
  auto row = [&](int n) { return static_cast<const uint8_t*>(W) + (size_t)n * ldw * es; };
  const int nblocks = (N + 3) / 4;
  const int pf_rows = (int)std::max<size_t>(4, (kPrefetchBytes / (ldw * es) + 3) / 4 * 4);
  x = aligned_rows(x, ldx, T, K);
  // Each thread streams its own contiguous share of the rows (one sequential
  // stream for the prefetchers), about 32 KB of weights per claim, and takes
  // the back of another's share when its own runs out (balanced_for.h). Each
  // block's result does not depend on the thread that computes it.
  balanced_for(nblocks, items_per_claim(4 * ldw * es), (int64_t)N * K > 32768, [&](int b0, int b1) {
    for (int b = b0; b < b1; ++b) {
      const int n0 = b * 4;
      if (n0 + 4 <= N) {
        dot4(x, (size_t)ldx, (size_t)T, row(n0), ldw, (size_t)K, y + n0, (size_t)ldy, accumulate,
             n0 + pf_rows + 4 <= N ? (size_t)pf_rows : 0);
        continue;
      }
      for (int t = 0; t < T; ++t) {
        const float* xt = x + (size_t)t * ldx;
        float* yt = y + (size_t)t * ldy;
        for (int n = n0; n < N; ++n) {
          float v = dot1(xt, row(n), (size_t)K);
          yt[n] = accumulate ? yt[n] + v : v;
        }
      }
    }
  });
}

// Rows of W widened to F32 per panel, then single-threaded sgemm per panel
// inside one parallel loop (the panel split is fixed, so results do not
// depend on the thread count).
constexpr int kPanelRows = 64;
void gemm_widened(const float* x, const Weight& W, float* y, int T, bool accumulate) {
  const int K = (int)W.cols, N = (int)W.rows;
  const int npanels = (N + kPanelRows - 1) / kPanelRows;
  const simd::WidenFn widen = simd::widen_fn(W.dtype);
  // Always inside a parallel region (a team's or a new one), where OpenBLAS
  // runs single-threaded: each panel is one single-threaded sgemm.
  parallel_region(true, [&](int me, int nth) {
    thread_local std::vector<float> panel;
    if (panel.size() < (size_t)kPanelRows * K) panel.resize((size_t)kPanelRows * K);
    for (int p = npanels * me / nth; p < npanels * (me + 1) / nth; ++p) {
      const int n0 = p * kPanelRows, nb = std::min(kPanelRows, N - n0);
      widen(W.row_ptr(n0), 1.f, panel.data(), (size_t)nb * K);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, nb, K, 1.0f, x, K, panel.data(), K,
                  accumulate ? 1.0f : 0.0f, y + n0, N);
    }
  });
}
}  // namespace

void matmul_ld(const float* x, int ldx, const float* W, int ldw, float* y, int ldy, int T, int K, int N,
               bool accumulate) {
  if (T <= 0 || N <= 0) return;
  if (T >= kGemvMaxRows) {
    // Fixed row blocks: the bits do not depend on the thread count or BLAS's threading (tensor/gemm.h).
    gemm_fixed_blocks(false, true, T, N, K, 1.0f, x, ldx, W, ldw, accumulate ? 1.0f : 0.0f, y, ldy);
    return;
  }
  gemv(x, ldx, W, DType::F32, (size_t)ldw, y, ldy, T, K, N, accumulate);
}

void matmul(const float* x, const float* W, float* y, int T, int K, int N, bool accumulate) {
  matmul_ld(x, K, W, K, y, N, T, K, N, accumulate);
}

namespace {
// Block-quantized W: GEMV with the activation quantized to 8 bits (decode,
// batches, speculative rows: one pass over W for up to kQuantGemvMaxRows rows),
// sgemm on dequantized panels above.
constexpr int kQuantGemvMaxRows = 32;
void matmul_quant(const float* x, const Weight& W, float* y, int T, bool accumulate) {
  const int K = (int)W.cols, N = (int)W.rows;
  const size_t rb = W.row_bytes();
  float* out = y;
  thread_local std::vector<float> acc;
  if (accumulate) {
    acc.resize((size_t)T * N);
    out = acc.data();
  }
  if (T <= kQuantGemvMaxRows)
    quant::gemv(W.qtype, W.data, rb, N, K, x, T, out);
  else
    quant::gemm(W.qtype, W.data, rb, N, K, x, T, out);
  if (accumulate) add(y, out, y, (size_t)T * N);
}
}  // namespace

void matmul(const float* x, const Weight& W, float* y, int T, bool accumulate) {
  const int K = (int)W.cols, N = (int)W.rows;
  if (W.quantized()) {
    if (T <= 0 || N <= 0) return;
    return matmul_quant(x, W, y, T, accumulate);
  }
  if (W.dtype == DType::F32) return matmul_ld(x, K, static_cast<const float*>(W.data), K, y, N, T, K, N, accumulate);
  if (!is_kernel_dtype(W.dtype)) fail("matmul: no kernel for ", dtype_name(W.dtype), " weights");
  if (T <= 0 || N <= 0) return;
  if (T >= kGemvMaxRows) return gemm_widened(x, W, y, T, accumulate);
  gemv(x, K, W.data, W.dtype, (size_t)K, y, N, T, K, N, accumulate);
}

int matmul_rowwise_max_rows(const Weight& W) { return W.quantized() ? kQuantGemvMaxRows : kGemvMaxRows - 1; }

void matmul_rowwise(const float* x, const Weight& W, float* y, int T) {
  const int K = (int)W.cols, N = (int)W.rows;
  if (T <= 0 || N <= 0) return;
  // quant::gemv computes its rows independently of each other (tested).
  if (W.quantized()) return quant::gemv(W.qtype, W.data, W.row_bytes(), N, K, x, T, y);
  if (W.dtype != DType::F32 && !is_kernel_dtype(W.dtype))
    fail("matmul: no kernel for ", dtype_name(W.dtype), " weights");
  gemv(x, K, W.data, W.dtype, (size_t)K, y, N, T, K, N, false);
}

void gather_rows(const Weight& W, const int* ids, int T, float scale, float* out) {
  if (W.quantized()) {
    const size_t d = (size_t)W.cols;
    for (int t = 0; t < T; ++t) {
      float* o = out + (size_t)t * d;
      quant::dequantize_row(W.qtype, W.row_ptr(ids[t]), o, (int64_t)d);
      for (size_t i = 0; i < d; ++i) o[i] *= scale;
    }
    return;
  }
  const simd::WidenFn widen = simd::widen_fn(W.dtype);
  const size_t d = (size_t)W.cols;
  for (int t = 0; t < T; ++t) widen(W.row_ptr(ids[t]), scale, out + (size_t)t * d, d);
}

void axpy_row(float a, const Weight& W, int64_t r, float* y) {
  if (W.quantized()) {
    thread_local std::vector<float> row;
    row.resize((size_t)W.cols);
    quant::dequantize_row(W.qtype, W.row_ptr(r), row.data(), W.cols);
    return axpy(a, row.data(), y, (size_t)W.cols);
  }
  simd::axpy_fn(W.dtype)(a, W.row_ptr(r), y, (size_t)W.cols);
}

void to_f32(const Weight& W, float* out) {
  if (W.quantized()) return quant::dequantize_rows(W.qtype, W.data, W.row_bytes(), 0, (int)W.rows, (int)W.cols, out);
  simd::widen_fn(W.dtype)(W.data, 1.f, out, (size_t)W.numel());
}

void add(const float* a, const float* b, float* y, size_t n) {
  parallel_for((int64_t)n, n > 262144, [&](int64_t i) { y[i] = a[i] + b[i]; });
}

void add_bias(float* x, int T, int n, int ld, const float* bias) {
  parallel_for(T, (int64_t)T * n > 65536, [&](int64_t t) {
    for (int i = 0; i < n; ++i) x[(size_t)t * ld + i] += bias[i];
  });
}

void scale(const float* x, float s, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = x[i] * s;
}

void add_scaled(float a, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void log_softmax(const float* x, float* out, int n) {
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp((double)x[i] - mx);
  const float ls = (float)std::log(s);
  for (int i = 0; i < n; ++i) out[i] = x[i] - mx - ls;
}

double relative_change(const float* cur, const float* prev, int n) {
  double dd = 0, nn = 0;
  for (int j = 0; j < n; ++j) {
    const double x = cur[j], y = prev[j];
    dd += (x - y) * (x - y);
    nn += x * x;
  }
  return std::sqrt(dd) / std::sqrt(nn);
}

void concat_rows(const float* a, int da, const float* b, int db, int T, float* out) {
  const size_t w = (size_t)da + db;
  for (int t = 0; t < T; ++t) {
    std::memcpy(out + (size_t)t * w, a + (size_t)t * da, sizeof(float) * da);
    std::memcpy(out + (size_t)t * w + da, b + (size_t)t * db, sizeof(float) * db);
  }
}

float inv_rms(const float* x, int d, float eps) {
  // Each square is exact in double; eight partial sums instead of one chain
  // of d dependent additions (0.8 us per row of 512 on the decode path).
  double s[8] = {};
  int i = 0;
  for (; i + 8 <= d; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += (double)x[i + k] * x[i + k];
  double ss = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < d; ++i) ss += (double)x[i] * x[i];
  return 1.0f / std::sqrt((float)(ss / d) + eps);
}

namespace {
inline void rmsnorm_row(const float* x, const float* w, float* y, int d, float eps) {
  const float r = inv_rms(x, d, eps);
  for (int i = 0; i < d; ++i) y[i] = (x[i] * r) * w[i];
}
}  // namespace

void rmsnorm(const float* x, const float* w, float* y, int T, int d, float eps) {
  parallel_for(T, rows_in_parallel(T, d),
               [&](int64_t t) { rmsnorm_row(x + (size_t)t * d, w, y + (size_t)t * d, d, eps); });
}

void add_rmsnorm(const float* a, const float* b, float* sum, const float* w1, float* y, const float* w2, float* y2,
                 int T, int d, float eps) {
  parallel_for(T, rows_in_parallel(T, d), [&](int64_t t) {
    const size_t o = (size_t)t * d;
    for (int i = 0; i < d; ++i) sum[o + i] = a[o + i] + b[o + i];
    rmsnorm_row(sum + o, w1, y + o, d, eps);
    if (w2) rmsnorm_row(y + o, w2, y2 + o, d, eps);
  });
}

void rmsnorm_add(float* r, const float* wr, float* x, const float* wx, float* y, int T, int d, float eps) {
  parallel_for(T, rows_in_parallel(T, d), [&](int64_t t) {
    const size_t o = (size_t)t * d;
    rmsnorm_row(r + o, wr, r + o, d, eps);
    for (int i = 0; i < d; ++i) x[o + i] = x[o + i] + r[o + i];
    if (wx) rmsnorm_row(x + o, wx, y + o, d, eps);
  });
}

namespace {
// Rotates the pairs of each head by the angle of its position: (2i, 2i+1)
// (interleaved, Huginn) or (i, i + hd/2) (half-split, Llama/NeoX/Ouro).
template <bool kHalfSplit>
void rope_pairs(float* x, int T, int n_heads, int head_dim, int row_stride, const int* pos, const float* cos_tab,
                const float* sin_tab, const float* bias = nullptr) {
  const int half = head_dim / 2;
  parallel_for(T, rows_in_parallel(T, n_heads * head_dim), [&](int64_t t) {
    const float* c = cos_tab + (size_t)pos[t] * half;
    const float* s = sin_tab + (size_t)pos[t] * half;
    float* xt = x + (size_t)t * row_stride;
    if (bias)
      for (int i = 0; i < n_heads * head_dim; ++i) xt[i] += bias[i];
    for (int h = 0; h < n_heads; ++h) {
      float* xh = xt + h * head_dim;
      for (int i = 0; i < half; ++i) {
        const int i0 = kHalfSplit ? i : 2 * i, i1 = kHalfSplit ? i + half : 2 * i + 1;
        const float a = xh[i0], b = xh[i1];
        xh[i0] = a * c[i] - b * s[i];
        xh[i1] = b * c[i] + a * s[i];
      }
    }
  });
}
}  // namespace

void rope(float* x, int T, int n_heads, int head_dim, int row_stride, const int* pos, const float* cos_tab,
          const float* sin_tab) {
  rope_pairs<false>(x, T, n_heads, head_dim, row_stride, pos, cos_tab, sin_tab);
}

void bias_rope(float* x, int T, int n_heads, int head_dim, int row_stride, const float* bias, const int* pos,
               const float* cos_tab, const float* sin_tab) {
  rope_pairs<false>(x, T, n_heads, head_dim, row_stride, pos, cos_tab, sin_tab, bias);
}

void rope_half(float* x, int T, int n_heads, int head_dim, int row_stride, const int* pos, const float* cos_tab,
               const float* sin_tab) {
  rope_pairs<true>(x, T, n_heads, head_dim, row_stride, pos, cos_tab, sin_tab);
}

void swiglu(const float* h, float* out, int T, int I) {
  parallel_for(T, rows_in_parallel(T, I), [&](int64_t t) {
    const float* g = h + (size_t)t * 2 * I;
    const float* u = g + I;
    float* o = out + (size_t)t * I;
    swiglu_row(g, u, o, (size_t)I);
  });
}

void softmax(float* x, int n) {
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = std::max(m, x[i]);
  exp_shift(x, m, (size_t)n);
  float s = 0;
  for (int i = 0; i < n; ++i) s += x[i];
  const float inv = 1.0f / s;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

namespace {
// E: float or uint16_t (f16) entries (kern::dots / kern::axpys per type).
template <class E>
void attention_head_t(const float* q, const E* const* keys, const E* const* vals, int nk, int head_dim, size_t kv_off,
                      float* out, float* scratch) {
  // The values' lines are requested while the scores are computed: axpys
  // adds the rows into one chain of registers, so its own loads run only a
  // few rows ahead, and a decode row's cache is cold (the weights streamed
  // since the last token).
  // measured (perf, bench_generate -t 2 --batch-sizes 8 --batch-depths 8 --gen 32):
  // axpys 1020-1030 samples -> 300-360, plus 210-250 for this loop.
  constexpr int kLine = 64 / sizeof(E);
  for (int j = 0; j < nk; ++j)
    for (int e = 0; e < head_dim; e += kLine) __builtin_prefetch(vals[j] + kv_off + e, /*rw=*/0, /*locality=*/2);
  dots(q, keys, kv_off, nk, head_dim, 1.0f / std::sqrt((float)head_dim), scratch);
  softmax(scratch, nk);
  std::memset(out, 0, sizeof(float) * head_dim);
  axpys(scratch, vals, kv_off, nk, out, head_dim);
}

// Four queries' scores are each the query's own dots (a shared pass over the
// keys, with the 16 accumulators and reductions each dot's bits need, ran
// slower), and their values go through one axpys4: each value row read once.
// measured (perf, bench_forward -t 2 --prompt 512 --depths 8): attention
// 11.5% of samples -> 7.6% (axpys 3.3% -> 1.2%, the value prefetch 2.0% ->
// 0.35%); prefill 442-494 -> 523-526 tokens/s, runs alternated.
template <class E>
void attention_head4_t(const float* const* q, const E* const* keys, const E* const* vals, const int* nk, int head_dim,
                       size_t kv_off, float* const* out, float* scratch, size_t ld) {
  const int most = std::max(std::max(nk[0], nk[1]), std::max(nk[2], nk[3]));
  constexpr int kLine = 64 / sizeof(E);
  for (int j = 0; j < most; ++j)  // as in attention_head_t
    for (int e = 0; e < head_dim; e += kLine) __builtin_prefetch(vals[j] + kv_off + e, /*rw=*/0, /*locality=*/2);
  float* sc[4] = {scratch, scratch + ld, scratch + 2 * ld, scratch + 3 * ld};
  size_t n[4];
  for (int i = 0; i < 4; ++i) {
    dots(q[i], keys, kv_off, nk[i], head_dim, 1.0f / std::sqrt((float)head_dim), sc[i]);
    softmax(sc[i], nk[i]);
    std::memset(out[i], 0, sizeof(float) * head_dim);
    n[i] = (size_t)nk[i];
  }
  axpys4(sc, vals, kv_off, n, out, (size_t)head_dim);
}
}  // namespace

void attention_head(const float* q, const void* const* keys, const void* const* vals, DType kv_type, int nk,
                    int head_dim, size_t kv_off, float* out, float* scratch) {
  if (kv_type == DType::F16)
    return attention_head_t(q, reinterpret_cast<const uint16_t* const*>(keys),
                            reinterpret_cast<const uint16_t* const*>(vals), nk, head_dim, kv_off, out, scratch);
  attention_head_t(q, reinterpret_cast<const float* const*>(keys), reinterpret_cast<const float* const*>(vals), nk,
                   head_dim, kv_off, out, scratch);
}

void attention_head4(const float* const* q, const void* const* keys, const void* const* vals, DType kv_type,
                     const int* nk, int head_dim, size_t kv_off, float* const* out, float* scratch, size_t ld) {
  if (kv_type == DType::F16)
    return attention_head4_t(q, reinterpret_cast<const uint16_t* const*>(keys),
                             reinterpret_cast<const uint16_t* const*>(vals), nk, head_dim, kv_off, out, scratch, ld);
  attention_head4_t(q, reinterpret_cast<const float* const*>(keys), reinterpret_cast<const float* const*>(vals), nk,
                    head_dim, kv_off, out, scratch, ld);
}

void attention(const float* q, int ldq, const float* const* keys, const float* const* vals, int Tq, int Lk, int n_heads,
               int head_dim, int causal_offset, float* out, float* scratch, int n_kv_heads) {
  const int group = n_kv_heads > 0 ? n_heads / n_kv_heads : 1;
  const int d = n_heads * head_dim;
  const int work = Tq * n_heads;
  // A decode row's heads over fewer than ~64 keys are a few microseconds of
  // work: less than waking the other threads (each (row, head) is computed
  // the same on any thread, so the bits do not depend on this choice).
  parallel_for_dynamic(work, (int64_t)work * Lk * head_dim > 32768, [&](int w, int thread) {
    const int i = w / n_heads, h = w % n_heads;
    const int nk = causal_offset < 0 ? Lk : std::min(Lk, i + causal_offset + 1);
    attention_head(q + (size_t)i * ldq + h * head_dim, reinterpret_cast<const void* const*>(keys),
                   reinterpret_cast<const void* const*>(vals), DType::F32, nk, head_dim, (size_t)(h / group) * head_dim,
                   out + (size_t)i * d + h * head_dim, scratch + (size_t)thread * Lk);
  });
}

}  // namespace huginn::kern
