// Results independent of the thread count and of the BLAS kernel: the fixed
// row blocks of kern::gemm_fixed_blocks, and training (gradients, losses,
// weights, resume) across thread counts. ctest runs these tests twice: with
// the machine's default OpenBLAS kernel and with OPENBLAS_CORETYPE=Haswell,
// whose sgemm sums edge blocks in another order than the interior
// (tests/determinism.cmake).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "huginn/checkpoint.h"
#include "huginn/train.h"
#include "tensor/backward.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"

using namespace huginn;
namespace fs = std::filesystem;

namespace {
std::vector<float> rnd(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
// Restores the process's thread count after a test changes it.
struct Threads {
  int saved = kern::threads();
  ~Threads() { kern::set_threads(saved); }
};

struct Gemm {
  bool ta, tb;
  int M, N, K;
  float alpha, beta;
};
// Row-major storage of op(A) [M, K] and op(B) [K, N] with their leading dimensions.
struct Operands {
  std::vector<float> A, B, C;
  int lda, ldb, ldc;
};
Operands operands(const Gemm& g, uint32_t seed) {
  Operands o;
  o.lda = (g.ta ? g.M : g.K) + 3;  // padded strides: the blocks must honour lda/ldb/ldc
  o.ldb = (g.tb ? g.K : g.N) + 1;
  o.ldc = g.N + 2;
  o.A = rnd((size_t)(g.ta ? g.K : g.M) * o.lda, seed);
  o.B = rnd((size_t)(g.tb ? g.N : g.K) * o.ldb, seed + 1);
  o.C = rnd((size_t)g.M * o.ldc, seed + 2);
  return o;
}
std::vector<float> run(const Gemm& g, Operands o) {
  kern::gemm_fixed_blocks(g.ta, g.tb, g.M, g.N, g.K, g.alpha, o.A.data(), o.lda, o.B.data(), o.ldb, g.beta,
                          o.C.data(), o.ldc);
  return o.C;
}
// Large enough for threaded OpenBLAS (M·N·K > 262,144) with edge blocks in
// every dimension; every transpose combination the engine uses.
const Gemm kShapes[] = {
    {false, true, 301, 97, 67, 1.f, 0.f},     // forward x · Wᵀ
    {false, true, 1030, 192, 64, 1.f, 1.f},   // forward, accumulate, several blocks
    {true, false, 193, 65, 517, 1.f, 1.f},    // weight gradient dyᵀ · x
    {false, false, 517, 65, 193, 1.f, 0.f},   // input gradient dy · W
    {true, true, 130, 70, 90, 0.5f, 0.25f},
    {false, true, 16, 1000, 96, 1.f, 0.f},    // a short prefill: blocks of columns
    {true, false, 40, 517, 33, 1.f, 1.f},     // few rows, op(B) not transposed
};
}  // namespace

TEST(Determinism, GemmFixedBlocksMatchesADoubleReference) {
  for (const Gemm& g : kShapes) {
    const Operands o = operands(g, 7);
    const auto got = run(g, o);
    for (int m = 0; m < g.M; m += 7)
      for (int n = 0; n < g.N; n += 3) {
        double s = 0, mag = 0;
        for (int k = 0; k < g.K; ++k) {
          const double a = g.ta ? o.A[(size_t)k * o.lda + m] : o.A[(size_t)m * o.lda + k];
          const double b = g.tb ? o.B[(size_t)n * o.ldb + k] : o.B[(size_t)k * o.ldb + n];
          s += a * b, mag += std::fabs(a * b);
        }
        const double want = g.alpha * s + g.beta * o.C[(size_t)m * o.ldc + n];
        ASSERT_NEAR(got[(size_t)m * o.ldc + n], want, 1e-5 * (mag + 1)) << g.M << "x" << g.N << "x" << g.K;
      }
    // Padding between rows is untouched.
    for (int m = 0; m < g.M; ++m)
      for (int n = g.N; n < o.ldc; ++n) ASSERT_EQ(got[(size_t)m * o.ldc + n], o.C[(size_t)m * o.ldc + n]);
  }
}

TEST(Determinism, GemmBlocksDependOnTheShapeOnly) {
  EXPECT_EQ(kern::gemm_block_rows(1), 32);
  EXPECT_EQ(kern::gemm_block_rows(100), 128);   // one block
  EXPECT_EQ(kern::gemm_block_rows(128), 64);    // two blocks from 128 rows on
  EXPECT_EQ(kern::gemm_block_rows(1024), 256);  // 4 blocks of at least 256 rows
  EXPECT_EQ(kern::gemm_block_rows(4096), 256);  // 16 blocks
  EXPECT_EQ(kern::gemm_block_rows(100000), 6272);
  for (int M = 1; M < 5000; M += 37) {
    const int rows = kern::gemm_block_rows(M);
    EXPECT_EQ(rows % 32, 0);
    const int blocks = (M + rows - 1) / rows;
    EXPECT_LE(blocks, 16) << M;
    if (M >= 512) {
      EXPECT_GE(rows, 256) << M;
    }
    if (M >= 128) {
      EXPECT_GE(blocks, 2) << M;
    }
  }
  // fewer than 128 rows: columns cut instead (for two threads from 256 on)
  EXPECT_EQ(kern::gemm_block_cols(16, 200), 200);
  EXPECT_EQ(kern::gemm_block_cols(16, 512), 128);
  EXPECT_EQ(kern::gemm_block_cols(127, 8192), 512);
  EXPECT_EQ(kern::gemm_block_cols(128, 8192), 8192);
}

TEST(Determinism, GemmFixedBlocksIsBitIdenticalAcrossThreadCounts) {
  Threads keep;
  for (const Gemm& g : kShapes) {
    const Operands o = operands(g, 11);
    kern::set_threads(1);
    const auto one = run(g, o);
    for (int t : {2, 3, 4}) {
      kern::set_threads(t);
      EXPECT_TRUE(same_bits(run(g, o), one)) << t << " threads, " << g.M << "x" << g.N << "x" << g.K;
    }
    // Called from inside a parallel region (as attention's products are).
    kern::set_threads(2);
    std::vector<float> inside;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      inside = run(g, o);
    }
    EXPECT_TRUE(same_bits(inside, one)) << "inside a parallel region";
  }
}

TEST(Determinism, LinearGradientsAreBitIdenticalAcrossThreadCounts) {
  Threads keep;
  const int T = 700, K = 96, N = 288;  // several row blocks in each product
  const auto dy = rnd((size_t)T * N, 1), x = rnd((size_t)T * K, 2), W = rnd((size_t)N * K, 3);
  auto grads = [&](int t) {
    kern::set_threads(t);
    std::vector<float> dW = rnd((size_t)N * K, 4), dx((size_t)T * K);
    bwd::linear_weight_grad(dy.data(), N, x.data(), K, dW.data(), K, T, K, N);
    bwd::linear_input_grad(dy.data(), N, W.data(), K, dx.data(), K, T, K, N, false);
    dW.insert(dW.end(), dx.begin(), dx.end());
    return dW;
  };
  const auto one = grads(1);
  EXPECT_TRUE(same_bits(grads(2), one));
  EXPECT_TRUE(same_bits(grads(3), one));
}

namespace {
// Large enough that every product of the engine takes the threaded BLAS path
// (n = B·T = 256 rows; d = 64, 3d = 192).
ModelConfig model() {
  ModelConfig c;
  c.n_embd = 64, c.n_heads = 4, c.head_dim = 16, c.intermediate_size = 96, c.vocab_size = 80;
  c.block_size = 64, c.n_prelude = 1, c.n_core = 2, c.n_coda = 1, c.mean_recurrence = 4, c.mean_backprop_depth = 2;
  return c;
}
}  // namespace

TEST(Determinism, TrainingGradientsAreBitIdenticalAcrossThreadCounts) {
  Threads keep;
  const ModelConfig c = model();
  const int B = 4, T = 64;
  const auto params = init_params(c, 5);
  std::mt19937 rng(6);
  std::vector<int> ids(B * T), labels(B * T);
  for (int i = 0; i < B * T; ++i) ids[i] = (int)(rng() % c.vocab_size), labels[i] = (int)(rng() % c.vocab_size);
  auto grads = [&](int t, double* loss) {
    kern::set_threads(t);
    GradEngine eng(c, B, T, 2);
    std::vector<float> g(params.size(), 0.f);
    *loss = eng.forward_backward(params.data(), g.data(), ids.data(), labels.data(), B, RecurrenceSplit{1, 2},
                                 1.f / (B * T), nullptr, 1.f)
                .loss_sum;
    return g;
  };
  double l1 = 0, l2 = 0;
  const auto g1 = grads(1, &l1), g2 = grads(2, &l2);
  EXPECT_EQ(l1, l2);
  EXPECT_TRUE(same_bits(g1, g2)) << "gradients differ between 1 and 2 threads";
}

TEST(Determinism, TrainingAndResumeAreBitIdenticalAcrossThreadCounts) {
  Threads keep;
  const fs::path dir = fs::temp_directory_path() / ("huginn_test_det_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  TrainOptions o;
  o.steps = 4, o.batch = 4, o.seq_len = 64, o.log_every = 0;
  o.sched.lr = 3e-3f, o.sched.warmup = 1;
  o.eval_every = 0, o.eval_batches = 1, o.quiet = true, o.seed = 9;
  o.fixed_no_grad = 1, o.fixed_grad = 2;  // a fixed depth keeps the test fast
  auto src = std::make_shared<SyntheticSource>(SyntheticSource::Task::Reverse, 6, 60, 5, false);
  auto train = [&](int threads, int steps, const std::string& resume_from, std::vector<double>& losses) {
    kern::set_threads(threads);
    o.out = (dir / ("t" + std::to_string(threads))).string();
    Trainer tr(model(), o, src);
    if (resume_from.empty()) tr.init_params();
    else tr.resume(resume_from);
    for (int i = 0; i < steps; ++i) losses.push_back(tr.step().loss);
    if (resume_from.empty()) tr.save((dir / "half").string());
    return tr.params();
  };
  std::vector<double> l1, l2, resumed;
  const auto p1 = train(1, 4, "", l1);
  const auto p2 = train(2, 4, "", l2);
  EXPECT_EQ(l1, l2);
  EXPECT_TRUE(same_bits(p1, p2)) << "weights after 4 steps differ between 1 and 2 threads";
  // Two steps on one thread, saved, resumed on two threads for the last two.
  fs::remove_all(dir / "half");
  std::vector<double> first;
  train(1, 2, "", first);
  const auto pr = train(2, 2, (dir / "half").string(), resumed);
  first.insert(first.end(), resumed.begin(), resumed.end());
  EXPECT_EQ(first, l1);
  EXPECT_TRUE(same_bits(pr, p1)) << "resumed on 2 threads differs from the straight run on 1";
  fs::remove_all(dir);
}
