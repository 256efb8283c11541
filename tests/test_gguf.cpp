// GGUF reading and writing (src/model/gguf.h): ggml's fixture file, a write ->
// read round trip, and damaged files that must each end in one clear error.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "huginn/common.h"
#include "huginn/safetensors.h"
#include "huginn/gguf.h"
#include "huginn/loaded_model.h"
#include "gguf_test_util.h"
#include "test_util.h"

namespace huginn {
namespace {
namespace fs = std::filesystem;
using gguf::Value;
using gguf::ValueType;
using quant::Type;

const std::string kFixture = std::string(HUGINN_TEST_DATA) + "/golden/quant/";

void put_bytes(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f.write(s.data(), (std::streamsize)s.size());
}

TEST(Gguf, ReadsGgmlFixture) {
  gguf::File f(kFixture + "fixture.gguf");
  TensorStore want = TensorStore::open_file(kFixture + "fixture.gguf.expected.safetensors");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.get("general.architecture").as_string(), "fixture");
  EXPECT_EQ(f.get("fixture.u64").as_uint(), 18000000000000000000ull);
  EXPECT_EQ(f.get("fixture.i64").as_int(), -9000000000000000000ll);
  EXPECT_EQ(f.get("fixture.arr_str").at(2).s, "\xc3\xa9t\xc3\xa9");
  EXPECT_THROW(f.get("fixture.u8").as_string(), Error);
  EXPECT_THROW(f.get("nope"), Error);
  ASSERT_EQ(f.tensors().size(), 10u);
  for (const gguf::Tensor& t : f.tensors()) {
    const TensorView& e = want.get(t.name);
    EXPECT_EQ(t.shape(), e.shape) << t.name;
    std::vector<float> got = f.to_f32(t), exp = e.to_f32();
    ASSERT_EQ(got.size(), exp.size());
    EXPECT_EQ(std::memcmp(got.data(), exp.data(), got.size() * 4), 0) << t.name;
    EXPECT_EQ((uintptr_t)(t.data - f.tensors()[0].data) % 32, 0u);
  }
}

// What a sample file was written from: keys in order, tensors with their offsets.
struct Sample {
  std::vector<std::pair<std::string, Value>> kv;
  struct T {
    std::string name;
    Type type;
    std::vector<int64_t> ne;
    uint64_t offset;
  };
  std::vector<T> tensors;
  std::vector<std::vector<uint8_t>> blobs;
};

// Every value type, arrays (nested too), every tensor type, non-default alignment.
fs::path write_sample(const fs::path& dir, uint32_t alignment, Sample* s) {
  const fs::path p = dir / "sample.gguf";
  gguf::Writer w(p.string(), alignment);
  if (alignment != 32) s->kv.emplace_back("general.alignment", Value::uint(ValueType::U32, alignment));
  s->kv.emplace_back("general.architecture", Value::string("huginn"));
  s->kv.emplace_back("a.u8", Value::uint(ValueType::U8, 255));
  s->kv.emplace_back("a.i8", Value::sint(ValueType::I8, -128));
  s->kv.emplace_back("a.u16", Value::uint(ValueType::U16, 65535));
  s->kv.emplace_back("a.i16", Value::sint(ValueType::I16, -32768));
  s->kv.emplace_back("a.u32", Value::uint(ValueType::U32, 4294967295u));
  s->kv.emplace_back("a.i32", Value::sint(ValueType::I32, -2147483647 - 1));
  s->kv.emplace_back("a.u64", Value::uint(ValueType::U64, ~0ull));
  s->kv.emplace_back("a.i64", Value::sint(ValueType::I64, INT64_MIN));
  s->kv.emplace_back("a.f32", Value::real(ValueType::F32, 0.1));
  s->kv.emplace_back("a.f64", Value::real(ValueType::F64, 0.1));
  s->kv.emplace_back("a.bool", Value::boolean(true));
  s->kv.emplace_back("a.empty", Value::string(""));
  s->kv.emplace_back("a.arr_str", Value::array(ValueType::STRING, {Value::string("x"), Value::string(""), Value::string("\xe2\x9c\x93")}));
  s->kv.emplace_back("a.arr_f32", Value::array(ValueType::F32, {Value::real(ValueType::F32, 0.5), Value::real(ValueType::F32, -3e-8)}));
  s->kv.emplace_back("a.arr_u64", Value::array(ValueType::U64, {Value::uint(ValueType::U64, 1ull << 63)}));
  s->kv.emplace_back("a.arr_empty", Value::array(ValueType::I32, {}));
  s->kv.emplace_back("a.nested", Value::array(ValueType::ARRAY, {Value::array(ValueType::U8, {Value::uint(ValueType::U8, 1)})}));
  for (const auto& [k, v] : s->kv)
    if (k != "general.alignment") w.set(k, v);
  const Type types[] = {Type::F32, Type::F16, Type::BF16, Type::Q4_0, Type::Q4_1,
                        Type::Q5_0, Type::Q8_0, Type::Q4_K, Type::Q5_K, Type::Q6_K};
  int k = 0;
  for (Type t : types) {
    const int K = quant::info(t).block_elems == 256 ? 512 : 96, N = 3 + k;
    std::vector<float> x = test::randv((size_t)N * K, k);
    std::vector<uint8_t> b(quant::row_bytes(t, K) * N);
    for (int n = 0; n < N; ++n) quant::quantize_row(t, x.data() + (size_t)n * K, b.data() + n * quant::row_bytes(t, K), K);
    const std::string name = str("t", k++, ".", quant::name(t));
    s->tensors.push_back({name, t, {K, N}, w.add_tensor(name, t, {K, N})});
    s->blobs.push_back(std::move(b));
  }
  s->tensors.push_back({"vec", Type::F32, {5}, w.add_tensor("vec", Type::F32, {5})});
  s->blobs.push_back(std::vector<uint8_t>(20, 0x3f));
  for (const auto& b : s->blobs) w.write_tensor(b.data(), b.size());
  w.finish();
  return p;
}

bool same(const Value& a, const Value& b) {
  if (a.type != b.type || a.elem != b.elem || a.u != b.u || a.i != b.i || std::memcmp(&a.f, &b.f, 8) != 0 || a.s != b.s ||
      a.size() != b.size())
    return false;
  for (size_t k = 0; k < a.size(); ++k)
    if (!same(a.at(k), b.at(k))) return false;
  return true;
}

TEST(Gguf, WriteReadRoundTrip) {
  const fs::path dir = test::temp_dir("gguf");
  for (uint32_t align : {32u, 64u}) {
    Sample smp;
    const fs::path p = write_sample(dir, align, &smp);
    const auto& blobs = smp.blobs;
    gguf::File f(p.string());
    EXPECT_EQ(f.alignment(), align);
    ASSERT_EQ(f.metadata().size(), smp.kv.size());
    for (size_t k = 0; k < smp.kv.size(); ++k) {  // every key, in order, with its type and value
      EXPECT_EQ(f.metadata()[k].first, smp.kv[k].first);
      EXPECT_TRUE(same(f.metadata()[k].second, smp.kv[k].second)) << smp.kv[k].first;
    }
    EXPECT_EQ(f.get("a.u8").as_uint(), 255u);
    EXPECT_EQ(f.get("a.i8").as_int(), -128);
    EXPECT_EQ(f.get("a.u16").as_uint(), 65535u);
    EXPECT_EQ(f.get("a.i16").as_int(), -32768);
    EXPECT_EQ(f.get("a.u32").as_uint(), 4294967295u);
    EXPECT_EQ(f.get("a.i32").as_int(), INT32_MIN);
    EXPECT_EQ(f.get("a.u64").as_uint(), ~0ull);
    EXPECT_EQ(f.get("a.i64").as_int(), INT64_MIN);
    EXPECT_EQ(f.get("a.f32").f, (double)0.1f);
    EXPECT_EQ(f.get("a.f64").f, 0.1);
    EXPECT_EQ(f.get("a.bool").type_str(), "BOOL");
    EXPECT_EQ(f.get("a.empty").as_string(), "");
    EXPECT_EQ(f.get("a.arr_str").type_str(), "ARRAY[STRING]");
    EXPECT_EQ(f.get("a.arr_str").at(2).s, "\xe2\x9c\x93");
    EXPECT_EQ(f.get("a.arr_empty").size(), 0u);
    EXPECT_THROW(f.get("a.arr_empty").at(0), Error);
    EXPECT_EQ(f.get("a.arr_u64").at(0).u, 1ull << 63);
    EXPECT_EQ(f.get("a.arr_f32").at(1).f, (double)-3e-8f);
    EXPECT_EQ(f.get("a.nested").at(0).at(0).u, 1u);
    ASSERT_EQ(f.tensors().size(), blobs.size());
    for (size_t k = 0; k < blobs.size(); ++k) {
      const gguf::Tensor& t = f.tensors()[k];
      ASSERT_EQ(t.nbytes, blobs[k].size()) << t.name;
      EXPECT_EQ(std::memcmp(t.data, blobs[k].data(), t.nbytes), 0) << t.name;
      EXPECT_EQ(t.offset % align, 0u);
      EXPECT_EQ((f.data_offset() + t.offset) % align, 0u);
      EXPECT_EQ(t.offset, smp.tensors[k].offset);
      EXPECT_EQ(t.ne, smp.tensors[k].ne);
    }
    EXPECT_EQ(f.tensor("t7.Q4_K").shape(), (std::vector<int64_t>{10, 512}));
  }
  EXPECT_FALSE(fs::exists(dir / ("sample.gguf.tmp." + std::to_string(getpid()))));
  fs::remove_all(dir);
}

TEST(Gguf, WriterMisuse) {
  const fs::path dir = test::temp_dir("gguf-misuse");
  {
    gguf::Writer w((dir / "x.gguf").string());
    w.add_tensor("a", Type::Q4_0, {64, 2});
    EXPECT_THROW(w.add_tensor("a", Type::F32, {1}), Error);
    EXPECT_THROW(w.add_tensor("b", Type::Q4_0, {33}), Error);
    std::vector<uint8_t> b(72);
    EXPECT_THROW(w.write_tensor(b.data(), 71), Error);
  }
  {
    gguf::Writer w((dir / "y.gguf").string());
    w.add_tensor("a", Type::F32, {4});
    EXPECT_THROW(w.finish(), Error);  // tensor never written
  }
  EXPECT_FALSE(fs::exists(dir / "x.gguf"));
  EXPECT_FALSE(fs::exists(dir / "y.gguf"));
  EXPECT_TRUE(fs::is_empty(dir));  // temporary files removed
  fs::remove_all(dir);
}

// --- damaged files -------------------------------------------------------------

// A GGUF assembled field by field, so each test can break exactly one thing.
struct Bytes {
  std::string s;
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& str(const std::string& v) { return u64(v.size()).raw(v.data(), v.size()); }
  Bytes& raw(const void* p, size_t n) {
    s.append((const char*)p, n);
    return *this;
  }
  Bytes& pad(size_t a) {
    s.resize((s.size() + a - 1) / a * a, '\0');
    return *this;
  }
};
Bytes header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
  Bytes b;
  b.raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv);
  return b;
}
// name, ne, type, offset
Bytes& tinfo(Bytes& b, const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t off) {
  b.str(name).u32((uint32_t)ne.size());
  for (uint64_t n : ne) b.u64(n);
  return b.u32(type).u64(off);
}
// One valid file: one key, two Q8_0 tensors of one block each.
std::string valid_file() {
  Bytes b = header(2, 1);
  b.str("k").u32(8).str("v");
  tinfo(b, "a", {32}, 8, 0);
  tinfo(b, "b", {32}, 8, 64);
  b.pad(32);
  b.s.append(34, '\1');
  b.pad(32).s.append(34, '\2');
  return b.pad(32).s;
}

std::string error_of(const fs::path& p) {
  try {
    gguf::File f(p.string());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Gguf, DamagedFilesFailClearly) {
  const fs::path dir = test::temp_dir("gguf-bad");
  const fs::path p = dir / "bad.gguf";
  put_bytes(p, valid_file());
  ASSERT_EQ(error_of(p), "");
  auto kv = [](uint32_t type, const std::string& payload) {
    Bytes b = header(0, 1);
    b.str("k").u32(type);
    return b.s + payload;
  };
  Bytes arr_huge = header(0, 1);
  arr_huge.str("k").u32(9).u32(6).u64(1ull << 60);
  Bytes arr_badtype = header(0, 1);
  arr_badtype.str("k").u32(9).u32(13).u64(1);
  Bytes nested = header(0, 1);
  nested.str("k").u32(9);
  for (int i = 0; i < 20; ++i) nested.u32(9).u64(1);
  Bytes align_bad = header(0, 1);
  align_bad.str("general.alignment").u32(4).u32(48);
  Bytes align_type = header(0, 1);
  align_type.str("general.alignment").u32(10).u64(32);
  Bytes dupkey = header(0, 2);
  dupkey.str("k").u32(0).raw("\1", 1).str("k").u32(0).raw("\1", 1);
  auto one_tensor = [](std::vector<uint64_t> ne, uint32_t type, uint64_t off, size_t data) {
    Bytes b = header(1, 0);
    tinfo(b, "t", ne, type, off).pad(32);
    b.s.append(data, '\0');
    return b.s;
  };
  Bytes overlap = header(2, 0);
  tinfo(overlap, "a", {64}, 8, 0);
  tinfo(overlap, "b", {32}, 8, 32);
  overlap.pad(32);
  overlap.s.append(128, '\0');
  Bytes duptensor = header(2, 0);
  tinfo(duptensor, "a", {32}, 8, 0);
  tinfo(duptensor, "a", {32}, 8, 64);
  duptensor.pad(32);
  duptensor.s.append(128, '\0');
  const std::pair<const char*, std::string> cases[] = {
      {"empty", ""},
      {"magic", "GGUG" + valid_file().substr(4)},
      {"version 1", header(0, 0, 1).s},
      {"version 4", header(0, 0, 4).s},
      {"huge kv count", header(0, 1ull << 62).s},
      {"huge tensor count", header(1ull << 62, 0).s},
      {"huge key length", header(0, 1).u64(1ull << 62).s},
      {"unknown value type", kv(13, "")},
      {"huge string", kv(8, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8))},
      {"bool 2", kv(7, "\2")},
      {"truncated u64", kv(10, "abc")},
      {"huge array", arr_huge.s},
      {"array element type", arr_badtype.s},
      {"nesting", nested.s},
      {"alignment 48", align_bad.s},
      {"alignment type", align_type.s},
      {"duplicate key", dupkey.s},
      {"5 dims", one_tensor({32, 1, 1, 1, 1}, 8, 0, 64)},
      {"unknown type", one_tensor({32}, 99, 0, 64)},
      {"Q8_K not storable", one_tensor({256}, 15, 0, 512)},
      {"row not whole blocks", one_tensor({33}, 8, 0, 64)},
      {"misaligned offset", one_tensor({32}, 8, 8, 64)},
      {"offset past end", one_tensor({32}, 8, 64, 64)},
      {"huge offset", one_tensor({32}, 8, ~0ull - 31, 64)},
      {"data past end", one_tensor({32, 2}, 8, 0, 64)},
      {"element count overflow", one_tensor({1ull << 40, 1ull << 40}, 0, 0, 64)},
      {"huge dims", one_tensor({1ull << 63}, 0, 0, 64)},
      {"overlap", overlap.s},
      {"duplicate tensor", duptensor.s},
  };
  for (const auto& [what, bytes] : cases) {
    put_bytes(p, bytes);
    const std::string e = error_of(p);
    EXPECT_NE(e, "") << what;
    EXPECT_NE(e.find(p.string()), std::string::npos) << what << ": " << e;  // names the file
  }
  // Every truncation of the valid file before its last tensor's end fails.
  const std::string good = valid_file();
  for (size_t n = 0; n < good.size() - 30; ++n) {
    put_bytes(p, good.substr(0, n));
    EXPECT_NE(error_of(p), "") << "truncated to " << n;
  }
  // Random damage to the header: an error or a valid file, never a crash.
  std::mt19937 rng(1);
  const size_t hdr = 120;
  int errors = 0;
  for (int it = 0; it < 600; ++it) {
    std::string b = good;
    for (int k = 0; k < 3; ++k) b[rng() % hdr] = (char)rng();
    put_bytes(p, b);
    errors += error_of(p) != "";
  }
  EXPECT_GT(errors, 200);
  fs::remove_all(dir);
}

// --- Hugging Face's parser (npm @huggingface/gguf) reads what we write -----------

TEST(Gguf, HuggingFaceParserReadsOurFiles) {
  if (test::sh("command -v node >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "node not found: the @huggingface/gguf check needs nodejs and npm (scripts/setup.sh)";
  const fs::path src = fs::path(HUGINN_SOURCE_DIR) / "tests/gguf_npm";
  const fs::path mods = test::npm_packages("gguf_npm", "@huggingface/gguf/package.json");
  ASSERT_FALSE(mods.empty()) << "npm ci failed for tests/gguf_npm: is the npm registry reachable?";
  const fs::path dir = test::temp_dir("gguf-hf");
  for (uint32_t align : {32u, 64u}) {
    Sample smp;
    const fs::path p = write_sample(dir, align, &smp);
    nlohmann::json e = {{"metadata", nlohmann::json::object()}, {"tensors", nlohmann::json::array()}};
    for (const auto& [k, v] : smp.kv) e["metadata"][k] = test::gguf_value_json(v);
    for (const auto& t : smp.tensors) {
      std::vector<std::string> ne;
      for (int64_t n : t.ne) ne.push_back(std::to_string(n));
      e["tensors"].push_back({{"name", t.name}, {"dtype", (int)t.type}, {"ne", ne}, {"offset", std::to_string(t.offset)}});
    }
    // where the header ends, padded: counted here from the bytes the format prescribes
    size_t hdr = 4 + 4 + 8 + 8;
    std::function<size_t(const Value&)> vsize = [&](const Value& v) -> size_t {
      switch (v.type) {
        case ValueType::STRING: return 8 + v.s.size();
        case ValueType::ARRAY: {
          size_t n = 12;
          for (size_t k = 0; k < v.size(); ++k) n += vsize(v.at(k));
          return n;
        }
        case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
        case ValueType::U16: case ValueType::I16: return 2;
        case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
        default: return 8;
      }
    };
    for (const auto& [k, v] : smp.kv) hdr += 8 + k.size() + 4 + vsize(v);
    for (const auto& t : smp.tensors) hdr += 8 + t.name.size() + 4 + 8 * t.ne.size() + 4 + 8;
    e["data_offset"] = std::to_string((hdr + align - 1) / align * align);
    put_bytes(dir / "expected.json", e.dump());
    const fs::path out = dir / "node.out";
    const int rc = test::sh("node '" + (src / "check.js").string() + "' '" + mods.string() + "' '" + p.string() + "' '" +
                      (dir / "expected.json").string() + "' >'" + out.string() + "' 2>&1");
    EXPECT_EQ(rc, 0) << "alignment " << align << ": " << test::slurp(out);
    EXPECT_NE(test::slurp(out).find("ok: " + std::to_string(smp.kv.size()) + " keys"), std::string::npos) << test::slurp(out);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace huginn

namespace huginn {
namespace {
// Findings of fuzz_gguf, kept in its seed corpus: each ends in one
// huginn::Error naming what is wrong (the CLI's one error line).
TEST(Gguf, FuzzFindingsFailClearly) {
  const fs::path corpus = fs::path(HUGINN_SOURCE_DIR) / "fuzz/corpus/fuzz_gguf";
  const std::pair<const char*, const char*> cases[] = {
      // a tokenizer.ggml.tokens string that is not UTF-8 went into JSON text (nlohmann's type_error)
      {"regress_token_not_utf8.gguf", "tokenizer.ggml.tokens[33] is not valid UTF-8"},
  };
  for (const auto& [file, want] : cases) {
    std::string err;
    try {
      load_model((corpus / file).string());
    } catch (const Error& e) {
      err = e.what();
    }
    EXPECT_NE(err.find(want), std::string::npos) << file << ": " << err;
  }
}
}  // namespace
}  // namespace huginn
