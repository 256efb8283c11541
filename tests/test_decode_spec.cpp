// The one decode spec: its parsers and checks, and one meaning of min_steps
// for the engine (GenerateOptions), task decoding (tasks::DecodeOptions) and
// the server.
#include <gtest/gtest.h>

#include <functional>

#include "huginn/checkpoint.h"
#include "huginn/decode_spec.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/server_api.h"
#include "huginn/tasks.h"
#include "test_util.h"

namespace huginn {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DecodeSpec, ParsersAcceptTheSpellingsAndNameBadValues) {
  EXPECT_EQ(DecodeSpec::parse_exit("none").kind, ExitKind::None);
  const ExitCriterion kl = DecodeSpec::parse_exit("kl:5e-4");
  EXPECT_EQ(kl.kind, ExitKind::KL);
  EXPECT_DOUBLE_EQ(kl.threshold, 5e-4);
  EXPECT_DOUBLE_EQ(DecodeSpec::parse_exit("latent-diff").threshold, ExitCriterion::default_threshold(ExitKind::LatentDiff));
  EXPECT_NE(error_of([] { DecodeSpec::parse_exit("entropy"); }).find("unknown exit criterion 'entropy'"), std::string::npos);
  EXPECT_NE(error_of([] { DecodeSpec::parse_exit("kl:x"); }).find("is not a number"), std::string::npos);
  EXPECT_EQ(DecodeSpec::parse_cache("latest-m4-compress-s4"), "latest-m4-compress-s4");
  EXPECT_THROW(DecodeSpec::parse_cache("fastest"), Error);
  EXPECT_NE(error_of([] { DecodeSpec::parse_cache("compress-sx"); }).find("compress-s needs a positive number"),
            std::string::npos);
  EXPECT_NE(error_of([] { DecodeSpec::parse_cache("compress-s0"); }).find("must be positive"), std::string::npos);
  EXPECT_NE(error_of([] { DecodeSpec::parse_cache("compress-r99999999999"); }).find("must be at most 9999"),
            std::string::npos);
  EXPECT_EQ(DecodeSpec::parse_cache("compress-r9999"), "compress-r9999");
  EXPECT_EQ(DecodeSpec::parse_continuous_from("latent"), ContinuousFrom::Latent);
  EXPECT_NE(error_of([] { DecodeSpec::parse_continuous_from("warm"); }).find("continuous-from 'warm'"), std::string::npos);
  DecodeSpec d;
  EXPECT_EQ(d.exit_str(), "none");
  d.exit = kl;
  EXPECT_EQ(d.exit_str(), "kl:0.0005");
}

TEST(DecodeSpec, ValidateRejectsOutOfRangeValues) {
  const ModelConfig c = test::tiny_config();
  auto bad = [&](const std::function<void(DecodeSpec&)>& set, const char* what) {
    DecodeSpec d;
    set(d);
    const std::string e = error_of([&] { d.validate(c); });
    EXPECT_NE(e.find(what), std::string::npos) << what << ": " << e;
  };
  bad([](DecodeSpec& d) { d.steps = -1; }, "steps must be >= 0");
  bad([](DecodeSpec& d) { d.min_steps = -2; }, "min steps must be >= 0");
  bad([](DecodeSpec& d) { d.check_every = 0; }, "check-every must be >= 1");
  bad([](DecodeSpec& d) { d.exit = {ExitKind::KL, -1}; }, "threshold must be a number >= 0");
  bad([](DecodeSpec& d) { d.init_scale = -1; }, "init scale must be >= 0");
  bad([](DecodeSpec& d) { d.cache = "nope"; }, "nope");
  bad([](DecodeSpec& d) { d.stop_strings = {""}; }, "empty stop string");
  DecodeSpec ok;
  EXPECT_NO_THROW(ok.validate(c));
  // The modes that do not run the per-token exit refuse one.
  SpeculativeOptions s;
  s.exit = DecodeSpec::parse_exit("kl");
  EXPECT_THROW(s.validate(c), Error);
  DiffusionOptions p;
  EXPECT_EQ(p.cache, "latest-m4-compress-s4");
  p.init_scale = 1;
  EXPECT_THROW(p.validate(c), Error);
}

// min_steps = m: the first check (and so the earliest exit) after m + 1
// iterations, in the engine, in task decoding and through the server.
TEST(DecodeSpec, MinStepsHasOneMeaning) {
  const ModelConfig c = test::tiny_config(32, 2, 128, 64);
  const std::vector<float> flat = init_params(c, 3);
  const auto m = Model::from_flat(c, flat.data());
  const std::vector<int> prompt = {tasks::kBosId, 5, 6, 7};
  for (int min_steps : {0, 2, 5}) {
    GenerateOptions g;
    g.steps = 12;
    g.max_new_tokens = 3;
    g.exit = DecodeSpec::parse_exit("kl:1e30");  // every check exits
    g.min_steps = min_steps;
    g.cache = "latest-m4";
    g.stop_tokens = {tasks::kEosId};
    const SequenceResult r = generate(*m, prompt, g);
    for (int s : r.steps) EXPECT_EQ(s, min_steps + 1);
    tasks::DecodeOptions o;
    o.steps = 12;
    o.max_new_tokens = 3;
    o.exit = g.exit;
    o.min_steps = min_steps;
    const tasks::DecodeResult t = tasks::decode_answer(*m, prompt, o);
    EXPECT_EQ(t.tokens, std::vector<int>(r.tokens.begin(), r.tokens.begin() + t.tokens.size()));
    for (int s : t.steps_used) EXPECT_EQ(s, min_steps + 1);
    const serve::Api api(*m, std::nullopt, {tasks::kEosId}, "tiny");
    const serve::ApiRequest req = api.parse(
        "{\"prompt\": [96, 5, 6, 7], \"steps\": 12, \"max_tokens\": 3, \"exit\": \"kl:1e30\", \"cache\": \"latest-m4\", "
        "\"min_steps\": " + std::to_string(min_steps) + "}",
        false);
    EXPECT_EQ(req.options.min_steps, min_steps);
    EXPECT_EQ(api.complete(req)["huginn"]["steps"].get<std::vector<int>>(), r.steps);
  }
}

}  // namespace
}  // namespace huginn
