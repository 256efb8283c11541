#include "prompt.h"

#include <optional>

#include "commands.h"
#include "huginn/chat.h"
#include "huginn/common.h"
#include "huginn/tokenizer.h"

namespace huginn::cli {

std::vector<std::vector<int>> read_prompts(const PromptOptions& o, const LoadedModel& lm) {
  std::vector<std::vector<int>> out;
  const int sources = (!o.ids.empty()) + (!o.text.empty()) + (!o.file.empty());
  if (sources == 0) fail("no prompt: give --ids 1,2,3, -p TEXT or --prompt-file FILE");
  if (sources > 1) fail("give only one of --ids, -p and --prompt-file");
  for (const std::string& s : o.ids) {
    auto ids = parse_ids(s);
    if (ids.empty()) fail("--ids '", s, "' holds no token id");
    out.push_back(std::move(ids));
  }
  if (!o.text.empty() || !o.file.empty()) {
    lm.need_tokenizer(o.text.empty() ? "--prompt-file" : "-p/--prompt");
    PromptSource ps;
    ps.text = o.text;
    ps.file = o.file;
    ps.chat = o.chat;
    ps.add_special = o.add_bos;
    out.push_back(lm.prompt_ids(ps));
    if (out.back().empty()) fail("the prompt encodes to no tokens");
  }
  return out;
}

struct TokenPrinter::Impl {
  std::optional<Tokenizer> tok;
  std::optional<TextStream> stream;
};

TokenPrinter::TokenPrinter(const Tokenizer* tok) : impl_(std::make_unique<Impl>()) {
  if (tok) {
    impl_->tok = *tok;  // shares the loaded tokenizer
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
  if (impl_->tok) return impl_->tok->decode(ids, false, true);
  std::string s;
  for (int id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

std::function<std::string(int)> TokenPrinter::token_text() const {
  if (!impl_->tok) return {};
  Tokenizer tok = *impl_->tok;
  return [tok](int id) { return tok.decode({id}, false, true); };
}

}  // namespace huginn::cli
