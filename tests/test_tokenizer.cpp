// The tokenizer on small hand-made tokenizer.json files: BPE merge order, both
// merge forms, byte fallback, unknown tokens, subword prefixes, added tokens and
// their flags, streaming, and the errors for bad files and bad input.
// (Exact parity with Hugging Face on real tokenizers: tests/parity, ctest
// tokenizer.parity.)
#include <gtest/gtest.h>

#include "huginn/common.h"
#include "huginn/tokenizer.h"
#include "text/components.h"
#include "text/unicode.h"
#include "tokenizer_test_util.h"

namespace huginn {
namespace {
using testutil::added;
using testutil::bpe_json;
using testutil::json;

Tokenizer load(const json& j) { return Tokenizer::from_json(j.dump(), "test.json"); }
std::vector<int> V(std::initializer_list<int> x) { return std::vector<int>(x); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const json kAbcVocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};

TEST(Tokenizer, MergesApplyInRankOrder) {
  // "b c" ranks first: a + bc, and there is no merge for (a, bc).
  EXPECT_EQ(load(bpe_json(kAbcVocab, {"b c", "a b", "ab c"})).encode("abc"), V({0, 4}));
  // "a b" first: ab, then ab + c.
  EXPECT_EQ(load(bpe_json(kAbcVocab, {"a b", "b c", "ab c"})).encode("abc"), V({5}));
}

TEST(Tokenizer, BothMergeFormsAgree) {
  const json strings = {"a b", "ab c"};
  const json pairs = json::array({json::array({"a", "b"}), json::array({"ab", "c"})});
  const std::string text = "abcabcbca";
  EXPECT_EQ(load(bpe_json(kAbcVocab, strings)).encode(text), load(bpe_json(kAbcVocab, pairs)).encode(text));
  EXPECT_EQ(load(bpe_json(kAbcVocab, pairs)).encode(text), V({5, 5, 1, 2, 0}));
}

TEST(Tokenizer, EqualRanksMergeLeftmostFirst) {
  const json vocab = {{"a", 0}, {"aa", 1}};
  EXPECT_EQ(load(bpe_json(vocab, {"a a"})).encode("aaa"), V({1, 0}));
  EXPECT_EQ(load(bpe_json(vocab, {"a a"})).encode("aaaa"), V({1, 1}));
}

json byte_fallback_json(bool fuse_unk, bool byte_fallback) {
  json vocab = {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"ab", 3}, {"\xE2\x96\x81", 4}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    vocab[buf] = 10 + b;
  }
  json j = bpe_json(vocab, {"a b"});
  j["model"]["unk_token"] = "<unk>";
  j["model"]["fuse_unk"] = fuse_unk;
  j["model"]["byte_fallback"] = byte_fallback;
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                                {{"type", "ByteFallback"}},
                                {{"type", "Fuse"}}}}};
  return j;
}

TEST(Tokenizer, ByteFallbackAndDecode) {
  Tokenizer t = load(byte_fallback_json(true, true));
  // é is not in the vocabulary: its UTF-8 bytes C3 A9.
  EXPECT_EQ(t.encode("ab\xC3\xA9"), V({3, 10 + 0xC3, 10 + 0xA9}));
  EXPECT_EQ(t.decode({3, 10 + 0xC3, 10 + 0xA9}), "ab\xC3\xA9");
  // A lone continuation byte cannot be decoded: one U+FFFD per byte token.
  EXPECT_EQ(t.decode({10 + 0xA9, 10 + 0xC3, 1}), "\xEF\xBF\xBD\xEF\xBF\xBD" "a");
}

TEST(Tokenizer, UnknownTokensFusedOrNot) {
  EXPECT_EQ(load(byte_fallback_json(true, false)).encode("xya"), V({0, 1}));
  EXPECT_EQ(load(byte_fallback_json(false, false)).encode("xya"), V({0, 0, 1}));
  json none = byte_fallback_json(false, false);
  none["model"]["unk_token"] = nullptr;  // unknown characters vanish, as in HF
  EXPECT_EQ(load(none).encode("xya"), V({1}));
}

TEST(Tokenizer, SubwordPrefixAndSuffix) {
  json j = bpe_json({{"a", 0}, {"##b", 1}, {"##c</w>", 2}, {"ab", 3}, {"abc</w>", 4}, {"b", 5}},
                    {"a ##b", "ab ##c</w>"});
  j["model"]["continuing_subword_prefix"] = "##";
  j["model"]["end_of_word_suffix"] = "</w>";
  // a ##b ##c</w>: merges drop the right part's prefix: ab, then abc</w>.
  EXPECT_EQ(load(j).encode("abc"), V({4}));
  EXPECT_EQ(load(j).encode("ab"), V({0}));  // the last b is "##b</w>": unknown, no unk_token: dropped
  EXPECT_EQ(load(j).encode("b"), V({}));       // "b</w>" unknown and no unk_token: dropped
}

TEST(Tokenizer, IgnoreMergesTakesWholeWords) {
  json vocab = kAbcVocab;
  vocab["ca"] = 6;
  json j = bpe_json(vocab, {"a b"});
  EXPECT_EQ(load(j).encode("ca"), V({2, 0}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(load(j).encode("ca"), V({6}));
}

json letters_json() {
  json vocab;
  int id = 0;
  for (char c : std::string(" abcdefghijklmnopqrstuvwxyz<>!")) vocab[std::string(1, c)] = id++;
  return bpe_json(vocab, json::array());
}

TEST(Tokenizer, AddedTokenFlags) {
  json j = letters_json();
  j["added_tokens"] = {added(100, "<m>", true, /*lstrip*/ true, /*rstrip*/ true), added(101, "cat", false, false, false,
                                                                                         /*single_word*/ true)};
  Tokenizer t = load(j);
  const int a = t.token_to_id("a"), x = t.token_to_id("x"), sp = t.token_to_id(" ");
  // lstrip/rstrip swallow the spaces around <m>.
  EXPECT_EQ(t.encode("x  <m>  a"), V({x, 100, a}));
  // single_word: only a whole word matches.
  EXPECT_EQ(t.encode("a cat!"), V({a, sp, 101, t.token_to_id("!")}));
  EXPECT_EQ(t.encode("cats")[0], t.token_to_id("c"));
  EXPECT_TRUE(t.is_special(100));
  EXPECT_FALSE(t.is_special(101));
  EXPECT_EQ(t.decode({x, 100, a}, false), "x <m> a");  // no decoder: tokens joined by spaces
  EXPECT_EQ(t.decode({x, 100, a}, true), "x a");
  EXPECT_EQ(t.vocab_size(), 102);
  EXPECT_EQ(t.id_to_token(101), "cat");
  EXPECT_EQ(t.token_to_id("<nope>"), -1);
}

TEST(Tokenizer, NormalizedAddedTokensMatchAfterNormalization) {
  json j = letters_json();
  j["normalizer"] = {{"type", "Lowercase"}};
  j["added_tokens"] = {added(100, "HELLO", false, false, false, false, /*normalized*/ true)};
  Tokenizer t = load(j);
  EXPECT_EQ(t.encode("Hello"), V({100}));
  EXPECT_EQ(t.encode("hello"), V({100}));
}

TEST(Tokenizer, TemplatePostProcessorOnlyWithAddSpecial) {
  json j = letters_json();
  j["added_tokens"] = {added(100, "<s>", true)};
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                         {"pair", json::array()},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {100}}, {"tokens", {"<s>"}}}}}}};
  Tokenizer t = load(j);
  EXPECT_EQ(t.encode("a", true), V({100, t.token_to_id("a")}));
  EXPECT_EQ(t.encode("a", false), V({t.token_to_id("a")}));
  EXPECT_EQ(t.encode("", true), V({100}));
}

TEST(Tokenizer, ByteLevelRoundTrip) {
  // All 256 byte characters, no merges: every UTF-8 byte is one token.
  json vocab;
  for (int b = 0; b < 256; ++b) vocab[text::byte_to_char((unsigned char)b)] = b;
  json j = bpe_json(vocab, json::array());
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}};
  Tokenizer t = load(j);
  const std::string s = "Hello, w\xC3\xB6rld!\n\t\xF0\x9F\x98\x80  x";
  const auto ids = t.encode(s);
  EXPECT_EQ(ids.size(), s.size());
  EXPECT_EQ(ids[0], 'H');
  EXPECT_EQ(t.decode(ids), s);
  // Half an emoji decodes to U+FFFD, like Rust's from_utf8_lossy.
  EXPECT_EQ(t.decode({0xF0, 0x9F, 'x'}), "\xEF\xBF\xBDx");
}

TEST(Tokenizer, StreamingHoldsBackPartialCharacters) {
  Tokenizer t = load(byte_fallback_json(true, true));
  TextStream ts(t);
  EXPECT_EQ(ts.push(1), "a");
  EXPECT_EQ(ts.push(10 + 0xC3), "");
  EXPECT_EQ(ts.push(10 + 0xA9), "\xC3\xA9");
  EXPECT_EQ(ts.push(4), " ");
  EXPECT_EQ(ts.push(10 + 0xE2), "");
  EXPECT_EQ(ts.flush(), "\xEF\xBF\xBD");  // an unfinished character at the end
}

TEST(Tokenizer, StreamingEqualsDecodingAll) {
  // A Metaspace decoder strips the first token's leading space: the stream
  // must still produce exactly decode(all ids).
  json j = byte_fallback_json(true, true);
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", {{{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}},
                                {{"type", "ByteFallback"}},
                                {{"type", "Fuse"}}}}};
  Tokenizer t = load(j);
  const std::vector<int> ids = {4, 3, 4, 1, 10 + 0xF0, 10 + 0x9F, 10 + 0x98, 10 + 0x80, 4, 2, 4, 4, 3};
  TextStream ts(t);
  std::string streamed;
  for (int id : ids) streamed += ts.push(id);
  streamed += ts.flush();
  EXPECT_EQ(streamed, t.decode(ids));
  EXPECT_EQ(streamed, "ab a\xF0\x9F\x98\x80 b  ab");
}

TEST(Unicode, LossyDecodingLikeRust) {
  using text::utf8_lossy;
  EXPECT_EQ(utf8_lossy("ok"), "ok");
  EXPECT_EQ(utf8_lossy("\xE2\x82" "A"), "\xEF\xBF\xBD" "A");                   // truncated sequence: one U+FFFD
  EXPECT_EQ(utf8_lossy("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");               // overlong: one per byte
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(text::find_invalid_utf8("ab\xFF"), 2u);
  EXPECT_EQ(text::find_invalid_utf8("\xF0\x9F\x98\x80"), std::string::npos);
}

// ---- errors -------------------------------------------------------------------

TEST(TokenizerErrors, MalformedOrTruncatedJson) {
  const std::string full = letters_json().dump();
  EXPECT_NE(error_of([&] { Tokenizer::from_json(full.substr(0, full.size() / 2), "t.json"); }).find("invalid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([&] { Tokenizer::from_json("[1, 2]", "t.json"); }).find("t.json"), std::string::npos);
  EXPECT_NE(error_of([&] { Tokenizer::from_json("{\"version\": \"1.0\"}", "t.json"); }).find("no \"model\""),
            std::string::npos);
  json j = letters_json();
  j["model"]["vocab"] = "nope";
  EXPECT_NE(error_of([&] { load(j); }).find("vocab"), std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_file("/nonexistent/tokenizer.json"); }).find("cannot open"),
            std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_file("/tmp"); }).find("is a directory"), std::string::npos);
}

TEST(TokenizerErrors, UnsupportedComponentsAreNamed) {
  struct Case {
    const char* section;
    json value;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"normalizer", {{"type", "Precompiled"}, {"precompiled_charsmap", ""}}, "unsupported normalizer type 'Precompiled'"},
      {"pre_tokenizer", {{"type", "UnicodeScripts"}}, "unsupported pre_tokenizer type 'UnicodeScripts'"},
      {"post_processor", {{"type", "Shuffle"}}, "unsupported post_processor type 'Shuffle'"},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}}, "unsupported decoder type 'WordPiece'"},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Bogus"}}}}},
       "pre_tokenizer.pretokenizers[0]: unsupported pre_tokenizer type 'Bogus'"},
  };
  for (const Case& c : cases) {
    json j = letters_json();
    j[c.section] = c.value;
    EXPECT_NE(error_of([&] { load(j); }).find(c.expect), std::string::npos) << error_of([&] { load(j); });
  }
  json j = letters_json();
  j["model"]["type"] = "Unigram";
  EXPECT_NE(error_of([&] { load(j); }).find("unsupported model type 'Unigram'"), std::string::npos);
}

TEST(TokenizerErrors, BadModelContents) {
  json j = bpe_json(kAbcVocab, {"a b", "a z"});
  EXPECT_NE(error_of([&] { load(j); }).find("'z' is not in the vocabulary"), std::string::npos);
  j = bpe_json(kAbcVocab, {"c a"});
  EXPECT_NE(error_of([&] { load(j); }).find("merged token 'ca'"), std::string::npos);
  j = bpe_json(kAbcVocab, {"a b c"});
  EXPECT_NE(error_of([&] { load(j); }).find("merge 0"), std::string::npos);
  j = bpe_json({{"a", 0}, {"b", 2000000000}}, json::array());
  EXPECT_NE(error_of([&] { load(j); }).find("largest id 2000000000 for only 2 tokens"), std::string::npos);
  j = letters_json();
  j["added_tokens"] = {added(-3, "<x>", true)};
  EXPECT_NE(error_of([&] { load(j); }).find("added token: a token id must be an integer in [0, 2^31), got the number -3"), std::string::npos);
  j = bpe_json(kAbcVocab, json::array());
  j["model"]["dropout"] = 0.1;
  EXPECT_NE(error_of([&] { load(j); }).find("dropout"), std::string::npos);
  j = bpe_json(kAbcVocab, json::array());
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_NE(error_of([&] { load(j); }).find("invalid regex"), std::string::npos);
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "x"}}}, {"behavior", "Sideways"}};
  EXPECT_NE(error_of([&] { load(j); }).find("unknown split behavior 'Sideways'"), std::string::npos);
  // Counts are checked before converting (1e300 to an integer would be undefined behaviour; the fuzzer found it).
  j = bpe_json(kAbcVocab, json::array());
  for (const json& bad : {json(1e300), json(-1), json(2.5), json("1")}) {
    j["decoder"] = {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", bad}};
    EXPECT_NE(error_of([&] { load(j); }).find("field \"stop\" must be an integer in [0, 2^31)"), std::string::npos)
        << bad.dump();
  }
  j["decoder"] = {{"type", "Strip"}, {"content", " "}, {"stop", 0}};
  EXPECT_NE(error_of([&] { load(j); }).find("field \"start\" must be an integer in [0, 2^31), got nothing"),
            std::string::npos);
  j["decoder"] = {{"type", "Strip"}, {"content", " "}, {"start", 1.0}, {"stop", 0}};
  EXPECT_NO_THROW(load(j));
}

TEST(TokenizerErrors, BadInput) {
  Tokenizer t = load(bpe_json(kAbcVocab, {"a b"}));
  EXPECT_NE(error_of([&] { t.encode("ab\xC3"); }).find("not valid UTF-8 (at byte 2)"), std::string::npos);
  EXPECT_NE(error_of([&] { t.encode("\xED\xA0\x80"); }).find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(error_of([&] { t.decode({0, 6}); }).find("token id 6 is not in the vocabulary"), std::string::npos);
  EXPECT_NE(error_of([&] { t.decode({-1}); }).find("token id -1"), std::string::npos);
  // Generated text: ids beyond the tokenizer (a padded model vocabulary) have no text, as in HF's decode.
  EXPECT_EQ(t.decode({0, 6, 1, -1}, false, true), t.decode({0, 1}));
  TextStream ts(t);
  std::string streamed;
  for (int id : {0, 6, 1}) streamed += ts.push(id);
  EXPECT_EQ(streamed + ts.flush(), t.decode({0, 1}));
}

TEST(TokenizerErrors, ModelDirectoryWithoutTokenizer) {
  testutil::TempDir d;
  EXPECT_NE(error_of([&] { load_model_tokenizer(d.path.string()); }).find("has no tokenizer.json"), std::string::npos);
  EXPECT_NE(error_of([&] { load_model_tokenizer((d.path / "missing").string()); }).find("does not exist"),
            std::string::npos);
  d.write("tokenizer.json", letters_json().dump());
  EXPECT_EQ(load_model_tokenizer(d.path.string()).encode("ab").size(), 2u);
}

}  // namespace
}  // namespace huginn
