// Writing a model as one GGUF file in a ggml weight type (`huginn quantize`):
// from an HF model directory or a GGUF file, streamed tensor by tensor.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace huginn {

struct QuantizeOptions {
  // The mix: q8_0, q4_0, q4_1, q5_0, q4_k_m, q5_k_m, q6_k, bf16, f16, f32.
  std::string type = "q8_0";
  // Called before each tensor is written: (index from 0, count, GGUF name, ggml type name).
  std::function<void(size_t, size_t, const std::string&, const char*)> progress{};
};

struct QuantizeResult {
  struct Choice {
    std::string name;       // GGUF tensor name
    std::string type;       // ggml type written
    std::string note;       // why, when not the mix's base type
    std::vector<int64_t> shape;
    size_t bytes = 0;
  };
  std::vector<Choice> tensors;
  size_t in_bytes = 0, out_bytes = 0;  // weights as read / as written
};

// The mixes and their per-tensor rules, for --help.
std::string quantize_mix_help();
// Whether `type` names a mix.
bool is_quantize_mix(const std::string& type);

// Writes `out` (a .gguf: config, tokenizer, generation config and every tensor
// in the mix's types). Fails with one clear message on bad input; `out` is
// written to a temporary file and renamed, so a failure leaves no partial file.
QuantizeResult quantize_model(const std::string& in, const std::string& out, const QuantizeOptions& o);

}  // namespace huginn
