// Fixture handlers for training: "train_grad" (loss and the gradient of every
// parameter after a fixed (n, k) split) and "adamw_step" (three AdamW steps).
#include <algorithm>
#include <cmath>
#include <map>

#include "golden.h"
#include "huginn/train.h"

namespace huginn::cli::golden {
namespace {

Tol tol_of(const json& cs, const std::string& key, Tol def) {
  if (cs.contains("tolerance") && cs["tolerance"].contains(key)) {
    def.atol = cs["tolerance"][key].value("atol", def.atol);
    def.rtol = cs["tolerance"][key].value("rtol", def.rtol);
  }
  return def;
}

// Selects rows of a [rows, cols...] tensor when the case stores only some.
std::vector<float> select_rows(const float* g, const ParamSpec& p, const json& cs, const char* rows_key) {
  if (!cs.contains(rows_key) || !cs[rows_key].contains(p.name)) return std::vector<float>(g, g + p.numel);
  const size_t row = p.numel / (size_t)p.shape[0];
  std::vector<float> out;
  for (auto& r : cs[rows_key][p.name]) {
    const size_t i = r.get<size_t>();
    out.insert(out.end(), g + i * row, g + (i + 1) * row);
  }
  return out;
}

// Largest |actual - expected| / (atol + rtol |expected|) (<= 1 passes).
double worst_ratio(const float* a, size_t n, const TensorView& exp, Tol t) {
  std::vector<float> e = exp.to_f32();
  double w = 0;
  for (size_t i = 0; i < n && i < e.size(); ++i)
    w = std::max(w, std::fabs((double)a[i] - e[i]) / (t.atol + t.rtol * std::fabs((double)e[i])));
  return w;
}

void append(std::string& err, const std::string& e) {
  if (!e.empty()) err += (err.empty() ? "" : "; ") + e;
}

std::string run_train_grad(const Ctx& cx, const json& cs) {
  const ModelConfig& c = cx.model.config();
  auto ids = ids_of(cs["input_ids"]);
  auto labels = ids_of(cs["labels"]);
  const int T = (int)ids.size(), d = c.n_embd;
  if ((int)labels.size() != T) return "labels and input_ids differ in length";
  RecurrenceSplit split{cs["num_steps"][0].get<int>(), cs["num_steps"][1].get<int>()};
  std::vector<float> states;
  if (cs.contains("input_states") && cs["input_states"].is_string())
    states = cx.expected.get(cs["input_states"].get<std::string>()).to_f32();
  int valid = 0;
  for (int l : labels) valid += l != kIgnoreLabel;
  auto params = flatten_weights(cx.model);
  std::vector<float> grads(params.size(), 0.f);
  GradEngine eng(c, 1, T, split.grad);
  auto r = eng.forward_backward(params.data(), grads.data(), ids.data(), labels.data(), 1, split, 1.0f / valid,
                                states.empty() ? nullptr : states.data(), cs.value("init_scale", 0.0f));
  const json& ex = cs["expected"];
  std::string err;
  const double loss = r.loss_sum / r.n_valid, want = ex["loss"].get<double>();
  Tol lt = tol_of(cs, "loss", Tol{1e-5, 1e-5});
  if (!(std::fabs(loss - want) <= lt.atol + lt.rtol * std::fabs(want))) append(err, str("loss ", loss, " vs ", want));
  int checked = 0;
  double worst = 0;
  std::string worst_name;
  for (auto& p : param_layout(c)) {
    if (!ex["grads"].contains(p.name)) {
      append(err, str("no expected gradient for ", p.name));
      continue;
    }
    auto g = select_rows(grads.data() + p.offset, p, cs, "grad_rows");
    const TensorView& ev = cx.expected.get(ex["grads"][p.name].get<std::string>());
    append(err, compare("grad " + p.name, g.data(), g.size(), ev, tol_of(cs, p.name, Tol{})));
    const double w = worst_ratio(g.data(), g.size(), ev, tol_of(cs, p.name, Tol{}));
    if (w > worst) worst = w, worst_name = p.name;
    ++checked;
  }
  if (checked != (int)ex["grads"].size()) append(err, "the case lists gradients of parameters this model lacks");
  if (ex.contains("input_states_grad") && ex["input_states_grad"].is_string()) {
    append(err, compare("input_states_grad", eng.input_state_grad().data(), (size_t)T * d,
                        cx.expected.get(ex["input_states_grad"].get<std::string>()),
                        tol_of(cs, "input_states_grad", Tol{})));
  } else if (cs.value("input_states_grad_is_zero", false)) {
    for (float v : eng.input_state_grad())
      if (v != 0.f) {
        append(err, "input_states_grad should be zero");
        break;
      }
  }
  if (ex.contains("wte_grad_embedding_part_rows") && cs.contains("embedding_part_rows")) {
    // d loss / d wte[row] from the lookup alone: sqrt(d) * sum over positions with that id.
    const auto& eg = eng.embedding_output_grad();
    const float scale = std::sqrt((float)d);
    std::vector<float> part;
    for (auto& rj : cs["embedding_part_rows"]) {
      const int row = rj.get<int>();
      std::vector<float> acc(d, 0.f);
      for (int t = 0; t < T; ++t)
        if (ids[t] == row)
          for (int i = 0; i < d; ++i) acc[i] += scale * eg[(size_t)t * d + i];
      part.insert(part.end(), acc.begin(), acc.end());
    }
    append(err, compare("wte_grad_embedding_part_rows", part.data(), part.size(),
                        cx.expected.get(ex["wte_grad_embedding_part_rows"].get<std::string>()),
                        tol_of(cs, "wte_grad_embedding_part_rows", Tol{})));
  }
  if (cx.verbose)
    std::printf("  %s: loss %.8f (expected %.8f), %d gradients, worst error %.3f of tolerance (%s)\n",
                cs["name"].get<std::string>().c_str(), loss, want, checked, worst, worst_name.c_str());
  return err;
}

std::string run_adamw(const Ctx& cx, const json& cs) {
  const ModelConfig& c = cx.model.config();
  const json& o = cs["optimizer"];
  AdamWConfig ac;
  ac.beta1 = o["betas"][0].get<float>();
  ac.beta2 = o["betas"][1].get<float>();
  ac.eps = o["eps"].get<float>();
  ac.weight_decay = o["weight_decay"].get<float>();
  if (o.value("amsgrad", false) || o.value("maximize", false)) return "amsgrad/maximize are not supported";
  const float lr = o["lr"].get<float>();
  const int steps = o["steps"].get<int>();
  // The gradient case's stored gradients.
  const std::string from = cs["gradients_from"].get<std::string>();
  const json* gcase = nullptr;
  for (auto& k : cx.top["cases"])
    if (k["name"] == from) gcase = &k;
  if (!gcase) return "gradients_from case '" + from + "' not found";
  auto params = flatten_weights(cx.model);
  std::vector<float> grads(params.size(), 0.f);
  AdamW opt(c, ac);
  std::string err;
  for (auto& p : param_layout(c)) {
    const TensorView& g = cx.expected.get((*gcase)["expected"]["grads"][p.name].get<std::string>());
    // The gradient case may store only some rows of a gradient (grad_rows).
    // The update is element-wise, so a row of the result needs only the same
    // row of the weights and of the gradient: every row compared below
    // (param_rows, or all rows) must be among the stored ones.
    const size_t nrows = (size_t)p.shape[0], row = p.numel / nrows;
    std::vector<char> known(nrows, 1);
    const json& grows = (*gcase).contains("grad_rows") ? (*gcase)["grad_rows"] : json::object();
    if (grows.contains(p.name)) {
      const json& rows = grows[p.name];
      if ((size_t)g.numel() != rows.size() * row) return "stored gradient rows of " + p.name + " have the wrong size";
      std::vector<float> part = g.to_f32();
      std::fill(known.begin(), known.end(), 0);
      for (size_t k = 0; k < rows.size(); ++k) {
        const size_t r = rows[k].get<size_t>();
        if (r >= nrows) return str("grad_rows of ", p.name, " lists row ", r, " of ", nrows);
        std::copy(part.begin() + k * row, part.begin() + (k + 1) * row, grads.begin() + p.offset + r * row);
        known[r] = 1;
      }
    } else {
      if ((size_t)g.numel() != p.numel) return "gradient of " + p.name + " has the wrong size";
      g.to_f32(grads.data() + p.offset);
    }
    const json& prows = cs.contains("param_rows") ? cs["param_rows"] : json::object();
    if (prows.contains(p.name)) {
      for (auto& r : prows[p.name])
        if (r.get<size_t>() >= nrows || !known[r.get<size_t>()])
          return str("param_rows of ", p.name, " lists row ", r.get<size_t>(),
                     ", whose gradient the gradients_from case does not store");
    } else if (std::find(known.begin(), known.end(), 0) != known.end()) {
      return str("the result of ", p.name, " is compared whole but its gradient is stored for some rows only");
    }
    if (cs.contains("weight_decay") && cs["weight_decay"].contains(p.name)) {
      const float want = cs["weight_decay"][p.name].get<float>();
      if (opt.decay_for(p.name) != want)
        append(err, str("weight decay of ", p.name, " is ", opt.decay_for(p.name), ", the reference uses ", want));
    }
  }
  for (int s = 0; s < steps; ++s) opt.update(params.data(), grads.data(), lr);
  Tol t = Tol{cs["tolerance"].value("atol", 2e-6), cs["tolerance"].value("rtol", 2e-6)};
  for (auto& p : param_layout(c)) {
    if (!cs["expected"]["params"].contains(p.name)) {
      append(err, "no expected value for " + p.name);
      continue;
    }
    auto v = select_rows(params.data() + p.offset, p, cs, "param_rows");
    append(err, compare("param " + p.name, v.data(), v.size(),
                        cx.expected.get(cs["expected"]["params"][p.name].get<std::string>()), t));
  }
  return err;
}

RegisterHandler reg_tg("train_grad", run_train_grad);
RegisterHandler reg_aw("adamw_step", run_adamw);
}  // namespace
}  // namespace huginn::cli::golden
