// Everything that turns user input into token ids and token ids into output
// text, in one place, so the tokenizer (and the model's chat format) can be
// connected here without touching the commands.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "huginn/chat.h"
#include "huginn/loaded_model.h"

namespace huginn::cli {

struct PromptOptions {
  std::vector<std::string> ids;  // each "1,2,3" is one prompt (several: a batch)
  std::string text;              // -p
  std::string file;              // --prompt-file
  bool chat = false;             // wrap the text as one user turn in the chat format
  bool add_bos = true;           // text prompts: let the tokenizer add BOS
};

// The prompts as token ids (at least one). Throws huginn::Error with a clear
// message for bad ids, an unreadable file, no prompt at all, or text without
// a tokenizer.
std::vector<std::vector<int>> read_prompts(const PromptOptions& o, const LoadedModel& lm);

// Streaming output of generated tokens: text when a tokenizer is connected,
// else the ids separated by spaces.
class TokenPrinter {
 public:
  // tok: the model's tokenizer (LoadedModel::tokenizer()), or null for ids.
  explicit TokenPrinter(const Tokenizer* tok);
  ~TokenPrinter();
  bool text() const;
  // What became printable after this token (ids mode: "id " / "id[steps] ").
  std::string push(int id, int steps = -1);
  std::string flush();
  // Whole sequence at once.
  std::string render(const std::vector<int>& ids) const;
  // Text of one token (stop strings); empty function without a tokenizer.
  std::function<std::string(int)> token_text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace huginn::cli
