// huginn quantize: a model (HF directory or GGUF) into one GGUF file in a ggml
// weight mix, streamed tensor by tensor.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/quantize.h"

namespace huginn::cli {
namespace {
struct Opts {
  std::string in, out, type = "q8_0";
  bool quiet = false, list = false;
};

int run(const Opts& o) {
  if (!is_quantize_mix(o.type))
    fail("--type must be one of f32, f16, bf16, q8_0, q6_k, q5_0, q4_1, q4_0, q5_k_m, q4_k_m; got '", o.type, "'");
  QuantizeOptions qo;
  qo.type = o.type;
  const auto t0 = std::chrono::steady_clock::now();
  const bool show = !o.quiet && isatty(2);  // a progress line on a terminal
  if (show)
    qo.progress = [](size_t i, size_t n, const std::string& name, const char* type) {
      std::fprintf(stderr, "\r[%4zu/%4zu] %-40s %-5s", i + 1, n, name.c_str(), type);
      std::fflush(stderr);
    };
  const QuantizeResult r = quantize_model(o.in, o.out, qo);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (show) std::fprintf(stderr, "\r%80s\r", "");
  std::map<std::string, int> counts;
  for (const auto& t : r.tensors) counts[t.type]++;
  std::string mix;
  for (const auto& [t, n] : counts) mix += str(" ", t, " x", n);
  std::printf("wrote %s (%s): %zu tensors,%s; weights %s -> %s (%.2fx) in %.1f s\n", o.out.c_str(), o.type.c_str(),
              r.tensors.size(), mix.c_str(), human_bytes((double)r.in_bytes).c_str(),
              human_bytes((double)r.out_bytes).c_str(), (double)r.in_bytes / std::max<size_t>(1, r.out_bytes), s);
  std::map<std::string, int> notes;
  for (const auto& t : r.tensors)
    if (!t.note.empty()) notes[t.note]++;
  for (const auto& [n, k] : notes) std::printf("  %d tensor%s: %s\n", k, k == 1 ? "" : "s", n.c_str());
  if (o.list)
    for (const auto& t : r.tensors) std::printf("  %-40s %-5s %s\n", t.name.c_str(), t.type.c_str(), human_bytes((double)t.bytes).c_str());
  return 0;
}
}  // namespace

static Register reg("quantize", "write a model as one GGUF file in a ggml weight type (q8_0, q4_0, q4_k_m, ...)",
                    [](CLI::App& app) {
                      auto o = std::make_shared<Opts>();
                      app.footer(quantize_mix_help());
                      app.add_option("in", o->in, "model directory or .gguf file")->required();
                      app.add_option("out", o->out, "output .gguf file")->required();
                      app.add_option("--type", o->type,
                                     "q8_0|q4_0|q4_1|q5_0|q4_k_m|q5_k_m|q6_k|bf16|f16|f32 (default q8_0)");
                      app.add_flag("--quiet", o->quiet, "no progress line");
                      app.add_flag("--list", o->list, "print every tensor's type and size");
                      return [o] { return run(*o); };
                    });
}  // namespace huginn::cli
