// huginn/loaded_model.h: a model directory read once and shared.
#include "huginn/loaded_model.h"

#include <algorithm>
#include <filesystem>

#include "huginn/common.h"
#include "huginn/generate.h"
#include "huginn/gguf.h"
#include "huginn/model.h"
#include "model/gguf_model.h"

namespace huginn {
namespace fs = std::filesystem;

LoadedModel::LoadedModel(std::unique_ptr<Model> model, std::optional<Tokenizer> tokenizer, GenerationConfig generation,
                         std::string dir)
    : dir_(std::move(dir)), model_(std::move(model)), tokenizer_(std::move(tokenizer)),
      generation_(std::move(generation)) {
  derive();
}
LoadedModel::LoadedModel(LoadedModel&&) noexcept = default;
LoadedModel& LoadedModel::operator=(LoadedModel&&) noexcept = default;
LoadedModel::~LoadedModel() = default;

void LoadedModel::derive() {
  chat_ = {};
  stop_ids_.clear();
  if (tokenizer_) {
    bool all = true;
    for (const char* t : {chat_tokens::kBeginText, chat_tokens::kBeginHeader, chat_tokens::kEndHeader,
                          chat_tokens::kEndTurn})
      all = all && tokenizer_->token_to_id(t) >= 0;
    if (all) chat_.name = "huginn";
    for (const char* t : {chat_tokens::kBeginText, chat_tokens::kEndText, chat_tokens::kEndTurn})
      if (const int id = tokenizer_->token_to_id(t); id >= 0) stop_ids_.push_back(id);
  }
  for (int id : generation_.eos_token_ids)
    if (!is_stop(id)) stop_ids_.push_back(id);
  if (stop_ids_.empty()) stop_ids_ = default_stop_tokens(model_ ? model_->config() : ModelConfig{});
}

const Model& LoadedModel::model() const {
  if (!model_) fail("'", dir_, "' was loaded without its weights");
  return *model_;
}

const ModelConfig& LoadedModel::config() const { return model().config(); }

const Tokenizer& LoadedModel::need_tokenizer(const std::string& what) const {
  if (!tokenizer_)
    fail(what, " needs the model's tokenizer.json, and ", dir_.empty() ? std::string("this model") : dir_,
         " has none; use token ids instead (generate --ids 1,2,3, chat --raw-ids)");
  return *tokenizer_;
}

bool LoadedModel::is_stop(int id) const { return std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end(); }

std::string LoadedModel::name() const {
  std::string name = model_ ? model_->config().name : std::string();
  if (!name.empty() && name != "huginn") return name;
  const fs::path p = fs::path(dir_).lexically_normal();
  name = p.filename().string();
  if (name.empty()) name = p.parent_path().filename().string();
  return name.empty() ? std::string("huginn") : name;
}

std::vector<int> LoadedModel::encode_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  return huginn::encode_chat(need_tokenizer("the chat format"), messages, add_generation_prompt);
}

std::vector<int> LoadedModel::prompt_ids(const PromptSource& p) const {
  return huginn::prompt_ids(tokenizer(), p, dir_);
}

std::function<std::string(int)> LoadedModel::token_text() const {
  if (!tokenizer_) return {};
  Tokenizer tok = *tokenizer_;  // shares the loaded tokenizer
  return [tok](int id) { return tok.decode({id}); };
}

LoadedModel load_model(const std::string& path, const LoadOptions& o) {
  std::error_code ec;
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tok;
  GenerationConfig gc;
  if (gguf_model::is_gguf_path(path)) {  // one file: weights, config, tokenizer, generation config
    std::shared_ptr<const gguf::File> keep;
    const gguf::File* f = nullptr;
    if (o.weights) {
      model = Model::load(path, o);
      f = model->gguf_file();
    } else {
      keep = std::make_shared<const gguf::File>(path);
      f = keep.get();
    }
    if (o.tokenizer)
      if (auto j = gguf_model::tokenizer_json(*f)) tok = Tokenizer::from_json(*j, path + ": tokenizer");
    gc = gguf_model::generation_config(*f);
    return LoadedModel(std::move(model), std::move(tok), std::move(gc), path);
  }
  if (!o.weights && fs::is_regular_file(path, ec)) {  // a tokenizer.json itself
    if (o.tokenizer) tok = Tokenizer::from_file(path);
    return LoadedModel(nullptr, std::move(tok), gc, path);
  }
  if (o.weights) model = Model::load(path, o);  // its own clear errors (missing directory, config, tensors)
  else if (!fs::is_directory(path, ec)) fail("model directory '", path, "' does not exist");
  if (o.tokenizer && fs::is_regular_file(fs::path(path) / "tokenizer.json", ec))
    tok = Tokenizer::from_file((fs::path(path) / "tokenizer.json").string());
  gc = read_generation_config(path);
  return LoadedModel(std::move(model), std::move(tok), std::move(gc), path);
}

}  // namespace huginn
