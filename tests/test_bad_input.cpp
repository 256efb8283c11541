// Bad input gets a clear one-line error naming the file/tensor/value, and a
// non-zero exit: never a crash or a hang.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/model.h"
#include "huginn/safetensors.h"
#include "test_util.h"

using namespace huginn;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A valid tiny checkpoint directory to corrupt.
struct BadInput : ::testing::Test {
  fs::path dir;
  ModelConfig cfg = test::tiny_config();
  std::vector<float> flat;
  void SetUp() override {
    dir = test::temp_dir("bad");
    flat = init_params(cfg, 1);
    save_checkpoint(dir.string(), cfg, flat.data());
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path weights() const { return dir / "model.safetensors"; }
  std::string bytes() const { return test::slurp(weights()); }
  void put(const std::string& b) const { std::ofstream(weights(), std::ios::binary | std::ios::trunc) << b; }
  // Rewrites the header with `edit` applied, keeping the data section.
  void edit_header(const std::function<void(json&)>& edit) const {
    std::string b = bytes();
    uint64_t n;
    std::memcpy(&n, b.data(), 8);
    json h = json::parse(b.substr(8, n));
    edit(h);
    std::string hs = h.dump();
    uint64_t m = hs.size();
    put(std::string((const char*)&m, 8) + hs + b.substr(8 + n));
  }
  // Loading must throw huginn::Error whose message contains every needle.
  void expect_load_error(std::initializer_list<std::string> needles) const {
    try {
      Model::load(dir.string());
      FAIL() << "loading succeeded";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      for (auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
    }
  }
};

}  // namespace

TEST_F(BadInput, ValidCheckpointLoads) { EXPECT_NO_THROW(Model::load(dir.string())); }

TEST_F(BadInput, FileShorterThanHeaderLength) {
  put("abc");
  expect_load_error({"model.safetensors", "truncated"});
}

TEST_F(BadInput, TruncatedDataSection) {
  std::string b = bytes();
  put(b.substr(0, b.size() - 100));
  expect_load_error({"model.safetensors", "out of range"});
}

TEST_F(BadInput, HeaderLengthBeyondFile) {
  std::string b = bytes();
  uint64_t n = b.size() + 10;
  std::memcpy(b.data(), &n, 8);
  put(b);
  expect_load_error({"model.safetensors", "header length", "beyond the end"});
}

TEST_F(BadInput, HugeHeaderLength) {
  std::string b = bytes();
  uint64_t n = ~0ull;
  std::memcpy(b.data(), &n, 8);
  put(b);
  expect_load_error({"model.safetensors", "header length"});
}

TEST_F(BadInput, HeaderIsNotJson) {
  std::string b = bytes();
  b[8] = '#';
  put(b);
  expect_load_error({"model.safetensors", "safetensors header: invalid JSON"});
}

TEST_F(BadInput, OverlappingOffsets) {
  edit_header([](json& h) { h["transformer.ln_f.weight"]["data_offsets"] = h["transformer.wte.weight"]["data_offsets"]; });
  // ln_f now claims wte's bytes with its own (smaller) shape: byte count mismatch or overlap, never silent.
  expect_load_error({"model.safetensors", "transformer.ln_f.weight"});
  edit_header([](json& h) {
    auto off = h["transformer.wte.weight"]["data_offsets"];
    uint64_t b = off[0].get<uint64_t>();
    h["transformer.ln_f.weight"]["data_offsets"] = {b + 4, b + 4 + 4 * 32};
  });
  expect_load_error({"model.safetensors", "overlap"});
}

TEST_F(BadInput, OutOfRangeOffsets) {
  edit_header([](json& h) { h["transformer.ln_f.weight"]["data_offsets"] = {1ull << 40, (1ull << 40) + 128}; });
  expect_load_error({"model.safetensors", "transformer.ln_f.weight", "out of range"});
  edit_header([](json& h) { h["transformer.ln_f.weight"]["data_offsets"] = {100, 50}; });
  expect_load_error({"transformer.ln_f.weight", "out of range"});
}

TEST_F(BadInput, UnknownDtype) {
  edit_header([](json& h) { h["transformer.ln_f.weight"]["dtype"] = "Q4_K"; });
  expect_load_error({"model.safetensors", "transformer.ln_f.weight", "unknown dtype", "Q4_K"});
}

TEST_F(BadInput, NonFloatDtypeForAWeight) {
  edit_header([](json& h) { h["transformer.ln_f.weight"]["dtype"] = "I32"; });
  expect_load_error({"transformer.ln_f.weight", "I32"});
}

TEST_F(BadInput, MissingTensor) {
  edit_header([](json& h) { h.erase("transformer.core_block.1.attn.qk_bias"); });
  expect_load_error({"missing tensor", "transformer.core_block.1.attn.qk_bias"});
}

TEST_F(BadInput, WrongShapeForConfig) {
  auto c = cfg;
  c.intermediate_size = 48;
  std::ofstream(dir / "config.json") << config_to_json(c).dump();
  expect_load_error({"model.safetensors", "transformer.prelude.0.mlp.fc.weight", "has shape [128, 32]", "[96, 32]"});
}

TEST_F(BadInput, InvalidConfigJson) {
  std::ofstream(dir / "config.json") << "{\"n_embd\": 32,";
  expect_load_error({"config.json", "invalid JSON"});
}

TEST_F(BadInput, UnknownConfigKey) {
  json j = config_to_json(cfg);
  j["n_experts"] = 8;
  std::ofstream(dir / "config.json") << j.dump();
  expect_load_error({"config.json", "unknown config key 'n_experts'"});
}

TEST_F(BadInput, UnsupportedArchitectureChoice) {
  json j = config_to_json(cfg);
  j["mlp_class_name"] = "BaseMLP";
  std::ofstream(dir / "config.json") << j.dump();
  expect_load_error({"config.json", "mlp_class_name", "BaseMLP"});
  j = config_to_json(cfg);
  j["n_heads"] = 3;
  std::ofstream(dir / "config.json") << j.dump();
  expect_load_error({"config.json", "n_heads"});
}

TEST_F(BadInput, ShardIndexNamesMissingShard) {
  json idx = {{"metadata", {{"total_size", 1}}}, {"weight_map", {{"transformer.wte.weight", "nope.safetensors"}}}};
  std::ofstream(dir / "model.safetensors.index.json") << idx.dump();
  expect_load_error({"nope.safetensors"});
  std::ofstream(dir / "model.safetensors.index.json") << "[1,2";
  expect_load_error({"model.safetensors.index.json", "invalid JSON"});
}

TEST_F(BadInput, TokenOutsideVocabularyAndOverlongPrompt) {
  auto m = Model::load(dir.string());
  Workspace ws;
  Model::ForwardResult r;
  std::vector<int> ids = {1, 2, cfg.vocab_size};
  try {
    m->forward(ids.data(), 3, 1, r, ws);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 97"), std::string::npos) << e.what();
  }
  ids = {-1};
  EXPECT_THROW(m->forward(ids.data(), 1, 1, r, ws), Error);
  std::vector<int> longp(cfg.block_size + 1, 3);
  try {
    m->forward(longp.data(), (int)longp.size(), 1, r, ws);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the model's context of 64"), std::string::npos) << e.what();
  }
}

// The same failures through the CLI: exit code 1, one line on stderr, no crash.
TEST_F(BadInput, CliReportsOneLineErrors) {
  auto expect_clean_fail = [](const std::string& args, const std::string& needle) {
    auto r = test::run_cli(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  };
  expect_clean_fail("forward -m " + dir.string() + " --ids 1,2,500", "outside the vocabulary");
  std::string many;
  for (int i = 0; i < 70; ++i) many += "1,";
  expect_clean_fail("forward -m " + dir.string() + " --ids " + many, "exceeds the model's context");
  expect_clean_fail("forward -m " + dir.string() + " --ids 1,x", "invalid token id 'x'");
  expect_clean_fail("info /nonexistent/model", "not a model directory");
  std::string b = bytes();
  put(b.substr(0, b.size() / 2));
  expect_clean_fail("info " + dir.string(), "model.safetensors");
  expect_clean_fail("init --config '{\"n_embd\": 10' --out " + (dir / "x").string(), "invalid JSON");
}

TEST(BadCli, BadOptionValuesAreRejectedCleanly) {
  for (std::string args : {"forward -m . --ids 1 --steps -3", "forward -m . --ids 1 --steps abc",
                           "info . --ctx 0", "nosuchcommand", "init --out /tmp/x"}) {
    auto r = test::run_cli(args);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_NE(r.code, -1) << args << " crashed";
    EXPECT_FALSE(r.err.empty()) << args;
  }
}

TEST(Safetensors, WriterOutputIsReadBackExactly) {
  auto dir = test::temp_dir("st");
  std::vector<float> a = {1.5f, -2.25f, 3.0f, 1e-8f, 65504.f, -0.f};
  write_safetensors((dir / "a.safetensors").string(),
                    {{"x", {2, 3}, a.data(), DType::F32}, {"y", {6}, a.data(), DType::BF16},
                     {"z", {3, 2}, a.data(), DType::F16}},
                    {{"k", "v"}});
  auto s = TensorStore::open_file((dir / "a.safetensors").string());
  EXPECT_EQ(s.get("x").to_f32(), a);
  EXPECT_EQ(s.get("x").shape, (std::vector<int64_t>{2, 3}));
  auto y = s.get("y").to_f32();
  auto z = s.get("z").to_f32();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(y[i], bf16_to_f32(f32_to_bf16(a[i])));
    EXPECT_EQ(z[i], f16_to_f32(f32_to_f16(a[i])));
  }
  EXPECT_EQ(z[4], 65504.f);
  EXPECT_EQ(s.metadata().at("k"), "v");
  // No temporary file is left behind.
  int files = 0;
  for (auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  fs::remove_all(dir);
}
