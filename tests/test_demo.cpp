// The main job: `huginn demo` on the shipped model runs, prints the scaling
// table and the thought-through problem, and writes its three plots.
#include <gtest/gtest.h>

#include <filesystem>

#include "huginn/model.h"
#include "huginn/tasks.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace huginn;

TEST(Demo, RunsOnTheShippedModelAndWritesPlots) {
  const std::string model = std::string(HUGINN_SOURCE_DIR) + "/models/huginn-tasks";
  ASSERT_TRUE(fs::exists(model + "/model.safetensors")) << model;
  const fs::path out = test::temp_dir("demo");
  auto r = test::run_cli("demo -m " + model + " --out " + out.string() + " --n 4 --max-steps 4");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* needle : {"jumps (trained on difficulty 4-24)", "r=1", "r=4", "KL exit (mean r)", "latent exit (mean r)", "settles",
                             "36*", "Thinking through one jumps problem (difficulty 36", "trajectory:"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << "\n" << r.out;
  for (const char* f : {"accuracy_vs_iterations.svg", "iterations_vs_difficulty.svg", "latent_trajectory.svg"}) {
    ASSERT_TRUE(fs::exists(out / f)) << f;
    EXPECT_NE(test::slurp(out / f).find("<svg"), std::string::npos) << f;
  }
  // eval --list-tasks reads the shipped manifest.
  auto l = test::run_cli("eval -m " + model + " --list-tasks");
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_EQ(l.out, "jumps 4 24\n");
  fs::remove_all(out);
}

// The claims the README makes for the shipped model, on fresh test problems:
// one iteration is at chance on long rows, the trained depth solves them and
// rows twice as long as any seen in training, and both the settling of the
// latent state and the adaptive exit's iterations grow with the row length.
TEST(Demo, ShippedModelShowsTestTimeScaling) {
  auto m = Model::load(std::string(HUGINN_SOURCE_DIR) + "/models/huginn-tasks");
  const tasks::Task& t = tasks::get_task("jumps");
  tasks::DecodeOptions base;
  const int n = 60;
  auto res = tasks::evaluate(*m, t, {24, 40}, {{1, {}}, {8, {}}, {32, DecodeSpec::parse_exit("kl:1e-6")}}, n, 7, base);
  ASSERT_EQ(res.size(), 6u);
  EXPECT_LT(res[0].accuracy(), 0.75);   // n=24, r=1
  EXPECT_GE(res[1].accuracy(), 0.95);   // n=24, r=8
  EXPECT_GE(res[2].accuracy(), 0.95);   // n=24, KL exit
  EXPECT_LT(res[2].mean_steps, 8);      // ... with far fewer iterations
  EXPECT_LT(res[3].accuracy(), 0.75);   // n=40 (beyond training), r=1
  EXPECT_GE(res[4].accuracy(), 0.9);    // n=40, r=8
  EXPECT_GT(res[5].mean_steps, res[2].mean_steps);  // harder: more iterations used
  auto conv = tasks::convergence(*m, t, {8, 40}, 30, 7, 64, 1e-3);
  EXPECT_GT(conv[1].mean_settle, conv[0].mean_settle + 2);
  EXPECT_GT(conv[1].mean_answer_settle, conv[0].mean_answer_settle + 1);
}
