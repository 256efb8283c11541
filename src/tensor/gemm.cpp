#include "tensor/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "tensor/kernels.h"
#include "tensor/team.h"

namespace huginn::kern {

namespace {
// Blocks of a dimension of n: a power of two of equal blocks of at least
// `min_size`, at most 16, rounded to 32.
int block_size(int n, int min_size) {
  constexpr int kMaxBlocks = 16;
  int blocks = 1;
  while (blocks < kMaxBlocks && (n + 2 * blocks - 1) / (2 * blocks) >= min_size) blocks *= 2;
  if (blocks == 1 && n >= 128) blocks = 2;
  const int per = (n + blocks - 1) / blocks;
  return std::max(32, (per + 31) / 32 * 32);
}
}  // namespace

int gemm_block_rows(int M) {
  // Each block is its own sgemm call, which repacks the whole other operand:
  // that costs about 1/rows of the block's arithmetic, so blocks are at least
  // 256 rows (at 64 rows the repacking was 10% of a training step's CPU time).
  // A power of two of equal blocks, at most 16 (enough for 16 threads), so
  // that 2, 4, 8 or 16 threads share them evenly; two blocks from 128 rows on,
  // so that two threads have work. Rows per block: a multiple of 32 (whole
  // register tiles of every sgemm kernel).
  return block_size(M, 256);
}

int gemm_block_cols(int M, int N) {
  // Fewer than 128 rows (a prompt chunk, a short prefill) are one block of
  // rows: its columns are cut instead, so that the threads share it (each
  // block packs only its own columns of op(B)).
  return M < 128 && N >= 256 ? block_size(N, 128) : N;
}

namespace {
// One block: rows [m0, m1) and columns [n0, n1) of C.
inline void block(bool transA, bool transB, int m0, int m1, int n0, int n1, int K, float alpha, const float* A,
                  int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  const float* Ab = transA ? A + m0 : A + (size_t)m0 * lda;
  const float* Bb = transB ? B + (size_t)n0 * ldb : B + n0;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m1 - m0,
              n1 - n0, K, alpha, Ab, lda, Bb, ldb, beta, C + (size_t)m0 * ldc + n0, ldc);
}
}  // namespace

void gemm_fixed_blocks(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                       const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  const int R = gemm_block_rows(M), Cb = gemm_block_cols(M, N);
  const int nr = (M + R - 1) / R, nc = (N + Cb - 1) / Cb, nb = nr * nc;
  auto run = [&](int b) {
    const int i = b / nc, j = b % nc;
    block(transA, transB, i * R, std::min(M, (i + 1) * R), j * Cb, std::min(N, (j + 1) * Cb), K, alpha, A, lda, B,
          ldb, beta, C, ldc);
  };
  // OpenBLAS (OpenMP build) runs single-threaded exactly when it is called
  // inside an active parallel region or when OpenMP allows one thread. So the
  // blocks always run inside a region of at least two threads (a stage's team,
  // or a new region; one may idle when there is a single block); with one
  // thread in all, BLAS is single-threaded anyway.
  // Blocks are handed out one at a time: a thread that starts late (woken
  // from sleep, or preempted on a shared machine) takes fewer of them. A
  // block's bits do not depend on the thread that computes it.
  if (detail::t_team) return parallel_for_dynamic(nb, true, [&](int b, int) { run(b); });
  if (omp_in_parallel() || omp_get_max_threads() <= 1) {
    for (int b = 0; b < nb; ++b) run(b);
    return;
  }
  const int team = std::max(2, std::min(threads(), nb));
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
  for (int b = 0; b < nb; ++b) run(b);
}

}  // namespace huginn::kern
