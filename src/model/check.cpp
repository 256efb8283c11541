#include "huginn/check.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "huginn/common.h"
#include "huginn/model.h"

namespace huginn {

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}
}  // namespace

void check_config_against_weights(const ModelConfig& c, const TensorStore& store) {
  const std::string where = store.files().empty() ? std::string("model") : store.files()[0];
  uint64_t weight_bytes = 0;
  for (const auto& [name, t] : store.tensors()) weight_bytes += t.nbytes;
  if (c.arch == "huginn_raven") {
    // Layers present per part, from the names alone: O(tensors); extra layers
    // in the files are an error too.
    const char* parts[] = {"prelude", "core_block", "coda"};
    const int want[] = {c.n_prelude, c.n_core, c.n_coda};
    const char* keys[] = {"n_layers_in_prelude", "n_layers_in_recurrent_block", "n_layers_in_coda"};
    std::set<int64_t> present[3];
    for (const auto& [name, t] : store.tensors())
      for (int p = 0; p < 3; ++p) {
        const std::string pre = str("transformer.", parts[p], ".");
        if (name.compare(0, pre.size(), pre) != 0) continue;
        size_t i = pre.size();
        int64_t layer = 0;
        bool digits = false;
        while (i < name.size() && name[i] >= '0' && name[i] <= '9' && layer < (int64_t(1) << 40))
          layer = layer * 10 + (name[i++] - '0'), digits = true;
        if (digits && i < name.size() && name[i] == '.') present[p].insert(layer);
      }
    for (int p = 0; p < 3; ++p) {
      const int64_t n = (int64_t)present[p].size();
      if (n != want[p] || (n > 0 && *present[p].rbegin() != n - 1))
        fail(where, ": config.json has ", keys[p], " = ", want[p], " but the weights hold ", n,
             " layers of transformer.", parts[p], n > 0 ? str(" (indices up to ", *present[p].rbegin(), ")") : "");
    }
  }
  // Every layer has at least one tensor: a config asking for more layers than
  // the files hold tensors is wrong, found before the layout is built.
  const int64_t layers = (int64_t)c.n_prelude + c.n_core + c.n_coda;
  if (layers > (int64_t)store.tensors().size())
    fail(where, ": config.json asks for ", layers, " layers but the weights hold only ", store.tensors().size(),
         " tensors");
  // Every tensor of the architecture's layout, with its shape. Tensors the
  // config does not use are an error too: they mean the config and the
  // weights disagree (e.g. qk_bias tensors under "qk_bias": false), and
  // ignoring them would run a different model. Stored by the reference and
  // not read: its RoPE buffer freqs_cis, and under tied embeddings the tied
  // copy lm_head.weight (the golden fixtures hold both).
  int64_t total = 0;
  std::set<std::string> used = {"freqs_cis"};
  if (c.tie_embeddings) used.insert("lm_head.weight");
  for (const ParamSpec& p : param_layout(c)) {
    const TensorView* t = store.find(p.name);
    if (!t) fail(where, ": missing tensor '", p.name, "'");
    if (t->shape != p.shape)
      fail(t->file, ": tensor '", p.name, "' has shape ", t->shape_str(), ", the config needs ", shape_str(p.shape));
    total += t->numel();
    used.insert(p.name);
  }
  std::vector<std::string> extra;
  for (const auto& [name, t] : store.tensors())
    if (!used.count(name)) extra.push_back(name);
  if (!extra.empty()) {
    const bool qk_bias = !c.qk_bias && std::any_of(extra.begin(), extra.end(),
                                                   [](const std::string& n) { return n.ends_with(".qk_bias"); });
    fail(where, ": the weights hold ", extra.size(), " tensor", extra.size() == 1 ? "" : "s",
         " that this config does not use, e.g. '", printable(extra[0]), "'",
         qk_bias ? " (config.json has \"qk_bias\": false, but the weights hold qk_bias tensors)" : "");
  }
  if (c.arch == "huginn_raven" && total != c.params_total())
    fail(where, ": the config's parameter count ", c.params_total(), " does not match the ", total,
         " elements of its tensors");
  // Context length: a stored freqs_cis fixes it; otherwise the computed tables
  // must stay within what the weights themselves take.
  if (const TensorView* f = store.find("freqs_cis")) {
    if (f->shape.size() != 5 || f->shape[1] != c.block_size)
      fail(f->file, ": buffer 'freqs_cis' has shape ", f->shape_str(), ", the config needs [1, ", c.block_size,
           ", 1, ", c.head_dim / 2, ", 2]");
  } else {
    const uint64_t rope = (uint64_t)c.block_size * (uint64_t)c.head_dim * sizeof(float);
    if (rope > std::max<uint64_t>(kMaxRopeBytes, weight_bytes))
      fail(where, ": block_size ", c.block_size, " asks for ", rope >> 20,
           " MiB of rotary tables, more than the model's weights (", weight_bytes >> 20,
           " MiB); is block_size right?");
  }
}

NonFinite scan_non_finite(const TensorView& t) {
  NonFinite r;
  const int64_t n = t.numel();
  auto scan = [&](auto word, auto exp_mask, auto man_mask) {
    using W = decltype(word);
    const uint8_t* p = t.data;
    for (int64_t i = 0; i < n; ++i) {
      W v;
      std::memcpy(&v, p + (size_t)i * sizeof(W), sizeof(W));
      if ((v & exp_mask) == exp_mask) {
        if (v & man_mask) ++r.nan;
        else ++r.inf;
        if (r.first < 0) r.first = i;
      }
    }
  };
  switch (t.dtype) {
    case DType::F32: scan(uint32_t{}, uint32_t{0x7f800000u}, uint32_t{0x007fffffu}); break;
    case DType::BF16: scan(uint16_t{}, uint16_t{0x7f80u}, uint16_t{0x007fu}); break;
    case DType::F16: scan(uint16_t{}, uint16_t{0x7c00u}, uint16_t{0x03ffu}); break;
    case DType::F64:
      scan(uint64_t{}, uint64_t{0x7ff0000000000000ull}, uint64_t{0x000fffffffffffffull});
      break;
    default: break;
  }
  return r;
}

void check_small_tensors_finite(const TensorStore& store, int64_t max_numel) {
  for (const auto& [name, t] : store.tensors()) {
    if (t.numel() > max_numel) continue;
    const NonFinite nf = scan_non_finite(t);
    if (nf.count())
      fail(t.file, ": tensor '", name, "' holds ", nf.count(), " non-finite value", nf.count() > 1 ? "s" : "",
           " (", nf.nan, " NaN, ", nf.inf, " Inf; the first at index ", nf.first,
           "); run `huginn check` for every tensor");
  }
}

bool all_finite(const float* x, size_t n) {
  // x - x is 0 for finite x and NaN for NaN/Inf; one reduction, vectorised.
  // Eight independent lanes so that the compiler vectorises the loop.
  float acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[i + l] - x[i + l];
  for (; i < n; ++i) acc[0] += x[i] - x[i];
  float s = 0.f;
  for (float a : acc) s += a;
  return s == 0.f;
}

void check_logits_finite(const float* logits, size_t n, int depth, int64_t position) {
  if (all_finite(logits, n)) return;
  size_t nan = 0, inf = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(logits[i])) ++nan;
    else if (std::isinf(logits[i])) ++inf;
  }
  fail("non-finite logits (", nan, " NaN, ", inf, " Inf of ", n, ") at recurrence depth ", depth,
       " for the token at position ", position,
       ": the weights hold NaN/Inf or the recurrence diverged (run `huginn check MODEL`; try fewer --steps)");
}

void check_recurrence(int64_t depth, const std::string& what, int64_t cap) {
  if (depth > cap)
    fail(what, ": ", depth, " iterations exceed the cap of ", cap, " (raise it with --max-steps)");
}

}  // namespace huginn
