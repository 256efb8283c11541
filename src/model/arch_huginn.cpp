// Huginn-0125 / raven (model_type "huginn_raven"): prelude -> r iterations of
// core(adapter([s, e])) -> ln_f -> coda -> ln_f -> tied head, with sandwich
// blocks (attention with q/k bias and interleaved RoPE, gated SiLU MLP, a norm
// before and after each branch, the second norm on the residual sum).
// This file is the one definition of that computation: inference (single,
// batched, speculative, parallel sampler, tracing) and training (with
// activation sinks) all run it.
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "huginn/common.h"
#include "model/arch.h"
#include "tensor/backward.h"
#include "tensor/kernels.h"

namespace huginn {
namespace {

const char* kBlockParts[] = {"norm_1.weight",    "attn.qk_bias",  "attn.Wqkv.weight",
                             "attn.proj.weight", "norm_2.weight", "mlp.fc.weight",
                             "mlp.proj.weight",  "norm_3.weight", "norm_4.weight"};

std::vector<int64_t> block_part_shape(const ModelConfig& c, int i) {
  const int64_t d = c.n_embd, I = c.intermediate_size;
  switch (i) {
    case 1:
      return {2, 1, c.n_heads, c.head_dim};
    case 2:
      return {3 * d, d};
    case 3:
      return {d, d};
    case 5:
      return {2 * I, d};
    case 6:
      return {d, I};
    default:
      return {d};
  }
}

// One sandwich block in place on x (rows of all segments). With `a`
// (training) every activation the backward needs goes to a's buffers.
void block(const Model& m, const BlockWeights& b, float* x, const Segment* seg, int nseg, int step, Workspace& ws,
           const BlockActs* a) {
  const ModelConfig& c = m.config();
  const int d = c.n_embd, H = c.n_heads, hd = c.head_dim, I = c.intermediate_size;
  const bool joint = a != nullptr;
  int T = 0, keys_max = 0;
  for (int i = 0; i < nseg; ++i) {
    T += seg[i].rows;
    // Size the key buffers for the whole cache once, not for its current length.
    keys_max = std::max(keys_max, seg[i].cache ? seg[i].cache->capacity() : seg[i].rows);
  }
  ws.ensure(c, T, keys_max);
  for (int i = 0, r = 0; i < nseg; ++i)
    for (int t = 0; t < seg[i].rows; ++t) ws.pos[r++] = seg[i].pos0 + t;
  const size_t n = (size_t)T * d;
  float* qkv = a ? a->qkv : ws.qkv.data();
  float* att = a ? a->att : ws.att.data();
  float* r1 = a ? a->r1 : ws.tmp.data();
  float* x1 = a ? a->x1 : x;
  float* h = a ? a->h : ws.hid.data();
  float* act = a ? a->act : ws.act.data();
  float* r2 = a ? a->r2 : ws.tmp.data();
  if (a) std::memcpy(a->x_in, x, sizeof(float) * n);

  // attention
  kern::rmsnorm(x, b.norm_1.f32(), ws.xn.data(), T, d, c.norm_eps);
  m.matmul_segments(ws.xn.data(), b.wqkv, qkv, seg, nseg, joint);
  float *q = qkv, *k = qkv + d, *v = qkv + 2 * d;
  // q and k side by side in each row: their biases (qk_bias is [2, 1, H, hd])
  // and RoPE as one pass over 2H heads.
  kern::bias_rope(q, T, 2 * H, hd, 3 * d, b.qk_bias ? b.qk_bias.f32() : nullptr, ws.pos.data(), m.rope_cos(),
                  m.rope_sin());
  m.attention_segments(q, k, v, 3 * d, seg, nseg, step, ws, att, joint);
  m.matmul_segments(att, b.attn_proj, ws.tmp.data(), seg, nseg, joint);
  // r1 = attention + x, x1 = norm_2(r1); the MLP's input norm_3(x1)
  kern::add_rmsnorm(ws.tmp.data(), x, r1, b.norm_2.f32(), x1, b.norm_3.f32(), ws.xn.data(), T, d, c.norm_eps);

  // MLP
  m.matmul_segments(ws.xn.data(), b.fc, h, seg, nseg, joint);
  kern::swiglu(h, act, T, I);
  m.matmul_segments(act, b.mlp_proj, ws.tmp.data(), seg, nseg, joint);
  kern::add_rmsnorm(ws.tmp.data(), x1, r2, b.norm_4.f32(), x, nullptr, nullptr, T, d, c.norm_eps);
}

int total_rows(const Segment* seg, int nseg) {
  int T = 0;
  for (int i = 0; i < nseg; ++i) T += seg[i].rows;
  return T;
}

class Huginn final : public Architecture {
 public:
  const char* name() const override { return "huginn_raven"; }
  bool matches(const nlohmann::json& j) const override {
    // Published Huginn configs say model_type "huginn_raven"; configs written
    // before the seam existed may have none.
    if (!j.contains("model_type")) return true;
    return j["model_type"].is_string() && j["model_type"].get<std::string>() == name();
  }
  ModelConfig parse_config(const nlohmann::json& j, const std::string& src) const override {
    return parse_huginn_config(j, src);
  }
  nlohmann::json config_to_json(const ModelConfig& c) const override { return huginn_config_to_json(c); }

  std::vector<ParamSpec> param_layout(const ModelConfig& c) const override {
    std::vector<ParamSpec> v;
    size_t off = 0;
    auto add = [&](std::string name, std::vector<int64_t> shape) {
      size_t n = 1;
      for (auto s : shape) n *= (size_t)s;
      v.push_back({std::move(name), std::move(shape), off, n});
      off += n;
    };
    const int64_t d = c.n_embd;
    add("transformer.wte.weight", {c.vocab_size, d});
    auto blocks = [&](const char* part, int n) {
      for (int b = 0; b < n; ++b)
        for (int i = 0; i < 9; ++i) {
          if (i == 1 && !c.qk_bias) continue;
          add(str("transformer.", part, ".", b, ".", kBlockParts[i]), block_part_shape(c, i));
        }
    };
    blocks("prelude", c.n_prelude);
    add("transformer.adapter.weight", {d, 2 * d});
    blocks("core_block", c.n_core);
    blocks("coda", c.n_coda);
    add("transformer.ln_f.weight", {d});
    if (!c.tie_embeddings) add("lm_head.weight", {c.vocab_size, d});
    return v;
  }

  ModelWeights bind(const ModelConfig& c, const std::function<Weight(const ParamSpec&)>& get) const override {
    ModelWeights w;
    auto layout = param_layout(c);
    size_t i = 0;
    auto next = [&]() { return get(layout[i++]); };
    w.wte = next();
    auto blocks = [&](std::vector<BlockWeights>& out, int n) {
      out.resize(n);
      for (auto& b : out) {
        b.norm_1 = next();
        if (c.qk_bias) b.qk_bias = next();
        b.wqkv = next();
        b.attn_proj = next();
        b.norm_2 = next();
        b.fc = next();
        b.mlp_proj = next();
        b.norm_3 = next();
        b.norm_4 = next();
      }
    };
    blocks(w.prelude, c.n_prelude);
    w.adapter = next();
    blocks(w.core, c.n_core);
    blocks(w.coda, c.n_coda);
    w.ln_f = next();
    w.lm_head = c.tie_embeddings ? w.wte : next();
    return w;
  }
  std::vector<std::string> optional_tensors() const override { return {"freqs_cis", "lm_head.weight"}; }

  void embed(const Model& m, const int* ids, int T, float* e) const override {
    kern::gather_rows(m.weights().wte, ids, T, std::sqrt((float)m.config().n_embd), e);
  }

  void init_state(const Model& m, const float*, float* s, int T, float init_scale, uint64_t seed) const override {
    const size_t n = (size_t)T * m.config().n_embd;
    if (init_scale == 0.f) {
      std::fill(s, s + n, 0.f);
      return;
    }
    const float d = (float)m.config().n_embd;
    const float scale = std::sqrt(2.0f / (5.0f * d)) * init_scale * std::sqrt(d);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (size_t i = 0; i < n; ++i) {
      float z;
      do z = nd(rng);
      while (std::fabs(z) > 3.f);
      s[i] = z * scale;
    }
  }

  void prelude(const Model& m, float* e, const Segment* seg, int nseg, Workspace& ws, const BlockActs* acts,
               const TraceFn* trace) const override {
    const ModelConfig& c = m.config();
    for (int j = 0; j < c.n_prelude; ++j) {
      block(m, m.weights().prelude[j], e, seg, nseg, j, ws, acts ? &acts[j] : nullptr);
      if (trace) (*trace)(str("prelude", j, "_out"), e, total_rows(seg, nseg), c.n_embd);
    }
  }

  void iteration(const Model& m, float* s, const float* e, const Segment* seg, int nseg, int iter, Workspace& ws,
                 const TraceFn* trace, const BlockActs* acts) const override {
    const ModelConfig& c = m.config();
    const int d = c.n_embd, T = total_rows(seg, nseg);
    ws.ensure(c, T, 0);
    kern::concat_rows(s, d, e, d, T, ws.cat.data());
    m.matmul_segments(ws.cat.data(), m.weights().adapter, s, seg, nseg, acts != nullptr);
    const bool first = trace && iter == 0;
    if (first) (*trace)("step1_adapter_out", s, T, d);
    for (int l = 0; l < c.n_core; ++l) {
      block(m, m.weights().core[l], s, seg, nseg, c.n_prelude + iter * c.n_core + l, ws, acts ? &acts[l] : nullptr);
      if (first) (*trace)(str("step1_core", l, "_out"), s, T, d);
    }
    if (trace) (*trace)(str("latent_raw_step", iter + 1), s, T, d);
  }

  void head(const Model& m, const float* s, const Segment* seg, int nseg, float* latent, float* logits, Workspace& ws,
            const TraceFn* trace, const HeadActs* acts) const override {
    const ModelConfig& c = m.config();
    const int d = c.n_embd, T = total_rows(seg, nseg);
    const ModelWeights& w = m.weights();
    ws.ensure(c, T, 0);
    // ws.x is free here: the blocks use the other buffers.
    float* x = ws.x.data();
    kern::rmsnorm(s, w.ln_f.f32(), x, T, d, c.norm_eps);
    if (latent) std::memcpy(latent, x, sizeof(float) * T * d);
    if (trace) (*trace)("latent_states", x, T, d);
    for (int j = 0; j < c.n_coda; ++j) {
      block(m, w.coda[j], x, seg, nseg, -1 - j, ws, acts ? &acts->coda[j] : nullptr);
      x = ws.x.data();  // a block may have grown the workspace
      if (trace) (*trace)(str("coda", j, "_out"), x, T, d);
    }
    if (acts) {  // training: logits of every row, the coda output and its ln_f kept
      std::memcpy(acts->xc, x, sizeof(float) * T * d);
      kern::rmsnorm(acts->xc, w.ln_f.f32(), acts->xf, T, d, c.norm_eps);
      kern::matmul(acts->xf, w.lm_head, logits, T);
      return;
    }
    if (!logits) return;
    // The logit rows of each segment (its last ones), gathered in place at the
    // front of x: ln_f, then lm_head.
    int n = 0, r0 = 0;
    Segment rows[64];
    std::vector<Segment> more;
    Segment* lr = nseg <= 64 ? rows : (more.resize(nseg), more.data());
    for (int i = 0; i < nseg; ++i) {
      const int k = std::clamp(seg[i].logit_rows, 0, seg[i].rows);
      const float* src = x + (size_t)(r0 + seg[i].rows - k) * d;
      if (x + (size_t)n * d != src) std::memmove(x + (size_t)n * d, src, sizeof(float) * (size_t)k * d);
      lr[i] = Segment{k, 0, nullptr, k};
      n += k;
      r0 += seg[i].rows;
    }
    if (n == 0) return;
    kern::rmsnorm(x, w.ln_f.f32(), x, n, d, c.norm_eps);
    m.matmul_segments(x, w.lm_head, logits, lr, nseg, false);
    if (trace) (*trace)("logits", logits, n, c.vocab_size);
  }

  void normalize_state(const Model& m, const float* s, int T, float* out) const override {
    kern::rmsnorm(s, m.weights().ln_f.f32(), out, T, m.config().n_embd, m.config().norm_eps);
  }

  KVLayout kv_layout(const ModelConfig& c) const override {
    return {c.n_prelude, c.n_core, c.n_coda, c.n_embd, c.head_dim};
  }
  // Huginn-0125's <|begin_text|>, <|end_text|>, <|end_turn|>.
  std::vector<int> default_stop_tokens(const ModelConfig&) const override { return {65504, 65505, 65508}; }
  const char* chat_format() const override { return "huginn"; }
};

}  // namespace

const Architecture& huginn_architecture() {
  static const Huginn a;
  return a;
}

}  // namespace huginn
