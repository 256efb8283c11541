// Helpers shared by the test suites: temporary directories, tiny models, and
// running the CLI as a user would.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "huginn/checkpoint.h"
#include "huginn/config.h"

namespace huginn::test {

inline std::filesystem::path temp_dir(const std::string& tag) {
  static std::mt19937_64 rng(std::random_device{}());
  auto p = std::filesystem::temp_directory_path() / ("huginn-test-" + tag + "-" + std::to_string(rng()));
  std::filesystem::create_directories(p);
  return p;
}

// A small config with every structural feature (prelude, core, coda, qk_bias).
inline ModelConfig tiny_config(int d = 32, int heads = 2, int vocab = 97, int block = 64) {
  ModelConfig c;
  c.n_embd = d;
  c.n_heads = heads;
  c.head_dim = d / heads;
  c.intermediate_size = 2 * d;
  c.vocab_size = vocab;
  c.block_size = block;
  c.n_prelude = 1;
  c.n_core = 2;
  c.n_coda = 1;
  c.mean_recurrence = 4;
  c.mean_backprop_depth = 2;
  return c;
}

// n normal samples (mean 0, std `scale`), reproducible by seed.
inline std::vector<float> randv(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

struct RunResult {
  int code = -1;  // exit status; -1 if killed by a signal
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs the huginn CLI with `args` (a shell-quoted string), capturing output.
inline RunResult run_cli(const std::string& args, const std::string& stdin_text = "") {
  auto dir = temp_dir("cli");
  std::ofstream(dir / "in") << stdin_text;
  std::string cmd = std::string(HUGINN_BIN) + " " + args + " <" + (dir / "in").string() + " >" +
                    (dir / "out").string() + " 2>" + (dir / "err").string();
  int st = std::system(cmd.c_str());
  RunResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(dir / "out");
  r.err = slurp(dir / "err");
  std::filesystem::remove_all(dir);
  return r;
}

// Exit status of a shell command (-1 if it did not exit normally).
inline int sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// tests/NAME's locked npm packages (package.json + package-lock.json),
// installed once into the build directory with `npm ci`, again when the lock
// changes or `probe` (a path under node_modules) is missing. Returns the
// directory that holds node_modules; "" if npm ci failed.
inline std::filesystem::path npm_packages(const std::string& name, const std::string& probe) {
  namespace fs = std::filesystem;
  const fs::path src = fs::path(HUGINN_SOURCE_DIR) / "tests" / name, mods = fs::path(HUGINN_BUILD_DIR) / name;
  const std::string lock = slurp(src / "package-lock.json");
  if (slurp(mods / "node_modules/.huginn-lock") == lock && fs::exists(mods / "node_modules" / probe)) return mods;
  fs::create_directories(mods);
  fs::copy_file(src / "package.json", mods / "package.json", fs::copy_options::overwrite_existing);
  fs::copy_file(src / "package-lock.json", mods / "package-lock.json", fs::copy_options::overwrite_existing);
  if (sh("cd '" + mods.string() + "' && npm ci --no-audit --no-fund --loglevel=error") != 0) return {};
  std::ofstream(mods / "node_modules/.huginn-lock", std::ios::binary) << lock;
  return mods;
}

}  // namespace huginn::test
