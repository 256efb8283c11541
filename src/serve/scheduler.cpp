// Continuous batching (huginn/scheduler.h): the generation thread admits
// queued jobs into free slots (within the KV budget), builds one lane per
// running sequence (a decode position, or the next chunk of one prompt) and
// runs them as one batched pass, each lane under its own depth policy.
#include "huginn/scheduler.h"

#include <malloc.h>
#include <poll.h>

#include <algorithm>
#include <cmath>

#include "huginn/check.h"
#include "huginn/threads.h"
#include "infer/decoder.h"
#include "infer/sequence.h"
#include "tensor/kernels.h"

namespace huginn::serve {

void Job::cancel(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(why_mu_);
    if (!cancelled) {
      why_ = why;
      if (passes_) cancel_pass_ = passes_->load();
    }
  }
  cancelled = true;
}

std::string Job::cancel_reason() const {
  std::lock_guard<std::mutex> lock(why_mu_);
  return why_;
}

uint64_t Job::cancel_pass() const {
  std::lock_guard<std::mutex> lock(why_mu_);
  return cancel_pass_;
}

const std::vector<double>& SchedulerStats::ttft_bounds() {
  static const std::vector<double> b = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return b;
}

struct Scheduler::Running {
  std::shared_ptr<Job> job;
  std::unique_ptr<infer::Sequence> seq;
  size_t kv_reserved = 0;
  int lane = -1;  // index in this pass's lanes, or -1
};

namespace {
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Cancels the jobs whose client has closed its end (or whose socket is gone):
// one poll() over all of them, between passes.
void cancel_disconnected(const std::vector<Job*>& jobs) {
  std::vector<pollfd> p;
  std::vector<Job*> polled;
  for (Job* j : jobs)
    if (j->client_fd >= 0 && !j->cancelled) {
      p.push_back({j->client_fd, POLLRDHUP, 0});
      polled.push_back(j);
    }
  if (p.empty() || ::poll(p.data(), p.size(), 0) <= 0) return;
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) polled[i]->cancel("client disconnected");
}
}  // namespace

Scheduler::Scheduler(const Model& m, SchedulerConfig cfg) : m_(m), cfg_(cfg) {
  if (cfg_.parallel < 1) fail("--parallel must be >= 1, got ", cfg_.parallel);
  if (cfg_.max_queue < 0) fail("--max-queue must be >= 0, got ", cfg_.max_queue);
  if (cfg_.prefill_chunk < 1) fail("the prefill chunk must be >= 1 position, got ", cfg_.prefill_chunk);
  if (cfg_.timeout_s < 0) fail("--timeout must be >= 0 seconds, got ", cfg_.timeout_s);
  stats_.parallel = cfg_.parallel;
  stats_.max_queue = cfg_.max_queue;
  stats_.kv_budget = cfg_.kv_budget;
  stats_.ttft_buckets.assign(SchedulerStats::ttft_bounds().size(), 0);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    accepting_ = false;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t Scheduler::kv_bytes_for(const GenerateOptions& o, int positions) const {
  const ModelConfig& c = m_.config();
  const CacheStrategy cs = CacheStrategy::parse(o.cache);
  // Every slot a run of o.steps iterations may write allocates `capacity` rows of K and V (KVCache).
  const size_t slots = (size_t)c.n_prelude + cs.core_slots(c.n_core, o.steps) + c.n_coda;
  return slots * (size_t)positions * cs.position_bytes(c.n_embd);
}

Scheduler::Admit Scheduler::submit(const std::vector<std::shared_ptr<Job>>& jobs, std::string* why) {
  const int block = m_.config().block_size;
  for (auto& j : jobs) {
    const int cap = std::min<int>(block, (int)j->prompt.size() + j->options.soft_thoughts + j->options.max_new_tokens);
    const size_t need = kv_bytes_for(j->options, std::max<int>(cap, j->prompt.size()));
    if (cfg_.kv_budget && need > cfg_.kv_budget) {
      if (why)
        *why = str("this request needs ", need, " bytes of KV cache (", j->options.steps, " iterations, cache '",
                   j->options.cache, "', ", cap, " positions); the server's --kv-budget is ", cfg_.kv_budget);
      std::lock_guard<std::mutex> lock(mu_);
      stats_.rejected += jobs.size();
      return Admit::TooLarge;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!accepting_) {
      stats_.rejected += jobs.size();
      return Admit::ShuttingDown;
    }
    if (queue_.size() + jobs.size() > (size_t)cfg_.max_queue) {
      stats_.rejected += jobs.size();
      return Admit::QueueFull;
    }
    const auto now = Clock::now();
    for (auto& j : jobs) {
      j->t_submit = now;
      j->pass_submitted = passes_->load();
      {
        std::lock_guard<std::mutex> wlock(j->why_mu_);
        j->passes_ = passes_;
      }
      queue_.push_back(j);
    }
    stats_.submitted += jobs.size();
    stats_.queued = (int)queue_.size();
  }
  cv_.notify_all();
  return Admit::Ok;
}

void Scheduler::shutdown(double grace_s) {
  std::vector<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    accepting_ = false;
    stats_.accepting = false;
    dropped.swap(queue_);
    stats_.queued = 0;
    stats_.failed += dropped.size();
    cancel_running_at_ = Clock::now() + std::chrono::microseconds((long long)(grace_s * 1e6));
  }
  for (auto& j : dropped) {
    std::lock_guard<std::mutex> lock(j->sig->mu);
    j->state = Job::State::Failed;
    j->error_status = 503;
    j->error = "the server is shutting down";
    j->t_end = Clock::now();
    j->pass_freed = passes_->load();
    j->sig->cv.notify_all();
  }
  cv_.notify_all();
  // Wait until the generation thread has nothing left.
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stats_.running == 0 && queue_.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SchedulerStats s = stats_;
  const auto now = Clock::now();
  // tokens/s over the samples of the last 10 s (0 when idle for that long)
  if (!rate_.empty()) {
    auto first = rate_.front();
    const double span = seconds(now - first.first);
    if (span > 0) s.tokens_per_second = (double)(stats_.generated_tokens - first.second) / span;
  }
  return s;
}

void Scheduler::finish(Running& r, Job::State st, int status, const std::string& why, uint64_t SchedulerStats::*count) {
  Job& j = *r.job;
  {
    std::lock_guard<std::mutex> lock(mu_);  // counted before anyone sees the job end
    ++(stats_.*count);
    stats_.running = std::max(0, stats_.running - 1);
  }
  {
    std::lock_guard<std::mutex> lock(j.sig->mu);
    j.state = st;
    j.error_status = status;
    j.error = why;
    if (st == Job::State::Done) j.result = std::move(r.seq->res);
    j.t_end = Clock::now();
    j.pass_freed = passes_->load();
  }
  j.sig->cv.notify_all();
  r.seq.reset();  // the KV cache and buffers go now
}

void Scheduler::loop() {
  set_threads(threads());  // OpenMP's thread count is per thread: -t for the generation thread too
  const int parallel = cfg_.parallel, chunk = cfg_.prefill_chunk;
  const int block = m_.config().block_size;
  const int V = m_.config().vocab_size;
  // A pass beside decoding sequences takes at most `chunk` prompt rows (their
  // tokens wait for it); with none decoding (a burst of new requests) there is
  // no one to delay and up to `burst_rows` (four chunks) go in one pass.
  const int burst_rows = std::min(parallel, 4) * std::min(chunk, block);
  infer::BatchRunner runner(m_, std::max(parallel - 1 + std::min(chunk, block), burst_rows), parallel, block, parallel);
  std::vector<Running> running;
  running.reserve(parallel);
  std::vector<infer::Lane> lanes(parallel);
  std::vector<float> lp(V);
  std::vector<int> idx(V);
  size_t kv_reserved = 0;
  bool idle_trimmed = true;

  auto fail_job = [&](const std::shared_ptr<Job>& j, int status, const std::string& why) {
    {
      std::lock_guard<std::mutex> lock(j->sig->mu);
      j->state = Job::State::Failed;
      j->error_status = status;
      j->error = why;
      j->t_end = Clock::now();
      j->pass_freed = passes_->load();
    }
    j->sig->cv.notify_all();
  };

  while (true) {
    // ---- admit, between passes
    std::vector<std::shared_ptr<Job>> admitted, expired;
    bool cancel_all = false, stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Also wakes once after the last sequence of a burst has left, to trim below.
      cv_.wait(lock, [&] { return stop_ || !running.empty() || !queue_.empty() || !idle_trimmed; });
      stopping = stop_;
      if (stop_) {
        for (auto& j : queue_) expired.push_back(j);
        queue_.clear();
      }
      {  // clients gone, queued or running: cancelled now, so they leave before the next pass
        std::vector<Job*> polled;
        for (auto& j : queue_) polled.push_back(j.get());
        for (auto& r : running) polled.push_back(r.job.get());
        cancel_disconnected(polled);
      }
      const auto now = Clock::now();
      // cancelled or timed-out jobs still in the queue
      for (size_t i = 0; i < queue_.size();) {
        auto& j = queue_[i];
        const bool late = cfg_.timeout_s > 0 && seconds(now - j->t_submit) > cfg_.timeout_s;
        if (j->cancelled || late) {
          expired.push_back(j);
          queue_.erase(queue_.begin() + i);
        } else {
          ++i;
        }
      }
      size_t reserved = kv_reserved;
      while (!queue_.empty() && (int)(running.size() + admitted.size()) < parallel) {
        auto& j = queue_.front();
        const int cap =
            std::min<int>(block, (int)j->prompt.size() + j->options.soft_thoughts + j->options.max_new_tokens);
        const size_t need = kv_bytes_for(j->options, std::max<int>(cap, j->prompt.size()));
        if (cfg_.kv_budget && reserved + need > cfg_.kv_budget) break;  // FIFO: wait for memory
        reserved += need;
        admitted.push_back(j);
        queue_.erase(queue_.begin());
      }
      stats_.queued = (int)queue_.size();
      stats_.running = (int)(running.size() + admitted.size());  // before the jobs are seen running
      stats_.kv_reserved = reserved;
      cancel_all = stop_ || now >= cancel_running_at_;
    }
    for (auto& j : expired) {
      const bool late = !j->cancelled && !stopping;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping)
          ++stats_.failed;
        else if (late)
          ++stats_.timed_out;
        else
          ++stats_.cancelled;
      }
      if (stopping)
        fail_job(j, 503, "the server is shutting down");
      else if (late)
        fail_job(j, 504, str("timed out in the queue after ", cfg_.timeout_s, " s"));
      else
        fail_job(j, 499, "cancelled: " + j->cancel_reason());
    }
    for (auto& j : admitted) {
      Running r;
      r.job = j;
      const int cap =
          std::min<int>(block, (int)j->prompt.size() + j->options.soft_thoughts + j->options.max_new_tokens);
      r.kv_reserved = kv_bytes_for(j->options, std::max<int>(cap, j->prompt.size()));
      try {
        r.seq = std::make_unique<infer::Sequence>(m_, j->prompt, j->options, 0, -1, chunk);
      } catch (const std::exception& e) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++stats_.failed;
        }
        fail_job(j, 400, e.what());
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(j->sig->mu);
        j->state = Job::State::Running;
        j->t_start = Clock::now();
      }
      j->sig->cv.notify_all();
      kv_reserved += r.kv_reserved;
      running.push_back(std::move(r));
      idle_trimmed = false;
    }

    // ---- drop cancelled, timed-out and (past the grace period) all running sequences
    const auto now = Clock::now();
    for (auto& r : running) {
      Job& j = *r.job;
      const bool late = cfg_.timeout_s > 0 && seconds(now - j.t_submit) > cfg_.timeout_s;
      if (j.cancelled) {
        finish(r, Job::State::Failed, 499, "cancelled: " + j.cancel_reason(), &SchedulerStats::cancelled);
      } else if (late) {
        finish(r, Job::State::Failed, 504, str("timed out after ", cfg_.timeout_s, " s"), &SchedulerStats::timed_out);
      } else if (cancel_all) {
        finish(r, Job::State::Failed, 503, "the server is shutting down (grace period over)", &SchedulerStats::failed);
      } else if (r.seq->done) {  // max_tokens 0
        finish(r, Job::State::Done, 200, "", &SchedulerStats::completed);
      }
    }
    auto drop_finished = [&] {
      for (size_t i = 0; i < running.size();) {
        if (!running[i].seq) {
          kv_reserved -= running[i].kv_reserved;
          running.erase(running.begin() + i);
        } else {
          ++i;
        }
      }
    };
    drop_finished();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.running = (int)running.size();
      stats_.kv_reserved = kv_reserved;
    }
    if (running.empty() && stopping) return;
    if (running.empty()) {
      const bool trim = !idle_trimmed;
      if (trim) {  // give the burst's memory back
        malloc_trim(0);
        idle_trimmed = true;
      }
      std::lock_guard<std::mutex> lock(mu_);
      stats_.idle_trims += trim;
      stats_.kv_allocated = 0;
      stats_.prefilling = 0;
      continue;
    }

    // ---- one batched pass: every decoding sequence, plus the next prompt
    // chunks, oldest first, up to `chunk` prompt rows in all (at least one),
    // or `burst_rows` when no sequence is decoding
    int n = 0, prefilling = 0, prompt_rows = 0;
    const bool decoding =
        std::any_of(running.begin(), running.end(), [](const Running& r) { return r.seq->prompt_left() == 0; });
    const int budget = decoding ? chunk : burst_rows;
    for (auto& r : running) {
      r.lane = -1;
      if (const int left = r.seq->prompt_left(); left > 0) {
        ++prefilling;
        const int rows = std::min(left, chunk);
        if (prompt_rows > 0 && prompt_rows + rows > budget) continue;
        prompt_rows += rows;
      }
      r.seq->prepare(lanes[n]);
      r.lane = n++;
    }
    const auto t0 = Clock::now();
    std::string pass_error;
    try {
      runner.run(lanes.data(), n);
    } catch (const std::exception& e) {
      pass_error = e.what();
    }
    const auto t1 = Clock::now();
    passes_->fetch_add(1);  // before the jobs this pass ends are freed: they left at this count
    uint64_t new_tokens = 0, iters = 0, prompt_tokens = 0, token_iters = 0;
    size_t kv_alloc = 0;
    for (auto& r : running) {
      if (r.lane < 0) {
        kv_alloc += r.seq->dec.cache().bytes_allocated();
        continue;
      }
      Job& j = *r.job;
      if (!pass_error.empty()) {
        finish(r, Job::State::Failed, 500, "generation failed: " + pass_error, &SchedulerStats::failed);
        continue;
      }
      infer::Sequence& s = *r.seq;
      const size_t before = s.res.tokens.size();
      const bool was_prompt = s.prompt_left() > 0;
      const int T = lanes[r.lane].in.T;
      s.consume(lanes[r.lane].result, {});
      iters += lanes[r.lane].result.steps;
      if (was_prompt) prompt_tokens += T;
      if (s.res.tokens.size() > before) {
        ++new_tokens;
        JobToken t;
        t.token = s.res.tokens.back();
        t.steps = s.res.steps.back();
        token_iters += t.steps;
        if (j.logprobs >= 0) {
          const float* logits = s.dec.logits(0);
          kern::log_softmax(logits, lp.data(), V);
          t.logprob = lp[t.token];
          const int k = std::min(j.logprobs, V);
          for (int i = 0; i < V; ++i) idx[i] = i;
          std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                            [&](int a, int b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
          for (int i = 0; i < k; ++i) t.top.emplace_back(idx[i], lp[idx[i]]);
        }
        bool slow = false;
        {
          std::lock_guard<std::mutex> lock(j.sig->mu);
          if (j.tokens.empty()) {
            j.t_first = t1;
            const double ttft = seconds(t1 - j.t_submit);
            std::lock_guard<std::mutex> slock(mu_);
            const auto& b = SchedulerStats::ttft_bounds();
            for (size_t i = 0; i < b.size(); ++i)
              if (ttft <= b[i]) ++stats_.ttft_buckets[i];
            ++stats_.ttft_count;
            stats_.ttft_sum += ttft;
          }
          j.tokens.push_back(std::move(t));
          slow = j.streaming && j.tokens.size() - j.taken > cfg_.max_unread;
        }
        j.sig->cv.notify_all();
        if (slow && !s.done) {
          finish(r, Job::State::Failed, 499,
                 str("slow reader: ", cfg_.max_unread, " tokens generated and not yet taken by the client"),
                 &SchedulerStats::cancelled);
          continue;
        }
      }
      if (s.done) {
        finish(r, Job::State::Done, 200, "", &SchedulerStats::completed);
        continue;
      }
      kv_alloc += s.dec.cache().bytes_allocated();
    }
    drop_finished();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.passes += 1;
      stats_.generated_tokens += new_tokens;
      stats_.prompt_tokens += prompt_tokens;
      stats_.core_iterations += iters;
      stats_.token_iterations += token_iters;
      stats_.busy_seconds += seconds(t1 - t0);
      if (prompt_rows > 0) {
        stats_.prompt_passes += 1;
        stats_.prompt_pass_seconds += seconds(t1 - t0);
      }
      stats_.running = (int)running.size();
      stats_.prefilling = prefilling;
      stats_.kv_reserved = kv_reserved;
      stats_.kv_allocated = kv_alloc;
      rate_.emplace_back(t1, stats_.generated_tokens);
      while (rate_.size() > 1 && seconds(t1 - rate_.front().first) > 10) rate_.pop_front();
    }
  }
}

}  // namespace huginn::serve
