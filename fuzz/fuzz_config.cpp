// config.json: JSON parsing with the depth limit, keys, types, bounds, and
// the parameter count that a config implies.
#include "fuzz_common.h"
#include "huginn/config.h"
#include "huginn/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  HUGINN_FUZZ_EXPECTED({
    const nlohmann::json j = huginn::parse_json(fuzz_text(data, size), "config.json");
    const huginn::ModelConfig c = huginn::parse_config(j, "config.json");
    (void)c.params_total();
    (void)huginn::config_to_json(c);
  });
  return 0;
}
