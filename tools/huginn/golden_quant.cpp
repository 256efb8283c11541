// Fixture cases that need no model: ggml's block formats ("quant") and GGUF
// reading ("gguf_read"), checked against data made by ggml's own code
// (shared/golden/README.md, section quant/).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "golden.h"
#include "huginn/gguf.h"
#include "huginn/quant.h"

namespace huginn::cli::golden {
namespace {
namespace fs = std::filesystem;
using quant::Type;

bool exact_quantizer(Type t) { return t != Type::Q4_K && t != Type::Q5_K && t != Type::Q6_K; }

double rmse(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  return std::sqrt(s / (double)n);
}

// First index where two float arrays differ in their bits (n when equal).
size_t first_bit_diff(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, 4) != 0) return i;
  return n;
}

std::string run_quant(const TensorStore& data, const json& cs, std::string* note) {
  const quant::TypeInfo* ti = quant::find_type(cs["type"].get<std::string>());
  if (!ti) return str("unknown type ", cs["type"]);
  if ((int)ti->type != cs["ggml_type"].get<int>() || ti->block_elems != cs["block_elems"].get<int>() ||
      ti->block_bytes != cs["block_bytes"].get<int>())
    return str(ti->name, ": type id / block size / block bytes differ from ggml's");
  const int rows = cs["rows"].get<int>(), n = cs["n"].get<int>();
  const size_t rb = quant::row_bytes(ti->type, n);
  if (rb != cs["row_bytes"].get<size_t>()) return str("row bytes ", rb, ", ggml has ", cs["row_bytes"]);
  const TensorView& blocks = data.get(cs["blocks"].get<std::string>());
  const std::vector<float> input = data.get(cs["input"].get<std::string>()).to_f32();
  const std::vector<float> want = data.get(cs["dequant"].get<std::string>()).to_f32();
  if (blocks.dtype != DType::U8 || blocks.nbytes != rb * rows || input.size() != (size_t)rows * n || want.size() != input.size())
    return "fixture tensors have unexpected shapes";
  // 1. ggml's blocks dequantize to ggml's floats, bit for bit
  std::vector<float> got((size_t)rows * n);
  for (int r = 0; r < rows; ++r) quant::dequantize_row(ti->type, blocks.data + r * rb, got.data() + (size_t)r * n, n);
  if (size_t i = first_bit_diff(got.data(), want.data(), got.size()); i < got.size())
    return str("dequantize: element ", i, " is ", got[i], ", ggml has ", want[i]);
  // 2. quantizing the input: ggml's bytes, or (K types) no worse an error
  std::vector<uint8_t> mine(rb * rows);
  for (int r = 0; r < rows; ++r) quant::quantize_row(ti->type, input.data() + (size_t)r * n, mine.data() + r * rb, n);
  if (std::memcmp(mine.data(), blocks.data, mine.size()) == 0) return "";
  if (exact_quantizer(ti->type)) {
    size_t i = 0;
    while (mine[i] == blocks.data[i]) ++i;
    return str("quantize: byte ", i, " (row ", i / rb, ", block ", i % rb / ti->block_bytes, ") is ", (int)mine[i], ", ggml has ",
               (int)blocks.data[i]);
  }
  std::vector<float> back((size_t)rows * n);
  for (int r = 0; r < rows; ++r) quant::dequantize_row(ti->type, mine.data() + r * rb, back.data() + (size_t)r * n, n);
  const double e_mine = rmse(back.data(), input.data(), input.size()), e_ggml = rmse(want.data(), input.data(), input.size());
  if (!(e_mine <= 1.02 * e_ggml)) return str("quantize: RMSE ", e_mine, " > 1.02 x ggml's ", e_ggml);
  *note = str(" (quantize RMSE ", e_mine, ", ggml's ", e_ggml, ")");
  return "";
}

// A metadata value against the fixture's ["TYPE", value].
std::string check_value(const std::string& key, const gguf::Value& v, const json& want) {
  const std::string type = want[0].get<std::string>();
  if (v.type_str() != type) return str(key, ": type ", v.type_str(), ", expected ", type);
  const json& w = want[1];
  auto one = [&](const gguf::Value& x, const json& e) -> bool {
    switch (x.type) {
      case gguf::ValueType::STRING: return x.s == e.get<std::string>();
      case gguf::ValueType::BOOL: return (x.u != 0) == e.get<bool>();
      case gguf::ValueType::F32: return (float)x.f == e.get<float>();
      case gguf::ValueType::F64: return x.f == e.get<double>();
      case gguf::ValueType::U8: case gguf::ValueType::U16: case gguf::ValueType::U32: case gguf::ValueType::U64:
        return e.is_number_unsigned() && x.u == e.get<uint64_t>();
      default: return e.is_number_integer() && x.i == e.get<int64_t>();
    }
  };
  bool ok;
  if (v.type == gguf::ValueType::ARRAY) {
    ok = w.is_array() && w.size() == v.size();
    for (size_t k = 0; ok && k < v.size(); ++k) ok = one(v.at(k), w[k]);
  } else {
    ok = one(v, w);
  }
  return ok ? "" : str(key, ": value differs from ", w.dump());
}

std::string run_gguf_read(const fs::path& dir, const json& cs) {
  gguf::File f((dir / cs["file"].get<std::string>()).string());
  TensorStore expected = TensorStore::open_file((dir / cs["expected"].get<std::string>()).string());
  if (f.version() != cs["version"].get<uint32_t>()) return str("version ", f.version());
  if (f.alignment() != cs["alignment"].get<uint32_t>()) return str("alignment ", f.alignment());
  const json& meta = cs["metadata"];
  if (f.metadata().size() != meta.size()) return str(f.metadata().size(), " metadata keys, expected ", meta.size());
  for (auto it = meta.begin(); it != meta.end(); ++it) {
    const gguf::Value* v = f.find(it.key());
    if (!v) return str("missing key ", it.key());
    if (std::string e = check_value(it.key(), *v, *it); !e.empty()) return e;
  }
  if (f.tensors().size() != cs["tensors"].size()) return str(f.tensors().size(), " tensors, expected ", cs["tensors"].size());
  for (const json& jt : cs["tensors"]) {
    const gguf::Tensor& t = f.tensor(jt["name"].get<std::string>());
    if ((int)t.type != jt["ggml_type"].get<int>()) return str(t.name, ": type ", quant::name(t.type));
    if (t.ne != jt["ne"].get<std::vector<int64_t>>()) return str(t.name, ": ne differs");
    const std::vector<float> got = f.to_f32(t), want = expected.get(jt["expected"].get<std::string>()).to_f32();
    if (got.size() != want.size()) return str(t.name, ": ", got.size(), " values, expected ", want.size());
    if (size_t i = first_bit_diff(got.data(), want.data(), got.size()); i < got.size())
      return str(t.name, ": element ", i, " is ", got[i], ", expected ", want[i]);
  }
  return "";
}

}  // namespace

bool runs_without_model(const json& top) {
  if (!top.contains("cases") || !top["cases"].is_array()) return false;
  for (const json& cs : top["cases"])
    if (!cs.is_object() || (cs.value("kind", "") != "quant" && cs.value("kind", "") != "gguf_read")) return false;
  return true;
}

int run_without_model(const std::string& dir_s, const json& top, const std::string& filter, bool verbose) {
  const fs::path dir(dir_s);
  TensorStore data = TensorStore::open_file((dir / top.value("data_file", "quant.safetensors")).string());
  int passed = 0, failed = 0;
  for (const json& cs : top["cases"]) {
    const std::string name = cs["name"].get<std::string>();
    if (!filter.empty() && name.find(filter) == std::string::npos) continue;
    std::string err, note;
    try {
      err = cs["kind"] == "quant" ? run_quant(data, cs, &note) : run_gguf_read(dir, cs);
    } catch (const std::exception& e) {
      err = str("error: ", e.what());
    }
    if (err.empty()) {
      ++passed;
      if (verbose) std::printf("PASS %s%s\n", name.c_str(), note.c_str());
    } else {
      ++failed;
      std::printf("FAIL %s: %s\n", name.c_str(), err.c_str());
    }
  }
  std::printf("%d passed, %d failed, 0 skipped\n", passed, failed);
  return failed ? 1 : 0;
}

}  // namespace huginn::cli::golden
