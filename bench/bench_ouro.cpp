// bench_ouro: an Ouro-1.4B-shaped model (hidden 2048, 24 layers, 16 heads of
// 128, MLP 5632, vocab 49152, untied head, 4 loops) with random weights, made
// on the fly (never committed), and its decode speed.
//
//   build/bin/bench_ouro --make DIR --dtype BF16     # writes DIR (one shard per layer; ~2.9 GB BF16, ~5.8 GB F32)
//   build/bin/bench_ouro -m DIR --gen 8 -t 2         # load time, decode tok/s at 1-4 loops and with the gate exit,
//                                                    # peak RSS; run it in a fresh process per dtype
//   bench/ouro_bench.sh build "BF16 F32 q8_0 q4_0"  # both steps per type (quantized: BF16 -> huginn quantize ->
//                                                    # GGUF), then deletes the models
//
// Random weights: the gate's exits are mechanics only (no quality claim).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "bench_util.h"
#include "huginn/atomic_file.h"
#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/safetensors.h"
#include "tensor/kernels.h"

using namespace huginn;
namespace fs = std::filesystem;
using clk = std::chrono::steady_clock;

namespace {
double secs_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }
double peak_rss_gib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0 / 1024.0;  // ru_maxrss: KiB
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(sep, i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

nlohmann::json ouro_config(int layers, int context) {
  return {{"model_type", "ouro"},       {"architectures", {"OuroForCausalLM"}},
          {"hidden_size", 2048},        {"num_hidden_layers", layers},
          {"num_attention_heads", 16},  {"num_key_value_heads", 16},
          {"head_dim", 128},            {"intermediate_size", 5632},
          {"vocab_size", 49152},        {"max_position_embeddings", context},
          {"rope_theta", 1000000.0},    {"rms_norm_eps", 1e-6},
          {"tie_word_embeddings", false}, {"total_ut_steps", 4},
          {"early_exit_threshold", 1.0}, {"hidden_act", "silu"},
          {"bos_token_id", 0},          {"eos_token_id", 0},
          {"pad_token_id", 0}};
}

// One shard per layer (plus one for embeddings/head), so that making the
// model never holds more than one layer's floats.
void make_model(const std::string& dir, DType dt, int layers, int context) {
  const ModelConfig c = parse_config(ouro_config(layers, context), "bench");
  fs::create_directories(dir);
  auto layout = param_layout(c);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  nlohmann::json map = nlohmann::json::object();
  std::vector<std::vector<float>> bufs;
  std::vector<TensorToWrite> ts;
  std::string shard_of = "";
  int shard = 0;
  auto flush = [&]() {
    if (ts.empty()) return;
    const std::string name = str("model-", shard++, ".safetensors");
    write_safetensors((fs::path(dir) / name).string(), ts, {{"format", "pt"}});
    for (auto& t : ts) map[t.name] = name;
    ts.clear();
    bufs.clear();
  };
  for (const ParamSpec& p : layout) {
    const std::string group = p.name.rfind("model.layers.", 0) == 0 ? p.name.substr(0, p.name.find('.', 13)) : "";
    if (group != shard_of) flush();
    shard_of = group;
    bufs.emplace_back(p.numel);
    float* w = bufs.back().data();
    const bool norm = p.name.find("norm") != std::string::npos;
    const float sd = p.name.find("early_exit_gate.bias") != std::string::npos ? 0.f : 1.f / std::sqrt((float)p.shape.back());
    // A fast generator: these are throughput figures, the values only need a sane scale.
    uint64_t x = rng();
    for (size_t i = 0; i < p.numel; ++i) {
      if (norm) {
        w[i] = 1.f;
        continue;
      }
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      w[i] = ((float)(x >> 40) / (float)(1ull << 24) * 2.f - 1.f) * 1.7320508f * sd;  // uniform, std sd
    }
    ts.push_back({p.name, p.shape, w, dt});
  }
  flush();
  write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(),
                    nlohmann::json({{"metadata", nlohmann::json::object()}, {"weight_map", map}}).dump(1));
  write_file_atomic((fs::path(dir) / "config.json").string(), ouro_config(layers, context).dump(2) + "\n");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Ouro-1.4B-shaped decode benchmark (random weights)"};
  std::string make, model_dir, dtype = "BF16", loops_s = "1,2,3,4", gates_s = "0.5,0.9";
  int layers = 24, context = 4096, prompt = 16, gen = 8, threads = 0;
  app.add_option("--make", make, "write the model to this directory and exit");
  app.add_option("--dtype", dtype, "with --make: F32 or BF16");
  app.add_option("--layers", layers, "with --make: layers (24: Ouro-1.4B, 48: 2.6B)")->check(CLI::Range(1, 128));
  app.add_option("--context", context, "with --make: max_position_embeddings")->check(CLI::Range(64, 65536));
  app.add_option("-m,--model", model_dir, "the model to run");
  app.add_option("--prompt", prompt, "prompt tokens")->check(CLI::Range(1, 4096));
  app.add_option("--gen", gen, "generated tokens per run")->check(CLI::Range(2, 4096));
  app.add_option("--loops", loops_s, "loop counts to run, comma separated");
  app.add_option("--gates", gates_s, "gate thresholds to run at 4 loops, comma separated");
  app.add_option("-t,--threads", threads, "threads (default: all cores)");
  CLI11_PARSE(app, argc, argv);
  try {
    kern::set_threads(threads);
    if (!make.empty()) {
      DType dt;
      if (!parse_dtype(dtype, &dt) || (dt != DType::F32 && dt != DType::BF16)) fail("--dtype must be F32 or BF16");
      const auto t0 = clk::now();
      make_model(make, dt, layers, context);
      std::printf("made %s (%s, %d layers) in %.1f s\n", make.c_str(), dtype.c_str(), layers, secs_since(t0));
      return 0;
    }
    if (model_dir.empty()) fail("give --make DIR or -m DIR");
    const double rss0 = peak_rss_gib();
    auto t0 = clk::now();
    auto m = Model::load(model_dir);
    const double load_s = secs_since(t0);
    const ModelConfig& c = m->config();
    std::string dts;
    for (auto& [n, d] : m->stored_dtypes())
      if (n == "model.layers.0.self_attn.q_proj.weight") dts = d;
    std::printf("model %s: %s, %lld parameters, matrices %s, %d threads\n", model_dir.c_str(), c.arch.c_str(),
                (long long)param_count(param_layout(c)), dts.c_str(), kern::threads());
    std::printf("load %.2f s (memory-mapped), weights held %.2f GiB (converted %.2f GiB)\n", load_s,
                m->weight_bytes() / 1073741824.0, m->converted_bytes() / 1073741824.0);
    std::vector<int> ids(prompt);
    std::mt19937 rng(3);
    for (int& x : ids) x = 1 + (int)(rng() % (uint32_t)(c.vocab_size - 1));

    auto run = [&](int loops, const std::string& exit, const char* label) {
      GenerateOptions o;
      o.steps = loops;
      o.exit = ExitCriterion::parse(exit);
      o.stop_tokens.clear();
      // the prompt pass alone, then prompt + gen tokens: decode = the difference
      o.max_new_tokens = 1;
      auto a0 = clk::now();
      generate(*m, ids, o);
      const double t_pre = secs_since(a0);
      o.max_new_tokens = gen;
      a0 = clk::now();
      SequenceResult r = generate(*m, ids, o);
      const double t_all = secs_since(a0);
      double mean = 0;
      for (size_t i = 1; i < r.steps.size(); ++i) mean += r.steps[i];
      mean /= std::max<size_t>(1, r.steps.size() - 1);
      const double dec = (gen - 1) / std::max(1e-9, t_all - t_pre);
      std::printf("%-14s loops/token %.2f  decode %.3f tok/s  (prefill %d tokens %.2f s, KV %.1f MiB)\n", label, mean,
                  dec, prompt, t_pre, r.kv_bytes / 1048576.0);
      std::fflush(stdout);
    };
    for (const int n : bench::int_list(loops_s, "--loops", 1)) {
      run(n, "none", str(n, " loops").c_str());
    }
    for (auto& g : split(gates_s, ','))
      if (!g.empty()) run(c.mean_recurrence, "gate:" + g, ("gate:" + g).c_str());
    std::printf("peak RSS %.2f GiB (at start %.2f GiB; mapped weights count as they are touched)\n", peak_rss_gib(),
                rss0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
