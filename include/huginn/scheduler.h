// Continuous batching for serving: one generation thread runs batched passes
// (infer::BatchRunner) over the sequences admitted so far; requests join the
// running batch between passes and leave it when done, cancelled or timed
// out. Each sequence keeps its own depth, exit criterion, cache strategy,
// sampling parameters, seed and stops, and its tokens and per-token
// iterations are those of the same request served alone. A prompt is fed in
// chunks of at most `prefill_chunk` positions, beside the running decodes
// (prompt chunks of several sequences share a pass up to `prefill_chunk`
// positions in all), so streaming clients keep getting tokens. When no
// sequence is decoding (a burst of new requests) a pass takes up to four
// chunks' positions: there is no stream to delay.
//
// Nothing here blocks on generation except Job::wait*: submit(), cancel() and
// stats() take a mutex the generation thread holds only between passes.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "huginn/generate.h"
#include "huginn/model.h"

namespace huginn::serve {

struct SchedulerConfig {
  int parallel = 4;          // sequences decoded together
  int max_queue = 64;        // sequences waiting for a slot; beyond: submit() refuses
  size_t kv_budget = 0;      // bytes of KV cache all running sequences may allocate (0: no limit)
  int prefill_chunk = 64;    // prompt positions per pass (a sequence's chunk, and all chunks of a pass)
  size_t max_unread = 4096;  // tokens a streaming reader may leave unread before it is dropped
  double timeout_s = 0;      // a sequence's time limit from submission (0: none)
};

using Clock = std::chrono::steady_clock;

// One generated token as a reader sees it.
struct JobToken {
  int token = 0;
  int steps = 0;
  float logprob = 0;                       // log-softmax of the model's logits (if logprobs)
  std::vector<std::pair<int, float>> top;  // the top_logprobs most likely tokens
};

// Signalled whenever a job of a request changes (tokens, start, end).
struct JobSignal {
  std::mutex mu;
  std::condition_variable cv;
};

// One sequence to generate. The caller fills the inputs; the scheduler the
// rest, under sig->mu.
struct Job {
  // ---- inputs
  std::vector<int> prompt;
  GenerateOptions options;
  int logprobs = -1;       // -1: none; k >= 0: each token's log-probability and its k most likely alternatives
  bool streaming = false;  // a reader takes tokens as they come (max_unread applies)
  // The client's socket, or -1. The scheduler polls it before every pass and
  // drops the job (queued or running) once the peer has closed: a disconnect
  // frees the slot within one pass, whoever waits on the job. The owner keeps
  // it open until the job has ended or been cancelled (a closed fd reads as gone).
  int client_fd = -1;
  std::shared_ptr<JobSignal> sig = std::make_shared<JobSignal>();

  // ---- outputs (read under sig->mu)
  enum class State { Queued, Running, Done, Failed };
  State state = State::Queued;
  std::vector<JobToken> tokens;
  size_t taken = 0;       // tokens the reader has taken (it advances this)
  SequenceResult result;  // when Done: the whole result (tokens, steps, stop_reason, kv_bytes)
  int error_status = 0;   // when Failed: an HTTP status (503 queue/shutdown, 504 timeout, 499 cancelled, 500)
  std::string error;      // when Failed: why
  Clock::time_point t_submit, t_start, t_first, t_end;
  // Passes run (SchedulerStats::passes) when the job was queued and when it
  // left its slot or the queue.
  uint64_t pass_submitted = 0, pass_freed = 0;

  // ---- from any thread
  std::atomic<bool> cancelled{false};
  // Asks the scheduler to drop the job (it leaves the batch before the next pass).
  void cancel(const std::string& why);
  std::string cancel_reason() const;
  // Passes run when cancel() was first called (0 before; a job not yet submitted: 0).
  uint64_t cancel_pass() const;

 private:
  friend class Scheduler;
  mutable std::mutex why_mu_;
  std::string why_;
  uint64_t cancel_pass_ = 0;
  std::shared_ptr<const std::atomic<uint64_t>> passes_;  // the scheduler's pass count (set by submit)
};

// Counters and gauges for /health and /metrics.
struct SchedulerStats {
  int parallel = 0, running = 0, prefilling = 0, queued = 0, max_queue = 0;
  bool accepting = true;
  uint64_t submitted = 0, completed = 0, failed = 0, cancelled = 0, rejected = 0, timed_out = 0;
  uint64_t prompt_tokens = 0, generated_tokens = 0, core_iterations = 0, passes = 0;
  uint64_t token_iterations = 0;  // iterations of the passes that produced tokens
  size_t kv_budget = 0, kv_reserved = 0, kv_allocated = 0;
  double tokens_per_second = 0;  // generated tokens per second over the last few seconds
  double busy_seconds = 0;       // time spent in passes
  // the passes that fed prompt positions (beside any decoding rows) and their
  // time; the rest of passes and busy_seconds is passes that only decoded
  uint64_t prompt_passes = 0;
  double prompt_pass_seconds = 0;
  uint64_t idle_trims = 0;       // times the freed memory of a finished burst went back to the system (malloc_trim)
  // time to first token (seconds, from submission): cumulative bucket counts for ttft_bounds
  static const std::vector<double>& ttft_bounds();
  std::vector<uint64_t> ttft_buckets;
  uint64_t ttft_count = 0;
  double ttft_sum = 0;
};

class Scheduler {
 public:
  Scheduler(const Model& m, SchedulerConfig cfg);
  ~Scheduler();  // stops the generation thread; unfinished jobs fail
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  enum class Admit { Ok, QueueFull, ShuttingDown, TooLarge };
  // Queues all of `jobs` or none. TooLarge: one alone needs more KV memory than the budget.
  Admit submit(const std::vector<std::shared_ptr<Job>>& jobs, std::string* why = nullptr);
  // Bytes of KV cache a sequence of `positions` positions may allocate under its options.
  size_t kv_bytes_for(const GenerateOptions& o, int positions) const;

  // Stops accepting; queued jobs fail with 503; running ones get `grace_s`
  // seconds to finish, then are cancelled. Returns when none is left.
  void shutdown(double grace_s);
  SchedulerStats stats() const;
  const SchedulerConfig& config() const { return cfg_; }

 private:
  struct Running;
  void loop();
  void finish(Running& r, Job::State st, int status, const std::string& why, uint64_t SchedulerStats::*count);

  const Model& m_;
  SchedulerConfig cfg_;
  mutable std::mutex mu_;  // queue_, accepting_, stop_, stats_
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Job>> queue_;
  bool accepting_ = true, stop_ = false;
  Clock::time_point cancel_running_at_ = Clock::time_point::max();
  SchedulerStats stats_;
  std::deque<std::pair<Clock::time_point, uint64_t>> rate_;  // (time, generated tokens) samples
  // Passes run, read by Job::cancel from any thread (shared: a job may outlive the scheduler).
  std::shared_ptr<std::atomic<uint64_t>> passes_ = std::make_shared<std::atomic<uint64_t>>(0);
  std::thread thread_;
};

}  // namespace huginn::serve
