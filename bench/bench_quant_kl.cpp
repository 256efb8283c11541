// bench_quant_kl: how far each weight type moves the next-token distribution
// from F32, and whether the error grows with the number of iterations: the
// mean KL(F32 || type) of the next-token distributions of every position of a
// few random prompts, at several depths, on the standard d=512 config (random
// weights, bench_model.h) or a model directory.
//
//   build/bin/bench_quant_kl --types q8_0,q6_k,q5_0,q4_1,q4_0,q5_k_m,q4_k_m,bf16,f16 --depths 1,4,32,128
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <random>

#include "bench_model.h"
#include "bench_util.h"
#include "huginn/common.h"
#include "huginn/model.h"
#include "tensor/kernels.h"

using namespace huginn;

// Mean KL(p || q) over rows of V logits, and the share of rows whose argmax agrees.
static void compare(const std::vector<float>& a, const std::vector<float>& b, int V, double* kl, double* agree) {
  const size_t rows = a.size() / V;
  double total = 0, same = 0;
  for (size_t r = 0; r < rows; ++r) {
    const float* x = a.data() + r * V;
    const float* y = b.data() + r * V;
    double mx = -1e300, my = -1e300, sx = 0, sy = 0;
    int ax = 0, ay = 0;
    for (int i = 0; i < V; ++i) {
      if (x[i] > mx) mx = x[i], ax = i;
      if (y[i] > my) my = y[i], ay = i;
    }
    for (int i = 0; i < V; ++i) sx += std::exp(x[i] - mx), sy += std::exp(y[i] - my);
    const double lx = std::log(sx), ly = std::log(sy);
    double k = 0;
    for (int i = 0; i < V; ++i) {
      const double lp = x[i] - mx - lx, lq = y[i] - my - ly;
      k += std::exp(lp) * (lp - lq);
    }
    total += k;
    same += ax == ay;
  }
  *kl = total / rows;
  *agree = same / rows;
}

int main(int argc, char** argv) {
  CLI::App app{"KL divergence of each weight type's next-token distribution from F32"};
  std::string model_dir, types_s = "bf16,f16,q8_0,q6_k,q5_k_m,q5_0,q4_k_m,q4_1,q4_0", depths_s = "1,4,32,128";
  int prompts = 4, len = 32, threads = 0;
  app.add_option("-m,--model", model_dir, "model directory (default: the standard d=512 config, random weights)");
  app.add_option("--types", types_s, "weight types (huginn quantize mixes)");
  app.add_option("--depths", depths_s, "recurrence depths");
  app.add_option("--prompts", prompts, "random prompts")->check(CLI::Range(1, 1000));
  app.add_option("--len", len, "tokens per prompt (every position's distribution is compared)")->check(CLI::Range(1, 32));
  app.add_option("-t,--threads", threads, "threads (default: all cores)");
  CLI11_PARSE(app, argc, argv);
  try {
    kern::set_threads(threads);
    const std::vector<int> depths = bench::int_list(depths_s, "--depths", 1);
    bench::BenchModel ref = bench::load_bench_model(model_dir, "f32");
    const ModelConfig& c = ref.model->config();
    std::mt19937 rng(7);
    std::vector<std::vector<int>> ids(prompts, std::vector<int>(len));
    for (auto& p : ids)
      for (auto& x : p) x = (int)(rng() % c.vocab_size);
    auto logits = [&](const Model& m, int r) {
      std::vector<float> all;
      Workspace ws;
      Model::ForwardResult out;
      for (auto& p : ids) {
        m.forward(p.data(), len, r, out, ws, nullptr, nullptr, 0.f, 0, -1);
        all.insert(all.end(), out.logits.begin(), out.logits.end());
      }
      return all;
    };
    std::vector<std::vector<float>> want;
    for (int r : depths) want.push_back(logits(*ref.model, r));
    std::printf("# model %s, %d prompts x %d positions (%d rows: GEMV with 8-bit activations), KL(F32 || type) in nats, "
                "argmax agreement\n",
                ref.name.c_str(), prompts, len, len);
    std::printf("| type |");
    for (int r : depths) std::printf(" KL r=%d | top-1 r=%d |", r, r);
    std::printf("\n|---|");
    for (size_t i = 0; i < depths.size(); ++i) std::printf("---|---|");
    std::printf("\n");
    for (auto& t : CLI::detail::split(types_s, ',')) {
      bench::BenchModel b = bench::load_bench_model(model_dir, t);
      std::printf("| %s |", t.c_str());
      for (size_t i = 0; i < depths.size(); ++i) {
        double kl, agree;
        compare(want[i], logits(*b.model, depths[i]), c.vocab_size, &kl, &agree);
        std::printf(" %.2e | %.3f |", kl, agree);
        std::fflush(stdout);
      }
      std::printf("\n");
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
