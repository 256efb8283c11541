// The per-token decode loop must not allocate: count every operator new made
// by this test binary and require none during warm decode steps.
#include <gtest/gtest.h>


#include "alloc_counter.h"
#include "huginn/checkpoint.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "infer/decoder.h"
#include "huginn/sampling.h"
#include "test_util.h"

using namespace huginn;

TEST(NoAlloc, DecodeStepsDoNotAllocate) {
  auto c = test::tiny_config(64, 4, 211, 64);
  auto flat = init_params(c, 5);
  auto m = Model::from_flat(c, flat.data());
  std::vector<int> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
  for (const char* strategy : {"full", "latest-m4-compress-s4", "compress-r4"}) {
    KVCache cache = m->make_cache(40, CacheStrategy::parse(strategy));
    Workspace ws;
    Model::ForwardResult r;
    m->forward(prompt.data(), (int)prompt.size(), 6, r, ws, &cache, nullptr, 0.f, 0, 1);
    int tok = argmax(r.logits.data(), c.vocab_size);
    m->forward(&tok, 1, 6, r, ws, &cache, nullptr, 0.f, 0, 1);  // warm-up: sizes the single-token buffers
    const long allocs = test::count_allocs([&] {
      for (int i = 0; i < 10; ++i) {
        tok = argmax(r.logits.data(), c.vocab_size);
        m->forward(&tok, 1, 6, r, ws, &cache, nullptr, 0.f, 0, 1);
      }
    });
    EXPECT_EQ(allocs, 0) << strategy;
  }
}

// The same for an Ouro model through the decode loop, with the gate exit.
TEST(NoAlloc, OuroDecodeWithTheGateDoesNotAllocate) {
  auto m = Model::load(std::string(HUGINN_TEST_DATA) + "/golden/ouro/model");
  const std::vector<int> prompt = {160, 175, 229, 148, 198, 213, 58};
  for (const char* strategy : {"full", "last-loop", "latest-m4"}) {
    const ExitCriterion ex = ExitCriterion::parse("gate:0.6");
    infer::Decoder dec(*m, 40, CacheStrategy::parse(strategy), (int)prompt.size(), ex);
    infer::DepthPolicy p;
    p.max_steps = 4;
    p.exit = ex;
    infer::PassInput in;
    in.ids = prompt.data();
    in.T = (int)prompt.size();
    dec.run(in, p);
    int tok = argmax(dec.logits(), m->config().vocab_size);
    in.ids = &tok;
    in.T = 1;
    dec.run(in, p);  // warm-up
    int loops = 0;
    const long allocs = test::count_allocs([&] {
      for (int i = 0; i < 10; ++i) {
        tok = argmax(dec.logits(), m->config().vocab_size);
        loops += dec.run(in, p).steps;
      }
    });
    EXPECT_EQ(allocs, 0) << strategy;
    EXPECT_LE(loops, 40);
  }
}
