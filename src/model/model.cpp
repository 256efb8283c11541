#include "huginn/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "huginn/common.h"
#include "tensor/kernels.h"

namespace huginn {
namespace fs = std::filesystem;

namespace {
const char* kBlockParts[] = {"norm_1.weight", "attn.qk_bias", "attn.Wqkv.weight", "attn.proj.weight",
                             "norm_2.weight", "mlp.fc.weight", "mlp.proj.weight", "norm_3.weight",
                             "norm_4.weight"};

std::vector<int64_t> block_part_shape(const ModelConfig& c, int i) {
  const int64_t d = c.n_embd, I = c.intermediate_size;
  switch (i) {
    case 1: return {2, 1, c.n_heads, c.head_dim};
    case 2: return {3 * d, d};
    case 3: return {d, d};
    case 5: return {2 * I, d};
    case 6: return {d, I};
    default: return {d};
  }
}
}  // namespace

std::vector<ParamSpec> param_layout(const ModelConfig& c) {
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

size_t param_count(const std::vector<ParamSpec>& layout) {
  return layout.empty() ? 0 : layout.back().offset + layout.back().numel;
}

static ModelWeights bind_by_name(const ModelConfig& c, const std::function<const float*(const ParamSpec&)>& get) {
  ModelWeights w;
  auto layout = param_layout(c);
  size_t i = 0;
  auto next = [&]() { return get(layout[i++]); };
  w.wte = next();
  auto blocks = [&](std::vector<BlockWeights>& out, int n) {
    out.resize(n);
    for (auto& b : out) {
      b.norm_1 = next();
      b.qk_bias = c.qk_bias ? next() : nullptr;
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

ModelWeights bind_weights(const ModelConfig& c, const float* flat) {
  return bind_by_name(c, [&](const ParamSpec& p) { return flat + p.offset; });
}

void Workspace::ensure(const ModelConfig& c, int tokens, int keys) {
  if (tokens <= cap_tokens && keys <= cap_keys) return;
  cap_tokens = std::max(cap_tokens, tokens);
  cap_keys = std::max(cap_keys, keys);
  const size_t T = cap_tokens, d = c.n_embd, I = c.intermediate_size;
  x.resize(T * d);
  xn.resize(T * d);
  qkv.resize(T * 3 * d);
  att.resize(T * d);
  tmp.resize(T * d);
  hid.resize(T * 2 * I);
  act.resize(T * I);
  cat.resize(T * 2 * d);
  scores.resize((size_t)kern::threads() * cap_keys + 16);
  this->keys.resize(cap_keys);
  vals.resize(cap_keys);
  pos.resize(T);
}

std::unique_ptr<Model> Model::from_flat(const ModelConfig& c, const float* flat) {
  std::unique_ptr<Model> m(new Model());
  m->cfg_ = c;
  m->w_ = bind_weights(c, flat);
  m->build_rope(nullptr);
  return m;
}

std::unique_ptr<Model> Model::load(const std::string& dir) {
  if (!fs::is_directory(dir)) fail(dir, ": not a model directory");
  std::unique_ptr<Model> m(new Model());
  m->cfg_ = load_config((fs::path(dir) / "config.json").string());
  m->store_ = TensorStore::open_dir(dir);
  const ModelConfig& c = m->cfg_;
  m->w_ = bind_by_name(c, [&](const ParamSpec& p) -> const float* {
    const TensorView& t = m->store_.get(p.name);
    if (t.shape != p.shape)
      fail(t.file, ": tensor '", p.name, "' has shape ", t.shape_str(), ", the config needs ",
           TensorView{p.name, DType::F32, p.shape, nullptr, 0, ""}.shape_str());
    m->dtypes_.push_back({p.name, dtype_name(t.dtype)});
    if (t.dtype == DType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0)
      return reinterpret_cast<const float*>(t.data);  // in place, from the memory map
    m->owned_.push_back(t.to_f32());
    return m->owned_.back().data();
  });
  if (const TensorView* lm = m->store_.find("lm_head.weight"); lm && c.tie_embeddings) {
    std::vector<int64_t> want = {c.vocab_size, c.n_embd};
    if (lm->shape != want) fail(lm->file, ": tensor 'lm_head.weight' has shape ", lm->shape_str());
  }
  m->build_rope(m->store_.find("freqs_cis"));
  return m;
}

void Model::build_rope(const TensorView* stored) {
  const int half = cfg_.head_dim / 2, Tm = cfg_.block_size;
  rope_cos_.assign((size_t)Tm * half, 0.f);
  rope_sin_.assign((size_t)Tm * half, 0.f);
  if (stored) {
    std::vector<int64_t> want = {1, Tm, 1, half, 2};
    if (stored->shape != want)
      fail(stored->file, ": buffer 'freqs_cis' has shape ", stored->shape_str(), ", the config needs [1, ", Tm,
           ", 1, ", half, ", 2]");
    std::vector<float> f = stored->to_f32();
    for (size_t i = 0; i < (size_t)Tm * half; ++i) {
      rope_cos_[i] = f[2 * i];
      rope_sin_[i] = f[2 * i + 1];
    }
    rope_source_ = str("stored freqs_cis (", dtype_name(stored->dtype), ")");
    return;
  }
  // As the reference builds it, in float32: theta_i = 1 / base^(2i/hd), angle = t * theta_i.
  for (int i = 0; i < half; ++i) {
    const float inv = 1.0f / std::pow(cfg_.rope_base, (float)(2 * i) / (float)cfg_.head_dim);
    for (int t = 0; t < Tm; ++t) {
      const float a = (float)t * inv;
      rope_cos_[(size_t)t * half + i] = (float)std::cos((double)a);
      rope_sin_[(size_t)t * half + i] = (float)std::sin((double)a);
    }
  }
  rope_source_ = str("computed from rope_base ", cfg_.rope_base);
}

void Model::check_tokens(const int* ids, int T, int pos0) const {
  for (int t = 0; t < T; ++t)
    if (ids[t] < 0 || ids[t] >= cfg_.vocab_size)
      fail("token id ", ids[t], " at position ", pos0 + t, " is outside the vocabulary (0..", cfg_.vocab_size - 1,
           ")");
  if ((int64_t)pos0 + T > cfg_.block_size)
    fail("sequence of ", pos0 + T, " tokens exceeds the model's context of ", cfg_.block_size, " (block_size)");
}

void Model::embed(const int* ids, int T, float* e) const {
  const int d = cfg_.n_embd;
  const float scale = std::sqrt((float)d);
  for (int t = 0; t < T; ++t) {
    const float* row = w_.wte + (size_t)ids[t] * d;
    for (int i = 0; i < d; ++i) e[(size_t)t * d + i] = row[i] * scale;
  }
}

void Model::matmul_segments(const float* x, const float* W, float* y, const Segment* seg, int nseg, int K,
                            int N) const {
  // kern::matmul computes each row independently (GEMV) below 4 rows and
  // with sgemm from 4 rows on; a segment alone would take the path of its own
  // row count. Segments of fewer than 4 rows therefore share GEMV calls of up
  // to 3 rows (one weight read for all of them); larger ones run by themselves.
  constexpr int kGemvRows = 3;
  int r0 = 0, run0 = 0, run = 0;
  auto flush = [&]() {
    for (int i = 0; i < run; i += kGemvRows) {
      const int n = std::min(kGemvRows, run - i);
      kern::matmul(x + (size_t)(run0 + i) * K, W, y + (size_t)(run0 + i) * N, n, K, N);
    }
    run = 0;
  };
  for (int i = 0; i < nseg; ++i) {
    const int rows = seg[i].rows;
    if (rows <= kGemvRows) {
      if (run == 0) run0 = r0;
      run += rows;
    } else {
      flush();
      kern::matmul(x + (size_t)r0 * K, W, y + (size_t)r0 * N, rows, K, N);
    }
    r0 += rows;
  }
  flush();
}

void Model::block(const BlockWeights& b, float* x, int T, int pos0, KVCache* cache, int step, Workspace& ws) const {
  const Segment seg{T, pos0, cache};
  block_segments(b, x, &seg, 1, step, ws);
}

void Model::block_segments(const BlockWeights& b, float* x, const Segment* seg, int nseg, int step,
                           Workspace& ws) const {
  const int d = cfg_.n_embd, H = cfg_.n_heads, hd = cfg_.head_dim, I = cfg_.intermediate_size;
  int T = 0, keys_max = 0;
  for (int i = 0; i < nseg; ++i) {
    T += seg[i].rows;
    // Size the key buffers for the whole cache once, not for its current length.
    keys_max = std::max(keys_max, seg[i].cache ? seg[i].cache->capacity() : seg[i].rows);
  }
  ws.ensure(cfg_, T, keys_max);
  for (int i = 0, r = 0; i < nseg; ++i)
    for (int t = 0; t < seg[i].rows; ++t) ws.pos[r++] = seg[i].pos0 + t;

  // attention
  kern::rmsnorm(x, b.norm_1, ws.xn.data(), T, d, cfg_.norm_eps);
  matmul_segments(ws.xn.data(), b.wqkv, ws.qkv.data(), seg, nseg, d, 3 * d);
  float* q = ws.qkv.data();
  float* k = q + d;
  float* v = q + 2 * d;
  if (b.qk_bias)
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < d; ++i) {
        q[(size_t)t * 3 * d + i] += b.qk_bias[i];
        k[(size_t)t * 3 * d + i] += b.qk_bias[d + i];
      }
  kern::rope(q, T, H, hd, 3 * d, ws.pos.data(), rope_cos_.data(), rope_sin_.data());
  kern::rope(k, T, H, hd, 3 * d, ws.pos.data(), rope_cos_.data(), rope_sin_.data());
  for (int i = 0, r0 = 0; i < nseg; r0 += seg[i].rows, ++i) {
    const int Ts = seg[i].rows;
    const size_t off = (size_t)r0 * 3 * d;
    int Lk, offset;
    if (KVCache* cache = seg[i].cache) {
      cache->write(step, Ts, k + off, v + off, 3 * d);
      Lk = cache->lookup(step, ws.keys.data(), ws.vals.data());
      // The reference's masks: one new token sees everything; fewer queries than
      // keys is lower-right causal; equal lengths is plain causal.
      offset = Ts == 1 ? -1 : Lk - Ts;
    } else {
      Lk = Ts;
      for (int j = 0; j < Ts; ++j) {
        ws.keys[j] = k + off + (size_t)j * 3 * d;
        ws.vals[j] = v + off + (size_t)j * 3 * d;
      }
      offset = 0;
    }
    kern::attention(q + off, 3 * d, ws.keys.data(), ws.vals.data(), Ts, Lk, H, hd, offset,
                    ws.att.data() + (size_t)r0 * d, ws.scores.data());
  }
  matmul_segments(ws.att.data(), b.attn_proj, ws.tmp.data(), seg, nseg, d, d);
  for (size_t i = 0; i < (size_t)T * d; ++i) ws.tmp[i] += x[i];
  kern::rmsnorm(ws.tmp.data(), b.norm_2, x, T, d, cfg_.norm_eps);

  // MLP
  kern::rmsnorm(x, b.norm_3, ws.xn.data(), T, d, cfg_.norm_eps);
  matmul_segments(ws.xn.data(), b.fc, ws.hid.data(), seg, nseg, d, 2 * I);
  kern::swiglu(ws.hid.data(), ws.act.data(), T, I);
  matmul_segments(ws.act.data(), b.mlp_proj, ws.tmp.data(), seg, nseg, I, d);
  for (size_t i = 0; i < (size_t)T * d; ++i) ws.tmp[i] += x[i];
  kern::rmsnorm(ws.tmp.data(), b.norm_4, x, T, d, cfg_.norm_eps);
}

void Model::prelude(float* e, int T, int pos0, KVCache* cache, Workspace& ws, const TraceFn* trace) const {
  for (int j = 0; j < cfg_.n_prelude; ++j) {
    block(w_.prelude[j], e, T, pos0, cache, j, ws);
    if (trace) (*trace)(str("prelude", j, "_out"), e, T, cfg_.n_embd);
  }
}

void Model::prelude_segments(float* e, const Segment* seg, int nseg, Workspace& ws) const {
  for (int j = 0; j < cfg_.n_prelude; ++j) block_segments(w_.prelude[j], e, seg, nseg, j, ws);
}

void Model::core_iteration(float* s, const float* e, int T, int pos0, KVCache* cache, int iter, Workspace& ws,
                           const TraceFn* trace) const {
  const Segment seg{T, pos0, cache};
  core_iteration_segments(s, e, &seg, 1, iter, ws, trace);
}

void Model::core_iteration_segments(float* s, const float* e, const Segment* seg, int nseg, int iter, Workspace& ws,
                                    const TraceFn* trace) const {
  const int d = cfg_.n_embd;
  int T = 0;
  for (int i = 0; i < nseg; ++i) T += seg[i].rows;
  ws.ensure(cfg_, T, 0);
  for (int t = 0; t < T; ++t) {
    std::memcpy(&ws.cat[(size_t)t * 2 * d], s + (size_t)t * d, sizeof(float) * d);
    std::memcpy(&ws.cat[(size_t)t * 2 * d + d], e + (size_t)t * d, sizeof(float) * d);
  }
  matmul_segments(ws.cat.data(), w_.adapter, s, seg, nseg, 2 * d, d);
  const bool first = trace && iter == 0;
  if (first) (*trace)("step1_adapter_out", s, T, d);
  for (int l = 0; l < cfg_.n_core; ++l) {
    block_segments(w_.core[l], s, seg, nseg, cfg_.n_prelude + iter * cfg_.n_core + l, ws);
    if (first) (*trace)(str("step1_core", l, "_out"), s, T, d);
  }
  if (trace) (*trace)(str("latent_raw_step", iter + 1), s, T, d);
}

void Model::head(const float* s, int T, int pos0, KVCache* cache, float* latent, float* logits, int logit_rows,
                 Workspace& ws, const TraceFn* trace) const {
  if (logit_rows < 0 || logit_rows > T) logit_rows = T;
  const Segment seg{T, pos0, cache, logits ? logit_rows : 0};
  head_segments(s, &seg, 1, latent, logits, ws, trace);
}

void Model::head_segments(const float* s, const Segment* seg, int nseg, float* latent, float* logits, Workspace& ws,
                          const TraceFn* trace) const {
  const int d = cfg_.n_embd;
  int T = 0;
  for (int i = 0; i < nseg; ++i) T += seg[i].rows;
  ws.ensure(cfg_, T, 0);
  // ws.x is free here: block() uses the other buffers.
  float* x = ws.x.data();
  kern::rmsnorm(s, w_.ln_f, x, T, d, cfg_.norm_eps);
  if (latent) std::memcpy(latent, x, sizeof(float) * T * d);
  if (trace) (*trace)("latent_states", x, T, d);
  for (int j = 0; j < cfg_.n_coda; ++j) {
    block_segments(w_.coda[j], x, seg, nseg, -1 - j, ws);
    x = ws.x.data();  // block may have grown the workspace
    if (trace) (*trace)(str("coda", j, "_out"), x, T, d);
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
  kern::rmsnorm(x, w_.ln_f, x, n, d, cfg_.norm_eps);
  matmul_segments(x, w_.lm_head, logits, lr, nseg, d, cfg_.vocab_size);
  if (trace) (*trace)("logits", logits, n, cfg_.vocab_size);
}

void Model::init_state(float* s, int T, float init_scale, uint64_t seed) const {
  const size_t n = (size_t)T * cfg_.n_embd;
  if (init_scale == 0.f) {
    std::fill(s, s + n, 0.f);
    return;
  }
  const float d = (float)cfg_.n_embd;
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

void Model::forward(const int* ids, int T, int steps, ForwardResult& out, Workspace& ws, KVCache* cache,
                    const float* input_states, float init_scale, uint64_t seed, int logit_rows,
                    const TraceFn* trace) const {
  if (T <= 0) fail("forward: empty input");
  if (steps < 0) fail("forward: number of iterations must be >= 0, got ", steps);
  const int pos0 = cache ? cache->length() : 0;
  check_tokens(ids, T, pos0);
  const int d = cfg_.n_embd;
  if (logit_rows < 0 || logit_rows > T) logit_rows = T;
  out.state.resize((size_t)T * d);
  out.latents.resize((size_t)T * d);
  out.logits.resize((size_t)logit_rows * cfg_.vocab_size);
  std::vector<float>& e = out.latents;  // the prelude output lives here until the head overwrites it
  embed(ids, T, e.data());
  if (trace) (*trace)("embeds_scaled", e.data(), T, d);
  prelude(e.data(), T, pos0, cache, ws, trace);
  if (input_states) std::memcpy(out.state.data(), input_states, sizeof(float) * T * d);
  else init_state(out.state.data(), T, init_scale, seed);
  for (int it = 0; it < steps; ++it) core_iteration(out.state.data(), e.data(), T, pos0, cache, it, ws, trace);
  head(out.state.data(), T, pos0, cache, out.latents.data(), out.logits.data(), logit_rows, ws, trace);
}

}  // namespace huginn
