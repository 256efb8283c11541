// The main job: `huginn demo` on the shipped model runs, prints the scaling
// table and the thought-through problem, and writes its three plots.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"

namespace fs = std::filesystem;
using namespace huginn;

TEST(Demo, RunsOnTheShippedModelAndWritesPlots) {
  const std::string model = std::string(HUGINN_SOURCE_DIR) + "/models/huginn-tasks";
  ASSERT_TRUE(fs::exists(model + "/model.safetensors")) << model;
  const fs::path out = test::temp_dir("demo");
  auto r = test::run_cli("demo -m " + model + " --out " + out.string() + " --n 4 --max-steps 4");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* needle : {"addition (trained on difficulty", "reach (trained on difficulty", "r=1", "r=4",
                             "adaptive (mean r)", "Thinking through one", "trajectory:"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << "\n" << r.out;
  for (const char* f : {"accuracy_vs_iterations.svg", "iterations_vs_difficulty.svg", "latent_trajectory.svg"}) {
    ASSERT_TRUE(fs::exists(out / f)) << f;
    EXPECT_NE(test::slurp(out / f).find("<svg"), std::string::npos) << f;
  }
  // eval --list-tasks reads the shipped manifest.
  auto l = test::run_cli("eval -m " + model + " --list-tasks");
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_NE(l.out.find("addition 1 6"), std::string::npos) << l.out;
  EXPECT_NE(l.out.find("reach 2 4"), std::string::npos) << l.out;
  fs::remove_all(out);
}
