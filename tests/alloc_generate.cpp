// Decoding must not allocate per token: the number of heap allocations of a
// whole generate() call must not depend on how many tokens it produces (setup
// allocates once; a per-token allocation would scale with the count). A
// separate program because it replaces operator new.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>

#include "alloc_counter.h"
#include "huginn/generate.h"
#include "huginn/model.h"

using namespace huginn;


int main() {
  auto m = Model::load(std::string(HUGINN_TEST_DATA) + "/golden/tiny_f32");
  const std::vector<int> prompt = {256, 243, 78, 242, 114, 367, 322, 491, 457, 456, 45, 328};
  int bad = 0;
  auto check = [&](const char* name, const std::function<void(int)>& run) {
    run(2);  // warm-up (thread pools, first-touch)
    const long a = test::count_allocs([&] { run(4); }), b = test::count_allocs([&] { run(24); });
    std::printf("%-40s %ld allocations for 4 tokens, %ld for 24\n", name, a, b);
    if (a != b) ++bad;
  };
  auto seq = [&](const char* name, std::function<void(GenerateOptions&)> set) {
    check(name, [&](int n) {
      GenerateOptions o;
      o.steps = 6;
      o.max_new_tokens = n;
      set(o);
      volatile size_t sink = generate(*m, prompt, o).tokens.size();
      (void)sink;
    });
  };
  seq("fixed depth", [](GenerateOptions&) {});
  seq("adaptive kl, latest-m4", [](GenerateOptions& o) {
    o.exit = ExitCriterion::parse("kl:3e-3");
    o.cache = "latest-m4";
  });
  seq("adaptive latent-diff, always-last-m4", [](GenerateOptions& o) {
    o.exit = ExitCriterion::parse("latent-diff:0.05");
    o.cache = "always-last-m4";
  });
  seq("continuous, compress-s4", [](GenerateOptions& o) {
    o.continuous = true;
    o.cache = "latest-m4-compress-s4";
  });
  seq("sampling top-k/top-p/min-p/penalty", [](GenerateOptions& o) {
    o.sampling.temperature = 0.9f;
    o.sampling.top_k = 40;
    o.sampling.top_p = 0.9f;
    o.sampling.min_p = 0.01f;
    o.sampling.repetition_penalty = 1.2f;
  });
  seq("soft thoughts", [](GenerateOptions& o) {
    o.soft_thoughts = 3;
    o.soft_top_k = 8;
  });
  check("batch of 3, adaptive kl", [&](int n) {
    GenerateOptions o;
    o.steps = 6;
    o.max_new_tokens = n;
    o.exit = ExitCriterion::parse("kl:3e-3");
    std::vector<std::vector<int>> ps = {prompt, {5, 6, 7}, {9, 10, 11, 12, 13}};
    volatile size_t sink = generate(*m, ps, o).size();
    (void)sink;
  });
  check("session turn", [&](int n) {
    GenerateOptions o;
    o.steps = 6;
    o.max_new_tokens = n;
    Session s(*m, o);
    s.turn(prompt);
    volatile size_t sink = s.turn({5, 6, 7}).tokens.size();
    (void)sink;
  });
  check("speculative", [&](int n) {
    SpeculativeOptions s;
    s.steps = 6;
    s.draft_steps = 2;
    s.lookahead = 3;
    s.max_new_tokens = n;
    volatile size_t sink = generate_speculative(*m, prompt, s).tokens.size();
    (void)sink;
  });
  if (bad) std::printf("FAIL: %d mode(s) allocate per token\n", bad);
  else std::printf("ok\n");
  return bad ? 1 : 0;
}
