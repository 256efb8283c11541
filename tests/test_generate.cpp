// Generation modes: exact equalities the reference guarantees (soft thoughts
// with k=1 = greedy, speculative with threshold 1 = greedy at the verifier's
// depth, batch = per sequence), exit criteria, sampling, stops, cache
// strategies and option errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/exit_criteria.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/sampling.h"
#include "test_util.h"

using namespace huginn;

namespace {
// The reference fixture model: its greedy decisions have known margins.
const Model& fixture() {
  static auto m = Model::load(std::string(HUGINN_TEST_DATA) + "/golden/tiny_f32");
  return *m;
}
const std::vector<int> kLong = {256, 243, 78, 242, 114, 367, 322, 491, 457, 456, 45, 328,
                                73,  79,  391, 260, 247, 112, 166, 466, 439, 387, 480};
const std::vector<int> kShort = {351, 11, 337, 326, 63, 87, 509};
const std::vector<int> kRand = {3, 14, 15, 92, 65, 35, 89};  // for the random model (vocab 97)

struct RandomModel {
  ModelConfig c = test::tiny_config(32, 2, 97, 96);
  std::vector<float> flat = init_params(c, 11);
  std::unique_ptr<Model> m = Model::from_flat(c, flat.data());
};
const Model& random_model() {
  static RandomModel r;
  return *r.m;
}

GenerateOptions greedy(int steps, int n) {
  GenerateOptions o;
  o.steps = steps;
  o.max_new_tokens = n;
  return o;
}
}  // namespace

TEST(Generate, FixedDepthMatchesTheReferenceLoop) {
  FixedDepthOptions f;
  f.steps = 8;
  f.max_new_tokens = 16;
  auto toks = generate_fixed_greedy(fixture(), kLong, f);
  std::vector<int> want = {95, 425, 62, 499, 507, 123, 414, 50, 266, 214, 89, 102, 484, 259, 62, 499};
  EXPECT_EQ(toks, want);
  // The general loop with exit "none" is the same decoder.
  auto r = generate(fixture(), kLong, greedy(8, 16));
  EXPECT_EQ(r.tokens, want);
  EXPECT_EQ(r.steps, std::vector<int>(16, 8));
  EXPECT_EQ(r.stop_reason, "max_tokens");
}

TEST(Generate, SoftThoughtsWithKOneEqualGreedy) {
  for (const Model* m : {&fixture(), &random_model()}) {
    const std::vector<int>& p = m == &fixture() ? kLong : kRand;
    for (int n : {1, 3}) {
      auto g = generate(*m, p, greedy(6, 10 + n));
      GenerateOptions o = greedy(6, 10);
      o.soft_thoughts = n;
      o.soft_top_k = 1;
      auto s = generate(*m, p, o);
      std::vector<int> all = s.thought_tokens;
      all.insert(all.end(), s.tokens.begin(), s.tokens.end());
      EXPECT_EQ(all, g.tokens) << "thoughts " << n;
      ASSERT_EQ((int)s.thought_tokens.size(), n);
    }
    // continuous and adaptive combine with soft thoughts the same way
    GenerateOptions o = greedy(8, 6);
    o.exit = ExitCriterion::parse("kl:1e-2");
    o.continuous = true;
    auto g = generate(*m, p, [&] { auto x = o; x.max_new_tokens = 8; return x; }());
    o.soft_thoughts = 2;
    o.soft_top_k = 1;
    auto s = generate(*m, p, o);
    std::vector<int> all = s.thought_tokens;
    all.insert(all.end(), s.tokens.begin(), s.tokens.end());
    EXPECT_EQ(all, g.tokens);
  }
}

TEST(Generate, SoftThoughtsWithMoreThanOneTokenChangeTheInput) {
  GenerateOptions o = greedy(6, 6);
  o.soft_thoughts = 3;
  o.soft_top_k = 0;  // the whole distribution
  auto s = generate(random_model(), kRand, o);
  auto g = generate(random_model(), kRand, greedy(6, 9));
  std::vector<int> all = s.thought_tokens;
  all.insert(all.end(), s.tokens.begin(), s.tokens.end());
  EXPECT_EQ((int)all.size(), 9);
  // The first thought's argmax comes from the prompt pass, so it always agrees.
  EXPECT_EQ(s.thought_tokens[0], g.tokens[0]);
}

TEST(Generate, SpeculativeWithThresholdOneEqualsGreedyAtVerifierDepth) {
  for (int steps : {8, 12}) {
    auto want = generate(fixture(), kLong, greedy(steps, 20)).tokens;
    for (auto [draft, la] : {std::pair{2, 4}, {4, 3}, {1, 1}, {steps, 5}}) {
      SpeculativeOptions s;
      s.steps = steps;
      s.draft_steps = draft;
      s.lookahead = la;
      s.max_new_tokens = 16;
      auto r = generate_speculative(fixture(), kLong, s);
      ASSERT_GE(r.tokens.size(), 16u);
      ASSERT_LE(r.tokens.size(), 16u + la);
      EXPECT_EQ(r.tokens, std::vector<int>(want.begin(), want.begin() + r.tokens.size()))
          << "steps " << steps << " draft " << draft << " lookahead " << la;
      EXPECT_GE(r.acceptance_rate(), 0.0);
      EXPECT_LE(r.acceptance_rate(), 1.0);
      if (draft == steps) {
        EXPECT_EQ(r.accepted, r.drafted);  // drafting at full depth is always right
      }
    }
  }
}

TEST(Generate, BatchEqualsPerSequence) {
  const Model& m = fixture();
  // five sequences: more than one weight-sharing group of rows, prompts of different lengths
  std::vector<std::vector<int>> prompts = {kLong, kShort, {5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, {77, 3}, {400}};
  for (const char* crit : {"none", "kl:3e-3", "latent-diff:0.05", "argmax-stability:3", "entropy-diff:1e-2"}) {
    GenerateOptions o = greedy(12, 9);
    o.exit = ExitCriterion::parse(crit);
    if (std::string(crit) == "entropy-diff:1e-2") {  // random initial states and sampling, seeded
      o.init_scale = 1.f;
      o.seed = 5;
      o.sampling.temperature = 1.f;
      o.sampling.seed = 3;
    }
    o.cache = "latest-m4";
    o.continuous = std::string(crit) == "kl:3e-3";
    o.record_checks = true;
    auto batch = generate(m, prompts, o);
    ASSERT_EQ(batch.size(), prompts.size());
    bool some_differ = false;
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto one = generate(m, prompts[i], o);
      EXPECT_EQ(batch[i].tokens, one.tokens) << crit << " seq " << i;
      EXPECT_EQ(batch[i].steps, one.steps) << crit << " seq " << i;
      ASSERT_EQ(batch[i].checks.size(), one.checks.size());
      for (size_t j = 0; j < one.checks.size(); ++j) {
        ASSERT_EQ(batch[i].checks[j].size(), one.checks[j].size());
        for (size_t k = 0; k < one.checks[j].size(); ++k)
          EXPECT_TRUE(batch[i].checks[j][k].value == one.checks[j][k].value ||
                      (std::isnan(batch[i].checks[j][k].value) && std::isnan(one.checks[j][k].value)));
      }
      EXPECT_EQ(batch[i].kv_bytes, one.kv_bytes);
      if (batch[i].steps != batch[0].steps) some_differ = true;
    }
    // each sequence exits on its own: with a real criterion the depths differ across the batch
    if (std::string(crit) != "none") {
      EXPECT_TRUE(some_differ) << crit;
    }
  }
}

TEST(Generate, AdaptiveDepthRespectsMinStepsAndCheckEvery) {
  GenerateOptions o = greedy(16, 8);
  o.exit = ExitCriterion::parse("kl:1e-1");
  o.min_steps = 3;
  o.check_every = 2;
  o.record_checks = true;
  auto r = generate(fixture(), kLong, o);
  for (size_t i = 0; i < r.checks.size(); ++i)
    for (auto& c : r.checks[i]) {
      EXPECT_GE(c.steps, 4);
      EXPECT_EQ((c.steps - 1 - 3) % 2, 0);
    }
  for (int s : r.steps) {
    EXPECT_GE(s, 4);
    EXPECT_LE(s, 16);
  }
  // a loose threshold exits early on some token
  EXPECT_LT(*std::min_element(r.steps.begin(), r.steps.end()), 16);
  // no exit in prefill: the prompt pass runs all 16 iterations with no checks
  o.no_exit_in_prefill = true;
  auto r2 = generate(fixture(), kLong, o);
  EXPECT_EQ(r2.steps[0], 16);
  EXPECT_TRUE(r2.checks[0].empty());
}

TEST(Generate, ExitCriteriaBehave) {
  for (const char* crit : {"kl", "minp-kl", "entropy-diff", "latent-diff", "cosine", "argmax-stability"}) {
    GenerateOptions o = greedy(20, 6);
    o.exit = ExitCriterion::parse(crit);
    o.cache = "latest-m4";
    o.record_checks = true;
    auto r = generate(fixture(), kLong, o);
    ASSERT_EQ(r.tokens.size(), 6u) << crit;
    for (size_t i = 0; i < r.steps.size(); ++i) {
      ASSERT_FALSE(r.checks[i].empty());
      const ExitCheck& last = r.checks[i].back();
      if (r.steps[i] < 20) {
        EXPECT_TRUE(last.exited) << crit;
      }
      EXPECT_EQ(last.steps, r.steps[i]);
    }
  }
  // the cosine criterion never exits on its first check from a zero state (NaN)
  GenerateOptions o = greedy(4, 2);
  o.exit = ExitCriterion::parse("cosine:0.5");
  o.record_checks = true;
  auto r = generate(fixture(), kShort, o);
  EXPECT_TRUE(std::isnan(r.checks[0][0].value));
  EXPECT_FALSE(r.checks[0][0].exited);
}

TEST(Generate, ExitCriterionParsing) {
  EXPECT_EQ(ExitCriterion::parse("kl").threshold, 5e-4);
  EXPECT_EQ(ExitCriterion::parse("minp-kl").threshold, 1e-6);
  EXPECT_EQ(ExitCriterion::parse("entropy-diff").threshold, 1e-3);
  EXPECT_EQ(ExitCriterion::parse("latent-diff").threshold, 0.03);
  EXPECT_EQ(ExitCriterion::parse("argmax-stability").threshold, 5);
  EXPECT_EQ(ExitCriterion::parse("kl:2e-3").threshold, 2e-3);
  EXPECT_EQ(ExitCriterion::parse("none").kind, ExitKind::None);
  EXPECT_THROW(ExitCriterion::parse("klx"), Error);
  EXPECT_THROW(ExitCriterion::parse("kl:abc"), Error);
  EXPECT_THROW(ExitCriterion::parse("kl:-1"), Error);
  EXPECT_THROW(ExitCriterion::parse("argmax-stability:2.5"), Error);
}

TEST(Generate, CacheStrategiesAndMemory) {
  // compression keeps the KV memory independent of the depth
  auto kv = [&](const char* cache, int steps) {
    GenerateOptions o = greedy(steps, 4);
    o.cache = cache;
    return generate(fixture(), kShort, o).kv_bytes;
  };
  EXPECT_EQ(kv("compress-s4", 8), kv("compress-s4", 16));
  EXPECT_LT(kv("full", 16), 2 * kv("full", 8) + 1);
  EXPECT_GT(kv("full", 16), kv("full", 8));
  EXPECT_LT(kv("compress-s4", 16), kv("full", 16));
  // every lookup strategy runs with early exits and gives a full answer
  for (const char* cache : {"full", "skip", "latest-m4", "available-m4", "always-last-m4", "latest-m4-compress-s4",
                            "compress-r4"}) {
    GenerateOptions o = greedy(12, 6);
    o.exit = ExitCriterion::parse("kl:5e-3");
    o.cache = cache;
    auto r = generate(fixture(), kLong, o);
    EXPECT_EQ(r.tokens.size(), 6u) << cache;
    EXPECT_GT(r.kv_bytes, 0u);
  }
  // latest-m4 and available-m4 are the same lookup
  GenerateOptions a = greedy(12, 8), b = a;
  a.exit = b.exit = ExitCriterion::parse("kl:3e-3");
  a.cache = "latest-m4";
  b.cache = "available-m4";
  EXPECT_EQ(generate(fixture(), kLong, a).tokens, generate(fixture(), kLong, b).tokens);
}

TEST(Generate, StopTokensAndMaxTokens) {
  auto g = generate(fixture(), kLong, greedy(8, 10)).tokens;
  GenerateOptions o = greedy(8, 10);
  o.stop_tokens = {g[3]};
  auto r = generate(fixture(), kLong, o);
  EXPECT_EQ(r.stop_reason, "stop_token");
  EXPECT_EQ(r.tokens, std::vector<int>(g.begin(), g.begin() + 4));
  // stop strings with a token-text function
  o.stop_tokens.clear();
  o.stop_strings = {"<" + std::to_string(g[5]) + ">"};
  o.token_text = [](int t) { return "<" + std::to_string(t) + ">"; };
  r = generate(fixture(), kLong, o);
  EXPECT_EQ(r.stop_reason, "stop_string");
  EXPECT_EQ(r.tokens.size(), 6u);
  o.stop_strings.clear();
  o.max_new_tokens = 0;
  EXPECT_TRUE(generate(fixture(), kLong, o).tokens.empty());
  // the context ends the generation, not an error
  GenerateOptions c = greedy(2, 500);
  auto rc = generate(random_model(), kRand, c);
  EXPECT_EQ(rc.stop_reason, "context");
  EXPECT_EQ((int)(kShort.size() + rc.tokens.size()), random_model().config().block_size + 1);
}

TEST(Sampling, SeededReproducibleAndFiltered) {
  const int V = 50;
  std::vector<float> logits(V);
  for (int i = 0; i < V; ++i) logits[i] = std::sin(i * 1.3f) * 2.f;
  const int top = argmax(logits.data(), V);
  SamplingOptions s;
  s.temperature = 1.f;
  s.seed = 42;
  Sampler a(V, s), b(V, s);
  std::vector<int> xa, xb;
  for (int i = 0; i < 200; ++i) {
    xa.push_back(a.sample(logits.data()));
    xb.push_back(b.sample(logits.data()));
  }
  EXPECT_EQ(xa, xb);
  EXPECT_GT(std::set<int>(xa.begin(), xa.end()).size(), 3u);
  s.seed = 43;
  Sampler c(V, s);
  std::vector<int> xc;
  for (int i = 0; i < 200; ++i) xc.push_back(c.sample(logits.data()));
  EXPECT_NE(xa, xc);
  // top-k 1, min-p 1 and a tiny top-p all reduce to the argmax
  for (int mode = 0; mode < 3; ++mode) {
    SamplingOptions t;
    t.temperature = 1.5f;
    t.seed = 1;
    if (mode == 0) t.top_k = 1;
    if (mode == 1) t.min_p = 1.f;
    if (mode == 2) t.top_p = 1e-4f;
    Sampler d(V, t);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(d.sample(logits.data()), top) << mode;
  }
  // top-k 3 only ever picks the three best
  SamplingOptions k3;
  k3.temperature = 5.f;
  k3.top_k = 3;
  Sampler e(V, k3);
  std::vector<int> order(V);
  for (int i = 0; i < V; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int x, int y) { return logits[x] > logits[y]; });
  for (int i = 0; i < 100; ++i) {
    int t = e.sample(logits.data());
    EXPECT_TRUE(t == order[0] || t == order[1] || t == order[2]);
  }
  // greedy + repetition penalty avoids the repeated top token
  SamplingOptions rp;
  rp.repetition_penalty = 1e3f;
  Sampler f(V, rp);
  EXPECT_EQ(f.sample(logits.data()), top);
  EXPECT_NE(f.sample(logits.data(), &top, 1), top);
  // bad options
  SamplingOptions bad;
  bad.top_p = 0.f;
  EXPECT_THROW(Sampler(V, bad), Error);
  bad = {};
  bad.temperature = -1.f;
  EXPECT_THROW(Sampler(V, bad), Error);
}

TEST(Generate, SampledGenerationIsReproducible) {
  GenerateOptions o = greedy(4, 12);
  o.sampling.temperature = 1.0f;
  o.sampling.top_p = 0.95f;
  o.sampling.seed = 7;
  auto a = generate(random_model(), kRand, o), b = generate(random_model(), kRand, o);
  EXPECT_EQ(a.tokens, b.tokens);
  o.sampling.seed = 8;
  EXPECT_NE(generate(random_model(), kRand, o).tokens, a.tokens);
}

TEST(Generate, ContinuousWarmStartChangesTheStartState) {
  GenerateOptions o = greedy(4, 8);
  auto cold = generate(fixture(), kLong, o);
  o.continuous = true;
  o.continuous_from = ContinuousFrom::Latent;
  FixedDepthOptions f;
  f.steps = 4;
  f.max_new_tokens = 8;
  f.continuous = true;
  EXPECT_EQ(generate(fixture(), kLong, o).tokens, generate_fixed_greedy(fixture(), kLong, f));
  // with an exit criterion the warm start changes how long each token iterates
  GenerateOptions a = greedy(32, 12);
  a.exit = ExitCriterion::parse("latent-diff:0.05");
  auto ra = generate(fixture(), kLong, a);
  a.continuous = true;
  auto rb = generate(fixture(), kLong, a);
  EXPECT_EQ(ra.steps[0], rb.steps[0]);  // the prompt starts from zeros either way
  EXPECT_NE(ra.steps, rb.steps);
}

TEST(Generate, DiffusionSamplerRunsAndReportsCounters) {
  DiffusionOptions d;
  d.steps = 16;
  d.inner_recurrence = 2;
  d.max_new_tokens = 10;
  d.exit_t = 0.03;
  auto r = generate_diffusion(fixture(), kLong, d);
  std::vector<int> want = {95, 425, 62, 499, 507, 123, 414, 50, 266, 214};  // fixture case diff.p_long...
  ASSERT_GE(r.tokens.size(), 10u);
  EXPECT_EQ(r.passes, (int)r.pass_trace.size());
  EXPECT_EQ(r.core_forward_passes, 1 + 2 * r.passes);
  EXPECT_EQ(r.sequence.size(), kLong.size() + r.tokens.size());
  // fewer passes than a sequential decoder needs forwards at this depth
  EXPECT_LT(r.passes * 2, 16 * 10);
  // a wavefront cap of 1 still works
  d.max_wavefront = 2;
  EXPECT_GE(generate_diffusion(fixture(), kLong, d).tokens.size(), 10u);
  (void)want;
}

TEST(Generate, BadOptionsAreClearErrors) {
  GenerateOptions o;
  o.check_every = 0;
  EXPECT_THROW(generate(fixture(), kShort, o), Error);
  o = {};
  o.cache = "compress-x";
  EXPECT_THROW(generate(fixture(), kShort, o), Error);
  o = {};
  o.stop_strings = {"x"};  // no token texts
  EXPECT_THROW(generate(fixture(), kShort, o), Error);
  EXPECT_THROW(generate(fixture(), std::vector<int>{}, GenerateOptions{}), Error);
  EXPECT_THROW(generate(fixture(), std::vector<int>{1, 100000}, GenerateOptions{}), Error);
  SpeculativeOptions s;
  s.lookahead = 0;
  EXPECT_THROW(generate_speculative(fixture(), kShort, s), Error);
  DiffusionOptions d;
  d.inner_recurrence = 0;
  EXPECT_THROW(generate_diffusion(fixture(), kShort, d), Error);
  EXPECT_THROW(DiffusionOptions::parse_freeze("sometimes"), Error);
}

TEST(Generate, SessionReusesItsCacheAcrossTurns) {
  for (const char* cache : {"full", "latest-m4-compress-s4"}) {
    GenerateOptions o = greedy(8, 5);
    o.cache = cache;
    Session s(fixture(), o);
    auto r1 = s.turn(kShort);
    ASSERT_EQ(r1.tokens.size(), 5u);
    EXPECT_EQ(s.length(), (int)kShort.size() + 4);  // the last token is fed with the next turn
    const std::vector<int> user = {7, 8, 9, 10};
    auto r2 = s.turn(user);
    // the same as generating from the whole conversation at once
    std::vector<int> all = kShort;
    all.insert(all.end(), r1.tokens.begin(), r1.tokens.end());
    all.insert(all.end(), user.begin(), user.end());
    EXPECT_EQ(s.history().size(), all.size() + r2.tokens.size());
    EXPECT_EQ(r2.tokens, generate(fixture(), all, o).tokens) << cache;
    EXPECT_EQ(r1.tokens, generate(fixture(), kShort, o).tokens);
    s.reset();
    EXPECT_EQ(s.length(), 0);
    EXPECT_EQ(s.turn(kShort).tokens, r1.tokens);
  }
}
