// The training forward and backward (llm.c style): every activation the
// backward needs is saved in buffers allocated once; the forward mirrors
// Model::block / core_iteration / head operation for operation (same kernels,
// same order), the backward differentiates each op by hand.
#include <cmath>
#include <cstring>
#include <random>

#include "huginn/common.h"
#include "huginn/train.h"
#include "tensor/backward.h"
#include "tensor/kernels.h"

namespace huginn {

namespace {
// Saved activations of one sandwich block application.
struct BlockActs {
  float *x_in, *qkv, *att, *r1, *x1, *r2, *h, *act;
};

void add_into(float* y, const float* a, const float* b, size_t n) {
#pragma omp parallel for schedule(static) if (n > 262144)
  for (size_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
}  // namespace

struct GradEngine::Impl {
  ModelConfig c;
  int Bmax, T, Kmax;
  size_t N;  // Bmax * T
  int d, I, H, hd, V;
  std::vector<float> arena;
  std::vector<BlockActs> pre, core, coda;  // core: Kmax * n_core, iteration-major
  BlockActs scratch;                      // no-grad iterations and loss-only
  float *e, *s, *cat, *s_fin, *xc, *xf, *logits;
  std::vector<float*> s_in;  // per graded iteration
  // scratch
  float *xn, *tmp, *dA, *dB, *dxn, *dact, *dh, *datt, *dqkv, *de, *ds, *ds2;
  std::vector<float> cos_tab, sin_tab, nsin_tab;
  std::vector<int> pos;
  std::vector<float> state_grad, emb_grad;
  size_t act_floats = 0;
  bool grad_ready = false;

  Impl(const ModelConfig& cfg, int B, int T_, int K) : c(cfg), Bmax(B), T(T_), Kmax(K) {
    if (B <= 0 || T <= 0) fail("training batch and sequence length must be positive (got ", B, ", ", T, ")");
    if (K < 0) fail("backprop depth must be >= 0, got ", K);
    if (T > c.block_size) fail("sequence length ", T, " exceeds the model's context of ", c.block_size, " (block_size)");
    N = (size_t)B * T;
    d = c.n_embd, I = c.intermediate_size, H = c.n_heads, hd = c.head_dim, V = c.vocab_size;
    const size_t per_block = N * (8 * (size_t)d + 3 * (size_t)I);
    const size_t nblocks = c.n_prelude + (size_t)K * c.n_core + c.n_coda + 1;
    size_t total = per_block * nblocks;
    act_floats = total;
    total += N * d * (5 + (size_t)K);  // e, s, s_fin, xc, xf, s_in[K]
    total += N * 2 * d;                // cat
    total += N * (size_t)V;            // logits
    total += N * d * 9 + N * (size_t)I + N * 2 * (size_t)I + N * 3 * (size_t)d;  // scratch
    arena.assign(total, 0.f);
    float* p = arena.data();
    auto take = [&](size_t n) {
      float* r = p;
      p += n;
      return r;
    };
    auto block = [&]() {
      BlockActs a;
      a.x_in = take(N * d);
      a.qkv = take(N * 3 * d);
      a.att = take(N * d);
      a.r1 = take(N * d);
      a.x1 = take(N * d);
      a.r2 = take(N * d);
      a.h = take(N * 2 * I);
      a.act = take(N * I);
      return a;
    };
    for (int i = 0; i < c.n_prelude; ++i) pre.push_back(block());
    for (int i = 0; i < K * c.n_core; ++i) core.push_back(block());
    for (int i = 0; i < c.n_coda; ++i) coda.push_back(block());
    scratch = block();
    e = take(N * d), s = take(N * d), s_fin = take(N * d), xc = take(N * d), xf = take(N * d);
    for (int i = 0; i < K; ++i) s_in.push_back(take(N * d));
    cat = take(N * 2 * d);
    logits = take(N * V);
    xn = take(N * d), tmp = take(N * d), dA = take(N * d), dB = take(N * d), dxn = take(N * d);
    datt = take(N * d), de = take(N * d), ds = take(N * d), ds2 = take(N * d);
    dact = take(N * I), dh = take(N * 2 * I), dqkv = take(N * 3 * d);
    // RoPE tables exactly as Model::build_rope computes them from rope_base.
    const int half = hd / 2;
    cos_tab.assign((size_t)T * half, 0.f);
    sin_tab.assign((size_t)T * half, 0.f);
    nsin_tab.assign((size_t)T * half, 0.f);
    for (int i = 0; i < half; ++i) {
      const float inv = 1.0f / std::pow(c.rope_base, (float)(2 * i) / (float)hd);
      for (int t = 0; t < T; ++t) {
        const float a = (float)t * inv;
        cos_tab[(size_t)t * half + i] = (float)std::cos((double)a);
        sin_tab[(size_t)t * half + i] = (float)std::sin((double)a);
        nsin_tab[(size_t)t * half + i] = -sin_tab[(size_t)t * half + i];
      }
    }
    pos.resize(N);
    for (size_t i = 0; i < N; ++i) pos[i] = (int)(i % T);
  }

  // ---- forward pieces (mirror Model::block) ----
  void block_fwd(const BlockWeights& w, float* x, const BlockActs& A, int B) {
    const size_t n = (size_t)B * T;
    std::memcpy(A.x_in, x, sizeof(float) * n * d);
    kern::rmsnorm(x, w.norm_1, xn, (int)n, d, c.norm_eps);
    kern::matmul(xn, w.wqkv, A.qkv, (int)n, d, 3 * d);
    float* q = A.qkv;
    float* k = q + d;
    if (w.qk_bias) {
#pragma omp parallel for schedule(static) if (n * d > 65536)
      for (size_t t = 0; t < n; ++t)
        for (int i = 0; i < d; ++i) {
          q[t * 3 * d + i] += w.qk_bias[i];
          k[t * 3 * d + i] += w.qk_bias[d + i];
        }
    }
    kern::rope(q, (int)n, H, hd, 3 * d, pos.data(), cos_tab.data(), sin_tab.data());
    kern::rope(k, (int)n, H, hd, 3 * d, pos.data(), cos_tab.data(), sin_tab.data());
    // kern::attention's computation, batched as sgemm per (sequence, head)
    // (tests/test_backward.cpp checks the two agree).
    bwd::attention_forward(A.qkv, A.qkv + d, A.qkv + 2 * d, 3 * d, A.att, B, T, H, hd);
    kern::matmul(A.att, w.attn_proj, tmp, (int)n, d, d);
    add_into(A.r1, tmp, A.x_in, n * d);
    kern::rmsnorm(A.r1, w.norm_2, A.x1, (int)n, d, c.norm_eps);
    kern::rmsnorm(A.x1, w.norm_3, xn, (int)n, d, c.norm_eps);
    kern::matmul(xn, w.fc, A.h, (int)n, d, 2 * I);
    kern::swiglu(A.h, A.act, (int)n, I);
    kern::matmul(A.act, w.mlp_proj, tmp, (int)n, I, d);
    add_into(A.r2, tmp, A.x1, n * d);
    kern::rmsnorm(A.r2, w.norm_4, x, (int)n, d, c.norm_eps);
  }

  // s <- core(adapter([s, e])), saving into acts[0..n_core-1].
  void iteration_fwd(const ModelWeights& w, const BlockActs* acts, int B) {
    const size_t n = (size_t)B * T;
    for (size_t t = 0; t < n; ++t) {
      std::memcpy(cat + t * 2 * d, s + t * d, sizeof(float) * d);
      std::memcpy(cat + t * 2 * d + d, e + t * d, sizeof(float) * d);
    }
    kern::matmul(cat, w.adapter, s, (int)n, 2 * d, d);
    for (int l = 0; l < c.n_core; ++l) block_fwd(w.core[l], s, acts ? acts[l] : scratch, B);
  }

  void embed(const ModelWeights& w, const int* ids, int B) {
    const size_t n = (size_t)B * T;
    const float scale = std::sqrt((float)d);
    for (size_t t = 0; t < n; ++t) {
      if (ids[t] < 0 || ids[t] >= V) fail("token id ", ids[t], " is outside the vocabulary (0..", V - 1, ")");
      const float* row = w.wte + (size_t)ids[t] * d;
      for (int i = 0; i < d; ++i) e[t * d + i] = row[i] * scale;
    }
  }

  void init_states(const float* input_states, float init_scale, const uint64_t* seeds, int B) {
    const size_t per = (size_t)T * d;
    if (input_states) {
      std::memcpy(s, input_states, sizeof(float) * per * B);
      return;
    }
    if (init_scale == 0.f) {
      std::fill(s, s + per * B, 0.f);
      return;
    }
    // As Model::init_state, one generator per sequence.
    const float dd = (float)d;
    const float scale = std::sqrt(2.0f / (5.0f * dd)) * init_scale * std::sqrt(dd);
    for (int b = 0; b < B; ++b) {
      std::mt19937_64 rng(seeds ? seeds[b] : (uint64_t)b);
      std::normal_distribution<float> nd(0.f, 1.f);
      float* sb = s + (size_t)b * per;
      for (size_t i = 0; i < per; ++i) {
        float z;
        do z = nd(rng);
        while (std::fabs(z) > 3.f);
        sb[i] = z * scale;
      }
    }
  }

  void check_labels(const int* labels, int B) {
    for (size_t t = 0; t < (size_t)B * T; ++t)
      if (labels[t] != kIgnoreLabel && (labels[t] < 0 || labels[t] >= V))
        fail("label ", labels[t], " at position ", t, " is outside the vocabulary (0..", V - 1, ")");
  }

  // ---- backward pieces ----
  // dx: gradient of the block output on entry, of the block input on exit.
  void block_bwd(const BlockWeights& w, BlockWeights& g, float* dx, const BlockActs& A, int B) {
    const int n = B * T;
    const float eps = c.norm_eps;
    float* dr2 = dA;
    bwd::rmsnorm_backward(A.r2, w.norm_4, dx, dr2, const_cast<float*>(g.norm_4), n, d, eps, false);
    kern::rmsnorm(A.x1, w.norm_3, xn, n, d, eps);
    bwd::linear_weight_grad(dr2, d, A.act, I, const_cast<float*>(g.mlp_proj), I, n, I, d);
    bwd::linear_input_grad(dr2, d, w.mlp_proj, I, dact, I, n, I, d, false);
    bwd::swiglu_backward(A.h, dact, dh, n, I);
    bwd::linear_weight_grad(dh, 2 * I, xn, d, const_cast<float*>(g.fc), d, n, d, 2 * I);
    bwd::linear_input_grad(dh, 2 * I, w.fc, d, dxn, d, n, d, 2 * I, false);
    float* dx1 = dB;
    std::memcpy(dx1, dr2, sizeof(float) * n * d);
    bwd::rmsnorm_backward(A.x1, w.norm_3, dxn, dx1, const_cast<float*>(g.norm_3), n, d, eps, true);
    float* dr1 = dA;
    bwd::rmsnorm_backward(A.r1, w.norm_2, dx1, dr1, const_cast<float*>(g.norm_2), n, d, eps, false);
    bwd::linear_weight_grad(dr1, d, A.att, d, const_cast<float*>(g.attn_proj), d, n, d, d);
    bwd::linear_input_grad(dr1, d, w.attn_proj, d, datt, d, n, d, d, false);
    bwd::attention_backward(A.qkv, A.qkv + d, A.qkv + 2 * d, 3 * d, A.att, datt, dqkv, dqkv + d, dqkv + 2 * d, 3 * d,
                            B, T, H, hd);
    // RoPE is a rotation: its backward rotates by the negative angle.
    kern::rope(dqkv, n, H, hd, 3 * d, pos.data(), cos_tab.data(), nsin_tab.data());
    kern::rope(dqkv + d, n, H, hd, 3 * d, pos.data(), cos_tab.data(), nsin_tab.data());
    if (w.qk_bias) {
      float* gb = const_cast<float*>(g.qk_bias);
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 65536)
      for (int i = 0; i < 2 * d; ++i) {
        double acc = 0;
        for (int t = 0; t < n; ++t) acc += dqkv[(size_t)t * 3 * d + i];
        gb[i] += (float)acc;
      }
    }
    kern::rmsnorm(A.x_in, w.norm_1, xn, n, d, eps);
    bwd::linear_weight_grad(dqkv, 3 * d, xn, d, const_cast<float*>(g.wqkv), d, n, d, 3 * d);
    bwd::linear_input_grad(dqkv, 3 * d, w.wqkv, d, dxn, d, n, d, 3 * d, false);
    std::memcpy(dx, dr1, sizeof(float) * n * d);
    bwd::rmsnorm_backward(A.x_in, w.norm_1, dxn, dx, const_cast<float*>(g.norm_1), n, d, eps, true);
  }

  // The head's forward from s (raw final state): latent, coda, ln_f, logits.
  void head_fwd(const ModelWeights& w, bool save, int B) {
    const int n = B * T;
    float* x = dB;  // coda residual stream
    kern::rmsnorm(s, w.ln_f, x, n, d, c.norm_eps);
    for (int j = 0; j < c.n_coda; ++j) block_fwd(w.coda[j], x, save ? coda[j] : scratch, B);
    std::memcpy(xc, x, sizeof(float) * n * d);
    kern::rmsnorm(xc, w.ln_f, xf, n, d, c.norm_eps);
    kern::matmul(xf, w.lm_head, logits, n, d, V);
  }

  Result run(const float* params, float* grads, const int* ids, const int* labels, int B, RecurrenceSplit split,
             float loss_scale, const float* input_states, float init_scale, const uint64_t* seeds) {
    if (B <= 0 || B > Bmax) fail("batch of ", B, " sequences, the engine holds at most ", Bmax);
    if (split.no_grad < 0 || split.grad < 0) fail("iteration counts must be >= 0");
    const bool want_grad = grads != nullptr;
    if (want_grad && split.grad > Kmax)
      fail(split.grad, " iterations with gradient, the engine was sized for ", Kmax);
    check_labels(labels, B);
    const ModelWeights w = bind_weights(c, params);
    const int n = B * T;
    embed(w, ids, B);
    for (int j = 0; j < c.n_prelude; ++j) block_fwd(w.prelude[j], e, want_grad ? pre[j] : scratch, B);
    init_states(input_states, init_scale, seeds, B);
    for (int it = 0; it < split.no_grad; ++it) iteration_fwd(w, nullptr, B);
    const int k = want_grad ? split.grad : 0;
    if (!want_grad)
      for (int it = 0; it < split.grad; ++it) iteration_fwd(w, nullptr, B);
    for (int g = 0; g < k; ++g) {
      std::memcpy(s_in[g], s, sizeof(float) * n * d);
      iteration_fwd(w, &core[(size_t)g * c.n_core], B);
    }
    std::memcpy(s_fin, s, sizeof(float) * n * d);
    head_fwd(w, want_grad, B);
    Result r;
    if (!want_grad) {
      r.loss_sum = bwd::cross_entropy_loss(logits, labels, n, V, kIgnoreLabel, &r.n_valid);
      return r;
    }
    r.loss_sum = bwd::cross_entropy_backward(logits, labels, n, V, loss_scale, kIgnoreLabel, &r.n_valid);

    ModelWeights gw = bind_weights(c, grads);
    // logits = xf · lm_headᵀ
    bwd::linear_weight_grad(logits, V, xf, d, const_cast<float*>(gw.lm_head), d, n, d, V);
    float* dx = ds2;
    bwd::linear_input_grad(logits, V, w.lm_head, d, dxn, d, n, d, V, false);
    bwd::rmsnorm_backward(xc, w.ln_f, dxn, dx, const_cast<float*>(gw.ln_f), n, d, c.norm_eps, false);
    for (int j = c.n_coda - 1; j >= 0; --j) block_bwd(w.coda[j], gw.coda[j], dx, coda[j], B);
    bwd::rmsnorm_backward(s_fin, w.ln_f, dx, ds, const_cast<float*>(gw.ln_f), n, d, c.norm_eps, false);
    std::fill(de, de + (size_t)n * d, 0.f);
    float* gad = const_cast<float*>(gw.adapter);
    for (int g = k - 1; g >= 0; --g) {
      for (int l = c.n_core - 1; l >= 0; --l) block_bwd(w.core[l], gw.core[l], ds, core[(size_t)g * c.n_core + l], B);
      // adapter output y = s_in · A[:, :d]ᵀ + e · A[:, d:]ᵀ
      bwd::linear_weight_grad(ds, d, s_in[g], d, gad, 2 * d, n, d, d);
      bwd::linear_weight_grad(ds, d, e, d, gad + d, 2 * d, n, d, d);
      bwd::linear_input_grad(ds, d, w.adapter + d, 2 * d, de, d, n, d, d, true);
      bwd::linear_input_grad(ds, d, w.adapter, 2 * d, ds2, d, n, d, d, false);
      std::swap(ds, ds2);
    }
    state_grad.assign((size_t)n * d, 0.f);
    if (split.no_grad == 0 && k > 0) std::memcpy(state_grad.data(), ds, sizeof(float) * n * d);
    // Prelude and embedding.
    float* dpre = ds;
    std::memcpy(dpre, de, sizeof(float) * n * d);
    if (k > 0)
      for (int j = c.n_prelude - 1; j >= 0; --j) block_bwd(w.prelude[j], gw.prelude[j], dpre, pre[j], B);
    else
      std::fill(dpre, dpre + (size_t)n * d, 0.f);
    emb_grad.assign(dpre, dpre + (size_t)n * d);
    float* gwte = const_cast<float*>(gw.wte);
    const float scale = std::sqrt((float)d);
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 65536)
    for (int i = 0; i < d; ++i)
      for (int t = 0; t < n; ++t) gwte[(size_t)ids[t] * d + i] += scale * dpre[(size_t)t * d + i];
    // Restore pointers swapped above so the next call starts from the same layout.
    if ((k & 1) == 1) std::swap(ds, ds2);
    return r;
  }
};

GradEngine::GradEngine(const ModelConfig& c, int max_batch, int T, int max_grad_iters)
    : p_(new Impl(c, max_batch, T, max_grad_iters)) {}
GradEngine::~GradEngine() = default;

GradEngine::Result GradEngine::forward_backward(const float* params, float* grads, const int* ids, const int* labels,
                                                int B, RecurrenceSplit split, float loss_scale,
                                                const float* input_states, float init_scale,
                                                const uint64_t* state_seeds) {
  if (!grads) fail("forward_backward: no gradient buffer");
  return p_->run(params, grads, ids, labels, B, split, loss_scale, input_states, init_scale, state_seeds);
}

GradEngine::Result GradEngine::loss(const float* params, const int* ids, const int* labels, int B, int steps,
                                    const float* input_states, float init_scale, const uint64_t* state_seeds) {
  return p_->run(params, nullptr, ids, labels, B, {steps, 0}, 1.f, input_states, init_scale, state_seeds);
}

const std::vector<float>& GradEngine::input_state_grad() const { return p_->state_grad; }
const std::vector<float>& GradEngine::embedding_output_grad() const { return p_->emb_grad; }
int GradEngine::seq_len() const { return p_->T; }
int GradEngine::max_batch() const { return p_->Bmax; }
int GradEngine::max_grad_iters() const { return p_->Kmax; }
size_t GradEngine::activation_bytes() const { return p_->act_floats * sizeof(float); }

}  // namespace huginn
