// The loaded-model bundle: a model directory read once (its tokenizer.json
// parsed once however many prompts, turns and requests use it), the stop ids
// it resolves, and the CLI's use of it (`generate -p`, a multi-turn `chat`).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "huginn/checkpoint.h"
#include "huginn/generate.h"
#include "huginn/loaded_model.h"
#include "huginn/model.h"
#include "huginn/server_api.h"
#include "huginn/tokenizer.h"
#include "test_util.h"
#include "tokenizer_test_util.h"

namespace huginn {
namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;

// A tiny random model whose tokenizer has Huginn's chat tokens (inside its vocabulary).
json chat_tokenizer_json() {
  json vocab;
  int id = 0;
  vocab["\n"] = id++;
  for (char ch = ' '; id < 90; ++ch) vocab[std::string(1, ch)] = id++;  // every id a model of vocab 96 can emit
  json j = testutil::bpe_json(vocab, json::array());
  j["added_tokens"] = {testutil::added(90, "<|begin_text|>", true), testutil::added(91, "<|end_text|>", true),
                       testutil::added(92, "<|begin_header|>", true), testutil::added(93, "<|end_header|>", true),
                       testutil::added(94, "<|end_turn|>", true), testutil::added(95, "<|pad|>", true)};
  j["decoder"] = {{"type", "Fuse"}};
  return j;
}

struct ModelDir {
  fs::path path = test::temp_dir("bundle");
  explicit ModelDir(bool tokenizer = true, const std::string& generation_config = "") {
    const ModelConfig c = test::tiny_config(32, 2, 96, 96);
    const std::vector<float> flat = init_params(c, 5);
    save_checkpoint(path.string(), c, flat.data());
    if (tokenizer) std::ofstream(path / "tokenizer.json") << chat_tokenizer_json().dump();
    if (!generation_config.empty()) std::ofstream(path / "generation_config.json") << generation_config;
  }
  ~ModelDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

TEST(LoadedModel, ParsesTheTokenizerOnceForEveryUse) {
  ModelDir d;
  const uint64_t before = tokenizer_parse_count();
  const LoadedModel lm = load_model(d.str());
  EXPECT_EQ(tokenizer_parse_count(), before + 1);
  ASSERT_NE(lm.tokenizer(), nullptr);
  EXPECT_TRUE(lm.chat_format().available());
  // prompts, chat turns, token texts, a server: no further parse
  PromptSource ps;
  ps.text = "hi";
  EXPECT_EQ(lm.prompt_ids(ps), lm.tokenizer()->encode("hi", true));
  std::vector<ChatMessage> msgs = {{"user", "hi"}};
  for (int turn = 0; turn < 3; ++turn) {
    EXPECT_FALSE(lm.encode_chat(msgs).empty());
    msgs.push_back({"assistant", "ok"});
    msgs.push_back({"user", "again"});
  }
  EXPECT_EQ(lm.token_text()(66), "a");
  const serve::Api api(lm);
  const serve::ApiRequest r = api.parse(R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})", true);
  EXPECT_EQ(r.options.stop_tokens, lm.stop_ids());
  EXPECT_EQ(tokenizer_parse_count(), before + 1);
  // Api::for_model_dir reads the directory's files once too
  const serve::Api api2 = serve::Api::for_model_dir(lm.model(), d.str());
  EXPECT_EQ(tokenizer_parse_count(), before + 2);
  EXPECT_EQ(api2.models()["data"][0]["huginn"]["stop_tokens"], json(lm.stop_ids()));
}

TEST(LoadedModel, StopIdsFromTokenizerConfigOrFamily) {
  {  // the tokenizer's chat end tokens, then generation_config's eos ids
    ModelDir d(true, R"({"eos_token_id": [91, 7]})");
    const LoadedModel lm = load_model(d.str());
    EXPECT_EQ(lm.stop_ids(), std::vector<int>({90, 91, 94, 7}));
    EXPECT_TRUE(lm.is_stop(7));
    EXPECT_FALSE(lm.is_stop(92));
    EXPECT_EQ(lm.stop_ids(), model_stop_ids(d.str()));  // the older directory function agrees
  }
  {  // no tokenizer: generation_config's eos ids
    ModelDir d(false, R"({"eos_token_id": 3})");
    const LoadedModel lm = load_model(d.str());
    EXPECT_EQ(lm.tokenizer(), nullptr);
    EXPECT_EQ(lm.stop_ids(), std::vector<int>({3}));
  }
  {  // neither: the model family's default
    ModelDir d(false);
    const LoadedModel lm = load_model(d.str());
    EXPECT_EQ(lm.stop_ids(), default_stop_tokens(lm.config()));
    EXPECT_EQ(lm.stop_ids(), default_stop_tokens());
    EXPECT_FALSE(lm.chat_format().available());
    // text needs the tokenizer: one clear line
    try {
      (void)lm.need_tokenizer("-p/--prompt");
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("-p/--prompt needs the model's tokenizer.json"), std::string::npos);
    }
    PromptSource ps;
    ps.text = "x";
    EXPECT_THROW(lm.prompt_ids(ps), Error);
    ps = {};
    ps.ids = "1,2";
    EXPECT_EQ(lm.prompt_ids(ps), std::vector<int>({1, 2}));
  }
}

TEST(LoadedModel, WithoutWeightsAndBadPaths) {
  ModelDir d;
  const LoadedModel files = load_model(d.str(), LoadOptions{.weights = false});
  EXPECT_FALSE(files.has_model());
  EXPECT_NE(files.tokenizer(), nullptr);
  EXPECT_THROW(files.model(), Error);
  const LoadedModel tok_only = load_model((d.path / "tokenizer.json").string(), LoadOptions{.weights = false});
  EXPECT_NE(tok_only.tokenizer(), nullptr);
  EXPECT_THROW(load_model("/nonexistent/model"), Error);
  EXPECT_THROW(load_model("/nonexistent/model", LoadOptions{.weights = false}), Error);
  const LoadedModel no_tok = load_model(d.str(), LoadOptions{.tokenizer = false});
  EXPECT_EQ(no_tok.tokenizer(), nullptr);
  EXPECT_TRUE(no_tok.has_model());
}

// The CLI reports what it parsed under HUGINN_STATS=1.
std::string parses(const std::string& err) {
  const auto at = err.find("stats: tokenizer.json parsed ");
  if (at == std::string::npos) return "(no stats line)";
  return err.substr(at + 29, err.find(' ', at + 29) - at - 29);
}

TEST(LoadedModel, CliParsesTheTokenizerOnce) {
  ModelDir d;
  setenv("HUGINN_STATS", "1", 1);
  auto g = test::run_cli("generate -m " + d.str() + " -p 'hi there' --steps 2 -n 3");
  auto c = test::run_cli("chat -m " + d.str() + " --steps 2 -n 3", "hello\nhow are you\nbye\n");
  unsetenv("HUGINN_STATS");
  EXPECT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(parses(g.err), "1") << g.err;
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(parses(c.err), "1") << c.err;
}

}  // namespace
}  // namespace huginn
