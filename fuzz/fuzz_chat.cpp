// Huginn's chat format: messages taken from the input (role, content pairs
// separated by NUL bytes) are formatted and encoded with a Huginn-like
// tokenizer, and the input is also read as a generation_config.json.
#include <vector>

#include "fuzz_common.h"
#include "huginn/chat.h"
#include "huginn/tokenizer.h"

namespace {
const huginn::Tokenizer& tokenizer() {
  static const huginn::Tokenizer t = huginn::Tokenizer::from_json(R"({
    "model": {"type": "BPE", "vocab": {" ": 0, "a": 1, "b": 2, "H": 3, "\n": 4, "<0x00>": 5}, "merges": [],
              "byte_fallback": true},
    "added_tokens": [
      {"id": 65504, "content": "<|begin_text|>", "special": true},
      {"id": 65505, "content": "<|end_text|>", "special": true},
      {"id": 65506, "content": "<|begin_header|>", "special": true},
      {"id": 65507, "content": "<|end_header|>", "special": true},
      {"id": 65508, "content": "<|end_turn|>", "special": true}]})",
                                                                   "huginn-like tokenizer");
  return t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = fuzz_text(data, size);
  std::vector<huginn::ChatMessage> msgs;
  size_t pos = 0;
  while (pos <= in.size() && msgs.size() < 64) {
    size_t a = in.find('\0', pos);
    if (a == std::string_view::npos) a = in.size();
    size_t b = a < in.size() ? in.find('\0', a + 1) : std::string_view::npos;
    if (b == std::string_view::npos) b = in.size();
    msgs.push_back({std::string(in.substr(pos, a - pos)),
                    a < in.size() ? std::string(in.substr(a + 1, b - a - 1)) : std::string()});
    pos = b + 1;
  }
  HUGINN_FUZZ_EXPECTED({
    (void)huginn::format_chat(msgs, size % 2 == 0);
    (void)huginn::encode_chat(tokenizer(), msgs);
  });
  HUGINN_FUZZ_EXPECTED((void)huginn::parse_generation_config(in));
  return 0;
}
