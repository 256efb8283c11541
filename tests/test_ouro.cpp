// The Ouro (LoopLM) family on the fixture's tiny random model
// (tests/data/golden/ouro): loading and its errors, the learned exit gate as a
// stopping exit criterion, forced loop counts, huginn.cpp's zero-shot exit
// criteria, the KV strategies across loops, and the CLI commands on an Ouro
// directory. The numerics against the original code are `huginn golden
// tests/data/golden/ouro` (ctest golden.ouro).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "huginn/chat.h"
#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/quantize.h"
#include "huginn/safetensors.h"
#include "huginn/server_api.h"
#include "infer/decoder.h"
#include "test_util.h"

using namespace huginn;
using huginn::test::run_cli;
using huginn::serve::Api;
using huginn::serve::ApiRequest;

namespace {
const std::string kFix = std::string(HUGINN_TEST_DATA) + "/golden/ouro";
const std::string kModel = kFix + "/model";

const TensorStore& expected() {
  static TensorStore s = TensorStore::open_file(kFix + "/expected.safetensors");
  return s;
}
std::vector<int> ids(const std::string& name) {
  const TensorView& t = expected().get(name);
  const int64_t* p = reinterpret_cast<const int64_t*>(t.data);
  return std::vector<int>(p, p + t.numel());
}
std::string join(const std::vector<int>& v, const char* sep = ",") {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : sep) + std::to_string(x);
  return s;
}

// A copy of the fixture model whose config.json `edit` changes.
std::string edited_model(const std::function<void(nlohmann::json&)>& edit) {
  auto dir = test::temp_dir("ouro");
  std::filesystem::copy_file(kModel + "/model.safetensors", dir / "model.safetensors");
  nlohmann::json j = nlohmann::json::parse(std::ifstream(kModel + "/config.json"));
  edit(j);
  std::ofstream(dir / "config.json") << j.dump(2);
  return dir.string();
}

std::string load_error(const std::string& dir) {
  try {
    Model::load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Ouro, LoadsTheHfDirectory) {
  auto m = Model::load(kModel);
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.arch, "ouro");
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_core, 2);
  EXPECT_EQ(c.n_prelude + c.n_coda, 0);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.kv_heads(), 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.mean_recurrence, 4);  // total_ut_steps: the default loop count
  EXPECT_EQ(c.exit_threshold, 1.0);
  EXPECT_EQ(c.block_size, 256);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_TRUE(c.rope_half_split);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{0});
  EXPECT_TRUE(m->has_exit_gate());
  EXPECT_EQ(m->weights().exit_gate.cols, 64);
  EXPECT_NE(m->weights().lm_head.data, m->weights().wte.data);  // untied head
  EXPECT_EQ(m->params().size(), 27u);
  EXPECT_EQ(default_stop_tokens(c), std::vector<int>{0});
}

TEST(Ouro, BadConfigsAreClearErrors) {
  EXPECT_NE(load_error(edited_model([](auto& j) { j["foo"] = 1; })).find("unknown config key 'foo'"),
            std::string::npos);
  EXPECT_NE(load_error(edited_model([](auto& j) { j["use_sliding_window"] = true; })).find("use_sliding_window"),
            std::string::npos);
  EXPECT_NE(load_error(edited_model([](auto& j) { j["hidden_act"] = "gelu"; })).find("hidden_act"),
            std::string::npos);
  EXPECT_NE(load_error(edited_model([](auto& j) { j["rope_scaling"] = {{"type", "linear"}}; })).find("rope_scaling"),
            std::string::npos);
  EXPECT_NE(load_error(edited_model([](auto& j) { j["num_key_value_heads"] = 3; })).find("multiple"),
            std::string::npos);
  EXPECT_NE(load_error(edited_model([](auto& j) { j["total_ut_steps"] = "4"; })).find("total_ut_steps"),
            std::string::npos);
  // shapes are checked against the config
  const std::string e = load_error(edited_model([](auto& j) { j["intermediate_size"] = 96; }));
  EXPECT_NE(e.find("mlp.gate_proj.weight' has shape [128, 64]"), std::string::npos) << e;
  // a tied config does not need lm_head (and loads)
  EXPECT_EQ(load_error(edited_model([](auto& j) { j["tie_word_embeddings"] = true; })), "");
  // defaults: without total_ut_steps the class default 4
  auto m = Model::load(edited_model([](auto& j) { j.erase("total_ut_steps"); j.erase("early_exit_threshold"); }));
  EXPECT_EQ(m->config().mean_recurrence, 4);
  EXPECT_EQ(m->config().exit_threshold, 1.0);
}

// --exit gate:T stops the loop at the gate's step: each prefix of p23 (its
// last row decides) runs exactly the fixture's exit_step + 1 loops.
TEST(Ouro, GateExitStopsComputingAtTheGatesStep) {
  auto m = Model::load(kModel);
  const auto p = ids("prompt/p23");
  for (const char* thr : {"0.5", "0.8"}) {
    const auto want = ids(std::string("exit/p23/thr") + thr + "/exit_step");
    const ExitCriterion ex = ExitCriterion::parse(std::string("gate:") + thr);
    int loops = 0, early = 0;
    for (size_t k = 0; k < p.size(); ++k) {
      infer::Decoder dec(*m, (int)k + 1, CacheStrategy::parse("full"), (int)k + 1, ex);
      infer::DepthPolicy pol;
      pol.max_steps = 4;
      pol.exit = ex;
      infer::PassInput in;
      in.ids = p.data();
      in.T = (int)k + 1;
      std::vector<ExitCheck> checks;
      const infer::PassResult r = dec.run(in, pol, &checks);
      EXPECT_EQ(r.steps, want[k] + 1) << "threshold " << thr << " position " << k;
      // one check per loop run: the loops after the exit were not computed
      EXPECT_EQ((int)checks.size(), r.steps);
      loops += r.steps;
      early += r.steps < 4;
    }
    EXPECT_GT(early, 0) << thr;
    EXPECT_LT(loops, 4 * (int)p.size()) << thr;
  }
}

TEST(Ouro, GateExitNeedsAGate) {
  auto h = Model::load(std::string(HUGINN_TEST_DATA) + "/golden/tiny_f32");
  GenerateOptions o;
  o.steps = 4;
  o.exit = ExitCriterion::parse("gate:0.5");
  o.max_new_tokens = 2;
  try {
    generate(*h, std::vector<int>{1, 2, 3}, o);
    FAIL() << "gate exit on Huginn did not fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("learned exit gate"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ExitCriterion::parse("gate:1.5"), Error);
  EXPECT_THROW(ExitCriterion::parse("gate:0"), Error);
}

// --steps forces the loop count: the logits after 2 loops are step_logits[1].
TEST(Ouro, StepsForceTheLoopCount) {
  auto m = Model::load(kModel);
  const auto p = ids("prompt/p7");
  Workspace ws;
  Model::ForwardResult r;
  m->forward(p.data(), (int)p.size(), 2, r, ws);
  const std::vector<float> want = expected().get("fwd/p7/T2/step_logits").to_f32();
  const size_t n = r.logits.size();
  ASSERT_EQ(want.size(), 2 * n);
  double worst = 0;
  for (size_t i = 0; i < n; ++i) worst = std::max(worst, (double)std::fabs(r.logits[i] - want[n + i]));
  EXPECT_LT(worst, 2e-4);
}

// huginn.cpp's zero-shot criteria work on Ouro: a threshold no change can
// pass never exits (4 loops), one every change passes exits at the first check.
TEST(Ouro, ZeroShotCriteriaWork) {
  auto m = Model::load(kModel);
  const auto p = ids("prompt/p7");
  for (const char* crit : {"latent-diff", "kl", "cosine", "entropy-diff"}) {
    GenerateOptions o;
    o.steps = 4;
    o.max_new_tokens = 4;
    o.stop_tokens.clear();
    o.exit = ExitCriterion::parse(std::string(crit) + ":0");
    auto never = generate(*m, p, o);
    for (int s : never.steps) EXPECT_EQ(s, 4) << crit;
    o.exit = ExitCriterion::parse(std::string(crit) + ":1e9");
    auto always = generate(*m, p, o);
    for (int s : always.steps) EXPECT_EQ(s, 1) << crit;
  }
}

// The original's cache (one slot per (loop, layer)) reproduces its greedy
// tokens; last-loop keeps one slot per layer (a quarter at 4 loops).
TEST(Ouro, KvCacheAcrossLoops) {
  auto m = Model::load(kModel);
  const auto p = ids("prompt/p7");
  const auto want = ids("gen/p7/tokens");
  GenerateOptions o;
  o.steps = 4;
  o.max_new_tokens = (int)want.size();
  o.stop_tokens.clear();
  auto full = generate(*m, p, o);
  EXPECT_EQ(full.tokens, want);
  o.cache = "last-loop";
  auto last = generate(*m, p, o);
  EXPECT_EQ(last.tokens.size(), want.size());
  const size_t positions = p.size() + want.size() - 1, per = 2 * sizeof(float) * m->config().kv_width();
  EXPECT_EQ(full.kv_bytes, positions * per * 2 * 4);
  EXPECT_EQ(last.kv_bytes, positions * per * 2);
  // at one loop the strategies coincide
  o.steps = 1;
  auto a = generate(*m, p, o);
  o.cache = "full";
  auto b = generate(*m, p, o);
  EXPECT_EQ(a.tokens, b.tokens);
  // the gate exit with the zero-shot lookup of missing loops
  o.steps = 4;
  o.exit = ExitCriterion::parse("gate:0.5");
  o.cache = "latest-m4";
  auto g = generate(*m, p, o);
  EXPECT_EQ(g.tokens.size(), want.size());
  for (int s : g.steps) EXPECT_TRUE(s >= 1 && s <= 4) << s;
}

TEST(OuroCli, GenerateInfoForwardTrace) {
  const std::string p7 = join(ids("prompt/p7"));
  const auto want = ids("gen/p7/tokens");
  auto r = run_cli("generate -m " + kModel + " --ids " + p7 + " -n 8 --no-default-stops");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, join(want, " ") + " \n");
  EXPECT_NE(r.err.find("iterations per token mean 4.00"), std::string::npos) << r.err;
  // --exit gate:0.5: the prompt pass stops at the gate's step of its last position
  const int step = ids("exit/p7/thr0.5/exit_step").back() + 1;
  auto g = run_cli("generate -m " + kModel + " --ids " + p7 + " -n 1 --exit gate:0.5 --show-steps --no-default-stops");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.out.find("[" + std::to_string(step) + "]"), std::string::npos) << g.out;
  // --steps 2 forces two loops
  auto s = run_cli("generate -m " + kModel + " --ids " + p7 + " -n 3 --steps 2 --no-default-stops");
  EXPECT_NE(s.err.find("mean 2.00 min 2 max 2"), std::string::npos) << s.err;
  auto bad = run_cli("generate -m " + std::string(HUGINN_TEST_DATA) + "/golden/tiny_f32 --ids 1,2 --exit gate:0.5");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("learned exit gate"), std::string::npos) << bad.err;

  // self-speculative decoding: a 1-loop draft verified at 4 loops gives plain greedy's tokens
  auto sp = run_cli("generate -m " + kModel + " --ids " + p7 + " -n 8 --no-default-stops --speculative "
                    "draft=1,lookahead=3 --compare");
  ASSERT_EQ(sp.code, 0) << sp.err;
  EXPECT_EQ(sp.out.substr(0, join(want, " ").size()), join(want, " ")) << sp.out;
  EXPECT_NE(sp.err.find("agreement 8/8"), std::string::npos) << sp.err;

  auto info = run_cli("info " + kModel);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("ouro (LoopLM)"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("KV last-loop"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("(2 layer slots per token)"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("(8 layer slots per token)"), std::string::npos) << info.out;
  // an f16 cache: half of full's bytes
  auto kv_bytes = [&](const std::string& name) {
    const size_t at = info.out.find("KV " + name + " ");
    if (at == std::string::npos) return -1.0;
    std::istringstream in(info.out.substr(at + 3 + name.size()));
    double v = 0;
    std::string unit;
    in >> v >> unit;
    for (const char* u : {"B", "KiB", "MiB", "GiB"}) {
      if (unit == u) return v;
      v *= 1024;
    }
    return -2.0;
  };
  EXPECT_GT(kv_bytes("full"), 0) << info.out;
  EXPECT_NEAR(kv_bytes("full-f16") * 2, kv_bytes("full"), 0.01 * kv_bytes("full")) << info.out;

  auto fwd = run_cli("forward -m " + kModel + " --ids " + p7);
  ASSERT_EQ(fwd.code, 0) << fwd.err;
  EXPECT_NE(fwd.out.find(std::to_string(want[0])), std::string::npos) << fwd.out;

  // huginn init writes an Ouro checkpoint (GQA, BF16) that loads and generates
  auto idir = test::temp_dir("ouro-init");
  auto in = run_cli("init --dtype BF16 --out " + idir.string() +
                    " --config '{\"model_type\":\"ouro\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":96,"
                    "\"vocab_size\":100,\"max_position_embeddings\":128}'");
  ASSERT_EQ(in.code, 0) << in.err;
  auto ig = run_cli("generate -m " + idir.string() + " --ids 1,2,3 -n 4 --exit gate:0.6 --cache last-loop");
  EXPECT_EQ(ig.code, 0) << ig.err;
  auto ii = run_cli("info " + idir.string());
  EXPECT_NE(ii.out.find("2 KV heads"), std::string::npos) << ii.out;
  EXPECT_NE(ii.out.find("BF16 x"), std::string::npos) << ii.out;
  std::filesystem::remove_all(idir);

  auto dir = test::temp_dir("ouro-trace");
  auto tr = run_cli("trace -m " + kModel + " --ids " + p7 + " --steps 4 --out " + dir.string());
  ASSERT_EQ(tr.code, 0) << tr.err;
  TensorStore st = TensorStore::open_file((dir / "states.safetensors").string());
  const std::vector<float> states = st.get("states").to_f32(), hidden = expected().get("fwd/p7/T4/hidden").to_f32();
  ASSERT_EQ(states.size(), hidden.size());
  double worst = 0;
  for (size_t i = 0; i < states.size(); ++i) worst = std::max(worst, (double)std::fabs(states[i] - hidden[i]));
  EXPECT_LT(worst, 2e-4);  // the latent per loop is the original's hidden state per step
  std::filesystem::remove_all(dir);
}

namespace {
// A ChatML tokenizer over the tiny model's vocabulary: <|endoftext|> 0,
// "\n" and printable ASCII 1..96, <|im_start|> 97, <|im_end|> 98, fillers to 255.
std::string chatml_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  vocab["<|endoftext|>"] = 0;
  vocab["\n"] = 1;
  for (int c = 32; c < 127; ++c) vocab[std::string(1, (char)c)] = c - 30;
  vocab["<|im_start|>"] = 97;
  vocab["<|im_end|>"] = 98;
  for (int i = 99; i < 256; ++i) vocab["<t" + std::to_string(i) + ">"] = i;  // the rest of the model's vocabulary
  auto added = [](int id, const char* s) {
    return nlohmann::json{{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  nlohmann::json j = {{"version", "1.0"},
                      {"added_tokens", {added(0, "<|endoftext|>"), added(97, "<|im_start|>"), added(98, "<|im_end|>")}},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", nullptr},
                      {"post_processor", nullptr},
                      {"decoder", nullptr},
                      {"model",
                       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                        {"byte_fallback", false}, {"ignore_merges", false}, {"vocab", vocab},
                        {"merges", nlohmann::json::array()}}}};
  return j.dump();
}
}  // namespace

TEST(Ouro, ChatMlTemplateAndStops) {
  Tokenizer t = Tokenizer::from_json(chatml_tokenizer());
  EXPECT_TRUE(is_chatml_tokenizer(t));
  EXPECT_EQ(format_chatml({{"system", "S"}, {"user", "hi"}}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  const auto ids = encode_chat(t, {{"user", "hi"}}, true);
  const std::vector<int> want = {97, 'u' - 30, 's' - 30, 'e' - 30, 'r' - 30, 1, 'h' - 30, 'i' - 30, 98, 1, 97,
                                 'a' - 30, 's' - 30, 's' - 30, 'i' - 30, 's' - 30, 't' - 30, 'a' - 30, 'n' - 30,
                                 't' - 30, 1};
  EXPECT_EQ(ids, want);
  EXPECT_EQ(chat_stop_ids(t), std::vector<int>({98, 0}));
}

// `huginn chat` on an Ouro directory with a ChatML tokenizer, and the modes
// that cannot apply to a loop without input injection are clear errors.
TEST(OuroCli, ChatAndUnsupportedModes) {
  auto dir = test::temp_dir("ouro-chat");
  std::filesystem::copy_file(kModel + "/model.safetensors", dir / "model.safetensors");
  std::filesystem::copy_file(kModel + "/config.json", dir / "config.json");
  std::ofstream(dir / "tokenizer.json") << chatml_tokenizer();
  auto r = run_cli("chat -m " + dir.string() + " -n 4 --exit gate:0.5", "hi\n");
  EXPECT_EQ(r.code, 0) << r.err;
  // the ChatML turn of "hi" is 21 tokens (ChatMlTemplateAndStops)
  EXPECT_NE((r.out + r.err).find("4 tokens"), std::string::npos) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("21 turn tokens fed"), std::string::npos) << r.out << r.err;
  auto c = run_cli("generate -m " + kModel + " --ids 1,2,3 --continuous");
  EXPECT_NE(c.code, 0);
  EXPECT_NE(c.err.find("no input injection"), std::string::npos) << c.err;
  auto p = run_cli("generate -m " + kModel + " --ids 1,2,3 --parallel");
  EXPECT_NE(p.code, 0);
  EXPECT_NE(p.err.find("no input injection"), std::string::npos) << p.err;
  auto s = run_cli("generate -m " + kModel + " --ids 1,2,3 --soft-thoughts 2");
  EXPECT_NE(s.code, 0);
  EXPECT_NE(s.err.find("soft thoughts"), std::string::npos) << s.err;
  auto t = run_cli("train --model-config " + kModel + "/config.json --data synthetic:copy --out " +
                   (dir / "run").string() + " --steps 1 --batch 2 --seq-len 8");
  EXPECT_NE(t.code, 0);
  EXPECT_NE(t.err.find("training is implemented for the huginn_raven architecture only"), std::string::npos) << t.err;
  std::filesystem::remove_all(dir);
}

// The server's API on an Ouro model: per-request loops and the gate exit;
// without a tokenizer it stops on the config's eos.
TEST(Ouro, ServeApiPerRequestLoopsAndExit) {
  auto m = Model::load(kModel);
  const Api api(*m, std::nullopt, {}, "ouro", {});
  const std::string p7 = join(ids("prompt/p7"));
  const ApiRequest d = api.parse("{\"prompt\": [" + p7 + "], \"max_tokens\": 8}", false);
  EXPECT_EQ(d.options.steps, 4);
  EXPECT_EQ(d.options.stop_tokens, std::vector<int>{0});
  const nlohmann::json full = api.complete(d);
  std::vector<int> toks = full["huginn"]["tokens"].get<std::vector<int>>();
  EXPECT_EQ(toks, ids("gen/p7/tokens"));
  const ApiRequest g = api.parse("{\"prompt\": [" + p7 + "], \"max_tokens\": 1, \"exit\": \"gate:0.5\"}", false);
  const nlohmann::json r = api.complete(g);
  EXPECT_EQ(r["huginn"]["steps"][0].get<int>(), ids("exit/p7/thr0.5/exit_step").back() + 1) << r.dump();
  const ApiRequest s = api.parse("{\"prompt\": [" + p7 + "], \"max_tokens\": 2, \"steps\": 2}", false);
  EXPECT_EQ(api.complete(s)["huginn"]["mean_steps"].get<double>(), 2.0);
}

// A batch: each sequence exits on its own and gets the tokens it gets alone.
TEST(Ouro, BatchEqualsAlone) {
  auto m = Model::load(kModel);
  const auto a = ids("prompt/p7"), b = ids("prompt/p23");
  GenerateOptions o;
  o.steps = 4;
  o.max_new_tokens = 6;
  o.stop_tokens.clear();
  o.exit = ExitCriterion::parse("gate:0.8");
  o.cache = "latest-m4";
  auto both = generate(*m, std::vector<std::vector<int>>{a, b}, o);
  auto ra = generate(*m, a, o), rb = generate(*m, b, o);
  EXPECT_EQ(both[0].tokens, ra.tokens);
  EXPECT_EQ(both[1].tokens, rb.tokens);
  EXPECT_EQ(both[0].steps, ra.steps);
  EXPECT_EQ(both[1].steps, rb.steps);
}

// Grouped-query attention (K/V narrower than Q): equal to the same model with
// each K/V head repeated for its query group (MHA). Cached generation too.
TEST(Ouro, GroupedQueryAttentionEqualsRepeatedHeads) {
  auto cfg = [](int kv) {
    nlohmann::json j = {{"model_type", "ouro"}, {"hidden_size", 32}, {"num_hidden_layers", 2},
                        {"num_attention_heads", 4}, {"num_key_value_heads", kv}, {"head_dim", 8},
                        {"intermediate_size", 48}, {"vocab_size", 50}, {"max_position_embeddings", 64},
                        {"total_ut_steps", 3}, {"rope_theta", 10000.0}};
    return parse_config(j, "test");
  };
  const ModelConfig g = cfg(2), h = cfg(4);
  const std::vector<float> fg = init_params(g, 5);
  auto lg = param_layout(g), lh = param_layout(h);
  ASSERT_EQ(lg.size(), lh.size());
  std::vector<float> fh(param_count(lh));
  const int hd = 8, group = 2;
  for (size_t i = 0; i < lg.size(); ++i) {
    const ParamSpec &a = lg[i], &b = lh[i];
    ASSERT_EQ(a.name, b.name);
    if (a.numel == b.numel) {
      std::copy(fg.begin() + a.offset, fg.begin() + a.offset + a.numel, fh.begin() + b.offset);
      continue;
    }
    // k_proj / v_proj: [kv*hd, H] -> [nh*hd, H], query head j reads kv head j / group
    const size_t H = a.shape[1];
    for (int j = 0; j < 4; ++j)
      std::copy(fg.begin() + a.offset + (size_t)(j / group) * hd * H, fg.begin() + a.offset + (size_t)(j / group + 1) * hd * H,
                fh.begin() + b.offset + (size_t)j * hd * H);
  }
  auto mg = Model::from_flat(g, fg.data()), mh = Model::from_flat(h, fh.data());
  const std::vector<int> p = {3, 14, 15, 9, 26, 5};
  Workspace w1, w2;
  Model::ForwardResult r1, r2;
  mg->forward(p.data(), (int)p.size(), 3, r1, w1);
  mh->forward(p.data(), (int)p.size(), 3, r2, w2);
  ASSERT_EQ(r1.logits.size(), r2.logits.size());
  double worst = 0;
  for (size_t i = 0; i < r1.logits.size(); ++i) worst = std::max(worst, (double)std::fabs(r1.logits[i] - r2.logits[i]));
  EXPECT_LT(worst, 1e-5);
  GenerateOptions o;
  o.steps = 3;
  o.max_new_tokens = 6;
  o.stop_tokens.clear();
  auto a = generate(*mg, p, o), b = generate(*mh, p, o);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.kv_bytes * 2, b.kv_bytes);  // half the K/V width
}

// An Ouro directory quantized to one GGUF file (huginn quantize): F32 in GGUF
// is the same model bit for bit (tokens and every token's gate exit step);
// BF16 and the block types keep the next-token distribution close to F32's;
// the gate still stops computing; `huginn info` describes the file as Ouro.
TEST(Ouro, GgufFilesAreCompleteModels) {
  const auto dir = test::temp_dir("ouro-gguf");
  const auto p = ids("prompt/p23");
  const int steps = 4;
  auto run = [&](const Model& m, const char* exit) {
    GenerateOptions o;
    o.steps = steps;
    o.max_new_tokens = 8;
    o.exit = ExitCriterion::parse(exit);
    o.stop_tokens.clear();
    o.record_logits = true;
    return generate(m, p, o);
  };
  auto ref_model = Model::load(kModel);
  const SequenceResult ref = run(*ref_model, "none"), ref_gate = run(*ref_model, "gate:0.5");
  for (const char* type : {"f32", "bf16", "q8_0", "q4_0", "q4_k_m"}) {
    const std::string path = (dir / (std::string(type) + ".gguf")).string();
    quantize_model(kModel, path, {.type = type});
    auto m = Model::load(path);
    EXPECT_EQ(m->config().arch, "ouro");
    const SequenceResult r = run(*m, "none"), g = run(*m, "gate:0.5");
    if (std::string(type) == "f32") {
      EXPECT_EQ(r.tokens, ref.tokens);
      EXPECT_EQ(r.step_logits, ref.step_logits);
      EXPECT_EQ(g.tokens, ref_gate.tokens);
      EXPECT_EQ(g.steps, ref_gate.steps);
    }
    // The first token's distribution (same prompt, so the same context):
    // relative L2 error of the logits against F32. Measured at 4 loops on this
    // random 64-wide model (every row two or four blocks, 8-bit activations):
    // bf16 0.018, q8_0 0.053, q4_k_m 0.25 (its K tensors fall back: rows of 64),
    // q4_0 0.76; it grows with the loops (q4_0: 0.26 at one loop).
    const int V = m->config().vocab_size;
    double num = 0, den = 0;
    for (int v = 0; v < V; ++v) {
      const double d = r.step_logits[v] - ref.step_logits[v];
      num += d * d;
      den += (double)ref.step_logits[v] * ref.step_logits[v];
    }
    const double rel = std::sqrt(num / den);
    const std::map<std::string, double> bound = {
        {"f32", 0.0}, {"bf16", 0.03}, {"q8_0", 0.1}, {"q4_k_m", 0.4}, {"q4_0", 1.0}};
    EXPECT_LE(rel, bound.at(type)) << type;
    EXPECT_EQ(r.tokens[0], ref.tokens[0]) << type;
    // the gate exits early on the quantized file too
    int loops = 0;
    for (int s : g.steps) loops += s;
    EXPECT_LT(loops, 4 * (int)g.steps.size()) << type;
    auto info = run_cli("info " + path);
    ASSERT_EQ(info.code, 0) << info.err;
    EXPECT_NE(info.out.find("ouro (LoopLM)"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("KV last-loop"), std::string::npos) << info.out;
  }
  std::filesystem::remove_all(dir);
}

// huginn eval runs an Ouro model like any other (random weights: mechanics,
// not accuracy): at a fixed 4 loops every token takes 4; with the gate each
// answer stops early and the FLOPs per answer fall with the loops run.
TEST(OuroCli, EvalWithTheGate) {
  auto fixed = run_cli("eval -m " + kModel + " --task parity --difficulty 6 --n 6 --steps 4 -q --json");
  auto gate = run_cli("eval -m " + kModel + " --task parity --difficulty 6 --n 6 --steps 4 --exit gate:0.5 -q --json");
  ASSERT_EQ(fixed.code, 0) << fixed.err;
  ASSERT_EQ(gate.code, 0) << gate.err;
  const auto f = nlohmann::json::parse(fixed.out)["results"][0], g = nlohmann::json::parse(gate.out)["results"][0];
  EXPECT_EQ(f["mean_steps"].get<double>(), 4.0);
  EXPECT_LT(g["mean_steps"].get<double>(), 4.0);
  EXPECT_GE(g["mean_steps"].get<double>(), 1.0);
  EXPECT_LT(g["flops_per_answer"].get<double>(), f["flops_per_answer"].get<double>());
  EXPECT_EQ(g["exit"], "gate:0.5");
}
