// The server's request parsing: a body for /v1/completions or
// /v1/chat/completions (chosen by the first byte) against a small random model
// with a character tokenizer. Only parsing and validation run (no generation).
#include <memory>

#include "fuzz_common.h"
#include "huginn/checkpoint.h"
#include "huginn/server_api.h"
#include "huginn/tasks.h"

namespace {
const huginn::serve::Api& api() {
  static const auto holder = [] {
    huginn::ModelConfig c;
    c.n_embd = 16, c.n_heads = 2, c.head_dim = 8, c.intermediate_size = 32, c.vocab_size = 64;
    c.block_size = 64, c.n_prelude = 1, c.n_core = 1, c.n_coda = 1, c.mean_recurrence = 4;
    auto params = std::make_shared<std::vector<float>>(huginn::init_params(c, 1));
    auto model = std::shared_ptr<huginn::Model>(huginn::Model::from_flat(c, params->data()));
    auto tok = huginn::Tokenizer::from_json(huginn::tasks::tokenizer_json().dump(), "tasks tokenizer");
    huginn::serve::ServerConfig sc;
    sc.max_steps = 64;
    auto a = std::make_shared<huginn::serve::Api>(*model, tok, std::vector<int>{}, "fuzz", sc);
    return std::make_tuple(params, model, a);
  }();
  return *std::get<2>(holder);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  try {
    (void)api().parse(fuzz_text(data + 1, size - 1), chat);
  } catch (const huginn::serve::ApiError& e) {
    if (e.status < 400 || e.status > 499) __builtin_trap();  // bad requests are 4xx
  } catch (const huginn::Error&) {  // e.g. a chat request to a tokenizer without chat tokens
  }
  return 0;
}
