// gguf_model.h: a GGUF file as a complete model (metadata keys, tensor names,
// embedded tokenizer).
#include "model/gguf_model.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "huginn/common.h"
#include "huginn/json.h"
#include "model/arch.h"
#include "text/unicode.h"

namespace huginn::gguf_model {
namespace fs = std::filesystem;
using nlohmann::json;
using gguf::Value;
using gguf::ValueType;

namespace {

// config.json key <-> GGUF key under the architecture's prefix (llama.cpp's names).
const std::pair<const char*, const char*> kRenames[] = {
    {"block_size", "context_length"},
    {"n_embd", "embedding_length"},
    {"intermediate_size", "feed_forward_length"},
    {"num_attention_heads", "attention.head_count"},
    {"num_key_value_heads", "attention.head_count_kv"},
    {"norm_eps", "attention.layer_norm_rms_epsilon"},
    {"rope_base", "rope.freq_base"},
    {"n_layers", "block_count"},
};
const std::pair<const char*, const char*> kParts[] = {
    {"norm_1.weight", "attn_norm.weight"},
    {"attn.qk_bias", "attn_qk.bias"},
    {"attn.Wqkv.weight", "attn_qkv.weight"},
    {"attn.proj.weight", "attn_output.weight"},
    {"norm_2.weight", "post_attention_norm.weight"},
    {"mlp.fc.weight", "ffn_gate_up.weight"},
    {"mlp.proj.weight", "ffn_down.weight"},
    {"norm_3.weight", "ffn_norm.weight"},
    {"norm_4.weight", "post_ffw_norm.weight"},
};

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return {};
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Value to_value(const json& v, bool f32) {
  if (v.is_boolean()) return Value::boolean(v.get<bool>());
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    return u <= UINT32_MAX ? Value::uint(ValueType::U32, u) : Value::uint(ValueType::U64, u);
  }
  if (v.is_number_integer()) return Value::sint(ValueType::I64, v.get<int64_t>());
  if (v.is_number_float()) return f32 ? Value::real(ValueType::F32, v.get<double>()) : Value::real(ValueType::F64, v.get<double>());
  if (v.is_string()) return Value::string(v.get<std::string>());
  fail("internal: config value ", v.dump(), " has no GGUF form");
}

json to_json(const Value& v) {
  switch (v.type) {
    case ValueType::U8: case ValueType::U16: case ValueType::U32: case ValueType::U64: return v.as_uint();
    case ValueType::I8: case ValueType::I16: case ValueType::I32: case ValueType::I64: return v.as_int();
    case ValueType::F32: case ValueType::F64: return v.as_real();
    case ValueType::BOOL: return v.as_uint() != 0;
    case ValueType::STRING: return v.as_string();
    case ValueType::ARRAY: {
      json a = json::array();
      for (size_t k = 0; k < v.size(); ++k) a.push_back(to_json(v.at(k)));
      return a;
    }
  }
  return nullptr;
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

bool is_gguf_path(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  if (ends_with(path, ".gguf")) return true;
  char magic[4] = {};
  std::ifstream f(path, std::ios::binary);
  return f.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

std::string tensor_name(const ModelConfig& c, const std::string& hf) {
  if (hf == "transformer.wte.weight") return "token_embd.weight";
  if (hf == "lm_head.weight") return "output.weight";
  if (hf == "transformer.ln_f.weight") return "output_norm.weight";
  if (hf == "transformer.adapter.weight") return "rec_adapter.weight";
  if (hf == "freqs_cis") return "rope_freqs_cis";
  static const std::regex re(R"(transformer\.(prelude|core_block|coda)\.(\d+)\.(.+))");
  std::smatch m;
  if (c.arch == "huginn_raven" && std::regex_match(hf, m, re)) {
    int n = std::stoi(m[2].str());
    if (m[1] == "core_block") n += c.n_prelude;
    if (m[1] == "coda") n += c.n_prelude + c.n_core;
    for (const auto& [from, to] : kParts)
      if (m[3] == from) return str("blk.", n, ".", to);
  }
  return hf;
}

void put_config(gguf::Writer& w, const ModelConfig& c) {
  const std::string arch = c.arch;
  w.set("general.architecture", Value::string(arch));
  w.set("general.name", Value::string(c.name));
  const json j = architecture_named(c.arch).config_to_json(c);
  for (const auto& [key, v] : j.items()) {
    if (key == "model_type" || key == "name" || v.is_null()) continue;
    std::string gk = key;
    bool known = false;
    for (const auto& [from, to] : kRenames)
      if (key == from) gk = to, known = true;
    const std::string full = arch + "." + gk;
    if (v.is_object()) {
      w.set(arch + ".json." + key, Value::string(v.dump()));
    } else if (v.is_array()) {
      // arrays of strings or of numbers; anything else as JSON text
      const bool strings = !v.empty() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); });
      const bool numbers = !v.empty() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_number(); });
      if (!strings && !numbers) {
        w.set(arch + ".json." + key, Value::string(v.dump()));
        continue;
      }
      const bool is_float = std::any_of(v.begin(), v.end(), [](const json& e) { return e.is_number_float(); });
      const ValueType elem = strings ? ValueType::STRING : is_float ? ValueType::F64 : ValueType::I64;
      std::vector<Value> items;
      for (const auto& e : v)
        items.push_back(strings    ? Value::string(e.get<std::string>())
                        : is_float ? Value::real(ValueType::F64, e.get<double>())
                                   : Value::sint(ValueType::I64, e.get<int64_t>()));
      w.set(full, Value::array(elem, std::move(items)));
    } else {
      w.set(full, to_value(v, known));
    }
  }
}

ModelConfig read_config(const gguf::File& f) {
  const Value* a = f.find("general.architecture");
  if (!a) fail(f.path(), ": no general.architecture in the GGUF metadata: not a model file");
  const std::string arch = a->as_string();
  bool known = false;
  for (const Architecture* x : architectures()) known = known || arch == x->name();
  if (!known) {
    std::string names;
    for (const Architecture* x : architectures()) names += (names.empty() ? "" : ", ") + std::string(x->name());
    fail(f.path(), ": general.architecture '", arch, "' is not a model family huginn runs (", names, ")");
  }
  json j = json::object();
  j["model_type"] = arch;
  if (const Value* n = f.find("general.name")) j["name"] = n->as_string();
  const std::string prefix = arch + ".";
  for (const auto& [key, v] : f.metadata()) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    std::string k = key.substr(prefix.size());
    if (k.compare(0, 5, "json.") == 0) {
      j[k.substr(5)] = parse_json(v.as_string(), f.path() + ": metadata '" + key + "'");
      continue;
    }
    for (const auto& [from, to] : kRenames)
      if (k == to) k = from;
    j[k] = to_json(v);
  }
  return parse_config(j, f.path());
}

Extras read_extras_dir(const std::string& dir) {
  Extras e;
  e.tokenizer_json = read_text(fs::path(dir) / "tokenizer.json");
  e.generation_config_json = read_text(fs::path(dir) / "generation_config.json");
  e.task_manifest_json = read_text(fs::path(dir) / "tasks.json");
  const std::string tc = read_text(fs::path(dir) / "tokenizer_config.json");
  if (!tc.empty()) {  // only its chat template travels into the file
    const json j = parse_json(tc, (fs::path(dir) / "tokenizer_config.json").string());
    if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string())
      e.chat_template = j["chat_template"];
  }
  return e;
}

Extras read_extras(const gguf::File& f) {
  Extras e;
  if (auto t = tokenizer_json(f)) e.tokenizer_json = *t;
  if (const Value* v = f.find("tokenizer.chat_template")) e.chat_template = v->as_string();
  if (const Value* v = f.find("huginn.generation_config")) e.generation_config_json = v->as_string();
  if (const Value* v = f.find("huginn.task_manifest")) e.task_manifest_json = v->as_string();
  return e;
}

void put_extras(gguf::Writer& w, const ModelConfig& c, const Extras& e) {
  if (!e.tokenizer_json.empty()) {
    const json t = parse_json(e.tokenizer_json, "tokenizer.json");
    const json& model = t.contains("model") ? t["model"] : json::object();
    std::vector<std::string> tokens((size_t)c.vocab_size);
    std::vector<int> types((size_t)c.vocab_size, 5);
    auto put = [&](int64_t id, const std::string& s, int type) {
      if (id < 0 || id >= c.vocab_size) fail("tokenizer.json: token id ", id, " is outside the vocabulary (", c.vocab_size, ")");
      tokens[(size_t)id] = s;
      types[(size_t)id] = type;
    };
    // Ids are checked before converting: a float such as 1e300 converted to an integer is undefined behaviour.
    auto checked_id = [](const json& id, const std::string& what) {
      int64_t i = -1;
      if (!json_int(id, 0, INT32_MAX, &i))
        fail("tokenizer.json: ", what, " has id ", json_brief(id), ", not an integer id");
      return i;
    };
    if (model.contains("vocab") && model["vocab"].is_object())
      for (const auto& [s, id] : model["vocab"].items()) put(checked_id(id, "token '" + s + "'"), s, 1);
    if (t.contains("added_tokens") && t["added_tokens"].is_array())
      for (const auto& a : t["added_tokens"]) {
        if (!a.is_object() || !a.contains("content") || !a["content"].is_string() || !a.contains("id"))
          fail("tokenizer.json: an added token needs an \"id\" and a string \"content\", got ", json_brief(a));
        const std::string content = a["content"].get<std::string>();
        const bool special = a.contains("special") && a["special"].is_boolean() && a["special"].get<bool>();
        put(checked_id(a["id"], "added token '" + content + "'"), content, special ? 3 : 4);
      }
    for (size_t i = 0; i < tokens.size(); ++i)
      if (types[i] == 5) tokens[i] = str("[PAD", i, "]");
    std::vector<Value> tv, ty, mv;
    for (size_t i = 0; i < tokens.size(); ++i) {
      tv.push_back(Value::string(tokens[i]));
      ty.push_back(Value::sint(ValueType::I32, types[i]));
    }
    if (model.contains("merges") && model["merges"].is_array())
      for (const auto& m : model["merges"])
        mv.push_back(Value::string(m.is_string() ? m.get<std::string>()
                                                 : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>()));
    const std::string type = model.value("type", std::string("BPE"));
    w.set("tokenizer.ggml.model", Value::string(type == "BPE" ? "gpt2" : type));
    w.set("tokenizer.ggml.pre", Value::string("default"));
    w.set("tokenizer.ggml.tokens", Value::array(ValueType::STRING, std::move(tv)));
    w.set("tokenizer.ggml.token_type", Value::array(ValueType::I32, std::move(ty)));
    w.set("tokenizer.ggml.merges", Value::array(ValueType::STRING, std::move(mv)));
    auto id_of = [&](const char* s) -> int {
      for (size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] == s && types[i] != 5) return (int)i;
      return -1;
    };
    GenerationConfig gc;
    if (!e.generation_config_json.empty()) gc = parse_generation_config(e.generation_config_json);
    const int bos = gc.bos_token_id >= 0 ? gc.bos_token_id : id_of("<|begin_text|>");
    const int eos = !gc.eos_token_ids.empty() ? gc.eos_token_ids[0] : id_of("<|end_text|>");
    const int pad = gc.pad_token_id >= 0 ? gc.pad_token_id : id_of("<|pad|>");
    if (bos >= 0) w.set("tokenizer.ggml.bos_token_id", Value::uint(ValueType::U32, (uint64_t)bos));
    if (eos >= 0) w.set("tokenizer.ggml.eos_token_id", Value::uint(ValueType::U32, (uint64_t)eos));
    if (pad >= 0) w.set("tokenizer.ggml.padding_token_id", Value::uint(ValueType::U32, (uint64_t)pad));
    w.set("tokenizer.huggingface.json", Value::string(e.tokenizer_json));
  }
  if (!e.chat_template.empty()) w.set("tokenizer.chat_template", Value::string(e.chat_template));
  if (!e.generation_config_json.empty()) w.set("huginn.generation_config", Value::string(e.generation_config_json));
  if (!e.task_manifest_json.empty()) w.set("huginn.task_manifest", Value::string(e.task_manifest_json));
}

std::optional<std::string> tokenizer_json(const gguf::File& f) {
  if (const Value* v = f.find("tokenizer.huggingface.json")) return v->as_string();
  const Value* model = f.find("tokenizer.ggml.model");
  if (!model) return std::nullopt;
  if (model->as_string() != "gpt2")
    fail(f.path(), ": tokenizer.ggml.model '", model->as_string(),
         "' is not supported without tokenizer.huggingface.json (only \"gpt2\", byte-level BPE)");
  const Value& tokens = f.get("tokenizer.ggml.tokens");
  const Value* types = f.find("tokenizer.ggml.token_type");
  if (types && types->size() != tokens.size())
    fail(f.path(), ": tokenizer.ggml.token_type has ", types->size(), " entries, tokenizer.ggml.tokens ", tokens.size());
  // Token and merge strings become JSON text: they must be UTF-8.
  auto utf8 = [&](const Value& v, const char* key, size_t i) {
    std::string s = v.as_string();
    if (const size_t at = text::find_invalid_utf8(s); at != std::string::npos)
      fail(f.path(), ": ", key, "[", i, "] is not valid UTF-8 (at byte ", at, ")");
    return s;
  };
  json vocab = json::object(), added = json::array(), merges = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int type = types ? (int)types->at(i).as_int() : 1;
    const std::string s = utf8(tokens.at(i), "tokenizer.ggml.tokens", i);
    if (type == 5) continue;  // unused (padding ids)
    if (type == 3 || type == 4)
      added.push_back({{"id", i}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", type == 4}, {"special", type == 3}});
    else
      vocab[s] = i;
  }
  if (const Value* m = f.find("tokenizer.ggml.merges"))
    for (size_t i = 0; i < m->size(); ++i) merges.push_back(utf8(m->at(i), "tokenizer.ggml.merges", i));
  const json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  json t = {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added},
            {"normalizer", nullptr},
            {"pre_tokenizer", bl},
            {"post_processor", nullptr},
            {"decoder", bl},
            {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                       {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                       {"vocab", vocab}, {"merges", merges}}}};
  return t.dump();
}

GenerationConfig generation_config(const gguf::File& f) {
  if (const Value* v = f.find("huginn.generation_config"))
    return parse_generation_config(v->as_string(), f.path() + ": huginn.generation_config");
  GenerationConfig gc;
  if (const Value* v = f.find("tokenizer.ggml.bos_token_id")) gc.bos_token_id = (int)v->as_uint();
  if (const Value* v = f.find("tokenizer.ggml.eos_token_id")) gc.eos_token_ids = {(int)v->as_uint()};
  if (const Value* v = f.find("tokenizer.ggml.padding_token_id")) gc.pad_token_id = (int)v->as_uint();
  return gc;
}

}  // namespace huginn::gguf_model
