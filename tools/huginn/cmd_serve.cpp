// huginn serve: an OpenAI-style HTTP server for one model (cpp-httplib). The
// request/response logic lives in the library (huginn/server_api.h); here are
// the sockets, the routes, one mutex around generation, and a clean stop on
// SIGINT/SIGTERM.
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/model.h"
#include "huginn/server_api.h"
#include "huginn/threads.h"

namespace huginn::cli {
namespace {
using json = nlohmann::json;
using serve::Api;
using serve::ApiError;
using serve::ApiRequest;
using serve::error_json;

struct ServeOptions {
  std::string model, host = "127.0.0.1", exit = "none", cache = "full";
  int port = 8080;
  int steps = -1;  // default: the model's mean_recurrence
  int max_steps = 1024;
  long long max_body = 1 << 20;
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

int run(const ServeOptions& o) {
  if (o.port < 0 || o.port > 65535) fail("--port must be in [0, 65535] (0: any free port), got ", o.port);
  if (o.max_body < 1) fail("--max-body must be >= 1 byte, got ", o.max_body);
  if (o.steps == 0 || o.steps < -1) fail("--steps must be >= 1, got ", o.steps);
  if (o.max_steps < 1) fail("--max-steps must be >= 1, got ", o.max_steps);
  if (o.host.empty()) fail("--host is empty");

  const LoadedModel lm = load_model(o.model);  // weights, tokenizer, stop ids: read once for every request
  serve::ServerConfig cfg;
  cfg.steps = o.steps;
  cfg.exit = o.exit;
  cfg.cache = o.cache;
  cfg.max_steps = o.max_steps;
  const Api api(lm, cfg);

  httplib::Server svr;
  svr.set_payload_max_length((size_t)o.max_body);
  svr.set_keep_alive_timeout(1);
  std::mutex generating;  // one generation at a time on the one model

  svr.Get("/health", [&](const httplib::Request&, httplib::Response& res) { send_json(res, 200, api.health()); });
  svr.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) { send_json(res, 200, api.models()); });
  auto completion = [&](bool chat) {
    return [&, chat](const httplib::Request& req, httplib::Response& res) {
      std::shared_ptr<ApiRequest> r;
      try {
        r = std::make_shared<ApiRequest>(api.parse(req.body, chat));
      } catch (const ApiError& e) {
        send_json(res, e.status, error_json(e.what()));
        return;
      }
      if (!r->stream) {
        std::lock_guard<std::mutex> lock(generating);
        set_threads(threads());  // OpenMP's thread count is per thread: -t for this worker too
        try {
          send_json(res, 200, api.complete(*r));
        } catch (const Error& e) {
          send_json(res, 400, error_json(e.what()));
        } catch (const std::exception& e) {
          send_json(res, 500, error_json(e.what(), "server_error"));
        }
        return;
      }
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider("text/event-stream", [&api, &generating, r](size_t, httplib::DataSink& sink) {
        std::lock_guard<std::mutex> lock(generating);
        set_threads(threads());
        auto emit = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
        try {
          const json whole = api.complete(*r, [&](const json& c) { return emit("data: " + serve::dump(c) + "\n\n"); });
          if (!whole.is_null()) emit("data: [DONE]\n\n");
        } catch (const std::exception& e) {
          emit("data: " + serve::dump(error_json(e.what(), "server_error")) + "\n\n");
        }
        sink.done();
        return true;
      });
    };
  };
  svr.Post("/v1/completions", completion(false));
  svr.Post("/v1/chat/completions", completion(true));

  // Anything else: 405 on a known path, 404 elsewhere.
  const std::map<std::string, std::string> routes = {
      {"/health", "GET"}, {"/v1/models", "GET"}, {"/v1/completions", "POST"}, {"/v1/chat/completions", "POST"}};
  auto fallback = [&](const httplib::Request& req, httplib::Response& res) {
    auto it = routes.find(req.path);
    if (it == routes.end()) {
      send_json(res, 404, error_json("unknown path '" + req.path + "'"));
    } else {
      res.set_header("Allow", it->second);
      send_json(res, 405, error_json("method " + req.method + " is not allowed on " + req.path + "; use " + it->second));
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
    if (res.status == 413) msg = str("the request body exceeds the server's --max-body of ", o.max_body, " bytes");
    else if (res.status == 404) msg = "not found";
    else if (res.status >= 500) msg = "server error";
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

  // SIGINT/SIGTERM: the handler only writes to a pipe; a watcher thread stops the server.
  if (::pipe(sig_pipe) != 0) fail("cannot create a pipe for signal handling");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  std::atomic<bool> listening_done{false};
  std::thread watcher([&] {
    char c = 0;
    while (::read(sig_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    // stop() before listen_after_bind() has started would be lost: repeat until it returns
    while (!listening_done) {
      svr.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  std::printf("listening on http://%s:%d\n", o.host.c_str(), port);
  std::fflush(stdout);
  std::fprintf(stderr, "model %s: %s, steps %d (max %d per request), exit %s, cache %s\n", api.name().c_str(),
               o.model.c_str(), api.default_steps(), api.config().max_steps, o.exit.c_str(), o.cache.c_str());
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

Register reg("serve", "OpenAI-style HTTP server for one model (/v1/completions, /v1/chat/completions)",
             [](CLI::App& app) {
               auto o = std::make_shared<ServeOptions>();
               app.add_option("-m,--model", o->model, "model directory (config.json, weights, tokenizer.json)")
                   ->required();
               app.add_option("--host", o->host, "address to listen on (default 127.0.0.1)");
               app.add_option("--port", o->port, "port to listen on; 0: any free port (default 8080)");
               app.add_option("--steps", o->steps,
                              "iterations per token when a request gives none (the maximum with an exit); "
                              "default: the model's mean_recurrence");
               app.add_option("--max-steps", o->max_steps, "the largest steps a request may ask for (default 1024)");
               app.add_option("--exit", o->exit, "exit criterion when a request gives none (e.g. kl:5e-4; default none)");
               app.add_option("--cache", o->cache, "KV cache strategy when a request gives none (default full)");
               app.add_option("--max-body", o->max_body, "largest request body in bytes (default 1 MiB)");
               return [o] { return run(*o); };
             });

}  // namespace
}  // namespace huginn::cli
