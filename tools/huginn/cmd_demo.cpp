// huginn demo: the project's main job. Loads the shipped task model, measures
// accuracy against the number of latent iterations on fresh problems (fixed
// depths and per-token adaptive exit), shows one problem being thought
// through iteration by iteration, and writes the plots.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/loaded_model.h"
#include "huginn/model.h"
#include "huginn/plot.h"
#include "huginn/tasks.h"

namespace huginn::cli {
namespace {
namespace fs = std::filesystem;
using namespace huginn::tasks;

struct Opts {
  std::string model = "models/huginn-tasks", out = "demo-out", cot_model;  // default: jumps-cot beside the model
  int n = 60, max_steps = 32, beyond = 2;
  double kl = 1e-6, latent = 0.01;
  uint64_t seed = 1;
  bool quiet = false;
};

std::string pct(double a) { return str((int)std::lround(100 * a), "%"); }

// Up to `count` difficulties harder than training, in steps of half the
// trained maximum, while the problem fits the model's context.
std::vector<int> harder_than_training(const Task& task, const TaskRange& tr, const ModelConfig& c, int count) {
  std::vector<int> out;
  for (int b = 1; b <= count; ++b) {
    const int dv = tr.max_difficulty + b * std::max(1, tr.max_difficulty / 2);
    if (dv <= task.max_difficulty() && task.sequence_length(dv) <= c.block_size) out.push_back(dv);
  }
  return out;
}

// The same problems solved three ways (README, "Latent vs token reasoning"):
// by the recurrent model in latent space (answer at once), by the
// chain-of-thought transformer writing the frog's path out, and by the same
// transformer fed soft thoughts (the mixture of its top-k next-token
// embeddings) along the path. False (with a note) when the chain-of-thought
// model is not there.
bool latent_vs_token(const Opts& o, const Model& latent, const TaskMix& mix) {
  const std::string cot_dir =
      !o.cot_model.empty() ? o.cot_model : (fs::path(o.model).lexically_normal().parent_path() / "jumps-cot").string();
  if (!fs::exists(fs::path(cot_dir) / "model.safetensors")) {
    std::printf("(latent vs token reasoning: no chain-of-thought model at %s; skipped)\n\n", cot_dir.c_str());
    return false;
  }
  auto cot_model = Model::load(cot_dir);
  check_char_tokenizer(cot_dir);
  const Task& jumps = get_task("jumps");
  const Task& cot = get_task("jumps-cot");
  int trained_max = 24;
  for (auto& r : mix.tasks)
    if (r.task == "jumps") trained_max = r.max_difficulty;
  // The middle and the top of the trained range, and 1.5x beyond it (where it fits both contexts).
  std::vector<int> diffs = {trained_max * 2 / 3, trained_max};
  const int beyond = trained_max + trained_max / 2;
  if (cot.sequence_length(beyond) <= cot_model->config().block_size &&
      jumps.sequence_length(beyond) <= latent.config().block_size)
    diffs.push_back(beyond);
  const int r_latent = std::max(1, latent.config().mean_recurrence);
  struct Arm {
    std::string label;
    const Model* m;
    const Task* task;
    EvalSetting st;
  };
  auto soft = [](int k) {
    EvalSetting st{1, ExitCriterion{}};
    st.soft_k = k;
    return st;
  };
  const std::vector<Arm> arms = {
      {str("latent, r=", r_latent), &latent, &jumps, {r_latent, ExitCriterion{}}},
      {"written path (greedy)", cot_model.get(), &cot, {1, ExitCriterion{}}},
      {"soft thoughts k=2", cot_model.get(), &cot, soft(2)},
      {"soft thoughts k=all", cot_model.get(), &cot, soft(0)},
  };
  std::printf("Latent vs token reasoning: the same fresh jumps problems (%d per row), answered by the recurrent\n"
              "model in latent space (%d iterations, answer at once), and by a 4-layer transformer of the same 231k\n"
              "parameters (%s) that writes the frog's path out cell by cell before 'y'/'n', decoded greedily\n"
              "or with soft thoughts (each path position fed the probability-weighted mixture of the embeddings\n"
              "of its top-k tokens). Cells: accuracy (written path exactly right) and MFLOPs per answer.\n\n",
              o.n, r_latent, cot_dir.c_str());
  std::printf("  %-10s", "cells n");
  for (auto& a : arms) std::printf(" %24s", a.label.c_str());
  std::printf("\n");
  std::vector<std::vector<EvalResult>> res;
  for (auto& a : arms) res.push_back(evaluate(*a.m, *a.task, diffs, {a.st}, o.n, o.seed, DecodeOptions{}));
  plot::Chart chart;
  chart.title = "latent vs token reasoning: accuracy vs compute per answer (points: row length)";
  chart.xlabel = "FLOPs per answer";
  chart.ylabel = "accuracy";
  chart.log_x = true;
  chart.y_min = 0, chart.y_max = 1;
  for (size_t di = 0; di < diffs.size(); ++di) {
    std::printf("  %-10s", str(diffs[di], diffs[di] > trained_max ? "*" : "").c_str());
    for (auto& rs : res) {
      const EvalResult& r = rs[di];
      const std::string cell = r.has_path ? str(pct(r.accuracy()), " (", pct(r.path_accuracy()), ")")
                                          : pct(r.accuracy());
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s %6.2f MF", cell.c_str(), r.flops / r.n / 1e6);
      std::printf(" %24s", buf);
    }
    std::printf("\n");
  }
  for (size_t ai = 0; ai < arms.size(); ++ai) {
    plot::Series sr;
    sr.label = arms[ai].label;
    for (auto& r : res[ai]) {
      sr.x.push_back(r.flops / r.n);
      sr.y.push_back(r.accuracy());
      sr.point_labels.push_back(std::to_string(r.difficulty));
    }
    sr.dashed = arms[ai].st.soft_k >= 0;
    chart.series.push_back(sr);
  }
  plot::write_chart((fs::path(o.out) / "latent_vs_token.svg").string(), chart);
  std::printf("  (* longer than any row seen in training; the full table: bash models/jumps-cot.eval.sh)\n\n");
  return true;
}

int run(const Opts& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const LoadedModel lm = load_model(o.model);
  const Model* model = &lm.model();
  check_char_tokenizer(lm.tokenizer(), o.model + "/tokenizer.json");
  const TaskMix mix = read_task_manifest(o.model);
  const ModelConfig& c = model->config();
  fs::create_directories(o.out);
  std::vector<int> depths;
  for (int r = 1; r <= o.max_steps; r *= 2) depths.push_back(r);
  std::vector<EvalSetting> settings;
  for (int r : depths) settings.push_back({r, ExitCriterion{}});
  // Two adaptive exits, up to twice the largest fixed depth: the paper's KL
  // criterion and the relative change of the latent state.
  const std::vector<EvalSetting> exits = {{2 * o.max_steps, ExitCriterion{ExitKind::KL, o.kl}},
                                          {2 * o.max_steps, ExitCriterion{ExitKind::LatentDiff, o.latent}}};
  for (auto& e : exits) settings.push_back(e);

  std::printf("huginn demo: %s (d=%d, %d/%d/%d layers, trained at mean depth %d)\n", o.model.c_str(), c.n_embd,
              c.n_prelude, c.n_core, c.n_coda, c.mean_recurrence);
  std::printf("Accuracy on fresh test problems (%d per row) against latent iterations r. Two columns exit each\n"
              "token adaptively (up to %d iterations) and show the mean iterations the answer used: 'KL exit' when the\n"
              "next-token distribution changes by less than KL %g between iterations, 'latent exit' when the latent\n"
              "state moves by less than %g (relative). Difficulties marked * are harder than anything seen in training.\n"
              "'settles': mean iteration from which the latent state stops moving (relative change < 1e-3); 'answer\n"
              "from': mean iteration from which the decoded answer stops changing.\n\n",
              o.n, 2 * o.max_steps, o.kl, o.latent);

  plot::Chart acc_chart, iters_chart;
  acc_chart.title = "accuracy vs latent iterations (fresh test problems)";
  acc_chart.xlabel = "iterations r";
  acc_chart.ylabel = "accuracy";
  acc_chart.log_x = true;
  acc_chart.y_min = 0, acc_chart.y_max = 1;
  iters_chart.title = "iterations vs difficulty: used with adaptive exits, and until the state settles";
  iters_chart.xlabel = "difficulty";
  iters_chart.ylabel = "mean iterations";
  DecodeOptions base;
  for (const TaskRange& tr : mix.tasks) {
    const Task& task = get_task(tr.task);
    // The smallest difficulty with --n distinct fresh problems (the smallest
    // ones have only a handful), the middle of the range and its top.
    int lo = tr.min_difficulty;
    for (int distinct = 0; lo < tr.max_difficulty; ++lo) {
      test_instances(task, lo, o.n, o.seed, &distinct);
      if (distinct >= o.n) break;
    }
    std::vector<int> diffs = {lo, (lo + tr.max_difficulty) / 2, tr.max_difficulty};
    for (int dv : harder_than_training(task, tr, c, o.beyond)) diffs.push_back(dv);
    diffs.erase(std::unique(diffs.begin(), diffs.end()), diffs.end());
    auto res = evaluate(*model, task, diffs, settings, o.n, o.seed, base);
    auto conv = convergence(*model, task, diffs, o.n, o.seed, 2 * o.max_steps, 1e-3);
    std::printf("%s (trained on difficulty %d-%d)\n", task.name().c_str(), tr.min_difficulty, tr.max_difficulty);
    // The task in words, wrapped, so that the table can be read without the docs.
    {
      std::string line = " ", word;
      std::istringstream words(task.description());
      while (words >> word) {
        if (line.size() + word.size() + 1 > 100) {
          std::printf("%s\n", line.c_str());
          line = " ";
        }
        line += " " + word;
      }
      std::printf("%s\n\n  %-10s", line.c_str(), "difficulty");
    }
    for (int r : depths) std::printf(" %6s", str("r=", r).c_str());
    std::printf(" %20s %20s %8s %12s\n", "KL exit (mean r)", "latent exit (mean r)", "settles", "answer from");
    std::vector<double> xd, ysettle;
    std::vector<std::vector<double>> yit(exits.size());
    for (int dv : diffs) {
      std::printf("  %-10s", str(dv, dv > tr.max_difficulty ? "*" : "").c_str());
      std::vector<double> xs, ys;
      for (auto& e : res) {
        if (e.difficulty != dv) continue;
        if (e.setting.exit.kind == ExitKind::None) {
          std::printf(" %6s", pct(e.accuracy()).c_str());
          xs.push_back(e.setting.steps);
          ys.push_back(e.accuracy());
        } else {
          char cell[48];
          std::snprintf(cell, sizeof cell, "%s (%.1f)", pct(e.accuracy()).c_str(), e.mean_first_steps);
          std::printf(" %20s", cell);
          for (size_t k = 0; k < exits.size(); ++k)
            if (exits[k].exit.kind == e.setting.exit.kind) yit[k].push_back(e.mean_first_steps);
        }
      }
      xd.push_back(dv);
      for (auto& cv : conv)
        if (cv.difficulty == dv) {
          std::printf(" %8.1f %12.1f", cv.mean_settle, cv.mean_answer_settle);
          ysettle.push_back(cv.mean_settle);
        }
      std::printf("\n");
      auto s = plot::make_series(str(task.name(), " d=", dv), xs, ys);
      s.dashed = dv > tr.max_difficulty;
      acc_chart.series.push_back(s);
    }
    for (size_t k = 0; k < exits.size(); ++k)
      iters_chart.series.push_back(plot::make_series(
          str(task.name(), ": used, ", exits[k].exit.kind == ExitKind::KL ? "KL exit" : "latent exit"), xd, yit[k]));
    auto settle_series = plot::make_series(str(task.name(), ": iterations until the latent state settles"), xd, ysettle);
    settle_series.dashed = true;
    iters_chart.series.push_back(settle_series);
    std::printf("\n");
    std::fflush(stdout);
  }
  plot::write_chart((fs::path(o.out) / "accuracy_vs_iterations.svg").string(), acc_chart);
  plot::write_chart((fs::path(o.out) / "iterations_vs_difficulty.svg").string(), iters_chart);

  // One problem, thought through: the answer decoded through the coda after
  // each iteration, and how far the latent state still moves.
  const TaskRange& tr = mix.tasks.front();
  const Task& task = get_task(tr.task);
  // Prefer a problem the model gets wrong at r = 1 and right at full depth:
  // the point of the demo is to watch the answer change as it thinks.
  // The first difficulty beyond training, when there is one.
  const std::vector<int> harder = harder_than_training(task, tr, c, o.beyond);
  const int show = harder.empty() ? tr.max_difficulty : harder.front();
  auto answer_at = [&](const std::vector<int>& ids, int steps) {
    DecodeOptions d;
    d.steps = steps;
    d.max_new_tokens = task.answer_length(show) + 1;
    return decode_answer_text(decode_answer(*model, ids, d).tokens);
  };
  Instance inst = sample(task, Split::Test, show, 0, o.seed);
  for (uint64_t i = 0; i < 200; ++i) {
    const Instance cand = sample(task, Split::Test, show, i, o.seed);
    const auto cids = prompt_ids(cand);
    if (answer_at(cids, 1) != cand.answer && answer_at(cids, o.max_steps) == cand.answer) {
      inst = cand;
      break;
    }
  }
  const auto ids = prompt_ids(inst);
  const LatentTrace lt = trace_latents(*model, ids, o.max_steps);
  const size_t last = (size_t)(lt.T - 1) * lt.d;
  const Trajectory traj = analyze_trajectory(lt.states.data() + last, lt.steps, lt.d, (size_t)lt.T * lt.d);
  std::printf("Thinking through one %s problem (difficulty %d%s): %s  (answer %s)\n", task.name().c_str(), show,
              show > tr.max_difficulty ? ", harder than training" : "", inst.prompt.c_str(), inst.answer.c_str());
  std::printf("  iter  answer decoded at this depth   relative change of the latent state\n");
  std::string prev;
  for (int k = 1; k <= o.max_steps; ++k) {
    const std::string ans = answer_at(ids, k);
    const bool changed = ans != prev;
    if (k <= 8 || changed || k == o.max_steps || (k & (k - 1)) == 0)
      std::printf("  %4d  %-12s %-3s %-12s %.2e\n", k, ans.c_str(), ans == inst.answer ? "ok" : "", changed ? "(changed)" : "",
                  traj.rel_change[k - 1]);
    prev = ans;
  }
  std::printf("  trajectory: %s\n\n", traj.summary.c_str());
  plot::Chart pca;
  pca.title = str("latent trajectory (PCA of the state over iterations): ", task.name());
  pca.xlabel = str("PC1 (", (int)std::lround(100 * traj.explained[0]), "%)");
  pca.ylabel = str("PC2 (", (int)std::lround(100 * traj.explained[1]), "%)");
  pca.equal_aspect = true;
  auto s = plot::make_series("iterations", traj.pc1, traj.pc2);
  for (int k = 1; k <= lt.steps; ++k) s.point_labels.push_back((k <= 4 || k == lt.steps) ? std::to_string(k) : "");
  pca.series.push_back(s);
  plot::write_chart((fs::path(o.out) / "latent_trajectory.svg").string(), pca);
  const bool compared = latent_vs_token(o, *model, mix);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("plots: %s/{accuracy_vs_iterations,iterations_vs_difficulty,latent_trajectory%s}.svg  (%.1f s)\n",
              o.out.c_str(), compared ? ",latent_vs_token" : "", secs);
  return 0;
}
}  // namespace

static Register reg("demo", "test-time scaling on the shipped reasoning model: accuracy vs iterations, adaptive exit, "
                            "one problem thought through, plots",
                    [](CLI::App& app) {
                      auto o = std::make_shared<Opts>();
                      app.add_option("-m,--model", o->model, "task model directory")->capture_default_str();
                      app.add_option("--out", o->out, "directory for the plots")->capture_default_str();
                      app.add_option("--n", o->n, "test problems per task and difficulty")
                          ->check(CLI::Range(1, 100000))
                          ->capture_default_str();
                      app.add_option("--max-steps", o->max_steps, "largest depth (1, 2, 4, ... up to it)")
                          ->check(CLI::Range(1, 4096))
                          ->capture_default_str();
                      app.add_option("--latent", o->latent, "latent-diff exit threshold (relative change)")
                          ->check(CLI::PositiveNumber)
                          ->capture_default_str();
                      app.add_option("--kl", o->kl, "KL exit threshold")
                          ->check(CLI::PositiveNumber)
                          ->capture_default_str();
                      app.add_option("--beyond", o->beyond,
                                     "how many difficulties harder than training to test (in steps of half the "
                                     "trained maximum)")
                          ->check(CLI::Range(0, 100))
                          ->capture_default_str();
                      add_seed_option(app, o->seed, "seed of the test problems")->capture_default_str();
                      app.add_option("--cot-model", o->cot_model,
                                     "chain-of-thought model for the latent-vs-token comparison (default: "
                                     "jumps-cot beside the model; skipped when absent)");
                      return [o] { return run(*o); };
                    });
}  // namespace huginn::cli
