// Training: whole-model gradient checks, the recipe, reproducibility, bit-exact
// resume, data sources, and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/train.h"

using namespace huginn;
namespace fs = std::filesystem;

namespace {
ModelConfig tiny(int vocab = 24) {
  ModelConfig c;
  c.n_embd = 16, c.n_heads = 2, c.head_dim = 8, c.intermediate_size = 24, c.vocab_size = vocab;
  c.block_size = 64, c.n_prelude = 1, c.n_core = 2, c.n_coda = 1, c.mean_recurrence = 4, c.mean_backprop_depth = 2;
  return c;
}

// Makes norms and qk_bias non-trivial so a dropped term shows.
std::vector<float> perturbed_params(const ModelConfig& c, uint64_t seed) {
  auto p = init_params(c, seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.6f, 1.4f);
  std::normal_distribution<float> nd(0.f, 0.5f);
  for (auto& s : param_layout(c)) {
    if (s.name.find("norm") != std::string::npos || s.name.find("ln_f") != std::string::npos)
      for (size_t i = 0; i < s.numel; ++i) p[s.offset + i] = u(rng);
    if (s.name.find("qk_bias") != std::string::npos)
      for (size_t i = 0; i < s.numel; ++i) p[s.offset + i] = nd(rng);
  }
  return p;
}

struct Batch {
  std::vector<int> ids, labels;
};
Batch make_batch(int B, int T, int V, uint32_t seed) {
  std::mt19937 rng(seed);
  Batch b;
  for (int i = 0; i < B * T; ++i) {
    b.ids.push_back((int)(rng() % V));
    b.labels.push_back(i % 5 == 2 ? kIgnoreLabel : (int)(rng() % V));
  }
  return b;
}

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("huginn_test_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}
}  // namespace

// Whole model: central differences of the float32 loss in the largest-gradient
// and random coordinates of every parameter tensor, and of the initial state.
TEST(TrainGrad, WholeModelMatchesFiniteDifferences) {
  const ModelConfig c = tiny();
  const int B = 2, T = 6, d = c.n_embd;
  auto params = perturbed_params(c, 3);
  auto batch = make_batch(B, T, c.vocab_size, 4);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 0.6f);
  std::vector<float> states((size_t)B * T * d);
  for (auto& v : states) v = nd(rng);
  int valid = 0;
  for (int l : batch.labels) valid += l != kIgnoreLabel;
  const RecurrenceSplit split{0, 2};
  GradEngine eng(c, B, T, 2);
  std::vector<float> grads(params.size(), 0.f);
  eng.forward_backward(params.data(), grads.data(), batch.ids.data(), batch.labels.data(), B, split, 1.f / valid,
                       states.data());
  auto sgrad = eng.input_state_grad();
  auto loss_at = [&](const std::vector<float>& p, const std::vector<float>& s) {
    auto r = eng.loss(p.data(), batch.ids.data(), batch.labels.data(), B, 2, s.data());
    return r.loss_sum / r.n_valid;
  };
  const double h = 2e-3;
  int checked = 0;
  for (auto& s : param_layout(c)) {
    size_t best = 0;
    for (size_t i = 1; i < s.numel; ++i)
      if (std::fabs(grads[s.offset + i]) > std::fabs(grads[s.offset + best])) best = i;
    for (size_t i : {best, (size_t)(rng() % s.numel)}) {
      auto p = params;
      p[s.offset + i] += (float)h;
      const double a = loss_at(p, states);
      p[s.offset + i] -= (float)(2 * h);
      const double b = loss_at(p, states);
      const double num = (a - b) / (2 * h), an = grads[s.offset + i];
      EXPECT_NEAR(an, num, 3e-3 + 3e-2 * std::fabs(num)) << s.name << "[" << i << "]";
      ++checked;
    }
  }
  for (size_t i : {(size_t)0, (size_t)17, (size_t)(B * T * d - 1)}) {
    auto s = states;
    s[i] += (float)h;
    const double a = loss_at(params, s);
    s[i] -= (float)(2 * h);
    const double b = loss_at(params, s);
    EXPECT_NEAR(sgrad[i], (a - b) / (2 * h), 3e-3 + 3e-2 * std::fabs((a - b) / (2 * h))) << "state " << i;
  }
  EXPECT_GT(checked, 20);
}

// Truncation: an (n, k) gradient equals the (0, k) gradient from the state
// after n iterations, and the initial state gets none; the loss equals the
// full (n + k)-iteration loss.
TEST(TrainGrad, NoGradIterationsAreTruncated) {
  const ModelConfig c = tiny();
  const int B = 1, T = 5;
  auto params = perturbed_params(c, 7);
  auto batch = make_batch(B, T, c.vocab_size, 8);
  GradEngine eng(c, B, T, 3);
  std::vector<float> g1(params.size(), 0.f), g2(params.size(), 0.f);
  auto r1 = eng.forward_backward(params.data(), g1.data(), batch.ids.data(), batch.labels.data(), B, {2, 3}, 1.f);
  for (float v : eng.input_state_grad()) ASSERT_EQ(v, 0.f);
  auto rl = eng.loss(params.data(), batch.ids.data(), batch.labels.data(), B, 5);
  EXPECT_NEAR(r1.loss_sum, rl.loss_sum, 1e-5 * std::fabs(rl.loss_sum));
  // Gradient accumulation: two calls add.
  eng.forward_backward(params.data(), g2.data(), batch.ids.data(), batch.labels.data(), B, {2, 3}, 1.f);
  eng.forward_backward(params.data(), g2.data(), batch.ids.data(), batch.labels.data(), B, {2, 3}, 1.f);
  for (size_t i = 0; i < g1.size(); i += 7) ASSERT_NEAR(g2[i], 2 * g1[i], 1e-5 + 1e-5 * std::fabs(g1[i]));
  // More graded iterations change the core gradient (the split matters).
  std::vector<float> g3(params.size(), 0.f);
  eng.forward_backward(params.data(), g3.data(), batch.ids.data(), batch.labels.data(), B, {0, 3}, 1.f);
  double diff = 0;
  for (size_t i = 0; i < g1.size(); ++i) diff += std::fabs(g1[i] - g3[i]);
  EXPECT_GT(diff, 1e-4);
}

TEST(TrainRecipe, RecurrenceSamplingIsDeterministicWithTheRightMean) {
  double sum = 0;
  const int n = 4000;
  for (int s = 0; s < n; ++s) {
    auto a = sample_recurrence(8, 4, 42, s), b = sample_recurrence(8, 4, 42, s);
    ASSERT_EQ(a.no_grad, b.no_grad);
    ASSERT_EQ(a.grad, b.grad);
    ASSERT_GE(a.grad, 1);
    ASSERT_LE(a.grad, 4);
    if (a.no_grad > 0) {
      ASSERT_EQ(a.grad, 4);
    }
    sum += a.total();
  }
  // E[p] = E[rate] + 1 = exp(mu + sigma^2 / 2) + 1 = mean + 1.
  EXPECT_NEAR(sum / n, 9.0, 0.35);
  EXPECT_THROW(sample_recurrence(0, 4, 1, 1), Error);
}

TEST(TrainRecipe, LearningRateSchedules) {
  LRSchedule s;
  s.lr = 1.f, s.min_lr = 0.1f, s.warmup = 10, s.total_steps = 100, s.cooldown = 20;
  EXPECT_FLOAT_EQ(s.at(0), 0.1f);
  EXPECT_FLOAT_EQ(s.at(9), 1.f);
  EXPECT_FLOAT_EQ(s.at(50), 1.f);
  EXPECT_FLOAT_EQ(s.at(79), 1.f);
  EXPECT_NEAR(s.at(89), 0.55f, 1e-6);
  EXPECT_NEAR(s.at(99), 0.1f, 1e-6);
  s.kind = "cosine";
  EXPECT_NEAR(s.at(10), 1.f, 1e-6);
  EXPECT_NEAR(s.at(55), 0.55f, 1e-6);
  EXPECT_NEAR(s.at(100), 0.1f, 1e-6);
  s.kind = "linear-ish";
  EXPECT_THROW(s.at(50), Error);
}

TEST(TrainRecipe, AdamWGroupsAndFormula) {
  const ModelConfig c = tiny();
  AdamW opt(c, AdamWConfig{});
  EXPECT_EQ(opt.decay_for("transformer.wte.weight"), 0.1f);
  EXPECT_EQ(opt.decay_for("transformer.adapter.weight"), 0.1f);
  EXPECT_EQ(opt.decay_for("transformer.core_block.0.attn.Wqkv.weight"), 0.1f);
  EXPECT_EQ(opt.decay_for("transformer.core_block.0.attn.qk_bias"), 0.f);
  EXPECT_EQ(opt.decay_for("transformer.coda.1.norm_4.weight"), 0.f);
  EXPECT_EQ(opt.decay_for("transformer.ln_f.weight"), 0.f);
  // One step on one element, against the formula in double.
  auto lay = param_layout(c);
  std::vector<float> p(param_count(lay), 0.5f), g(p.size(), 0.2f);
  opt.update(p.data(), g.data(), 0.01f);
  const double m = 0.1 * 0.2, v = 0.05 * 0.04;
  const double want = 0.5 * (1 - 0.01 * 0.1) - 0.01 / 0.1 * m / (std::sqrt(v) / std::sqrt(0.05) + 1e-8);
  EXPECT_NEAR(p[0], want, 1e-7);
  const double want_nodecay = 0.5 - 0.01 / 0.1 * m / (std::sqrt(v) / std::sqrt(0.05) + 1e-8);
  EXPECT_NEAR(p[param_layout(c)[1].offset], want_nodecay, 1e-7);  // prelude.0.norm_1
}

namespace {
TrainOptions small_opts(const fs::path& out) {
  TrainOptions o;
  o.steps = 10, o.batch = 4, o.seq_len = 16, o.accum = 2;
  o.sched.lr = 3e-3f, o.sched.warmup = 2;
  o.eval_every = 0, o.eval_batches = 1, o.quiet = true, o.seed = 11;
  o.out = out.string();
  return o;
}
std::shared_ptr<SyntheticSource> reverse_src(bool val = false) {
  return std::make_shared<SyntheticSource>(SyntheticSource::Task::Reverse, 3, 10, 5, val);
}
}  // namespace

TEST(Trainer, TenStepsReproduceTheSameLosses) {
  auto dir = temp_dir("repro");
  std::vector<double> a, b;
  for (auto* out : {&a, &b}) {
    Trainer tr(tiny(), small_opts(dir / "x"), reverse_src());
    tr.init_params();
    for (int i = 0; i < 10; ++i) out->push_back(tr.step().loss);
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a.front(), a.back());
  fs::remove_all(dir);
}

TEST(Trainer, ResumeIsBitExact) {
  auto dir = temp_dir("resume");
  auto o = small_opts(dir / "ck");
  o.steps = 6;
  std::vector<double> straight, split;
  std::vector<float> p_straight;
  {
    Trainer tr(tiny(), o, reverse_src(), reverse_src(true));
    tr.init_params();
    for (int i = 0; i < 6; ++i) straight.push_back(tr.step().loss);
    p_straight = tr.params();
  }
  {
    Trainer tr(tiny(), o, reverse_src(), reverse_src(true));
    tr.init_params();
    for (int i = 0; i < 3; ++i) split.push_back(tr.step().loss);
    tr.save(o.out);
  }
  ASSERT_TRUE(fs::exists(dir / "ck" / "model.safetensors"));
  ASSERT_TRUE(fs::exists(dir / "ck" / "optimizer.safetensors"));
  ASSERT_TRUE(fs::exists(dir / "ck" / "trainer_state.json"));
  ASSERT_TRUE(fs::exists(dir / "ck" / "config.json"));
  {  // lines of another shape (a hand edit) are skipped on resume, not converted (1e300 to int is undefined)
    std::ofstream ml(dir / "ck" / "metrics.jsonl", std::ios::app);
    ml << "{\"step\": 2, \"loss\": 1.5}\n{\"step\": 1e300, \"loss\": 1}\n{\"step\": 2, \"loss\": \"x\"}\n"
       << "{\"step\": 2, \"val_loss\": {\"deep\": 1}}\n{\"step\": 2.5, \"loss\": 1}\n[1]\n";
  }
  {
    Trainer tr(tiny(), o, reverse_src(), reverse_src(true));
    tr.resume(o.out);
    EXPECT_EQ(tr.steps_done(), 3);
    for (int i = 0; i < 3; ++i) split.push_back(tr.step().loss);
    EXPECT_EQ(split, straight);
    EXPECT_TRUE(tr.params() == p_straight);
    // Saving over an existing checkpoint replaces it, and the result loads as a model.
    tr.save(o.out);
  }
  std::ifstream mf(dir / "ck" / "metrics.jsonl");
  const std::string metrics((std::istreambuf_iterator<char>(mf)), std::istreambuf_iterator<char>());
  EXPECT_NE(metrics.find("{\"loss\":1.5,\"step\":2}"), std::string::npos) << metrics;  // a good line stays
  for (const char* bad : {"1e300", "1e+300", "\"loss\":\"x\"", "deep", "\"step\":2.5", "[1]"})
    EXPECT_EQ(metrics.find(bad), std::string::npos) << bad << " in\n" << metrics;
  auto m = Model::load((dir / "ck").string());
  EXPECT_EQ(m->config().n_embd, 16);
  fs::remove_all(dir);
}

TEST(Trainer, LearnsASyntheticTask) {
  auto dir = temp_dir("learn");
  ModelConfig c = tiny(16);
  c.n_embd = 32, c.n_heads = 2, c.head_dim = 16, c.intermediate_size = 64;
  auto o = small_opts(dir / "ck");
  o.steps = 40, o.batch = 16, o.accum = 1, o.seq_len = 32, o.sched.lr = 5e-3f, o.sched.warmup = 5;
  o.mean_recurrence = 2, o.backprop_depth = 2;
  Trainer tr(c, o, std::make_shared<SyntheticSource>(SyntheticSource::Task::Copy, 3, 6, 1),
             std::make_shared<SyntheticSource>(SyntheticSource::Task::Copy, 3, 6, 1, true));
  tr.init_params();
  const double before = tr.eval_loss(2, 1);
  for (int i = 0; i < o.steps; ++i) tr.step();
  const double after = tr.eval_loss(2, 1);
  EXPECT_LT(after, 0.5 * before) << before << " -> " << after;
  fs::remove_all(dir);
}

TEST(Trainer, BadOptionsAreClearErrors) {
  auto dir = temp_dir("bad");
  auto o = small_opts(dir);
  o.batch = 3;  // not divisible by accum 2
  EXPECT_THROW(Trainer(tiny(), o, reverse_src()), Error);
  o = small_opts(dir);
  o.seq_len = 1000;  // beyond block_size
  EXPECT_THROW(Trainer(tiny(), o, reverse_src()), Error);
  o = small_opts(dir);
  o.sched.kind = "linear";
  EXPECT_THROW(Trainer(tiny(), o, reverse_src()), Error);
  Trainer tr(tiny(), small_opts(dir), reverse_src());
  EXPECT_THROW(tr.step(), Error);  // no parameters yet
  EXPECT_THROW(tr.resume((dir / "nothing").string()), Error);
  // Never replaces a directory holding anything but a checkpoint.
  tr.init_params();
  fs::create_directories(dir / "precious");
  std::ofstream(dir / "precious" / "notes.txt") << "keep me";
  EXPECT_THROW(tr.save((dir / "precious").string()), Error);
  EXPECT_TRUE(fs::exists(dir / "precious" / "notes.txt"));
  // A checkpoint whose trainer_state.json step is not an integer (1e300 converted to int is undefined).
  tr.save((dir / "ck").string());
  for (const char* bad : {"1e300", "-1", "2.5", "\"3\"", "null"}) {
    std::ofstream(dir / "ck" / "trainer_state.json") << "{\"step\": " << bad << "}";
    try {
      tr.resume((dir / "ck").string());
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("\"step\" must be an integer"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(open_data("synthetic:sort", 32), Error);
  EXPECT_THROW(open_data("synthetic:copy,digits=100", 32), Error);  // vocab too small
  EXPECT_THROW(open_data("synthetic:copy,len=5x", 32), Error);   // the whole value must be a number
  EXPECT_THROW(open_data("synthetic:copy,len=-3", 32), Error);
  EXPECT_THROW(open_data("synthetic:copy,seed=-1", 32), Error);
  EXPECT_NO_THROW(open_data("synthetic:copy,seed=18446744073709551615", 32));  // any 64-bit seed
  EXPECT_THROW(open_data("tokens:/nonexistent/x", 32), Error);
  EXPECT_THROW(open_data("nonsense", 32), Error);
  fs::remove_all(dir);
}

TEST(TrainData, TokenizeJsonlAndReadByMemoryMap) {
  auto dir = temp_dir("data");
  {
    std::ofstream f(dir / "docs.jsonl");
    for (int d = 0; d < 200; ++d) {
      f << "[";
      for (int i = 0; i < 10; ++i) f << (i ? "," : "") << 10 + (d + i) % 50;
      f << "]\n";
    }
    f << "{\"ids\": [5, 6, 7]}\n";
  }
  TokenizeOptions to;
  to.inputs = {(dir / "docs.jsonl").string()};
  to.out_prefix = (dir / "tok").string();
  to.eos = 2;
  to.val_fraction = 0.1;
  auto st = tokenize_files(to);
  EXPECT_EQ(st.docs_train + st.docs_val, 201u);
  EXPECT_GT(st.docs_val, 5u);
  EXPECT_EQ(st.tokens_train + st.tokens_val, 200u * 11 + 4);
  auto ds = open_data("tokens:" + to.out_prefix, 64);
  ASSERT_TRUE(ds.train && ds.val);
  std::vector<int> ids(16), labels(16), ids2(16), labels2(16);
  std::map<int, int> seen;
  for (uint64_t i = 0; i < 50; ++i) {
    ds.train->get(i, 16, ids.data(), labels.data());
    ds.train->get(i, 16, ids2.data(), labels2.data());
    ASSERT_EQ(ids, ids2);
    for (int t = 0; t + 1 < 16; ++t) ASSERT_EQ(labels[t], ids[t + 1]);
    seen[ids[0]]++;
  }
  EXPECT_GT(seen.size(), 5u);  // windows are shuffled
  EXPECT_THROW(open_data("tokens:" + to.out_prefix, 40), Error);  // ids up to 59
  // Errors: text without a tokenizer, missing eos, bad JSON.
  {
    std::ofstream f(dir / "text.jsonl");
    f << "{\"text\": \"hello\"}\n";
  }
  to.inputs = {(dir / "text.jsonl").string()};
  EXPECT_THROW(tokenize_files(to), Error);
  {
    std::ofstream f(dir / "bad.jsonl");
    f << "[1, 2\n";
  }
  to.inputs = {(dir / "bad.jsonl").string()};
  EXPECT_THROW(tokenize_files(to), Error);
  to.inputs = {(dir / "docs.jsonl").string()};
  to.eos = -1;
  EXPECT_THROW(tokenize_files(to), Error);
  {
    std::ofstream f(dir / "junk.bin");
    f << "not a token file at all, really";
  }
  EXPECT_THROW(TokenFileSource((dir / "junk.bin").string()), Error);
  fs::remove_all(dir);
}

TEST(TrainData, SyntheticTasksAreDeterministicAndScoreAnswersOnly) {
  SyntheticSource s(SyntheticSource::Task::ModSum, 4, 10, 3);
  std::vector<int> a(40), la(40), b(40), lb(40);
  s.get(7, 40, a.data(), la.data());
  s.get(7, 40, b.data(), lb.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(la, lb);
  // Pattern: BOS x x x x SEP y EOS; labels on y and EOS only.
  EXPECT_EQ(a[0], 1);
  EXPECT_EQ(a[5], 2);
  int sum = 0;
  for (int i = 1; i <= 4; ++i) sum += a[i] - 4;
  EXPECT_EQ(la[5], 4 + sum % 10);
  EXPECT_EQ(la[6], 3);
  EXPECT_EQ(la[0], kIgnoreLabel);
  SyntheticSource v(SyntheticSource::Task::ModSum, 4, 10, 3, true);
  v.get(7, 40, b.data(), lb.data());
  EXPECT_NE(a, b);
}
