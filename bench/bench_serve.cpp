// Load benchmark for `huginn serve` (loopback only): starts the server as a
// subprocess for each --parallel setting, drives it with N concurrent
// streaming clients (raw sockets, one thread each) and reports aggregate
// tokens/s (all tokens / wall time), aggregate decode tokens/s (see
// decode_tokens_per_s), time to first token p50/p99, inter-token gap p50/p99, errors,
// replies that differ from the same request served alone, the mean pass and
// the mean pass that only decoded, the share of pass time in passes that also
// fed prompts, and the server's RSS before and after. Without -m: the
// standard d=512 config (random weights, written to a temporary directory;
// prompts as token ids).
//
// With --disturb stall|disconnect, each client count runs twice on the same
// server, without and then with one disturbing client (one that stops
// reading after its first token until the server drops it, or one that
// disconnects after its first token, again and again), and prints the normal
// clients' inter-token gap p50/p99 both ways beside the mean pass (decode
// step) time: a disturbance costs the others at most one step when
// p99 with - p99 without <= one step.
//
//   bench_serve --bin build/bin/huginn [-m DIR] --parallel 1,8 --clients 1,8,32,64 --steps 8 [--exit kl:5e-4]
//   bench_serve --bin build/bin/huginn --parallel 8 --clients 8 --steps 8 --disturb stall
//   bench_serve --bin build/bin/huginn --parallel 1,8 --clients 8 --steps 8 --repeat 4   # the ratio's spread
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_model.h"
#include "bench_util.h"
#include "huginn/checkpoint.h"
#include "huginn/config.h"

namespace {
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Server {
  pid_t pid = -1;
  int port = 0;
  std::string log;
  Server(const std::string& bin, const std::vector<std::string>& args, const std::string& log_path) : log(log_path) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], 1);
      const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) ::dup2(fd, 2);
      ::close(out[0]);
      ::close(out[1]);
      std::vector<char*> argv;
      std::string b = bin;
      argv.push_back(b.data());
      std::vector<std::string> a = args;
      for (auto& x : a) argv.push_back(x.data());
      argv.push_back(nullptr);
      ::execv(b.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    while (line.find('\n') == std::string::npos && Clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, (size_t)n);
    }
    ::close(out[0]);
    const size_t c = line.rfind(':');
    if (line.rfind("listening on", 0) == 0 && c != std::string::npos) port = std::atoi(line.c_str() + c + 1);
    if (port <= 0) throw std::runtime_error("the server did not start: " + line);
  }
  long rss_kb() const {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string k;
    long v = -1;
    while (f >> k)
      if (k == "VmRSS:") {
        f >> v;
        break;
      }
    return v;
  }
  ~Server() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st = 0;
      for (int i = 0; i < 200 && ::waitpid(pid, &st, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
    }
  }
};

struct Reply {
  bool ok = false;
  std::string error;
  std::vector<int> tokens, steps;
  double ttft = 0;           // seconds
  std::vector<double> gaps;  // seconds between token events
  Clock::time_point first, last;  // arrival of the first and the last token event
};

// Aggregate decode tokens/s: the tokens after each reply's first, divided by
// the time during which at least one reply was between its first and its
// last token (the union of those intervals). Prompt processing before a
// reply's first token counts only where it delays other replies' decoding:
// served one at a time, this is one stream's decode speed; served together,
// the batch's.
double decode_tokens_per_s(const std::vector<Reply>& replies) {
  std::vector<std::pair<Clock::time_point, Clock::time_point>> iv;
  long tokens = 0;
  for (const Reply& r : replies)
    if (r.ok && r.tokens.size() > 1) {
      iv.emplace_back(r.first, r.last);
      tokens += (long)r.tokens.size() - 1;
    }
  std::sort(iv.begin(), iv.end());
  double busy = 0;
  for (size_t i = 0; i < iv.size();) {
    auto [a, b] = iv[i];
    for (++i; i < iv.size() && iv[i].first <= b; ++i) b = std::max(b, iv[i].second);
    busy += std::chrono::duration<double>(b - a).count();
  }
  return busy > 0 ? tokens / busy : 0.0;
}

// small_window: a client that will stop reading (a small receive buffer and
// small segments, so that the server's send buffer stays small too).
int connect_to(int port, bool small_window = false) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (small_window) {
    int rcv = 4096, mss = 536;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    ::setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, (sockaddr*)&a, sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// One streaming request; token events timed as they arrive.
Reply stream_request(int port, const std::string& body) {
  Reply r;
  const auto t0 = Clock::now();
  const int fd = connect_to(port);
  if (fd < 0) {
    r.error = "connect failed";
    return r;
  }
  const std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Connection: close\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != (ssize_t)req.size()) {
    ::close(fd);
    r.error = "send failed";
    return r;
  }
  std::string buf;
  size_t scan = 0;
  bool head = false, done = false;
  Clock::time_point last;
  char tmp[65536];
  while (!done) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 300000) <= 0) {
      r.error = "timeout";
      break;
    }
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    const auto now = Clock::now();
    buf.append(tmp, (size_t)n);
    if (!head) {
      const size_t e = buf.find("\r\n\r\n");
      if (e == std::string::npos) continue;
      if (buf.compare(0, 12, "HTTP/1.1 200") != 0) {
        r.error = buf.substr(0, buf.find("\r\n"));
        break;
      }
      head = true;
      scan = e + 4;
    }
    while (true) {
      const size_t d = buf.find("data: ", scan);
      if (d == std::string::npos) break;
      const size_t e = buf.find("\n\n", d);
      if (e == std::string::npos) break;
      const std::string payload = buf.substr(d + 6, e - d - 6);
      scan = e + 2;
      if (payload == "[DONE]") {
        done = true;
        break;
      }
      json j;
      try {
        j = json::parse(payload);
      } catch (...) {
        r.error = "bad event";
        done = true;
        break;
      }
      if (j.contains("error")) {
        r.error = j["error"]["message"];
        done = true;
        break;
      }
      if (j["choices"].empty() || !j["choices"][0]["finish_reason"].is_null()) continue;
      r.tokens.push_back(j["huginn"]["token"]);
      r.steps.push_back(j["huginn"]["steps"]);
      if (r.tokens.size() == 1) {
        r.ttft = std::chrono::duration<double>(now - t0).count();
        r.first = now;
      } else {
        r.gaps.push_back(std::chrono::duration<double>(now - last).count());
      }
      last = r.last = now;
    }
  }
  ::close(fd);
  r.ok = done && r.error.empty();
  if (!r.ok && r.error.empty()) r.error = "stream ended early";
  return r;
}

// GET /metrics: name (labels dropped) -> value.
std::map<std::string, double> metrics(int port) {
  std::map<std::string, double> out;
  const int fd = connect_to(port);
  if (fd < 0) return out;
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  std::string buf;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == (ssize_t)req.size()) {
    char tmp[65536];
    for (ssize_t n; (n = ::recv(fd, tmp, sizeof tmp, 0)) > 0;) buf.append(tmp, (size_t)n);
  }
  ::close(fd);
  std::istringstream in(buf.substr(std::min(buf.size(), buf.find("\r\n\r\n"))));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.find('{') == std::string::npos) continue;
    const size_t sp = line.rfind(' ');
    std::string name = line.substr(0, line.find('{'));
    if (line.find("outcome=\"") != std::string::npos)
      name += "." + line.substr(line.find("outcome=\"") + 9,
                                line.find('"', line.find("outcome=\"") + 9) - line.find("outcome=\"") - 9);
    try {
      out[name] = std::stod(line.substr(sp + 1));
    } catch (...) {
    }
  }
  return out;
}

// The mean pass between two /metrics readings (time inside the batched passes
// / passes, ms; 0 if none ran): a gap beyond it is spent between passes.
double mean_step_ms(std::map<std::string, double>& m0, std::map<std::string, double>& m1) {
  const double passes = m1["huginn_passes_total"] - m0["huginn_passes_total"];
  return passes > 0 ? 1e3 * (m1["huginn_busy_seconds_total"] - m0["huginn_busy_seconds_total"]) / passes : 0.0;
}

// Between two /metrics readings: the mean time of the passes that only
// decoded (ms), and the share of the time in passes that went to passes that
// also fed prompt positions (0-1). Served one at a time no decoding pass has
// prompt rows; served together, a new request's prompt rows join the decodes.
std::pair<double, double> pass_split(std::map<std::string, double>& m0, std::map<std::string, double>& m1) {
  const double passes = m1["huginn_passes_total"] - m0["huginn_passes_total"];
  const double busy = m1["huginn_busy_seconds_total"] - m0["huginn_busy_seconds_total"];
  const double pp = m1["huginn_prompt_passes_total"] - m0["huginn_prompt_passes_total"];
  const double ps = m1["huginn_prompt_pass_seconds_total"] - m0["huginn_prompt_pass_seconds_total"];
  return {passes > pp ? 1e3 * (busy - ps) / (passes - pp) : 0.0, busy > 0 ? ps / busy : 0.0};
}

// Reads until the first token event (or the end); false if none came.
bool read_first_token(int fd, const std::atomic<bool>& stop) {
  std::string buf;
  char tmp[4096];
  while (!stop) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf.append(tmp, (size_t)n);
    if (buf.find("\"huginn\"") != std::string::npos) return true;
  }
  return false;
}

// One disturbing client, again and again until `stop`: "stall" stops reading
// after its first token and waits until the server has dropped it (its
// cancelled count rises); "disconnect" closes after its first token.
// Returns how many disturbances it made.
int disturb(int port, const std::string& mode, const std::string& body, const std::atomic<bool>& stop) {
  int count = 0;
  const std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  while (!stop) {
    const double cancelled0 = metrics(port)["huginn_requests_total.cancelled"];
    const int fd = connect_to(port, mode == "stall");
    if (fd < 0) break;
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != (ssize_t)req.size() || !read_first_token(fd, stop)) {
      ::close(fd);
      continue;
    }
    if (mode == "stall")  // never read again: the server drops it past --max-unread
      while (!stop && metrics(port)["huginn_requests_total.cancelled"] <= cancelled0)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::close(fd);
    ++count;
  }
  return count;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, (size_t)(p / 100.0 * (double)v.size()));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("load benchmark for huginn serve (loopback)");
  std::string bin = "build/bin/huginn", model, parallel_s = "1,8", clients_s = "1,8,32,64", exit = "none";
  int steps = 8, max_tokens = 32, per_client = 4, threads = 2, prompt_len = 16, distinct = 64, soak = 0, stalled = 0,
      stall_tokens = 500;
  double temperature = 0.8;
  app.add_option("--bin", bin, "the huginn binary");
  app.add_option("-m,--model", model, "model directory (default: the standard d=512 config, random weights)");
  app.add_option("--parallel", parallel_s, "server --parallel settings, comma-separated (default 1,8)");
  app.add_option("--clients", clients_s, "concurrent clients, comma-separated (default 1,8,32,64)");
  app.add_option("--steps", steps, "iterations per token (the maximum with an exit; default 8)");
  app.add_option("--exit", exit, "exit criterion (default none)");
  app.add_option("--max-tokens", max_tokens, "tokens per reply (default 32)");
  app.add_option("--requests", per_client, "requests per client (default 4)");
  app.add_option("--prompt", prompt_len, "prompt tokens (random ids, standard model; default 16)");
  app.add_option("--distinct", distinct, "distinct requests (seeds), each also served alone (default 64)");
  app.add_option("--temperature", temperature, "sampling temperature, seeded per request (default 0.8)");
  app.add_option("-t,--threads", threads, "server threads (default 2)");
  app.add_option("--stalled", stalled,
                 "extra clients per phase that start a long stream and never read it (their effect on the others)");
  app.add_option("--stall-tokens", stall_tokens, "max_tokens of a stalled client's stream (default 500)");
  app.add_option("--soak", soak, "then this many requests at the largest client count: RSS after 100 and at the end");
  std::string disturb_mode = "none";
  int max_unread = 4096;
  std::vector<std::string> server_args;
  app.add_option("--disturb", disturb_mode,
                 "none, stall or disconnect: each client count also runs beside one client that stops reading "
                 "after its first token (until dropped), or that disconnects after it, again and again; prints "
                 "the others' gap p50/p99 without and with it, and the mean step time")
      ->check(CLI::IsMember({"none", "stall", "disconnect"}));
  app.add_option("--server-arg", server_args,
                 "an extra argument for every server (repeat for several, e.g. --server-arg=--prefill-chunk "
                 "--server-arg=4)");
  app.add_option("--max-unread", max_unread, "the server's --max-unread (default 4096, the server's default)");
  std::string weights = "f32";
  app.add_option("--weights", weights,
                 "the standard model's weights as written for the servers: f32 (default), bf16 or f16 (half the "
                 "bytes a decode pass streams)")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  int rounds = 1;
  app.add_option("--rounds", rounds,
                 "with --disturb: alternate without/with this many times, gaps pooled (other load drifts less "
                 "into the difference; default 1)");
  int repeat = 1;
  app.add_option("--repeat", repeat,
                 "run the --parallel settings this many times in turn, each with a fresh server, and print the "
                 "decode tokens/s ratio of the last setting to the first for every repeat (the single stream's "
                 "speed differs from process to process; default 1)")
      ->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  if (!model.empty() && weights != "f32") {
    std::fprintf(stderr, "error: --weights applies to the standard model only (not with -m)\n");
    return 1;
  }

  std::vector<int> parallels, clients;
  try {
    parallels = huginn::bench::int_list(parallel_s, "--parallel", 1);
    clients = huginn::bench::int_list(clients_s, "--clients", 1);
  } catch (const huginn::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  std::filesystem::path tmp;
  std::string dir = model, model_name = model;
  std::string prompt_json;
  if (dir.empty()) {
    tmp = std::filesystem::temp_directory_path() / ("huginn-bench-serve-" + std::to_string(::getpid()));
    huginn::bench::BenchModel b = huginn::bench::load_bench_model("");
    const huginn::DType dtype =
        weights == "bf16" ? huginn::DType::BF16 : weights == "f16" ? huginn::DType::F16 : huginn::DType::F32;
    huginn::save_checkpoint(tmp.string(), b.model->config(), b.flat.data(), dtype);
    dir = tmp.string();
    model_name = "standard d=512 (random weights, " + weights + ")";
    std::mt19937 rng(1);
    json ids = json::array();
    for (int i = 0; i < prompt_len; ++i) ids.push_back((int)(rng() % b.model->config().vocab_size));
    prompt_json = ids.dump();
  } else {
    // the shipped task model: a question of its format
    prompt_json = "\"323122331233133323333122222223333122=\"";
  }
  std::printf("model: %s; steps %d, exit %s, %d tokens per reply, %d requests per client, %d server threads\n",
              model_name.c_str(), steps, exit.c_str(), max_tokens, per_client, threads);
  if (disturb_mode == "none") {
    std::printf(
        "| parallel | clients | requests | errors | differ | tokens/s | decode tokens/s | TTFT p50 ms | TTFT p99 ms | "
        "gap p50 ms | gap p99 ms | mean step ms | decode-only step ms | prompt passes' share | mean iters | "
        "RSS before MB | RSS after MB |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  } else if (max_unread >= stall_tokens && disturb_mode == "stall") {
    std::fprintf(stderr, "--disturb stall needs --max-unread below --stall-tokens (%d): a stall must be dropped\n",
                 stall_tokens);
    return 1;
  }
  std::fflush(stdout);
  json all = json::array();
  std::vector<std::pair<int, int>> runs;  // (repeat, --parallel) in the order they run
  for (int rep = 0; rep < repeat; ++rep)
    for (int par : parallels) runs.emplace_back(rep, par);
  for (auto [rep, par] : runs) {
    const std::string log = (std::filesystem::temp_directory_path() /
                             ("huginn-bench-serve-" + std::to_string(::getpid()) + "-" + std::to_string(par) + ".log"))
                                .string();
    std::vector<std::string> args = {
        "-t",         std::to_string(threads), "serve",       "-m",  dir,          "--port", "0",
        "--parallel", std::to_string(par),     "--max-queue", "256", "--max-steps"};
    args.push_back(std::to_string(std::max(steps, 1024)));
    args.push_back("--max-unread");
    args.push_back(std::to_string(max_unread));
    args.insert(args.end(), server_args.begin(), server_args.end());
    Server srv(bin, args, log);
    auto body = [&](int seed) {
      json j = {{"prompt", json::parse(prompt_json)},
                {"max_tokens", max_tokens},
                {"steps", steps},
                {"exit", exit},
                {"stream", true},
                {"temperature", temperature},
                {"seed", seed}};
      return j.dump();
    };
    // every distinct request served alone: the reference replies
    std::vector<Reply> ref(distinct);
    for (int s = 0; s < distinct; ++s) ref[s] = stream_request(srv.port, body(s));
    auto phase = [&](int C, int total, long* rss_at_100, const std::string& dmode = "none",
                     int* disturbances = nullptr) {
      // clients that stop reading: a long stream each, never read until the phase ends
      std::vector<int> stuck;
      for (int i = 0; i < stalled; ++i) {
        json j = json::parse(body(i));
        j["max_tokens"] = stall_tokens;
        const std::string b = j.dump();
        const int fd = connect_to(srv.port);
        if (fd < 0) continue;
        int small = 4096;
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        const std::string req =
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: " +
            std::to_string(b.size()) + "\r\n\r\n" + b;
        (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
        stuck.push_back(fd);
      }
      std::vector<Reply> out(total);
      std::atomic<int> next{0};
      std::atomic<bool> stop_disturb{false};
      std::thread disturber;
      if (dmode != "none") {
        json j = json::parse(body(distinct + 1));
        j["max_tokens"] = stall_tokens;
        if (dmode == "stall") j["logprobs"] = 5;  // larger events: the socket buffers fill in fewer tokens
        disturber = std::thread([&, b = j.dump()] {
          const int n = disturb(srv.port, dmode, b, stop_disturb);
          if (disturbances) *disturbances = n;
        });
      }
      const auto t0 = Clock::now();
      std::vector<std::thread> th;
      for (int c = 0; c < C; ++c)
        th.emplace_back([&] {
          for (int k; (k = next++) < total;) {
            out[k] = stream_request(srv.port, body(k % distinct));
            if (rss_at_100 && k == 100) *rss_at_100 = srv.rss_kb();
          }
        });
      for (auto& t : th) t.join();
      const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
      stop_disturb = true;
      if (disturber.joinable()) disturber.join();
      for (int fd : stuck) ::close(fd);
      return std::make_pair(out, wall);
    };
    if (disturb_mode != "none") {
      // the normal clients' gaps (ms), the mean pass time (ms), errors and replies unlike the reference
      struct Run {
        std::vector<double> gaps;
        double step_ms = 0;
        int errors = 0, differ = 0, disturbances = 0;
      };
      auto measure = [&](int C, const std::string& dmode) {
        Run run;
        auto m0 = metrics(srv.port);
        auto [out, wall] = phase(C, C * per_client, nullptr, dmode, &run.disturbances);
        auto m1 = metrics(srv.port);
        run.step_ms = mean_step_ms(m0, m1);
        for (size_t k = 0; k < out.size(); ++k) {
          if (!out[k].ok) {
            if (run.errors++ == 0) std::fprintf(stderr, "first error: %s\n", out[k].error.c_str());
            continue;
          }
          const Reply& a = ref[k % distinct];
          if (out[k].tokens != a.tokens || out[k].steps != a.steps) ++run.differ;
          for (double g : out[k].gaps) run.gaps.push_back(g * 1e3);
        }
        return run;
      };
      std::printf(
          "| parallel | clients | disturb | disturbances | gap p50 ms without | gap p99 ms without | gap p50 ms with "
          "| "
          "gap p99 ms with | p99 with - without ms | mean step ms without | mean step ms with | errors | differ |\n");
      std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
      for (int C : clients) {
        Run a, b;
        auto add = [rounds](Run& to, const Run& r) {
          to.gaps.insert(to.gaps.end(), r.gaps.begin(), r.gaps.end());
          to.step_ms += r.step_ms / std::max(1, rounds);  // rounds of equal work: the mean of means
          to.errors += r.errors;
          to.differ += r.differ;
          to.disturbances += r.disturbances;
        };
        for (int k = 0; k < std::max(1, rounds); ++k) {
          add(a, measure(C, "none"));
          add(b, measure(C, disturb_mode));
        }
        const double d99 = pct(b.gaps, 99) - pct(a.gaps, 99);
        std::printf("| %d | %d | %s | %d | %.2f | %.2f | %.2f | %.2f | %+.2f | %.2f | %.2f | %d | %d |\n", par, C,
                    disturb_mode.c_str(), b.disturbances, pct(a.gaps, 50), pct(a.gaps, 99), pct(b.gaps, 50),
                    pct(b.gaps, 99), d99, a.step_ms, b.step_ms, a.errors + b.errors, a.differ + b.differ);
        std::fflush(stdout);
        all.push_back({{"parallel", par},
                       {"clients", C},
                       {"disturb", disturb_mode},
                       {"disturbances", b.disturbances},
                       {"gap_p50_ms_without", pct(a.gaps, 50)},
                       {"gap_p99_ms_without", pct(a.gaps, 99)},
                       {"gap_p50_ms_with", pct(b.gaps, 50)},
                       {"gap_p99_ms_with", pct(b.gaps, 99)},
                       {"step_ms_without", a.step_ms},
                       {"step_ms_with", b.step_ms},
                       {"errors", a.errors + b.errors},
                       {"differ", a.differ + b.differ}});
      }
      std::filesystem::remove(log);
      continue;
    }
    for (int C : clients) {
      const long rss0 = srv.rss_kb();
      auto m0 = metrics(srv.port);
      auto [out, wall] = phase(C, C * per_client, nullptr);
      auto m1 = metrics(srv.port);
      const long rss1 = srv.rss_kb();
      const double step_ms = mean_step_ms(m0, m1);
      const auto [decode_step_ms, prompt_share] = pass_split(m0, m1);
      int errors = 0, differ = 0;
      long toks = 0, iters = 0;
      std::vector<double> ttft, gaps;
      for (size_t k = 0; k < out.size(); ++k) {
        const Reply& r = out[k];
        if (!r.ok) {
          if (errors++ == 0) std::fprintf(stderr, "first error: %s\n", r.error.c_str());
          continue;
        }
        const Reply& a = ref[k % distinct];
        if (r.tokens != a.tokens || r.steps != a.steps) ++differ;
        toks += (long)r.tokens.size();
        for (int s : r.steps) iters += s;
        ttft.push_back(r.ttft * 1e3);
        for (double g : r.gaps) gaps.push_back(g * 1e3);
      }
      const double tps = toks / wall, decode_tps = decode_tokens_per_s(out);
      std::printf(
          "| %d | %d | %zu | %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f | %.0f%% | %.2f | %.1f | "
          "%.1f |\n",
          par, C, out.size(), errors, differ, tps, decode_tps, pct(ttft, 50), pct(ttft, 99), pct(gaps, 50),
          pct(gaps, 99), step_ms, decode_step_ms, 100 * prompt_share, toks ? (double)iters / toks : 0.0, rss0 / 1024.0,
          rss1 / 1024.0);
      std::fflush(stdout);
      all.push_back({{"parallel", par},
                     {"repeat", rep},
                     {"clients", C},
                     {"requests", out.size()},
                     {"errors", errors},
                     {"differ", differ},
                     {"tokens_per_s", tps},
                     {"decode_tokens_per_s", decode_tps},
                     {"ttft_p50_ms", pct(ttft, 50)},
                     {"ttft_p99_ms", pct(ttft, 99)},
                     {"gap_p50_ms", pct(gaps, 50)},
                     {"gap_p99_ms", pct(gaps, 99)},
                     {"step_ms", step_ms},
                     {"decode_step_ms", decode_step_ms},
                     {"prompt_pass_share", prompt_share},
                     {"rss_before_kb", rss0},
                     {"rss_after_kb", rss1}});
    }
    if (soak > 0) {
      const int C = clients.back();
      long rss100 = -1;
      auto [out, wall] = phase(C, soak, &rss100);
      int errors = 0, differ = 0;
      for (size_t k = 0; k < out.size(); ++k) {
        if (!out[k].ok)
          ++errors;
        else if (out[k].tokens != ref[k % distinct].tokens || out[k].steps != ref[k % distinct].steps)
          ++differ;
      }
      const long rss_end = srv.rss_kb();
      std::printf(
          "soak (parallel %d): %d requests by %d clients in %.1f s: %d errors, %d differ; RSS after 100: %.1f "
          "MB, after %d: %.1f MB (%+.1f%%)\n",
          par, soak, C, wall, errors, differ, rss100 / 1024.0, soak, rss_end / 1024.0,
          100.0 * (rss_end - rss100) / std::max(1L, rss100));
      std::fflush(stdout);
    }
    std::filesystem::remove(log);
  }
  if (!tmp.empty()) std::filesystem::remove_all(tmp);
  // The ratio the server exists for, paired within each repeat (both servers
  // of a pair started one after the other), then its spread over the repeats.
  if (disturb_mode == "none" && parallels.size() >= 2) {
    const int p0 = parallels.front(), p1 = parallels.back();
    auto decode_at = [&](int par, int C, int rep) {
      for (const json& r : all)
        if (r["parallel"] == par && r["clients"] == C && r["repeat"] == rep)
          return r["decode_tokens_per_s"].get<double>();
      return 0.0;
    };
    for (int C : clients) {
      std::vector<double> ratios;
      for (int rep = 0; rep < repeat; ++rep) {
        const double a = decode_at(p0, C, rep), b = decode_at(p1, C, rep);
        if (a > 0) ratios.push_back(b / a);
      }
      if (ratios.empty()) continue;
      std::printf("# decode tokens/s, --parallel %d / --parallel %d, %d clients, per repeat:", p1, p0, C);
      for (double r : ratios) std::printf(" %.2fx", r);
      std::sort(ratios.begin(), ratios.end());
      const size_t m = ratios.size() / 2;
      const double median = ratios.size() % 2 ? ratios[m] : (ratios[m - 1] + ratios[m]) / 2;
      std::printf("; median %.2fx, min %.2fx\n", median, ratios.front());
    }
  }
  std::printf("%s\n", all.dump().c_str());
  return 0;
}
