// Counts every heap allocation of the program that includes this header, by
// replacing the global operator new. Include it in exactly one translation
// unit per test program.
#pragma once
#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>

namespace huginn::test {
inline std::atomic<long> g_allocs{0};
// Allocations made while f runs.
inline long count_allocs(const std::function<void()>& f) {
  const long before = g_allocs.load();
  f();
  return g_allocs.load() - before;
}
}  // namespace huginn::test

void* operator new(std::size_t n) {
  huginn::test::g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
