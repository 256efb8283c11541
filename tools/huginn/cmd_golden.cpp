// huginn golden: runs every case of a reference fixture directory (format:
// shared/golden/README.md) and reports "N passed, M failed, K skipped".
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "golden.h"
#include "huginn/json.h"
#include "huginn/common.h"
#include "huginn/model.h"
#include "huginn/safetensors.h"

namespace huginn::cli::golden {

std::map<std::string, Handler>& handlers() {
  static std::map<std::string, Handler> h;
  return h;
}

std::string compare(const std::string& what, const float* actual, size_t n, const TensorView& exp, Tol tol) {
  if ((size_t)exp.numel() != n) return str(what, ": ", n, " values, expected ", exp.numel(), " ", exp.shape_str());
  std::vector<float> e = exp.to_f32();
  double worst = 0;
  size_t wi = 0, bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const double diff = std::fabs((double)actual[i] - e[i]);
    const double lim = tol.atol + tol.rtol * std::fabs((double)e[i]);
    if (!(diff <= lim)) {
      ++bad;
      if (!(diff / lim <= worst)) {
        worst = diff / lim;
        wi = i;
      }
    }
  }
  if (!bad) return "";
  return str(what, ": ", bad, " of ", n, " values off, worst at ", wi, ": ", actual[wi], " vs ", e[wi]);
}

std::vector<int> ids_of(const json& j) {
  std::vector<int> v;
  for (auto& x : j) v.push_back(x.get<int>());
  return v;
}

std::string compare_tokens(const std::vector<int>& got, const json& want) {
  auto w = ids_of(want);
  if (got == w) return "";
  std::string g, e;
  for (int t : got) g += std::to_string(t) + " ";
  for (int t : w) e += std::to_string(t) + " ";
  return str("tokens differ: got [", g, "] expected [", e, "]");
}

namespace {
namespace fs = std::filesystem;

std::string run_forward(const Ctx& cx, const json& cs) {
  const Model& m = cx.model;
  auto ids = ids_of(cs["input_ids"]);
  const int T = (int)ids.size(), d = m.config().n_embd;
  std::vector<float> states;
  if (cs.contains("input_states") && cs["input_states"].is_string()) {
    states = cx.expected.get(cs["input_states"].get<std::string>()).to_f32();
    if ((int64_t)states.size() != (int64_t)T * d) return "input_states has the wrong size";
  }
  Workspace ws;
  Model::ForwardResult r;
  std::map<std::string, std::vector<float>> traced;
  TraceFn trace = [&](const std::string& name, const float* data, int rows, int cols) {
    traced[name].assign(data, data + (size_t)rows * cols);
  };
  const bool debug = cs["kind"] == "debug_intermediates";
  m.forward(ids.data(), T, cs["num_steps"].get<int>(), r, ws, nullptr, states.empty() ? nullptr : states.data(),
            cs.value("init_scale", 0.0f), 0, -1, debug ? &trace : nullptr);
  std::string err;
  for (auto it = cs["expected"].begin(); it != cs["expected"].end(); ++it) {
    const std::string key = it.key();
    const TensorView& exp = cx.expected.get(it->get<std::string>());
    const std::vector<float>* act = nullptr;
    if (debug) {
      auto f = traced.find(key);
      if (f == traced.end()) return str("no intermediate '", key, "' was produced");
      act = &f->second;
    } else if (key == "logits") {
      act = &r.logits;
    } else if (key == "latent_states") {
      act = &r.latents;
    } else {
      return str("unknown expected tensor '", key, "'");
    }
    std::string e = compare(key, act->data(), act->size(), exp, cx.tol(key));
    if (!e.empty()) err += (err.empty() ? "" : "; ") + e;
  }
  return err;
}


RegisterHandler reg_fwd("forward", run_forward);
RegisterHandler reg_dbg("debug_intermediates", run_forward);

struct Opts {
  std::string dir, filter;
  bool verbose = false;
};

int run(const Opts& o) {
  fs::path dir(o.dir);
  const json top = parse_json_file((dir / "cases.json").string());
  if (runs_without_model(top)) return run_without_model(o.dir, top, o.filter, o.verbose);
  // The model sits in the fixture directory, or where config_file says (Ouro: model/).
  fs::path model_dir = dir;
  if (top.contains("config_file") && top["config_file"].is_string())
    model_dir = (dir / top["config_file"].get<std::string>()).parent_path();
  auto model = Model::load(model_dir.string());
  TensorStore expected = TensorStore::open_file((dir / top.value("expected_file", "expected.safetensors")).string());
  Ctx cx{*model, expected, top, o.verbose};
  int passed = 0, failed = 0, skipped = 0;
  // Cases: a list of {name, kind, ...}, or (Ouro's format) groups of cases by
  // kind, each case named by its prefix; handlers of the family's groups are
  // registered as "<model_type>/<group>".
  json list = json::array();
  if (top["cases"].is_object()) {
    for (auto it = top["cases"].begin(); it != top["cases"].end(); ++it) {
      json group = it->is_array() ? *it : json::array({*it});
      for (json cs : group) {
        cs["kind"] = model->config().arch + "/" + it.key();
        cs["name"] = cs.value("prefix", it.key());
        list.push_back(cs);
      }
    }
  } else {
    list = top["cases"];
  }
  for (const json& cs : list) {
    const std::string name = cs["name"].get<std::string>();
    if (!o.filter.empty() && name.find(o.filter) == std::string::npos) continue;
    const std::string kind = cs["kind"].get<std::string>();
    auto it = handlers().find(kind + ":" + cs.value("function", std::string()));
    if (it == handlers().end()) it = handlers().find(kind);
    if (it == handlers().end()) {
      std::string feats;
      if (cs.contains("features"))
        for (auto& f : cs["features"]) feats += (feats.empty() ? "" : ",") + f.get<std::string>();
      std::printf("SKIP %s (not implemented: %s%s%s)\n", name.c_str(), kind.c_str(),
                  cs.contains("function") ? (" " + cs["function"].get<std::string>()).c_str() : "",
                  (" [" + feats + "]").c_str());
      ++skipped;
      continue;
    }
    std::string err;
    try {
      err = it->second(cx, cs);
    } catch (const std::exception& e) {
      err = str("error: ", e.what());
    }
    if (err.empty()) {
      ++passed;
      if (o.verbose) std::printf("PASS %s\n", name.c_str());
    } else {
      ++failed;
      std::printf("FAIL %s: %s\n", name.c_str(), err.c_str());
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
}  // namespace
}  // namespace huginn::cli::golden

namespace huginn::cli {
using namespace golden;
static Register reg("golden", "run a reference fixture directory and check every case", [](CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.add_option("dir", o->dir, "fixture directory (cases.json, config.json, weights, expected.safetensors)")
      ->required();
  app.add_option("--case", o->filter, "only cases whose name contains this");
  app.add_flag("-v,--verbose", o->verbose, "print passing cases too");
  return [o] { return run(*o); };
});
}  // namespace huginn::cli
