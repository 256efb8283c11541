// The fixture runner's case handlers. A handler checks one case of
// cases.json and returns "" on success or what differed. Handlers register
// themselves by "kind" or "kind:function" (e.g. "generate:generate_speculative"),
// each feature in its own file; a case with no handler is skipped, naming its
// features.
#pragma once
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "huginn/common.h"
#include "huginn/model.h"
#include "huginn/safetensors.h"

namespace huginn::cli::golden {
using json = nlohmann::json;

struct Tol {
  double atol = 2e-5, rtol = 1e-4;
};

struct Ctx {
  const Model& model;
  const TensorStore& expected;
  const json& top;
  bool verbose;
  Tol tol(const std::string& kind) const {
    const json& t = top.contains("tolerance") ? top["tolerance"] : json::object();
    const char* key = kind == "logits" ? "logits" : kind == "latent_states" ? "latent_states" : "other_tensors";
    Tol r;
    if (t.contains(key)) {
      r.atol = t[key].value("atol", r.atol);
      r.rtol = t[key].value("rtol", r.rtol);
    }
    return r;
  }
};

// Empty string when every element is within atol + rtol*|expected|.
std::string compare(const std::string& what, const float* actual, size_t n, const TensorView& exp, Tol tol);
std::vector<int> ids_of(const json& j);
std::string compare_tokens(const std::vector<int>& got, const json& want);

// Fixtures with only "quant" / "gguf_read" cases (golden_quant.cpp) need no model.
bool runs_without_model(const json& top);
int run_without_model(const std::string& dir, const json& top, const std::string& filter, bool verbose);

using Handler = std::function<std::string(const Ctx&, const json&)>;
std::map<std::string, Handler>& handlers();
struct RegisterHandler {
  RegisterHandler(const std::string& key, Handler h) { handlers()[key] = std::move(h); }
};

}  // namespace huginn::cli::golden
