// bench_generate: tokens/s and iterations per token of every generation mode
// on one model and prompt set, measured against the plain fixed-depth greedy
// decoder in the same invocation.
//
//   build/bin/bench_generate                 # standard d=512 config (shared/notes/benchmarking.md), random weights
//   build/bin/bench_generate -m MODEL_DIR --steps 32 --prompt 128 --gen 16 --prompts 2
//
// "tok/s" is end to end (prefill + decode) for the generated tokens; "decode
// tok/s" excludes the prompt pass (a run producing one token is subtracted).
//
// A second table gives batched decode (generate() over B prompts at once,
// BatchRunner) at batch sizes 1, 2, 4, 8, 16 side by side, per depth:
// aggregate decode tok/s of the batch (timed from the moment every sequence
// has its first token), and its ratio to batch 1.
//   build/bin/bench_generate --batch-only -t 2          # r=32 and r=8, prompts of 16 tokens
//   build/bin/bench_generate --batch-only --batch-sizes 1,8 --batch-depths 32
//
// --alternate-caches A,B compares two cache strategies on a machine whose
// speed drifts between (and within) processes: one batch per strategy, their
// decode passes alternated one by one in this process, the median pass time
// of each (prompts refilled every --gen passes, so the context stays in
// [prompt, prompt + gen)).
//   build/bin/bench_generate -t 2 --alternate-caches full,full-f16 --batch-sizes 1,8 --batch-depths 8 --batch-prompt
//   512
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "bench_model.h"
#include "bench_util.h"
#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "infer/decoder.h"
#include "tensor/kernels.h"

using namespace huginn;
using clk = std::chrono::steady_clock;

namespace {
double secs_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

struct Outcome {
  std::vector<std::vector<int>> tokens;  // per prompt
  double iters = 0;                      // core iterations x positions, summed
  long positions = 0;                    // tokens the iterations were spent on
  size_t kv = 0;
  std::string note;
};
// A mode: runs every prompt, producing `gen` tokens each.
using Mode = std::function<Outcome(const std::vector<std::vector<int>>& prompts, int gen)>;

using bench::int_list;

// --alternate-caches: see the top of the file.
int alternate_caches(const Model& M, const std::string& caches_s, const std::string& sizes_s,
                     const std::string& depths_s, int prompt, int gen, int passes) {
  std::vector<std::string> names;
  for (auto& x : CLI::detail::split(caches_s, ',')) names.push_back(CacheStrategy::parse(x).name);
  if (names.size() != 2) fail("--alternate-caches takes two cache strategies, e.g. full,full-f16");
  const ModelConfig& c = M.config();
  if (prompt + gen > c.block_size) fail("--batch-prompt + --gen exceeds the context of ", c.block_size);
  std::printf(
      "# decode passes alternated between two batches, %d prompt tokens, context in [%d, %d), %d passes each, "
      "%d threads; ms per pass: median (p10-p90)\n",
      prompt, prompt, prompt + gen, passes, kern::threads());
  std::printf("| r | batch | %s | %s | %s / %s |\n|---|---|---|---|---|\n", names[0].c_str(), names[1].c_str(),
              names[1].c_str(), names[0].c_str());
  std::mt19937 rng(1);
  for (int r : int_list(depths_s, "--batch-depths", 1))
    for (int B : int_list(sizes_s, "--batch-sizes", 1)) {
      std::vector<std::vector<int>> ids(B, std::vector<int>(prompt));
      for (auto& p : ids)
        for (auto& x : p) x = (int)(rng() % c.vocab_size);
      std::vector<std::unique_ptr<infer::Decoder>> dec[2];
      std::vector<std::unique_ptr<infer::BatchRunner>> runner;
      std::vector<infer::Lane> lanes(B);
      std::vector<int> next(B, 0);
      infer::DepthPolicy pol;
      pol.max_steps = r;
      auto prefill = [&](int k) {
        for (int i = 0; i < B; ++i) {
          dec[k][i]->cache().clear();
          lanes[i] = infer::Lane{};
          lanes[i].dec = dec[k][i].get();
          lanes[i].in.ids = ids[i].data();
          lanes[i].in.T = prompt;
        }
        runner[k]->run(lanes.data(), B, pol);
      };
      for (int k = 0; k < 2; ++k) {
        for (int i = 0; i < B; ++i)
          dec[k].push_back(std::make_unique<infer::Decoder>(M, prompt + gen, CacheStrategy::parse(names[k]), prompt,
                                                            ExitCriterion{}));
        runner.push_back(std::make_unique<infer::BatchRunner>(M, prompt * B, B, prompt + gen, B));
        prefill(k);
      }
      std::vector<double> t[2];
      for (int p = 0; p < 2 * passes; ++p) {
        const int k = p % 2;
        if (dec[k][0]->cache().length() >= prompt + gen) prefill(k);
        for (int i = 0; i < B; ++i) {
          lanes[i] = infer::Lane{};
          lanes[i].dec = dec[k][i].get();
          next[i] = (int)((next[i] * 31u + 7u + (unsigned)i) % (unsigned)c.vocab_size);  // any token: timing only
          lanes[i].in.ids = &next[i];
          lanes[i].in.T = 1;
        }
        const auto t0 = clk::now();
        runner[k]->run(lanes.data(), B, pol);
        t[k].push_back(secs_since(t0) * 1e3);
      }
      double med[2];
      std::printf("| %d | %d |", r, B);
      for (int k = 0; k < 2; ++k) {
        std::sort(t[k].begin(), t[k].end());
        const size_t n = t[k].size();
        med[k] = t[k][n / 2];
        std::printf(" %.2f (%.2f-%.2f) |", med[k], t[k][n / 10], t[k][n * 9 / 10]);
      }
      std::printf(" %.3f |\n", med[1] / med[0]);
      std::fflush(stdout);
    }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"huginn generation benchmark: every mode against the plain fixed-depth decoder"};
  std::string model_dir, only, batch_sizes_s = "1,2,4,8,16", batch_depths_s = "32,8";
  int prompt = 128, gen = 16, threads = 0, steps = 32, nprompts = 2, batch_prompt = 16, batch_reps = 2;
  std::string batch_caches_s = "full", alternate_s;
  int alternate_passes = 200;
  bool batch_only = false;
  app.add_option("-m,--model", model_dir, "model directory (default: the standard d=512 config, random weights)");
  app.add_option("--steps", steps, "depth r of the plain decoder (the maximum for adaptive modes)")
      ->check(CLI::Range(1, 10000));
  app.add_option("--prompt", prompt, "prompt tokens")->check(CLI::Range(1, 1 << 20));
  app.add_option("--gen", gen, "generated tokens per prompt")->check(CLI::Range(2, 1 << 20));
  app.add_option("--prompts", nprompts, "number of prompts")->check(CLI::Range(1, 64));
  app.add_option("--only", only, "run only modes whose name contains this");
  app.add_option("-t,--threads", threads, "threads (default: all cores)");
  app.add_option("--batch-sizes", batch_sizes_s, "batch sizes of the batched-decode table (empty: no table)");
  app.add_option("--batch-depths", batch_depths_s, "depths r of the batched-decode table");
  app.add_option("--batch-prompt", batch_prompt, "prompt tokens per sequence in the batched-decode table")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--batch-reps", batch_reps, "repetitions per batched-decode cell; the fastest counts")
      ->check(CLI::Range(1, 100));
  app.add_option("--batch-caches", batch_caches_s,
                 "cache strategies of the batched-decode table, one row each per depth (default full), e.g. "
                 "full,full-f16");
  app.add_flag("--batch-only", batch_only, "only the batched-decode table");
  app.add_option("--alternate-caches", alternate_s,
                 "instead of the tables: two cache strategies A,B, decode passes of a batch of each alternated one by "
                 "one (per --batch-sizes and --batch-depths, after --batch-prompt tokens); median pass ms of each");
  app.add_option("--alternate-passes", alternate_passes, "passes per strategy with --alternate-caches (default 200)")
      ->check(CLI::Range(10, 100000));
  CLI11_PARSE(app, argc, argv);
  try {
    kern::set_threads(threads);
    bench::BenchModel bm = bench::load_bench_model(model_dir);
    const std::unique_ptr<Model>& m = bm.model;
    const std::string& name = bm.name;
    const Model& M = *m;
    const ModelConfig& c = M.config();
    if (!alternate_s.empty())
      return alternate_caches(M, alternate_s, batch_sizes_s, batch_depths_s, batch_prompt, gen, alternate_passes);
    if (prompt + gen + 16 > c.block_size) fail("prompt + gen exceeds the context of ", c.block_size);
    std::mt19937 rng(1);
    std::vector<std::vector<int>> prompts(nprompts, std::vector<int>(prompt));
    for (auto& p : prompts)
      for (auto& x : p) x = (int)(rng() % c.vocab_size);

    auto sequential = [&](std::function<void(GenerateOptions&)> set) -> Mode {
      return [&M, set, steps](const std::vector<std::vector<int>>& ps, int n) {
        GenerateOptions o;
        o.steps = steps;
        o.max_new_tokens = n;
        o.stop_tokens.clear();
        set(o);
        Outcome out;
        for (auto& p : ps) {
          auto r = generate(M, p, o);
          out.tokens.push_back(r.tokens);
          for (size_t i = 0; i < r.steps.size(); ++i) out.iters += r.steps[i];
          out.positions += (long)r.steps.size();
          out.kv = std::max(out.kv, r.kv_bytes);
        }
        return out;
      };
    };
    std::vector<std::pair<std::string, Mode>> modes;
    modes.push_back({str("plain r=", steps), sequential([](GenerateOptions&) {})});
    modes.push_back(
        {str("plain r=", steps, " compress-s4"), sequential([](GenerateOptions& o) { o.cache = "compress-s4"; })});
    modes.push_back({"plain r=4", sequential([](GenerateOptions& o) { o.steps = 4; })});
    for (const char* crit : {"kl:5e-4", "entropy-diff:1e-3", "latent-diff:0.03", "argmax-stability:5"})
      modes.push_back({str("adaptive ", crit, " latest-m4"), sequential([crit](GenerateOptions& o) {
                         o.exit = ExitCriterion::parse(crit);
                         o.cache = "latest-m4";
                       })});
    modes.push_back({"adaptive kl:5e-4 latest-m4-compress-s4", sequential([](GenerateOptions& o) {
                       o.exit = ExitCriterion::parse("kl:5e-4");
                       o.cache = "latest-m4-compress-s4";
                     })});
    modes.push_back({"adaptive kl:5e-4 + continuous", sequential([](GenerateOptions& o) {
                       o.exit = ExitCriterion::parse("kl:5e-4");
                       o.cache = "latest-m4";
                       o.continuous = true;
                     })});
    modes.push_back({"soft thoughts 4,k=8", sequential([](GenerateOptions& o) {
                       o.soft_thoughts = 4;
                       o.soft_top_k = 8;
                     })});
    modes.push_back({"sampling t=0.7 top-p=0.9", sequential([](GenerateOptions& o) {
                       o.sampling.temperature = 0.7f;
                       o.sampling.top_p = 0.9f;
                       o.sampling.seed = 1;
                     })});
    modes.push_back(
        {str("batch of ", nprompts, " r=", steps), [&M, steps](const std::vector<std::vector<int>>& ps, int n) {
           GenerateOptions o;
           o.steps = steps;
           o.max_new_tokens = n;
           o.stop_tokens.clear();
           Outcome out;
           for (auto& r : generate(M, ps, o)) {
             out.tokens.push_back(r.tokens);
             for (int s : r.steps) out.iters += s;
             out.positions += (long)r.steps.size();
             out.kv += r.kv_bytes;
           }
           return out;
         }});
    for (auto [draft, la] : {std::pair{4, 8}, {8, 4}}) {
      modes.push_back({str("speculative draft=", draft, ",lookahead=", la),
                       [&M, steps, draft, la](const std::vector<std::vector<int>>& ps, int n) {
                         SpeculativeOptions s;
                         s.steps = steps;
                         s.draft_steps = draft;
                         s.lookahead = la;
                         s.max_new_tokens = n;
                         s.stop_tokens.clear();
                         Outcome out;
                         int acc = 0, dr = 0;
                         for (auto& p : ps) {
                           auto r = generate_speculative(M, p, s);
                           r.tokens.resize(std::min<size_t>(r.tokens.size(), n));
                           out.tokens.push_back(r.tokens);
                           out.iters += r.core_iterations - (double)p.size() * steps;
                           out.positions += (long)r.tokens.size() - 1;
                           out.kv = std::max(out.kv, r.kv_bytes);
                           acc += r.accepted;
                           dr += r.drafted;
                         }
                         out.iters += (double)steps * ps.size();  // the prompt pass, counted like the others
                         out.positions += (long)ps.size();
                         out.note = str("acceptance ", dr ? 100 * acc / dr : 0, "%");
                         return out;
                       }});
    }
    for (int inner : {4, 8}) {
      modes.push_back({str("parallel inner=", inner, " latent-diff"),
                       [&M, steps, inner](const std::vector<std::vector<int>>& ps, int n) {
                         DiffusionOptions d;
                         d.steps = steps;
                         d.inner_recurrence = inner;
                         d.max_new_tokens = n;
                         d.stop_tokens.clear();
                         Outcome out;
                         int passes = 0;
                         for (auto& p : ps) {
                           auto r = generate_diffusion(M, p, d);
                           r.tokens.resize(std::min<size_t>(r.tokens.size(), n));
                           out.tokens.push_back(r.tokens);
                           for (size_t i = p.size(); i < r.recurrence_per_position.size(); ++i)
                             out.iters += r.recurrence_per_position[i];
                           out.positions += (long)r.recurrence_per_position.size() - (long)p.size();
                           out.kv = std::max(out.kv, r.kv_bytes);
                           passes += r.passes;
                         }
                         out.note = str(passes, " passes");
                         return out;
                       }});
    }

    std::printf(
        "# model %s: d=%d heads=%d I=%d V=%d layers %d/%d/%d; %d prompts of %d tokens, %d new tokens each, "
        "greedy unless noted, %d threads\n",
        name.c_str(), c.n_embd, c.n_heads, c.intermediate_size, c.vocab_size, c.n_prelude, c.n_core, c.n_coda, nprompts,
        prompt, gen, kern::threads());
    if (!batch_only) {
      std::printf(
          "| mode | tok/s | decode tok/s | vs plain (decode) | mean iterations/token | KV MiB | agreement with plain | "
          "note |\n");
      std::printf("|---|---|---|---|---|---|---|---|\n");
      std::fflush(stdout);
      // warm-up
      modes[0].second({prompts[0]}, 2);
      std::vector<std::vector<int>> base;
      double base_dec = 0;
      for (auto& [mname, run] : modes) {
        if (!only.empty() && mname.find(only) == std::string::npos && &run != &modes[0].second) continue;
        auto t0 = clk::now();
        Outcome one = run(prompts, 1);
        const double t_one = secs_since(t0);
        auto t1 = clk::now();
        Outcome out = run(prompts, gen);
        const double t_all = secs_since(t1);
        long ntok = 0;
        for (auto& t : out.tokens) ntok += (long)t.size();
        const double dec = (ntok - (long)prompts.size()) / std::max(1e-9, t_all - t_one);
        if (base.empty()) {
          base = out.tokens;
          base_dec = dec;
        }
        long agree = 0, total = 0;
        for (size_t i = 0; i < base.size(); ++i)
          for (size_t j = 0; j < base[i].size(); ++j) {
            ++total;
            agree += j < out.tokens[i].size() && out.tokens[i][j] == base[i][j];
          }
        std::printf("| %s | %.2f | %.2f | %.2fx | %.2f | %.2f | %ld/%ld | %s |\n", mname.c_str(), ntok / t_all, dec,
                    dec / base_dec, out.positions ? out.iters / out.positions : 0.0, out.kv / 1048576.0, agree, total,
                    out.note.c_str());
        std::fflush(stdout);
        (void)one;
      }
    }
    // Batched decode: B sequences decoded together (one weight pass per matmul for all rows).
    const std::vector<int> bsizes = int_list(batch_sizes_s, "--batch-sizes", 1),
                           bdepths = int_list(batch_depths_s, "--batch-depths", 1);
    std::vector<std::string> bcaches;
    for (auto& x : CLI::detail::split(batch_caches_s, ','))
      if (!x.empty()) bcaches.push_back(CacheStrategy::parse(x).name);  // a bad name fails before any run
    if (!bsizes.empty() && !bdepths.empty()) {
      if (batch_prompt + gen + 16 > c.block_size) fail("--batch-prompt + gen exceeds the context of ", c.block_size);
      const int bmax = *std::max_element(bsizes.begin(), bsizes.end());
      std::vector<std::vector<int>> bp(bmax, std::vector<int>(batch_prompt));
      for (auto& p : bp)
        for (auto& x : p) x = (int)(rng() % c.vocab_size);
      std::printf(
          "\n# batched decode: B sequences of %d prompt tokens, %d new tokens each, greedy, %d threads; "
          "aggregate decode tok/s (x: vs batch %d)\n",
          batch_prompt, gen, kern::threads(), bsizes[0]);
      std::printf("| r |");
      for (int B : bsizes) std::printf(" batch %d |", B);
      std::printf("\n|---|");
      for (size_t i = 0; i < bsizes.size(); ++i) std::printf("---|");
      std::printf("\n");
      std::fflush(stdout);
      for (int r : bdepths)
        for (const std::string& cache : bcaches) {
          if (cache == "full")
            std::printf("| %d |", r);
          else
            std::printf("| %d %s |", r, cache.c_str());
          double base1 = 0;
          for (int B : bsizes) {
            const std::vector<std::vector<int>> ps(bp.begin(), bp.begin() + B);
            // Decode time: from the moment every sequence has its first token
            // (the prompt pass) to the end.
            double best = 0;
            for (int rep = 0; rep < batch_reps; ++rep) {  // the fastest: timing on a shared machine is noisy
              GenerateOptions o;
              o.steps = r;
              o.cache = cache;
              o.max_new_tokens = gen;
              o.stop_tokens.clear();
              long events = 0;
              clk::time_point t_first{};
              auto res = generate(M, ps, o, [&](const TokenEvent&) {
                if (++events == B) t_first = clk::now();
              });
              const double t = secs_since(t_first);
              long ntok = 0;
              for (auto& x : res) ntok += (long)x.tokens.size();
              best = std::max(best, (ntok - B) / std::max(1e-9, t));
            }
            const double dec = best;
            if (base1 == 0) base1 = dec;
            std::printf(" %.2f (%.2fx) |", dec, dec / base1);
            std::fflush(stdout);
          }
          std::printf("\n");
        }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
