#include "tensor/team.h"

#include <strings.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HUGINN_PAUSE() _mm_pause()
#else
#define HUGINN_PAUSE() ((void)0)
#endif

namespace huginn::kern::detail {

thread_local Team* t_team = nullptr;

namespace {
using Clock = std::chrono::steady_clock;

// How long a worker spins for the next job before it sleeps, after
// OMP_WAIT_POLICY as libgomp reads it: PASSIVE sleeps at once (the test suite
// runs several processes per core), ACTIVE keeps spinning. The default covers
// the serial steps between a stage's loops (microseconds) many times over.
Clock::duration policy_budget() {
  const char* p = std::getenv("OMP_WAIT_POLICY");
  if (p && strcasecmp(p, "passive") == 0) return Clock::duration::zero();
  if (p && strcasecmp(p, "active") == 0) return std::chrono::seconds(1);
  return std::chrono::milliseconds(2);
}
std::atomic<int64_t> g_budget_ns{policy_budget().count()};
Clock::duration spin_budget() { return Clock::duration(g_budget_ns.load(std::memory_order_relaxed)); }

// Spins until done() or the budget is spent; true if done.
template <class Done>
bool spin_until(Done&& done, Clock::duration budget) {
  if (done()) return true;
  if (budget == Clock::duration::zero()) return false;
  const Clock::time_point until = Clock::now() + budget;
  for (int i = 1;; ++i) {
    HUGINN_PAUSE();
    if (done()) return true;
    if (i % 256 == 0 && Clock::now() > until) return false;
  }
}
}  // namespace

void team_run(Team& t, void (*call)(void*, int, int), void* ctx) {
  t.call = call;
  t.ctx = ctx;
  t.pending.store(t.nth - 1, std::memory_order_relaxed);
  // seq_cst with the workers' sleepers increment: either a worker about to
  // sleep sees the new generation, or this sees it asleep and wakes it.
  t.gen.fetch_add(1, std::memory_order_seq_cst);
  if (t.sleepers.load(std::memory_order_seq_cst) > 0) t.gen.notify_all();
  // A job's own loops run serially on this thread (t_team is the stage's,
  // and the other threads are busy with this job).
  t_team = nullptr;
  try {
    call(ctx, 0, t.nth);
  } catch (...) {
    t_team = &t;
    while (t.pending.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    throw;
  }
  t_team = &t;
  // The others finish within microseconds of this thread unless one was
  // preempted: then yield the core to it.
  auto done = [&] { return t.pending.load(std::memory_order_acquire) == 0; };
  if (!spin_until(done, std::chrono::microseconds(200)))
    while (!done()) std::this_thread::yield();
}

void team_serve(Team& t, int me) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = 0;
    auto ready = [&] { return (g = t.gen.load(std::memory_order_acquire)) != seen; };
    if (!spin_until(ready, spin_budget())) {
      t.sleepers.fetch_add(1, std::memory_order_seq_cst);
      while ((g = t.gen.load(std::memory_order_seq_cst)) == seen) t.gen.wait(seen, std::memory_order_seq_cst);
      t.sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
    seen = g;
    if (t.stop) return;
    t.call(t.ctx, me, t.nth);
    t.pending.fetch_sub(1, std::memory_order_release);
  }
}

void set_spin_budget_us(int64_t us) {
  g_budget_ns = us < 0 ? policy_budget().count()
                       : std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(us)).count();
}

void team_release(Team& t) {
  t.stop = true;
  t.gen.fetch_add(1, std::memory_order_seq_cst);
  if (t.sleepers.load(std::memory_order_seq_cst) > 0) t.gen.notify_all();
}

}  // namespace huginn::kern::detail
