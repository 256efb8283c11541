// Huginn's chat format (spec section 7), its stop tokens, and generation_config.json.
#include <gtest/gtest.h>

#include "huginn/chat.h"
#include "huginn/common.h"
#include "tokenizer_test_util.h"

namespace huginn {
namespace {
using namespace testutil;

TEST(Chat, FormatMatchesTheSpec) {
  const std::vector<ChatMessage> msgs = {{"system", "You are Huginn."}, {"user", "What is 2+2?"}};
  EXPECT_EQ(format_chat(msgs, true),
            "<|begin_text|>"
            "<|begin_header|>system<|end_header|>\n\nYou are Huginn.<|end_turn|>"
            "<|begin_header|>user<|end_header|>\n\nWhat is 2+2?<|end_turn|>"
            "<|begin_header|>Huginn<|end_header|>\n\n");
  EXPECT_EQ(format_chat({{"user", "hi"}}, false), "<|begin_text|><|begin_header|>user<|end_header|>\n\nhi<|end_turn|>");
}

TEST(Chat, AssistantTurnsAreHuginn) {
  const std::string s = format_chat({{"user", "a"}, {"assistant", "b"}, {"user", "c"}}, true);
  EXPECT_EQ(s,
            "<|begin_text|><|begin_header|>user<|end_header|>\n\na<|end_turn|>"
            "<|begin_header|>Huginn<|end_header|>\n\nb<|end_turn|>"
            "<|begin_header|>user<|end_header|>\n\nc<|end_turn|>"
            "<|begin_header|>Huginn<|end_header|>\n\n");
  EXPECT_EQ(format_chat({{"Huginn", "b"}}, false), "<|begin_text|><|begin_header|>Huginn<|end_header|>\n\nb<|end_turn|>");
  EXPECT_EQ(format_chat({}, true), "<|begin_text|><|begin_header|>Huginn<|end_header|>\n\n");
  EXPECT_THROW(format_chat({{"", "x"}}, true), Error);
}

// A tokenizer with Huginn's special tokens at Huginn's ids, over single
// characters (enough to spell the roles and the messages of these tests).
json huginn_like_json() {
  json vocab;
  int id = 0;
  for (char c : std::string(" abcdefghijklmnopqrstuvwxyzHEU\n+=?.")) vocab[std::string(1, c)] = id++;
  json j = bpe_json(vocab, json::array());
  j["added_tokens"] = {added(65504, "<|begin_text|>", true), added(65505, "<|end_text|>", true),
                       added(65506, "<|begin_header|>", true), added(65507, "<|end_header|>", true),
                       added(65508, "<|end_turn|>", true), added(65509, "<|pad|>", true)};
  return j;
}
Tokenizer huginn_like() { return Tokenizer::from_json(huginn_like_json().dump()); }

TEST(Chat, EncodesSpecialTokensAndKnowsStopIds) {
  Tokenizer t = huginn_like();
  const auto ids = encode_chat(t, {{"user", "hi"}}, true);
  ASSERT_GE(ids.size(), 8u);
  EXPECT_EQ(ids[0], 65504);
  EXPECT_EQ(ids[1], 65506);
  EXPECT_EQ(ids.back(), t.token_to_id("\n"));
  EXPECT_EQ(t.decode(ids), "<|begin_text|> <|begin_header|> u s e r <|end_header|> \n \n h i <|end_turn|> "
                           "<|begin_header|> H u g i n n <|end_header|> \n \n");
  EXPECT_EQ(chat_stop_ids(t), std::vector<int>({65504, 65505, 65508}));
  GenerationConfig gc = parse_generation_config(R"({"eos_token_id": [65505, 7]})");
  EXPECT_EQ(stop_ids(t, gc), std::vector<int>({65504, 65505, 65508, 7}));
}

TEST(Chat, RejectsTokenizersWithoutChatTokens) {
  json vocab = {{"a", 0}};
  Tokenizer t = Tokenizer::from_json(bpe_json(vocab, json::array()).dump());
  EXPECT_THROW(encode_chat(t, {{"user", "a"}}), Error);
  EXPECT_THROW(chat_stop_ids(t), Error);
}

TEST(Chat, PromptIdsFromIdsTextFileOrChat) {
  TempDir d;
  d.write("tokenizer.json", huginn_like_json().dump());
  const std::string dir = d.path.string();
  auto src = [](std::string ids, std::string text, std::string file, bool chat = false) {
    PromptSource p;
    p.ids = std::move(ids);
    p.text = std::move(text);
    p.file = std::move(file);
    p.chat = chat;
    return p;
  };
  EXPECT_EQ(prompt_ids(dir, src("[1, 2,3]", "", "")), std::vector<int>({1, 2, 3}));
  const Tokenizer t = load_model_tokenizer(dir);
  EXPECT_EQ(prompt_ids(dir, src("", "ab", "")), t.encode("ab"));
  d.write("prompt.txt", "ab\n");
  EXPECT_EQ(prompt_ids(dir, src("", "", (d.path / "prompt.txt").string())), t.encode("ab\n"));
  EXPECT_EQ(prompt_ids(dir, src("", "hi", "", true)), encode_chat(t, {{"user", "hi"}}));
  EXPECT_THROW(prompt_ids(dir, src("", "", "")), Error);
  EXPECT_THROW(prompt_ids(dir, src("1", "a", "")), Error);
  EXPECT_THROW(prompt_ids(dir, src("1 x", "", "")), Error);
  EXPECT_THROW(prompt_ids(dir, src("1", "", "", true)), Error);
  EXPECT_THROW(prompt_ids(dir, src("", "", "/nonexistent")), Error);
}

TEST(GenerationConfig, ReadsHuginnStyleFile) {
  TempDir d;
  d.write("generation_config.json",
          R"({"_from_model_config": true, "bos_token_id": 65504, "eos_token_id": 65505,
              "pad_token_id": 65509, "temperature": 0.7, "do_sample": true, "top_p": 0.9,
              "min_p": 0.05, "max_new_tokens": 256, "transformers_version": "4.44.2"})");
  const GenerationConfig g = read_generation_config(d.path.string());
  EXPECT_TRUE(g.from_file);
  EXPECT_EQ(g.bos_token_id, 65504);
  EXPECT_EQ(g.eos_token_ids, std::vector<int>({65505}));
  EXPECT_EQ(g.pad_token_id, 65509);
  EXPECT_FLOAT_EQ(g.temperature, 0.7f);
  EXPECT_TRUE(g.do_sample);
  EXPECT_FLOAT_EQ(g.top_p, 0.9f);
  EXPECT_EQ(g.top_k, 50);  // absent: HF's default
  EXPECT_FLOAT_EQ(g.min_p, 0.05f);
  EXPECT_EQ(g.max_new_tokens, 256);
}

TEST(GenerationConfig, DefaultsAndErrors) {
  TempDir d;
  const GenerationConfig g = read_generation_config(d.path.string());
  EXPECT_FALSE(g.from_file);
  EXPECT_EQ(g.bos_token_id, -1);
  EXPECT_FALSE(g.do_sample);
  EXPECT_FLOAT_EQ(g.temperature, 1.0f);
  EXPECT_EQ(g.max_new_tokens, -1);
  EXPECT_THROW(parse_generation_config("{\"temperature\": "), Error);
  EXPECT_THROW(parse_generation_config("{\"temperature\": \"hot\"}"), Error);
  EXPECT_THROW(parse_generation_config("{\"eos_token_id\": \"x\"}"), Error);
  EXPECT_THROW(parse_generation_config("{\"top_p\": 0}"), Error);
  EXPECT_THROW(parse_generation_config("{\"do_sample\": 1}"), Error);
  // integer keys out of int range (a float beyond int64 was undefined behaviour; fuzz_chat found it)
  EXPECT_THROW(parse_generation_config("{\"bos_token_id\": 55555555555555555555555555555555555555558}"), Error);
  EXPECT_THROW(parse_generation_config("{\"top_k\": 1e300}"), Error);
  EXPECT_THROW(parse_generation_config("{\"max_new_tokens\": 18446744073709551615}"), Error);
  EXPECT_THROW(parse_generation_config("{\"pad_token_id\": 2.5}"), Error);
  EXPECT_THROW(parse_generation_config("{\"eos_token_id\": [2, 4294967296]}"), Error);
  EXPECT_EQ(parse_generation_config("{\"top_k\": 40.0}").top_k, 40);
}

}  // namespace
}  // namespace huginn
