// huginn check: every tensor of a checkpoint scanned for NaN/Inf (like
// llama.cpp's --check-tensors), after the config is checked against the
// tensors present. Reads through the memory map: constant memory.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/config.h"
#include "huginn/safetensors.h"
#include "huginn/check.h"

namespace huginn::cli {
namespace fs = std::filesystem;
namespace {
struct Opts {
  std::string model;
  bool quiet = false;
};

int run(const Opts& o) {
  if (!fs::is_directory(o.model)) fail(o.model, ": not a model directory");
  const ModelConfig c = load_config((fs::path(o.model) / "config.json").string());
  const TensorStore store = TensorStore::open_dir(o.model);
  check_config_against_weights(c, store);
  std::vector<const TensorView*> ts;
  for (const auto& [name, t] : store.tensors()) ts.push_back(&t);
  std::vector<NonFinite> found(ts.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < ts.size(); ++i) {
    found[i] = scan_non_finite(*ts[i]);
    // Drop the scanned pages from this process (they stay in the page cache):
    // the resident memory stays flat however large the model.
    const uintptr_t page = (uintptr_t)::sysconf(_SC_PAGESIZE);
    const uintptr_t b = ((uintptr_t)ts[i]->data + page - 1) / page * page;
    const uintptr_t e = ((uintptr_t)ts[i]->data + ts[i]->nbytes) / page * page;
    if (e > b) ::madvise((void*)b, e - b, MADV_DONTNEED);
  }
  uint64_t bad_tensors = 0, bad_values = 0, values = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    values += (uint64_t)ts[i]->numel();
    if (!found[i].count()) continue;
    ++bad_tensors, bad_values += found[i].count();
    std::printf("%s: %llu NaN, %llu Inf of %lld (%s, first at index %lld)\n", ts[i]->name.c_str(),
                (unsigned long long)found[i].nan, (unsigned long long)found[i].inf, (long long)ts[i]->numel(),
                dtype_name(ts[i]->dtype), (long long)found[i].first);
  }
  if (bad_tensors)
    fail(o.model, ": ", bad_tensors, " of ", ts.size(), " tensors hold non-finite values (", bad_values, " of ",
         values, ")");
  if (!o.quiet)
    std::printf("ok: %zu tensors, %llu values, all finite; config matches the weights\n", ts.size(),
                (unsigned long long)values);
  return 0;
}
}  // namespace

static Register reg("check", "check a checkpoint: config against the tensors, every value for NaN/Inf",
                    [](CLI::App& app) {
                      auto o = std::make_shared<Opts>();
                      app.add_option("model", o->model, "model directory")->required();
                      app.add_flag("-q,--quiet", o->quiet, "print nothing when the model is fine");
                      return [o] { return run(*o); };
                    });
}  // namespace huginn::cli
