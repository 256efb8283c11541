// huginn/quantize.h: a model into one GGUF file in a ggml weight mix.
#include "huginn/quantize.h"

#include <algorithm>
#include <cstring>

#include "huginn/common.h"
#include "huginn/gguf.h"
#include "huginn/model.h"
#include "huginn/quant.h"
#include "model/arch.h"
#include "model/gguf_model.h"
#include "tensor/kernels.h"

namespace huginn {
namespace {
using quant::Type;

struct Mix {
  const char* name;
  Type base;
  Type sensitive;  // embeddings / head (and for the K mixes the adapter and ffn_down)
  bool k_sensitive_all;  // the K_M mixes: adapter and every ffn_down at `sensitive` too
  uint32_t ftype;        // llama.cpp's LLAMA_FTYPE
};
const Mix kMixes[] = {
    {"f32", Type::F32, Type::F32, false, 0},      {"f16", Type::F16, Type::F16, false, 1},
    {"bf16", Type::BF16, Type::BF16, false, 32},  {"q8_0", Type::Q8_0, Type::Q8_0, false, 7},
    {"q6_k", Type::Q6_K, Type::Q6_K, false, 18},  {"q5_0", Type::Q5_0, Type::Q8_0, false, 8},
    {"q4_1", Type::Q4_1, Type::Q8_0, false, 3},   {"q4_0", Type::Q4_0, Type::Q8_0, false, 2},
    {"q5_k_m", Type::Q5_K, Type::Q6_K, true, 17}, {"q4_k_m", Type::Q4_K, Type::Q6_K, true, 15},
};

const Mix& find_mix(const std::string& s) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return (char)std::tolower(c); });
  for (const Mix& m : kMixes)
    if (l == m.name) return m;
  std::string names;
  for (const Mix& m : kMixes) names += (names.empty() ? "" : ", ") + std::string(m.name);
  fail("unknown quantization type '", s, "' (one of ", names, ")");
}

bool is_k(Type t) { return t == Type::Q4_K || t == Type::Q5_K || t == Type::Q6_K; }

// llama.cpp's fallback for rows that are not a whole number of 256-element
// super-blocks (Q4_K -> Q5_0, Q6_K -> Q8_0; its Q5_K -> Q5_1 becomes Q5_0 here),
// and F16 for rows that are not a whole number of 32-element blocks.
Type fit(Type t, int64_t cols, std::string* note) {
  if (is_k(t) && cols % 256 != 0) {
    const Type f = t == Type::Q6_K ? Type::Q8_0 : Type::Q5_0;
    *note = str("rows of ", cols, " are not a multiple of 256: ", quant::name(t), " -> ", quant::name(f));
    t = f;
  }
  const int be = quant::info(t).block_elems;
  if (be > 1 && cols % be != 0) {
    *note = str("rows of ", cols, " are not a multiple of ", be, ": ", quant::name(t), " -> F16");
    t = Type::F16;
  }
  return t;
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

Type choose(const Mix& mix, const std::string& gname, const std::vector<int64_t>& shape, std::string* note) {
  if (shape.size() != 2) return Type::F32;  // norms, biases, the RoPE table
  const int64_t cols = shape[1];
  Type t = mix.base;
  if (gname == "token_embd.weight" || gname == "output.weight") {
    t = mix.sensitive;
    if (t != mix.base) *note = "embeddings / head at higher precision";
  } else if (mix.k_sensitive_all && (has(gname, "ffn_down") || has(gname, "adapter"))) {
    t = mix.sensitive;
    *note = "sensitive (adapter, ffn_down) at higher precision";
  }
  return fit(t, cols, note);
}

std::vector<int64_t> gguf_ne(const std::vector<int64_t>& shape) {
  std::vector<int64_t> ne(shape.rbegin(), shape.rend());
  if (ne.empty()) ne.push_back(1);
  return ne;
}

}  // namespace

bool is_quantize_mix(const std::string& type) {
  for (const Mix& m : kMixes)
    if (type == m.name) return true;
  return false;
}

std::string quantize_mix_help() {
  return "Mixes (per tensor; 1-D tensors, the q/k bias and the RoPE table stay F32):\n"
         "  f32, f16, bf16, q8_0, q6_k   every matrix in that type\n"
         "  q4_0, q4_1, q5_0             that type; token embeddings / tied head at Q8_0\n"
         "  q4_k_m, q5_k_m               Q4_K / Q5_K; embeddings/head, the recurrent adapter and every\n"
         "                               ffn_down at Q6_K (like llama.cpp's _M mixes)\n"
         "K types need rows that are a multiple of 256 (Huginn-0125's width 5280 is not): otherwise\n"
         "Q4_K and Q5_K fall back to Q5_0 and Q6_K to Q8_0 (llama.cpp's rule); rows that are not a\n"
         "multiple of 32 fall back to F16. Quantizing a GGUF re-quantizes from its dequantized values\n"
         "(a tensor already in the chosen type is copied).";
}

QuantizeResult quantize_model(const std::string& in, const std::string& out, const QuantizeOptions& o) {
  const Mix& mix = find_mix(o.type);
  LoadOptions lo;
  lo.tokenizer = false;
  std::unique_ptr<Model> m = Model::load(in, lo);
  const ModelConfig& c = m->config();
  const gguf_model::Extras extras =
      m->gguf_file() ? gguf_model::read_extras(*m->gguf_file()) : gguf_model::read_extras_dir(in);
  const std::vector<ParamSpec> layout = m->arch().param_layout(c);
  const std::vector<Weight>& params = m->params();
  if (params.size() != layout.size()) fail("internal: ", in, ": parameter count mismatch");

  gguf::Writer w(out);
  gguf_model::put_config(w, c);
  w.set("general.file_type", gguf::Value::uint(gguf::ValueType::U32, mix.ftype));
  w.set("general.quantization_version", gguf::Value::uint(gguf::ValueType::U32, 2));
  gguf_model::put_extras(w, c, extras);

  QuantizeResult r;
  std::vector<Type> types;
  for (size_t i = 0; i < layout.size(); ++i) {
    QuantizeResult::Choice ch;
    ch.name = gguf_model::tensor_name(c, layout[i].name);
    ch.shape = layout[i].shape;
    const Type t = choose(mix, ch.name, ch.shape, &ch.note);
    ch.type = quant::name(t);
    const std::vector<int64_t> ne = gguf_ne(ch.shape);
    ch.bytes = quant::row_bytes(t, ne[0]) * (size_t)(layout[i].numel / ne[0]);
    w.add_tensor(ch.name, t, ne);
    types.push_back(t);
    r.in_bytes += params[i].bytes();
    r.out_bytes += ch.bytes;
    r.tensors.push_back(std::move(ch));
  }
  // A stored RoPE table (Huginn-0125 ships freqs_cis) is kept exactly.
  const bool rope = m->rope_source().rfind("stored", 0) == 0;
  const int half = c.head_dim / 2;
  if (rope) {
    // GGUF tensors have at most 4 dimensions: [block_size, half * 2] (cos, sin interleaved)
    QuantizeResult::Choice ch{gguf_model::tensor_name(c, "freqs_cis"), "F32", "", {c.block_size, half * 2}, 0};
    ch.bytes = (size_t)c.block_size * half * 2 * sizeof(float);
    w.add_tensor(ch.name, Type::F32, gguf_ne(ch.shape));
    r.out_bytes += ch.bytes;
    r.tensors.push_back(std::move(ch));
  }

  // Streaming: one tensor at a time, in row chunks (F32 scratch of a chunk,
  // the output of one tensor).
  std::vector<float> f32;
  std::vector<uint8_t> buf;
  const size_t total = r.tensors.size();
  for (size_t i = 0; i < layout.size(); ++i) {
    const Weight& p = params[i];
    const Type t = types[i];
    if (o.progress) o.progress(i, total, r.tensors[i].name, quant::name(t));
    const int64_t cols = gguf_ne(layout[i].shape)[0], rows = (int64_t)layout[i].numel / cols;
    const bool same = p.quantized() ? p.qtype == t
                                    : (p.dtype == DType::F32 && t == Type::F32) ||
                                          (p.dtype == DType::BF16 && t == Type::BF16) ||
                                          (p.dtype == DType::F16 && t == Type::F16);
    if (same && p.cols == cols) {
      w.write_tensor(p.data, p.bytes());
      if (layout[i].shape.size() == 2) release_mapped_pages(p.data, p.bytes());
      continue;
    }
    const size_t rb = quant::row_bytes(t, cols);
    buf.resize(rb * (size_t)rows);
    // Rows of the held weight (rows x cols as the kernels see it) in chunks.
    const Weight view = p.cols == cols ? p : Weight{p.dtype, p.data, rows, cols, p.qtype};
    const int64_t chunk = std::max<int64_t>(1, (int64_t)(16u << 20) / (cols * 4));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t n = std::min(chunk, rows - r0);
      f32.resize((size_t)n * cols);
      Weight part = view;
      part.data = view.row_ptr(r0);
      part.rows = n;
      kern::to_f32(part, f32.data());
      quant::quantize_rows(t, f32.data(), buf.data() + (size_t)r0 * rb, n, cols);
    }
    w.write_tensor(buf.data(), buf.size());
    if (layout[i].shape.size() == 2) release_mapped_pages(p.data, p.bytes());
  }
  if (rope) {
    if (o.progress) o.progress(total - 1, total, r.tensors.back().name, "F32");
    std::vector<float> fc((size_t)c.block_size * half * 2);
    for (size_t k = 0; k < (size_t)c.block_size * half; ++k) {
      fc[2 * k] = m->rope_cos()[k];
      fc[2 * k + 1] = m->rope_sin()[k];
    }
    w.write_tensor(fc.data(), fc.size() * sizeof(float));
  }
  w.finish();
  return r;
}

}  // namespace huginn
