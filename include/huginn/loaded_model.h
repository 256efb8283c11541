// A model directory loaded once: the weights, the tokenizer (tokenizer.json,
// parsed once and shared by copies), generation_config.json, the chat format
// and the ids generation stops on. Every command, the server and the tasks
// code take what they need from one LoadedModel instead of reading the
// directory again.
//
//   huginn::LoadedModel lm = huginn::load_model("models/huginn-tasks");
//   std::vector<int> ids = lm.prompt_ids({.text = "12+34="});
//   huginn::GenerateOptions g;   // a DecodeSpec (decode_spec.h) ...
//   g.stop_tokens = lm.stop_ids();
//   auto r = huginn::generate(lm.model(), ids, g);
//   std::string text = lm.need_tokenizer("output text").decode(r.tokens);
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "huginn/chat.h"
#include "huginn/config.h"
#include "huginn/model.h"
#include "huginn/tokenizer.h"

namespace huginn {

class Model;

// LoadOptions: huginn/model.h.

// How a conversation becomes the model's input text. Huginn-0125's format
// (chat.h, format_chat) is the only one so far; it is available when the
// tokenizer holds its special tokens.
struct ChatFormat {
  std::string name;  // "huginn"; empty: the model has no chat format
  bool available() const { return !name.empty(); }
};

class LoadedModel {
 public:
  // A bundle over parts the caller made (tests, a trainer's model); the stop
  // ids and chat format are derived as load_model derives them. `dir` names
  // the model in messages and in name().
  LoadedModel(std::unique_ptr<Model> model, std::optional<Tokenizer> tokenizer, GenerationConfig generation = {},
              std::string dir = "");
  LoadedModel(LoadedModel&&) noexcept;
  LoadedModel& operator=(LoadedModel&&) noexcept;
  ~LoadedModel();

  const std::string& dir() const { return dir_; }
  bool has_model() const { return model_ != nullptr; }
  // The model; throws huginn::Error when loaded without weights.
  const Model& model() const;
  const ModelConfig& config() const;

  // The tokenizer, or null when the directory has no tokenizer.json.
  const Tokenizer* tokenizer() const { return tokenizer_ ? &*tokenizer_ : nullptr; }
  // The tokenizer, or a clear error: "WHAT needs the model's tokenizer.json,
  // and DIR has none; use token ids instead".
  const Tokenizer& need_tokenizer(const std::string& what) const;

  const GenerationConfig& generation_config() const { return generation_; }
  const ChatFormat& chat_format() const { return chat_; }

  // The ids generation stops on: the chat format's end tokens the tokenizer
  // has (<|begin_text|>, <|end_text|>, <|end_turn|>) plus generation_config's
  // eos ids; without any of them, the model family's default
  // (default_stop_tokens(config), generate.h).
  const std::vector<int>& stop_ids() const { return stop_ids_; }
  bool is_stop(int id) const;

  // A name for the model: config.json's name, else the directory's.
  std::string name() const;

  // The conversation in the model's chat format, encoded (clear error without one).
  std::vector<int> encode_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;
  // A command's prompt (chat.h's PromptSource) with this model's tokenizer.
  std::vector<int> prompt_ids(const PromptSource& p) const;
  // Text of one token (stop strings), or an empty function without a tokenizer.
  std::function<std::string(int)> token_text() const;

 private:
  void derive();
  std::string dir_;
  std::unique_ptr<Model> model_;
  std::optional<Tokenizer> tokenizer_;
  GenerationConfig generation_;
  ChatFormat chat_;
  std::vector<int> stop_ids_;
};

// Loads a model directory (config.json, weights, and when present
// tokenizer.json and generation_config.json), each file read once.
LoadedModel load_model(const std::string& path, const LoadOptions& options = {});

}  // namespace huginn
