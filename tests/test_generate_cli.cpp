// `huginn generate` and `huginn chat` as a user runs them: output, the summary
// line, streaming marks, and clear errors for bad options (never a crash).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>

#include "test_util.h"

using huginn::test::run_cli;

namespace {
const std::string kModel = std::string(HUGINN_TEST_DATA) + "/golden/tiny_f32";
const std::string kIds = "256,243,78,242,114,367,322,491,457,456,45,328,73,79,391,260,247,112,166,466,439,387,480";
std::string gen(const std::string& args) { return "generate -m " + kModel + " --ids " + kIds + " " + args; }
}  // namespace

TEST(GenerateCli, GreedyIdsAndSummary) {
  auto r = run_cli(gen("--steps 8 -n 16"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "95 425 62 499 507 123 414 50 266 214 89 102 484 259 62 499 \n");
  EXPECT_NE(r.err.find("summary: 16 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("iterations per token mean 8.00 min 8 max 8"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("KV memory"), std::string::npos);
  // an f16 cache: the same run in half the KV memory (tokens within f16's rounding: here the same)
  auto kv_kib = [](const std::string& err) {
    const size_t at = err.find("KV memory ");
    return at == std::string::npos ? -1.0 : std::stod(err.substr(at + 10));
  };
  auto h = run_cli(gen("--steps 8 -n 16 --cache full-f16"));
  ASSERT_EQ(h.code, 0) << h.err;
  EXPECT_EQ(h.out, r.out);
  EXPECT_GT(kv_kib(r.err), 0);
  EXPECT_DOUBLE_EQ(kv_kib(h.err) * 2, kv_kib(r.err)) << h.err;
}

TEST(GenerateCli, ShowStepsMarksAdaptiveDepth) {
  auto r = run_cli(gen("--steps 16 -n 4 --exit kl:3e-3 --cache latest-m4 --show-steps"));
  ASSERT_EQ(r.code, 0) << r.err;
  // the fixture case adaptive.kl.latest-m4.p_long: tokens 95 425 62 499 with their step counts
  EXPECT_EQ(r.out.substr(0, 3), "95[");
  EXPECT_NE(r.out.find("] 425["), std::string::npos) << r.out;
}

TEST(GenerateCli, EveryModeRuns) {
  for (const char* a :
       {"--steps 8 -n 6 --speculative draft=2,lookahead=4 --compare", "--steps 8 -n 6 --speculative",
        "--steps 16 -n 6 --parallel inner=2,wave=8 --compare", "--steps 8 -n 6 --soft-thoughts 2,k=4 --show-steps",
        "--steps 8 -n 6 --continuous --continuous-from latent --cache latest-m4-compress-s4",
        "--steps 8 -n 6 --temperature 0.8 --top-k 20 --top-p 0.9 --min-p 0.05 --repetition-penalty 1.1 --seed 4",
        "--steps 8 -n 6 --exit argmax-stability:3 --min-steps 2 --check-every 2 --no-exit-in-prefill"}) {
    auto r = run_cli(gen(a));
    EXPECT_EQ(r.code, 0) << a << "\n" << r.err;
    EXPECT_NE(r.err.find("summary:"), std::string::npos) << a;
  }
  // speculative: threshold 1 equals plain greedy at the verifier depth
  auto s = run_cli(gen("--steps 8 -n 16 --speculative draft=2,lookahead=4 --compare"));
  EXPECT_EQ(s.out, "95 425 62 499 507 123 414 50 266 214 89 102 484 259 62 499 \n");
  EXPECT_NE(s.err.find("agreement 16/16"), std::string::npos) << s.err;
  EXPECT_NE(s.err.find("acceptance"), std::string::npos) << s.err;
  // sampling is reproducible from the seed
  auto a1 = run_cli(gen("--steps 4 -n 8 --temperature 1 --seed 9")), a2 = run_cli(gen("--steps 4 -n 8 --temperature 1 --seed 9"));
  EXPECT_EQ(a1.out, a2.out);
  // a batch prints one line per prompt
  auto b = run_cli("generate -m " + kModel + " --ids 1,2,3 --ids 4,5 --steps 4 -n 3");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(b.out.substr(0, 4), "[0] ");
  EXPECT_NE(b.out.find("\n[1] "), std::string::npos);
}

TEST(GenerateCli, BadOptionsAreClearErrors) {
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"generate -m " + kModel + " -p hello", "tokenizer.json"},
           {"generate -m " + kModel, "no prompt"},
           {gen("--exit foo"), "unknown exit criterion"},
           {gen("--exit kl:x"), "not a number"},
           {gen("--cache bogus"), "unknown cache strategy"},
           {gen("--speculative draft=x"), "not a whole number"},
           {gen("--speculative lookahead=0"), "lookahead"},
           {gen("--speculative --parallel"), "cannot be combined"},
           {gen("--parallel freeze=sometimes"), "unknown freeze strategy"},
           {gen("--parallel --exit kl"), "does not combine"},
           {gen("--soft-thoughts k=2"), "number of thought positions"},
           {gen("--soft-thoughts 2,q=1"), "unknown item"},
           {gen("--stop abc"), "tokenizer"},
           {gen("--stop-token -5"), "--stop-token -5 is outside the model's vocabulary"},
           {gen("--stop-token 100000"), "--stop-token 100000 is outside"},
           {gen("--exit none:0.5"), "none (fixed depth) takes no threshold"},
           {"generate -m " + kModel + " --ids 1,99999", "outside the vocabulary"},
           {"generate -m " + kModel + " --ids 1,x", "invalid token id"},
           {"generate -m /nonexistent --ids 1", "not a model directory"},
           // a prompt file that is a directory, or empty (like -p ""), is no prompt
           {"generate -m " + std::string(HUGINN_SOURCE_DIR) + "/models/huginn-tasks --prompt-file " +
                std::string(HUGINN_SOURCE_DIR) + "/models",
            "is a directory"},
           {"generate -m " + std::string(HUGINN_SOURCE_DIR) + "/models/huginn-tasks --prompt-file /dev/null",
            "is empty"},
       }) {
    auto r = run_cli(c.args);
    EXPECT_EQ(r.code, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\n" << r.err;
  }
  // CLI11's own checks end the same way: one "error:" line, exit 1
  auto r = run_cli(gen("--top-p 2"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("error: --top-p", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = run_cli("tasks --no-such-option");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("error: The following argument was not expected: --no-such-option"), std::string::npos) << r.err;
  // --seed of every command: [0, 2^64), as the server's "seed" (CLI11 alone wrapped -1 to 2^64 - 1)
  for (const std::string& bad : {gen("--seed -1"), gen("--seed 18446744073709551616"), gen("--seed 1.5"),
                                 std::string("tasks --seed -3"), std::string("init --config x --out x --seed -1")}) {
    r = run_cli(bad);
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_NE(r.err.find("error: --seed: must be a whole number in [0, 2^64)"), std::string::npos) << bad << "\n"
                                                                                                   << r.err;
  }
  r = run_cli(gen("--seed 18446744073709551615"));
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(ChatCli, RawIdsMultiTurnAndTokenizerError) {
  auto r = run_cli("chat -m " + kModel + " --raw-ids -n 3 --steps 4", "1,2,3\n/reset\n4,5\n99999\n/quit\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("(conversation reset)"), std::string::npos);
  EXPECT_NE(r.out.find("error: token id 99999"), std::string::npos);
  // a second turn continues the conversation: same as generating from the concatenation
  auto two = run_cli("chat -m " + kModel + " --raw-ids -n 3 --steps 4", "1,2,3\n4,5\n");
  const size_t nl = two.out.find('\n');
  ASSERT_NE(nl, std::string::npos);
  const std::string first = two.out.substr(0, nl), second = two.out.substr(nl + 1);
  std::string reply = first;  // "a b c " -> "a,b,c,"
  for (auto& ch : reply)
    if (ch == ' ') ch = ',';
  auto g = run_cli("generate -m " + kModel + " --ids 1,2,3," + reply + "4,5 --steps 4 -n 3");
  EXPECT_EQ(second, g.out);
  auto t = run_cli("chat -m " + kModel, "hello\n");
  EXPECT_EQ(t.code, 1);
  EXPECT_NE(t.err.find("tokenizer.json"), std::string::npos);
}

// A BF16 checkpoint of the standard d=512 config runs with BF16 weights held
// (no F32 copy): the same tokens as with --convert-f32, and a peak RSS of at
// most 1.2x the BF16 weight bytes plus the KV cache plus 150 MB. The F32
// conversion holds the F32 copy (twice the BF16 bytes), and not the file's
// pages on top.
TEST(GenerateCli, Bf16CheckpointRunsFromTheMemoryMap) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "peak RSS means nothing under AddressSanitizer (shadow memory, redzones)";
#endif
  const auto dir = huginn::test::temp_dir("stdbf16");
  const std::string cfg =
      R"({"n_embd":512,"n_heads":8,"intermediate_size":1536,"vocab_size":8192,"block_size":1024,)"
      R"("n_layers_in_prelude":2,"n_layers_in_recurrent_block":4,"n_layers_in_coda":2,"mean_recurrence":32})";
  auto init = run_cli("init --config '" + cfg + "' --dtype BF16 --seed 3 --out " + dir.string());
  ASSERT_EQ(init.code, 0) << init.err;
  const double weight_bytes = (double)std::filesystem::file_size(dir / "model.safetensors");
  auto peak = [](const std::string& err) {
    const size_t at = err.find("peak RSS ");
    return at == std::string::npos ? -1.0 : std::stod(err.substr(at + 9));
  };
  const std::string args = "generate -m " + dir.string() + " --ids 1,2,3,4,5,6,7,8 --steps 4 -n 8";
  auto r = huginn::test::run_cli(args);
  auto conv = huginn::test::run_cli(args + " --convert-f32");
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(conv.code, 0) << conv.err;
  EXPECT_EQ(r.out, conv.out);
  auto stats = [&](const std::string& extra) {
    const auto d2 = huginn::test::temp_dir("stats");
    const std::string cmd = "HUGINN_STATS=1 " + std::string(HUGINN_BIN) + " " + args + extra + " >/dev/null 2>" +
                            (d2 / "err").string();
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    return peak(huginn::test::slurp(d2 / "err"));
  };
  const double kv = 2.0 * 1024 * 1024, bf16_peak = stats(""), f32_peak = stats(" --convert-f32");
  ASSERT_GT(bf16_peak, 0);
  EXPECT_LE(bf16_peak, 1.2 * weight_bytes + kv + 150e6) << "weights " << weight_bytes;
  EXPECT_GT(f32_peak, bf16_peak + 0.8 * weight_bytes) << "the F32 conversion holds twice the bytes";
  EXPECT_LT(f32_peak, bf16_peak + 1.3 * weight_bytes) << "more than the F32 copy";
  std::filesystem::remove_all(dir);
}

// A model whose vocabulary is larger than its tokenizer's (padded, as many
// published checkpoints are): a generated id the tokenizer does not have adds
// no text, it does not stop generation with an error.
TEST(GenerateCli, PaddedVocabularyIdsHaveNoText) {
  auto dir = huginn::test::temp_dir("padded-vocab");
  auto in = run_cli(
      "init --out " + (dir / "m").string() +
      " --config '{\"n_embd\": 32, \"n_heads\": 2, \"intermediate_size\": 64, \"vocab_size\": 256, \"block_size\": 32, "
      "\"n_layers_in_prelude\": 1, \"n_layers_in_recurrent_block\": 1, \"n_layers_in_coda\": 1, \"mean_recurrence\": 2}'");
  ASSERT_EQ(in.code, 0) << in.err;
  const std::string gen = "generate -m " + (dir / "m").string() + " --ids 5,6,7 -n 24 --temperature 1 --seed 3";
  auto plain = run_cli(gen);  // no tokenizer yet: ids
  ASSERT_EQ(plain.code, 0) << plain.err;
  std::istringstream is(plain.out);
  int id, beyond = 0;
  while (is >> id) beyond += id >= 99;
  ASSERT_GT(beyond, 0) << "no id beyond the tokenizer's 99 was sampled: " << plain.out;
  std::filesystem::copy_file(std::string(HUGINN_SOURCE_DIR) + "/models/huginn-tasks/tokenizer.json",
                             dir / "m" / "tokenizer.json");
  auto r = run_cli(gen);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("summary: 24 tokens"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}
