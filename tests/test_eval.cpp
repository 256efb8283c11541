// decode_answer against the generation module's greedy decoder, the KL exit,
// and the `huginn eval` command's output on a tiny random task model.
#include <gtest/gtest.h>

#include "test_util.h"
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/tasks.h"

using namespace huginn;
using namespace huginn::tasks;
namespace fs = std::filesystem;

namespace {

ModelConfig tiny_config() { return test::tiny_config(32, 2, kCharModelVocabSize, 128); }

// A tiny random task model directory, made once per test binary.
const std::string& model_dir() {
  static const std::string dir = [] {
    const std::string d = (fs::temp_directory_path() / ("huginn_eval_model_" + std::to_string(getpid()))).string();
    ModelConfig c = tiny_config();
    auto flat = init_params(c, 3);
    save_checkpoint(d, c, flat.data());
    write_tokenizer_files(d);
    write_task_manifest(d, parse_task_mix("addition:1-3,reach:3-4"));
    std::atexit([] { fs::remove_all(fs::temp_directory_path() / ("huginn_eval_model_" + std::to_string(getpid()))); });
    return d;
  }();
  return dir;
}

struct RunResult {
  int rc;
  std::string out;
};
// stdout then stderr, as one text.
RunResult run_cli(const std::string& args) {
  auto r = test::run_cli(args);
  return {r.code, r.out + r.err};
}

}  // namespace

TEST(Eval, DecodeAnswerAtFixedDepthEqualsGreedyGeneration) {
  auto m = Model::load(model_dir());
  for (int steps : {1, 3, 6}) {
    for (uint64_t i = 0; i < 4; ++i) {
      Instance in = sample(get_task("addition"), Split::Test, 3, i);
      auto prompt = prompt_ids(in);
      DecodeOptions o;
      o.steps = steps;
      o.max_new_tokens = 5;
      DecodeResult r = decode_answer(*m, prompt, o);
      FixedDepthOptions g;
      g.steps = steps;
      g.max_new_tokens = 5;
      std::vector<int> ref = generate_fixed_greedy(*m, prompt, g);
      ASSERT_FALSE(r.tokens.empty());
      ASSERT_LE(r.tokens.size(), ref.size());
      for (size_t k = 0; k < r.tokens.size(); ++k) EXPECT_EQ(r.tokens[k], ref[k]) << "steps " << steps;
      if (r.tokens.size() < ref.size()) {
        EXPECT_EQ(r.tokens.back(), kEosId);
      }
      for (int s : r.steps_used) EXPECT_EQ(s, steps);
      EXPECT_EQ(r.prompt_tokens, (int)prompt.size());
    }
  }
}

TEST(Eval, KlExitRespectsThresholdAndMinSteps) {
  auto m = Model::load(model_dir());
  Instance in = sample(get_task("reach"), Split::Test, 4, 0);
  auto prompt = prompt_ids(in);
  DecodeOptions fixed;
  fixed.steps = 8;
  fixed.max_new_tokens = 3;
  DecodeResult ref = decode_answer(*m, prompt, fixed);
  // A threshold no KL reaches: every token runs the maximum and decodes as at fixed depth.
  DecodeOptions never = fixed;
  never.exit = DecodeSpec::parse_exit("kl:1e-300");
  DecodeResult r = decode_answer(*m, prompt, never);
  EXPECT_EQ(r.tokens, ref.tokens);
  for (int s : r.steps_used) EXPECT_EQ(s, 8);
  // A threshold every KL is below: exits at the first check, after min_steps + 1 iterations.
  DecodeOptions always = fixed;
  always.exit = DecodeSpec::parse_exit("kl:1e30");
  always.min_steps = 2;
  r = decode_answer(*m, prompt, always);
  for (int s : r.steps_used) EXPECT_EQ(s, 3);
  DecodeOptions fixed3 = fixed;
  fixed3.steps = 3;
  EXPECT_EQ(r.tokens, decode_answer(*m, prompt, fixed3).tokens);
  // Unknown criteria and bad depths are errors.
  DecodeOptions bad = fixed;
  bad.steps = 0;
  EXPECT_THROW(decode_answer(*m, prompt, bad), Error);
  EXPECT_THROW(DecodeSpec::parse_exit("entropy"), Error);
  EXPECT_THROW(DecodeSpec::parse_exit("kl:-1"), Error);
  bad = always;
  bad.exit.threshold = -1;
  EXPECT_THROW(decode_answer(*m, prompt, bad), Error);
  bad.exit.threshold = 0;  // decoding answers needs a threshold > 0
  EXPECT_THROW(decode_answer(*m, prompt, bad), Error);
  EXPECT_THROW(evaluate(*m, get_task("addition"), {2}, {{4, ExitCriterion{ExitKind::KL, 0}}}, 2, 0, DecodeOptions{}),
               Error);
}

TEST(Eval, EvaluateCountsAndAgreesWithDecodeAnswer) {
  auto m = Model::load(model_dir());
  const Task& t = get_task("addition");
  DecodeOptions base;
  auto res = evaluate(*m, t, {2, 3}, {{1, {}}, {4, DecodeSpec::parse_exit("kl:1e30")}}, 6, 0, base);
  ASSERT_EQ(res.size(), 4u);
  for (auto& r : res) {
    EXPECT_EQ(r.n, 6);
    EXPECT_GE(r.correct, 0);
    EXPECT_LE(r.correct, 6);
    EXPECT_GT(r.generated_tokens, 0);
    EXPECT_GE(r.mean_steps, 1.0);
    EXPECT_LE(r.mean_steps, r.setting.steps);
  }
  for (auto& r : res) EXPECT_EQ(r.distinct, 6);
  // Reach with 2 rows has few test grids: n beyond them repeats, and says so.
  auto small = evaluate(*m, get_task("reach"), {2}, {{1, {}}}, 400, 0, base);
  EXPECT_LT(small[0].distinct, 400);
  EXPECT_GT(small[0].distinct, 10);
  EXPECT_EQ(small[0].n, 400);
  EXPECT_EQ(res[0].mean_steps, 1.0);
  EXPECT_EQ(res[1].mean_steps, 1.0);  // every check exits at once
  // The count of correct answers equals scoring decode_answer by hand.
  int correct = 0;
  for (uint64_t i = 0; i < 6; ++i) {
    Instance in = sample(t, Split::Test, 3, i);
    DecodeOptions o;
    o.steps = 1;
    o.max_new_tokens = t.answer_length(3) + 1;
    correct += t.score(in, decode_answer_text(decode_answer(*m, prompt_ids(in), o).tokens));
  }
  EXPECT_EQ(res[2].correct, correct);
}

TEST(Eval, ConvergenceFollowsTheLastPromptPosition) {
  auto m = Model::load(model_dir());
  const Task& t = get_task("jumps");
  const int K = 12;
  auto res = convergence(*m, t, {5, 8}, 4, 0, K, 1e-3);
  ASSERT_EQ(res.size(), 2u);
  // By hand, from trace_latents on the same instances: settling iteration and
  // the iteration from which the argmax of the answer's logits stays put.
  for (auto& r : res) {
    EXPECT_EQ(r.n, 4);
    EXPECT_EQ(r.max_steps, K);
    const auto inst = test_instances(t, r.difficulty, 4, 0);
    double settle = 0, answer = 0;
    int unsettled = 0;
    for (auto& in : inst) {
      const LatentTrace lt = trace_latents(*m, prompt_ids(in), K);
      const Trajectory tr = analyze_trajectory(lt.states.data() + (size_t)(lt.T - 1) * lt.d, K, lt.d,
                                               (size_t)lt.T * lt.d, nullptr, 1e-3);
      unsettled += tr.settle_iteration < 0;
      settle += tr.settle_iteration < 0 ? K : tr.settle_iteration;
      auto argmax = [&](int k) {
        const float* l = &lt.logits[(size_t)k * lt.vocab];
        return std::max_element(l, l + lt.vocab) - l;
      };
      int a = K;
      while (a > 1 && argmax(a - 2) == argmax(K - 1)) --a;
      answer += a;
    }
    EXPECT_EQ(r.unsettled, unsettled);
    EXPECT_DOUBLE_EQ(r.mean_settle, settle / 4);
    EXPECT_DOUBLE_EQ(r.mean_answer_settle, answer / 4);
    EXPECT_GE(r.median_settle, 1);
    EXPECT_LE(r.median_settle, K);
  }
  // The tolerance decides: everything settles at once under a huge one, nothing under a tiny one.
  auto loose = convergence(*m, t, {6}, 3, 0, K, 1e30);
  EXPECT_DOUBLE_EQ(loose[0].mean_settle, 1.0);
  EXPECT_EQ(loose[0].unsettled, 0);
  auto tight = convergence(*m, t, {6}, 3, 0, K, 1e-300);
  EXPECT_EQ(tight[0].unsettled, 3);
  EXPECT_DOUBLE_EQ(tight[0].mean_settle, K);
  EXPECT_THROW(convergence(*m, t, {6}, 3, 0, 1, 1e-3), Error);
  EXPECT_THROW(convergence(*m, t, {6}, 0, 0, 8, 1e-3), Error);
  EXPECT_THROW(convergence(*m, t, {6}, 3, 0, 8, 0), Error);
}

TEST(Eval, CliJsonOutputShape) {
  auto r = run_cli("eval -q -m " + model_dir() + " --task addition --difficulty 2 --steps 1,2,4 --n 5 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["task"], "addition");
  EXPECT_EQ(j["difficulty"], 2);
  EXPECT_EQ(j["n"], 5);
  ASSERT_TRUE(j["results"].is_array());
  ASSERT_EQ(j["results"].size(), 3u);
  const int steps[3] = {1, 2, 4};
  for (int i = 0; i < 3; ++i) {
    auto& e = j["results"][i];
    EXPECT_EQ(e["steps"], steps[i]);
    ASSERT_TRUE(e["accuracy"].is_number());
    EXPECT_GE(e["accuracy"].get<double>(), 0.0);
    EXPECT_LE(e["accuracy"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(e["mean_steps"].get<double>(), steps[i]);
    EXPECT_DOUBLE_EQ(e["mean_first_token_steps"].get<double>(), steps[i]);
  }
  // With an exit, steps is the maximum and mean_steps what was used.
  r = run_cli("eval -q -m " + model_dir() + " --task reach --difficulty 3 --steps 8 --n 4 --exit kl:1e30 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["results"][0]["steps"], 8);
  EXPECT_DOUBLE_EQ(j["results"][0]["mean_steps"].get<double>(), 1.0);
  // A range: aggregated results plus one entry per difficulty; the plot is written.
  const std::string svg = model_dir() + "/acc.svg";
  r = run_cli("eval -q -m " + model_dir() + " --task reach --steps 1,2 --n 3 --json --plot " + svg);
  ASSERT_EQ(r.rc, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["difficulty"], "3-4");  // the trained range from tasks.json
  EXPECT_EQ(j["n"], 6);
  ASSERT_EQ(j["by_difficulty"].size(), 2u);
  EXPECT_EQ(j["by_difficulty"][1]["difficulty"], 4);
  EXPECT_EQ(j["by_difficulty"][1]["results"].size(), 2u);
  EXPECT_TRUE(fs::exists(svg));
  // --convergence adds one entry per difficulty.
  r = run_cli("eval -q -m " + model_dir() + " --task jumps --difficulty 5,7 --steps 2 --n 3 --convergence 6 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["convergence"].size(), 2u);
  EXPECT_EQ(j["convergence"][1]["difficulty"], 7);
  EXPECT_EQ(j["convergence"][1]["max_steps"], 6);
  for (const char* k : {"mean_settle", "median_settle", "unsettled", "mean_answer_settle"})
    EXPECT_TRUE(j["convergence"][0].contains(k)) << k;
  // Any of the engine's exit criteria, named in the results.
  r = run_cli("eval -q -m " + model_dir() + " --task jumps --difficulty 5 --steps 6 --n 3 --exit latent-diff:1e30 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["exit"], "latent-diff:1e+30");  // as the results name it
  EXPECT_EQ(j["results"][0]["exit"], "latent-diff:1e+30");
  EXPECT_DOUBLE_EQ(j["results"][0]["mean_steps"].get<double>(), 1.0);  // a huge threshold exits at once
  EXPECT_DOUBLE_EQ(j["results"][0]["mean_first_token_steps"].get<double>(), 1.0);
  r = run_cli("eval -q -m " + model_dir() + " --task jumps --difficulty 5 --steps 2 --n 3 --convergence 1");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--convergence"), std::string::npos) << r.out;
}

TEST(Eval, CliTableListTasksAndErrors) {
  auto r = run_cli("eval -q -m " + model_dir() + " --task addition --difficulty 1 --steps 1,2 --n 3");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos);
  EXPECT_NE(r.out.find("mean_steps"), std::string::npos);
  EXPECT_NE(r.out.find("tok/s"), std::string::npos);
  r = run_cli("eval -m " + model_dir() + " --list-tasks");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, "addition 1 3\nreach 3 4\n");
  for (const std::string bad : {"--task nope --difficulty 3", "--task addition --difficulty 99",
                                "--task addition --difficulty 2 --steps 1,,2", "--task addition --difficulty 2 --steps 0",
                                "--task addition --difficulty 2 --exit kl:", "--task digitsum",
                                "--task addition --difficulty 2 --plot out.gif",
                                "--task addition --difficulty 2 --exit entropy:1", "--task addition --difficulty 2 --exit kl:0",
                                "--task addition --difficulty 2 --exit latent-diff:x",
                                "--task jumps --difficulty 5 --convergence 5000"}) {
    r = run_cli("eval -q -m " + model_dir() + " " + bad);
    EXPECT_NE(r.rc, 0) << bad;
    EXPECT_NE(r.out.find("error: "), std::string::npos) << bad << ": " << r.out;
  }
  r = run_cli("eval -m /nonexistent/model --task addition --difficulty 2");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("error: "), std::string::npos);
  // A model directory whose tokenizer is not the character tokenizer.
  const std::string other = model_dir() + "_othertok";
  fs::create_directories(other);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(model_dir() + "/" + f, other + "/" + f);
  std::ofstream(other + "/tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})";
  r = run_cli("eval -q -m " + other + " --task addition --difficulty 2 --n 2 --steps 1");
  fs::remove_all(other);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("not the task models' character tokenizer"), std::string::npos) << r.out;
  r = run_cli("eval -m /nonexistent/model --list-tasks");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("error: "), std::string::npos);
}
