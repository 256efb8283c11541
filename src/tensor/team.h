// The threads of one forward stage, held for the whole stage.
//
// Why: a batched decode pass runs about a dozen small parallel loops per
// block (norms, four GEMVs, RoPE, attention, SwiGLU), some 450 per token step
// on the standard config. Each `#pragma omp parallel` region costs libgomp's
// barrier, which makes a futex system call whether or not anyone sleeps:
// `huginn serve --parallel 8` spent 7% of the main thread's samples in
// futex_wake and the other thread waited 16% of its time. with_team() opens
// one OpenMP region for a whole stage (a prelude, a recurrence step, a head);
// the calling thread runs the stage's code as before, and the kernels' loops
// inside it hand their items to the other threads through spinning atomics:
// no system call and no region per loop.
//
// The loops (parallel_for, parallel_for_dynamic, parallel_region) work the
// same outside a team: there each is one OpenMP region, as before. What an
// item computes never depends on the thread that runs it, so results do not
// depend on the team either.
#pragma once

#include <omp.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <type_traits>


namespace huginn::kern {

namespace detail {
struct Team {
  // Job generation: bumped once per job (and once more to release the team).
  alignas(64) std::atomic<uint32_t> gen{0};
  // Workers still running the current job.
  alignas(64) std::atomic<int> pending{0};
  // The next item of a dynamic loop.
  alignas(64) std::atomic<int> next{0};
  // Workers asleep on gen (after spinning for the wait policy's budget).
  alignas(64) std::atomic<int> sleepers{0};
  alignas(64) void (*call)(void*, int, int) = nullptr;
  void* ctx = nullptr;
  int nth = 1;
  bool stop = false;
};
// The team whose stage this thread is running (the calling thread of
// with_team, outside the jobs themselves); null everywhere else, so a loop
// inside a job runs serially on its thread.
extern thread_local Team* t_team;
// Runs call(ctx, thread, nthreads) on every thread of the team, the caller as
// thread 0, and returns when all are done.
void team_run(Team& t, void (*call)(void*, int, int), void* ctx);
// A worker's loop: runs jobs until the team is released.
void team_serve(Team& t, int me);
void team_release(Team& t);
// Tests: how long a worker spins before it sleeps (negative: from
// OMP_WAIT_POLICY again).
void set_spin_budget_us(int64_t us);

template <class Body>
void call_body(void* ctx, int me, int nth) {
  (*static_cast<Body*>(ctx))(me, nth);
}
}  // namespace detail

// Runs fn() on the calling thread with the other threads of an OpenMP region
// (omp_get_max_threads(), as the regions it replaces) held for the loops
// below. Inside another parallel region, inside a team, or with one thread:
// fn() alone. An exception from fn() leaves the region and is rethrown here.
template <class Fn>
void with_team(Fn&& fn) {
  const int nt = omp_get_max_threads();
  if (nt <= 1 || detail::t_team || omp_in_parallel()) return (void)fn();
  detail::Team team;
  std::exception_ptr err;
#pragma omp parallel num_threads(nt)
  {
    const int me = omp_get_thread_num();
    if (me == 0) {
      team.nth = omp_get_num_threads();
      detail::t_team = &team;
      try {
        fn();
      } catch (...) {
        err = std::current_exception();
      }
      detail::t_team = nullptr;
      detail::team_release(team);
    } else {
      detail::team_serve(team, me);
    }
  }
  if (err) std::rethrow_exception(err);
}

// Threads a loop started here would use.
inline int parallel_threads() {
  if (detail::t_team) return detail::t_team->nth;
  return omp_in_parallel() ? 1 : omp_get_max_threads();
}

// body(thread, nthreads) once on every thread: the team's, or a new OpenMP
// region's (serial when !parallel or inside another region: body(0, 1)).
template <class Body>
void parallel_region(bool parallel, Body&& body) {
  if (!parallel) return (void)body(0, 1);
  if (detail::Team* t = detail::t_team) {
    using B = std::remove_reference_t<Body>;
    return detail::team_run(*t, &detail::call_body<B>, const_cast<void*>(static_cast<const void*>(&body)));
  }
  if (omp_in_parallel() || omp_get_max_threads() <= 1) return (void)body(0, 1);
#pragma omp parallel
  body(omp_get_thread_num(), omp_get_num_threads());
}

// body(i) for i in [0, n): each thread one contiguous share (schedule(static)).
template <class Body>
void parallel_for(int64_t n, bool parallel, Body&& body) {
  if (n <= 0) return;
  if (!parallel || n == 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  parallel_region(true, [&](int me, int nth) {
    const int64_t a = n * me / nth, e = n * (me + 1) / nth;
    for (int64_t i = a; i < e; ++i) body(i);
  });
}

// body(i, thread) for i in [0, n), one item at a time to whichever thread is
// free (schedule(dynamic, 1)); thread indexes per-thread scratch.
template <class Body>
void parallel_for_dynamic(int n, bool parallel, Body&& body) {
  if (n <= 0) return;
  if (!parallel || n == 1) {
    for (int i = 0; i < n; ++i) body(i, 0);
    return;
  }
  if (detail::Team* t = detail::t_team) {
    t->next.store(0, std::memory_order_relaxed);  // published by team_run's job release
    parallel_region(true, [&](int me, int) {
      for (int i; (i = t->next.fetch_add(1, std::memory_order_relaxed)) < n;) body(i, me);
    });
    return;
  }
  if (omp_in_parallel()) {
    for (int i = 0; i < n; ++i) body(i, 0);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < n; ++i) body(i, omp_get_thread_num());
}

}  // namespace huginn::kern
