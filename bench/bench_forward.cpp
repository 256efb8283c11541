// bench_forward: prefill and decode speed of the forward pass at several
// depths, with the machine's own sgemm peak and memory bandwidth measured in
// the same invocation as the reference (so figures are ratios, comparable
// across machines and runs).
//
//   build/bin/bench_forward                      # the standard d=512 config (shared/notes/benchmarking.md)
//   build/bin/bench_forward -m MODEL_DIR --depths 1,4,32 --prompt 128 --gen 16
//   build/bin/bench_forward --dtypes f32,bf16,f16   # the same model with weights held in each type
//   build/bin/bench_forward --dtypes f32,q8_0,q4_0,q4_k_m --depths 1,4,32   # `huginn quantize` mixes, from a GGUF
//   build/bin/bench_forward --gemv-rows 1,2,4,8,16,32 --dtypes f32,bf16   # multi-row GEMV: one pass over the core
// Decode is reported beside the type's roofline: the bytes of weights read per
// token (the matrices as held: prelude and coda once, core and adapter r
// times, the head) over the read bandwidth measured in the same run.
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "bench_model.h"
#include "bench_util.h"
#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/quantize.h"
#include "tensor/kernels.h"

using namespace huginn;
using bench::clk;
using bench::memcpy_gbs;
using bench::secs_since;

// CPU seconds of this process (all threads).
static double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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

// Bytes read per second by all threads summing a buffer larger than the caches.
static double read_gbs(size_t bytes) {
  std::vector<float> a(bytes / sizeof(float), 1.0f);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t = clk::now();
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < a.size(); i += 4) s += a[i] + a[i + 1] + a[i + 2] + a[i + 3];
    best = std::max(best, (double)bytes / secs_since(t) / 1e9);
    a[rep] = (float)s * 1e-30f;
  }
  return best;
}

int main(int argc, char** argv) {
  CLI::App app{"huginn forward-pass benchmark"};
  std::string model_dir, depths_s = "1,4,32", dtypes_s = "f32";
  std::string gemv_rows_s;
  int prompt = 128, gen = 16, threads = 0, reps = 1;
  app.add_option("-m,--model", model_dir, "model directory (default: the standard d=512 config, random weights)");
  app.add_option("--depths", depths_s, "comma-separated recurrence depths");
  app.add_option("--dtypes", dtypes_s, "weight types to hold the standard model in: f32,bf16,f16 (one table row each)");
  app.add_option("--prompt", prompt, "prompt tokens (prefill)")->check(CLI::Range(1, 1 << 20));
  app.add_option("--gen", gen, "generated tokens (decode)")->check(CLI::Range(1, 1 << 20));
  app.add_option("-t,--threads", threads, "threads (default: all cores)");
  app.add_option("--reps", reps, "repetitions; the best is reported")->check(CLI::Range(1, 100));
  app.add_option("--gemv-rows", gemv_rows_s,
                 "instead of the forward table: time of one pass of kern::matmul_rowwise (the batched-decode GEMV) "
                 "over the core blocks' and adapter's matrices for these row counts, e.g. 1,2,4,8,16,32");
  CLI11_PARSE(app, argc, argv);
  try {
    kern::set_threads(threads);
    std::vector<std::string> dtypes;
    for (auto& s : CLI::detail::split(dtypes_s, ',')) {
      std::string l = s;
      for (auto& ch : l) ch = (char)std::tolower((unsigned char)ch);
      if (l != "f32" && l != "bf16" && l != "f16" && !is_quantize_mix(l))
        fail("--dtypes: unknown weight type '", s, "' (f32, bf16, f16, q8_0, q6_k, q5_0, q4_1, q4_0, q5_k_m, q4_k_m)");
      dtypes.push_back(l);
    }
    if (!model_dir.empty() && dtypes.size() > 1) fail("--dtypes applies to the standard model only");
    const std::vector<int> depths = bench::int_list(depths_s, "--depths", 1);

    if (!gemv_rows_s.empty()) {
      // Batched decode reads each weight once for all rows: the time of a pass
      // should grow little with the rows while memory-bound. CPU seconds (all
      // threads) beside the wall time: less inflated on a shared machine.
      std::printf(
          "| weights | rows | ms per pass | CPU ms per pass | MB | GB/s | vs 1 row (wall) "
          "|\n|---|---|---|---|---|---|---|\n");
      for (const std::string& dt : dtypes) {
        bench::BenchModel bm = bench::load_bench_model(model_dir, dt);
        const ModelWeights& w = bm.model->weights();
        std::vector<const Weight*> mats;
        for (const BlockWeights& b : w.core)
          for (const Weight* x : {&b.wqkv, &b.attn_proj, &b.fc, &b.mlp_proj}) mats.push_back(x);
        mats.push_back(&w.adapter);
        double bytes = 0;
        int64_t kmax = 0, nmax = 0;
        for (const Weight* x : mats)
          bytes += (double)x->bytes(), kmax = std::max(kmax, x->cols), nmax = std::max(nmax, x->rows);
        double base = 0;
        for (const int T : bench::int_list(gemv_rows_s, "--gemv-rows", 1)) {
          std::vector<float> x((size_t)T * kmax), y((size_t)T * nmax);
          std::mt19937 rng(1);
          std::normal_distribution<float> nd;
          for (auto& v : x) v = nd(rng);
          double best = 1e30, best_cpu = 1e30;
          for (int rep = 0; rep < std::max(reps, 5); ++rep) {
            auto t0 = clk::now();
            const double c0 = cpu_seconds();
            for (const Weight* m : mats) kern::matmul_rowwise(x.data(), *m, y.data(), T);
            best = std::min(best, secs_since(t0));
            best_cpu = std::min(best_cpu, cpu_seconds() - c0);
          }
          if (base == 0) base = best;
          std::printf("| %s (%s) | %d | %.2f | %.2f | %.1f | %.1f | %.2fx |\n", dt.c_str(), mats[0]->type_name(), T,
                      best * 1e3, best_cpu * 1e3, bytes / 1e6, bytes / best / 1e9, best / base);
          std::fflush(stdout);
        }
      }
      return 0;
    }
    const double peak = sgemm_gflops(1024);
    const double bw = memcpy_gbs(256u << 20);
    const double rbw = read_gbs(256u << 20);
    std::printf("# reference: sgemm 1024^3 %.1f GFLOP/s, memcpy %.1f GB/s (read+write), read %.1f GB/s, %d threads\n",
                peak, bw, rbw, kern::threads());
    std::printf(
        "| weights | r | prefill tok/s | prefill GFLOP/s | of sgemm peak | decode tok/s | MB read/token | roofline "
        "tok/s "
        "| of roofline |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|\n");
    for (const std::string& dt : dtypes) {
      bench::BenchModel bm = bench::load_bench_model(model_dir, dt);
      const std::unique_ptr<Model>& m = bm.model;
      const ModelConfig& c = m->config();
      if (prompt + gen > c.block_size) fail("prompt + gen exceeds the context of ", c.block_size);
      if (dt == dtypes[0])
        std::printf("# model %s: d=%d heads=%d I=%d V=%d layers %d/%d/%d, prompt %d, gen %d\n", bm.name.c_str(),
                    c.n_embd, c.n_heads, c.intermediate_size, c.vocab_size, c.n_prelude, c.n_core, c.n_coda, prompt,
                    gen);
      // Bytes of the weights as held, read per token.
      const ModelWeights& w = m->weights();
      auto block_bytes = [](const std::vector<BlockWeights>& bs) {
        double n = 0;
        for (const BlockWeights& b : bs)
          for (const Weight* x :
               {&b.norm_1, &b.qk_bias, &b.wqkv, &b.attn_proj, &b.norm_2, &b.fc, &b.mlp_proj, &b.norm_3, &b.norm_4})
            n += x->data ? (double)x->bytes() : 0.0;
        return n;
      };
      const double fixed_bytes = block_bytes(w.prelude) + block_bytes(w.coda) + (double)w.lm_head.bytes();
      const double iter_bytes = block_bytes(w.core) + (double)w.adapter.bytes();
      const std::string tname = w.core[0].wqkv.type_name();

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
        const double bytes_tok = fixed_bytes + r * iter_bytes;
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
        const double pre_gf = prefill_flops / best_pre / 1e9, dec_tps = gen / best_dec;
        const double roof = rbw * 1e9 / bytes_tok;
        std::printf("| %s (%s) | %d | %.1f | %.1f | %.0f%% | %.2f | %.2f | %.1f | %.0f%% |\n", dt.c_str(),
                    tname.c_str(), r, prompt / best_pre, pre_gf, 100 * pre_gf / peak, dec_tps, bytes_tok / 1e6, roof,
                    100 * dec_tps / roof);
        std::fflush(stdout);
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
