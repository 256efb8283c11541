// Timing and machine references shared by the bench programs: figures are
// reported against what this machine measures in the same run.
#pragma once
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "huginn/common.h"

namespace huginn::bench {
using clk = std::chrono::steady_clock;

inline double secs_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

// Bytes read + written per second by memcpy of a buffer larger than the caches.
inline double memcpy_gbs(size_t bytes) {
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

// A comma-separated list of whole numbers in [lo, INT_MAX] from option `opt`
// (e.g. --rows 1,8,16). Throws huginn::Error naming the option and the value.
inline std::vector<int> int_list(const std::string& s, const char* opt, int lo = 0) {
  std::vector<int> v;
  try {
    for (long long x : parse_int_list(s, "number")) {
      if (x < lo || x > INT_MAX) fail("out of range: ", x, " (at least ", lo, ")");
      v.push_back((int)x);
    }
  } catch (const Error& e) {
    fail(opt, ": ", e.what());
  }
  return v;
}

}  // namespace huginn::bench
