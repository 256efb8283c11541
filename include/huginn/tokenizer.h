// Text <-> token ids: a Hugging Face tokenizer.json (model type BPE) with the
// exact behaviour of Hugging Face tokenizers (checked by the npm parity test).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace huginn {

// Copies share one loaded tokenizer; all methods are safe to call from
// several threads at once.
class Tokenizer {
 public:
  // Loads a tokenizer.json; throws huginn::Error naming the file and, for an
  // unsupported component, its kind and type.
  static Tokenizer from_file(const std::string& path);
  // The same from the file's text; `origin` names it in error messages.
  static Tokenizer from_json(std::string_view json, const std::string& origin = "tokenizer.json");

  // Text (valid UTF-8, else huginn::Error) to ids. add_special runs the
  // post-processor (e.g. a leading BOS); added/special tokens written in the
  // text are always recognised. The file's truncation/padding are ignored.
  std::vector<int> encode(std::string_view text, bool add_special = false) const;
  // Ids to text; ids outside the vocabulary throw huginn::Error, or with
  // skip_unknown have no text (Hugging Face's decode drops them: generated
  // text from a model whose vocabulary is padded beyond the tokenizer's).
  // Invalid byte sequences decode to U+FFFD as Hugging Face does.
  std::string decode(const std::vector<int>& ids, bool skip_special = false, bool skip_unknown = false) const;

  int token_to_id(std::string_view token) const;  // -1 if absent
  std::string id_to_token(int id) const;          // "" if absent
  bool is_special(int id) const;                  // a special added token
  // One more than the largest id (model vocabulary and added tokens).
  int vocab_size() const;

 private:
  Tokenizer() = default;
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// The tokenizer.json of a model directory (clear error if it has none).
// Programs load a model directory once with load_model (loaded_model.h),
// which parses it once and shares it.
Tokenizer load_model_tokenizer(const std::string& model_dir);

// How many tokenizer.json texts this process has parsed (Tokenizer::from_json
// calls, from_file included): evidence for tests that a model's tokenizer is
// parsed once, however many commands and turns use it.
uint64_t tokenizer_parse_count();

// Incremental detokenization for streaming generation: push ids as they come,
// get back the text that became final (never a partial UTF-8 character).
// Ids the tokenizer does not have add no text.
// Only a short window of ids is re-decoded per step (the last emitted piece
// as context, so decoders that strip a leading space see the same input).
class TextStream {
 public:
  explicit TextStream(Tokenizer tok, bool skip_special = false) : tok_(std::move(tok)), skip_(skip_special) {}
  std::string push(int id);
  std::string flush();  // whatever is left, at the end of generation

 private:
  Tokenizer tok_;  // shares the loaded tokenizer (cheap to copy)
  bool skip_;
  std::vector<int> window_;  // context ids (already emitted) + pending ids
  size_t context_ = 0;       // how many ids of window_ are context
  std::string prefix_;       // decode(context ids)
};

}  // namespace huginn
