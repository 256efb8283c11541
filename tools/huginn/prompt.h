// Everything that turns user input into token ids and token ids into output
// text, in one place, so the tokenizer (and the model's chat format) can be
// connected here without touching the commands.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "huginn/chat.h"

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
std::vector<std::vector<int>> read_prompts(const PromptOptions& o, const std::string& model_dir);

// Whether the model directory has a tokenizer the CLI can use for text.
bool have_tokenizer(const std::string& model_dir);

// The ids generation stops on for this model: huginn::model_stop_ids (chat.h).
using ::huginn::model_stop_ids;

// Streaming output of generated tokens: text when a tokenizer is connected,
// else the ids separated by spaces.
class TokenPrinter {
 public:
  explicit TokenPrinter(const std::string& model_dir);
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

// A conversation in the model's chat format (Huginn: <|begin_header|>ROLE
// <|end_header|>\n\nCONTENT<|end_turn|>, BOS first, assistant role "Huginn").
struct ChatMessage {
  std::string role, content;
};
std::vector<int> render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                             const std::string& model_dir);

}  // namespace huginn::cli
