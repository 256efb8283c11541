// `huginn serve`: the API layer without sockets (requests -> generate options,
// responses, every bad input a clear 400), then the real server as a
// subprocess on a free port, spoken to with httplib's client.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "huginn/chat.h"
#include "huginn/checkpoint.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/server_api.h"
#include "huginn/tokenizer.h"
#include "test_util.h"
#include "tokenizer_test_util.h"

namespace huginn {
namespace {
using json = nlohmann::json;
using serve::Api;
using serve::ApiError;
using serve::ApiRequest;

const std::string kTasks = std::string(HUGINN_SOURCE_DIR) + "/models/huginn-tasks";

const Model& tasks_model() {
  static auto m = Model::load(kTasks);
  return *m;
}

// A random tiny model with a tokenizer that has Huginn's chat tokens (ids inside its vocabulary).
struct ChatModel {
  ModelConfig c = test::tiny_config(32, 2, 97, 96);
  std::vector<float> flat = init_params(c, 5);
  std::unique_ptr<Model> m = Model::from_flat(c, flat.data());
  Tokenizer tok = make_tok();
  static Tokenizer make_tok() { return Tokenizer::from_json(tok_json()); }
  static std::string tok_json() {
    json vocab;
    int id = 0;
    for (char ch : std::string(" abcdefghijklmnopqrstuvwxyzHEU\n+=?.")) vocab[std::string(1, ch)] = id++;
    json j = testutil::bpe_json(vocab, json::array());
    j["added_tokens"] = {testutil::added(90, "<|begin_text|>", true),   testutil::added(91, "<|end_text|>", true),
                         testutil::added(92, "<|begin_header|>", true), testutil::added(93, "<|end_header|>", true),
                         testutil::added(94, "<|end_turn|>", true),     testutil::added(95, "<|pad|>", true)};
    j["decoder"] = {{"type", "Fuse"}};
    return j.dump();
  }
};
ChatModel& chat_model() {
  static ChatModel c;
  return c;
}

TEST(ServeApi, CompletionMatchesGenerate) {
  const Model& m = tasks_model();
  const Api api = Api::for_model_dir(m, kTasks);
  const Tokenizer tok = load_model_tokenizer(kTasks);
  const std::vector<int> prompt = tok.encode("2132122=", /*add_special=*/true);
  for (const std::string exit : {"none", "kl:5e-4"}) {
    const ApiRequest r = api.parse(
        R"({"model": "x", "prompt": "2132122=", "steps": 32, "max_tokens": 4, "exit": ")" + exit + "\"}", false);
    EXPECT_EQ(r.prompt, prompt);
    GenerateOptions g;
    g.steps = 32;
    g.max_new_tokens = 4;
    g.exit = ExitCriterion::parse(exit);
    g.stop_tokens = model_stop_ids(kTasks);
    const SequenceResult direct = generate(m, prompt, g);
    const json out = api.complete(r);
    EXPECT_EQ(out["huginn"]["tokens"].get<std::vector<int>>(), direct.tokens) << exit;
    EXPECT_EQ(out["huginn"]["steps"].get<std::vector<int>>(), direct.steps) << exit;
    EXPECT_EQ(out["huginn"]["core_iterations"].get<int>(), direct.core_iterations);
    EXPECT_EQ(out["huginn"]["kv_bytes"].get<size_t>(), direct.kv_bytes);
    EXPECT_EQ(out["object"], "text_completion");
    EXPECT_EQ(out["model"], "huginn-tasks-d64");
    EXPECT_EQ(out["usage"]["prompt_tokens"], prompt.size());
    EXPECT_EQ(out["usage"]["completion_tokens"], direct.tokens.size());
    EXPECT_EQ(out["usage"]["total_tokens"], prompt.size() + direct.tokens.size());
    // the answer, without the stop token's text
    ASSERT_EQ(direct.stop_reason, "stop_token");
    EXPECT_EQ(out["choices"][0]["finish_reason"], "stop");
    const std::string text = out["choices"][0]["text"];
    EXPECT_TRUE(text == "y" || text == "n") << text;
    EXPECT_EQ(text, tok.decode({direct.tokens.begin(), direct.tokens.end() - 1}));
    if (exit == "none") {
      for (int s : direct.steps) EXPECT_EQ(s, 32);
    }

    // streamed: one chunk per token, then a final one; the same text and iterations
    std::vector<json> chunks;
    const json whole = api.complete(r, [&](const json& c) {
      chunks.push_back(c);
      return true;
    });
    ASSERT_EQ(chunks.size(), direct.tokens.size() + 1);
    std::string streamed;
    for (size_t i = 0; i < chunks.size(); ++i) {
      streamed += chunks[i]["choices"][0]["text"].get<std::string>();
      if (i < direct.tokens.size()) {
        EXPECT_TRUE(chunks[i]["choices"][0]["finish_reason"].is_null());
        EXPECT_EQ(chunks[i]["huginn"]["steps"], direct.steps[i]);
        EXPECT_EQ(chunks[i]["huginn"]["token"], direct.tokens[i]);
      }
    }
    EXPECT_EQ(streamed, text);
    EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "stop");
    EXPECT_TRUE(chunks.back()["usage"].is_null());  // usage only with stream_options.include_usage
    EXPECT_EQ(whole["choices"][0]["text"], text);
    ApiRequest ru = r;
    ru.include_usage = true;
    chunks.clear();
    api.complete(ru, [&](const json& c) {
      chunks.push_back(c);
      return true;
    });
    ASSERT_EQ(chunks.size(), direct.tokens.size() + 2);
    EXPECT_EQ(chunks.back()["usage"], out["usage"]);
    EXPECT_EQ(chunks.back()["choices"], json::array());
    // a client that goes away stops generation
    EXPECT_TRUE(api.complete(r, [](const json&) { return false; }).is_null());
  }
  // token ids as the prompt give the same answer
  json ids = json::array();
  for (int id : prompt) ids.push_back(id);
  const json byids = api.complete(api.parse(json{{"prompt", ids}, {"steps", 32}}.dump(), false));
  const json bytext = api.complete(api.parse(R"({"prompt": "2132122=", "steps": 32})", false));
  EXPECT_EQ(byids["huginn"]["tokens"], bytext["huginn"]["tokens"]);
  // defaults: the model's mean_recurrence, 16 tokens at most
  const ApiRequest d = api.parse(R"({"prompt": "1="})", false);
  EXPECT_EQ(d.options.steps, m.config().mean_recurrence);
  EXPECT_EQ(d.options.max_new_tokens, 16);
  EXPECT_FALSE(d.stream);
  const json models = api.models();
  EXPECT_EQ(models["data"][0]["id"], "huginn-tasks-d64");
  EXPECT_EQ(models["data"][0]["huginn"]["block_size"], 64);
  EXPECT_EQ(api.health(), json({{"status", "ok"}}));
}

TEST(ServeApi, ChatRequestsUseTheChatFormat) {
  ChatModel& cm = chat_model();
  const Api api(*cm.m, cm.tok, chat_stop_ids(cm.tok), "tiny", {});
  const std::vector<ChatMessage> msgs = {
      {"system", "be brief"}, {"user", "hi"}, {"assistant", "hello"}, {"user", "a+b?"}};
  const ApiRequest r = api.parse(
      R"({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                       {"role": "assistant", "content": "hello"}, {"role": "user", "content": "a+b?"}],
          "max_tokens": 3, "steps": 2, "temperature": 0.7, "top_k": 5, "top_p": 0.9, "min_p": 0.01, "seed": 3,
          "cache": "latest-m4", "continuous": true, "exit": "kl", "min_steps": 1})",
      true);
  EXPECT_TRUE(r.chat);
  EXPECT_EQ(r.prompt, encode_chat(cm.tok, msgs, true));
  EXPECT_EQ(r.prompt.front(), 90);
  EXPECT_EQ(r.options.stop_tokens, std::vector<int>({90, 91, 94}));
  EXPECT_EQ(r.options.max_new_tokens, 3);
  EXPECT_EQ(r.options.steps, 2);
  EXPECT_FLOAT_EQ(r.options.sampling.temperature, 0.7f);
  EXPECT_EQ(r.options.sampling.top_k, 5);
  EXPECT_FLOAT_EQ(r.options.sampling.top_p, 0.9f);
  EXPECT_FLOAT_EQ(r.options.sampling.min_p, 0.01f);
  EXPECT_EQ(r.options.sampling.seed, 3u);
  EXPECT_EQ(r.options.cache, "latest-m4");
  EXPECT_TRUE(r.options.continuous);
  EXPECT_EQ(r.options.exit.kind, ExitKind::KL);
  EXPECT_EQ(r.options.min_steps, 1);
  const json out = api.complete(r);
  EXPECT_EQ(out["object"], "chat.completion");
  EXPECT_EQ(out["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(out["choices"][0]["message"]["content"].is_string());
  EXPECT_EQ(out["usage"]["completion_tokens"], out["huginn"]["tokens"].size());
  std::vector<json> chunks;
  api.complete(r, [&](const json& c) {
    chunks.push_back(c);
    return true;
  });
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  std::string streamed;
  for (auto& c : chunks) streamed += c["choices"][0]["delta"]["content"].get<std::string>();
  EXPECT_EQ(streamed, out["choices"][0]["message"]["content"]);
  // without max_tokens a chat may fill the context
  const ApiRequest d = api.parse(R"({"messages": [{"role": "user", "content": "hi"}]})", true);
  EXPECT_EQ(d.options.max_new_tokens + (int)d.prompt.size(), cm.c.block_size);
}

TEST(ServeApi, StopTokensAndStopStringsShapeTheText) {
  ChatModel& cm = chat_model();
  const Api api(*cm.m, cm.tok, chat_stop_ids(cm.tok), "tiny", {});
  auto ids = [&](const std::string& s) { return cm.tok.encode(s); };
  const ApiRequest plain = api.parse(R"({"prompt": "hi"})", false);
  std::vector<int> t = ids("abc");
  t.push_back(91);  // <|end_text|>
  EXPECT_EQ(api.text_of(plain, t), "abc");
  const ApiRequest stop = api.parse(R"({"prompt": "hi", "stop": ["cd", "zz"]})", false);
  EXPECT_EQ(stop.options.stop_strings, std::vector<std::string>({"cd", "zz"}));
  EXPECT_EQ(api.text_of(stop, ids("abcde")), "ab");
  EXPECT_EQ(api.text_of(stop, ids("abz")), "abz");
  const ApiRequest one = api.parse(R"({"prompt": "hi", "stop": "b"})", false);
  EXPECT_EQ(api.text_of(one, ids("abcb")), "a");
  // a model without a tokenizer answers with ids
  const Api bare(*cm.m, std::nullopt, {}, "bare", {});
  EXPECT_EQ(bare.text_of(bare.parse(R"({"prompt": [1, 2]})", false), {5, 6, 7}), "5 6 7");
  EXPECT_EQ(bare.parse(R"({"prompt": [1, 2]})", false).options.stop_tokens, default_stop_tokens());
  // ids of the model's padded vocabulary that the tokenizer lacks add no text (and never throw)
  EXPECT_EQ(api.text_of(plain, {cm.tok.encode("a")[0], 63, cm.tok.encode("b")[0]}), "ab");
  EXPECT_EQ(api.text_of(stop, {63}), "");
}

TEST(ServeApi, BadInputIsAClearError) {
  const Api api = Api::for_model_dir(tasks_model(), kTasks);
  struct Case {
    std::string body;
    bool chat;
    std::string message;
  };
  const std::string long_prompt = "\"" + std::string(70, '1') + "\"";
  for (const Case& c : std::vector<Case>{
           {"{", false, "invalid JSON"},
           {"", false, "invalid JSON"},
           {"[1, 2]", false, "must be a JSON object"},
           {R"({"prompt": "1=", "max_tokens": 4, "max_tokens": 400})", false, "\"max_tokens\" appears twice"},
           {R"({"prompt": "1=", "bogus": 1})", false, "unknown field 'bogus'"},
           {R"({"messages": [{"role": "user", "content": "x"}]})", false, "unknown field 'messages'"},
           {R"({"prompt": "1="})", true, "unknown field 'prompt'"},
           {R"({})", false, "missing field 'prompt'"},
           {R"({"prompt": null})", false, "missing field 'prompt'"},
           {R"({"prompt": 5})", false, "'prompt' must be a string or an array of token ids"},
           {R"({"prompt": ""})", false, "'prompt' is empty"},
           {R"({"prompt": []})", false, "'prompt' is empty"},
           {R"({"prompt": [1, 128]})", false, "token id 128 (entry 1) is outside the vocabulary [0, 128)"},
           {R"({"prompt": [-1]})", false, "outside the vocabulary"},
           {R"({"prompt": [1, "a"]})", false, "array of token ids; entry 1"},
           {R"({"prompt": [1.5]})", false, "array of token ids"},
           {R"({"prompt": "1=", "max_tokens": 0})", false, "'max_tokens' must be in [1, "},
           {R"({"prompt": "1=", "max_tokens": "4"})", false, "'max_tokens' must be an integer"},
           {R"({"prompt": "1=", "max_tokens": 100})", false, "plus max_tokens (100) exceeds the model's context of 64"},
           {R"({"prompt": )" + long_prompt + "}", false, "the prompt is 71 tokens; the model's context is 64"},
           {R"({"prompt": "1=", "steps": 0})", false, "'steps' must be in [1, 1024], got 0"},
           {R"({"prompt": "1=", "steps": 100000000000})", false, "'steps' must be in [1, 1024]"},
           {R"({"prompt": "1=", "steps": 18446744073709551615})", false, "'steps' must be in [1, 1024]"},
           {R"({"prompt": "1=", "steps": 4.5})", false, "'steps' must be an integer"},
           {R"({"prompt": "1=", "min_steps": 40, "steps": 32})", false, "'min_steps' must be in [0, 32]"},
           {R"({"prompt": "1=", "temperature": -1})", false, "'temperature' must be in [0, 100]"},
           {R"({"prompt": "1=", "temperature": "hot"})", false, "'temperature' must be a number"},
           {R"({"prompt": "1=", "top_p": 0})", false, "'top_p' must be in (0, 1]"},
           {R"({"prompt": "1=", "min_p": 2})", false, "'min_p' must be in [0, 1]"},
           {R"({"prompt": "1=", "top_k": -1})", false, "'top_k' must be in [0, "},
           {R"({"prompt": "1=", "repetition_penalty": 0})", false, "'repetition_penalty'"},
           {R"({"prompt": "1=", "seed": -1})", false, "'seed' must be a whole number >= 0"},
           {R"({"prompt": "1=", "seed": "x"})", false, "'seed' must be a whole number >= 0"},
           {R"({"prompt": "1=", "stop": 5})", false, "'stop' must be a string or an array of strings"},
           {R"({"prompt": "1=", "stop": [""]})", false, "'stop' holds an empty string"},
           {R"({"prompt": "1=", "stop": ["a", 1]})", false, "'stop' must be a string or an array of strings"},
           {R"({"prompt": "1=", "stream": "yes"})", false, "'stream' must be true or false"},
           {R"({"prompt": "1=", "continuous": 1})", false, "'continuous' must be true or false"},
           {R"({"prompt": "1=", "exit": "bogus"})", false, "'exit': unknown exit criterion"},
           {R"({"prompt": "1=", "exit": "kl:x"})", false, "'exit': "},
           {R"({"prompt": "1=", "exit": 5})", false, "'exit' must be a string"},
           {R"({"prompt": "1=", "cache": "bogus"})", false, "'cache': unknown cache strategy"},
           {R"({"prompt": "1=", "n": 17})", false, "'n' must be in [1, 16]"},
           {R"({"prompt": "1=", "logprobs": 6})", false, "'logprobs' must be in [0, 5]"},
           {R"({"prompt": "1=", "stream_options": {"include_usage": true}})", false, "only allowed with"},
           {R"({"prompt": "1=", "max_tokens": 2, "max_completion_tokens": 3})", false, "differ"},
           {R"({"prompt": "1=", "top_logprobs": 2})", false, "unknown field 'top_logprobs'"},
           {R"({"prompt": "1=", "model": 3})", false, "'model' must be a string"},
           {R"({"messages": [{"role": "user", "content": "hi"}]})", true, "this model cannot chat"},
           {R"({"messages": []})", true, "'messages' is empty"},
           {R"({"messages": "hi"})", true, "'messages' must be an array"},
           {R"({"messages": [5]})", true, "messages[0] must be an object"},
           {R"({"messages": [{"role": "user"}]})", true, "messages[0].content must be a string"},
           {R"({"messages": [{"role": "", "content": "x"}]})", true, "messages[0].role must be a non-empty string"},
           {R"({"messages": [{"role": "user", "content": "x", "name": "z"}]})", true,
            "unknown field 'name' in messages[0]"},
       }) {
    try {
      api.parse(c.body, c.chat);
      ADD_FAILURE() << "accepted: " << c.body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << c.body;
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << c.body << "\n  got: " << e.what();
    }
  }
  const json e = serve::error_json("boom");
  EXPECT_EQ(e["error"]["message"], "boom");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  // text without a tokenizer, and a model name from the directory
  ChatModel& cm = chat_model();
  const Api bare(*cm.m, std::nullopt, {}, "bare", {});
  EXPECT_THROW(bare.parse(R"({"prompt": "ab"})", false), ApiError);
  EXPECT_THROW(bare.parse(R"({"prompt": [1], "stop": "x"})", false), ApiError);
}

// ---- the real server, as a subprocess ----

// `huginn serve ... --port 0`: started, its port read from its first line;
// killed in the destructor whatever happened.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args) {
    err_ = test::temp_dir("serve") / "stderr";
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      const int fd = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) ::dup2(fd, 2);
      ::close(out[0]);
      ::close(out[1]);
      std::vector<char*> argv;
      std::string bin = HUGINN_BIN;
      argv.push_back(bin.data());
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
    // the first line: "listening on http://HOST:PORT"
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, (size_t)n);
    }
    first_line = line.substr(0, line.find('\n'));
    const std::string prefix = "listening on http://127.0.0.1:";
    if (first_line.rfind(prefix, 0) == 0) port = std::atoi(first_line.c_str() + prefix.size());
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
    std::error_code ec;
    std::filesystem::remove_all(err_.parent_path(), ec);
  }
  // SIGTERM, then the exit code (-1: killed by a signal or still running after 20 s).
  int stop() {
    ::kill(pid_, SIGTERM);
    int st = 0;
    for (int i = 0; i < 400; ++i) {
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  std::string err() const { return test::slurp(err_); }

  int port = 0;
  std::string first_line;

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::filesystem::path err_;
};

json body_json(const httplib::Result& r) { return json::parse(r->body); }

TEST(ServeHttp, EndpointsStreamingErrorsAndCleanStop) {
  ServerProcess srv({"serve", "-m", kTasks, "--port", "0", "--max-body", "16384", "--steps", "32"});
  ASSERT_GT(srv.port, 0) << "first line: '" << srv.first_line << "'\n" << srv.err();
  httplib::Client cli("127.0.0.1", srv.port);
  cli.set_read_timeout(60, 0);

  auto h = cli.Get("/health");
  ASSERT_TRUE(h) << httplib::to_string(h.error());
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(body_json(h)["status"], "ok");
  EXPECT_EQ(body_json(h)["slots"], json({{"total", 4}, {"busy", 0}, {"free", 4}}));
  EXPECT_EQ(body_json(h)["queue"]["length"], 0);

  auto m = cli.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(body_json(m)["data"][0]["id"], "huginn-tasks-d64");

  const std::string req = R"({"prompt": "2132122=", "max_tokens": 4})";
  auto c = cli.Post("/v1/completions", req, "application/json");
  ASSERT_TRUE(c);
  ASSERT_EQ(c->status, 200) << c->body;
  const json cj = body_json(c);
  const std::string text = cj["choices"][0]["text"];
  EXPECT_TRUE(text == "y" || text == "n") << c->body;
  EXPECT_EQ(cj["choices"][0]["finish_reason"], "stop");
  for (int s : cj["huginn"]["steps"].get<std::vector<int>>()) EXPECT_EQ(s, 32);

  // streamed: Server-Sent Events, one per token, then [DONE]
  auto s =
      cli.Post("/v1/completions", R"({"prompt": "2132122=", "max_tokens": 4, "stream": true})", "application/json");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->status, 200) << s->body;
  EXPECT_NE(s->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  std::string streamed, last;
  std::vector<int> steps;
  size_t events = 0;
  for (size_t at = 0; at < s->body.size();) {
    const size_t end = s->body.find("\n\n", at);
    ASSERT_NE(end, std::string::npos) << s->body;
    const std::string ev = s->body.substr(at, end - at);
    at = end + 2;
    ASSERT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    last = ev.substr(6);
    ++events;
    if (last == "[DONE]") break;
    const json e = json::parse(last);
    streamed += e["choices"][0]["text"].get<std::string>();
    if (e["choices"][0]["finish_reason"].is_null()) steps.push_back(e["huginn"]["steps"]);
  }
  EXPECT_EQ(last, "[DONE]");
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(steps, cj["huginn"]["steps"].get<std::vector<int>>());
  EXPECT_EQ(events, cj["huginn"]["tokens"].size() + 2);

  auto bad = cli.Post("/v1/completions", "{not json", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(body_json(bad)["error"]["type"], "invalid_request_error");
  EXPECT_NE(body_json(bad)["error"]["message"].get<std::string>().find("invalid JSON"), std::string::npos);

  auto range = cli.Post("/v1/completions", R"({"prompt": "1=", "steps": 0})", "application/json");
  ASSERT_TRUE(range);
  EXPECT_EQ(range->status, 400);
  EXPECT_NE(range->body.find("'steps' must be in"), std::string::npos) << range->body;

  auto nf = cli.Get("/nope");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_EQ(body_json(nf)["error"]["type"], "invalid_request_error");

  auto wrong = cli.Get("/v1/completions");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 405);
  EXPECT_EQ(wrong->get_header_value("Allow"), "POST");

  auto big = cli.Post("/v1/completions", R"({"prompt": ")" + std::string(20000, '1') + "\"}", "application/json");
  ASSERT_TRUE(big) << httplib::to_string(big.error());
  EXPECT_TRUE(big->status == 413 || big->status == 400) << big->status;
  EXPECT_NE(big->body.find("max-body of 16384 bytes"), std::string::npos) << big->body;

  // The body is the JSON request whatever its Content-Type (`curl -d` sends
  // application/x-www-form-urlencoded): below --max-body it is read whole
  // (httplib's own reading refused form bodies above 8 KB with a 413).
  const std::string form = "application/x-www-form-urlencoded";
  auto small_form = cli.Post("/v1/completions", req, form);
  ASSERT_TRUE(small_form);
  EXPECT_EQ(small_form->status, 200) << small_form->body;
  EXPECT_EQ(body_json(small_form)["choices"][0]["text"], text);
  auto long_form = cli.Post("/v1/completions", R"({"prompt": ")" + std::string(9000, '1') + "\"}", form);
  ASSERT_TRUE(long_form);
  EXPECT_EQ(long_form->status, 400) << long_form->body;
  EXPECT_NE(long_form->body.find("the prompt is 9001 tokens"), std::string::npos) << long_form->body;
  auto long_tok = cli.Post("/tokenize", R"({"content": ")" + std::string(9000, '1') + "\"}", form);
  ASSERT_TRUE(long_tok);
  EXPECT_EQ(long_tok->status, 200) << long_tok->body;
  EXPECT_EQ(body_json(long_tok)["tokens"].size(), 9000u) << long_tok->body.substr(0, 200);
  httplib::MultipartFormDataItems parts = {{"prompt", "1=", "", ""}};
  auto multipart = cli.Post("/v1/completions", parts);
  ASSERT_TRUE(multipart);
  EXPECT_EQ(multipart->status, 415) << multipart->body;
  EXPECT_EQ(body_json(multipart)["error"]["type"], "invalid_request_error");

  // still serving after all that
  auto again = cli.Get("/health");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);

  EXPECT_EQ(srv.stop(), 0) << srv.err();
}

TEST(ServeHttp, BadCommandLinesAreOneErrorLine) {
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"serve -m " + kTasks + " --port 70000", "error: --port must be in [0, 65535]"},
           {"serve -m " + kTasks + " --port -1", "error: --port must be in [0, 65535]"},
           {"serve -m /nonexistent --port 0", "error: /nonexistent: not a model directory"},
           {"serve -m " + kTasks + " --port 0 --steps 0", "error: --steps must be >= 1"},
           {"serve -m " + kTasks + " --port 0 --exit bogus", "error: unknown exit criterion"},
           {"serve -m " + kTasks + " --port 0 --cache bogus", "error: unknown cache strategy"},
           {"serve -m " + kTasks + " --port 0 --max-body 0", "error: --max-body must be >= 1"},
       }) {
    auto r = test::run_cli(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind(message, 0), 0u) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// ---- continuous batching over HTTP -------------------------------------------

// A model directory with Huginn's chat tokens (random weights): chat requests work.
std::string chat_model_dir() {
  struct Dir {
    std::filesystem::path d = test::temp_dir("serve-chat-model");
    Dir() {
      ChatModel& cm = chat_model();
      save_checkpoint(d.string(), cm.c, cm.flat.data());
      std::ofstream(d / "tokenizer.json") << ChatModel::tok_json();
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  };
  static const Dir dir;
  return dir.d.string();
}

// The events of a Server-Sent Events body: the JSON of each, [DONE] excluded.
std::vector<json> sse_events(const std::string& body, bool* done = nullptr) {
  std::vector<json> out;
  if (done) *done = false;
  for (size_t at = 0; at < body.size();) {
    const size_t end = body.find("\n\n", at);
    if (end == std::string::npos) break;
    const std::string ev = body.substr(at, end - at);
    at = end + 2;
    if (ev.rfind("data: ", 0) != 0) continue;
    if (ev.substr(6) == "[DONE]") {
      if (done) *done = true;
      continue;
    }
    out.push_back(json::parse(ev.substr(6)));
  }
  return out;
}

// A raw TCP connection to the server; rcvbuf > 0: a client that will stop
// reading (a small receive window and small segments).
int connect_to(int port, int rcvbuf = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (rcvbuf > 0) {  // before connect: the window the client advertises stays small
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int mss = 536;  // small segments: the server's send buffer, sized from them, stays small too
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
  return fd;
}

json metrics_of(httplib::Client& cli) {
  // the few values the tests need, from the text format (the npm check parses it with a real parser)
  auto r = cli.Get("/metrics");
  json j;
  if (!r) return j;
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    j[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return j;
}

TEST(ServeHttp, ConcurrentStreamsEachEqualTheRequestAlone) {
  // 32 streaming requests with different depths, exits, caches and sampling,
  // decoded together (8 at a time): each reply (tokens and per-token
  // iterations) is what the same request gives served alone.
  ServerProcess srv({"serve", "-m", kTasks, "--port", "0", "--parallel", "8", "--max-queue", "64"});
  ASSERT_GT(srv.port, 0) << srv.err();
  const std::vector<std::string> exits = {
      "none", "kl:5e-4", "kl:1e-6", "entropy-diff", "latent-diff", "cosine", "argmax-stability:3", "minp-kl"};
  const std::vector<std::string> caches = {"full", "latest-m4", "latest-m4-compress-s4", "last-loop"};
  const std::vector<std::string> prompts = {"2132122=", "323122331233133323333122222223333122=", "11=", "3213213="};
  std::vector<json> reqs;
  for (int i = 0; i < 32; ++i) {
    json r = {{"prompt", prompts[i % 4]},        {"steps", 1 + (i * 7) % 48},
              {"exit", exits[i % exits.size()]}, {"cache", caches[(i / 2) % caches.size()]},
              {"max_tokens", 3 + i % 9},         {"stream", true}};
    if (i % 3 == 0) r["min_steps"] = 1;
    if (i % 2 == 1) {
      r["temperature"] = 0.7 + 0.1 * (i % 4);
      r["seed"] = 100 + i;
    }
    if (i % 5 == 2) r["continuous"] = true;
    reqs.push_back(r);
  }
  auto run = [&](const json& r, json* tokens, json* steps) {
    httplib::Client cli("127.0.0.1", srv.port);
    cli.set_read_timeout(120, 0);
    auto res = cli.Post("/v1/completions", r.dump(), "application/json");
    if (!res || res->status != 200)
      return std::string("request failed: ") + (res ? res->body : "no response: " + httplib::to_string(res.error()));
    bool done = false;
    const std::vector<json> ev = sse_events(res->body, &done);
    if (!done || ev.empty()) return "incomplete stream: " + res->body;
    *tokens = json::array();
    *steps = json::array();
    for (auto& e : ev)
      if (e["choices"][0]["finish_reason"].is_null()) {
        tokens->push_back(e["huginn"]["token"]);
        steps->push_back(e["huginn"]["steps"]);
      }
    const json& fin = ev.back()["huginn"];
    if (fin["tokens"] != *tokens || fin["steps"] != *steps) return "final chunk disagrees: " + ev.back().dump();
    return std::string();
  };
  // alone: one at a time
  std::vector<json> alone_t(32), alone_s(32);
  for (int i = 0; i < 32; ++i) ASSERT_EQ(run(reqs[i], &alone_t[i], &alone_s[i]), "") << i;
  // together
  std::vector<json> t(32), st(32);
  std::vector<std::string> errs(32);
  std::vector<std::thread> th;
  for (int i = 0; i < 32; ++i) th.emplace_back([&, i] { errs[i] = run(reqs[i], &t[i], &st[i]); });
  for (auto& x : th) x.join();
  int adaptive = 0;
  for (int i = 0; i < 32; ++i) {
    ASSERT_EQ(errs[i], "") << i << "\n" << srv.err();
    EXPECT_EQ(t[i], alone_t[i]) << reqs[i].dump();
    EXPECT_EQ(st[i], alone_s[i]) << reqs[i].dump();
    for (auto& s : st[i]) adaptive += s.get<int>() < reqs[i]["steps"].get<int>();
  }
  EXPECT_GT(adaptive, 10);
  httplib::Client cli("127.0.0.1", srv.port);
  const json m = metrics_of(cli);
  EXPECT_EQ(m.value("huginn_requests_total{model=\"huginn-tasks-d64\",outcome=\"completed\"}", 0.0), 64.0);
  EXPECT_EQ(srv.stop(), 0) << srv.err();
}

TEST(ServeHttp, SlowlorisDoesNotDelayHealthAndReadTimeoutCloses) {
  ServerProcess srv({"serve", "-m", kTasks, "--port", "0", "--read-timeout", "1", "--parallel", "2"});
  ASSERT_GT(srv.port, 0) << srv.err();
  // 16 connections that send a header byte every 300 ms (they stay open), and a generation running
  std::atomic<bool> stop{false};
  std::vector<int> fds;
  for (int i = 0; i < 16; ++i) {
    const int fd = connect_to(srv.port);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  std::thread trickle([&] {
    const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n";
    for (size_t k = 0; !stop && k < head.size(); ++k) {
      for (int fd : fds) (void)!::send(fd, head.data() + k, 1, MSG_NOSIGNAL);
      for (int w = 0; w < 3 && !stop; ++w) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::thread gen([&] {
    httplib::Client c("127.0.0.1", srv.port);
    c.set_read_timeout(60, 0);
    c.Post("/v1/completions", R"({"prompt": "2132122=", "steps": 1000, "max_tokens": 40})", "application/json");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  httplib::Client cli("127.0.0.1", srv.port);
  std::vector<double> ms;
  for (int i = 0; i < 20; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto h = cli.Get("/health");
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::sort(ms.begin(), ms.end());
  EXPECT_LT(ms[ms.size() / 2], 100.0) << "median /health latency with 16 slowloris connections";
  EXPECT_LT(ms.back(), 1000.0);
  stop = true;
  trickle.join();
  gen.join();
  // A connection that goes silent mid-request is closed after --read-timeout (1 s).
  const int fd = connect_to(srv.port);
  ASSERT_GE(fd, 0);
  const std::string part = "GET /health HTTP/1.1\r\nHo";
  ASSERT_EQ(::send(fd, part.data(), part.size(), MSG_NOSIGNAL), (ssize_t)part.size());
  const auto t0 = std::chrono::steady_clock::now();
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  char buf[256];
  const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // closed, at most with a 400 (httplib answers a request it could not read)
  if (n > 0) {
    EXPECT_EQ(std::string(buf, (size_t)n).rfind("HTTP/1.1 400", 0), 0u) << std::string(buf, (size_t)n);
  }
  EXPECT_GT(waited, 0.5);
  EXPECT_LT(waited, 4.0);
  ::close(fd);
  for (int f : fds) ::close(f);
  EXPECT_EQ(srv.stop(), 0) << srv.err();
}

// A raw request on a connection of its own (nothing read back).
int send_request(int port, const std::string& path, const std::string& body, int rcvbuf = 0) {
  const int fd = connect_to(port, rcvbuf);
  if (fd < 0) return -1;
  const std::string req =
      "POST " + path +
      " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != (ssize_t)req.size()) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Framing that a proxy could read differently from this server (RFC 9112
// 6.3): one 400 before any body is read (the body is not answered as a
// second request), and the connection ends.
TEST(ServeHttp, AmbiguousBodyFramingIs400AndCloses) {
  ServerProcess srv({"serve", "-m", kTasks, "--port", "0"});
  ASSERT_GT(srv.port, 0) << srv.err();
  const std::string body = R"({"prompt": "1=", "max_tokens": 1})";
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\n";
  const std::string n = std::to_string(body.size());
  struct Case {
    std::string headers, message;
  };
  for (const Case& c : std::vector<Case>{
           {"Content-Length: -5\r\n", "Content-Length '-5' is not a whole number"},
           {"Content-Length: abc\r\n", "Content-Length 'abc' is not a whole number"},
           {"Content-Length: " + n + "\r\nContent-Length: 7\r\n", "more than one Content-Length"},
           {"Content-Length: " + n + "\r\nTransfer-Encoding: chunked\r\n", "both Content-Length and Transfer-Encoding"},
       }) {
    const int fd = connect_to(srv.port);
    ASSERT_GE(fd, 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string req = head + c.headers + "\r\n" + body;
    ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), (ssize_t)req.size());
    std::string got;
    char buf[4096];
    ssize_t k;
    while ((k = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, (size_t)k);
    EXPECT_EQ(k, 0) << "the connection stays open: " << c.headers;  // 0: closed by the server; -1: timed out
    ::close(fd);
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got;
    EXPECT_NE(got.find(c.message), std::string::npos) << got;
    EXPECT_EQ(got.find("HTTP/1.1", 1), std::string::npos) << "a second response: " << got;
  }
  EXPECT_EQ(srv.stop(), 0) << srv.err();
}

TEST(ServeHttp, OverlongUriIs414WithItsReason) {
  ServerProcess srv({"serve", "-m", kTasks, "--port", "0"});
  ASSERT_GT(srv.port, 0) << srv.err();
  httplib::Client cli("127.0.0.1", srv.port);
  auto r = cli.Get("/v1/models?x=" + std::string(9000, 'a'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 414);
  EXPECT_EQ(body_json(r)["error"]["message"], "the request URI is too long") << r->body;
  r = cli.Get("/health");  // the server goes on
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(srv.stop(), 0) << srv.err();
}

// The server's per-request log lines (JSON on stderr) with this status.
std::vector<json> request_logs(const std::string& err, int status) {
  std::vector<json> out;
  std::istringstream in(err);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    const json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == "request" && j.value("status", 0) == status) out.push_back(j);
  }
  return out;
}

// Waits until /health shows `busy` slots busy (true) or the deadline passes.
bool wait_busy(httplib::Client& cli, int busy, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    auto h = cli.Get("/health");
    if (h && json::parse(h->body)["slots"]["busy"] == busy) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TEST(ServeHttp, AbandonedRequestsFreeTheirSlots) {
  // 20 non-streaming requests with long generations, all running; their
  // clients close at once. The scheduler polls each client's socket before
  // every pass: each slot is freed within one pass of the close (from the
  // request log lines and the pass counter), and /health shows all free.
  // random weights, greedy: long replies without a stop token
  ServerProcess srv({"serve", "-m", chat_model_dir(), "--port", "0", "--parallel", "20"});
  ASSERT_GT(srv.port, 0) << srv.err();
  httplib::Client cli("127.0.0.1", srv.port);
  const std::string model = "{model=\"" + body_json(cli.Get("/v1/models"))["data"][0]["id"].get<std::string>() + "\"";
  const std::string body = R"({"prompt": [5, 6, 7], "steps": 1000, "max_tokens": 50, "temperature": 0})";
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    const int fd = send_request(srv.port, "/v1/completions", body);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  ASSERT_TRUE(wait_busy(cli, 20, 30)) << srv.err();
  // mid-generation: a few tokens each
  for (int k = 0; k < 3000 && metrics_of(cli).value("huginn_passes_total" + model + "}", 0.0) < 3; ++k)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (int fd : fds) ::close(fd);
  const double at =
      metrics_of(cli).value("huginn_passes_total" + model + "}", -1.0);  // passes run at the close, or more
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_busy(cli, 0, 10)) << srv.err();
  const double freed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  json m = metrics_of(cli);
  const double passes = m.value("huginn_passes_total" + model + "}", -1.0);
  EXPECT_LE(passes, at + 1) << "the batch ran at most the pass in flight at the close";
  EXPECT_EQ(m.value("huginn_requests_total" + model + ",outcome=\"cancelled\"}", 0.0), 20.0) << m.dump();
  EXPECT_EQ(m.value("huginn_requests_total" + model + ",outcome=\"completed\"}", 0.0), 0.0);
  // the log lines: written when the HTTP workers notice (up to 10 ms later)
  std::vector<json> logs;
  for (int k = 0; k < 200 && logs.size() < 20; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    logs = request_logs(srv.err(), 499);
  }
  ASSERT_EQ(logs.size(), 20u) << srv.err();
  for (auto& l : logs) {
    EXPECT_NE(l["reason"].get<std::string>().find("client disconnected"), std::string::npos) << l.dump();
    ASSERT_TRUE(l.contains("pass_freed") && l.contains("pass_cancelled")) << l.dump();
    const double freed = l["pass_freed"], cancelled = l["pass_cancelled"];
    EXPECT_LE(freed, at + 1) << l.dump();
    EXPECT_LE(freed - cancelled, 1) << l.dump();
    EXPECT_GE(cancelled, l["pass_submitted"].get<double>()) << l.dump();
    EXPECT_GE(l["completion_tokens"].get<int>(), 3) << l.dump();
    EXPECT_LT(l["completion_tokens"].get<int>(), 50) << l.dump();
  }
  std::printf("20 abandoned: freed within %.0f ms, at pass <= %.0f (close at pass %.0f)\n", freed_s * 1e3, passes, at);

  // 4 streaming ones whose clients leave right after sending (queued or running): all cancelled too
  const std::string sbody = body.substr(0, body.size() - 1) + R"(, "stream": true})";
  for (int i = 0; i < 4; ++i) {
    const int fd = send_request(srv.port, "/v1/completions", sbody);
    ASSERT_GE(fd, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ::close(fd);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    m = metrics_of(cli);
    if (m.value("huginn_requests_total" + model + ",outcome=\"cancelled\"}", 0.0) >= 24) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(m.value("huginn_requests_total" + model + ",outcome=\"cancelled\"}", 0.0), 24.0) << m.dump();
  // each left within about one pass of its client going: far fewer tokens than 24 x 50
  EXPECT_LT(m.value("huginn_generated_tokens_total" + model + "}", 0.0), 200.0) << m.dump();
  const json h = body_json(cli.Get("/health"));
  EXPECT_EQ(h["slots"]["busy"], 0);
  EXPECT_EQ(h["queue"]["length"], 0);
  EXPECT_EQ(srv.stop(), 0) << srv.err();
}

TEST(ServeHttp, SlowReaderIsDroppedAndNeverStallsTheBatch) {
  // A streaming client that stops reading (small receive window, never
  // reads) beside 3 streaming clients that read: its tokens pile up to
  // --max-unread, then it is dropped with the reason logged; the others get
  // exactly what they get alone, and the passes go on.
  ServerProcess srv(
      // --read-timeout is also the write timeout: it must outlast the 8 passes that fill --max-unread after the
      // stalled client's socket fills, or its pending write gives up first (seen under ASan with 2 s)
      {"serve", "-m", chat_model_dir(), "--port", "0", "--parallel", "4", "--max-unread", "8", "--read-timeout", "8"});
  ASSERT_GT(srv.port, 0) << srv.err();
  auto req = [](int seed, int max_tokens, bool logprobs) {
    json r = {{"messages", {{{"role", "user"}, {"content", "a+b?"}}}},
              {"max_tokens", max_tokens},
              {"steps", 500},  // passes of some ms: a client that reads keeps within --max-unread
              {"temperature", 0},
              {"seed", seed},
              {"stream", true}};
    if (logprobs) {  // about 1 KB per token: the socket buffers fill fast
      r["logprobs"] = true;
      r["top_logprobs"] = 20;
    }
    return r;
  };
  auto run = [&](const json& r, json* tokens) {
    httplib::Client cli("127.0.0.1", srv.port);
    cli.set_read_timeout(60, 0);
    auto res = cli.Post("/v1/chat/completions", r.dump(), "application/json");
    if (!res || res->status != 200) return std::string("request failed");
    bool done = false;
    const std::vector<json> ev = sse_events(res->body, &done);
    if (!done)
      return "incomplete stream: " + res->body.substr(res->body.size() - std::min<size_t>(res->body.size(), 600));
    *tokens = json::array();
    for (auto& e : ev)
      if (e["choices"][0]["finish_reason"].is_null()) tokens->push_back(e["huginn"]);
    return std::string();
  };
  std::vector<json> alone(3), together(3);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(run(req(10 + i, 40, false), &alone[i]), "") << i;
  httplib::Client cli("127.0.0.1", srv.port);
  const std::string name = body_json(cli.Get("/v1/models"))["data"][0]["id"];
  const std::string model = "{model=\"" + name + "\"}";
  const int stalled = send_request(srv.port, "/v1/chat/completions", req(1, 72, true).dump(), 1024);
  ASSERT_GE(stalled, 0);
  std::vector<std::string> errs(3);
  std::vector<std::thread> th;
  for (int i = 0; i < 3; ++i) th.emplace_back([&, i] { errs[i] = run(req(10 + i, 40, false), &together[i]); });
  for (auto& t : th) t.join();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(errs[i], "") << i << "\n" << srv.err();
    EXPECT_EQ(together[i], alone[i]) << i;
  }
  // the stalled one: dropped (a slow reader), logged with its reason once its pending write gives up
  std::vector<json> logs;
  for (int k = 0; k < 1500 && logs.empty(); ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    logs = request_logs(srv.err(), 499);
  }
  ASSERT_EQ(logs.size(), 1u) << srv.err();
  EXPECT_EQ(logs[0]["reason"], "slow reader: 8 tokens generated and not yet taken by the client") << logs[0].dump();
  EXPECT_LT(logs[0]["completion_tokens"].get<int>(), 72) << logs[0].dump();
  // the others were never held up: each took one pass per token (its prompt's pass gives the first), plus the
  // pass in flight at its submission and one more for prompts that share the --prefill-chunk of 64 (4 x 24)
  const std::vector<json> ok = request_logs(srv.err(), 200);
  ASSERT_EQ(ok.size(), 6u);
  for (size_t i = 3; i < 6; ++i)
    EXPECT_LE(ok[i]["pass_freed"].get<int>() - ok[i]["pass_submitted"].get<int>(), 42) << ok[i].dump();
  const json m = metrics_of(cli);
  // the batch kept running after the drop: the other streams' passes came after it
  EXPECT_GT(m.value("huginn_passes_total" + model, 0.0), logs[0]["pass_freed"].get<double>()) << m.dump();
  EXPECT_EQ(m.value("huginn_requests_total{model=\"" + name + "\",outcome=\"cancelled\"}", 0.0), 1.0) << m.dump();
  EXPECT_EQ(body_json(cli.Get("/health"))["slots"]["busy"], 0);
  std::printf("slow reader: dropped after %d tokens at pass %d; passes at the end %.0f\n",
              logs[0]["completion_tokens"].get<int>(), logs[0]["pass_freed"].get<int>(),
              m.value("huginn_passes_total" + model, 0.0));
  ::close(stalled);
  EXPECT_EQ(srv.stop(), 0) << srv.err();
}

TEST(ServeHttp, QueueBoundAndShutdownAnswer503) {
  // --parallel 1 --max-queue 2: a third waiting request gets 503 with
  // Retry-After; on SIGTERM the queued ones get 503 and the running one its
  // grace period, then the server exits 0.
  // The random-weight chat model, greedy: no early end of text (the task
  // model answers in a few tokens and could finish before the SIGTERM).
  ServerProcess srv({"serve", "-m", chat_model_dir(), "--port", "0", "--parallel", "1", "--max-queue", "2", "--grace",
                     "0.2", "--max-steps", "5000"});
  ASSERT_GT(srv.port, 0) << srv.err();
  const std::string slow = R"({"prompt": [5, 6, 7], "steps": 5000, "max_tokens": 55, "temperature": 0})";
  std::vector<int> status(3, 0);
  std::vector<std::thread> th;
  for (int i = 0; i < 3; ++i) {
    th.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", srv.port);
      c.set_read_timeout(60, 0);
      auto r = c.Post("/v1/completions", slow, "application/json");
      status[i] = r ? r->status : -1;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  httplib::Client cli("127.0.0.1", srv.port);
  json h = body_json(cli.Get("/health"));
  EXPECT_EQ(h["slots"]["busy"], 1) << h.dump();
  EXPECT_EQ(h["queue"]["length"], 2) << h.dump();
  auto full = cli.Post("/v1/completions", slow, "application/json");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->status, 503);
  EXPECT_EQ(full->get_header_value("Retry-After"), "1");
  EXPECT_NE(full->body.find("queue"), std::string::npos) << full->body;
  EXPECT_EQ(srv.stop(), 0) << srv.err();
  for (auto& t : th) t.join();
  // the running one: cut at the end of the grace period (503); the queued ones: 503
  for (int i = 0; i < 3; ++i) EXPECT_EQ(status[i], 503) << i;
}

TEST(ServeHttp, OpenAiSdkAndPrometheusParser) {
  if (std::system("command -v node >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "node not found: the OpenAI SDK check needs nodejs and npm (scripts/setup.sh)";
  namespace fs = std::filesystem;
  const fs::path src = fs::path(HUGINN_SOURCE_DIR) / "tests/serve_npm";
  const fs::path mods = test::npm_packages("serve_npm", "openai/package.json");
  ASSERT_FALSE(mods.empty()) << "npm ci failed for tests/serve_npm: is the npm registry reachable?";
  fs::copy_file(src / "check.js", mods / "check.js", fs::copy_options::overwrite_existing);
  ServerProcess srv({"serve", "-m", chat_model_dir(), "--port", "0", "--parallel", "4"});
  ASSERT_GT(srv.port, 0) << srv.err();
  const fs::path out = test::temp_dir("serve-npm") / "out";
  const int rc =
      std::system(("cd '" + mods.string() + "' && node check.js http://127.0.0.1:" + std::to_string(srv.port) + " > '" +
                   out.string() + "' 2>&1")
                      .c_str());
  EXPECT_EQ(rc, 0) << test::slurp(out) << "\n" << srv.err();
  EXPECT_NE(test::slurp(out).find("\"ok\":true"), std::string::npos) << test::slurp(out);
  EXPECT_EQ(srv.stop(), 0) << srv.err();
}

}  // namespace
}  // namespace huginn
