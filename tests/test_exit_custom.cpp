// The custom exit criterion (a caller's rule, e.g. written in Python): the
// decode loop calls it at every check with the iterations done, the pass's
// state and (when asked for) the last row's logits; the built-in criteria are
// unchanged by it.
#include <gtest/gtest.h>

#include "huginn/common.h"
#include "huginn/exit_criteria.h"
#include "huginn/generate.h"
#include "huginn/model.h"

using namespace huginn;

namespace {
const Model& tiny() {
  static auto m = Model::load(std::string(HUGINN_TEST_DATA) + "/golden/tiny_f32");
  return *m;
}
}  // namespace

TEST(ExitCustom, RuleSeesStateAndLogitsAndSetsTheDepth) {
  const Model& m = tiny();
  const std::vector<int> prompt = {1, 5, 9, 300, 42};
  GenerateOptions g;
  g.steps = 16;
  g.max_new_tokens = 6;
  int calls = 0;
  g.exit = ExitCriterion::custom([&](const ExitContext& c) {
    ++calls;
    EXPECT_EQ(c.d, m.config().n_embd);
    EXPECT_EQ(c.vocab, m.config().vocab_size);
    EXPECT_NE(c.logits, nullptr);
    EXPECT_TRUE(c.T == 5 || c.T == 1);
    return c.steps >= 5;
  });
  const SequenceResult r = generate(m, prompt, g);
  EXPECT_EQ(calls, 5 * (int)r.steps.size());
  for (int s : r.steps) EXPECT_EQ(s, 5);

  GenerateOptions fixed;
  fixed.steps = 5;
  fixed.max_new_tokens = 6;
  EXPECT_EQ(generate(m, prompt, fixed).tokens, r.tokens);

  g.exit = ExitCriterion::custom([](const ExitContext& c) { return c.logits == nullptr && c.steps >= 3; }, false);
  for (int s : generate(m, prompt, g).steps) EXPECT_EQ(s, 3);
}

TEST(ExitCustom, NotParsedAndNeedsARule) {
  EXPECT_THROW(ExitCriterion::parse("custom"), Error);
  EXPECT_THROW(ExitCriterion::custom(nullptr), Error);
  EXPECT_STREQ(ExitCriterion::name(ExitKind::Custom), "custom");
}
