// The per-token decode loop must not allocate: count every operator new made
// by this test binary and require none during warm decode steps.
#include <gtest/gtest.h>


#include "alloc_counter.h"
#include "huginn/checkpoint.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "test_util.h"

using namespace huginn;

TEST(NoAlloc, DecodeStepsDoNotAllocate) {
  auto c = test::tiny_config(64, 4, 211, 64);
  auto flat = init_params(c, 5);
  auto m = Model::from_flat(c, flat.data());
  std::vector<int> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
  for (const char* strategy : {"full", "latest-m4-compress-s4", "compress-r4"}) {
    KVCache cache(c.n_prelude, c.n_core, c.n_coda, c.n_embd, 40, CacheStrategy::parse(strategy));
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
