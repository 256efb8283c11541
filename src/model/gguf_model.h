// A GGUF file as a complete model: the mapping between a model (config,
// parameter names, tokenizer, generation config) and GGUF metadata keys and
// tensor names. Model::load and load_model accept a `.gguf` path wherever they
// accept a model directory; `huginn quantize` writes such files.
//
// Metadata (ARCH = the architecture's name, "huginn_raven" for Huginn):
//   general.architecture             ARCH
//   general.name                     config name
//   general.file_type                llama.cpp's LLAMA_FTYPE of the mix (quantize)
//   general.quantization_version     2
//   ARCH.context_length              block_size
//   ARCH.embedding_length            n_embd
//   ARCH.feed_forward_length         intermediate_size
//   ARCH.attention.head_count        num_attention_heads (and .head_count_kv)
//   ARCH.attention.layer_norm_rms_epsilon  norm_eps
//   ARCH.rope.freq_base              rope_base
//   ARCH.block_count                 prelude + core + coda layers (derived, for tools)
//   ARCH.vocab_size                  vocab_size
//   ARCH.<key>                       every other key of the architecture's
//                                    config.json (e.g. huginn_raven.n_layers_in_prelude,
//                                    huginn_raven.mean_recurrence), numbers as
//                                    numbers, strings as strings, lists as arrays;
//                                    objects as JSON text under ARCH.json.<key>
//   tokenizer.ggml.model             "gpt2" (byte-level BPE)
//   tokenizer.ggml.pre               "default"
//   tokenizer.ggml.tokens            one string per id (vocab_size; padding ids "[PAD<id>]")
//   tokenizer.ggml.token_type        1 normal, 3 control (special), 4 user-defined, 5 unused
//   tokenizer.ggml.merges            "a b" per merge
//   tokenizer.ggml.{bos,eos,padding}_token_id
//   tokenizer.chat_template          tokenizer_config.json's chat_template, when present
//   tokenizer.huggingface.json       the whole tokenizer.json (GGUF's standard key)
//   huginn.generation_config         generation_config.json's text, when present
//   huginn.task_manifest             tasks.json's text (task models), when present
// The tokenizer is read from tokenizer.huggingface.json when present, else
// rebuilt from tokenizer.ggml.* (byte-level BPE).
//
// Tensor names (Huginn; HF name -> GGUF name; llama.cpp's style, blocks
// numbered through prelude, core and coda: blk.0 .. blk.P-1 the prelude,
// blk.P .. blk.P+R-1 the core block, then the coda):
//   transformer.wte.weight         token_embd.weight
//   lm_head.weight                 output.weight        (untied only)
//   transformer.ln_f.weight        output_norm.weight
//   transformer.adapter.weight     rec_adapter.weight
//   freqs_cis                      rope_freqs_cis       (when the checkpoint stores it; [block_size, head_dim])
//   transformer.<part>.<i>.norm_1.weight     blk.N.attn_norm.weight
//                         .attn.qk_bias      blk.N.attn_qk.bias
//                         .attn.Wqkv.weight  blk.N.attn_qkv.weight
//                         .attn.proj.weight  blk.N.attn_output.weight
//                         .norm_2.weight     blk.N.post_attention_norm.weight
//                         .mlp.fc.weight     blk.N.ffn_gate_up.weight
//                         .mlp.proj.weight   blk.N.ffn_down.weight
//                         .norm_3.weight     blk.N.ffn_norm.weight
//                         .norm_4.weight     blk.N.post_ffw_norm.weight
// Other names (other architectures until they map theirs) are kept as they are.
// Shapes are GGUF's: ne[0] is the row length (torch's shape reversed).
#pragma once
#include <optional>
#include <string>

#include "huginn/chat.h"
#include "huginn/config.h"
#include "huginn/gguf.h"

namespace huginn::gguf_model {

// Whether a model path names a GGUF file (a regular file ending in ".gguf", or
// any regular file that starts with the GGUF magic).
bool is_gguf_path(const std::string& path);

std::string tensor_name(const ModelConfig& c, const std::string& hf_name);

// general.* and ARCH.* keys of the config.
void put_config(gguf::Writer& w, const ModelConfig& c);
ModelConfig read_config(const gguf::File& f);

// What besides the weights makes a model: read from a model directory or a GGUF.
struct Extras {
  std::string tokenizer_json;         // empty: none
  std::string chat_template;          // empty: none
  std::string generation_config_json; // empty: none
  std::string task_manifest_json;     // tasks.json (task models); empty: none
};
Extras read_extras_dir(const std::string& dir);
Extras read_extras(const gguf::File& f);
void put_extras(gguf::Writer& w, const ModelConfig& c, const Extras& e);

// tokenizer.json text for the file's tokenizer (stored, or rebuilt from
// tokenizer.ggml.*); nullopt when the file has no tokenizer.
std::optional<std::string> tokenizer_json(const gguf::File& f);
GenerationConfig generation_config(const gguf::File& f);

}  // namespace huginn::gguf_model
