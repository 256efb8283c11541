// bench_quant: GEMV speed per weight format (src/tensor/quant.h) at the
// standard d=512 config's matrix shapes, for 1 and 8 activation rows, beside
// the read and memcpy bandwidth measured in the same invocation. Each call
// reads a different copy of the matrix (copies spanning > the caches), as a
// decode step reads every layer's weights from memory, so "% of read bw" is the
// fraction of the memory roofline (weight bytes / read bandwidth) reached.
//
//   build/bin/bench_quant                       # all types, all shapes, 1 and 8 rows
//   build/bin/bench_quant --types Q4_0,Q4_K --rows 1,32 -t 1
//   valgrind --tool=callgrind build/bin/bench_quant -t 1 --types Q4_0 --rows 1 --shapes 8192x512 --seconds 0.01
//   --span-mb 16
//     (instructions per call: gemv's inclusive count over its calls)
#include <omp.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include "bench_util.h"
#include "huginn/common.h"
#include "huginn/quant.h"
#include "huginn/weight.h"
#include "tensor/kernels.h"

using namespace huginn;
using bench::clk;
using bench::memcpy_gbs;
using bench::secs_since;

// CPU seconds this process has used: against wall time x threads it shows how
// much of the machine the measurement actually got (shared machines).
static double cpu_secs() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Bytes read per second summing a buffer larger than the caches, on all
// threads; the best of many passes, so a pass the machine gave us whole counts.
static double read_gbs(size_t bytes) {
  std::vector<uint64_t> a(bytes / 8, 1);
  double best = 0;
  volatile uint64_t sink = 0;
  for (int rep = 0; rep < 20; ++rep) {
    auto t = clk::now();
    uint64_t s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < a.size(); ++i) s += a[i];
    best = std::max(best, bytes / secs_since(t) / 1e9);
    sink = sink + s;
  }
  return best;
}

int main(int argc, char** argv) {
  CLI::App app{"huginn quantized GEMV benchmark"};
  std::string types_s = "F32,BF16,F16,Q8_0,Q5_0,Q4_1,Q4_0,Q6_K,Q5_K,Q4_K", rows_s = "1,8", shapes_s;
  int threads = 0;
  double seconds = 0.2, span_mb = 256;
  app.add_option("--types", types_s, "comma-separated ggml type names");
  app.add_option("--rows", rows_s, "comma-separated activation row counts");
  app.add_option("--shapes", shapes_s, "these NxK shapes instead of the standard config's, e.g. 8192x512 (instruction counts under callgrind)");
  app.add_option("-t,--threads", threads, "threads (default: all cores)");
  app.add_option("--seconds", seconds, "time per measurement")->check(CLI::Range(0.01, 60.0));
  app.add_option("--span-mb", span_mb, "MiB of weight copies cycled through (beyond the caches)")
      ->check(CLI::Range(1.0, 8192.0));
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads > 0) kern::set_threads(threads);
    std::vector<quant::Type> types;
    for (auto& s : CLI::detail::split(types_s, ',')) {
      const quant::TypeInfo* ti = quant::find_type(s);
      if (!ti) fail("unknown type '", s, "'");
      types.push_back(ti->type);
    }
    const std::vector<int> rows_list = bench::int_list(rows_s, "--rows", 1);
    // the standard config: d=512, intermediate 1536 (MLP up: 2*1536, down), attention, vocab 8192
    std::vector<std::pair<int, int>> shapes = {{1536, 512}, {512, 512}, {3072, 512}, {512, 1536}, {8192, 512}};
    if (!shapes_s.empty()) {  // any NxK, e.g. Huginn-0125's 35840x5280
      shapes.clear();
      for (auto& s : CLI::detail::split(shapes_s, ',')) {
        const size_t x = s.find('x');
        if (x == std::string::npos) fail("--shapes: expected NxK, got '", s, "'");
        const std::vector<int> nk = bench::int_list(s.substr(0, x) + "," + s.substr(x + 1), "--shapes", 1);
        if (nk.size() != 2) fail("--shapes: expected NxK, got '", s, "'");
        shapes.emplace_back(nk[0], nk[1]);
      }
    }

    const double rbw = read_gbs(256u << 20), cbw = memcpy_gbs(256u << 20);
    std::printf("# reference: read %.1f GB/s (%d threads), memcpy %.1f GB/s (read+write, 1 thread)\n", rbw,
                omp_get_max_threads(), cbw);
    std::printf(
        "# CPU share: CPU time used / (wall time x threads); below 100%% the machine was shared and the figures are "
        "low\n");
    std::printf(
        "# each call reads a different copy of the weights (%.0f MiB cycled); activations quantized to 8 bits for "
        "block types\n",
        span_mb);
    std::printf("| type | N x K | rows | us/call | weight GB/s | of read bw | GFLOP/s | CPU share |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 0.05f);
    for (quant::Type t : types)
      for (auto [N, K] : shapes) {
        const size_t rb = quant::row_bytes(t, K), mb = rb * N;
        std::vector<float> w((size_t)N * K);
        for (float& v : w) v = nd(rng);
        const size_t copies = std::max<size_t>(2, (size_t)(span_mb * (1 << 20)) / mb);
        std::vector<uint8_t> W(mb * copies);
        quant::quantize_rows(t, w.data(), W.data(), N, K);
        for (size_t c = 1; c < copies; ++c) std::memcpy(W.data() + c * mb, W.data(), mb);
        // The engine's own path for each type: float weights (F32/BF16/F16, the
        // same bytes as the block formats' "types" of those names) go through
        // kern::matmul's multi-row GEMV, block types through quant::gemv.
        const DType dt = t == quant::Type::F32    ? DType::F32
                         : t == quant::Type::BF16 ? DType::BF16
                         : t == quant::Type::F16  ? DType::F16
                                                  : DType::U8;
        auto weight = [&](size_t c) {
          const uint8_t* p = W.data() + c * mb;
          return dt == DType::U8 ? Weight::blocks(t, p, N, K) : Weight{dt, p, N, K};
        };
        for (int rows : rows_list) {
          std::vector<float> x((size_t)rows * K), y((size_t)rows * N);
          for (float& v : x) v = nd(rng) * 20;
          size_t calls = 0, c = 0;
          kern::matmul(x.data(), weight(0), y.data(), rows);  // warm-up
          const auto t0 = clk::now();
          const double c0 = cpu_secs();
          double el = 0;
          while (el < seconds) {
            for (int k = 0; k < 16; ++k, c = (c + 1) % copies, ++calls)
              kern::matmul(x.data(), weight(c), y.data(), rows);
            el = secs_since(t0);
          }
          const double share = (cpu_secs() - c0) / (el * omp_get_max_threads());
          const double per = el / (double)calls, gbs = (double)mb / per / 1e9;
          std::printf("| %s | %dx%d | %d | %.1f | %.2f | %.0f%% | %.2f | %.0f%% |\n", quant::name(t), N, K, rows,
                      per * 1e6, gbs, 100 * gbs / rbw, 2.0 * N * K * rows / per / 1e9, 100 * share);
          std::fflush(stdout);
        }
      }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
