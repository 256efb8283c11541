// Continuous batching (huginn/scheduler.h): requests with different depths,
// exits, caches, sampling and stops, decoded together and joining at
// different times, give exactly what each gives alone (tokens and per-token
// iterations); cancellation, or a closed client socket, frees a slot within
// one pass; the queue and the KV budget bound what is admitted.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include "huginn/chat.h"
#include "huginn/generate.h"
#include "huginn/loaded_model.h"
#include "huginn/model.h"
#include "huginn/scheduler.h"
#include "huginn/tokenizer.h"
#include "infer/decoder.h"
#include "test_util.h"

namespace huginn {
namespace {
using serve::Job;
using serve::Scheduler;
using serve::SchedulerConfig;

const std::string kTasks = std::string(HUGINN_SOURCE_DIR) + "/models/huginn-tasks";

const Model& tasks_model() {
  static auto m = Model::load(kTasks);
  return *m;
}

struct Variant {
  std::string prompt;
  GenerateOptions o;
};

// Requests that differ in every per-sequence setting.
std::vector<Variant> variants(int count) {
  const Tokenizer tok = load_model_tokenizer(kTasks);
  const std::vector<std::string> prompts = {"2132122=", "323122331233133323333122222223333122=", "11=", "3213213="};
  const std::vector<std::string> exits = {
      "none", "kl:5e-4", "kl:1e-6", "entropy-diff", "latent-diff", "cosine", "argmax-stability:3", "minp-kl"};
  const std::vector<std::string> caches = {
      "full", "latest-m4", "latest-m4-compress-s4", "last-loop", "latest-m4-compress-s4-f16", "full-f16"};
  std::vector<Variant> out;
  for (int i = 0; i < count; ++i) {
    Variant v;
    v.prompt = prompts[i % prompts.size()];
    GenerateOptions& o = v.o;
    o.stop_tokens = model_stop_ids(kTasks);
    o.steps = 1 + (i * 7) % 48;
    o.exit = ExitCriterion::parse(exits[i % exits.size()]);
    o.min_steps = (i % 3 == 0) ? std::min(o.steps, 2) : 0;
    o.check_every = 1 + (i % 4 == 1);
    o.cache = caches[(i / 2) % caches.size()];
    o.continuous = i % 5 == 2;
    o.max_new_tokens = 3 + i % 9;
    if (i % 2 == 1) {  // seeded sampling
      o.sampling.temperature = 0.7f + 0.1f * (i % 4);
      o.sampling.top_k = i % 3 == 0 ? 0 : 20;
      o.sampling.seed = 1000 + i;
      o.seed = o.sampling.seed;
    }
    if (i % 7 == 3) {
      o.stop_strings = {"y"};
      o.token_text = [tok](int id) { return tok.id_to_token(id).empty() ? std::string() : tok.decode({id}); };
    }
    out.push_back(v);
  }
  return out;
}

std::vector<int> encode(const std::string& s) {
  static const Tokenizer tok = load_model_tokenizer(kTasks);
  return tok.encode(s, true);
}

void wait_done(const std::vector<std::shared_ptr<Job>>& jobs) {
  for (auto& j : jobs) {
    std::unique_lock<std::mutex> lock(j->sig->mu);
    ASSERT_TRUE(j->sig->cv.wait_for(lock, std::chrono::seconds(60),
                                    [&] { return j->state == Job::State::Done || j->state == Job::State::Failed; }));
  }
}

std::shared_ptr<Job> job_of(const Variant& v) {
  auto j = std::make_shared<Job>();
  j->prompt = encode(v.prompt);
  j->options = v.o;
  return j;
}

TEST(BatchRunner, LanesWithTheirOwnDepthPolicyEqualAlone) {
  const Model& m = tasks_model();
  const std::vector<Variant> vs = variants(12);
  const int n = (int)vs.size();
  // alone: one decoder per variant, one pass each on its prompt
  std::vector<std::vector<float>> logits(n);
  std::vector<infer::PassResult> alone(n);
  for (int i = 0; i < n; ++i) {
    const std::vector<int> p = encode(vs[i].prompt);
    infer::Decoder d(m, 64, CacheStrategy::parse(vs[i].o.cache), (int)p.size(), vs[i].o.exit);
    infer::PassInput in;
    in.ids = p.data();
    in.T = (int)p.size();
    infer::DepthPolicy pol;
    pol.max_steps = vs[i].o.steps;
    pol.exit = vs[i].o.exit;
    pol.min_steps = vs[i].o.min_steps;
    pol.check_every = vs[i].o.check_every;
    alone[i] = d.run(in, pol);
    logits[i].assign(d.logits(0), d.logits(0) + m.config().vocab_size);
  }
  // together: one batched pass, every lane under its own policy
  std::vector<std::unique_ptr<infer::Decoder>> decs;
  std::vector<std::vector<int>> prompts;
  std::vector<infer::Lane> lanes(n);
  int rows = 0;
  for (int i = 0; i < n; ++i) prompts.push_back(encode(vs[i].prompt));
  for (int i = 0; i < n; ++i) {
    decs.push_back(std::make_unique<infer::Decoder>(m, 64, CacheStrategy::parse(vs[i].o.cache), (int)prompts[i].size(),
                                                    vs[i].o.exit));
    lanes[i].dec = decs[i].get();
    lanes[i].in.ids = prompts[i].data();
    lanes[i].in.T = (int)prompts[i].size();
    lanes[i].policy.max_steps = vs[i].o.steps;
    lanes[i].policy.exit = vs[i].o.exit;
    lanes[i].policy.min_steps = vs[i].o.min_steps;
    lanes[i].policy.check_every = vs[i].o.check_every;
    rows += lanes[i].in.T;
  }
  infer::BatchRunner runner(m, rows, n, 64, n);
  runner.run(lanes.data(), n);
  int differ = 0;
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(lanes[i].result.steps, alone[i].steps) << i;
    EXPECT_EQ(lanes[i].result.exited, alone[i].exited) << i;
    EXPECT_EQ(0, std::memcmp(decs[i]->logits(0), logits[i].data(), sizeof(float) * logits[i].size())) << i;
    differ += lanes[i].result.steps != lanes[0].result.steps;
  }
  EXPECT_GT(differ, 3);  // the lanes really left at different depths
}

TEST(Scheduler, ConcurrentRequestsEqualEachAlone) {
  const Model& m = tasks_model();
  const std::vector<Variant> vs = variants(32);
  SchedulerConfig c;
  c.parallel = 8;
  c.max_queue = 64;
  Scheduler s(m, c);
  // Submitted in waves, so requests join a running batch at different points.
  std::vector<std::shared_ptr<Job>> jobs;
  for (size_t i = 0; i < vs.size(); ++i) {
    jobs.push_back(job_of(vs[i]));
    ASSERT_EQ(s.submit({jobs.back()}), Scheduler::Admit::Ok);
    if (i % 5 == 4) std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  wait_done(jobs);
  int sampled = 0, exited = 0;
  for (size_t i = 0; i < vs.size(); ++i) {
    ASSERT_EQ(jobs[i]->state, Job::State::Done) << i << ": " << jobs[i]->error;
    const SequenceResult alone = generate(m, encode(vs[i].prompt), vs[i].o);
    EXPECT_EQ(jobs[i]->result.tokens, alone.tokens) << i;
    EXPECT_EQ(jobs[i]->result.steps, alone.steps) << i;
    EXPECT_EQ(jobs[i]->result.stop_reason, alone.stop_reason) << i;
    EXPECT_EQ(jobs[i]->result.core_iterations, alone.core_iterations) << i;
    ASSERT_EQ(jobs[i]->tokens.size(), alone.tokens.size());
    for (size_t k = 0; k < alone.tokens.size(); ++k) EXPECT_EQ(jobs[i]->tokens[k].steps, alone.steps[k]);
    sampled += vs[i].o.sampling.temperature > 0;
    for (int st : alone.steps) exited += st < vs[i].o.steps;
  }
  EXPECT_GT(sampled, 10);
  EXPECT_GT(exited, 10);  // adaptive exits happened
  const serve::SchedulerStats st = s.stats();
  EXPECT_EQ(st.completed, vs.size());
  EXPECT_EQ(st.running, 0);
  EXPECT_GT(st.generated_tokens, 0u);
}

TEST(Scheduler, ChunkedPrefillGivesWhatItGivesAlone) {
  // Prompts longer than the chunk: fed over several passes beside running
  // decodes; the same request alone (same chunking) gives the same tokens.
  const Model& m = tasks_model();
  std::vector<Variant> vs = variants(16);
  for (auto& v : vs) v.prompt = "323122331233133323333122222223333122=";
  auto run = [&](int parallel, bool one_at_a_time) {
    SchedulerConfig c;
    c.parallel = parallel;
    c.prefill_chunk = 5;
    Scheduler s(m, c);
    std::vector<std::shared_ptr<Job>> jobs;
    for (auto& v : vs) {
      jobs.push_back(job_of(v));
      EXPECT_EQ(s.submit({jobs.back()}), Scheduler::Admit::Ok);
      if (one_at_a_time) wait_done({jobs.back()});
    }
    wait_done(jobs);
    return jobs;
  };
  const auto together = run(6, false), alone = run(1, true);
  for (size_t i = 0; i < vs.size(); ++i) {
    ASSERT_EQ(together[i]->state, Job::State::Done) << together[i]->error;
    EXPECT_EQ(together[i]->result.tokens, alone[i]->result.tokens) << i;
    EXPECT_EQ(together[i]->result.steps, alone[i]->result.steps) << i;
  }
}

// A task-model job that runs for long: 50 tokens of 200 iterations, no stops.
std::shared_ptr<Job> long_job() {
  auto j = std::make_shared<Job>();
  j->prompt = encode("2132122=");
  j->options.steps = 200;
  j->options.max_new_tokens = 50;
  j->options.stop_tokens.clear();
  return j;
}

// Waits (up to 30 s) for the job's first token: it is running.
bool first_token(Job& j) {
  std::unique_lock<std::mutex> lock(j.sig->mu);
  return j.sig->cv.wait_for(lock, std::chrono::seconds(30), [&] { return !j.tokens.empty(); });
}

TEST(Scheduler, PromptRowsPerPassAreBoundedOnlyBesideDecodes) {
  // Four prompts of P tokens, prefill chunk P + 1: beside a decoding sequence
  // a pass takes one of them (its tokens would wait for the rest); with none
  // decoding (a burst) all four go in one pass (up to four chunks).
  const Model& m = tasks_model();
  const std::vector<int> prompt = encode("323122331233133323333122=");
  const int P = (int)prompt.size();
  auto burst = [&](bool beside_a_decode) {
    SchedulerConfig c;
    c.parallel = 5;
    c.prefill_chunk = P + 1;
    Scheduler s(m, c);
    std::shared_ptr<Job> runner;
    if (beside_a_decode) {
      runner = long_job();
      EXPECT_EQ(s.submit({runner}), Scheduler::Admit::Ok);
      EXPECT_TRUE(first_token(*runner));
    }
    std::vector<std::shared_ptr<Job>> jobs;
    for (int i = 0; i < 4; ++i) {
      auto j = std::make_shared<Job>();
      j->prompt = prompt;
      j->options.max_new_tokens = 2;
      jobs.push_back(j);
    }
    EXPECT_EQ(s.submit(jobs), Scheduler::Admit::Ok);  // admitted together, between two passes
    wait_done(jobs);
    if (runner) runner->cancel("done");
    std::set<huginn::serve::Clock::time_point> firsts;  // a job's first token carries the end time of its pass
    for (auto& j : jobs) {
      EXPECT_EQ(j->state, Job::State::Done) << j->error;
      firsts.insert(j->t_first);
    }
    return firsts.size();
  };
  EXPECT_EQ(burst(false), 1u);  // one pass
  EXPECT_EQ(burst(true), 4u);   // one prompt per pass
}

TEST(Scheduler, CountsThePassesThatFedPrompts) {
  // One sequence alone, a prompt of P positions in chunks of 4: ceil(P / 4)
  // passes feed it (the last gives the first token), then one pass per
  // further token only decodes; the prompt passes' time is part of the busy time.
  const Model& m = tasks_model();
  SchedulerConfig c;
  c.prefill_chunk = 4;
  Scheduler s(m, c);
  auto j = std::make_shared<Job>();
  j->prompt = encode("3231223312331=");
  j->options.steps = 4;
  j->options.max_new_tokens = 6;
  j->options.stop_tokens.clear();
  const int P = (int)j->prompt.size();
  ASSERT_EQ(s.submit({j}), Scheduler::Admit::Ok);
  wait_done({j});
  ASSERT_EQ(j->state, Job::State::Done) << j->error;
  ASSERT_EQ(j->result.tokens.size(), 6u);
  // the job is told it is done before its last pass is counted: wait for the count
  serve::SchedulerStats st = s.stats();
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       (st.running != 0 || st.generated_tokens < 6) && std::chrono::steady_clock::now() < until; st = s.stats())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(st.generated_tokens, 6u);
  EXPECT_EQ(st.prompt_passes, (uint64_t)(P + 3) / 4);
  EXPECT_EQ(st.passes, st.prompt_passes + 5);
  EXPECT_EQ(st.prompt_tokens, (uint64_t)P);
  EXPECT_GT(st.prompt_pass_seconds, 0.0);
  EXPECT_LE(st.prompt_pass_seconds, st.busy_seconds);
}

TEST(Scheduler, CancelFreesTheSlotWithinOnePass) {
  const Model& m = tasks_model();
  SchedulerConfig c;
  c.parallel = 2;
  Scheduler s(m, c);
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 2; ++i) {
    auto j = long_job();
    jobs.push_back(j);
    ASSERT_EQ(s.submit({j}), Scheduler::Admit::Ok);
  }
  ASSERT_TRUE(first_token(*jobs[0]));  // the job runs
  const uint64_t at = s.stats().passes;
  jobs[0]->cancel("test");
  {
    std::unique_lock<std::mutex> lock(jobs[0]->sig->mu);
    ASSERT_TRUE(jobs[0]->sig->cv.wait_for(lock, std::chrono::seconds(30),
                                          [&] { return jobs[0]->state == Job::State::Failed; }));
    EXPECT_EQ(jobs[0]->error_status, 499);
    EXPECT_NE(jobs[0]->error.find("test"), std::string::npos);
  }
  EXPECT_LE(s.stats().passes, at + 1);  // it left before the pass after the one running
  EXPECT_EQ(s.stats().running, 1);
  jobs[1]->cancel("done");
  wait_done(jobs);
  EXPECT_EQ(s.stats().cancelled, 2u);
}

// When a burst's last sequence has left, the generation thread gives the
// freed memory back (malloc_trim) once, then sleeps until the next request.
TEST(Scheduler, GivesMemoryBackOnceWhenIdle) {
  const Model& m = tasks_model();
  Scheduler s(m, SchedulerConfig{});
  for (uint64_t burst = 1; burst <= 2; ++burst) {
    std::vector<std::shared_ptr<Job>> jobs = {job_of(variants(2)[0]), job_of(variants(2)[1])};
    ASSERT_EQ(s.submit(jobs), Scheduler::Admit::Ok);
    wait_done(jobs);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (s.stats().idle_trims < burst && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(s.stats().idle_trims, burst);
    const uint64_t passes = s.stats().passes;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(s.stats().idle_trims, burst);  // once per burst, not in a loop
    EXPECT_EQ(s.stats().passes, passes);
  }
}

TEST(Scheduler, ClosedClientSocketFreesTheSlotWithinOnePass) {
  // A job's client_fd is polled before every pass: once its peer closes, a
  // running job leaves its slot, and a queued one the queue, at the next pass,
  // with nobody calling cancel().
  const Model& m = tasks_model();
  SchedulerConfig c;
  c.parallel = 2;
  Scheduler s(m, c);
  std::vector<std::shared_ptr<Job>> jobs;
  std::vector<std::array<int, 2>> socks(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, socks[i].data()), 0);
    auto j = long_job();
    j->client_fd = socks[i][0];
    jobs.push_back(j);
    ASSERT_EQ(s.submit({j}), Scheduler::Admit::Ok);
  }
  ASSERT_TRUE(first_token(*jobs[0]));  // jobs 0 and 1 run, job 2 waits in the queue
  ASSERT_EQ(jobs[2]->state, Job::State::Queued);
  ::close(socks[0][1]);
  ::close(socks[2][1]);
  const uint64_t at = s.stats().passes;  // passes run when the peers closed (or later)
  for (int i : {0, 2}) {
    std::unique_lock<std::mutex> lock(jobs[i]->sig->mu);
    ASSERT_TRUE(jobs[i]->sig->cv.wait_for(lock, std::chrono::seconds(30),
                                          [&] { return jobs[i]->state == Job::State::Failed; }));
    EXPECT_EQ(jobs[i]->error_status, 499) << i;
    EXPECT_EQ(jobs[i]->error, "cancelled: client disconnected") << i;
    EXPECT_LE(jobs[i]->pass_freed, at + 1) << i;  // the pass running at the close, at most
    EXPECT_EQ(jobs[i]->pass_freed, jobs[i]->cancel_pass()) << i;
  }
  EXPECT_TRUE(jobs[2]->tokens.empty());
  EXPECT_FALSE(jobs[1]->cancelled);  // its peer is still there
  jobs[1]->cancel("done");
  wait_done(jobs);
  EXPECT_EQ(s.stats().cancelled, 3u);
  for (auto& p : socks) {
    ::close(p[0]);
    if (&p == &socks[1]) ::close(p[1]);
  }
}

TEST(Scheduler, QueueBoundAndKvBudget) {
  const Model& m = tasks_model();
  SchedulerConfig c;
  c.parallel = 1;
  c.max_queue = 2;
  GenerateOptions o;
  o.steps = 1000;
  o.max_new_tokens = 50;
  o.stop_tokens.clear();
  const std::vector<int> p = encode("2132122=");
  {
    Scheduler probe(m, c);
    c.kv_budget = probe.kv_bytes_for(o, (int)p.size() + 50);  // room for exactly one
  }
  Scheduler s(m, c);
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 3; ++i) {
    auto j = std::make_shared<Job>();
    j->prompt = p;
    j->options = o;
    if (i > 0) j->options.max_new_tokens = 2;
    jobs.push_back(j);
  }
  // the first runs for long (its one slot and the whole budget), so the others wait in the queue
  ASSERT_EQ(s.submit({jobs[0]}), Scheduler::Admit::Ok);
  {
    std::unique_lock<std::mutex> lock(jobs[0]->sig->mu);
    ASSERT_TRUE(jobs[0]->sig->cv.wait_for(lock, std::chrono::seconds(30),
                                          [&] { return jobs[0]->state != Job::State::Queued; }));
  }
  ASSERT_EQ(s.submit({jobs[1], jobs[2]}), Scheduler::Admit::Ok);
  EXPECT_EQ(s.submit({job_of({"1=", o})}), Scheduler::Admit::QueueFull);
  EXPECT_EQ(s.stats().rejected, 1u);
  EXPECT_EQ(s.stats().queued, 2);
  // a request needing more KV memory than the whole budget
  auto big = std::make_shared<Job>();
  big->prompt = p;
  big->options = o;
  big->options.steps = 1024;
  std::string why;
  EXPECT_EQ(s.submit({big}, &why), Scheduler::Admit::TooLarge);
  EXPECT_NE(why.find("--kv-budget"), std::string::npos) << why;
  // an f16 cache needs half the memory: the same request twice as deep fits
  big->options.steps = 2 * o.steps;
  big->options.cache = "full-f16";
  EXPECT_EQ(s.kv_bytes_for(big->options, 100) * 2, s.kv_bytes_for(
                                                       [&] {
                                                         GenerateOptions f = big->options;
                                                         f.cache = "full";
                                                         return f;
                                                       }(),
                                                       100));
  EXPECT_LE(s.kv_bytes_for(big->options, (int)p.size() + 50), c.kv_budget);
  // the budget admits one at a time (stats are updated before a job is seen to end)
  const serve::SchedulerStats st = s.stats();
  std::unique_lock<std::mutex> lock(jobs[0]->sig->mu);
  const bool first_running = jobs[0]->state == Job::State::Running;
  lock.unlock();
  EXPECT_TRUE(first_running);
  EXPECT_EQ(st.running, 1);
  EXPECT_EQ(st.kv_reserved, c.kv_budget);
  jobs[0]->cancel("make room");
  wait_done(jobs);
  EXPECT_EQ(jobs[0]->state, Job::State::Failed);
  for (int i : {1, 2}) EXPECT_EQ(jobs[i]->state, Job::State::Done) << jobs[i]->error;
}

}  // namespace
}  // namespace huginn
