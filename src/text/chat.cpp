#include "huginn/chat.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <type_traits>

#include "huginn/common.h"
#include "huginn/json.h"

namespace huginn {

std::string format_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  using namespace chat_tokens;
  std::string out = kBeginText;
  for (const ChatMessage& m : messages) {
    if (m.role.empty()) fail("chat message without a role");
    const std::string& role = m.role == "assistant" ? std::string(kAssistantRole) : m.role;
    out += kBeginHeader;
    out += role;
    out += kEndHeader;
    out += "\n\n";
    out += m.content;
    out += kEndTurn;
  }
  if (add_generation_prompt) {
    out += kBeginHeader;
    out += kAssistantRole;
    out += kEndHeader;
    out += "\n\n";
  }
  return out;
}

std::string format_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages) {
    if (m.role.empty()) fail("chat message without a role");
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

bool is_chatml_tokenizer(const Tokenizer& tok) {
  return tok.token_to_id("<|im_start|>") >= 0 && tok.token_to_id("<|im_end|>") >= 0 &&
         tok.token_to_id(chat_tokens::kBeginHeader) < 0;
}

std::vector<int> encode_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                             bool add_generation_prompt) {
  if (is_chatml_tokenizer(tok)) return tok.encode(format_chatml(messages, add_generation_prompt), false);
  for (const char* t : {chat_tokens::kBeginText, chat_tokens::kBeginHeader, chat_tokens::kEndHeader,
                        chat_tokens::kEndTurn})
    if (tok.token_to_id(t) < 0) fail("this tokenizer has no ", t, " token: it is not Huginn's chat tokenizer");
  return tok.encode(format_chat(messages, add_generation_prompt), false);
}

std::vector<int> chat_stop_ids(const Tokenizer& tok) {
  std::vector<int> ids;
  if (is_chatml_tokenizer(tok)) {  // <|im_end|>, and <|endoftext|> when present
    for (const char* t : {"<|im_end|>", "<|endoftext|>"})
      if (const int id = tok.token_to_id(t); id >= 0) ids.push_back(id);
    return ids;
  }
  for (const char* t : {chat_tokens::kBeginText, chat_tokens::kEndText, chat_tokens::kEndTurn}) {
    const int id = tok.token_to_id(t);
    if (id >= 0) ids.push_back(id);
  }
  if (ids.empty())
    fail("the tokenizer has none of Huginn's stop tokens (<|begin_text|>, <|end_text|>, <|end_turn|>) nor ChatML's "
         "(<|im_start|>, <|im_end|>)");
  return ids;
}

GenerationConfig parse_generation_config(std::string_view text, const std::string& origin) {
  GenerationConfig g;
  g.from_file = true;
  const nlohmann::json j = parse_json(text, origin);
  if (!j.is_object()) fail(origin, ": expected a JSON object");
  auto num = [&](const char* key, auto& dst) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return;
    if (!it->is_number()) fail(origin, ": \"", key, "\" must be a number");
    using T = std::remove_reference_t<decltype(dst)>;
    if constexpr (std::is_integral_v<T>) {
      int64_t i;
      if (!json_int(*it, INT32_MIN, INT32_MAX, &i))
        fail(origin, ": \"", key, "\" must be an integer in the int32 range, got ", json_brief(*it));
      dst = (T)i;
    } else {
      dst = it->get<T>();
    }
  };
  auto id = [&](const nlohmann::json& v) {  // a token id
    int64_t i;
    if (!v.is_number_integer() || !json_int(v, INT32_MIN, INT32_MAX, &i))
      fail(origin, ": \"eos_token_id\" must be an id or a list of ids (int32), got ", json_brief(v));
    return (int)i;
  };
  try {
    num("bos_token_id", g.bos_token_id);
    num("pad_token_id", g.pad_token_id);
    num("temperature", g.temperature);
    num("top_p", g.top_p);
    num("top_k", g.top_k);
    num("min_p", g.min_p);
    num("max_new_tokens", g.max_new_tokens);
    if (auto it = j.find("do_sample"); it != j.end() && !it->is_null()) {
      if (!it->is_boolean()) fail(origin, ": \"do_sample\" must be true or false");
      g.do_sample = it->get<bool>();
    }
    if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
      if (it->is_number()) g.eos_token_ids.push_back(id(*it));
      else if (it->is_array())
        for (auto& v : *it) g.eos_token_ids.push_back(id(v));
      else fail(origin, ": \"eos_token_id\" must be an id or a list of ids");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(origin, ": ", e.what());
  }
  if (g.temperature < 0) fail(origin, ": temperature must be >= 0");
  if (g.top_p <= 0 || g.top_p > 1) fail(origin, ": top_p must be in (0, 1]");
  if (g.min_p < 0 || g.min_p > 1) fail(origin, ": min_p must be in [0, 1]");
  return g;
}

GenerationConfig read_generation_config(const std::string& model_dir) {
  const auto p = std::filesystem::path(model_dir) / "generation_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(p, ec)) return GenerationConfig{};
  return parse_generation_config(read_regular_file(p.string(), 1 << 20), p.string());
}

std::vector<int> stop_ids(const Tokenizer& tok, const GenerationConfig& gc) {
  std::vector<int> ids = chat_stop_ids(tok);
  for (int id : gc.eos_token_ids)
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  return ids;
}

std::vector<int> model_stop_ids(const std::string& model_dir) {
  if (!std::filesystem::is_regular_file(std::filesystem::path(model_dir) / "tokenizer.json")) return {};
  const Tokenizer tok = load_model_tokenizer(model_dir);
  const GenerationConfig gc = read_generation_config(model_dir);
  try {
    return stop_ids(tok, gc);
  } catch (const Error&) {  // a tokenizer without Huginn's chat tokens: the config's eos ids alone
    return gc.eos_token_ids;
  }
}

std::vector<int> prompt_ids(const std::string& model_dir, const PromptSource& p) {
  std::optional<Tokenizer> tok;
  // loaded only where the prompt is text, after the checks that need no tokenizer
  const int given = !p.ids.empty() + !p.text.empty() + !p.file.empty();
  if (given == 1 && (!p.text.empty() || (!p.file.empty() && std::ifstream(p.file, std::ios::binary))))
    tok = load_model_tokenizer(model_dir);
  return prompt_ids(tok ? &*tok : nullptr, p, model_dir);
}

std::vector<int> prompt_ids(const Tokenizer* tok, const PromptSource& p, const std::string& model_dir) {
  const int given = !p.ids.empty() + !p.text.empty() + !p.file.empty();
  if (given != 1) fail("give exactly one prompt: token ids, a text (-p) or a prompt file (--prompt-file)");
  if (!p.ids.empty()) {
    if (p.chat) fail("--chat needs a text prompt, not token ids");
    std::vector<int> ids;
    for (long long v : parse_int_list(p.ids, "token id")) {
      if (v < 0 || v > INT32_MAX) fail("invalid token id '", v, "' in the prompt");
      ids.push_back((int)v);
    }
    if (ids.empty()) fail("the prompt has no token ids");
    return ids;
  }
  std::string text = p.text;
  if (!p.file.empty()) {
    // (a pipe is fine: --prompt-file <(command))
    std::error_code ec;
    if (std::filesystem::is_directory(p.file, ec)) fail("prompt file '", p.file, "' is a directory");
    std::ifstream f(p.file, std::ios::binary);
    if (!f) fail("cannot open prompt file '", p.file, "'");
    std::ostringstream ss;
    ss << f.rdbuf();
    if (f.bad()) fail("cannot read prompt file '", p.file, "'");
    text = ss.str();
    if (text.empty()) fail("prompt file '", p.file, "' is empty");
  }
  if (!tok)
    fail("model directory '", model_dir,
         "' has no tokenizer.json (text input needs the model's Hugging Face tokenizer.json; token ids still work)");
  if (p.chat) {
    std::vector<ChatMessage> msgs;
    if (!p.system.empty()) msgs.push_back({"system", p.system});
    msgs.push_back({"user", text});
    return encode_chat(*tok, msgs, true);
  }
  return tok->encode(text, p.add_special);
}

}  // namespace huginn
