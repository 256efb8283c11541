// huginn serve: an OpenAI-style HTTP server for one model (cpp-httplib) with
// continuous batching. The request/response logic and the scheduler live in
// the library (huginn/server_api.h, huginn/scheduler.h); here are the
// sockets, the routes, the per-request waits (each in its own HTTP worker
// thread: the generation thread never waits on a client), metrics, request
// logs and a graceful stop on SIGINT/SIGTERM.
#include <dirent.h>
#include <httplib.h>
#include <malloc.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/model.h"
#include "huginn/scheduler.h"
#include "huginn/server_api.h"
#include "huginn/threads.h"

namespace huginn::cli {
namespace {
using json = nlohmann::json;
using serve::Api;
using serve::ApiError;
using serve::ApiRequest;
using serve::error_json;
using serve::Job;
using serve::JobToken;
using serve::Scheduler;
using Clock = std::chrono::steady_clock;

struct ServeOptions {
  std::string model, host = "127.0.0.1", exit = "none", cache = "full", kv_budget = "0";
  int port = 8080;
  int steps = -1;  // default: the model's mean_recurrence
  int max_steps = 1024;
  long long max_body = 1 << 20;
  int parallel = 4, max_queue = 64, prefill_chunk = 64, http_threads = 0, arenas = 2;
  double timeout = 0, read_timeout = 10, grace = 10;
  long long max_unread = 4096;
};

// httplib 0.11 listens with a backlog of 5: a burst of connections overflows
// it (clients then see resets). The socket is reachable from a subclass.
class HttpServer : public httplib::Server {
 public:
  void deepen_backlog(int n) {
    const socket_t fd = svr_sock_;
    if (fd != INVALID_SOCKET) ::listen(fd, n);
  }
};

int sig_pipe[2] = {-1, -1};
extern "C" void on_stop_signal(int) {
  const char c = 1;
  const ssize_t n = ::write(sig_pipe[1], &c, 1);
  (void)n;
}

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(serve::dump(j), "application/json");
}

// "512M", "2G", "1048576": bytes.
size_t parse_bytes(const std::string& s) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (...) {
    fail("--kv-budget: '", s, "' is not a size (e.g. 512M, 2G, 0 = no limit)");
  }
  std::string unit = s.substr(pos);
  double mul = 1;
  if (unit == "K" || unit == "k" || unit == "KiB")
    mul = 1024;
  else if (unit == "M" || unit == "MiB")
    mul = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB")
    mul = 1024.0 * 1024 * 1024;
  else if (!unit.empty() && unit != "B")
    fail("--kv-budget: unknown unit '", unit, "' (K, M, G)");
  if (!(v >= 0)) fail("--kv-budget must be >= 0, got ", s);
  return (size_t)(v * mul);
}

// The socket of the connection a request came on: the fd whose local and
// peer ports are the request's (httplib 0.11 gives handlers no socket).
int find_socket(const httplib::Request& req) {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  int found = -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const int fd = std::atoi(e->d_name);
    sockaddr_storage a{}, b{};
    socklen_t la = sizeof a, lb = sizeof b;
    if (::getsockname(fd, (sockaddr*)&a, &la) != 0 || ::getpeername(fd, (sockaddr*)&b, &lb) != 0) continue;
    auto port = [](const sockaddr_storage& x) {
      if (x.ss_family == AF_INET) return (int)ntohs(((const sockaddr_in&)x).sin_port);
      if (x.ss_family == AF_INET6) return (int)ntohs(((const sockaddr_in6&)x).sin6_port);
      return -1;
    };
    if (port(a) == req.local_port && port(b) == req.remote_port) {
      found = fd;
      break;
    }
  }
  ::closedir(d);
  return found;
}

// The client closed its end (or the connection broke).
bool peer_closed(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

double ms(Clock::time_point a, Clock::time_point b) {
  if (a == Clock::time_point{} || b == Clock::time_point{}) return -1;
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::mutex log_mu;
void log_line(const json& j) {
  const std::string s = serve::dump(j);
  std::lock_guard<std::mutex> lock(log_mu);
  std::fprintf(stderr, "%s\n", s.c_str());
}

// One line per request: what it asked, what it got, and its timings.
void log_request(const httplib::Request& req, int status, Clock::time_point t0, const ApiRequest* r,
                 const std::vector<std::shared_ptr<Job>>& jobs, const std::string& reason) {
  json j = {{"event", "request"},
            {"method", req.method},
            {"path", req.path},
            {"status", status},
            {"remote", req.remote_addr + ":" + std::to_string(req.remote_port)}};
  if (r) {
    j["prompt_tokens"] = r->prompt.size();
    j["n"] = r->n;
    j["stream"] = r->stream;
    j["steps"] = r->options.steps;
    j["exit"] = r->options.exit_str();
  }
  if (!jobs.empty()) {
    std::lock_guard<std::mutex> lock(jobs[0]->sig->mu);
    size_t toks = 0;
    for (auto& jb : jobs) toks += jb->tokens.size();
    j["completion_tokens"] = toks;
    const Job& a = *jobs[0];
    j["queue_ms"] = ms(a.t_submit, a.t_start);
    j["ttft_ms"] = ms(a.t_submit, a.t_first);
    j["generate_ms"] = ms(a.t_start, a.t_end);
    double it = 0;
    for (auto& t : a.tokens) it += t.steps;
    if (!a.tokens.empty()) j["mean_steps"] = it / a.tokens.size();
    if (a.state == Job::State::Done) j["stop_reason"] = a.result.stop_reason;
    // Scheduler passes (huginn_passes_total) at submission, cancellation and when the slot was freed:
    // a disconnect costs the batch at most one pass (pass_freed - pass_cancelled <= 1).
    j["pass_submitted"] = a.pass_submitted;
    if (a.cancelled) j["pass_cancelled"] = a.cancel_pass();
    if (a.state == Job::State::Done || a.state == Job::State::Failed) j["pass_freed"] = a.pass_freed;
  }
  j["total_ms"] = ms(t0, Clock::now());
  if (!reason.empty()) j["reason"] = reason;
  log_line(j);
}

std::string metrics_text(const serve::SchedulerStats& s, const std::string& model) {
  std::ostringstream o;
  o.precision(9);
  const std::string lbl = "{model=\"" + model + "\"}";
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n"
      << name << lbl << " " << v << "\n";
  };
  o << "# HELP huginn_requests_total Sequences by outcome (one per choice).\n# TYPE huginn_requests_total counter\n";
  for (auto [k, v] : std::vector<std::pair<const char*, uint64_t>>{{"completed", s.completed},
                                                                   {"failed", s.failed},
                                                                   {"cancelled", s.cancelled},
                                                                   {"timed_out", s.timed_out},
                                                                   {"rejected", s.rejected}})
    o << "huginn_requests_total{model=\"" << model << "\",outcome=\"" << k << "\"} " << v << "\n";
  metric("huginn_requests_submitted_total", "counter", "Sequences accepted into the queue.", (double)s.submitted);
  metric("huginn_queue_length", "gauge", "Sequences waiting for a slot.", s.queued);
  metric("huginn_queue_capacity", "gauge", "The --max-queue bound.", s.max_queue);
  metric("huginn_running_sequences", "gauge", "Sequences in the running batch.", s.running);
  metric("huginn_prefilling_sequences", "gauge", "Running sequences still feeding their prompt.", s.prefilling);
  metric("huginn_slots", "gauge", "Sequences decoded together at most (--parallel).", s.parallel);
  metric("huginn_prompt_tokens_total", "counter", "Prompt positions fed.", (double)s.prompt_tokens);
  metric("huginn_generated_tokens_total", "counter", "Tokens generated.", (double)s.generated_tokens);
  metric("huginn_core_iterations_total", "counter", "Recurrent-core iterations over all passes.",
         (double)s.core_iterations);
  metric("huginn_passes_total", "counter", "Batched passes (decode steps) run.", (double)s.passes);
  metric("huginn_busy_seconds_total", "counter", "Time spent in batched passes.", s.busy_seconds);
  metric("huginn_prompt_passes_total", "counter",
         "Batched passes that fed prompt positions (beside any decoding sequences); the other passes only decoded.",
         (double)s.prompt_passes);
  metric("huginn_prompt_pass_seconds_total", "counter", "Time spent in batched passes that fed prompt positions.",
         s.prompt_pass_seconds);
  metric("huginn_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s.", s.tokens_per_second);
  metric("huginn_iterations_per_token_mean", "gauge", "Mean recurrent iterations of the passes that produced tokens.",
         s.generated_tokens ? (double)s.token_iterations / (double)s.generated_tokens : 0.0);
  metric("huginn_kv_bytes_in_use", "gauge", "KV cache bytes allocated by running sequences.", (double)s.kv_allocated);
  metric("huginn_kv_bytes_reserved", "gauge", "KV cache bytes reserved for running sequences (their worst case).",
         (double)s.kv_reserved);
  metric("huginn_kv_budget_bytes", "gauge", "The --kv-budget (0: no limit).", (double)s.kv_budget);
  o << "# HELP huginn_time_to_first_token_seconds Time from submission to the first token.\n"
    << "# TYPE huginn_time_to_first_token_seconds histogram\n";
  const auto& b = serve::SchedulerStats::ttft_bounds();
  for (size_t i = 0; i < b.size(); ++i)
    o << "huginn_time_to_first_token_seconds_bucket{model=\"" << model << "\",le=\"" << b[i] << "\"} "
      << s.ttft_buckets[i] << "\n";
  o << "huginn_time_to_first_token_seconds_bucket{model=\"" << model << "\",le=\"+Inf\"} " << s.ttft_count << "\n";
  o << "huginn_time_to_first_token_seconds_sum" << lbl << " " << s.ttft_sum << "\n";
  o << "huginn_time_to_first_token_seconds_count" << lbl << " " << s.ttft_count << "\n";
  return o.str();
}

int run(const ServeOptions& o) {
  if (o.port < 0 || o.port > 65535) fail("--port must be in [0, 65535] (0: any free port), got ", o.port);
  if (o.max_body < 1) fail("--max-body must be >= 1 byte, got ", o.max_body);
  if (o.steps == 0 || o.steps < -1) fail("--steps must be >= 1, got ", o.steps);
  if (o.max_steps < 1) fail("--max-steps must be >= 1, got ", o.max_steps);
  if (o.host.empty()) fail("--host is empty");
  if (o.parallel < 1 || o.parallel > 1024) fail("--parallel must be in [1, 1024], got ", o.parallel);
  if (o.max_queue < 0) fail("--max-queue must be >= 0, got ", o.max_queue);
  if (o.prefill_chunk < 1) fail("--prefill-chunk must be >= 1, got ", o.prefill_chunk);
  if (!(o.timeout >= 0)) fail("--timeout must be >= 0 seconds, got ", o.timeout);
  if (!(o.read_timeout > 0)) fail("--read-timeout must be > 0 seconds, got ", o.read_timeout);
  if (!(o.grace >= 0)) fail("--grace must be >= 0 seconds, got ", o.grace);
  if (o.max_unread < 1) fail("--max-unread must be >= 1 token, got ", o.max_unread);
  if (o.http_threads < 0) fail("--http-threads must be >= 0, got ", o.http_threads);
  if (o.arenas < 0) fail("--malloc-arenas must be >= 0, got ", o.arenas);
  // Bounded allocator arenas: memory freed after a burst is reused, not spread over one arena per thread.
  if (o.arenas > 0) mallopt(M_ARENA_MAX, o.arenas);

  const LoadedModel lm = load_model(o.model);  // weights, tokenizer, stop ids: read once for every request
  serve::ServerConfig cfg;
  cfg.steps = o.steps;
  cfg.exit = o.exit;
  cfg.cache = o.cache;
  cfg.max_steps = o.max_steps;
  const Api api(lm, cfg);
  serve::SchedulerConfig sc;
  sc.parallel = o.parallel;
  sc.max_queue = o.max_queue;
  sc.kv_budget = parse_bytes(o.kv_budget);
  sc.prefill_chunk = o.prefill_chunk;
  sc.max_unread = (size_t)o.max_unread;
  sc.timeout_s = o.timeout;
  Scheduler sched(lm.model(), sc);
  std::atomic<bool> stopping{false};

  HttpServer svr;
  const int http_threads = o.http_threads > 0 ? o.http_threads : std::min(1024, o.parallel + o.max_queue + 64);
  svr.new_task_queue = [http_threads] { return new httplib::ThreadPool((size_t)http_threads); };
  svr.set_payload_max_length((size_t)o.max_body);
  svr.set_keep_alive_timeout(1);
  const time_t rt_s = (time_t)o.read_timeout;
  const time_t rt_us = (time_t)((o.read_timeout - (double)rt_s) * 1e6);
  svr.set_read_timeout(rt_s, rt_us);
  svr.set_write_timeout(rt_s, rt_us);

  svr.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    const serve::SchedulerStats s = sched.stats();
    const bool ok = s.accepting && !stopping;
    json j = {{"status", ok ? "ok" : "shutting_down"},
              {"ready", ok},
              {"slots", {{"total", s.parallel}, {"busy", s.running}, {"free", s.parallel - s.running}}},
              {"queue", {{"length", s.queued}, {"max", s.max_queue}}},
              {"prefilling", s.prefilling}};
    send_json(res, ok ? 200 : 503, j);
  });
  svr.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(sched.stats(), api.name()), "text/plain; version=0.0.4; charset=utf-8");
  });
  svr.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) { send_json(res, 200, api.models()); });
  // Before any body is read: framing that would let a client or proxy see a
  // different request than this server does (RFC 9112 6.3) is refused with a
  // 400 and "Connection: close" (the body is never taken for a request).
  svr.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    std::string why;
    const size_t lengths = req.get_header_value_count("Content-Length");
    if (lengths > 1) {
      why = "more than one Content-Length header";
    } else if (lengths == 1) {
      const std::string v = req.get_header_value("Content-Length");
      if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos)
        why = "Content-Length '" + printable(v, 24) + "' is not a whole number of bytes";
      else if (req.has_header("Transfer-Encoding"))
        why = "both Content-Length and Transfer-Encoding";
    }
    if (why.empty()) return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("Connection", "close");
    send_json(res, 400, error_json("bad request: " + why));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Every POST route reads its body through a ContentReader, whatever its
  // Content-Type: httplib's own reading parses an
  // application/x-www-form-urlencoded body (what `curl -d` sends) into
  // parameters and refuses one above 8 KB with a 413, a limit built into the
  // library; read this way only --max-body applies.
  using BodyHandler = std::function<void(const httplib::Request&, const std::string&, httplib::Response&)>;
  auto with_body = [](BodyHandler h) {
    return
        [h = std::move(h)](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
          if (req.is_multipart_form_data()) {
            send_json(res, 415, error_json("multipart/form-data bodies are not accepted; send the request as JSON"));
            return;
          }
          std::string body;
          if (!reader([&](const char* data, size_t n) {
                body.append(data, n);
                return true;
              })) {
            if (res.status < 400) res.status = 400;  // httplib sets 413 (over --max-body) or 400 itself
            return;
          }
          h(req, body, res);
        };
  };
  auto simple_post = [&](json (Api::*fn)(std::string_view) const) {
    return with_body([&, fn](const httplib::Request&, const std::string& body, httplib::Response& res) {
      try {
        send_json(res, 200, (api.*fn)(body));
      } catch (const ApiError& e) {
        send_json(res, e.status, error_json(e.what()));
      }
    });
  };
  svr.Post("/tokenize", simple_post(&Api::tokenize));
  svr.Post("/detokenize", simple_post(&Api::detokenize));

  auto completion = [&](bool chat) {
    return with_body([&, chat](const httplib::Request& req, const std::string& body, httplib::Response& res) {
      const auto t0 = Clock::now();
      auto r = std::make_shared<ApiRequest>();
      try {
        *r = api.parse(body, chat);
      } catch (const ApiError& e) {
        send_json(res, e.status, error_json(e.what()));
        log_request(req, e.status, t0, nullptr, {}, e.what());
        return;
      }
      auto sig = std::make_shared<serve::JobSignal>();
      // The scheduler polls the socket between passes: a client that goes away leaves the batch at the next pass.
      // Every path below waits for the jobs to end (or cancels them) before returning, so the fd stays this
      // connection's while they run.
      const int fd = find_socket(req);
      std::vector<std::shared_ptr<Job>> jobs;
      for (int i = 0; i < r->n; ++i) {
        auto j = std::make_shared<Job>();
        j->prompt = r->prompt;
        j->options = r->choice_options(i);
        j->logprobs = r->logprobs;
        j->streaming = r->stream;
        j->client_fd = fd;
        j->sig = sig;
        jobs.push_back(j);
      }
      std::string why;
      switch (sched.submit(jobs, &why)) {
        case Scheduler::Admit::Ok:
          break;
        case Scheduler::Admit::QueueFull:
          res.set_header("Retry-After", "1");
          send_json(res, 503,
                    error_json(str("the server is busy: its queue of ", o.max_queue, " is full; retry later"),
                               "server_busy"));
          log_request(req, 503, t0, r.get(), {}, "queue full");
          return;
        case Scheduler::Admit::ShuttingDown:
          send_json(res, 503, error_json("the server is shutting down", "server_busy"));
          log_request(req, 503, t0, r.get(), {}, "shutting down");
          return;
        case Scheduler::Admit::TooLarge:
          send_json(res, 400, error_json(why));
          log_request(req, 400, t0, r.get(), {}, why);
          return;
      }
      auto cancel_all = [jobs](const std::string& w) {
        for (auto& j : jobs) j->cancel(w);
      };
      // Waits (in this request's own worker thread) until pred holds; false if the client went away.
      auto wait_for = [sig, fd](const std::function<bool()>& pred) {
        while (true) {
          {
            std::unique_lock<std::mutex> lock(sig->mu);
            if (sig->cv.wait_for(lock, std::chrono::milliseconds(10), pred)) return true;
          }
          if (peer_closed(fd)) return false;
        }
      };
      // After a cancel: the scheduler ends the jobs before its next pass; the log line then has their pass_freed.
      auto wait_ended = [sig, jobs] {
        std::unique_lock<std::mutex> lock(sig->mu);
        sig->cv.wait_for(lock, std::chrono::seconds(30), [&] {
          for (auto& j : jobs)
            if (j->state != Job::State::Done && j->state != Job::State::Failed) return false;
          return true;
        });
      };
      auto failed = [jobs]() -> const Job* {
        for (auto& j : jobs)
          if (j->state == Job::State::Failed) return j.get();
        return nullptr;
      };
      auto send_failure = [&](const Job& f) {
        const int st = f.error_status == 499 ? 500 : f.error_status;
        if (st == 503) res.set_header("Retry-After", "1");
        send_json(res, st, error_json(f.error, st >= 500 ? "server_error" : "invalid_request_error"));
      };
      if (!r->stream) {
        const bool here = wait_for([&] {
          if (failed()) return true;
          for (auto& j : jobs)
            if (j->state != Job::State::Done) return false;
          return true;
        });
        if (!here) {
          cancel_all("client disconnected");
          wait_ended();
          log_request(req, 499, t0, r.get(), jobs, "client disconnected");
          return;
        }
        std::vector<SequenceResult> results;
        std::vector<std::vector<JobToken>> toks;
        std::string err;
        {
          std::lock_guard<std::mutex> lock(sig->mu);
          if (const Job* f = failed()) {
            send_failure(*f);
            if (f->error_status == 499) res.status = 499;  // cancelled: the client is gone (logged as such)
            err = f->error;
          } else {
            for (auto& j : jobs) {
              results.push_back(j->result);
              toks.push_back(j->tokens);
            }
          }
        }
        if (!err.empty()) {
          cancel_all("another choice failed");
          log_request(req, res.status, t0, r.get(), jobs, err);
          return;
        }
        serve::Reply reply(api, *r);
        send_json(res, 200, reply.whole(results, toks));
        log_request(req, 200, t0, r.get(), jobs, "");
        return;
      }
      // Streaming: wait until every choice has a slot (a queued request can still get a proper 503).
      const bool here = wait_for([&] {
        if (failed()) return true;
        for (auto& j : jobs)
          if (j->state == Job::State::Queued) return false;
        return true;
      });
      if (!here) {
        cancel_all("client disconnected");
        wait_ended();
        log_request(req, 499, t0, r.get(), jobs, "client disconnected while queued");
        return;
      }
      {
        std::unique_lock<std::mutex> lock(sig->mu);
        if (const Job* f = failed()) {
          cancel_all("another choice failed");
          send_failure(*f);
          if (f->error_status == 499) res.status = 499;  // cancelled while queued: the client is gone
          const std::string e = f->error;
          lock.unlock();
          log_request(req, res.status, t0, r.get(), jobs, e);
          return;
        }
      }
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider("text/event-stream", [&api, r, jobs, sig, fd, t0, req_copy = req, cancel_all,
                                                             wait_ended](size_t, httplib::DataSink& sink) {
        serve::Reply reply(api, *r);
        auto emit_raw = [&](const std::string& payload) {
          const std::string s = "data: " + payload + "\n\n";
          return sink.write(s.data(), s.size());
        };
        auto emit = [&](const json& c) { return emit_raw(serve::dump(c)); };
        std::vector<bool> ended(jobs.size(), false);
        std::vector<SequenceResult> results(jobs.size());
        std::string reason;
        int status = 200;
        while (true) {
          std::vector<std::vector<JobToken>> fresh(jobs.size());
          std::vector<int> just_ended;
          const Job* fail_job = nullptr;
          {
            std::unique_lock<std::mutex> lock(sig->mu);
            auto ready = [&] {
              for (size_t i = 0; i < jobs.size(); ++i)
                if (!ended[i] && (jobs[i]->tokens.size() > jobs[i]->taken || jobs[i]->state == Job::State::Done ||
                                  jobs[i]->state == Job::State::Failed))
                  return true;
              return false;
            };
            sig->cv.wait_for(lock, std::chrono::milliseconds(10), ready);
            for (size_t i = 0; i < jobs.size(); ++i) {
              Job& j = *jobs[i];
              if (ended[i]) continue;
              fresh[i].assign(j.tokens.begin() + j.taken, j.tokens.end());
              j.taken = j.tokens.size();
              if (j.state == Job::State::Done) {
                results[i] = j.result;
                just_ended.push_back((int)i);
              } else if (j.state == Job::State::Failed) {
                fail_job = &j;
              }
            }
          }
          bool ok = true;
          for (size_t i = 0; i < jobs.size() && ok; ++i)
            for (auto& t : fresh[i])
              if (!(ok = emit(reply.token_chunk((int)i, t)))) break;
          for (int i : just_ended) {
            if (ok) ok = emit(reply.final_chunk(i, results[i]));
            ended[i] = true;
          }
          if (fail_job) {
            reason = fail_job->error;
            status = fail_job->error_status;
            cancel_all("another choice failed");
            if (ok) emit(error_json(reason, "server_error"));
            break;
          }
          if (!ok) {
            cancel_all("client disconnected (write failed)");
            reason = "client disconnected (write failed)";
            status = 499;
            {  // a slow reader dropped by the scheduler: its reason
              std::lock_guard<std::mutex> lock(sig->mu);
              for (auto& j : jobs)
                if (j->state == Job::State::Failed && j->error.rfind("slow reader", 0) == 0) reason = j->error;
            }
            break;
          }
          if (std::all_of(ended.begin(), ended.end(), [](bool b) { return b; })) {
            if (r->include_usage) emit(reply.usage_chunk(results));
            emit_raw("[DONE]");
            break;
          }
          if (peer_closed(fd)) {
            cancel_all("client disconnected");
            reason = "client disconnected";
            status = 499;
            break;
          }
        }
        sink.done();
        if (status != 200) wait_ended();
        log_request(req_copy, status, t0, r.get(), jobs, reason);
        return true;
      });
    });
  };
  svr.Post("/v1/completions", completion(false));
  svr.Post("/v1/chat/completions", completion(true));

  // Anything else: 405 on a known path, 404 elsewhere.
  const std::map<std::string, std::string> routes = {{"/health", "GET"},
                                                     {"/metrics", "GET"},
                                                     {"/v1/models", "GET"},
                                                     {"/v1/completions", "POST"},
                                                     {"/v1/chat/completions", "POST"},
                                                     {"/tokenize", "POST"},
                                                     {"/detokenize", "POST"}};
  auto fallback = [&](const httplib::Request& req, httplib::Response& res) {
    auto it = routes.find(req.path);
    if (it == routes.end()) {
      send_json(res, 404, error_json("unknown path '" + req.path + "'"));
    } else {
      res.set_header("Allow", it->second);
      send_json(res, 405,
                error_json("method " + req.method + " is not allowed on " + req.path + "; use " + it->second));
    }
  };
  svr.Get(".*", fallback);
  svr.Post(".*", fallback);
  svr.Put(".*", fallback);
  svr.Patch(".*", fallback);
  svr.Delete(".*", fallback);
  svr.Options(".*", fallback);
  // Errors httplib answers itself (body too large, malformed request): the same JSON shape.
  svr.set_error_handler(httplib::Server::HandlerWithResponse([&](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg = "bad request (malformed HTTP, or a body without Content-Length)";
    if (res.status == 413)
      msg = str("the request body exceeds the server's --max-body of ", o.max_body, " bytes");
    else if (res.status == 404)
      msg = "not found";
    else if (res.status == 414)
      msg = "the request URI is too long";
    else if (res.status >= 500)
      msg = "server error";
    send_json(res, res.status, error_json(msg, res.status >= 500 ? "server_error" : "invalid_request_error"));
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg = e.what();
    } catch (...) {
    }
    send_json(res, 500, error_json(msg, "server_error"));
  });

  const int port = o.port == 0 ? svr.bind_to_any_port(o.host) : (svr.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0) fail("cannot listen on ", o.host, ":", o.port, " (port in use, or not an address of this machine)");
  svr.deepen_backlog(1024);

  // SIGINT/SIGTERM: the handler only writes to a pipe; a watcher thread stops the server.
  if (::pipe(sig_pipe) != 0) fail("cannot create a pipe for signal handling");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  std::atomic<bool> listening_done{false};
  std::thread watcher([&] {
    char c = 0;
    while (::read(sig_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    // Stop accepting connections; queued requests get 503, running ones a grace period.
    stopping = true;
    if (!listening_done) log_line(json{{"event", "shutdown"}, {"grace_s", o.grace}});
    svr.stop();
    sched.shutdown(o.grace);
    // stop() before listen_after_bind() has started would be lost: repeat until it returns
    while (!listening_done) {
      svr.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  std::printf("listening on http://%s:%d\n", o.host.c_str(), port);
  std::fflush(stdout);
  std::fprintf(stderr,
               "model %s: %s, steps %d (max %d per request), exit %s, cache %s; parallel %d, queue %d, kv budget %zu "
               "bytes, prefill chunk %d, %d HTTP threads\n",
               api.name().c_str(), o.model.c_str(), api.default_steps(), api.config().max_steps, o.exit.c_str(),
               o.cache.c_str(), o.parallel, o.max_queue, sc.kv_budget, o.prefill_chunk, http_threads);
  std::fflush(stderr);
  const bool ok = svr.listen_after_bind();
  listening_done = true;
  on_stop_signal(0);  // wake the watcher if the server stopped on its own
  watcher.join();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  ::close(sig_pipe[0]);
  ::close(sig_pipe[1]);
  if (!ok) fail("the server on ", o.host, ":", port, " stopped with an error");
  std::fprintf(stderr, "stopped\n");
  return 0;
}

Register reg(
    "serve",
    "OpenAI-style HTTP server for one model with continuous batching (/v1/completions, "
    "/v1/chat/completions)",
    [](CLI::App& app) {
      auto o = std::make_shared<ServeOptions>();
      app.add_option("-m,--model", o->model, "model directory (config.json, weights, tokenizer.json)")->required();
      app.add_option("--host", o->host, "address to listen on (default 127.0.0.1)");
      app.add_option("--port", o->port, "port to listen on; 0: any free port (default 8080)");
      app.add_option("--steps", o->steps,
                     "iterations per token when a request gives none (the maximum with an exit); "
                     "default: the model's mean_recurrence");
      app.add_option("--max-steps", o->max_steps, "the largest steps a request may ask for (default 1024)");
      app.add_option("--exit", o->exit, "exit criterion when a request gives none (e.g. kl:5e-4; default none)");
      app.add_option("--cache", o->cache, "KV cache strategy when a request gives none (default full)");
      app.add_option("--max-body", o->max_body, "largest request body in bytes (default 1 MiB)");
      app.add_option("--parallel", o->parallel, "sequences decoded together in one batch (default 4)");
      app.add_option("--max-queue", o->max_queue,
                     "sequences waiting for a slot; beyond it, 503 with Retry-After (default 64)");
      app.add_option("--kv-budget", o->kv_budget,
                     "KV cache memory all running sequences may take, e.g. 512M, 2G (default 0: no limit); "
                     "a sequence reserves its cache strategy's size for its positions and depth");
      app.add_option("--prefill-chunk", o->prefill_chunk, "prompt positions fed per batched pass (default 64)");
      app.add_option("--timeout", o->timeout, "a request's time limit in seconds, queue included (default 0: none)");
      app.add_option("--read-timeout", o->read_timeout,
                     "seconds a connection may stay silent while sending its request, and a client may "
                     "leave a write pending (default 10)");
      app.add_option("--grace", o->grace, "on SIGTERM, seconds running requests get to finish (default 10)");
      app.add_option("--max-unread", o->max_unread,
                     "tokens a streaming client may leave unread before it is dropped (default 4096)");
      app.add_option("--http-threads", o->http_threads,
                     "HTTP worker threads (default parallel + max-queue + 64, at most 1024)");
      app.add_option("--malloc-arenas", o->arenas, "glibc malloc arenas (M_ARENA_MAX; default 2, 0: glibc's default)");
      return [o] { return run(*o); };
    });

}  // namespace
}  // namespace huginn::cli
