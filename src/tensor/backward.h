// Float32 backward kernels for training. Layouts follow kernels.h: activations
// are row-major [T, width], a Linear weight W is [out, in] and computes
// y = x · Wᵀ. Every "accumulate" argument adds into the destination (weight
// gradients are summed over recurrence iterations and micro-batches).
// Results do not depend on the thread count nor on the BLAS kernel's threading.
#pragma once
#include <cstddef>
#include <cstdint>

namespace huginn::bwd {

// Linear layer y[T, N] = x[T, K] · W[N, K]ᵀ.
// dW[N, K] += dyᵀ · x  (kern::gemm_fixed_blocks: independent of the thread count)
void linear_weight_grad(const float* dy, int ldy, const float* x, int ldx, float* dW, int lddw, int T, int K, int N);
// dx[T, K] (+)= dy[T, N] · W[N, K]  (kern::gemm_fixed_blocks); ldw is W's row stride.
void linear_input_grad(const float* dy, int ldy, const float* W, int ldw, float* dx, int lddx, int T, int K, int N,
                       bool accumulate);

// y = x * rsqrt(mean(x^2) + eps) * w. Given dy: dx (+)= ..., dw += ....
// dw accumulates partials in double per fixed chunk of rows, in a fixed order.
void rmsnorm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, int T, int d, float eps,
                      bool accumulate_dx);

// out = silu(h[:, :I]) * h[:, I:]; dh[T, 2I] = d/dh of <dout, out>.
void swiglu_backward(const float* h, const float* dout, float* dh, int T, int I);

// The training forward of causal self-attention over B sequences of T rows:
// the same result as kern::attention (softmax(q·kᵀ/√hd)·v per head, causal),
// computed per (sequence, head) with sgemm. out: [B*T, H*hd].
void attention_forward(const float* q, const float* k, const float* v, int ld, float* out, int B, int T, int n_heads,
                       int head_dim);

// Causal self-attention of B sequences of T rows each, every head, in the
// layout of the inference forward (q, k, v rows of stride ld, heads at columns
// h*hd; out and dout [B*T, H*hd]). Recomputes the softmax from q and k and
// writes dq, dk, dv (same layout as q, k, v, stride ldd; overwritten).
// Parallel over (sequence, head); the products are sgemm calls.
void attention_backward(const float* q, const float* k, const float* v, int ld, const float* out, const float* dout,
                        float* dq, float* dk, float* dv, int ldd, int B, int T, int n_heads, int head_dim);

// Mean cross-entropy pieces for rows of logits [T, V]: for each row whose
// label is not ignore_label, adds logsumexp - logit[label] to the returned sum
// and overwrites the row with scale * (softmax - onehot); ignored rows become
// zero. *n_valid receives the number of scored rows.
double cross_entropy_backward(float* logits, const int* labels, int T, int V, float scale, int ignore_label,
                              int* n_valid);
// The summed loss only (no gradient); logits untouched.
double cross_entropy_loss(const float* logits, const int* labels, int T, int V, int ignore_label, int* n_valid);

}  // namespace huginn::bwd
