// huginn chat: an interactive multi-turn conversation in the model's chat
// format, with every generation option of `huginn generate`. Each line on
// stdin is one user turn; /reset forgets the conversation, /quit ends.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "gen_options.h"
#include "huginn/common.h"
#include "huginn/generate.h"
#include "huginn/loaded_model.h"
#include "huginn/model.h"
#include "prompt.h"

namespace huginn::cli {
namespace {

struct ChatOpts {
  GenCliOptions gen;
  bool raw_ids = false;
  std::string system;
};

int run(ChatOpts& co) {
  GenCliOptions& o = co.gen;
  const LoadedModel lm = load_model(o.model, o.load_options());  // weights, tokenizer, stop ids: read once for every turn
  const Model& m = lm.model();
  if (o.mode() != "sequential") fail("chat decodes sequentially; --speculative and --parallel are for generate");
  if (!co.raw_ids) lm.need_tokenizer("the chat format");  // the clear "needs tokenizer" error
  o.model_stops = lm.stop_ids();
  o.check_stop_ids(m.config().vocab_size);
  TokenPrinter printer(lm.tokenizer());
  GenerateOptions g = o.generate_options(m.config(), printer.token_text());
  const bool tty = isatty(0);
  std::vector<ChatMessage> messages;
  if (!co.system.empty()) messages.push_back({"system", co.system});
  // The session keeps the KV cache between turns; each turn feeds only what
  // the conversation adds to what the cache already holds.
  Session session(m, g);
  std::string line;
  while (true) {
    if (tty) {
      std::printf("> ");
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      messages.resize(co.system.empty() ? 0 : 1);
      session.reset();
      std::printf("(conversation reset)\n");
      continue;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::vector<int> full;  // the whole conversation as the model should see it
    try {
      if (co.raw_ids) {
        std::vector<int> ids = parse_ids(line);
        m.check_tokens(ids.data(), (int)ids.size(), 0);
        full = session.history();
        full.insert(full.end(), ids.begin(), ids.end());
      } else {
        messages.push_back({"user", line});
        full = lm.encode_chat(messages, true);
      }
    } catch (const Error& e) {
      std::printf("error: %s\n", e.what());
      continue;
    }
    if ((int)full.size() >= m.config().block_size) {
      std::printf("error: the conversation (%zu tokens) fills the context of %d; /reset to start over\n",
                  full.size(), m.config().block_size);
      if (!co.raw_ids) messages.pop_back();
      continue;
    }
    const std::vector<int>& h = session.history();
    std::vector<int> turn;
    if (h.size() < full.size() && std::equal(h.begin(), h.end(), full.begin())) {
      turn.assign(full.begin() + h.size(), full.end());
    } else {  // the rendering changed what came before: start the cache over
      session.reset();
      turn = full;
    }
    const auto t0 = std::chrono::steady_clock::now();
    TokenPrinter out(lm.tokenizer());
    auto r = session.turn(turn, [&](const TokenEvent& ev) {
      if (ev.thought) return;
      if (!out.text() && lm.is_stop(ev.token)) return;  // stop tokens are not part of the reply
      const std::string s = out.push(ev.token, o.show_steps ? ev.steps : -1);
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    });
    const std::string rest = out.flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::printf("\n");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double mean = 0;
    for (int s : r.steps) mean += s;
    if (!r.steps.empty()) mean /= r.steps.size();
    std::fprintf(stderr, "(%zu tokens, %.2f tokens/s, mean %.2f iterations per token, %zu turn tokens fed, stop: %s)\n",
                 r.tokens.size(), secs > 0 ? r.tokens.size() / secs : 0.0, mean, turn.size(), r.stop_reason.c_str());
    if (!co.raw_ids) {
      std::vector<int> reply = r.tokens;
      if (!reply.empty() && r.stop_reason == "stop_token") reply.pop_back();
      messages.push_back({"Huginn", printer.render(reply)});
    }
  }
  return 0;
}

}  // namespace

static Register reg("chat", "interactive multi-turn chat in the model's chat format (one user turn per line)",
                    [](CLI::App& app) {
                      auto o = std::make_shared<ChatOpts>();
                      o->gen.add_to(app, false);
                      o->gen.spec.max_new_tokens = 256;
                      app.add_flag("--raw-ids", o->raw_ids,
                                   "each input line is token ids appended to the conversation (no chat format, "
                                   "no tokenizer needed)");
                      app.add_option("--system", o->system, "a system message opening the conversation");
                      return [o] { return run(*o); };
                    });
}  // namespace huginn::cli
