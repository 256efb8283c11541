// The generic half of the model: loading (any architecture), typed weight
// binding, RoPE tables, the segment-wise matmul and attention building blocks,
// and the forward pieces, which dispatch to the architecture.
#include "huginn/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "huginn/check.h"
#include "huginn/common.h"
#include "model/arch.h"
#include "model/gguf_model.h"
#include "tensor/backward.h"
#include "tensor/kernels.h"
#include "tensor/team.h"

namespace huginn {
namespace fs = std::filesystem;

const float* Weight::f32() const {
  if (dtype != DType::F32) fail("internal: a ", dtype_name(dtype), " weight read as F32");
  return static_cast<const float*>(data);
}

size_t param_count(const std::vector<ParamSpec>& layout) {
  return layout.empty() ? 0 : layout.back().offset + layout.back().numel;
}

// [rows, cols] of a parameter: the first dimension by the rest (a vector is
// one row), as the kernels read it.
static Weight weight_of(DType t, const void* data, const std::vector<int64_t>& shape) {
  int64_t rows = 1, cols = 1;
  if (shape.size() >= 2) {
    rows = shape[0];
    for (size_t i = 1; i < shape.size(); ++i) cols *= shape[i];
  } else if (shape.size() == 1) {
    cols = shape[0];
  }
  return Weight{t, data, rows, cols};
}

ModelWeights bind_weights(const ModelConfig& c, const float* flat) {
  return architecture_named(c.arch).bind(
      c, [&](const ParamSpec& p) { return weight_of(DType::F32, flat + p.offset, p.shape); });
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
  pos.resize(T);
}

Model::~Model() = default;

std::unique_ptr<Model> Model::from_flat(const ModelConfig& c, const float* flat) {
  std::unique_ptr<Model> m(new Model());
  m->cfg_ = c;
  m->arch_ = &architecture_named(c.arch);
  m->rebind_flat(flat);
  m->build_rope(nullptr);
  return m;
}

void Model::rebind_flat(const float* flat) {
  params_.clear();
  if (!flat) {
    w_ = ModelWeights{};
    return;
  }
  w_ = arch_->bind(cfg_, [&](const ParamSpec& p) {
    params_.push_back(weight_of(DType::F32, flat + p.offset, p.shape));
    return params_.back();
  });
  weight_bytes_ = param_count(param_layout(cfg_)) * sizeof(float);
}

std::unique_ptr<Model> Model::load(const std::string& dir, const LoadOptions& o) {
  if (gguf_model::is_gguf_path(dir)) return load_gguf(dir, o);
  if (!fs::is_directory(dir)) fail(dir, ": not a model directory");
  std::unique_ptr<Model> m(new Model());
  m->cfg_ = load_config((fs::path(dir) / "config.json").string());
  m->arch_ = &architecture_named(m->cfg_.arch);
  m->store_ = TensorStore::open_dir(dir);
  // The config's sizes against the tensors present, and NaN/Inf in the small
  // tensors, before anything sized from the config is allocated.
  check_config_against_weights(m->cfg_, m->store_);
  check_small_tensors_finite(m->store_);
  const ModelConfig& c = m->cfg_;
  m->w_ = m->arch_->bind(c, [&](const ParamSpec& p) -> Weight {
    const TensorView& t = m->store_.get(p.name);
    if (t.shape != p.shape)
      fail(t.file, ": tensor '", p.name, "' has shape ", t.shape_str(), ", the config needs ",
           TensorView{p.name, DType::F32, p.shape, nullptr, 0, ""}.shape_str());
    m->dtypes_.push_back({p.name, dtype_name(t.dtype)});
    const bool matrix = p.shape.size() == 2;  // read by the matrix kernels (qk_bias is 4-D, a vector)
    const bool in_place = t.dtype == DType::F32 || (matrix && !o.convert_to_f32 && is_kernel_dtype(t.dtype));
    if (in_place && reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) == 0) {
      m->weight_bytes_ += t.nbytes;
      m->params_.push_back(weight_of(t.dtype, t.data, p.shape));  // in place, from the memory map
      return m->params_.back();
    }
    // Vectors (norms, biases), other stored types and misaligned data: F32 copies.
    // The source's pages are dropped once converted: loading holds the F32
    // model plus one tensor, not the file as well.
    m->owned_.push_back(t.to_f32());
    release_mapped_pages(t.data, t.nbytes);
    const size_t bytes = m->owned_.back().size() * sizeof(float);
    m->weight_bytes_ += bytes;
    m->converted_bytes_ += bytes;
    m->params_.push_back(weight_of(DType::F32, m->owned_.back().data(), p.shape));
    return m->params_.back();
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
      fail(stored->file, ": buffer 'freqs_cis' has shape ", stored->shape_str(), ", the config needs [1, ", Tm, ", 1, ",
           half, ", 2]");
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
      fail("token id ", ids[t], " at position ", pos0 + t, " is outside the vocabulary (0..", cfg_.vocab_size - 1, ")");
  if ((int64_t)pos0 + T > cfg_.block_size)
    fail("sequence of ", pos0 + T, " tokens exceeds the model's context of ", cfg_.block_size, " (block_size)");
}

KVCache Model::make_cache(int capacity, const CacheStrategy& cs) const {
  const KVLayout l = arch_->kv_layout(cfg_);
  return KVCache(l.prelude, l.core, l.coda, l.width, capacity, cs, l.head_dim);
}

void Model::matmul_segments(const float* x, const Weight& W, float* y, const Segment* seg, int nseg, bool joint) const {
  const int K = (int)W.cols, N = (int)W.rows;
  if (joint) {
    int T = 0;
    for (int i = 0; i < nseg; ++i) T += seg[i].rows;
    kern::matmul(x, W, y, T);
    return;
  }
  // Each segment must come out as kern::matmul computes it alone. Up to
  // kern::matmul_rowwise_max_rows(W) rows that is a GEMV whose rows do not
  // depend on each other, so all such segments (e.g. the decode rows of a
  // batch) share one kern::matmul_rowwise call: one pass over W for all of
  // them. Larger segments (prefill chunks, sgemm) run by themselves. When large
  // segments split the small ones, the small rows are gathered into a
  // contiguous scratch and scattered back.
  const int small = kern::matmul_rowwise_max_rows(W);
  int nsmall = 0, runs = 0;
  for (int i = 0; i < nseg; ++i)
    if (seg[i].rows <= small) {
      runs += nsmall == 0 || seg[i - 1].rows > small;
      nsmall += seg[i].rows;
    }
  if (nsmall > 0 && runs == 1) {
    int r0 = 0, i = 0;
    for (; seg[i].rows > small; ++i) r0 += seg[i].rows;
    kern::matmul_rowwise(x + (size_t)r0 * K, W, y + (size_t)r0 * N, nsmall);
  } else if (nsmall > 0) {
    thread_local std::vector<float> xs, ys;
    xs.resize((size_t)nsmall * K);
    ys.resize((size_t)nsmall * N);
    for (int i = 0, r0 = 0, s = 0; i < nseg; r0 += seg[i].rows, ++i)
      if (seg[i].rows <= small) {
        std::copy_n(x + (size_t)r0 * K, (size_t)seg[i].rows * K, xs.data() + (size_t)s * K);
        s += seg[i].rows;
      }
    kern::matmul_rowwise(xs.data(), W, ys.data(), nsmall);
    for (int i = 0, r0 = 0, s = 0; i < nseg; r0 += seg[i].rows, ++i)
      if (seg[i].rows <= small) {
        std::copy_n(ys.data() + (size_t)s * N, (size_t)seg[i].rows * N, y + (size_t)r0 * N);
        s += seg[i].rows;
      }
  }
  for (int i = 0, r0 = 0; i < nseg; r0 += seg[i].rows, ++i)
    if (seg[i].rows > small) kern::matmul(x + (size_t)r0 * K, W, y + (size_t)r0 * N, seg[i].rows);
}

void Model::attention_segments(const float* q, float* k, float* v, int ld, const Segment* seg, int nseg, int step,
                               Workspace& ws, float* out, bool joint) const {
  attention_segments(q, ld, k, v, ld, seg, nseg, step, ws, out, joint);
}

void Model::attention_segments(const float* q, int ldq, float* k, float* v, int ldkv, const Segment* seg, int nseg,
                               int step, Workspace& ws, float* out, bool joint) const {
  const int d = cfg_.n_heads * cfg_.head_dim, H = cfg_.n_heads, hd = cfg_.head_dim, Hkv = cfg_.kv_heads();
  if (joint) {  // training: B equal sequences, no cache
    if (ldq != ldkv || Hkv != H) fail("training is not implemented for separate or grouped-query K/V projections");
    bwd::attention_forward(q, k, v, ldq, out, nseg, seg[0].rows, H, hd);
    return;
  }
  // Every (row, head) of every segment (a batch's decode rows, prompt chunks
  // beside them, each sequence with its own cache) in one parallel loop: one
  // decode row is microseconds of work, too little to share out by itself,
  // and a prompt chunk's rows go beside the decodes instead of after them.
  // Cache writes and lookups stay serial (they may fail); each (row, head) is
  // computed exactly as kern::attention computes it for its sequence alone.
  const size_t cap = (size_t)ws.cap_keys;  // >= every segment's key count (block() ensured it)
  int T = 0;
  for (int i = 0; i < nseg; ++i) T += seg[i].rows;
  // grown geometrically, and kept by the workspace: no allocation per token
  auto grow = [](auto& vec, size_t n) {
    if (vec.size() < n) vec.resize(std::max(n, 2 * vec.size()));
  };
  grow(ws.keys, cap * nseg), grow(ws.vals, cap * nseg), grow(ws.scores, 4 * cap * (size_t)kern::parallel_threads());
  grow(ws.seg_keys, nseg), grow(ws.seg_offset, nseg), grow(ws.seg_row0, nseg), grow(ws.row_seg, T);
  int64_t work = 0;
  for (int i = 0, r0 = 0; i < nseg; r0 += seg[i].rows, ++i) {
    const int Ts = seg[i].rows;
    const size_t off = (size_t)r0 * ldkv;
    const void** ki = ws.keys.data() + cap * i;
    const void** vi = ws.vals.data() + cap * i;
    int& lk = ws.seg_keys[i];
    if (KVCache* cache = seg[i].cache) {
      if (cache->head_dim() != hd || cache->width() != Hkv * hd)
        fail("KV cache: made for ", cache->width() / cache->head_dim(), " heads of ", cache->head_dim(),
             " floats, the model has ", Hkv, " of ", hd, " (make it with Model::make_cache)");
      cache->write(step, Ts, k + off, v + off, ldkv);
      lk = cache->lookup(step, ki, vi);
      // The reference's masks: one new token sees everything; fewer queries than
      // keys is lower-right causal; equal lengths is plain causal.
      ws.seg_offset[i] = Ts == 1 ? -1 : lk - Ts;
    } else {
      lk = Ts;
      for (int j = 0; j < Ts; ++j) {
        ki[j] = k + off + (size_t)j * ldkv;
        vi[j] = v + off + (size_t)j * ldkv;
      }
      ws.seg_offset[i] = 0;
    }
    ws.seg_row0[i] = r0;
    for (int t = 0; t < Ts; ++t) ws.row_seg[r0 + t] = i;
    work += (int64_t)Ts * H * lk * hd;
  }
  // The loop's units: a segment's rows four at a time (a prompt chunk's
  // positions: attention_head4 reads each value row once for the four),
  // the last 1-3 rows and every decode row alone; times the heads. Each row's
  // result is the same either way (attention_head4's contract).
  ws.row_groups.clear();  // (first row, rows) pairs; the capacity is kept
  for (int i = 0, r0 = 0; i < nseg; r0 += seg[i].rows, ++i) {
    int t = 0;
    for (; t + 4 <= seg[i].rows; t += 4) ws.row_groups.insert(ws.row_groups.end(), {r0 + t, 4});
    for (; t < seg[i].rows; ++t) ws.row_groups.insert(ws.row_groups.end(), {r0 + t, 1});
  }
  const int units = (int)ws.row_groups.size() / 2 * H;
  const int* groups = ws.row_groups.data();
  const void* const* kp = ws.keys.data();
  const void* const* vp = ws.vals.data();
  const int *lkp = ws.seg_keys.data(), *op = ws.seg_offset.data(), *rsp = ws.row_seg.data(), *r0p = ws.seg_row0.data();
  float* scores = ws.scores.data();
  const int group = H / Hkv;
  // As in kern::attention: below ~32K multiply-adds waking the other threads costs more.
  kern::parallel_for_dynamic(units, work > 32768, [&](int w, int thread) {
    const int r = groups[2 * (w / H)], rows = groups[2 * (w / H) + 1], h = w % H, i = rsp[r];
    auto keys_seen = [&](int row) {
      const int t = row - r0p[i];
      return op[i] < 0 ? lkp[i] : std::min(lkp[i], t + op[i] + 1);
    };
    const KVCache* c = seg[i].cache;
    const size_t head_stride = c ? c->head_stride() : (size_t)hd;
    const DType kv_type = c ? c->kv_type() : DType::F32;
    float* scratch = scores + (size_t)thread * 4 * cap;
    if (rows == 4) {
      const float* qs[4];
      float* outs[4];
      int nk[4];
      for (int k = 0; k < 4; ++k) {
        qs[k] = q + (size_t)(r + k) * ldq + h * hd;
        outs[k] = out + (size_t)(r + k) * d + h * hd;
        nk[k] = keys_seen(r + k);
      }
      kern::attention_head4(qs, kp + cap * i, vp + cap * i, kv_type, nk, hd, (h / group) * head_stride, outs, scratch,
                            cap);
      return;
    }
    kern::attention_head(q + (size_t)r * ldq + h * hd, kp + cap * i, vp + cap * i, kv_type, keys_seen(r), hd,
                         (h / group) * head_stride, out + (size_t)r * d + h * hd, scratch);
  });
}

void Model::embed(const int* ids, int T, float* e) const { arch_->embed(*this, ids, T, e); }

void Model::init_state(float* s, int T, float init_scale, uint64_t seed, const float* e) const {
  if (!e && arch_->state_from_embedding())
    fail("internal: ", arch_->name(), " starts its loop from the embedding; init_state needs it");
  arch_->init_state(*this, e, s, T, init_scale, seed);
}

bool Model::state_from_embedding() const { return arch_->state_from_embedding(); }
bool Model::has_exit_gate() const { return arch_->has_exit_gate(); }
void Model::exit_gate(const float* s, int T, float* out) const {
  if (!arch_->has_exit_gate()) fail("the ", arch_->name(), " architecture has no learned exit gate");
  arch_->exit_gate(*this, s, T, out);
}

void Model::prelude_segments(float* e, const Segment* seg, int nseg, Workspace& ws, const BlockActs* acts,
                             const TraceFn* trace) const {
  // Each stage holds its threads for all its loops (tensor/team.h).
  kern::with_team([&] { arch_->prelude(*this, e, seg, nseg, ws, acts, trace); });
}

void Model::core_iteration_segments(float* s, const float* e, const Segment* seg, int nseg, int iter, Workspace& ws,
                                    const TraceFn* trace, const BlockActs* acts) const {
  kern::with_team([&] { arch_->iteration(*this, s, e, seg, nseg, iter, ws, trace, acts); });
}

void Model::head_segments(const float* s, const Segment* seg, int nseg, float* latent, float* logits, Workspace& ws,
                          const TraceFn* trace, const HeadActs* acts) const {
  kern::with_team([&] { arch_->head(*this, s, seg, nseg, latent, logits, ws, trace, acts); });
}

void Model::normalize_state(const float* s, int T, float* out) const { arch_->normalize_state(*this, s, T, out); }

void Model::prelude(float* e, int T, int pos0, KVCache* cache, Workspace& ws, const TraceFn* trace) const {
  const Segment seg{T, pos0, cache};
  prelude_segments(e, &seg, 1, ws, nullptr, trace);
}

void Model::core_iteration(float* s, const float* e, int T, int pos0, KVCache* cache, int iter, Workspace& ws,
                           const TraceFn* trace) const {
  const Segment seg{T, pos0, cache};
  core_iteration_segments(s, e, &seg, 1, iter, ws, trace);
}

void Model::head(const float* s, int T, int pos0, KVCache* cache, float* latent, float* logits, int logit_rows,
                 Workspace& ws, const TraceFn* trace) const {
  if (logit_rows < 0 || logit_rows > T) logit_rows = T;
  const Segment seg{T, pos0, cache, logits ? logit_rows : 0};
  head_segments(s, &seg, 1, latent, logits, ws, trace);
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
  if (input_states)
    std::memcpy(out.state.data(), input_states, sizeof(float) * T * d);
  else
    init_state(out.state.data(), T, init_scale, seed, e.data());
  for (int it = 0; it < steps; ++it) core_iteration(out.state.data(), e.data(), T, pos0, cache, it, ws, trace);
  head(out.state.data(), T, pos0, cache, out.latents.data(), out.logits.data(), logit_rows, ws, trace);
}

}  // namespace huginn
