// Latent analysis: trace_latents against Model::forward, the trajectory
// analysis on synthetic fixed points / orbits / sliders, and `huginn trace`.
#include <gtest/gtest.h>

#include "test_util.h"
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/model.h"
#include "huginn/safetensors.h"
#include "huginn/tasks.h"

using namespace huginn;
using namespace huginn::tasks;
namespace fs = std::filesystem;

namespace {

const std::string& trace_model_dir() {
  static const std::string dir = [] {
    const std::string d = (fs::temp_directory_path() / ("huginn_trace_model_" + std::to_string(getpid()))).string();
    ModelConfig c = test::tiny_config(32, 2, kCharModelVocabSize, 64);
    c.n_core = 1;
    auto flat = init_params(c, 5);
    save_checkpoint(d, c, flat.data());
    write_tokenizer_files(d);  // -p reads the model's tokenizer.json
    std::atexit([] { fs::remove_all(fs::temp_directory_path() / ("huginn_trace_model_" + std::to_string(getpid()))); });
    return d;
  }();
  return dir;
}

// stdout then stderr, as one text.
std::pair<int, std::string> run_cli(const std::string& args) {
  auto r = test::run_cli(args);
  return {r.code, r.out + r.err};
}

// Trajectory rows from a function of the iteration k = 1..steps.
template <class F>
std::vector<float> make_traj(int steps, int d, F f) {
  std::vector<float> s((size_t)steps * d);
  for (int k = 1; k <= steps; ++k)
    for (int i = 0; i < d; ++i) s[(size_t)(k - 1) * d + i] = (float)f(k, i);
  return s;
}

}  // namespace

TEST(Trace, StatesAndLogitsMatchModelForward) {
  auto m = Model::load(trace_model_dir());
  std::vector<int> ids = {kBosId};
  for (int id : encode_chars("39,72,48=")) ids.push_back(id);
  const int T = (int)ids.size(), d = m->config().n_embd, V = m->config().vocab_size;
  LatentTrace tr = trace_latents(*m, ids, 5);
  ASSERT_EQ(tr.states.size(), (size_t)5 * T * d);
  Workspace ws;
  for (int steps : {1, 3, 5}) {
    Model::ForwardResult r;
    m->forward(ids.data(), T, steps, r, ws);
    for (size_t i = 0; i < (size_t)T * d; ++i) {
      ASSERT_FLOAT_EQ(tr.states[(size_t)(steps - 1) * T * d + i], r.state[i]);
      ASSERT_FLOAT_EQ(tr.latents[(size_t)(steps - 1) * T * d + i], r.latents[i]);
    }
    for (int v = 0; v < V; ++v)
      ASSERT_NEAR(tr.logits[(size_t)(steps - 1) * V + v], r.logits[(size_t)(T - 1) * V + v], 1e-4);
  }
}

TEST(Trace, TrajectoryAnalysisRecognisesFixedPointsOrbitsAndSliders) {
  const int d = 16, N = 40;
  // Fixed point: geometric approach to a point.
  auto fixed = make_traj(N, d, [](int k, int i) { return 1.0 + i + 5.0 * std::pow(0.6, k) * std::cos(i + k); });
  Trajectory t = analyze_trajectory(fixed.data(), N, d, d);
  EXPECT_EQ(t.behaviour, "fixed point") << t.summary;
  EXPECT_GT(t.settle_iteration, 5);
  EXPECT_LT(t.settle_iteration, N);
  EXPECT_DOUBLE_EQ(t.dist_to_final.back(), 0.0);
  EXPECT_DOUBLE_EQ(t.rel_change[0], 1.0);  // from the zero initial state
  // Orbit of period 5 in a plane, offset from the origin.
  auto orbit = make_traj(N, d, [](int k, int i) {
    const double a = 2 * M_PI * k / 5;
    return i == 0 ? 3 + std::cos(a) : i == 1 ? 2 + std::sin(a) : 0.5;
  });
  t = analyze_trajectory(orbit.data(), N, d, d);
  EXPECT_EQ(t.behaviour, "orbit") << t.summary;
  EXPECT_EQ(t.period, 5);
  EXPECT_EQ(t.settle_iteration, -1);
  EXPECT_NEAR(t.explained[0] + t.explained[1], 1.0, 1e-6);
  EXPECT_NEAR(t.explained[0], 0.5, 0.05);
  // Slider: constant drift.
  auto slide = make_traj(N, d, [](int k, int i) { return 1.0 + 0.3 * k * (i % 3 == 0 ? 1 : -0.5); });
  t = analyze_trajectory(slide.data(), N, d, d);
  EXPECT_EQ(t.behaviour, "slider") << t.summary;
  EXPECT_NEAR(t.explained[0], 1.0, 1e-6);
  // The 2-D projection of a planar trajectory preserves pairwise distances.
  t = analyze_trajectory(orbit.data(), N, d, d);
  for (int a = 0; a < N; a += 7)
    for (int b = 0; b < N; b += 3) {
      double dd = 0;
      for (int i = 0; i < d; ++i) dd += std::pow(orbit[(size_t)a * d + i] - orbit[(size_t)b * d + i], 2);
      EXPECT_NEAR(std::hypot(t.pc1[a] - t.pc1[b], t.pc2[a] - t.pc2[b]), std::sqrt(dd), 1e-4);
    }
  // Norms.
  EXPECT_NEAR(t.norm[0], std::sqrt(std::pow(3 + std::cos(2 * M_PI / 5), 2) + std::pow(2 + std::sin(2 * M_PI / 5), 2) +
                                   0.25 * (d - 2)),
              1e-5);
}

TEST(Trace, CliWritesStatesTableJsonAndPlots) {
  const std::string out = trace_model_dir() + "/trace_out";
  auto [rc, text] = run_cli("trace -m " + trace_model_dir() + " -p \"..#/#../...=\" --steps 6 --top 2 --out " + out);
  ASSERT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("rel_change"), std::string::npos);
  EXPECT_NE(text.find("top tokens"), std::string::npos);
  for (const char* f : {"states.safetensors", "trace.json", "pca.svg", "convergence.svg"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  TensorStore st = TensorStore::open_file(out + "/states.safetensors");
  const TensorView& s = st.get("states");
  ASSERT_EQ(s.shape, (std::vector<int64_t>{6, 13, 32}));
  EXPECT_EQ(st.get("latents").shape, s.shape);
  auto j = nlohmann::json::parse(std::ifstream(out + "/trace.json"));
  ASSERT_EQ(j["iterations"].size(), 6u);
  EXPECT_EQ(j["iterations"][0]["top"].size(), 2u);
  EXPECT_EQ(j["input_ids"][0], kBosId);
  EXPECT_EQ(j["input_ids"].size(), 13u);
  EXPECT_DOUBLE_EQ(j["iterations"][5]["dist_to_final"].get<double>(), 0.0);
  // The norms in trace.json are those of the saved states.
  auto sv = s.to_f32();
  double n2 = 0;
  for (int i = 0; i < 32; ++i) n2 += std::pow(sv[(size_t)(2 * 13 + 12) * 32 + i], 2);
  EXPECT_NEAR(j["iterations"][2]["norm"].get<double>(), std::sqrt(n2), 1e-4);
  // --ids and PNG plots.
  std::tie(rc, text) = run_cli("trace -m " + trace_model_dir() + " --ids 96,20,19 --steps 3 --plot-format png --out " + out);
  ASSERT_EQ(rc, 0) << text;
  EXPECT_TRUE(fs::exists(out + "/pca.png"));
  // Errors.
  for (const std::string bad : {"--steps 3", "-p ab --ids 1,2 --steps 3", "--ids 96,500 --steps 3",
                                "-p ab --steps 0", "-p ab --steps 3 --position 9"}) {
    std::tie(rc, text) = run_cli("trace -m " + trace_model_dir() + " --out " + out + " " + bad);
    EXPECT_NE(rc, 0) << bad;
    EXPECT_NE(text.find("error: "), std::string::npos) << bad << ": " << text;
  }
}
