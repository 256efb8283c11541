// A small deterministic generator for the task instances: the same numbers on
// every platform and standard library (std distributions are not portable).
#pragma once
#include <cstdint>

namespace huginn::tasks {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0.
  uint64_t below(uint64_t n) { return (uint64_t)(((unsigned __int128)next() * n) >> 64); }
  // Uniform in [lo, hi].
  int range(int lo, int hi) { return lo + (int)below((uint64_t)(hi - lo + 1)); }
  // Uniform in [0, 1).
  double uniform() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
  bool bernoulli(double p) { return uniform() < p; }

 private:
  uint64_t s_;
};

}  // namespace huginn::tasks
