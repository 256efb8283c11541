// Ouro / LoopLM (model_type "ouro", ByteDance's Ouro-1.4B/2.6B and their
// Thinking variants): the whole decoder stack looped total_ut_steps times,
// the final norm after every loop (its output is the next loop's input; no
// input injection, the loop starts from the unscaled embedding), sandwich
// layers with a norm before and after each branch (the second on the branch
// output, before the residual add), separate q/k/v projections with
// half-split RoPE and grouped-query K/V, SwiGLU with separate gate/up, an
// untied head, and a learned exit gate (one logit per token after each loop).
// The exact computation: tests/data/golden/ouro/ARCHITECTURE.md.
//
// Mapping onto the seam: no prelude and no coda; the L layers are the core
// (KV step t*L + l, as the original's UniversalTransformerCache slot); one
// iteration = one loop including model.norm; the head is lm_head alone (the
// state is already normalised); the exit gate is Architecture::exit_gate.
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "huginn/common.h"
#include "model/arch.h"
#include "tensor/kernels.h"
#include "tensor/team.h"

namespace huginn {
namespace {
using json = nlohmann::json;

const char* kParts[] = {"self_attn.q_proj.weight",         "self_attn.k_proj.weight",
                        "self_attn.v_proj.weight",         "self_attn.o_proj.weight",
                        "mlp.gate_proj.weight",            "mlp.up_proj.weight",
                        "mlp.down_proj.weight",            "input_layernorm.weight",
                        "input_layernorm_2.weight",        "post_attention_layernorm.weight",
                        "post_attention_layernorm_2.weight"};

// OuroConfig's keys (configuration_ouro.py) and the generic ones HF writes.
const std::set<std::string>& known_keys() {
  static const std::set<std::string> k = {
      "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
      "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "initializer_range",
      "rms_norm_eps", "use_cache", "tie_word_embeddings", "rope_theta", "rope_scaling", "use_sliding_window",
      "sliding_window", "max_window_layers", "layer_types", "attention_dropout", "total_ut_steps",
      "early_exit_threshold", "early_exit_step", "chunk_size",
      // PretrainedConfig
      "architectures", "auto_map", "torch_dtype", "dtype", "transformers_version", "model_type", "_name_or_path",
      "bos_token_id", "eos_token_id", "pad_token_id", "return_dict", "output_hidden_states", "output_attentions",
      "torchscript", "use_return_dict", "name"};
  return k;
}

int get_int(const json& j, const char* key, const std::string& src, int def, int lo = 1) {
  if (!j.contains(key) || j.at(key).is_null()) return def;
  const json& v = j.at(key);
  if (!v.is_number_integer()) fail(src, ": key '", key, "' must be an integer, got ", v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > (1 << 30)) fail(src, ": key '", key, "' out of range: ", x);
  return (int)x;
}

double get_num(const json& j, const char* key, const std::string& src, double def) {
  if (!j.contains(key) || j.at(key).is_null()) return def;
  if (!j.at(key).is_number()) fail(src, ": key '", key, "' must be a number, got ", j.at(key).dump());
  return j.at(key).get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& src, bool def) {
  if (!j.contains(key) || j.at(key).is_null()) return def;
  if (!j.at(key).is_boolean()) fail(src, ": key '", key, "' must be true or false, got ", j.at(key).dump());
  return j.at(key).get<bool>();
}

std::vector<int> token_ids(const json& j, const char* key, const std::string& src) {
  std::vector<int> out;
  if (!j.contains(key) || j.at(key).is_null()) return out;
  const json& v = j.at(key);
  auto one = [&](const json& x) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
      fail(src, ": key '", key, "' must be a token id or a list of them, got ", v.dump());
    out.push_back(x.get<int>());
  };
  if (v.is_array()) {
    for (auto& x : v) one(x);
  } else {
    one(v);
  }
  return out;
}

int total_rows(const Segment* seg, int nseg) {
  int T = 0;
  for (int i = 0; i < nseg; ++i) T += seg[i].rows;
  return T;
}

// One decoder layer in place on x (rows of all segments), KV under `step`.
void layer(const Model& m, const BlockWeights& b, float* x, const Segment* seg, int nseg, int step, Workspace& ws,
           const TraceFn* trace, const std::string& tag) {
  const ModelConfig& c = m.config();
  const int d = c.n_embd, H = c.n_heads, Hkv = c.kv_heads(), hd = c.head_dim, I = c.intermediate_size;
  const int kvw = c.kv_width();
  int T = 0, keys_max = 0;
  for (int i = 0; i < nseg; ++i) {
    T += seg[i].rows;
    keys_max = std::max(keys_max, seg[i].cache ? seg[i].cache->capacity() : seg[i].rows);
  }
  ws.ensure(c, T, keys_max);
  for (int i = 0, r = 0; i < nseg; ++i)
    for (int t = 0; t < seg[i].rows; ++t) ws.pos[r++] = seg[i].pos0 + t;
  const size_t n = (size_t)T * d;
  float* q = ws.qkv.data();
  float* k = q + n;
  float* v = k + (size_t)T * kvw;
  float* tmp = ws.tmp.data();

  // x = x + input_layernorm_2(o_proj(attn(input_layernorm(x))))
  kern::rmsnorm(x, b.norm_1.f32(), ws.xn.data(), T, d, c.norm_eps);
  m.matmul_segments(ws.xn.data(), b.wq, q, seg, nseg, false);
  m.matmul_segments(ws.xn.data(), b.wk, k, seg, nseg, false);
  m.matmul_segments(ws.xn.data(), b.wv, v, seg, nseg, false);
  kern::rope_half(q, T, H, hd, d, ws.pos.data(), m.rope_cos(), m.rope_sin());
  kern::rope_half(k, T, Hkv, hd, kvw, ws.pos.data(), m.rope_cos(), m.rope_sin());
  m.attention_segments(q, d, k, v, kvw, seg, nseg, step, ws, ws.att.data(), false);
  m.matmul_segments(ws.att.data(), b.attn_proj, tmp, seg, nseg, false);
  if (trace) (*trace)(tag + "attn_out", tmp, T, d);
  // and h = post_attention_layernorm(x) for the MLP, in one row pass
  kern::rmsnorm_add(tmp, b.norm_2.f32(), x, b.norm_3.f32(), ws.xn.data(), T, d, c.norm_eps);

  // x = x + post_attention_layernorm_2(down(silu(gate(h)) * up(h)))
  float* g = ws.hid.data();
  float* u = g + (size_t)T * I;
  m.matmul_segments(ws.xn.data(), b.w_gate, g, seg, nseg, false);
  m.matmul_segments(ws.xn.data(), b.w_up, u, seg, nseg, false);
  float* act = ws.act.data();
  const size_t ni = (size_t)T * I;
  kern::parallel_for((int64_t)ni, ni > 65536, [&](int64_t i) { act[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i]; });
  m.matmul_segments(act, b.mlp_proj, tmp, seg, nseg, false);
  if (trace) (*trace)(tag + "mlp_out", tmp, T, d);
  kern::rmsnorm_add(tmp, b.norm_4.f32(), x, nullptr, nullptr, T, d, c.norm_eps);
  if (trace) (*trace)(tag + "layer_out", x, T, d);
}

class Ouro final : public Architecture {
 public:
  const char* name() const override { return "ouro"; }
  bool matches(const json& j) const override {
    return j.contains("model_type") && j["model_type"].is_string() && j["model_type"].get<std::string>() == name();
  }

  ModelConfig parse_config(const json& j, const std::string& src) const override {
    for (auto it = j.begin(); it != j.end(); ++it)
      if (!known_keys().count(it.key()))
        fail(src, ": unknown config key '", printable(it.key()), "' (not part of the Ouro config)");
    ModelConfig c;
    c.name = "ouro";
    // OuroConfig's defaults where a key is absent.
    c.vocab_size = get_int(j, "vocab_size", src, 151936);
    c.n_embd = get_int(j, "hidden_size", src, 4096);
    c.intermediate_size = get_int(j, "intermediate_size", src, 22016);
    c.n_core = get_int(j, "num_hidden_layers", src, 32);
    c.n_heads = get_int(j, "num_attention_heads", src, 32);
    c.n_kv_heads = get_int(j, "num_key_value_heads", src, c.n_heads);
    if (c.n_embd % c.n_heads != 0 && !(j.contains("head_dim") && !j["head_dim"].is_null()))
      fail(src, ": hidden_size (", c.n_embd, ") is not a multiple of num_attention_heads (", c.n_heads,
           ") and no head_dim is given");
    c.head_dim = get_int(j, "head_dim", src, c.n_embd / c.n_heads);
    c.block_size = get_int(j, "max_position_embeddings", src, 32768);
    c.norm_eps = (float)get_num(j, "rms_norm_eps", src, 1e-6);
    c.rope_base = (float)get_num(j, "rope_theta", src, 10000.0);
    c.tie_embeddings = get_bool(j, "tie_word_embeddings", src, false);
    c.mean_recurrence = get_int(j, "total_ut_steps", src, 4);
    c.exit_threshold = get_num(j, "early_exit_threshold", src, 1.0);
    if (j.contains("early_exit_threshold") && j["early_exit_threshold"].is_null()) c.exit_threshold = -1;
    c.exit_step = get_int(j, "early_exit_step", src, -1, -1);
    c.eos_token_ids = token_ids(j, "eos_token_id", src);
    token_ids(j, "bos_token_id", src);
    token_ids(j, "pad_token_id", src);
    c.qk_bias = false;
    c.rope_half_split = true;
    c.n_prelude = c.n_coda = 0;
    c.mean_backprop_depth = c.mean_recurrence;

    if (j.contains("hidden_act") && j["hidden_act"] != "silu")
      fail(src, ": unsupported hidden_act ", j["hidden_act"].dump(), " (Ouro uses silu)");
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
      fail(src, ": rope_scaling ", j["rope_scaling"].dump(), " is not supported (only the default RoPE)");
    if (get_bool(j, "use_sliding_window", src, false))
      fail(src, ": use_sliding_window true is not supported (every shipped Ouro layer is full attention)");
    if (j.contains("layer_types") && !j["layer_types"].is_null()) {
      if (!j["layer_types"].is_array()) fail(src, ": layer_types must be a list");
      for (auto& t : j["layer_types"])
        if (t != "full_attention")
          fail(src, ": layer type ", t.dump(), " is not supported (only full_attention)");
      if ((int)j["layer_types"].size() != c.n_core)
        fail(src, ": layer_types has ", j["layer_types"].size(), " entries for ", c.n_core, " layers");
    }
    if (c.n_heads % c.n_kv_heads != 0)
      fail(src, ": num_attention_heads (", c.n_heads, ") must be a multiple of num_key_value_heads (", c.n_kv_heads,
           ")");
    if (c.n_heads * c.head_dim != c.n_embd)
      fail(src, ": num_attention_heads * head_dim (", c.n_heads * c.head_dim, ") != hidden_size (", c.n_embd,
           "): not supported");
    if (c.head_dim % 2 != 0) fail(src, ": head_dim (", c.head_dim, ") must be even for rotary embeddings");
    if (!(c.norm_eps > 0)) fail(src, ": rms_norm_eps must be positive");
    if (!(c.rope_base > 1)) fail(src, ": rope_theta must be > 1");
    if (c.exit_step >= c.mean_recurrence)
      fail(src, ": early_exit_step (", c.exit_step, ") must be below total_ut_steps (", c.mean_recurrence, ")");
    return c;
  }

  json config_to_json(const ModelConfig& c) const override {
    json j;
    j["architectures"] = {"OuroForCausalLM"};
    j["model_type"] = "ouro";
    j["auto_map"] = {{"AutoConfig", "configuration_ouro.OuroConfig"},
                     {"AutoModel", "modeling_ouro.OuroModel"},
                     {"AutoModelForCausalLM", "modeling_ouro.OuroForCausalLM"}};
    j["vocab_size"] = c.vocab_size;
    j["hidden_size"] = c.n_embd;
    j["intermediate_size"] = c.intermediate_size;
    j["num_hidden_layers"] = c.n_core;
    j["num_attention_heads"] = c.n_heads;
    j["num_key_value_heads"] = c.kv_heads();
    j["head_dim"] = c.head_dim;
    j["hidden_act"] = "silu";
    j["max_position_embeddings"] = c.block_size;
    j["rms_norm_eps"] = c.norm_eps;
    j["rope_theta"] = c.rope_base;
    j["rope_scaling"] = nullptr;
    j["tie_word_embeddings"] = c.tie_embeddings;
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
    j["layer_types"] = std::vector<std::string>(c.n_core, "full_attention");
    j["attention_dropout"] = 0.0;
    j["total_ut_steps"] = c.mean_recurrence;
    if (c.exit_threshold >= 0) j["early_exit_threshold"] = c.exit_threshold;
    else j["early_exit_threshold"] = nullptr;
    if (c.exit_step >= 0) j["early_exit_step"] = c.exit_step;
    const int eos = c.eos_token_ids.empty() ? 0 : c.eos_token_ids[0];
    j["bos_token_id"] = eos;
    j["eos_token_id"] = eos;
    j["pad_token_id"] = eos;
    j["torch_dtype"] = "float32";
    j["use_cache"] = true;
    return j;
  }

  std::vector<ParamSpec> param_layout(const ModelConfig& c) const override {
    std::vector<ParamSpec> v;
    size_t off = 0;
    auto add = [&](std::string name, std::vector<int64_t> shape) {
      size_t n = 1;
      for (auto s : shape) n *= (size_t)s;
      v.push_back({std::move(name), std::move(shape), off, n});
      off += n;
    };
    const int64_t H = c.n_embd, q = (int64_t)c.n_heads * c.head_dim, kv = c.kv_width(), I = c.intermediate_size;
    const std::vector<int64_t> shapes[] = {{q, H}, {kv, H}, {kv, H}, {H, q}, {I, H}, {I, H}, {H, I},
                                           {H},    {H},     {H},     {H}};
    add("model.embed_tokens.weight", {c.vocab_size, H});
    for (int l = 0; l < c.n_core; ++l)
      for (int i = 0; i < 11; ++i) add(str("model.layers.", l, ".", kParts[i]), shapes[i]);
    add("model.norm.weight", {H});
    add("model.early_exit_gate.weight", {1, H});
    add("model.early_exit_gate.bias", {1});
    if (!c.tie_embeddings) add("lm_head.weight", {c.vocab_size, H});
    return v;
  }

  ModelWeights bind(const ModelConfig& c, const std::function<Weight(const ParamSpec&)>& get) const override {
    ModelWeights w;
    auto layout = param_layout(c);
    size_t i = 0;
    auto next = [&]() { return get(layout[i++]); };
    w.wte = next();
    w.core.resize(c.n_core);
    for (auto& b : w.core) {
      b.wq = next();
      b.wk = next();
      b.wv = next();
      b.attn_proj = next();
      b.w_gate = next();
      b.w_up = next();
      b.mlp_proj = next();
      b.norm_1 = next();
      b.norm_2 = next();
      b.norm_3 = next();
      b.norm_4 = next();
    }
    w.ln_f = next();
    w.exit_gate = next();
    w.exit_gate_bias = next();
    w.lm_head = c.tie_embeddings ? w.wte : next();
    return w;
  }
  std::vector<std::string> optional_tensors() const override { return {"lm_head.weight"}; }

  void embed(const Model& m, const int* ids, int T, float* e) const override {
    kern::gather_rows(m.weights().wte, ids, T, 1.0f, e);  // no scaling
  }
  bool state_from_embedding() const override { return true; }
  void init_state(const Model& m, const float* e, float* s, int T, float, uint64_t) const override {
    std::memcpy(s, e, sizeof(float) * (size_t)T * m.config().n_embd);
  }

  void prelude(const Model&, float*, const Segment*, int, Workspace&, const BlockActs* acts,
               const TraceFn*) const override {
    if (acts) fail("training is not implemented for the ouro architecture");
  }

  void iteration(const Model& m, float* s, const float*, const Segment* seg, int nseg, int iter, Workspace& ws,
                 const TraceFn* trace, const BlockActs* acts) const override {
    if (acts) fail("training is not implemented for the ouro architecture");
    const ModelConfig& c = m.config();
    const int T = total_rows(seg, nseg);
    for (int l = 0; l < c.n_core; ++l)
      layer(m, m.weights().core[l], s, seg, nseg, iter * c.n_core + l, ws, trace,
            trace ? str("step", iter, "_layer", l, "_") : std::string());
    kern::rmsnorm(s, m.weights().ln_f.f32(), s, T, c.n_embd, c.norm_eps);
    if (trace) (*trace)(str("latent_raw_step", iter + 1), s, T, c.n_embd);
  }

  void head(const Model& m, const float* s, const Segment* seg, int nseg, float* latent, float* logits, Workspace& ws,
            const TraceFn* trace, const HeadActs* acts) const override {
    if (acts) fail("training is not implemented for the ouro architecture");
    const ModelConfig& c = m.config();
    const int d = c.n_embd, T = total_rows(seg, nseg);
    // The state is model.norm's output already: the latent is the state.
    if (latent) std::memcpy(latent, s, sizeof(float) * (size_t)T * d);
    if (trace) (*trace)("latent_states", s, T, d);
    if (!logits) return;
    ws.ensure(c, T, 0);
    float* x = ws.x.data();
    int n = 0, r0 = 0;
    Segment small[64];  // no allocation per decoded token (as Huginn's head)
    std::vector<Segment> more;
    Segment* lr = nseg <= 64 ? small : (more.resize(nseg), more.data());
    for (int i = 0; i < nseg; ++i) {
      const int k = std::clamp(seg[i].logit_rows, 0, seg[i].rows);
      std::memcpy(x + (size_t)n * d, s + (size_t)(r0 + seg[i].rows - k) * d, sizeof(float) * (size_t)k * d);
      lr[i] = Segment{k, 0, nullptr, k};
      n += k;
      r0 += seg[i].rows;
    }
    if (n == 0) return;
    m.matmul_segments(x, m.weights().lm_head, logits, lr, nseg, false);
    if (trace) (*trace)("logits", logits, n, c.vocab_size);
  }

  void normalize_state(const Model& m, const float* s, int T, float* out) const override {
    if (out != s) std::memcpy(out, s, sizeof(float) * (size_t)T * m.config().n_embd);
  }

  bool has_exit_gate() const override { return true; }
  void exit_gate(const Model& m, const float* s, int T, float* out) const override {
    const ModelWeights& w = m.weights();
    // One row at a time: the same GEMV path whatever T is (a decision must not
    // depend on how many rows a call holds).
    for (int t = 0; t < T; ++t) {
      kern::matmul(s + (size_t)t * m.config().n_embd, w.exit_gate, out + t, 1);
      out[t] += w.exit_gate_bias.f32()[0];
    }
  }

  KVLayout kv_layout(const ModelConfig& c) const override { return {0, c.n_core, 0, c.kv_width(), c.head_dim}; }
  std::vector<int> default_stop_tokens(const ModelConfig& c) const override {
    return c.eos_token_ids.empty() ? std::vector<int>{0} : c.eos_token_ids;
  }
  const char* chat_format() const override { return "chatml"; }
};

}  // namespace

const Architecture& ouro_architecture() {
  static const Ouro a;
  return a;
}

}  // namespace huginn
