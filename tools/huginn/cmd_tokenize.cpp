// huginn tokenize / detokenize: text <-> token ids through a tokenizer.json.
#include <nlohmann/json.hpp>

#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include "commands.h"
#include "huginn/chat.h"
#include "huginn/common.h"
#include "huginn/json.h"
#include "huginn/tokenizer.h"

namespace huginn::cli {
namespace {

struct Opts {
  std::string tokenizer, model, text, system;
  bool jsonl = false, add_special = false, skip_special = false, chat = false;
};

void add_source(CLI::App& app, Opts& o) {
  auto* t = app.add_option("--tokenizer", o.tokenizer, "tokenizer.json file");
  auto* m = app.add_option("-m,--model", o.model, "model directory (uses its tokenizer.json)");
  t->excludes(m);
  m->excludes(t);
  app.add_flag("--jsonl", o.jsonl, "one JSON value per line, in and out");
}

Tokenizer load(const Opts& o) {
  if (!o.tokenizer.empty()) return Tokenizer::from_file(o.tokenizer);
  if (!o.model.empty()) return load_model_tokenizer(o.model);
  fail("give a tokenizer: --tokenizer FILE or -m MODEL_DIR");
}

std::string read_stdin() {
  std::ios::sync_with_stdio(false);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

void print_ids(const std::vector<int>& ids, bool json_array) {
  std::string out;
  out.reserve(ids.size() * 6 + 2);
  if (json_array) out.push_back('[');
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out.push_back(json_array ? ',' : ' ');
    out += std::to_string(ids[i]);
  }
  if (json_array) out.push_back(']');
  out.push_back('\n');
  std::cout << out;
}

// The ids of one input: plain text, or with --chat one user turn in Huginn's
// chat format (after an optional system turn) ending in the generation prompt.
std::vector<int> encode_input(const Tokenizer& tok, const Opts& o, const std::string& text) {
  if (!o.chat) return tok.encode(text, o.add_special);
  std::vector<ChatMessage> msgs;
  if (!o.system.empty()) msgs.push_back({"system", o.system});
  msgs.push_back({"user", text});
  return encode_chat(tok, msgs, true);
}

// Calls f(json, line number) for every line of stdin parsed as JSON; any
// error, in parsing or in f, is reported naming the line.
template <class F>
void for_each_json_line(F f) {
  std::string line;
  long n = 0;
  while (std::getline(std::cin, line)) {
    ++n;
    const nlohmann::json j = parse_json(line, str("stdin line ", n));
    try {
      f(j, n);
    } catch (const Error& e) {
      const std::string msg = e.what();
      if (msg.rfind("stdin line ", 0) == 0) throw;
      fail("stdin line ", n, ": ", msg);
    }
  }
}

int run_tokenize(const Opts& o, bool text_given) {
  Tokenizer tok = load(o);
  if (!o.jsonl) {
    print_ids(encode_input(tok, o, text_given ? o.text : read_stdin()), false);
    return 0;
  }
  for_each_json_line([&](const nlohmann::json& j, long n) {
    if (!j.is_string()) fail("stdin line ", n, ": expected a JSON string, got ", j.type_name());
    print_ids(encode_input(tok, o, j.get_ref<const std::string&>()), true);
  });
  return 0;
}

int run_detokenize(const Opts& o) {
  Tokenizer tok = load(o);
  if (!o.jsonl) {
    std::cout << tok.decode(parse_ids(read_stdin()), o.skip_special);
    std::cout.flush();
    return 0;
  }
  for_each_json_line([&](const nlohmann::json& j, long n) {
    if (!j.is_array()) fail("stdin line ", n, ": expected a JSON array of token ids");
    std::vector<int> ids;
    for (auto& v : j) {
      if (!v.is_number_integer()) fail("stdin line ", n, ": token ids must be integers, got ", json_brief(v));
      const auto x = v.get<long long>();
      if (x < INT32_MIN || x > INT32_MAX) fail("stdin line ", n, ": token id ", x, " is out of range");
      ids.push_back((int)x);
    }
    std::cout << nlohmann::json(tok.decode(ids, o.skip_special))
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << '\n';
  });
  return 0;
}

Register tokenize_cmd("tokenize", "text (stdin, or -p) to token ids", [](CLI::App& app) {
  auto o = std::make_shared<Opts>();
  add_source(app, *o);
  auto* p = app.add_option("-p,--text", o->text, "the text (instead of stdin)");
  app.add_flag("--add-special", o->add_special, "add the model's special tokens (post-processor, e.g. BOS)");
  app.add_flag("--chat", o->chat, "the text is a user message: Huginn's chat format with the generation prompt");
  app.add_option("--system", o->system, "with --chat: a system message first");
  return [o, p]() { return run_tokenize(*o, p->count() > 0); };
});

Register detokenize_cmd("detokenize", "token ids (stdin) to text", [](CLI::App& app) {
  auto o = std::make_shared<Opts>();
  add_source(app, *o);
  app.add_flag("--skip-special", o->skip_special, "leave special tokens out of the text");
  return [o]() { return run_detokenize(*o); };
});

}  // namespace
}  // namespace huginn::cli
