#include "prompt.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "commands.h"
#include "huginn/chat.h"
#include "huginn/common.h"
#include "huginn/tokenizer.h"

namespace huginn::cli {
namespace fs = std::filesystem;

bool have_tokenizer(const std::string& model_dir) { return fs::is_regular_file(fs::path(model_dir) / "tokenizer.json"); }

static Tokenizer need_tokenizer(const std::string& model_dir, const char* what) {
  if (!have_tokenizer(model_dir))
    fail(what, " needs the model's tokenizer.json, and ", model_dir,
         " has none; use token ids instead (generate --ids 1,2,3, chat --raw-ids)");
  return load_model_tokenizer(model_dir);
}

std::vector<int> model_stop_ids(const std::string& model_dir) {
  if (!have_tokenizer(model_dir)) return {};
  const Tokenizer tok = load_model_tokenizer(model_dir);
  const GenerationConfig gc = read_generation_config(model_dir);
  try {
    return stop_ids(tok, gc);
  } catch (const Error&) {  // a tokenizer without Huginn's chat tokens: the config's eos ids alone
    return gc.eos_token_ids;
  }
}

static std::vector<int> encode_prompt(const PromptOptions& o, const std::string& text, const std::string& model_dir,
                                      const char* what) {
  const Tokenizer tok = need_tokenizer(model_dir, what);
  std::vector<int> ids = o.chat ? encode_chat(tok, {{"user", text}}, true) : tok.encode(text, o.add_bos);
  if (ids.empty()) fail(what, ": the prompt encodes to no tokens");
  return ids;
}

std::vector<std::vector<int>> read_prompts(const PromptOptions& o, const std::string& model_dir) {
  std::vector<std::vector<int>> out;
  const int sources = (!o.ids.empty()) + (!o.text.empty()) + (!o.file.empty());
  if (sources == 0) fail("no prompt: give --ids 1,2,3, -p TEXT or --prompt-file FILE");
  if (sources > 1) fail("give only one of --ids, -p and --prompt-file");
  for (const std::string& s : o.ids) {
    auto ids = parse_ids(s);
    if (ids.empty()) fail("--ids '", s, "' holds no token id");
    out.push_back(std::move(ids));
  }
  if (!o.file.empty()) {
    std::ifstream f(o.file, std::ios::binary);
    if (!f) fail(o.file, ": cannot open the prompt file");
    std::stringstream ss;
    ss << f.rdbuf();
    if (ss.str().empty()) fail(o.file, ": the prompt file is empty");
    out.push_back(encode_prompt(o, ss.str(), model_dir, "--prompt-file"));
  }
  if (!o.text.empty()) out.push_back(encode_prompt(o, o.text, model_dir, "-p/--prompt"));
  return out;
}

struct TokenPrinter::Impl {
  std::optional<Tokenizer> tok;
  std::optional<TextStream> stream;
};

TokenPrinter::TokenPrinter(const std::string& model_dir) : impl_(std::make_unique<Impl>()) {
  if (have_tokenizer(model_dir)) {
    impl_->tok = load_model_tokenizer(model_dir);
    impl_->stream.emplace(*impl_->tok, /*skip_special=*/false);
  }
}
TokenPrinter::~TokenPrinter() = default;
bool TokenPrinter::text() const { return impl_->tok.has_value(); }

std::string TokenPrinter::push(int id, int steps) {
  std::string s = impl_->stream ? impl_->stream->push(id) : std::to_string(id);
  if (steps >= 0) s += "[" + std::to_string(steps) + "]";
  return impl_->stream ? s : s + " ";
}
std::string TokenPrinter::flush() { return impl_->stream ? impl_->stream->flush() : ""; }

std::string TokenPrinter::render(const std::vector<int>& ids) const {
  if (impl_->tok) return impl_->tok->decode(ids);
  std::string s;
  for (int id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

std::function<std::string(int)> TokenPrinter::token_text() const {
  if (!impl_->tok) return {};
  Tokenizer tok = *impl_->tok;
  return [tok](int id) { return tok.decode({id}); };
}

std::vector<int> render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                             const std::string& model_dir) {
  const Tokenizer tok = need_tokenizer(model_dir, "the chat format");
  std::vector<::huginn::ChatMessage> m;
  for (auto& x : messages) m.push_back({x.role, x.content});
  return encode_chat(tok, m, add_generation_prompt);
}

}  // namespace huginn::cli
