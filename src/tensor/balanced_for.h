// A parallel loop over [0, n) that keeps each thread's items one sequential
// stream (as schedule(static) does) and still ends together: every thread
// starts on its own contiguous share and works through it from the front, a
// chunk at a time; a thread that runs out takes chunks from the back of the
// share with the most left. What an item computes must not depend on the
// thread that runs it (the GEMVs' blocks do not), so results stay the same.
//
// Why: a static split leaves the region's time to its slowest thread, and on a
// loaded machine one core is often interrupted (a server's I/O threads, the
// kernel's network work): `huginn serve --parallel 8` spent 12% of the second
// thread's samples waiting at the GEMVs' barriers. Dynamic chunks in global
// order interleave the threads' streams, which the hardware prefetchers follow
// worse (10-20% slower decode, measured before the static split).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "tensor/team.h"

namespace huginn::kern {

namespace detail {
// One thread's share: front (low 32 bits) and back (high 32 bits) in one word,
// so that the owner's claim from the front and a thief's from the back never
// overlap (each is one compare-exchange of the whole word). A line each, and
// left uninitialised: only the team's shares are written, per call.
struct alignas(64) Share {
  uint64_t fb;
  std::atomic_ref<uint64_t> at() { return std::atomic_ref<uint64_t>(fb); }
};
inline uint64_t pack(uint32_t f, uint32_t b) { return (uint64_t)b << 32 | f; }
inline bool claim_front(Share& s, int chunk, int& a, int& e) {
  uint64_t v = s.at().load(std::memory_order_relaxed);
  for (;;) {
    const uint32_t f = (uint32_t)v, b = (uint32_t)(v >> 32);
    if (f >= b) return false;
    const uint32_t nf = std::min<uint32_t>(f + chunk, b);
    if (s.at().compare_exchange_weak(v, pack(nf, b), std::memory_order_acq_rel)) return a = (int)f, e = (int)nf, true;
  }
}
inline bool claim_back(Share& s, int chunk, int& a, int& e) {
  uint64_t v = s.at().load(std::memory_order_relaxed);
  for (;;) {
    const uint32_t f = (uint32_t)v, b = (uint32_t)(v >> 32);
    if (f >= b) return false;
    const uint32_t nb = b - std::min<uint32_t>(chunk, b - f);
    if (s.at().compare_exchange_weak(v, pack(f, nb), std::memory_order_acq_rel)) return a = (int)nb, e = (int)b, true;
  }
}
constexpr int kMaxShares = 256;
}  // namespace detail

// Items per claim for items of `item_bytes` of weights each: about 32 KB a
// claim (a stolen claim is a short stream of its own; a CAS per claim is
// nothing beside it), at least one item.
constexpr size_t kClaimBytes = 32 << 10;
inline int items_per_claim(size_t item_bytes) { return (int)std::max<size_t>(1, kClaimBytes / item_bytes); }

// body(begin, end) for consecutive items; chunk: items per claim. On a stage's
// team when there is one (team.h). Runs on the calling thread alone when
// !parallel, inside another parallel region, or for fewer items than two chunks.
template <class Body>
void balanced_for(int n, int chunk, bool parallel, Body&& body) {
  if (n <= 0) return;
  chunk = std::max(1, chunk);
  const int nt = std::min(parallel_threads(), detail::kMaxShares);
  if (!parallel || nt <= 1 || n < 2 * chunk) {
    body(0, n);
    return;
  }
  detail::Share shares[detail::kMaxShares];
  for (int t = 0; t < nt; ++t)
    shares[t].fb = detail::pack((uint32_t)((int64_t)n * t / nt), (uint32_t)((int64_t)n * (t + 1) / nt));
  parallel_region(true, [&](int me, int) {
    // A team smaller than asked for: the missing threads' shares are taken
    // as theirs by whoever finishes first, like any other.
    int a, e;
    if (me < nt)
      while (detail::claim_front(shares[me], chunk, a, e)) body(a, e);
    for (;;) {
      int victim = -1;
      uint64_t most = 0;
      for (int t = 0; t < nt; ++t) {
        const uint64_t v = shares[t].at().load(std::memory_order_relaxed);
        const uint32_t f = (uint32_t)v, b = (uint32_t)(v >> 32);
        if (b > f && b - f > most) most = b - f, victim = t;
      }
      if (victim < 0) break;
      if (detail::claim_back(shares[victim], chunk, a, e)) body(a, e);
    }
  });
}

}  // namespace huginn::kern
