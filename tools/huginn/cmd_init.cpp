// huginn init: a randomly initialised checkpoint in the HF layout.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/json.h"
#include "huginn/stream_write.h"

namespace huginn::cli {
namespace {
struct Opts {
  std::string config, out, dtype = "F32";
  uint64_t seed = 0;
};

int run(const Opts& o) {
  ModelConfig c;
  if (!o.config.empty() && o.config.front() == '{') {
    c = parse_config(parse_json(o.config, "--config"), "--config");
  } else {
    c = load_config(o.config);
  }
  DType dt;
  if (!parse_dtype(o.dtype, &dt) || (dt != DType::F32 && dt != DType::BF16 && dt != DType::F16))
    fail("--dtype must be F32, BF16 or F16, got '", o.dtype, "'");
  save_random_checkpoint(o.out, c, o.seed, dt);  // tensor by tensor: peak memory the largest tensor
  std::cout << "wrote " << o.out << ": " << param_count(param_layout(c)) << " parameters (" << o.dtype << "), seed " << o.seed
            << "\n";
  return 0;
}
}  // namespace

static Register reg("init", "write a randomly initialised checkpoint (config.json + model.safetensors)",
                    [](CLI::App& app) {
                      auto o = std::make_shared<Opts>();
                      app.add_option("--config", o->config, "config.json path, or the JSON itself")->required();
                      app.add_option("--out", o->out, "output model directory")->required();
                      add_seed_option(app, o->seed, "random seed");
                      app.add_option("--dtype", o->dtype, "stored dtype: F32, BF16 or F16");
                      return [o] { return run(*o); };
                    });
}  // namespace huginn::cli
