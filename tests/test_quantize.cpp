// Quantized weights in the model, GGUF as a model file, `huginn quantize`.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "gguf_test_util.h"
#include "huginn/checkpoint.h"
#include "huginn/gguf.h"
#include "huginn/loaded_model.h"
#include "huginn/model.h"
#include "huginn/quantize.h"
#include "huginn/stream_write.h"
#include "huginn/tasks.h"
#include "huginn/train.h"
#include "model/gguf_model.h"
#include "test_util.h"

namespace huginn {
namespace {
namespace fs = std::filesystem;
using gguf::Value;
using gguf::ValueType;

const std::vector<std::string> kTypes = {"f32", "f16", "bf16", "q8_0", "q6_k", "q5_0", "q4_1", "q4_0", "q5_k_m", "q4_k_m"};
const std::string kTasks = std::string(HUGINN_SOURCE_DIR) + "/models/huginn-tasks";

std::vector<float> logits_of(const Model& m, const std::vector<int>& ids, int steps) {
  Workspace ws;
  Model::ForwardResult r;
  m.forward(ids.data(), (int)ids.size(), steps, r, ws, nullptr, nullptr, 0.f, 0, -1);
  return r.logits;
}

// KL(p || q) of the softmax of two logit rows, averaged over rows.
double mean_kl(const std::vector<float>& a, const std::vector<float>& b, int V) {
  double total = 0;
  const int rows = (int)(a.size() / V);
  for (int r = 0; r < rows; ++r) {
    const float* x = a.data() + (size_t)r * V;
    const float* y = b.data() + (size_t)r * V;
    double mx = -1e30, my = -1e30, sx = 0, sy = 0;
    for (int i = 0; i < V; ++i) mx = std::max(mx, (double)x[i]), my = std::max(my, (double)y[i]);
    for (int i = 0; i < V; ++i) sx += std::exp(x[i] - mx), sy += std::exp(y[i] - my);
    double kl = 0;
    for (int i = 0; i < V; ++i) {
      const double lp = x[i] - mx - std::log(sx), lq = y[i] - my - std::log(sy);
      kl += std::exp(lp) * (lp - lq);
    }
    total += kl;
  }
  return total / rows;
}

// A random model whose widths are multiples of 256 (the K types apply).
fs::path k_model(const fs::path& dir) {
  ModelConfig c = test::tiny_config(256, 4, 300, 64);
  c.intermediate_size = 256;
  const fs::path p = dir / "k256";
  if (!fs::exists(p / "model.safetensors")) save_checkpoint(p.string(), c, init_params(c, 7).data());
  return p;
}

TEST(Quantize, F32GgufIsBitIdenticalToTheDirectory) {
  const fs::path dir = test::temp_dir("q-f32");
  const std::string in = std::string(HUGINN_TEST_DATA) + "/golden/tiny_f32";
  quantize_model(in, (dir / "m.gguf").string(), {.type = "f32"});
  auto a = Model::load(in);
  auto b = Model::load((dir / "m.gguf").string());
  EXPECT_EQ(b->rope_source(), a->rope_source());
  const std::vector<int> ids = {1, 5, 9, 200, 3, 77};
  EXPECT_EQ(logits_of(*a, ids, 4), logits_of(*b, ids, 4));
  // A BF16 checkpoint as a BF16 GGUF: matrices copied, the same logits bit for bit
  auto flat = flatten_weights(*a);
  save_checkpoint((dir / "bf16").string(), a->config(), flat.data(), DType::BF16);
  const QuantizeResult q = quantize_model((dir / "bf16").string(), (dir / "b.gguf").string(), {.type = "bf16"});
  EXPECT_EQ(q.out_bytes < q.in_bytes + q.in_bytes / 10, true);
  auto c = Model::load((dir / "b.gguf").string());
  EXPECT_EQ(c->weights().core[0].wqkv.dtype, DType::BF16);
  EXPECT_EQ(logits_of(*Model::load((dir / "bf16").string()), ids, 4), logits_of(*c, ids, 4));
  fs::remove_all(dir);
}

TEST(Quantize, EveryTypeRunsCloseToF32) {
  const fs::path dir = test::temp_dir("q-types");
  const fs::path src = k_model(dir);
  auto ref = Model::load(src.string());
  const std::vector<int> ids = {1, 5, 9, 200, 3, 77, 12, 40};
  const std::vector<float> want = logits_of(*ref, ids, 4);
  const int V = ref->config().vocab_size;
  std::map<std::string, double> kl;
  for (const std::string& t : kTypes) {
    const fs::path out = dir / (t + ".gguf");
    const QuantizeResult r = quantize_model(src.string(), out.string(), {.type = t});
    auto m = Model::load(out.string());
    // prefill (GEMM) and decode (GEMV) paths both
    const std::vector<float> got = logits_of(*m, ids, 4);
    kl[t] = mean_kl(want, got, V);
    Workspace ws;
    Model::ForwardResult one;
    m->forward(ids.data(), 1, 4, one, ws);
    EXPECT_EQ(one.logits.size(), (size_t)V);
    EXPECT_LT(r.out_bytes, r.in_bytes + 1) << t;
    EXPECT_EQ(fs::file_size(out) >= r.out_bytes, true);
  }
  EXPECT_EQ(kl["f32"], 0.0);
  EXPECT_LT(kl["f16"], 1e-6);
  EXPECT_LT(kl["bf16"], 1e-4);
  EXPECT_LT(kl["q8_0"], 1e-3);
  EXPECT_LT(kl["q6_k"], 3e-3);
  for (const char* t : {"q5_0", "q5_k_m", "q4_1", "q4_0", "q4_k_m"}) EXPECT_LT(kl[t], 5e-2) << t;
  // more bits, less error
  EXPECT_LT(kl["q8_0"], kl["q4_0"]);
  EXPECT_LT(kl["q6_k"], kl["q4_k_m"]);
  fs::remove_all(dir);
}

TEST(Quantize, KTypesFallBackWhereRowsDoNotAllow) {
  const fs::path dir = test::temp_dir("q-fallback");
  // the shipped model: width 64, rows of 64 and 192: no K type fits
  const QuantizeResult r = quantize_model(kTasks, (dir / "m.gguf").string(), {.type = "q4_k_m"});
  int fell = 0;
  for (const auto& t : r.tensors) {
    EXPECT_NE(t.type, "Q4_K") << t.name;
    if (t.shape.size() != 2) {
      EXPECT_EQ(t.type, "F32") << t.name;
    }
    fell += t.note.find("not a multiple of 256") != std::string::npos;
  }
  EXPECT_GT(fell, 0);
  // rows of 256: the K types are used
  const QuantizeResult k = quantize_model(k_model(dir).string(), (dir / "k.gguf").string(), {.type = "q4_k_m"});
  std::map<std::string, std::string> type;
  for (const auto& t : k.tensors) type[t.name] = t.type;
  EXPECT_EQ(type["blk.1.attn_qkv.weight"], "Q4_K");
  EXPECT_EQ(type["blk.1.ffn_down.weight"], "Q6_K");
  EXPECT_EQ(type["rec_adapter.weight"], "Q6_K");
  EXPECT_EQ(type["token_embd.weight"], "Q6_K");
  EXPECT_EQ(type["blk.1.attn_norm.weight"], "F32");
  fs::remove_all(dir);
}

TEST(Quantize, GgufIsACompleteModel) {
  const fs::path dir = test::temp_dir("q-complete");
  const fs::path out = dir / "tasks-q8.gguf";
  quantize_model(kTasks, out.string(), {.type = "q8_0"});
  const LoadedModel a = load_model(kTasks), b = load_model(out.string());
  ASSERT_NE(b.tokenizer(), nullptr);
  EXPECT_EQ(b.stop_ids(), a.stop_ids());
  EXPECT_EQ(b.config().n_embd, a.config().n_embd);
  EXPECT_EQ(b.config().mean_recurrence, a.config().mean_recurrence);
  EXPECT_EQ(b.config().norm_eps, a.config().norm_eps);
  EXPECT_EQ(b.config().name, a.config().name);
  EXPECT_EQ(b.generation_config().eos_token_ids, a.generation_config().eos_token_ids);
  for (const std::string s : {"12+34=", "hello world", "<|begin_text|>ab"})
    EXPECT_EQ(b.tokenizer()->encode(s), a.tokenizer()->encode(s)) << s;
  // the task manifest and the tokenizer travel in the file
  ASSERT_TRUE(tasks::has_task_manifest(out.string()));
  EXPECT_EQ(tasks::read_task_manifest(out.string()).tasks.at(0).task, tasks::read_task_manifest(kTasks).tasks.at(0).task);
  EXPECT_EQ(load_model_tokenizer(out.string()).encode("12+34="), a.tokenizer()->encode("12+34="));
  // tokenizer-only load of the file
  LoadOptions lo;
  lo.weights = false;
  const LoadedModel t = load_model(out.string(), lo);
  ASSERT_NE(t.tokenizer(), nullptr);
  EXPECT_EQ(t.tokenizer()->encode("12+34="), a.tokenizer()->encode("12+34="));
  // the tokenizer rebuilt from tokenizer.ggml.* alone (no tokenizer.huggingface.json)
  gguf::File f(out.string());
  const auto rebuilt = gguf_model::tokenizer_json(f);
  ASSERT_TRUE(rebuilt);
  {
    gguf::Writer w((dir / "no-hf.gguf").string());
    for (const auto& [k, v] : f.metadata())
      if (k != "tokenizer.huggingface.json") w.set(k, v);
    for (const auto& tt : f.tensors()) w.add_tensor(tt.name, tt.type, tt.ne);
    for (const auto& tt : f.tensors()) w.write_tensor(tt.data, tt.nbytes);
    w.finish();
  }
  const LoadedModel c = load_model((dir / "no-hf.gguf").string());
  ASSERT_NE(c.tokenizer(), nullptr);
  for (const std::string s : {"12+34=", "hello world", "<|begin_text|>ab"})
    EXPECT_EQ(c.tokenizer()->encode(s), a.tokenizer()->encode(s)) << s;
  EXPECT_EQ(c.tokenizer()->decode(a.tokenizer()->encode("x=1;y")), "x=1;y");
  fs::remove_all(dir);
}

// Q8_0 answers the shipped model's demo problems with the same tokens as F32
// (greedy, every depth of the demo table).
TEST(Quantize, Q8MatchesF32OnTheShippedModel) {
  const fs::path dir = test::temp_dir("q-demo");
  quantize_model(kTasks, (dir / "q8.gguf").string(), {.type = "q8_0"});
  quantize_model(kTasks, (dir / "q4.gguf").string(), {.type = "q4_0"});
  auto f32 = Model::load(kTasks);
  auto q8 = Model::load((dir / "q8.gguf").string());
  auto q4 = Model::load((dir / "q4.gguf").string());
  const tasks::Task& jumps = tasks::get_task("jumps");
  int same = 0, total = 0, same4 = 0;
  for (int diff : {8, 16, 24}) {
    const auto insts = tasks::test_instances(jumps, diff, 12, 1);
    for (int steps : {1, 4, 16, 32}) {
      tasks::DecodeOptions o;
      o.steps = steps;
      for (const auto& inst : insts) {
        const auto ids = tasks::prompt_ids(inst);
        const auto a = tasks::decode_answer(*f32, ids, o).tokens;
        same += tasks::decode_answer(*q8, ids, o).tokens == a;
        same4 += tasks::decode_answer(*q4, ids, o).tokens == a;
        ++total;
      }
    }
  }
  EXPECT_GE(same, total * 98 / 100) << same << " of " << total;
  EXPECT_GT(same4, total / 2) << same4 << " of " << total;
  std::printf("Q8_0: %d of %d answers token-identical to F32; Q4_0: %d\n", same, total, same4);
  fs::remove_all(dir);
}

TEST(Quantize, CliWritesLoadableFilesAndRejectsBadInput) {
  const fs::path dir = test::temp_dir("q-cli");
  const std::string out = (dir / "m.gguf").string();
  auto r = test::run_cli("quantize " + kTasks + " " + out + " --type q4_0");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote"), std::string::npos) << r.out;
  r = test::run_cli("generate -m " + out + " -p '<|begin_text|>ab' --max-tokens 4");
  EXPECT_EQ(r.code, 0) << r.err;
  r = test::run_cli("info " + out);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Q4_0"), std::string::npos) << r.out;
  // from a GGUF
  r = test::run_cli("quantize " + out + " " + (dir / "m2.gguf").string() + " --type q8_0 --quiet");
  EXPECT_EQ(r.code, 0) << r.err;
  auto one_error = [](const test::RunResult& r, const std::string& what) {
    EXPECT_NE(r.code, 0) << what;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << what << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << ": " << r.err;
  };
  one_error(test::run_cli("quantize " + kTasks + " " + out + " --type q3_k"), "unknown type");
  one_error(test::run_cli("quantize /nonexistent " + out), "missing input");
  // damaged model files
  const std::string bytes = test::slurp(out);
  const fs::path trunc = dir / "trunc.gguf";
  std::ofstream(trunc, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  one_error(test::run_cli("generate -m " + trunc.string() + " --ids 1,2"), "truncated");
  std::string bad = bytes;
  bad[8] = (char)0xff;  // tensor count
  bad[14] = (char)0x7f;
  const fs::path huge = dir / "huge.gguf";
  std::ofstream(huge, std::ios::binary) << bad;
  one_error(test::run_cli("generate -m " + huge.string() + " --ids 1,2"), "huge count");
  {  // a valid GGUF that is not a model
    gguf::Writer w((dir / "nomodel.gguf").string());
    w.set("general.architecture", Value::string("llama"));
    w.finish();
  }
  one_error(test::run_cli("generate -m " + (dir / "nomodel.gguf").string() + " --ids 1,2"), "foreign architecture");
  {  // a model with a tensor missing
    gguf::File f(out);
    gguf::Writer w((dir / "missing.gguf").string());
    for (const auto& [k, v] : f.metadata()) w.set(k, v);
    for (size_t i = 1; i < f.tensors().size(); ++i) w.add_tensor(f.tensors()[i].name, f.tensors()[i].type, f.tensors()[i].ne);
    for (size_t i = 1; i < f.tensors().size(); ++i) w.write_tensor(f.tensors()[i].data, f.tensors()[i].nbytes);
    w.finish();
  }
  one_error(test::run_cli("generate -m " + (dir / "missing.gguf").string() + " --ids 1,2"), "missing tensor");
  // a tokenizer.json whose ids are not integers (1e300 converted to an integer is undefined behaviour)
  for (const nlohmann::json& id : {nlohmann::json(1e300), nlohmann::json(-2), nlohmann::json("7")}) {
    const fs::path src = dir / "badtok";
    fs::remove_all(src);
    fs::copy(kTasks, src, fs::copy_options::recursive);
    nlohmann::json t = nlohmann::json::parse(test::slurp((src / "tokenizer.json").string()));
    t["added_tokens"][0]["id"] = id;
    std::ofstream(src / "tokenizer.json") << t.dump();
    const auto res = test::run_cli("quantize " + src.string() + " " + (dir / "badtok.gguf").string() + " --type q8_0");
    one_error(res, "tokenizer id " + id.dump());
    EXPECT_NE(res.err.find("id"), std::string::npos) << res.err;
    EXPECT_FALSE(fs::exists(dir / "badtok.gguf")) << id.dump();
  }
  {  // an invalid tokenizer_config.json is named, not silently dropped with its chat template
    const fs::path src = dir / "badtok";
    fs::remove_all(src);
    fs::copy(kTasks, src, fs::copy_options::recursive);
    std::ofstream(src / "tokenizer_config.json") << "{\"chat_template\": ";
    const auto res = test::run_cli("quantize " + src.string() + " " + (dir / "badtok.gguf").string() + " --type q8_0");
    one_error(res, "invalid tokenizer_config.json");
    EXPECT_NE(res.err.find("tokenizer_config.json: invalid JSON"), std::string::npos) << res.err;
    EXPECT_FALSE(fs::exists(dir / "badtok.gguf"));
  }
  fs::remove_all(dir);
}

// --- Hugging Face's parser (npm @huggingface/gguf) reads every file quantize writes ---

// Every type from the shipped model, the tiny fixture model, a model of
// 256-wide rows and the Ouro fixture model: loads, generates, and Hugging Face's parser agrees.
TEST(Quantize, HuggingFaceParserReadsEveryType) {
  if (test::sh("command -v node >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "node not found: the @huggingface/gguf check needs nodejs and npm (scripts/setup.sh)";
  const fs::path src = fs::path(HUGINN_SOURCE_DIR) / "tests/gguf_npm";
  const fs::path mods = test::npm_packages("gguf_npm", "@huggingface/gguf/package.json");
  ASSERT_FALSE(mods.empty()) << "npm ci failed for tests/gguf_npm: is the npm registry reachable?";
  const fs::path dir = test::temp_dir("q-npm");
  const fs::path kdir = k_model(dir);
  const std::string tiny = std::string(HUGINN_TEST_DATA) + "/golden/tiny_f32";
  const std::string ouro = std::string(HUGINN_TEST_DATA) + "/golden/ouro/model";  // the second family
  for (const std::string& t : kTypes)
    for (const std::string& in : {kTasks, tiny, kdir.string(), ouro}) {
      const fs::path p = dir / (t + ".gguf");
      quantize_model(in, p.string(), {.type = t});
      {  // loads and generates
        const LoadedModel lm = load_model(p.string());
        tasks::DecodeOptions o;
        o.steps = 4;
        const auto r = tasks::decode_answer(lm.model(), {1, 2, 3}, o);
        EXPECT_GE(r.tokens.size(), 1u) << t << " " << in;
      }
      gguf::File f(p.string());
      nlohmann::json e = {{"metadata", nlohmann::json::object()}, {"tensors", nlohmann::json::array()}};
      for (const auto& [k, v] : f.metadata()) e["metadata"][k] = test::gguf_value_json(v);
      for (const auto& tt : f.tensors()) {
        std::vector<std::string> ne;
        for (int64_t n : tt.ne) ne.push_back(std::to_string(n));
        e["tensors"].push_back(
            {{"name", tt.name}, {"dtype", (int)tt.type}, {"ne", ne}, {"offset", std::to_string(tt.offset)}});
      }
      e["data_offset"] = std::to_string(f.data_offset());
      std::ofstream(dir / "expected.json", std::ios::binary) << e.dump();
      const fs::path out = dir / "node.out";
      const int rc = test::sh("node '" + (src / "check.js").string() + "' '" + mods.string() + "' '" + p.string() + "' '" +
                        (dir / "expected.json").string() + "' >'" + out.string() + "' 2>&1");
      EXPECT_EQ(rc, 0) << t << " " << in << ": " << test::slurp(out);
      EXPECT_NE(test::slurp(out).find("ok: " + std::to_string(f.metadata().size()) + " keys"), std::string::npos)
          << t << ": " << test::slurp(out);
    }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace huginn

namespace huginn {
// `huginn init` streams (save_random_checkpoint: each tensor generated as the
// file reaches it) and writes exactly what save_checkpoint(init_params) does.
TEST(Quantize, StreamingInitWritesTheSameBytes) {
  const ModelConfig c = parse_config(
      nlohmann::json{{"n_embd", 64}, {"n_heads", 4}, {"intermediate_size", 96}, {"vocab_size", 128}, {"block_size", 32},
                     {"n_layers_in_prelude", 1}, {"n_layers_in_recurrent_block", 2}, {"n_layers_in_coda", 1}},
      "test");
  const fs::path dir = test::temp_dir("stream-init");
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    save_checkpoint((dir / "a").string(), c, init_params(c, 7).data(), dt);
    save_random_checkpoint((dir / "b").string(), c, 7, dt);
    for (const char* f : {"model.safetensors", "config.json"})
      EXPECT_EQ(test::slurp(dir / "a" / f), test::slurp(dir / "b" / f)) << f << " " << dtype_name(dt);
  }
  fs::remove_all(dir);
}
}  // namespace huginn
