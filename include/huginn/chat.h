// Huginn-0125's chat format (spec section 7) and a model's generation_config.json.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "huginn/tokenizer.h"

namespace huginn {

// Huginn-0125's special tokens (ids in its tokenizer: 65504, 65505, 65508, 65509).
namespace chat_tokens {
inline constexpr const char* kBeginText = "<|begin_text|>";  // BOS
inline constexpr const char* kEndText = "<|end_text|>";      // EOS
inline constexpr const char* kBeginHeader = "<|begin_header|>";
inline constexpr const char* kEndHeader = "<|end_header|>";
inline constexpr const char* kEndTurn = "<|end_turn|>";
inline constexpr const char* kPad = "<|pad|>";
inline constexpr const char* kAssistantRole = "Huginn";
}  // namespace chat_tokens

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (written as "Huginn"), or any other name
  std::string content;
};

// The exact text the model was trained on: BOS, then per message
// <|begin_header|>ROLE<|end_header|>\n\nCONTENT<|end_turn|>, and with
// add_generation_prompt the opening of Huginn's turn. Encode it with
// add_special = false (the BOS is already in the text).
std::string format_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true);

// ChatML, the format of Ouro's (and Qwen's) chat template:
// <|im_start|>ROLE\nCONTENT<|im_end|>\n per message, and with
// add_generation_prompt <|im_start|>assistant\n.
std::string format_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true);
// A tokenizer with <|im_start|>/<|im_end|> and without Huginn's chat tokens.
bool is_chatml_tokenizer(const Tokenizer& tok);

// format_chat (format_chatml for a ChatML tokenizer), encoded.
std::vector<int> encode_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                             bool add_generation_prompt = true);

// Generation stops on any of these ids: <|begin_text|>, <|end_text|>, <|end_turn|>
// (those the tokenizer has; ChatML: <|im_end|>, <|endoftext|>). Throws if it has none of them.
std::vector<int> chat_stop_ids(const Tokenizer& tok);

// generation_config.json; absent fields keep Hugging Face's defaults.
struct GenerationConfig {
  int bos_token_id = -1;              // -1: not given
  std::vector<int> eos_token_ids;     // eos_token_id, a number or a list
  int pad_token_id = -1;
  bool do_sample = false;
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 50;                     // HF's default when do_sample is on
  float min_p = 0.0f;                 // 0: off
  int max_new_tokens = -1;            // -1: not given
  bool from_file = false;             // false: no generation_config.json was found
};

GenerationConfig parse_generation_config(std::string_view json, const std::string& origin = "generation_config.json");
// Reads MODEL_DIR/generation_config.json; its absence gives the defaults.
GenerationConfig read_generation_config(const std::string& model_dir);

// Stop ids for a model: chat_stop_ids plus the config's eos ids, without duplicates.
std::vector<int> stop_ids(const Tokenizer& tok, const GenerationConfig& gc);

// The ids generation stops on for a model directory: stop_ids of its
// tokenizer.json and generation_config.json; the config's eos ids alone for a
// tokenizer without Huginn's chat tokens; empty without a tokenizer.json.
std::vector<int> model_stop_ids(const std::string& model_dir);

// A command's prompt: token ids as given, or text encoded with the model's
// tokenizer (its tokenizer.json), plainly or as one user turn in the chat format.
struct PromptSource {
  std::string ids;          // "1,2,3" or "[1, 2, 3]"
  std::string text;         // -p TEXT
  std::string file;         // --prompt-file FILE (read byte for byte)
  bool chat = false;        // text as a user message, with the generation prompt
  std::string system;       // with chat: a system message first
  bool add_special = true;  // plain text: run the post-processor (e.g. BOS), as transformers does
};
// Exactly one of ids/text/file must be set; clear errors otherwise.
std::vector<int> prompt_ids(const std::string& model_dir, const PromptSource& p);
// The same with a tokenizer already loaded (LoadedModel::prompt_ids); a text
// prompt without one (null) is an error naming model_dir.
std::vector<int> prompt_ids(const Tokenizer* tok, const PromptSource& p, const std::string& model_dir);

}  // namespace huginn
