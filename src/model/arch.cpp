#include "model/arch.h"

#include <nlohmann/json.hpp>

#include "huginn/common.h"

namespace huginn {

std::vector<const Architecture*> architectures() { return {&huginn_architecture(), &ouro_architecture()}; }

const Architecture& architecture_for(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail(source, ": config must be a JSON object");
  for (const Architecture* a : architectures())
    if (a->matches(j)) return *a;
  std::string known;
  for (const Architecture* a : architectures()) known += str(known.empty() ? "" : ", ", a->name());
  std::string what = "no model_type";
  if (j.contains("model_type"))
    what = j["model_type"].is_string() ? str("model_type '", j["model_type"].get<std::string>(), "'")
                                       : std::string("a model_type that is not a string");
  fail(source, ": ", what, " is not a supported architecture (supported: ", known, ")");
}

const Architecture& architecture_named(const std::string& name) {
  for (const Architecture* a : architectures())
    if (name == a->name()) return *a;
  fail("unknown architecture '", name, "'");
}

ModelConfig parse_config(const nlohmann::json& j, const std::string& source) {
  const Architecture& a = architecture_for(j, source);
  ModelConfig c = a.parse_config(j, source);
  c.arch = a.name();
  return c;
}

nlohmann::json config_to_json(const ModelConfig& c) { return architecture_named(c.arch).config_to_json(c); }

std::vector<ParamSpec> param_layout(const ModelConfig& c) { return architecture_named(c.arch).param_layout(c); }

}  // namespace huginn
