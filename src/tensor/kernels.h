// Float32 compute kernels shared by inference and training. Layouts follow
// torch: activations are row-major [T, width]; a weight W of a Linear layer is
// row-major [out, in] and the layer computes y = x · Wᵀ.
#pragma once
#include <cstddef>
#include <cstdint>

#include "huginn/weight.h"

namespace huginn::kern {

// Number of threads used by the parallel kernels (OpenMP and BLAS).
void set_threads(int n);
int threads();

// Dot product of two float arrays (SIMD, dispatched at run time).
float dot(const float* a, const float* b, size_t n);
// y[i] += a * x[i]
void axpy(float a, const float* x, float* y, size_t n);
// out = g / (1 + exp(-g)) * u, and x = exp(x - m), n floats: exp on SIMD vectors
// (Highway's polynomial, within 4 ulps of libm's: tested), NaN and inf as std::exp.
void swiglu_row(const float* g, const float* u, float* out, size_t n);
void exp_shift(float* x, float m, size_t n);
// out[j] = dot(a, rows[j] + off, n) * scale for j < nrows, and y += a[j] * (rows[j] + off)
// for j < nrows: attention's loops over cached keys and values in one call each
// (the same operations per row as dot and axpy, without a dispatch per row).
void dots(const float* a, const float* const* rows, size_t off, size_t nrows, size_t n, float scale, float* out);
void axpys(const float* a, const float* const* rows, size_t off, size_t nrows, float* y, size_t n);
// The same over rows of f16 elements (an f16 KV cache), each widened to f32
// in the register: the same bits as over the rows converted to f32.
void dots(const float* a, const uint16_t* const* rows, size_t off, size_t nrows, size_t n, float scale, float* out);
void axpys(const float* a, const uint16_t* const* rows, size_t off, size_t nrows, float* y, size_t n);
// axpys for four weight vectors a[0..3] at once (a prompt chunk's positions
// under one head): y[q] gets exactly what axpys gives a[q] over its own
// nrows[q] rows, and each row is read once for the four.
void axpys4(const float* const* a, const float* const* rows, size_t off, const size_t* nrows, float* const* y,
            size_t n);
void axpys4(const float* const* a, const uint16_t* const* rows, size_t off, const size_t* nrows, float* const* y,
            size_t n);
// out[i] = x[i] rounded to the nearest f16 (ties to even), n values.
void to_f16(const float* x, uint16_t* out, size_t n);

// y[T, N] = x[T, K] · W[N, K]ᵀ (+ y if accumulate). Small T uses a
// multithreaded memory-bound GEMV; larger T uses BLAS sgemm.
void matmul(const float* x, const float* W, float* y, int T, int K, int N, bool accumulate = false);
// The same for a typed weight W [N = rows, K = cols] (F32, BF16, F16): GEMV
// reads the stored type directly; sgemm runs on panels widened to F32. For
// BF16/F16, GEMV results equal those over the weights converted to F32.
void matmul(const float* x, const Weight& W, float* y, int T, bool accumulate = false);

// Up to this many rows, matmul(x, W, y, T) computes every row of y exactly as
// it would for that row alone (T = 1): GEMV, bitwise independent of the others.
int matmul_rowwise_max_rows(const Weight& W);
// y = x · Wᵀ (no accumulate) for any T, every row bit-identical to
// matmul(x_t, W, y_t, 1), in one pass over W: rows of different sequences
// (a decode batch) share the weight read without changing any result.
void matmul_rowwise(const float* x, const Weight& W, float* y, int T);

// out[t, :] = W[ids[t], :] * scale (an embedding lookup, widened to F32).
void gather_rows(const Weight& W, const int* ids, int T, float scale, float* out);
// y[:] += a * W[r, :]
void axpy_row(float a, const Weight& W, int64_t r, float* y);
// The whole tensor widened to F32 (numel floats).
void to_f32(const Weight& W, float* out);

// y = a + b (n floats; y may alias a or b).
void add(const float* a, const float* b, float* y, size_t n);
// x[t, i] += bias[i] for i < n, rows `ld` apart.
void add_bias(float* x, int T, int n, int ld, const float* bias);
// y[i] = x[i] * s
void scale(const float* x, float s, float* y, size_t n);
// y[i] += a * x[i], a multiply then an add (no fused multiply-add: the
// reference's rounding, unlike axpy).
void add_scaled(float a, const float* x, float* y, size_t n);
// out = log_softmax(x) over n values (max-subtracted, the sum in double).
void log_softmax(const float* x, float* out, int n);
// |cur - prev| / |cur| (L2, in double).
double relative_change(const float* cur, const float* prev, int n);
// out[t] = [a[t], b[t]]: rows of width da and db side by side.
void concat_rows(const float* a, int da, const float* b, int db, int T, float* out);
// Same with an explicit row stride for W (a column slice [N, K] of a wider
// [N, ldw] matrix, e.g. one half of the adapter).
void matmul_ld(const float* x, int ldx, const float* W, int ldw, float* y, int ldy, int T, int K, int N,
               bool accumulate);

// y = x * rsqrt(mean(x^2) + eps) * w, row by row; y may equal x.
void rmsnorm(const float* x, const float* w, float* y, int T, int d, float eps);
// A residual add and the norms after it, row by row in one parallel pass:
// sum = a + b, y = rmsnorm(sum) * w1 and, when w2 is given, y2 = rmsnorm(y) *
// w2. Each row gets exactly add's, then rmsnorm's operations (the same bits);
// sum may alias a, and y may alias a or b.
void add_rmsnorm(const float* a, const float* b, float* sum, const float* w1, float* y, const float* w2, float* y2,
                 int T, int d, float eps);
// The other order (a norm on the branch, then the residual add; Ouro): r =
// rmsnorm(r) * wr in place, x += r and, when wx is given, y = rmsnorm(x) * wx;
// each row exactly as rmsnorm, add (and rmsnorm) one after another.
void rmsnorm_add(float* r, const float* wr, float* x, const float* wx, float* y, int T, int d, float eps);
// 1 / sqrt(mean(x^2) + eps) of one row, as rmsnorm and its backward compute it
// (the squares summed in double, eight partial sums).
float inv_rms(const float* x, int d, float eps);

// Rotates adjacent pairs (2i, 2i+1) of each head by the angle of position
// pos[t]: cos/sin tables are [max_pos, hd/2]. x is [T, row_stride], the heads
// start at column 0.
void rope(float* x, int T, int n_heads, int head_dim, int row_stride, const int* pos, const float* cos_tab,
          const float* sin_tab);

// add_bias (when bias is given: n_heads * head_dim values) then rope, row by
// row in one parallel pass, the same operations as the two calls (e.g. the
// query and key heads of a fused QKV row at once, bias = their two biases).
void bias_rope(float* x, int T, int n_heads, int head_dim, int row_stride, const float* bias, const int* pos,
               const float* cos_tab, const float* sin_tab);

// The same rotation on half-split pairs (i, i + hd/2) (Llama/NeoX layout).
void rope_half(float* x, int T, int n_heads, int head_dim, int row_stride, const int* pos, const float* cos_tab,
               const float* sin_tab);

// out[t, i] = silu(h[t, i]) * h[t, I + i]
void swiglu(const float* h, float* out, int T, int I);

// In-place softmax of n values; returns nothing. Max-subtracted, float32.
void softmax(float* x, int n);

// Multi-head attention over gathered keys. q: [Tq, H*hd] (row stride ldq);
// keys[j] / vals[j]: pointers to row j of K / V ([H*hd] each), j < Lk.
// Mask: if causal_offset >= 0, query i sees keys j <= i + causal_offset;
// if causal_offset < 0 every query sees every key. out: [Tq, H*hd].
// scratch: at least threads() * Lk floats. n_kv_heads (0: n_heads): K/V rows
// hold n_kv_heads heads; query head h reads K/V head h / (n_heads / n_kv_heads).
void attention(const float* q, int ldq, const float* const* keys, const float* const* vals, int Tq, int Lk, int n_heads,
               int head_dim, int causal_offset, float* out, float* scratch, int n_kv_heads = 0);
// One query head against keys/values j < nk, the unit `attention` shares out:
// q and out point at the head's head_dim values, the head's keys and values
// start `kv_off` elements after each key's and value's pointer (within a row,
// or in a head-major cache a head's stride on); keys and values are F32 or F16
// (`kv_type`); scratch: nk floats. Callers that gather several sequences' rows
// into one parallel loop call this per (row, head) and get exactly
// attention's bits.
void attention_head(const float* q, const void* const* keys, const void* const* vals, DType kv_type, int nk,
                    int head_dim, size_t kv_off, float* out, float* scratch);
// Four query heads (q[i], out[i]) against the same keys and values, query i
// seeing keys j < nk[i] (a prompt chunk's consecutive positions under one
// head): each out[i] gets exactly attention_head's bits for q[i] and nk[i];
// the values are read once for the four. scratch: 4 x ld floats, ld >= every
// nk[i].
void attention_head4(const float* const* q, const void* const* keys, const void* const* vals, DType kv_type,
                     const int* nk, int head_dim, size_t kv_off, float* const* out, float* scratch, size_t ld);

}  // namespace huginn::kern
