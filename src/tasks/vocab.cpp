// The character tokenizer of the task models, and its tokenizer.json.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "huginn/atomic_file.h"
#include "huginn/common.h"
#include "huginn/json.h"
#include "huginn/tasks.h"
#include "huginn/tokenizer.h"

namespace huginn::tasks {

const char* const kBosText = "<|begin_text|>";
const char* const kEosText = "<|end_text|>";
const char* const kPadText = "<|pad|>";

namespace {
constexpr int kSpaceId = 94;
constexpr int kNewlineId = 95;

// The GPT-2 byte-level alphabet form of a character (what the BPE vocabulary
// holds): printable ASCII maps to itself, space to U+0120, newline to U+010A.
std::string byte_level(char c) {
  if (c == ' ') return "\xC4\xA0";
  if (c == '\n') return "\xC4\x8A";
  return std::string(1, c);
}
}  // namespace

int char_id(char c) {
  if (c >= '!' && c <= '~') return c - '!';
  if (c == ' ') return kSpaceId;
  if (c == '\n') return kNewlineId;
  fail("character ", (int)(unsigned char)c, " is not in the task models' character vocabulary");
}

char id_char(int id) {
  if (id >= 0 && id < 94) return (char)('!' + id);
  if (id == kSpaceId) return ' ';
  if (id == kNewlineId) return '\n';
  return 0;
}

std::vector<int> encode_chars(const std::string& text) {
  std::vector<int> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(char_id(c));
  return ids;
}

std::string decode_ids(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) {
    if (id == kBosId) s += kBosText;
    else if (id == kEosId) s += kEosText;
    else if (id == kPadId) s += kPadText;
    else if (char c = id_char(id)) s += c;
    else s += str("<|id", id, "|>");
  }
  return s;
}

std::string decode_answer_text(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) {
    if (id == kEosId) break;
    if (id == kBosId || id == kPadId) continue;
    if (char c = id_char(id)) s += c;
    else s += '?';  // an id outside the character vocabulary never matches an answer
  }
  return s;
}

nlohmann::json tokenizer_json() {
  using nlohmann::json;
  json vocab = json::object();
  for (int id = 0; id < kBosId; ++id) vocab[byte_level(id_char(id))] = id;
  json added = json::array();
  const std::pair<int, const char*> specials[] = {{kBosId, kBosText}, {kEosId, kEosText}, {kPadId, kPadText}};
  for (auto [id, text] : specials) {
    vocab[text] = id;
    added.push_back({{"id", id},
                     {"content", text},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"vocab", vocab},
                {"merges", json::array()}};
  json byte_level_opts = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                          {"use_regex", true}};
  // With special tokens requested, encoding adds BOS in front, as task prompts have it.
  json seq = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
  json bos = {{"SpecialToken", {{"id", kBosText}, {"type_id", 0}}}};
  json post = {{"type", "TemplateProcessing"},
               {"single", {bos, seq}},
               {"pair", {bos, seq, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
               {"special_tokens", {{kBosText, {{"id", kBosText}, {"ids", {kBosId}}, {"tokens", {kBosText}}}}}}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level_opts},
          {"post_processor", post},
          {"decoder", byte_level_opts},
          {"model", model}};
}

void check_char_tokenizer(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path path = fs::path(model_dir) / "tokenizer.json";
  if (!fs::exists(path)) return;
  const nlohmann::json j = parse_json_file(path.string());
  const auto ours = tokenizer_json()["model"]["vocab"];
  if (!j.contains("model") || !j["model"].contains("vocab") || j["model"]["vocab"] != ours)
    fail(path.string(), ": not the task models' character tokenizer (this command decodes task answers with it)");
}

void check_char_tokenizer(const Tokenizer* tok, const std::string& origin) {
  if (!tok) return;
  bool same = tok->vocab_size() == kCharVocabSize;
  for (int id = 0; same && id < kBosId; ++id) same = tok->token_to_id(byte_level(id_char(id))) == id;
  for (auto [id, text] : {std::pair<int, const char*>{kBosId, kBosText}, {kEosId, kEosText}, {kPadId, kPadText}})
    same = same && tok->token_to_id(text) == id;
  if (!same)
    fail(origin, ": not the task models' character tokenizer (this command decodes task answers with it)");
}

void write_tokenizer_files(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  write_file_atomic((fs::path(dir) / "tokenizer.json").string(), tokenizer_json().dump(1) + "\n");
  nlohmann::json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                        {"bos_token", kBosText},
                        {"eos_token", kEosText},
                        {"pad_token", kPadText},
                        {"model_max_length", 4096},
                        {"clean_up_tokenization_spaces", false}};
  write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(), cfg.dump(1) + "\n");
  // Greedy answers that stop at EOS, as eval decodes them.
  nlohmann::json gen = {{"bos_token_id", kBosId}, {"eos_token_id", kEosId}, {"pad_token_id", kPadId},
                        {"do_sample", false}};
  write_file_atomic((fs::path(dir) / "generation_config.json").string(), gen.dump(1) + "\n");
}

}  // namespace huginn::tasks
