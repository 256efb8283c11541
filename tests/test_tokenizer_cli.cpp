// huginn tokenize / detokenize as a user runs them: output formats, --jsonl,
// -m MODEL_DIR, and one-line errors with a non-zero exit for bad input.
#include <gtest/gtest.h>

#include "text/components.h"
#include "tokenizer_test_util.h"

namespace huginn {
namespace {
using namespace testutil;

// Byte-level: the 256 byte characters plus "Ġt"+"he" style merges, a BOS
// template, and a special token.
std::string write_tokenizer(const TempDir& d) {
  json vocab;
  for (int b = 0; b < 256; ++b) vocab[text::byte_to_char((unsigned char)b)] = b;
  vocab["he"] = 256;
  vocab["the"] = 257;
  vocab["\xC4\xA0the"] = 258;  // "Ġthe"
  json j = bpe_json(vocab, {"h e", "t he", "\xC4\xA0 the"});
  j["added_tokens"] = {added(300, "<s>", true)};
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                         {"pair", json::array()},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {300}}, {"tokens", {"<s>"}}}}}}};
  return d.write("tokenizer.json", j.dump());
}

void expect_error(const RunResult& r, const std::string& what) {
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one line
}

TEST(TokenizeCli, TextToIdsAndBack) {
  TempDir d;
  const std::string tok = write_tokenizer(d);
  auto r = run_cli("tokenize --tokenizer " + tok, "the the");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "257 258\n");
  r = run_cli("tokenize --tokenizer " + tok + " --add-special -p 'the'", "");
  EXPECT_EQ(r.out, "300 257\n");
  r = run_cli("detokenize --tokenizer " + tok, "300, 257 258");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "<s>the the");
  r = run_cli("detokenize --tokenizer " + tok + " --skip-special", "[300, 257, 258]");
  EXPECT_EQ(r.out, "the the");
  // -m: the tokenizer.json of a model directory.
  r = run_cli("tokenize -m " + d.path.string(), "the");
  EXPECT_EQ(r.out, "257\n");
}

TEST(TokenizeCli, Jsonl) {
  TempDir d;
  const std::string tok = write_tokenizer(d);
  auto r = run_cli("tokenize --tokenizer " + tok + " --jsonl", "\"the\"\n\"\"\n\"a\\nb\"\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "[257]\n[]\n[97,10,98]\n");
  r = run_cli("detokenize --tokenizer " + tok + " --jsonl", "[257]\n[]\n[97,10,98]\n[240,159]\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "\"the\"\n\"\"\n\"a\\nb\"\n\"\xEF\xBF\xBD\"\n");
}

TEST(TokenizeCli, BadInputGivesOneLineErrors) {
  TempDir d;
  const std::string tok = write_tokenizer(d);
  expect_error(run_cli("tokenize --tokenizer " + tok, "ok \xFF\xFE"), "not valid UTF-8 (at byte 3)");
  expect_error(run_cli("tokenize --tokenizer " + tok + " --jsonl", "\"ok\"\nnot json\n"), "stdin line 2");
  expect_error(run_cli("tokenize --tokenizer " + tok + " --jsonl", "[1]\n"), "expected a JSON string");
  expect_error(run_cli("detokenize --tokenizer " + tok, "1 2 999"), "token id 999 is not in the vocabulary");
  expect_error(run_cli("detokenize --tokenizer " + tok, "1 x"), "invalid token id 'x'");
  expect_error(run_cli("detokenize --tokenizer " + tok + " --jsonl", "[1, -5]\n"), "token id -5");
  expect_error(run_cli("detokenize --tokenizer " + tok + " --jsonl", "[1, 2.5]\n"), "must be integers");
  expect_error(run_cli("tokenize", "x"), "give a tokenizer");
}

TEST(TokenizeCli, BadTokenizerFilesGiveOneLineErrors) {
  TempDir d;
  const std::string good = json::parse(std::ifstream(write_tokenizer(d))).dump();
  const std::string truncated = d.write("truncated.json", good.substr(0, good.size() / 3));
  expect_error(run_cli("tokenize --tokenizer " + truncated, "x"), "invalid JSON");
  json j = json::parse(good);
  j["normalizer"] = {{"type", "BertNormalizer"}};
  const std::string unknown = d.write("unknown.json", j.dump());
  expect_error(run_cli("tokenize --tokenizer " + unknown, "x"), "unsupported normalizer type 'BertNormalizer'");
  j = json::parse(good);
  j["model"]["merges"] = {"h e", 7};
  expect_error(run_cli("tokenize --tokenizer " + d.write("merges.json", j.dump()), "x"), "merge 1");
  expect_error(run_cli("tokenize --tokenizer " + d.write("empty.json", ""), "x"), "invalid JSON");
  expect_error(run_cli("tokenize --tokenizer " + (d.path / "none.json").string(), "x"), "cannot open");
  TempDir empty_model;
  expect_error(run_cli("tokenize -m " + empty_model.path.string(), "x"), "has no tokenizer.json");
}

}  // namespace
}  // namespace huginn
