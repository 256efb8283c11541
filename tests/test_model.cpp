// Model loading and the forward pass: checkpoints round-trip in every dtype,
// prefill + cached decode equals one full pass, and the pieces agree.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <tuple>

#include "huginn/checkpoint.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/train.h"
#include "tensor/kernels.h"
#include "test_util.h"

using namespace huginn;
namespace fs = std::filesystem;

namespace {
std::vector<int> some_ids(int T, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int> v(T);
  for (auto& x : v) x = (int)(rng() % vocab);
  return v;
}
}  // namespace

TEST(Checkpoint, F32RoundTripUsesWeightsExactly) {
  auto c = test::tiny_config();
  auto flat = init_params(c, 7);
  auto dir = test::temp_dir("ckpt");
  save_checkpoint(dir.string(), c, flat.data());
  auto m = Model::load(dir.string());
  EXPECT_EQ(m->config().n_embd, c.n_embd);
  auto layout = param_layout(c);
  EXPECT_EQ(param_count(layout), (size_t)c.params_total());
  const ModelWeights& w = m->weights();
  EXPECT_EQ(w.wte.dtype, DType::F32);
  EXPECT_EQ(0, std::memcmp(w.wte.data, flat.data(), sizeof(float) * c.vocab_size * c.n_embd));
  EXPECT_EQ(w.lm_head.data, w.wte.data);  // tied
  EXPECT_EQ(m->converted_bytes(), 0u);    // every F32 tensor used in place
  EXPECT_EQ(m->weight_bytes(), param_count(layout) * sizeof(float));
  for (auto& p : layout) {
    if (p.name == "transformer.core_block.1.mlp.proj.weight") {
      EXPECT_EQ(0, std::memcmp(w.core[1].mlp_proj.data, flat.data() + p.offset, sizeof(float) * p.numel));
    }
  }
  fs::remove_all(dir);
}

// Checkpoints we write pad the safetensors header so that the data starts on
// a 64-byte line: the weight matrices, read in place from the memory map, then
// start on one too (the GEMV's vector loads never straddle two lines).
TEST(Checkpoint, WrittenWeightMatricesStartOnCacheLines) {
  auto c = test::tiny_config();
  auto flat = init_params(c, 7);
  auto dir = test::temp_dir("ckpt_align");
  save_checkpoint(dir.string(), c, flat.data());
  auto m = Model::load(dir.string());
  EXPECT_EQ(m->converted_bytes(), 0u);
  const ModelWeights& w = m->weights();
  for (const Weight* p : {&w.wte, &w.core[0].wqkv, &w.core[0].fc, &w.core[1].mlp_proj, &w.coda[0].attn_proj})
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p->data) % 64, 0u);
  fs::remove_all(dir);
}

TEST(Checkpoint, Bf16AndF16AreHeldInTheirTypeAndReadAsRoundedFloats) {
  auto c = test::tiny_config();
  auto flat = init_params(c, 8);
  for (DType dt : {DType::BF16, DType::F16}) {
    auto dir = test::temp_dir("ckpt16");
    save_checkpoint(dir.string(), c, flat.data(), dt);
    auto m = Model::load(dir.string());
    // Matrices stay in the stored type (from the memory map); vectors become F32.
    EXPECT_EQ(m->weights().wte.dtype, dt);
    EXPECT_EQ(m->weights().core[0].wqkv.dtype, dt);
    EXPECT_EQ(m->weights().core[0].norm_1.dtype, DType::F32);
    EXPECT_LT(m->weight_bytes(), param_count(param_layout(c)) * sizeof(float) * 0.6);
    auto conv = Model::load(dir.string(), LoadOptions{.convert_to_f32 = true});
    EXPECT_EQ(conv->weights().wte.dtype, DType::F32);
    const std::vector<float> held = flatten_weights(*m), converted = flatten_weights(*conv);
    ASSERT_EQ(held, converted);
    const float* wte = held.data();
    for (int i = 0; i < 200; ++i) {
      float want = dt == DType::BF16 ? bf16_to_f32(f32_to_bf16(flat[i])) : f16_to_f32(f32_to_f16(flat[i]));
      ASSERT_EQ(wte[i], want) << dtype_name(dt) << " at " << i;
      ASSERT_NEAR(wte[i], flat[i], std::fabs(flat[i]) * (dt == DType::BF16 ? 8e-3 : 1e-3) + 1e-7);
    }
    fs::remove_all(dir);
  }
}

TEST(Checkpoint, InitFollowsTheSpec) {
  auto c = test::tiny_config(64, 4, 128, 32);
  auto flat = init_params(c, 1);
  auto layout = param_layout(c);
  const double std_in = std::sqrt(2.0 / (5.0 * c.n_embd));
  const double std_out = std_in / std::sqrt(2.0 * c.effective_layers());
  for (auto& p : layout) {
    const float* w = flat.data() + p.offset;
    double ss = 0, mx = 0;
    for (size_t i = 0; i < p.numel; ++i) {
      ss += (double)w[i] * w[i];
      mx = std::max(mx, (double)std::fabs(w[i]));
    }
    const double rms = std::sqrt(ss / p.numel);
    if (p.name.find("norm") != std::string::npos || p.name.find("ln_f") != std::string::npos) {
      EXPECT_EQ(rms, 1.0) << p.name;
    } else if (p.name.find("qk_bias") != std::string::npos) {
      EXPECT_EQ(rms, 0.0) << p.name;
    } else if (p.name.find("proj") != std::string::npos) {
      EXPECT_NEAR(rms, std_out * 0.9866, std_out * 0.1) << p.name;  // 3-std truncation shrinks the std by 1.3%
      EXPECT_LE(mx, 3 * std_out + 1e-7) << p.name;
    } else if (p.name.find("fc") == std::string::npos) {
      EXPECT_NEAR(rms, std_in * 0.9866, std_in * 0.1) << p.name;
      EXPECT_LE(mx, 3 * std_in + 1e-7) << p.name;
    }
  }
  EXPECT_EQ(init_params(c, 1), flat);
  EXPECT_NE(init_params(c, 2), flat);
}

// K/V rows are read as whole vectors per head: the storage starts on a 64-byte
// line, and with a width of 16 floats or more every row does.
TEST(MemoryLayout, RowsStartOnCacheLines) {
  for (int width : {512, 64, 48}) {
    KVCache cache(1, 2, 1, width, 1000, CacheStrategy::parse("full"), width);  // one head
    std::vector<float> k((size_t)3 * width, 1.f), v((size_t)3 * width, 2.f);
    for (int step = 0; step < 4; ++step) cache.write(step, 3, k.data(), v.data(), width);
    std::vector<const void*> keys(1000), vals(1000);
    for (int step = 0; step < 4; ++step) {
      ASSERT_EQ(cache.lookup(step, keys.data(), vals.data()), 3);
      for (int p = 0; p < 3; ++p) {
        EXPECT_EQ(reinterpret_cast<uintptr_t>(keys[p]) % 64, 0u) << "width " << width << " step " << step;
        EXPECT_EQ(reinterpret_cast<uintptr_t>(vals[p]) % 64, 0u) << "width " << width << " step " << step;
        EXPECT_EQ(static_cast<const float*>(keys[p])[width - 1], 1.f);
        EXPECT_EQ(static_cast<const float*>(vals[p])[0], 2.f);
      }
    }
  }
}

// Head-major slots: a position's head h is head_stride() floats after the
// pointer lookup returns, every head's entries start on 64-byte lines, and the
// rows written come back exactly, for any capacity (the stride is rounded up
// to whole lines) and after dropping positions.
TEST(MemoryLayout, HeadMajorSlotsRoundTrip) {
  for (auto [heads, hd, capacity] : {std::tuple{8, 64, 7}, std::tuple{3, 16, 5}, std::tuple{2, 96, 1000}}) {
    const int width = heads * hd, T = 5;
    KVCache cache(1, 2, 1, width, capacity + T, CacheStrategy::parse("full"), hd);
    ASSERT_EQ(cache.head_dim(), hd);
    ASSERT_GE(cache.head_stride(), (size_t)(capacity + T) * hd);
    ASSERT_EQ(cache.head_stride() % 16, 0u);
    std::vector<float> k = test::randv((size_t)T * (width + 3), 1), v = test::randv(k.size(), 2);
    for (int step = 0; step < 4; ++step) cache.write(step, T, k.data(), v.data(), width + 3);  // rows ld apart
    cache.drop_last(1);
    std::vector<const void*> keys(capacity + T), vals(capacity + T);
    for (int step = 0; step < 4; ++step) {
      ASSERT_EQ(cache.lookup(step, keys.data(), vals.data()), T - 1);
      for (int p = 0; p < T - 1; ++p)
        for (int h = 0; h < heads; ++h) {
          const float* kh = static_cast<const float*>(keys[p]) + h * cache.head_stride();
          const float* vh = static_cast<const float*>(vals[p]) + h * cache.head_stride();
          EXPECT_EQ(reinterpret_cast<uintptr_t>(kh - p * hd) % 64, 0u);  // the head's first entry
          for (int i = 0; i < hd; ++i) {
            ASSERT_EQ(kh[i], k[(size_t)p * (width + 3) + h * hd + i]) << heads << "x" << hd << " p" << p << " h" << h;
            ASSERT_EQ(vh[i], v[(size_t)p * (width + 3) + h * hd + i]);
          }
        }
    }
  }
  EXPECT_THROW(KVCache(1, 2, 1, 100, 10, CacheStrategy::parse("full"), 64), std::runtime_error);
}

// An f16 cache ("-f16"): entries are the rows rounded to f16, head-major
// on 64-byte lines as in F32, in half the bytes.
TEST(MemoryLayout, F16SlotsHoldTheRoundedRowsInHalfTheBytes) {
  const int heads = 3, hd = 16, width = heads * hd, T = 5, capacity = 9;
  KVCache f32(1, 2, 1, width, capacity, CacheStrategy::parse("full"), hd);
  KVCache f16(1, 2, 1, width, capacity, CacheStrategy::parse("full-f16"), hd);
  ASSERT_EQ(f16.kv_type(), DType::F16);
  ASSERT_EQ(f32.kv_type(), DType::F32);
  std::vector<float> k = test::randv((size_t)T * width, 1), v = test::randv(k.size(), 2);
  for (int step = 0; step < 4; ++step) {
    f32.write(step, T, k.data(), v.data(), width);
    f16.write(step, T, k.data(), v.data(), width);
  }
  EXPECT_EQ(f16.bytes_held() * 2, f32.bytes_held());
  // 4 slots of K and V, each head's entries on whole 64-byte lines
  EXPECT_EQ(f16.bytes_allocated(), 4u * 2 * heads * f16.head_stride() * 2);
  EXPECT_EQ(f16.head_stride(), 160u);  // 9 positions x 16 entries x 2 bytes = 288 -> 320 bytes
  EXPECT_EQ(f32.head_stride(), 144u);  // 576 bytes, whole lines already
  std::vector<const void*> keys(capacity), vals(capacity);
  for (int step = 0; step < 4; ++step) {
    ASSERT_EQ(f16.lookup(step, keys.data(), vals.data()), T);
    for (int p = 0; p < T; ++p)
      for (int h = 0; h < heads; ++h) {
        const uint16_t* kh = static_cast<const uint16_t*>(keys[p]) + h * f16.head_stride();
        const uint16_t* vh = static_cast<const uint16_t*>(vals[p]) + h * f16.head_stride();
        EXPECT_EQ(reinterpret_cast<uintptr_t>(kh - p * hd) % 64, 0u);
        for (int i = 0; i < hd; ++i) {
          ASSERT_EQ(kh[i], f32_to_f16(k[(size_t)p * width + h * hd + i]));
          ASSERT_EQ(vh[i], f32_to_f16(v[(size_t)p * width + h * hd + i]));
        }
      }
  }
  // the suffix goes with every strategy; anything else after it is refused
  EXPECT_EQ(CacheStrategy::parse("f16").lookup, CacheLookup::Full);
  EXPECT_EQ(CacheStrategy::parse("f16").kv_type, DType::F16);
  const CacheStrategy c = CacheStrategy::parse("latest-m4-compress-s4-f16");
  EXPECT_EQ(c.lookup, CacheLookup::LatestM4);
  EXPECT_EQ(c.compress, 's');
  EXPECT_EQ(c.compress_n, 4);
  EXPECT_EQ(c.kv_type, DType::F16);
  EXPECT_EQ(CacheStrategy::parse("last-loop-f16").compress, 's');
  for (const char* bad : {"full-f17", "f16-full", "full-", "full--f16", "-f16", "full-bf16", "compress-s-f16"})
    EXPECT_THROW(CacheStrategy::parse(bad), std::runtime_error) << bad;
}

// Generation with an f16 cache follows the f32 cache's within f16's
// rounding: logits close at every depth, prefill and decode.
TEST(Forward, F16CacheStaysCloseToF32) {
  auto c = test::tiny_config();
  auto flat = init_params(c, 3);
  auto m = Model::from_flat(c, flat.data());
  const int T = 11, V = c.vocab_size;
  auto ids = some_ids(T, V, 5);
  for (int steps : {1, 4, 9}) {
    Workspace w32, w16;
    Model::ForwardResult a, b;
    KVCache c32 = m->make_cache(T, CacheStrategy::parse("full"));
    KVCache c16 = m->make_cache(T, CacheStrategy::parse("full-f16"));
    double worst = 0, scale = 0;
    for (int t = 0; t < T; t += t == 0 ? 4 : 1) {  // a 4-token prefill, then one token at a time
      const int n = t == 0 ? 4 : 1;
      m->forward(&ids[t], n, steps, a, w32, &c32);
      m->forward(&ids[t], n, steps, b, w16, &c16);
      for (size_t i = 0; i < a.logits.size(); ++i) {
        worst = std::max(worst, (double)std::fabs(a.logits[i] - b.logits[i]));
        scale = std::max(scale, (double)std::fabs(a.logits[i]));
      }
    }
    EXPECT_GT(worst, 0.0) << "steps " << steps;  // it really stored f16
    EXPECT_LT(worst, 2e-3 * std::max(1.0, scale)) << "steps " << steps;
    EXPECT_EQ(c16.bytes_held() * 2, c32.bytes_held());
  }
}

// The activations the GEMVs read (x, xn, att, act, cat, ...) start on 64-byte
// lines, so kern::matmul does not copy them to aligned rows first.
TEST(MemoryLayout, WorkspaceBuffersStartOnCacheLines) {
  auto c = test::tiny_config();
  auto flat = init_params(c, 3);
  auto m = Model::from_flat(c, flat.data());
  Workspace ws;
  for (int tokens : {1, 7, 33}) {
    auto ids = some_ids(tokens, c.vocab_size, 5);
    Model::ForwardResult out;
    m->forward(ids.data(), tokens, 2, out, ws);  // sizes every buffer, the attention's too
    for (const float* p : {ws.x.data(), ws.xn.data(), ws.qkv.data(), ws.att.data(), ws.tmp.data(), ws.hid.data(),
                           ws.act.data(), ws.cat.data(), ws.scores.data()}) {
      ASSERT_NE(p, nullptr) << tokens << " tokens";
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << tokens << " tokens";
    }
  }
}

// The central KV-cache property: a prompt prefilled in one pass and extended
// token by token gives the logits of one full-sequence pass, at any depth.
// A cache made for another head layout is refused with a clear error (its
// head stride would read other heads' entries).
TEST(Forward, CacheOfAnotherLayoutIsRefused) {
  auto c = test::tiny_config();
  ASSERT_GT(c.n_heads, 1);
  auto flat = init_params(c, 3);
  auto m = Model::from_flat(c, flat.data());
  auto ids = some_ids(3, c.vocab_size, 5);
  Workspace ws;
  Model::ForwardResult r;
  KVCache one_head(c.n_prelude, c.n_core, c.n_coda, c.n_embd, 8, CacheStrategy::parse("full"), c.n_embd);
  try {
    m->forward(ids.data(), 3, 2, r, ws, &one_head);
    FAIL() << "a one-head cache was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("Model::make_cache"), std::string::npos) << e.what();
  }
}

TEST(Forward, PrefillPlusCachedDecodeEqualsFullPass) {
  auto c = test::tiny_config();
  auto flat = init_params(c, 3);
  auto m = Model::from_flat(c, flat.data());
  const int T = 11, V = c.vocab_size;
  auto ids = some_ids(T, V, 5);
  for (int steps : {0, 1, 3, 9}) {
    Workspace ws;
    Model::ForwardResult full, part;
    m->forward(ids.data(), T, steps, full, ws);
    for (int prefill : {1, 4}) {
      KVCache cache = m->make_cache(T, CacheStrategy::parse("full"));
      m->forward(ids.data(), prefill, steps, part, ws, &cache);
      for (int t = 0; t < prefill; ++t)
        for (int v = 0; v < V; ++v)
          ASSERT_NEAR(part.logits[t * V + v], full.logits[t * V + v], 1e-5) << "prefill row " << t;
      for (int t = prefill; t < T; ++t) {
        m->forward(&ids[t], 1, steps, part, ws, &cache);
        for (int v = 0; v < V; ++v)
          ASSERT_NEAR(part.logits[v], full.logits[t * V + v], 2e-5) << "steps " << steps << " pos " << t;
      }
      EXPECT_EQ(cache.length(), T);
      EXPECT_EQ(cache.bytes_held(), (size_t)T * (c.n_prelude + c.n_coda + c.n_core * steps) * c.n_embd * 2 * 4);
    }
  }
}

TEST(Forward, PiecesComposeToForward) {
  auto c = test::tiny_config();
  auto flat = init_params(c, 4);
  auto m = Model::from_flat(c, flat.data());
  const int T = 6, d = c.n_embd, steps = 3;
  auto ids = some_ids(T, c.vocab_size, 6);
  Workspace ws;
  Model::ForwardResult r;
  m->forward(ids.data(), T, steps, r, ws);
  std::vector<float> e(T * d), s(T * d, 0.f), lat(T * d), logits(c.vocab_size);
  m->embed(ids.data(), T, e.data());
  m->prelude(e.data(), T, 0, nullptr, ws);
  for (int i = 0; i < steps; ++i) m->core_iteration(s.data(), e.data(), T, 0, nullptr, i, ws);
  m->head(s.data(), T, 0, nullptr, lat.data(), logits.data(), 1, ws);
  for (int i = 0; i < T * d; ++i) ASSERT_EQ(lat[i], r.latents[i]);
  // One logit row goes through the GEMV, all rows through BLAS: same values up to summation order.
  for (int v = 0; v < c.vocab_size; ++v) ASSERT_NEAR(logits[v], r.logits[(T - 1) * c.vocab_size + v], 1e-6);
}

TEST(Forward, ThreadCountDoesNotChangeResults) {
  auto c = test::tiny_config(64, 4, 200, 64);
  auto flat = init_params(c, 9);
  auto m = Model::from_flat(c, flat.data());
  auto ids = some_ids(20, c.vocab_size, 1);
  Workspace ws1, ws2;
  Model::ForwardResult a, b;
  kern::set_threads(1);
  m->forward(ids.data(), 20, 5, a, ws1);
  kern::set_threads(2);
  m->forward(ids.data(), 20, 5, b, ws2);
  for (size_t i = 0; i < a.logits.size(); ++i) ASSERT_NEAR(a.logits[i], b.logits[i], 1e-5);
}

TEST(Forward, RandomInitialStateIsSeededAndTruncated) {
  auto c = test::tiny_config();
  auto flat = init_params(c, 2);
  auto m = Model::from_flat(c, flat.data());
  std::vector<float> a(4 * c.n_embd), b(4 * c.n_embd), z(4 * c.n_embd, 1.f);
  m->init_state(a.data(), 4, 1.0f, 42);
  m->init_state(b.data(), 4, 1.0f, 42);
  EXPECT_EQ(a, b);
  m->init_state(b.data(), 4, 1.0f, 43);
  EXPECT_NE(a, b);
  const double lim = 3 * std::sqrt(2.0 / (5.0 * c.n_embd)) * std::sqrt((double)c.n_embd);
  for (float x : a) EXPECT_LE(std::fabs(x), lim + 1e-6);
  m->init_state(z.data(), 4, 0.0f, 1);
  for (float x : z) EXPECT_EQ(x, 0.f);
}

TEST(Config, AcceptsPublishedAliases) {
  nlohmann::json j = {{"hidden_size", 64},          {"num_attention_heads", 4},
                      {"intermediate_size", 128},   {"vocab_size", 300},
                      {"block_size", 32},           {"n_layers_in_prelude", 1},
                      {"n_layers_in_recurrent_block", 2}, {"n_layers_in_coda", 1},
                      {"architectures", {"RavenForCausalLM"}}, {"torch_dtype", "bfloat16"}};
  auto c = parse_config(j, "test");
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rope_base, 50000.0f);  // the class default when absent
  j["n_heads"] = 8;                   // n_heads wins over num_attention_heads
  EXPECT_EQ(parse_config(j, "test").n_heads, 8);
  // What we write, we read back identically.
  auto c2 = parse_config(config_to_json(c), "roundtrip");
  EXPECT_EQ(c2.n_embd, c.n_embd);
  EXPECT_EQ(c2.n_core, c.n_core);
  EXPECT_EQ(c2.rope_base, c.rope_base);
}

// A BF16 checkpoint runs from its memory map with BF16 weights held, and
// gives the tokens of the same checkpoint converted to F32; one-token passes
// (GEMV) are bitwise equal, since the kernels widen BF16 to F32 in the
// register and multiply-add in the same order.
TEST(Checkpoint, Bf16HeldGeneratesTheTokensOfTheConvertedModel) {
  const std::string dir = std::string(HUGINN_TEST_DATA) + "/golden/tiny_bf16_sharded";
  auto held = Model::load(dir);
  auto conv = Model::load(dir, LoadOptions{.convert_to_f32 = true});
  ASSERT_EQ(held->weights().core[0].wqkv.dtype, DType::BF16);
  ASSERT_EQ(conv->weights().core[0].wqkv.dtype, DType::F32);
  EXPECT_LT(held->weight_bytes(), conv->weight_bytes() * 0.6);
  const std::vector<int> prompt = {5, 17, 3, 99, 42, 7, 11, 2, 64, 30};
  for (int steps : {1, 4, 16}) {
    GenerateOptions o;
    o.steps = steps;
    o.max_new_tokens = 12;
    o.stop_tokens.clear();
    const SequenceResult a = generate(*held, prompt, o), b = generate(*conv, prompt, o);
    EXPECT_EQ(a.tokens, b.tokens) << "steps " << steps;
  }
  Workspace wa, wb;
  Model::ForwardResult ra, rb;
  const int tok = 23;
  held->forward(&tok, 1, 8, ra, wa);
  conv->forward(&tok, 1, 8, rb, wb);
  EXPECT_EQ(ra.logits, rb.logits);
}
