// The training forward and backward (llm.c style): every activation the
// backward needs is saved in buffers allocated once. The forward is the
// model's own (Model::prelude_segments / core_iteration_segments /
// head_segments with activation sinks: one definition for inference and
// training); the backward differentiates each op by hand.
#include <cmath>
#include <cstring>
#include <random>

#include "huginn/common.h"
#include "huginn/train.h"
#include "tensor/backward.h"
#include "tensor/kernels.h"

namespace huginn {

namespace {
// A gradient buffer's view of a parameter (the flat gradient buffer is ours to write).
float* mut(const Weight& w) { return const_cast<float*>(w.f32()); }
}  // namespace

struct GradEngine::Impl {
  ModelConfig c;
  int Bmax, T, Kmax;
  size_t N;  // Bmax * T
  int d, I, H, hd, V;
  std::vector<float> arena;
  std::vector<BlockActs> pre, core, coda;  // core: Kmax * n_core, iteration-major
  // No-grad block applications (no-grad iterations, loss only) run the same
  // training schedule into one shared scratch: each block reads only its input.
  std::vector<BlockActs> scratch_pre, scratch_core, scratch_coda;
  float *e, *s, *s_fin, *xc, *xf, *logits;
  std::vector<float*> s_in;  // per graded iteration
  // scratch
  float *xn, *tmp, *dA, *dB, *dxn, *dact, *dh, *datt, *dqkv, *de, *ds, *ds2;
  std::vector<float> nsin_tab;  // RoPE's backward rotates by the negative angle
  std::vector<int> pos;
  std::vector<float> state_grad, emb_grad;
  std::unique_ptr<Model> model;  // the one forward, over the caller's flat parameters
  const float* bound = nullptr;
  Workspace ws;
  std::vector<Segment> segs;
  size_t act_floats = 0;
  bool grad_ready = false;

  Impl(const ModelConfig& cfg, int B, int T_, int K) : c(cfg), Bmax(B), T(T_), Kmax(K) {
    if (B <= 0 || T <= 0) fail("training batch and sequence length must be positive (got ", B, ", ", T, ")");
    if (K < 0) fail("backprop depth must be >= 0, got ", K);
    if (T > c.block_size)
      fail("sequence length ", T, " exceeds the model's context of ", c.block_size, " (block_size)");
    N = (size_t)B * T;
    d = c.n_embd, I = c.intermediate_size, H = c.n_heads, hd = c.head_dim, V = c.vocab_size;
    const size_t per_block = N * (8 * (size_t)d + 3 * (size_t)I);
    const size_t nblocks = c.n_prelude + (size_t)K * c.n_core + c.n_coda + 1;
    size_t total = per_block * nblocks;
    act_floats = total;
    total += N * d * (5 + (size_t)K);                                            // e, s, s_fin, xc, xf, s_in[K]
    total += N * (size_t)V;                                                      // logits
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
    const BlockActs scratch = block();
    scratch_pre.assign(c.n_prelude, scratch);
    scratch_core.assign(c.n_core, scratch);
    scratch_coda.assign(c.n_coda, scratch);
    e = take(N * d), s = take(N * d), s_fin = take(N * d), xc = take(N * d), xf = take(N * d);
    for (int i = 0; i < K; ++i) s_in.push_back(take(N * d));
    logits = take(N * V);
    xn = take(N * d), tmp = take(N * d), dA = take(N * d), dB = take(N * d), dxn = take(N * d);
    datt = take(N * d), de = take(N * d), ds = take(N * d), ds2 = take(N * d);
    dact = take(N * I), dh = take(N * 2 * I), dqkv = take(N * 3 * d);
    model = Model::from_flat(c, nullptr);
    if (c.arch != "huginn_raven")
      fail("training is implemented for the huginn_raven architecture only, not ", c.arch,
           " (its forward and loss are exact; the backward is not written)");
    const int half = hd / 2;
    nsin_tab.resize((size_t)T * half);
    for (size_t i = 0; i < nsin_tab.size(); ++i) nsin_tab[i] = -model->rope_sin()[i];
    pos.resize(N);
    for (size_t i = 0; i < N; ++i) pos[i] = (int)(i % T);
  }

  // The model's forward over B sequences of T tokens: one segment each.
  const Segment* batch(int B) {
    segs.assign(B, Segment{T, 0, nullptr, T});
    return segs.data();
  }

  void init_states(const float* input_states, float init_scale, const uint64_t* seeds, int B) {
    const size_t per = (size_t)T * d;
    if (input_states) {
      std::memcpy(s, input_states, sizeof(float) * per * B);
      return;
    }
    // One generator per sequence.
    for (int b = 0; b < B; ++b) model->init_state(s + (size_t)b * per, T, init_scale, seeds ? seeds[b] : (uint64_t)b);
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
    bwd::rmsnorm_backward(A.r2, w.norm_4.f32(), dx, dr2, mut(g.norm_4), n, d, eps, false);
    kern::rmsnorm(A.x1, w.norm_3.f32(), xn, n, d, eps);
    bwd::linear_weight_grad(dr2, d, A.act, I, mut(g.mlp_proj), I, n, I, d);
    bwd::linear_input_grad(dr2, d, w.mlp_proj.f32(), I, dact, I, n, I, d, false);
    bwd::swiglu_backward(A.h, dact, dh, n, I);
    bwd::linear_weight_grad(dh, 2 * I, xn, d, mut(g.fc), d, n, d, 2 * I);
    bwd::linear_input_grad(dh, 2 * I, w.fc.f32(), d, dxn, d, n, d, 2 * I, false);
    float* dx1 = dB;
    std::memcpy(dx1, dr2, sizeof(float) * n * d);
    bwd::rmsnorm_backward(A.x1, w.norm_3.f32(), dxn, dx1, mut(g.norm_3), n, d, eps, true);
    float* dr1 = dA;
    bwd::rmsnorm_backward(A.r1, w.norm_2.f32(), dx1, dr1, mut(g.norm_2), n, d, eps, false);
    bwd::linear_weight_grad(dr1, d, A.att, d, mut(g.attn_proj), d, n, d, d);
    bwd::linear_input_grad(dr1, d, w.attn_proj.f32(), d, datt, d, n, d, d, false);
    bwd::attention_backward(A.qkv, A.qkv + d, A.qkv + 2 * d, 3 * d, A.att, datt, dqkv, dqkv + d, dqkv + 2 * d, 3 * d, B,
                            T, H, hd);
    // RoPE is a rotation: its backward rotates by the negative angle.
    kern::rope(dqkv, n, H, hd, 3 * d, pos.data(), model->rope_cos(), nsin_tab.data());
    kern::rope(dqkv + d, n, H, hd, 3 * d, pos.data(), model->rope_cos(), nsin_tab.data());
    if (w.qk_bias) {
      float* gb = mut(g.qk_bias);
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 65536)
      for (int i = 0; i < 2 * d; ++i) {
        double acc = 0;
        for (int t = 0; t < n; ++t) acc += dqkv[(size_t)t * 3 * d + i];
        gb[i] += (float)acc;
      }
    }
    kern::rmsnorm(A.x_in, w.norm_1.f32(), xn, n, d, eps);
    bwd::linear_weight_grad(dqkv, 3 * d, xn, d, mut(g.wqkv), d, n, d, 3 * d);
    bwd::linear_input_grad(dqkv, 3 * d, w.wqkv.f32(), d, dxn, d, n, d, 3 * d, false);
    std::memcpy(dx, dr1, sizeof(float) * n * d);
    bwd::rmsnorm_backward(A.x_in, w.norm_1.f32(), dxn, dx, mut(g.norm_1), n, d, eps, true);
  }

  Result run(const float* params, float* grads, const int* ids, const int* labels, int B, RecurrenceSplit split,
             float loss_scale, const float* input_states, float init_scale, const uint64_t* seeds) {
    if (B <= 0 || B > Bmax) fail("batch of ", B, " sequences, the engine holds at most ", Bmax);
    if (split.no_grad < 0 || split.grad < 0) fail("iteration counts must be >= 0");
    const bool want_grad = grads != nullptr;
    if (want_grad && split.grad > Kmax) fail(split.grad, " iterations with gradient, the engine was sized for ", Kmax);
    check_labels(labels, B);
    if (params != bound) {
      model->rebind_flat(params);
      bound = params;
    }
    const ModelWeights& w = model->weights();
    const int n = B * T;
    const Segment* seg = batch(B);
    for (int t = 0; t < n; ++t)
      if (ids[t] < 0 || ids[t] >= V) fail("token id ", ids[t], " is outside the vocabulary (0..", V - 1, ")");
    model->embed(ids, n, e);
    model->prelude_segments(e, seg, B, ws, want_grad ? pre.data() : scratch_pre.data());
    init_states(input_states, init_scale, seeds, B);
    const int k = want_grad ? split.grad : 0;
    for (int it = 0; it < split.total() - k; ++it)
      model->core_iteration_segments(s, e, seg, B, it, ws, nullptr, scratch_core.data());
    for (int g = 0; g < k; ++g) {
      std::memcpy(s_in[g], s, sizeof(float) * n * d);
      model->core_iteration_segments(s, e, seg, B, split.no_grad + g, ws, nullptr, &core[(size_t)g * c.n_core]);
    }
    std::memcpy(s_fin, s, sizeof(float) * n * d);
    const HeadActs head_acts{want_grad ? coda.data() : scratch_coda.data(), xc, xf};
    model->head_segments(s, seg, B, nullptr, logits, ws, nullptr, &head_acts);
    Result r;
    if (!want_grad) {
      r.loss_sum = bwd::cross_entropy_loss(logits, labels, n, V, kIgnoreLabel, &r.n_valid);
      return r;
    }
    r.loss_sum = bwd::cross_entropy_backward(logits, labels, n, V, loss_scale, kIgnoreLabel, &r.n_valid);

    ModelWeights gw = bind_weights(c, grads);
    // logits = xf · lm_headᵀ
    bwd::linear_weight_grad(logits, V, xf, d, mut(gw.lm_head), d, n, d, V);
    float* dx = ds2;
    bwd::linear_input_grad(logits, V, w.lm_head.f32(), d, dxn, d, n, d, V, false);
    bwd::rmsnorm_backward(xc, w.ln_f.f32(), dxn, dx, mut(gw.ln_f), n, d, c.norm_eps, false);
    for (int j = c.n_coda - 1; j >= 0; --j) block_bwd(w.coda[j], gw.coda[j], dx, coda[j], B);
    bwd::rmsnorm_backward(s_fin, w.ln_f.f32(), dx, ds, mut(gw.ln_f), n, d, c.norm_eps, false);
    std::fill(de, de + (size_t)n * d, 0.f);
    float* gad = mut(gw.adapter);
    for (int g = k - 1; g >= 0; --g) {
      for (int l = c.n_core - 1; l >= 0; --l) block_bwd(w.core[l], gw.core[l], ds, core[(size_t)g * c.n_core + l], B);
      // adapter output y = s_in · A[:, :d]ᵀ + e · A[:, d:]ᵀ
      bwd::linear_weight_grad(ds, d, s_in[g], d, gad, 2 * d, n, d, d);
      bwd::linear_weight_grad(ds, d, e, d, gad + d, 2 * d, n, d, d);
      bwd::linear_input_grad(ds, d, w.adapter.f32() + d, 2 * d, de, d, n, d, d, true);
      bwd::linear_input_grad(ds, d, w.adapter.f32(), 2 * d, ds2, d, n, d, d, false);
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
    float* gwte = mut(gw.wte);
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
const float* GradEngine::logits() const { return p_->logits; }
const float* GradEngine::final_state() const { return p_->s_fin; }
const std::vector<float>& GradEngine::embedding_output_grad() const { return p_->emb_grad; }
int GradEngine::seq_len() const { return p_->T; }
int GradEngine::max_batch() const { return p_->Bmax; }
int GradEngine::max_grad_iters() const { return p_->Kmax; }
size_t GradEngine::activation_bytes() const { return p_->act_floats * sizeof(float); }

}  // namespace huginn
