// huginn forward: one full forward pass at a chosen depth; prints the top next
// tokens and optionally writes logits and latent states to a safetensors file.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>

#include "commands.h"
#include "huginn/chat.h"
#include "huginn/common.h"
#include "huginn/loaded_model.h"
#include "huginn/model.h"
#include "huginn/safetensors.h"

namespace huginn::cli {
namespace {
struct Opts {
  std::string model, ids, text, out;
  int steps = -1, top = 5;
  float init_scale = 0.f;
  uint64_t seed = 0;
};

int run(const Opts& o) {
  const LoadedModel lm = load_model(o.model);
  const Model* m = &lm.model();
  const ModelConfig& c = m->config();
  if (o.ids.empty() == o.text.empty()) fail("give exactly one of --ids and -p");
  PromptSource ps;
  ps.ids = o.ids;
  ps.text = o.text;
  std::vector<int> ids = lm.prompt_ids(ps);
  if (ids.empty()) fail("the input holds no tokens");
  const int steps = o.steps >= 0 ? o.steps : c.mean_recurrence;
  const int T = (int)ids.size();
  Workspace ws;
  Model::ForwardResult r;
  auto t0 = std::chrono::steady_clock::now();
  m->forward(ids.data(), T, steps, r, ws, nullptr, nullptr, o.init_scale, o.seed);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const float* last = r.logits.data() + (size_t)(T - 1) * c.vocab_size;
  std::vector<int> order(c.vocab_size);
  std::iota(order.begin(), order.end(), 0);
  const int k = std::min(o.top, c.vocab_size);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) { return last[a] > last[b]; });
  std::printf("forward: %d tokens, r = %d, %.3f s (%.1f tokens/s)\n", T, steps, secs, T / secs);
  std::printf("top %d next tokens after position %d:\n", k, T - 1);
  for (int i = 0; i < k; ++i) std::printf("  %6d  logit %.4f\n", order[i], last[order[i]]);
  if (!o.out.empty()) {
    std::vector<TensorToWrite> ts = {
        {"logits", {1, T, c.vocab_size}, r.logits.data(), DType::F32},
        {"latent_states", {1, T, c.n_embd}, r.latents.data(), DType::F32},
    };
    write_safetensors(o.out, ts, {{"steps", std::to_string(steps)}});
    std::printf("wrote %s\n", o.out.c_str());
  }
  return 0;
}
}  // namespace

static Register reg("forward", "run one forward pass at a chosen depth and show the next-token logits",
                    [](CLI::App& app) {
                      auto o = std::make_shared<Opts>();
                      app.add_option("-m,--model", o->model, "model directory")->required();
                      app.add_option("--ids", o->ids, "input token ids, e.g. 1,2,3");
                      app.add_option("-p,--prompt", o->text, "input text (the model's tokenizer.json)");
                      app.add_option("--steps", o->steps, "recurrence depth r (default: mean_recurrence)")
                          ->check(CLI::Range(0, 100000));
                      app.add_option("--top", o->top, "how many top tokens to show")->check(CLI::Range(1, 1000));
                      app.add_option("--init-scale", o->init_scale, "initial state scale (0: zeros)")
                          ->check(CLI::Range(0.0, 100.0));
                      add_seed_option(app, o->seed, "seed of the random initial state");
                      app.add_option("--out", o->out, "write logits and latent states to this .safetensors");
                      return [o] { return run(*o); };
                    });
}  // namespace huginn::cli
