// bench_forward: prefill and decode speed of the forward pass at several
// depths, with the machine's own sgemm peak and memory bandwidth measured in
// the same invocation as the reference (so figures are ratios, comparable
// across machines and runs).
//
//   build/bin/bench_forward                      # the standard d=512 config (shared/notes/benchmarking.md)
//   build/bin/bench_forward -m MODEL_DIR --depths 1,4,32 --prompt 128 --gen 16
//   build/bin/bench_forward --dtypes f32,bf16,f16   # the same model with weights held in each type
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "bench_model.h"
#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "tensor/kernels.h"

using namespace huginn;
using clk = std::chrono::steady_clock;

static double secs_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

// Best of a few runs of sgemm n x n x n: the GEMM peak this machine gives us.
static double sgemm_gflops(int n) {
  std::vector<float> a((size_t)n * n, 1.0f), b((size_t)n * n, 0.5f), c((size_t)n * n);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto t = clk::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    best = std::max(best, 2.0 * n * n * n / secs_since(t) / 1e9);
  }
  return best;
}

// Bytes read + written per second by memcpy of a buffer larger than the caches.
static double memcpy_gbs(size_t bytes) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t = clk::now();
    std::memcpy(b.data(), a.data(), bytes);
    best = std::max(best, 2.0 * bytes / secs_since(t) / 1e9);
    a[rep] = b[rep + 1];
  }
  return best;
}

int main(int argc, char** argv) {
  CLI::App app{"huginn forward-pass benchmark"};
  std::string model_dir, depths_s = "1,4,32", dtypes_s = "f32";
  int prompt = 128, gen = 16, threads = 0, reps = 1;
  app.add_option("-m,--model", model_dir, "model directory (default: the standard d=512 config, random weights)");
  app.add_option("--depths", depths_s, "comma-separated recurrence depths");
  app.add_option("--dtypes", dtypes_s, "weight types to hold the standard model in: f32,bf16,f16 (one table row each)");
  app.add_option("--prompt", prompt, "prompt tokens (prefill)")->check(CLI::Range(1, 1 << 20));
  app.add_option("--gen", gen, "generated tokens (decode)")->check(CLI::Range(1, 1 << 20));
  app.add_option("-t,--threads", threads, "threads (default: all cores)");
  app.add_option("--reps", reps, "repetitions; the best is reported")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  try {
    kern::set_threads(threads);
    std::vector<DType> dtypes;
    for (auto& s : CLI::detail::split(dtypes_s, ',')) {
      std::string u = s;
      for (auto& ch : u) ch = (char)std::toupper((unsigned char)ch);
      DType t;
      if (!parse_dtype(u, &t) || !is_kernel_dtype(t)) fail("--dtypes: unknown weight type '", s, "' (f32, bf16, f16)");
      dtypes.push_back(t);
    }
    if (!model_dir.empty() && dtypes.size() > 1) fail("--dtypes applies to the standard model only");
    std::vector<int> depths;
    for (auto& s : CLI::detail::split(depths_s, ',')) depths.push_back(std::stoi(s));

    const double peak = sgemm_gflops(1024);
    const double bw = memcpy_gbs(256u << 20);
    std::printf("# reference: sgemm 1024^3 %.1f GFLOP/s, memcpy %.1f GB/s (read+write), %d threads\n", peak, bw,
                kern::threads());
    std::printf(
        "| weights | r | prefill tok/s | prefill GFLOP/s | of sgemm peak | decode tok/s | decode GB/s | of memcpy bw "
        "|\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    for (DType dt : dtypes) {
      bench::BenchModel bm = bench::load_bench_model(model_dir, dt);
      const std::unique_ptr<Model>& m = bm.model;
      const ModelConfig& c = m->config();
      if (prompt + gen > c.block_size) fail("prompt + gen exceeds the context of ", c.block_size);
      if (dt == dtypes[0])
        std::printf("# model %s: d=%d heads=%d I=%d V=%d layers %d/%d/%d, prompt %d, gen %d\n", bm.name.c_str(),
                    c.n_embd, c.n_heads, c.intermediate_size, c.vocab_size, c.n_prelude, c.n_core, c.n_coda, prompt,
                    gen);
      // Bytes per weight as held (the matrices; the model's own type for a directory).
      const double wbytes = (double)dtype_size(m->weights().core[0].wqkv.dtype);

      std::mt19937 rng(1);
      std::vector<int> ids(prompt);
      for (auto& x : ids) x = (int)(rng() % c.vocab_size);
      const double d = c.n_embd;
      const double blk = (double)c.params_block();
      for (int r : depths) {
        const double layers = c.n_prelude + c.n_coda + (double)c.n_core * r;
        // 2 FLOP per weight per token, plus attention (QK and PV: 4 * T * d per layer, T/2 on average when causal).
        const double flops_tok = 2 * (layers * blk + r * 2 * d * d) + layers * 4 * d * prompt / 2.0;
        const double prefill_flops = flops_tok * prompt + 2.0 * d * c.vocab_size;  // head on the last row
        // Weights read once per iteration per decoded token, plus the head.
        const double bytes_tok = wbytes * (layers * blk + r * 2 * d * d + (double)c.vocab_size * d);
        double best_pre = 1e30, best_dec = 1e30;
        for (int rep = 0; rep < reps; ++rep) {
          KVCache cache = m->make_cache(prompt + gen, CacheStrategy::parse("full"));
          Workspace ws;
          Model::ForwardResult out;
          auto t0 = clk::now();
          m->forward(ids.data(), prompt, r, out, ws, &cache, nullptr, 0.f, 0, 1);
          best_pre = std::min(best_pre, secs_since(t0));
          int tok = argmax(out.logits.data(), c.vocab_size);
          auto t1 = clk::now();
          for (int i = 0; i < gen; ++i) {
            m->forward(&tok, 1, r, out, ws, &cache, nullptr, 0.f, 0, 1);
            tok = argmax(out.logits.data(), c.vocab_size);
          }
          best_dec = std::min(best_dec, secs_since(t1));
        }
        const double pre_gf = prefill_flops / best_pre / 1e9, dec_gbs = bytes_tok * gen / best_dec / 1e9;
        std::printf("| %s | %d | %.1f | %.1f | %.0f%% | %.2f | %.2f | %.0f%% |\n",
                    dtype_name(m->weights().core[0].wqkv.dtype), r, prompt / best_pre, pre_gf, 100 * pre_gf / peak,
                    gen / best_dec, dec_gbs, 100 * dec_gbs / bw);
        std::fflush(stdout);
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
