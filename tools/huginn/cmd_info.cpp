// huginn info: what a checkpoint is, and what a run of it needs.
#include <cstdio>
#include <iostream>
#include <map>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/model.h"

namespace huginn::cli {
namespace {
struct Opts {
  std::string model;
  int steps = -1, ctx = -1;
};


int run(const Opts& o) {
  auto m = Model::load(o.model);
  const ModelConfig& c = m->config();
  const int steps = o.steps >= 0 ? o.steps : c.mean_recurrence;
  const int ctx = o.ctx > 0 ? o.ctx : c.block_size;
  std::printf("model          %s (%s)\n", c.name.c_str(), o.model.c_str());
  std::printf("width          %d, %d heads of %d, MLP %d, vocab %d, context %d\n", c.n_embd, c.n_heads, c.head_dim,
              c.intermediate_size, c.vocab_size, c.block_size);
  std::printf("layers         prelude %d, core %d (x r, default r = %d), coda %d\n", c.n_prelude, c.n_core,
              c.mean_recurrence, c.n_coda);
  std::printf("norm eps       %g, rope base %g (%s)\n", c.norm_eps, c.rope_base, m->rope_source().c_str());
  std::printf("embeddings     %s, qk_bias %s\n", c.tie_embeddings ? "tied" : "untied", c.qk_bias ? "yes" : "no");
  const int64_t blk = c.params_block();
  std::printf("parameters     %lld total\n", (long long)c.params_total());
  std::printf("  embedding    %lld%s\n", (long long)c.params_embedding(), c.tie_embeddings ? " (tied head)" : "");
  std::printf("  prelude      %lld\n", (long long)(blk * c.n_prelude));
  std::printf("  adapter      %lld\n", (long long)c.params_adapter());
  std::printf("  core         %lld\n", (long long)(blk * c.n_core));
  std::printf("  coda         %lld (+ ln_f %d)\n", (long long)(blk * c.n_coda), c.n_embd);
  if (!c.tie_embeddings) std::printf("  lm_head      %lld\n", (long long)c.params_embedding());
  std::map<std::string, int> dts;
  for (auto& [name, dt] : m->stored_dtypes()) dts[dt]++;
  std::printf("stored dtypes ");
  for (auto& [dt, n] : dts) std::printf(" %s x%d", dt.c_str(), n);
  std::printf("\n");
  const double wbytes = (double)c.params_total() * 4;
  std::printf("memory at r = %d, context %d (float32 compute)\n", steps, ctx);
  std::printf("  weights      %s\n", human_bytes(wbytes).c_str());
  const double per_slot = 2.0 * c.n_embd * 4 * ctx;  // K and V, one layer application
  const int fixed = c.n_prelude + c.n_coda;
  for (const char* s : {"full", "compress-s4", "compress-r4"}) {
    CacheStrategy cs = CacheStrategy::parse(s);
    const int slots = fixed + cs.core_slots(c.n_core, steps);
    std::printf("  KV %-12s %s (%d layer slots per token)\n", s, human_bytes(per_slot * slots).c_str(), slots);
  }
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
