// Shared basics: the error type every layer throws, a tiny string builder, and
// storage on cache lines.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace huginn {

// Storage that starts on a 64-byte cache line (a vector load from it never
// straddles two lines).
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  friend bool operator==(const CacheLineAllocator&, const CacheLineAllocator&) { return true; }
  friend bool operator!=(const CacheLineAllocator&, const CacheLineAllocator&) { return false; }
};
using LineFloats = std::vector<float, CacheLineAllocator<float>>;

// All recoverable failures (bad files, bad options, bad input) are reported as
// huginn::Error with a one-line message naming the offending file/tensor/value.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// SplitMix64's finaliser: a fast, well-mixed 64-bit hash for seeds, so that
// random streams are pure functions of (seed, index).
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

template <class... Args>
std::string str(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(str(std::forward<Args>(args)...));
}

// Numbers in option values and specs, always the whole string ("12", "5e-4";
// not "12x", " 12" or ""). Callers add their own context to the error.
bool parse_int(const std::string& s, long long& out);
bool parse_uint(const std::string& s, unsigned long long& out);  // no sign: 0 .. 2^64-1
bool parse_double(const std::string& s, double& out);  // finite values only
// Whole numbers separated by commas, spaces, tabs, newlines or brackets
// ("1,2 3", "[1, 2]"); throws Error "invalid WHAT 'ENTRY'" for a bad entry.
std::vector<long long> parse_int_list(const std::string& s, const std::string& what);
// A name read from a file, fit for an error message: bytes outside printable
// ASCII as \xNN, cut to `max` characters with "..." after.
std::string printable(const std::string& s, size_t max = 80);

}  // namespace huginn
