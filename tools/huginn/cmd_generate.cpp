// huginn generate: every test-time compute mode from the command line, with
// streaming output and a one-line summary.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include "commands.h"
#include "gen_options.h"
#include "huginn/common.h"
#include "huginn/generate.h"
#include "huginn/loaded_model.h"
#include "huginn/model.h"
#include "prompt.h"

namespace huginn::cli {
namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

struct Summary {
  long tokens = 0;
  double seconds = 0;
  std::vector<int> steps;  // iterations per token
  size_t kv = 0;
  std::string extra;
};


void print_summary(const Summary& s) {
  double mean = 0;
  int mn = 0, mx = 0;
  if (!s.steps.empty()) {
    mn = *std::min_element(s.steps.begin(), s.steps.end());
    mx = *std::max_element(s.steps.begin(), s.steps.end());
    for (int x : s.steps) mean += x;
    mean /= s.steps.size();
  }
  std::fprintf(stderr,
               "summary: %ld tokens, %.2f tokens/s (%.3f s), iterations per token mean %.2f min %d max %d, KV "
               "memory %s%s\n",
               s.tokens, s.seconds > 0 ? s.tokens / s.seconds : 0.0, s.seconds, mean, mn, mx,
               human_bytes((double)s.kv).c_str(), s.extra.c_str());
}

int run(GenCliOptions& o) {
  const LoadedModel lm = load_model(o.model, o.load_options());  // weights, tokenizer, stop ids: read once
  const Model& m = lm.model();
  o.model_stops = lm.stop_ids();
  o.check_stop_ids(m.config().vocab_size);
  auto prompts = read_prompts(o.prompt, lm);
  const std::string mode = o.mode();
  if (mode != "sequential" && prompts.size() > 1)
    fail("--", mode, " decodes one prompt at a time; give a single --ids");
  TokenPrinter printer(lm.tokenizer());
  const bool stream = prompts.size() == 1 && !o.quiet;
  auto put = [&](const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  };
  TokenCallback cb;
  if (stream)
    cb = [&](const TokenEvent& ev) {
      if (ev.thought) {
        if (o.show_steps) put("<thought " + std::to_string(ev.token) + "[" + std::to_string(ev.steps) + "]> ");
        return;
      }
      put(printer.push(ev.token, o.show_steps ? ev.steps : -1));
    };
  Summary sum;
  std::vector<std::vector<int>> outputs;
  const double t0 = now_s();
  if (mode == "speculative") {
    SpeculativeOptions so = o.speculative_options(m.config());
    so.stop_tokens = o.stop_tokens();
    auto r = generate_speculative(m, prompts[0], so, cb);
    sum.seconds = now_s() - t0;
    sum.tokens = (long)r.tokens.size();
    sum.steps.assign(r.tokens.size(), so.steps);
    sum.kv = r.kv_bytes;
    sum.extra = str(", acceptance ", r.accepted, "/", r.drafted, " = ",
                    r.drafted ? std::round(1000.0 * r.acceptance_rate()) / 1000.0 : 0.0, " over ", r.rounds,
                    " rounds, core iterations x tokens ", r.core_iterations);
    outputs.push_back(r.tokens);
  } else if (mode == "parallel") {
    DiffusionOptions dop = o.parallel_options(m.config());
    dop.stop_tokens = o.stop_tokens();
    auto r = generate_diffusion(m, prompts[0], dop, cb);
    sum.seconds = now_s() - t0;
    sum.tokens = (long)r.tokens.size();
    const int P = (int)prompts[0].size();
    sum.steps.assign(r.recurrence_per_position.begin() + std::min<size_t>(P, r.recurrence_per_position.size()),
                     r.recurrence_per_position.end());
    sum.kv = r.kv_bytes;
    sum.extra = str(", ", r.passes, " passes, ", r.core_iterations, " core iterations x tokens, ",
                    r.standing_waves, " capped waves");
    outputs.push_back(r.tokens);
  } else {
    GenerateOptions g = o.generate_options(m.config(), printer.token_text());
    auto rs = generate(m, prompts, g, cb);
    sum.seconds = now_s() - t0;
    for (auto& r : rs) {
      sum.tokens += (long)r.tokens.size();
      sum.steps.insert(sum.steps.end(), r.steps.begin(), r.steps.end());
      sum.kv += r.kv_bytes;
      outputs.push_back(r.tokens);
    }
    if (g.soft_thoughts > 0) sum.extra += str(", ", g.soft_thoughts, " soft thoughts per sequence");
    if (rs.size() == 1) sum.extra += ", stop: " + rs[0].stop_reason;
    if (rs.size() > 1) sum.extra += str(", batch of ", rs.size());
  }
  if (stream) put(printer.flush() + "\n");
  else if (!o.quiet)
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::string s = printer.render(outputs[i]);
      if (outputs.size() > 1) s = "[" + std::to_string(i) + "] " + s;
      put(s + "\n");
    }
  if (o.compare) {
    // The plain fixed-depth greedy decoder on the same prompts, for speed and agreement.
    GenerateOptions base;
    base.steps = o.depth(m.config());
    base.cache = "full";
    base.stop_tokens = o.stop_tokens();
    size_t agree = 0, total = 0;
    double tb = 0;
    long btoks = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      base.max_new_tokens = std::max<int>(1, (int)outputs[i].size());
      const double t1 = now_s();
      auto r = generate(m, prompts[i], base);
      tb += now_s() - t1;
      btoks += (long)r.tokens.size();
      for (size_t j = 0; j < r.tokens.size(); ++j) {
        ++total;
        agree += j < outputs[i].size() && outputs[i][j] == r.tokens[j];
      }
    }
    const double base_tps = tb > 0 ? btoks / tb : 0, tps = sum.seconds > 0 ? sum.tokens / sum.seconds : 0;
    sum.extra += str(", vs sequential r=", base.steps, ": ", base_tps > 0 ? tps / base_tps : 0.0, "x speed (",
                     base_tps, " tokens/s), agreement ", agree, "/", total);
  }
  print_summary(sum);
  return 0;
}

}  // namespace

static Register reg("generate", "generate tokens with fixed or adaptive depth, speculative or parallel decoding",
                    [](CLI::App& app) {
                      auto o = std::make_shared<GenCliOptions>();
                      o->add_to(app, true);
                      return [o] { return run(*o); };
                    });
}  // namespace huginn::cli
