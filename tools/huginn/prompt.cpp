#include "prompt.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "huginn/common.h"

namespace huginn::cli {
namespace fs = std::filesystem;

bool have_tokenizer(const std::string& model_dir) {
  // The tokenizer is being written on another branch; until it is connected
  // here, text is unavailable whatever the directory holds.
  (void)model_dir;
  return false;
}

[[noreturn]] static void need_tokenizer(const std::string& model_dir, const char* what) {
  const fs::path tj = fs::path(model_dir) / "tokenizer.json";
  if (!fs::exists(tj))
    fail(what, " needs the model's tokenizer.json, and ", model_dir,
         " has none; use token ids instead (generate --ids 1,2,3, chat --raw-ids)");
  fail(what, " needs tokenizer.json, which this build cannot read yet (text support is not connected); use "
             "token ids instead (generate --ids 1,2,3, chat --raw-ids)");
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
    need_tokenizer(model_dir, "--prompt-file");
  }
  if (!o.text.empty()) need_tokenizer(model_dir, "-p/--prompt");
  return out;
}

struct TokenPrinter::Impl {};

TokenPrinter::TokenPrinter(const std::string& model_dir) : impl_(std::make_unique<Impl>()) { (void)model_dir; }
TokenPrinter::~TokenPrinter() = default;
bool TokenPrinter::text() const { return false; }

std::string TokenPrinter::push(int id, int steps) {
  std::string s = std::to_string(id);
  if (steps >= 0) s += "[" + std::to_string(steps) + "]";
  return s + " ";
}
std::string TokenPrinter::flush() { return ""; }

std::string TokenPrinter::render(const std::vector<int>& ids) const {
  std::string s;
  for (int id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

std::function<std::string(int)> TokenPrinter::token_text() const { return {}; }

std::vector<int> render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                             const std::string& model_dir) {
  (void)messages;
  (void)add_generation_prompt;
  need_tokenizer(model_dir, "the chat format");
}

}  // namespace huginn::cli
