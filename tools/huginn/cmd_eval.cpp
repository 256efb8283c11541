// huginn eval: accuracy of a task model on fresh test instances against the
// number of iterations (test-time scaling), with optional per-token exit.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/exit_criteria.h"
#include "huginn/json.h"
#include "huginn/loaded_model.h"
#include "huginn/model.h"
#include "huginn/plot.h"
#include "huginn/tasks.h"
#include "huginn/threads.h"

namespace huginn::cli {
namespace {

struct Opts {
  std::string model, task, difficulty, steps = "1,2,4,8,16,32,64", exit = "none", plot, cache;
  std::string soft, label, compare;
  int n = 100;
  uint64_t seed = 0;
  float init_scale = 0.f;
  int min_steps = 0;  // DecodeSpec::min_steps: the earliest exit is after min_steps + 1 iterations
  int convergence = 0;  // > 0: also trace the latent state for this many iterations
  double settle_tol = 1e-3;
  bool json = false, list_tasks = false, quiet = false;
};

int parse_int_strict(const std::string& s, const std::string& what) {
  long long v = 0;
  if (!parse_int(s, v) || v < INT32_MIN || v > INT32_MAX) fail("invalid ", what, " '", s, "'");
  return (int)v;
}

std::vector<int> parse_steps(const std::string& s) {
  std::vector<int> out;
  size_t start = 0;
  for (;;) {
    size_t end = s.find(',', start);
    std::string item = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const int v = parse_int_strict(item, "--steps entry");
    if (v < 1 || v > 4096) fail("--steps: iterations must be between 1 and 4096, got ", v);
    out.push_back(v);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (std::set<int>(out.begin(), out.end()).size() != out.size()) fail("--steps '", s, "' repeats a value");
  return out;
}

// "K", "A-B" or "A,B,C".
std::vector<int> parse_difficulties(const std::string& s) {
  std::vector<int> out;
  if (auto dash = s.find('-', 1); dash != std::string::npos && s.find(',') == std::string::npos) {
    const int a = parse_int_strict(s.substr(0, dash), "--difficulty"),
              b = parse_int_strict(s.substr(dash + 1), "--difficulty");
    if (a > b) fail("--difficulty range '", s, "' is empty");
    for (int d = a; d <= b; ++d) out.push_back(d);
    return out;
  }
  size_t start = 0;
  for (;;) {
    size_t end = s.find(',', start);
    out.push_back(
        parse_int_strict(s.substr(start, end == std::string::npos ? std::string::npos : end - start), "--difficulty"));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// "k=K[,temp=T]" (K a whole number >= 1 or "all"): the soft thoughts'
// top-k and temperature. Returns {k (0 = all), temperature}.
std::pair<int, float> parse_soft(const std::string& s) {
  int k = -1;
  float temp = 1.f;
  bool have_temp = false;
  size_t start = 0;
  for (;;) {
    const size_t end = s.find(',', start);
    const std::string item = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const size_t eq = item.find('=');
    if (eq == std::string::npos) fail("--soft-thoughts '", s, "': expected k=K[,temp=T], got '", item, "'");
    const std::string key = item.substr(0, eq), val = item.substr(eq + 1);
    if (key == "k" && k < 0) {
      if (val == "all") {
        k = 0;
      } else {
        long long v = 0;
        if (!parse_int(val, v) || v < 1 || v > 1 << 20)
          fail("--soft-thoughts: k must be a whole number >= 1 or 'all', got '", val, "'");
        k = (int)v;
      }
    } else if ((key == "temp" || key == "temperature") && !have_temp) {
      double t = 0;
      if (!parse_double(val, t) || !(t > 0) || !std::isfinite(t))
        fail("--soft-thoughts: the temperature must be a positive number, got '", val, "'");
      temp = (float)t;
      have_temp = true;
    } else {
      fail("--soft-thoughts '", s, "': unknown or repeated key '", key, "' (expected k=K[,temp=T])");
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (k < 0) fail("--soft-thoughts '", s, "': k=K is required (K >= 1 or 'all'; k=1 is greedy)");
  return {k, temp};
}

std::string path_cell(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

struct Progress {
  bool enabled;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now(), last{};
  void operator()(int64_t done, int64_t total) {
    if (!enabled) return;
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - last < std::chrono::milliseconds(100)) return;
    last = now;
    const double el = std::chrono::duration<double>(now - t0).count();
    const double frac = (double)done / (double)total;
    const int w = 30, fill = (int)(frac * w);
    std::string bar(fill, '#');
    bar += std::string(w - fill, '-');
    const double eta = frac > 0 ? el / frac - el : 0;
    std::fprintf(stderr, "\r[%s] %3d%% %lld/%lld  %.0fs elapsed, eta %.0fs ", bar.c_str(), (int)(frac * 100),
                 (long long)done, (long long)total, el, eta);
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }
};

nlohmann::ordered_json results_json(const std::vector<const tasks::EvalResult*>& rs) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (auto* r : rs) {
    nlohmann::ordered_json j = {{"steps", r->setting.steps},
                                {"accuracy", r->accuracy()},
                                {"mean_steps", r->mean_steps},
                                {"mean_first_token_steps", r->mean_first_steps}};
    if (r->setting.exit.kind != ExitKind::None) j["exit"] = r->setting.exit.str();
    j["correct"] = r->correct;
    j["n"] = r->n;
    if (r->distinct) j["distinct"] = r->distinct;
    // The same fields for every arm (direct answer, written path, soft thoughts).
    if (r->setting.soft_k >= 0)
      j["soft_thoughts"] = {{"k", r->setting.soft_k == 0 ? nlohmann::ordered_json("all")
                                                         : nlohmann::ordered_json(r->setting.soft_k)},
                            {"temperature", r->setting.soft_temperature}};
    else j["soft_thoughts"] = nullptr;
    if (r->has_path) j["path_accuracy"] = r->path_accuracy();
    else j["path_accuracy"] = nullptr;
    const double n = r->n ? (double)r->n : 1.0;
    j["tokens_per_answer"] = (double)r->emitted_tokens / n;
    j["token_layers_per_answer"] = (double)r->token_layers / n;
    j["flops_per_answer"] = r->flops / n;
    j["wall_ms_per_answer"] = 1000.0 * r->wall_s / n;
    j["tokens_per_s"] = r->wall_s > 0 ? (double)r->generated_tokens / r->wall_s : 0;
    j["wall_s"] = r->wall_s;
    a.push_back(j);
  }
  return a;
}

std::string arm_label(const std::string& model, int soft_k, float soft_temp) {
  std::string name = std::filesystem::path(model).filename().string();
  if (name.empty()) name = std::filesystem::path(model).parent_path().filename().string();
  if (soft_k < 0) return name;
  return str(name, " soft k=", soft_k == 0 ? std::string("all") : std::to_string(soft_k),
             soft_temp != 1.f ? str(",temp=", soft_temp) : std::string());
}

// One line of the comparison: an arm at one setting, by difficulty.
struct Line {
  std::string label;
  std::map<int, nlohmann::json> by;  // difficulty -> that difficulty's result object
};

int compare(const Opts& o) {
  std::vector<std::string> files;
  for (size_t start = 0;;) {
    const size_t end = o.compare.find(',', start);
    const std::string f = o.compare.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (f.empty()) fail("--compare '", o.compare, "': empty file name");
    files.push_back(f);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  std::vector<Line> lines;
  std::set<int> diffs;
  int trained_max = -1;
  for (auto& f : files) {
    const nlohmann::json j = parse_json_file(f);
    // Integers are checked before converting (a hand-edited 1e300 converted to int is undefined).
    auto int_of = [&](const nlohmann::json& v, const char* what) {
      int64_t i = 0;
      if (!json_int(v, INT32_MIN, INT32_MAX, &i))
        fail("--compare: ", f, ": ", what, " is ", json_brief(v), ", not an integer");
      return (int)i;
    };
    if (!j.is_object() || !j.contains("results") || !j["results"].is_array() || !j.contains("label") ||
        !j["results"].size() || !j["results"][0].contains("flops_per_answer"))
      fail("--compare: ", f, ": not the output of `huginn eval --json` (with labels and compute per answer)");
    if (j.contains("trained_difficulty") && j["trained_difficulty"].is_array() && j["trained_difficulty"].size() == 2)
      trained_max = std::max(trained_max, int_of(j["trained_difficulty"][1], "trained_difficulty[1]"));
    std::vector<std::pair<int, nlohmann::json>> per;  // (difficulty, results array)
    if (j.contains("by_difficulty"))
      for (auto& b : j["by_difficulty"]) per.push_back({int_of(b.at("difficulty"), "difficulty"), b.at("results")});
    else
      per.push_back({int_of(j.at("difficulty"), "difficulty"), j["results"]});
    const size_t ns = j["results"].size();
    const bool several = ns > 1 || int_of(j["results"][0].at("steps"), "steps") > 1;
    for (size_t si = 0; si < ns; ++si) {
      Line l;
      l.label = j["label"].get<std::string>();
      if (several) l.label += str(" r=", int_of(j["results"][si].at("steps"), "steps"));
      for (auto& [d, rs] : per) {
        if (si >= rs.size()) fail("--compare: ", f, ": difficulty ", d, " lacks a setting");
        l.by[d] = rs[si];
        diffs.insert(d);
      }
      lines.push_back(std::move(l));
    }
  }
  auto dlabel = [&](int d) { return str(d, trained_max >= 0 && d > trained_max ? "*" : ""); };
  auto fmt = [](const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return std::string(b);
  };
  // One table: a row per difficulty, a column per arm, `cell` formats one result.
  auto table = [&](const char* title, const std::function<std::string(const nlohmann::json&)>& cell) {
    std::printf("%s\n\n| n |", title);
    for (auto& l : lines) std::printf(" %s |", l.label.c_str());
    std::printf("\n|---|");
    for (size_t i = 0; i < lines.size(); ++i) std::printf("---|");
    std::printf("\n");
    for (int d : diffs) {
      std::printf("| %s |", dlabel(d).c_str());
      for (auto& l : lines) {
        auto it = l.by.find(d);
        std::printf(" %s |", it == l.by.end() ? "-" : cell(it->second).c_str());
      }
      std::printf("\n");
    }
  };
  table("accuracy (written path exact, where there is one)", [&](const nlohmann::json& r) {
    std::string c = fmt("%.2f", r.at("accuracy").get<double>());
    if (r.contains("path_accuracy") && !r["path_accuracy"].is_null())
      c += fmt(" (%.2f)", r["path_accuracy"].get<double>());
    return c;
  });
  std::printf("\n");
  table("compute per answer: MFLOPs / iterations x layers (token-layers) / tokens emitted / wall ms",
        [&](const nlohmann::json& r) {
          return fmt("%.2f", r.at("flops_per_answer").get<double>() / 1e6) + " / " +
                 fmt("%.0f", r.at("token_layers_per_answer").get<double>()) + " / " +
                 fmt("%.1f", r.at("tokens_per_answer").get<double>()) + " / " +
                 fmt("%.2f", r.at("wall_ms_per_answer").get<double>());
        });
  if (trained_max >= 0) std::printf("\n(* longer than any row seen in training)\n");
  if (!o.plot.empty()) {
    plot::Chart c;
    c.title = "accuracy vs compute per answer (points: difficulties)";
    c.xlabel = "FLOPs per answer";
    c.ylabel = "accuracy";
    c.log_x = true;
    c.y_min = 0;
    c.y_max = 1;
    for (auto& l : lines) {
      plot::Series s;
      s.label = l.label;
      for (auto& [d, r] : l.by) {
        s.x.push_back(r.at("flops_per_answer").get<double>());
        s.y.push_back(r.at("accuracy").get<double>());
        s.point_labels.push_back(std::to_string(d));
      }
      s.dashed = l.label.find("soft") != std::string::npos;
      c.series.push_back(s);
    }
    plot::write_chart(o.plot, c);
    std::printf("wrote %s\n", o.plot.c_str());
  }
  return 0;
}

int run(const Opts& o) {
  if (!o.compare.empty()) return compare(o);
  if (o.model.empty()) fail("eval: -m/--model is required (unless --compare)");
  if (o.list_tasks) {
    tasks::TaskMix mix = tasks::read_task_manifest(o.model);
    for (auto& r : mix.tasks) std::cout << r.task << " " << r.min_difficulty << " " << r.max_difficulty << "\n";
    return 0;
  }
  if (o.task.empty()) fail("eval: --task is required (or --list-tasks)");
  if (!o.plot.empty()) {
    const std::string ext = o.plot.size() >= 4 ? o.plot.substr(o.plot.size() - 4) : "";
    if (ext != ".svg" && ext != ".png") fail("--plot: ", o.plot, ": plots are written as .svg or .png");
  }
  const tasks::Task& task = tasks::get_task(o.task);
  const std::vector<int> steps = parse_steps(o.steps);
  if (o.n < 1) fail("--n must be >= 1, got ", o.n);
  if (o.convergence == 1 || o.convergence < 0 || o.convergence > 4096)
    fail("--convergence takes 2 to 4096 iterations (0: off), got ", o.convergence);
  if (!(o.settle_tol > 0)) fail("--settle-tol must be > 0");

  ExitCriterion crit;
  try {
    crit = DecodeSpec::parse_exit(o.exit);
  } catch (const Error& e) {
    fail("--exit: ", e.what());
  }
  if (crit.kind != ExitKind::None && !(crit.threshold > 0)) fail("--exit: the threshold must be > 0");
  const std::string exit = crit.kind == ExitKind::None ? "none" : ExitCriterion::name(crit.kind);

  std::vector<int> diffs;
  std::string diff_label;
  if (!o.difficulty.empty()) {
    diffs = parse_difficulties(o.difficulty);
    diff_label = o.difficulty;
  } else {
    if (!tasks::has_task_manifest(o.model))
      fail("eval: --difficulty is required (", o.model, " has no tasks.json with the training range)");
    for (auto& r : tasks::read_task_manifest(o.model).tasks)
      if (r.task == o.task) {
        for (int d = r.min_difficulty; d <= r.max_difficulty; ++d) diffs.push_back(d);
        diff_label = r.min_difficulty == r.max_difficulty ? std::to_string(r.min_difficulty)
                                                          : str(r.min_difficulty, "-", r.max_difficulty);
      }
    if (diffs.empty()) fail("eval: the model was not trained on '", o.task, "'; give --difficulty");
  }
  for (int d : diffs) task.check_difficulty(d);

  const LoadedModel lm = load_model(o.model);
  const Model* model = &lm.model();
  tasks::check_char_tokenizer(lm.tokenizer(), o.model + "/tokenizer.json");
  int soft_k = -1;
  float soft_temp = 1.f;
  if (!o.soft.empty()) {
    std::tie(soft_k, soft_temp) = parse_soft(o.soft);
    if (task.path_length(diffs.front()) == 0)
      fail("--soft-thoughts: task '", task.name(),
           "' answers directly; soft thoughts replace a written reasoning path (e.g. --task jumps-cot)");
  }
  std::vector<tasks::EvalSetting> settings;
  for (int s : steps) {
    tasks::EvalSetting st{s, crit};
    st.soft_k = soft_k;
    st.soft_temperature = soft_temp;
    settings.push_back(st);
  }
  tasks::DecodeOptions base;
  base.cache = o.cache;
  base.init_scale = o.init_scale;
  base.min_steps = o.min_steps;
  Progress prog{!o.quiet && isatty(2)};
  auto results = tasks::evaluate(*model, task, diffs, settings, o.n, o.seed, base,
                                 [&](int64_t d, int64_t t) { prog(d, t); });
  std::vector<tasks::ConvergenceResult> conv;
  if (o.convergence > 0) {
    Progress cprog{!o.quiet && isatty(2)};
    conv = tasks::convergence(*model, task, diffs, o.n, o.seed, o.convergence, o.settle_tol,
                              [&](int64_t d, int64_t t) { cprog(d, t); });
  }

  // Aggregates over difficulties, per setting.
  std::vector<tasks::EvalResult> agg;
  for (size_t si = 0; si < settings.size(); ++si) {
    tasks::EvalResult a;
    a.task = task.name();
    a.setting = settings[si];
    double steps_tok = 0, first = 0;
    for (auto& r : results)
      if (r.setting.steps == settings[si].steps) {
        first += r.mean_first_steps * r.n;
        a.n += r.n;
        a.correct += r.correct;
        a.wall_s += r.wall_s;
        a.generated_tokens += r.generated_tokens;
        a.prompt_tokens += r.prompt_tokens;
        steps_tok += r.mean_steps * (double)r.generated_tokens;
      }
    for (auto& r : results)
      if (r.setting.steps == settings[si].steps) {
        a.has_path = r.has_path;
        a.path_correct += r.path_correct;
        a.emitted_tokens += r.emitted_tokens;
        a.token_layers += r.token_layers;
        a.flops += r.flops;
      }
    a.mean_steps = a.generated_tokens ? steps_tok / (double)a.generated_tokens : 0;
    a.mean_first_steps = a.n ? first / a.n : 0;
    agg.push_back(a);
  }

  if (o.json) {
    nlohmann::ordered_json j;
    j["task"] = task.name();
    j["model"] = o.model;
    j["label"] = !o.label.empty() ? o.label : arm_label(o.model, soft_k, soft_temp);
    {
      // The difficulties the model was trained on, for this task's family.
      nlohmann::ordered_json tr = nullptr;
      if (tasks::has_task_manifest(o.model))
        for (auto& r : tasks::read_task_manifest(o.model).tasks)
          if (tasks::get_task(r.task).family() == task.family())
            tr = nlohmann::ordered_json::array({r.min_difficulty, r.max_difficulty});
      j["trained_difficulty"] = tr;
    }
    j["threads"] = huginn::threads();
    j["flops_model"] = "matrix products of every layer (and of Huginn's adapter), attention over the cached "
                       "context, the head on one position per pass; summed over every pass the decode ran";
    if (diffs.size() == 1) j["difficulty"] = diffs[0];
    else j["difficulty"] = diff_label;
    j["n"] = o.n * (int)diffs.size();
    std::vector<const tasks::EvalResult*> ap;
    for (auto& a : agg) ap.push_back(&a);
    j["results"] = results_json(ap);
    if (diffs.size() > 1) {
      nlohmann::ordered_json by = nlohmann::ordered_json::array();
      for (int d : diffs) {
        std::vector<const tasks::EvalResult*> rs;
        for (auto& r : results)
          if (r.difficulty == d) rs.push_back(&r);
        by.push_back({{"difficulty", d}, {"n", o.n}, {"results", results_json(rs)}});
      }
      j["by_difficulty"] = by;
    }
    if (!conv.empty()) {
      nlohmann::ordered_json cj = nlohmann::ordered_json::array();
      for (auto& c : conv)
        cj.push_back({{"difficulty", c.difficulty},
                      {"n", c.n},
                      {"max_steps", c.max_steps},
                      {"tol", c.tol},
                      {"mean_settle", c.mean_settle},
                      {"median_settle", c.median_settle},
                      {"unsettled", c.unsettled},
                      {"mean_answer_settle", c.mean_answer_settle}});
      j["convergence"] = cj;
    }
    j["exit"] = crit.kind == ExitKind::None ? std::string("none") : crit.str();
    j["seed"] = o.seed;
    std::cout << j.dump() << "\n";
  } else {
    std::printf("task %s, difficulty %s, %d test instances per difficulty, exit %s\n", task.name().c_str(),
                diff_label.c_str(), o.n, exit == "none" ? "none (fixed depth)" : o.exit.c_str());
    if (soft_k >= 0)
      std::printf("soft thoughts: the written path's %s positions fed the top-%s mixture at temperature %g\n",
                  "path_length", soft_k == 0 ? "all" : std::to_string(soft_k).c_str(), soft_temp);
    std::printf("%10s %6s %9s %9s %10s %11s %10s %10s %12s %10s %8s\n", "difficulty", "steps", "accuracy",
                "path_acc", "mean_steps", "first_steps", "gen_tok/s", "tok/answer", "MFLOP/answer", "ms/answer",
                "wall_s");
    auto row = [](const std::string& d, const tasks::EvalResult& r) {
      const double n = r.n ? r.n : 1, w = r.wall_s > 0 ? r.wall_s : 1e-9;
      std::printf("%10s %6d %9.3f %9s %10.2f %11.2f %10.1f %10.1f %12.3f %10.3f %8.2f\n", d.c_str(), r.setting.steps,
                  r.accuracy(), r.has_path ? path_cell(r.path_accuracy()).c_str() : "-", r.mean_steps,
                  r.mean_first_steps, r.generated_tokens / w, r.emitted_tokens / n, r.flops / n / 1e6,
                  1000 * r.wall_s / n, r.wall_s);
    };
    if (diffs.size() > 1)
      for (auto& r : results) row(std::to_string(r.difficulty), r);
    for (auto& a : agg) row(diffs.size() > 1 ? "all" : diff_label, a);
    for (auto& r : results)
      if (r.setting.steps == settings[0].steps && r.distinct < r.n)
        std::printf("note: difficulty %d has only %d distinct test instances; the %d evaluated repeat them\n",
                    r.difficulty, r.distinct, r.n);
    if (!conv.empty()) {
      std::printf("\nconvergence of the latent state at the last prompt position (%d iterations, relative change "
                  "< %g; unsettled instances count as %d)\n",
                  o.convergence, o.settle_tol, o.convergence);
      std::printf("%10s %12s %14s %10s %20s\n", "difficulty", "mean_settle", "median_settle", "unsettled",
                  "answer_stable_from");
      for (auto& c : conv)
        std::printf("%10d %12.2f %14.1f %10d %20.2f\n", c.difficulty, c.mean_settle, c.median_settle, c.unsettled,
                    c.mean_answer_settle);
    }
  }

  if (!o.plot.empty()) {
    plot::Chart c;
    c.title = str(task.name(), ": accuracy vs iterations", exit == "none" ? "" : str(" (exit ", o.exit, ")"));
    c.xlabel = exit == "none" ? "iterations (recurrence steps)" : "mean iterations used";
    c.ylabel = "accuracy";
    c.log_x = true;
    c.y_min = 0;
    c.y_max = 1;
    for (int d : diffs) {
      plot::Series s;
      s.label = str("difficulty ", d);
      for (auto& r : results)
        if (r.difficulty == d) {
          s.x.push_back(std::max(r.mean_steps, 1e-3));
          s.y.push_back(r.accuracy());
        }
      c.series.push_back(s);
    }
    plot::write_chart(o.plot, c);
    if (!o.json) std::printf("wrote %s\n", o.plot.c_str());
  }
  return 0;
}
}  // namespace

static Register reg(
    "eval", "accuracy of a task model against iterations on fresh test instances", [](CLI::App& app) {
      auto o = std::make_shared<Opts>();
      app.add_option("-m,--model", o->model, "model directory (required unless --compare)");
      app.add_option("--task", o->task, "task name (see `huginn tasks`)");
      app.add_option("--difficulty", o->difficulty,
                     "difficulty: K, a range A-B or a list A,B,C (default: the range the model was trained on)");
      app.add_option("--steps", o->steps, "iterations to evaluate, comma separated (the maximum with --exit)")
          ->capture_default_str();
      app.add_option("--exit", o->exit,
                     "per-token exit: none, or a criterion with its threshold (kl:5e-4, latent-diff:0.01, "
                     "entropy-diff:1e-3, ...)")
          ->capture_default_str();
      app.add_option("--min-steps", o->min_steps,
                     "with --exit: iterations never checked (as generate's --min-steps; the earliest exit is after "
                     "min-steps + 1)")
          ->check(CLI::Range(0, 4095));
      app.add_option("--n", o->n, "test instances per difficulty")->capture_default_str();
      add_seed_option(app, o->seed, "seed of the test instances")->capture_default_str();
      app.add_option("--init-scale", o->init_scale, "initial state scale (0 = zeros)");
      app.add_option("--cache", o->cache, "KV cache strategy (default: full, or latest-m4 with --exit)");
      app.add_option("--convergence", o->convergence,
                     "also follow the latent state for this many iterations and report, per difficulty, when it "
                     "settles and when the answer stops changing (0: off)")
          ->capture_default_str();
      app.add_option("--settle-tol", o->settle_tol, "with --convergence: relative change counted as settled")
          ->capture_default_str();
      app.add_option("--soft-thoughts", o->soft,
                     "chain-of-thought tasks: decode the written path as soft thoughts, each position fed the "
                     "probability-weighted mixture of the embeddings of the top-K tokens (K >= 1 or 'all') at "
                     "temperature T: k=K[,temp=T]; k=1 is greedy");
      app.add_option("--label", o->label, "name of this arm in the JSON (default: from the model and settings)");
      app.add_option("--compare", o->compare,
                     "no evaluation: read `huginn eval --json` outputs (comma separated files), print accuracy "
                     "and compute per answer by difficulty as Markdown tables, and with --plot draw accuracy "
                     "against FLOPs per answer, one line per arm");
      app.add_flag("--json", o->json, "print one JSON object");
      app.add_option("--plot", o->plot, "write accuracy vs iterations, one line per difficulty (.svg or .png)");
      app.add_flag("--list-tasks", o->list_tasks, "print the tasks the model was trained on: NAME MIN MAX");
      app.add_flag("-q,--quiet", o->quiet, "no progress bar");
      return [o] { return run(*o); };
    });
}  // namespace huginn::cli
