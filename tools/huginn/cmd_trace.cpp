// huginn trace: watch the latent state think. Per iteration: the state
// (safetensors), its norm, the distance to the final state, the relative
// change, and the top next tokens decoded through the coda; plus a PCA plot of
// the trajectory and the behaviour it shows (fixed point, orbit, slider).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "huginn/atomic_file.h"
#include "huginn/chat.h"
#include "huginn/common.h"
#include "huginn/loaded_model.h"
#include "huginn/model.h"
#include "huginn/plot.h"
#include "huginn/safetensors.h"
#include "huginn/tasks.h"

namespace huginn::cli {
namespace {
namespace fs = std::filesystem;

struct Opts {
  std::string model, prompt, ids, out, plot_format = "svg";
  int steps = 32, top = 3, position = -1;
  float init_scale = 0.f;
  uint64_t seed = 0;
  bool json = false;
};

std::string token_text(int id, int vocab_is_char) {
  if (!vocab_is_char) return str("#", id);
  if (id == tasks::kBosId) return tasks::kBosText;
  if (id == tasks::kEosId) return tasks::kEosText;
  if (id == tasks::kPadId) return tasks::kPadText;
  const char c = tasks::id_char(id);
  if (c == ' ') return "' '";
  if (c == '\n') return "'\\n'";
  if (c) return str("'", c, "'");
  return str("#", id);
}

int run(const Opts& o) {
  if (o.prompt.empty() == o.ids.empty()) fail("trace: give exactly one of -p TEXT or --ids LIST");
  if (o.steps < 1 || o.steps > 4096) fail("--steps must be between 1 and 4096, got ", o.steps);
  if (o.top < 1) fail("--top must be >= 1");
  if (o.plot_format != "svg" && o.plot_format != "png") fail("--plot-format must be svg or png");
  const LoadedModel lm = load_model(o.model);
  const Model* model = &lm.model();
  const ModelConfig& c = model->config();
  const bool char_vocab = c.vocab_size >= tasks::kCharVocabSize && c.vocab_size <= tasks::kCharModelVocabSize;
  std::vector<int> ids;
  if (!o.prompt.empty()) {
    // The model's own tokenizer.json, with its special tokens (BOS for task models).
    PromptSource ps;
    ps.text = o.prompt;
    ids = lm.prompt_ids(ps);
  } else {
    ids = parse_ids(o.ids);
    if (ids.empty()) fail("--ids: no token ids");
  }
  const int T = (int)ids.size(), d = c.n_embd, V = c.vocab_size, N = o.steps;
  const int pos = o.position < 0 ? T + o.position : o.position;
  if (pos < 0 || pos >= T) fail("--position ", o.position, " is outside the ", T, " input positions");

  tasks::LatentTrace tr = tasks::trace_latents(*model, ids, N, o.init_scale, o.seed);
  std::vector<float> init((size_t)T * d);
  std::vector<float> e;
  if (model->state_from_embedding()) {  // Ouro: the loop starts from the embedding
    e.resize((size_t)T * d);
    Workspace ws;
    model->embed(ids.data(), T, e.data());
    model->prelude(e.data(), T, 0, nullptr, ws);
  }
  model->init_state(init.data(), T, o.init_scale, o.seed, e.empty() ? nullptr : e.data());
  tasks::Trajectory traj =
      tasks::analyze_trajectory(&tr.states[(size_t)pos * d], N, d, (size_t)T * d, &init[(size_t)pos * d]);

  fs::create_directories(o.out);
  const std::string states_path = (fs::path(o.out) / "states.safetensors").string();
  std::string ids_str;
  for (int id : ids) ids_str += str(ids_str.empty() ? "" : ",", id);
  write_safetensors(states_path,
                    {{"states", {N, T, d}, tr.states.data(), DType::F32},
                     {"latents", {N, T, d}, tr.latents.data(), DType::F32},
                     {"initial_state", {T, d}, init.data(), DType::F32},
                     {"logits_last", {N, V}, tr.logits.data(), DType::F32}},
                    {{"input_ids", ids_str},
                     {"description", "states[k] = raw state after iteration k+1; latents[k] = ln_f(states[k]); "
                                     "logits_last[k] = next-token logits of the last position after iteration k+1"}});

  // Top tokens of the last position after each iteration.
  struct Top {
    int id;
    double p;
  };
  std::vector<std::vector<Top>> tops(N);
  for (int k = 0; k < N; ++k) {
    const float* lg = &tr.logits[(size_t)k * V];
    double mx = lg[0];
    for (int i = 1; i < V; ++i) mx = std::max(mx, (double)lg[i]);
    double z = 0;
    for (int i = 0; i < V; ++i) z += std::exp(lg[i] - mx);
    std::vector<int> order(V);
    for (int i = 0; i < V; ++i) order[i] = i;
    const int K = std::min(o.top, V);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int a, int b) {
      return lg[a] > lg[b] || (lg[a] == lg[b] && a < b);
    });
    for (int i = 0; i < K; ++i) tops[k].push_back({order[i], std::exp(lg[order[i]] - mx) / z});
  }

  // Plots.
  const std::string ext = "." + o.plot_format;
  plot::Chart pca;
  pca.title = str("latent trajectory (PCA), position ", pos, ": ", traj.behaviour);
  pca.xlabel = str("PC1 (", (int)std::lround(100 * traj.explained[0]), "% of variance)");
  pca.ylabel = str("PC2 (", (int)std::lround(100 * traj.explained[1]), "%)");
  pca.equal_aspect = true;
  pca.legend = true;
  {
    plot::Series s = plot::make_series("iterations", traj.pc1, traj.pc2);
    s.line_width = 1.5;
    const int every = std::max(1, N / 16);
    for (int k = 0; k < N; ++k)
      s.point_labels.push_back((k % every == 0 || k == N - 1) ? std::to_string(k + 1) : "");
    pca.series.push_back(s);
    plot::Series first = plot::make_series("first", {traj.pc1.front()}, {traj.pc2.front()});
    first.line = false;
    first.line_width = 3;
    first.color = "#2f855a";
    plot::Series last = plot::make_series("last", {traj.pc1.back()}, {traj.pc2.back()});
    last.line = false;
    last.line_width = 3;
    last.color = "#c53030";
    pca.series.push_back(first);
    pca.series.push_back(last);
  }
  const std::string pca_path = (fs::path(o.out) / ("pca" + ext)).string();
  plot::write_chart(pca_path, pca);
  plot::Chart conv;
  conv.title = str("convergence of the state at position ", pos);
  conv.xlabel = "iteration";
  conv.ylabel = "relative change / distance to final (log)";
  conv.log_y = true;
  std::vector<double> it(N), dist_rel(N);
  for (int k = 0; k < N; ++k) {
    it[k] = k + 1;
    dist_rel[k] = traj.dist_to_final[k] / std::max(traj.norm.back(), 1e-30);
  }
  conv.series.push_back(plot::make_series("||s_k - s_(k-1)|| / ||s_k||", it, traj.rel_change));
  conv.series.push_back(plot::make_series("||s_k - s_final|| / ||s_final||", it, dist_rel));
  const std::string conv_path = (fs::path(o.out) / ("convergence" + ext)).string();
  plot::write_chart(conv_path, conv);

  // trace.json.
  nlohmann::ordered_json j;
  j["input_ids"] = ids;
  if (!o.prompt.empty()) j["prompt"] = o.prompt;
  j["steps"] = N;
  j["position"] = pos;
  nlohmann::ordered_json its = nlohmann::ordered_json::array();
  for (int k = 0; k < N; ++k) {
    nlohmann::ordered_json e;
    e["iteration"] = k + 1;
    e["norm"] = traj.norm[k];
    e["dist_to_final"] = traj.dist_to_final[k];
    e["rel_change"] = traj.rel_change[k];
    e["pca"] = {traj.pc1[k], traj.pc2[k]};
    nlohmann::ordered_json top = nlohmann::ordered_json::array();
    for (auto& t : tops[k]) top.push_back({{"id", t.id}, {"token", token_text(t.id, char_vocab)}, {"p", t.p}});
    e["top"] = top;
    its.push_back(e);
  }
  j["iterations"] = its;
  j["behaviour"] = traj.behaviour;
  j["settle_iteration"] = traj.settle_iteration;
  if (traj.period) j["period"] = traj.period;
  j["summary"] = traj.summary;
  j["pca_explained"] = {traj.explained[0], traj.explained[1]};
  const std::string json_path = (fs::path(o.out) / "trace.json").string();
  write_file_atomic(json_path, j.dump(1) + "\n");

  if (o.json) {
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::string shown;
  if (!o.prompt.empty()) shown = o.prompt;
  else shown = ids_str;
  std::printf("input (%d tokens): %s\nposition %d, %d iterations, d=%d\n", T, shown.c_str(), pos, N, d);
  std::printf("%5s %11s %13s %11s   top tokens after the coda (last position)\n", "iter", "norm", "dist_to_final",
              "rel_change");
  for (int k = 0; k < N; ++k) {
    std::string t;
    for (auto& tp : tops[k]) t += str(token_text(tp.id, char_vocab), " ", std::to_string(tp.p).substr(0, 5), "  ");
    std::printf("%5d %11.4g %13.4g %11.3e   %s\n", k + 1, traj.norm[k], traj.dist_to_final[k], traj.rel_change[k],
                t.c_str());
  }
  std::printf("%s\n", traj.summary.c_str());
  std::printf("wrote %s, %s, %s, %s\n", states_path.c_str(), json_path.c_str(), pca_path.c_str(), conv_path.c_str());
  return 0;
}
}  // namespace

static Register reg("trace", "per-iteration latent states, norms, convergence, decoded tokens and a PCA plot",
                    [](CLI::App& app) {
                      auto o = std::make_shared<Opts>();
                      app.add_option("-m,--model", o->model, "model directory")->required();
                      app.add_option("-p,--prompt", o->prompt, "input text (the model's tokenizer.json, special tokens such as BOS added)");
                      app.add_option("--ids", o->ids, "input token ids, e.g. 96,20,19");
                      app.add_option("--steps", o->steps, "iterations")->capture_default_str();
                      app.add_option("--out", o->out, "output directory")->required();
                      app.add_option("--top", o->top, "top tokens shown per iteration")->capture_default_str();
                      app.add_option("--position", o->position, "position whose trajectory is analysed (-1 = last)")
                          ->capture_default_str();
                      app.add_option("--init-scale", o->init_scale, "initial state scale (0 = zeros)");
                      add_seed_option(app, o->seed, "seed of the initial state (with --init-scale)");
                      app.add_option("--plot-format", o->plot_format, "svg or png")->capture_default_str();
                      app.add_flag("--json", o->json, "print trace.json to stdout instead of the table");
                      return [o] { return run(*o); };
                    });
}  // namespace huginn::cli
