// huginn info: what a checkpoint is, and what a run of it needs.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <vector>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/config.h"
#include "huginn/kv_cache.h"
#include "huginn/safetensors.h"
#include "huginn/check.h"
#include "huginn/model.h"

namespace huginn::cli {
namespace fs = std::filesystem;
namespace {
struct Opts {
  std::string model;
  int steps = -1, ctx = -1;
};

// How a tensor is held in memory once loaded: matrices (2-D) of F32, BF16 or
// F16 stay in their stored dtype (used from the memory map); everything else
// (norms, biases, qk_bias, other dtypes) is converted to F32.
DType held_dtype(const TensorView& t) {
  if (t.shape.size() == 2 && (t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16)) return t.dtype;
  return DType::F32;
}
std::string group_of(const std::string& name) {
  static const std::pair<const char*, const char*> prefixes[] = {{"transformer.wte.", "embedding"},
                                                                 {"transformer.prelude.", "prelude"},
                                                                 {"transformer.adapter.", "adapter"},
                                                                 {"transformer.core_block.", "core"},
                                                                 {"transformer.coda.", "coda"},
                                                                 {"transformer.ln_f.", "ln_f"},
                                                                 {"lm_head.", "lm_head"},
                                                                 {"model.embed_tokens.", "embedding"},  // Ouro
                                                                 {"model.layers.", "layers"},
                                                                 {"model.norm.", "norm"},
                                                                 {"model.early_exit_gate.", "exit gate"}};
  for (const auto& [prefix, group] : prefixes)
    if (name.rfind(prefix, 0) == 0) return group;
  return "other";
}

// What the config says, the same for a directory and a GGUF file: shape,
// the family's structure, parameter counts. `rope` says where the rotary
// tables come from.
void print_architecture(const ModelConfig& c, const std::string& rope) {
  std::printf("width          %d, %d heads of %d, MLP %d, vocab %d, context %d\n", c.n_embd, c.n_heads, c.head_dim,
              c.intermediate_size, c.vocab_size, c.block_size);
  if (c.arch == "ouro") {
    const int64_t total = (int64_t)param_count(param_layout(c));
    std::printf(
        "architecture   ouro (LoopLM): %d layers looped T times (default T = total_ut_steps = %d), no "
        "input injection\n",
        c.n_core, c.mean_recurrence);
    std::printf("attention      %d query heads, %d KV heads, half-split RoPE\n", c.n_heads, c.kv_heads());
    if (c.exit_threshold >= 0)
      std::printf("exit gate      learned; default threshold %g (--exit gate:T)\n", c.exit_threshold);
    else
      std::printf("exit gate      learned; no default threshold (--exit gate:T)\n");
    std::printf("norm eps       %g, rope base %g (%s)\n", c.norm_eps, c.rope_base, rope.c_str());
    std::printf("embeddings     %s\n", c.tie_embeddings ? "tied" : "untied");
    std::printf("parameters     %lld total\n", (long long)total);
    std::printf("  embedding    %lld%s\n", (long long)c.params_embedding(), c.tie_embeddings ? " (tied head)" : "");
    std::printf("  layers       %lld\n",
                (long long)(total - c.params_embedding() * (c.tie_embeddings ? 1 : 2) - 2 * c.n_embd - 1));
    if (!c.tie_embeddings) std::printf("  lm_head      %lld\n", (long long)c.params_embedding());
    return;
  }
  std::printf("layers         prelude %d, core %d (x r, default r = %d), coda %d\n", c.n_prelude, c.n_core,
              c.mean_recurrence, c.n_coda);
  std::printf("norm eps       %g, rope base %g (%s)\n", c.norm_eps, c.rope_base, rope.c_str());
  std::printf("embeddings     %s, qk_bias %s\n", c.tie_embeddings ? "tied" : "untied", c.qk_bias ? "yes" : "no");
  const int64_t blk = c.params_block();
  std::printf("parameters     %lld total\n", (long long)c.params_total());
  std::printf("  embedding    %lld%s\n", (long long)c.params_embedding(), c.tie_embeddings ? " (tied head)" : "");
  std::printf("  prelude      %lld\n", (long long)(blk * c.n_prelude));
  std::printf("  adapter      %lld\n", (long long)c.params_adapter());
  std::printf("  core         %lld\n", (long long)(blk * c.n_core));
  std::printf("  coda         %lld (+ ln_f %d)\n", (long long)(blk * c.n_coda), c.n_embd);
  if (!c.tie_embeddings) std::printf("  lm_head      %lld\n", (long long)c.params_embedding());
}

// The KV cache per strategy that makes sense for the family (Ouro: every
// loop's K/V, or only the last loop's).
void print_kv(const ModelConfig& c, int steps, int ctx) {
  const int fixed = c.n_prelude + c.n_coda;
  std::vector<const char*> strategies = {"full", "full-f16", "compress-s4", "compress-r4"};
  if (c.arch == "ouro") strategies = {"full", "full-f16", "last-loop"};
  for (const char* s : strategies) {
    const CacheStrategy cs = CacheStrategy::parse(s);
    const double per_slot = (double)cs.position_bytes(c.kv_width()) * ctx;  // K and V, one layer application
    const int slots = fixed + cs.core_slots(c.n_core, steps);
    std::printf("  KV %-12s %s (%d layer slots per token)\n", s, human_bytes(per_slot * slots).c_str(), slots);
  }
}

// Reads config.json and the safetensors headers only (the memory map is not
// touched beyond the headers): milliseconds and constant memory for any size.
// A .gguf file: loading it is a memory map (only the 1-D tensors are
// converted), so the model itself says what is held.
int run_gguf(const Opts& o) {
  auto m = Model::load(o.model);
  const ModelConfig& c = m->config();
  const int steps = o.steps >= 0 ? o.steps : c.mean_recurrence;
  const int ctx = o.ctx > 0 ? o.ctx : c.block_size;
  std::printf("model          %s (%s, GGUF)\n", c.name.c_str(), o.model.c_str());
  print_architecture(c, str("computed from rope_base ", c.rope_base));
  std::map<std::string, int> types;
  for (const Weight& w : m->params()) types[w.type_name()]++;
  std::printf("stored types  ");
  for (auto& [t, n] : types) std::printf(" %s x%d", t.c_str(), n);
  std::printf("\nmemory at r = %d, context %d (float32 compute)\n", steps, ctx);
  std::printf("  weights      %s held (%s converted to F32)\n", human_bytes((double)m->weight_bytes()).c_str(),
              human_bytes((double)m->converted_bytes()).c_str());
  print_kv(c, steps, ctx);
  return 0;
}

int run(const Opts& o) {
  if (!fs::is_directory(o.model) && o.model.ends_with(".gguf")) return run_gguf(o);
  if (!fs::is_directory(o.model)) fail(o.model, ": not a model directory or .gguf file");
  const ModelConfig c = load_config((fs::path(o.model) / "config.json").string());
  const TensorStore store = TensorStore::open_dir(o.model);
  check_config_against_weights(c, store);
  const int steps = o.steps >= 0 ? o.steps : c.mean_recurrence;
  const int ctx = o.ctx > 0 ? o.ctx : c.block_size;
  const TensorView* freqs = store.find("freqs_cis");
  std::printf("model          %s (%s)\n", c.name.c_str(), o.model.c_str());
  print_architecture(c, freqs ? str("stored freqs_cis (", dtype_name(freqs->dtype), ")")
                              : str("computed from rope_base ", c.rope_base));
  // Per group: stored dtypes, and dtype and bytes as held in memory.
  struct Group {
    std::map<std::string, int> stored;
    std::map<std::string, double> held;  // dtype -> bytes
  };
  std::map<std::string, Group> groups;
  std::map<std::string, int> dts;
  double stored_bytes = 0, held_bytes = 0;
  for (const auto& [name, t] : store.tensors()) {
    if (name == "freqs_cis") continue;  // held as the rotary tables below
    Group& g = groups[group_of(name)];
    g.stored[dtype_name(t.dtype)]++;
    dts[dtype_name(t.dtype)]++;
    const double b = (double)t.numel() * dtype_size(held_dtype(t));
    g.held[dtype_name(held_dtype(t))] += b;
    stored_bytes += (double)t.nbytes;
    held_bytes += b;
  }
  std::printf("stored dtypes ");
  for (auto& [dt, n] : dts) std::printf(" %s x%d", dt.c_str(), n);
  std::printf("\n");
  std::printf("held in memory (matrices in their stored dtype from the memory map, 1-D norms/biases as F32)\n");
  for (const char* gname : {"embedding", "prelude", "adapter", "core", "coda", "ln_f", "layers", "norm", "exit gate", "lm_head", "other"}) {
    auto it = groups.find(gname);
    if (it == groups.end()) continue;
    std::string line;
    for (auto& [dt, b] : it->second.held) line += str(line.empty() ? "" : ", ", dt, " ", human_bytes(b));
    std::printf("  %-12s %s\n", gname, line.c_str());
  }
  std::printf("  %-12s %s (files: %s)\n", "total", human_bytes(held_bytes).c_str(), human_bytes(stored_bytes).c_str());
  const double rope_bytes = 2.0 * c.block_size * (c.head_dim / 2) * sizeof(float);
  std::printf("memory at r = %d, context %d (float32 compute)\n", steps, ctx);
  std::printf("  weights      %s\n", human_bytes(held_bytes).c_str());
  std::printf("  rope tables  %s\n", human_bytes(rope_bytes).c_str());
  print_kv(c, steps, ctx);
  return 0;
}
}  // namespace

static Register reg("info", "print a checkpoint's config, parameter counts, dtypes and memory needs",
                    [](CLI::App& app) {
                      auto o = std::make_shared<Opts>();
                      app.add_option("model", o->model, "model directory or .gguf file")->required();
                      app.add_option("--steps", o->steps, "recurrence depth for the memory estimate")
                          ->check(CLI::Range(0, 100000));
                      app.add_option("--ctx", o->ctx, "context length for the memory estimate")
                          ->check(CLI::Range(1, 1 << 24));
                      return [o] { return run(*o); };
                    });
}  // namespace huginn::cli
