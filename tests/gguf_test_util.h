// GGUF metadata as JSON, for the tests that compare huginn's view of a file
// with Hugging Face's parser (npm @huggingface/gguf).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "huginn/gguf.h"

namespace huginn::test {

inline nlohmann::json gguf_value_json(const gguf::Value& v) {
  using gguf::ValueType;
  nlohmann::json j = {{"type", gguf::type_name(v.type)}};
  switch (v.type) {
    case ValueType::U64: j["value"] = std::to_string(v.u); break;  // BigInt on the JS side
    case ValueType::I64: j["value"] = std::to_string(v.i); break;
    case ValueType::U8: case ValueType::U16: case ValueType::U32: j["value"] = v.u; break;
    case ValueType::I8: case ValueType::I16: case ValueType::I32: j["value"] = v.i; break;
    case ValueType::F32: case ValueType::F64: j["value"] = v.f; break;
    case ValueType::BOOL: j["value"] = v.u != 0; break;
    case ValueType::STRING: j["value"] = v.s; break;
    case ValueType::ARRAY:
      j["elem"] = gguf::type_name(v.elem);
      j["items"] = nlohmann::json::array();
      for (size_t k = 0; k < v.size(); ++k) j["items"].push_back(gguf_value_json(v.at(k)));
      break;
  }
  return j;
}

}  // namespace huginn::test
