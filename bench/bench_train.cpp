// Training throughput: tokens/s of full optimizer steps (forward, backward
// through the graded iterations, AdamW) on the d=256 and d=512 benchmark
// configs, plus the GEMM FLOP rate reached and the machine's sgemm peak.
//   build/bin/bench_train [--config d256|d512|all] [--batch 8] [--seq 128]
//                         [--split 4,4] [--steps 3] [-t 2]
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <vector>

#include "huginn/checkpoint.h"
#include "huginn/train.h"
#include "tensor/kernels.h"

using namespace huginn;
using clk = std::chrono::steady_clock;

namespace {
ModelConfig config(int d) {
  ModelConfig c;
  c.n_embd = d, c.n_heads = d / 64, c.head_dim = 64, c.intermediate_size = 3 * d, c.vocab_size = 8192;
  c.block_size = 1024, c.n_prelude = 2, c.n_core = 4, c.n_coda = 2, c.mean_recurrence = 8, c.mean_backprop_depth = 4;
  return c;
}

// CPU seconds used by this process (all threads): unlike wall time, not
// inflated when other processes share the cores.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double sgemm_peak(int threads) {
  const int n = 1024;
  std::vector<float> a((size_t)n * n, 0.5f), b(a), c(a);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    auto t0 = clk::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
  }
  return best;
}

// FNV-1a over the weights' bytes: equal hashes after the same steps mean
// bit-identical training (across builds, thread counts, BLAS kernels).
uint64_t weights_hash(const std::vector<float>& p) {
  uint64_t h = 1469598103934665603ull;
  const auto* b = reinterpret_cast<const unsigned char*>(p.data());
  for (size_t i = 0; i < p.size() * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

// Matmul FLOPs of one optimizer step per token (attention score/value products excluded).
double gemm_flops_per_token(const ModelConfig& c, RecurrenceSplit s) {
  const double d = c.n_embd, I = c.intermediate_size, V = c.vocab_size;
  const double block = 2 * (4 * d * d + 3 * I * d), adapter = 2 * (2 * d * d), head = 2 * d * V;
  const double fwd = (c.n_prelude + c.n_coda + (double)s.total() * c.n_core) * block + s.total() * adapter + head;
  const double bwd = 2 * ((c.n_prelude + c.n_coda + (double)s.grad * c.n_core) * block + s.grad * adapter + head);
  return fwd + bwd;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"training throughput benchmark"};
  std::string which = "all", split_s = "4,4";
  int batch = 8, seq = 128, steps = 3, threads = 2;
  app.add_option("--config", which, "d256, d512 or all");
  app.add_option("--batch", batch);
  app.add_option("--seq", seq);
  app.add_option("--split", split_s, "no-grad,grad iterations");
  app.add_option("--steps", steps, "timed steps (after one warm-up step)");
  app.add_option("-t,--threads", threads);
  CLI11_PARSE(app, argc, argv);
  kern::set_threads(threads);
  enable_flush_denormals();
  RecurrenceSplit split;
  if (std::sscanf(split_s.c_str(), "%d,%d", &split.no_grad, &split.grad) != 2) return 2;
  const double peak = sgemm_peak(threads);
  std::printf("sgemm 1024^3 peak: %.1f GFLOP/s on %d threads\n", peak, threads);
  for (int d : {256, 512}) {
    if (which != "all" && which != "d" + std::to_string(d)) continue;
    const ModelConfig c = config(d);
    auto params = init_params(c, 1);
    std::vector<float> grads(params.size());
    AdamW opt(c, AdamWConfig{});
    GradEngine eng(c, batch, seq, split.grad);
    std::mt19937 rng(7);
    std::vector<int> ids((size_t)batch * seq), labels(ids.size());
    for (size_t i = 0; i < ids.size(); ++i)
      ids[i] = (int)(rng() % c.vocab_size), labels[i] = (int)(rng() % c.vocab_size);
    auto one = [&]() {
      std::fill(grads.begin(), grads.end(), 0.f);
      auto r = eng.forward_backward(params.data(), grads.data(), ids.data(), labels.data(), batch, split,
                                    1.f / (batch * seq), nullptr, 1.f);
      opt.update(params.data(), grads.data(), 1e-4f);
      return r.loss_sum / r.n_valid;
    };
    one();
    auto t0 = clk::now();
    const double c0 = cpu_seconds();
    double loss = 0;
    for (int s = 0; s < steps; ++s) loss = one();
    const double sec = std::chrono::duration<double>(clk::now() - t0).count() / steps;
    const double cpu = (cpu_seconds() - c0) / steps;
    const double tps = batch * seq / sec;
    const double gf = gemm_flops_per_token(c, split) * tps / 1e9;
    std::printf(
        "d=%d params=%.1fM batch=%dx%d split=%d+%d: %.3f s/step, %.0f tokens/s, %.3f CPU s/step, GEMM %.1f GFLOP/s "
        "(%.0f%% of sgemm peak), activations %.0f MiB, loss %.9g, weights hash %016llx\n",
        d, c.params_total() / 1e6, batch, seq, split.no_grad, split.grad, sec, tps, cpu, gf, 100 * gf / peak,
        eng.activation_bytes() / 1048576.0, loss, (unsigned long long)weights_hash(params));
    std::fflush(stdout);
  }
  return 0;
}
